"""The engine's binary layers: convolution and linear layers that hold packed sign bits and run
:mod:`bnextbench.deploy.kernels` instead of a float convolution.

Each takes the place of a :class:`~bnextbench.nn.QuantConv2d` or :class:`~bnextbench.nn.QuantLinear`
whose input and weight are both 1-bit, and computes what that layer computes in eval mode:

- input: a = sign(x + b) per channel, 0 -> +1; held as the threshold t = -b (a = -1 exactly where x < t);
- weight: W_b = sign(W), packed 64 signs to a word, output channels last;
- output: conv(a, W_b) with zero padding (an integer, exact in fp32) plus the layer's bias, times
  alpha_c = mean|W_c| per output channel where the weight binarizer scales (:class:`~bnextbench.nn.ScaledSign`),
  in the simulated layer's order.

Inputs and outputs are torch float32 tensors on the CPU in the default (N, C, H, W) layout, the one the
simulated model's float layers run in: the same layout gives the same fp32 rounding in every layer
around the binary ones, so logits agree bit for bit where the simulated convs sum exactly.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from . import kernels


def pack_weight_signs(weight: torch.Tensor) -> torch.Tensor:
    """(O, C, KH, KW) or (O, C) real weights -> (KH, KW, words, O) uint64 sign bits (set where W < 0).

    sign(W) maps 0 (and -0.0) to +1, so only W < 0 sets a bit; channels past C in the last word stay clear.
    """
    if weight.dim() == 2:
        weight = weight[:, :, None, None]
    outputs, channels, kernel_h, kernel_w = weight.shape
    words = kernels.words_for(channels)
    negative = np.zeros((kernel_h, kernel_w, words * kernels.WORD_BITS, outputs), dtype=np.uint64)
    negative[:, :, :channels, :] = (weight.detach().cpu() < 0).permute(2, 3, 1, 0).numpy()
    shifts = np.arange(kernels.WORD_BITS, dtype=np.uint64)[None, None, None, :, None]
    by_word = negative.reshape(kernel_h, kernel_w, words, kernels.WORD_BITS, outputs) << shifts
    return torch.from_numpy(np.bitwise_or.reduce(by_word, axis=3))


def _packed_input(x: torch.Tensor, threshold: torch.Tensor, channels: int, where: str) -> np.ndarray:
    if x.dtype != torch.float32 or x.device.type != "cpu":
        raise TypeError(f"{where} runs float32 on the CPU, got {x.dtype} on {x.device}")
    if x.dim() != 4 or x.shape[1] != channels:
        raise ValueError(f"{where} takes (N, {channels}, H, W) input, got {tuple(x.shape)}")
    batch, _, height, width = x.shape
    packed = np.empty((batch, height, width, kernels.words_for(channels)), dtype=np.uint64)
    kernels.pack_signs(x.detach().contiguous().numpy(), threshold.numpy(), packed)
    return packed


class PackedBinaryConv2d(nn.Module):
    """Square binary convolution, groups 1, as XNOR-popcount over packed words (see the module docstring).

    Buffers: ``packed_weight`` (KH, KW, words, O) uint64, ``threshold`` (C,) float32, ``alpha`` (O,) float32
    when scaled, ``bias`` (O,) float32 when the layer has one.
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, stride: int, padding: int,
                 scaled: bool, bias: bool):
        super().__init__()
        self.in_channels, self.out_channels = in_channels, out_channels
        self.kernel_size, self.stride, self.padding = kernel_size, stride, padding
        words = kernels.words_for(in_channels)
        self.register_buffer("packed_weight", torch.zeros((kernel_size, kernel_size, words, out_channels),
                                                          dtype=torch.uint64))
        self.register_buffer("threshold", torch.zeros(in_channels))
        self.register_buffer("alpha", torch.ones(out_channels) if scaled else None)
        self.register_buffer("bias", torch.zeros(out_channels) if bias else None)

    def output_side(self, side: int) -> int:
        return (side + 2 * self.padding - self.kernel_size) // self.stride + 1

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        packed = _packed_input(x, self.threshold, self.in_channels, type(self).__name__)
        batch, height, width, _ = packed.shape
        out = np.empty((batch, self.out_channels, self.output_side(height), self.output_side(width)), np.float32)
        kernels.binary_conv2d(packed, self.packed_weight.numpy(), self.stride, self.padding, self.in_channels, out)
        y = torch.from_numpy(out)
        if self.bias is not None:  # the simulated layer adds its bias inside the conv, then scales
            y = y + self.bias.view(1, -1, 1, 1)
        if self.alpha is not None:
            y = y * self.alpha.view(1, -1, 1, 1)
        return y

    def extra_repr(self) -> str:
        return (f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, stride={self.stride}, "
                f"padding={self.padding}, scaled={self.alpha is not None}")


class PackedBinaryLinear(nn.Module):
    """Binary linear layer: a 1 x 1 packed convolution over an (N, C) input seen as N maps of 1 x 1, + bias.

    :class:`~bnextbench.nn.QuantLinear` applies no output scale, so neither does this layer.
    """

    def __init__(self, in_features: int, out_features: int, bias: bool):
        super().__init__()
        self.in_features, self.out_features = in_features, out_features
        self.register_buffer("packed_weight", torch.zeros((1, 1, kernels.words_for(in_features), out_features),
                                                          dtype=torch.uint64))
        self.register_buffer("threshold", torch.zeros(in_features))
        self.register_buffer("bias", torch.zeros(out_features) if bias else None)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() != 2:
            raise ValueError(f"{type(self).__name__} takes (N, {self.in_features}) input, got {tuple(x.shape)}")
        packed = _packed_input(x[:, :, None, None], self.threshold, self.in_features, type(self).__name__)
        out = np.empty((x.shape[0], self.out_features, 1, 1), np.float32)
        kernels.binary_conv2d(packed, self.packed_weight.numpy(), 1, 0, self.in_features, out)
        y = torch.from_numpy(out).view(x.shape[0], self.out_features)
        return y if self.bias is None else y + self.bias

    def extra_repr(self) -> str:
        return f"in_features={self.in_features}, out_features={self.out_features}"
