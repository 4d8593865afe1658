"""The training engine on real data: learning, exact resume, distillation, the store and bad input."""

from __future__ import annotations

import math

import pytest
import torch
from PIL import Image
from sklearn.datasets import load_digits

from bnextbench.complexity import count_model
from bnextbench.data import DataError, load_data
from bnextbench.errors import BnextbenchError
from bnextbench.store import Store
from bnextbench.teachers import train_teacher
from bnextbench.train import Recipe, TrainConfig, TrainingDiverged, evaluate, kd_loss, train
from bnextbench.train.loop import LAST_CHECKPOINT, load_checkpoint_model
from bnextbench.train.recipe import clip_gradients


def tiny_config(tmp_path, name="run", **overrides) -> TrainConfig:
    recipe = Recipe(**{"epochs": 2, "batch_size": 32, "seed": 3, **overrides.pop("recipe", {})})
    settings = {"model": "bnext_tiny", "data": "digits", "width_mult": 0.25, "train_limit": 200,
                "out": tmp_path / name, **overrides}
    return TrainConfig(recipe=recipe, **settings)


@pytest.fixture
def store(tmp_path) -> Store:
    return Store(tmp_path / "results.db")


def test_bnext_learns_digits_far_above_chance(tmp_path, store):
    config = tiny_config(tmp_path, train_limit=None, recipe={"epochs": 5, "batch_size": 64})
    record = train(config, store, progress=False)
    assert record["top1"] > 60.0  # chance is 10 %
    run = store.get_run(record["run_id"])
    assert run.status == "completed" and run.epochs_done == 5 and len(run.epochs) == 5
    assert run.arch_hash is None and run.width_mult == 0.25
    assert [m.epoch for m in run.epochs] == list(range(5))
    assert run.epochs[-1].tau < 1e-7 < run.epochs[0].tau  # progressive binarization reached pure sign
    model, _ = load_checkpoint_model(config.out / LAST_CHECKPOINT)
    assert run.complexity == count_model(model, 16).to_dict()
    # the checkpoint holds the network that was scored, BatchNorm statistics included
    assert evaluate(model, load_data("digits"), torch.device("cpu"))["top1"] == pytest.approx(record["top1"])


def test_one_epoch_run_with_default_settings_beats_chance(tmp_path, store):
    # The 1437 training digits at the default batch of 128 make 11 optimizer steps: too few for
    # BatchNorm's running averages to follow the weights, so this checks that the network evaluated
    # is the one trained. The same run evaluated with those averages scores chance.
    config = TrainConfig(model="bnext_tiny", data="digits", recipe=Recipe(epochs=1), width_mult=0.25,
                         out=tmp_path / "short")
    record = train(config, store, progress=False)
    assert record["top1"] >= 30.0  # chance is 10 %


def test_resume_is_exact(tmp_path, store):
    uninterrupted = train(tiny_config(tmp_path, "straight"), store, progress=False)

    def stop(epoch, metrics):
        if epoch == 0:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        train(tiny_config(tmp_path, "stopped"), store, progress=False, on_epoch=stop)
    stopped = max(store.runs(), key=lambda run: run.id)
    assert stopped.status == "interrupted" and stopped.epochs_done == 1
    resumed = train(tiny_config(tmp_path, "stopped", resume=True), store, progress=False)
    assert resumed["run_id"] == stopped.id
    assert store.get_run(stopped.id).status == "completed"
    assert len(store.get_run(stopped.id).epochs) == 2

    a = torch.load(tmp_path / "straight" / LAST_CHECKPOINT, weights_only=True)["model"]
    b = torch.load(tmp_path / "stopped" / LAST_CHECKPOINT, weights_only=True)["model"]
    assert a.keys() == b.keys()
    for name in a:
        assert torch.allclose(a[name].float(), b[name].float(), atol=1e-6, rtol=0), name
    assert resumed["top1"] == pytest.approx(uninterrupted["top1"])


def test_nan_loss_stops_and_keeps_the_last_good_checkpoint(tmp_path, store):
    # epoch 0 warms up at 1e-5; epoch 1 jumps to an absurd peak learning rate
    config = tiny_config(tmp_path, recipe={"epochs": 3, "warmup_epochs": 1, "lr": 1e30})
    with pytest.raises(TrainingDiverged, match="last good checkpoint"):
        train(config, store, progress=False)
    run = max(store.runs(), key=lambda r: r.id)
    assert run.status == "diverged" and run.epochs_done == 1
    assert torch.load(config.out / LAST_CHECKPOINT, weights_only=True)["epoch"] == 0


def test_kd_loss_formulas():
    student = torch.tensor([[2.0, 0.0, -1.0], [0.0, 1.0, 0.0]])
    teacher_a = torch.tensor([[1.0, 1.0, 0.0], [0.0, 3.0, 0.0]])
    teacher_b = torch.tensor([[0.0, 0.0, 4.0], [2.0, 0.0, 0.0]])
    log_s = torch.log_softmax(student, 1)
    per = torch.stack([-(torch.softmax(t, 1) * log_s).sum(1) for t in (teacher_a, teacher_b)], 1)
    alpha = torch.softmax(per, 1)
    assert kd_loss(student, [teacher_a, teacher_b], "sample") == pytest.approx(float(0.5 * (alpha * per).sum(1).mean()))
    batch = 0.5 * (alpha.mean(0) * per.mean(0)).sum()
    assert kd_loss(student, [teacher_a, teacher_b], "batch") == pytest.approx(float(batch))
    assert kd_loss(student, [teacher_a]) == pytest.approx(float(0.5 * per[:, 0].mean()))
    assert alpha[0, 1] > alpha[0, 0]  # the worse-matched teacher weighs more


def test_teacher_training_and_distillation(tmp_path, store):
    teacher_file = tmp_path / "teacher.pt"
    teacher = train_teacher(
        TrainConfig(model="resnet10t", data="digits", recipe=Recipe(epochs=2, batch_size=64, seed=1), out=tmp_path / "t"),
        teacher_file, store, progress=False,
    )
    assert teacher["top1"] > 30.0 and teacher_file.is_file()
    student = train(tiny_config(tmp_path, teacher=str(teacher_file), recipe={"epochs": 1}), store, progress=False)
    run = store.get_run(student["run_id"])
    assert run.teacher == str(teacher_file) and run.status == "completed"
    assert student["top1"] > 15.0  # six steps on the teacher's soft labels; chance is 10 %


def _digit_folder(root, split_classes: dict[str, list[int]], per_class: int = 4):
    """An image folder of real digits images (8x8 scans written as PNG), for the error paths."""
    digits = load_digits()
    for split, labels in split_classes.items():
        for label in labels:
            folder = root / split / f"digit{label}"
            folder.mkdir(parents=True)
            for i, image in enumerate(digits.images[digits.target == label][:per_class]):
                Image.fromarray((image * 255 / 16).astype("uint8")).save(folder / f"{i}.png")
    return root


def test_imagefolder_loads_real_images(tmp_path):
    root = _digit_folder(tmp_path / "d", {"train": [0, 1, 2], "val": [0, 1, 2]})
    data = load_data(f"imagefolder:{root}")
    assert data.classes == ["digit0", "digit1", "digit2"] and data.resolution == 8
    assert data.train_images.shape == (12, 3, 8, 8) and data.train_images.dtype == torch.uint8


@pytest.mark.parametrize(
    "make, fragment",
    [
        (lambda root: None, "is not a directory"),
        (lambda root: (root / "train").mkdir(parents=True), "must hold train/ and val/"),
        (lambda root: _digit_folder(root, {"train": [0, 1], "test": [0, 2]}), "class folders differ: digit1, digit2"),
    ],
)
def test_bad_data_paths(tmp_path, make, fragment):
    root = tmp_path / "data"
    make(root)
    with pytest.raises(DataError, match=fragment):
        load_data(f"imagefolder:{root}")


def test_corrupt_image_is_named(tmp_path):
    root = _digit_folder(tmp_path / "d", {"train": [0, 1], "val": [0, 1]})
    broken = root / "train" / "digit1" / "2.png"
    broken.write_bytes(b"\x89PNG\r\n\x1a\n truncated")
    with pytest.raises(DataError, match="2.png"):
        load_data(f"imagefolder:{root}")


def test_teacher_with_other_classes_is_refused_before_any_write(tmp_path, store):
    teacher_file = tmp_path / "teacher.pt"
    train_teacher(TrainConfig(model="resnet10t", data="digits", recipe=Recipe(epochs=1, batch_size=64),
                              train_limit=50, out=tmp_path / "t"), teacher_file, store, progress=False)
    runs_before = len(list(store.runs()))
    root = _digit_folder(tmp_path / "three", {"train": [0, 1, 2], "val": [0, 1, 2]})
    config = tiny_config(tmp_path, data=f"imagefolder:{root}", train_limit=None, teacher=str(teacher_file))
    with pytest.raises(BnextbenchError, match="predicts 10 classes but the data has 3"):
        train(config, store, progress=False)
    assert len(list(store.runs())) == runs_before
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize("scale", [1e-3, 1e3, math.nan])  # below and above the limit, and a NaN gradient
def test_clip_gradients_equals_torch_clipping(scale):
    torch.manual_seed(0)
    ours = [torch.nn.Parameter(torch.randn(5, 3)) for _ in range(3)]
    theirs = [torch.nn.Parameter(p.detach().clone()) for p in ours]
    for a, b in zip(ours, theirs):
        a.grad = torch.randn_like(a)
        a.grad[0, 0] *= scale
        b.grad = a.grad.clone()
    torch.testing.assert_close(clip_gradients(ours, 5.0), torch.nn.utils.clip_grad_norm_(theirs, 5.0),
                               rtol=0, atol=0, equal_nan=True)
    for a, b in zip(ours, theirs):
        torch.testing.assert_close(a.grad, b.grad, rtol=0, atol=0, equal_nan=True)
