"""Time the store's "already trained under this protocol?" lookup with 10 000 runs in an SQLite file.

    python benchmarks/store_lookup.py [--runs 10000] [--repeats 200]

The runs spread over 50 protocols and 200 candidates, a tenth of them not completed; each lookup
asks for a (candidate, protocol) pair, half of them present. Prints the median and the worst lookup
in milliseconds, and the same for "completed runs of one protocol group" (what baselines and the
reports ask). Target: <= 10 ms per lookup.
"""

from __future__ import annotations

import argparse
import random
import statistics
import tempfile
import time
from pathlib import Path

from bnextbench.store import Run, Store
from bnextbench.train import Recipe
from bnextbench.train.protocol import Protocol

PROTOCOLS = 50
CANDIDATES = 200


def protocols() -> list[Protocol]:
    return [Protocol("digits", 16, 100 * (1 + index % 5), Recipe(epochs=1 + index // 10, seed=index % 3))
            for index in range(PROTOCOLS)]


def fill(store: Store, runs: int, rng: random.Random) -> None:
    """``runs`` rows written in one transaction (the lookup, not the writing, is what is timed)."""
    choices = protocols()
    with store.session() as session, session.begin():
        for index in range(runs):
            protocol = rng.choice(choices)
            candidate = f"bnext-spec-{rng.randrange(CANDIDATES):016x}"
            session.add(Run(
                status="completed" if rng.random() > 0.1 else "pruned", model=candidate, candidate=candidate,
                width_mult=1.0, data=protocol.data, resolution=protocol.resolution,
                train_limit=protocol.train_limit, num_classes=10, recipe=protocol.recipe.to_dict(),
                seed=protocol.seed, protocol_key=protocol.key, protocol_group=protocol.group_key, device="cpu",
                versions={}, host="benchmark", pid=index, epochs_planned=1, epochs_done=1, top1=50.0,
            ))


def timed_ms(call, repeats: int) -> list[float]:
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        call()
        times.append(1000 * (time.perf_counter() - started))
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=10_000)
    parser.add_argument("--repeats", type=int, default=200)
    args = parser.parse_args()
    rng = random.Random(0)
    with tempfile.TemporaryDirectory() as folder:
        store = Store(Path(folder) / "lookup.db")
        fill(store, args.runs, rng)
        choices = protocols()
        queries = [(f"bnext-spec-{rng.randrange(2 * CANDIDATES):016x}", rng.choice(choices))
                   for _ in range(args.repeats)]
        found = sum(store.find_completed_run(name, protocol) is not None for name, protocol in queries)
        pending = iter(queries * 2)
        lookup = timed_ms(lambda: store.find_completed_run(*next(pending)), args.repeats)
        groups = iter([protocol.group_key for _, protocol in queries] * 2)
        group = timed_ms(lambda: store.completed_runs(next(groups)), args.repeats)
        store.engine.dispose()
    print(f"{args.runs} runs in SQLite, {args.repeats} lookups ({found} found):")
    print(f"  find_completed_run(candidate, protocol): median {statistics.median(lookup):.2f} ms, "
          f"max {max(lookup):.2f} ms (target <= 10 ms)")
    print(f"  completed_runs(protocol group):          median {statistics.median(group):.2f} ms, "
          f"max {max(group):.2f} ms")


if __name__ == "__main__":
    main()
