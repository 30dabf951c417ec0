"""Reference locally connected and tiled convolution in plain NumPy (part of `fastconv.reference`).

Straight from section 9.5 of the chapter, in 0-based indices, with the input already padded:

    eq. 9.9  (unshared)  y[b, i, o] = sum_{l, m} xp[b, l, o * s + m * d] w[o][i, l, m]
    eq. 9.10 (tiled)     y[b, i, o] = sum_{l, m} xp[b, l, o * s + m * d] w[o % t][i, l, m]

(``o``, ``m``, ``s``, ``d``, ``t`` are vectors over the spatial axes). Locally connected weights
are ``(*out, K, C, *kernel)``, tiled weights ``(*t, K, C, *kernel)``. Every function loops over
the output positions, one window of the padded input at a time, in float64; the two gradients
walk the same windows. Nothing is shared with the fast code, nor with the convolution reference:
the arguments are parsed here from the text of docs/CONTRACT.md.
"""

import itertools

import numpy as np

from ._reference_common import real_array, result_dtype

__all__ = ["locally_connected", "locally_connected_grad_input", "locally_connected_grad_kernel",
           "tiled_conv", "tiled_conv_grad_input", "tiled_conv_grad_kernel"]


def _ints(value, nd, name, minimum):
    values = [value] * nd if np.ndim(value) == 0 else list(value)
    if len(values) != nd or any(int(v) != v or int(v) < minimum for v in values):
        raise ValueError(f"{name}: expected an int >= {minimum} or {nd} of them, got {value!r}")
    return [int(v) for v in values]


def _pads(padding, n, k, s, d):
    """(low, high) zero padding per axis from an int, ints, pairs or 'valid'/'same'/'full'."""
    nd = len(k)
    eff = [dd * (kk - 1) + 1 for kk, dd in zip(k, d)]
    if isinstance(padding, str):
        if padding == "valid":
            return [(0, 0)] * nd
        if padding == "full":
            return [(e - 1, e - 1) for e in eff]
        if padding == "same":
            totals = [max((-(-nn // ss) - 1) * ss + e - nn, 0) for nn, ss, e in zip(n, s, eff)]
            return [(tot // 2, tot - tot // 2) for tot in totals]
        raise ValueError(f"padding: unknown string {padding!r}")
    if np.ndim(padding) == 0:
        padding = [padding] * nd
    if len(padding) != nd:
        raise ValueError(f"padding: expected {nd} entries, got {padding!r}")
    pairs = [(p, p) if np.ndim(p) == 0 else tuple(p) for p in padding]
    if any(len(p) != 2 or min(p) < 0 for p in pairs):
        raise ValueError(f"padding: expected non-negative ints or (low, high) pairs, "
                         f"got {padding!r}")
    return [(int(lo), int(hi)) for lo, hi in pairs]


def _geometry(n, k, stride, padding, dilation):
    """(stride, dilation, pads, out) of one call, out[i] = floor((n + lo + hi - eff) / s) + 1."""
    nd = len(k)
    s = _ints(stride, nd, "stride", 1)
    d = _ints(dilation, nd, "dilation", 1)
    pads = _pads(padding, n, k, s, d)
    out = []
    for nn, kk, ss, dd, (lo, hi) in zip(n, k, s, d, pads):
        if nn + lo + hi < dd * (kk - 1) + 1:
            raise ValueError("x: the kernel is larger than the padded input")
        out.append((nn + lo + hi - dd * (kk - 1) - 1) // ss + 1)
    return s, d, pads, tuple(out)


def _window(o, k, s, d):
    """The index of the padded input that output position o reads: (:, :, o*s + m*d for m < k)."""
    return (slice(None), slice(None)) + tuple(slice(oo * ss, oo * ss + dd * (kk - 1) + 1, dd)
                                              for oo, kk, ss, dd in zip(o, k, s, d))


def _pad(x, pads):
    return np.pad(x.astype(np.float64), [(0, 0), (0, 0)] + [tuple(p) for p in pads])


def _crop(xp, pads):
    return xp[(slice(None), slice(None)) + tuple(slice(lo, xp.shape[2 + i] - hi)
                                                 for i, (lo, hi) in enumerate(pads))]


# --- the two weight layouts: which kernel output position o uses ----------------------------

def _unshared(w_shape, out):
    nd = (len(w_shape) - 2) // 2
    if tuple(w_shape[:nd]) != tuple(out):
        raise ValueError(f"w: expected one kernel per output position {tuple(out)}, got shape "
                         f"{tuple(w_shape)}")
    return lambda o: tuple(o)


def _tiled(w_shape, out):
    nd = (len(w_shape) - 2) // 2
    tiles = tuple(w_shape[:nd])
    if min(tiles) < 1:
        raise ValueError(f"w: expected tile counts >= 1, got shape {tuple(w_shape)}")
    return lambda o: tuple(oo % t for oo, t in zip(o, tiles))


def _split(w_shape, x_ndim, name):
    if len(w_shape) % 2 or len(w_shape) < 4 or x_ndim != (len(w_shape) - 2) // 2 + 2:
        raise ValueError(f"{name}: shape {tuple(w_shape)} does not fit an input with {x_ndim} "
                         f"dimensions")
    nd = (len(w_shape) - 2) // 2
    return nd, tuple(w_shape[nd + 2:])


def _forward(x, w, bias, stride, padding, dilation, select):
    x, w = real_array(x, "x"), real_array(w, "w")
    b = None if bias is None else real_array(bias, "bias")
    dtype = result_dtype(x, w, b)
    nd, k = _split(w.shape, x.ndim, "w")
    if x.shape[1] != w.shape[nd + 1]:
        raise ValueError(f"x: expected {w.shape[nd + 1]} channels, got shape {x.shape}")
    s, d, pads, out = _geometry(x.shape[2:], k, stride, padding, dilation)
    kernel_of = select(w.shape, out)
    xp, w64 = _pad(x, pads), w.astype(np.float64)
    y = np.zeros((x.shape[0], w.shape[nd]) + out)
    for o in itertools.product(*map(range, out)):
        patch = xp[_window(o, k, s, d)]                                  # (N, C, *k)
        y[(slice(None), slice(None)) + o] = np.tensordot(patch, w64[kernel_of(o)],
                                                         (list(range(1, nd + 2)),) * 2)
    if b is not None:
        b64 = b.astype(np.float64)
        if b.ndim == 1:
            y += b64.reshape((1, -1) + (1,) * nd)
        else:
            for o in itertools.product(*map(range, out)):
                y[(slice(None), slice(None)) + o] += b64[(slice(None),) + kernel_of(o)]
    return y.astype(dtype)


def _grad_input(gy, w, input_shape, stride, padding, dilation, select):
    gy, w = real_array(gy, "gy"), real_array(w, "w")
    nd, k = _split(w.shape, gy.ndim, "w")
    n = tuple(input_shape)[-nd:]
    s, d, pads, out = _geometry(n, k, stride, padding, dilation)
    kernel_of = select(w.shape, out)
    if gy.shape != (gy.shape[0], w.shape[nd]) + out:
        raise ValueError(f"gy: expected spatial shape {out}, got shape {gy.shape}")
    w64 = w.astype(np.float64)
    gxp = np.zeros((gy.shape[0], w.shape[nd + 1]) + tuple(nn + lo + hi for nn, (lo, hi)
                                                         in zip(n, pads)))
    for o in itertools.product(*map(range, out)):
        g = gy[(slice(None), slice(None)) + o].astype(np.float64)      # (N, K)
        gxp[_window(o, k, s, d)] += np.tensordot(g, w64[kernel_of(o)], (1, 0))
    return _crop(gxp, pads).astype(result_dtype(gy, w))


def _grad_kernel(x, gy, kernel_shape, stride, padding, dilation, select):
    x, gy = real_array(x, "x"), real_array(gy, "gy")
    nd, k = _split(kernel_shape, x.ndim, "kernel_shape")
    s, d, pads, out = _geometry(x.shape[2:], k, stride, padding, dilation)
    kernel_of = select(kernel_shape, out)
    if gy.shape != (x.shape[0], kernel_shape[nd]) + out:
        raise ValueError(f"gy: expected shape {(x.shape[0], kernel_shape[nd]) + out}, got "
                         f"{gy.shape}")
    xp = _pad(x, pads)
    gw = np.zeros(tuple(kernel_shape))
    for o in itertools.product(*map(range, out)):
        g = gy[(slice(None), slice(None)) + o].astype(np.float64)      # (N, K)
        gw[kernel_of(o)] += np.tensordot(g, xp[_window(o, k, s, d)], (0, 0))
    return gw.astype(result_dtype(x, gy))


def locally_connected(x, w, bias=None, *, stride=1, padding=0, dilation=1):
    """Eq. 9.9: y[b, i, o] = sum_{l, m} xp[b, l, o*s + m*d] w[o][i, l, m]; w is (*out, K, C, *k),
    bias (K,) or (K, *out)."""
    return _forward(x, w, bias, stride, padding, dilation, _unshared)


def locally_connected_grad_input(gy, w, input_shape, *, stride=1, padding=0, dilation=1):
    """dL/dx of eq. 9.9: gy[b, i, o] w[o][i, l, m] added onto xp[b, l, o*s + m*d], then cropped."""
    return _grad_input(gy, w, input_shape, stride, padding, dilation, _unshared)


def locally_connected_grad_kernel(x, gy, kernel_shape, *, stride=1, padding=0, dilation=1):
    """dL/dw of eq. 9.9: gw[o][i, l, m] = sum_b gy[b, i, o] xp[b, l, o*s + m*d]."""
    return _grad_kernel(x, gy, kernel_shape, stride, padding, dilation, _unshared)


def tiled_conv(x, w, bias=None, *, stride=1, padding=0, dilation=1):
    """Eq. 9.10: y[b, i, o] = sum_{l, m} xp[b, l, o*s + m*d] w[o % t][i, l, m]; w is
    (*t, K, C, *k), bias (K,) or (K, *t)."""
    return _forward(x, w, bias, stride, padding, dilation, _tiled)


def tiled_conv_grad_input(gy, w, input_shape, *, stride=1, padding=0, dilation=1):
    """dL/dx of eq. 9.10: gy[b, i, o] w[o % t][i, l, m] added onto xp[b, l, o*s + m*d]."""
    return _grad_input(gy, w, input_shape, stride, padding, dilation, _tiled)


def tiled_conv_grad_kernel(x, gy, kernel_shape, *, stride=1, padding=0, dilation=1):
    """dL/dw of eq. 9.10: gw[t'][i, l, m] = sum over b and the o with o % t = t' of
    gy[b, i, o] xp[b, l, o*s + m*d]."""
    return _grad_kernel(x, gy, kernel_shape, stride, padding, dilation, _tiled)
