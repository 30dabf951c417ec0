"""blocked's kernel gradient by positions: dot products along output rows, gy read as it lies
(src/_blocked_positions.pxi, src/_blocked_gkp.h).

The other path (blocked.py's grad_kernel) transposes gy so that a position's output channels
lie together, then broadcasts each input value against them. Where the (input channel, tap)
pairs are few and the positions many -- a network's first layer: 3 input channels, the batch's
whole image plane -- that transpose of the whole output gradient costs as much as the
products. Here the vector lanes are consecutive output positions of a row: 4 output channels'
gy rows and a tile of taps' input rows are loaded as they lie (the input first copied padded,
each row stored by phase of the width stride), and each gy row serves every (channel, tap) of
the group while it is in L1.

Taken where it applies (rows at least a vector wide, the item's sums within ACC_BYTES) and is
modelled cheaper than the other path; FASTCONV_BLOCKED_GK=positions or =tiles forces one where
it applies (tests, benchmarks).
"""
import functools
import math
import os

import numpy as np

from .. import _config, _scratch
from .._lazy import LazyModule

_blocked = LazyModule("fastconv._blocked")

CHUNK_BYTES = 16 << 10  # the 4 channels' gy rows of one chunk, read by every tap from L1
ACC_BYTES = 256 << 10   # an item's sums (Cg x taps x 4 channels x V lanes)
ITEMS = 32              # items the batch's rows are cut for, at least (threads kept busy)
# Cost model, in the units of blocked's kernel-gradient model (the two share its calibration),
# by vector width in bytes (the register tile differs: 6 taps at AVX-512, whose 10 loads feed
# 24 multiply-adds; 2 below, 6 loads for 8): per vector multiply-add, and again where the height
# or width stride is above 1 (a run's input rows lie s apart: twice the input a tile reads, from
# L2); per value copied (the phased input) or summed (the items' sums); per gy value (streamed
# from memory once: wav2vec's first layer, 10 taps a value, is bound by it). Fitted (least
# relative squares) on the chooser sweep's layers where the path applies, 42 at AVX-512, 54 at
# AVX2 and 58 at the SSE2 baseline (2-core Intel Xeon, 2 threads, float32), each timed on both
# paths, against its time scaled by the other path's median model/measured ratio at that level
# (1.49, 2.03, 1.59): median error 7-8% at each level. bench/RESULTS.md, twentieth session.
SECONDS = {64: {"fma": 0.354e-9, "strided": 0.121e-9, "value": 0.88e-9, "gy": 0.094e-9},
           32: {"fma": 0.452e-9, "strided": 0.133e-9, "value": 1.23e-9, "gy": 0.217e-9},
           16: {"fma": 0.326e-9, "strided": 0.058e-9, "value": 1.24e-9, "gy": 0.095e-9}}
PARALLEL_EFFICIENCY = 0.9
CALL_OVERHEAD_S = 12e-6


class _PositionsPlan:
    """The padded, phased input, the items and the sums of one problem's kernel gradient."""

    def __init__(self, spec):
        self.lanes = _blocked.vector_bytes() // spec.dtype.itemsize
        o, s, d, k = spec.output_size, spec.stride, spec.dilation, spec.kernel_size
        self.k, self.d, self.s = k, d, s
        self.taps = math.prod(k)
        self.cg = spec.in_channels // spec.groups
        self.kg = spec.out_channels // spec.groups
        self.blocks = -(-self.kg // 4)
        self.ct = self.cg * self.taps
        # the padded extent every output reads: (o - 1) * s + (k - 1) * d + 1 along each axis
        self.e = tuple(max(1, (oi - 1) * si + (ki - 1) * di + 1)
                       for oi, si, di, ki in zip(o, s, d, k))
        self.plen = -(-self.e[2] // s[2])
        self.plane = self.e[0] * self.e[1] * s[2] * self.plen
        rows = spec.batch * o[0] * o[1]
        self.rows = rows
        self.parts = max(1, min(rows, -(-ITEMS // (spec.groups * self.blocks))))
        gy_row = 4 * max(1, o[2]) * spec.dtype.itemsize    # a row of the block's 4 channels
        self.chunk = max(1, min(rows, CHUNK_BYTES // gy_row))
        self.per_item = self.ct * 4 * self.lanes
        self.items = self.parts * spec.groups * self.blocks
        self.applies = (o[2] >= self.lanes and self.ct > 0
                        and self.per_item * spec.dtype.itemsize <= ACC_BYTES)

    @functools.cached_property
    def toff(self):
        """Each (channel, tap)'s offset in the phased planes from an output row's first input."""
        k, d, s = self.k, self.d, self.s
        a0, a1, a2 = np.indices(k).reshape(3, -1)
        u = a2 * d[2]
        rowlen = s[2] * self.plen
        tap = (a0 * d[0] * self.e[1] + a1 * d[1]) * rowlen + (u % s[2]) * self.plen + u // s[2]
        return (np.arange(self.cg)[:, None] * self.plane + tap[None, :]).reshape(-1).astype(
            np.intp)

    def workspace_elements(self, spec):
        return (spec.batch * spec.in_channels * self.plane + self.items * self.per_item
                if self.applies else 0)


@functools.lru_cache(maxsize=64)
def plan(spec):
    return _PositionsPlan(spec)


def forced():
    """'positions', 'tiles' or None: FASTCONV_BLOCKED_GK, read per call (tests set it)."""
    choice = os.environ.get("FASTCONV_BLOCKED_GK", "auto")
    return choice if choice in ("positions", "tiles") else None


def cost(spec):
    """Modelled seconds of the kernel gradient by positions (math.inf where it does not apply)."""
    p = plan(spec)
    if not p.applies:
        return math.inf
    o = spec.output_size
    steps = p.rows * -(-o[2] // p.lanes)            # vector positions, the partial one a whole
    fmas = steps * spec.groups * p.blocks * 4 * p.ct
    values = spec.batch * spec.in_channels * p.plane + p.items * p.per_item
    gy = spec.batch * spec.out_channels * math.prod(o)
    rate = SECONDS.get(_blocked.vector_bytes(), SECONDS[16])
    work = rate["fma"] * fmas + rate["value"] * values + rate["gy"] * gy
    if max(spec.stride) > 1:
        work += rate["strided"] * fmas
    threads = _config.model_threads(spec, p.items)
    return work / (1 + PARALLEL_EFFICIENCY * (threads - 1)) + CALL_OVERHEAD_S


def grad_kernel(spec, x, gy, gw):
    """gw (the kernel's shape, filled) from x and gy by positions."""
    p = plan(spec)
    threads = max(1, min(_config.get_num_threads(), p.items))
    xph = _scratch.empty("blocked.pad", spec.batch * spec.in_channels * p.plane, spec.dtype)
    partial = _scratch.empty("blocked.partial", p.items * p.per_item, spec.dtype)
    _blocked.grad_kernel_positions(
        np.ascontiguousarray(x).reshape(-1), np.ascontiguousarray(gy).reshape(-1),
        gw.reshape(-1), xph, partial, p.toff, spec.batch, spec.groups, p.cg, p.kg, p.lanes,
        spec.input_size, spec.pad_low, p.e, spec.output_size, spec.stride, p.plen, p.parts,
        p.chunk, threads)
    return gw
