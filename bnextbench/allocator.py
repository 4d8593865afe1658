"""Host-memory allocator setting for training on the CPU.

Process-wide, so it is applied by programs, never by library calls: ``bnextbench.cli.main`` (every
``bnextbench`` command) and the benchmarks that time training steps (benchmarks/train_step.py,
benchmarks/conv_kernels.py). ``bnextbench.train.train`` called from other code runs without it unless
that code calls :func:`keep_freed_memory` itself. It changes no computed value, only page faults, so
it is not behind ``BNEXTBENCH_CPU_KERNELS`` (:mod:`bnextbench.nn.config`).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools

_M_TRIM_THRESHOLD = -1
_M_MMAP_MAX = -4


@functools.cache
def keep_freed_memory() -> bool:
    """Make glibc's malloc reuse freed blocks instead of returning them to the kernel; True if applied.

    By default every block over 32 MiB (a 1024 x 1024 x 3 x 3 fp32 weight is 36 MiB) is mmap-ed and
    unmapped again, so each training step page-faults its large tensors anew: measured 27 ms for one
    division of such a weight, 4.6 ms with this setting. Process-wide, idempotent; peak memory stays
    reserved. A no-op (False) where the C library is not glibc.
    """
    path = ctypes.util.find_library("c")
    if path is None:
        return False
    try:
        mallopt = ctypes.CDLL(path).mallopt
    except (OSError, AttributeError):
        return False
    return bool(mallopt(_M_MMAP_MAX, 0)) and bool(mallopt(_M_TRIM_THRESHOLD, 2**31 - 1))
