"""Winograd convolution F(4x4, 3x3) for 3x3 kernels at stride 1 (Lavin & Gray 2015).

A 4x4 output tile costs 36 multiplications per (input, output) channel pair instead of 144: the
input tiles and the kernel are transformed (V = B^T d B, U = G g G^T), multiplied elementwise --
for each of the 36 transformed positions one GEMM over the channels, (tiles x C) @ (C x K) --
and transformed back (y = A^T M A). The input gradient at stride 1 is the same pass with the
kernel rotated by 180 degrees, channels swapped and padding 2 - p; the kernel gradient
transforms x tiles and gy tiles (A gy A^T), sums V^T (A gy A^T) over the tiles per position and
transforms the sum with G^T . G (exactly the gradient of the forward formula, which is exact).
See src/_winograd.pyx for the blocking and src/_winograd_kernels.h for the transforms.

Accuracy: the transforms add rounding, F(4x4, 3x3) about 1e-5 of the result's largest magnitude in
float32 (measured up to 512 channels; the contract allows 2e-4) and ~1e-15 in float64, so both
dtypes use the same tile. A transform mixes 36 values, so it can overflow on finite data the
textbook sum handles, and it spreads a non-finite value over a tile where the textbook sum confines
it: a non-finite kernel, or a block whose result is not finite (every output value is checked as
it is written), sends the call to summation (the registry's policy, `_finite`, shared with fft).

Work is cut into blocks of tiles fixed by the problem and the workspace limit, never by the
thread count; the limit is kept by running fewer threads. With many channels the transformed
kernel (36 x C x K values: 9 MiB at 256 channels) outgrows a core's L2 and each block would read
it again; there the staged schedule transforms a wave of tiles (the whole batch, up to
WAVE_BYTES), runs each of the 36 GEMMs once on one thread, and transforms back, whichever of
the two moves fewer bytes. Where U is far larger than the tiles' V and M (ResNet-18's 256- and
512-channel layers at batch 1, its 512-channel one at batch 8), the staged forward and input
gradient go by kernel blocks instead: an item is a block of output channels that transforms its
part of U a chunk of input channels at a time in cache and runs the 36 GEMMs of that chunk, so
U is never written out (nor held). Scratch comes from fastconv._scratch, reused per call.
The position GEMMs run on fastconv's own register tiles (src/_winograd_kernels.h, wg1_gemm), but
for the staged kernel gradient's with many channels (STAGED_OWN_GEMM_BYTES), which stay on
BLAS. 1-D problems (3 taps, stride 1, any dilation) go to the 1-D F(6, 3) of winograd1d.py.
"""
import contextlib
import functools
import math

import numpy as np

from .. import _aligned, _config, _finite, _scratch
from .._lazy import LazyModule
from . import winograd1d
from ._plan_cache import per_problem
from ._winograd_parts import parts as _parts

_winograd = LazyModule("fastconv._winograd")     # cimports SciPy's BLAS: loaded on first use

NAME = "winograd"
# forward and grad_input check each value as they write it (None where one was not finite);
# the kernel gradient's sums are checked by the registry.
NONFINITE = {"forward": _finite.GIVES_UP, "grad_input": _finite.GIVES_UP,
             "grad_kernel": _finite.CHECK_RESULT}

POSITIONS = 36
BLOCK_BYTES = 1_280_000     # transformed input + GEMM result of one block: within a core's L2
MIN_TILES, MAX_TILES = 4, 196
MIN_ITEMS = 4               # blocks at the least (where there are enough tiles)
BALANCED_ITEMS, UNEVEN = 4, 1.15    # below this many items a core, they split within this
BLAS_INT_MAX = 2**31 - 1
# Cost model: seconds on one thread, shared by the threads the blocks can keep busy (the machine's
# cores, `_config.planning_threads()`, never the thread setting, so the choice does not change
# with it; one thread below SMALL_PROBLEM_FLOPS), plus a fixed cost per call. Terms: the 36 GEMMs
# per block at a rate that falls for few input channels (thin GEMMs); the transforms and the
# channel-last copies at a time per (tile, channel) they touch (memory traffic, mostly); the
# kernel transform per transformed value; the kernel gradient's partial sums (a store and an add
# per element); the transformed kernel read again by every block once it no longer fits in L2
# (blocks never span two images, so 7x7 images with 512 channels read 36 MiB per 4 tiles).
# Fitted on the development machine (Xeon, AVX-512, one thread) on 12 shapes from 3 to 512
# channels and 7x7 to 224x224 images: within ~30% on most, 50% pessimistic at worst.
GEMM_FLOPS_PER_S = {"float32": 130e9, "float64": 65e9}
TILE_CHANNEL_S = {"float32": 13e-9, "float64": 26e-9}
KERNEL_VALUE_S = 0.65e-9        # per transformed value, vectorised over 16 kernels (was 3e-9)
PARTIAL_VALUE_S = 1e-9
L2_BYTES = 2 * 2**20            # a transformed kernel larger than this streams in for every block
STAGED_ABOVE_U_BYTES = L2_BYTES  # ... so above it, the staged schedule may read it once per wave
WAVE_BYTES = 16 * 2**20         # V and M of one wave of the staged schedule (within L3)
# The staged pass's kernel blocks (forward_kernel_blocks): output channels a block (fewer where
# that leaves under two blocks a core, or MIN_ITEMS; the GEMM's register tiles take up to 4
# vectors of them at a time) and input channels a chunk of transformed kernel (36 x 64 x 64
# float32 values: 590 KB, in L2 with the GEMMs' slice of V), both rounded up to the vector
KERNEL_BLOCK_CHANNELS = 64
KERNEL_CHUNK_CHANNELS = 64
# a transformed value there: 0.19-0.21 ns in float32 on ResNet-18's 256- and 512-channel layers
# (Xeon, AVX-512, one thread); float32's 0.17 and float64's 0.3 (half the values a vector) put
# the chooser sweep's rows of those layers (2 threads) on the faster of winograd and blocked at
# AVX-512 and AVX2 alike (0.2 / 0.2 picked blocked for float32 at AVX2 at 1.25x, 0.2 / 0.4 for
# float64 at AVX2 at 1.3-1.9x: the levels' calibrations scale both algorithms apart)
KERNEL_BLOCK_VALUE_S = {"float32": 0.17e-9, "float64": 0.3e-9}
# The kernel blocks run where they move at most this many times the position GEMMs' bytes, by
# vector width in bytes (their GEMMs are thinner, a chunk of input channels each, and V and M
# are read again by every block and chunk). Both schedules timed on 3x3 layers of 128-384
# channels, batch 1-14, 0.03-2.33 times the bytes (Xeon, 2 threads, forward, float32;
# bench/winograd_schedules.py; bench/RESULTS.md, eighteenth session): at AVX-512 the blocks took
# 0.57-1.0 of the time up to 1.34 times the bytes (one run of 1.21 read 1.19) and 0.9-1.5 above;
# at AVX2 0.46-1.05 up to 2.33 times (one layer at 1.64 read 1.15); at the SSE2 baseline
# 0.6-1.02 up to 2.25. (One 0.75 for every level, before, kept 128 channels on 28x28 at batch 1
# on the position GEMMs: 0.74-0.84x the time now at AVX2.)
KERNEL_BLOCKS_BYTE_RATIO = {64: 1.35, 32: 2.5, 16: 2.5}
# The staged kernel gradient's GEMMs run on fastconv's register tiles where a position's dU is
# at most this (BLAS packs its thin GEMMs: a fifth of C3D's 64 -> 128 layer), on BLAS above
# (ResNet-18's 256- and 512-channel layers ran 5-15% slower on the register tiles)
STAGED_OWN_GEMM_BYTES = 1 << 17
U_BYTES_PER_S = 25e9
# A value of V or M one core reads after another wrote it (its line fetched from the other
# core's cache): the kernel blocks' share of the tiles' V and M on ResNet-18's 128-channel
# 28x28 layer at batch 1 (2 threads) made its input transform 2x slower a tile than on one
# thread; taking it as 0.5 ns a byte, the tile parts (_tile_parts) that avoid it measured 0.75x
# the time there and the rule leaves the 256-channel layers (1.09-1.16x) on the blocks.
CROSS_CORE_BYTE_S = 0.5e-9
# Past this much transformed kernel (ResNet-18's 512 channels: 37.7 MB) U goes to memory and
# back: the transform writes it through its staging copy (src/_winograd.pyx,
# STAGE_ABOVE_BYTES) and the GEMMs read it (the kernel gradient: its GEMMs write dU, the
# untransform reads it). Those layers measured 1.7-2.2x the model without these passes (every
# operation, batch 1 and 8, AVX-512 and AVX2; Xeon, 2 threads), and at AVX2 their forward and
# input gradient at batch 8 went to Winograd at 1.2-1.4x blocked's time. Passes over U at
# U_BYTES_PER_S, (forward and input gradient, kernel gradient): 6 and 3 close about two thirds
# of the gap (the kernel gradient's Winograd is the fastest there, by 1.3x at both levels).
U_IN_MEMORY_BYTES = 16 << 20
U_MEMORY_PASSES = (6, 3)
# A call's fixed cost: 25-36 us measured on a 16-channel 8x8 layer (the three operations; 2-core
# Xeon, AVX-512) once plans and plane lists were kept per problem (plan_of, _planes); 40 us
# of model before, when each call rebuilt them (66-74 us measured)
CALL_OVERHEAD_S = 15e-6
PARALLEL_EFFICIENCY = 0.9


def _pad(n, lanes):
    return -(-n // lanes) * lanes


def _geometry_reason(spec):
    if spec.ndim < 2 or spec.kernel_size[1:] != (3, 3):
        return "it needs a 3x3 kernel (or d x 3 x 3 in 3-D)"
    if spec.stride[1:] != (1, 1):
        return f"it needs stride 1 along height and width, got {spec.stride[3 - spec.ndim:]}"
    if spec.dilation[1:] != (1, 1):
        return f"it needs dilation 1, got {spec.dilation[3 - spec.ndim:]}"
    if spec.groups != 1:
        return f"it needs groups=1, got groups={spec.groups}"
    return None


def _balanced_rows(R, th, per_row_block):
    """R, or fewer tile rows an item where ceil(th / R) x per_row_block items, few of them,
    split unevenly among the machine's cores: 5 items of 3 rows left one of two cores idle for
    a fifth of ResNet-18's 64-channel 56x56 layer at batch 1 (7 of 2 rows: 0.90x the time at
    2 threads, 1.02x at 1). A plan's rows never depend on the thread setting."""
    cores = _config.planning_threads()
    while R > 1 and cores > 1:
        items = -(-th // R) * per_row_block
        if items >= BALANCED_ITEMS * cores or -(-items // cores) * cores <= UNEVEN * items:
            break
        R = -(-th // -(-th // (R - 1)))
    return R


def _staged_wins(staged_bytes, blocks_bytes):
    """The staged schedule moves no more bytes than the blocks (a test forces it here)."""
    return staged_bytes <= blocks_bytes


def _kernel_blocks_win(blocks_bytes, positions_bytes):
    """The staged pass's kernel blocks move few enough bytes against its position GEMMs, for the
    vector width in use (tests force either here; KERNEL_BLOCKS_BYTE_RATIO says why)."""
    ratio = KERNEL_BLOCKS_BYTE_RATIO.get(_winograd.lanes(1), KERNEL_BLOCKS_BYTE_RATIO[32])
    return blocks_bytes <= ratio * positions_bytes


class _Plan(_scratch.PlanWorkspace):
    """Planes, tiling, scratch, parts and thread count of one problem and operation."""

    SCRATCH = "winograd.work"

    def __init__(self, spec, op):
        self.op = op
        itemsize = spec.dtype.itemsize
        lanes = _winograd.lanes(itemsize)
        (_, ih, iw), (_, oh, ow) = spec.input_size, spec.output_size
        (_, ph, pw) = spec.pad_low
        if op == "grad_input":      # the forward pass from gy to gx, "padding" 2 - p
            cin, cout, read, written = spec.out_channels, spec.in_channels, (oh, ow), (ih, iw)
            off = (2 - ph, 2 - pw)
        else:
            cin, cout, read, written = spec.in_channels, spec.out_channels, (ih, iw), (oh, ow)
            off = (ph, pw)
        self.cin, self.cout = cin, cout
        self.kd = spec.kernel_size[0]       # depth taps: each reads its planes, U of its own
        CP, KP = _pad(max(cin, 1), lanes), _pad(max(cout, 1), lanes)   # 0 channels: explain
        self.KP = KP
        th, tw = -(-written[0] // 4), -(-written[1] // 4)
        depth = spec.input_size[0] if op == "grad_input" else spec.output_size[0]
        self.planes = spec.batch * depth
        self.tiles = self.planes * th * tw
        gemm_flops = 2 * POSITIONS * self.tiles * cin * KP
        per_tile = POSITIONS * (CP + 2 * KP if op == "grad_kernel" else CP + KP) * itemsize
        self.u_elements = self.kd * POSITIONS * max(cin, 1) * KP
        limit = _config.get_workspace_limit() // itemsize
        target = max(MIN_TILES, min(MAX_TILES, BLOCK_BYTES // per_tile))
        if self.u_elements * itemsize > L2_BYTES:   # U streams in per block: amortise it
            target = max(target, min(MAX_TILES, cin))
        target = max(1, min(target, -(-self.tiles // MIN_ITEMS)))   # work for a few threads
        while True:
            Cw = min(tw, target)
            Cw = -(-tw // -(-tw // Cw))
            R = max(1, min(th, target // Cw))
            R = _balanced_rows(-(-th // -(-th // R)), th, -(-tw // Cw) * self.planes)
            P = 1                                   # small planes: blocks of whole planes
            if R == th and Cw == tw and th * tw < target and self.planes > 1:
                P = min(self.planes, target // (th * tw))
                P = -(-self.planes // -(-self.planes // P))
            tn = P * R * Cw
            pad = POSITIONS * 64 // itemsize        # the planes' gaps (WG_PLANE)
            size1 = max((4 * R + 2) * (4 * Cw + 2) * CP, 16 * R * Cw * KP,
                        0 if op == "grad_kernel" else POSITIONS * tn * KP + pad)
            size2 = max(POSITIONS * tn * CP + pad, 16 * R * Cw * KP)
            size3 = POSITIONS * tn * KP + pad if op == "grad_kernel" else 0
            per_thread = size1 + size2 + size3
            self.items = -(-self.planes // P) * -(-th // R) * -(-tw // Cw)
            if op == "grad_kernel":     # the sum dU and its partial sums
                self.parts = min(_parts(gemm_flops, self.u_elements), self.items,
                                 max(1, (limit - per_thread) // self.u_elements - 1))
                fixed = (self.parts + 1) * self.u_elements
            else:                       # the transformed kernel U
                self.parts = 0
                fixed = self.u_elements
            if fixed + per_thread <= limit or tn == 1:
                break
            target = max(1, min(target, tn) // 2)
        self.tiling = (cin, cout, CP, KP, read[0], read[1], written[0], written[1], off[0], off[1],
                       math.prod(spec.input_size if op != "grad_input" else spec.output_size),
                       math.prod(spec.output_size if op != "grad_input" else spec.input_size),
                       R, Cw, P, size1, size2, size3)
        self.per_thread = per_thread
        self.fixed = fixed
        self.staged = False
        self.kernel_blocks = None       # (width, chunk) where the staged pass runs them
        self.tile_parts, self.tile_parts_saving = 1, 0.0    # _tile_parts
        u_bytes = self.u_elements * itemsize
        self.traffic = u_bytes * (self.items if u_bytes > L2_BYTES else 1)     # U's reads
        if u_bytes > STAGED_ABOVE_U_BYTES or self.kd > 1:
            self._stage(spec, th, tw, limit)
        self.feasible = self.kd == 1 or self.staged     # the blocks take one depth tap only
        room = limit - self.fixed
        self.threads = max(1, min(_config.get_num_threads(),
                                  room // self.per_thread if room > 0 else 1))

    def _stage(self, spec, th, tw, limit):
        """The staged schedule (src/_winograd.pyx): items of R whole tile rows of one plane,
        waves of `wave_items` items whose V and M stay within WAVE_BYTES. Taken if one wave of
        one item fits the workspace limit and it moves fewer bytes than the blocks: U once per
        wave, V and M written and read once more each, against U once per block."""
        itemsize = spec.dtype.itemsize
        lanes = _winograd.lanes(itemsize)
        CP, KP = _pad(max(self.cin, 1), lanes), self.KP
        R = th
        while R > 1 and ((4 * R + 2) * (4 * tw + 2) * CP * itemsize > BLOCK_BYTES
                         or self.planes * -(-th // R) < MIN_ITEMS):
            R = -(-R // 2)
        R = -(-th // -(-th // R))
        items = self.planes * -(-th // R)
        per_tile = POSITIONS * (CP + KP)
        wave_items = max(1, WAVE_BYTES // (itemsize * per_tile * R * tw))
        pad = POSITIONS * 64 // itemsize
        size1 = max((4 * R + 2) * (4 * tw + 2) * CP, 16 * R * tw * KP)
        while True:
            wave_items = -(-items // -(-items // min(wave_items, items)))     # even waves
            tiles = wave_items * R * tw
            v_size = POSITIONS * tiles * CP + pad
            fixed = self.u_elements + v_size + POSITIONS * tiles * KP + pad
            if fixed + size1 <= limit:
                break
            if wave_items == 1:
                return                                  # the fused schedule's blocks are smaller
            wave_items = -(-wave_items // 2)
        waves = -(-items // wave_items)
        traffic = (waves * self.u_elements + (self.kd + 1) * self.tiles * per_tile) * itemsize
        if self.kd == 1 and not _staged_wins(traffic, self.traffic):
            return
        self.staged, self.traffic = True, traffic
        self.tiling = self.tiling[:12] + (R, tw, 1, size1, 0, 0)
        self.staged_rows = (th, tw, R)
        self.items, self.wave_items, self.v_size, self.waves = items, wave_items, v_size, waves
        self.parts = 0
        self.per_thread, self.fixed = size1, fixed
        if self.op != "grad_kernel" and self.kd == 1 and waves == 1:
            self._kernel_blocks(lanes, itemsize, limit)

    def _kernel_blocks(self, lanes, itemsize, limit):
        """The staged pass's GEMMs by blocks of output channels, each transforming its block of
        U a chunk of input channels at a time (src/_winograd.pyx, forward_kernel_blocks): U is
        never whole (nor in the workspace), and V is read once a block."""
        # blocks enough for two a core (the machine's, not the thread setting: the sums are the
        # same whatever the width, but the plan is kept per problem)
        least = max(MIN_ITEMS, 2 * _config.planning_threads())
        width = min(_pad(KERNEL_BLOCK_CHANNELS, lanes), self.KP)
        while width > lanes and -(-self.KP // width) < least:
            width = _pad(width // 2, lanes)
        CP = _pad(max(self.cin, 1), lanes)
        chunk = min(CP, _pad(KERNEL_CHUNK_CHANNELS, lanes))     # V's channels in chunks of it
        pad = 64 // itemsize
        per_thread = max(self.per_thread, POSITIONS * (chunk * width + pad))
        v_size = POSITIONS * (self.tiles * _pad(CP, chunk) + pad)
        m_size = POSITIONS * (self.tiles * _pad(self.KP, width) + pad)
        fixed = v_size + m_size
        blocks = -(-self.KP // width)
        # V read by every block, M read and written by every chunk; against U written and read
        # back where it goes to memory (the position GEMMs' passes, as `cost` counts them)
        traffic = (blocks * v_size + 2 * -(-CP // chunk) * m_size) * itemsize
        u_bytes = self.u_elements * itemsize
        positions = self.traffic + (U_MEMORY_PASSES[0] * u_bytes
                                    if u_bytes > U_IN_MEMORY_BYTES else 0)
        if fixed + per_thread > limit or not _kernel_blocks_win(traffic, positions):
            return
        self.kernel_blocks, self.blocks, self.traffic = (width, chunk), blocks, traffic
        self.per_thread, self.fixed, self.v_size = per_thread, fixed, v_size
        self.tile_parts, self.tile_parts_saving = self._tile_parts(itemsize, v_size + m_size)

    def _tile_parts(self, itemsize, vm_size):
        """(parts, seconds saved): the kernel blocks' work items as parts of the tiles, one a
        core, each running every block on its own tiles (forward_kernel_blocks), where that
        saves time: each part transforms all of U (parts - 1 copies of that work more), but
        no core reads V or M that another wrote (CROSS_CORE_BYTE_S a byte, (parts - 1) / parts
        of them), and a part's V and M with the thread's scratch stay within L2. The parts
        change which thread computes a tile, never a sum: the same bits either way."""
        parts = min(_config.planning_threads(), self.items)
        if parts < 2:
            return 1, 0.0
        # a part is a run of whole items (tile rows): their tiles must split evenly too (5 rows
        # of 25 tiles as 2 + 3 took what the blocks did)
        bounds = [self.items * q // parts for q in range(parts + 1)]    # part_start's
        largest = max(_item_tiles(self, a, b) for a, b in zip(bounds, bounds[1:]))
        if largest * parts > UNEVEN * self.tiles:
            return 1, 0.0
        name = "float32" if itemsize == 4 else "float64"
        copies = (parts - 1) * self.u_elements * KERNEL_BLOCK_VALUE_S[name]
        shared = vm_size * itemsize * (parts - 1) / parts * CROSS_CORE_BYTE_S
        part_bytes = (vm_size / parts + self.per_thread) * itemsize
        if part_bytes > L2_BYTES or copies >= shared:
            return 1, 0.0
        return parts, shared - copies


def _item_tiles(plan, a, b):
    """Tiles of the staged items a .. b - 1 (R tile rows of a plane each, the last fewer)."""
    th, tw, R = plan.staged_rows
    def start(item):
        return (item // -(-th // R)) * th * tw + min((item % -(-th // R)) * R, th) * tw
    return start(b) - start(a)


def supports(spec, op):
    if spec.ndim == 1:
        return winograd1d.supports(spec, op)
    reason = _geometry_reason(spec)
    if reason is not None:
        return False, reason
    plan = plan_of(spec, op)
    if not plan.feasible:
        return False, (f"a kernel {plan.kd} deep needs the staged schedule, whose transformed "
                       f"kernels and one wave exceed the workspace limit of "
                       f"{_config.get_workspace_limit()} bytes")
    if not plan.fits_one_thread(spec):
        return False, (f"the transformed kernel and one block of one tile need "
                       f"{(plan.fixed + plan.per_thread) * spec.dtype.itemsize} bytes, above the "
                       f"workspace limit of {_config.get_workspace_limit()} bytes")
    if max(plan.cin, plan.KP) > BLAS_INT_MAX:
        return False, "a matrix dimension exceeds the 32-bit BLAS integer range"
    return True, ""


def layout(spec, op):
    """How the plan runs, for explain: the schedule and its work items."""
    if spec.ndim == 1:
        return winograd1d.layout(spec, op)
    plan = plan_of(spec, op)
    if plan.kernel_blocks:
        parts = (f", each run by {plan.tile_parts} parts of the tiles"
                 if plan.tile_parts > 1 else "")
        return (f"staged: 1 wave of {plan.tiles} tiles, {plan.blocks} blocks of "
                f"{plan.kernel_blocks[0]} output channels{parts}")
    if plan.staged:
        waves = f"{plan.waves} wave{'s' if plan.waves > 1 else ''}"
        return f"staged: {waves} of {plan.tiles} tiles, {plan.kd} depth tap(s)"
    return f"blocks: {plan.items} of {plan.tiles} tiles"


def workspace(spec, op):
    if spec.ndim == 1:
        return winograd1d.workspace(spec, op)
    return plan_of(spec, op).workspace_elements * spec.dtype.itemsize


# About 10 us of Python a call before (with the plane lists below, on a 0.1-1 ms layer); the
# schedule's thresholds are part of the key, so that a test which changes them plans anew.
plan_of = per_problem(_Plan, lambda: (STAGED_ABOVE_U_BYTES, WAVE_BYTES, _staged_wins,
                                      _kernel_blocks_win, KERNEL_BLOCK_CHANNELS,
                                      KERNEL_CHUNK_CHANNELS))


def cost(spec, op):
    if spec.ndim == 1:
        return winograd1d.cost(spec, op, GEMM_FLOPS_PER_S[spec.dtype.name], CALL_OVERHEAD_S,
                               PARALLEL_EFFICIENCY, PARTIAL_VALUE_S)
    plan = plan_of(spec, op)
    name = spec.dtype.name
    lanes = _winograd.lanes(spec.dtype.itemsize)
    # thin GEMMs (few input channels) run slowly; a deep kernel's taps add into the same M,
    # which its measured times (C3D's first layer: 3 channels x 3 taps) follow as one reduction
    efficiency = min(1.0, math.sqrt(max(plan.kd * plan.cin, 1) / 32))
    gemm = (2 * POSITIONS * plan.kd * plan.tiles * plan.cin * plan.KP
            / (GEMM_FLOPS_PER_S[name] * efficiency))
    channels = plan.kd * _pad(plan.cin, lanes) + plan.KP    # the x (or gy) side, the output side
    transforms = plan.tiles * channels * TILE_CHANNEL_S[name]
    kernel = plan.u_elements * (KERNEL_VALUE_S + plan.parts * PARTIAL_VALUE_S)
    if plan.kernel_blocks:                  # U transformed in cache, never written out
        kernel = plan.u_elements * KERNEL_BLOCK_VALUE_S[name]
    if plan.traffic > L2_BYTES:             # U (and the staged schedule's V and M) streamed
        kernel += plan.traffic / U_BYTES_PER_S
    u_bytes = plan.u_elements * spec.dtype.itemsize
    if u_bytes > U_IN_MEMORY_BYTES and not plan.kernel_blocks:      # more passes over U
        kernel += U_MEMORY_PASSES[op == "grad_kernel"] * u_bytes / U_BYTES_PER_S
    threads = _config.model_threads(spec)
    work_items = max(plan.items, POSITIONS) if plan.staged else plan.items   # staged: GEMMs
    if plan.kernel_blocks:
        work_items = plan.blocks
    speedup = 1 + (min(threads, work_items) - 1) * PARALLEL_EFFICIENCY
    # tile parts: the blocks' time (its fit holds the cores' shared V and M) less what they save
    return CALL_OVERHEAD_S + (gemm + transforms + kernel - plan.tile_parts_saving) / speedup


def _staged_own_gemm(plan, itemsize):
    """Whether the staged kernel gradient's position GEMMs run on fastconv's register tiles:
    where a position's dU is small, BLAS's packing of its thin GEMMs costs more than it saves."""
    return plan.cin * plan.KP * itemsize <= STAGED_OWN_GEMM_BYTES


@functools.lru_cache(maxsize=256)
def _planes(spec, op):
    """Element offsets of the planes each depth tap reads (kd x written planes, flattened; -1:
    all padding) and of each written plane."""
    N, C, K = spec.batch, spec.in_channels, spec.out_channels
    D, Do = spec.input_size[0], spec.output_size[0]
    x_plane, y_plane = math.prod(spec.input_size[1:]), math.prod(spec.output_size[1:])
    s, p, dil = spec.stride[0], spec.pad_low[0], spec.dilation[0]
    taps = np.arange(spec.kernel_size[0])[:, None, None]
    n = np.arange(N)[None, :, None]
    if op == "grad_input":      # gx plane (n, d) reads gy plane (d + p - tap * dil) / s, if any
        d = np.arange(D)[None, None, :]
        t = d + p - taps * dil
        o = t // s
        valid = (t >= 0) & (t % s == 0) & (o < Do)
        src = np.where(valid, n * K * Do * y_plane + o * y_plane, -1)
        dst = n * C * D * x_plane + d * x_plane
    else:                       # y (or gy) plane (n, o) reads x plane o * s - p + tap * dil
        o = np.arange(Do)[None, None, :]
        d = o * s - p + taps * dil
        src = np.where((d >= 0) & (d < D), n * C * D * x_plane + d * x_plane, -1)
        dst = n * K * Do * y_plane + o * y_plane
    shape = (len(taps), N, src.shape[2])
    planes = (np.ascontiguousarray(np.broadcast_to(src, shape).ravel(), np.intp),
              np.ascontiguousarray(np.broadcast_to(dst[0], shape[1:]).ravel(), np.intp))
    for a in planes:            # kept per problem (lru_cache): nobody may write them
        a.flags.writeable = False
    return planes


@functools.lru_cache(maxsize=256)
def _padding_only(spec, kd):
    """Which of gy's depth planes read only padding (no depth tap reaches the input), as a mask
    over the output's depth, or None where there is none (every 2-D problem): kept per problem,
    since the mask's NumPy steps took 20-30 us of a kernel-gradient call after a large kernel had
    flushed the caches."""
    src, _ = _planes(spec, "grad_kernel")
    mask = (src.reshape(kd, spec.batch, -1) < 0).all(axis=0)[0]
    mask.flags.writeable = False
    return mask if mask.any() else None


def _transformed_kernel(w, flipped, KP, threads):
    """U[tap][xi][cin][KP] = G g G^T (src/_winograd_kernel_transforms.h) for each depth tap's
    3x3 kernels; flipped: the input gradient's, rotated by 180 degrees with the channels
    swapped. Columns past the output channels are 0. None where a value of w is not finite
    (the transform checks the values it reads)."""
    K, C = w.shape[:2]
    taps, rows = math.prod(w.shape[2:]) // 9, (C if flipped else K)
    u = _scratch.empty("winograd.u", taps * POSITIONS * KP * (K if flipped else C), w.dtype)
    if KP > rows:
        u.reshape(-1, KP)[:, rows:] = 0
    finite = _winograd.kernel_transform(np.ascontiguousarray(w).reshape(-1), u, K, C, KP,
                                        flipped, taps, threads)
    return u if finite else None


def _run_pass(spec, op, a, w):
    """forward (a = x) or grad_input (a = gy); None if a value written was not finite."""
    if spec.ndim == 1:
        return winograd1d.run_pass(spec, op, a, w)
    plan = plan_of(spec, op)
    shape = spec.x_shape if op == "grad_input" else spec.y_shape
    out = _aligned.empty(shape, spec.dtype)
    src, dst = _planes(spec, op)
    flags = np.zeros(plan.items, np.uint8)      # the kernels' flags: whether they set one
    if plan.kernel_blocks:
        vm = _scratch.empty("winograd.vm", plan.fixed, spec.dtype)
        K, C = w.shape[:2]
        bad = _winograd.forward_blocks_of_kernel(
            plan.tiling, a.reshape(-1), np.ascontiguousarray(w).reshape(-1), op == "grad_input",
            K, C, out.reshape(-1), src, dst, vm, plan.v_size, plan.work(spec.dtype),
            plan.per_thread, flags, *plan.kernel_blocks, plan.threads,
            max(1, min(plan.tile_parts, plan.threads)))
        return None if bad else out
    u = _transformed_kernel(w, op == "grad_input", plan.KP, plan.threads)
    if u is None:
        return None
    if plan.staged:         # fastconv's own GEMMs (src/_winograd.pyx): no BLAS to hold
        vm = _scratch.empty("winograd.vm", plan.fixed - plan.u_elements, spec.dtype)
        bad = _winograd.forward_waves(plan.tiling, a.reshape(-1), u, out.reshape(-1), src, dst,
                                      vm, plan.v_size, plan.work(spec.dtype), flags,
                                      plan.wave_items, plan.threads)
    else:
        bad = _winograd.forward(plan.tiling, a.reshape(-1), u, out.reshape(-1), src, dst,
                                plan.work(spec.dtype), flags, plan.threads)
    return None if bad else out


def _checked_pass(spec, op, a, w):
    """_run_pass where the kernel is finite (None elsewhere). In 2-D no pass of its own checks
    the kernel: the whole transform checks the values it reads (_transformed_kernel), and kernel
    blocks rely on their outputs, since a value of U that is not finite makes every M it
    multiplies (inf x 0 is NaN) and so an output of each tile, which the output transform
    reports. An isfinite pass over w took 115-120 us a call of ResNet-18's 256-channel 3x3
    (2.4 MB), 4% of its forward at batch 8."""
    if spec.ndim > 1:
        return _run_pass(spec, op, a, w)
    return _run_pass(spec, op, a, w) if _finite.all_finite(w) else None


def forward(spec, x, w):
    if spec.batch == 0 or spec.out_channels == 0:
        return _aligned.zeros(spec.y_shape, spec.dtype)
    if spec.ndim > 1:       # _checked_pass's, one call less (each costs a few us, cold)
        return _run_pass(spec, "forward", x, w)
    return _checked_pass(spec, "forward", x, w)


def grad_input(spec, gy, w):
    if spec.batch == 0 or spec.in_channels == 0:
        return _aligned.zeros(spec.x_shape, spec.dtype)
    return _checked_pass(spec, "grad_input", gy, w)


def grad_kernel(spec, x, gy):
    if spec.batch == 0:
        return _aligned.zeros(spec.w_shape, spec.dtype)
    if spec.ndim == 1:
        return winograd1d.grad_kernel(spec, x, gy)
    plan = plan_of(spec, "grad_kernel")
    src, gsrc = _planes(spec, "grad_kernel")
    padding_only = _padding_only(spec, plan.kd)
    if padding_only is not None and not _finite.all_finite(
            gy.reshape(spec.batch, spec.out_channels, spec.output_size[0], -1)[
                :, :, padding_only]):   # gy's planes that read only padding are not summed
        return None
    du = _scratch.empty("winograd.du", plan.u_elements, spec.dtype)
    own = not plan.staged or _staged_own_gemm(plan, spec.dtype.itemsize)
    if plan.staged:         # dU KP x cin from BLAS's GEMMs, cin x KP from our own
        vm = _scratch.empty("winograd.vm", plan.fixed - plan.u_elements, spec.dtype)
        # fastconv's own GEMMs call no BLAS to hold at one thread (40 us of a call, cold)
        with contextlib.nullcontext() if own else _config.blas_single_threaded():
            _winograd.grad_kernel_waves(plan.tiling, x.reshape(-1), gy.reshape(-1), du, src,
                                        gsrc, vm, plan.v_size, plan.work(spec.dtype),
                                        plan.wave_items, own, plan.threads)
    else:                   # fastconv's register tiles, dU cin x KP
        _winograd.grad_kernel(plan.tiling, x.reshape(-1), gy.reshape(-1), du, src, gsrc,
                              plan.work(spec.dtype),
                              _scratch.empty("winograd.partials", plan.parts * plan.u_elements,
                                             spec.dtype),
                              plan.parts, plan.threads)
    gw = _aligned.empty(spec.w_shape, spec.dtype)     # each depth tap's 3x3 kernels, in place
    _winograd.kernel_untransform(du, gw.reshape(-1), plan.cout, plan.cin, plan.KP, own,
                                 plan.kd, plan.threads)
    return gw
