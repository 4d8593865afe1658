"""Data specs -> decoded uint8 image tensors (cached) -> augmented batches.

Specs: ``digits`` (scikit-learn's bundled 8x8 handwritten digits, the embedded default: real data,
no download), ``imagefolder:PATH`` (PATH/train and PATH/val or PATH/test, one folder per class),
``cifar10:PATH`` / ``cifar100:PATH`` (torchvision's format; downloaded only when asked).
Images are decoded once, resized to the training resolution and kept as uint8 tensors; decoded
image folders are cached on disk (``BNEXTBENCH_CACHE``, default ~/.cache/bnextbench).
"""

from __future__ import annotations

import hashlib
import math
import os
import warnings
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Callable, Iterator, Protocol

import torch
from torch.utils.data import Dataset

from .choices import AUGMENTATIONS
from .errors import BnextbenchError, BnextbenchWarning
from .io import atomic_torch_save
from .limits import RESOLUTION, TRAIN_LIMIT

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp", ".tif", ".tiff", ".ppm"}
DATA_KINDS = ("digits", "imagefolder", "cifar10", "cifar100")
CIFAR_MEAN, CIFAR_STD = (0.507, 0.487, 0.441), (0.267, 0.256, 0.276)  # BNext's CIFAR constants
DIGITS_TEST_FRACTION = 0.2
DEFAULT_RESOLUTION = {"digits": 16, "cifar10": 32, "cifar100": 32, "imagefolder": 224}


class DataError(BnextbenchError):
    pass


@dataclass(frozen=True)
class DataSpec:
    kind: str
    path: Path | None = None

    def __str__(self) -> str:
        return self.kind if self.path is None else f"{self.kind}:{self.path}"


def parse_data_spec(text: str) -> DataSpec:
    kind, _, path = text.partition(":")
    if kind not in DATA_KINDS:
        raise DataError(f"unknown data spec {text!r}; use digits, imagefolder:PATH, cifar10:PATH or cifar100:PATH")
    if kind == "digits":
        if path:
            raise DataError("the digits data set takes no path")
        return DataSpec(kind)
    if not path:
        raise DataError(f"{kind} needs a path: {kind}:PATH")
    return DataSpec(kind, Path(path).expanduser().resolve())


class ImageSource(Protocol):
    """What training, evaluation and BatchNorm calibration read of a data set: uint8 images (3 x R x R) with
    int64 labels, normalised by the reader with ``mean`` and ``std`` (:func:`normalize`).

    :class:`ImageData` holds a decoded set in memory; a streaming folder decodes files as they are read.
    """

    spec: str
    classes: list[str]
    resolution: int
    mean: tuple[float, float, float]
    std: tuple[float, float, float]

    @property
    def num_classes(self) -> int: ...

    @property
    def train_size(self) -> int: ...

    @property
    def test_size(self) -> int: ...

    def train_set(self, augment: str) -> Dataset:
        """The training split as a map-style dataset of (image, label), augmented per sample by ``augment``."""

    def test_batches(self, batch_size: int) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """The test split in order, as (images, labels) batches of at most ``batch_size``."""

    def calibration_batches(self, count: int, batch_size: int, seed: int) -> Iterator[torch.Tensor]:
        """``count`` training images drawn by ``seed`` (the same for every call), un-augmented like the test
        images, in near-equal batches of at most ``batch_size``."""


@dataclass
class ImageData:
    """Decoded images (uint8, N x 3 x R x R) and labels of one data set at one resolution, in memory."""

    spec: str
    classes: list[str]
    resolution: int
    train_images: torch.Tensor
    train_labels: torch.Tensor
    test_images: torch.Tensor
    test_labels: torch.Tensor
    mean: tuple[float, float, float]
    std: tuple[float, float, float]

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    @property
    def train_size(self) -> int:
        return len(self.train_labels)

    @property
    def test_size(self) -> int:
        return len(self.test_labels)

    def train_set(self, augment: str) -> Dataset:
        return TensorImages(self.train_images, self.train_labels, train_transform(augment, self.resolution))

    def test_batches(self, batch_size: int) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        for start in range(0, self.test_size, batch_size):
            yield self.test_images[start:start + batch_size], self.test_labels[start:start + batch_size]

    def calibration_batches(self, count: int, batch_size: int, seed: int) -> Iterator[torch.Tensor]:
        count = min(count, self.train_size)
        chosen = torch.randperm(self.train_size, generator=torch.Generator().manual_seed(seed))[:count]
        for part in chosen.tensor_split(math.ceil(count / batch_size)):
            yield self.train_images[part]


def normalization(kind: str) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """Per-channel (mean, std) that images of a data kind (``digits``, ``imagefolder``, ``cifar10``, ...) are
    standardised with, on pixels scaled to [0, 1]."""
    if kind == "digits":
        return (0.5,) * 3, (0.5,) * 3
    if kind in ("cifar10", "cifar100"):
        return CIFAR_MEAN, CIFAR_STD
    from timm.data import IMAGENET_DEFAULT_MEAN, IMAGENET_DEFAULT_STD

    return IMAGENET_DEFAULT_MEAN, IMAGENET_DEFAULT_STD


def resize(images: torch.Tensor, resolution: int) -> torch.Tensor:
    """uint8 or float images (..., H, W) resized to resolution x resolution (antialiased)."""
    if images.shape[-1] == resolution and images.shape[-2] == resolution:
        return images
    from torchvision.transforms.v2 import functional as TF

    return TF.resize(images, [resolution, resolution], antialias=True)


def _load_digits(resolution: int) -> tuple:
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    digits = load_digits()
    pixels = torch.from_numpy(digits.images).float() * (255.0 / 16.0)  # 0..16 -> 0..255
    images = pixels.round().to(torch.uint8).unsqueeze(1).expand(-1, 3, -1, -1).contiguous()
    labels = torch.from_numpy(digits.target).long()
    train_idx, test_idx = train_test_split(
        torch.arange(len(labels)).numpy(), test_size=DIGITS_TEST_FRACTION, stratify=labels.numpy(), random_state=0
    )
    images = resize(images, resolution)
    classes = [str(d) for d in range(10)]
    return classes, images[train_idx], labels[train_idx], images[test_idx], labels[test_idx], *normalization("digits")


def _unreadable(exc: OSError, fallback: Path) -> DataError:
    return DataError(f"cannot read {exc.filename or fallback}: {exc.strerror or exc.__class__.__name__}")


def _class_folders(root: Path) -> dict[str, list[Path]]:
    """Image files per class folder; a folder or link that cannot be followed (a symlink loop) is named."""
    try:
        folders = sorted(p for p in root.iterdir() if p.is_dir())
        listed = {folder.name: sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
                  for folder in folders}
        for paths in listed.values():
            for path in paths:
                if not path.is_file():
                    raise DataError(f"cannot read {path}: not a regular file (a broken link or a link loop?)")
    except OSError as exc:
        raise _unreadable(exc, root) from None
    if not folders:
        raise DataError(f"{root} has no class folders")
    return listed


def _decode_image(path: Path) -> torch.Tensor:
    """One image file as a uint8 3 x H x W tensor; a file that is no image names itself."""
    from PIL import Image, UnidentifiedImageError
    from torchvision.transforms.v2 import functional as TF

    try:
        with Image.open(path) as image:
            return TF.pil_to_tensor(image.convert("RGB"))
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError) as exc:  # SyntaxError: PIL's bad headers
        raise DataError(f"cannot decode image {path}: {exc.__class__.__name__}") from None


def _decode_folder(files: dict[str, list[Path]], classes: list[str], resolution: int) -> tuple:
    images, labels = [], []
    for label, name in enumerate(classes):
        for path in files[name]:
            images.append(resize(_decode_image(path), resolution))
            labels.append(label)
    if not images:
        raise DataError("no images found (expected .jpg/.png files inside the class folders)")
    return torch.stack(images), torch.tensor(labels)


def _cache_path(kind: str, files: dict[str, dict[str, list[Path]]], resolution: int) -> Path:
    digest = hashlib.sha256(f"{kind}|{resolution}".encode())
    for split, by_class in sorted(files.items()):
        for name, paths in sorted(by_class.items()):
            for path in paths:
                stat = path.stat()
                digest.update(f"{split}|{name}|{path}|{stat.st_size}|{stat.st_mtime_ns}".encode())
    root = Path(os.environ.get("BNEXTBENCH_CACHE", Path.home() / ".cache" / "bnextbench"))
    return root / "data" / f"{digest.hexdigest()[:24]}.pt"


def _test_folder(root: Path) -> Path | None:
    """ROOT/val, else ROOT/test, else None."""
    return next((root / name for name in ("val", "test") if (root / name).is_dir()), None)


def _load_imagefolder(root: Path, resolution: int) -> tuple:
    if not root.is_dir():
        raise DataError(f"data path {root} is not a directory")
    test_dir = _test_folder(root)
    if not (root / "train").is_dir() or test_dir is None:
        raise DataError(f"{root} must hold train/ and val/ (or test/), one folder per class")
    files = {"train": _class_folders(root / "train"), "test": _class_folders(test_dir)}
    if set(files["train"]) != set(files["test"]):
        differ = sorted(set(files["train"]) ^ set(files["test"]))
        raise DataError(f"train and {test_dir.name} class folders differ: {', '.join(differ[:8])}")
    classes = sorted(files["train"])
    if len(classes) < 2:
        raise DataError(f"{root} has {len(classes)} class folder(s); classification needs at least 2")
    _check_fits_memory(sum(len(paths) for split in files.values() for paths in split.values()), resolution)
    cache = _cache_path("imagefolder", files, resolution)
    tensors = _read_cache(cache, resolution)
    if tensors is None:
        tensors = (*_decode_folder(files["train"], classes, resolution), *_decode_folder(files["test"], classes, resolution))
        try:  # atomic: workers decoding the same folder at once, or a full disk, never leave a half-written cache
            atomic_torch_save(dict(zip(CACHE_KEYS, tensors)), cache)
        except BnextbenchError as exc:
            warnings.warn(f"decoded images not cached ({exc})", BnextbenchWarning, stacklevel=2)
    return classes, *tensors, *normalization("imagefolder")


CACHE_KEYS = ("train_images", "train_labels", "test_images", "test_labels")


def _read_cache(cache: Path, resolution: int) -> tuple | None:
    """The decoded tensors kept in ``cache``, or None when there are none or they are damaged (then rebuilt)."""
    if not cache.is_file():
        return None
    try:
        stored = torch.load(cache, weights_only=True)
        tensors = tuple(stored[key] for key in CACHE_KEYS)
        images_ok = all(t.dtype == torch.uint8 and t.shape[1:] == (3, resolution, resolution) for t in tensors[::2])
        labels_ok = all(len(labels) == len(images) for images, labels in zip(tensors[::2], tensors[1::2]))
        if images_ok and labels_ok:
            return tensors
    except Exception:  # noqa: BLE001 - any damage (truncated zip, wrong payload) means: decode again
        pass
    warnings.warn(f"damaged cache {cache}: decoding the images again", BnextbenchWarning, stacklevel=3)
    return None


def _check_fits_memory(images: int, resolution: int) -> None:
    """Refuse before decoding a set whose uint8 tensors would not fit in this machine's memory."""
    needed = images * 3 * resolution * resolution
    total = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    if needed > total:
        raise DataError(f"{images:,} images at {resolution} px need {needed / 2**30:,.1f} GiB decoded, more than "
                        f"this machine's {total / 2**30:,.1f} GiB; lower --resolution")


def _load_cifar(kind: str, root: Path, resolution: int, download: bool) -> tuple:
    from torchvision.datasets import CIFAR10, CIFAR100

    dataset_class = CIFAR10 if kind == "cifar10" else CIFAR100
    try:
        train = dataset_class(str(root), train=True, download=download)
        test = dataset_class(str(root), train=False, download=download)
    except RuntimeError as exc:
        raise DataError(f"{kind} not found under {root} ({exc}); pass --download to fetch it") from None

    def tensors(split):
        images = torch.from_numpy(split.data).permute(0, 3, 1, 2).contiguous()
        return resize(images, resolution), torch.tensor(split.targets)

    return list(train.classes), *tensors(train), *tensors(test), *normalization(kind)


def balanced_subset(labels: torch.Tensor, limit: int, seed: int) -> torch.Tensor:
    """Indices of ``limit`` samples spread evenly over the classes, drawn with ``seed``."""
    generator = torch.Generator().manual_seed(seed)
    classes = labels.unique().tolist()
    per_class = [limit // len(classes) + (i < limit % len(classes)) for i in range(len(classes))]
    chosen = []
    for label, count in zip(classes, per_class):
        members = (labels == label).nonzero().flatten()
        chosen.append(members[torch.randperm(len(members), generator=generator)[:count]])
    return torch.cat(chosen).sort().values


DEFAULT_HOLDOUT_SHARE, MAX_DEFAULT_HOLDOUT = 0.2, 5000


def default_holdout(train_images: int) -> int:
    """Training images a supernet holds out unless told: a fifth, at most 5 000."""
    return min(MAX_DEFAULT_HOLDOUT, int(DEFAULT_HOLDOUT_SHARE * train_images))


def hold_out(data: ImageData, count: int, seed: int) -> ImageData:
    """``data`` with ``count`` training images, spread evenly over the classes and drawn with ``seed``, moved
    into the evaluation split in place of the test images: what a supernet validates and candidates are scored
    on, so that the test split stays for the final, stand-alone models."""
    if isinstance(count, bool) or not isinstance(count, int) or count < data.num_classes:
        raise DataError(f"--holdout must be an integer of at least the number of classes ({data.num_classes}), "
                        f"got {count}")
    if count > len(data.train_labels) - data.num_classes:
        raise DataError(f"--holdout {count} leaves too few training images: {data.spec} has "
                        f"{len(data.train_labels)} (after --train-limit)")
    held = balanced_subset(data.train_labels, count, seed)
    kept = torch.ones(len(data.train_labels), dtype=torch.bool)
    kept[held] = False
    return replace(data, train_images=data.train_images[kept], train_labels=data.train_labels[kept],
                   test_images=data.train_images[held], test_labels=data.train_labels[held])


def _first_image_side(root: Path) -> int:
    """Default resolution of an image folder: the shorter side of its first training image, within 8 to 224."""
    first = next((path for paths in _class_folders(root / "train").values() for path in paths), None)
    if first is None:
        return DEFAULT_RESOLUTION["imagefolder"]
    side = min(_decode_image(first).shape[1:])
    return max(int(RESOLUTION.low), min(side, DEFAULT_RESOLUTION["imagefolder"]))


def load_data(
    text: str, resolution: int | None = None, train_limit: int | None = None, seed: int = 0, download: bool = False
) -> ImageData:
    """Decode (or read from cache) a data set at ``resolution`` (default: its natural size)."""
    spec = parse_data_spec(text)
    if resolution is None:
        if spec.kind == "imagefolder" and _test_folder(spec.path) is not None and (spec.path / "train").is_dir():
            resolution = _first_image_side(spec.path)
        else:
            resolution = DEFAULT_RESOLUTION[spec.kind]
    RESOLUTION.check(resolution)
    if train_limit is not None:
        TRAIN_LIMIT.check(train_limit)
    if spec.kind == "digits":
        parts = _load_digits(resolution)
    elif spec.kind == "imagefolder":
        parts = _load_imagefolder(spec.path, resolution)
    else:
        parts = _load_cifar(spec.kind, spec.path, resolution, download)
    classes, train_x, train_y, test_x, test_y, mean, std = parts
    if train_limit is not None:
        if train_limit < len(classes):
            raise DataError(f"--train-limit {train_limit} is below the number of classes ({len(classes)})")
        if train_limit < len(train_y):
            keep = balanced_subset(train_y, train_limit, seed)
            train_x, train_y = train_x[keep], train_y[keep]
    return ImageData(str(spec), list(classes), resolution, train_x, train_y, test_x, test_y, tuple(mean), tuple(std))


def train_transform(name: str, resolution: int) -> Callable[[torch.Tensor], torch.Tensor] | None:
    """Per-image augmentation on uint8 tensors: ``cifar`` (pad-crop + flip, torchvision), ``flip``
    (horizontal flip only: the light regulariser of short runs), ``bnext``
    (timm's RandAugment rand-m7-mstd0.5-inc1, random-resized crop, flip), ``none``."""
    if name == "none":
        return None
    from torchvision.transforms import v2

    if name == "cifar":
        return v2.Compose([v2.RandomCrop(resolution, padding=resolution // 8), v2.RandomHorizontalFlip()])
    if name == "flip":
        return v2.RandomHorizontalFlip()
    if name == "bnext":
        from timm.data import create_transform

        primary, secondary, _ = create_transform(
            resolution, is_training=True, auto_augment="rand-m7-mstd0.5-inc1", interpolation="bicubic",
            re_prob=0.0, separate=True,
        )
        return v2.Compose([v2.ToPILImage(), primary, secondary, v2.PILToTensor()])
    raise DataError(f"unknown augmentation {name!r}; choose one of {', '.join(AUGMENTATIONS)}")


class TensorImages(Dataset):
    """uint8 images with labels, augmented per sample on access."""

    def __init__(self, images: torch.Tensor, labels: torch.Tensor, transform=None):
        self.images, self.labels, self.transform = images, labels, transform

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        image = self.images[index]
        return (self.transform(image) if self.transform else image), self.labels[index]


def normalize(batch: torch.Tensor, mean: tuple, std: tuple) -> torch.Tensor:
    """uint8 batch -> float, scaled to [0, 1] and standardised per channel; ``mean`` and ``std`` as numbers, or
    as tensors already on the batch's device (then nothing is copied)."""
    mean_t = torch.as_tensor(mean, dtype=torch.float32, device=batch.device).view(1, 3, 1, 1)
    std_t = torch.as_tensor(std, dtype=torch.float32, device=batch.device).view(1, 3, 1, 1)
    return (batch.float() / 255.0 - mean_t) / std_t
