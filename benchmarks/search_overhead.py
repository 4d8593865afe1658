"""Per-trial overhead of the search outside training: sampling, counting, database writes.

    python benchmarks/search_overhead.py [--trials 12] [--budget 20MBOPs]

Runs a real search on the digits data (tiny fidelity, so training is short) into a temporary
database and, per trial, subtracts the time spent inside training from Optuna's start-to-finish
time of the trial. Infeasible trials never train, so their whole time is overhead. Target < 0.5 s.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
from pathlib import Path

import optuna

from bnextbench.search import parse_budgets
from bnextbench.search.study import Search, SearchConfig
from bnextbench.store import Store

SPACE = Path(__file__).resolve().parents[1] / "search_spaces" / "bnext.yaml"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=12)
    parser.add_argument("--budget", default="20MBOPs")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        db = Path(folder) / "overhead.db"
        config = SearchConfig(budgets=parse_budgets([args.budget]), space=SPACE, trials=args.trials, epochs=1,
                              train_limit=40, batch_size=20, sampler="tpe", pruner="none", study="overhead")
        Search.configure(config).run(Store(db), progress=False)
        study = optuna.load_study(study_name="overhead", storage=f"sqlite:///{db}")
        overheads, kinds = [], []
        for trial in study.get_trials():
            total = (trial.datetime_complete - trial.datetime_start).total_seconds()
            overheads.append(total - trial.user_attrs.get("train_seconds", 0.0))
            kinds.append("infeasible" if trial.user_attrs.get("infeasible") else "trained")
    print(f"{len(overheads)} trials ({kinds.count('trained')} trained, {kinds.count('infeasible')} infeasible), "
          f"budget {args.budget}, SQLite results database with Optuna's RDB storage")
    print(f"overhead per trial outside training: median {statistics.median(overheads):.3f} s, "
          f"max {max(overheads):.3f} s (target < 0.5 s)")


if __name__ == "__main__":
    main()
