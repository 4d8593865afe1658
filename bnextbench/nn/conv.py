"""2-D convolution that picks, per shape, the fastest of three algorithms on the CPU.

On small feature maps (the deep stages of a net at CIFAR resolution) oneDNN's direct convolution
leaves most of the CPU idle: at batch 64 on 2 cores, forward and backward of a 1024 -> 1024 3 x 3 conv
at stride 2 on 4 x 4 maps take 373 ms against 92 ms as one im2col matrix product, and a 1024 -> 1024
3 x 3 conv on 4 x 4 maps 443 ms against 161 ms by Winograd's F(2 x 2, 3 x 3) (benchmarks/conv_kernels.py,
results/benchmark-conv-kernels.txt). :func:`conv2d` dispatches by :func:`algorithm_for`, or always to
``F.conv2d`` when :func:`bnextbench.nn.config.use_cpu_kernels` is off (``BNEXTBENCH_CPU_KERNELS=0``).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from .config import use_cpu_kernels
from .quantizers import channel_sum

# The rule, read off results/benchmark-conv-kernels.txt (forward + backward, batch 64, 2 cores):
# - Winograd for 3 x 3 stride-1 convs on even maps with at least 256 input channels, or 128 on maps of
#   16 x 16 and more (1024 ch on 4 x 4: 0.36 of oneDNN's time, 512 on 8 x 8: 0.58, 256 on 2 x 2: 0.81,
#   128 on 16 x 16: 0.97; 128 on 4 x 4: 1.35 and 64 on 32 x 32: 1.42, too few channels);
# - otherwise the matrix product for 1 x 1 convs on maps up to 4 x 4 (0.50-0.88) and for k x k convs
#   with at least 128 input channels per pixel of output side (1024 on 4 x 4 at stride 2: 0.25, 512 on
#   8 x 8 at stride 2: 0.66; 128 on 4 x 4 at stride 2, below: 1.05);
# - oneDNN for the rest (large maps, few channels).
# Measured at 2 threads on a 2-core KVM guest with AVX-512, torch 2.14.1. lscpu on this project's host:
# model name "AMD EPYC" (family 25, model 17: Zen 4), 2 cores, 1 thread per core, AVX-512 F/BW/VL/VNNI;
# results/benchmark-train-step.txt calls its host a "2-core AVX-512 Xeon", the conv table records only
# the 2 threads. Core count, vector width and the oneDNN version move these crossovers: on another CPU,
# rerun benchmarks/conv_kernels.py before trusting them (or set BNEXTBENCH_CPU_KERNELS=0).
MIN_WINOGRAD_CHANNELS = 256
MIN_WINOGRAD_CHANNELS_ON_LARGE_MAPS = (128, 16)  # channels, from this map side on
MATMUL_CHANNELS_PER_OUTPUT_SIDE = 128
MAX_POINTWISE_MATMUL_PIXELS = 16


class _ImageToColumnConv(torch.autograd.Function):
    """Convolution as one matrix product over channels-last patches (zero padding, groups 1, dilation 1).

    Forward:  P = patches(x) of shape (N Ho Wo, kh kw Cin); out = P W_m^T + b with W_m the kernel as
              (Cout, kh kw Cin). The (N, Cout, Ho, Wo) result is a view of the channels-last product, not
              copied to NCHW: BatchNorm and channel sums read it faster, and a next matrix-product or
              Winograd conv gathers its patches from it directly (``channel_sum`` reads either layout).
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
        return out.view(batch, out_h, out_w, out_channels).permute(0, 3, 1, 2)

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
            grad_x = grad_x.permute(0, 3, 1, 2)
        if ctx.needs_input_grad[1]:
            grad_weight = (grad_rows.t() @ patches).view(out_channels, kernel_h, kernel_w, in_channels)
            grad_weight = grad_weight.permute(0, 3, 1, 2).contiguous()
        if has_bias and ctx.needs_input_grad[2]:
            grad_bias = grad_rows.sum(0)
        return grad_x, grad_weight, grad_bias, None, None


def _kron_transforms() -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Winograd F(2 x 2, 3 x 3) matrices (Lavin & Gray 2016) as Kronecker products acting on flattened tiles."""
    b_t = torch.tensor([[1.0, 0, -1, 0], [0, 1, 1, 0], [0, -1, 1, 0], [0, 1, 0, -1]])
    g = torch.tensor([[1.0, 0, 0], [0.5, 0.5, 0.5], [0.5, -0.5, 0.5], [0, 0, 1]])
    a_t = torch.tensor([[1.0, 1, 1, 0], [0, 1, -1, -1]])
    return torch.kron(b_t, b_t), torch.kron(g, g), torch.kron(a_t, a_t)  # 16 x 16, 16 x 9, 4 x 16


INPUT_TRANSFORM, KERNEL_TRANSFORM, OUTPUT_TRANSFORM = _kron_transforms()


class _WinogradConv(torch.autograd.Function):
    """3 x 3 convolution, stride 1, zero padding 1, on even maps, by Winograd's F(2 x 2, 3 x 3).

    Forward:  for every 4 x 4 input tile d (stride 2) and kernel g: out tile (2 x 2) = A^T [(G g G^T) . (B^T d B)] A,
              the 16 element-wise products summed over input channels as 16 matrix products
              (2.25x fewer multiplications than direct convolution).
    Backward: the adjoint of each linear step: dM = A dY A^T per tile; dU = sum over tiles of V^T dM and
              dV = dM U^T (16 matrix products each); dW = G^T dU G; dx = B dV B^T added back over the
              overlapping tiles. Same values as ``F.conv2d`` up to fp32 rounding; the output is
              channels-last in memory like :class:`_ImageToColumnConv`'s.
    """

    @staticmethod
    def forward(ctx, x, weight, bias):
        batch, in_channels, height, width = x.shape
        out_channels = weight.shape[0]
        tiles = batch * (height // 2) * (width // 2)
        padded = x.new_zeros(batch, height + 2, width + 2, in_channels)
        padded[:, 1 : height + 1, 1 : width + 1] = x.permute(0, 2, 3, 1)
        windows = padded.unfold(1, 4, 2).unfold(2, 4, 2)  # N th tw Cin 4 4
        d = windows.permute(4, 5, 0, 1, 2, 3).reshape(16, -1)
        v = torch.mm(INPUT_TRANSFORM, d).view(16, tiles, in_channels)
        u = torch.mm(KERNEL_TRANSFORM, weight.reshape(-1, 9).t()).view(16, out_channels, in_channels)
        m = torch.bmm(v, u.transpose(1, 2))  # 16, tiles, Cout
        y = torch.mm(OUTPUT_TRANSFORM, m.view(16, -1)).view(2, 2, batch, height // 2, width // 2, out_channels)
        ctx.save_for_backward(v, u)
        ctx.x_shape = x.shape
        ctx.has_bias = bias is not None
        out = y.permute(2, 3, 0, 4, 1, 5).reshape(batch, height, width, out_channels).contiguous()
        out = out.permute(0, 3, 1, 2)
        return out if bias is None else out.add_(bias.view(1, -1, 1, 1))

    @staticmethod
    def backward(ctx, grad):
        v, u = ctx.saved_tensors
        batch, in_channels, height, width = ctx.x_shape
        out_channels = u.shape[1]
        tile_rows, tile_cols = height // 2, width // 2
        grad_tiles = grad.permute(0, 2, 3, 1).reshape(batch, tile_rows, 2, tile_cols, 2, out_channels)
        grad_m = torch.mm(OUTPUT_TRANSFORM.t(), grad_tiles.permute(2, 4, 0, 1, 3, 5).reshape(4, -1))
        grad_m = grad_m.view(16, -1, out_channels)
        grad_x = grad_weight = grad_bias = None
        if ctx.needs_input_grad[0]:
            grad_d = torch.mm(INPUT_TRANSFORM.t(), torch.bmm(grad_m, u).view(16, -1))
            grad_d = grad_d.view(4, 4, batch, tile_rows, tile_cols, in_channels)
            padded = grad.new_zeros(batch, height + 2, width + 2, in_channels)
            for i in range(4):
                for j in range(4):
                    padded[:, i : i + height : 2, j : j + width : 2] += grad_d[i, j]
            grad_x = padded[:, 1 : height + 1, 1 : width + 1].permute(0, 3, 1, 2)
        if ctx.needs_input_grad[1]:
            grad_u = torch.bmm(grad_m.transpose(1, 2), v)  # 16, Cout, Cin
            grad_weight = torch.mm(grad_u.view(16, -1).t(), KERNEL_TRANSFORM).view(out_channels, in_channels, 3, 3)
        if ctx.has_bias and ctx.needs_input_grad[2]:
            grad_bias = channel_sum(grad)
        return grad_x, grad_weight, grad_bias


def algorithm_for(x_shape: torch.Size, weight_shape: torch.Size, stride: int, padding: int) -> str:
    """"winograd", "matmul" or "onednn": what :func:`conv2d` runs for a CPU conv of these shapes (rule above)."""
    in_channels, height, width = x_shape[1], x_shape[-2], x_shape[-1]
    kernel = tuple(weight_shape[-2:])
    if kernel == (3, 3) and stride == padding == 1 and height % 2 == 0 and width % 2 == 0:
        channels, side = MIN_WINOGRAD_CHANNELS_ON_LARGE_MAPS
        if in_channels >= MIN_WINOGRAD_CHANNELS or (in_channels >= channels and min(height, width) >= side):
            return "winograd"
    out_h = (height + 2 * padding - kernel[0]) // stride + 1
    out_w = (width + 2 * padding - kernel[1]) // stride + 1
    if kernel == (1, 1) and stride == 1 and padding == 0:
        return "matmul" if out_h * out_w <= MAX_POINTWISE_MATMUL_PIXELS else "onednn"
    return "matmul" if in_channels >= MATMUL_CHANNELS_PER_OUTPUT_SIDE * max(out_h, out_w) else "onednn"


def conv2d(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None, stride: int, padding: int) -> torch.Tensor:
    """``F.conv2d(x, weight, bias, stride, padding)`` with groups 1, by the fastest of three algorithms for
    fp32 on the CPU; other devices and dtypes, calls under CPU autocast, and every call while the CPU
    kernels are switched off, go to ``F.conv2d``.

    Under autocast fp32 tensors arrive here and ``F.conv2d`` would cast them to bf16; the kernels here would
    instead run their matrix products in bf16 forward but their backward outside autocast, mixing dtypes.
    """
    if (
        not use_cpu_kernels()
        or x.device.type != "cpu"
        or torch.is_autocast_enabled("cpu")
        or x.dim() != 4
        or x.dtype != torch.float32
        or weight.dtype != torch.float32
    ):
        return F.conv2d(x, weight, bias, stride, padding)
    algorithm = algorithm_for(x.shape, weight.shape, stride, padding)
    if algorithm == "winograd":
        return _WinogradConv.apply(x, weight, bias)
    if algorithm == "matmul":
        return _ImageToColumnConv.apply(x, weight, bias, stride, padding)
    return F.conv2d(x, weight, bias, stride, padding)
