"""Layers whose input and weight pass through quantizers that state their precision."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .quantizers import FLOAT_BITS, MinMaxQuantizer, PreQuantized, precision_of


def layer_precision(layer: nn.Module) -> tuple[int, int]:
    """(weight bits, input bits) of a conv or linear layer, read from its quantizers."""
    return (
        precision_of(getattr(layer, "weight_quantizer", None)),
        precision_of(getattr(layer, "input_quantizer", None)),
    )


def is_binary(layer: nn.Module) -> bool:
    return layer_precision(layer) == (1, 1)


class QuantConv2d(nn.Conv2d):
    """Conv2d computing conv(input_quantizer(x), weight_quantizer(W)) with 'same' padding k // 2.

    A weight quantizer with ``output_scale`` (XNOR-style alpha) scales output channels after the conv.
    Without quantizers the layer is an ordinary float conv.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int,
        stride: int = 1,
        bias: bool = False,
        input_quantizer: nn.Module | None = None,
        weight_quantizer: nn.Module | None = None,
    ):
        super().__init__(in_channels, out_channels, kernel_size, stride, kernel_size // 2, bias=bias)
        self.input_quantizer = input_quantizer or nn.Identity()
        self.weight_quantizer = weight_quantizer or nn.Identity()

    def constrain_(self) -> None:
        """Apply the weight quantizer's constraint on the latent weights, if it has one."""
        constrain = getattr(self.weight_quantizer, "constrain_weight_", None)
        if constrain is not None:
            constrain(self.weight)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self._conv_forward(self.input_quantizer(x), self.weight_quantizer(self.weight), self.bias)
        output_scale = getattr(self.weight_quantizer, "output_scale", None)
        if output_scale is not None:
            out = out * output_scale(self.weight).view(1, -1, 1, 1)
        return out


class QuantLinear(nn.Linear):
    """Linear computing linear(input_quantizer(x), weight_quantizer(W)) + bias."""

    def __init__(
        self,
        in_features: int,
        out_features: int,
        bias: bool = True,
        input_quantizer: nn.Module | None = None,
        weight_quantizer: nn.Module | None = None,
    ):
        super().__init__(in_features, out_features, bias=bias)
        self.input_quantizer = input_quantizer or nn.Identity()
        self.weight_quantizer = weight_quantizer or nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.linear(self.input_quantizer(x), self.weight_quantizer(self.weight), self.bias)


def aux_conv(
    in_channels: int,
    out_channels: int,
    kernel_size: int,
    bits: int,
    stride: int = 1,
    bias: bool = False,
    pre_quantized_input: bool = False,
) -> QuantConv2d:
    """A non-binary conv at ``bits`` precision: float at 32 bits, min-max quantized below.

    Weights are grouped per (out, in) kernel slice for k x k kernels and per output row for 1 x 1;
    inputs per sample and channel on feature maps, per sample on 1 x 1 maps (the reference's grouping).
    ``pre_quantized_input`` declares an input already at ``bits`` (image pixels) instead of quantizing it.
    """
    if bits >= FLOAT_BITS:
        return QuantConv2d(in_channels, out_channels, kernel_size, stride, bias)
    weight_groups = (2, 3) if kernel_size > 1 else (1, 2, 3)
    if pre_quantized_input:
        input_quantizer: nn.Module = PreQuantized(bits)
    else:
        input_quantizer = MinMaxQuantizer(bits, (2, 3) if kernel_size > 1 else (1, 2, 3))
    return QuantConv2d(
        in_channels,
        out_channels,
        kernel_size,
        stride,
        bias,
        input_quantizer=input_quantizer,
        weight_quantizer=MinMaxQuantizer(bits, weight_groups),
    )


def aux_linear(in_features: int, out_features: int, bits: int) -> QuantLinear:
    """A classifier at ``bits`` precision (weights per output row, inputs per sample)."""
    if bits >= FLOAT_BITS:
        return QuantLinear(in_features, out_features)
    return QuantLinear(
        in_features,
        out_features,
        input_quantizer=MinMaxQuantizer(bits, (1,)),
        weight_quantizer=MinMaxQuantizer(bits, (1,)),
    )


class RPReLU(nn.Module):
    """ReActNet's RPReLU: y = PReLU(x - gamma) + zeta with per-channel gamma, zeta and slope."""

    def __init__(self, channels: int):
        super().__init__()
        self.shift_in = nn.Parameter(torch.zeros(1, channels, 1, 1))
        self.prelu = nn.PReLU(channels)
        self.shift_out = nn.Parameter(torch.zeros(1, channels, 1, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.prelu(x - self.shift_in) + self.shift_out


def apply_constraints(model: nn.Module) -> None:
    """Run every module's ``constrain_`` (latent-weight clip, mix clamp): call after each optimizer step."""
    for module in model.modules():
        constrain = getattr(module, "constrain_", None)
        if constrain is not None:
            constrain()


def pool_like_stride(stride: int) -> nn.Module:
    """Parameter-free shortcut resampling that matches a 'same'-padded conv of this stride: ceil(H / 2)."""
    return nn.AvgPool2d(2, 2, ceil_mode=True) if stride == 2 else nn.Identity()
