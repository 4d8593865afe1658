"""ms per training step of full-width bnext_tiny at CIFAR geometry next to its convolutions alone in fp32.

    python benchmarks/train_step.py [--batch-size 64] [--repeats 10] [--model bnext_tiny] [--width-mult 1.0]

bnext: batch of 32 x 32 images, train mode, cross-entropy, backward, gradient clipping, AdamW step.
floor: the same conv and linear layers (shapes, strides) as plain float layers, each run on an input
of its shape with gradients to input and weight, then AdamW: what the network would cost if every
other op were free. Two floors: torch's ``nn.Conv2d`` (oneDNN), the issue's reference, and
bnextbench's own fp32 conv kernels (``QuantConv2d`` without quantizers: im2col matrix product or
Winograd where those beat oneDNN, bnextbench/nn/conv.py). The first ratio includes what the faster kernels save; the second is
the cost of everything that is not a convolution. All three are timed alternately in one run.
Target: ratio <= 1.15.
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn

from bnextbench.complexity import measured_sites
from bnextbench.models import create_model
from bnextbench.models.plan import LayerSite
from bnextbench.nn import QuantConv2d, apply_constraints, use_cpu_kernels
from bnextbench.nn.config import CPU_KERNELS_ENV
from bnextbench.allocator import keep_freed_memory
from bnextbench.train.recipe import Recipe, clip_gradients, optimizer_for


class ConvFloor(nn.Module):
    """Every conv/linear layer of a model as a plain fp32 layer fed with an input of its own shape.

    ``make_conv`` builds the fp32 conv for a site: :func:`torch_conv` or :func:`bnextbench_conv`.
    """

    def __init__(self, model: nn.Module, resolution: int, batch_size: int, make_conv: Callable[[LayerSite], nn.Module]):
        super().__init__()
        self.layers = nn.ModuleList()
        self.inputs = []
        for site in measured_sites(model, resolution):
            if site.kind == "linear":
                self.layers.append(nn.Linear(site.in_channels, site.out_channels, bias=site.bias))
                shape = (batch_size, site.in_channels)
            else:
                if site.groups != 1:
                    raise ValueError(f"{site.name}: grouped convs are not in the floor")
                self.layers.append(make_conv(site))
                shape = (batch_size, site.in_channels, site.in_size, site.in_size)
            self.inputs.append(torch.randn(shape, requires_grad=True))

    def forward(self) -> torch.Tensor:
        return sum(layer(x).mean() for layer, x in zip(self.layers, self.inputs))


def torch_conv(site: LayerSite) -> nn.Module:
    return nn.Conv2d(site.in_channels, site.out_channels, site.kernel_size, site.stride, site.kernel_size // 2,
                     bias=site.bias)


def bnextbench_conv(site: LayerSite) -> nn.Module:
    return QuantConv2d(site.in_channels, site.out_channels, site.kernel_size, site.stride, bias=site.bias)


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
    trainable = [p for p in model.parameters() if p.requires_grad]
    images = torch.randn(args.batch_size, 3, resolution, resolution)
    labels = torch.randint(0, 10, (args.batch_size,))
    floors = {name: ConvFloor(model, resolution, args.batch_size, make_conv)
              for name, make_conv in (("torch", torch_conv), ("bnextbench", bnextbench_conv))}
    floor_optimizers = {name: torch.optim.AdamW(floor.parameters(), lr=1e-3, fused=True) for name, floor in floors.items()}

    def model_step() -> None:
        loss = F.cross_entropy(model(images), labels)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        clip_gradients(trainable, 5.0)
        optimizer.step()
        apply_constraints(model)

    def floor_step(name: str) -> None:
        floor, floor_optimizer = floors[name], floor_optimizers[name]
        loss = floor()
        floor_optimizer.zero_grad(set_to_none=True)
        for x in floor.inputs:
            x.grad = None
        loss.backward()
        floor_optimizer.step()

    steps = {"bnext": model_step, **{name: (lambda name=name: floor_step(name)) for name in floors}}
    for _ in range(2):  # warm-up
        for step in steps.values():
            step()
    times = {name: [] for name in steps}
    for _ in range(args.repeats):
        for name, step in steps.items():
            start = time.perf_counter()
            step()
            times[name].append((time.perf_counter() - start) * 1000)
    model_ms, torch_ms, own_ms = (statistics.median(times[name]) for name in ("bnext", "torch", "bnextbench"))
    print(f"{args.model} (width x{args.width_mult}) at 32x32, batch {args.batch_size}, train mode, AdamW, "
          f"{torch.get_num_threads()} threads, {args.repeats} alternating repeats, "
          f"{CPU_KERNELS_ENV}={int(use_cpu_kernels())}")
    print(f"bnext step: {model_ms:.1f} ms (median)")
    print(f"floor step, same convs as torch nn.Conv2d (oneDNN) in fp32: {torch_ms:.1f} ms (median)")
    print(f"floor step, same convs with bnextbench's fp32 kernels: {own_ms:.1f} ms (median)")
    print(f"ratio to the nn.Conv2d floor: {model_ms / torch_ms:.2f} (target <= 1.15)")
    print(f"ratio to the bnextbench-kernel floor (all non-conv work): {model_ms / own_ms:.2f}")


if __name__ == "__main__":
    main()
