"""Prior BNNs width-scaled to a budget and trained under a study's protocol (same data, recipe, fidelity).

A protocol is what a search trains every candidate under: ``{"data", "resolution", "train_limit",
"recipe"}`` (see :class:`bnextbench.search.study.Search`); baselines trained under it rank beside the
study's candidates.

The width multiplier is the largest multiple of 1/64 whose analytic count fits every budget at the
training resolution; counts only grow with width (channels are rounded up to multiples of 8 by timm's
``make_divisible``), so a bisection over the multiples finds it.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from ..data import load_data
from ..errors import BnextbenchError
from ..profiling import profile_model
from ..store import Run, Store
from ..train import Recipe, TrainConfig, train
from .budget import Budget
from .study import protocol_of

BASELINE_MODELS = ("xnor_resnet18", "birealnet18", "reactnet_a")
WIDTH_STEP = 64  # width multipliers are multiples of 1/WIDTH_STEP
MAX_WIDTH_MULT = 4.0


def fits(model: str, width_mult: float, budgets: list[Budget], resolution: int, num_classes: int) -> bool:
    complexity = profile_model(model, resolution, num_classes, width_mult=width_mult)
    return all(budget.allows(complexity) for budget in budgets)


def width_for_budget(model: str, budgets: list[Budget], resolution: int, num_classes: int) -> float:
    """The largest width multiplier (a multiple of 1/64, at most 4) of ``model`` within every budget."""
    low, high = 0, int(MAX_WIDTH_MULT * WIDTH_STEP)  # invariant: low fits (0 = none yet), high + 1 does not
    if fits(model, high / WIDTH_STEP, budgets, resolution, num_classes):
        return high / WIDTH_STEP
    while high - low > 1:
        middle = (low + high) // 2
        if fits(model, middle / WIDTH_STEP, budgets, resolution, num_classes):
            low = middle
        else:
            high = middle
    if low == 0:
        limits = ", ".join(str(b) for b in budgets)
        raise BnextbenchError(f"{model} does not fit {limits} at {resolution} px even at width 1/{WIDTH_STEP}")
    return low / WIDTH_STEP


def train_baseline(model: str, width_mult: float, budgets: list[Budget], protocol: dict[str, Any], store: Store,
                   out: Path, device: str | None = None, progress: bool = True) -> dict[str, Any]:
    """Train ``model`` at ``width_mult`` (:func:`width_for_budget` of ``budgets``) under ``protocol`` (a search's
    ``protocol``: data spec, resolution, train limit and recipe) and return the run's record."""
    config = TrainConfig(
        model=model, data=protocol["data"], recipe=Recipe(**protocol["recipe"]), width_mult=width_mult,
        train_limit=protocol["train_limit"], resolution=protocol["resolution"], out=out, device=device,
        extra={"protocol": protocol, "baseline_budgets": [b.text for b in budgets]},
    )
    record = train(config, store, progress=progress)
    return {**record, "model": model, "width_mult": width_mult}


def flag_protocol(data: str, epochs: int, batch_size: int, lr: float, seed: int, train_limit: int | None = None,
                  resolution: int | None = None) -> tuple[dict[str, Any], int]:
    """The protocol a search with these flags trains under, and the data's number of classes."""
    images = load_data(data, resolution, train_limit, seed)
    recipe = Recipe(epochs=epochs, batch_size=batch_size, lr=lr, seed=seed)
    return protocol_of(images, train_limit, recipe), images.num_classes


def find_baseline_run(store: Store, model: str, width_mult: float, protocol: dict[str, Any]) -> Run | None:
    """A completed run of ``model`` at ``width_mult`` under exactly ``protocol`` (seed included)."""
    for run in store.runs():
        if (run.status == "completed" and run.model == model and run.recipe.get("width_mult") == width_mult
                and run.recipe.get("protocol") == protocol):
            return run
    return None


def run_baselines(store: Store, budgets: list[Budget], protocol: dict[str, Any], num_classes: int,
                  models: Iterable[str] = BASELINE_MODELS, seeds: Iterable[int] | None = None,
                  out_root: Path = Path("results") / "checkpoints" / "baselines", device: str | None = None,
                  progress: bool = True) -> list[dict[str, Any]]:
    """Train each baseline at the width that fits ``budgets`` under ``protocol`` once per seed.

    A baseline already trained under the same protocol and seed is reused, not trained again.
    """
    widths = {model: width_for_budget(model, budgets, protocol["resolution"], num_classes) for model in models}
    records = []
    for seed in seeds if seeds is not None else [protocol["recipe"]["seed"]]:
        seeded = {**protocol, "recipe": {**protocol["recipe"], "seed": seed}}
        tag = hashlib.sha256(json.dumps(seeded, sort_keys=True).encode()).hexdigest()[:10]
        for model, width in widths.items():
            previous = find_baseline_run(store, model, width, seeded)
            if previous is not None:
                records.append({"run_id": previous.id, "model": model, "width_mult": width, "seed": seed,
                                "top1": previous.top1, "reused": True})
                continue
            record = train_baseline(model, width, budgets, seeded, store, out_root / f"{model}-{tag}", device, progress)
            records.append({"run_id": record["run_id"], "model": model, "width_mult": width,
                            "seed": seed, "top1": record["top1"], "reused": False})
    return records
