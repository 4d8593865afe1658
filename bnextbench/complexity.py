"""Analytic complexity counter: BOPs, FLOPs, OPs, binarization degree, params and size.

Per conv/linear layer, MACs = out_channels * out_h * out_w * (in_channels / groups) * k^2 (bias
additions, BN, activations and element-wise ops are not counted, the Bi-Real/ReActNet convention).
Precision is read from each layer's quantizers. A MAC with 1-bit weights and 1-bit inputs is a
BOP; any other MAC costs a fraction of a FLOP given by the ops rule:

- ``bits``: an m-bit x n-bit integer MAC counts m * n / 64 FLOP (8 x 8 bit = 1); a MAC with a
  float (32-bit) operand counts 1.
- ``bnext-paper``: an m-bit x n-bit integer MAC counts max(m, n) BOPs = max(m, n) / 64 FLOP
  (8-bit = 1/8), float counts 1. This is the rule under which the BNext README's OPs come out
  (spec section 2.3); BNext only has 8-bit layers, so the max() form for other widths is our extension.

OPs = BOPs / 64 + FLOPs; binarization degree = BOPs / (64 * OPs).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Sequence

import torch
from torch import nn

from .choices import OPS_RULES
from .errors import BnextbenchError
from .models.plan import LayerSite
from .nn import QuantConv2d, QuantLinear, is_binary
from .nn.quantizers import FLOAT_BITS

BITS_PER_MIB = 8 * 2**20


class ComplexityError(BnextbenchError):
    pass


def flops_per_mac(weight_bits: int, input_bits: int, ops_rule: str) -> float:
    """FLOP-equivalents of one non-binary MAC under ``ops_rule``."""
    if weight_bits >= FLOAT_BITS or input_bits >= FLOAT_BITS:
        return 1.0
    if ops_rule == "bits":
        return weight_bits * input_bits / 64
    if ops_rule == "bnext-paper":
        return max(weight_bits, input_bits) / 64
    raise ComplexityError(f"unknown ops rule {ops_rule!r}; choose one of {', '.join(OPS_RULES)}")


def check_resolution(resolution: object) -> int:
    if isinstance(resolution, bool) or not isinstance(resolution, int) or resolution < 1:
        raise ComplexityError(f"resolution must be a positive integer, got {resolution!r}")
    return resolution


@dataclass
class LayerCount:
    name: str
    kind: str
    weight_bits: int
    input_bits: int
    in_channels: int
    out_channels: int
    kernel_size: int
    stride: int
    in_size: int
    out_size: int
    params: int
    macs: int
    bops: int
    flops: float


@dataclass
class Complexity:
    """Counts of one model at one resolution; every count is a plain number (MACs, not G/M strings)."""

    model: str
    resolution: int
    num_classes: int
    ops_rule: str
    params: int
    binary_params: int
    bops: int
    flops: float
    ops: float
    binarization_degree: float
    size_mib: float
    macs_by_precision: dict[str, int]
    layers: list[LayerCount] = field(default_factory=list)

    def to_dict(self, per_layer: bool = False) -> dict:
        data = asdict(self)
        if not per_layer:
            data.pop("layers")
        return data


def _layer_count(site: LayerSite, ops_rule: str) -> LayerCount:
    binary = site.weight_bits == 1 and site.input_bits == 1
    macs = site.macs
    return LayerCount(
        name=site.name,
        kind=site.kind,
        weight_bits=site.weight_bits,
        input_bits=site.input_bits,
        in_channels=site.in_channels,
        out_channels=site.out_channels,
        kernel_size=site.kernel_size,
        stride=site.stride,
        in_size=site.in_size,
        out_size=site.out_size,
        params=site.params,
        macs=macs,
        bops=macs if binary else 0,
        flops=0.0 if binary else macs * flops_per_mac(site.weight_bits, site.input_bits, ops_rule),
    )


def count_sites(
    sites: Sequence[LayerSite],
    other_params: int,
    *,
    model: str,
    resolution: int,
    num_classes: int,
    ops_rule: str = "bits",
    per_layer: bool = False,
) -> Complexity:
    """Reduce layer sites to a :class:`Complexity`; ``other_params`` are parameters outside conv/linear layers."""
    if ops_rule not in OPS_RULES:
        raise ComplexityError(f"unknown ops rule {ops_rule!r}; choose one of {', '.join(OPS_RULES)}")
    bops = binary_params = layer_params = 0
    flops = 0.0
    macs_by_precision: dict[str, int] = {}
    for site in sites:
        macs = site.macs
        if site.weight_bits == 1 and site.input_bits == 1:
            bops += macs
            binary_params += site.weight_params
        else:
            flops += macs * flops_per_mac(site.weight_bits, site.input_bits, ops_rule)
        layer_params += site.params
        key = f"w{site.weight_bits}a{site.input_bits}"
        macs_by_precision[key] = macs_by_precision.get(key, 0) + macs
    ops = bops / 64 + flops
    params = layer_params + other_params
    return Complexity(
        model=model,
        resolution=resolution,
        num_classes=num_classes,
        ops_rule=ops_rule,
        params=params,
        binary_params=binary_params,
        bops=bops,
        flops=flops,
        ops=ops,
        binarization_degree=bops / (64 * ops) if ops else 0.0,
        size_mib=(binary_params + FLOAT_BITS * (params - binary_params)) / BITS_PER_MIB,
        macs_by_precision=macs_by_precision,
        layers=[_layer_count(site, ops_rule) for site in sites] if per_layer else [],
    )


def measured_sites(model: nn.Module, resolution: int) -> list[LayerSite]:
    """The model's stated sites with shapes and precision read from the layers themselves.

    Raises if a conv or linear layer has no site (the counter would miss it) or if a stated site
    disagrees with its layer.
    """
    stated = model.layer_sites(resolution)
    layer_names = {name for name, module in model.named_modules() if isinstance(module, (nn.Conv2d, nn.Linear))}
    missing = sorted(layer_names - {site.name for site in stated})
    if missing:
        raise ComplexityError(f"{type(model).__name__} states no geometry for layer(s): {', '.join(missing)}")
    sites = []
    for site in stated:
        measured = LayerSite.of(model.get_submodule(site.name), site.name, site.in_size)
        if measured != site:
            raise ComplexityError(f"stated site {site} disagrees with the layer {measured}")
        sites.append(measured)
    return sites


def count_model(
    model: nn.Module, resolution: int, ops_rule: str = "bits", name: str | None = None, per_layer: bool = False
) -> Complexity:
    """Count a built model without running it.

    The model states its geometry through ``layer_sites(resolution)``; shapes and precision come
    from the layers themselves.
    """
    check_resolution(resolution)
    sites = measured_sites(model, resolution)
    layer_params = sum(site.params for site in sites)
    total_params = sum(p.numel() for p in model.parameters())
    return count_sites(
        sites,
        total_params - layer_params,
        model=name or type(model).__name__,
        resolution=resolution,
        num_classes=getattr(model, "num_classes", 0),
        ops_rule=ops_rule,
        per_layer=per_layer,
    )


@dataclass
class PtflopsCheck:
    """ptflops' MAC count of the non-binary layers (its hooks add one op per bias output) next to ours."""

    ptflops_macs: int
    analytic_macs: int
    analytic_bias_adds: int
    ptflops_binary_macs: int
    analytic_binary_macs: int


def ptflops_count(model: nn.Module, resolution: int) -> tuple[int, int]:
    """(non-binary MACs incl. bias adds, binary MACs) by ptflops' forward hooks.

    Binary layers get a custom hook that books their MACs apart from ptflops' total; every module
    other than conv and linear is ignored and functional counting is off, to count what we count.
    """
    from ptflops import get_model_complexity_info
    from ptflops.pytorch_ops import MODULES_MAPPING, conv_flops_counter_hook, linear_flops_counter_hook

    binary_macs = [0]

    def hook_for(float_hook):
        def hook(module, inputs, output):
            if is_binary(module):
                before = module.__flops__
                float_hook(module, inputs, output)
                binary_macs[0] += module.__flops__ - before
                module.__flops__ = before
            else:
                float_hook(module, inputs, output)

        return hook

    counted = (nn.Conv2d, nn.Linear)
    ignored = [kind for kind in MODULES_MAPPING if kind not in counted]
    was_training = model.training
    with torch.no_grad():
        macs, _ = get_model_complexity_info(
            model,
            (3, resolution, resolution),
            as_strings=False,
            print_per_layer_stat=False,
            input_constructor=lambda shape: torch.zeros(1, *shape),
            ignore_modules=ignored,
            custom_modules_hooks={
                QuantConv2d: hook_for(conv_flops_counter_hook),
                QuantLinear: hook_for(linear_flops_counter_hook),
            },
            backend="pytorch",
            backend_specific_config={"count_functional": False},
        )
    model.train(was_training)
    if macs is None:
        raise ComplexityError("ptflops could not run the model")
    return int(macs), binary_macs[0]


def crosscheck_ptflops(model: nn.Module, resolution: int) -> PtflopsCheck:
    """Compare the analytic non-binary and binary MACs of ``model`` with ptflops on a real forward pass."""
    sites = measured_sites(model, resolution)
    ptflops_macs, ptflops_binary = ptflops_count(model, resolution)
    binary = [s for s in sites if (s.weight_bits, s.input_bits) == (1, 1)]
    real = [s for s in sites if (s.weight_bits, s.input_bits) != (1, 1)]
    return PtflopsCheck(
        ptflops_macs=ptflops_macs,
        analytic_macs=sum(s.macs for s in real),
        analytic_bias_adds=sum(s.out_channels * s.out_size**2 for s in real if s.bias),
        ptflops_binary_macs=ptflops_binary,
        analytic_binary_macs=sum(s.macs for s in binary),
    )
