"""BNext's multi-teacher knowledge distillation (spec section 3.2).

Per teacher t and sample n: L_nt = -sum_c softmax(z_t)_nc log softmax(z_s)_nc (soft-label
cross-entropy, temperature 1, no ground-truth term). Teacher weights alpha_n = softmax over teachers
of the (detached) L_n, so the teacher the student matches worse weighs more.
``sample``: L = mean_n 1/2 sum_t alpha_nt L_nt (the paper's intent); ``batch``: alpha averaged over
the batch first, L = 1/2 sum_t mean_n(alpha_nt) mean_n(L_nt) (what the reference code computes).
Teachers: an assistant per phase (curriculum) plus a fixed main teacher.
"""

from __future__ import annotations

from pathlib import Path

import timm
import torch
import torch.nn.functional as F
from torch import nn

from ..errors import BnextbenchError
from ..io import read_checkpoint

TEACHER_FORMAT = "bnextbench-teacher/1"


def kd_loss(student: torch.Tensor, teachers: list[torch.Tensor], weighting: str = "sample") -> torch.Tensor:
    log_student = F.log_softmax(student, dim=1)
    per_sample = torch.stack([-(F.softmax(t, dim=1) * log_student).sum(dim=1) for t in teachers], dim=1)  # N x T
    alpha = F.softmax(per_sample.detach(), dim=1)
    if weighting == "batch":
        return 0.5 * (alpha.mean(dim=0) * per_sample.mean(dim=0)).sum()
    return 0.5 * (alpha * per_sample).sum(dim=1).mean()


def load_teacher(path: str | Path, num_classes: int, device: torch.device) -> nn.Module:
    """A frozen full-precision timm teacher from a checkpoint written by ``bnextbench teacher train``."""
    path = Path(path)
    payload = read_checkpoint(path, "teacher checkpoint")
    if not isinstance(payload, dict) or payload.get("format") != TEACHER_FORMAT:
        raise BnextbenchError(f"{path} is not a teacher written by `bnextbench teacher train`")
    if payload["num_classes"] != num_classes:
        raise BnextbenchError(
            f"teacher {path.name} predicts {payload['num_classes']} classes but the data has {num_classes}"
        )
    teacher = timm.create_model(payload["model"], num_classes=num_classes, **payload.get("model_kwargs", {}))
    teacher.load_state_dict(payload["state_dict"])
    teacher.requires_grad_(False)
    return teacher.to(device).eval()


class TeacherCurriculum:
    """The main teacher for all epochs plus assistant k during phase k of E / len(assistants) epochs."""

    def __init__(self, main: nn.Module, assistants: list[nn.Module], epochs: int):
        self.main, self.assistants, self.epochs = main, assistants, epochs

    def teachers_at(self, epoch: int) -> list[nn.Module]:
        if not self.assistants:
            return [self.main]
        phase = min(len(self.assistants) - 1, epoch * len(self.assistants) // self.epochs)
        return [self.assistants[phase], self.main]

    @torch.no_grad()
    def logits(self, epoch: int, images: torch.Tensor) -> list[torch.Tensor]:
        return [teacher(images) for teacher in self.teachers_at(epoch)]
