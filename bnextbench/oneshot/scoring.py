"""Scoring a candidate with the weights it inherits from a trained supernet.

score = top-1 (%) on the supernet run's held-out training images of the extracted subnet, after its
BatchNorm statistics are re-estimated on ``calibration_images`` of the supernet's own training images
(the shared running statistics mix every subnet the supernet trained). The test split is never read:
it is for the final, stand-alone models. Everything is drawn from the supernet run's protocol, so a
score depends on the candidate and the supernet only.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from ..data import ImageData, hold_out, load_data
from ..errors import BnextbenchError
from ..io import read_checkpoint
from ..models import BNextSpec
from ..store import Run, Store
from ..train.loop import TRAIN_CHECKPOINT_FORMAT, build_model, evaluate, pick_device, recalibrate_batch_norm
from .supernet import BNextSupernet

CALIBRATION_IMAGES = 512
SCORE_BATCH = 256


@dataclass
class SubnetScore:
    top1: float
    loss: float
    seconds: float  # extraction, recalibration and evaluation


class SupernetScorer:
    """A trained supernet with the data it was trained on, ready to score candidates."""

    def __init__(self, supernet: BNextSupernet, data: ImageData, run_id: int, seed: int, device: str | None = None,
                 calibration_images: int = CALIBRATION_IMAGES):
        if not data.num_classes == supernet.num_classes:
            raise BnextbenchError(f"the supernet predicts {supernet.num_classes} classes, {data.spec} has "
                                  f"{data.num_classes}")
        self.device = pick_device(device)
        self.supernet, self.data, self.run_id, self.seed = supernet.to(self.device).eval(), data, run_id, seed
        self.calibration_images = calibration_images

    @classmethod
    def from_run(cls, store: Store, run_id: int, device: str | None = None,
                 calibration_images: int = CALIBRATION_IMAGES) -> SupernetScorer:
        """The supernet of completed supernet run ``run_id``, from its last checkpoint."""
        run = store.get_run(run_id)
        if run.kind != "supernet":
            raise BnextbenchError(f"run {run_id} trained {run.candidate}, not a supernet")
        if run.status != "completed" or not run.checkpoint:
            raise BnextbenchError(f"supernet run {run_id} is {run.status}; finish it with `bnextbench supernet "
                                  "train --resume --out DIR` first")
        payload = read_checkpoint(Path(run.checkpoint), "supernet checkpoint")
        if not isinstance(payload, dict) or payload.get("format") != TRAIN_CHECKPOINT_FORMAT:
            raise BnextbenchError(f"{run.checkpoint} is not a bnextbench training checkpoint")
        supernet = build_model(payload["model_description"])
        supernet.load_state_dict(payload["model"])
        return cls(supernet, supernet_data(run), run_id, run.seed, device, calibration_images)

    @property
    def space_definition(self) -> dict[str, Any]:
        return self.supernet.space.definition

    @torch.no_grad()
    def score(self, spec: BNextSpec) -> SubnetScore:
        started = time.perf_counter()
        model = self.supernet.extract(spec).to(self.device)
        recalibrate_batch_norm(model, self.data, self.device, SCORE_BATCH, self.seed, self.calibration_images)
        result = evaluate(model, self.data, self.device, SCORE_BATCH)
        return SubnetScore(result["top1"], result["loss"], time.perf_counter() - started)


def supernet_data(run: Run) -> ImageData:
    """The data a supernet run trained on, with its held-out images as the evaluation split."""
    protocol = run.protocol
    data = load_data(protocol.data, protocol.resolution, protocol.train_limit, protocol.seed)
    return hold_out(data, protocol.holdout, protocol.seed)
