"""blocked's input gradient by columns: col = W^T gy with (input channel, tap) as the vector
lanes, then col2im (src/_blocked_columns.pxi).

The other path (blocked.py) runs the adjoint as a forward pass over gy, one per phase of the
stride, on the weights flipped and transposed into blocks of input channels: a transpose of
every (output channel, block) piece of the kernel, each call. Where the weights outweigh the
work on them -- few positions a sample, many channels: ResNet-18's stride-2 layers at small
batches -- that packing and the phases' short tap loops cost more than the multiply-adds. Here
the lanes are w's rows as given, so the packing is a copy, every stride and dilation is one
pass, and col2im puts the taps in place.

Taken in float32 where it is modelled cheaper than the phases (blocked.cost), the group's
input channels split into whole blocks (CB channels x taps a whole number of vectors), a pass
takes at most CHUNK_MOST positions, and the weights' slice of an item and its column buffers
fit WORK_BYTES a thread. float64 ran 1.1-1.8x its modelled time and lost to im2col on most of
ResNet-18's strided layers; a long 1-D row (wav2vec's 1,599 outputs, one pass) 1.5x. Both stay
on the other paths. FASTCONV_BLOCKED_GI=columns or =phases forces one where it applies
(tests, benchmarks; forcing columns also lifts the float32 rule).
"""
import functools
import math
import os

import numpy as np

from .. import _config, _scratch
from .._lazy import LazyModule

_blocked = LazyModule("fastconv._blocked")

CHUNK_POSITIONS = 256   # output positions (whole rows of them) a pass of bk_row takes at once
CHUNK_MOST = 1024       # ... and at most, where one row is longer than CHUNK_POSITIONS
WORK_BYTES = 4 << 20    # an item's copy of its weights and its column buffers, a thread
# Cost model, in blocked's units (per vector multiply-add, per value moved, per item): its
# multiply-adds on positions as one row (tiles of up to 12 columns of two vectors, one tap a
# channel) at the rate of blocked's forward, the weights copied once, col and gx each written
# and read once. Fitted on ResNet-18's strided 3x3 layers (2-core Intel Xeon, AVX-512, 2
# threads): see bench/RESULTS.md, nineteenth session.
SECONDS = {"fma": 0.36e-9, "value": 0.5e-9, "item": 0.05e-6}
PARALLEL_EFFICIENCY = 0.9
CALL_OVERHEAD_S = 12e-6


class _ColumnsPlan:
    """The blocks, tiles and scratch of one problem's input gradient by columns."""

    def __init__(self, spec):
        lanes = _blocked.vector_bytes() // spec.dtype.itemsize
        self.taps = math.prod(spec.kernel_size)
        self.cg = spec.in_channels // spec.groups
        self.kg = spec.out_channels // spec.groups
        self.kb = 2
        self.v = self.kb * lanes
        # the fewest channels whose taps fill whole vectors
        self.cb = self.v // math.gcd(self.taps, self.v)
        o = spec.output_size
        self.chunk_rows = max(1, min(o[0] * o[1], CHUNK_POSITIONS // max(1, o[2])))
        chunk = self.chunk_rows * o[2]
        self.items = spec.groups * (self.cg // self.cb) if self.cg % self.cb == 0 else 0
        n, st = spec.input_size, spec.stride[2]
        phased = self.cb * n[0] * n[1] * st * -(-n[2] // st) if st > 1 else 0   # col2im's
        self.per_thread = (self.kg + 2 * chunk) * self.cb * self.taps + phased
        self.applies = (self.items > 0 and 0 < chunk <= CHUNK_MOST
                        and self.per_thread * spec.dtype.itemsize <= WORK_BYTES)
        self.preferred = self.applies and spec.dtype == np.float32

    def threads(self):
        return max(1, min(_config.get_num_threads(), self.items))

    def workspace_elements(self):
        return self.threads() * self.per_thread if self.applies else 0


@functools.lru_cache(maxsize=64)
def plan(spec):
    return _ColumnsPlan(spec)


def forced():
    """'columns', 'phases' or None: FASTCONV_BLOCKED_GI, read per call (tests set it)."""
    choice = os.environ.get("FASTCONV_BLOCKED_GI", "auto")
    return choice if choice in ("columns", "phases") else None


def cost(spec):
    """Modelled seconds of the input gradient by columns (math.inf where it does not apply)."""
    p = plan(spec)
    if not p.applies:
        return math.inf
    positions = spec.batch * math.prod(spec.output_size)
    vectors = spec.groups * p.cg * p.taps // (p.v // p.kb)
    fmas = positions * p.kg * vectors
    values = (spec.groups * p.kg * p.cg * p.taps
              + 2 * positions * spec.groups * p.cg * p.taps
              + spec.batch * spec.in_channels * math.prod(spec.input_size))
    work = SECONDS["fma"] * fmas + SECONDS["value"] * values + SECONDS["item"] * p.items
    threads = _config.model_threads(spec, p.items)
    return work / (1 + PARALLEL_EFFICIENCY * (threads - 1)) + CALL_OVERHEAD_S


def grad_input(spec, gy, w, gx):
    """gx (the lifted input's shape, filled) from gy and w by columns."""
    p = plan(spec)
    threads = p.threads()
    work = _scratch.empty("blocked.columns", threads * p.per_thread, spec.dtype)
    _blocked.grad_input_columns(
        np.ascontiguousarray(gy).reshape(-1), np.ascontiguousarray(w).reshape(-1),
        gx.reshape(-1), work, np.array(spec.kernel_size, np.intp),
        np.array(spec.dilation, np.intp), spec.batch, spec.groups, p.cg, p.kg, p.cb, p.kb, p.v,
        p.chunk_rows, spec.input_size, spec.pad_low, spec.output_size, spec.stride, threads)
    return gx
