"""A strided input gradient as stride-1 phases (the polyphase decomposition).

Along an axis of stride s and dilation 1, the forward sum y[o] = sum_t w[t] x[o s + t - p] sends
gy[o] to the inputs o s + t - p. The inputs i whose i + p leave remainder r by s receive only the
taps t = r, r + s, r + 2 s, ... (ceil((k - r) / s) of them), so with i + p = q s + r:

    gx[q s + r - p] = sum_u w[r + u s] gy[q - u],

a stride-1 full correlation of gy with the sub-kernel w[r::s]. Each combination of the axes'
remainders (prod(s) phases) is then the stride-1 input gradient that blocked already has, with
its outputs on every s-th input (an offset and strides into gx). The phases' sub-kernels
partition the kernel's taps, so the multiply-adds are the strided sum's, with none of the zeros a
zero-stuffed gy would multiply; a phase whose remainder is past the kernel (a 1x1 kernel at
stride 2: the odd inputs) receives nothing and is zeros. An axis of stride 1 is one phase, with
any dilation (the plain flipped problem).

This is oneDNN's backward-data for strided layers, read as index algebra (no code taken): each
sum of an output is over the same taps in the same order whatever the thread count.
"""
import math
from dataclasses import dataclass
from itertools import product

import numpy as np


@dataclass(frozen=True)
class AxisPhase:
    """One remainder r of one axis: the inputs first, first + stride, ... (count of them)
    receive taps r, r + stride, ... (taps of them, `dilation` apart when the stride is 1);
    input first reads gy from position first_q down."""
    r: int
    taps: int
    first: int
    count: int
    first_q: int
    dilation: int

    def pad(self):
        """The zeros before gy in the phase's stride-1 problem: its first output reads gy at
        first_q - dilation * (taps - 1) (the flipped kernel's first tap)."""
        return self.dilation * (self.taps - 1) - self.first_q


def axis_phases(n, k, s, p, d):
    """The phases of one axis: n inputs, kernel k, stride s, low padding p, dilation d (1 where
    s > 1: the caller refuses the rest)."""
    if s == 1:
        return [AxisPhase(0, k, 0, n, p, d)]
    out = []
    # the remainders some input has: all of them, or the inputs' own where the stride is longer
    remainders = range(s) if s <= n else sorted({(i + p) % s for i in range(n)})
    for r in remainders:
        first_q = -((r - p) // s)               # the least q with q s + r - p >= 0
        last_q = (n - 1 + p - r) // s
        count = max(0, last_q - first_q + 1)
        if count:
            out.append(AxisPhase(r, max(0, -(-(k - r) // s)), first_q * s + r - p, count,
                                 first_q, 1))
    return out


def phases(spec):
    """Every phase of a problem's input gradient: a tuple of AxisPhase, one per lifted axis."""
    return list(product(*(axis_phases(spec.input_size[a], spec.kernel_size[a], spec.stride[a],
                                      spec.pad_low[a], spec.dilation[a]) for a in range(3))))


MAX_PHASES = 256     # passes a call may take (a hostile stride must not make 2**63 of them)


def count(spec):
    """The phases of a problem's input gradient: one per remainder that some input has."""
    return math.prod(min(s, n) if s > 1 else 1 for s, n in zip(spec.stride, spec.input_size))


def refusal(spec):
    """Why the phases cannot express the problem's input gradient (None where they can)."""
    bad = [a for a in range(3) if spec.stride[a] > 1 and spec.dilation[a] > 1]
    if bad:
        return (f"the input gradient at a stride above 1 needs dilation 1 along that axis, got "
                f"stride {spec.stride} and dilation {spec.dilation} (lifted to 3-D)")
    if count(spec) > MAX_PHASES:
        return (f"the input gradient at stride {spec.stride} takes a pass per phase, "
                f"{count(spec)} of them, above {MAX_PHASES}")
    return None


def placement(phase, strides, channels, input_size):
    """Where a phase's outputs go in gx (N, C, D, H, W): the offset of its first value, and the
    strides (sample, channel, depth, row, column) of its outputs, in elements."""
    d, h, w = input_size
    lines = (h * w, w, 1)
    offset = sum(a.first * line for a, line in zip(phase, lines))
    plane = math.prod(input_size)
    return offset, (channels * plane, plane, strides[0] * lines[0], strides[1] * lines[1],
                    strides[2])


def gx_index(phase, strides):
    """The NumPy index of a phase's inputs in gx (N, C, D, H, W)."""
    return (slice(None), slice(None)) + tuple(
        slice(a.first, a.first + (a.count - 1) * s + 1, s) for a, s in zip(phase, strides))


class Phase:
    """One phase of a strided input gradient: its stride-1 problem, where its outputs go in gx,
    and `start`, its first tap in the packed weights (each phase's taps reversed and together,
    the whole kernel packed once); `geometry` None where it has no taps."""

    def __init__(self, spec, axes, start, geometry):
        self.axes, self.start = axes, start
        self.gx = gx_index(axes, spec.stride)
        self.offset, self.strides = placement(axes, spec.stride, spec.in_channels,
                                              spec.input_size)
        self.geometry = geometry(axes) if all(a.taps for a in axes) else None


class Plan:
    """A strided input gradient's phases (`list`) and `pos`, each kernel tap's place in the
    packed weights (bk_flip): a phase's taps reversed, from its `start`; the taps no phase reads
    (a remainder whose inputs would lie past gx's end) after all of them. geometry(axes): the
    stride-1 problem a phase runs (blocked's)."""

    def __init__(self, spec, geometry):
        k, s = spec.kernel_size, spec.stride
        self.list, start = [], 0
        pos = np.full(math.prod(k), -1, np.intp)
        for axes in phases(spec):
            phase = Phase(spec, axes, start, geometry)
            self.list.append(phase)
            if phase.geometry is None:
                continue
            u = np.indices(tuple(a.taps for a in axes)).reshape(3, -1)
            t = [a.r + stride * ui for a, stride, ui in zip(axes, s, u)]
            taps = u.shape[1]
            pos[(t[0] * k[1] + t[1]) * k[2] + t[2]] = start + taps - 1 - np.arange(taps)
            start += taps
        unread = pos < 0
        pos[unread] = start + np.arange(int(unread.sum()))
        self.pos = pos
