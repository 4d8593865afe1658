"""Prior BNNs width-scaled to a budget and trained under a study's protocol (same data, recipe, fidelity).

A protocol (:class:`bnextbench.train.protocol.Protocol`) is what a search trains every candidate
under; baselines trained under it rank beside the study's candidates.

The width multiplier is the largest multiple of 1/64 whose analytic count fits every budget at the
training resolution; counts only grow with width (channels are rounded up to multiples of 8 by timm's
``make_divisible``), so a bisection over the multiples finds it.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any

from ..data import load_data
from ..errors import BnextbenchError
from ..profiling import profile_model
from ..models.candidate import candidate_name
from ..store import Store
from ..train import Recipe, TrainConfig, train
from ..train.protocol import Protocol
from .budget import Budget
from .record import read_study_record

BASELINE_MODELS = ("xnor_resnet18", "birealnet18", "reactnet_a")  # the prior BNNs trained by default
WIDTH_FITTED_MODELS = (*BASELINE_MODELS, "bnext_tiny")  # what --model accepts: BNext-T is a hand-scaled arm too
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


def train_baseline(model: str, width_mult: float, protocol: Protocol, store: Store, out: Path,
                   device: str | None = None, progress: bool = True) -> dict[str, Any]:
    """Train ``model`` at ``width_mult`` under ``protocol`` and return the run's record."""
    config = TrainConfig(
        model=model, data=protocol.data, recipe=protocol.recipe, width_mult=width_mult,
        train_limit=protocol.train_limit, resolution=protocol.resolution, out=out, device=device,
    )
    record = train(config, store, progress=progress)
    return {**record, "model": model, "width_mult": width_mult}


def flag_protocol(data: str, epochs: int, batch_size: int, lr: float, seed: int, train_limit: int | None = None,
                  resolution: int | None = None) -> tuple[Protocol, int]:
    """The protocol a search with these flags trains under, and the data's number of classes."""
    images = load_data(data, resolution, train_limit, seed)
    recipe = Recipe(epochs=epochs, batch_size=batch_size, lr=lr, seed=seed)
    return Protocol(images.spec, images.resolution, train_limit, recipe), images.num_classes


def baseline_protocol(store: Store, study: str | None, data: str | None = None, epochs: int | None = None,
                      batch_size: int | None = None, lr: float | None = None, seed: int = 0,
                      train_limit: int | None = None, resolution: int | None = None,
                      ) -> tuple[Protocol, int, tuple[Budget, ...]]:
    """The protocol baselines train under, its data's classes and the study's budgets (none without a study):
    a study's own protocol, or one made of these settings (a search's defaults where not given)."""
    from .study import SearchConfig  # the search's defaults

    if study is not None:
        given = [flag for flag, value in (("--data", data), ("--epochs", epochs), ("--batch-size", batch_size),
                                          ("--lr", lr), ("--train-limit", train_limit),
                                          ("--resolution", resolution)) if value is not None]
        if given:
            raise BnextbenchError(f"--study fixes the protocol; drop {', '.join(given)}")
        record = read_study_record(study, store.url)
        protocol = record.protocol
        images = load_data(protocol.data, protocol.resolution, protocol.train_limit, protocol.seed)
        return protocol, images.num_classes, record.budgets

    def given(value, default):  # None means "not given"; 0 is a value, and the recipe refuses it
        return default if value is None else value

    protocol, num_classes = flag_protocol(given(data, "digits"), given(epochs, SearchConfig.epochs),
                                          given(batch_size, SearchConfig.batch_size), given(lr, SearchConfig.lr),
                                          seed, train_limit, resolution)
    return protocol, num_classes, ()


def check_baseline_models(models: Iterable[str]) -> None:
    unknown = [model for model in models if model not in WIDTH_FITTED_MODELS]
    if unknown:
        raise BnextbenchError(f"unknown baseline {', '.join(unknown)}; choose from {', '.join(WIDTH_FITTED_MODELS)}")


def run_baselines(store: Store, budgets: list[Budget], protocol: Protocol, num_classes: int,
                  models: Iterable[str] = BASELINE_MODELS, seeds: Iterable[int] | None = None,
                  out_root: Path = Path("results") / "checkpoints" / "baselines", device: str | None = None,
                  progress: bool = True) -> list[dict[str, Any]]:
    """Train each baseline at the width that fits ``budgets`` under ``protocol`` once per seed.

    A baseline already trained under the same protocol and seed is reused, not trained again.
    """
    check_baseline_models(models)
    widths = {model: width_for_budget(model, budgets, protocol.resolution, num_classes) for model in models}
    records = []
    for seed in seeds if seeds is not None else [protocol.seed]:
        seeded = protocol.with_seed(seed)
        for model, width in widths.items():
            previous = store.find_completed_run(candidate_name(model, width_mult=width), seeded)
            if previous is not None:
                records.append({"run_id": previous.id, "model": model, "width_mult": width, "seed": seed,
                                "top1": previous.top1, "reused": True})
                continue
            record = train_baseline(model, width, seeded, store, out_root / f"{model}-{seeded.key}", device, progress)
            records.append({"run_id": record["run_id"], "model": model, "width_mult": width,
                            "seed": seed, "top1": record["top1"], "reused": False})
    return records
