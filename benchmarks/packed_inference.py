"""The XNOR-popcount engine against PyTorch fp32 on the CPU, batch 1, in one run.

    python benchmarks/packed_inference.py [--model bnext_tiny] [--resolution 224] [--repeats 30] [--threads 2]

1. Every distinct binary conv shape of the model at the resolution: ``F.conv2d`` in fp32 on a ±1 map
   and ±1 weights (what the simulated model convolves), against the engine's layer (pack the input's
   signs, then XNOR-popcount), and against the popcount kernel alone on an input packed beforehand.
2. End to end: the model as bnextbench runs it today in eval mode (``torch.inference_mode``, CPU kernels
   on), against the same weights exported and run by the engine; the logits of both are compared.
3. Size: the packed file against the fp32 state_dict as ``torch.save`` writes it.

Timings are medians of ``--repeats`` calls, the two sides of each row measured in alternating rounds
so that drift of the machine's speed hits both alike. glibc is told to keep freed memory, as every
``bnextbench`` command does (``bnextbench.allocator``): otherwise each call page-faults its output anew. Prints a table and writes nothing
else; the committed record is results/benchmark-packed-inference.txt.
"""

from __future__ import annotations

import argparse
import io
import platform
import statistics
import subprocess
import time

import numba
import numpy as np
import torch
import torch.nn.functional as F

from bnextbench.allocator import keep_freed_memory
from bnextbench.complexity import count_model
from bnextbench.deploy import kernels, serialize, set_threads
from bnextbench.deploy.engine import assemble
from bnextbench.deploy.fileformat import decode
from bnextbench.deploy.layers import PackedBinaryConv2d, _packed_input, pack_weight_signs
from bnextbench.models import create_model
from bnextbench.nn import binary_sign
from bnextbench.train.recipe import set_tau


def cpu_name() -> str:
    try:
        lines = subprocess.run(["lscpu"], capture_output=True, text=True, check=True).stdout.splitlines()
    except (OSError, subprocess.CalledProcessError):
        return platform.processor() or "unknown CPU"
    fields = dict(line.split(":", 1) for line in lines if ":" in line)
    flags = fields.get("Flags", "").split()
    wide = [flag for flag in ("avx2", "avx512f", "avx512_vpopcntdq") if flag in flags]
    return f"{fields.get('Model name', '?').strip()}, {fields.get('CPU(s)', '?').strip()} CPUs, {' '.join(wide)}"


ROUND = 5  # calls of one side in a row: torch's and numba's thread pools each settle before they are timed


def alternate(first, second, repeats: int) -> tuple[float, float]:
    """Median ms of each callable over ``repeats`` calls, in rounds that switch side every ``ROUND`` calls,
    each round after one untimed call."""
    times: tuple[list[float], list[float]] = ([], [])
    for _ in range(max(1, repeats // ROUND)):
        for call, kept in ((first, times[0]), (second, times[1])):
            call()
            for _ in range(ROUND):
                start = time.perf_counter()
                call()
                kept.append((time.perf_counter() - start) * 1000)
    return statistics.median(times[0]), statistics.median(times[1])


def binary_shapes(model: torch.nn.Module, resolution: int) -> list[tuple[int, int, int, int, int, int]]:
    """(in, out, kernel, stride, input side, count) of each distinct binary conv, in order of appearance."""
    seen: dict[tuple[int, ...], int] = {}
    for layer in count_model(model, resolution, per_layer=True).layers:
        if layer.weight_bits == 1 and layer.input_bits == 1 and layer.kind == "conv":
            key = (layer.in_channels, layer.out_channels, layer.kernel_size, layer.stride, layer.in_size)
            seen[key] = seen.get(key, 0) + 1
    return [(*key, count) for key, count in seen.items()]


def conv_rows(model: torch.nn.Module, resolution: int, repeats: int) -> list[str]:
    rows = []
    generator = torch.Generator().manual_seed(0)
    for cin, cout, kernel, stride, side, count in binary_shapes(model, resolution):
        signs = binary_sign(torch.randn(1, cin, side, side, generator=generator))
        weight = torch.randn(cout, cin, kernel, kernel, generator=generator)
        weight_signs = binary_sign(weight)
        layer = PackedBinaryConv2d(cin, cout, kernel, stride, kernel // 2, scaled=False, bias=False)
        layer.packed_weight.copy_(pack_weight_signs(weight))
        expected = F.conv2d(signs, weight_signs, None, stride, kernel // 2)
        assert torch.equal(layer(signs), expected), "the engine's conv differs from F.conv2d"
        packed = _packed_input(signs, layer.threshold, cin, "benchmark")
        out = np.empty(tuple(expected.shape), np.float32)
        packed_weight = layer.packed_weight.numpy()
        with torch.inference_mode():
            torch_ms, engine_ms = alternate(lambda: F.conv2d(signs, weight_signs, None, stride, kernel // 2),
                                            lambda: layer(signs), repeats)
            _, kernel_ms = alternate(lambda: None, lambda: kernels.binary_conv2d(
                packed, packed_weight, stride, kernel // 2, cin, out), repeats)
        rows.append(f"{cin:>5} {cout:>5} {kernel}x{kernel} {stride:>6} {side:>4} {count:>5} {torch_ms:>10.3f} "
                    f"{engine_ms:>10.3f} {torch_ms / engine_ms:>7.1f}x {kernel_ms:>10.3f} {torch_ms / kernel_ms:>7.1f}x")
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="bnext_tiny")
    parser.add_argument("--resolution", type=int, default=224)
    parser.add_argument("--repeats", type=int, default=30)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    keep_freed_memory()
    set_threads(args.threads)
    torch.manual_seed(0)
    model = create_model(args.model)
    with torch.no_grad():  # statistics a trained net would have, not the identity of a fresh BatchNorm
        for name, tensor in model.state_dict().items():
            if name.endswith("running_var"):
                tensor.uniform_(0.5, 1.5)
            elif name.endswith("running_mean"):
                tensor.normal_(0, 0.1)
    set_tau(model, 0.0)  # sign mode, as a trained checkpoint ends
    model.eval()
    print(f"CPU: {cpu_name()}; {args.threads} threads; torch {torch.__version__}, numba {numba.__version__}; "
          f"batch 1, fp32; median of {args.repeats} calls, the two sides in alternating rounds of {ROUND}")
    print(f"\n1. every distinct binary conv of {args.model} at {args.resolution} px (ms per call)")
    print(f"{'in':>5} {'out':>5} {'k':>3} {'stride':>6} {'side':>4} {'count':>5} {'F.conv2d':>10} "
          f"{'engine':>10} {'ratio':>8} {'popcount':>10} {'ratio':>8}")
    print("      (engine = pack the input's signs + XNOR-popcount conv; popcount = the conv kernel alone)")
    for row in conv_rows(model, args.resolution, args.repeats):
        print(row)

    description = {"model": args.model, "model_kwargs": {}, "arch_spec": None}
    blob = serialize(model, {"model": description, "classes": [str(i) for i in range(model.num_classes)],
                             "resolution": args.resolution, "mean": [0.0] * 3, "std": [1.0] * 3, "data": None,
                             "source": "benchmark"})
    path = "/tmp/bnextbench-benchmark-packed.safetensors"
    with open(path, "wb") as handle:
        handle.write(blob)
    engine = assemble(*decode(path), where=path)
    images = torch.randn(1, 3, args.resolution, args.resolution, generator=torch.Generator().manual_seed(1))
    with torch.inference_mode():
        torch_ms, engine_ms = alternate(lambda: model(images), lambda: engine(images), args.repeats)
        simulated, packed = model(images), engine(images)
    difference = float((packed - simulated).abs().max() / simulated.abs().max())
    print(f"\n2. end to end, {args.model} at {args.resolution} px, batch 1 (ms per image)")
    print(f"   PyTorch eval mode {torch_ms:.1f} ms, engine {engine_ms:.1f} ms: {torch_ms / engine_ms:.2f}x; logits: "
          f"max |difference| / max |logit| = {difference:.2e}, same argmax: "
          f"{bool((packed.argmax(1) == simulated.argmax(1)).all())}")
    state = io.BytesIO()
    torch.save(model.state_dict(), state)
    print(f"\n3. size: fp32 state_dict {state.tell() / 2**20:.2f} MiB, packed file {len(blob) / 2**20:.2f} MiB: "
          f"{state.tell() / len(blob):.1f}x smaller; the counter's size_mib "
          f"{count_model(model, args.resolution).size_mib:.2f} MiB")


if __name__ == "__main__":
    main()
