"""The plan of one fft call: tiles, transform lengths, batch chunk, back-end, workspace.

Along each spatial axis the problem is cut into tiles of ``per_tile`` outputs (one tile when it
fits), each computed by a circular convolution of length ``L`` (see the package docstring).
A plan is built once per (problem, operation, workspace limit, knobs) and is everything the call
reads: which transform back-end runs (`backend`), how the kernel taps reach the frequencies
(`gemm`, per axis), whether a 2-D pass runs fused (`fused`), when inputs are pruned
(`prune_below`), how much scratch is kept between calls (`retain_bytes`), and every byte of
scratch, the Cython core's own included (`workspace`, `scratch`, `threads`).
"""
from functools import lru_cache
import math

from ..._lazy import LazyModule

from ..._geometry import reads_input
from . import _cost, _own
from ._buffers import RETAIN_BYTES

scipy_fft = LazyModule("scipy.fft")     # a tenth of a second to import: loaded on first use

SPATIAL = 3
TILE_FACTORS = (1, 2, 3, 4, 6, 8, 12, 16, 32, 64)   # candidate tile transform lengths / kernel
PRUNE_BELOW = 0.75                # transform only the lines with data when fewer than this share
VECTOR_BYTES = 64                 # the widest vector of any kernel set of src/_fft_columns.h
BACKENDS = ("own", "pocketfft")


def fast_len(n, real):
    return scipy_fft.next_fast_len(max(int(n), 1), real=real)


class Axis:
    """Tiling of one spatial axis: `tiles` tiles of `per_tile` outputs, transform length `L`.

    Placements are (start, count, step): positions (start + i*step) mod L for i < count.
    """

    def __init__(self, n, k, s, d, lo, o, per_tile, real):
        self.n, self.k, self.s, self.d, self.lo, self.o = n, k, s, d, lo, o
        self.e = d * (k - 1) + 1
        self.tiles = -(-o // per_tile)
        self.per_tile = -(-o // self.tiles)
        if self.tiles == 1:                       # the wrap-around may fall on the padding
            a, b = self.window(0)
            ends = (a + lo, (o - 1) * s - lo + self.e - b)
            need = (b - a) + max(ends) if b > a else 1
        else:
            need = (self.per_tile - 1) * s + self.e
        self.L = fast_len(max(need, self.e, (self.per_tile - 1) * s + 1), real)

    def reads_input(self):
        """Whether some output reads some input element (not only padding): where none does,
        the exact result is zero, which transforms would only approximate."""
        return reads_input(self.n, self.k, self.s, self.d, self.lo, self.o)

    def outputs(self, t):
        """(first output, number of outputs) of tile t."""
        o0 = t * self.per_tile
        return o0, min(self.per_tile, self.o - o0)

    def window(self, t):
        """[a, b): the input indices tile t reads, clipped to the input."""
        o0, count = self.outputs(t)
        w0 = o0 * self.s - self.lo
        return max(0, w0), max(0, min(self.n, w0 + (count - 1) * self.s + self.e))

    def input_place(self, t):
        a, b = self.window(t)
        return (a - self.outputs(t)[0] * self.s) % self.L, b - a, 1

    def output_place(self, t):
        return 0, self.outputs(t)[1], self.s

    def kernel_place(self):
        return (-self.lo) % self.L, self.k, self.d


class Plan:
    """Tiles, transform sizes, batch chunk, back-end, workspace and predicted time of one problem.

    `factor`: the tile length per effective kernel size (None: one tile); `limit`: the workspace
    limit in bytes. The knobs, today's choices by default, are there for tests and experiments:
    `backend` "own" (the Cython core's transforms, where every length factors into its radices)
    or "pocketfft" (SciPy's); `by_gemm` True/False forces the kernel taps' DFT by matrix product
    or by FFT on every axis (None: the cost model's rule, `_cost.by_gemm`); `fuse` False runs a
    2-D pass as separate steps; `prune_below`, `retain_bytes` as PRUNE_BELOW and RETAIN_BYTES.
    """

    def __init__(self, spec, op, factor, limit, *, backend=None, by_gemm=None,
                 prune_below=PRUNE_BELOW, fuse=None, retain_bytes=RETAIN_BYTES):
        self.spec, self.op, self.factor, self.limit = spec, op, factor, limit
        used = [i for i in range(SPATIAL) if spec.input_size[i] > 1 or spec.kernel_size[i] > 1
                or spec.output_size[i] > 1]
        self.axes = []
        for i in range(SPATIAL):
            k, s, d, o = spec.kernel_size[i], spec.stride[i], spec.dilation[i], spec.output_size[i]
            e = d * (k - 1) + 1
            per_tile = o if factor is None else max(1, (factor * e - e) // s + 1)
            self.axes.append(Axis(spec.input_size[i], k, s, d, spec.pad_low[i], o, per_tile,
                                  i == max(used or [SPATIAL - 1])))
        self.L = tuple(a.L for a in self.axes)
        self.taxes = [i for i in range(SPATIAL) if self.L[i] > 1] or [SPATIAL - 1]
        self.F = tuple(L // 2 + 1 if i == self.taxes[-1] else L for i, L in enumerate(self.L))
        self.freqs = math.prod(self.F)
        self.tiles = math.prod(a.tiles for a in self.axes)
        self.zero = not all(a.reads_input() for a in self.axes)
        self.item = spec.dtype.itemsize
        self.backend = backend or ("own" if all(_own.takes(self.L[ax]) for ax in self.taxes)
                                   else "pocketfft")
        if self.backend not in BACKENDS:
            raise ValueError(f"backend must be one of {BACKENDS}, got {self.backend!r}")
        self.gemm = tuple(_cost.by_gemm(a.k, a.L) if by_gemm is None else bool(by_gemm)
                          for a in self.axes)
        self.fused = (len(self.taxes) == 2 and self.backend == "own") if fuse is None else fuse
        self.prune_below, self.retain_bytes = prune_below, retain_bytes
        self.scratch = self._scratch()
        self.chunk = self._largest_chunk(limit)

    def _channels(self):
        """Spectra per sample going in and coming out of one pass, and of the kernel."""
        s = self.spec
        K, C = s.out_channels, s.in_channels
        return {"forward": (C, K), "grad_input": (K, C), "grad_kernel": (C + K, 0)}[self.op] + (
            K * (C // s.groups),)

    def _scratch(self):
        """Bytes the Cython core allocates per thread inside one call (src/_fft_columns_impl.h,
        src/_fft_fused.h: a column, row or fused pass takes (2 L + lanes) vectors for its
        transform of length L), counted for the widest vectors so that the plan is the same on
        every machine. Python counts it; the C allocates it (aligned_alloc, 64-byte multiples)."""
        return (2 * max(self.L) + VECTOR_BYTES // self.item) * VECTOR_BYTES

    def workspace(self, nb, threads=1):
        """Bytes of the buffers of a pass over `nb` samples (see the back-ends' spectra and
        signals), plus the core's scratch on `threads` threads."""
        c_in, c_out, c_kernel = self._channels()
        spectrum, signal = 2 * self.item * self.freqs, self.item * math.prod(self.L)
        kernel = 2 * c_kernel * spectrum        # the kernel's spectra and a stage of them
        passes = nb * (c_in * (2 * spectrum + signal) + c_out * (spectrum + signal))
        return kernel + passes + threads * self.scratch

    def _largest_chunk(self, limit):
        nb = self.spec.batch
        while nb >= 1 and self.workspace(nb) > limit:
            nb //= 2
        return nb

    def threads(self, budget):
        """Threads a call runs on: the budget, fewer where their scratch would pass the limit."""
        room = self.limit - self.workspace(self.chunk)
        return max(1, min(budget, 1 + room // self.scratch))

    def seconds(self, threads):
        return _cost.seconds(self, threads)


@lru_cache(maxsize=512)
def best(spec, op, limit, **knobs):
    """The cheapest tiling within `limit`, or None. It is chosen for one thread, so that the
    thread count never changes the tiling and therefore never a rounding. `knobs` go to Plan."""
    chosen = None
    for factor in (None,) + TILE_FACTORS:
        plan = Plan(spec, op, factor, limit, **knobs)
        if (factor is not None and plan.tiles == 1) or plan.chunk == 0:
            continue
        if chosen is None or plan.seconds(1) < chosen.seconds(1):
            chosen = plan
    return chosen
