"""Image folders read from their files: listed once, each image decoded when read, in DataLoader workers.

What stays in memory is the file list (one numpy byte string per file) and one "unreadable" flag byte per
file in shared memory, whatever the folder's size. Transforms are timm's, as in the BNext ImageNet pipeline:

* evaluation (test split, BatchNorm calibration): bicubic resize of the shorter side to floor(R / 0.95)
  (235 at 224), centre crop R x R;
* ``--augment bnext``: random-resized crop to R (scale 0.08-1, ratio 3/4-4/3, bicubic), horizontal flip
  (p 0.5), RandAugment ``rand-m7-mstd0.5-inc1``; no colour jitter, no random erasing;
* ``cifar``, ``flip``, ``none``: the evaluation crop, then what the in-memory set does to its decoded images
  (:func:`bnextbench.data.train_transform`): pad-crop + flip, flip, nothing.

Every transform ends in uint8 3 x R x R tensors (timm's prefetcher form), normalised by the reader as the
in-memory images are.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Callable, Iterator

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, default_collate

from .data import (
    DataError,
    LabelledSplits,
    balanced_subset,
    calibration_draw,
    loader_worker_count,
    normalization,
    open_rgb,
    train_transform,
)

EVAL_CROP_PCT = 0.95  # BNext's ImageNet evaluation: resize to R / 0.95, centre crop R
REFERENCE_AUTO_AUGMENT = "rand-m7-mstd0.5-inc1"
REFERENCE_INTERPOLATION = "bicubic"


class UnreadableImage(DataError):
    """A file of a streamed folder that cannot be read or decoded; the message names it.

    Raised in a DataLoader worker, torch re-raises it in the main process built from the worker's whole
    traceback text, whose last line is ``module.UnreadableImage: <message>``: that message is kept, so the
    error stays one line.
    """

    def __init__(self, message: str):
        lines = message.strip().splitlines()
        prefix = f"{type(self).__module__}.{type(self).__qualname__}: "
        super().__init__(lines[-1].removeprefix(prefix) if len(lines) > 1 else message)


def eval_transform(resolution: int) -> Callable:
    """PIL image -> uint8 3 x R x R tensor: shorter side resized (bicubic) to floor(R / 0.95), centre crop R."""
    from timm.data import create_transform

    return create_transform(resolution, is_training=False, crop_pct=EVAL_CROP_PCT,
                            interpolation=REFERENCE_INTERPOLATION, use_prefetcher=True)


def streamed_train_transform(augment: str, resolution: int) -> Callable:
    """PIL image -> augmented uint8 3 x R x R tensor for ``--augment`` (see the module's description)."""
    if augment == "bnext":
        from timm.data import create_transform

        # timm leaves colour jitter out when RandAugment is given; re_prob 0: no random erasing
        return create_transform(resolution, is_training=True, scale=(0.08, 1.0), ratio=(3 / 4, 4 / 3), hflip=0.5,
                                auto_augment=REFERENCE_AUTO_AUGMENT, interpolation=REFERENCE_INTERPOLATION,
                                re_prob=0.0, use_prefetcher=True)
    crop, augmentation = eval_transform(resolution), train_transform(augment, resolution)
    if augmentation is None:
        return crop
    from torchvision.transforms import v2

    return v2.Compose([crop, augmentation])


class ImageFiles(Dataset):
    """Image files with labels, each decoded and transformed when read.

    An unreadable file raises :class:`UnreadableImage`; given ``unreadable`` (one shared flag per file, so
    that DataLoader workers can mark it for the main process), it is flagged instead and read as None, which
    :func:`collate_readable` drops.
    """

    def __init__(self, paths: np.ndarray, labels: np.ndarray, transform: Callable,
                 unreadable: torch.Tensor | None = None):
        self.paths, self.labels, self.transform, self.unreadable = paths, labels, transform, unreadable

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int] | None:
        path = Path(os.fsdecode(self.paths[index]))
        try:
            image = open_rgb(path, UnreadableImage)
        except UnreadableImage:
            if self.unreadable is None:
                raise
            self.unreadable[index] = True
            return None
        return self.transform(image), int(self.labels[index])


def collate_readable(items: list) -> tuple[torch.Tensor, torch.Tensor]:
    """(images, labels) of the items read; files skipped as unreadable (None) are left out."""
    readable = [item for item in items if item is not None]
    if not readable:
        return torch.empty(0, 3, 0, 0, dtype=torch.uint8), torch.empty(0, dtype=torch.int64)
    return default_collate(readable)


def _file_table(by_class: dict[str, list[Path]], classes: list[str]) -> tuple[np.ndarray, np.ndarray]:
    """(paths as one numpy array of byte strings, int64 labels) in class order.

    A numpy array rather than a list of Path objects: far smaller, and DataLoader workers forked from the
    process read it without touching reference counts, so its pages stay shared instead of being copied.
    """
    paths = [os.fsencode(path) for name in classes for path in by_class[name]]
    labels = [label for label, name in enumerate(classes) for _ in by_class[name]]
    return np.array(paths, dtype=np.bytes_), np.array(labels, dtype=np.int64)


class StreamingFolder(LabelledSplits):
    """An image folder (train/ and val/ or test/) read from its files; an :class:`~bnextbench.data.ImageSource`."""

    def __init__(self, spec: str, classes: list[str], files: dict[str, dict[str, list[Path]]], resolution: int,
                 train_limit: int | None = None, seed: int = 0, skip_bad_images: bool = False):
        """``files``: image paths per split ("train", "test") and class, as :func:`data.list_imagefolder` lists
        them; ``train_limit``: keep a class-balanced subset of that many training files drawn with ``seed``."""
        self.spec, self.classes, self.resolution = spec, classes, resolution
        self.mean, self.std = (tuple(v) for v in normalization("imagefolder"))
        self.train_paths, self.train_labels = _file_table(files["train"], classes)
        self.test_paths, self.test_labels = _file_table(files["test"], classes)
        if not len(self.train_labels) or not len(self.test_labels):
            raise DataError(f"{spec.partition(':')[2]} has no images in its "
                            f"{'train' if not len(self.train_labels) else 'test'} split "
                            "(expected .jpg/.png files inside the class folders)")
        if train_limit is not None and train_limit < len(self.train_labels):
            if train_limit < len(classes):
                raise DataError(f"--train-limit {train_limit} is below the number of classes ({len(classes)})")
            keep = balanced_subset(torch.from_numpy(self.train_labels), train_limit, seed).numpy()
            self.train_paths, self.train_labels = self.train_paths[keep], self.train_labels[keep]
        self.skip_bad_images = skip_bad_images
        # Shared with the workers: they flag what they could not read, the main process counts it.
        self.train_unreadable = torch.zeros(len(self.train_labels), dtype=torch.bool).share_memory_()
        self.test_unreadable = torch.zeros(len(self.test_labels), dtype=torch.bool).share_memory_()

    @property
    def skipped_images(self) -> int:
        return int(self.train_unreadable.sum() + self.test_unreadable.sum())

    def _files(self, split: str, transform: Callable) -> ImageFiles:
        paths, labels, flags = ((self.train_paths, self.train_labels, self.train_unreadable) if split == "train"
                                else (self.test_paths, self.test_labels, self.test_unreadable))
        return ImageFiles(paths, labels, transform, flags if self.skip_bad_images else None)

    def train_set(self, augment: str) -> Dataset:
        return self._files("train", streamed_train_transform(augment, self.resolution))

    def loader_workers(self, on_gpu: bool) -> int:
        # Decoding a JPEG costs more than a small network's step on it: always in parallel workers, on a CPU too.
        return loader_worker_count()

    def collate(self, items: list) -> tuple[torch.Tensor, torch.Tensor]:
        return collate_readable(items)

    def keep_test_split_on(self, device: torch.device) -> None:
        pass  # read from the files at every evaluation

    def _loader(self, dataset: Dataset, **batching) -> DataLoader:
        return DataLoader(dataset, num_workers=self.loader_workers(on_gpu=False), collate_fn=collate_readable,
                          **batching)

    def test_batches(self, batch_size: int) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        for images, labels in self._loader(self._files("test", eval_transform(self.resolution)),
                                           batch_size=batch_size, shuffle=False):
            if len(labels):
                yield images, labels

    def calibration_batches(self, count: int, batch_size: int, seed: int) -> Iterator[torch.Tensor]:
        batches = [part.tolist() for part in calibration_draw(self.train_size, count, batch_size, seed)]
        for images, _ in self._loader(self._files("train", eval_transform(self.resolution)), batch_sampler=batches):
            if len(images):
                yield images
