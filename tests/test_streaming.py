"""Streamed image folders: the reference transforms, the same scores as in memory, bounded memory, released
checkpoints evaluated end to end, and unreadable files, on ImageNet-layout folders of real CIFAR-10 JPEGs."""

from __future__ import annotations

import copy
import json
import math
import subprocess
import sys
import tarfile
import textwrap
from pathlib import Path

import pytest
import torch
from PIL import Image
from timm.data.auto_augment import RandAugment
from timm.data.transforms import RandomResizedCropAndInterpolation
from torchvision.transforms import InterpolationMode, RandomHorizontalFlip
from torchvision.transforms.functional import pil_to_tensor

from bnextbench import data as data_module
from bnextbench.data import DataError, ImageData, load_data, open_data
from bnextbench.models import create_model
from bnextbench.store import Store
from bnextbench.streaming import StreamingFolder, streamed_train_transform
from bnextbench.train import Recipe, TrainConfig, evaluate, train
from bnextbench.train.loop import load_checkpoint_model, recalibrate_batch_norm

from .helpers import CIFAR10_TEST_JPEGS, REFERENCE_LISTING, reference_state

pytestmark = pytest.mark.skipif(not CIFAR10_TEST_JPEGS.is_file(), reason="shared CIFAR-10 JPEGs not available")

CLASSES = ("airplane", "automobile", "bird")
PER_CLASS = 4
SIZES = ((40, 56), (64, 48), (80, 80))  # width x height: portrait, landscape, square, none at the resolution
RESOLUTION = 40  # evaluation resizes the shorter side to floor(40 / 0.95) = 42: no half-pixel crop offsets


@pytest.fixture(scope="module")
def cifar_images() -> dict[str, list[Image.Image]]:
    """The first PER_CLASS test images of each of CLASSES, decoded from the shared archive."""
    found: dict[str, list[Image.Image]] = {name: [] for name in CLASSES}
    with tarfile.open(CIFAR10_TEST_JPEGS) as archive:
        for member in archive:
            parts = Path(member.name).parts  # test/<class>/NNNN.jpg
            if member.isfile() and len(parts) == 3 and len(found.get(parts[1], [None] * PER_CLASS)) < PER_CLASS:
                with Image.open(archive.extractfile(member)) as image:
                    found[parts[1]].append(image.convert("RGB"))
            if all(len(images) == PER_CLASS for images in found.values()):
                return found
    pytest.skip("the shared CIFAR-10 archive lacks the expected classes")


def image_folder(root: Path, images: dict[str, list[Image.Image]], copies: int = 1,
                 extra_classes: int = 0) -> Path:
    """ROOT/train/<class>/*.jpg and ROOT/val/<class>/*.jpg: every image scaled up to SIZES in turn, written
    ``copies`` times; ``extra_classes`` empty class folders after them (a subset of a larger label set)."""
    for split in ("train", "val"):
        for name, originals in images.items():
            folder = root / split / name
            folder.mkdir(parents=True)
            for copy_index in range(copies):
                for index, image in enumerate(originals):
                    scaled = image.resize(SIZES[index % len(SIZES)], Image.Resampling.BICUBIC)
                    scaled.save(folder / f"{copy_index:03d}-{index}.jpg", quality=95)
        for extra in range(extra_classes):
            (root / split / f"zz{extra:04d}").mkdir()
    return root


def reference_eval_crop(path: Path, resolution: int) -> Image.Image:
    """The evaluation pixels computed with PIL alone: the shorter side resized (bicubic) to
    floor(resolution / 0.95), the longer in proportion (truncated), then the centred resolution x resolution box."""
    with Image.open(path) as image:
        width, height = image.size
        short = math.floor(resolution / 0.95)
        if width <= height:
            size = (short, int(short * height / width))
        else:
            size = (int(short * width / height), short)
        resized = image.convert("RGB").resize(size, Image.Resampling.BICUBIC)
    left, top = round((size[0] - resolution) / 2), round((size[1] - resolution) / 2)
    return resized.crop((left, top, left + resolution, top + resolution))


def test_evaluation_crops_as_the_reference_pipeline(tmp_path, cifar_images):
    root = image_folder(tmp_path / "d", cifar_images)
    folder = open_data(f"imagefolder:{root}", RESOLUTION, mode="stream")
    assert isinstance(folder, StreamingFolder)
    streamed = torch.cat([images for images, _ in folder.test_batches(5)])
    assert streamed.shape == (len(CLASSES) * PER_CLASS, 3, RESOLUTION, RESOLUTION) and streamed.dtype == torch.uint8
    files = sorted((root / "val").glob("*/*.jpg"))
    for image, path in zip(streamed, files):
        assert torch.equal(image, pil_to_tensor(reference_eval_crop(path, RESOLUTION))), path
    # the crop box matters: the plain square resize of the in-memory path gives other pixels
    assert not torch.equal(streamed, load_data(f"imagefolder:{root}", RESOLUTION).test_images)


def test_training_transforms_are_the_reference_ones(tmp_path, cifar_images):
    bnext = streamed_train_transform("bnext", RESOLUTION)
    crop, flip, rand_augment = bnext.transforms[:3]
    assert isinstance(crop, RandomResizedCropAndInterpolation) and crop.size == (RESOLUTION, RESOLUTION)
    assert crop.scale == (0.08, 1.0) and crop.ratio == pytest.approx((3 / 4, 4 / 3))
    assert crop.interpolation == InterpolationMode.BICUBIC
    assert isinstance(flip, RandomHorizontalFlip) and flip.p == 0.5
    assert isinstance(rand_augment, RandAugment) and rand_augment.num_layers == 2
    assert {op.magnitude for op in rand_augment.ops} == {7} and {op.magnitude_std for op in rand_augment.ops} == {0.5}
    assert "ColorJitter" not in repr(bnext) and "RandomErasing" not in repr(bnext)

    root = image_folder(tmp_path / "d", cifar_images)
    folder = open_data(f"imagefolder:{root}", RESOLUTION, mode="stream")
    for augment in ("bnext", "cifar", "flip", "none"):
        items = folder.train_set(augment)
        for index in range(len(items)):
            image, label = items[index]
            assert image.shape == (3, RESOLUTION, RESOLUTION) and image.dtype == torch.uint8, augment
            assert label == index // PER_CLASS
    # "none" is the evaluation crop of the training files
    plain = folder.train_set("none")
    first = min((root / "train").glob("*/*.jpg"))
    assert torch.equal(plain[0][0], pil_to_tensor(reference_eval_crop(first, RESOLUTION)))


def test_streamed_scores_equal_in_memory_scores_of_the_same_pixels(tmp_path, cifar_images):
    """A streamed JPEG folder and an in-memory folder of PNGs holding, losslessly, the evaluation crops of the
    same JPEGs computed with PIL alone (:func:`reference_eval_crop`): in memory, PNGs already at the resolution
    are decoded without resizing, so both sources present the same pixels in the same order. BatchNorm
    calibration (training images, un-augmented) and evaluation through both must then agree exactly."""
    jpegs = image_folder(tmp_path / "jpegs", cifar_images)
    for path in sorted(jpegs.glob("*/*/*.jpg")):
        target = tmp_path / "pngs" / path.relative_to(jpegs).with_suffix(".png")
        target.parent.mkdir(parents=True, exist_ok=True)
        reference_eval_crop(path, RESOLUTION).save(target)
    streamed = open_data(f"imagefolder:{jpegs}", RESOLUTION, mode="stream")
    in_memory = open_data(f"imagefolder:{tmp_path / 'pngs'}", RESOLUTION, mode="memory")
    assert isinstance(in_memory, ImageData)

    torch.manual_seed(0)
    model = create_model("bnext_tiny", num_classes=len(CLASSES), small_input=True, width_mult=0.25)
    scores = []
    for source in (streamed, in_memory):
        calibrated = copy.deepcopy(model)
        recalibrate_batch_norm(calibrated, source, torch.device("cpu"), batch_size=5, seed=1)
        scores.append(evaluate(calibrated, source, torch.device("cpu"), batch_size=5))
    assert scores[0]["images"] == scores[1]["images"] == len(CLASSES) * PER_CLASS
    assert scores[0]["top1"] == scores[1]["top1"] and scores[0]["top5"] == scores[1]["top5"]
    assert scores[0]["loss"] == pytest.approx(scores[1]["loss"], rel=1e-5)


PASS_SCRIPT = """
import json, resource, sys
from bnextbench.data import open_data
folder = open_data(sys.argv[1], 224, mode="stream")
seen = sum(len(labels) for _, labels in folder.test_batches(32))
seen += sum(len(images) for images in folder.calibration_batches(folder.train_size, 32, 0))
peak_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss + resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
print(json.dumps({"images": seen, "peak_bytes": peak_kib * 1024}))
"""


def test_peak_memory_does_not_grow_with_the_number_of_files(tmp_path, cifar_images):
    """A full pass (every test image, every training image as calibration reads them) at 224 px in a fresh
    process, over 2 x 36 and 2 x 360 files: the larger folder's peak resident memory (the process and its
    largest worker) stays within a quarter of what decoding its files into memory would take."""
    peaks = {}
    for copies in (3, 30):
        root = image_folder(tmp_path / f"x{copies}", cifar_images, copies=copies)
        done = subprocess.run([sys.executable, "-c", textwrap.dedent(PASS_SCRIPT), f"imagefolder:{root}"],
                              capture_output=True, text=True, timeout=600, check=False)
        assert done.returncode == 0, done.stderr
        result = json.loads(done.stdout.strip().splitlines()[-1])
        assert result["images"] == 2 * copies * len(CLASSES) * PER_CLASS
        peaks[copies] = result["peak_bytes"]
    decoded_larger = 2 * 30 * len(CLASSES) * PER_CLASS * 3 * 224 * 224  # 65 MB
    assert peaks[30] - peaks[3] < decoded_larger / 4, peaks


def test_released_checkpoint_evaluated_end_to_end(tmp_path, cifar_images, run_cli):
    """A state_dict laid out as the released BNext-T checkpoint, imported, then evaluated through the command
    line on a 1000-class folder (3 classes with images, the others empty) streamed at 32 px: the evaluation is
    a run of kind evaluate that no leaderboard or reuse lookup sees."""
    if not REFERENCE_LISTING.is_file():
        pytest.skip("reference listing not available")
    state = reference_state(json.loads(REFERENCE_LISTING.read_text())["bnext_tiny"])
    torch.save({"state_dict": state}, tmp_path / "released.pth.tar")
    imported = tmp_path / "bnext_tiny.pt"
    code, _, err = run_cli("import-checkpoint", str(tmp_path / "released.pth.tar"), "--model", "bnext_tiny",
                           "--out", str(imported))
    assert code == 0, err
    root = image_folder(tmp_path / "imagenet", cifar_images, extra_classes=1000 - len(CLASSES))
    db = tmp_path / "results.db"
    code, out, err = run_cli("evaluate", str(imported), "--data", f"imagefolder:{root}", "--resolution", "32",
                             "--data-mode", "stream", "--batch-size", "8", "--device", "cpu", "--db", str(db),
                             "--format", "json")
    assert code == 0, err
    record = json.loads(out.strip().splitlines()[-1])
    store = Store(db)
    run = store.get_run(record["run_id"])
    assert (run.kind, run.status, run.model, run.num_classes, run.resolution) == (
        "evaluate", "completed", "bnext_tiny", 1000, 32)
    assert run.epochs_planned == 0 and run.checkpoint == str(imported) and run.skipped_images == 0
    assert (run.top1, run.top5) == (record["top1"], record["top5"]) and run.eval_images_per_s > 0
    assert record["images"] == len(CLASSES) * PER_CLASS and run.complexity["bops"] > 0
    # the same numbers as the library computes on the same streamed split
    model, _ = load_checkpoint_model(imported)
    folder = open_data(f"imagefolder:{root}", 32, mode="stream")
    again = evaluate(model, folder, torch.device("cpu"), batch_size=8)
    assert (again["top1"], again["top5"]) == (run.top1, run.top5)
    assert again["loss"] == pytest.approx(record["loss"], rel=1e-5)
    assert store.completed_runs() == [] and store.find_completed_run(run.candidate, run.protocol) is None


def test_an_unreadable_file_is_named_or_skipped_and_counted(tmp_path, cifar_images, run_cli):
    root = image_folder(tmp_path / "d", cifar_images)
    checkpoint = tmp_path / "model.pt"
    from bnextbench.models.checkpoint import save_model_checkpoint

    kwargs = {"num_classes": len(CLASSES), "small_input": True, "width_mult": 0.25}
    save_model_checkpoint(checkpoint, "bnext_tiny", create_model("bnext_tiny", **kwargs), kwargs)
    empty = root / "val" / "bird" / "000-1.jpg"
    empty.write_bytes(b"")
    db = str(tmp_path / "r.db")
    args = ("evaluate", str(checkpoint), "--data", f"imagefolder:{root}", "--resolution", "32", "--db", db)
    code, out, err = run_cli(*args, "--data-mode", "stream")
    assert code == 2 and out == "" and err == f"error: cannot decode image {empty}: UnidentifiedImageError\n"
    failed = max(Store(db).runs(), key=lambda run: run.id)
    assert (failed.kind, failed.status, failed.message) == ("evaluate", "failed", err[len("error: "):].strip())

    code, out, err = run_cli(*args, "--skip-bad-images", "--format", "json")  # auto: skipping streams
    assert code == 0, err
    record = json.loads(out.strip().splitlines()[-1])
    assert record["skipped_images"] == 1 and record["images"] == len(CLASSES) * PER_CLASS - 1
    run = Store(db).get_run(record["run_id"])
    assert run.status == "completed" and run.skipped_images == 1


def test_training_skips_an_unreadable_file_once_and_records_it(tmp_path, cifar_images):
    root = image_folder(tmp_path / "d", cifar_images)
    broken = root / "train" / "automobile" / "000-2.jpg"
    broken.write_bytes(b"\xff\xd8\xff not a JPEG after all")
    store = Store(tmp_path / "r.db")

    def config(name: str, skip: bool) -> TrainConfig:
        return TrainConfig(model="bnext_tiny", data=f"imagefolder:{root}", width_mult=0.25, resolution=16,
                           recipe=Recipe(epochs=2, batch_size=len(CLASSES) * PER_CLASS, augment="flip"),
                           data_mode="stream", skip_bad_images=skip, out=tmp_path / name, device="cpu")

    with pytest.raises(DataError, match=f"^cannot decode image {broken}: "):
        train(config("strict", skip=False), store, progress=False)
    failed = max(store.runs(), key=lambda run: run.id)
    assert failed.status == "failed" and str(broken) in failed.message and "\n" not in failed.message
    record = train(config("skipping", skip=True), store, progress=False)
    run = store.get_run(record["run_id"])
    assert run.status == "completed" and run.skipped_images == 1  # read in both epochs, counted once
    assert len(run.epochs) == 2


def test_auto_mode_streams_past_its_cap(tmp_path, cifar_images, monkeypatch):
    root = image_folder(tmp_path / "d", cifar_images)
    spec = f"imagefolder:{root}"
    assert isinstance(open_data(spec, 16), ImageData)
    assert isinstance(open_data(spec, 16, skip_bad_images=True), StreamingFolder)
    monkeypatch.setattr(data_module, "MEMORY_MODE_CAP_BYTES", 2 * len(CLASSES) * PER_CLASS * 3 * 16 * 16 - 1)
    assert isinstance(open_data(spec, 16), StreamingFolder)
    assert isinstance(open_data(spec, 16, mode="memory"), ImageData)


def test_streamed_folders_keep_the_folder_checks(tmp_path, cifar_images):
    root = image_folder(tmp_path / "d", cifar_images)
    (root / "val" / "bird").rename(root / "val" / "cat")
    with pytest.raises(DataError, match="train and val class folders differ: bird, cat"):
        open_data(f"imagefolder:{root}", 16, mode="stream")


@pytest.mark.parametrize(
    "args, fragment",
    [
        (("--data-mode", "disk"), "Invalid value for '--data-mode'"),
        (("--data-mode", "stream"), "--data-mode stream reads image folders only; digits is decoded in memory"),
        (("--skip-bad-images",), "--skip-bad-images reads image folders only"),
    ],
)
def test_bad_data_modes_are_one_line_exit_2(tmp_path, args, fragment, run_cli):
    db = tmp_path / "r.db"
    code, out, err = run_cli("train", "bnext_tiny", "--data", "digits", *args, "--db", str(db))
    assert code == 2 and out == "" and fragment in err and err.count("\n") == 1
    assert not db.exists()


def test_library_checks_the_data_mode_and_refuses_holding_out_of_a_stream(tmp_path, cifar_images):
    with pytest.raises(DataError, match="--data-mode must be one of auto, memory, stream, got 'disk'"):
        open_data("digits", mode="disk")
    with pytest.raises(DataError, match="--data-mode must be one of"):
        TrainConfig(model="bnext_tiny", data="digits", recipe=Recipe(epochs=1), data_mode="disk")
    root = image_folder(tmp_path / "d", cifar_images)
    config = TrainConfig(model="bnext_tiny", data=f"imagefolder:{root}", recipe=Recipe(epochs=1), resolution=16,
                         holdout=3, data_mode="stream", out=tmp_path / "run")
    with pytest.raises(DataError, match="--holdout needs the images in memory"):
        train(config, tmp_path / "r.db", progress=False)
    assert not (tmp_path / "r.db").exists() and not (tmp_path / "run").exists()
