"""Pointwise convolution: a 1x1 kernel at stride 1 without padding, as GEMMs on fastconv's own
register tiles with the large operand read where it lies (src/_pointwise.pyx,
src/_gemm_inplace.h).

A 1x1 layer on a small map is a GEMM whose A -- the weights, or gy for the kernel gradient -- is
as large as the work: MobileNetV2's 320 -> 1280 layer on 7x7 has 1.6 MB of weights for 49
positions a sample, and blocked packs them into its channel blocks every call (then transposes its
outputs back), im2col's BLAS packs both operands. Here A is read in place, a tile broadcasting its
rows' values, and only B (the positions of x or gy, a sample at a time) is packed into panels --
or, where C has few rows (a 32 -> 16 layer on a 112x112 map, whose packing took a third of the
call), read where it lies too, all but a part-filled last panel.
Outputs land in place, in NCHW order. Every output is one sum in a fixed order, so results do not
depend on the thread count; every product of the textbook sum is taken, so values that are not
finite propagate as in it.
"""
import functools
import math

import numpy as np

from .. import _aligned, _config, _pointwise, _scratch

NAME = "pointwise"
WRITES_OUT = True       # its operations take out= (the lifted result buffer) and fill it

# Cost model: vector multiply-adds of the register tiles (the unused lanes of a part-filled panel
# included; a tile's step -- one kk -- takes at least "latency": a tile of few rows waits on the
# multiply-add's latency), values packed, stored and read from A, those packed or stored past
# L2 (SPILL_BYTES), the kernel gradient's transposed packing, and a panel larger than
# STREAM_BYTES read again by every row of tiles; shared among the threads the items keep busy,
# plus the call's overhead (more with threads: two parallel regions). Fitted (relative least
# squares) on 60 timings at 2 threads: 20 1x1 layers of 3-2048 channels on 49-12544 positions,
# batch 1-32, x 3 operations (2-core Intel Xeon, AVX-512, float32): median error 1.07x, 90th
# percentile 1.32x. The fit put the kernel gradient's transposed packing at 0.06 ns a value, on
# layers where it packs little; on large maps (a 56x56 map's 144 channels: 450,000 values, one
# value of each of 32 rows at a time) it costs about 0.8 ns, which the model takes, so as not to
# pick those (measured 1.6-1.7x blocked's time).
SECONDS = {"fma": 0.2e-9, "latency": 1.3e-9, "value": 0.134e-9, "spill": 0.108e-9,
           "transposed": 0.8e-9, "stream": 0.12e-9}
SPILL_BYTES = 2 << 20
STREAM_BYTES = 1 << 20
CALL_OVERHEAD_S = 15e-6
PARALLEL_OVERHEAD_S = 4.7e-6
PARALLEL_EFFICIENCY = 0.9
TAIL_FMAS = 2               # a tail column's multiply-add per lane of kk, in vector FMAs: it loads
                            # a row of A and the column for each (the tiles load a value of A)
ITEMS_PER_THREAD = 8        # work items wanted a thread: A's rows split into chunks to get them
# B is read in place (not packed) where C has at most this many rows: MobileNetV2's 1x1 layers of
# 16-32 rows of C on 56x56-112x112 maps ran in 0.67-0.93x the time at 2 threads (packing took 35%
# of the 32 -> 16 layer's forward); 96 rows (16 -> 96) 1.0x at batch 1 and 1.33x at batch 8, where
# the outputs' stores bound it; 512 rows on 28x28 and 320 -> 1280 on 7x7 the same either way
# (2-core Intel Xeon, AVX-512 and AVX2)
IN_PLACE_ROWS = 48
IN_PLACE_READ = 0.5         # the cost model's packed values a value read in place counts for


def supports(spec, op):
    if spec.kernel_size != (1, 1, 1):
        return False, f"it needs a 1x1 kernel, got {spec.kernel_size[3 - spec.ndim:]}"
    if spec.stride != (1, 1, 1):
        return False, "it needs stride 1"
    if any(spec.pad_low) or any(spec.pad_high):
        return False, "it needs no padding"
    need = workspace(spec, op)
    if need > _config.get_workspace_limit():
        return False, (f"the packed panels ({need} bytes) exceed the workspace limit of "
                       f"{_config.get_workspace_limit()} bytes")
    return True, ""


class _Plan:
    """One operation's GEMMs: C (m x n) = A (m x k) B (k x n) per set (sample and group; a group,
    over every sample, for the kernel gradient), B packed into panels of the tile's columns or
    (in_place) read in them where it lies."""

    def __init__(self, spec, op):
        self.rows, self.cols = _pointwise.tile(np.empty(1, spec.dtype))
        lanes = self.lanes = self.cols // 2
        G, N = spec.groups, spec.batch
        Cg, Kg = spec.in_channels // G, spec.out_channels // G
        self.positions = math.prod(spec.input_size)
        P = self.positions
        if op == "grad_kernel":
            self.m, self.n, self.k, self.samples, self.sets = Kg, Cg, P, N, G
        else:
            self.m, self.k = (Cg, Kg) if op == "grad_input" else (Kg, Cg)
            self.n, self.samples, self.sets = P, 1, N * G
        self.panels = -(-self.n // self.cols)
        # the tiles down a panel: whole blocks, then the powers of two that add up to the rest,
        # but two tiles of `small` rows for a rest of that (src/_gemm_inplace.h, gm_inplace)
        small = 8 if self.rows > 8 else 4
        count, left = divmod(self.m, self.rows)
        self.tiles = []
        if count and left and self.rows + left == 2 * small:
            count, left = count - 1, 0
            self.tiles.append((small, 2))
        self.tiles.insert(0, (self.rows, count))
        while left:
            r = 1 << (left.bit_length() - 1)
            self.tiles.append((r, 1))
            left -= r
        # B read where it lies (x's or gy's rows, whole panels; only a part-filled last panel
        # packed) where few rows of C read each panel: packing then cost more than it saved
        self.in_place = op != "grad_kernel" and self.m <= IN_PLACE_ROWS
        last = self.n - (self.panels - 1) * self.cols     # the last panel's columns
        self.packed = (self.sets * self.k * self.cols * (last < self.cols) if self.in_place
                       else self.sets * self.panels * self.samples * self.k * self.cols)
        # the items: every (set, panel) times chunks of A's rows, enough to keep the threads busy
        # (a multiple of the tile's rows each: src/_pointwise.pyx; A's chunk is then reused by
        # an item's successors, the same chunk on the next panel or sample)
        others = (G if op == "grad_kernel" else self.sets) * self.panels
        blocks = max(1, self.m // self.rows)
        chunks = max(1, min(blocks, -(-ITEMS_PER_THREAD * _config.planning_threads()
                                      // max(others, 1))))
        # chunks as even as whole blocks allow (the rows past the last block join the last):
        # the items run in order, each thread a run of them, so a small last chunk left one
        # thread all the work of a batch of 8 (2.9 ms at one thread, 3.1 at two)
        self.chunk_rows = -(-blocks // chunks) * self.rows
        self.chunks = max(1, -(-blocks // (self.chunk_rows // self.rows)))
        self.part_rows = self.chunk_rows + self.rows    # the last chunk's, at most
        self.items = others * self.chunks
        # vectors of each panel (a last one of at most one vector's columns runs one), and the
        # last panel's columns past its whole vectors that src/_gemm_inplace.h's gm_ip_tail
        # sums without a vector of their own (at most a quarter of a vector's lanes, where they
        # fit gathered in the item's spare panel: its rows x columns, an item's rows m with one
        # chunk, chunk_rows for all but the last of several, as gm_inplace decides)
        rem = last % lanes
        item_rows = self.m if self.chunks == 1 else self.chunk_rows
        tail = (last < self.cols and rem <= lanes // 4
                and rem * self.samples * self.k <= item_rows * self.cols)
        self.tail_columns = rem if tail else 0
        width = last // lanes if tail else 2 if last > lanes else 1
        self.widths = [2] * (self.panels - 1) + [width] if self.panels else []

    def cost(self, spec, op):
        steps = 0.0
        for rows, count in self.tiles:
            per_panel = sum(max(rows * nv * SECONDS["fma"], SECONDS["latency"])
                            for nv in self.widths if nv)
            # a tail column: a vector multiply-add per lanes of kk, its column loaded with it
            per_panel += rows * self.tail_columns * TAIL_FMAS * SECONDS["fma"] / self.lanes
            steps += count * self.sets * self.samples * self.k * per_panel
        item = spec.dtype.itemsize
        stored = self.sets * self.m * self.n
        # B read in place: each value still comes once from where it lies (a packing's read,
        # without its write: half a packed value)
        read = self.sets * self.k * self.n * IN_PLACE_READ if self.in_place else 0
        values = self.packed + read + stored + self.m * self.k * self.samples * self.sets
        spill = max(0, (self.packed + stored) * item - SPILL_BYTES) / item
        rereads = sum(count for _, count in self.tiles) - 1
        stream = (self.packed * rereads
                  if self.samples * self.k * self.cols * item > STREAM_BYTES else 0)
        work = (steps + SECONDS["value"] * values + SECONDS["spill"] * spill
                + SECONDS["stream"] * stream
                + (SECONDS["transposed"] * self.packed if op == "grad_kernel" else 0.0))
        threads = _config.model_threads(spec, self.items)
        return (work / (1 + PARALLEL_EFFICIENCY * (threads - 1)) + CALL_OVERHEAD_S
                + (PARALLEL_OVERHEAD_S if threads > 1 else 0.0))


@functools.lru_cache(maxsize=256)
def _plan(spec, op):
    return _Plan(spec, op)


def workspace(spec, op):
    if spec.kernel_size != (1, 1, 1):
        return 0
    plan = _plan(spec, op)
    return (plan.packed + _threads(plan) * plan.part_rows * plan.cols) * spec.dtype.itemsize


def cost(spec, op):
    return _plan(spec, op).cost(spec, op)


def _threads(plan):
    return max(1, min(_config.get_num_threads(), plan.items))


def _buffers(plan, spec, threads):
    """The packed panels, and each thread's rows of a part-filled panel."""
    return (_scratch.empty("pointwise.b", max(plan.packed, 1), spec.dtype),
            _scratch.empty("pointwise.part", threads * plan.part_rows * plan.cols, spec.dtype))


def forward(spec, x, w, out=None):
    y = _aligned.empty(spec.y_shape, spec.dtype) if out is None else out
    return _gemm(spec, "forward", x, w, y)


def grad_input(spec, gy, w, out=None):
    return _gemm(spec, "grad_input", gy, w,
                 _aligned.empty(spec.x_shape, spec.dtype) if out is None else out)


def _gemm(spec, op, b, w, out):
    plan = _plan(spec, op)
    if out.size == 0:
        return out
    if plan.k == 0:
        out[...] = 0
        return out
    G, threads = spec.groups, _threads(plan)
    _pointwise.forward(b.reshape(-1), w.reshape(-1), out.reshape(-1),
                       *_buffers(plan, spec, threads), spec.batch, G, spec.in_channels // G,
                       spec.out_channels // G, plan.positions, plan.chunk_rows,
                       op == "grad_input", threads, plan.in_place)
    return out


def grad_kernel(spec, x, gy, out=None):
    plan = _plan(spec, "grad_kernel")
    gw = _aligned.empty(spec.w_shape, spec.dtype) if out is None else out
    if gw.size == 0:
        return gw
    if plan.k * plan.samples == 0:
        gw[...] = 0
        return gw
    G, threads = spec.groups, _threads(plan)
    _pointwise.grad_kernel(x.reshape(-1), gy.reshape(-1), gw.reshape(-1),
                           *_buffers(plan, spec, threads), spec.batch, G,
                           spec.in_channels // G, spec.out_channels // G, plan.positions,
                           plan.chunk_rows, threads)
    return gw
