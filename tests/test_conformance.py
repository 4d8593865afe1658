"""One conformance suite over every registered model."""

from __future__ import annotations

import pytest
import timm
import torch

import bnextbench.models  # noqa: F401  (registers the models in timm)
from bnextbench.complexity import count_model, crosscheck_ptflops, measured_sites
from bnextbench.nn import ProgressiveSign, is_binary
from bnextbench.nn.quantizers import precision_of

from .helpers import NUM_CLASSES, SMALL_RESOLUTION


def _batch(seed: int = 0) -> torch.Tensor:
    return torch.randn(2, 3, SMALL_RESOLUTION, SMALL_RESOLUTION, generator=torch.Generator().manual_seed(seed))


def test_forward_gives_one_logit_per_class(small_model):
    small_model.eval()
    with torch.no_grad():
        logits = small_model(_batch())
    assert logits.shape == (2, NUM_CLASSES)
    assert torch.isfinite(logits).all()


def test_backward_reaches_every_trainable_parameter(small_model):
    small_model.train()
    small_model.zero_grad(set_to_none=True)
    small_model(_batch()).logsumexp(dim=1).sum().backward()
    unreached = [name for name, p in small_model.named_parameters() if p.requires_grad and p.grad is None]
    assert unreached == []
    frozen = [name for name, p in small_model.named_parameters() if not p.requires_grad]
    assert all(name.endswith("prelu.weight") for name in frozen)  # only the reference's stored, unused PReLUs
    small_model.zero_grad(set_to_none=True)


def test_counter_finds_every_binary_layer(small_model):
    sites = measured_sites(small_model, SMALL_RESOLUTION)
    counted = {site.name for site in sites if (site.weight_bits, site.input_bits) == (1, 1)}
    binary_modules = {name for name, module in small_model.named_modules() if is_binary(module)}
    assert counted == binary_modules
    assert len(binary_modules) > 0
    report = count_model(small_model, SMALL_RESOLUTION)
    assert report.bops == sum(s.macs for s in sites if s.name in counted)
    assert report.params == sum(p.numel() for p in small_model.parameters())


def test_binary_layers_see_only_plus_minus_one_in_sign_mode(small_model):
    taus = {}
    for name, module in small_model.named_modules():
        if isinstance(module, ProgressiveSign):
            taus[name] = module.tau.clone()
            module.set_tau(0.0)
    seen: list[torch.Tensor] = []
    handles = []
    for module in small_model.modules():
        if is_binary(module):
            for quantizer in (module.input_quantizer, module.weight_quantizer):
                assert precision_of(quantizer) == 1
                handles.append(quantizer.register_forward_hook(lambda m, i, out: seen.append(out.detach())))
    try:
        small_model.eval()
        with torch.no_grad():
            small_model(_batch(1))
    finally:
        for handle in handles:
            handle.remove()
        for name, tau in taus.items():
            small_model.get_submodule(name).set_tau(float(tau))
    assert len(seen) == len(handles)
    assert all(bool((values.abs() == 1).all()) for values in seen)


def test_real_valued_macs_equal_ptflops(small_model):
    check = crosscheck_ptflops(small_model, SMALL_RESOLUTION)
    assert check.ptflops_macs == check.analytic_macs + check.analytic_bias_adds
    assert check.ptflops_binary_macs == check.analytic_binary_macs


@pytest.mark.parametrize("name", bnextbench.list_models())
def test_timm_creates_every_registered_model(name):
    with torch.device("meta"):
        model = timm.create_model(name, num_classes=NUM_CLASSES)
    assert model.num_classes == NUM_CLASSES
