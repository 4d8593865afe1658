"""Layer sites: where each conv and linear of a model sits, with the geometry the counter needs.

A model describes its layers at a resolution by :class:`LayerSite` records, computed analytically
(no forward pass). Square inputs; a 'same'-padded conv of stride s maps a side of n to ceil(n / s).
"""

from __future__ import annotations

from typing import NamedTuple

from torch import nn

from ..nn import layer_precision


def conv_out(size: int, stride: int) -> int:
    """Output side of a 'same'-padded conv or pool (odd kernel, padding k // 2, or 2 x 2 ceil-mode pool)."""
    return -(-size // stride)


class LayerSite(NamedTuple):
    """One conv or linear layer: shapes, input side length, precision (weight bits, input bits)."""

    name: str
    kind: str  # "conv" or "linear"
    in_channels: int
    out_channels: int
    kernel_size: int
    stride: int
    groups: int
    in_size: int
    bias: bool
    weight_bits: int
    input_bits: int

    @property
    def out_size(self) -> int:
        return conv_out(self.in_size, self.stride)

    @property
    def macs(self) -> int:
        per_output = self.in_channels // self.groups * self.kernel_size**2
        return self.out_channels * self.out_size**2 * per_output

    @property
    def weight_params(self) -> int:
        return self.out_channels * self.in_channels // self.groups * self.kernel_size**2

    @property
    def params(self) -> int:
        return self.weight_params + (self.out_channels if self.bias else 0)

    @classmethod
    def of(cls, layer: nn.Module, name: str, in_size: int) -> LayerSite:
        """The site of an existing conv or linear layer, its precision read from its quantizers."""
        weight_bits, input_bits = layer_precision(layer)
        if isinstance(layer, nn.Linear):
            return cls(name, "linear", layer.in_features, layer.out_features, 1, 1, 1, 1, layer.bias is not None,
                       weight_bits, input_bits)
        return cls(name, "conv", layer.in_channels, layer.out_channels, layer.kernel_size[0], layer.stride[0], layer.groups,
                   in_size, layer.bias is not None, weight_bits, input_bits)


def conv_site(name: str, cin: int, cout: int, kernel: int, stride: int, in_size: int, bits: tuple[int, int],
              bias: bool = False) -> LayerSite:
    return LayerSite(name, "conv", cin, cout, kernel, stride, 1, in_size, bias, *bits)


def linear_site(name: str, in_features: int, out_features: int, bits: tuple[int, int]) -> LayerSite:
    return LayerSite(name, "linear", in_features, out_features, 1, 1, 1, 1, True, *bits)
