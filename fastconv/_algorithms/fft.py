"""FFT convolution: transform once, contract the channels per frequency, transform back.

Along each spatial axis the problem is cut into tiles of ``per_tile`` outputs (one tile when it
fits), each computed by a circular convolution of length ``L`` (a size with small prime
factors). With input index i of a tile whose first output is o0 stored at buffer position
(i - o0*s) mod L and kernel tap t at position (t*d - pad_low) mod L, the three operations are,
per frequency,

    forward      Y[n, k]   = sum_c X[n, c] conj(W[k, c]);   y[o0 + o] = z[o * s]
    grad_input   GX[n, c]  = sum_k GY[n, k] W[k, c];        gy[o0 + o] sits at o * s (zero-stuffed)
    grad_kernel  GW[k, c] += sum_n conj(GY[n, k]) X[n, c];  gw[t] = v[(t*d - pad_low) mod L]

(correlation multiplies by the conjugate, convolution does not). Placing the input at its true
position modulo L, rather than the zero-padded window, lets the circular wrap-around fall on
zeros: L >= n' + max(pad_low', pad_high') suffices, n' being the part of the input a tile reads
(L = n for a 'valid' problem). Tiles are overlap-save for the forward (disjoint outputs),
overlap-add for the input gradient and summed spectra for the kernel gradient, always in the same
order, so nothing but the problem and the workspace limit changes a rounding.

Transforms are the Cython core's own where every transform length factors into radices up to
16 (always, for the lengths `next_fast_len` gives): a complex FFT along the strided axes,
vectorised over blocks of adjacent columns (src/_fft_columns.h), and real transforms along the
last axis that pair two lines as one complex FFT and move lines in and out of the vector lanes
by in-register transposes, reading only the lines that hold data and writing only the positions
needed (straight into the result). Their spectra are blocked: the half axis is cut into blocks
of FREQ_BLOCK frequencies stored one after the other, so that a block of columns of a plane is
contiguous, and a 2-D pass runs fused per block (column transforms, channel product, inverse
column transforms) while the block is in cache. The kernel's spectra are kept per thread and
reused for a kernel of equal values (a layer's forward and input gradient, inference).
Elsewhere the transforms are pocketfft's (SciPy's) real-to-complex ones in the input's
precision, called with output buffers that are kept between calls (fresh arrays cost a page
fault per 4 KiB, which measured as a third of the time), pruned to the lines that hold data on
the way in and to the positions needed on the way out, and the kernel's few taps go to (and
come back from) the frequencies by products with the DFT matrix where that is cheaper than an
FFT. The channel contraction, the transforms and those products are the Cython core
`fastconv._fft`; they share the thread budget (`fastconv.get_num_threads()`) one after the
other, never at once, each on OpenMP threads over work items computed alike whatever the split
(Python threads woke in 50-80 us, three times a call: a 2-thread largek15 forward measured
1.47 ms on them and 1.12 ms on OpenMP's).
"""
from concurrent.futures import ThreadPoolExecutor
from functools import lru_cache
import itertools
import math
import threading

import numpy as np
import scipy.fft

from .. import _config, _fft
from .._geometry import reads_input
from . import _finite

try:        # pocketfft itself: the same transforms as scipy.fft, but writing into given buffers
    from scipy.fft._pocketfft import pypocketfft as _pocketfft
except ImportError:                                  # pragma: no cover - other SciPy layouts
    _pocketfft = None

NAME = "fft"

# Cost model: seconds per unit of each term of _Plan.terms(), one thread, least-squares fitted
# on the 2-core AVX-512 Xeon of the benchmark machine (tests/test_fft.py checks the choices
# "auto" must make with it). The transforms and the product are memory-bound there, so a point
# costs about as much in copies and cache misses as in arithmetic.
COST = {
    "float32": {"fft": 0.03e-9, "points": 2.3e-9, "gemm": 1 / 70e9, "product": 1 / 19e9,
                "bytes": 0.1e-9, "passes": 42e-6, "call": 70e-6},
    "float64": {"fft": 0.02e-9, "points": 3.6e-9, "gemm": 1 / 35e9, "product": 1 / 12e9,
                "bytes": 0.1e-9, "passes": 40e-6, "call": 50e-6},
}
PARALLEL_TERMS = ("fft", "points", "gemm", "product", "bytes")
ITEM_FREQS = 64                   # complex frequencies of one product item (FC_BLOCK x FC_SUPER)
CACHE_BYTES = 2 * 2**20           # the kernel spectra one item reads stay in a core's cache below
THREAD_GAIN = 0.75                # speed-up of each extra thread (memory-bound work)
GEMM_FLOPS_PER_S = 100e9          # the kernel taps' DFT by matrix product (matrix_along)...
KERNEL_FFT_S_PER_LOG = 0.3e-9     # ... or by FFT, per frequency and log2(L), with its copies
MIN_PARALLEL_MACS = 1 << 14       # smaller channel products run on the calling thread alone
MIN_PARALLEL_POINTS = 1 << 14     # ... and smaller transforms (real values; a 128x128 image):
                                  # an OpenMP region costs microseconds (a 512x512 image's
                                  # forward: 1.0 ms on one thread, 0.57 ms on two)
TILE_FACTORS = (1, 2, 3, 4, 6, 8, 12, 16, 32, 64)   # candidate tile transform lengths / kernel
PRUNE_BELOW = 0.75                # transform only the lines with data when fewer than this share
RETAIN_BYTES = 64 * 2**20         # buffers kept between calls, per thread
POOL_THREADS = 256                # helper threads at most (a call uses its thread budget - 1)
SPATIAL = 3


# --- geometry ----------------------------------------------------------------------------

def _fast_len(n, real):
    return scipy.fft.next_fast_len(max(int(n), 1), real=real)


class _Axis:
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
        self.L = _fast_len(max(need, self.e, (self.per_tile - 1) * s + 1), real)

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


class _Plan:
    """Tiles, transform sizes, batch chunk, workspace and predicted time of one problem."""

    def __init__(self, spec, op, factor, limit):
        self.spec, self.op = spec, op
        used = [i for i in range(SPATIAL) if spec.input_size[i] > 1 or spec.kernel_size[i] > 1
                or spec.output_size[i] > 1]
        self.axes = []
        for i in range(SPATIAL):
            k, s, d, o = spec.kernel_size[i], spec.stride[i], spec.dilation[i], spec.output_size[i]
            e = d * (k - 1) + 1
            per_tile = o if factor is None else max(1, (factor * e - e) // s + 1)
            self.axes.append(_Axis(spec.input_size[i], k, s, d, spec.pad_low[i], o, per_tile,
                                   i == max(used or [SPATIAL - 1])))
        self.L = tuple(a.L for a in self.axes)
        self.taxes = [i for i in range(SPATIAL) if self.L[i] > 1] or [SPATIAL - 1]
        self.F = tuple(L // 2 + 1 if i == self.taxes[-1] else L for i, L in enumerate(self.L))
        self.freqs = math.prod(self.F)
        self.tiles = math.prod(a.tiles for a in self.axes)
        self.zero = not all(a.reads_input() for a in self.axes)
        self.item = spec.dtype.itemsize
        self.chunk = self._largest_chunk(limit)

    def _channels(self):
        """Spectra per sample going in and coming out of one pass, and of the kernel."""
        s = self.spec
        K, C = s.out_channels, s.in_channels
        return {"forward": (C, K), "grad_input": (K, C), "grad_kernel": (C + K, 0)}[self.op] + (
            K * (C // s.groups),)

    def workspace(self, nb):
        """Bytes of the buffers of a pass over `nb` samples (see _spectra, _signals)."""
        c_in, c_out, c_kernel = self._channels()
        spectrum, signal = 2 * self.item * self.freqs, self.item * math.prod(self.L)
        kernel = 2 * c_kernel * spectrum        # the kernel's spectra and a stage of them
        passes = nb * (c_in * (2 * spectrum + signal) + c_out * (spectrum + signal))
        return kernel + passes

    def _largest_chunk(self, limit):
        nb = self.spec.batch
        while nb >= 1 and self.workspace(nb) > limit:
            nb //= 2
        return nb

    def _transform(self, count, extents, inverse):
        """(real points x log2 L, real points) of the pruned transforms of `count` signals."""
        sizes = list(self.F) if inverse else list(extents)
        work = points = 0.0
        for ax in (self.taxes if inverse else self.taxes[::-1]):
            L = self.L[ax]
            lines = count * math.prod(sizes[j] for j in range(SPATIAL) if j != ax)
            n = (1 if ax == self.taxes[-1] else 2) * lines * L
            work += n * math.log2(max(L, 2))
            points += n
            sizes[ax] = extents[ax] if inverse else self.F[ax]
        return work, points

    def terms(self):
        """The quantities the cost model weighs (see COST)."""
        s = self.spec
        N, K, C = s.batch, s.out_channels, s.in_channels
        x_ext = [min(a.L, (a.per_tile - 1) * a.s + a.e) for a in self.axes]
        y_ext = [a.per_tile for a in self.axes]
        ins, outs = {"forward": ((C, x_ext), (K, y_ext)), "grad_input": ((K, y_ext), (C, x_ext)),
                     "grad_kernel": ((C, x_ext), (K, y_ext))}[self.op]
        t_in = self._transform(N * ins[0], ins[1], False)
        t_out = self._transform(N * outs[0], outs[1], self.op != "grad_kernel")
        c_kernel = K * (C // s.groups)
        gemm = fft = points = 0.0
        sizes = [a.k for a in self.axes]        # the kernel's transform, axis by axis
        for ax in self.taxes[::-1]:
            a = self.axes[ax]
            lines = c_kernel * math.prod(sizes[j] for j in range(SPATIAL) if j != ax)
            if _by_gemm(a.k, a.L):
                gemm += 8 * lines * self.F[ax] * a.k
            else:
                n = (1 if ax == self.taxes[-1] else 2) * lines * a.L
                fft += n * math.log2(a.L)
                points += n
            sizes[ax] = self.F[ax]
        spectra = self.freqs * c_kernel * 2 * self.item     # the kernel's spectra, bytes
        # A product item (one sample, a block of frequencies) reads the kernel's spectra of its
        # block; past a core's cache every sample streams them from memory again (and the kernel
        # gradient writes them back): ResNet's 512-channel layers ran 3x over the model without it.
        streamed = (self.tiles * N * spectra * (2 if self.op == "grad_kernel" else 1)
                    if c_kernel * ITEM_FREQS * 2 * self.item > CACHE_BYTES else 0)
        return {"fft": self.tiles * (t_in[0] + t_out[0]) + fft,
                "points": self.tiles * (t_in[1] + t_out[1]) + points,
                "gemm": gemm,
                "product": 8.0 * self.freqs * self.tiles * N * c_kernel,
                "bytes": self.freqs * self.tiles * N * (C + K) * 2 * self.item + spectra + streamed,
                "passes": self.tiles * -(-N // max(self.chunk, 1)),
                "call": 1.0}

    def seconds(self, threads):
        weights = COST[self.spec.dtype.name]
        parallel = 1 + THREAD_GAIN * (max(threads, 1) - 1)
        return sum(weights[name] * value / (parallel if name in PARALLEL_TERMS else 1)
                   for name, value in self.terms().items())


@lru_cache(maxsize=512)
def _plan(spec, op, limit):
    """The cheapest tiling within `limit`, or None. It is chosen for one thread, so that the
    thread count never changes the tiling and therefore never a rounding."""
    best = None
    for factor in (None,) + TILE_FACTORS:
        plan = _Plan(spec, op, factor, limit)
        if (factor is not None and plan.tiles == 1) or plan.chunk == 0:
            continue
        if best is None or plan.seconds(1) < best.seconds(1):
            best = plan
    return best


def _by_gemm(k, L):
    """Whether a DFT between k taps and L frequencies is cheaper as a product with the DFT
    matrix than as an FFT of the zero-filled taps (measured: up to k ~ 30 at L = 512)."""
    return 8 * k / GEMM_FLOPS_PER_S <= KERNEL_FFT_S_PER_LOG * math.log2(max(L, 2))


# --- the interface -----------------------------------------------------------------------

def _current_plan(spec, op):
    return _plan(spec, op, _config.get_workspace_limit())


def supports(spec, op):
    if _current_plan(spec, op) is None:
        return False, (f"even one tile of one sample (its spectra and the kernel's) exceeds the "
                       f"workspace limit of {_config.get_workspace_limit()} bytes")
    return True, ""


def workspace(spec, op):
    plan = _current_plan(spec, op)
    return plan.workspace(plan.chunk)


def cost(spec, op):
    return _current_plan(spec, op).seconds(_config.planning_threads())


# --- buffers kept between calls ----------------------------------------------------------

class _Buffers(threading.local):
    """Named scratch arrays of this thread, reused by the next call (no page faults)."""

    def __init__(self):
        self.store = {}
        self.kernel = None      # (key, kernel, spectra) of _kernel_spectra

    def get(self, name, shape, dtype):
        nbytes = math.prod(shape) * np.dtype(dtype).itemsize
        raw = self.store.get(name)
        if raw is None or raw.nbytes < nbytes:
            raw = self.store[name] = np.empty(max(nbytes, 1), np.uint8)
        return raw[:nbytes].view(dtype).reshape(shape)

    def trim(self):
        if sum(raw.nbytes for raw in self.store.values()) > RETAIN_BYTES:
            self.store.clear()
            self.kernel = None


_buffers = _Buffers()


# --- transforms --------------------------------------------------------------------------

def _workers(a, workers):
    """pocketfft's threads for a transform of `a`: one for small ones, where waking a second
    thread costs more than it saves."""
    points = a.size * (2 if np.iscomplexobj(a) else 1)
    return workers if points >= MIN_PARALLEL_POINTS else 1


def _r2c(a, axes, out, workers):
    workers = _workers(a, workers)
    if _pocketfft is not None:
        return _pocketfft.r2c(a, tuple(axes), True, 0, out, workers)
    out[...] = scipy.fft.rfftn(a, axes=axes, workers=workers)
    return out


def _radices(L):
    """L's factors for the column FFT, fours first, or None if one exceeds its largest radix."""
    out = []
    while L % 4 == 0 and L > 4:
        out.append(4)
        L //= 4
    p = 2
    while L > 1:
        while L % p:
            p += 1
        if p > _fft.max_radix():
            return None
        out.append(p)
        L //= p
    return out or [1]


@lru_cache(maxsize=64)
def _column_plan(L, forward, dtype):
    """(radices, twiddles, roots) of the column FFT of length L (see src/_fft_columns.h), or
    None. Angles are reduced modulo the length in integers, so they are exact before rounding."""
    radix = _radices(L)
    if radix is None or radix == [1]:
        return None
    sign = -1.0 if forward else 1.0
    tw, roots, Lp = [], [], 1
    for p in radix:
        Lq = Lp * p
        s, j = np.meshgrid(np.arange(1, p), np.arange(Lp), indexing="ij")
        tw.append(np.exp(sign * 2j * np.pi * ((s * j) % Lq) / Lq).reshape(-1))
        roots.append(np.exp(sign * 2j * np.pi * np.arange(p) / p))
        Lp = Lq
    real = np.dtype(dtype)
    flat = [np.ascontiguousarray(np.concatenate(t).astype(np.complex128).view(np.float64),
                                 real) for t in (tw, roots)]
    return np.array(radix, np.intc), flat[0], flat[1]


def _columns(a, axis, forward, workers):
    """The complex FFT of `a` along `axis` in place (scaled 1/L when inverse), by the Cython core
    when `a` is C-contiguous, else None. Items (sample, block of columns) are split over the
    threads as in _product; each is computed alike whatever the split."""
    L = a.shape[axis]
    plan = _column_plan(L, forward, a.real.dtype) if a.flags.c_contiguous else None
    if plan is None or a.size == 0:
        return None
    batch, ncols = math.prod(a.shape[:axis]), math.prod(a.shape[axis + 1:])
    items = _fft.column_items(batch, ncols, a.real.dtype.itemsize)
    threads = workers if a.size * 2 >= MIN_PARALLEL_POINTS else 1
    flat = a.view(a.real.dtype).reshape(-1)
    scale = 1.0 if forward else 1.0 / L
    _fft.columns(flat, L, ncols, *plan, scale, 0, items, _threads(threads, items))
    return a


def _c2c(a, axes, forward, out, workers):
    if len(axes) == 1 and out is a and axes[0] < a.ndim - 1:
        done = _columns(a, axes[0], forward, workers)
        if done is not None:
            return done
    workers = _workers(a, workers)
    if _pocketfft is not None:
        return _pocketfft.c2c(a, tuple(axes), forward, 0 if forward else 2, out, workers)
    out[...] = (scipy.fft.fftn if forward else scipy.fft.ifftn)(a, axes=axes, workers=workers)
    return out


def _c2r(a, axis, n, out, workers):
    workers = _workers(out, workers)
    if _pocketfft is not None:
        return _pocketfft.c2r(a, (axis,), n, False, 2, out, workers)
    out[...] = scipy.fft.irfft(a, n=n, axis=axis, workers=workers)
    return out


def _segments(place, L):
    """(first index, slice of positions) pieces of a placement, in order (at most two)."""
    start, count, step = place
    if count == 0:
        return []
    first = min(count, -(-(L - start) // step))
    pieces = [(0, slice(start, start + (first - 1) * step + 1, step))]
    if first < count:
        rest = start + first * step - L
        pieces.append((first, slice(rest, rest + (count - first - 1) * step + 1, step)))
    return pieces


def _at(ndim, axis, sl):
    index = [slice(None)] * ndim
    index[axis] = sl
    return tuple(index)


def _place(buf, src, places):
    """buf = src at `places` along the spatial axes (2..4), zero everywhere else."""
    L = buf.shape[2:]
    if all(step == 1 for _, _, step in places):       # zero only what src does not cover
        for ax, (start, count, _) in enumerate(places):
            if count < L[ax]:
                for _, sl in _segments(((start + count) % L[ax], L[ax] - count, 1), L[ax]):
                    buf[_at(buf.ndim, 2 + ax, sl)] = 0
    else:
        buf.fill(0)
    pieces = [[(slice(i0, i0 + len(range(*sl.indices(n)))), sl) for i0, sl in _segments(p, n)]
              for p, n in zip(places, L)]
    for combo in itertools.product(*pieces):
        target = (Ellipsis,) + tuple(d for _, d in combo)
        buf[target] = src[(Ellipsis,) + tuple(s for s, _ in combo)]


def _take(a, axis, place, L):
    """The positions of a placement along `axis` (a view unless they wrap around)."""
    pieces = _segments(place, L)
    if len(pieces) == 1:
        return a[_at(a.ndim, axis, pieces[0][1])]
    if not pieces:
        return a[_at(a.ndim, axis, slice(0, 0))]
    return np.concatenate([a[_at(a.ndim, axis, sl)] for _, sl in pieces], axis=axis)


def _complex(dtype):
    return np.result_type(dtype, np.complex64)


def _spectra(src, places, plan, name, workers, columns=True):
    """Spectra (B, Cx, *F) of the real `src` (B, Cx, *extents) placed per axis, in buffer `name`.

    Axes whose data fills less than PRUNE_BELOW of L are transformed last, after the others, on
    only the lines that hold data; the rest go in one pocketfft call on a zero-padded copy.
    """
    taxes, L = plan.taxes, plan.L
    if _own_transforms(plan, src.dtype):
        return _spectra_own(src, places, plan, name, workers, columns)
    pruned = [ax for ax in taxes[:-1] if src.shape[2 + ax] < PRUNE_BELOW * L[ax]]
    bulk = [ax for ax in taxes if ax not in pruned]
    real_shape = src.shape[:2] + tuple(src.shape[2 + i] if i in pruned else L[i]
                                       for i in range(SPATIAL))
    buf = _buffers.get("signal", real_shape, src.dtype)
    _place(buf, src, [(0, src.shape[2 + i], 1) if i in pruned else places[i]
                      for i in range(SPATIAL)])
    shape = list(real_shape)
    shape[2 + taxes[-1]] = plan.F[taxes[-1]]
    out = _buffers.get(name if not pruned else "stage0", tuple(shape), _complex(src.dtype))
    cur = _r2c(buf, [2 + ax for ax in bulk], out, workers)
    for i, ax in enumerate(pruned):
        shape[2 + ax] = L[ax]
        nxt = _buffers.get(name if i == len(pruned) - 1 else f"stage{i + 1}", tuple(shape),
                           out.dtype)
        _place(nxt, cur, [places[j] if j == ax else (0, shape[2 + j], 1) for j in range(SPATIAL)])
        cur = _c2c(nxt, [2 + ax], True, nxt, workers)
    return cur


def _signals(spectra, places, plan, workers, dest=None, columns=True):
    """The real signals at `places` of `spectra` (overwritten): written into `dest` (any
    strides) and returned when given and the Cython core does the transforms, else a view into
    a buffer."""
    taxes, L = plan.taxes, plan.L
    if _own_transforms(plan, spectra.real.dtype):
        return _signals_own(spectra, places, plan, workers, dest, columns)
    last = taxes[-1]
    a = spectra
    for ax in taxes[:-1]:
        a = _take(_c2c(a, [2 + ax], False, a, workers), 2 + ax, places[ax], L[ax])
    shape = list(a.shape)
    shape[2 + last] = L[last]
    a = _c2r(a, 2 + last, L[last], _buffers.get("signal_out", tuple(shape), spectra.real.dtype),
             workers)
    for ax in range(SPATIAL):
        if ax == last or ax not in taxes:
            a = _take(a, 2 + ax, places[ax], L[ax])
    return a


def _own_transforms(plan, dtype):
    """Whether every transform of the plan runs on the Cython core (`columns`, `rows_*`)."""
    return all(_column_plan(plan.L[ax], True, dtype) is not None for ax in plan.taxes)


def _grid(indices, strides):
    """Element offsets sum_i indices[i] * strides[i] over the grid of the index arrays, in C
    order (flat, intp)."""
    off = np.zeros((), np.intp)
    for i, (idx, st) in enumerate(zip(indices, strides)):
        shape = [1] * len(indices)
        shape[i] = len(idx)
        off = off + (np.asarray(idx, np.intp) * st).reshape(shape)
    return np.ascontiguousarray(np.broadcast_to(off, tuple(len(i) for i in indices)).reshape(-1))


def _positions(place, L):
    start, count, step = place
    return (start + step * np.arange(count)) % L


def _index(desc):
    """("r", n): range(n); ("p", start, count, step, L): the positions of that placement."""
    return np.arange(desc[1]) if desc[0] == "r" else _positions(desc[1:4], desc[4])


@lru_cache(maxsize=256)
def _offsets(descs, strides):
    """_grid of the index arrays `descs` describe (see _index), kept between calls (read-only):
    building the row transforms' line offsets took about a sixth of a largek15 forward."""
    off = _grid([_index(d) for d in descs], strides)
    off.flags.writeable = False
    return off


@lru_cache(maxsize=256)
def _free_rows(desc, n):
    """The rows of range(n) that the placement `desc` (see _index) does not cover."""
    free = np.ones(n, bool)
    free[_index(desc)] = False
    free = np.flatnonzero(free)
    free.flags.writeable = False
    return free


def _elements(a):
    return [st // a.itemsize for st in a.strides]


def _spectrum_shape(plan, dtype):
    """The shape of one spectrum: blocked on the Cython core's transforms, (blocks, *L with the
    last transformed axis 1, FREQ_BLOCK), the half axis cut into blocks of FREQ_BLOCK
    frequencies stored one after the other, so that a block of columns of a plane is contiguous
    for the column transforms and the channel product; plan.F on pocketfft's."""
    if not _own_transforms(plan, dtype):
        return plan.F
    fb, last = _fft.freq_block(), plan.taxes[-1]
    return ((-(-plan.F[last] // fb),) + tuple(1 if i == last else plan.L[i] for i in range(SPATIAL))
            + (fb,))


def _spectra_own(src, places, plan, name, workers, columns=True):
    """_spectra by the Cython core, blocked (see _spectrum_shape): the real transform along the
    last transformed axis of only the lines holding data, written at their places (zero
    elsewhere), then the column transforms along the other axes in place (unless `columns` is
    false: _fused does them)."""
    taxes, L, last = plan.taxes, plan.L, plan.taxes[-1]
    out = _buffers.get(name, src.shape[:2] + _spectrum_shape(plan, src.dtype), _complex(src.dtype))
    other = [i for i in range(SPATIAL) if i != last]
    pos = [("p",) + tuple(places[i]) + (L[i],) for i in other]
    compact = taxes[-2] if columns and len(taxes) > 1 and src.size else None
    target = out
    if compact is not None:      # the rows with data only; columns_placed spreads them
        shape = list(out.shape)
        shape[3 + compact] = src.shape[2 + compact]
        target = _buffers.get(name + "_rows", tuple(shape), out.dtype)
        placed = _index(pos[other.index(compact)])
        pos[other.index(compact)] = ("r", len(placed))
    for i, p in zip(other, pos):
        if p[0] == "p" and p[2] < target.shape[3 + i]:
            target[_at(out.ndim, 3 + i, _free_rows(p, target.shape[3 + i]))] = 0
    if src.size:
        st = _elements(src)
        batch = tuple(("r", n) for n in src.shape[:2])
        src_off = _offsets(batch + tuple(("r", src.shape[2 + i]) for i in other),
                           tuple([st[0], st[1]] + [st[2 + i] for i in other]))
        tst = [2 * e for e in _elements(target)]
        dst_off = _offsets(batch + tuple(pos),
                           tuple([tst[0], tst[1]] + [tst[3 + i] for i in other]))
        forward = _column_plan(L[last], True, src.dtype)
        flat = target.view(src.dtype).reshape(-1)
        items = _fft.row_items(len(src_off), src.itemsize)
        threads = workers if out.size * 2 >= MIN_PARALLEL_POINTS else 1
        start, count, step = places[last]
        _fft.rows_r2c(src.ctypes.data, src_off, st[2 + last], count, start, step, flat, dst_off,
                      tst[2], L[last], *forward, 0, items, _threads(threads, items))
    else:
        out.fill(0)
    if compact is not None:
        _columns_placed(target, out, 3 + compact, placed, workers)
    for ax in taxes[:-1] if columns else ():
        if ax != compact:
            _columns(out, 3 + ax, True, workers)
    return out


def _columns_placed(src, out, axis, positions, workers):
    """The forward column transform along `axis` of `out`, whose only nonzero rows along it
    are src's, at `positions` (see _fft.pyx's columns_placed); items split as _columns'."""
    L = out.shape[axis]
    batch, ncols = math.prod(out.shape[:axis]), math.prod(out.shape[axis + 1:])
    real = out.real.dtype
    items = _fft.column_items(batch, ncols, real.itemsize)
    threads = workers if out.size * 2 >= MIN_PARALLEL_POINTS else 1
    flat_src, flat_out = src.view(real).reshape(-1), out.view(real).reshape(-1)
    pos = np.ascontiguousarray(positions, np.intp)
    plan = _column_plan(L, True, real)
    _fft.columns_placed(flat_src, flat_out, L, ncols, pos, *plan, 1.0, 0, items,
                        _threads(threads, items))


def _signals_own(spectra, places, plan, workers, dest=None, columns=True):
    """_signals by the Cython core on blocked spectra: the inverse column transforms in place
    (unless `columns` is false: _fused did them), then the inverse real transforms of only the
    lines at `places`, written at their positions into `dest` (else a buffer)."""
    taxes, L, last = plan.taxes, plan.L, plan.taxes[-1]
    for ax in taxes[:-1] if columns else ():
        _columns(spectra, 3 + ax, False, workers)
    counts = spectra.shape[:2] + tuple(p[1] for p in places)
    real = spectra.real.dtype
    if dest is None:
        dest = _buffers.get("signal_out", counts, real)
    if dest.size == 0:
        return dest
    other = [i for i in range(SPATIAL) if i != last]
    sst, dst = [2 * e for e in _elements(spectra)], _elements(dest)
    batch = tuple(("r", n) for n in counts[:2])
    src_off = _offsets(batch + tuple(("p",) + tuple(places[i]) + (L[i],) for i in other),
                       tuple([sst[0], sst[1]] + [sst[3 + i] for i in other]))
    dst_off = _offsets(batch + tuple(("r", counts[2 + i]) for i in other),
                       tuple([dst[0], dst[1]] + [dst[2 + i] for i in other]))
    inverse = _column_plan(L[last], False, real)
    flat = spectra.view(real).reshape(-1)
    items = _fft.row_items(len(src_off), dest.itemsize)
    threads = workers if spectra.size * 2 >= MIN_PARALLEL_POINTS else 1
    start, count, step = places[last]
    _fft.rows_c2r(flat, src_off, sst[2], dest.ctypes.data, dst_off, dst[2 + last], count, start,
                  step, L[last], *inverse, 1.0 / L[last], 0, items, _threads(threads, items))
    return dest


@lru_cache(maxsize=64)
def _tap_dft(L, k, d, lo, half, inverse, dtype):
    """The DFT between the k kernel taps, at positions (t*d - lo) mod L, and the frequencies.

    Forward (F x k): spectrum = D @ taps, F = L, or L//2 + 1 on the real axis (`half`).
    Inverse (k x F): taps = D @ spectrum with the 1/L; on the real axis the half spectrum stands
    for its mirror image too (weight 2 but at frequencies 0 and L/2) and the taps are the real
    part. Angles are reduced modulo L in integers, so they are exact before rounding.
    """
    f = np.arange(L // 2 + 1 if half else L)
    theta = 2 * np.pi * (np.outer(f, (np.arange(k) * d - lo) % L) % L) / L
    if not inverse:
        return np.exp(-1j * theta).astype(_complex(dtype))
    weight = np.ones(len(f))
    if half:
        weight[1:] = 2
        if L % 2 == 0:
            weight[-1] = 1
    return (np.exp(1j * theta) * (weight / L)[:, None]).T.astype(_complex(dtype))


def _along(a, ax, M, out, threads):
    """out = the matrix M (m x n) applied along spatial axis `ax` (of size n) of 5-D `a`.

    Along a leading axis this is the Cython core's matrix_along (complex), a GEMM with a complex
    scalar per (row, tap) vectorised along the contiguous trailing axes; along the last axis
    (the real taps' first step, or the real part at the end of the inverse) numpy's matmul, one
    BLAS GEMM per matrix of the stack on one BLAS thread (a BLAS pool spinning beside pocketfft's
    threads on the same cores slows both many times over). The stack is split over `threads`
    along its first axis; each matrix is computed alike whatever the split.
    """
    if out.size * M.shape[1] < MIN_PARALLEL_MACS:
        threads = 1
    if ax < SPATIAL - 1:
        a = np.ascontiguousarray(a, out.dtype)
        stacks, nw = math.prod(a.shape[:2 + ax]), math.prod(a.shape[3 + ax:])
        real = a.real.dtype
        flat = [np.ascontiguousarray(M, a.dtype).view(real).reshape(-1),
                a.view(real).reshape(-1), out.view(real).reshape(-1)]
        _fft.matrix_along(*flat, M.shape[0], M.shape[1], nw, 0, stacks,
                          _threads(threads, stacks))
        return out

    def part(lo, hi):
        with np.errstate(all="ignore"):                     # NaN: see _finite.py
            np.matmul(a[lo:hi], M.T, out=out[lo:hi])

    with _config.blas_single_threaded():
        _parallel(part, _split(a.shape[0], threads))
    return out


def _kernel_spectra(plan, w, workers):
    """Spectra (K, Cg, *F) of the kernel, tap t at (t*d - pad_low) mod L, in buffer
    "kernel_spectra": axis by axis from the few taps to all frequencies, by GEMM where that beats
    the FFT. The last ones computed on this thread are kept with a copy of their kernel: a call
    with equal kernel values and the same transform geometry (a layer's forward and then its
    input gradient, or inference with fixed weights) reuses them."""
    key = (plan.L, tuple(plan.taxes), tuple((a.k, a.d, a.lo) for a in plan.axes), w.shape,
           w.dtype.str)
    kept = _buffers.kernel
    if kept is not None and kept[0] == key and np.array_equal(kept[1], w):
        return kept[2]
    _buffers.kernel = None
    a = _kernel_transform(plan, w, workers)
    _buffers.kernel = (key, w.copy(), a)
    return a


def _kernel_transform(plan, w, workers):
    if _own_transforms(plan, w.dtype):      # blocked spectra (by GEMM measured no faster)
        return _spectra_own(w, [a.kernel_place() for a in plan.axes], plan, "kernel_spectra",
                            workers)
    a = w
    for i, ax in enumerate(reversed(plan.taxes)):
        axis, real = plan.axes[ax], ax == plan.taxes[-1]
        shape = list(a.shape)
        shape[2 + ax] = plan.F[ax]
        out = _buffers.get("kernel_spectra" if i == len(plan.taxes) - 1 else f"kernel{i % 2}",
                           tuple(shape), _complex(w.dtype))
        if _by_gemm(axis.k, axis.L):
            a = _along(a, ax, _tap_dft(axis.L, axis.k, axis.d, axis.lo, real, False, w.dtype), out,
                       workers)
            continue
        shape[2 + ax] = axis.L
        buf = _buffers.get("kernel_signal", tuple(shape), a.dtype) if real else out
        _place(buf, a, [axis.kernel_place() if j == ax else (0, shape[2 + j], 1)
                        for j in range(SPATIAL)])
        a = _r2c(buf, [2 + ax], out, workers) if real else _c2c(buf, [2 + ax], True, buf, workers)
    return a


def _kernel_signals(plan, spectra, workers):
    """The kernel taps of `spectra` (K, Cg, *F), overwritten: the inverse of _kernel_spectra."""
    if _own_transforms(plan, spectra.real.dtype):
        return np.array(_signals_own(spectra, [a.kernel_place() for a in plan.axes], plan,
                                     workers))
    a = spectra
    for ax in plan.taxes:
        axis, real = plan.axes[ax], ax == plan.taxes[-1]
        if _by_gemm(axis.k, axis.L):
            shape = list(a.shape)
            shape[2 + ax] = axis.k
            out = np.empty(shape, a.dtype)
            a = _along(a, ax, _tap_dft(axis.L, axis.k, axis.d, axis.lo, real, True, a.dtype), out,
                       workers)
            a = a.real if real else a
        elif real:
            shape = list(a.shape)
            shape[2 + ax] = axis.L
            a = _c2r(a, 2 + ax, axis.L, np.empty(shape, a.real.dtype), workers)
            a = _take(a, 2 + ax, axis.kernel_place(), axis.L)
        else:
            a = _take(_c2c(a, [2 + ax], False, a, workers), 2 + ax, axis.kernel_place(), axis.L)
    return np.ascontiguousarray(a)


# --- the channel product -----------------------------------------------------------------

_pool = None
_pool_lock = threading.Lock()


def _executor():
    """The pool of helper threads, created on first use. It starts a thread only when no idle
    one is left, so its bound is never reached by one call (the thread budget is far below)."""
    global _pool
    with _pool_lock:
        if _pool is None:
            _pool = ThreadPoolExecutor(max_workers=POOL_THREADS, thread_name_prefix="fastconv-fft")
        return _pool


def _split(count, parts):
    """`parts` (at most `count`) contiguous ranges covering range(count)."""
    parts = _threads(parts, count)
    return [(count * i // parts, count * (i + 1) // parts) for i in range(parts)]


def _threads(threads, items):
    """Threads for `items` work items: at most one each, at least one."""
    return max(1, min(threads, items))


def _parallel(fn, ranges):
    """fn(lo, hi) for every range, the first on this thread and the others on the pool's
    (the work drops the GIL); waits for all of them."""
    pending = [_executor().submit(fn, *r) for r in ranges[1:]]
    try:
        fn(*ranges[0])
    finally:
        for job in pending:
            job.result()


def _contraction(plan, a, b):
    """(rows of a, rows of b, j), then (strides, conjugate) of a and of b, and out's strides,
    in spectra, of the plan's channel product on spectra `a` and `b`."""
    spec = plan.spec
    G, K, C = spec.groups, spec.out_channels, spec.in_channels
    Kg, Cg = K // G, C // G
    if plan.op == "forward":         # a = X (nb, C), b = W (K, Cg), out = Y (nb, K)
        nb = a.shape[0]
        return (nb, Kg, Cg), (Cg, C, 1), False, (Kg * Cg, Cg, 1), True, (Kg, K, 1)
    if plan.op == "grad_input":      # a = GY (nb, K), b = W (K, Cg), out = GX (nb, C)
        nb = a.shape[0]
        return (nb, Cg, Kg), (Kg, K, 1), False, (Kg * Cg, 1, Cg), False, (Cg, C, 1)
    nb = b.shape[0]                  # a = GY (nb, K), b = X (nb, C), out = GW (K, Cg)
    return (Kg, Cg, nb), (Kg, 1, K), True, (Cg, 1, C), False, (Kg * Cg, Cg, 1)


def _fusable(plan):
    """Whether the plan's forward or input gradient runs fused (`_fused`): two transformed
    axes, all on the Cython core."""
    return len(plan.taxes) == 2 and _own_transforms(plan, plan.spec.dtype)


def _fused(plan, a, b, out, workers):
    """`a`'s column transforms, the channel product into `out` and out's inverse column
    transforms, block of columns by block (see _fft.pyx's `fused`); `a` is overwritten. Items
    (block of columns, sample) are split over the threads as in _product."""
    spec = plan.spec
    (na, nb, nj), sa, ca, sb, cb, so = _contraction(plan, a, b)
    L = plan.L[plan.taxes[0]]
    blocks = a.shape[2]
    real = spec.dtype
    geometry = (L, blocks, na, a.shape[1], out.shape[1], _column_plan(L, True, real),
                _column_plan(L, False, real), 1.0 / L, spec.groups, nb, nj, sa, ca, sb, cb, so)
    arrays = (a.view(real).reshape(-1), b.view(real).reshape(-1), out.view(real).reshape(-1))
    threads = workers
    if na * nb * nj * spec.groups * plan.freqs < MIN_PARALLEL_MACS:
        threads = 1
    items = _fft.fused_items(na, blocks)
    _fft.fused(*arrays, *geometry, 0, items, _threads(threads, items))


def _fused_sum(plan, a, b, out, workers):
    """The kernel gradient's 2-D pass: a's and b's column transforms and out += their channel
    product, block of columns by block (see _fft.pyx's `fused_sum`); a and b are overwritten.
    The blocks are split over the threads; each is computed alike whatever the split."""
    spec = plan.spec
    (na, nb, nj), sa, ca, sb, cb, so = _contraction(plan, a, b)
    L = plan.L[plan.taxes[0]]
    blocks = a.shape[2]
    real = spec.dtype
    geometry = (L, blocks, a.shape[0] * a.shape[1], b.shape[0] * b.shape[1],
                _column_plan(L, True, real), spec.groups, na, nb, nj, sa, ca, sb, cb, so)
    arrays = (a.view(real).reshape(-1), b.view(real).reshape(-1), out.view(real).reshape(-1))
    threads = workers
    if na * nb * nj * spec.groups * plan.freqs < MIN_PARALLEL_MACS:
        threads = 1
    _fft.fused_sum(*arrays, *geometry, 0, blocks, _threads(threads, blocks))


def _product(plan, a, b, out, accumulate, threads):
    """`out` (+)= the channel contraction of the plan's op on spectra `a` and `b` (see _fft.pyx).

    The work items are split into `threads` contiguous ranges run on OpenMP's threads. Each
    block is computed by one thread whatever the split, so the split never changes a result.
    The product needs no buffer of its own. (With pocketfft's transforms, only a fallback here,
    libgomp's threads spinning after the product slowed its workers; that path is tested, not
    timed.)
    """
    spec = plan.spec
    G = spec.groups
    dims, sa, ca, sb, cb, so = _contraction(plan, a, b)
    real = spec.dtype
    freqs = math.prod(a.shape[2:])
    items = _fft.items(freqs)
    if math.prod(dims) * G * freqs < MIN_PARALLEL_MACS:
        threads = 1
    arrays = (a.view(real).reshape(-1), b.view(real).reshape(-1), out.view(real).reshape(-1))
    geometry = (freqs, G, *dims, sa, ca, sb, cb, so, accumulate)
    _fft.channel_product(*arrays, *geometry, 0, items, _threads(threads, items))


# --- the three operations ----------------------------------------------------------------

def _passes(plan):
    """(sample slice, tile) of every pass, in a fixed order."""
    for n0 in range(0, plan.spec.batch, plan.chunk):
        for tile in itertools.product(*(range(a.tiles) for a in plan.axes)):
            yield slice(n0, min(n0 + plan.chunk, plan.spec.batch)), tile


def _outputs(plan, tile):
    return tuple(slice(o0, o0 + count)
                 for o0, count in (a.outputs(t) for a, t in zip(plan.axes, tile)))


def _window(plan, tile):
    return tuple(slice(*a.window(t)) for a, t in zip(plan.axes, tile))


def _through_kernel(plan, src, src_places, W, channels, dest_places, dest, fused, workers):
    """Spectra of src, their product with the kernel spectra W into `channels` channels, and back
    to signals (into dest where the layout allows; the returned array is the result)."""
    S = _spectra(src, src_places, plan, "in", workers, not fused)
    O = _buffers.get("out", S.shape[:1] + (channels,) + S.shape[2:], S.dtype)
    if fused:
        _fused(plan, S, W, O, workers)
    else:
        _product(plan, S, W, O, False, workers)
    return _signals(O, dest_places, plan, workers, dest, not fused)


def forward(spec, x, w):
    plan = _current_plan(spec, "forward")
    if plan.zero:
        return _finite.padding_only(spec, "forward", x, w, w)
    workers = _config.get_num_threads()
    fused = _fusable(plan)
    W = _kernel_spectra(plan, w, workers)
    y = np.empty(spec.y_shape, spec.dtype)
    for batch, tile in _passes(plan):
        out = (batch, slice(None)) + _outputs(plan, tile)
        xs = x[(batch, slice(None)) + _window(plan, tile)]
        if xs.size == 0:
            y[out] = 0
            continue
        dest = y[out]
        part = _through_kernel(plan, xs, [a.input_place(t) for a, t in zip(plan.axes, tile)], W,
                               spec.out_channels,
                               [a.output_place(t) for a, t in zip(plan.axes, tile)], dest, fused,
                               workers)
        if part is not dest:
            dest[...] = part
    _buffers.trim()
    return _finite.finite_or_exact(y, spec, "forward", x, w)


def grad_input(spec, gy, w):
    plan = _current_plan(spec, "grad_input")
    if plan.zero:
        return np.zeros(spec.x_shape, spec.dtype)
    workers = _config.get_num_threads()
    fused = _fusable(plan)
    W = _kernel_spectra(plan, w, workers)
    read = [a.window(0) for a in plan.axes]
    whole = plan.tiles == 1 and all(w == (0, a.n) for w, a in zip(read, plan.axes))
    gx = np.empty(spec.x_shape, spec.dtype) if whole else np.zeros(spec.x_shape, spec.dtype)
    for batch, tile in _passes(plan):
        target = (batch, slice(None)) + _window(plan, tile)
        if gx[target].size == 0:
            continue
        gys = gy[(batch, slice(None)) + _outputs(plan, tile)]
        dest = gx[target] if plan.tiles == 1 else None
        part = _through_kernel(plan, gys, [a.output_place(t) for a, t in zip(plan.axes, tile)], W,
                               spec.in_channels,
                               [a.input_place(t) for a, t in zip(plan.axes, tile)], dest, fused,
                               workers)
        if dest is None:
            gx[target] += part
        elif part is not dest:
            dest[...] = part
    _buffers.trim()
    return _finite.finite_or_exact(gx, spec, "grad_input", gy, w)


def grad_kernel(spec, x, gy):
    plan = _current_plan(spec, "grad_kernel")
    if plan.zero:
        return _finite.padding_only(spec, "grad_kernel", x, gy, gy)
    workers = threads = _config.get_num_threads()
    fused = _fusable(plan)
    GW = _buffers.get("kernel", spec.w_shape[:2] + _spectrum_shape(plan, spec.dtype),
                      _complex(spec.dtype))
    GW.fill(0)
    for batch, tile in _passes(plan):
        xs = x[(batch, slice(None)) + _window(plan, tile)]
        if xs.size == 0:
            continue
        X = _spectra(xs, [a.input_place(t) for a, t in zip(plan.axes, tile)], plan, "in", workers,
                     not fused)
        gys = gy[(batch, slice(None)) + _outputs(plan, tile)]
        GY = _spectra(gys, [a.output_place(t) for a, t in zip(plan.axes, tile)], plan, "out",
                      workers, not fused)
        if fused:
            _fused_sum(plan, GY, X, GW, workers)
        else:
            _product(plan, GY, X, GW, True, threads)
    gw = _kernel_signals(plan, GW, workers).astype(spec.dtype, copy=False)
    _buffers.trim()
    return _finite.finite_or_exact(gw, spec, "grad_kernel", x, gy)
