"""Each CPU conv algorithm equals F.conv2d forward and backward, and conv2d runs the one the rule names."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from bnextbench.nn import QuantConv2d
from bnextbench.nn.conv import _ImageToColumnConv, _WinogradConv, algorithm_for, conv2d

# (in channels, out channels, kernel, stride, input height, input width, bias)
MATMUL_GEOMETRIES = [
    (6, 5, 3, 1, 2, 2, False),
    (6, 5, 3, 1, 4, 4, True),
    (6, 5, 3, 2, 4, 4, False),
    (6, 5, 3, 2, 5, 5, True),  # odd map: 5 -> 3 at stride 2
    (6, 5, 3, 1, 3, 5, False),  # not square
    (6, 5, 1, 1, 3, 3, True),  # pointwise
    (6, 5, 1, 1, 1, 1, True),  # the SE gate's 1 x 1 map
    (6, 5, 1, 2, 4, 4, False),  # strided 1 x 1 (a ResNet shortcut)
]
WINOGRAD_GEOMETRIES = [
    (6, 5, 3, 1, 2, 2, False),
    (6, 5, 3, 1, 4, 4, True),
    (3, 4, 3, 1, 6, 8, False),  # not square, several tiles per row and column
]


def assert_equals_conv2d(conv, geometry):
    cin, cout, kernel, stride, height, width, has_bias = geometry
    torch.manual_seed(0)
    x = torch.randn(3, cin, height, width, requires_grad=True)
    weight = torch.randn(cout, cin, kernel, kernel, requires_grad=True)
    bias = torch.randn(cout, requires_grad=True) if has_bias else None
    inputs = [t for t in (x, weight, bias) if t is not None]
    padding = kernel // 2
    ours = conv(x, weight, bias, stride, padding)
    theirs = F.conv2d(x, weight, bias, stride, padding)
    assert ours.shape == theirs.shape and ours.is_contiguous(memory_format=torch.channels_last)
    assert torch.allclose(ours, theirs, atol=1e-5)
    upstream = torch.randn_like(theirs)
    for a, b in zip(torch.autograd.grad(ours, inputs, upstream), torch.autograd.grad(theirs, inputs, upstream)):
        assert a.shape == b.shape
        assert torch.allclose(a, b, atol=1e-4)


def geometry_id(geometry) -> str:
    return "c{}-{}k{}s{}-{}x{}-bias{}".format(*geometry)


@pytest.mark.parametrize("geometry", MATMUL_GEOMETRIES, ids=geometry_id)
def test_matrix_product_conv_equals_conv2d(geometry):
    assert_equals_conv2d(_ImageToColumnConv.apply, geometry)


@pytest.mark.parametrize("geometry", WINOGRAD_GEOMETRIES, ids=geometry_id)
def test_winograd_conv_equals_conv2d(geometry):
    assert_equals_conv2d(lambda x, w, b, stride, padding: _WinogradConv.apply(x, w, b), geometry)


@pytest.mark.parametrize("function", [_ImageToColumnConv.apply, lambda x, w, b, s, p: _WinogradConv.apply(x, w, b)])
def test_only_the_weight_gradient_when_the_input_needs_none(function):
    weight = torch.randn(4, 3, 3, 3, requires_grad=True)
    x = torch.randn(2, 3, 2, 2)
    (grad,) = torch.autograd.grad(function(x, weight, None, 1, 1).sum(), weight)
    assert torch.allclose(grad, torch.autograd.grad(F.conv2d(x, weight, None, 1, 1).sum(), weight)[0], atol=1e-5)


@pytest.mark.parametrize(
    "channels, kernel, stride, size, expected",
    [  # rows of results/benchmark-conv-kernels.txt
        (512, 3, 1, 4, "winograd"),
        (256, 3, 1, 2, "winograd"),
        (128, 3, 1, 32, "winograd"),
        (512, 3, 2, 4, "matmul"),
        (1024, 1, 1, 2, "matmul"),
        (128, 3, 1, 4, "onednn"),
        (128, 3, 1, 2, "onednn"),
        (256, 1, 1, 8, "onednn"),
        (64, 3, 1, 32, "onednn"),
    ],
)
def test_rule_matches_the_measured_table(channels, kernel, stride, size, expected):
    x_shape = torch.Size((64, channels, size, size))
    assert algorithm_for(x_shape, torch.Size((channels, channels, kernel, kernel)), stride, kernel // 2) == expected


def test_odd_maps_never_go_to_winograd():
    assert algorithm_for(torch.Size((8, 512, 3, 3)), torch.Size((512, 512, 3, 3)), 1, 1) == "matmul"


@pytest.mark.parametrize("channels, size, algorithm", [(256, 2, "winograd"), (256, 1, "matmul"), (64, 16, "onednn")])
def test_quant_conv_dispatches_and_keeps_values(channels, size, algorithm):
    torch.manual_seed(0)
    layer = QuantConv2d(channels, 8, 3)
    x = torch.randn(2, channels, size, size)
    assert algorithm_for(x.shape, layer.weight.shape, 1, 1) == algorithm
    assert torch.allclose(layer(x), F.conv2d(x, layer.weight, None, 1, 1), atol=1e-4)
    assert torch.equal(conv2d(x, layer.weight, None, 1, 1), layer(x))


def test_other_dtypes_go_to_conv2d():
    x, weight = torch.randn(2, 256, 2, 2, dtype=torch.float64), torch.randn(8, 256, 3, 3, dtype=torch.float64)
    assert torch.equal(conv2d(x, weight, None, 1, 1), F.conv2d(x, weight, None, 1, 1))
