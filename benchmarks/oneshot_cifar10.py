"""One-shot search against multi-trial random search and width-fitted baselines on real CIFAR-10 at 32 px.

    python benchmarks/oneshot_cifar10.py --data imagefolder:DIR [--budget 0.025GBOPs]
        [--space search_spaces/oneshot-cifar10-cpu.yaml] [--train-limit 10000] [--holdout 2000]
        [--supernet-epochs 6] [--epochs 4] [--trials 150] [--proxy-candidates 8] [--out results/oneshot-cifar10]

Arms, all finally trained stand-alone under one protocol (data, train limit, recipe, epochs, seed):
the one-shot winner (the best score of a supernet over the space); the winner of multi-trial random
search over the same space given the same compute as the one-shot arm (supernet + scoring + the
winner's retrain); bnext_tiny, reactnet_a and xnor_resnet18 width-fitted to the budget. Stages, each
kept in OUT/oneshot.db and OUT/stages.json as it finishes, so a rerun of the same command continues
where the last stopped: supernet, search (scoring), retrain (the winner and --proxy-candidates spread
over the budget range: the proxy's Kendall tau and Spearman rho), random, baselines, then the table
OUT/table.md (+ .json). Compute is process CPU-seconds (both threads) and wall seconds per stage.
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
import time
from dataclasses import replace
from pathlib import Path
from typing import Any, Callable

import optuna
from rich.console import Console

from bnextbench.models.candidate import Candidate
from bnextbench.profiling import profile_candidate, profile_model
from bnextbench.search import parse_budgets
from bnextbench.search.baselines import run_baselines
from bnextbench.search.oneshot import (OneShotConfig, configure_oneshot, proxy_check, record_fidelity, retrain,
                                       scored)
from bnextbench.search.study import Search, SearchConfig
from bnextbench.search.summary import load_summary
from bnextbench.store import Store
from bnextbench.allocator import keep_freed_memory

ROOT = Path(__file__).resolve().parents[1]
BASELINES = ("bnext_tiny", "reactnet_a", "xnor_resnet18")
CONSOLE = Console(stderr=True, highlight=False)


class Stages:
    """OUT/stages.json: each finished stage's result and compute, written as soon as it finishes."""

    def __init__(self, path: Path):
        self.path = path
        self.done: dict[str, Any] = json.loads(path.read_text()) if path.is_file() else {}

    def run(self, name: str, work: Callable[[], Any]) -> Any:
        if name in self.done:
            CONSOLE.print(f"stage {name}: done before, kept")
            return self.done[name]["result"]
        CONSOLE.print(f"stage {name}: running")
        wall, cpu = time.perf_counter(), time.process_time()
        result = work()
        self.done[name] = {"result": result, "wall_s": time.perf_counter() - wall, "cpu_s": time.process_time() - cpu}
        self.path.write_text(json.dumps(self.done, indent=1) + "\n")
        CONSOLE.print(f"stage {name}: {self.done[name]['wall_s']:.0f} s wall, {self.done[name]['cpu_s']:.0f} CPU-s")
        return result

    def cpu(self, *names: str) -> float:
        return sum(self.done[name]["cpu_s"] for name in names)


def counts(candidate: Candidate, resolution: int, num_classes: int) -> dict[str, float]:
    c = profile_candidate(candidate, resolution, num_classes)
    return {"bops": c.bops, "ops": c.ops, "params": c.params}


def main() -> None:
    keep_freed_memory()  # as the command line does for every training run
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", required=True, help="CIFAR-10 as imagefolder:DIR or cifar10:DIR")
    parser.add_argument("--budget", default="0.025GBOPs")
    parser.add_argument("--space", type=Path, default=ROOT / "search_spaces" / "oneshot-cifar10-cpu.yaml")
    parser.add_argument("--resolution", type=int, default=32)
    parser.add_argument("--train-limit", type=int, default=10000, help="class-balanced training images")
    parser.add_argument("--holdout", type=int, default=2000, help="of those, held out from the supernet for scoring")
    parser.add_argument("--supernet-epochs", type=int, default=6)
    parser.add_argument("--epochs", type=int, default=4, help="of every stand-alone training (the protocol)")
    parser.add_argument("--trials", type=int, default=150, help="one-shot trials (infeasible ones included)")
    parser.add_argument("--proxy-candidates", type=int, default=8)
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--lr", type=float, default=2e-3)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--device")
    parser.add_argument("--out", type=Path, default=ROOT / "results" / "oneshot-cifar10")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    command = "python benchmarks/oneshot_cifar10.py " + shlex.join(sys.argv[1:])
    store = Store(args.out / "oneshot.db")
    stages = Stages(args.out / "stages.json")
    budgets = parse_budgets([args.budget])

    def search_config(study: str, sampler: str, trials: int) -> SearchConfig:
        return SearchConfig(budgets=budgets, space=args.space, data=args.data, trials=trials, epochs=args.epochs,
                            batch_size=args.batch_size, train_limit=args.train_limit, resolution=args.resolution,
                            sampler=sampler, pruner="none", study=study, seed=args.seed, lr=args.lr,
                            device=args.device)

    oneshot = OneShotConfig(supernet_epochs=args.supernet_epochs, holdout=args.holdout, retrain=0)
    search = Search.configure(search_config("oneshot", "tpe", args.trials))
    data = search.data

    def train_supernet() -> int:
        return configure_oneshot(search.record, len(data.train_labels), oneshot, store, args.device).oneshot[
            "supernet_run"]

    supernet_run = stages.run("supernet", train_supernet)
    search.record = configure_oneshot(search.record, len(data.train_labels), replace(oneshot, supernet=supernet_run),
                                      store, args.device)

    def score() -> dict[str, Any]:
        summary = search.run(store)
        study = optuna.load_study(study_name=search.name, storage=store.url)
        seconds = [t.user_attrs["score_seconds"] for t in study.trials if "score_seconds" in t.user_attrs]
        return {"scored": len(seconds), "per_minute": 60 * len(seconds) / sum(seconds),
                "trials": len(summary["trials"])}

    scoring = stages.run("search", score)
    trials = load_summary(search.name, store.url)["trials"]
    winner = scored(trials)[0]

    def retrain_winner() -> dict[str, Any]:
        retrained = retrain(search.record, [winner], store, args.device)
        record_fidelity(search.record, store.url, retrained)  # the winner counts among the proxy's pairs
        return retrained[0]

    oneshot_final = stages.run("retrain-winner", retrain_winner)

    def check_proxy() -> dict[str, Any]:
        return proxy_check(search.record, store.url, store, args.proxy_candidates, args.device)

    fidelity = stages.run("proxy-check", check_proxy)
    compute = stages.cpu("supernet", "search", "retrain-winner")

    def random_arm() -> dict[str, Any]:
        """Random trials, trained under the protocol, until the one-shot arm's CPU-seconds are spent (the
        CPU-seconds of every finished trial kept in OUT/random-spent.json, so an interrupted arm continues)."""
        random_search = Search.configure(search_config("random", "random", 1))
        ledger = args.out / "random-spent.json"
        spent_by_trial = json.loads(ledger.read_text()) if ledger.is_file() else []
        while sum(spent_by_trial) < compute:
            random_search.record = replace(random_search.record, settings=replace(random_search.record.settings,
                                                                                  trials=len(spent_by_trial) + 1))
            started = time.process_time()
            random_search.run(store, progress=False)
            spent_by_trial.append(time.process_time() - started)
            ledger.write_text(json.dumps(spent_by_trial) + "\n")
            CONSOLE.print(f"random trial {len(spent_by_trial)}: {sum(spent_by_trial):.0f} of {compute:.0f} CPU-s")
        target, spent = len(spent_by_trial), sum(spent_by_trial)
        best = scored(load_summary("random", store.url)["trials"])[0]
        return {"trials": target, "cpu_s": spent, "trial": best["number"], "candidate": best["candidate"],
                "arch": best["arch"], "top1": best["top1"], "run_id": best["run_id"]}

    random_result = stages.run("random", random_arm)

    def baselines() -> list[dict[str, Any]]:
        return run_baselines(store, budgets, search.record.protocol, data.num_classes, BASELINES,
                             device=args.device)

    baseline_records = stages.run("baselines", baselines)
    budget = budgets[0]
    rows = [{"arm": "one-shot winner", "candidate": winner["candidate"], "top1": oneshot_final["top1"],
             "score": winner["top1"], **counts(Candidate.from_dict(winner["arch"]), args.resolution, data.num_classes),
             "cpu_s": compute, "run_id": oneshot_final["run_id"]},
            {"arm": "random search winner", "candidate": random_result["candidate"], "top1": random_result["top1"],
             **counts(Candidate.from_dict(random_result["arch"]), args.resolution, data.num_classes),
             "cpu_s": random_result["cpu_s"], "run_id": random_result["run_id"]}]
    for record in baseline_records:
        c = profile_model(record["model"], args.resolution, data.num_classes, width_mult=record["width_mult"])
        run = store.get_run(record["run_id"])
        rows.append({"arm": f"{record['model']} x{record['width_mult']:g}", "candidate": run.candidate,
                     "top1": record["top1"], "bops": c.bops, "ops": c.ops, "params": c.params,
                     "cpu_s": stages.done["baselines"]["cpu_s"] / len(baseline_records), "run_id": record["run_id"]})
    for row in rows:
        row["budget_share"] = row[budget.metric] / budget.limit
    report = {"command": command, "budget": args.budget, "protocol": search.record.protocol.to_dict(),
              "supernet_run": supernet_run, "scoring": scoring, "fidelity": fidelity, "arms": rows,
              "stages": {name: {k: v for k, v in stage.items() if k != "result"} for name, stage in stages.done.items()}}
    (args.out / "table.json").write_text(json.dumps(report, indent=1) + "\n")
    lines = [f"# One-shot search on {data.spec} at {args.resolution} px under {args.budget}", "", f"`{command}`", "",
             "| arm | top-1 (%) | BOPs (M) | share of budget | OPs (M) | params (M) | compute (CPU-s) | run |",
             "|---|---|---|---|---|---|---|---|"]
    for row in rows:
        lines.append(f"| {row['arm']} | {row['top1']:.2f} | {row['bops'] / 1e6:.2f} | {100 * row['budget_share']:.0f} % "
                     f"| {row['ops'] / 1e6:.3f} | {row['params'] / 1e6:.3f} | {row['cpu_s']:.0f} | {row['run_id']} |")
    tau, rho = fidelity["kendall_tau"], fidelity["spearman_rho"]
    lines += ["", f"One-shot proxy: Kendall tau {tau:.2f}, Spearman rho {rho:.2f} over {fidelity['count']} retrained "
              f"candidates; {scoring['per_minute']:.1f} candidates scored per minute (recalibration included), "
              f"{scoring['scored']} scored. Random arm: {random_result['trials']} trials in "
              f"{random_result['cpu_s']:.0f} CPU-s."]
    (args.out / "table.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
