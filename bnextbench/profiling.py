"""Count registered models and architecture specs: the glue between the registry and the counter."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import torch

from .complexity import Complexity, check_resolution, count_model, count_sites
from .errors import BnextbenchError
from .io import read_text
from .models import DEFAULT_RESOLUTION, BNextSpec, bnext_extra_params, bnext_layer_sites, create_model
from .models.candidate import Candidate

SMALL_INPUT_MAX_RESOLUTION = 64


def uses_small_input(resolution: int) -> bool:
    """Inputs up to 64 pixels (CIFAR, digits) get the stride-1 stem; larger ones the ImageNet stem."""
    return resolution <= SMALL_INPUT_MAX_RESOLUTION


def profile_model(
    name: str,
    resolution: int = DEFAULT_RESOLUTION,
    num_classes: int = 1000,
    ops_rule: str = "bits",
    small_input: bool | None = None,
    per_layer: bool = False,
    **model_kwargs,
) -> Complexity:
    """Count a registered model; it is built on the meta device, so no weights are allocated."""
    check_resolution(resolution)
    if isinstance(num_classes, bool) or not isinstance(num_classes, int) or num_classes < 1:
        raise BnextbenchError(f"num_classes must be a positive integer, got {num_classes!r}")
    small = uses_small_input(resolution) if small_input is None else small_input
    with torch.device("meta"):
        model = create_model(name, num_classes=num_classes, small_input=small, **model_kwargs)
    return count_model(model, resolution, ops_rule, name=name, per_layer=per_layer)


def profile_spec(spec: BNextSpec, resolution: int, ops_rule: str = "bits", per_layer: bool = False) -> Complexity:
    """Count a BNext spec analytically, without building it."""
    check_resolution(resolution)
    return count_sites(
        bnext_layer_sites(spec, resolution),
        bnext_extra_params(spec),
        model=Candidate.of_spec(spec).name,
        resolution=resolution,
        num_classes=spec.num_classes,
        ops_rule=ops_rule,
        per_layer=per_layer,
    )


def profile_candidate(candidate: Candidate, resolution: int, num_classes: int = 1000, ops_rule: str = "bits",
                      per_layer: bool = False) -> Complexity:
    """Count a candidate: a spec analytically (its own classes), a registered model at its width multiplier."""
    if candidate.spec is not None:
        return profile_spec(candidate.spec, resolution, ops_rule, per_layer)
    report = profile_model(candidate.model, resolution, num_classes, ops_rule, per_layer=per_layer,
                           width_mult=candidate.width_mult)
    return dataclasses.replace(report, model=candidate.name)


def load_candidate(path: str | Path) -> Candidate:
    """A candidate from a JSON file: the ``arch`` object of a search trial, or a bare BNext spec."""
    path = Path(path)
    text = read_text(path, "spec file")
    try:
        return Candidate.from_json(text)
    except BnextbenchError as exc:
        raise BnextbenchError(f"{path}: {exc}") from None
