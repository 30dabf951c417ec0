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

The modules, one idea each:

    _plan      the plan of a call (tiles, lengths, chunk, back-end, knobs, workspace)
    _cost      the cost model: a plan's predicted seconds
    _own       the "own" back-end: the Cython core's transforms, blocked spectra
    _pocket    the "pocketfft" back-end: SciPy's transforms, for lengths the core lacks
    _taps      the kernel taps' DFT by matrix product (pocketfft's back-end)
    _kernel    the kernel spectra kept for an equal kernel
    _product   the channel product, alone or fused with a 2-D pass
    _places    placements of signals in transform buffers
    _buffers   scratch kept between calls
    _parallel  how many OpenMP threads a step runs on

The back-end is chosen once, in the plan (`Plan.backend`); a back-end module offers
spectrum_shape, spectra, signals, kernel_transform and kernel_signals. Every step is one call
into the Cython core `fastconv._fft` (or pocketfft) on the call's threads, one after the
other, never at once (Python threads woke in 50-80 us, three times a call: a 2-thread largek15
forward measured 1.47 ms on them and 1.12 ms on OpenMP's).
"""
import itertools

import numpy as np

from ... import _aligned, _config, _finite
from . import _kernel, _own, _pocket, _product
from ._buffers import buffers
from ._places import complex_dtype
from ._plan import Plan, best

NAME = "fft"
# A transform overflows on finite data near the dtype's maximum and smears a NaN or Inf over its
# line: the registry checks every result (_finite).
NONFINITE = dict.fromkeys(("forward", "grad_input", "grad_kernel"), _finite.CHECK_RESULT)
BACKENDS = {"own": _own, "pocketfft": _pocket}


# --- the interface -----------------------------------------------------------------------

def current_plan(spec, op):
    """The plan a call of `op` on `spec` runs under the current workspace limit (cached)."""
    return best(spec, op, _config.get_workspace_limit())


def supports(spec, op):
    if current_plan(spec, op) is None:
        return False, (f"even one tile of one sample (its spectra and the kernel's) exceeds the "
                       f"workspace limit of {_config.get_workspace_limit()} bytes")
    return True, ""


def workspace(spec, op):
    """Bytes a call allocates: its buffers and the Cython core's scratch on its threads."""
    plan = current_plan(spec, op)
    return plan.workspace(plan.chunk, plan.threads(_config.get_num_threads()))


def cost(spec, op):
    return current_plan(spec, op).seconds(_config.model_threads(spec))


# --- the three operations ----------------------------------------------------------------

def _begin(spec, op, plan):
    """The call's plan (current_plan unless given) and its threads."""
    plan = current_plan(spec, op) if plan is None else plan
    return plan, plan.threads(_config.get_num_threads())


def _end(plan, result):
    """The call's result; the kept buffers trimmed."""
    buffers.trim(plan.retain_bytes)
    return result


def _padding_only(shape, spec, multiplied):
    """The result of forward or grad_kernel where every output reads only padding: zeros, unless
    `multiplied` (the weights, or gy) holds an Inf or NaN, whose product with the padding's
    zeros is NaN in the textbook sum: then None (the registry sums)."""
    return np.zeros(shape, spec.dtype) if _finite.all_finite(multiplied) else None


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


def _input_places(plan, tile):
    return [a.input_place(t) for a, t in zip(plan.axes, tile)]


def _output_places(plan, tile):
    return [a.output_place(t) for a, t in zip(plan.axes, tile)]


def _through_kernel(plan, src, src_places, W, channels, dest_places, dest, workers):
    """Spectra of src, their product with the kernel spectra W into `channels` channels, and back
    to signals (into dest where the layout allows; the returned array is the result)."""
    backend = BACKENDS[plan.backend]
    S = backend.spectra(src, src_places, plan, "in", workers, not plan.fused)
    O = buffers.get("out", S.shape[:1] + (channels,) + S.shape[2:], S.dtype)
    if plan.fused:
        _product.fused(plan, S, W, O, workers)
    else:
        _product.product(plan, S, W, O, False, workers)
    return backend.signals(O, dest_places, plan, workers, dest, not plan.fused)


def forward(spec, x, w, plan=None):
    """y = x (*) w; `plan` (default: current_plan) says how."""
    plan, workers = _begin(spec, "forward", plan)
    if plan.zero:
        return _padding_only(spec.y_shape, spec, w)
    W = _kernel.spectra(plan, w, workers, BACKENDS[plan.backend])
    y = _aligned.empty(spec.y_shape, spec.dtype)
    for batch, tile in _passes(plan):
        out = (batch, slice(None)) + _outputs(plan, tile)
        xs = x[(batch, slice(None)) + _window(plan, tile)]
        if xs.size == 0:
            y[out] = 0
            continue
        dest = y[out]
        part = _through_kernel(plan, xs, _input_places(plan, tile), W, spec.out_channels,
                               _output_places(plan, tile), dest, workers)
        if part is not dest:
            dest[...] = part
    return _end(plan, y)


def grad_input(spec, gy, w, plan=None):
    """gx, the transpose of forward applied to gy; `plan` (default: current_plan) says how."""
    plan, workers = _begin(spec, "grad_input", plan)
    if plan.zero:
        return _aligned.zeros(spec.x_shape, spec.dtype)
    W = _kernel.spectra(plan, w, workers, BACKENDS[plan.backend])
    read = [a.window(0) for a in plan.axes]
    whole = plan.tiles == 1 and all(w == (0, a.n) for w, a in zip(read, plan.axes))
    gx = (_aligned.empty if whole else _aligned.zeros)(spec.x_shape, spec.dtype)
    for batch, tile in _passes(plan):
        target = (batch, slice(None)) + _window(plan, tile)
        if gx[target].size == 0:
            continue
        gys = gy[(batch, slice(None)) + _outputs(plan, tile)]
        dest = gx[target] if plan.tiles == 1 else None
        part = _through_kernel(plan, gys, _output_places(plan, tile), W, spec.in_channels,
                               _input_places(plan, tile), dest, workers)
        if dest is None:
            gx[target] += part
        elif part is not dest:
            dest[...] = part
    return _end(plan, gx)


def grad_kernel(spec, x, gy, plan=None):
    """gw, summed over the batch; `plan` (default: current_plan) says how."""
    plan, workers = _begin(spec, "grad_kernel", plan)
    if plan.zero:
        return _padding_only(spec.w_shape, spec, gy)
    backend = BACKENDS[plan.backend]
    GW = buffers.get("kernel", spec.w_shape[:2] + backend.spectrum_shape(plan),
                     complex_dtype(spec.dtype))
    GW.fill(0)
    for batch, tile in _passes(plan):
        xs = x[(batch, slice(None)) + _window(plan, tile)]
        if xs.size == 0:
            continue
        X = backend.spectra(xs, _input_places(plan, tile), plan, "in", workers, not plan.fused)
        gys = gy[(batch, slice(None)) + _outputs(plan, tile)]
        GY = backend.spectra(gys, _output_places(plan, tile), plan, "out", workers,
                             not plan.fused)
        if plan.fused:
            _product.fused_sum(plan, GY, X, GW, workers)
        else:
            _product.product(plan, GY, X, GW, True, workers)
    gw = backend.kernel_signals(plan, GW, workers).astype(spec.dtype, copy=False)
    return _end(plan, gw)


__all__ = ["NAME", "Plan", "current_plan", "supports", "workspace", "cost", "forward",
           "grad_input", "grad_kernel"]
