"""Import of the reference BNext state_dicts (names and shapes from the shared JSON listing)."""

from __future__ import annotations

import json
import os
import pickle

import pytest
import timm
import torch

from bnextbench.models import checkpoint
from bnextbench.models.checkpoint import (
    CheckpointError,
    import_reference_checkpoint,
    local_to_reference,
    reference_to_local,
    save_model_checkpoint,
)
from bnextbench.nn.layers import layer_precision
from bnextbench.train.loop import load_checkpoint_model

from .helpers import REFERENCE_LISTING, reference_state, with_classes

SIZES = ("bnext_tiny", "bnext_small", "bnext_middle", "bnext_large")


@pytest.fixture(scope="module")
def listing() -> dict:
    if not REFERENCE_LISTING.is_file():
        pytest.skip(f"reference listing not found at {REFERENCE_LISTING} (set BNEXTBENCH_SHARED)")
    return json.loads(REFERENCE_LISTING.read_text())


@pytest.mark.parametrize("size", SIZES)
def test_reference_state_dict_imports_with_nothing_left_over(size, listing, tmp_path):
    state = reference_state(listing[size])
    path = tmp_path / "ref.pth"
    torch.save(state, path)
    model = import_reference_checkpoint(path, size).model
    loaded = model.state_dict()
    consumed = {reference_to_local(name) for name in state} - {None}
    assert consumed == set(loaded)  # every model tensor came from the checkpoint
    for name, tensor in state.items():
        local = reference_to_local(name)
        if local is not None:
            assert torch.equal(loaded[local], tensor), name
    # spot checks of the renaming
    assert torch.equal(model.blocks[0].mixer.conv.weight, state["feature.1.Attention.binary_conv.weight"])
    assert torch.equal(model.blocks[1].ffn[1].recoupling.mix, state["feature.2.FFN_2.scale"])
    assert torch.equal(model.fc.weight, state["fc.weight"])
    del model, state


@pytest.mark.parametrize("wrapping", ["nested", "ddp"])
def test_nested_and_ddp_checkpoints_import(wrapping, listing, tmp_path):
    state = reference_state(listing["bnext_tiny"], seed=1)
    if wrapping == "ddp":
        payload = {f"module.{name}": tensor for name, tensor in state.items()}
    else:
        payload = {"state_dict": state, "epoch": 511, "temp": torch.tensor([1e-20])}
    path = tmp_path / "ref.pth.tar"
    torch.save(payload, path)
    model = import_reference_checkpoint(path, "bnext_tiny").model
    assert torch.equal(model.stem.conv.weight, state["feature.0.conv1.weight"])
    tau = model.blocks[0].mixer.conv.weight_quantizer.tau
    assert torch.equal(tau, state["feature.1.Attention.binary_conv.temperature"])


def _fails_with(tmp_path, state, *names):
    path = tmp_path / "bad.pth"
    torch.save(state, path)
    with pytest.raises(CheckpointError) as info:
        import_reference_checkpoint(path, "bnext_tiny")
    message = str(info.value)
    assert "\n" not in message
    for name in names:
        assert name in message
    return message


def test_missing_extra_and_misshaped_tensors_are_listed(listing, tmp_path):
    state = reference_state(listing["bnext_tiny"])
    missing = dict(state)
    del missing["feature.3.FFN.norm2.running_var"]
    message = _fails_with(tmp_path, missing, "feature.3.FFN.norm2.running_var (blocks.2.ffn.0.bn2.running_var)")
    assert "missing (1)" in message

    extra = dict(state, **{"feature.3.FFN.extra.weight": torch.zeros(3)})
    assert "unexpected (1)" in _fails_with(tmp_path, extra, "feature.3.FFN.extra.weight")

    misshaped = dict(state)
    misshaped["feature.5.Attention.se.se.1.weight"] = torch.zeros(3, 3, 1, 1)
    misshaped["feature.2.Attention.binary_activation.temperature"] = torch.zeros(2)
    _fails_with(tmp_path, misshaped, "feature.5.Attention.se.se.1.weight (blocks.4.mixer.recoupling.squeeze.weight)",
                "feature.2.Attention.binary_activation.temperature [2] != [1]")


def test_mismatches_are_named_as_in_the_checkpoint_with_the_local_name_beside(listing, tmp_path):
    state = reference_state(listing["bnext_tiny"])
    without_stem = {name: tensor for name, tensor in state.items() if name != "feature.0.conv1.weight"}
    message = _fails_with(tmp_path, without_stem, "missing (1): feature.0.conv1.weight (stem.conv.weight)")
    assert "wrong shape" not in message and "unexpected" not in message

    # a doubling block's first FFN is FFN_1 in the reference, a plain block's is FFN
    without_ffn = {name: tensor for name, tensor in state.items() if name != "feature.1.FFN_1.binary_conv.weight"}
    _fails_with(tmp_path, without_ffn, "missing (1): feature.1.FFN_1.binary_conv.weight (blocks.0.ffn.0.conv.weight)")

    wrong_stem = dict(state, **{"feature.0.conv1.weight": torch.zeros(32, 3, 5, 5)})
    message = _fails_with(tmp_path, wrong_stem,
                          "wrong shape (1): feature.0.conv1.weight (stem.conv.weight) [32, 3, 5, 5] != [32, 3, 3, 3]")
    assert "missing" not in message


@pytest.mark.parametrize("size", SIZES)
def test_local_to_reference_inverts_reference_to_local(size, listing):
    local_of = {name: reference_to_local(name) for name in listing[size]}
    local_names = {local for local in local_of.values() if local is not None}
    for reference, local in local_of.items():
        if local is None:  # only HardSign's temperatures, checked and dropped
            assert checkpoint._NO_EFFECT.fullmatch(reference), reference
        else:
            assert local_to_reference(local, local_names) == reference
    for local in local_names:
        assert reference_to_local(local_to_reference(local, local_names)) == local
    assert local_to_reference("blocks.0.ffn.0.extra.weight", local_names) is None
    assert reference_to_local("feature.01.Attention.scale") is None  # one spelling per tensor


def test_other_size_does_not_fit(listing, tmp_path):
    _fails_with(tmp_path, reference_state(listing["bnext_small"]), "wrong shape")


def test_unreadable_and_unsafe_files_are_refused(tmp_path):
    text = tmp_path / "notes.txt"
    text.write_text("not a checkpoint")
    with pytest.raises(CheckpointError, match="cannot read"):
        import_reference_checkpoint(text, "bnext_tiny")

    class Payload:
        def __reduce__(self):
            return (os.system, ("echo owned",))

    malicious = tmp_path / "evil.pth"
    with malicious.open("wb") as handle:
        pickle.dump({"state_dict": Payload()}, handle)
    with pytest.raises(CheckpointError, match="weights-only"):
        import_reference_checkpoint(malicious, "bnext_tiny")

    not_a_state_dict = tmp_path / "list.pth"
    torch.save([torch.zeros(1)], not_a_state_dict)
    with pytest.raises(CheckpointError, match="no state_dict"):
        import_reference_checkpoint(not_a_state_dict, "bnext_tiny")


FLOAT_KWARGS = {"num_classes": 1000, "small_input": False, "width_mult": 1.0, "elm_attention": True,
                "info_recoupling": True, "aux_bits": 32}


@pytest.mark.parametrize(
    "size, variant, aux_bits, precision",
    [("bnext_tiny", "float", 32, "float"), ("bnext_small", "float", 32, "float"), ("bnext_tiny", "quant", 8, "8-bit")],
)
def test_import_checkpoint_writes_the_model_it_imported_into(
    size, variant, aux_bits, precision, listing, tmp_path, run_cli, monkeypatch
):
    imported = []

    def recording_import(*args, **kwargs):
        imported.append(real_import(*args, **kwargs))
        return imported[-1]

    real_import = checkpoint.import_reference_checkpoint
    monkeypatch.setattr(checkpoint, "import_reference_checkpoint", recording_import)
    torch.save(reference_state(listing[size], seed=2), tmp_path / "ref.pth")
    out = tmp_path / "imported.pt"
    code, stdout, err = run_cli("import-checkpoint", str(tmp_path / "ref.pth"), "--model", size,
                                "--variant", variant, "--out", str(out))
    assert code == 0, err
    assert f"({precision} stem/SE/FC, 1000 classes)" in " ".join(stdout.split())

    reloaded, payload = load_checkpoint_model(out)  # what `bnextbench evaluate` runs
    assert payload["model"] == size and payload["model_kwargs"] == dict(FLOAT_KWARGS, aux_bits=aux_bits)
    # the reference's src/bnext.py has a float stem, SE and classifier; src/bnext_quant.py 8-bit ones
    for layer in (reloaded.stem.conv, reloaded.blocks[0].mixer.recoupling.squeeze, reloaded.fc):
        assert layer_precision(layer) == (aux_bits, aux_bits)

    images = torch.randn(1, 3, 224, 224, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        expected = imported[0].model.double().eval()(images)
        logits = reloaded.double().eval()(images)
    assert torch.isfinite(expected).all() and expected.std() > 0
    assert torch.equal(logits, expected)


@pytest.mark.parametrize("num_classes", [1000, 10])
def test_recorded_kwargs_rebuild_the_model_through_timm(num_classes, listing, tmp_path):
    torch.save(with_classes(reference_state(listing["bnext_tiny"]), num_classes), tmp_path / "ref.pth")
    imported = import_reference_checkpoint(tmp_path / "ref.pth", "bnext_tiny")
    save_model_checkpoint(tmp_path / "imported.pt", *imported)
    payload = torch.load(tmp_path / "imported.pt", weights_only=True)
    assert payload["model_kwargs"] == dict(FLOAT_KWARGS, num_classes=num_classes, small_input=num_classes != 1000)

    rebuilt = timm.create_model(payload["model"], **payload["model_kwargs"])
    rebuilt.load_state_dict(payload["state_dict"], strict=True)
    assert layer_precision(rebuilt.fc) == (32, 32)
    # the reference's stem rule: stride 2 for ImageNet's 1000 classes, 1 for any other count (CIFAR)
    assert rebuilt.stem.conv.stride == ((2, 2) if num_classes == 1000 else (1, 1))


def test_unknown_variant_is_refused(listing, tmp_path, run_cli):
    torch.save(reference_state(listing["bnext_tiny"]), tmp_path / "ref.pth")
    with pytest.raises(CheckpointError, match="unknown checkpoint variant 'int4'; choose float or quant"):
        import_reference_checkpoint(tmp_path / "ref.pth", "bnext_tiny", variant="int4")
    code, _, err = run_cli("import-checkpoint", str(tmp_path / "ref.pth"), "--model", "bnext_tiny",
                           "--variant", "int4", "--out", str(tmp_path / "out.pt"))
    assert code == 2 and "int4" in err and not (tmp_path / "out.pt").exists()
