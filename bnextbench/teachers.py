"""Full-precision teachers: train a timm model on the student's data and keep it for distillation."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from .errors import BnextbenchError
from .io import atomic_torch_save, check_writable
from .store import Store
from .train.distill import TEACHER_FORMAT
from .train.loop import TrainConfig, train


def train_teacher(config: TrainConfig, out: Path, store: Store | str | Path | None = None,
                  progress: bool = True) -> dict[str, Any]:
    """Train timm model ``config.model`` with cross-entropy and write it as a teacher checkpoint to ``out``."""
    import timm

    if not timm.is_model(config.model):
        raise BnextbenchError(f"unknown timm model {config.model!r} for a teacher (see timm.list_models())")
    check_writable(out, "teacher", folder=False)
    record = train(config, store, progress)
    state = torch.load(record["checkpoint"], map_location="cpu", weights_only=True)
    description = state["model_description"]
    atomic_torch_save(
        {
            "format": TEACHER_FORMAT,
            "model": description["model"],
            "model_kwargs": {k: v for k, v in description["model_kwargs"].items() if k != "num_classes"},
            "num_classes": description["model_kwargs"]["num_classes"],
            "state_dict": state["model"],
            "data": state["data"],
            "resolution": state["resolution"],
            "top1": record["top1"],
            "run_id": record["run_id"],
        },
        out,
    )
    return {**record, "teacher": str(out)}
