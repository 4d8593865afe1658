"""ms per training step of full-width bnext_tiny at CIFAR geometry next to its convolutions alone in fp32.

    python benchmarks/train_step.py [--batch-size 64] [--repeats 10] [--model bnext_tiny] [--width-mult 1.0]

bnext: batch of 32 x 32 images, train mode, cross-entropy, backward, gradient clipping, AdamW step.
floor: the same conv and linear layers (shapes, strides) as plain float layers, each run on an input
of its shape with gradients to input and weight, then AdamW: what the network would cost if every
other op were free. Both are timed alternately in one run; the ratio of medians is the overhead.
Target: ratio <= 1.15.
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch
import torch.nn.functional as F
from torch import nn

from bnextbench.complexity import measured_sites
from bnextbench.models import create_model
from bnextbench.nn import apply_constraints
from bnextbench.train.allocator import keep_freed_memory
from bnextbench.train.recipe import Recipe, optimizer_for


class ConvFloor(nn.Module):
    """Every conv/linear layer of a model as a plain fp32 layer fed with an input of its own shape."""

    def __init__(self, model: nn.Module, resolution: int, batch_size: int):
        super().__init__()
        self.layers = nn.ModuleList()
        self.inputs = []
        for site in measured_sites(model, resolution):
            if site.kind == "linear":
                self.layers.append(nn.Linear(site.in_channels, site.out_channels, bias=site.bias))
                shape = (batch_size, site.in_channels)
            else:
                self.layers.append(nn.Conv2d(site.in_channels, site.out_channels, site.kernel_size, site.stride,
                                             site.kernel_size // 2, groups=site.groups, bias=site.bias))
                shape = (batch_size, site.in_channels, site.in_size, site.in_size)
            self.inputs.append(torch.randn(shape, requires_grad=True))

    def forward(self) -> torch.Tensor:
        return sum(layer(x).mean() for layer, x in zip(self.layers, self.inputs))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="bnext_tiny")
    parser.add_argument("--width-mult", type=float, default=1.0)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=10)
    args = parser.parse_args()
    keep_freed_memory()  # as `bnextbench train` does; process-wide, so both sides run with it
    torch.manual_seed(0)
    resolution = 32
    kwargs = {"num_classes": 10, "small_input": True}
    if args.width_mult != 1.0:
        kwargs["width_mult"] = args.width_mult
    model = create_model(args.model, **kwargs).train()
    optimizer = optimizer_for(model, Recipe(epochs=1))
    images = torch.randn(args.batch_size, 3, resolution, resolution)
    labels = torch.randint(0, 10, (args.batch_size,))
    floor = ConvFloor(model, resolution, args.batch_size)
    floor_optimizer = torch.optim.AdamW(floor.parameters(), lr=1e-3, fused=True)

    def model_step() -> None:
        loss = F.cross_entropy(model(images), labels)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        nn.utils.clip_grad_norm_(model.parameters(), 5.0)
        optimizer.step()
        apply_constraints(model)

    def floor_step() -> None:
        loss = floor()
        floor_optimizer.zero_grad(set_to_none=True)
        for x in floor.inputs:
            x.grad = None
        loss.backward()
        floor_optimizer.step()

    def timed(step) -> float:
        start = time.perf_counter()
        step()
        return (time.perf_counter() - start) * 1000

    for _ in range(2):  # warm-up
        model_step(), floor_step()
    model_ms, floor_ms = [], []
    for _ in range(args.repeats):
        model_ms.append(timed(model_step))
        floor_ms.append(timed(floor_step))
    model_median, floor_median = statistics.median(model_ms), statistics.median(floor_ms)
    print(f"{args.model} (width x{args.width_mult}) at 32x32, batch {args.batch_size}, train mode, AdamW, "
          f"{torch.get_num_threads()} threads, {args.repeats} alternating repeats")
    print(f"bnext step: {model_median:.1f} ms (median)")
    print(f"floor step (same convs, plain fp32): {floor_median:.1f} ms (median)")
    print(f"ratio: {model_median / floor_median:.2f} (target <= 1.15)")


if __name__ == "__main__":
    main()
