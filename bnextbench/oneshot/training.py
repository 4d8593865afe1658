"""Supernet training by the sandwich rule, inside the training engine (``bnextbench.train.loop``).

Per step (BigNAS / Once-for-All): the largest subnet learns from the labels, or from the run's external
teachers when it has them; the smallest subnet and ``random_subnets`` random ones learn from the largest
subnet's logits of the same batch (in-place distillation, with the engine's KD loss). Their gradients
accumulate in the shared weights before the engine clips them and takes one optimizer step, so the
recipe (AdamW groups, cosine schedule, progressive binarization tau, clipping) is that of any run.
The random subnets of step ``i`` of epoch ``e`` are drawn from (seed, e, i) alone, so a resumed run
draws what the uninterrupted one would have.
"""

from __future__ import annotations

import hashlib
import random
from typing import Any, Callable

import torch

from ..models import BNextSpec
from ..search.space import space_definition
from ..train.distill import kd_loss
from .supernet import BNextSupernet


def supernet_name(space: Any) -> str:
    """The name a supernet's run goes by: ``supernet-<digest of its space's definition>``."""
    return f"supernet-{hashlib.sha256(space_definition(space).encode()).hexdigest()[:16]}"


class SandwichStep:
    """A training step of :class:`~bnextbench.oneshot.supernet.BNextSupernet` (the engine's ``step`` hook)."""

    def __init__(self, supernet: BNextSupernet, random_subnets: int, seed: int, kd_weighting: str = "sample"):
        space, classes, stride = supernet.space, supernet.num_classes, supernet.stem_stride
        self.space, self.classes, self.stride = space, classes, stride
        self.largest = supernet.largest
        self.smallest = space.spec_of(space.smallest_params(), classes, stride)
        self.random_subnets, self.seed, self.kd_weighting = random_subnets, seed, kd_weighting

    def subnets(self, epoch: int, index: int) -> list[BNextSpec]:
        """The subnets step ``index`` of ``epoch`` trains besides the largest: the smallest, then the random ones."""
        rng = random.Random(f"{self.seed}:{epoch}:{index}")
        drawn = [self.space.spec_of({name: rng.choice(options) for name, options in self.space.choices.items()},
                                    self.classes, self.stride) for _ in range(self.random_subnets)]
        return [self.smallest, *drawn]

    def __call__(self, supernet: BNextSupernet, images: torch.Tensor, loss_of: Callable[[torch.Tensor], torch.Tensor],
                 position: tuple[int, int]) -> tuple[float, torch.Tensor]:
        """Backward of every subnet's loss; returns (sum of the losses, the largest subnet's logits)."""
        logits = supernet(images, self.largest)
        loss = loss_of(logits)
        loss.backward()
        total = loss.item()
        target = [logits.detach()]
        for spec in self.subnets(*position):
            subnet_loss = kd_loss(supernet(images, spec), target, self.kd_weighting)
            subnet_loss.backward()
            total += subnet_loss.item()
        return total, logits
