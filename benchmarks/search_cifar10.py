"""TPE against random search on real CIFAR-10 at 32x32 under 0.3 G BOPs, next to width-scaled baselines.

    python benchmarks/search_cifar10.py --data imagefolder:DIR [--budget 0.3GBOPs] [--trials 8]
        [--epochs 3] [--train-limit 10000] [--batch-size 128] [--deadline-min 60] [--out results/search-cifar10]

Both samplers search `search_spaces/bnext.yaml` with the same seed, trial count and fidelity (every
candidate trains the same epochs on the same class-balanced subset; no pruning, so no trial is cut
short). Their trials are interleaved, one each in turn, so a deadline leaves both with equal counts.
reactnet_a and xnor_resnet18 are width-scaled to the same budget (largest multiple of 1/64 that
fits at 32 px) and trained with the same recipe, data and epochs. Every run and trial is kept in
OUT/search-cifar10.db; OUT/summary.{md,json} hold the four best accuracies with BOPs and OPs.
"""

from __future__ import annotations

import argparse
import json
from dataclasses import replace
import shlex
import sys
import time
from pathlib import Path

from rich.console import Console

from bnextbench.profiling import profile_model
from bnextbench.search import parse_budgets
from bnextbench.search.baselines import run_baselines
from bnextbench.search.study import Search, SearchConfig
from bnextbench.search.summary import load_summary
from bnextbench.store import Store
from bnextbench.allocator import keep_freed_memory

SPACE = Path(__file__).resolve().parents[1] / "search_spaces" / "bnext.yaml"
BASELINES = ("reactnet_a", "xnor_resnet18")
SAMPLERS = ("tpe", "random")
CONSOLE = Console(stderr=True, highlight=False)


def best_trial(search: Search, store: Store) -> dict:
    trials = load_summary(search.name, store.url)["trials"]
    trained = [t for t in trials if t["state"] == "complete" and t["top1"] is not None]
    return max(trained, key=lambda t: t["top1"])


def interleaved_search(searches: dict[str, Search], store: Store, trials: int, deadline: float) -> int:
    """One more finished trial for each sampler in turn until ``trials`` each or the deadline; returns the count."""
    done = 0
    for target in range(1, trials + 1):
        if time.monotonic() > deadline:
            break
        for sampler, search in searches.items():
            search.record = replace(search.record, settings=replace(search.record.settings, trials=target))
            started = time.perf_counter()
            search.run(store, progress=False)
            last = load_summary(search.name, store.url)["trials"][-1]
            top1 = f"{last['top1']:.2f} %" if last["top1"] is not None else "-"
            CONSOLE.print(f"{sampler} trial {target}/{trials}: {last['state']}, top-1 {top1}, "
                          f"{last['bops'] / 1e9:.4f} G BOPs, {time.perf_counter() - started:.0f} s")
        done = target
    return done


def main() -> None:
    keep_freed_memory()  # as the command line does for every training run
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", required=True, help="CIFAR-10 as imagefolder:DIR or cifar10:DIR")
    parser.add_argument("--budget", default="0.3GBOPs")
    parser.add_argument("--trials", type=int, default=8, help="finished trials per sampler (infeasible included)")
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--train-limit", type=int, default=10000, help="class-balanced training images")
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--lr", type=float, default=2e-3)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--deadline-min", type=float, default=60.0,
                        help="stop starting new trial pairs after this many minutes")
    parser.add_argument("--out", type=Path, default=Path("results") / "search-cifar10")
    parser.add_argument("--checkpoints", type=Path, help="folder of the baselines' checkpoints (default OUT/checkpoints)")
    args = parser.parse_args()
    started = time.monotonic()
    deadline = started + 60 * args.deadline_min
    budgets = parse_budgets([args.budget])
    args.out.mkdir(parents=True, exist_ok=True)
    store = Store(args.out / "search-cifar10.db")

    searches = {}
    for sampler in SAMPLERS:
        config = SearchConfig(budgets=budgets, space=SPACE, data=args.data, trials=1, epochs=args.epochs,
                              batch_size=args.batch_size, train_limit=args.train_limit, resolution=32,
                              sampler=sampler, pruner="none", study=f"cifar10-{sampler}-{args.budget}-s{args.seed}",
                              seed=args.seed, lr=args.lr)
        searches[sampler] = Search.configure(config)
    protocol = searches["tpe"].record.protocol
    num_classes = searches["tpe"].data.num_classes

    rows = []
    for model in BASELINES:
        begun = time.perf_counter()
        [record] = run_baselines(store, budgets, protocol, num_classes, [model],
                                 out_root=args.checkpoints or args.out / "checkpoints", progress=False)
        counts = profile_model(model, 32, num_classes, width_mult=record["width_mult"])
        rows.append({"arm": f"{model} x{record['width_mult']:g}", "top1": record["top1"], "bops": counts.bops,
                     "ops": counts.ops, "params": counts.params, "run_id": record["run_id"],
                     "seconds": time.perf_counter() - begun})
        CONSOLE.print(f"{model} x{record['width_mult']:g}: top-1 {record['top1']:.2f} %, "
                      f"{counts.bops / 1e9:.4f} G BOPs, {rows[-1]['seconds']:.0f} s")

    trials = interleaved_search(searches, store, args.trials, deadline)
    for sampler, search in searches.items():
        best = best_trial(search, store)
        rows.append({"arm": f"{sampler} best of {trials}", "top1": best["top1"], "bops": best["bops"],
                     "ops": best["ops"], "params": best["params"], "run_id": best["run_id"],
                     "trial": best["number"], "arch": best["arch"]})

    summary = {
        "command": "python " + shlex.join(sys.argv),
        "budget": args.budget, "resolution": 32, "data": protocol.data, "train_limit": args.train_limit,
        "epochs": args.epochs, "batch_size": args.batch_size, "lr": args.lr, "seed": args.seed,
        "trials_per_sampler": trials, "minutes": (time.monotonic() - started) / 60, "rows": rows,
    }
    (args.out / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    lines = [f"# Search on {protocol.data} at 32 px under {args.budget}", "",
             f"`{summary['command']}`", "",
             (f"{trials} trials per sampler, {args.epochs} epoch(s) on {args.train_limit} class-balanced training "
              f"images, tested on the whole test set; {summary['minutes']:.1f} min in all."), "",
             "| arm | top-1 (%) | BOPs (G, 32 px) | OPs (M, 32 px) | params (M) | run |",
             "| --- | ---: | ---: | ---: | ---: | ---: |"]
    for row in rows:
        lines.append(f"| {row['arm']} | {row['top1']:.2f} | {row['bops'] / 1e9:.4f} | {row['ops'] / 1e6:.3f} "
                     f"| {row['params'] / 1e6:.3f} | {row['run_id']} |")
    (args.out / "summary.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
