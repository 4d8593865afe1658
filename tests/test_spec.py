"""The BNext architecture spec: layout rule, JSON form, hash and validation."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from bnextbench.models import BNext, BNextSpec, SpecError, named_spec


def test_named_sizes_follow_the_reference_block_rule():
    spec = named_spec("bnext_tiny")
    blocks = spec.blocks()
    assert len(blocks) == 13
    assert [b.stride for b in blocks].count(2) == 4
    assert blocks[0] == (32, 64, 1, False, True, 3, 8)  # the first block is a plain 3x3 unit at stride 1
    stride_two = [i + 1 for i, b in enumerate(blocks) if b.stride == 2]
    assert stride_two == [2, 4, 6, 12] and all(blocks[i - 1].elm_attention for i in stride_two)
    assert [len(named_spec(n).blocks()) for n in ("bnext_small", "bnext_middle", "bnext_large")] == [13, 21, 29]


def test_json_round_trip_and_stable_hash():
    spec = named_spec("bnext_tiny", num_classes=10, stem_stride=1)
    assert BNextSpec.from_json(spec.to_json()) == spec
    assert spec.to_json() == BNextSpec.from_json(spec.to_json()).to_json()
    assert spec.hash == "38fc7852346c5e9f"  # canonical JSON, sha256: changes only if the spec format does
    assert dataclasses.replace(spec, se_ratio=4).hash != spec.hash


def test_width_multiplier_rounds_to_multiples_of_8():
    spec = named_spec("bnext_tiny").scaled(0.25)
    assert spec.stem_width == 8 and spec.stage_widths == (16, 32, 64, 128, 256)


def test_ablation_switches():
    no_elm = named_spec("bnext_tiny", elm_attention=False)
    no_recoupling = named_spec("bnext_tiny", info_recoupling=False)
    assert not any(no_elm.elm_attention) and not any(no_recoupling.info_recoupling)
    model = BNext(dataclasses.replace(no_recoupling, num_classes=10, stem_stride=1))
    assert all(unit.recoupling is None for block in model.blocks for unit in block.ffn)
    assert model(torch.randn(1, 3, 32, 32)).shape == (1, 10)


@pytest.mark.parametrize(
    "change, fragment",
    [
        ({"stem_width": 0}, "stem_width"),
        ({"stage_depths": (1, 2)}, "stage_widths has 5 entries"),
        ({"elm_attention": (True,)}, "one true/false flag per block"),
        ({"kernel_size": 4}, "odd"),
        ({"stem_stride": 3}, "stem_stride"),
        ({"aux_bits": 1}, "aux_bits"),
        ({"num_classes": True}, "num_classes"),
    ],
)
def test_invalid_specs_are_rejected(change, fragment):
    with pytest.raises(SpecError, match=fragment):
        dataclasses.replace(named_spec("bnext_tiny"), **change)


def test_from_dict_rejects_unknown_and_missing_fields():
    with pytest.raises(SpecError, match="unknown spec field"):
        BNextSpec.from_dict({**named_spec("bnext_tiny").to_dict(), "depth": 3})
    with pytest.raises(SpecError, match="incomplete spec"):
        BNextSpec.from_dict({"stem_width": 8})
    with pytest.raises(SpecError, match="not valid JSON"):
        BNextSpec.from_json("{")


@pytest.mark.parametrize("resolution", [32, 37, 48])
def test_odd_and_non_power_of_two_inputs_run(resolution):
    model = BNext(named_spec("bnext_tiny", num_classes=3, stem_stride=1).scaled(0.25)).eval()
    assert model(torch.randn(1, 3, resolution, resolution)).shape == (1, 3)


def test_recoupling_gate_matches_the_spec_formula():
    from bnextbench.models.bnext import Recoupling

    torch.manual_seed(0)
    gate = Recoupling(16, 8, 32).eval()
    with torch.no_grad():
        gate.mix.uniform_(0, 1)
    y, source = torch.randn(4, 16, 8, 8), torch.randn(4, 16, 8, 8)
    mixed = gate.mix * source + (1 - gate.mix) * y  # spec 1.4: m = lam * P(x) + (1 - lam) * y
    expected = y * torch.sigmoid(gate.excite(torch.relu(gate.squeeze(mixed.mean((2, 3), keepdim=True)))))
    assert torch.allclose(gate(y, source), expected, atol=1e-6)


def test_per_block_kernel_sizes_and_se_ratios():
    spec = BNextSpec.from_layout(16, (16, 32), (1, 2))
    per_block = dataclasses.replace(spec, kernel_size=(3, 5, 3), se_ratio=(4, 8, 8))
    assert [(b.kernel_size, b.se_ratio) for b in per_block.blocks()] == [(3, 4), (5, 8), (3, 8)]
    assert dataclasses.replace(spec, kernel_size=(3, 3, 3)) == spec  # a uniform tuple is the single value
    assert dataclasses.replace(spec, kernel_size=(3, 3, 3)).hash == spec.hash
    for bad, fragment in (((3, 5), "one per block"), ((3, 4, 3), "odd"), ((3, 0, 3), "positive")):
        with pytest.raises(SpecError, match=fragment):
            dataclasses.replace(spec, kernel_size=bad)
