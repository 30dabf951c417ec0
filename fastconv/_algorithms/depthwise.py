"""Depthwise convolution along flattened planes: MobileNet's and ConvNeXt's layers, filter banks.

For problems with one input channel per group (groups == in_channels: depthwise layers with any
channel multiplier, single-channel images and filter banks on them). Each (sample, channel) plane
is copied once, zero-padded and split by phase of the stride, into a flat buffer in which every
kernel tap is one constant offset; the outputs are then one long run of positions that a
vectorised loop of multiply-adds sweeps tap by tap (src/_depthwise_kernels.h). Rows narrower than
a vector (7x7 and 14x14 planes, stride 2) therefore fill whole vectors: the run holds the rows
with the padding columns between them, which are computed and dropped (a 7x7 plane with padding
1: 63 positions for 49 outputs).

grad_input is the same loop, per phase of the input, over gy zero-padded (the correlation with
the flipped kernel, split by the stride); grad_kernel takes the dot products of gy's run with the
input's run at each tap's offset. Work items are planes (grad_kernel: input channels, samples
summed in order), so no result depends on the thread count.

1-D and 2-D layers with a multiplier of 1 (MobileNet's, ConvNeXt's) run channel-blocked
instead: one vector of channels per position, so that a 7x7 plane wastes no lanes and the
per-plane work is paid once per vector of planes (src/_depthwise.pyx); forward and the kernel
gradient 1.2-4x faster than plane by plane on MobileNetV2's layers, grad_input 1.3-3.8x.

Values that are not finite: forward multiplies exactly the textbook's products (the padding's
zeros included; the dropped columns are dropped). grad_input also multiplies each weight by the
zeros around gy, which is 0 unless a weight is Inf or NaN: such a kernel goes to summation (the
registry's policy, `_finite`). grad_kernel also multiplies input values by the zeros of gy's
dropped columns, which is 0 unless an input value is not finite, and then the (small) kernel
gradient is not finite either: a kernel gradient with an Inf or NaN is computed again by
summation.
"""
import math
from functools import lru_cache

import numpy as np

from .. import _aligned, _config, _depthwise, _finite, _scratch

NAME = "depthwise"
WRITES_OUT = True       # its operations take out= (the lifted result buffer) and fill it
NONFINITE = {"grad_input": _finite.GIVES_UP, "grad_kernel": _finite.CHECK_RESULT}

# Cost model: per vector multiply-add of the taps loop (a load and an FMA), of the dot products
# (two loads), per byte packed and unpacked, per work item, and per call; divided among the
# threads the items keep busy. Least squares on the log of the time of the chooser sweep's 105
# depthwise-eligible (layer, op) pairs per dtype (MobileNetV2, ConvNeXt, LeNet's first layers,
# images, 1-D), 2-core AMD EPYC Zen 4 at its AVX-512 level: median error 1.2x, 90th percentile
# 1.8x (the guesses it replaced: 1.4x and 2.6x). fastconv.calibrate() scales it per machine.
MAX_TAPS = 1 << 16      # larger kernels (above 256 x 256) are the FFT's: their tap lists are not built
SECONDS = {"fma": 0.52e-9, "dot": 0.77e-9, "byte": 0.065e-9, "item": 0.1e-6}
# The channel-blocked layout's terms (per vector multiply-add, per byte staged, gridded and
# unstaged, per item): non-negative least squares on the relative time of MobileNetV2's and
# ConvNeXt's 48 depthwise (layer, op) pairs in float32 (AMD EPYC Zen 4, AVX-512 level, 2 threads),
# divided by the shipped calibration's scale (~0.8): median error 1.06x, 10th-90th percentile
# 0.73-1.18x.
BLOCKED_SECONDS = {"fma": 0.73e-9, "byte": 0.03e-9, "item": 0.35e-6}
OPS_BLOCKED = ("forward", "grad_input", "grad_kernel")
BLOCKED_GRID_RATIO = 8  # a grid larger than this many times the planes and taps is padding
BLOCKED_MAX_OUTPUTS = 1 << 40   # output planes up to this size go channel-blocked
BLOCKED_MAX_TAPS = 1 << 12
# A call's fixed cost: 11-15 us measured on 4x8x8 and 4x27x37 planes, float32 and float64, every
# operation (2-core Intel Xeon, AVX-512, through fastconv.conv with the call memo); 25 us before
# put the tiny problems of the chooser sweep at 2.2-2.8x their time, where it lost to direct
# and im2col by up to 2.1x
CALL_OVERHEAD_S = 10e-6
PARALLEL_EFFICIENCY = 0.9


def _lanes(itemsize):
    return _depthwise.vector_bytes() // itemsize


class _Plan:
    """Phase grids, tap offsets and runs of one problem (see the module docstring)."""

    def __init__(self, spec):
        self.spec = spec
        k, s, d, p, o = (spec.kernel_size, spec.stride, spec.dilation, spec.pad_low,
                         spec.output_size)
        extent = [(o[i] - 1) * s[i] + (k[i] - 1) * d[i] + 1 if o[i] else 0 for i in range(3)]
        self.Lq = tuple(max(1, -(-extent[i] // s[i])) for i in range(3))
        self.phases = s[0] * s[1] * s[2]
        phase = math.prod(self.Lq)
        taps = [(a, b, c) for a in range(k[0]) for b in range(k[1]) for c in range(k[2])]
        shift = [[(t[i] * d[i]) // s[i] for i in range(3)] for t in taps]
        which = [((t[0] * d[0]) % s[0] * s[1] + (t[1] * d[1]) % s[1]) * s[2]
                 + (t[2] * d[2]) % s[2] for t in taps]
        Lq = self.Lq
        self.off = np.array([w * phase + (c[0] * Lq[1] + c[1]) * Lq[2] + c[2]
                             for w, c in zip(which, shift)], np.intp)
        self.nq = ((o[0] - 1) * Lq[1] + (o[1] - 1)) * Lq[2] + o[2] if all(o) else 0
        self.packed = self.phases * phase
        # grad_input: the taps by phase, over gy zero-padded by the largest shift. The runs
        # hold the phase positions jlo..jhi-1 that fall in the input (one range for every phase;
        # they differ by one at most), on a grid Lg of gy's rows with that padding.
        n = spec.input_size
        cmax = [max(c[i] for c in shift) for i in range(3)]
        jlo = [max(0, -(-(p[i] - s[i] + 1) // s[i])) for i in range(3)]   # phase s - 1's first
        jhi = [min(Lq[i], -(-(n[i] + p[i]) // s[i])) for i in range(3)]    # phase 0's end
        self.Lo = tuple(max(1, jhi[i] - jlo[i]) for i in range(3))
        self.gx_pad = tuple(p[i] - jlo[i] * s[i] for i in range(3))
        self.Lg = tuple(self.Lo[i] + cmax[i] for i in range(3))
        self.gy_pad = tuple(cmax[i] - jlo[i] for i in range(3))
        order = sorted(range(len(taps)), key=lambda t: which[t])
        self.order = np.array(order, np.intp)
        Lg, Lo = self.Lg, self.Lo
        self.off_gi = np.array([((cmax[0] - shift[t][0]) * Lg[1] + cmax[1] - shift[t][1]) * Lg[2]
                                + cmax[2] - shift[t][2] for t in order], np.intp)
        used = sorted(set(which))       # the phases that have taps (a stride past the kernel
        self.phase_ids = np.array(used, np.intp)    # leaves phases that only hold zeros)
        ends = used + [used[-1] + 1] if used else [0]
        self.starts = np.searchsorted([which[t] for t in order], ends).astype(np.intp)
        self.nq_gi = ((Lo[0] - 1) * Lg[1] + (Lo[1] - 1)) * Lg[2] + Lo[2]
        self.multiplier = spec.out_channels // max(spec.in_channels, 1)
        # the arguments forward and grad_kernel hand the kernels after their arrays
        self.run = (self.off, spec.batch, spec.in_channels, self.multiplier, spec.input_size,
                    spec.stride, spec.pad_low, self.Lq, spec.output_size, self.nq)
        T, scratch = len(taps), _depthwise.scratch_elements
        self.per_thread = {"forward": scratch("forward", self.packed, self.nq, T),
                           "grad_input": scratch("grad_input", self.multiplier * math.prod(Lg),
                                                 self.nq_gi, T),
                           "grad_kernel": scratch("grad_kernel", self.packed, self.nq, T)}
        self.items = {"forward": spec.batch * spec.in_channels,
                      "grad_input": spec.batch * spec.in_channels,
                      "grad_kernel": spec.in_channels}
        # Channel-blocked (src/_depthwise.pyx): 1-D and 2-D, a multiplier of 1. blocked[op] =
        # (plane, grid, out_size, stride, offsets, flip) of its pass; grad_input gathers with
        # the flipped kernel at stride 1 (flip) and scatters gy's rows at larger strides.
        self.lanes = _lanes(spec.dtype.itemsize)
        self.blocked = {}
        if (self.multiplier == 1 and spec.ndim <= 2     # (a 3-D input of depth 1 can still
                and math.prod(spec.kernel_size) <= BLOCKED_MAX_TAPS     # pad its depth)
                and math.prod(o[1:]) <= BLOCKED_MAX_OUTPUTS):
            n = spec.input_size
            for op in OPS_BLOCKED:
                if op == "grad_input" and s[1:] == (1, 1):     # gather: the flipped taps
                    plane = (o[1], o[2], (k[1] - 1) * d[1] - p[1], (k[2] - 1) * d[2] - p[2])
                    out, stride = (n[1], n[2]), (1, 1)
                else:       # forward, grad_kernel; grad_input at a stride scatters gy's rows
                    plane, out, stride = (n[1], n[2], p[1], p[2]), (o[1], o[2]), s[1:]
                grid = ((out[0] - 1) * stride[0] + (k[1] - 1) * d[1] + 1,
                        (out[1] - 1) * stride[1] + (k[2] - 1) * d[2] + 1)
                if op == "grad_input" and s[1:] != (1, 1):     # room for gx's plane as well
                    grid = (max(grid[0], p[1] + n[1]), max(grid[1], p[2] + n[2]))
                if grid[0] * grid[1] > BLOCKED_GRID_RATIO * (n[1] * n[2] + o[1] * o[2]
                                                             + math.prod(k)):
                    continue        # mostly padding (huge padding or dilation): plane by plane
                offsets = np.array([a * d[1] * grid[1] + b * d[2]
                                    for a in range(k[1]) for b in range(k[2])], np.intp)
                self.blocked[op] = (plane, grid, out, stride, offsets,
                                    op == "grad_input" and s[1:] == (1, 1))
                self.per_thread[op] = _depthwise.blocked_scratch_elements(
                    plane[0] * plane[1], grid[0] * grid[1], out[0] * out[1],
                    len(offsets), self.lanes)
                self.items[op] = -(-spec.in_channels // self.lanes) * (
                    1 if op == "grad_kernel" else spec.batch)

    def threads(self, op):
        if _config.work(self.spec) < _config.SMALL_PROBLEM_FLOPS:
            return 1                # as threads_for caps the call (a tiny call's 0.4 us)
        budget = _config.get_num_threads()
        room = _config.get_workspace_limit() // (self.per_thread[op] * self.spec.dtype.itemsize)
        return max(1, min(budget, self.items[op], room))


@lru_cache(maxsize=256)
def _plan(spec):
    return _Plan(spec)


def supports(spec, op):
    if spec.groups != spec.in_channels or spec.in_channels == 0:
        return False, "only problems with one input channel per group (depthwise)"
    if math.prod(spec.kernel_size) > MAX_TAPS:
        return False, f"kernels of more than {MAX_TAPS} taps"
    plan = _plan(spec)
    need = plan.per_thread[op] * spec.dtype.itemsize
    if need > _config.get_workspace_limit():
        return False, (f"one plane's buffers ({need} bytes) exceed the workspace limit of "
                       f"{_config.get_workspace_limit()} bytes")
    return True, ""


def layout(spec, op):
    """How it runs, for explain: channel-blocked or plane by plane."""
    plan = _plan(spec)
    if op in plan.blocked:
        return f"channel-blocked, {plan.lanes} channels a vector"
    return "plane by plane"


def workspace(spec, op):
    plan = _plan(spec)
    return plan.threads(op) * plan.per_thread[op] * spec.dtype.itemsize


def cost(spec, op):
    """Counted vector multiply-adds (the dropped columns included), bytes packed and unpacked,
    work items; shared among the threads the items keep busy; plus a call overhead."""
    plan = _plan(spec)
    lanes = _lanes(spec.dtype.itemsize)
    item = spec.dtype.itemsize
    T = len(plan.off)
    planes = spec.batch * spec.in_channels
    outputs = spec.batch * spec.out_channels
    if op in plan.blocked:          # whole vectors of channels; staged, gridded and unstaged
        plane, grid, out = plan.blocked[op][:3]
        blocks = spec.batch * -(-spec.in_channels // lanes)
        moved = blocks * lanes * (2 * grid[0] * grid[1] + plane[0] * plane[1] + out[0] * out[1])
        work = (BLOCKED_SECONDS["fma"] * T * blocks * out[0] * out[1]
                + BLOCKED_SECONDS["byte"] * moved * item
                + BLOCKED_SECONDS["item"] * plan.items[op])
    else:
        nq = plan.nq_gi if op == "grad_input" else plan.nq
        work = SECONDS["dot" if op == "grad_kernel" else "fma"] * T * outputs * -(-nq // lanes)
        moved = (planes * (plan.packed + math.prod(spec.input_size))
                 + outputs * (plan.nq + math.prod(spec.output_size)))
        work += SECONDS["byte"] * moved * item + SECONDS["item"] * plan.items[op]
    threads = _config.model_threads(spec, plan.items[op])
    return work / (1 + PARALLEL_EFFICIENCY * (threads - 1)) + CALL_OVERHEAD_S


def _work(plan, op):
    threads = plan.threads(op)
    return _scratch.empty("depthwise", threads * plan.per_thread[op], plan.spec.dtype), threads


def _along_run(spec, op, shape, a, b, out):
    """forward or grad_kernel (`op`, of result `shape`): one sweep of the planes' runs."""
    plan = _plan(spec)
    result = _aligned.empty(shape, spec.dtype) if out is None else out
    scratch, threads = _work(plan, op)
    if op in plan.blocked:
        plane, grid, size, stride, offsets, flip = plan.blocked[op]
        if op == "forward":
            _depthwise.blocked_pass(a.reshape(-1), b.reshape(-1), result.reshape(-1), scratch,
                                    offsets, spec.batch, spec.in_channels, plane, grid, size,
                                    stride, flip, plan.lanes, threads)
        else:
            _depthwise.blocked_grad_kernel(a.reshape(-1), b.reshape(-1), result.reshape(-1),
                                           scratch, offsets, spec.batch, spec.in_channels, plane,
                                           grid, size, stride, plan.lanes, threads)
    else:
        getattr(_depthwise, op)(a.reshape(-1), b.reshape(-1), result.reshape(-1), scratch,
                                *plan.run, threads)
    return result


def forward(spec, x, w, out=None):
    return _along_run(spec, "forward", spec.y_shape, x, w, out)


def grad_input(spec, gy, w, out=None):
    if not _finite.all_finite(w):
        return None
    plan = _plan(spec)
    gx = _aligned.empty(spec.x_shape, spec.dtype) if out is None else out
    scratch, threads = _work(plan, "grad_input")
    if "grad_input" in plan.blocked:
        plane, grid, size, stride, offsets, flip = plan.blocked["grad_input"]
        if flip:
            _depthwise.blocked_pass(gy.reshape(-1), w.reshape(-1), gx.reshape(-1), scratch,
                                    offsets, spec.batch, spec.in_channels, plane, grid, size,
                                    stride, flip, plan.lanes, threads)
        else:
            _depthwise.blocked_scatter(gy.reshape(-1), w.reshape(-1), gx.reshape(-1), scratch,
                                       offsets, spec.batch, spec.in_channels, plane, grid, size,
                                       stride, plan.lanes, threads)
        return gx
    wt = np.ascontiguousarray(w.reshape(spec.out_channels, -1)[:, plan.order])
    _depthwise.grad_input(gy.reshape(-1), wt.reshape(-1), gx.reshape(-1), scratch, plan.off_gi,
                          plan.phase_ids, plan.starts, spec.batch, spec.in_channels, plan.multiplier,
                          spec.input_size, spec.stride, plan.gx_pad, plan.Lo, spec.output_size,
                          plan.gy_pad, plan.Lg, plan.nq_gi, threads)
    return gx


def grad_kernel(spec, x, gy, out=None):
    return _along_run(spec, "grad_kernel", spec.w_shape, x, gy, out)
