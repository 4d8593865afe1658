"""Forward + backward ms of one conv layer by oneDNN (``F.conv2d``) and by bnextbench's matrix product.

    python benchmarks/conv_kernels.py [--batch-size 64] [--repeats 7]

Shapes are those of BNext at 32 x 32 input (and 4x narrower), output maps from 1 x 1 to 8 x 8;
both kernels are timed alternately in one run. The last column is what ``bnextbench.nn.conv.conv2d``
picks for the shape (``uses_matrix_product``); this table is the evidence for that rule.
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch
import torch.nn.functional as F

from bnextbench.nn.conv import _ImageToColumnConv, uses_matrix_product

# (in = out channels, kernel, stride, input size)
SHAPES = [
    (channels, kernel, stride, size)
    for size, stride in ((2, 1), (4, 1), (4, 2), (8, 1), (8, 2), (16, 2))
    for kernel in (3, 1)
    if not (kernel == 1 and stride == 2)
    for channels in (128, 256, 512, 1024)
    if channels * size <= 4096
]


def fwd_bwd_ms(conv, x, weight, grad, stride, padding, repeats: int) -> list[float]:
    def step():
        start = time.perf_counter()
        conv(x, weight, None, stride, padding).backward(grad)
        return (time.perf_counter() - start) * 1000

    step()
    return [step() for _ in range(repeats)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=7)
    args = parser.parse_args()
    torch.manual_seed(0)
    print(f"batch {args.batch_size}, {torch.get_num_threads()} threads, fp32, forward + backward, "
          f"median of {2 * (args.repeats // 2 + 1)}")
    print(f"{'channels':>8} {'kernel':>6} {'stride':>6} {'in':>5} {'out':>5} {'oneDNN ms':>10} {'matmul ms':>10} "
          f"{'ratio':>6}  picked")
    for channels, kernel, stride, size in SHAPES:
        x = torch.randn(args.batch_size, channels, size, size, requires_grad=True)
        weight = torch.randn(channels, channels, kernel, kernel, requires_grad=True)
        padding = kernel // 2
        grad = torch.randn_like(F.conv2d(x, weight, None, stride, padding))
        onednn, matmul = [], []
        for _ in range(2):  # alternate so drift hits both
            onednn += fwd_bwd_ms(F.conv2d, x, weight, grad, stride, padding, args.repeats // 2 + 1)
            matmul += fwd_bwd_ms(_ImageToColumnConv.apply, x, weight, grad, stride, padding, args.repeats // 2 + 1)
        a, b = statistics.median(onednn), statistics.median(matmul)
        out = grad.shape[-1]
        picked = "matmul" if uses_matrix_product(x.shape, weight.shape, stride, padding) else "oneDNN"
        print(f"{channels:>8} {kernel:>6} {stride:>6} {size:>5} {out:>5} {a:>10.2f} {b:>10.2f} {b / a:>6.2f}  {picked}")


if __name__ == "__main__":
    main()
