"""Packed export and the XNOR-popcount engine: exact against the simulated model, round trips from train and
import-checkpoint, size, and refusals of bad input.

Both run with bnextbench's CPU kernels off: the simulated binary convs then sum ±1 products in fp32,
exactly, as the engine does with integers, and the float layers around them (which the engine shares
with the simulated model) round alike. With the kernels on, Winograd's transforms round such a sum by
~1e-7, which can move a later pre-sign value across 0 and change the logits at 1e-2 (the
discontinuities tests/test_cpu_kernels.py describes): the fast path's rounding, not the engine's.
"""

from __future__ import annotations

import io
import json

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image
from torch import nn

from bnextbench.deploy import DeployError, load_packed, plan_layers, serialize
from bnextbench.deploy.fileformat import decode, encode
from bnextbench.deploy.layers import PackedBinaryConv2d, PackedBinaryLinear, pack_weight_signs
from bnextbench.models import create_model, list_models
from bnextbench.nn import (
    HardSign,
    ProgressiveSign,
    QuantConv2d,
    QuantLinear,
    ScaledSign,
    binary_sign,
    cpu_kernels,
    is_binary,
)
from bnextbench.train.loop import load_checkpoint_model
from bnextbench.train.recipe import set_tau

from .helpers import NUM_CLASSES, REFERENCE_LISTING, SMALL_RESOLUTION, reference_state, with_classes

LOGITS_RTOL = 1e-5


def relative_difference(got: torch.Tensor, expected: torch.Tensor) -> float:
    return float((got - expected).abs().max() / expected.abs().max())


def signs_of(x: torch.Tensor, threshold: torch.Tensor) -> torch.Tensor:
    """sign(x - t) per channel with 0 -> +1: what the engine packs."""
    return binary_sign(x - threshold.view(1, -1, *([1] * (x.dim() - 2))))


# --- the layers -------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("channels", [1, 63, 64, 65, 130])
@pytest.mark.parametrize("kernel, stride", [(1, 1), (3, 1), (3, 2), (5, 2)])
@pytest.mark.parametrize("side", [1, 4, 7])
def test_packed_conv_equals_float_conv_of_signs(channels, kernel, stride, side):
    generator = torch.Generator().manual_seed(channels * 100 + kernel * 10 + side)
    x = torch.randn(2, channels, side, side, generator=generator)
    threshold = 0.3 * torch.randn(channels, generator=generator)
    x[0, :, 0, 0] = threshold  # exactly on the threshold: sign(0) = +1
    x[1, :, -1, -1] = 0.0
    weight = torch.randn(5, channels, kernel, kernel, generator=generator)
    weight[0, 0] = 0.0  # sign(0) = +1 for weights too
    layer = PackedBinaryConv2d(channels, 5, kernel, stride, kernel // 2, scaled=False, bias=False)
    layer.packed_weight.copy_(pack_weight_signs(weight))
    layer.threshold.copy_(threshold)
    expected = F.conv2d(signs_of(x, threshold), binary_sign(weight), None, stride, kernel // 2)
    assert torch.equal(layer(x), expected)  # zero padding included: border outputs sum fewer taps


def test_packed_linear_equals_float_linear_of_signs():
    generator = torch.Generator().manual_seed(0)
    x, weight, bias = torch.randn(3, 100, generator=generator), torch.randn(7, 100, generator=generator), torch.randn(7)
    x[0, :50] = 0.0
    layer = PackedBinaryLinear(100, 7, bias=True)
    layer.packed_weight.copy_(pack_weight_signs(weight))
    layer.bias.copy_(bias)
    assert torch.equal(layer(x), F.linear(binary_sign(x), binary_sign(weight), bias))


def test_packed_conv_refuses_an_input_of_the_wrong_shape():
    layer = PackedBinaryConv2d(8, 4, 3, 1, 1, scaled=False, bias=False)
    with pytest.raises(ValueError, match=r"takes \(N, 8, H, W\) input"):
        layer(torch.zeros(1, 9, 4, 4))
    with pytest.raises(TypeError, match="float32"):
        layer(torch.zeros(1, 8, 4, 4, dtype=torch.float64))


# --- every registered model -------------------------------------------------------------------------------------

def randomised_in_sign_mode(name: str, seed: int = 0) -> nn.Module:
    """``name`` at 32 px and 10 classes with random weights, shifts and BatchNorm statistics, weights binary
    (sign mode), and a third of every BatchNorm's channels and shifts set to 0 so that exact zeros reach the
    binarizers."""
    model = create_model(name, num_classes=NUM_CLASSES, small_input=True)
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for key, tensor in model.state_dict().items():
            if key.endswith("running_var"):
                tensor.copy_(0.5 + torch.rand(tensor.shape, generator=generator))
            elif tensor.is_floating_point() and not key.endswith("tau"):
                tensor.copy_(0.3 * torch.randn(tensor.shape, generator=generator))
        for module in model.modules():
            if isinstance(module, nn.BatchNorm2d):
                module.weight[::3] = 0.0
                module.bias[::3] = 0.0
            shift = getattr(module, "shift", None)  # an activation binarizer's learnt shift
            if isinstance(shift, nn.Parameter):
                shift[:, ::3] = 0.0
    set_tau(model, 0.0)
    return model.eval()


def packed_copy(model: nn.Module, name: str, tmp_path) -> nn.Module:
    description = {"model": name, "model_kwargs": {"num_classes": NUM_CLASSES, "small_input": True}}
    info = {"model": description, "classes": [str(i) for i in range(NUM_CLASSES)], "resolution": SMALL_RESOLUTION,
            "mean": [0.5] * 3, "std": [0.5] * 3, "data": None, "source": "test"}
    path = tmp_path / f"{name}.safetensors"
    path.write_bytes(serialize(model, info))
    return load_packed(path).model


@pytest.mark.parametrize("name", list_models())
def test_engine_logits_equal_the_simulated_model(name, tmp_path):
    model = randomised_in_sign_mode(name)
    engine = packed_copy(model, name, tmp_path)
    binary_inputs: list[torch.Tensor] = []
    for module in model.modules():
        if isinstance(module, (QuantConv2d, QuantLinear)) and is_binary(module):
            module.register_forward_hook(lambda layer, args, out: binary_inputs.append(
                (args[0] + (layer.input_quantizer.shift if layer.input_quantizer.shift is not None else 0)) == 0))
    images = torch.randn(3, 3, SMALL_RESOLUTION, SMALL_RESOLUTION, generator=torch.Generator().manual_seed(1))
    with torch.no_grad(), cpu_kernels(False):
        expected = model(images)
        got = engine(images)
    assert sum(int(zeros.sum()) for zeros in binary_inputs) > 0, "no exact zero reached a binarizer"
    assert relative_difference(got, expected) <= LOGITS_RTOL
    assert torch.equal(got.argmax(1), expected.argmax(1))
    packed = [m for m in engine.modules() if isinstance(m, (PackedBinaryConv2d, PackedBinaryLinear))]
    assert len(packed) == sum(1 for m in model.modules() if isinstance(m, (QuantConv2d, QuantLinear)) and is_binary(m))


def test_exported_bnext_tiny_is_over_ten_times_smaller_than_its_state_dict(tmp_path):
    model = create_model("bnext_tiny")
    set_tau(model, 0.0)
    info = {"model": {"model": "bnext_tiny", "model_kwargs": {}}, "classes": [str(i) for i in range(1000)],
            "resolution": 224, "mean": [0.5] * 3, "std": [0.5] * 3, "data": None, "source": "test"}
    blob = serialize(model, info)
    state = io.BytesIO()
    torch.save(model.state_dict(), state)
    assert state.tell() / len(blob) >= 10  # measured 18.1x (6.51 MiB against 118.11 MiB)
    (tmp_path / "tiny.safetensors").write_bytes(blob)
    _, metadata = decode(tmp_path / "tiny.safetensors")
    # The counter stores binary weights at 1 bit and every other parameter at 32; the file keeps the 8-bit
    # stem, SE convs and classifier as 8-bit codes, hence smaller than size_mib despite its buffers and header.
    assert metadata["counter"]["size_mib"] == pytest.approx(13.32, abs=0.01)
    assert len(blob) / 2**20 < metadata["counter"]["size_mib"]


# --- round trips through the command line -----------------------------------------------------------------------

@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A checkpoint written by `bnextbench train` (BNext-T at 1/8 width, 2 epochs on digits at 16 px) and its
    packed export."""
    from bnextbench.cli import app
    from typer.testing import CliRunner

    root = tmp_path_factory.mktemp("trained")
    runner = CliRunner()
    result = runner.invoke(app, ["train", "bnext_tiny", "--width-mult", "0.125", "--epochs", "2", "--train-limit",
                                 "120", "--batch-size", "40", "--db", str(root / "r.db"), "--out", str(root / "run"),
                                 "--format", "json"])
    assert result.exit_code == 0, result.output
    return root


def test_train_checkpoint_round_trip(trained, run_cli, monkeypatch):
    db = str(trained / "r.db")
    code, out, err = run_cli("export", str(trained / "run" / "last.pt"), "--out", str(trained / "m.safetensors"),
                             "--format", "json")
    assert code == 0, err
    exported = json.loads(out)
    assert exported["bytes"] == (trained / "m.safetensors").stat().st_size
    # The binary weights take one bit each, padded to whole 64-bit words per output channel and tap.
    model, payload = load_checkpoint_model(trained / "run" / "last.pt")
    binary = [m for m in model.modules() if isinstance(m, QuantConv2d) and is_binary(m)]
    packed_bytes = sum(m.kernel_size[0] ** 2 * -(-m.in_channels // 64) * m.out_channels * 8 for m in binary)
    parts = {part["part"]: part for part in exported["parts"]}
    assert parts["binary weights (1 bit each)"]["bytes"] == packed_bytes
    assert parts["binary weights (1 bit each)"]["tensors"] == len(binary) == exported["layers"]["binary-conv"]
    header_length = int.from_bytes((trained / "m.safetensors").read_bytes()[:8], "little")  # safetensors' prefix
    assert parts["header and metadata"]["bytes"] == 8 + header_length
    # The engine's logits equal the checkpoint's model's on the test images.
    packed = load_packed(trained / "m.safetensors")
    assert packed.classes == payload["classes"] and packed.resolution == 16
    from bnextbench.data import normalize, open_data

    images = open_data("digits", 16)
    batch, _ = next(iter(images.test_batches(64)))
    inputs = normalize(batch, images.mean, images.std)
    with torch.no_grad(), cpu_kernels(False):
        expected = model.eval()(inputs)
        assert relative_difference(packed.logits(inputs), expected) <= LOGITS_RTOL
    # evaluate through the engine scores what the simulated model scores.
    monkeypatch.setenv("BNEXTBENCH_CPU_KERNELS", "0")
    code, out, err = run_cli("evaluate", str(trained / "m.safetensors"), "--db", db, "--format", "json")
    assert code == 0, err
    through_engine = json.loads(out.strip().splitlines()[-1])
    code, out, err = run_cli("evaluate", str(trained / "run" / "last.pt"), "--device", "cpu", "--db", db,
                             "--format", "json")
    assert code == 0, err
    simulated = json.loads(out.strip().splitlines()[-1])
    assert (through_engine["top1"], through_engine["top5"]) == (simulated["top1"], simulated["top5"])
    assert through_engine["loss"] == pytest.approx(simulated["loss"], rel=1e-5)
    # infer names the checkpoint's classes; profile counts the file's architecture at its resolution.
    image = trained / "digit.png"
    Image.fromarray(batch[0].permute(1, 2, 0).numpy()).save(image)
    code, out, err = run_cli("infer", str(trained / "m.safetensors"), str(image), "--top", "3", "--format", "json")
    assert code == 0, err
    rows = json.loads(out)
    assert [row["rank"] for row in rows] == [1, 2, 3] and rows[0]["class"] == payload["classes"][
        int(expected[0].argmax())]
    code, out, err = run_cli("profile", str(trained / "m.safetensors"), "--format", "json")
    assert code == 0, err
    profile = json.loads(out)
    assert profile["resolution"] == 16 and profile["bops"] == exported["counter"]["bops"]
    assert profile["file_mib"] == pytest.approx(exported["file_mib"])


@pytest.fixture
def reference_checkpoint(tmp_path):
    """A state_dict laid out as the released BNext-T (10 classes), its weights binary (temperatures 0)."""
    if not REFERENCE_LISTING.is_file():
        pytest.skip(f"reference listing not found at {REFERENCE_LISTING} (set BNEXTBENCH_SHARED)")
    state = with_classes(reference_state(json.loads(REFERENCE_LISTING.read_text())["bnext_tiny"]), NUM_CLASSES)
    return tmp_path / "ref.pth", state


def test_import_checkpoint_round_trip(reference_checkpoint, tmp_path, run_cli):
    path, state = reference_checkpoint
    torch.save({name: torch.zeros_like(t) if name.endswith("binary_conv.temperature") else t
                for name, t in state.items()}, path)
    code, _, err = run_cli("import-checkpoint", str(path), "--model", "bnext_tiny", "--variant", "quant",
                           "--out", str(tmp_path / "tiny.pt"))
    assert code == 0, err
    code, out, err = run_cli("export", str(tmp_path / "tiny.pt"), "--out", str(tmp_path / "tiny.safetensors"),
                             "--format", "json")
    assert code == 0, err
    assert json.loads(out)["layers"] == {"binary-conv": 31, "quantized": 64}  # stem, 62 SE convs, classifier
    model, _ = load_checkpoint_model(tmp_path / "tiny.pt")
    packed = load_packed(tmp_path / "tiny.safetensors")
    assert packed.resolution == SMALL_RESOLUTION  # 10 classes: the reference's CIFAR stem
    images = torch.randn(2, 3, SMALL_RESOLUTION, SMALL_RESOLUTION, generator=torch.Generator().manual_seed(2))
    with torch.no_grad(), cpu_kernels(False):
        expected = model.eval()(images)
        assert relative_difference(packed.logits(images), expected) <= LOGITS_RTOL


# --- refusals ---------------------------------------------------------------------------------------------------

def assert_refused(run_cli, args, fragment, written):
    """Exit 2, one line on stderr naming the problem, nothing on stdout, nothing at ``written``."""
    code, out, err = run_cli(*args)
    assert code == 2, (out, err)
    assert out == "" and err.count("\n") == 1 and fragment in err, err
    for path in written:
        assert not path.exists(), path


def test_a_model_whose_weights_are_not_binary_yet_is_not_exported(reference_checkpoint, tmp_path, run_cli):
    path, state = reference_checkpoint  # temperatures 0.5 .. 1.5: the progressive binarizer still scales
    torch.save(state, path)
    run_cli("import-checkpoint", str(path), "--model", "bnext_tiny", "--out", str(tmp_path / "tiny.pt"))
    out = tmp_path / "out" / "tiny.safetensors"
    assert_refused(run_cli, ("export", str(tmp_path / "tiny.pt"), "--out", str(out)), "weights are not binary yet",
                   [out, out.parent])


@pytest.mark.parametrize("layer, fragment", [
    (QuantConv2d(8, 8, 3, weight_quantizer=ProgressiveSign()), "1-bit weights and 32-bit inputs"),
    (nn.Conv2d(8, 8, 3), "no binary layer"),
    (QuantConv2d(8, 8, 3, input_quantizer=HardSign(), weight_quantizer=nn.Module()), "32-bit weights and 1-bit"),
])
def test_layers_the_engine_cannot_run_are_named(layer, fragment):
    with pytest.raises(DeployError, match=fragment):
        plan_layers(nn.Sequential(layer))


def test_a_grouped_binary_conv_is_named():
    layer = QuantConv2d(8, 8, 3, input_quantizer=HardSign(), weight_quantizer=ScaledSign())
    layer.groups = 2
    with pytest.raises(DeployError, match=r"layer 0: the engine runs square binary convs with groups 1"):
        plan_layers(nn.Sequential(layer))


@pytest.fixture(scope="module")
def packed_file(trained):
    from bnextbench.deploy import export_checkpoint

    path = trained / "refusals.safetensors"
    export_checkpoint(trained / "run" / "last.pt", path)
    return path


def rewritten(packed_file, tmp_path, name, change) -> str:
    tensors, metadata = decode(packed_file)
    path = tmp_path / name
    path.write_bytes(encode(tensors, change(metadata)))
    return str(path)


def test_damaged_and_foreign_files_are_refused(packed_file, tmp_path, run_cli):
    blob = packed_file.read_bytes()
    truncated, altered, foreign = tmp_path / "truncated.safetensors", tmp_path / "altered.safetensors", tmp_path / "x"
    truncated.write_bytes(blob[:-100])
    altered.write_bytes(blob[:-10] + bytes(b ^ 0xFF for b in blob[-10:]))
    header = b'{"a": 1}'
    foreign.write_bytes(len(header).to_bytes(8, "little") + header)
    newer = rewritten(packed_file, tmp_path, "newer.safetensors", lambda m: {**m, "format": "bnextbench-packed/9"})
    unknown = rewritten(packed_file, tmp_path, "unknown-layer.safetensors", lambda m: {
        **m, "layers": {**m["layers"], next(iter(m["layers"])): {"kind": "ternary-conv"}}})
    first_conv = next(name for name, entry in decode(packed_file)[1]["layers"].items() if entry["kind"] == "binary-conv")
    misplaced = rewritten(packed_file, tmp_path, "misplaced.safetensors", lambda m: {
        **m, "layers": {**m["layers"], first_conv: {**m["layers"][first_conv], "stride": 2}}})
    tensors, metadata = decode(packed_file)  # a float64 threshold: the kernels compare float32 only
    retyped = tmp_path / "retyped.safetensors"
    retyped.write_bytes(encode({**tensors, f"{first_conv}.threshold": tensors[f"{first_conv}.threshold"].double()},
                               metadata))
    retyped = str(retyped)
    image = tmp_path / "digit.png"
    Image.new("RGB", (16, 16)).save(image)
    db = tmp_path / "r.db"
    for args, fragment in [
        (("infer", str(truncated), str(image)), "do not match the recorded SHA-256"),
        (("infer", str(altered), str(image)), "do not match the recorded SHA-256"),
        (("infer", str(foreign), str(image)), "no bnextbench metadata"),
        (("infer", str(tmp_path / "none.safetensors"), str(image)), "packed model not found"),
        (("infer", newer, str(image)), "format 'bnextbench-packed/9'; this bnextbench reads bnextbench-packed/1"),
        (("infer", unknown, str(image)), "kind 'ternary-conv', which this engine cannot run"),
        (("infer", misplaced, str(image)), f"layer {first_conv} of the file"),
        (("infer", retyped, str(image)), f"of another dtype (first '{first_conv}.threshold')"),
        (("evaluate", str(truncated), "--db", str(db)), "do not match the recorded SHA-256"),
        (("evaluate", str(packed_file), "--device", "cuda", "--db", str(db)), "runs on the CPU only"),
        (("profile", str(altered)), "do not match the recorded SHA-256"),
    ]:
        assert_refused(run_cli, args, fragment, [db])
    cut_header = tmp_path / "cut.safetensors"
    cut_header.write_bytes(blob[:20])
    assert_refused(run_cli, ("infer", str(cut_header), str(image)), "truncated or not a safetensors file", [])


def test_images_the_model_cannot_take_are_refused(packed_file, tmp_path, run_cli, monkeypatch):
    sizes = {"wide.png": ("RGB", (20, 16)), "gray.png": ("L", (16, 16)), "rgba.png": ("RGBA", (16, 16))}
    for name, (mode, size) in sizes.items():
        Image.new(mode, size).save(tmp_path / name)
    (tmp_path / "text.png").write_text("not an image")
    for image, fragment in [
        ("wide.png", "is 20x16 px; the model takes 16x16 (--resize resizes and centre-crops)"),
        ("gray.png", "has 1 channel (mode L); the model takes 3 (RGB)"),
        ("rgba.png", "has 4 channels (mode RGBA); the model takes 3 (RGB)"),
        ("text.png", "cannot decode image"),
        ("missing.png", "image not found"),
    ]:
        assert_refused(run_cli, ("infer", str(packed_file), str(tmp_path / image)), fragment, [])
    assert_refused(run_cli, ("infer", str(packed_file), str(tmp_path / "wide.png"), "--top", "11"),
                   "--top must be 1..10", [])
    assert_refused(run_cli, ("infer", str(packed_file), str(tmp_path / "wide.png"), "--threads", "0"),
                   "--threads must be an integer in [1, 1024]", [])
    code, out, err = run_cli("infer", str(packed_file), str(tmp_path / "wide.png"), "--resize", "--top", "1",
                             "--format", "json")
    assert code == 0 and len(json.loads(out)) == 1, err
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 100)  # 320 px: over twice the limit, a decompression bomb
    assert_refused(run_cli, ("infer", str(packed_file), str(tmp_path / "wide.png")), "more pixels than PIL decodes safely", [])


def test_export_refuses_what_it_cannot_write(trained, tmp_path, run_cli):
    (tmp_path / "file").write_text("")
    target = tmp_path / "file" / "m.safetensors"
    assert_refused(run_cli, ("export", str(trained / "run" / "last.pt"), "--out", str(target)), "is a file", [target])
    classes = tmp_path / "classes.txt"
    classes.write_text("a\nb\n")
    out = tmp_path / "m.safetensors"
    assert_refused(run_cli, ("export", str(trained / "run" / "last.pt"), "--out", str(out), "--classes",
                             str(classes)), "2 class names given for a model with 10 classes", [out])


def test_engine_threads_are_settable():
    from bnextbench.deploy import set_threads
    from bnextbench.deploy.kernels import thread_limit

    with pytest.raises(DeployError, match="threads must be"):
        set_threads(thread_limit() + 1)
    set_threads(1)
    x = torch.randn(1, 70, 5, 5)
    layer = PackedBinaryConv2d(70, 3, 3, 1, 1, scaled=False, bias=False)
    one_thread = layer(x)
    set_threads(thread_limit())
    assert torch.equal(layer(x), one_thread)
    assert np.array_equal(one_thread.numpy(), F.conv2d(binary_sign(x), torch.ones(3, 70, 3, 3), None, 1, 1).numpy())
