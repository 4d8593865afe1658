"""How far to trust a leaderboard: the winner of a study trained again with other seeds.

A search ranks candidates by one training run each, so two candidates a point apart may differ by the
seed alone. Retraining the best complete trial's candidate under the study's protocol with other seeds
(initialisation, data order and augmentation change; everything else stays) gives its spread over seeds,
a noise figure a reader can hold a difference between trials against.
"""

from __future__ import annotations

import statistics
from typing import Any

from ..limits import NOISE_SEEDS
from ..models.candidate import Candidate
from ..store import Store
from .objective import CHECKPOINT_ROOT
from .record import StudyRecord
from .retrain import train_or_reuse


def best_complete_trial(trials: list[dict[str, Any]]) -> dict[str, Any] | None:
    """The complete trial with the highest top-1 (the lowest number among equals), or None."""
    complete = [t for t in trials if t["state"] == "complete" and t["top1"] is not None]
    return max(complete, key=lambda t: (t["top1"], -t["number"])) if complete else None


def winner_spread(record: StudyRecord, trials: list[dict[str, Any]], store: Store, extra_seeds: int,
                  device: str | None = None, progress: bool = True) -> dict[str, Any] | None:
    """The best complete trial's top-1 over its own seed and ``extra_seeds`` more (the next seeds after the
    study's), each trained once under the study's protocol and reused when already trained; None without a
    complete trial or without extra seeds."""
    best = best_complete_trial(trials)
    if best is None or NOISE_SEEDS.check(extra_seeds) == 0:
        return None
    candidate = Candidate.from_dict(best["arch"])
    seeds = [record.protocol.seed + offset for offset in range(extra_seeds + 1)]
    top1, run_ids = [best["top1"]], [best["run_id"]]
    for seed in seeds[1:]:
        result = train_or_reuse(candidate, record.protocol.with_seed(seed), store,
                                CHECKPOINT_ROOT / record.name / f"trial-{best['number']}-seed{seed}", device,
                                progress=progress)
        top1.append(result.top1)
        run_ids.append(result.run_id)
    return {"trial": best["number"], "candidate": best["candidate"], "seeds": seeds, "top1": top1,
            "run_ids": run_ids, "mean": statistics.fmean(top1), "std": statistics.stdev(top1),
            "min": min(top1), "max": max(top1)}


def spread_text(spread: dict[str, Any]) -> str:
    """One line for a reader: the winner's top-1 over seeds."""
    seeds = ", ".join(str(seed) for seed in spread["seeds"])
    values = ", ".join(f"{value:.2f}" for value in spread["top1"])
    return (f"noise: the winner (trial {spread['trial']}, {spread['candidate']}) over seeds {seeds}: top-1 "
            f"{values} %, mean {spread['mean']:.2f} ± {spread['std']:.2f} % (sample std); differences between "
            "trials smaller than this spread can be the seed alone")
