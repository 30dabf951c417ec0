"""im2col + GEMM: each thread packs a chunk of the column matrix and multiplies it on BLAS.

A chunk is `width` output positions of one sample, so a thread's column buffer (R rows x width)
stays in cache; a 1x1 kernel with stride 1 and no padding needs no buffer at all (the input is the
column matrix). Everything that changes a result's rounding -- the chunk width, the channel blocks
of the input gradient, the parts of the kernel gradient's sum -- depends on the problem and the
workspace limit only, never on the thread count; the limit is kept by running fewer threads.
"""
import contextlib
import math
import os

import numpy as np

from .. import _aligned, _config
from ._plan_cache import per_problem
from .._lazy import LazyModule

_im2col = LazyModule("fastconv._im2col")     # cimports SciPy's BLAS: loaded on first use

NAME = "im2col"
WRITES_OUT = True       # its operations take out= (the lifted result buffer) and fill it

CHUNK_COLUMNS = 256     # output positions per chunk: R x 256 values stay in a core's L2
CHUNK_BYTES = 1 << 20   # ... or more positions, up to MAX_CHUNK_COLUMNS, while R x width fits in
MAX_CHUNK_COLUMNS = 1024  # 1 MiB: wider GEMMs run faster (strided 64->128 3x3: -5% per op)
BLOCK_ROWS = 576        # input-gradient rows (channels x taps) per work item
MAX_PARTS = 16          # partial sums of the kernel gradient
SPLIT_ITEMS = 8         # fewer work items than this (a small batch of small maps: ResNet's last
                        # stage at batch 1 is one chunk): forward splits the output channels into
KBLOCK_ROWS = 128       # blocks of at least this many rows, grad_kernel the column matrix's rows
SLAB_ROWS = 64          # into slabs of at least this many. Both counts come from the problem,
                        # never from the thread count, so results do not change with it.
GRAD_INPUT_ITEMS = 4    # grad_input splits its channel blocks below this many items, into
GRAD_INPUT_BLOCK_ROWS = 64  # blocks of at least this many rows (thinner GEMMs cost more), and
                        # then the positions (_position_parts: wav2vec's single-channel first
                        # layer at batch 1 was one item, one thread)
GRADIENT_BLOCK_BYTES = 1 << 19  # grad_kernel's slabs keep a block of the gradient this small:
                        # its GEMMs add into it once per chunk (ResNet's 512-channel 3x3 at
                        # batch 8: 49-position chunks into a 9 MB gradient ran at 47 GFLOP/s)
# The input gradient's GEMMs (a channel block x taps rows, the output channels deep) run on
# fastconv's own kernel, reading gy in place, when they have at most ROWS_GEMM_MOST rows, at
# least ROWS_GEMM_DEPTH output channels and ROWS_GEMM_VALUES weights (float32, AVX2 and up).
# Against the BLAS in one process (FASTCONV_IM2COL_GEMM toggled, 2 threads, Intel Xeon AVX-512):
# wav2vec's 10 rows x 256 deep 0.58-0.70x the time (the BLAS ran them at 41 GFLOP/s), C3D's
# first layer (81 x 32) 0.64x, 27-98 rows 64-128 deep 0.81-0.90x; 9-27 rows at most 32 deep
# 1.0-1.17x (a single-channel image's outer product), 400-576 rows 1.16-1.63x.
ROWS_GEMM_MOST, ROWS_GEMM_DEPTH, ROWS_GEMM_VALUES = 128, 32, 1024
BLAS_INT_MAX = 2**31 - 1
# Cost model (shipped defaults; fastconv.calibrate() fits a scale and an overhead on top): the
# GEMMs at GEMM_FLOPS_PER_S per thread, the packing (or scattering) of the column matrix at
# BYTES_PER_S, and a fixed cost per call (the BLAS thread switch of blas_single_threaded).
# Least-squares fit on the log of the time of 18 shapes x 3 operations in float32 on the
# development machine (2-core AVX-512 Xeon, one thread; single-channel images to 256 channels,
# kernels 1 to 64, 1-D and 2-D): rms log error 0.35 (the previous rate-by-thinness model: 0.68);
# worst are thin GEMMs under a large kernel (largek15-like: 2-4x slower than predicted, where fft
# wins anyway) and single-channel images (1.7-2x). float64 runs the GEMM at half the rate.
GEMM_FLOPS_PER_S = {"float32": 85e9, "float64": 42e9}
BYTES_PER_S = 25e9
UNPHASE_S = 0.8e-9  # per value a strided input gradient puts back in order (one thread)
# A call's fixed cost: 24-29 us measured on 4-16-channel 8x8 and 1-D layers (2-core Xeon, AVX-512)
# with plans kept per problem (plan_of) and the call memo; 40 us before them
CALL_OVERHEAD_S = 20e-6
GEMM_CALL_S = 0.6e-6        # one BLAS call on a chunk and group: a depthwise layer of 960 groups
                            # makes thousands of tiny GEMMs (MobileNetV2, batch 8: 7,680 calls in
                            # a 5 ms forward the rest of the model put at 1 ms; 0.3-1 us a call
                            # on the chooser sweep's grouped layers, AMD EPYC Zen 4)
PARALLEL_EFFICIENCY = 0.9   # each extra thread adds this much of one
KERNEL_GRADIENT_ROWS = 16   # the kernel gradient's GEMM runs at sqrt(rows/16) of the rate below
                            # 16 rows (C x taps). It was 64, fitted on vgg_first (27 rows) and
                            # mnist5x5 (25); on the chooser sweep's 360 kernel gradients (AMD EPYC
                            # Zen 4, AVX-512 and AVX2) 16 halves the model's picks above 1.5x
                            # (16 -> 6), 90th percentile error 2.28x -> 2.00x. rows/16 put r19's
                            # 5-row GEMM 2.4x too slow (direct picked at 2.1x); the square root
                            # moves r19 to im2col and no other pick of the sweep's at AVX-512
THIN_COLUMNS = 196          # the input gradient's GEMMs run at (columns / 196) ** 0.25 of the
                            # rate below 196 columns (a chunk's positions): ResNet-18's layer4
                            # (49 positions a sample) measured 1.37-1.44x the model at batch 1
                            # and 8, MobileNetV2's 320->1280 1.20-1.29x, 196-784 positions
                            # 0.94-0.99x (chooser sweep, 2-core Xeon, AVX-512): auto ran
                            # layer4's strided input gradient on im2col at 1.2-1.3x blocked's time


PANEL_ROWS = 8      # src/_im2col.pyx: rows packed at a time on their way into panels
# GI_PANELS: the input gradient on fastconv's own GEMM (grad_input_panels): W^T packed once per
# call, gy's chunks (whole samples on small maps, up to GI_PANEL_COLUMNS positions) packed into
# panels, col = W^T gy on the register tiles, then col2im. The BLAS's path (grad_input_blocks)
# packs W^T again for every GEMM, a sample's positions at a time: ResNet-18's layer4 3x3/2 at
# batch 8 (49 positions a sample) spent a quarter of its time in OpenBLAS's copy of A. Taken at
# AVX2 and AVX-512 where a group has at least (output channels, rows of a channel block,
# columns of a chunk) GI_PANEL_MIN and there are GRAD_INPUT_ITEMS items, on both dtypes.
# Against the BLAS's path in one process (2-core Xeon, 2 threads, the chooser sweep's layers):
# AVX-512 0.60-0.65x the time on ResNet-18's 7x7 layers at batch 8, 0.80-0.95x on most others;
# AVX2 0.82-0.97x; 1x1 kernels, LeNet's 16-deep layers, batch-1 7x7 maps (AVX2: 1.3x) and
# 72-row blocks (U-Net's 32-channel layer at batch 1) stay on the BLAS's path.
# FASTCONV_IM2COL_GI=panels or =blocks forces one (tests, benchmarks); FASTCONV_IM2COL_GEMM=blas
# keeps every GEMM on the BLAS.
GI_PANEL_COLUMNS = 512
GI_PANEL_MIN = (32, 128, 128)
# Forward runs on fastconv's own GEMM (src/_gemm_kernels.h) at AVX2 (level 1) and AVX-512 (2) for
# layers of at least (output channels per group, rows of the column matrix per group, columns of a
# chunk: the positions of as many samples as fit, up to the batch); elsewhere, and for a 1x1 layer
# whose maps are large enough for a GEMM a sample (the BLAS reads it in place; the packed GEMM would
# copy it), on the BLAS. A 1x1 layer on small maps takes the packed GEMM, whose chunks span samples:
# MobileNetV2's 320 -> 1280 on 7x7 maps at batch 8 ran 1.11-1.21 ms against the BLAS's 1.48-1.54
# (2-core Intel Xeon, AVX-512, 2 threads); its other 1x1 layers (56x56 to 112x112 maps) 1.6-1.8x
# slower on the packed GEMM than on the BLAS. Its register tile is 6 x 16 at AVX2, 12 x 32 at
# AVX-512. On the chooser sweep's layers (AMD EPYC Zen 4, 2 threads, float32, against OpenBLAS) it
# ran 0.70-0.97x the BLAS's time on the layers it takes; 1.05-1.3x on 7x7 maps, and at AVX-512 on
# LeNet's 6-16-channel layers, which the OpenBLAS kernel for AVX2 runs worse. float64 measured level
# with the BLAS (0.84-1.3x): it stays there. FASTCONV_IM2COL_GEMM=packed or =blas forces one
# (benchmarks).
PACKED_MIN = {1: (1, 1, 64), 2: (32, 64, 256)}
PACKED_SPLIT_COLUMNS = 128  # with too few chunks (a small batch: U-Net's 2x2/2 and 4x4/2 layers at
PACKED_KBLOCK_ROWS = 24     # batch 1 were one item, on one thread) the packed GEMM takes chunks
                            # of down to this many positions and blocks of this many channels
PACKED_GEMM_SPEEDUP = 1.12  # the cost model's GEMM rate on it: geomean 0.88x the BLAS's time on
                            # the 40 layers of the sweep it takes at AVX-512 (AMD EPYC Zen 4)


def _packed_gemm(spec):
    """Whether forward runs on fastconv's own GEMM (src/_gemm_kernels.h) rather than the BLAS."""
    choice = os.environ.get("FASTCONV_IM2COL_GEMM", "auto")
    if choice != "auto":
        return choice == "packed"
    least = PACKED_MIN.get(_im2col.kernel_level())
    positions = math.prod(spec.output_size)
    columns = positions * min(spec.batch, max(1, MAX_CHUNK_COLUMNS // max(positions, 1)))
    if least is None or spec.dtype != np.float32:
        return False
    # a 1x1 layer's BLAS reads x in place, a sample a GEMM: kept unless the samples' maps are
    # too small for that GEMM and the packed one's chunks take several samples
    if _pointwise(spec) and positions >= least[2]:
        return False
    return (spec.out_channels // spec.groups >= least[0]
            and spec.in_channels // spec.groups * math.prod(spec.kernel_size) >= least[1]
            and columns >= least[2])


def _pointwise(spec):
    return (math.prod(spec.kernel_size) == 1 and spec.stride == (1, 1, 1)
            and spec.pad_low == spec.pad_high == (0, 0, 0))


class _Plan:
    """Chunking and workspace of one problem and operation."""

    def __init__(self, spec, op, packed=None):
        """packed: forward on fastconv's own GEMM (default: where _packed_gemm says and its
        packed weights and panels fit in the workspace limit; the BLAS's plan otherwise)."""
        if packed is None:
            packed = op == "forward" and _packed_gemm(spec)
            if packed:
                self.__init__(spec, op, True)
                if self.workspace_elements * spec.dtype.itemsize <= _config.get_workspace_limit():
                    return
                packed = False
        self.packed = packed
        k_vol = math.prod(spec.kernel_size)
        positions = math.prod(spec.output_size)
        group_channels = spec.in_channels // spec.groups
        limit = _config.get_workspace_limit() // spec.dtype.itemsize
        blocks = max(1, -(-group_channels * k_vol // BLOCK_ROWS))     # 0 channels: one
        if op == "grad_input":
            blocks = _enough_blocks(blocks, spec.batch * spec.groups, group_channels * k_vol)
        self.block = -(-group_channels // blocks)
        self.position_parts = 1
        self.rows_gemm = False
        self.gemm_elements = 0
        self.phased = False     # (set below; the input gradient by panels never phases)
        self.gi_panels = op == "grad_input" and self._plan_gi_panels(spec, k_vol, limit)
        if self.gi_panels:
            return
        if op == "grad_input":
            self.position_parts = _position_parts(spec, spec.batch * spec.groups * blocks)
            self.rows_gemm = _rows_gemm(spec, self.block * k_vol)
        rows = {"forward": spec.in_channels * k_vol, "grad_kernel": spec.in_channels * k_vol,
                "grad_input": self.block * k_vol}[op]
        self.rows = 0 if _pointwise(spec) and not self.packed else rows
        columns = CHUNK_COLUMNS
        if self.rows:
            columns = max(columns, min(MAX_CHUNK_COLUMNS,
                                       CHUNK_BYTES // (self.rows * spec.dtype.itemsize)))
        width = min(positions, columns)
        if self.packed and spec.batch * spec.groups * -(-positions // width) < SPLIT_ITEMS:
            # few chunks: narrower ones (the packed GEMM's sums do not depend on the width)
            per_sample = -(-SPLIT_ITEMS // (spec.batch * spec.groups))
            width = max(min(width, PACKED_SPLIT_COLUMNS), -(-positions // per_sample))
        row = spec.output_size[2]
        if self.rows and width < positions and row <= width:
            width = _whole_rows(width, positions, row)
        self.samples = 1
        kg = spec.out_channels // spec.groups
        if self.packed and spec.batch > 1 and 2 * positions <= columns:
            # small maps: chunks of several whole samples, as many chunks as items need
            # (blocks of output channels make items too: ResNet's 512-channel 7x7 maps at
            # batch 8 run as 2 chunks of 4 samples x 4 blocks)
            blocks = max(1, kg // PACKED_KBLOCK_ROWS)
            chunks = max(-(-spec.batch // (columns // positions)),
                         min(spec.batch, -(-SPLIT_ITEMS // (spec.groups * blocks))))
            self.samples = -(-spec.batch // chunks)
            if self.samples > 1:    # a chunk is whole samples (src/_im2col.pyx, forward_panels:
                width = positions   # a width narrowed above for few chunks sized its buffer for
                                    # part of one, and the kernel wrote past it)
        self.parts = self.partial_elements = 0
        self.kblocks = self.slabs = 1
        chunks = spec.batch * -(-positions // width)
        if self.samples > 1:
            chunks = -(-spec.batch // self.samples)
        rows_g = group_channels * k_vol
        if op == "forward" and 0 < chunks * spec.groups < SPLIT_ITEMS:
            least = PACKED_KBLOCK_ROWS if self.packed else KBLOCK_ROWS
            self.kblocks = max(1, min(-(-SPLIT_ITEMS // (chunks * spec.groups)), kg // least))
        if op == "grad_kernel":
            # Slabs of the column matrix's rows keep each item's block of the gradient in cache
            # and need no partial sums; parts (partial sums over the chunks) fill the items left.
            most = max(1, rows_g // SLAB_ROWS)
            self.slabs = max(1, min(most, -(-kg * rows_g * spec.dtype.itemsize
                                            // GRADIENT_BLOCK_BYTES)))
            kernel_size = spec.out_channels * rows_g
            self.parts = max(1, min(MAX_PARTS, chunks,
                                    -(-MAX_PARTS // (self.slabs * spec.groups)),
                                    limit // (2 * max(kernel_size, 1))))
            if self.parts * spec.groups * self.slabs < SPLIT_ITEMS:
                self.slabs = max(self.slabs, min(most, -(-SPLIT_ITEMS // (self.parts * spec.groups))))
            if self.parts > 1:      # one part sums straight into the gradient
                self.partial_elements = self.parts * kernel_size
        # A stride along the width: the input's rows stored by phase of the stride make a tap's
        # values contiguous (copies, not gathers). forward/grad_kernel keep a phased copy of x;
        # grad_input sums by phase in gx itself and needs one row per thread to put it back.
        self.phased_elements = self.row_elements = 0
        # Chunks of whole rows move a stride of 2 fast enough (a constant step the compiler
        # vectorizes): no phasing then (strided forward: packing 1.7 -> 1.3 ms, col2im 3.0 -> 2.4).
        self.phased = spec.stride[2] > 1 and not _pointwise(spec)
        if spec.stride[2] == 2 and (width == positions or width % row == 0):
            self.phased = False
        if self.phased and op != "grad_input":
            self.phased_elements = spec.batch * spec.in_channels * math.prod(spec.input_size)
            if self.partial_elements + self.phased_elements + self.rows > limit:
                self.phased, self.phased_elements = False, 0
        row_tmp = spec.input_size[2] if self.phased and op == "grad_input" else 0
        room = limit - self.partial_elements - self.phased_elements
        self.threads = _config.get_num_threads()
        self.packed_w_elements = 0
        if self.packed:
            tile_rows, self.tile_cols = _im2col.tile_shape(spec.dtype.itemsize)
            self.packed_w_elements = spec.groups * -(-kg // tile_rows) * tile_rows * rows_g
            room -= self.packed_w_elements
            row_tmp = PANEL_ROWS * width    # pack_panels' rows on their way
        if self.kblocks > 1:        # every chunk packed once, into a buffer of its own
            self.width = width
            self.work_elements = chunks * self._chunk_elements(width)
            if self.work_elements <= room:
                self.row_elements = PANEL_ROWS * width * self.threads if self.packed else 0
                if self.work_elements + self.row_elements <= room:
                    return
            self.kblocks = 1
        if self.samples > 1 and self._chunk_elements(width) + row_tmp > room:
            self.samples = 1
        self.width = max(1, min(width, (room - row_tmp) // max(self.rows, 1)))
        if self.packed:
            row_tmp = PANEL_ROWS * self.width
        per_thread = self._chunk_elements(self.width)
        self.threads = max(1, min(self.threads,
                                  room // (per_thread + row_tmp) if per_thread else 1 << 30))
        self.row_elements = self.threads * row_tmp
        self.work_elements = self.threads * per_thread
        if self.rows_gemm:      # per thread: the block's weights in tile blocks, and a strip
            tile_rows, tile_cols = _im2col.tile_shape(spec.dtype.itemsize)
            kg = spec.out_channels // spec.groups
            self.gemm_elements = self.threads * kg * (
                -(-self.block * k_vol // tile_rows) * tile_rows + tile_cols)

    def _plan_gi_panels(self, spec, k_vol, limit):
        """Whether the input gradient runs on grad_input_panels (see GI_PANELS), and its plan:
        items of (whole samples, or one sample's chunks of positions, group, channel block)."""
        choice = os.environ.get("FASTCONV_IM2COL_GI", "auto")
        if (choice == "blocks" or _pointwise(spec) or k_vol == 1
                or os.environ.get("FASTCONV_IM2COL_GEMM") == "blas"
                or PACKED_MIN.get(_im2col.kernel_level()) is None and choice != "panels"):
            return False
        positions = math.prod(spec.output_size)
        group_channels = spec.in_channels // spec.groups
        kg = spec.out_channels // spec.groups
        if 0 in (positions, spec.batch, group_channels, kg):    # nothing to multiply
            return False
        block = self.block
        per_group = -(-group_channels // block)
        samples = max(1, min(spec.batch, GI_PANEL_COLUMNS // positions))
        chunks = -(-spec.batch // samples)
        while chunks * spec.groups * per_group < GRAD_INPUT_ITEMS and samples > 1:
            samples = -(-samples // 2)      # few items: smaller chunks, then smaller blocks
            chunks = -(-spec.batch // samples)
        block = -(-group_channels // _enough_blocks(per_group, chunks * spec.groups,
                                                    group_channels * k_vol))
        per_group = -(-group_channels // block)
        width = min(positions, GI_PANEL_COLUMNS)
        row = spec.output_size[2]
        if width < positions and row <= width:     # whole output rows: col2im's fast path
            width = _whole_rows(width, positions, row)
        if choice != "panels" and (kg < GI_PANEL_MIN[0] or block * k_vol < GI_PANEL_MIN[1]
                                   or samples * width < GI_PANEL_MIN[2]
                                   or chunks * spec.groups * per_group < GRAD_INPUT_ITEMS):
            return False
        tile_rows, tile_cols = _im2col.tile_shape(spec.dtype.itemsize)
        rb = -(-block * k_vol // tile_rows) * tile_rows
        cols = samples * width
        packed_w = spec.groups * per_group * rb * kg
        per_thread = -(-cols // tile_cols) * tile_cols * kg + rb * cols
        threads = max(1, min(_config.get_num_threads(), (limit - packed_w) // per_thread))
        if packed_w + per_thread > limit:
            return False
        self.block, self.samples, self.width, self.rows = block, samples, width, block * k_vol
        self.packed_w_elements, self.threads = packed_w, threads
        self.work_elements = threads * per_thread
        self.partial_elements = self.phased_elements = self.row_elements = 0
        self.packed, self.parts, self.kblocks, self.slabs = False, 0, 1, 1
        return True

    def _chunk_elements(self, width):
        """A chunk's column buffer: R x width, or R x whole panels for the packed GEMM."""
        if self.packed:
            return self.rows * -(-width * self.samples // self.tile_cols) * self.tile_cols
        return self.rows * width

    @property
    def workspace_elements(self):
        return (self.work_elements + self.partial_elements + self.phased_elements
                + self.row_elements + self.packed_w_elements + self.gemm_elements)


def _enough_blocks(blocks, units, rows):
    """Channel blocks of the input gradient: with fewer than GRAD_INPUT_ITEMS items over the
    `units` (samples or chunks, times groups; a small batch of few channels: ResNet's layer2
    3x3/2 at batch 1 was one item), smaller blocks of at least GRAD_INPUT_BLOCK_ROWS of the
    group's `rows` each."""
    if units * blocks >= GRAD_INPUT_ITEMS:
        return blocks
    return max(blocks, min(-(-GRAD_INPUT_ITEMS // max(units, 1)), rows // GRAD_INPUT_BLOCK_ROWS))


def _whole_rows(width, positions, row):
    """A chunk's width cut to whole output rows (packing's and col2im's fast path), the chunks
    of a sample as equal as can be."""
    chunks = -(-positions // (width - width % row))
    return -(-positions // row // chunks) * row


def _rows_gemm(spec, rows):
    """Whether the input gradient's GEMMs (`rows` = a channel block x taps) run on fastconv's own
    kernel, reading gy in place, rather than the BLAS (see ROWS_GEMM_MOST; FASTCONV_IM2COL_GEMM
    forces either, as for the forward)."""
    choice = os.environ.get("FASTCONV_IM2COL_GEMM", "auto")
    if _pointwise(spec) or choice == "blas":
        return False
    depth = spec.out_channels // spec.groups
    return choice == "packed" or (
        spec.dtype == np.float32 and PACKED_MIN.get(_im2col.kernel_level()) is not None
        and rows <= ROWS_GEMM_MOST and depth >= ROWS_GEMM_DEPTH
        and rows * depth >= ROWS_GEMM_VALUES)


def _position_parts(spec, items):
    """Parts of each (sample, channel block)'s output positions for the input gradient: enough
    for GRAD_INPUT_ITEMS items in all where there are fewer. The outermost axis longer than 1 is
    split (a single output row along its positions, a 2-D map along its rows, a 3-D map along
    its planes: C3D's 3-channel first layer at batch 1 was one item, on one thread). Parts q and
    q + 2 never write the same input value (grad_input_blocks runs the even parts, then the odd
    ones): part q writes up to (end_q - 1) s + reach - 1 past its first input and part q + 2
    starts at start_{q+2} s, so the part between them needs (length + 1) s >= reach. The count
    comes from the problem, never from the threads."""
    if items >= GRAD_INPUT_ITEMS:
        return 1
    axis = next((a for a in range(2) if spec.output_size[a] > 1), 2)
    extent = spec.output_size[axis]
    reach = (spec.kernel_size[axis] - 1) * spec.dilation[axis] + 1
    parts = -(-GRAD_INPUT_ITEMS // max(items, 1))
    while parts > 1 and (extent // parts + 1) * spec.stride[axis] < reach:
        parts -= 1
    return parts


# 5-10 us of Python a call before; the GEMM's choice (FASTCONV_IM2COL_GEMM) is part of the plan
plan_of = per_problem(_Plan, lambda: (os.environ.get("FASTCONV_IM2COL_GEMM", "auto"),
                                      os.environ.get("FASTCONV_IM2COL_GI", "auto")))


def supports(spec, op):
    rows = spec.in_channels * math.prod(spec.kernel_size)
    plan = plan_of(spec, op)
    if plan.workspace_elements * spec.dtype.itemsize > _config.get_workspace_limit():
        return False, (f"even one column chunk ({plan.rows} rows) and the partial sums exceed the "
                       f"workspace limit of {_config.get_workspace_limit()} bytes")
    if max(rows, spec.out_channels, math.prod(spec.output_size)) > BLAS_INT_MAX:
        return False, "a matrix dimension exceeds the 32-bit BLAS integer range"
    return True, ""


def workspace(spec, op):
    return plan_of(spec, op).workspace_elements * spec.dtype.itemsize


def cost(spec, op):
    """GEMM time plus the traffic of packing the columns (and of writing gx, a 1x1 input
    gradient's) plus a fixed cost per GEMM call (one per chunk, group and input-gradient channel
    block), shared among the planned threads (the machine's cores, or one for a small problem:
    `_config.model_threads`), plus a fixed cost per call."""
    plan = plan_of(spec, op)
    rows_g = spec.in_channels // spec.groups * math.prod(spec.kernel_size)
    copies = (0 if _pointwise(spec) and not plan.packed     # the BLAS reads a 1x1 layer's x
              else 2 * spec.batch * rows_g * spec.groups * math.prod(spec.output_size))
    own = plan.packed or plan.gi_panels     # fastconv's own GEMM
    rate = GEMM_FLOPS_PER_S[spec.dtype.name] * (PACKED_GEMM_SPEEDUP if own else 1.0)
    if op == "grad_kernel":     # each chunk's GEMM makes a thin K x rows block of partial sums
        rate *= min(1.0, max(rows_g, 1) / KERNEL_GRADIENT_ROWS) ** 0.5   # (0 rows: explain's)
    if op == "grad_input":     # a GEMM's columns: a chunk's positions, of several samples
        rate *= min(1.0, max(plan.width * plan.samples, 1) / THIN_COLUMNS) ** 0.25
    chunks = (-(-spec.batch // plan.samples) if plan.samples > 1
              else spec.batch * -(-math.prod(spec.output_size) // plan.width))
    blocks = -(-(spec.in_channels // spec.groups) // max(plan.block, 1)) if op == "grad_input" else 1
    work = (spec.flops / rate + (copies + _results_written(spec, op)) * spec.dtype.itemsize
            / BYTES_PER_S + GEMM_CALL_S * chunks * spec.groups * blocks
            + _unphased(spec, op, plan) * UNPHASE_S)
    threads = _config.model_threads(spec)
    return work / (1 + PARALLEL_EFFICIENCY * (threads - 1)) + CALL_OVERHEAD_S


def _unphased(spec, op, plan):
    """Values of gx a strided input gradient puts back in order (its rows were summed by phase
    of the stride: src/_phase.pxd's unphase_rows, a store every stride values)."""
    if op == "grad_input" and plan.phased:
        return spec.batch * spec.in_channels * math.prod(spec.input_size)
    return 0


def _results_written(spec, op):
    """Values a 1x1 input gradient's GEMMs write to memory as the result, x 2 (each line read for
    ownership, then written): its GEMM writes gx itself, which no column copy counts (other input
    gradients write the columns, which the copies count). Shallow, these GEMMs are bound by
    them: MobileNetV2's 144 -> 24 and 32 -> 16 input gradients at batch 8 (14 and 13 MB of gx)
    ran 1.8-2.0x the model (2 threads, AVX-512), which sent them to im2col at 1.8x pointwise's
    time. (Forward's y is not counted: its rivals' models leave their stores out as well, and
    with y counted here alone im2col lost 1x1 layers it ran fastest, 16 -> 96 at 1.1-1.3x.)"""
    if op == "grad_input" and _pointwise(spec):
        return 2 * spec.batch * spec.in_channels * math.prod(spec.input_size)
    return 0


def _work(plan, dtype, *names):
    """The buffers `names` of the plan. Fresh arrays: at these sizes the allocator reuses its
    memory without new page faults. fastconv._scratch measured 2-3% slower (its lookup) when an
    allocation cost 0.12 us; aligned (0.7 us), the two measured alike (wav2vec's one-channel
    input gradient, three buffers of 80-128 KB: 119-145 us a call either way, 2 threads)."""
    return [_aligned.empty(getattr(plan, f"{name}_elements"), dtype) for name in names]


def forward(spec, x, w, out=None):
    plan = plan_of(spec, "forward")
    y = _aligned.empty(spec.y_shape, spec.dtype) if out is None else out
    if plan.packed:
        _im2col.forward_packed(spec, x.reshape(-1), w.reshape(-1), y.reshape(-1),
                               *_work(plan, spec.dtype, "packed_w", "work", "row", "phased"),
                               plan.width, plan.samples, plan.kblocks, plan.threads)
        return y
    with _config.blas_single_threaded():
        _im2col.forward(spec, x.reshape(-1), w.reshape(-1), y.reshape(-1),
                        *_work(plan, spec.dtype, "work", "phased"), plan.width, plan.kblocks,
                        plan.threads)
    return y


def grad_input(spec, gy, w, out=None):
    plan = plan_of(spec, "grad_input")
    if out is None:
        gx = _aligned.zeros(spec.x_shape, spec.dtype)
    else:
        gx = out
        gx.fill(0)
    if plan.gi_panels:
        _im2col.grad_input_packed(spec, gy.reshape(-1), w.reshape(-1), gx.reshape(-1),
                                  *_work(plan, spec.dtype, "packed_w", "work"), plan.samples,
                                  plan.width, plan.block, plan.threads)
        return gx
    # fastconv's own GEMM (rows_gemm) calls no BLAS to hold at one thread (4 us a call)
    with contextlib.nullcontext() if plan.rows_gemm else _config.blas_single_threaded():
        _im2col.grad_input(spec, gy.reshape(-1), w.reshape(-1), gx.reshape(-1),
                           *_work(plan, spec.dtype, "work", "row", "gemm"), plan.width,
                           plan.block, plan.position_parts, plan.threads)
    return gx


def grad_kernel(spec, x, gy, out=None):
    plan = plan_of(spec, "grad_kernel")
    gw = _aligned.empty(spec.w_shape, spec.dtype) if out is None else out
    with _config.blas_single_threaded():
        _im2col.grad_kernel(spec, x.reshape(-1), gy.reshape(-1), gw.reshape(-1),
                            *_work(plan, spec.dtype, "work", "partial", "phased"), plan.width,
                            plan.parts, plan.slabs, plan.threads)
    return gw
