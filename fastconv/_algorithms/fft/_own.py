"""The Cython core's own transforms (`fastconv._fft`, src/_fft_columns.h): the "own" back-end.

A complex FFT along the strided axes, vectorised over blocks of adjacent columns (`columns`),
and real transforms along the last transformed axis that pair two lines as one complex FFT and
move lines in and out of the vector lanes by in-register transposes (`rows_r2c`, `rows_c2r`),
reading only the lines that hold data and writing only the positions needed (straight into the
result). Their spectra are blocked: the half axis is cut into blocks of FREQ_BLOCK frequencies
stored one after the other, so that a block of columns of a plane is contiguous (see
`spectrum_shape`). Every transform length must factor into radices up to `_fft.max_radix()`
(always, for the lengths `next_fast_len` gives). Work items are split over OpenMP threads; each
is computed alike whatever the split. The kernel's spectra are computed by the same transforms
(by GEMM measured no faster).
"""
from functools import lru_cache
import math

import numpy as np

from ... import _fft
from . import _parallel
from ._buffers import buffers
from ._places import at, complex_dtype

SPATIAL = 3


def radices(L):
    """L's factors for the column FFT, fours first, or None if one exceeds its largest radix."""
    out = []
    while L % 4 == 0 and L > 4:
        out.append(4)
        L //= 4
    p = 2
    while L > 1:
        while L % p and p <= _fft.max_radix():
            p += 1
        if p > _fft.max_radix():
            return None
        out.append(p)
        L //= p
    return out or [1]


def takes(L):
    """Whether the core transforms length L (column_plan(L, ...) is not None), without
    building the plan's tables."""
    return radices(L) not in (None, [1])


@lru_cache(maxsize=64)
def column_plan(L, forward, dtype):
    """(radices, twiddles, roots) of the column FFT of length L (see src/_fft_columns.h), or
    None. Angles are reduced modulo the length in integers, so they are exact before rounding."""
    if not takes(L):
        return None
    radix = radices(L)
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


def columns(a, axis, forward, workers):
    """The complex FFT of `a` along `axis` in place (scaled 1/L when inverse), by the Cython core
    when `a` is C-contiguous, else None. Items (sample, block of columns) are split over the
    threads; each is computed alike whatever the split."""
    L = a.shape[axis]
    plan = column_plan(L, forward, a.real.dtype) if a.flags.c_contiguous else None
    if plan is None or a.size == 0:
        return None
    batch, ncols = math.prod(a.shape[:axis]), math.prod(a.shape[axis + 1:])
    items = _fft.column_items(batch, ncols, a.real.dtype.itemsize)
    threads = _parallel.for_points(workers, a.size * 2)
    flat = a.view(a.real.dtype).reshape(-1)
    scale = 1.0 if forward else 1.0 / L
    _fft.columns(flat, L, ncols, *plan, scale, 0, items, _parallel.threads(threads, items))
    return a


def columns_placed(src, out, axis, positions, workers):
    """The forward column transform along `axis` of `out`, whose only nonzero rows along it
    are src's, at `positions` (see _fft.pyx's columns_placed); items split as `columns`'."""
    L = out.shape[axis]
    batch, ncols = math.prod(out.shape[:axis]), math.prod(out.shape[axis + 1:])
    real = out.real.dtype
    items = _fft.column_items(batch, ncols, real.itemsize)
    threads = _parallel.for_points(workers, out.size * 2)
    flat_src, flat_out = src.view(real).reshape(-1), out.view(real).reshape(-1)
    pos = np.ascontiguousarray(positions, np.intp)
    plan = column_plan(L, True, real)
    _fft.columns_placed(flat_src, flat_out, L, ncols, pos, *plan, 1.0, 0, items,
                        _parallel.threads(threads, items))


# --- line offsets of the row transforms --------------------------------------------------

def _grid(indices, strides):
    """Element offsets sum_i indices[i] * strides[i] over the grid of the index arrays, in C
    order (flat, intp)."""
    off = np.zeros((), np.intp)
    for i, (idx, st) in enumerate(zip(indices, strides)):
        shape = [1] * len(indices)
        shape[i] = len(idx)
        off = off + (np.asarray(idx, np.intp) * st).reshape(shape)
    return np.ascontiguousarray(np.broadcast_to(off, tuple(len(i) for i in indices)).reshape(-1))


def _index(desc):
    """("r", n): range(n); ("p", start, count, step, L): the positions of that placement."""
    if desc[0] == "r":
        return np.arange(desc[1])
    start, count, step, L = desc[1:]
    return (start + step * np.arange(count)) % L


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


# --- the back-end's interface (see the package's __init__) --------------------------------

def spectrum_shape(plan):
    """The shape of one spectrum, blocked: (blocks, *L with the last transformed axis 1,
    FREQ_BLOCK), the half axis cut into blocks of FREQ_BLOCK frequencies stored one after the
    other, so that a block of columns of a plane is contiguous for the column transforms and
    the channel product."""
    fb, last = _fft.freq_block(), plan.taxes[-1]
    return ((-(-plan.F[last] // fb),) + tuple(1 if i == last else plan.L[i] for i in range(SPATIAL))
            + (fb,))


def spectra(src, places, plan, name, workers, columns_too=True):
    """Blocked spectra (B, Cx, *spectrum_shape) of the real `src` (B, Cx, *extents) placed per
    axis, in buffer `name`: the real transform along the last transformed axis of only the
    lines holding data, written at their places (zero elsewhere), then the column transforms
    along the other axes in place (unless `columns_too` is false: the fused pass does them)."""
    taxes, L, last = plan.taxes, plan.L, plan.taxes[-1]
    out = buffers.get(name, src.shape[:2] + spectrum_shape(plan), complex_dtype(src.dtype))
    other = [i for i in range(SPATIAL) if i != last]
    pos = [("p",) + tuple(places[i]) + (L[i],) for i in other]
    compact = taxes[-2] if columns_too and len(taxes) > 1 and src.size else None
    target = out
    if compact is not None:      # the rows with data only; columns_placed spreads them
        shape = list(out.shape)
        shape[3 + compact] = src.shape[2 + compact]
        target = buffers.get(name + "_rows", tuple(shape), out.dtype)
        placed = _index(pos[other.index(compact)])
        pos[other.index(compact)] = ("r", len(placed))
    for i, p in zip(other, pos):
        if p[0] == "p" and p[2] < target.shape[3 + i]:
            target[at(out.ndim, 3 + i, _free_rows(p, target.shape[3 + i]))] = 0
    if src.size:
        st = _elements(src)
        batch = tuple(("r", n) for n in src.shape[:2])
        src_off = _offsets(batch + tuple(("r", src.shape[2 + i]) for i in other),
                           tuple([st[0], st[1]] + [st[2 + i] for i in other]))
        tst = [2 * e for e in _elements(target)]
        dst_off = _offsets(batch + tuple(pos),
                           tuple([tst[0], tst[1]] + [tst[3 + i] for i in other]))
        forward = column_plan(L[last], True, src.dtype)
        flat = target.view(src.dtype).reshape(-1)
        items = _fft.row_items(len(src_off), src.itemsize)
        threads = _parallel.for_points(workers, out.size * 2)
        start, count, step = places[last]
        _fft.rows_r2c(src.ctypes.data, src_off, st[2 + last], count, start, step, flat, dst_off,
                      tst[2], L[last], *forward, 0, items, _parallel.threads(threads, items))
    else:
        out.fill(0)
    if compact is not None:
        columns_placed(target, out, 3 + compact, placed, workers)
    for ax in taxes[:-1] if columns_too else ():
        if ax != compact:
            columns(out, 3 + ax, True, workers)
    return out


def signals(spectra, places, plan, workers, dest=None, columns_too=True):
    """The real signals at `places` of blocked `spectra` (overwritten): the inverse column
    transforms in place (unless `columns_too` is false: the fused pass did them), then the
    inverse real transforms of only the lines at `places`, written at their positions into
    `dest` (any strides; else a buffer), which is returned."""
    taxes, L, last = plan.taxes, plan.L, plan.taxes[-1]
    for ax in taxes[:-1] if columns_too else ():
        columns(spectra, 3 + ax, False, workers)
    counts = spectra.shape[:2] + tuple(p[1] for p in places)
    real = spectra.real.dtype
    if dest is None:
        dest = buffers.get("signal_out", counts, real)
    if dest.size == 0:
        return dest
    other = [i for i in range(SPATIAL) if i != last]
    sst, dst = [2 * e for e in _elements(spectra)], _elements(dest)
    batch = tuple(("r", n) for n in counts[:2])
    src_off = _offsets(batch + tuple(("p",) + tuple(places[i]) + (L[i],) for i in other),
                       tuple([sst[0], sst[1]] + [sst[3 + i] for i in other]))
    dst_off = _offsets(batch + tuple(("r", counts[2 + i]) for i in other),
                       tuple([dst[0], dst[1]] + [dst[2 + i] for i in other]))
    inverse = column_plan(L[last], False, real)
    flat = spectra.view(real).reshape(-1)
    items = _fft.row_items(len(src_off), dest.itemsize)
    threads = _parallel.for_points(workers, spectra.size * 2)
    start, count, step = places[last]
    _fft.rows_c2r(flat, src_off, sst[2], dest.ctypes.data, dst_off, dst[2 + last], count, start,
                  step, L[last], *inverse, 1.0 / L[last], 0, items,
                  _parallel.threads(threads, items))
    return dest


def kernel_transform(plan, w, workers):
    """The kernel's blocked spectra (K, Cg, *spectrum_shape), tap t at (t*d - pad_low) mod L,
    in buffer "kernel_spectra"."""
    return spectra(w, [a.kernel_place() for a in plan.axes], plan, "kernel_spectra", workers)


def kernel_signals(plan, spectra_, workers):
    """The kernel taps of blocked `spectra_` (K, Cg, ...), overwritten: kernel_transform's
    inverse."""
    return np.array(signals(spectra_, [a.kernel_place() for a in plan.axes], plan, workers))
