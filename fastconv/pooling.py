"""Pooling (section 9.3): max, average, Lp, distance-weighted, adaptive, global and cross-channel.

Channels-first: ``x`` is ``(N, C, *spatial)`` with 1 to 3 spatial dimensions (``x.ndim - 2``).
``kernel_size``, ``stride`` (default: the kernel size), ``padding`` and ``dilation`` are an int
for every spatial dimension or one int per dimension; padding is symmetric and at most
``kernel_size // 2`` (PyTorch's rule). Output size per axis::

    floor((n + 2 * padding - dilation * (kernel_size - 1) - 1) / stride) + 1

or, with ``ceil_mode=True``, the ceiling, minus one when the last window would start past the
input and its low padding (PyTorch's rule). The ceil-mode window at the edge is partial
(figure 9.10): it pools only the elements that exist. float32 and float64 are computed in their
own precision; integers and bools become float64; complex and object arrays raise ``TypeError``.

Every function has its ``*_grad_input`` (the gradient with respect to ``x`` given the gradient
``gy`` of the output), so each pool is a layer's forward and backward. The reference versions,
written as plain loops from the definitions, are in ``fastconv.reference``.

How it is computed (``src/_pooling.pyx``): the max pools run one driver over per-axis window
tables (the taps of each window that lie in the input); every linear pool (average, weighted,
adaptive and global average) is a product of per-axis banded matrices and runs as one 1-D pass
per axis, its gradient as the transposed passes. Results do not depend on the thread count.
"""
import functools
import numbers

import numpy as np

from . import _config, _pooling
from ._geometry import _int, per_dim as _per_dim
from ._validate import check_bool, real_array, result_dtype

__all__ = [
    "max_pool", "max_pool_grad_input", "avg_pool", "avg_pool_grad_input",
    "lp_pool", "lp_pool_grad_input", "weighted_avg_pool", "weighted_avg_pool_grad_input",
    "adaptive_max_pool", "adaptive_max_pool_grad_input",
    "adaptive_avg_pool", "adaptive_avg_pool_grad_input",
    "global_avg_pool", "global_avg_pool_grad_input", "global_max_pool", "global_max_pool_grad_input",
    "channel_pool", "channel_pool_grad_input",
]

_LIFTED = 3
_INDEX = np.intp


# --- arguments -------------------------------------------------------------------------------

def _spatial_input(x, name="x", min_ndim=3, max_ndim=5):
    x = real_array(x, name)
    if not min_ndim <= x.ndim <= max_ndim:
        raise ValueError(f"{name} must have shape (N, C, *spatial) with {min_ndim - 2} to 3 "
                         f"spatial dimensions ({min_ndim} to {max_ndim} dimensions), got shape "
                         f"{x.shape}")
    return x


def _window(in_sizes, kernel_size, stride, padding, dilation, ceil_mode):
    """Validated (kernel, stride, padding, dilation, output sizes) of a sliding-window pool."""
    nd = len(in_sizes)
    k = _per_dim(kernel_size, nd, "kernel_size", 1)
    s = k if stride is None else _per_dim(stride, nd, "stride", 1)
    p = _per_dim(padding, nd, "padding", 0)
    d = _per_dim(dilation, nd, "dilation", 1)
    ceil_mode = check_bool(ceil_mode, "ceil_mode")
    out = []
    for axis, (n, kk, ss, pp, dd) in enumerate(zip(in_sizes, k, s, p, d)):
        if pp > kk // 2:
            raise ValueError(f"padding must be at most kernel_size // 2 = {kk // 2} along spatial "
                             f"axis {axis}, got {pp}")
        eff = dd * (kk - 1) + 1
        if n + 2 * pp < eff:
            raise ValueError(f"kernel_size: the window of extent {eff} along spatial axis {axis} "
                             f"is larger than the padded input {n} + 2 * {pp}")
        span = n + 2 * pp - eff
        o = (-(-span // ss) if ceil_mode else span // ss) + 1
        if ceil_mode and (o - 1) * ss >= n + pp:
            o -= 1
        out.append(o)
    return k, s, p, d, tuple(out)


def _input_shape(input_shape, gy, nd, name="input_shape"):
    """Full input shape from ``(N, C, *spatial)`` or ``(*spatial)``; N and C must match gy's."""
    if isinstance(input_shape, (str, bytes)) or not hasattr(input_shape, "__len__"):
        raise TypeError(f"{name} must be a tuple of ints, got {input_shape!r}")
    shape = tuple(_int(v, name) for v in input_shape)
    if len(shape) == nd:
        shape = tuple(gy.shape[:2]) + shape
    if len(shape) != nd + 2 or any(v < 0 for v in shape):
        raise ValueError(f"{name} must be {nd} spatial sizes or a full shape of {nd + 2} "
                         f"non-negative sizes, got {tuple(input_shape)}")
    if shape[:2] != tuple(gy.shape[:2]):
        raise ValueError(f"{name}: batch and channels {shape[:2]} do not match gy's "
                         f"{tuple(gy.shape[:2])}")
    return shape


def _check_gy(gy, expected, what):
    if tuple(gy.shape) != tuple(expected):
        raise ValueError(f"gy must have the output's shape {tuple(expected)} ({what}), "
                         f"got {tuple(gy.shape)}")


def _lift(sizes, fill=1):
    return (fill,) * (_LIFTED - len(sizes)) + tuple(sizes)


def _threads(work):
    with _config.threads_for(work):
        return _config.get_num_threads()


# --- window tables (max pools) and banded matrices (linear pools) -------------------------------

def _taps(n, k, s, p, d, out):
    """Per output position: the first input index of its window inside the input, and how many
    of its taps (spaced d apart) lie inside; both 0 for a window with no element."""
    start = np.arange(out, dtype=_INDEX) * s - p
    t0 = np.maximum(-(start // d), 0)                         # ceil(-start / d), at least 0
    t1 = np.minimum(k - 1, np.floor_divide(n - 1 - start, d))
    cnt = np.maximum(t1 - t0 + 1, 0)
    lo = np.where(cnt > 0, start + t0 * d, 0)
    return np.ascontiguousarray(lo, dtype=_INDEX), np.ascontiguousarray(cnt, dtype=_INDEX)


def _bins(n, out):
    """PyTorch's adaptive bins: [floor(i n / out), ceil((i + 1) n / out))."""
    i = np.arange(out, dtype=_INDEX)
    lo = (i * n) // out
    hi = -((-(i + 1) * n) // out)
    return lo, hi - lo


def _band(lo, cnt):
    """indptr and indices (CSR) of the banded matrix whose row o holds the columns
    lo[o] .. lo[o] + cnt[o] - 1."""
    cnt = np.asarray(cnt, dtype=_INDEX)
    indptr = np.zeros(len(cnt) + 1, dtype=_INDEX)
    np.cumsum(cnt, out=indptr[1:])
    nnz = int(indptr[-1])
    indices = (np.repeat(np.asarray(lo, dtype=_INDEX) - indptr[:-1], cnt)
               + np.arange(nnz, dtype=_INDEX))
    return indptr, indices


def _rows(indptr):
    return np.repeat(np.arange(len(indptr) - 1, dtype=_INDEX), np.diff(indptr))


def _transpose(mat, n):
    """CSR of the transpose of the (m, n) CSR matrix ``mat``."""
    indptr, indices, values = mat
    order = np.argsort(indices, kind="stable")
    t_indptr = np.zeros(n + 1, dtype=_INDEX)
    np.cumsum(np.bincount(indices, minlength=n), out=t_indptr[1:])
    return t_indptr, np.ascontiguousarray(_rows(indptr)[order]), np.ascontiguousarray(values[order])


def _is_identity(mat, n):
    indptr, indices, values = mat
    return (len(indptr) - 1 == n and len(indices) == n
            and np.array_equal(indices, np.arange(n)) and bool(np.all(values == 1.0)))


def _avg_matrix(n, k, s, p, out, count_include_pad):
    start = np.arange(out, dtype=_INDEX) * s - p
    end = np.minimum(start + k, n + p)
    lo, hi = np.maximum(start, 0), np.minimum(end, n)
    divisor = (end - start) if count_include_pad else (hi - lo)
    indptr, indices = _band(lo, hi - lo)
    return indptr, indices, np.repeat(1.0 / divisor, hi - lo)


def _sum_matrix(n, k, s, p, out):
    indptr, indices = _band(*_taps(n, k, s, p, 1, out))
    return indptr, indices, np.ones(len(indices))


def _gaussian_matrix(n, k, s, p, out, sigma):
    """Weights exp(-t^2 / (2 sigma^2)) of the distance t from the window centre, normalised
    over the elements of each window that lie inside the input. Each window's nearest element
    weighs exp(0) = 1 before normalising (its t^2 is subtracted, and t^2 / sigma^2 is never
    formed), so no window's weights all underflow however small sigma: the limit is the nearest
    element(s) to the centre."""
    indptr, indices = _band(*_taps(n, k, s, p, 1, out))
    rows = _rows(indptr)
    t2 = (indices - (rows * s - p) - (k - 1) / 2.0) ** 2
    nearest = np.full(out, np.inf)
    np.minimum.at(nearest, rows, t2)
    with np.errstate(over="ignore", under="ignore"):
        g = np.exp(-((t2 - nearest[rows]) / sigma) / sigma / 2.0)
    norm = np.bincount(rows, weights=g, minlength=out)
    return indptr, indices, g / norm[rows]


def _separable(a, mats, dtype, work, transpose=False):
    """Apply one banded matrix per lifted axis to ``a`` (planes, D, H, W): forward in the order
    D, H, W (each pass shrinks what the next reads), transposed in the order W, H, D. ``mats``
    holds (CSR, columns) per axis, or None for the identity; the result is never ``a`` itself."""
    cur = np.ascontiguousarray(a, dtype=dtype)
    src_is_input = True
    nt = _threads(work)
    axes = (2, 1, 0) if transpose else (0, 1, 2)
    for axis in axes:
        if mats[axis] is None:
            continue
        mat, n = mats[axis]
        if transpose:
            mat = _transpose(mat, n)
        if _is_identity(mat, cur.shape[axis + 1]):
            continue
        m_rows = len(mat[0]) - 1
        shape = cur.shape
        outer = int(np.prod(shape[:axis + 1]))
        inner = int(np.prod(shape[axis + 2:]))
        dst = np.empty(shape[:axis + 1] + (m_rows,) + shape[axis + 2:], dtype=dtype)
        _pooling.axis_apply(cur.reshape(-1), dst.reshape(-1), outer, shape[axis + 1], inner,
                            mat[0], mat[1], mat[2].astype(dtype), nt)
        cur = dst
        src_is_input = False
    return cur.copy() if src_is_input else cur


def _run_max(x4, dtype, tables, steps, out3, work, with_idx):
    """y and indices (planes, *out3) of the max driver over x4 (planes, D, H, W); the indices
    are None unless ``with_idx`` (the values alone are computed faster)."""
    planes = x4.shape[0]
    y = np.empty((planes,) + tuple(out3), dtype=dtype)
    idx = np.empty((planes,) + tuple(out3) if with_idx else 1, dtype=np.int64)
    in_size = np.array([x4.shape[1:]], dtype=_INDEX)
    _pooling.max_forward(x4.reshape(-1), y.reshape(-1), idx.reshape(-1), with_idx, planes,
                         in_size, tables, np.asarray(steps, dtype=_INDEX), _threads(work))
    return y, (idx if with_idx else None)


def _shaped(y, idx, shape):
    return y.reshape(shape), (None if idx is None else idx.reshape(shape))


def _max_grad_input(gy, idx, in_shape, dtype, planes):
    gx = np.zeros(in_shape, dtype=dtype)
    out_vol = int(np.prod(gy.shape)) // max(planes, 1)
    in_vol = int(np.prod(in_shape)) // max(planes, 1)
    _pooling.max_grad_input(np.ascontiguousarray(gy, dtype=dtype).reshape(-1),
                          np.ascontiguousarray(idx, dtype=np.int64).reshape(-1), gx.reshape(-1),
                          planes, out_vol, in_vol, _threads(gx.size))
    return gx


def _check_indices(indices, expected_shape, in_vol):
    indices = np.asarray(indices)
    if indices.dtype.kind not in "iu":
        raise TypeError(f"indices must be an integer array (as returned with "
                        f"return_indices=True), got dtype {indices.dtype}")
    if indices.shape != tuple(expected_shape):
        raise ValueError(f"indices must have the output's shape {tuple(expected_shape)}, "
                         f"got {indices.shape}")
    if indices.size and (indices.min() < -1 or indices.max() >= in_vol):
        raise ValueError(f"indices must lie in [0, {in_vol}) (flat positions in one input "
                         f"plane; -1 for a window with no element), got values in "
                         f"[{indices.min()}, {indices.max()}]")
    return indices


# --- max pooling ---------------------------------------------------------------------------------

def _max_tables(in_sizes, k, s, p, d, out):
    """The window tables and tap spacings, built once per geometry (a training loop pools the
    same shapes every step; building them costs ~40 us of NumPy calls, more than a small pool)."""
    return _max_tables_cached(tuple(in_sizes), tuple(k), tuple(s), tuple(p), tuple(d), tuple(out))


@functools.lru_cache(maxsize=256)
def _max_tables_cached(in_sizes, k, s, p, d, out):
    tables, steps = [], []
    for n, kk, ss, pp, dd, o in zip(_lift(in_sizes), _lift(k), _lift(s), _lift(p, 0),
                                    _lift(d), _lift(out)):
        tables.extend(_taps(n, kk, ss, pp, dd, o))
        steps.append(dd)
    return tuple(tables), tuple(steps)


def _max_pool(x, k, s, p, d, out, dtype, with_idx=True):
    N, C = x.shape[:2]
    x4 = np.ascontiguousarray(x, dtype=dtype).reshape((N * C,) + _lift(x.shape[2:]))
    tables, steps = _max_tables(x.shape[2:], k, s, p, d, out)
    y, idx = _run_max(x4, dtype, tables, steps, _lift(out), x.size * int(np.prod(k)), with_idx)
    return _shaped(y, idx, (N, C) + out)


def max_pool(x, kernel_size, stride=None, padding=0, dilation=1, ceil_mode=False,
             return_indices=False):
    """Max pooling: each output is the largest element of its window (padding is -inf, never
    chosen). Ties go to the first position of the window in row-major order; a NaN wins over
    numbers. With ``return_indices`` also the int64 flat index of each maximum in its (n, c)
    input plane (PyTorch's convention). A dilated window can fall entirely on padding (e.g.
    n=1, kernel 2, padding 1, dilation 2): it gives -inf and index -1, and routes no gradient."""
    x = _spatial_input(x)
    return_indices = check_bool(return_indices, "return_indices")
    k, s, p, d, out = _window(x.shape[2:], kernel_size, stride, padding, dilation, ceil_mode)
    y, idx = _max_pool(x, k, s, p, d, out, result_dtype(x), return_indices)
    return (y, idx) if return_indices else y


def max_pool_grad_input(gy, x, kernel_size, stride=None, padding=0, dilation=1, ceil_mode=False,
                        indices=None):
    """Gradient of :func:`max_pool`: each ``gy`` element goes to its window's maximum (from
    ``indices`` if given, else recomputed); overlapping windows add up in a fixed order."""
    x = _spatial_input(x)
    gy = _spatial_input(gy, "gy")
    k, s, p, d, out = _window(x.shape[2:], kernel_size, stride, padding, dilation, ceil_mode)
    _check_gy(gy, x.shape[:2] + out, "max_pool of x with this geometry")
    dtype = result_dtype(gy, x)
    if indices is None:
        _, indices = _max_pool(x, k, s, p, d, out, dtype)
    else:
        indices = _check_indices(indices, gy.shape, int(np.prod(x.shape[2:])))
    return _max_grad_input(gy, indices, x.shape, dtype, x.shape[0] * x.shape[1])


# --- average pooling -----------------------------------------------------------------------------

def _linear_pool(a, mats, dtype, work, transpose=False):
    """Apply per-axis matrices (un-lifted list of (CSR, n)) to a (N, C, *spatial) array."""
    N, C = a.shape[:2]
    lifted = [None] * (_LIFTED - len(mats)) + list(mats)
    a4 = np.ascontiguousarray(a, dtype=dtype).reshape((N * C,) + _lift(a.shape[2:]))
    r = _separable(a4, lifted, dtype, work, transpose)
    return r.reshape((N, C) + r.shape[1 + _LIFTED - len(mats):])


def _avg_mats(in_sizes, k, s, p, out, count_include_pad):
    return [(_avg_matrix(n, kk, ss, pp, o, count_include_pad), n)
            for n, kk, ss, pp, o in zip(in_sizes, k, s, p, out)]


def avg_pool(x, kernel_size, stride=None, padding=0, ceil_mode=False, count_include_pad=True):
    """Average pooling with PyTorch's divisor: the window size clipped to the padded input (so
    the ceil-mode overhang never counts) if ``count_include_pad``, else the number of input
    elements in the window."""
    x = _spatial_input(x)
    k, s, p, _, out = _window(x.shape[2:], kernel_size, stride, padding, 1, ceil_mode)
    mats = _avg_mats(x.shape[2:], k, s, p, out, check_bool(count_include_pad, "count_include_pad"))
    return _linear_pool(x, mats, result_dtype(x), x.size * sum(k))


def avg_pool_grad_input(gy, input_shape, kernel_size, stride=None, padding=0, ceil_mode=False,
                        count_include_pad=True):
    """Gradient of :func:`avg_pool` (its transpose), for an input of ``input_shape``."""
    gy = _spatial_input(gy, "gy")
    shape = _input_shape(input_shape, gy, gy.ndim - 2)
    k, s, p, _, out = _window(shape[2:], kernel_size, stride, padding, 1, ceil_mode)
    _check_gy(gy, shape[:2] + out, "avg_pool of input_shape with this geometry")
    mats = _avg_mats(shape[2:], k, s, p, out, check_bool(count_include_pad, "count_include_pad"))
    return _linear_pool(gy, mats, result_dtype(gy), int(np.prod(shape)) * sum(k), transpose=True)


# --- global pooling ------------------------------------------------------------------------------

def _global_input_shape(input_shape, gy):
    if gy.ndim != 2:
        raise ValueError(f"gy must have shape (N, C), got shape {gy.shape}")
    if isinstance(input_shape, (str, bytes)) or not hasattr(input_shape, "__len__"):
        raise TypeError(f"input_shape must be a tuple of ints, got {input_shape!r}")
    shape = tuple(_int(v, "input_shape") for v in input_shape)
    if not 3 <= len(shape) <= 5 or any(v < 0 for v in shape) or shape[:2] != gy.shape:
        raise ValueError(f"input_shape must be the full shape (N, C, *spatial) with N, C = "
                         f"{gy.shape} and 1 to 3 spatial sizes, got {tuple(input_shape)}")
    if 0 in shape[2:]:
        raise ValueError(f"input_shape: every spatial size must be >= 1, got {shape}")
    return shape


def _global_mats(in_sizes):
    return [(_band([0], [n]) + (np.full(n, 1.0 / n),), n) for n in in_sizes]


def global_avg_pool(x):
    """Mean over all spatial positions: (N, C, *spatial) -> (N, C)."""
    x = _spatial_input(x)
    if 0 in x.shape[2:]:
        raise ValueError(f"x: every spatial size must be >= 1, got shape {x.shape}")
    return _linear_pool(x, _global_mats(x.shape[2:]), result_dtype(x), x.size).reshape(x.shape[:2])


def global_avg_pool_grad_input(gy, input_shape):
    """Gradient of :func:`global_avg_pool`: gy / (number of spatial positions), broadcast."""
    gy = real_array(gy, "gy")
    shape = _global_input_shape(input_shape, gy)
    nd = len(shape) - 2
    g = gy.reshape(gy.shape + (1,) * nd)
    return _linear_pool(g, _global_mats(shape[2:]), result_dtype(gy), int(np.prod(shape)),
                        transpose=True)


def _global_max(x, dtype, with_idx=True):
    N, C = x.shape[:2]
    x4 = np.ascontiguousarray(x, dtype=dtype).reshape((N * C,) + _lift(x.shape[2:]))
    tables = []
    for n in x4.shape[1:]:
        tables.extend((np.zeros(1, dtype=_INDEX), np.full(1, n, dtype=_INDEX)))
    y, idx = _run_max(x4, dtype, tables, (1, 1, 1), (1, 1, 1), x.size, with_idx)
    return _shaped(y, idx, (N, C))


def global_max_pool(x):
    """Maximum over all spatial positions: (N, C, *spatial) -> (N, C); ties as in max_pool."""
    x = _spatial_input(x)
    if 0 in x.shape[2:]:
        raise ValueError(f"x: every spatial size must be >= 1, got shape {x.shape}")
    return _global_max(x, result_dtype(x), with_idx=False)[0]


def global_max_pool_grad_input(gy, x):
    """Gradient of :func:`global_max_pool`: gy goes to the (first) maximum of each plane."""
    x = _spatial_input(x)
    gy = real_array(gy, "gy")
    if 0 in x.shape[2:]:
        raise ValueError(f"x: every spatial size must be >= 1, got shape {x.shape}")
    _check_gy(gy, x.shape[:2], "global_max_pool of x")
    dtype = result_dtype(gy, x)
    _, idx = _global_max(x, dtype)
    return _max_grad_input(gy, idx, x.shape, dtype, x.shape[0] * x.shape[1])


# --- Lp pooling ------------------------------------------------------------------------------

def _check_p(p):
    if isinstance(p, (bool, np.bool_)) or not isinstance(p, numbers.Real):
        raise TypeError(f"p must be a real number, got {p!r} ({type(p).__name__})")
    if not (np.isfinite(p) and p > 0):
        raise ValueError(f"p must be a finite number > 0, got {p!r}")
    return float(p)


def _lp_setup(x, p, kernel_size, stride, padding, ceil_mode):
    k, s, pad, _, out = _window(x.shape[2:], kernel_size, stride, padding, 1, ceil_mode)
    mats = [(_sum_matrix(n, kk, ss, pp, o), n)
            for n, kk, ss, pp, o in zip(x.shape[2:], k, s, pad, out)]
    return mats, out, x.size * sum(k)


def _lp_forward(xc, p, mats, work):
    powered = xc * xc if p == 2 else np.abs(xc) ** p
    total = _linear_pool(powered, mats, xc.dtype, work)
    return np.sqrt(total) if p == 2 else total ** (1.0 / p)


def lp_pool(x, p, kernel_size, stride=None, padding=0, ceil_mode=False):
    """Lp pooling, ``(sum over the window of |x|^p)^(1/p)``; p = 2 is the chapter's L2 norm
    pooling, p = 1 the sum of magnitudes, large p approaches max pooling of |x|. Padding adds
    nothing to the sum. (PyTorch's lp_pool raises x, not |x|, to the power p, and with
    ceil_mode it scales a partial window's sum up to the full window size; this is the norm.)
    |x|^p is formed in the input's precision, so float32 overflows for large |x| and p."""
    x = _spatial_input(x)
    p = _check_p(p)
    mats, _, work = _lp_setup(x, p, kernel_size, stride, padding, ceil_mode)
    return _lp_forward(np.asarray(x, dtype=result_dtype(x)), p, mats, work)


def lp_pool_grad_input(gy, x, p, kernel_size, stride=None, padding=0, ceil_mode=False):
    """Gradient of :func:`lp_pool`: ``gx = sign(x) |x|^(p-1) * sum over the windows of x of
    gy / y^(p-1)``. Where the norm ``y`` of a window is 0 that window passes no gradient (the
    norm has no derivative there; 0 is its smallest subgradient), and an element ``x == 0``
    gets 0 (for p < 1 its derivative is infinite)."""
    x = _spatial_input(x)
    gy = _spatial_input(gy, "gy")
    p = _check_p(p)
    mats, out, work = _lp_setup(x, p, kernel_size, stride, padding, ceil_mode)
    _check_gy(gy, x.shape[:2] + out, "lp_pool of x with this geometry")
    dtype = result_dtype(gy, x)
    xc = np.asarray(x, dtype=dtype)
    y = _lp_forward(xc, p, mats, work)
    gyc = np.asarray(gy, dtype=dtype)
    with np.errstate(divide="ignore", invalid="ignore"):
        scaled = np.where(y == 0, 0, gyc if p == 1 else gyc / y ** (p - 1)).astype(dtype)
        back = _linear_pool(scaled, mats, dtype, work, transpose=True)
        ax = np.abs(xc)
        factor = np.sign(xc) if p == 1 else np.where(ax == 0, 0, np.sign(xc) * ax ** (p - 1))
    return (factor * back).astype(dtype, copy=False)


# --- distance-weighted average pooling ---------------------------------------------------------

def _sigma(sigma, k):
    if sigma is None:
        return tuple(kk / 4.0 for kk in k)
    values = tuple(sigma) if isinstance(sigma, (tuple, list)) else (sigma,) * len(k)
    if len(values) != len(k):
        raise ValueError(f"sigma must be a number or {len(k)} numbers (one per spatial "
                         f"dimension), got {sigma!r}")
    for v in values:
        if isinstance(v, (bool, np.bool_)) or not isinstance(v, numbers.Real):
            raise TypeError(f"sigma must be a positive number or a tuple of them, got {sigma!r}")
        if not (np.isfinite(v) and v > 0):
            raise ValueError(f"sigma must be finite and > 0 in every dimension, got {sigma!r}")
    return tuple(float(v) for v in values)


def _weighted_mats(in_sizes, kernel_size, stride, padding, ceil_mode, sigma):
    k, s, p, _, out = _window(in_sizes, kernel_size, stride, padding, 1, ceil_mode)
    sig = _sigma(sigma, k)
    mats = [(_gaussian_matrix(n, kk, ss, pp, o, sg), n)
            for n, kk, ss, pp, o, sg in zip(in_sizes, k, s, p, out, sig)]
    return mats, out, sum(k)


def weighted_avg_pool(x, kernel_size, stride=None, padding=0, ceil_mode=False, sigma=None):
    """The chapter's "weighted average based on the distance from the central pixel": weights
    ``exp(-t^2 / (2 sigma^2))`` of the offset t of each element from the window's centre
    (``(kernel_size - 1) / 2``), per axis and multiplied, normalised to sum to 1 over the
    elements of the window that lie in the input (padding and the ceil-mode overhang carry no
    weight). ``sigma``: a number or one per axis; default ``kernel_size / 4`` per axis, so the
    window spans about +-2 sigma: an edge tap weighs exp(-2 (k - 1)^2 / k^2) of the centre per
    axis (0.61 for k = 2, 0.41 for k = 3, tending to e^-2 ~ 0.14 for large k)."""
    x = _spatial_input(x)
    mats, _, taps = _weighted_mats(x.shape[2:], kernel_size, stride, padding, ceil_mode, sigma)
    return _linear_pool(x, mats, result_dtype(x), x.size * taps)


def weighted_avg_pool_grad_input(gy, input_shape, kernel_size, stride=None, padding=0,
                                 ceil_mode=False, sigma=None):
    """Gradient of :func:`weighted_avg_pool` (its transpose), for an input of ``input_shape``."""
    gy = _spatial_input(gy, "gy")
    shape = _input_shape(input_shape, gy, gy.ndim - 2)
    mats, out, taps = _weighted_mats(shape[2:], kernel_size, stride, padding, ceil_mode, sigma)
    _check_gy(gy, shape[:2] + out, "weighted_avg_pool of input_shape with this geometry")
    return _linear_pool(gy, mats, result_dtype(gy), int(np.prod(shape)) * taps, transpose=True)


# --- adaptive pooling (a fixed number of pools whatever the input size) --------------------------

def _output_size(output_size, in_sizes):
    nd = len(in_sizes)
    values = tuple(output_size) if isinstance(output_size, (tuple, list)) else (output_size,) * nd
    if len(values) != nd:
        raise ValueError(f"output_size must be an int or {nd} ints (one per spatial dimension, "
                         f"None keeps the input's size), got {output_size!r}")
    out = tuple(n if v is None else _int(v, "output_size") for v, n in zip(values, in_sizes))
    if any(v < 1 for v in out):
        raise ValueError(f"output_size must be >= 1 in every dimension, got {output_size!r}")
    if 0 in in_sizes:
        raise ValueError(f"x: every spatial size must be >= 1 for adaptive pooling, got "
                         f"{tuple(in_sizes)}")
    return out


def _adaptive_max(x, out, dtype, with_idx=True):
    N, C = x.shape[:2]
    x4 = np.ascontiguousarray(x, dtype=dtype).reshape((N * C,) + _lift(x.shape[2:]))
    tables = []
    for n, o in zip(x4.shape[1:], _lift(out)):
        tables.extend(np.ascontiguousarray(t, dtype=_INDEX) for t in _bins(n, o))
    y, idx = _run_max(x4, dtype, tables, (1, 1, 1), _lift(out), x.size * 2, with_idx)
    return _shaped(y, idx, (N, C) + out)


def adaptive_max_pool(x, output_size, return_indices=False):
    """Max over PyTorch's adaptive bins: along an axis of n elements, output i pools
    ``[floor(i n / out), ceil((i + 1) n / out))``, so the output has ``output_size`` whatever
    the input size (figure 9.11, centre). Ties and indices as in :func:`max_pool`."""
    x = _spatial_input(x)
    out = _output_size(output_size, x.shape[2:])
    return_indices = check_bool(return_indices, "return_indices")
    y, idx = _adaptive_max(x, out, result_dtype(x), return_indices)
    return (y, idx) if return_indices else y


def adaptive_max_pool_grad_input(gy, x, output_size, indices=None):
    """Gradient of :func:`adaptive_max_pool` (``indices`` reused if given, else recomputed)."""
    x = _spatial_input(x)
    gy = _spatial_input(gy, "gy")
    out = _output_size(output_size, x.shape[2:])
    _check_gy(gy, x.shape[:2] + out, "adaptive_max_pool of x")
    dtype = result_dtype(gy, x)
    if indices is None:
        _, indices = _adaptive_max(x, out, dtype)
    else:
        indices = _check_indices(indices, gy.shape, int(np.prod(x.shape[2:])))
    return _max_grad_input(gy, indices, x.shape, dtype, x.shape[0] * x.shape[1])


def _adaptive_mats(in_sizes, out):
    mats = []
    for n, o in zip(in_sizes, out):
        lo, cnt = _bins(n, o)
        indptr, indices = _band(lo, cnt)
        mats.append(((indptr, indices, np.repeat(1.0 / cnt, cnt)), n))
    return mats


def adaptive_avg_pool(x, output_size):
    """Mean over PyTorch's adaptive bins (see :func:`adaptive_max_pool`)."""
    x = _spatial_input(x)
    out = _output_size(output_size, x.shape[2:])
    return _linear_pool(x, _adaptive_mats(x.shape[2:], out), result_dtype(x), x.size * 2)


def adaptive_avg_pool_grad_input(gy, input_shape, output_size):
    """Gradient of :func:`adaptive_avg_pool` (its transpose), for an input of ``input_shape``."""
    gy = _spatial_input(gy, "gy")
    shape = _input_shape(input_shape, gy, gy.ndim - 2)
    out = _output_size(output_size, shape[2:])
    _check_gy(gy, shape[:2] + out, "adaptive_avg_pool of input_shape")
    return _linear_pool(gy, _adaptive_mats(shape[2:], out), result_dtype(gy), int(np.prod(shape)) * 2,
                        transpose=True)


# --- cross-channel pooling (figure 9.9; maxout) --------------------------------------------------

_CHANNEL_MODES = ("max", "avg")


def _channel_setup(x, group_size, mode):
    if not isinstance(mode, str):
        raise TypeError(f"mode must be a string, one of {_CHANNEL_MODES}, got {mode!r}")
    if mode not in _CHANNEL_MODES:
        raise ValueError(f"mode must be one of {_CHANNEL_MODES}, got {mode!r}")
    g = _int(group_size, "group_size")
    if g < 1:
        raise ValueError(f"group_size must be >= 1, got {g}")
    C = x.shape[1]
    if C % g:
        raise ValueError(f"group_size={g} must divide the {C} channels of x (shape {x.shape})")
    return g


def _channel_view(a, dtype):
    """(N, C, *spatial) as planes (N, 1, C, S) for the drivers (channels on the H axis)."""
    S = int(np.prod(a.shape[2:], dtype=np.int64))
    return np.ascontiguousarray(a, dtype=dtype).reshape(a.shape[0], 1, a.shape[1], S)


def _channel_max(x, g, dtype, with_idx=True):
    x4 = _channel_view(x, dtype)
    G, S = x.shape[1] // g, x4.shape[3]
    tables = [np.zeros(1, dtype=_INDEX), np.ones(1, dtype=_INDEX),
              np.arange(G, dtype=_INDEX) * g, np.full(G, g, dtype=_INDEX),
              np.arange(S, dtype=_INDEX), np.ones(S, dtype=_INDEX)]
    return _run_max(x4, dtype, tables, (1, 1, 1), (1, G, S), x.size, with_idx)


def _channel_avg_mat(C, g):
    G = C // g
    indptr, indices = _band(np.arange(G) * g, np.full(G, g))
    return [None, ((indptr, indices, np.full(C, 1.0 / g)), C), None]


def channel_pool(x, group_size, mode="max"):
    """Pool over groups of ``group_size`` consecutive channels (figure 9.9): (N, C, *spatial)
    -> (N, C // group_size, *spatial); ``mode="max"`` is maxout (ties: the first channel of the
    group), ``"avg"`` the mean. Any number of spatial dimensions, none included."""
    x = _spatial_input(x, min_ndim=2)
    g = _channel_setup(x, group_size, mode)
    dtype = result_dtype(x)
    out_shape = (x.shape[0], x.shape[1] // g) + x.shape[2:]
    if mode == "max":
        return _channel_max(x, g, dtype, with_idx=False)[0].reshape(out_shape)
    return _separable(_channel_view(x, dtype), _channel_avg_mat(x.shape[1], g), dtype,
                      x.size).reshape(out_shape)


def channel_pool_grad_input(gy, x, group_size, mode="max"):
    """Gradient of :func:`channel_pool`: to the group's (first) maximum, or gy / group_size
    to every channel of the group."""
    x = _spatial_input(x, min_ndim=2)
    gy = _spatial_input(gy, "gy", min_ndim=2)
    g = _channel_setup(x, group_size, mode)
    _check_gy(gy, (x.shape[0], x.shape[1] // g) + x.shape[2:], "channel_pool of x")
    dtype = result_dtype(gy, x)
    if mode == "max":
        _, idx = _channel_max(x, g, dtype)
        return _max_grad_input(gy, idx, x.shape, dtype, x.shape[0])
    gy4 = _channel_view(gy, dtype)
    return _separable(gy4, _channel_avg_mat(x.shape[1], g), dtype, x.size,
                      transpose=True).reshape(x.shape)
