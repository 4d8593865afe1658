"""The BNext recipe (spec section 3.3): AdamW with two weight-decay groups, timm's cosine schedule with
linear warm-up, gradient clipping, and progressive weight binarization (tau decayed per epoch)."""

from __future__ import annotations

import logging
import math
from dataclasses import asdict, dataclass, fields

import torch
from timm.scheduler import CosineLRScheduler
from torch import nn

from .. import limits
from ..choices import AUGMENTATIONS, PRECISIONS
from ..errors import BnextbenchError, brief
from ..nn import ProgressiveSign

SIGN_THRESHOLD = 1e-7
KD_WEIGHTINGS = ("sample", "batch")
# The recipe's own knobs (library arguments, not options): finite and non-negative.
WARMUP_EPOCHS = limits.Limit("warmup_epochs", 0, limits.EPOCHS.high, integer=True)
WARMUP_LR, MIN_LR = limits.Limit("warmup_lr", 0, math.inf), limits.Limit("min_lr", 0, math.inf)
CONV_WEIGHT_DECAY = limits.Limit("conv_weight_decay", 0, math.inf)
WEIGHT_DECAY = limits.Limit("weight_decay", 0, math.inf)
GRAD_CLIP = limits.Limit("grad_clip", 0, math.inf, low_open=True)


@dataclass
class Recipe:
    """Every knob of a training run; stored with the run."""

    epochs: int
    batch_size: int = 128
    lr: float = 1e-3
    warmup_epochs: int | None = None  # default: min(5, epochs // 10), the reference's 5 of 512 for long runs
    warmup_lr: float = 1e-5
    min_lr: float = 1e-7
    conv_weight_decay: float = 1e-8
    weight_decay: float = 1e-3
    grad_clip: float = 5.0
    sign_at: float = 0.3
    tau_decay: float | None = None
    label_smoothing: float = 0.0
    augment: str = "cifar"
    kd_weighting: str = "sample"
    seed: int = 0
    precision: str = "fp32"  # forward passes in fp32, or under bf16 autocast (train.fast)

    def __post_init__(self) -> None:
        for limit, value in ((limits.EPOCHS, self.epochs), (limits.BATCH_SIZE, self.batch_size), (limits.LR, self.lr),
                             (limits.SIGN_AT, self.sign_at), (limits.LABEL_SMOOTHING, self.label_smoothing),
                             (limits.SEED, self.seed), (WARMUP_LR, self.warmup_lr), (MIN_LR, self.min_lr),
                             (CONV_WEIGHT_DECAY, self.conv_weight_decay), (WEIGHT_DECAY, self.weight_decay),
                             (GRAD_CLIP, self.grad_clip)):
            limit.check(value)
        limits.TAU_DECAY.check(self.tau_decay, optional=True)
        WARMUP_EPOCHS.check(self.warmup_epochs, optional=True)
        if self.kd_weighting not in KD_WEIGHTINGS:
            raise BnextbenchError(f"--kd-weighting must be one of {', '.join(KD_WEIGHTINGS)}")
        if self.augment not in AUGMENTATIONS:
            raise BnextbenchError(f"--augment must be one of {', '.join(AUGMENTATIONS)}")
        if self.precision not in PRECISIONS:
            raise BnextbenchError(f"--precision must be one of {', '.join(PRECISIONS)}, got {brief(self.precision)}")
        if self.warmup_epochs is None:
            self.warmup_epochs = min(5, self.epochs // 10)

    @property
    def decay(self) -> float:
        """tau multiplier per epoch: ``tau_decay`` if given, else the rate that makes tau cross 1e-7
        at epoch round(sign_at * epochs), as 0.9 per epoch does at 153 of 512."""
        if self.tau_decay is not None:
            return self.tau_decay
        sign_epoch = max(1, round(self.sign_at * self.epochs))
        return math.exp(math.log(SIGN_THRESHOLD) / (sign_epoch - 0.5))

    def tau(self, epoch: int) -> float:
        return self.decay**epoch

    def to_dict(self) -> dict:
        """Every field, but ``precision`` only when not fp32: recipes (and so protocol keys) of fp32 runs stay
        those stored before the option existed."""
        values = asdict(self)
        if self.precision == "fp32":
            del values["precision"]
        return values

    @classmethod
    def from_dict(cls, data: dict) -> Recipe:
        """A recipe from :meth:`to_dict`'s form; keys that are no field of the recipe are ignored."""
        known = {f.name for f in fields(cls)}
        return cls(**{key: value for key, value in data.items() if key in known})


def set_tau(model: nn.Module, tau: float) -> None:
    for module in model.modules():
        if isinstance(module, ProgressiveSign):
            module.set_tau(tau)


def optimizer_for(model: nn.Module, recipe: Recipe) -> torch.optim.AdamW:
    """AdamW; conv kernels (binary latent weights, SE, stem) decay 1e-8, everything else 1e-3."""
    conv_kernels = {id(m.weight) for m in model.modules() if isinstance(m, nn.Conv2d)}
    trainable = [p for p in model.parameters() if p.requires_grad]
    groups = [
        {"params": [p for p in trainable if id(p) in conv_kernels], "weight_decay": recipe.conv_weight_decay},
        {"params": [p for p in trainable if id(p) not in conv_kernels], "weight_decay": recipe.weight_decay},
    ]
    return torch.optim.AdamW([g for g in groups if g["params"]], lr=recipe.lr, fused=True)


def clip_gradients(parameters: list[nn.Parameter], max_norm: float) -> torch.Tensor:
    """``nn.utils.clip_grad_norm_`` with the same result, skipping the multiply when it would be by 1.

    torch scales every gradient by min(max_norm / (norm + 1e-6), 1) each step; below the limit that
    factor is exactly 1, so on the CPU only the norm (one read of the gradients) is needed: 12 of 28 ms
    saved per step for bnext_tiny's 29.8 M parameters on 2 cores. On a GPU the test would wait for the
    device, so there it always scales. Returns the total norm.
    """
    grads = [p.grad for p in parameters if p.grad is not None]
    norm = nn.utils.get_total_norm(grads, foreach=True)
    if norm.device.type != "cpu" or not float(norm) + 1e-6 <= max_norm:  # a NaN norm scales too, as in torch
        nn.utils.clip_grads_with_norm_(parameters, max_norm, norm, foreach=True)
    return norm


def scheduler_for(optimizer: torch.optim.Optimizer, recipe: Recipe) -> CosineLRScheduler:
    """timm's cosine schedule, stepped at every epoch start, after a linear warm-up from ``warmup_lr``."""
    # timm warns that a one-epoch cosine is flat; that is expected for one-epoch runs.
    logging.getLogger("timm.scheduler.cosine_lr").setLevel(logging.ERROR)
    return CosineLRScheduler(
        optimizer,
        t_initial=recipe.epochs,
        lr_min=recipe.min_lr,
        warmup_t=recipe.warmup_epochs,
        warmup_lr_init=recipe.warmup_lr,
        warmup_prefix=True,
    )
