"""Layers whose input and weight pass through quantizers that state their precision."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .config import use_cpu_kernels
from .conv import conv2d
from .quantizers import FLOAT_BITS, MinMaxQuantizer, PreQuantized, channel_sum, precision_of


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
    Without quantizers the layer is an ordinary float conv. Square kernels and strides, groups 1; the
    convolution itself is :func:`bnextbench.nn.conv.conv2d` (oneDNN, a matrix product or Winograd on the CPU).
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
        out = conv2d(self.input_quantizer(x), self.weight_quantizer(self.weight), self.bias, self.stride[0], self.padding[0])
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


class _SpatialMean(torch.autograd.Function):
    """Mean over H and W keeping dims; backward (grad / HW) broadcast as a view, never materialised."""

    @staticmethod
    def forward(ctx, x: torch.Tensor) -> torch.Tensor:
        ctx.shape = x.shape
        return x.mean(dim=(2, 3), keepdim=True)

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        return (grad / (ctx.shape[2] * ctx.shape[3])).expand(ctx.shape)


def spatial_mean(x: torch.Tensor) -> torch.Tensor:
    """Global average pool of an (N, C, H, W) map to (N, C, 1, 1); its gradient costs no full-size pass
    (``Tensor.mean`` while the CPU kernels are off)."""
    if not use_cpu_kernels():
        return x.mean(dim=(2, 3), keepdim=True)
    return _SpatialMean.apply(x)


class _PReLUFunction(torch.autograd.Function):
    """PReLU with a backward of three bandwidth-bound kernels (1.5x faster than torch's on CPU).

    Under autocast x may be bf16 and the slope fp32: each gradient comes back in its input's dtype, the
    slope's summed in fp32 (a bf16 sum over batch and space would keep 8 bits of it).
    """

    @staticmethod
    def forward(ctx, x: torch.Tensor, slope: torch.Tensor) -> torch.Tensor:
        ctx.save_for_backward(x, slope)
        return F.prelu(x, slope)

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        x, slope = ctx.saved_tensors
        positive = torch.ops.aten.threshold_backward(grad, x, 0.0)  # grad where x > 0
        negative = grad - positive
        slope_grad = channel_sum(negative.to(slope.dtype) * x.to(slope.dtype))
        slope_per_channel = slope.view(-1, *([1] * (x.dim() - 2))).to(x.dtype)
        return torch.addcmul(positive, negative, slope_per_channel), slope_grad


class PReLU(nn.PReLU):
    """Per-channel PReLU (same parameters and state_dict as ``nn.PReLU``) with a faster backward.

    Forward:  y = x if x > 0 else a_c x.
    Backward: dy/dx = 1 if x > 0 else a_c;  dL/da_c = sum over batch and space of dL/dy * min(x, 0).
    A single shared slope, and every call while the CPU kernels are off, run ``nn.PReLU``'s own.
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.num_parameters == 1 or x.dim() < 2 or not use_cpu_kernels():
            return super().forward(x)
        return _PReLUFunction.apply(x, self.weight)


class RPReLU(nn.Module):
    """ReActNet's RPReLU: y = PReLU(x - gamma) + zeta with per-channel gamma, zeta and slope."""

    def __init__(self, channels: int):
        super().__init__()
        self.shift_in = nn.Parameter(torch.zeros(1, channels, 1, 1))
        self.prelu = PReLU(channels)
        self.shift_out = nn.Parameter(torch.zeros(1, channels, 1, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.prelu(x - self.shift_in) + self.shift_out


def apply_constraints(model: nn.Module) -> None:
    """Run every module's ``constrain_`` (latent-weight clip, mix clamp): call after each optimizer step."""
    for module in model.modules():
        constrain = getattr(module, "constrain_", None)
        if constrain is not None:
            constrain()


class HalveResolution(nn.Module):
    """2 x 2 average pool at stride 2 with ceil_mode (H -> ceil(H / 2)), the shortcut of a stride-2 conv.

    Even maps go through a depthwise conv with weights 1/4 (2.6x faster than ``avg_pool2d`` on CPU,
    forward and backward); odd maps, all maps under autocast (which would round the conv, not the pool,
    to bf16), and all maps while the CPU kernels are off, through ``avg_pool2d(ceil_mode=True)``, whose
    edge windows average only the pixels they cover. No parameters, no state.
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if (x.shape[-1] % 2 or x.shape[-2] % 2 or not use_cpu_kernels()
                or torch.is_autocast_enabled(x.device.type)):
            return F.avg_pool2d(x, 2, 2, ceil_mode=True)
        channels = x.shape[1]
        return F.conv2d(x, x.new_full((channels, 1, 2, 2), 0.25), stride=2, groups=channels)


def pool_like_stride(stride: int) -> nn.Module:
    """Parameter-free shortcut resampling that matches a 'same'-padded conv of this stride: ceil(H / 2)."""
    return HalveResolution() if stride == 2 else nn.Identity()
