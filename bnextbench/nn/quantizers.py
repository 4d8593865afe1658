"""Quantizers: modules that map a real tensor to its low-precision value.

Every quantizer carries ``bits``, the precision of what it emits. Layers hold one quantizer for
their input and one for their weight, and the complexity counter reads precision from those
attributes (larq style), never from class names. A layer without a quantizer is 32-bit float.

Gradients are straight-through estimators written as autograd functions: the forward value is
exactly ``q(x)`` and the backward pass is the stated surrogate derivative, with no extra tensors
kept or computed for it. With the CPU kernels switched off (:mod:`bnextbench.nn.config`) the same
estimators are plain torch ops, ``q(x) + (s - s.detach())`` with s a function whose derivative is the
surrogate: the added term is exactly 0 forward and autograd derives the backward. Sign functions
here map 0 to +1, so binary tensors hold exactly two values (the reference BNext code uses
``torch.sign``, which maps 0 to 0).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .config import use_cpu_kernels

FLOAT_BITS = 32


def precision_of(quantizer: nn.Module | None) -> int:
    """Bits of the values a quantizer emits; a missing or plain module passes floats through."""
    return getattr(quantizer, "bits", FLOAT_BITS)


def binary_sign(x: torch.Tensor) -> torch.Tensor:
    """+1 where x >= 0 (either zero), -1 where x < 0, never 0: sign(sign(x) + 1/2), larq's convention.

    Three passes, two of them in place: half the time of ``copysign(1, x)`` on the CPU.
    """
    return torch.sign(x).add_(0.5).sign_()


class _IdentityGradient(torch.autograd.Function):
    """``quantize(x)`` forward; the gradient passes unchanged (d q / d x = 1)."""

    @staticmethod
    def forward(ctx, x: torch.Tensor, quantize) -> torch.Tensor:
        return quantize(x)

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        return grad, None


def straight_through(x: torch.Tensor, quantize) -> torch.Tensor:
    """``quantize(x)`` forward, identity gradient backward (d q / d x = 1); with the CPU kernels off,
    ``quantize(x) + (x - x.detach())``, whose added term is 0 forward and has derivative 1."""
    if use_cpu_kernels():
        return _IdentityGradient.apply(x, quantize)
    return quantize(x.detach()) + (x - x.detach())


def channel_sum(t: torch.Tensor) -> torch.Tensor:
    """Sum of an (N, C, ...) tensor over every dim but C (on CPU up to 10x faster than one
    reduction over (0, 2, 3) when the maps are small). A map stored channels-last is summed as the
    rows of its (N H W, C) matrix."""
    if t.dim() == 4 and not t.is_contiguous() and t.is_contiguous(memory_format=torch.channels_last):
        return t.permute(0, 2, 3, 1).reshape(-1, t.shape[1]).sum(0)
    return t.sum(0).flatten(1).sum(1) if t.dim() > 2 else t.sum(0)


class _ShiftedSignFunction(torch.autograd.Function):
    """sign(x + b) forward with b a per-channel shift or None; subclasses give the surrogate derivative
    twice: as ``surrogate_grad`` for this Function's backward, and as ``surrogate``, a differentiable
    function whose derivative it is, for the plain-torch path when the CPU kernels are off.

    Under autocast x may be bf16 while b, and so x + b, is fp32: dL/db is summed in fp32 and dL/dx is
    returned in x's dtype, as autograd's own backward of ``x + b`` would.
    """

    @staticmethod
    def surrogate_grad(grad: torch.Tensor, shifted: torch.Tensor, option: float) -> torch.Tensor:
        raise NotImplementedError

    @staticmethod
    def surrogate(shifted: torch.Tensor, option: float) -> torch.Tensor:
        raise NotImplementedError

    @classmethod
    def sign(cls, x: torch.Tensor, shift: torch.Tensor | None, option: float) -> torch.Tensor:
        """binary_sign(x + b) with this class's surrogate gradient, by the Function or by plain torch ops."""
        if use_cpu_kernels():
            return cls.apply(x, shift, option)
        shifted = x if shift is None else x + shift
        surrogate = cls.surrogate(shifted, option)
        return binary_sign(shifted.detach()) + (surrogate - surrogate.detach())

    @staticmethod
    def forward(ctx, x: torch.Tensor, shift: torch.Tensor | None, option: float) -> torch.Tensor:
        shifted = x if shift is None else x + shift
        ctx.save_for_backward(shifted)
        ctx.option = option
        ctx.shift_shape = None if shift is None else shift.shape
        ctx.input_dtype = x.dtype
        return binary_sign(shifted)

    @classmethod
    def _backward(cls, ctx, grad: torch.Tensor):
        (shifted,) = ctx.saved_tensors
        grad_x = cls.surrogate_grad(grad, shifted, ctx.option)
        grad_shift = None if ctx.shift_shape is None else channel_sum(grad_x).view(ctx.shift_shape)
        return grad_x.to(ctx.input_dtype), grad_shift, None


class _ClippedSign(_ShiftedSignFunction):
    """Gradient passed where |x + b| < clip (hardtanh's derivative, one fused kernel)."""

    @staticmethod
    def surrogate_grad(grad: torch.Tensor, shifted: torch.Tensor, clip: float) -> torch.Tensor:
        return torch.ops.aten.hardtanh_backward(grad, shifted, -clip, clip)

    @staticmethod
    def surrogate(shifted: torch.Tensor, clip: float) -> torch.Tensor:
        return F.hardtanh(shifted, -clip, clip)

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        return _ClippedSign._backward(ctx, grad)


class _PolynomialSign(_ShiftedSignFunction):
    """Gradient 2 - 2|x + b| inside (-1, 1), 0 outside."""

    @staticmethod
    def surrogate_grad(grad: torch.Tensor, shifted: torch.Tensor, _: float) -> torch.Tensor:
        return grad * (2 - 2 * shifted.abs()).clamp_min(0.0)

    @staticmethod
    def surrogate(shifted: torch.Tensor, _: float) -> torch.Tensor:
        inside = shifted.clamp(-1.0, 1.0)  # t (2 - |t|) has derivative 2 - 2|t|; the clamp makes it 0 outside
        return inside * (2 - inside.abs())

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        return _PolynomialSign._backward(ctx, grad)


class _ShiftedSign(nn.Module):
    """Shared part of the activation binarizers: optional learnable per-channel shift, then sign."""

    bits = 1
    sign_function: type[_ShiftedSignFunction]

    def __init__(self, channels: int | None = None):
        super().__init__()
        self.shift = nn.Parameter(torch.zeros(1, channels, 1, 1)) if channels else None

    def surrogate_option(self) -> float:
        return 0.0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.sign_function.sign(x, self.shift, self.surrogate_option())


class HardSign(_ShiftedSign):
    """Sign with a clipped straight-through estimator (BNext; XNOR-Net with ``clip=1``).

    Forward:  a_b = sign(x + b), b a learnable per-channel shift (absent when ``channels`` is None).
    Backward: d a_b / d x = 1 if |x + b| < clip else 0 (BNext: clip = 1.5).
    """

    sign_function = _ClippedSign

    def __init__(self, channels: int | None = None, clip: float = 1.5):
        super().__init__(channels)
        self.clip = clip

    def surrogate_option(self) -> float:
        return self.clip

    def extra_repr(self) -> str:
        return f"bits=1, clip={self.clip}, shift={self.shift is not None}"


class ApproxSign(_ShiftedSign):
    """Sign with the piecewise-quadratic gradient of Bi-Real Net; with a shift it is ReActNet's RSign.

    Forward:  a_b = sign(x + b) (b learnable per channel for RSign, absent for Bi-Real).
    Backward: d a_b / d x = 2 - 2|x + b| if |x + b| < 1 else 0.
    """

    sign_function = _PolynomialSign

    def extra_repr(self) -> str:
        return f"bits=1, shift={self.shift is not None}"


class ProgressiveSign(nn.Module):
    """BNext's progressive weight binarizer (from BoolNet), temperature tau kept as a saved buffer.

    Forward:  W_b = clip(W / tau, -1, 1) while tau >= ``sign_below``; W_b = sign(W) once tau < ``sign_below``.
    Backward: identity straight-through, d W_b / d W = 1 (no mask, no 1/tau factor).
    Constraint: after each optimizer step the latent W is clamped to [-latent_clip, latent_clip]
    (:meth:`constrain_weight_`; the reference clamps at the start of each training forward, the same sequence).
    tau starts at 1 and is decayed by the training recipe through :meth:`set_tau`; ``bits`` is the deployed
    precision.

    Which branch runs is the Python bool ``is_sign``, updated by :meth:`set_tau` and by ``load_state_dict``,
    never read from the buffer in the forward: reading a GPU tensor on the host waits for every queued
    kernel, once per binary layer and step, and a compiled model would break its graph there. Write tau
    through those two, not into the buffer directly.
    """

    bits = 1

    def __init__(self, sign_below: float = 1e-7, latent_clip: float = 1.5):
        super().__init__()
        self.sign_below = sign_below
        self.latent_clip = latent_clip
        self.register_buffer("tau", torch.ones(1))
        self.is_sign = False
        self.register_load_state_dict_post_hook(lambda module, _incompatible: module._follow_tau())

    def set_tau(self, tau: float) -> None:
        """Set the temperature (once per epoch: the one place tau is read back to the host)."""
        self.tau.fill_(tau)
        self._follow_tau()

    def _follow_tau(self) -> None:
        # Compared as stored (fp32), as the forward divides by the stored value.
        self.is_sign = float(self.tau) < self.sign_below

    @torch.no_grad()
    def constrain_weight_(self, weight: torch.Tensor) -> None:
        weight.clamp_(-self.latent_clip, self.latent_clip)

    def forward(self, weight: torch.Tensor) -> torch.Tensor:
        # Only the branch tau selects: the weights are the large tensors of a binary net at CIFAR sizes.
        if self.is_sign:
            return straight_through(weight, binary_sign)
        return straight_through(weight, lambda w: (w / self.tau).clamp_(-1.0, 1.0))

    def extra_repr(self) -> str:
        return f"bits=1, tau={float(self.tau):.3g}, sign_below={self.sign_below:g}"


class ScaledSign(nn.Module):
    """Sign of the weights with a per-output-channel scale alpha = mean|W| (XNOR-Net, Bi-Real, ReActNet).

    Forward:  W_b = sign(W) (exactly +-1); the layer multiplies its output channel c by
              alpha_c = mean(|W_c|), computed from W and detached, which equals a conv with alpha_c * sign(W_c).
    Backward: d W_b / d W = 1 if |W| < 1 else 0 (clipped straight-through).
    """

    bits = 1

    def forward(self, weight: torch.Tensor) -> torch.Tensor:
        return _ClippedSign.sign(weight, None, 1.0)

    @staticmethod
    def output_scale(weight: torch.Tensor) -> torch.Tensor:
        return weight.detach().abs().flatten(1).mean(dim=1)

    def extra_repr(self) -> str:
        return "bits=1, alpha=mean|W| per output channel"


class MinMaxQuantizer(nn.Module):
    """Uniform asymmetric min-max quantizer with ``bits`` bits (the 8-bit layers of BNext-quant).

    Forward:  over each group g, q = round((x - min_g) / s_g) * s_g + min_g with s_g = (max_g - min_g) / (2^bits - 1).
              Groups (``group_dims`` are the dims reduced together): weights per output row (the
              reference's per-(out, in) kernel slice for k x k kernels), activations per sample and channel.
    Backward: identity straight-through, d q / d x = 1.
    """

    def __init__(self, bits: int, group_dims: tuple[int, ...]):
        super().__init__()
        if not 2 <= bits <= 16:
            raise ValueError(f"MinMaxQuantizer supports 2..16 bits, got {bits}")
        self.bits = bits
        self.group_dims = group_dims

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return straight_through(x, self._quantize)

    def _quantize(self, x: torch.Tensor) -> torch.Tensor:
        dims = tuple(d % x.dim() for d in self.group_dims)
        low = x.amin(dim=dims, keepdim=True)
        step = (x.amax(dim=dims, keepdim=True) - low).clamp_min(1e-8) / (2**self.bits - 1)
        return torch.round((x - low) / step) * step + low

    def extra_repr(self) -> str:
        return f"bits={self.bits}, group_dims={self.group_dims}"


class PreQuantized(nn.Module):
    """Identity that declares data already held at ``bits`` bits (8-bit image pixels at the stem).

    Forward: x. Backward: identity.
    """

    def __init__(self, bits: int):
        super().__init__()
        self.bits = bits

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x

    def extra_repr(self) -> str:
        return f"bits={self.bits}"
