"""Blocked direct convolution: output channels in vector blocks, one input value broadcast to
each (oneDNN's "direct" on a blocked layout, without a JIT).

Where the rows are short (LeNet's 8x8 and 12x12 maps) vectors along a row waste most of their
lanes and im2col's GEMMs are too small for the BLAS to reach its speed; a vector of 8 or 16
output channels wastes none when the layer has that many. With many input channels on small
maps (ResNet's 14x14 and 7x7 stages) a block's weights live in L2, read once per register tile
of two rows. The input is copied once into zero-padded planes (every tap a constant offset, no
border tests; read in place where there is no padding, and a 1-D row padded at its ends -- a
causal TCN layer -- in place but for its edge outputs' windows), the weights are packed per call
(nothing derived from their values is kept), and src/_blocked_kernels.h sums one or two rows of
outputs per work item in registers. Where the packed weights outgrow L2 (ResNet-18's 512-channel
layers, 9.4 MB) the items run block by block over the batch and each block is packed by the item
that uses it (_Geometry._by_block, fuses). See src/_blocked.pyx.

forward: every geometry. grad_input: at stride 1, the forward pass over gy zero-padded by the
kernel's extent with the flipped kernel, channels swapped per group (the adjoint, eq. 9.13); at
larger strides one such pass per phase of the stride (_phases); or by columns (blocked_columns:
col = W^T gy, weights' rows as the lanes, then col2im). grad_kernel: gy transposed so that a
position's channels lie together, each tile of taps of an input channel summed in registers
over the batch and positions (oneDNN's backward-weights layout; blocked_gk); or by positions
(blocked_positions: vectors along output rows, for first layers). Any of the three may run with
the minibatch as the lanes (blocked_batch: small maps, few channels, a batch of a vector or
more). Each other path is taken where it applies and the model finds it cheaper.
"""
import functools
import math
import os

import numpy as np

from .. import _aligned, _config, _finite, _scratch
from .._lazy import LazyModule
from . import (_phases, blocked_batch, blocked_columns, blocked_gk, blocked_planes,
               blocked_positions)
from ._positions_row import as_row, operation, question

_blocked = LazyModule("fastconv._blocked")

NAME = "blocked"
WRITES_OUT = True       # its operations take out= (the lifted result buffer) and fill it
# grad_input multiplies the zeros around gy by the weights: an Inf weight would make NaN where
# the textbook sum has Inf; forward skips the kernel rows that read only padding, whose zeros
# the textbook multiplies (an Inf weight there makes NaN). A kernel with one goes to summation.
NONFINITE = {"grad_input": _finite.GIVES_UP, "forward": _finite.GIVES_UP}

# Cost model: per vector multiply-add (a broadcast load and an FMA), per value copied into the
# padded planes or out of the row buffers, per work item; divided among the threads the items
# keep busy; plus a call overhead. Fitted on LeNet-, CIFAR- and ResNet-like layers, 2-core AMD
# EPYC Zen 4 (AVX-512), one thread (see bench/RESULTS.md, issue 12).
SECONDS = {"fma": 0.36e-9, "value": 0.5e-9, "item": 0.05e-6, "step": 4.3e-9, "step1": 0.6e-9}
# "step": a register tile's pass over one input channel (bk_tile's channel loop: its pointers,
# its taps loop entered and left) beside the tile's taps x accumulators multiply-adds; "step1"
# the same where a channel has one tap (a 1x1 kernel's single loop, unrolled by two). Timed on
# bk_row alone, one Xeon core, 128-512 channels of 7-14 columns: 3x3 at 155 GFLOP/s against 172
# for the same multiply-adds over 16 channels of 72 taps (5 ns a pass), 1x1 at 151 (0.7 ns a
# pass; 114 before its own loop, when pointwise layers measured 1.4-1.6x their modelled time).
# Forward only: the input gradient's 1x1 passes measured 0.93 of their modelled time without
# it, and its strided phases have PHASE_SLOWDOWN.
TILE_ACCUMULATORS = {64: 28, 32: 12, 16: 12}    # vector bytes -> a full tile's accumulators
# A block's weights are read once per register tile of outputs and packed per call (ResNet-18's
# 512-channel 3x3 at batch 1: 2.4 million values, a third of the call). A penalty on the FMA term
# for a block's weights past 64 KB, from before the tiles were cut as few as the registers allow,
# over-predicted the chooser sweep's 128-512-channel layers 1.4-2.8x; without it, with the
# packing counted, they measure 0.82-1.40 of the model (bench/RESULTS.md, fifth session).
TAP_SHARE_ROWS = 4096
EDGE_WIDTH = 512        # a 1-D row's edge windows past this are not worth tiles: copied whole
CALL_OVERHEAD_S = 12e-6
BY_BLOCK_BYTES = 1 << 20    # packed weights past this leave L2 between samples (Zen 3: 512 KiB)
FUSE_BLOCKS_A_THREAD = 4
PAIR_WIDTH = 16     # output rows this narrow go two an item at AVX2 (_Geometry.pair)
# A strided input gradient's phases (_phases) ran 1.17-1.94x their passes' modelled time on the
# chooser sweep's 16 strided 3x3, 2x2, 4x4 and 1-D layers (median 1.48; 2-core Intel Xeon,
# AVX-512, 2 threads): a phase has 1-4 taps a channel where the model's fits had 9-49, so each
# tile pays its loop and weight loads over fewer multiply-adds.
PHASE_SLOWDOWN = 1.5
PARALLEL_EFFICIENCY = 0.9


def _lanes(itemsize):
    return _blocked.vector_bytes() // itemsize


class _Geometry:
    """The lifted problem as bk_row sees it: input planes, their padding, outputs, stride, taps.
    `flipped` describes grad_input's forward problem (gy in, gx out, channels swapped); `phase`
    (a tuple of _phases.AxisPhase) one phase of a strided input gradient's."""

    def __init__(self, spec, flipped=False, phase=None):
        k, d = spec.kernel_size, spec.dilation
        if flipped and phase is None:       # the whole kernel over every input: one phase
            phase = tuple(_phases.AxisPhase(0, k[i], 0, spec.input_size[i], spec.pad_low[i], d[i])
                          for i in range(3))
        if phase is not None:
            k, d = tuple(a.taps for a in phase), tuple(a.dilation for a in phase)
            self.n, self.s = spec.output_size, (1, 1, 1)
            self.o, self.p = tuple(a.count for a in phase), tuple(a.pad() for a in phase)
            self.cg, self.kg = spec.out_channels // spec.groups, spec.in_channels // spec.groups
        else:
            self.n, self.o, self.s, self.p = (spec.input_size, spec.output_size, spec.stride,
                                              spec.pad_low)
            self.cg, self.kg = spec.in_channels // spec.groups, spec.out_channels // spec.groups
        self.e = tuple((self.o[i] - 1) * self.s[i] + (k[i] - 1) * d[i] + 1 if self.o[i] else 0
                       for i in range(3))
        # No padding and planes no larger than the input's: the kernels read x itself, no copy
        # (wav2vec's unpadded 1-D layers copied 13 MB a call at batch 4)
        self.copies = not (all(v == 0 for v in self.p)
                           and all(a <= b for a, b in zip(self.e, self.n)))
        self.edges = self._edges(k, d) if self.copies else None
        if not self.copies:
            self.e = tuple(self.n)
        self.kernel, self.dilation = k, d
        self.taps = math.prod(k)
        lanes = _lanes(spec.dtype.itemsize)
        self.kb = 1 if self.kg <= lanes else 2
        self.v = self.kb * lanes
        self.blocks = -(-self.kg // self.v)
        # two output rows an item where two rows' tiles fit in the registers: always with one
        # vector of channels, with two at AVX-512 (2 x 2 x 7 accumulators of its 32 registers),
        # and at AVX2 on rows of at most PAIR_WIDTH columns: one row of 7 was cut into tiles of
        # 4 and 3 columns (8 and 6 of its 12 accumulators), two rows into tiles of 3, 2 and 2
        # (12, 8, 8); 1.03-1.29x on ResNet-18's 7x7 and 14x14 layers, MobileNetV2's 320 ->
        # 1280 and LeNet's 8x8 maps, 0.88-1.04x on 28-128 wide rows; 0.94-0.96x at the
        # baseline level (the same registers, 4-lane vectors)
        vb = _blocked.vector_bytes()
        self.pair = 2 if (self.kb == 1 or vb == 64
                          or (vb == 32 and self.o[2] <= PAIR_WIDTH)) else 1
        self.items = (spec.batch * spec.groups * self.blocks * self.o[0]
                      * -(-self.o[1] // self.pair))
        self.padded = spec.batch * spec.groups * self.cg * math.prod(self.e) if self.copies else 0
        self.row = 2 * self.o[2] * self.v
        self.weights = spec.groups * self.blocks * self.cg * self.taps * self.v     # packed
        self.large = self.weights * spec.dtype.itemsize > BY_BLOCK_BYTES     # past L2
        self.by_block = self._by_block(spec)

    @functools.cached_property
    def call_arrays(self):
        """(each tap's offset from an output's first input in the padded planes, the kernel's
        size, its dilation) as the kernel takes them; built only for a call (a hostile kernel
        size would make the list as large as the kernel), kept with the geometry."""
        (k0, k1, k2), d, e = self.kernel, self.dilation, self.e
        offsets = ((np.arange(k0) * d[0] * e[1] * e[2])[:, None, None]
                   + (np.arange(k1) * d[1] * e[2])[None, :, None]
                   + (np.arange(k2) * d[2])[None, None, :]).astype(np.intp).reshape(-1)
        return offsets, np.array(self.kernel, np.intp), np.array(self.dilation, np.intp)

    def _edges(self, k, d):
        """(jl, jr, wl, wr) for a 1-D row padded at its ends, where the forward pass reads x in
        place: outputs before jl and from jr on reach into the padding and are computed from
        their zero-padded windows, wl and wr positions wide (src/_blocked.pyx, forward); None
        elsewhere, and where the edges are wide or most of the row (a hostile padding)."""
        if (self.o[:2] != (1, 1) or self.n[:2] != (1, 1) or k[:2] != (1, 1)
                or self.p[:2] != (0, 0)):
            return None
        n, p, o, s = self.n[2], self.p[2], self.o[2], self.s[2]
        reach = (k[2] - 1) * d[2]
        jl = min(o, max(0, -(-p // s)))
        jr = min(o, max(jl, -(-(n + p - reach) // s)))
        wl = (jl - 1) * s + reach + 1 if jl else 0
        wr = (o - 1 - jr) * s + reach + 1 if o > jr else 0
        if max(wl, wr) > EDGE_WIDTH or 2 * (jr - jl) < o:
            return None
        return jl, jr, wl, wr

    def _by_block(self, spec):
        """Whether the items run block by block over the batch (src/_blocked.pyx, forward): where
        the packed weights outgrow L2 and re-reading a sample's input planes once a block moves
        fewer bytes than re-reading the weights once a sample."""
        if spec.batch == 1 or not self.large:
            return False
        sample = spec.groups * self.cg * math.prod(self.e if self.copies else self.n)
        batch_fits = spec.batch * sample * spec.dtype.itemsize <= BY_BLOCK_BYTES
        by_sample = spec.batch * self.weights + spec.batch * sample
        by_block = self.weights + (1 if batch_fits else self.blocks) * spec.batch * sample
        return by_block < by_sample

    def fuses(self, spec, threads):
        """Whether a whole channel block is an item that packs its own weights (forward's `fuse`):
        where the packed weights would not stay in L2 anyway, and the blocks keep `threads` busy
        (the packing then runs on threads in step with the rows, not in a pass of its own)."""
        return (self.large and (spec.batch == 1 or self.by_block)
                and spec.groups * self.blocks >= FUSE_BLOCKS_A_THREAD * threads)

    def run_padded(self, threads):
        """Values of padded input the forward pass writes: the planes, or (edges) each thread's
        zero-padded window of the group's channels."""
        return threads * self.cg * max(self.edges[2:]) if self.edges else self.padded

    def per_sample(self, spec, threads):
        """Whether the forward pass's items are samples that pad their own planes and run all
        their rows while those are in cache (src/_blocked.pyx, sample_items): where the planes
        are padded copies, no block packs its own weights, and the samples share the threads
        evenly (a multiple of them, or 8 a thread at least; the rows' items balance otherwise).
        The batch's padded planes went to memory and back: ResNet-18's strided 3x3 layers and
        MobileNetV2's stem at batch 8 ran 1.03-1.08x faster this way (AVX2 and AVX-512)."""
        return (self.copies and not self.edges and not self.by_block
                and not self.fuses(spec, threads) and spec.batch >= threads
                and (spec.batch % threads == 0 or spec.batch >= 8 * threads))

    def pad_buffer(self, spec, threads):
        """Values of the padded-input buffer the forward pass takes (run_padded's, or one
        sample's planes a thread)."""
        if self.per_sample(spec, threads):
            return threads * spec.groups * self.cg * math.prod(self.e)
        return self.run_padded(threads)

    def threads(self):
        return max(1, min(_config.get_num_threads(), self.items))

    def tap_share(self):
        """The share of taps that the forward kernel runs: an output row skips the kernel rows
        (planes, in 3-D) that read only padding (src/_blocked.pyx, tap_run). Counted exactly up
        to TAP_SHARE_ROWS output rows; past that the padding's share is negligible (and a
        hostile size must not build a list as large as it)."""
        a = 0 if self.kernel[0] > 1 else 1
        o, k, s, d = self.o[a], self.kernel[a], self.s[a], self.dilation[a]
        if o == 0 or o > TAP_SHARE_ROWS:
            return 1.0
        start = np.arange(o) * s
        def first(lo):
            return np.clip(-(-(lo - start) // d), 0, k)
        return float((first(self.p[a] + self.n[a]) - first(self.p[a])).sum()) / (o * k)

    def workspace_elements(self, spec, packed=True):
        threads = self.threads()
        return (self.pad_buffer(spec, threads) + threads * self.row
                + (self.weights if packed else 0))


@functools.lru_cache(maxsize=64)
def _kernel_plan(spec):
    return blocked_gk.Plan(spec, _geometry(spec, False))


def _kernel_workspace(spec):
    """Bytes of the kernel gradient's workspace on transposed gy, at the call's thread count."""
    return _kernel_plan(spec).workspace_elements(_config.get_num_threads()) * spec.dtype.itemsize


@functools.lru_cache(maxsize=64)
def _geometry(spec, flipped):
    """The _Geometry of a problem (flipped: its input gradient's), kept per problem so that a
    training loop's calls -- and the chooser's supports, workspace and cost -- do not rebuild it
    (nor its tap offsets)."""
    return _Geometry(spec, flipped)


@functools.lru_cache(maxsize=64)
def _phase_plan(spec):
    """A strided input gradient's _phases.Plan, or None at stride 1 (the plain flipped problem)."""
    return None if spec.stride == (1, 1, 1) else _phases.Plan(
        spec, lambda axes: _Geometry(spec, True, axes))


def _input_geometries(spec):
    """The geometries grad_input runs: the flipped problem, or each phase's."""
    if _phases.refusal(spec):   # never run; its phases may be too many to list
        return []
    plan = _phase_plan(spec)
    if plan is None:
        return [_geometry(spec, True)]
    return [p.geometry for p in plan.list if p.geometry is not None]


def _row_items(row):
    """The work items of a pointwise problem run as one row (_positions_row)."""
    return _geometry(row, False).items


@question(_row_items)
def supports(spec, op):
    if _by_batch(spec, op) or (op == "grad_kernel" and _by_positions(spec)):
        return True, ""
    if op == "grad_kernel":
        need = _kernel_workspace(spec)
        if need > _config.get_workspace_limit():
            return False, (f"the padded input, transposed gy's chunks and packed gradient "
                           f"({need} bytes) exceed the workspace limit of "
                           f"{_config.get_workspace_limit()} bytes")
        return True, ""
    why = _phases.refusal(spec) if op == "grad_input" and not _by_columns(spec) else None
    if why:
        return False, why
    need = workspace(spec, op)
    if need > _config.get_workspace_limit():
        return False, (f"the padded input and packed weights ({need} bytes) exceed the workspace "
                       f"limit of {_config.get_workspace_limit()} bytes")
    return True, ""


@question(_row_items)
def workspace(spec, op):
    if _by_batch(spec, op):
        return blocked_batch.plan(spec, op).workspace_elements(spec) * spec.dtype.itemsize
    if op == "grad_kernel" and _by_positions(spec):
        return blocked_positions.plan(spec).workspace_elements(spec) * spec.dtype.itemsize
    if op == "grad_kernel":
        return _kernel_workspace(spec)
    if op == "grad_input" and _by_columns(spec):
        return blocked_columns.plan(spec).workspace_elements() * spec.dtype.itemsize
    if op == "forward" and _by_planes(spec):
        return blocked_planes.plan(spec).workspace_elements(spec) * spec.dtype.itemsize
    if op == "grad_input":
        geometries = _input_geometries(spec)
        if spec.stride == (1, 1, 1):
            return geometries[0].workspace_elements(spec) * spec.dtype.itemsize
        # the whole kernel packed once; each phase's padded gy and rows in turn
        packed = (spec.groups * geometries[0].blocks * geometries[0].cg
                  * math.prod(spec.kernel_size) * geometries[0].v) if geometries else 0
        per_pass = max((g.workspace_elements(spec, packed=False) for g in geometries), default=0)
        return (packed + per_pass) * spec.dtype.itemsize
    return _geometry(spec, False).workspace_elements(spec) * spec.dtype.itemsize


@question(_row_items)
def cost(spec, op):
    return blocked_batch.cost(spec, op) if _by_batch(spec, op) else _path_cost(spec, op)


_FORCEABLE_PATHS = {"forward": blocked_planes, "grad_input": blocked_columns,
                    "grad_kernel": blocked_positions}


def _by_batch(spec, op):
    """Whether `op` runs with the minibatch as the lanes (blocked_batch; not unforced where
    another of blocked's paths is forced)."""
    return blocked_batch.chosen(spec, op, _path_cost, _FORCEABLE_PATHS.get(op))


def _path_cost(spec, op):
    """Counted vector multiply-adds (the unused lanes of a part-filled block included), values
    copied in and out (the padded input, the outputs, the packed weights), and work items;
    shared among the threads the items keep busy."""
    if op == "grad_kernel":
        return blocked_positions.cost(spec) if _by_positions(spec) else _kernel_cost(spec)
    if op == "grad_input":
        return blocked_columns.cost(spec) if _by_columns(spec) else _passes_cost(spec)
    return blocked_planes.cost(spec) if _by_planes(spec) else _rows_cost(spec, op)


def _rows_cost(spec, op):
    return _pass_cost(spec, _geometry(spec, False), steps=True)


def _by_planes(spec):
    """Whether the forward pass runs along planes (blocked_planes) rather than bk_row's rows."""
    return blocked_planes.chosen(spec, _rows_cost)


def _passes_cost(spec):
    """The input gradient as the flipped problem's forward passes: one per phase."""
    if _phases.refusal(spec):
        return math.inf
    passes = sum(_pass_cost(spec, g) for g in _input_geometries(spec))
    return passes * (1.0 if spec.stride == (1, 1, 1) else PHASE_SLOWDOWN)


def _by_columns(spec):
    """Whether grad_input runs by columns (blocked_columns) rather than as forward passes:
    where it is preferred (float32) and modelled cheaper, or the passes cannot run, or it is
    forced."""
    return _columns_choice(spec, blocked_columns.forced(), _config.get_num_threads(),
                           _config.get_workspace_limit())


@functools.lru_cache(maxsize=256)
def _columns_choice(spec, forced, threads, limit):
    """_by_columns, kept per problem, override, thread budget and workspace limit: the two
    models cost 0.17 ms of Python, more than wav2vec's 2-tap input gradient itself at batch 1
    (0.12 ms). A limit the columns' scratch exceeds leaves the passes (which may fit it)."""
    plan = blocked_columns.plan(spec)
    if not plan.applies or plan.workspace_elements() * spec.dtype.itemsize > limit:
        return False
    if forced:
        return forced == "columns"
    passes = _passes_cost(spec)         # infinite where the phases cannot run
    return ((plan.preferred or passes == math.inf)
            and blocked_columns.cost(spec) < passes)


def _by_positions(spec):
    """Whether grad_kernel runs by positions (blocked_positions) rather than on transposed gy:
    where it applies, fits the workspace limit and is modelled cheaper, or is forced."""
    return _positions_choice(spec, blocked_positions.forced(), _config.get_num_threads(),
                             _config.get_workspace_limit())


@functools.lru_cache(maxsize=256)
def _positions_choice(spec, forced, threads, limit):
    """_by_positions, kept per problem, override, thread budget and workspace limit (as
    _columns_choice)."""
    plan = blocked_positions.plan(spec)
    if not plan.applies or plan.workspace_elements(spec) * spec.dtype.itemsize > limit:
        return False
    if forced:
        return forced == "positions"
    return blocked_positions.cost(spec) < _kernel_cost(spec)


def _pass_cost(spec, g, steps=False):
    return _modelled(spec, *pass_terms(spec, g, steps), SECONDS)


def pass_terms(spec, g, steps=False):
    """A forward pass's counts (SECONDS' keys; a tile's channel steps with `steps`) and the
    items its threads share."""
    outputs = spec.batch * spec.groups * g.blocks * math.prod(g.o)
    fmas = outputs * g.kb * g.cg * g.taps * g.tap_share()
    counts = {"fma": fmas,
              "value": g.run_padded(1) + spec.batch * spec.groups * g.kg * math.prod(g.o)
              + g.weights, "item": g.items}
    if steps:
        acc = TILE_ACCUMULATORS.get(_blocked.vector_bytes(), 12)
        counts["step" if g.taps > 1 else "step1"] = fmas / (g.taps * acc)
    return counts, g.items


def _kernel_cost(spec):
    return _modelled(spec, *blocked_gk.terms(_kernel_plan(spec), spec),
                     blocked_gk.SECONDS.get(_blocked.vector_bytes(), blocked_gk.SECONDS[16]))


def _modelled(spec, counts, items, rates):
    """blocked's modelled seconds of `counts` at `rates`, its threads sharing `items` (a last
    round with idle threads counted whole), plus the call's overhead."""
    return _config.model_seconds(spec, counts, items, rates, PARALLEL_EFFICIENCY,
                                 CALL_OVERHEAD_S)


def _packed(w, spec, g, flip=False, phases=None):
    """The weights as (G, blocks, cg, taps, V), zeros past each group's channels, in this
    thread's scratch buffer (packed per call: nothing derived from the weights is kept); None
    where a weight is not finite (the kernels skip padding's products, which would lose the NaN
    of 0 * Inf: _finite). With `flip`, grad_input's: gx's channels lead and the taps run
    backwards (the adjoint); with `phases` (a _phases.Plan) every tap of the kernel, each phase's
    reversed and together."""
    taps = g.taps if phases is None else math.prod(spec.kernel_size)
    packed = _scratch.empty("blocked.w", spec.groups * g.blocks * g.cg * taps * g.v, spec.dtype)
    finite = _blocked.pack_weights(np.ascontiguousarray(w).reshape(-1), packed, spec.groups,
                                   g.kg, g.cg, taps, g.v, flip, g.threads(),
                                   None if phases is None else phases.pos)
    return packed if finite else None


@functools.lru_cache(maxsize=256)
def _pass_sizes(spec, g, threads):
    """(whether the blocks pack their own weights, values of the padded-input, row and weight-block
    buffers, whether the items are samples) of a pass of geometry `g` on `threads` threads."""
    return (g.fuses(spec, threads), g.pad_buffer(spec, threads), threads * g.row,
            threads * g.cg * g.taps * g.v, g.per_sample(spec, threads))


@functools.lru_cache(maxsize=256)
def _kernel_args(spec, g, threads):
    """_blocked.forward's arguments fixed by the problem, geometry `g` and `threads`: the tap
    offsets and sizes, then the shapes and the thread count (one list for `_run` and
    `_RowsForward`)."""
    return (*g.call_arrays, spec.batch, spec.groups, g.cg, g.kg, g.kb, g.v, g.pair, g.n, g.p,
            g.n if g.edges else g.e, g.o, g.s, threads)


def _run(spec, g, a, wp, out, ystrides=None, wtaps=0, fuse=0):
    """Run the forward kernel of geometry `g` on `a` into `out`; `wp` the packed weights, or
    with `fuse` (1 forward, 2 grad_input) the weights as given, each block packed by its item.
    Returns whether the weights were finite (as _packed says, for packed ones)."""
    threads = g.threads()
    _, pad, rows, wblock, per_sample = _pass_sizes(spec, g, threads)
    return _blocked.forward(a.reshape(-1), wp.reshape(-1), out.reshape(-1),
                            _scratch.empty("blocked.pad", pad, spec.dtype),
                            _scratch.empty("blocked.rows", rows, spec.dtype),
                            *_kernel_args(spec, g, threads), ystrides, wtaps, g.edges,
                            g.by_block, fuse,
                            _scratch.empty("blocked.w", wblock, spec.dtype) if fuse else None,
                            not fuse and per_sample)


def _one_pass(spec, g, a, w, out, flip):
    """`out` from `a`: the whole kernel, packed first or block by block (Geometry.fuses); None
    where a weight is not finite."""
    if _pass_sizes(spec, g, g.threads())[0]:
        return out if _run(spec, g, a, np.ascontiguousarray(w), out, fuse=1 + flip) else None
    wp = _packed(w, spec, g, flip)
    return None if wp is None else _run(spec, g, a, wp, out) and out


@operation("forward", _row_items)
def _forward(spec, x, w, out=None):
    y = _aligned.empty(spec.y_shape, spec.dtype) if out is None else out
    if _by_batch(spec, "forward"):
        return blocked_batch.forward(spec, x, w, y)
    if _by_planes(spec):
        return blocked_planes.forward(spec, x, w, y)
    return _one_pass(spec, _geometry(spec, False), x, w, y, False)


class _RowsForward:
    """A forward pass on bk_row's rows worked out once per problem, thread budget, workspace
    limit and path override: the row it runs on (_positions_row), the geometry's threads and
    buffers, the kernel's fixed arguments. After a large kernel has flushed the caches, the
    Python before the kernel took 43-70 us a call of ResNet-18's layers at batch 1 working it
    out, 29-58 with it kept (2-core Xeon, AVX-512, packing included where it runs)."""

    __slots__ = ("y_shape", "dtype", "fuse", "pack", "w_values", "pad", "rows", "wblock", "fixed",
                 "per_sample")

    def __init__(self, spec):
        row = as_row(spec, _row_items) or spec
        g = _geometry(row, False)
        threads = g.threads()
        self.fuse, self.pad, self.rows, self.wblock, self.per_sample = _pass_sizes(row, g, threads)
        self.y_shape, self.dtype = spec.y_shape, spec.dtype       # the row's: the same values
        self.w_values = row.groups * g.blocks * g.cg * g.taps * g.v
        self.pack = (row.groups, g.kg, g.cg, g.taps, g.v, False, threads)
        self.fixed = (*_kernel_args(row, g, threads), None, 0, g.edges, g.by_block,
                      int(self.fuse))

    def __call__(self, x, w):
        """y = conv(x, w), or None where a weight is not finite (as _one_pass)."""
        dt = self.dtype
        y = _aligned.empty(self.y_shape, dt)
        w = np.ascontiguousarray(w).reshape(-1)
        if self.fuse:
            wp = w
        else:
            wp = _scratch.empty("blocked.w", self.w_values, dt)
            if not _blocked.pack_weights(w, wp, *self.pack):
                return None
        ok = _blocked.forward(x.reshape(-1), wp, y.reshape(-1),
                              _scratch.empty("blocked.pad", self.pad, dt),
                              _scratch.empty("blocked.rows", self.rows, dt), *self.fixed,
                              _scratch.empty("blocked.w", self.wblock, dt) if self.fuse else None,
                              self.per_sample)
        return y if ok else None


_forward_plans = {}     # (spec, threads, workspace limit, path overrides) -> _RowsForward or None


def forward(spec, x, w, out=None):
    """y = conv(x, w) (into `out` if given): on bk_row's rows through the problem's kept
    _RowsForward where that path runs it, else as _forward decides."""
    env = os.environ
    key = (spec, _config.get_num_threads(), _config.get_workspace_limit(),
           env.get(blocked_batch.ENV), env.get(blocked_planes.ENV))
    plan = _forward_plans.get(key, False)
    if plan is False:
        if len(_forward_plans) >= 1024:
            _forward_plans.clear()
        plan = _forward_plans[key] = (
            None if _by_batch(spec, "forward") or _by_planes(spec) else _RowsForward(spec))
    if plan is None or out is not None:
        return _forward(spec, x, w, out)
    return plan(x, w)


@operation("grad_input", _row_items)
def grad_input(spec, gy, w, out=None):
    gx = _aligned.empty(spec.x_shape, spec.dtype) if out is None else out
    if _by_batch(spec, "grad_input"):
        return blocked_batch.grad_input(spec, gy, w, gx)
    if _by_columns(spec):
        return blocked_columns.grad_input(spec, gy, w, gx)
    plan = _phase_plan(spec)
    if plan is None:
        return _one_pass(spec, _geometry(spec, True), gy, w, gx, True)
    geometries = _input_geometries(spec)
    wp = _packed(w, spec, geometries[0], flip=True, phases=plan) if geometries else None
    if geometries and wp is None:
        return None
    taps, flat = math.prod(spec.kernel_size), gx.reshape(-1)
    for phase in plan.list:
        if phase.geometry is None:      # inputs that no tap reaches
            gx[phase.gx] = 0
        else:
            _run(spec, phase.geometry, gy, wp[phase.start * phase.geometry.v:],
                 flat[phase.offset:], phase.strides, taps)
    return gx


@operation("grad_kernel", _row_items)
def grad_kernel(spec, x, gy, out=None):
    gw = _aligned.empty(spec.w_shape, spec.dtype) if out is None else out
    if _by_batch(spec, "grad_kernel"):
        return blocked_batch.grad_kernel(spec, x, gy, gw)
    if _by_positions(spec):
        return blocked_positions.grad_kernel(spec, x, gy, gw)
    return blocked_gk.grad_kernel(_kernel_plan(spec), spec, x, gy, gw)
