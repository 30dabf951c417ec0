"""blocked's kernel gradient on transposed gy: each tile of taps of an input channel summed in
registers over the batch and positions, a block of output channels in the vector lanes and each
input value broadcast against them (oneDNN's backward-weights layout; src/_blocked_gk.h).

The output gradient is transposed so that a position's channels lie together, a chunk of
output units at a time, and every (input channel, tile) of a work item runs over the chunk while
it is in cache (src/_blocked_gk_chunks.pxi). Transposed whole first, gy went to memory and back
wherever it outgrew L2: the chunks measured 1.3-2.3x faster on first layers (MobileNetV2's stem,
C3D's, CIFAR's at batch 128), 1.1-1.6x on 64-channel layers of large maps, and within 0.88-1.0x
on the few small ones (84 kernel gradients of the sweep's networks, 2 threads, AVX-512; geomean
1.29x; AVX2 1.16x, none below 0.95x: bench/RESULTS.md, twenty-eighth session).
"""
import functools
import math

import numpy as np

from .. import _config, _scratch
from .._lazy import LazyModule
from ._runs import even_runs

_blocked = LazyModule("fastconv._blocked")

GK_ITEMS = 32       # items (parts x groups x blocks) the units are cut for, where they allow
# gy transposed a chunk at a time: 16 KB chunks ran 1.04x the time of 32 KB and 64 KB 1.01x,
# on 12 of the sweep's kernel gradients (AVX-512, 2 threads)
GK_CHUNK_BYTES = 32 << 10

# The model: per vector multiply-add, per output position a tile visits (gy vectors loaded, row
# pointers stepped), per value padded or transposed, per tile's pass over a chunk; by vector
# bytes. Fitted with the chunks (`python bench/blocked_gk_fit.py --units second`: the sweep's
# kernel gradients where tiles run, float32 and float64, 2-core Xeon, 2 threads) in the units of
# blocked_positions' model, which the chunks left as fast as it was, so that the shipped
# calibration of blocked's kernel gradient still holds for both paths (bench/RESULTS.md,
# twenty-eighth session).
SECONDS = {64: {"fma": 0.163e-9, "position": 0.0, "value": 0.469e-9, "item": 0.178e-6},
           32: {"fma": 0.114e-9, "position": 1.03e-9, "value": 0.966e-9, "item": 94e-9},
           16: {"fma": 0.184e-9, "position": 1.05e-9, "value": 1.26e-9, "item": 44e-9}}


class Plan:
    """How bk_gk computes one problem's kernel gradient (kept per problem: about 15 us of NumPy
    work that a training step would otherwise repeat every call); `g` is blocked's _Geometry.

    With unit dilation along the last axis a row is one (depth, height) line of the kernel and
    its taps are `cols` columns, one input value apart; otherwise every tap is a row of one
    column (`roff`: each row's offset from an output's first input in the padded planes). Where
    one channel's lines fill at most half a tile (a 1-D kernel's one line, a dilated one's 3
    taps), the rows run over the group's (input channel, line) pairs instead (`channel_rows`),
    so that a tile shares each pass over gy among channels. Tiles (first row, rows, first
    column, columns) are as even as the level's registers allow: at most BK_GK_ACC accumulators
    (rows x columns x vectors per block), 8 rows, 8 columns.

    The units of work are whole samples where a sample's transposed gy fits a chunk, else
    output rows (a 1-D layer's positions); `parts` runs of them make GK_ITEMS items with the
    groups and blocks where there are units enough (from the problem alone: the sums must not
    depend on the thread count)."""

    def __init__(self, spec, g):
        self.geometry = g
        k, d = g.kernel, g.dilation
        self.acc = 28 if _blocked.vector_bytes() == 64 else 12     # BK_GK_ACC
        self.lines = k[0] * k[1] if d[2] == 1 else g.taps
        self.cols = k[2] if d[2] == 1 else 1
        # where one channel's lines fill at most half a tile, the rows run over (channel, line)
        # (a 3x3 kernel's 3 rows of 4 measured level with one channel a tile, 0.99-1.04x)
        self.channel_rows = (g.cg > 1 and self.cols <= self._most_cols()
                             and 2 * self.lines <= self._most_rows(self.cols))
        if self.channel_rows:
            self.lines *= g.cg
        # counted, not listed (a hostile kernel size must not build a list as large as it)
        chunks = -(-self.cols // self._most_cols())
        widths = {self.cols // chunks + 1: self.cols % chunks,
                  self.cols // chunks: chunks - self.cols % chunks}
        self.tile_count = sum(count * -(-self.lines // self._most_rows(width))
                              for width, count in widths.items() if count)
        blocks = spec.groups * g.blocks
        self.items = max(1, blocks * (1 if self.channel_rows else g.cg) * self.tile_count)
        itemsize, positions = spec.dtype.itemsize, math.prod(g.o)
        rows = g.o[0] > 1 or g.o[1] > 1
        self.whole = positions * g.v * itemsize <= GK_CHUNK_BYTES
        self.unit = (positions if self.whole else g.o[2] if rows else 1) * g.v    # values
        self.units = spec.batch * (1 if self.whole else g.o[0] * (g.o[1] if rows else g.o[2]))
        self.chunk = max(1, GK_CHUNK_BYTES // max(1, self.unit * itemsize))    # units a chunk
        self.parts = max(1, min(self.units, -(-GK_ITEMS // max(1, blocks))))
        self.run_items = self.parts * blocks
        self.chunks = -(-self.units // self.chunk) + self.parts - 1     # at most, all parts
        self.size = blocks * g.cg * g.taps * g.v
        self.transposed = spec.batch * blocks * positions * g.v
        self.partial = self.parts * self.size if self.parts > 1 else 0

    def workspace_elements(self, threads):
        """The padded input, a chunk's buffer per thread, the packed gradient and the parts'."""
        buffers = min(threads, self.run_items) * self.chunk * self.unit
        return self.geometry.padded + buffers + self.size + self.partial

    def _most_cols(self):
        return min(8, self.acc // self.geometry.kb)

    def _most_rows(self, cols):
        return min(8, self.acc // (cols * self.geometry.kb))

    @functools.cached_property
    def arrays(self):
        """(row offsets, tiles), built for a call only."""
        g = self.geometry
        (k0, k1, k2), d, e = g.kernel, g.dilation, g.e
        roff = ((np.arange(k0) * d[0] * e[1] * e[2])[:, None]
                + (np.arange(k1) * d[1] * e[2])[None, :]).reshape(-1)
        if d[2] != 1:
            roff = (roff[:, None] + np.arange(k2) * d[2]).reshape(-1)
        if self.channel_rows:               # row (c, line): channel c's planes, then the line
            roff = (np.arange(g.cg)[:, None] * math.prod(e) + roff[None, :]).reshape(-1)
        tiles = [(r0, ry, c0, cx) for c0, cx in even_runs(self.cols, self._most_cols())
                 for r0, ry in even_runs(self.lines, self._most_rows(cx))]
        return roff.astype(np.intp), np.array(tiles, dtype=np.intp).reshape(-1, 4)


def terms(plan, spec):
    """The kernel gradient's counts (SECONDS' keys) and the items its threads share."""
    g = plan.geometry
    positions = spec.batch * math.prod(g.o)
    return ({"fma": positions * spec.groups * g.blocks * g.cg * g.taps * g.kb,
             "position": positions * plan.items, "value": g.padded + plan.transposed,
             "item": plan.items * plan.chunks}, plan.run_items)


def grad_kernel(plan, spec, x, gy, gw):
    """gw (the lifted kernel's shape) = the kernel gradient, in place."""
    g, dtype = plan.geometry, spec.dtype
    dwp = _scratch.empty("blocked.dwp", plan.size, dtype)
    threads = max(1, min(_config.get_num_threads(), plan.run_items))
    roff, tiles = plan.arrays
    _blocked.grad_kernel(x.reshape(-1), gy.reshape(-1), dwp,
                         _scratch.empty("blocked.pad", g.padded, dtype),
                         _scratch.empty("blocked.gyt", threads * plan.chunk * plan.unit, dtype),
                         _scratch.empty("blocked.partial", plan.partial, dtype), roff, tiles,
                         plan.cols, spec.batch, spec.groups, g.cg, g.kg, g.kb, g.v,
                         g.n, g.p, g.e, g.o, g.s, plan.parts, plan.channel_rows, plan.whole,
                         plan.chunk, threads)
    _blocked.unpack_gradient(dwp, gw.reshape(-1), spec.groups, g.kg, g.cg, g.taps, g.v,
                             max(1, min(_config.get_num_threads(), spec.groups * g.blocks)))
    return gw
