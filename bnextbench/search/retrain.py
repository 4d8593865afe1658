"""Training one candidate stand-alone under a protocol, or reusing the run that already did."""

from __future__ import annotations

from pathlib import Path
from typing import Callable, NamedTuple

from ..models.candidate import Candidate
from ..store import Store
from ..train import TrainConfig, train
from ..train.loop import LAST_CHECKPOINT
from ..train.protocol import Protocol


class StandAlone(NamedTuple):
    top1: float
    run_id: int
    reused: bool  # an earlier completed run of the candidate under the same protocol


def train_or_reuse(candidate: Candidate, protocol: Protocol, store: Store, out: Path, device: str | None = None,
                   study: str | None = None, trial_number: int | None = None, progress: bool = True,
                   on_epoch: Callable[[int, dict[str, float]], None] | None = None,
                   resume: bool = False) -> StandAlone:
    """Top-1 of ``candidate`` trained from scratch under ``protocol`` (checkpoints in ``out``), linked to
    ``study`` and ``trial_number`` when given; a completed run under the same protocol is reused, and with
    ``resume`` an interrupted one continues from its checkpoint in ``out``."""
    previous = store.find_completed_run(candidate.name, protocol)
    if previous is not None:
        return StandAlone(previous.top1, previous.id, True)
    config = TrainConfig(model=candidate.model, data=protocol.data, recipe=protocol.recipe, spec=candidate.spec,
                         width_mult=candidate.width_mult, train_limit=protocol.train_limit,
                         resolution=protocol.resolution, out=out, device=device, study=study,
                         trial_number=trial_number, resume=resume and (out / LAST_CHECKPOINT).is_file())
    result = train(config, store, progress=progress, on_epoch=on_epoch)
    return StandAlone(result["top1"], result["run_id"], False)
