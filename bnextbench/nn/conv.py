"""2-D convolution that picks, per call, the faster of oneDNN and one matrix product on the CPU.

On small feature maps (the deep stages of a net at CIFAR resolution) oneDNN's direct convolution
leaves most of the CPU idle: at batch 64 a 1024 -> 1024 3 x 3 conv on 2 x 2 maps takes 284 ms forward
and backward on 2 cores, against 140 ms as an im2col matrix product (benchmarks/conv_kernels.py).
:func:`conv2d` sends such calls to :class:`_ImageToColumnConv` and everything else to ``F.conv2d``.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

# Where the matrix product wins (forward + backward, batch 64, 2 cores; benchmarks/conv_kernels.py):
# a 1 x 1 conv on maps up to 8 x 8 (0.5-0.97 of oneDNN's time), a k x k conv once the input has at
# least 128 channels per pixel of output side (1024 ch on 2 x 2: 0.49 of oneDNN's time; 512 on 4 x 4 at
# stride 2: 0.46; 512 on 4 x 4: 0.98; 128 on 2 x 2, below the line: 1.61).
MAX_POINTWISE_GEMM_PIXELS = 64
CHANNELS_PER_OUTPUT_SIDE = 128


class _ImageToColumnConv(torch.autograd.Function):
    """Convolution as one matrix product over channels-last patches (zero padding, groups 1, dilation 1).

    Forward:  P = patches(x) of shape (N Ho Wo, kh kw Cin); out = P W_m^T + b with W_m the kernel as
              (Cout, kh kw Cin), returned as a contiguous (N, Cout, Ho, Wo) map.
    Backward: dL/dW_m = G^T P, dL/db = column sums of G, dL/dP = G W_m scattered back onto x tap by tap,
              with G the output gradient as (N Ho Wo, Cout). Same values as ``F.conv2d`` up to fp32 rounding.
    """

    @staticmethod
    def forward(ctx, x, weight, bias, stride: int, padding: int):
        batch, in_channels, height, width = x.shape
        out_channels, _, kernel_h, kernel_w = weight.shape
        out_h = (height + 2 * padding - kernel_h) // stride + 1
        out_w = (width + 2 * padding - kernel_w) // stride + 1
        pointwise = kernel_h == kernel_w == stride == 1 and padding == 0
        channels_last = x.permute(0, 2, 3, 1)
        if pointwise:
            patches = channels_last.reshape(batch * out_h * out_w, in_channels)
        else:
            if padding:
                channels_last = F.pad(channels_last, (0, 0, padding, padding, padding, padding))
            windows = channels_last.unfold(1, kernel_h, stride).unfold(2, kernel_w, stride)  # N Ho Wo Cin kh kw
            patches = windows.permute(0, 1, 2, 4, 5, 3).reshape(batch * out_h * out_w, -1)
        kernel = weight.permute(0, 2, 3, 1).reshape(out_channels, -1)
        out = patches @ kernel.t() if bias is None else torch.addmm(bias, patches, kernel.t())
        ctx.save_for_backward(patches, kernel)
        ctx.geometry = (x.shape, weight.shape, stride, padding, out_h, out_w, pointwise, bias is not None)
        return out.view(batch, out_h, out_w, out_channels).permute(0, 3, 1, 2).contiguous()

    @staticmethod
    def backward(ctx, grad):
        patches, kernel = ctx.saved_tensors
        x_shape, weight_shape, stride, padding, out_h, out_w, pointwise, has_bias = ctx.geometry
        batch, in_channels, height, width = x_shape
        out_channels, _, kernel_h, kernel_w = weight_shape
        grad_rows = grad.permute(0, 2, 3, 1).reshape(-1, out_channels)
        grad_x = grad_weight = grad_bias = None
        if ctx.needs_input_grad[0]:
            grad_patches = grad_rows @ kernel
            if pointwise:
                grad_x = grad_patches.view(batch, height, width, in_channels)
            else:
                grad_patches = grad_patches.view(batch, out_h, out_w, kernel_h, kernel_w, in_channels)
                padded = grad.new_zeros(batch, height + 2 * padding, width + 2 * padding, in_channels)
                rows, cols = stride * (out_h - 1) + 1, stride * (out_w - 1) + 1
                for i in range(kernel_h):
                    for j in range(kernel_w):
                        padded[:, i : i + rows : stride, j : j + cols : stride] += grad_patches[:, :, :, i, j]
                grad_x = padded[:, padding : padding + height, padding : padding + width]
            grad_x = grad_x.permute(0, 3, 1, 2).contiguous()
        if ctx.needs_input_grad[1]:
            grad_weight = (grad_rows.t() @ patches).view(out_channels, kernel_h, kernel_w, in_channels)
            grad_weight = grad_weight.permute(0, 3, 1, 2).contiguous()
        if has_bias and ctx.needs_input_grad[2]:
            grad_bias = grad_rows.sum(0)
        return grad_x, grad_weight, grad_bias, None, None


def uses_matrix_product(x_shape: torch.Size, weight_shape: torch.Size, stride: int, padding: int) -> bool:
    """Whether :func:`conv2d` computes a CPU conv of these shapes as a matrix product (see the table above)."""
    out_h = (x_shape[-2] + 2 * padding - weight_shape[-2]) // stride + 1
    out_w = (x_shape[-1] + 2 * padding - weight_shape[-1]) // stride + 1
    if weight_shape[-2] == weight_shape[-1] == stride == 1 and padding == 0:
        return out_h * out_w <= MAX_POINTWISE_GEMM_PIXELS
    return x_shape[1] >= CHANNELS_PER_OUTPUT_SIDE * max(out_h, out_w)


def conv2d(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None, stride: int, padding: int) -> torch.Tensor:
    """``F.conv2d(x, weight, bias, stride, padding)`` with groups 1, as a matrix product where that is faster."""
    if x.device.type == "cpu" and x.dim() == 4 and uses_matrix_product(x.shape, weight.shape, stride, padding):
        return _ImageToColumnConv.apply(x, weight, bias, stride, padding)
    return F.conv2d(x, weight, bias, stride, padding)
