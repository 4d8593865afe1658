"""The fast training step's parts, each behind its own switch of :class:`~bnextbench.train.loop.TrainConfig`:

- ``Recipe.precision`` ``bf16``: forward passes (training, BatchNorm recalibration, evaluation) under
  ``torch.autocast`` in bfloat16, on CUDA and on the CPU; losses are taken of fp32 logits and the weights,
  gradients and optimizer state stay fp32. It changes the numbers, so it is part of the recipe and of the
  run's protocol (an fp32 recipe's protocol key is the one it had before the option existed).
- ``channels_last``: model and input batches in channels-last memory (NHWC), the layout cuDNN's and
  oneDNN's fastest bf16 convolutions read. Off unless asked, on every device: it changes the order of
  floating-point sums inside convolutions, not what is computed.
- ``compile``: ``torch.compile`` of the model for the training forward (evaluation stays eager), refused
  in one line where this machine cannot compile.
- ``data_on_device``: an in-memory training set kept on the device and shuffled and augmented there in whole
  batches (:class:`DeviceImages`) instead of per image in DataLoader workers. Automatic on CUDA; it
  draws crops, flips and the order from a device generator, so the same seed draws differently than the
  workers do, and a run keeps its choice when resumed.

None of them reads a device value on the host inside a step; the loop reads the accumulated loss every
:data:`GPU_SYNC_STEPS` steps on a GPU.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager

import torch
import torch.nn.functional as F
from torch import nn

from ..data import normalize
from ..errors import BnextbenchError, brief

# How often a GPU run reads its running loss on the host (finiteness check and progress bar): each read waits
# for the queued steps, so a few per epoch. On the CPU the loss is known when the step returns: every step.
GPU_SYNC_STEPS = 50
# Augmentations with a batched form here; ``bnext`` (RandAugment on PIL images) has none.
BATCHED_AUGMENTATIONS = ("cifar", "flip", "none")


def sync_steps(device: torch.device) -> int:
    """Steps between two host reads of the training loss on ``device``."""
    return GPU_SYNC_STEPS if device.type == "cuda" else 1


def autocast(device: torch.device, precision: str) -> AbstractContextManager:
    """bf16 autocast on ``device`` for precision ``bf16``; a context that changes nothing for ``fp32``."""
    return torch.autocast(device.type, dtype=torch.bfloat16, enabled=precision == "bf16")


def check_compile_works(device: torch.device) -> None:
    """Compile and run a two-op function on ``device``; a one-line error where torch.compile cannot (no C++
    compiler for inductor, an unsupported Python), before any run is recorded."""
    try:
        torch.compile(lambda x: x * 2 + 1, fullgraph=True)(torch.ones(4, device=device))
    except Exception as exc:  # noqa: BLE001 - whatever the backend raises, the answer is: not here
        raise BnextbenchError(f"--compile: torch.compile does not work on this machine "
                              f"({type(exc).__name__}: {brief(str(exc).splitlines()[0] if str(exc) else '')}); "
                              f"train without --compile") from None


def training_forward(model: nn.Module, precision: str, device: torch.device,
                     compile_model: bool) -> Callable[[torch.Tensor], torch.Tensor]:
    """The function a training step calls for logits: ``model`` itself for fp32 eager, else ``model`` (compiled
    if asked) under autocast, a compile failure on the real model turned into one line."""
    if precision == "fp32" and not compile_model:
        return model
    run = torch.compile(model) if compile_model else model

    def forward(images: torch.Tensor) -> torch.Tensor:
        try:
            with autocast(device, precision):
                return run(images)
        except torch._dynamo.exc.TorchDynamoException as exc:  # the public base of dynamo's and inductor's errors
            first = str(exc).splitlines()[0] if str(exc) else ""
            raise BnextbenchError(f"--compile: torch.compile failed on the model ({type(exc).__name__}: "
                                  f"{brief(first)}); train without --compile") from None

    return forward


class BatchPreparer:
    """uint8 batch -> normalised float batch on the device (:func:`bnextbench.data.normalize`), channels-last if
    asked; mean and std are copied to the device once, not per batch (a copy from pageable memory waits)."""

    def __init__(self, mean: tuple, std: tuple, device: torch.device, channels_last: bool):
        self.mean = torch.tensor(mean, device=device)
        self.std = torch.tensor(std, device=device)
        self.device, self.channels_last = device, channels_last

    def __call__(self, images: torch.Tensor) -> torch.Tensor:
        batch = normalize(images.to(self.device, non_blocking=True), self.mean, self.std)
        return batch.contiguous(memory_format=torch.channels_last) if self.channels_last else batch


def crop_and_flip(images: torch.Tensor, top: torch.Tensor, left: torch.Tensor, flip: torch.Tensor,
                  padding: int) -> torch.Tensor:
    """Each image n of an (N, C, H, W) batch zero-padded by ``padding`` on every side, cut to H x W at row
    ``top[n]`` and column ``left[n]`` of the padded image, and mirrored left-right where ``flip[n]``: what
    torchvision's ``RandomCrop(H, padding)`` then ``RandomHorizontalFlip`` give for those draws, as one gather."""
    count, channels, height, width = images.shape
    padded = F.pad(images, (padding, padding, padding, padding))
    columns = torch.arange(width, device=images.device)
    rows = top[:, None] + torch.arange(height, device=images.device)  # N x H
    cols = left[:, None] + torch.where(flip[:, None], columns.flip(0), columns)  # N x W, mirrored where flipped
    return padded[torch.arange(count, device=images.device)[:, None, None, None],
                  torch.arange(channels, device=images.device)[None, :, None, None],
                  rows[:, None, :, None], cols[:, None, None, :]]


class DeviceImages:
    """A training split (uint8 images, labels) held on one device, augmented there a whole batch at a time.

    ``augment``: ``cifar`` (zero-pad by side / 8, random crop, random horizontal flip), ``flip`` (flip only)
    or ``none``; every draw comes from one generator on the device, seeded per epoch.
    """

    def __init__(self, images: torch.Tensor, labels: torch.Tensor, augment: str, device: torch.device):
        if augment not in BATCHED_AUGMENTATIONS:
            raise BnextbenchError(f"--augment {augment} has no batched form for data on the device; use one of "
                                  f"{', '.join(BATCHED_AUGMENTATIONS)} or keep the data in workers")
        self.images, self.labels = images.to(device), labels.to(device)
        self.device = device
        self.padding = images.shape[-1] // 8 if augment == "cifar" else 0
        self.flip = augment in ("cifar", "flip")

    def __len__(self) -> int:
        return len(self.labels)

    def augment(self, images: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        """One batch augmented with draws from ``generator``: offsets uniform in [0, 2 padding], flips p = 1/2."""
        if not self.padding and not self.flip:
            return images
        count = len(images)
        top, left = torch.randint(0, 2 * self.padding + 1, (2, count), generator=generator, device=self.device)
        flip = torch.rand(count, generator=generator, device=self.device) < 0.5
        return crop_and_flip(images, top, left, flip if self.flip else torch.zeros_like(flip), self.padding)

    def batches(self, batch_size: int, drop_last: bool, seed: int) -> EpochBatches:
        """One epoch: a permutation of every image drawn with ``seed``, cut into batches of ``batch_size``."""
        return EpochBatches(self, batch_size, drop_last, seed)


class EpochBatches:
    """The (images, labels) batches of one epoch of :class:`DeviceImages`, with a length like a DataLoader's."""

    def __init__(self, source: DeviceImages, batch_size: int, drop_last: bool, seed: int):
        self.source, self.batch_size, self.drop_last, self.seed = source, batch_size, drop_last, seed

    def __len__(self) -> int:
        divide = math.floor if self.drop_last else math.ceil
        return divide(len(self.source) / self.batch_size)

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        source = self.source
        generator = torch.Generator(device=source.device).manual_seed(self.seed)
        order = torch.randperm(len(source), generator=generator, device=source.device)
        for index in range(len(self)):
            chosen = order[index * self.batch_size:(index + 1) * self.batch_size]
            yield source.augment(source.images[chosen], generator), source.labels[chosen]
