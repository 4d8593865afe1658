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
from typing import Any, Callable, Iterator, Protocol

import torch
from torch.utils.data import Dataset, default_collate

from .choices import AUGMENTATIONS, DATA_MODES
from .errors import BnextbenchError, BnextbenchWarning, brief
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

    def loader_workers(self, on_gpu: bool) -> int:
        """DataLoader worker processes that should read :meth:`train_set` (0: the training process itself)."""

    def collate(self, items: list) -> tuple[torch.Tensor, torch.Tensor]:
        """One (images, labels) batch of :meth:`train_set` items, as a DataLoader's ``collate_fn``."""

    def keep_test_split_on(self, device: torch.device) -> None:
        """Move the test split to ``device`` if the source holds it in memory (a streaming one reads it anew)."""

    @property
    def skipped_images(self) -> int:
        """Files passed over so far as unreadable (each counted once, however often it was read)."""


class LabelledSplits:
    """Sizes of a source's splits, from its ``classes``, ``train_labels`` and ``test_labels``."""

    classes: list[str]
    train_labels: Any
    test_labels: Any

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    @property
    def train_size(self) -> int:
        return len(self.train_labels)

    @property
    def test_size(self) -> int:
        return len(self.test_labels)


def calibration_draw(train_size: int, count: int, batch_size: int, seed: int) -> list[torch.Tensor]:
    """Indices of ``count`` training images (at most all) drawn by ``seed``, in near-equal parts of at most
    ``batch_size``: what :meth:`ImageSource.calibration_batches` reads, whatever the source."""
    count = min(count, train_size)
    chosen = torch.randperm(train_size, generator=torch.Generator().manual_seed(seed))[:count]
    return list(chosen.tensor_split(math.ceil(count / batch_size)))


@dataclass
class ImageData(LabelledSplits):
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

    def train_set(self, augment: str) -> Dataset:
        return TensorImages(self.train_images, self.train_labels, train_transform(augment, self.resolution))

    def test_batches(self, batch_size: int) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        for start in range(0, self.test_size, batch_size):
            yield self.test_images[start:start + batch_size], self.test_labels[start:start + batch_size]

    def calibration_batches(self, count: int, batch_size: int, seed: int) -> Iterator[torch.Tensor]:
        for part in calibration_draw(self.train_size, count, batch_size, seed):
            yield self.train_images[part]

    def loader_workers(self, on_gpu: bool) -> int:
        # Decoded already: on a CPU, augmenting in the training process beats copying batches between processes;
        # beside a GPU, CPU workers augment while it computes.
        return loader_worker_count() if on_gpu else 0

    def collate(self, items: list) -> tuple[torch.Tensor, torch.Tensor]:
        return default_collate(items)

    def keep_test_split_on(self, device: torch.device) -> None:
        self.test_images, self.test_labels = self.test_images.to(device), self.test_labels.to(device)

    @property
    def skipped_images(self) -> int:
        return 0  # decoding stopped at the first unreadable file


MAX_LOADER_WORKERS = 8


def loader_worker_count() -> int:
    """DataLoader worker processes for this machine: one core left to the training process, 8 at most."""
    return max(1, min(MAX_LOADER_WORKERS, (os.cpu_count() or 2) - 1))


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


def decode_image(path: Path, error: type[BnextbenchError] = DataError):
    """One image file decoded as a PIL image in its own mode; a file that is no image, or one with more pixels than
    PIL decodes safely (its decompression-bomb limit), is an ``error`` naming it."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as image:
            image.load()
            return image
    except Image.DecompressionBombError:
        raise error(f"cannot decode image {path}: more pixels than PIL decodes safely (twice its limit of "
                    f"{Image.MAX_IMAGE_PIXELS})") from None
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError) as exc:  # SyntaxError: PIL's bad headers
        raise error(f"cannot decode image {path}: {exc.__class__.__name__}") from None


def open_rgb(path: Path, error: type[BnextbenchError] = DataError):
    """One image file decoded as an RGB PIL image; a file that is no image is an ``error`` naming it."""
    return decode_image(path, error).convert("RGB")


def _decode_image(path: Path) -> torch.Tensor:
    """One image file as a uint8 3 x H x W tensor; a file that is no image names itself."""
    from torchvision.transforms.v2 import functional as TF

    return TF.pil_to_tensor(open_rgb(path))


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


def list_imagefolder(root: Path) -> tuple[list[str], dict[str, dict[str, list[Path]]]]:
    """(classes, image files per split ("train", "test") and class) of ``root``/train and ``root``/val (or
    test); a missing split, one class, or class folders that differ between the splits is a one-line error."""
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
    return classes, files


def _file_count(files: dict[str, dict[str, list[Path]]]) -> int:
    return sum(len(paths) for split in files.values() for paths in split.values())


def _load_imagefolder(root: Path, resolution: int) -> tuple:
    classes, files = list_imagefolder(root)
    _check_fits_memory(_file_count(files), resolution)
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
    total = _memory_bytes()
    if needed > total:
        raise DataError(f"{images:,} images at {resolution} px need {needed / 2**30:,.1f} GiB decoded, more than "
                        f"this machine's {total / 2**30:,.1f} GiB; lower --resolution or stream it (--data-mode stream)")


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


def hold_out(data: ImageSource, count: int, seed: int) -> ImageData:
    """``data`` with ``count`` training images, spread evenly over the classes and drawn with ``seed``, moved
    into the evaluation split in place of the test images: what a supernet validates and candidates are scored
    on, so that the test split stays for the final, stand-alone models."""
    if not isinstance(data, ImageData):
        raise DataError("--holdout needs the images in memory; a streamed folder (--data-mode stream) cannot be "
                        "held out of")
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


def _checked_resolution(spec: DataSpec, resolution: int | None) -> int:
    """``resolution`` once in range; None: the data's natural size (an image folder's first training image)."""
    if resolution is None:
        if spec.kind == "imagefolder" and _test_folder(spec.path) is not None and (spec.path / "train").is_dir():
            resolution = _first_image_side(spec.path)
        else:
            resolution = DEFAULT_RESOLUTION[spec.kind]
    return RESOLUTION.check(resolution)


def load_data(
    text: str, resolution: int | None = None, train_limit: int | None = None, seed: int = 0, download: bool = False
) -> ImageData:
    """Decode (or read from cache) a data set at ``resolution`` (default: its natural size)."""
    spec = parse_data_spec(text)
    resolution = _checked_resolution(spec, resolution)
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


# An image folder is decoded into memory up to this size (decoded uint8 tensors), and streamed from its files
# beyond. In memory, the set is decoded once in one process and kept twice (RAM and the cache file): quick for
# sets like CIFAR (0.2 GB at 32 px), slow to start and wasteful for ImageNet (1.3 M files, 200 GB at 224 px),
# where decoding per sample in parallel workers is what the reference pipeline does anyway. A fixed size, not a
# share of this machine's memory: the two modes crop differently, so the choice must depend on the data and
# the resolution alone, for a protocol to mean the same pixels on every machine.
MEMORY_MODE_CAP_BYTES = 4 * 2**30


def _memory_bytes() -> int:
    return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")


def streams_by_size(images: int, resolution: int) -> bool:
    """Whether ``images`` decoded at ``resolution`` exceed what --data-mode auto keeps in memory
    (:data:`MEMORY_MODE_CAP_BYTES`)."""
    return images * 3 * resolution * resolution > MEMORY_MODE_CAP_BYTES


def check_data_mode(mode: str) -> str:
    """``mode`` if it is one of :data:`~bnextbench.choices.DATA_MODES`, else a one-line error."""
    if mode not in DATA_MODES:
        raise DataError(f"--data-mode must be one of {', '.join(DATA_MODES)}, got {brief(mode)}")
    return mode


def open_data(
    text: str, resolution: int | None = None, train_limit: int | None = None, seed: int = 0, download: bool = False,
    mode: str = "auto", skip_bad_images: bool = False,
) -> ImageSource:
    """The data set of ``text`` as training and evaluation read it: decoded in memory (:func:`load_data`), or an
    image folder streamed from its files (:mod:`bnextbench.streaming`) when ``mode`` is ``stream``, or ``auto``
    and the folder is large (:func:`streams_by_size`) or unreadable files are to be skipped (only the streaming
    reader can pass a file over)."""
    check_data_mode(mode)
    spec = parse_data_spec(text)
    if spec.kind != "imagefolder" and (mode == "stream" or skip_bad_images):
        wanted = "--data-mode stream" if mode == "stream" else "--skip-bad-images"
        raise DataError(f"{wanted} reads image folders only; {spec.kind} is decoded in memory")
    if spec.kind != "imagefolder" or mode == "memory":
        if skip_bad_images:
            raise DataError("--skip-bad-images needs a streamed folder; use --data-mode stream or auto")
        return load_data(text, resolution, train_limit, seed, download)
    classes, files = list_imagefolder(spec.path)
    resolution = _checked_resolution(spec, resolution)
    if train_limit is not None:
        TRAIN_LIMIT.check(train_limit)
    if mode == "auto" and not skip_bad_images and not streams_by_size(_file_count(files), resolution):
        return load_data(text, resolution, train_limit, seed, download)
    from .streaming import StreamingFolder

    return StreamingFolder(str(spec), classes, files, resolution, train_limit, seed, skip_bad_images)


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
