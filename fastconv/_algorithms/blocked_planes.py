"""blocked's forward pass along planes (src/_blocked_planes.pxi, src/_blocked_planes.h).

bk_row fills a vector with output channels and broadcasts the inputs, then transposes each row
of channel vectors into the output planes. On a network's first layers -- few input channels, so
few multiply-adds an output (27 on CIFAR's 3 -> 32 3x3) -- the transposes, a row buffer's
traffic and a thread idle on a ragged last block take as long as the multiply-adds. Here a
vector holds positions along an output row instead, stored in place: the input is copied,
zero-padded, into the phases of the stride, so that every tap is one offset whatever the stride,
and a tile of 6 output channels by 4 vectors (AVX-512; 6 by 2 below) broadcasts each weight from
the kernel interleaved by tiles of 6 channels. A row's last vector ends at its last output,
overlapping the one before (the same values stored twice by one tile).

Every product of the textbook sum is taken (the padding's too), so values that are not finite
propagate as in it. Each output is one tile's, summed over input channels, then taps, in order:
results do not depend on the thread count.

Measured (bench/blocked_gk_fit.py --op forward, 2 threads, 2-core Intel Xeon): CIFAR's first
layer at batch 32 and 128, LeNet's on 16x16 and 28x28 digits, wav2vec's one-channel k10/5 layer
0.43-0.85x bk_row's time at AVX-512 and AVX2; stride-2 stems (MobileNetV2's, ResNet-18's) and
C3D's first layer 0.98-1.22x; layers of 6 and more input channels 0.95-2.8x. Applies where a row
is at least a vector, a group has at most FEW_CHANNELS input channels and an output at most
SHORT_SUM products; taken where the model finds it cheaper than the rows by a margin (MARGIN),
at AVX-512 and AVX2; FASTCONV_BLOCKED_PLANES=planes or =other forces the choice (tests,
benchmarks).
"""
import functools
import itertools
import math
import os

import numpy as np

from .. import _config, _scratch
from .._lazy import LazyModule

_blocked = LazyModule("fastconv._blocked")

ROWS = 6                        # src/_blocked_planes.h: BPL_ROWS
VECTORS = {64: 4, 32: 2, 16: 2}     # ... BPL_VECTORS, by vector bytes
# Cost model, in the units of blocked's model (they share its calibration), by vector width in
# bytes: per vector multiply-add (a row's overlapping last vector whole), per tap step of a tile
# (its input vectors loaded, its weights broadcast), per value copied into the phases, packed or
# stored, per value gathered at a stride into the phases (one at a time), per tile. Fitted by
# bench/blocked_gk_fit.py --op forward (least relative squares) on the chooser sweep's forward
# passes of at most FEW_CHANNELS input channels and SHORT_SUM products an output, depthwise ones
# included (without them too few layers are left to fit), 2 threads, 2-core Intel Xeon, float32
# and float64: model error median 1.05-1.29x at the three levels on the layers the path applies
# to (bench/RESULTS.md, twenty-fourth session).
SECONDS = {64: {"fma": 0.23e-9, "step": 1.44e-9, "value": 0.121e-9, "strided": 1.59e-9,
                "tile": 66e-9},
           32: {"fma": 0.179e-9, "step": 1.06e-9, "value": 0.358e-9, "strided": 1.85e-9,
                "tile": 24e-9},
           16: {"fma": 0.263e-9, "step": 0.586e-9, "value": 0.408e-9, "strided": 1.27e-9,
                "tile": 11e-9}}
PARALLEL_EFFICIENCY = 0.9
CALL_OVERHEAD_S = 12e-6
FEW_CHANNELS = 4
SHORT_SUM = 81      # input channels x taps: C3D's 3 x 27 first layer the longest
# Taken where the model is below MARGIN of the rows' (each model's error is about 1.2x: at 1.0
# the fit's layers had some at 1.12x the rows' time, at 0.85 none slower than the rows)
MARGIN = 0.85


ENV = "FASTCONV_BLOCKED_PLANES"


def forced():
    """'planes', 'other' or None: FASTCONV_BLOCKED_PLANES, read per call (tests set it)."""
    choice = os.environ.get(ENV, "auto")
    return choice if choice in ("planes", "other") else None


class _PlanesPlan:
    """The forward pass's phases, tiles and work items, and whether the path applies."""

    def __init__(self, spec):
        G = spec.groups
        self.cg, self.kg = spec.in_channels // G, spec.out_channels // G
        self.n, self.o, self.s, self.p = (spec.input_size, spec.output_size, spec.stride,
                                          spec.pad_low)
        k, d = spec.kernel_size, spec.dilation
        self.k, self.d = k, d
        self.taps = math.prod(k)
        # a phase's extent: the output's, and the taps' reach past it in phase positions
        self.f = tuple(oi + (ki - 1) * di // si for oi, ki, di, si in zip(self.o, k, d, self.s))
        vb = _blocked.vector_bytes()
        self.lanes = L = vb // spec.dtype.itemsize
        most = VECTORS.get(vb, 2)
        o0, o1, o2 = self.o
        self.plane = -(-(math.prod(self.f) + L) // L) * L
        # tiles of whole vectors of `rows` output rows (a row's last vector overlapping the one
        # before), `vectors` of each row at a time
        self.row_vectors = -(-o2 // L)
        self.vectors = min(most, self.row_vectors)
        self.rows = max(1, min(o1, most // max(1, self.vectors)))
        self.tiles = o0 * -(-o1 // self.rows)
        self.tile_passes = self.tiles * -(-self.row_vectors // max(1, self.vectors))
        self.groups, self.groups_k = G, -(-self.kg // ROWS)
        self.items = spec.batch * G * self.groups_k * self.tiles
        # Where it applies (each bound measured against bk_row's rows):
        # - rows at least a vector wide (narrower ones left most lanes to columns dropped:
        #   ResNet-18's 7x7 maps ran 1.05-1.15x the rows' time);
        # - at most FEW_CHANNELS input channels a group (the chooser sweep's layers of 6-512
        #   ran 0.95-2.8x the rows' time at AVX-512) and SHORT_SUM products an output (with more,
        #   the rows' transposes are a small share: ResNet-18's 3 x 49-tap stem ran 1.0-1.07x at
        #   AVX2, where the models could not tell it from CIFAR's 3 x 9-tap layer, 0.75-0.83x);
        # - more than one output channel a group (a depthwise layer's tile fills one of its 6
        #   rows: ConvNeXt's 7x7 ran 2.2x the depthwise algorithm's time, modelled cheaper).
        self.applies = (o2 >= L and o0 * o1 > 0 and 0 < self.cg <= FEW_CHANNELS
                        and self.cg * self.taps <= SHORT_SUM and self.kg > 1)
        # the phases a tap reads along each axis (t d mod s, of period s), and those of a
        # channel's planes, their product (listed only where the path applies: a hostile
        # kernel and stride would make the list as large as the kernel)
        axes = [sorted({t * di % si for t in range(min(ki, si))})
                for ki, di, si in zip(k, d, self.s)] if self.applies else [[0]] * 3
        self.phases = list(itertools.product(*axes))

    @functools.cached_property
    def arrays(self):
        """(each tap's offset from an output's position in a channel's phases, the phases)."""
        index = {a: i for i, a in enumerate(self.phases)}
        f, s, d = self.f, self.s, self.d
        offsets = []
        for t in itertools.product(*(range(ki) for ki in self.k)):
            reach = [ti * di for ti, di in zip(t, d)]
            phase = index[tuple(r % si for r, si in zip(reach, s))]
            m = [r // si for r, si in zip(reach, s)]
            offsets.append(phase * self.plane + (m[0] * f[1] + m[1]) * f[2] + m[2])
        return (np.array(offsets, np.intp),
                np.array(self.phases, np.intp).reshape(-1))

    def threads(self):
        return max(1, min(_config.get_num_threads(), self.items))

    def phase_values(self, spec):
        """Elements of the phases of every input channel."""
        return spec.batch * spec.in_channels * len(self.phases) * self.plane

    def packed(self):
        """Elements of the weights interleaved by tiles of ROWS output channels."""
        return self.groups * self.groups_k * ROWS * self.cg * self.taps

    def workspace_elements(self, spec):
        return self.phase_values(spec) + self.packed()

    def counts(self, spec):
        """The cost model's counts (SECONDS' keys)."""
        sets = spec.batch * spec.groups
        vectors = math.prod(self.o[:2]) * self.row_vectors
        phases = self.phase_values(spec)
        return {"fma": sets * self.kg * vectors * self.cg * self.taps,
                "strided": phases if self.s[2] > 1 else 0,
                "step": sets * self.groups_k * self.tile_passes * self.cg * self.taps,
                "value": (phases + self.packed()
                          + sets * self.kg * math.prod(self.o)),
                "tile": sets * self.groups_k * self.tile_passes}


@functools.lru_cache(maxsize=128)
def plan(spec):
    return _PlanesPlan(spec)


def terms(spec):
    """The model's counts (SECONDS' keys) and the items the threads share."""
    p = plan(spec)
    return p.counts(spec), p.items


def cost(spec):
    """Modelled seconds of the forward pass (math.inf where the path does not apply)."""
    if not plan(spec).applies:
        return math.inf
    return _config.model_seconds(spec, *terms(spec),
                                 SECONDS.get(_blocked.vector_bytes(), SECONDS[16]),
                                 PARALLEL_EFFICIENCY, CALL_OVERHEAD_S)


def chosen(spec, other):
    """Whether the forward pass runs here rather than on bk_row's rows, whose cost is
    other(spec, "forward")."""
    return _choice(spec, forced(), _config.get_num_threads(), _config.get_workspace_limit(),
                   other)


@functools.lru_cache(maxsize=256)
def _choice(spec, forced_choice, threads, limit, other):
    p = plan(spec)
    if not p.applies or p.workspace_elements(spec) * spec.dtype.itemsize > limit:
        return False
    if forced_choice:
        return forced_choice == "planes"
    # unforced, not at the baseline level (16-byte vectors), where the two paths tie (0.89-1.08x
    # on the fit's layers) and the lower price sent CIFAR's first layer from im2col to blocked,
    # at 2.2x im2col's time
    return _blocked.vector_bytes() >= 32 and cost(spec) < MARGIN * other(spec, "forward")


def forward(spec, x, w, y):
    p = plan(spec)
    toff, ph = p.arrays
    _blocked.planes_forward(np.ascontiguousarray(x).reshape(-1),
                            np.ascontiguousarray(w).reshape(-1), y.reshape(-1),
                            _scratch.empty("blocked.pad", p.phase_values(spec), spec.dtype),
                            _scratch.empty("blocked.w", p.packed(), spec.dtype), toff, ph,
                            spec.batch, spec.groups, p.cg, p.kg, p.n, p.p, p.f, p.o, p.s,
                            p.plane, ROWS, p.rows, p.vectors, p.threads())
    return y
