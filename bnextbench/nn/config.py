"""One switch for bnextbench's own fast implementations of ops that torch also has (timm's ``use_fused_attn``).

``BNEXTBENCH_CPU_KERNELS=0`` in the environment, or :func:`set_cpu_kernels` / :func:`cpu_kernels` from code,
turns them off; they are on by default. Off, every layer of :mod:`bnextbench.nn` runs plain torch ops
and autograd derives every backward pass, so a result that changes with the switch points at a kernel
here, not at the model. Both settings compute the same function up to fp32 rounding
(tests/test_cpu_kernels.py checks logits and gradients of every registered model). The switch acts on
every device; "CPU" names where these paths were written and measured.

Behind the switch (on -> off):

- conv algorithms, :func:`bnextbench.nn.conv.conv2d`: im2col matrix product or Winograd F(2x2, 3x3)
  by shape for fp32 on the CPU -> ``F.conv2d`` always;
- straight-through estimators, :mod:`bnextbench.nn.quantizers`: autograd Functions with a hand-written
  surrogate backward (sign with clipped or polynomial gradient, identity gradient) -> the same
  forward value plus ``s - s.detach()`` of a function s whose derivative is that surrogate;
- :class:`bnextbench.nn.PReLU`'s backward of three bandwidth-bound kernels -> ``F.prelu``;
- ``spatial_mean``'s broadcast-view backward -> ``Tensor.mean``;
- ``HalveResolution``'s depthwise conv with weights 1/4 -> ``F.avg_pool2d``.

``channel_sum`` runs only inside the backward passes above, so it is off with them.

Not behind it, because none changes a value: ``binary_sign`` (it defines sign with 0 -> +1, larq's
convention, and is not a stand-in for a torch op), ``clip_gradients`` in the training recipe (below the
limit it skips a multiply by exactly 1, bit-identical to torch's clipping), and
``bnextbench.allocator.keep_freed_memory`` (a process-wide malloc setting applied by the CLI entry
point and the training benchmarks, not by a layer).

Where the speed-ups were measured: the thresholds in :mod:`bnextbench.nn.conv` and the timings quoted
in these modules come from 2 threads on a 2-core KVM guest with AVX-512, torch 2.14.1
(results/benchmark-conv-kernels.txt, results/benchmark-train-step.txt). ``lscpu`` on this project's
host: model name "AMD EPYC" (family 25, model 17: Zen 4), 2 cores, 1 thread per core, AVX-512
F/DQ/CD/BW/VL/VNNI/BF16; results/benchmark-train-step.txt calls its host a "2-core AVX-512 Xeon", and
the conv table records only its 2 threads. With other core counts, vector widths or oneDNN versions
the crossovers move: rerun benchmarks/conv_kernels.py there.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager

from ..errors import BnextbenchError

CPU_KERNELS_ENV = "BNEXTBENCH_CPU_KERNELS"
_ENV_VALUES = {"1": True, "0": False, "": True}

# Set from code by set_cpu_kernels; None defers to the environment.
_cpu_kernels_override: bool | None = None


def use_cpu_kernels() -> bool:
    """Whether bnextbench's fast paths run: the value set from code, else ``BNEXTBENCH_CPU_KERNELS``
    (unset, empty or 1: on; 0: off).

    The environment is read at every call, not once at import, so a variable set after import counts;
    a dict look-up per layer call, nothing next to the ops it guards.
    """
    if _cpu_kernels_override is not None:
        return _cpu_kernels_override
    value = os.environ.get(CPU_KERNELS_ENV, "").strip()
    if value not in _ENV_VALUES:
        raise BnextbenchError(f"{CPU_KERNELS_ENV} must be 0 or 1, got {value!r}")
    return _ENV_VALUES[value]


def set_cpu_kernels(enabled: bool | None) -> None:
    """Turn the fast paths on or off for the whole process; None returns the choice to the environment."""
    global _cpu_kernels_override
    _cpu_kernels_override = enabled


@contextmanager
def cpu_kernels(enabled: bool) -> Iterator[None]:
    """``with cpu_kernels(False): ...`` runs the block with plain torch ops, then restores the setting."""
    previous = _cpu_kernels_override
    set_cpu_kernels(enabled)
    try:
        yield
    finally:
        set_cpu_kernels(previous)
