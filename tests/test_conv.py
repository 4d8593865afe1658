"""The matrix-product convolution equals F.conv2d forward and backward, and is used where the rule says."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from bnextbench.nn import QuantConv2d
from bnextbench.nn.conv import _ImageToColumnConv, conv2d, uses_matrix_product

# (in channels, out channels, kernel, stride, input size, bias)
GEOMETRIES = [
    (6, 5, 3, 1, 2, False),
    (6, 5, 3, 1, 4, True),
    (6, 5, 3, 2, 4, False),
    (6, 5, 3, 2, 5, True),  # odd map: 5 -> 3 at stride 2
    (6, 5, 1, 1, 3, True),  # pointwise
    (6, 5, 1, 1, 1, True),  # the SE gate's 1 x 1 map
    (6, 5, 1, 2, 4, False),  # strided 1 x 1 (a ResNet shortcut)
]


@pytest.mark.parametrize("geometry", GEOMETRIES, ids=lambda g: "c{}-{}k{}s{}h{}-bias{}".format(*g))
def test_matrix_product_conv_equals_conv2d(geometry):
    cin, cout, kernel, stride, size, has_bias = geometry
    torch.manual_seed(0)
    x = torch.randn(3, cin, size, size, requires_grad=True)
    weight = torch.randn(cout, cin, kernel, kernel, requires_grad=True)
    bias = torch.randn(cout, requires_grad=True) if has_bias else None
    inputs = [t for t in (x, weight, bias) if t is not None]
    padding = kernel // 2
    ours = _ImageToColumnConv.apply(x, weight, bias, stride, padding)
    theirs = F.conv2d(x, weight, bias, stride, padding)
    assert ours.shape == theirs.shape and ours.is_contiguous()
    assert torch.allclose(ours, theirs, atol=1e-5)
    upstream = torch.randn_like(theirs)
    for a, b in zip(torch.autograd.grad(ours, inputs, upstream), torch.autograd.grad(theirs, inputs, upstream)):
        assert a.shape == b.shape and a.is_contiguous()
        assert torch.allclose(a, b, atol=1e-5)


def test_only_the_weight_gradient_when_the_input_needs_none():
    weight = torch.randn(4, 3, 3, 3, requires_grad=True)
    x = torch.randn(2, 3, 2, 2)
    (grad,) = torch.autograd.grad(_ImageToColumnConv.apply(x, weight, None, 1, 1).sum(), weight)
    assert torch.allclose(grad, torch.autograd.grad(F.conv2d(x, weight, None, 1, 1).sum(), weight)[0], atol=1e-5)


def test_rule_matches_the_measured_table():
    # benchmarks/conv_kernels.py: 1024 ch 3 x 3 on 2 x 2 -> matrix product; 128 ch 3 x 3 on 2 x 2 and
    # 256 ch 3 x 3 on 8 x 8 -> oneDNN; 1 x 1 on maps up to 8 x 8 -> matrix product.
    def rule(channels, kernel, stride, size):
        return uses_matrix_product(torch.Size((64, channels, size, size)),
                                   torch.Size((channels, channels, kernel, kernel)), stride, kernel // 2)

    assert rule(1024, 3, 1, 2) and rule(512, 3, 2, 4) and rule(512, 1, 1, 8) and rule(64, 1, 1, 1)
    assert not rule(128, 3, 1, 2) and not rule(256, 3, 1, 8) and not rule(512, 1, 1, 16)


def test_quant_conv_dispatches_and_keeps_values():
    torch.manual_seed(0)
    layer = QuantConv2d(256, 8, 3)  # 256 input channels on a 2 x 2 map: the matrix-product side
    x = torch.randn(2, 256, 2, 2)
    assert uses_matrix_product(x.shape, layer.weight.shape, 1, 1)
    assert torch.allclose(layer(x), F.conv2d(x, layer.weight, None, 1, 1), atol=1e-5)
    assert torch.allclose(conv2d(x, layer.weight, None, 1, 1), layer(x))
