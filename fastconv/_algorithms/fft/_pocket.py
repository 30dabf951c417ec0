"""pocketfft's transforms (SciPy's): the "pocketfft" back-end, for plans with a transform length
that the Cython core's radices do not cover.

Real-to-complex transforms in the input's precision, called with output buffers that are kept
between calls, pruned to the lines that hold data on the way in and to the positions needed on
the way out; complex transforms along a leading axis go to the core's column FFT where it has
the radices (`_own.columns`). The kernel's few taps go to (and come back from) the frequencies
by products with the DFT matrix where that is cheaper than an FFT (`Plan.gemm`). Spectra are
plain (B, C, *plan.F). pocketfft runs its own threads ("workers"), one for small transforms.
"""
import functools

import numpy as np

from ... import _aligned
from . import _own, _parallel
from ._buffers import buffers
from ._places import complex_dtype, place, take
from ._plan import scipy_fft
from ._taps import along, tap_dft

@functools.cache
def _pocketfft():
    """pocketfft itself: the same transforms as scipy.fft, but writing into given buffers."""
    try:
        from scipy.fft._pocketfft import pypocketfft
    except ImportError:                              # pragma: no cover - other SciPy layouts
        return None
    return pypocketfft

SPATIAL = 3


def _workers(a, workers):
    """pocketfft's threads for a transform of `a`: one for small ones, where waking a second
    thread costs more than it saves."""
    return _parallel.for_points(workers, a.size * (2 if np.iscomplexobj(a) else 1))


def r2c(a, axes, out, workers):
    workers = _workers(a, workers)
    if _pocketfft() is not None:
        return _pocketfft().r2c(a, tuple(axes), True, 0, out, workers)
    out[...] = scipy_fft.rfftn(a, axes=axes, workers=workers)
    return out


def c2c(a, axes, forward, out, workers):
    if len(axes) == 1 and out is a and axes[0] < a.ndim - 1:
        done = _own.columns(a, axes[0], forward, workers)
        if done is not None:
            return done
    workers = _workers(a, workers)
    if _pocketfft() is not None:
        return _pocketfft().c2c(a, tuple(axes), forward, 0 if forward else 2, out, workers)
    out[...] = (scipy_fft.fftn if forward else scipy_fft.ifftn)(a, axes=axes, workers=workers)
    return out


def c2r(a, axis, n, out, workers):
    workers = _workers(out, workers)
    if _pocketfft() is not None:
        return _pocketfft().c2r(a, (axis,), n, False, 2, out, workers)
    out[...] = scipy_fft.irfft(a, n=n, axis=axis, workers=workers)
    return out


# --- the back-end's interface (see the package's __init__) --------------------------------

def spectrum_shape(plan):
    return plan.F


def spectra(src, places, plan, name, workers, columns_too=True):
    """Spectra (B, Cx, *F) of the real `src` (B, Cx, *extents) placed per axis, in buffer `name`.

    Axes whose data fills less than plan.prune_below of L are transformed last, after the
    others, on only the lines that hold data; the rest go in one pocketfft call on a zero-padded
    copy. (`columns_too` is the own back-end's; a pocketfft plan never runs fused.)
    """
    taxes, L = plan.taxes, plan.L
    pruned = [ax for ax in taxes[:-1] if src.shape[2 + ax] < plan.prune_below * L[ax]]
    bulk = [ax for ax in taxes if ax not in pruned]
    real_shape = src.shape[:2] + tuple(src.shape[2 + i] if i in pruned else L[i]
                                       for i in range(SPATIAL))
    buf = buffers.get("signal", real_shape, src.dtype)
    place(buf, src, [(0, src.shape[2 + i], 1) if i in pruned else places[i]
                     for i in range(SPATIAL)])
    shape = list(real_shape)
    shape[2 + taxes[-1]] = plan.F[taxes[-1]]
    out = buffers.get(name if not pruned else "stage0", tuple(shape), complex_dtype(src.dtype))
    cur = r2c(buf, [2 + ax for ax in bulk], out, workers)
    for i, ax in enumerate(pruned):
        shape[2 + ax] = L[ax]
        nxt = buffers.get(name if i == len(pruned) - 1 else f"stage{i + 1}", tuple(shape),
                          out.dtype)
        place(nxt, cur, [places[j] if j == ax else (0, shape[2 + j], 1) for j in range(SPATIAL)])
        cur = c2c(nxt, [2 + ax], True, nxt, workers)
    return cur


def signals(spectra_, places, plan, workers, dest=None, columns_too=True):
    """The real signals at `places` of `spectra_` (overwritten), as a view into a buffer
    (`dest` is the own back-end's: the caller copies)."""
    taxes, L = plan.taxes, plan.L
    last = taxes[-1]
    a = spectra_
    for ax in taxes[:-1]:
        a = take(c2c(a, [2 + ax], False, a, workers), 2 + ax, places[ax], L[ax])
    shape = list(a.shape)
    shape[2 + last] = L[last]
    a = c2r(a, 2 + last, L[last], buffers.get("signal_out", tuple(shape), spectra_.real.dtype),
            workers)
    for ax in range(SPATIAL):
        if ax == last or ax not in taxes:
            a = take(a, 2 + ax, places[ax], L[ax])
    return a


def kernel_transform(plan, w, workers):
    """Spectra (K, Cg, *F) of the kernel, tap t at (t*d - pad_low) mod L, in buffer
    "kernel_spectra": axis by axis from the few taps to all frequencies, by GEMM where the plan
    says (`plan.gemm`), else by FFT of the placed taps."""
    a = w
    for i, ax in enumerate(reversed(plan.taxes)):
        axis, real = plan.axes[ax], ax == plan.taxes[-1]
        shape = list(a.shape)
        shape[2 + ax] = plan.F[ax]
        out = buffers.get("kernel_spectra" if i == len(plan.taxes) - 1 else f"kernel{i % 2}",
                          tuple(shape), complex_dtype(w.dtype))
        if plan.gemm[ax]:
            a = along(a, ax, tap_dft(axis.L, axis.k, axis.d, axis.lo, real, False, w.dtype), out,
                      workers)
            continue
        shape[2 + ax] = axis.L
        buf = buffers.get("kernel_signal", tuple(shape), a.dtype) if real else out
        place(buf, a, [axis.kernel_place() if j == ax else (0, shape[2 + j], 1)
                       for j in range(SPATIAL)])
        a = r2c(buf, [2 + ax], out, workers) if real else c2c(buf, [2 + ax], True, buf, workers)
    return a


def kernel_signals(plan, spectra_, workers):
    """The kernel taps of `spectra_` (K, Cg, *F), overwritten: kernel_transform's inverse."""
    a = spectra_
    for ax in plan.taxes:
        axis, real = plan.axes[ax], ax == plan.taxes[-1]
        if plan.gemm[ax]:
            shape = list(a.shape)
            shape[2 + ax] = axis.k
            out = _aligned.empty(shape, a.dtype)
            a = along(a, ax, tap_dft(axis.L, axis.k, axis.d, axis.lo, real, True, a.dtype), out,
                      workers)
            a = a.real if real else a
        elif real:
            shape = list(a.shape)
            shape[2 + ax] = axis.L
            a = c2r(a, 2 + ax, axis.L, _aligned.empty(shape, a.real.dtype), workers)
            a = take(a, 2 + ax, axis.kernel_place(), axis.L)
        else:
            a = take(c2c(a, [2 + ax], False, a, workers), 2 + ax, axis.kernel_place(), axis.L)
    return np.ascontiguousarray(a)
