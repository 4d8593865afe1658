"""Compiled XNOR-popcount kernels over sign bits packed 64 to a word (numba, LLVM's ``ctpop``).

Bit convention: a set bit is -1, a clear bit +1, so that the product of two signs is -1 exactly where
their bits differ (XOR) and, over K pairs, sum(a_k w_k) = K - 2 popcount(a XOR w). Channels are
packed along the last axis, 64 per word, bit b of word j holding channel 64 j + b; the unused bits of
a last, partial word are clear in both operands, so their XOR is 0 and they drop out of the count.

Zero padding: the simulated layer convolves a ±1 map padded with zeros, so an out-of-map tap adds
nothing. The kernel skips such taps and counts only the in-map ones, K = C * (taps inside the map):
the same integer as the float convolution, not an approximation of it.

``ctpop`` on a 64-bit integer compiles to POPCNT, and a loop of them over output channels to
AVX-512 VPOPCNTDQ where the CPU has it (LLVM picks the host's instructions at compile time).
Compiled on first use and cached next to this file (numba's ``cache=True``).
"""

from __future__ import annotations

import numba
import numpy as np
from numba import njit, prange, types
from numba.extending import intrinsic

WORD_BITS = 64


@intrinsic
def _popcount(typingctx, word):
    """Set bits of a uint64, as the single LLVM ``ctpop`` instruction."""
    if word != types.uint64:
        return None

    def codegen(context, builder, signature, args):
        return builder.ctpop(args[0])

    return types.uint64(types.uint64), codegen


def words_for(channels: int) -> int:
    """64-bit words holding one sign bit per channel."""
    return -(-channels // WORD_BITS)


@njit(parallel=True, cache=True, nogil=True)
def pack_signs(x, threshold, out):  # pragma: no cover - compiled
    """out[n, h, w, j] bit b = 1 where x[n, 64 j + b, h, w] < threshold[64 j + b] (x float32, N C H W).

    ``x >= t`` is sign(x - t) = +1, the project's convention for exactly zero; comparing against t is
    exactly ``x + shift >= 0`` with t = -shift, as fp32 addition gives 0 only for x = -shift. Rows run in
    parallel; within a row, each channel's pixels are compared in one contiguous (vectorised) pass that
    ORs its bit into a row of words.
    """
    batch, channels, height, width = x.shape
    words = out.shape[3]
    for row in prange(batch * height):
        n, h = row // height, row % height
        bits = np.empty(width, np.uint64)
        for j in range(words):
            bits[:] = 0
            for b in range(min(WORD_BITS, channels - j * WORD_BITS)):
                c = j * WORD_BITS + b
                t, shift = threshold[c], np.uint64(b)
                for w in range(width):
                    bits[w] |= np.uint64(x[n, c, h, w] < t) << shift
            for w in range(width):
                out[n, h, w, j] = bits[w]


_BLOCK = 4  # output pixels of one row that share each load of a weight word


@njit(cache=True, nogil=True, inline="always")
def _one_pixel(packed, rows, stride, padding, channels, kernel_h, kernel_w, n, y, x, out):  # pragma: no cover
    """out[n, :, y, x] by the definition: popcounts over the in-map taps only (border pixels)."""
    height, width, words = packed.shape[1], packed.shape[2], packed.shape[3]
    outputs = rows.shape[1]
    counts = np.zeros(outputs, np.int64)
    taps = 0
    for ky in range(kernel_h):
        iy = y * stride - padding + ky
        if iy < 0 or iy >= height:
            continue
        for kx in range(kernel_w):
            ix = x * stride - padding + kx
            if ix < 0 or ix >= width:
                continue
            taps += 1
            for j in range(words):
                value, weights = packed[n, iy, ix, j], rows[(ky * kernel_w + kx) * words + j]
                for o in range(outputs):
                    counts[o] += _popcount(value ^ weights[o])
    total = taps * channels
    for o in range(outputs):
        out[n, o, y, x] = total - 2 * counts[o]


@njit(cache=True, nogil=True, inline="always")
def _pixel_block(packed, rows, stride, padding, channels, kernel_h, kernel_w, n, y, x0, out):  # pragma: no cover
    """out[n, :, y, x0 .. x0 + 3] for four pixels whose taps all lie inside the map: each weight word is
    loaded once for the four, and two (tap, word) terms are summed per update of the counts."""
    words = packed.shape[3]
    outputs = rows.shape[1]
    terms = kernel_h * kernel_w * words
    values = np.empty((terms, _BLOCK), np.uint64)
    for ky in range(kernel_h):
        iy = y * stride - padding + ky
        for kx in range(kernel_w):
            for j in range(words):
                for p in range(_BLOCK):
                    values[(ky * kernel_w + kx) * words + j, p] = packed[n, iy, (x0 + p) * stride - padding + kx, j]
    c0, c1 = np.zeros(outputs, np.int64), np.zeros(outputs, np.int64)
    c2, c3 = np.zeros(outputs, np.int64), np.zeros(outputs, np.int64)
    paired = terms - terms % 2
    for t in range(0, paired, 2):
        w0, w1 = rows[t], rows[t + 1]
        a0, a1, a2, a3 = values[t, 0], values[t, 1], values[t, 2], values[t, 3]
        b0, b1, b2, b3 = values[t + 1, 0], values[t + 1, 1], values[t + 1, 2], values[t + 1, 3]
        for o in range(outputs):
            u, v = w0[o], w1[o]
            c0[o] += _popcount(a0 ^ u) + _popcount(b0 ^ v)
            c1[o] += _popcount(a1 ^ u) + _popcount(b1 ^ v)
            c2[o] += _popcount(a2 ^ u) + _popcount(b2 ^ v)
            c3[o] += _popcount(a3 ^ u) + _popcount(b3 ^ v)
    if paired < terms:
        w0 = rows[paired]
        a0, a1, a2, a3 = values[paired, 0], values[paired, 1], values[paired, 2], values[paired, 3]
        for o in range(outputs):
            u = w0[o]
            c0[o] += _popcount(a0 ^ u)
            c1[o] += _popcount(a1 ^ u)
            c2[o] += _popcount(a2 ^ u)
            c3[o] += _popcount(a3 ^ u)
    total = kernel_h * kernel_w * channels
    for o in range(outputs):
        out[n, o, y, x0] = total - 2 * c0[o]
        out[n, o, y, x0 + 1] = total - 2 * c1[o]
        out[n, o, y, x0 + 2] = total - 2 * c2[o]
        out[n, o, y, x0 + 3] = total - 2 * c3[o]


@njit(parallel=True, cache=True, nogil=True)
def binary_conv2d(packed, weight, stride, padding, channels, out):  # pragma: no cover - compiled
    """out[n, o, y, x] = sum over in-map taps and channels of a * w, as K - 2 popcount(a XOR w).

    packed: (N, H, W, words) uint64 sign bits of the input; weight: (KH, KW, words, O) uint64, output
    channels last so the innermost loops run over them (vectorised); out: (N, O, Ho, Wo) float32, the
    layout the float layers after it expect. Work is split into runs of four output pixels of a row, in
    parallel: a run whose taps all lie inside the map shares each weight load among its pixels; a run at
    the border counts pixel by pixel over the in-map taps.
    """
    batch, height, width, words = packed.shape
    kernel_h, kernel_w, _, outputs = weight.shape
    out_h, out_w = out.shape[2], out.shape[3]
    rows = weight.reshape(kernel_h * kernel_w * words, outputs)
    runs_per_row = (out_w + _BLOCK - 1) // _BLOCK
    for run in prange(batch * out_h * runs_per_row):
        n, rest = run // (out_h * runs_per_row), run % (out_h * runs_per_row)
        y, x0 = rest // runs_per_row, (rest % runs_per_row) * _BLOCK
        x_last = x0 + _BLOCK - 1
        inside = (y * stride - padding >= 0 and y * stride - padding + kernel_h <= height
                  and x0 * stride - padding >= 0 and x_last * stride - padding + kernel_w <= width)
        if inside and x_last < out_w:
            _pixel_block(packed, rows, stride, padding, channels, kernel_h, kernel_w, n, y, x0, out)
        else:
            for x in range(x0, min(x0 + _BLOCK, out_w)):
                _one_pixel(packed, rows, stride, padding, channels, kernel_h, kernel_w, n, y, x, out)


def set_threads(count: int) -> None:
    """Threads the kernels run on (numba's pool; at most the CPUs numba found)."""
    numba.set_num_threads(count)


def thread_limit() -> int:
    return numba.config.NUMBA_NUM_THREADS


__all__ = ["WORD_BITS", "binary_conv2d", "pack_signs", "set_threads", "thread_limit", "words_for"]
