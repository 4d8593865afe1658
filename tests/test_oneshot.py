"""The weight-sharing supernet: subnets are BNext models of their spec, sharing the supernet's weights."""

from __future__ import annotations

import random
from pathlib import Path

import pytest
import torch
from torch import nn

from bnextbench.models import BNext, create_model
from bnextbench.oneshot.supernet import BNextSupernet, SupernetError
from bnextbench.search.space import load_space, space_from_dict

SPACE_FILE = Path(__file__).parent / "data" / "oneshot-space.yaml"


def randomized(module: nn.Module) -> nn.Module:
    """Weights, BatchNorm statistics and shifts far from their initial values, in float64."""
    generator = torch.Generator().manual_seed(0)
    module.double()
    with torch.no_grad():
        for name, tensor in [*module.named_parameters(), *module.named_buffers()]:
            if name.endswith("num_batches_tracked") or name.endswith("tau"):
                continue
            if name.endswith("running_var"):
                tensor.copy_(torch.rand(tensor.shape, generator=generator, dtype=tensor.dtype) + 0.5)
            else:
                tensor.copy_(torch.randn(tensor.shape, generator=generator, dtype=tensor.dtype) * 0.5)
    return module.eval()


def covering_picks(space, extra: int = 2, seed: int = 0) -> list[dict]:
    """The smallest and largest corners, picks that take every choice of every option at least once (the
    i-th pick takes each option's i-th choice, or a random one), and ``extra`` random picks."""
    rng = random.Random(seed)
    widest = max(len(options) for options in space.choices.values())
    picks = [space.smallest_params(), space.largest_params()]
    for i in range(widest + extra):
        picks.append({name: options[i] if i < len(options) else rng.choice(options)
                      for name, options in space.choices.items()})
    return picks


@pytest.fixture(scope="module")
def space():
    return load_space(SPACE_FILE)


@pytest.fixture(scope="module")
def supernet(space):
    torch.manual_seed(0)
    return randomized(BNextSupernet(space, num_classes=10, stem_stride=1))


def test_extracted_subnets_compute_the_supernets_forward(space, supernet):
    """For every choice of every option: the supernet run as that subnet, the extracted subnet, and a BNext
    built from the spec and loaded with the extracted weights give the same logits (float64)."""
    x = torch.randn(3, 3, 16, 16, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    picks = covering_picks(space)
    assert all({pick[name] for pick in picks} == set(options) for name, options in space.choices.items())
    for pick in picks:
        spec = space.spec_of(pick, 10, 1)
        shared = supernet(x, spec)
        extracted = supernet.extract(spec)
        assert type(extracted) is BNext and extracted.spec == spec
        fresh = BNext(spec).double().eval()
        fresh.load_state_dict(extracted.state_dict())
        assert torch.equal(shared, extracted(x))
        assert torch.equal(shared, fresh(x))
        assert shared.std() > 0.1  # the randomized weights give distinct, non-degenerate logits


def test_subnets_of_one_supernet_share_weights(space, supernet):
    small = supernet.extract(space.spec_of(space.smallest_params(), 10, 1))
    large = supernet.extract(space.spec_of(space.largest_params(), 10, 1))
    stem = small.stem.conv.weight
    assert torch.equal(stem, large.stem.conv.weight[: stem.shape[0]])
    kernel = large.blocks[1].mixer.conv.weight  # 5 x 5 in the largest, 3 x 3 centre in the smallest
    assert kernel.shape[-1] == 5 and small.blocks[1].mixer.conv.weight.shape[-1] == 3
    assert torch.equal(small.blocks[1].mixer.conv.weight, kernel[: small.blocks[1].mixer.conv.weight.shape[0],
                                                                  : small.blocks[1].mixer.conv.weight.shape[1], 1:4, 1:4])


def test_a_subnets_gradient_reaches_only_its_slice(space):
    torch.manual_seed(0)
    net = BNextSupernet(space, num_classes=10, stem_stride=1)
    spec = space.spec_of(space.smallest_params(), 10, 1)
    net(torch.randn(4, 3, 16, 16), spec).square().mean().backward()
    stem = net.stem.conv.weight.grad
    assert stem[: spec.stem_width].abs().sum() > 0 and stem[spec.stem_width:].abs().sum() == 0
    fc = net.fc.weight.grad
    assert fc[:, : spec.stage_widths[-1]].abs().sum() > 0 and fc[:, spec.stage_widths[-1]:].abs().sum() == 0


def test_largest_subnet_of_a_space_around_bnext_tiny_is_bnext_tiny():
    space = space_from_dict({"family": "bnext", "base": "bnext_tiny", "stem_width": [16, 32],
                             "width_mult": [0.5, 1.0], "depth": [[1], [1, 2], [1, 2], [2, 4, 6], [1, 2]],
                             "elm_attention": [True, False], "info_recoupling": [True, False]})
    torch.manual_seed(0)
    net = BNextSupernet(space, num_classes=10, stem_stride=1).eval()
    tiny = create_model("bnext_tiny", num_classes=10, small_input=True).eval()
    largest = net.extract(net.largest)
    assert net.largest == tiny.spec
    reference = tiny.state_dict()
    extracted = largest.state_dict()
    assert list(extracted) == list(reference)
    assert all(extracted[name].shape == reference[name].shape for name in reference)
    own = net.state_dict()
    assert all(torch.equal(extracted[name], own[name]) for name in extracted)  # weight for weight, unsliced
    tiny.load_state_dict(extracted)
    x = torch.randn(2, 3, 16, 16)
    with torch.no_grad():
        assert torch.equal(tiny(x), net(x))


def test_candidates_outside_the_space_are_refused(space, supernet):
    inside = space.spec_of(space.smallest_params(), 10, 1)
    import dataclasses

    for spec, fragment in (
        (dataclasses.replace(inside, stem_width=24), "stem width 24"),
        (dataclasses.replace(inside, stage_widths=(8, 16, 32, 64, 512)), "stage 4 width 512"),
        (dataclasses.replace(inside, num_classes=100), "100 classes"),
        (dataclasses.replace(inside, kernel_size=7), "kernel_size"),
    ):
        with pytest.raises(SupernetError, match=fragment):
            supernet(torch.zeros(1, 3, 16, 16, dtype=torch.float64), spec)
    with pytest.raises(SupernetError, match="one aux precision"):
        BNextSupernet(space_from_dict({"family": "bnext", "stem_width": [8], "depth": [1], "width_mult": [0.125],
                                       "aux_bits": [8, 32]}), 10, 1)
