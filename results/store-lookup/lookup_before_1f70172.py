"""The same lookup on the code before the typed protocol (run with PYTHONPATH=<checkout of 1f70172>)."""
import random, statistics, tempfile, time
from pathlib import Path
from bnextbench.store import Run, Store
from bnextbench.train import Recipe

def protocols():
    return [{"data": "digits", "resolution": 16, "train_limit": 100 * (1 + i % 5),
             "recipe": Recipe(epochs=1 + i // 10, seed=i % 3).to_dict()} for i in range(50)]

rng = random.Random(0)
with tempfile.TemporaryDirectory() as folder:
    store = Store(Path(folder) / "lookup.db")
    choices = protocols()
    with store.session() as session, session.begin():
        for index in range(10_000):
            protocol = rng.choice(choices)
            candidate = f"{rng.randrange(200):016x}"
            session.add(Run(status="completed" if rng.random() > 0.1 else "pruned", model="bnext-spec-" + candidate,
                            data="digits", resolution=16, num_classes=10,
                            recipe={**protocol["recipe"], "train_limit": protocol["train_limit"], "width_mult": 1.0,
                                    "candidate": candidate, "protocol": protocol},
                            seed=0, device="cpu", versions={}, host="benchmark", pid=index, epochs_planned=1,
                            epochs_done=1, top1=50.0))
    queries = [(f"{rng.randrange(400):016x}", rng.choice(choices)) for _ in range(20)]
    times = []
    for name, protocol in queries:
        started = time.perf_counter()
        store.find_completed_run(name, protocol)
        times.append(1000 * (time.perf_counter() - started))
    print(f"before (scan in Python): 10000 runs, {len(queries)} lookups: median {statistics.median(times):.1f} ms, "
          f"max {max(times):.1f} ms")
