"""Forward + backward ms of one fp32 conv layer by each algorithm of ``bnextbench.nn.conv``.

    python benchmarks/conv_kernels.py [--batch-size 64] [--repeats 8]

oneDNN (``F.conv2d``), im2col matrix product, and Winograd F(2x2, 3x3) where it applies (3 x 3,
stride 1, even maps), timed alternately in one run on the shapes of BNext at 32 x 32 input and
4x narrower. Ratios are to oneDNN; the last column is what ``conv2d`` picks (``algorithm_for``),
so this table is the evidence for that rule.
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch
import torch.nn.functional as F

from bnextbench.nn.conv import _ImageToColumnConv, _WinogradConv, algorithm_for
from bnextbench.allocator import keep_freed_memory

# (in = out channels, kernel, stride, input size): wide layers on small maps, narrow ones on large maps.
SHAPES = [
    (channels, kernel, stride, size)
    for size, stride in ((2, 1), (4, 1), (4, 2), (8, 1), (8, 2), (16, 1), (16, 2), (32, 1), (32, 2))
    for kernel in (3, 1)
    if not (kernel == 1 and stride == 2)
    for channels in ((32, 64, 128, 256) if size >= 16 else (128, 256, 512, 1024))
    if channels * size <= 4096
]

ALGORITHMS = {
    "onednn": lambda x, w, s, p: F.conv2d(x, w, None, s, p),
    "matmul": lambda x, w, s, p: _ImageToColumnConv.apply(x, w, None, s, p),
    "winograd": lambda x, w, s, p: _WinogradConv.apply(x, w, None),
}


def fwd_bwd_ms(conv, x, weight, grad, stride, padding, repeats: int) -> list[float]:
    def step():
        start = time.perf_counter()
        conv(x, weight, stride, padding).backward(grad)
        return (time.perf_counter() - start) * 1000

    step()
    return [step() for _ in range(repeats)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=8)
    args = parser.parse_args()
    keep_freed_memory()  # as the bnextbench command does: large buffers are reused, not page-faulted anew
    torch.manual_seed(0)
    print(f"batch {args.batch_size}, {torch.get_num_threads()} threads, fp32, forward + backward ms, "
          f"median of {args.repeats} (ratio to oneDNN)")
    print(f"{'channels':>8} {'kernel':>6} {'stride':>6} {'in':>4} {'out':>4} {'oneDNN':>8} {'matmul':>15} "
          f"{'Winograd':>15}  picked")
    for channels, kernel, stride, size in SHAPES:
        x = torch.randn(args.batch_size, channels, size, size, requires_grad=True)
        weight = torch.randn(channels, channels, kernel, kernel, requires_grad=True)
        padding = kernel // 2
        grad = torch.randn_like(F.conv2d(x, weight, None, stride, padding))
        names = [name for name in ALGORITHMS if name != "winograd" or (kernel == 3 and stride == 1)]
        times = {name: [] for name in names}
        for _ in range(2):  # alternate so drift hits all
            for name in names:
                times[name] += fwd_bwd_ms(ALGORITHMS[name], x, weight, grad, stride, padding, args.repeats // 2)
        ms = {name: statistics.median(values) for name, values in times.items()}
        cells = [f"{ms[name]:>7.2f} ({ms[name] / ms['onednn']:.2f})" if name in ms else " " * 15
                 for name in ("matmul", "winograd")]
        picked = algorithm_for(x.shape, weight.shape, stride, padding)
        print(f"{channels:>8} {kernel:>6} {stride:>6} {size:>4} {grad.shape[-1]:>4} {ms['onednn']:>8.2f} "
              f"{cells[0]} {cells[1]}  {picked}")


if __name__ == "__main__":
    main()
