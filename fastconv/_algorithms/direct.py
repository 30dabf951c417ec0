"""Direct convolution: loops over the kernel taps with register tiles, no column buffer.

The algorithm for depthwise and few-channel problems, 1-D sequences and small batches, where the
column matrix of im2col is thin and GEMM runs far below its peak. See src/_direct.pyx for the
kernels. Work is split into items fixed by the problem (never by the thread count); the workspace
is a few index lists per thread, the validity tables of the borders and, for the kernel gradient,
per-thread V-lane accumulators plus the partial sums of a problem-determined number of parts.
"""
import functools
import math

import numpy as np

from .. import _aligned, _config, _direct
from ._plan_cache import per_problem

NAME = "direct"
WRITES_OUT = True       # its operations take out= (the lifted result buffer) and fill it

STREAMS = 4                 # output channels (or rows) one micro-kernel call computes together
TARGET_ITEMS = 32           # enough work items to balance a few threads
COLUMN_PART = 1024          # a long row is split into parts of at least this many outputs
MAX_PARTS = 16              # partial sums of the kernel gradient

# Cost model: seconds = sum of counted operations x their time on one thread, divided among the
# threads the work items can keep busy, plus a fixed call overhead. Fitted (least squares on the
# log of the time) to 20 shapes (the benchmark suite, depthwise 7x7 to 112x112 and 5x5, small 1-,
# 2- and 3-D problems, grouped, few-channel, long 1-D) x 3 operations x 2 dtypes measured on the
# development machine (Xeon with AVX-512, one thread): the prediction is within 25% of the
# measured time on most of them (rms of the log error 0.22), 1.8x at worst (a float64 kernel
# gradient streaming from memory).
SECONDS = {
    "vector": 3.1e-10,      # one vector multiply-add of a register tile
    "vector_row": 4.0e-10,  # the same in a one-channel tile along a row (a load per multiply-add)
    "scalar": 9e-10,        # one multiply-add of the scalar path: output rows narrower than a
                            # quarter vector, or than a vector at stride > 1 without phases
                            # (0.8-1.3 ns on 4 strided ResNet-like layers, Zen 4, one thread)
    "tile": 1.7e-08,        # one register tile (a call of the micro-kernel)
    "edge": 4.4e-10,        # one vector multiply-add in an edge tile (shifted load)
    "rows_read": 5.1e-11,   # one vector multiply-add x (input rows a 1-channel tile reads / 32 - 1)
    "dot": 5.4e-10,         # one vector multiply-add of the kernel gradient's dot products
    "dot_gather": 1.7e-09,  # the same with gathered (strided) input columns
    "dot_call": 2.3e-08,    # one (tap, row group, column tile) of the kernel gradient
    "gather": 4.6e-09,      # one vector multiply-add with gathered (strided) input columns (a
                            # strided forward whose phased copy exceeds the workspace limit)
    "scatter": 4.5e-10,     # one multiply-add of grad_input's scatter at stride > 1
    "item": 1.9e-07,        # one work item
    "stream": 6e-11,        # one byte a kernel-gradient item streams from memory (see below)
    "phase": 4e-10,         # one input value forward stores by phase of the width stride
}
# A kernel-gradient work item (4 output channels x 1 input channel) reads its input channel and its
# output-gradient channels whole; when they do not fit in a core's L2 (STREAM_BYTES), every item
# streams them from memory: vgg_first's 8 x 64 x 224 x 224 gradient made that 1.9x slower than the
# counted arithmetic (fitted on it, one thread). With fewer than 4 output channels a group the item
# reads two sequential streams (one gy plane, one x plane), which the hardware prefetcher keeps
# ahead of the dot products: the time is the longer of the two, not their sum (measured, 2 threads:
# 2048 x 2048 3x3 single-channel 1.06 ms against 1.06 streamed and 0.78 counted; 8 x 512 x 512,
# 0.60 against 0.53 and 0.39). Four output-channel streams are not hidden (2048 x 2048 with 4
# output channels: 4.9 ms against 2.6 streamed and 2.8 counted).
# A forward (or stride-1 input gradient) item of a block of 4 output channels walks its input
# span, every input channel, once; a span larger than STREAM_BYTES comes from L3 or memory again
# for every block, on top of the arithmetic (its 4 channels' streams are not hidden, as in the
# kernel gradient): wav2vec's 256 -> 256 k3/2 layer (3.3 MB of input at batch 1, 64 blocks) took
# 5.6 ms at AVX-512 and 16.5 at AVX2 (2 threads) against 1.9 and 3.4 predicted from the
# arithmetic alone (5.9 and 6.7 with the stream). Without this term the strict model picked
# direct there, at 3.5x and 5x the blocked algorithm's time.
STREAM_BYTES = 2 * 2**20
CALL_OVERHEAD_S = 9e-6
PARALLEL_EFFICIENCY = 0.9   # each extra thread adds 90% of one (shared caches, AVX-512 clocks)
# The prediction is for `_config.model_threads` (the machine's cores; one below the small-problem
# size) whatever the current setting, so that the choice never depends on the thread count (only
# problems with fewer work items than that lose the parallelism).

def _stride_one(spec):
    return spec.stride == (1, 1, 1)


def _phased(spec):
    """Whether forward and grad_kernel store x's rows by phase of the width stride
    (src/_direct.pyx), so that their taps read contiguous vectors along an output row instead of
    gathering every stride-th value (wav2vec's 10/5 first layer: forward 1.79 ms gathered, 0.16
    phased; 2-core Xeon). Where the copy would exceed the workspace limit the plan gathers
    (_Plan.phased 0)."""
    return spec.stride[2] > 1


def _transposed_pass(spec, op):
    """grad_input at stride 1 runs the forward kernel on the transposed geometry (the plan of
    "grad_input_scatter" is the one the other strides, or non-finite weights, use)."""
    return op == "grad_input" and _stride_one(spec)


class _Plan:
    """Items, parts, thread count and workspace of one problem and operation."""

    def __init__(self, spec, op):
        itemsize = spec.dtype.itemsize
        k_vol = math.prod(spec.kernel_size)
        group_in = spec.in_channels // spec.groups
        group_out = spec.out_channels // spec.groups
        self.rparts = self.cparts = 1
        self.accs = self.partials = self.lists = self.phased = 0
        if op == "forward" or _transposed_pass(spec, op):
            transposed = op == "grad_input"
            if transposed:
                group_in, group_out = group_out, group_in
                rows, cols = math.prod(spec.input_size[:2]), spec.input_size[2]
            else:
                rows, cols = math.prod(spec.output_size[:2]), spec.output_size[2]
            self.tables = _direct.tables_size(spec, transposed)
            self.lists = _direct.scratch_entries(3 * group_in * k_vol)
            blocks = -(-group_out // STREAMS) if group_out >= STREAMS else group_out
            items = spec.batch * spec.groups * blocks
            if 0 < items < TARGET_ITEMS:            # (no items: an empty problem, for explain)
                self.rparts = max(1, min(-(-TARGET_ITEMS // items), -(-rows // 4)))
                items *= self.rparts
            if 0 < items < TARGET_ITEMS and cols >= 2 * COLUMN_PART:
                self.cparts = min(-(-TARGET_ITEMS // items), cols // COLUMN_PART)
        elif op in ("grad_input", "grad_input_scatter"):
            self.tables = _direct.tables_size(spec)
            if group_out * k_vol > _direct.tap_block():    # a scratch plane to sum blocks in
                self.accs = _direct.scratch_entries(math.prod(spec.input_size))
        else:
            self.tables = _direct.tables_size(spec)
            self.lists = _direct.scratch_entries(3 * k_vol)
            self.accs = _direct.scratch_entries(k_vol * STREAMS * _direct.lanes(itemsize))
            blocks = -(-group_out // STREAMS) if group_out >= STREAMS else group_out
            items = spec.groups * blocks * group_in
            rows = spec.batch * math.prod(spec.output_size[:2])
            cols = spec.output_size[2]
            want = max(1, min(MAX_PARTS, -(-TARGET_ITEMS // max(items, 1))))
            self.rparts = max(1, min(want, rows))
            if self.rparts < want and cols >= 2 * COLUMN_PART:
                self.cparts = min(-(-want // self.rparts), cols // COLUMN_PART)
            size = spec.out_channels * group_in * k_vol
            limit = _config.get_workspace_limit()
            while self.parts > 1 and self._bytes(1, itemsize, self.parts * size) > limit:
                self.rparts, self.cparts = ((self.rparts + 1) // 2, self.cparts) \
                    if self.rparts > 1 else (1, (self.cparts + 1) // 2)
            self.partials = self.parts * size if self.parts > 1 else 0
        self.itemsize = itemsize
        if op in ("forward", "grad_kernel") and _phased(spec):     # x stored by phase, where
            values = spec.batch * spec.in_channels * math.prod(spec.input_size)
            if self._bytes(1, itemsize) + values * itemsize <= _config.get_workspace_limit():
                self.phased = values                # the limit leaves room
        per_thread = self._bytes(1, itemsize) - self._bytes(0, itemsize)
        room = _config.get_workspace_limit() - self._bytes(0, itemsize)
        self.threads = max(1, min(_config.get_num_threads(),
                                  room // per_thread if per_thread else 1 << 30))

    def _bytes(self, threads, itemsize, partials=None):
        partials = self.partials if partials is None else partials
        return (8 * (self.tables + threads * self.lists)
                + itemsize * (threads * self.accs + partials + self.phased))

    @property
    def parts(self):
        """Partial sums of the kernel gradient (row parts x column parts)."""
        return self.rparts * self.cparts

    @property
    def workspace_bytes(self):
        return self._bytes(self.threads, self.itemsize)

    def arrays(self, dtype):
        """tables, lists (and for grad_kernel accs, partials) sized for the chosen threads."""
        return (np.empty(self.tables, np.intp),
                np.empty(max(1, self.threads * self.lists), np.intp),
                _aligned.empty(max(1, self.threads * self.accs), dtype),
                _aligned.empty(self.partials, dtype))


plan_of = per_problem(_Plan)        # 2 us of Python a call, on problems of 10-50 us


def supports(spec, op):
    plan = plan_of(spec, op)
    if plan.workspace_bytes > _config.get_workspace_limit():
        return False, (f"its index lists, border tables and accumulators for one thread "
                       f"({plan.workspace_bytes} bytes) exceed the workspace limit of "
                       f"{_config.get_workspace_limit()} bytes")
    return True, ""


def workspace(spec, op):
    return plan_of(spec, op).workspace_bytes


def _operations(spec, op):
    """Counted operations of `op` on `spec` (keys of SECONDS), and the number of work items."""
    itemsize = spec.dtype.itemsize
    lanes_full = _direct.lanes(itemsize)
    k_vol = math.prod(spec.kernel_size)
    group_in = spec.in_channels // spec.groups
    group_out = spec.out_channels // spec.groups
    plan = plan_of(spec, op)
    count = dict.fromkeys(SECONDS, 0.0)
    if op == "grad_input" and not _stride_one(spec):
        count["scatter"] = spec.flops / 2
        count["item"] = spec.batch * spec.in_channels
        return count, count["item"]
    if op == "grad_kernel":
        width, rows = spec.output_size[2], spec.batch * math.prod(spec.output_size[:2])
        blocks = -(-group_out // STREAMS) if group_out >= STREAMS else group_out
        streams = STREAMS * blocks if group_out >= STREAMS else group_out
        vectors = -(-width // lanes_full) if width >= lanes_full else 1
        dots = spec.groups * streams * group_in * rows * vectors * k_vol
        count["dot_gather" if spec.stride[2] > 1 and not plan.phased else "dot"] = dots
        count["phase"] = plan.phased
        group = max(8, 4 * 32 * lanes_full // width)
        row_groups = spec.batch * spec.output_size[0] * -(-spec.output_size[1] // group)
        tiles = -(-width // (32 * lanes_full))
        count["dot_call"] = spec.groups * blocks * group_in * row_groups * tiles * k_vol
        count["item"] = spec.groups * blocks * group_in * plan.parts
        item_bytes = itemsize * spec.batch * (math.prod(spec.input_size)
                                              + min(STREAMS, group_out) * math.prod(spec.output_size))
        if item_bytes > STREAM_BYTES:
            count["stream"] = spec.groups * blocks * group_in * item_bytes
        return count, count["item"]
    if op == "grad_input":      # the forward pass of the transposed geometry
        group_in, group_out = group_out, group_in
        size, stride = spec.input_size, 1
        pad = (spec.kernel_size[2] - 1) * spec.dilation[2] - spec.pad_low[2]
    else:
        size, stride, pad = spec.output_size, spec.stride[2], spec.pad_low[2]
        if plan.phased:         # read as at stride 1, after a pass over x
            stride = 1
            count["phase"] = plan.phased
    width, rows = size[2], size[0] * size[1]
    pad = pad or (spec.pad_high[2] if op == "forward" else 1)
    channel_block = group_out >= STREAMS
    blocks = -(-group_out // STREAMS) if channel_block else group_out
    streams = STREAMS * blocks if channel_block else group_out
    taps = group_in * k_vol
    # (n >= 1: float64 at the baseline level has 2 lanes, and an empty row fits "0 lanes")
    lanes = next((n for n in (lanes_full, lanes_full // 2, lanes_full // 4)
                  if n >= 1 and width >= n and (stride == 1 or n == lanes_full)), 1)
    outputs = spec.batch * spec.groups * streams * rows
    span = (min(rows, STREAMS) - 1 + spec.kernel_size[1]) * spec.kernel_size[0]
    if lanes == 1:              # one column of 4 streams a tile, scalar, every tap
        count["tile"] = outputs * width / STREAMS
        count["scalar"] = outputs * width * taps
    else:
        vectors = -(-width // lanes)
        fmas = outputs * vectors * taps
        four = channel_block or rows >= STREAMS     # 4 streams x 2 vectors, else 1 x up to 8
        tile = STREAMS * min(vectors, 2) if four else min(vectors, 8)
        count["tile"] = fmas / tile / taps
        if stride > 1:
            count["gather"] = fmas
        else:
            edge_tile = min(vectors, 2 if four else 4)    # vectors of the first and last tile
            edge = min(1.0, 2.0 * edge_tile / vectors) if pad else 0.0
            count["edge"] = fmas * edge
            count["vector" if four else "vector_row"] = fmas * (1 - edge)
        if not channel_block:   # one output channel a tile reading many input rows at once
            count["rows_read"] = fmas * max(0.0, group_in * span / 32 - 1)
    count["item"] = spec.batch * spec.groups * blocks * plan.rparts * plan.cparts
    read = group_in * math.prod(spec.output_size if op == "grad_input" else spec.input_size)
    if channel_block and read * itemsize > STREAM_BYTES * plan.rparts * plan.cparts:
        count["stream"] = spec.batch * spec.groups * blocks * read * itemsize
    return count, count["item"]


def cost(spec, op):
    """Counted operations x fitted seconds, shared among the (model's) threads the items occupy
    (a one-stream kernel gradient: the longer of its streaming and its arithmetic)."""
    if 0 in (spec.batch, spec.in_channels, spec.out_channels):
        return CALL_OVERHEAD_S      # nothing to sum: the call returns zeros
    count, items = _operations(spec, op)
    threads = _config.model_threads(spec, items)
    speedup = 1 + PARALLEL_EFFICIENCY * (threads - 1)
    seconds = {k: SECONDS[k] * v for k, v in count.items()}
    if op == "grad_kernel" and spec.out_channels // spec.groups < STREAMS:
        stream = seconds.pop("stream")          # hidden behind the dots, or they behind it
        return max(sum(seconds.values()), stream) / speedup + CALL_OVERHEAD_S
    return sum(seconds.values()) / speedup + CALL_OVERHEAD_S


def _padding_reads(spec):
    """pad[t, p]: kernel tap t of output position p falls on the zero padding; None if never."""
    valid = []
    for n, k, o, s, d, lo in zip(spec.input_size, spec.kernel_size, spec.output_size,
                                  spec.stride, spec.dilation, spec.pad_low):
        index = np.arange(o)[None, :] * s - lo + np.arange(k)[:, None] * d
        valid.append((index >= 0) & (index < n))
    if all(v.all() for v in valid):
        return None
    inside = (valid[0][:, None, None, :, None, None] & valid[1][None, :, None, None, :, None]
              & valid[2][None, None, :, None, None, :])
    return ~inside.reshape(math.prod(spec.kernel_size), math.prod(spec.output_size))


@functools.lru_cache(maxsize=64)
def _window_outside(spec):
    """Some output position has every tap on the padding (its window misses the input)."""
    pad = _padding_reads(spec)
    return pad is not None and bool(pad.all(axis=0).any())


def _restore_padding_nans(spec, op, result, data):
    """The kernels never multiply the padding; the textbook sum does, and 0 * Inf (or NaN) there
    is NaN. Where the weights (forward) or gy (grad_kernel) hold a non-finite value that meets the
    padding, put that NaN back. grad_input sums over the input only, so has nothing to restore."""
    pad = _padding_reads(spec)
    if pad is None:
        return
    K, T = spec.out_channels, pad.shape[0]
    bad = ~np.isfinite(data)
    if op == "forward":             # y[n, k, p] gets w[k, c, t] * 0 for each padded tap t of p
        taps = bad.reshape(K, -1, T).any(axis=1)
        hit = (taps.astype(np.float64) @ pad) > 0
        result.reshape(spec.batch, K, -1)[:, hit] = np.nan
    else:                           # gw[k, c, t] gets gy[n, k, p] * 0 for each p padded at t
        positions = bad.reshape(spec.batch, K, -1).any(axis=0)
        hit = (positions.astype(np.float64) @ pad.T) > 0
        result.reshape(K, -1, T).transpose(0, 2, 1)[hit] = np.nan


def _nothing_to_sum(shape, dtype, *operands):
    """The result (zeros) when it or an operand is empty, else None: the kernels need neither."""
    if math.prod(shape) == 0 or any(a.size == 0 for a in operands):
        return _aligned.zeros(shape, dtype)
    return None


def forward(spec, x, w, out=None):
    zeros = _nothing_to_sum(spec.y_shape, spec.dtype, x, w)
    if zeros is not None:           # (an empty input: outputs of padding times the weights)
        if zeros.size and not np.isfinite(w).all():
            _restore_padding_nans(spec, "forward", zeros, w)
        return zeros
    y = _aligned.empty(spec.y_shape, spec.dtype) if out is None else out
    plan = plan_of(spec, "forward")
    tables, lists, _, _ = plan.arrays(spec.dtype)
    _direct.forward(spec, x.reshape(-1), w.reshape(-1), y.reshape(-1), tables, lists,
                    plan.rparts, plan.cparts, plan.threads, _aligned.empty(plan.phased, spec.dtype))
    if not np.isfinite(w).all():
        _restore_padding_nans(spec, "forward", y, w)
    return y


def grad_input(spec, gy, w, out=None):
    zeros = _nothing_to_sum(spec.x_shape, spec.dtype, gy, w)
    if zeros is not None:
        return zeros
    gx = _aligned.empty(spec.x_shape, spec.dtype) if out is None else out
    # The stride-1 pass's edge tiles multiply weights by the zeros around gy; a non-finite weight
    # would make NaN there that the textbook sum (over the input only) does not have.
    transposed = _stride_one(spec) and np.isfinite(w).all()
    plan = plan_of(spec, "grad_input" if transposed else "grad_input_scatter")
    tables, lists, accs, _ = plan.arrays(spec.dtype)
    if transposed:
        _direct.grad_input(spec, gy.reshape(-1), w.reshape(-1), gx.reshape(-1), tables, lists,
                           plan.rparts, plan.cparts, plan.threads)
    else:
        _direct.grad_input_scatter(spec, gy.reshape(-1), w.reshape(-1), gx.reshape(-1), tables,
                                   accs[:plan.threads * plan.accs], plan.threads)
    return gx


def grad_kernel(spec, x, gy, out=None):
    zeros = _nothing_to_sum(spec.w_shape, spec.dtype, gy, x)
    if zeros is not None:           # (an empty input: gy times the padding)
        if zeros.size and gy.size and not np.isfinite(gy).all():
            _restore_padding_nans(spec, "grad_kernel", zeros, gy)
        return zeros
    gw = _aligned.empty(spec.w_shape, spec.dtype) if out is None else out
    plan = plan_of(spec, "grad_kernel")
    tables, lists, accs, partials = plan.arrays(spec.dtype)
    _direct.grad_kernel(spec, x.reshape(-1), gy.reshape(-1), gw.reshape(-1), partials, accs,
                        tables, lists, plan.rparts, plan.cparts, plan.threads,
                        _aligned.empty(plan.phased, spec.dtype))
    # A non-finite gy shows in gw unless its whole window is padding: only then look at gy.
    if (not np.isfinite(gw).all() or _window_outside(spec)) and not np.isfinite(gy).all():
        _restore_padding_nans(spec, "grad_kernel", gw, gy)
    return gw
