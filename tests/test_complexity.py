"""The counter against the published figures (spec sections 2.2-2.5) and its two backends."""

from __future__ import annotations

import random

import pytest
import torch

from bnextbench.complexity import ComplexityError, count_model, flops_per_mac
from bnextbench.models import BNext, named_spec
from bnextbench.models.spec import random_spec
from bnextbench.profiling import profile_model, profile_spec

# name: params (M, +-0.01), BOPs (G, +-0.1 %), README OPs (G, +-0.5 %), README degree (%, +-0.15)
BNEXT_TARGETS = {
    "bnext_tiny": (30.86, 4.8169, 0.077, 97.81),
    "bnext_small": (68.60, 10.8380, 0.172, 98.47),
    "bnext_middle": (134.50, 20.0865, 0.317, 99.02),
    "bnext_large": (326.55, 52.1509, 0.819, 99.49),
}


@pytest.mark.parametrize("name", BNEXT_TARGETS)
def test_bnext_matches_published_counts(name):
    params_m, bops_g, ops_g, degree = BNEXT_TARGETS[name]
    report = profile_model(name, 224, 1000, "bnext-paper")
    assert abs(report.params / 1e6 - params_m) <= 0.01
    assert report.bops / 1e9 == pytest.approx(bops_g, rel=1e-3)
    assert report.ops / 1e9 == pytest.approx(ops_g, rel=5e-3)
    assert abs(100 * report.binarization_degree - degree) <= 0.15


def test_bnext_tiny_exact_counts_under_both_rules():
    paper = profile_model("bnext_tiny", 224, 1000, "bnext-paper")
    bits = profile_model("bnext_tiny", 224, 1000, "bits")
    assert paper.bops == bits.bops == 4_816_896_000
    assert paper.params == 30_862_236  # as the reference stores it (JSON state_dict), unused PReLUs included
    assert paper.binary_params == 28_253_184
    # stem 10.84 M + SE 1.48 M + FC 1.02 M MACs at 8 bit: 1 FLOP each under 'bits', 1/8 under 'bnext-paper'
    assert bits.macs_by_precision == {"w8a8": 13_344_512, "w1a1": 4_816_896_000}
    assert bits.flops == 13_344_512
    assert paper.flops == 13_344_512 / 8
    assert bits.ops / 1e6 == pytest.approx(88.6, abs=0.05)
    assert 100 * bits.binarization_degree == pytest.approx(84.94, abs=0.01)


@pytest.mark.parametrize(
    "name, bops_g, ops_1e8, tolerance",
    [("reactnet_a", 4.82, 0.87, 0.02), ("birealnet18", 1.68, 1.63, 0.03), ("xnor_resnet18", 1.70, 1.67, 0.03)],
)
def test_baselines_match_published_counts(name, bops_g, ops_1e8, tolerance):
    report = profile_model(name, 224, 1000, "bits")
    assert report.bops / 1e9 == pytest.approx(bops_g, rel=tolerance)
    assert report.ops / 1e8 == pytest.approx(ops_1e8, rel=tolerance)
    assert set(report.macs_by_precision) == {"w1a1", "w32a32"}  # first conv, FC, downsampling convs float


def test_cifar_geometry_is_imagenet_over_12_25():
    imagenet = profile_model("bnext_tiny", 224, 1000)
    cifar = profile_model("bnext_tiny", 32, 10)
    assert cifar.bops * 12.25 == imagenet.bops
    assert cifar.bops == 393_216_000


def test_ops_rules():
    assert flops_per_mac(8, 8, "bits") == 1.0
    assert flops_per_mac(4, 2, "bits") == 8 / 64
    assert flops_per_mac(8, 8, "bnext-paper") == 1 / 8
    assert flops_per_mac(32, 8, "bnext-paper") == flops_per_mac(8, 32, "bits") == 1.0
    with pytest.raises(ComplexityError):
        flops_per_mac(8, 8, "fast")


@pytest.mark.parametrize("resolution", [0, -3, 2.5, True])
def test_bad_resolution_is_rejected(resolution):
    with pytest.raises(ComplexityError, match="resolution"):
        profile_model("bnext_tiny", resolution)


_RANDOM_SPECS = random.Random(7)
COUNTED_SPECS = [named_spec(name, num_classes=10, stem_stride=1) for name in BNEXT_TARGETS] + [
    random_spec(_RANDOM_SPECS) for _ in range(25)]


@pytest.mark.parametrize("resolution", [32, 37])
@pytest.mark.parametrize("spec", COUNTED_SPECS, ids=[f"spec{i}" for i in range(len(COUNTED_SPECS))])
def test_spec_counter_agrees_with_the_built_model(spec, resolution):
    with torch.device("meta"):
        model = BNext(spec)
    built = count_model(model, resolution, "bnext-paper", per_layer=True).to_dict(per_layer=True)
    planned = profile_spec(spec, resolution, "bnext-paper", per_layer=True).to_dict(per_layer=True)
    built.pop("model"), planned.pop("model")
    assert built == planned


def test_per_layer_counts_add_up():
    report = profile_model("reactnet_a", 224, 1000, per_layer=True)
    assert sum(layer.bops for layer in report.layers) == report.bops
    assert sum(layer.flops for layer in report.layers) == report.flops
    assert report.layers[0].name == "stem.0" and report.layers[0].weight_bits == 32
    assert report.layers[-1].kind == "linear"
