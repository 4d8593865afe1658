"""Import of the reference BNext state_dicts (names and shapes from the shared JSON listing)."""

from __future__ import annotations

import json
import os
import pickle
from pathlib import Path

import pytest
import torch

from bnextbench.models.checkpoint import CheckpointError, import_reference_checkpoint, reference_to_local

REFERENCE_LISTING = Path(
    os.environ.get("BNEXTBENCH_SHARED", Path(__file__).resolve().parents[2] / "shared")
) / "docs" / "reference-bnext-state-dict.json"
SIZES = ("bnext_tiny", "bnext_small", "bnext_middle", "bnext_large")


@pytest.fixture(scope="module")
def listing() -> dict:
    if not REFERENCE_LISTING.is_file():
        pytest.skip(f"reference listing not found at {REFERENCE_LISTING} (set BNEXTBENCH_SHARED)")
    return json.loads(REFERENCE_LISTING.read_text())


def reference_state(shapes: dict, seed: int = 0) -> dict[str, torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    state = {}
    for name, shape in shapes.items():
        if name.endswith("num_batches_tracked"):
            state[name] = torch.tensor(7)
        else:
            state[name] = torch.rand(shape, generator=generator) if shape else torch.tensor(0.5)
    return state


@pytest.mark.parametrize("size", SIZES)
def test_reference_state_dict_imports_with_nothing_left_over(size, listing, tmp_path):
    state = reference_state(listing[size])
    path = tmp_path / "ref.pth"
    torch.save(state, path)
    model = import_reference_checkpoint(path, size)
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
    model = import_reference_checkpoint(path, "bnext_tiny")
    assert torch.equal(model.stem.conv.weight, state["feature.0.conv1.weight"])
    assert torch.equal(model.blocks[0].mixer.conv.weight_quantizer.tau, state["feature.1.Attention.binary_conv.temperature"])


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
    assert "missing (1)" in _fails_with(tmp_path, missing, "blocks.2.ffn.0.bn2.running_var")

    extra = dict(state, **{"feature.3.FFN.extra.weight": torch.zeros(3)})
    assert "unexpected (1)" in _fails_with(tmp_path, extra, "feature.3.FFN.extra.weight")

    misshaped = dict(state)
    misshaped["feature.5.Attention.se.se.1.weight"] = torch.zeros(3, 3, 1, 1)
    misshaped["feature.2.Attention.binary_activation.temperature"] = torch.zeros(2)
    _fails_with(tmp_path, misshaped, "feature.5.Attention.se.se.1.weight", "binary_activation.temperature")


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
