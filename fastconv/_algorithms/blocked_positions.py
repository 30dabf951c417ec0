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
# by vector width in bytes: per vector multiply-add, per vector load (a tile of M channels by
# TILE_TAPS taps: 6 at AVX-512, whose 32 registers hold 24 accumulators, 4 gy vectors and an
# input vector; 2 below), per multiply-add again where a stride is above 1 (a run's input rows
# lie s apart: twice the input a tile reads, from L2), per value copied (the phased input) or
# summed (the items' sums), per gy value (streamed once). Fitted (least relative squares,
# `python bench/blocked_gk_fit.py`) on the chooser sweep's layers where both paths apply, float32
# and float64 (161, 185, 193 at AVX-512, AVX2, the baseline; 2-core Xeon, 2 threads), against
# the time scaled by the other path's median model/measured ratio at that level and precision.
# Before, 4 channels a block were counted whatever the layer had: a depthwise layer's or a
# one-channel image's single channel ran at 2.5-3.5x below the model, and float64's choice of
# path lost up to 3.4x (AVX2) and 3.6x (baseline); now 1.2x at worst (bench/RESULTS.md).
# Refitted with blocked_gk's chunked transpose, in this model's own units (--units second;
# twenty-eighth session): the rates moved by up to 37% (the baseline's gy term).
SECONDS = {64: {"fma": 0.199e-9, "load": 0.253e-9, "strided": 0.103e-9, "value": 0.844e-9,
                "gy": 0.139e-9},
           32: {"fma": 0.182e-9, "load": 0.290e-9, "strided": 0.091e-9, "value": 1.10e-9,
                "gy": 0.353e-9},
           16: {"fma": 0.153e-9, "load": 0.176e-9, "strided": 0.042e-9, "value": 1.05e-9,
                "gy": 0.290e-9}}
TILE_TAPS = {64: 6, 32: 2, 16: 2}      # BK_GKP_NT of src/_blocked_gkp.h
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
        self.parts = max(1, min(rows, -(-ITEMS // max(1, spec.groups * self.blocks))))
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


def terms(spec):
    """The counts (SECONDS' keys) and work items of the kernel gradient by positions: a block of
    M <= 4 output channels (the last block's, of kg, fewer) runs tiles of up to TILE_TAPS taps,
    each vector step M + taps loads for M x taps multiply-adds."""
    p = plan(spec)
    o = spec.output_size
    steps = p.rows * -(-o[2] // p.lanes) * spec.groups  # vector positions, the partial one whole
    channels = [min(4, p.kg - 4 * b) for b in range(p.blocks)]
    nt = TILE_TAPS.get(_blocked.vector_bytes(), 2)
    fmas = steps * sum(channels) * p.ct
    return ({"fma": fmas, "load": steps * sum(-(-p.ct // nt) * (m + nt) for m in channels),
             "strided": fmas if max(spec.stride) > 1 else 0,
             "value": spec.batch * spec.in_channels * p.plane + p.items * p.per_item,
             "gy": spec.batch * spec.out_channels * math.prod(o)}, p.items)


def cost(spec):
    """Modelled seconds of the kernel gradient by positions (math.inf where it does not apply)."""
    if not plan(spec).applies:
        return math.inf
    return _config.model_seconds(spec, *terms(spec),
                                 SECONDS.get(_blocked.vector_bytes(), SECONDS[16]),
                                 PARALLEL_EFFICIENCY, CALL_OVERHEAD_S)


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
