"""Forward and backward formulas of the quantizers, as their docstrings state them, with the CPU kernels
on (hand-written autograd Functions) and off (plain torch ops, autograd's backward)."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from bnextbench.models import create_model
from bnextbench.nn import (
    ApproxSign,
    HardSign,
    MinMaxQuantizer,
    PReLU,
    PreQuantized,
    ProgressiveSign,
    QuantConv2d,
    ScaledSign,
    apply_constraints,
    binary_sign,
    cpu_kernels,
    layer_precision,
)
from bnextbench.nn.layers import HalveResolution, spatial_mean
from bnextbench.nn.quantizers import channel_sum

POINTS = torch.tensor([-2.0, -1.5, -0.9, -0.25, 0.0, 0.25, 0.9, 1.4, 2.0])


@pytest.fixture(autouse=True, params=[True, False], ids=["cpu-kernels", "plain-torch"])
def _both_kernel_settings(request):
    """Every test here runs on both paths of bnextbench.nn.config's switch."""
    with cpu_kernels(request.param):
        yield


def value_and_grad(quantizer, x):
    x = x.clone().requires_grad_(True)
    out = quantizer(x)
    out.sum().backward()
    return out.detach(), x.grad


def test_hard_sign_clips_the_gradient_at_1_5():
    out, grad = value_and_grad(HardSign(), POINTS)
    assert out.tolist() == [-1, -1, -1, -1, 1, 1, 1, 1, 1]
    assert grad.tolist() == [0, 0, 1, 1, 1, 1, 1, 1, 0]  # |x| < 1.5 passes; -1.5 sits on the edge
    _, grad = value_and_grad(HardSign(clip=1.0), POINTS)
    assert grad.tolist() == [0, 0, 1, 1, 1, 1, 1, 0, 0]


def test_learnable_shift_moves_the_threshold_and_learns():
    sign = HardSign(channels=2)
    with torch.no_grad():
        sign.shift.copy_(torch.tensor([0.5, -0.5]).view(1, 2, 1, 1))
    x = torch.full((1, 2, 1, 1), -0.25)
    assert sign(x).flatten().tolist() == [1.0, -1.0]
    sign(x).sum().backward()
    assert sign.shift.grad.flatten().tolist() == [1.0, 1.0]


def test_approx_sign_gradient_is_2_minus_2_abs_x():
    out, grad = value_and_grad(ApproxSign(), POINTS)
    assert out.tolist() == [-1, -1, -1, -1, 1, 1, 1, 1, 1]
    expected = torch.where(POINTS.abs() < 1, 2 - 2 * POINTS.abs(), torch.zeros(()))
    assert torch.allclose(grad, expected)


def test_progressive_sign_clips_by_tau_then_turns_sign():
    quantizer = ProgressiveSign().eval()
    weight = torch.tensor([-0.3, -0.01, 0.02, 0.4])
    quantizer.set_tau(0.1)
    out, grad = value_and_grad(quantizer, weight)
    assert torch.allclose(out, torch.tensor([-1.0, -0.1, 0.2, 1.0]))
    assert grad.tolist() == [1, 1, 1, 1]  # identity straight-through, no 1/tau, no mask
    quantizer.set_tau(0.9e-7)
    assert quantizer.is_sign and quantizer(weight).tolist() == [-1, -1, 1, 1]
    assert "tau" in dict(quantizer.named_buffers())


def test_constraints_clamp_latent_weights_and_mix_after_a_step():
    model = create_model("bnext_tiny", num_classes=10, small_input=True, width_mult=0.125)
    unit = model.blocks[1].ffn[0]
    with torch.no_grad():
        unit.conv.weight[0, 0, 0, 0] = -3.0
        unit.conv.weight[0, 1, 0, 0] = 2.0
        unit.recoupling.mix[0, :2] = torch.tensor([-0.5, 1.5]).view(2, 1, 1)
    before = unit.conv.weight.clone()
    model.train()(torch.randn(2, 3, 16, 16))
    assert torch.equal(unit.conv.weight, before)  # the forward mutates nothing
    apply_constraints(model)
    assert unit.conv.weight[0, 0, 0, 0] == -1.5 and unit.conv.weight[0, 1, 0, 0] == 1.5
    assert unit.recoupling.mix[0, :2].flatten().tolist() == [0.0, 1.0]


def test_scaled_sign_emits_plus_minus_one_and_scales_the_output():
    torch.manual_seed(0)
    conv = QuantConv2d(4, 3, 3, weight_quantizer=ScaledSign())
    x = torch.randn(1, 4, 5, 5)
    alpha = conv.weight.abs().mean(dim=(1, 2, 3))
    reference = torch.nn.functional.conv2d(x, alpha.view(3, 1, 1, 1) * conv.weight.sign(), padding=1)
    assert torch.allclose(conv(x), reference, atol=1e-6)
    _, grad = value_and_grad(ScaledSign(), torch.tensor([-1.5, -0.5, 0.5, 1.5]))
    assert grad.tolist() == [0, 1, 1, 0]


def test_min_max_quantizer_has_2_pow_bits_levels_per_group():
    x = torch.randn(4, 1000)
    out, grad = value_and_grad(MinMaxQuantizer(4, (1,)), x)
    for row, quantized in zip(x, out):
        assert len(quantized.unique()) <= 16
        step = (row.max() - row.min()) / 15
        assert (quantized - row).abs().max() <= step / 2 + 1e-6
    assert torch.equal(grad, torch.ones_like(x))
    with pytest.raises(ValueError):
        MinMaxQuantizer(1, (1,))


def test_layers_report_their_precision():
    assert layer_precision(QuantConv2d(3, 3, 3)) == (32, 32)
    binary = QuantConv2d(3, 3, 3, input_quantizer=HardSign(3), weight_quantizer=ProgressiveSign())
    assert layer_precision(binary) == (1, 1)
    stem = QuantConv2d(3, 8, 3, input_quantizer=PreQuantized(8), weight_quantizer=MinMaxQuantizer(8, (2, 3)))
    assert layer_precision(stem) == (8, 8)
    assert layer_precision(torch.nn.Linear(2, 2)) == (32, 32)


@pytest.mark.parametrize("sign", [HardSign(channels=3), ApproxSign(channels=3)], ids=["hard", "approx"])
def test_shift_gradient_is_the_channel_sum_of_the_input_gradient(sign):
    torch.manual_seed(0)
    with torch.no_grad():
        sign.shift.normal_()
    x = torch.randn(4, 3, 5, 5, requires_grad=True)
    upstream = torch.randn(4, 3, 5, 5)
    grad_x, grad_shift = torch.autograd.grad(sign(x), (x, sign.shift), upstream)
    assert torch.allclose(grad_shift, grad_x.sum(dim=(0, 2, 3), keepdim=True), atol=1e-5)


def test_fast_prelu_matches_torch_prelu_forward_and_backward():
    torch.manual_seed(0)
    fast = PReLU(6)
    with torch.no_grad():
        fast.weight.uniform_(-0.5, 0.5)
    reference = torch.nn.PReLU(6)
    reference.load_state_dict(fast.state_dict())  # same parameters, same state_dict keys
    x = torch.randn(4, 6, 5, 5, requires_grad=True)
    upstream = torch.randn(4, 6, 5, 5)
    assert torch.equal(fast(x), reference(x))
    ours = torch.autograd.grad(fast(x), (x, fast.weight), upstream)
    theirs = torch.autograd.grad(reference(x), (x, reference.weight), upstream)
    assert torch.equal(ours[0], theirs[0])
    assert torch.allclose(ours[1], theirs[1], atol=1e-5)


@pytest.mark.parametrize("size", [8, 5])
def test_halving_pool_equals_ceil_mode_average_pool(size):
    x = torch.randn(2, 3, size, size, requires_grad=True)
    ours, theirs = HalveResolution()(x), F.avg_pool2d(x, 2, 2, ceil_mode=True)
    assert ours.shape == theirs.shape == (2, 3, (size + 1) // 2, (size + 1) // 2)
    assert torch.allclose(ours, theirs, atol=1e-6)
    upstream = torch.randn_like(ours)
    assert torch.allclose(torch.autograd.grad(ours, x, upstream)[0], torch.autograd.grad(theirs, x, upstream)[0])


def test_spatial_mean_gradient_is_the_broadcast_mean_gradient():
    x = torch.randn(3, 4, 5, 6, requires_grad=True)
    upstream = torch.randn(3, 4, 1, 1)
    assert torch.allclose(spatial_mean(x), x.mean(dim=(2, 3), keepdim=True))
    assert torch.equal(torch.autograd.grad(spatial_mean(x), x, upstream)[0],
                       torch.autograd.grad(x.mean(dim=(2, 3), keepdim=True), x, upstream)[0])


def test_binary_sign_maps_both_zeros_to_plus_one_and_keeps_two_values():
    x = torch.tensor([-2.0, -1e-30, -0.0, 0.0, 1e-30, 3.0])
    assert binary_sign(x).tolist() == [-1.0, -1.0, 1.0, 1.0, 1.0, 1.0]


def test_channel_sum_reads_both_layouts():
    x = torch.randn(3, 5, 4, 2)
    expected = x.sum(dim=(0, 2, 3))
    assert torch.allclose(channel_sum(x), expected, atol=1e-5)
    assert torch.allclose(channel_sum(x.to(memory_format=torch.channels_last)), expected, atol=1e-5)
