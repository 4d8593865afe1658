"""The fast training step: bf16 autocast, no host reads inside a step, channels-last, compile, device data."""

from __future__ import annotations

import copy
import math

import pytest
import torch

from bnextbench.data import load_data
from bnextbench.errors import BnextbenchError
from bnextbench.models import create_model
from bnextbench.nn import HardSign, ProgressiveSign, cpu_kernels
from bnextbench.nn.layers import PReLU
from bnextbench.train.recipe import set_tau

BF16_GRAD_RTOL = 2e-2  # ||g_fast - g_plain|| / ||g_plain|| under bf16: both round the backward to 8 bits


def small(name: str) -> torch.nn.Module:
    torch.manual_seed(0)
    return create_model(name, num_classes=10, small_input=True, width_mult=0.125)


class HostReads:
    """Counts ``Tensor.item``, ``float(tensor)``, ``int(tensor)`` and ``bool(tensor)`` calls while active: each
    waits for the device when the tensor lives on a GPU."""

    NAMES = ("item", "__float__", "__int__", "__bool__", "tolist")

    def __init__(self, monkeypatch):
        self.calls: list[str] = []
        for name in self.NAMES:
            original = getattr(torch.Tensor, name)

            def counted(tensor, *args, _name=name, _original=original):
                self.calls.append(_name)
                return _original(tensor, *args)

            monkeypatch.setattr(torch.Tensor, name, counted)


@pytest.mark.parametrize("tau", [0.5, 1e-9])
def test_a_training_step_of_bnext_reads_no_tensor_on_the_host(monkeypatch, tau):
    model = small("bnext_tiny").train()
    set_tau(model, tau)
    images = torch.randn(4, 3, 16, 16)
    reads = HostReads(monkeypatch)
    model(images).logsumexp(1).mean().backward()
    assert reads.calls == []
    assert all(m.is_sign == (tau < 1e-7) for m in model.modules() if isinstance(m, ProgressiveSign))


def test_progressive_sign_follows_tau_through_set_tau_and_load_state_dict():
    source, target = ProgressiveSign(), ProgressiveSign()
    source.set_tau(1e-9)
    assert source.is_sign and not target.is_sign
    target.load_state_dict(source.state_dict())
    assert target.is_sign and float(target.tau) == pytest.approx(1e-9)
    weight = torch.tensor([-0.2, 0.0, 0.3])
    assert target(weight).tolist() == [-1.0, 1.0, 1.0]


@pytest.mark.parametrize("name", ["bnext_tiny", "reactnet_a", "birealnet18"])
def test_under_bf16_autocast_the_cpu_kernels_compute_what_plain_torch_does(name):
    """bnext (ProgressiveSign, HardSign, PReLU, Recoupling), ReActNet (RSign, HalveResolution), Bi-Real (ApproxSign):
    the hand-written backward passes and the conv kernels must give way to autocast, not mix dtypes."""
    model = small(name).train()
    images = torch.randn(4, 3, 16, 16)
    runs = {}
    for enabled in (True, False):
        model.zero_grad()
        torch.manual_seed(1)
        with cpu_kernels(enabled), torch.autocast("cpu", dtype=torch.bfloat16):
            logits = model(images)
        logits.float().logsumexp(1).mean().backward()
        runs[enabled] = logits.detach(), {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}
    (fast_logits, fast_grads), (plain_logits, plain_grads) = runs[True], runs[False]
    assert fast_logits.dtype == torch.bfloat16 and torch.equal(fast_logits, plain_logits)
    assert fast_grads.keys() == plain_grads.keys()
    for key, grad in fast_grads.items():
        assert grad.dtype == torch.float32 and torch.isfinite(grad).all(), key
        error = (grad - plain_grads[key]).norm() / plain_grads[key].norm().clamp_min(1e-12)
        assert error < BF16_GRAD_RTOL, (key, float(error))


def test_hand_written_backwards_return_each_gradient_in_its_input_dtype():
    """A bf16 activation meeting an fp32 shift or slope under autocast: the Function's own backward (called
    directly, before autograd could cast what it returns) gives x's gradient in bf16 and the parameter's in
    fp32, against a float64 autograd reference of the same module: x's within bf16 rounding, the parameter's
    (summed in fp32) within 1e-3 of its norm."""
    generator = torch.Generator().manual_seed(0)
    x = torch.randn(2, 3, 4, 4, generator=generator).to(torch.bfloat16)
    for module in (HardSign(3), PReLU(3)):
        with torch.no_grad():
            for parameter in module.parameters():
                parameter.copy_(torch.rand(parameter.shape, generator=generator) * 0.6 - 0.3)
        parameter = next(module.parameters())
        with cpu_kernels(True), torch.autocast("cpu", dtype=torch.bfloat16):
            out = module(x)
        upstream = torch.linspace(-1, 1, out.numel()).view_as(out).to(out.dtype)
        returned = [g for g in out.grad_fn.apply(upstream) if g is not None]
        assert [g.dtype for g in returned] == [torch.bfloat16, torch.float32]
        reference = copy.deepcopy(module).double()
        reference_x = x.double().requires_grad_()
        with cpu_kernels(False):
            reference(reference_x).backward(upstream.double())
        reference_param = next(reference.parameters()).grad
        assert torch.allclose(returned[0].double(), reference_x.grad, rtol=1e-2, atol=1e-2)
        assert (returned[1].view_as(parameter).double() - reference_param).norm() <= 1e-3 * reference_param.norm()


# --- batched augmentation on the device (run here on the CPU) -------------------------------------------------


def test_crop_and_flip_equals_torchvision_per_image_for_the_same_draws():
    from torchvision.transforms.v2 import functional as TF

    from bnextbench.train.fast import crop_and_flip

    generator = torch.Generator().manual_seed(0)
    images = torch.randint(0, 256, (12, 3, 16, 16), dtype=torch.uint8, generator=generator)
    padding = 2
    top = torch.randint(0, 2 * padding + 1, (12,), generator=generator)
    left = torch.randint(0, 2 * padding + 1, (12,), generator=generator)
    flip = torch.arange(12) % 2 == 0
    batched = crop_and_flip(images, top, left, flip, padding)
    for n in range(12):
        expected = TF.crop(TF.pad(images[n], [padding]), int(top[n]), int(left[n]), 16, 16)
        if flip[n]:
            expected = TF.horizontal_flip(expected)
        assert torch.equal(batched[n], expected), n
    assert batched.dtype == torch.uint8


def identified_images(count: int, side: int = 8) -> tuple[torch.Tensor, torch.Tensor]:
    """uint8 images whose every pixel is their index (mod 256), with the index as label."""
    labels = torch.arange(count)
    return (labels % 256).to(torch.uint8).view(-1, 1, 1, 1).expand(-1, 3, side, side).contiguous(), labels


@pytest.mark.parametrize("augment", ["cifar", "flip", "none"])
def test_an_epoch_on_the_device_visits_every_image_once_and_keeps_it_whole(augment):
    from bnextbench.train.fast import DeviceImages

    images, labels = identified_images(100)
    source = DeviceImages(images, labels, augment, torch.device("cpu"))
    epoch = source.batches(batch_size=32, drop_last=False, seed=5)
    batches = list(epoch)
    assert len(batches) == len(epoch) == 4 and [len(b[1]) for b in batches] == [32, 32, 32, 4]
    seen = torch.cat([b[1] for b in batches])
    assert sorted(seen.tolist()) == list(range(100))
    for batch, batch_labels in batches:  # each image's pixels are its own (or the zero padding of a crop)
        own = batch_labels.view(-1, 1, 1, 1).to(torch.uint8)
        assert bool(((batch == own) | (batch == 0)).all())
    assert not torch.equal(seen, torch.cat([b[1] for b in source.batches(32, False, seed=6)]))
    assert torch.equal(seen, torch.cat([b[1] for b in source.batches(32, False, seed=5)]))  # seeded: repeatable
    dropped = source.batches(batch_size=32, drop_last=True, seed=5)
    assert len(dropped) == 3 and len(list(dropped)) == 3


def test_batched_draws_spread_the_offsets_uniformly_and_flip_half_the_images():
    """RandomCrop draws each offset uniformly from [0, 2 padding] and RandomHorizontalFlip flips with p = 1/2;
    the batched draws must too. Channel 0 holds column + 1 and channel 1 row + 1 (0 is padding), so the
    pixels give each image's offsets and flip away: for an unmirrored crop at left L, output column j shows
    column L + j - padding."""
    from bnextbench.train.fast import DeviceImages

    side, count = 16, 6000
    ramp = torch.arange(1, side + 1, dtype=torch.uint8)
    images = torch.zeros(count, 3, side, side, dtype=torch.uint8)
    images[:, 0] = ramp.view(1, side)
    images[:, 1] = ramp.view(side, 1)
    source = DeviceImages(images, torch.zeros(count, dtype=torch.long), "cifar", torch.device("cpu"))
    ((batch, _),) = list(source.batches(count, False, seed=1))
    padding = side // 8
    middle = side // 2  # always inside the image: every offset moves it at most `padding`
    columns, rows = batch[:, 0, middle].long(), batch[:, 1, :, middle].long()
    flipped = columns[:, middle + 1] < columns[:, middle]
    step = torch.where(flipped, -1, 1)
    left = torch.where(flipped, columns[:, middle] - 1 - (side - 1 - middle), columns[:, middle] - 1 - middle) + padding
    top = rows[:, middle] - 1 - middle + padding
    assert torch.equal(columns[:, middle + 1] - columns[:, middle], step)  # a mirrored ramp runs backwards
    expected = count / (2 * padding + 1)
    for offsets in (left, top):
        counts = torch.bincount(offsets, minlength=2 * padding + 1)
        assert len(counts) == 2 * padding + 1 and ((counts - expected).abs() < 0.1 * expected).all(), counts
    assert abs(float(flipped.float().mean()) - 0.5) < 0.03


# --- the trainer ------------------------------------------------------------------------------------------------


def fast_config(tmp_path, **overrides):
    from bnextbench.train import Recipe, TrainConfig

    recipe = Recipe(**{"epochs": 3, "batch_size": 50, "seed": 3, **overrides.pop("recipe", {})})
    settings = {"model": "bnext_tiny", "data": "digits", "width_mult": 0.25, "train_limit": 500,
                "out": tmp_path / "run", **overrides}
    return TrainConfig(recipe=recipe, **settings)


def test_bf16_channels_last_on_device_data_learns_digits_on_the_cpu(tmp_path):
    from bnextbench.store import Store
    from bnextbench.train import train

    store = Store(tmp_path / "results.db")
    config = fast_config(tmp_path, recipe={"precision": "bf16"}, channels_last=True, data_on_device=True)
    record = train(config, store, progress=False)
    run = store.get_run(record["run_id"])
    assert all(math.isfinite(epoch.train_loss) and math.isfinite(epoch.test_loss) for epoch in run.epochs)
    assert record["top1"] > 25.0  # chance is 10 %
    assert run.recipe["precision"] == "bf16"  # recorded, and part of the protocol key
    fp32_protocol = fast_config(tmp_path).protocol(load_data("digits", None, 500, 3))
    assert run.protocol_key != fp32_protocol.key
    assert "precision" not in fp32_protocol.to_dict()["recipe"]  # fp32 keys are those of before the option


def test_a_diverging_gpu_style_run_reads_its_loss_late_but_still_stops_unsaved(tmp_path, monkeypatch):
    """With the loss read only every 1000 steps (as on a GPU, every GPU_SYNC_STEPS), a NaN loss in epoch 1 is
    still reported as diverged at the epoch's last step and no checkpoint holds the diverged weights."""
    from bnextbench.store import Store
    from bnextbench.train import TrainingDiverged, train
    from bnextbench.train import loop

    monkeypatch.setattr(loop, "sync_steps", lambda device: 1000)
    store = Store(tmp_path / "results.db")
    config = fast_config(tmp_path, recipe={"epochs": 2, "warmup_epochs": 0, "lr": 1e30})
    with pytest.raises(TrainingDiverged, match="training loss became nan in epoch 1; no checkpoint is kept"):
        train(config, store, progress=False)
    assert not (config.out / "last.pt").exists()
    assert [run.status for run in store.runs()] == ["diverged"]


def test_compiled_model_matches_eager_on_one_batch():
    """torch.compile (inductor, C++ on the CPU) against eager on the same batch and weights, in training mode:
    logits within 1e-4 relative to their scale, losses within 1e-5, all gradients together within 1e-3 and
    each within 5 % (fused kernels reorder sums; see test_cpu_kernels on ill-conditioned BatchNorm gradients)."""
    from bnextbench.train.fast import check_compile_works, training_forward

    try:
        check_compile_works(torch.device("cpu"))
    except BnextbenchError as exc:
        pytest.skip(f"this machine cannot compile: {exc}")
    model = small("bnext_tiny").train()
    set_tau(model, 0.5)
    images, labels = torch.randn(8, 3, 16, 16), torch.arange(8) % 10
    results = []
    for compiled in (False, True):
        model.zero_grad()
        state = {k: v.clone() for k, v in model.state_dict().items()}  # BatchNorm statistics move per forward
        forward = training_forward(model, "fp32", torch.device("cpu"), compile_model=compiled)
        logits = forward(images)
        loss = torch.nn.functional.cross_entropy(logits, labels)
        loss.backward()
        grads = [p.grad.clone() for p in model.parameters() if p.grad is not None]  # frozen PReLUs have none
        results.append((logits.detach(), loss.detach(), grads))
        model.load_state_dict(state)
    (eager_logits, eager_loss, eager_grads), (fast_logits, fast_loss, fast_grads) = results
    assert (fast_logits - eager_logits).abs().max() <= 1e-4 * eager_logits.abs().max()
    assert torch.allclose(fast_loss, eager_loss, rtol=1e-5)
    assert len(fast_grads) == len(eager_grads) > 0
    fast_all, eager_all = torch.cat([g.flatten() for g in fast_grads]), torch.cat([g.flatten() for g in eager_grads])
    assert (fast_all - eager_all).norm() <= 1e-3 * eager_all.norm()
    # Small tensors behind train-mode BatchNorm lose digits: 1.3 % measured on one 8-element gradient here.
    for fast, eager in zip(fast_grads, eager_grads):
        assert (fast - eager).norm() <= 5e-2 * eager.norm() + 1e-8


def test_precision_and_data_placement_refuse_bad_input_in_one_line(run_cli, tmp_path):
    for args in (["--precision", "fp16"], ["--precision", "junk"]):
        code, out, err = run_cli("train", "bnext_tiny", *args, "--epochs", "1", "--db", str(tmp_path / "r.db"))
        assert code == 2 and err.strip().count("\n") == 0 and "--precision" in err, err
    code, _, err = run_cli("train", "bnext_tiny", "--augment", "bnext", "--data-on-device", "--epochs", "1",
                           "--db", str(tmp_path / "r.db"), "--device", "cpu")
    assert code == 2 and err.strip().count("\n") == 0 and "--data-on-device" in err, err
    assert not (tmp_path / "r.db").exists()  # refused before any run was recorded
    code, out, _ = run_cli("train", "--help")
    assert code == 0 and "fp32 or bf16" in out and "--channels-last" in out and "--compile" in out
