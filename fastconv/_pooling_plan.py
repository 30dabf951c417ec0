"""How fastconv.pooling computes: argument checks, window geometry, the per-axis window tables
(max pools) and banded matrices (linear pools), and the calls into the compiled driver
(``src/_pooling.pyx``). The public functions, which compose these, are in pooling.py.
"""
import functools

import numpy as np

from . import _aligned, _config, _pooling
from ._geometry import _int, per_dim
from ._validate import check_bool, real_array

LIFTED = 3
INDEX = np.intp


# --- arguments -------------------------------------------------------------------------------

def spatial_input(x, name="x", min_ndim=3, max_ndim=5):
    x = real_array(x, name)
    if not min_ndim <= x.ndim <= max_ndim:
        raise ValueError(f"{name} must have shape (N, C, *spatial) with {min_ndim - 2} to 3 "
                         f"spatial dimensions ({min_ndim} to {max_ndim} dimensions), got shape "
                         f"{x.shape}")
    return x


def spatial_count(*values):
    """The number of spatial axes that the first tuple among `values` (kernel_size, stride, ...)
    gives, or None when all are ints."""
    for v in values:
        if isinstance(v, (tuple, list)):
            return len(v)
    return None


def batched_input(x, nd, name, what, value):
    """(x as (N, C, *spatial), whether it was one unbatched example (C, *spatial)). `nd`: the
    number of spatial axes (from the tuple `what`), or None when `what` (= `value`) is an int:
    then a 2-D x is unbatched 1-D, a 4-D or 5-D one batched 2-D or 3-D, and a 3-D one (a batch of
    1-D signals or one 2-D example) is refused as ambiguous."""
    x = real_array(x, name)
    if nd is None:
        if x.ndim == 3:
            raise ValueError(
                f"{name} of shape {x.shape} with an int {what}={value!r} is ambiguous: a batch of "
                f"1-D signals (N, C, L) or one unbatched 2-D example (C, H, W); pass {what} as a "
                f"tuple, ({value},) for 1-D or ({value}, {value}) for 2-D, or use a 1d/2d layer "
                f"of fastconv.nn")
        if x.ndim == 2:
            return x[None], True
        return spatial_input(x, name), False
    if x.ndim == nd + 1 and 1 <= nd <= 3:
        return x[None], True
    if x.ndim != nd + 2 or not 1 <= nd <= 3:
        raise ValueError(f"{name} must have shape (N, C, *spatial) or, unbatched, (C, *spatial) "
                         f"with {nd} spatial dimensions (as {what}={value!r} has), got shape "
                         f"{x.shape}")
    return x, False


def window(in_sizes, kernel_size, stride, padding, dilation, ceil_mode):
    """Validated (kernel, stride, padding, dilation, output sizes) of a sliding-window pool."""
    nd = len(in_sizes)
    k = per_dim(kernel_size, nd, "kernel_size", 1)
    s = k if stride is None else per_dim(stride, nd, "stride", 1)
    p = per_dim(padding, nd, "padding", 0)
    d = per_dim(dilation, nd, "dilation", 1)
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


def input_shape(input_shape, gy, nd, name="input_shape"):
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


def check_gy(gy, expected, what):
    if tuple(gy.shape) != tuple(expected):
        raise ValueError(f"gy must have the output's shape {tuple(expected)} ({what}), "
                         f"got {tuple(gy.shape)}")


def lift(sizes, fill=1):
    return (fill,) * (LIFTED - len(sizes)) + tuple(sizes)


def _threads(work):
    with _config.threads_for(work):
        return _config.get_num_threads()


# --- window tables (max pools) and banded matrices (linear pools) -------------------------------

def _taps(n, k, s, p, d, out):
    """Per output position: the first input index of its window inside the input, and how many
    of its taps (spaced d apart) lie inside; both 0 for a window with no element."""
    start = np.arange(out, dtype=INDEX) * s - p
    t0 = np.maximum(-(start // d), 0)                         # ceil(-start / d), at least 0
    t1 = np.minimum(k - 1, np.floor_divide(n - 1 - start, d))
    cnt = np.maximum(t1 - t0 + 1, 0)
    lo = np.where(cnt > 0, start + t0 * d, 0)
    return np.ascontiguousarray(lo, dtype=INDEX), np.ascontiguousarray(cnt, dtype=INDEX)


def bins(n, out):
    """PyTorch's adaptive bins: [floor(i n / out), ceil((i + 1) n / out))."""
    i = np.arange(out, dtype=INDEX)
    lo = (i * n) // out
    hi = -((-(i + 1) * n) // out)
    return lo, hi - lo


def band(lo, cnt):
    """indptr and indices (CSR) of the banded matrix whose row o holds the columns
    lo[o] .. lo[o] + cnt[o] - 1."""
    cnt = np.asarray(cnt, dtype=INDEX)
    indptr = np.zeros(len(cnt) + 1, dtype=INDEX)
    np.cumsum(cnt, out=indptr[1:])
    nnz = int(indptr[-1])
    indices = (np.repeat(np.asarray(lo, dtype=INDEX) - indptr[:-1], cnt)
               + np.arange(nnz, dtype=INDEX))
    return indptr, indices


def _rows(indptr):
    return np.repeat(np.arange(len(indptr) - 1, dtype=INDEX), np.diff(indptr))


def _transpose(mat, n):
    """CSR of the transpose of the (m, n) CSR matrix ``mat``."""
    indptr, indices, values = mat
    order = np.argsort(indices, kind="stable")
    t_indptr = np.zeros(n + 1, dtype=INDEX)
    np.cumsum(np.bincount(indices, minlength=n), out=t_indptr[1:])
    return t_indptr, np.ascontiguousarray(_rows(indptr)[order]), np.ascontiguousarray(values[order])


def _is_identity(mat, n):
    indptr, indices, values = mat
    return (len(indptr) - 1 == n and len(indices) == n
            and np.array_equal(indices, np.arange(n)) and bool(np.all(values == 1.0)))


def avg_matrix(n, k, s, p, out, count_include_pad):
    start = np.arange(out, dtype=INDEX) * s - p
    end = np.minimum(start + k, n + p)
    lo, hi = np.maximum(start, 0), np.minimum(end, n)
    divisor = (end - start) if count_include_pad else (hi - lo)
    indptr, indices = band(lo, hi - lo)
    return indptr, indices, np.repeat(1.0 / divisor, hi - lo)


def sum_matrix(n, k, s, p, out):
    indptr, indices = band(*_taps(n, k, s, p, 1, out))
    return indptr, indices, np.ones(len(indices))


def gaussian_matrix(n, k, s, p, out, sigma):
    """Weights exp(-t^2 / (2 sigma^2)) of the distance t from the window centre, normalised
    over the elements of each window that lie inside the input. Each window's nearest element
    weighs exp(0) = 1 before normalising (its t^2 is subtracted, and t^2 / sigma^2 is never
    formed), so no window's weights all underflow however small sigma: the limit is the nearest
    element(s) to the centre."""
    indptr, indices = band(*_taps(n, k, s, p, 1, out))
    rows = _rows(indptr)
    t2 = (indices - (rows * s - p) - (k - 1) / 2.0) ** 2
    nearest = np.full(out, np.inf)
    np.minimum.at(nearest, rows, t2)
    with np.errstate(over="ignore", under="ignore"):
        g = np.exp(-((t2 - nearest[rows]) / sigma) / sigma / 2.0)
    norm = np.bincount(rows, weights=g, minlength=out)
    return indptr, indices, g / norm[rows]


def separable(a, mats, dtype, work, transpose=False):
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
        dst = _aligned.empty(shape[:axis + 1] + (m_rows,) + shape[axis + 2:], dtype)
        _pooling.axis_apply(cur.reshape(-1), dst.reshape(-1), outer, shape[axis + 1], inner,
                            mat[0], mat[1], mat[2].astype(dtype), nt)
        cur = dst
        src_is_input = False
    return cur.copy() if src_is_input else cur


def run_max(x4, dtype, tables, steps, out3, work, with_idx):
    """y and indices (planes, *out3) of the max driver over x4 (planes, D, H, W); the indices
    are None unless ``with_idx`` (the values alone are computed faster)."""
    planes = x4.shape[0]
    y = _aligned.empty((planes,) + tuple(out3), dtype)
    idx = np.empty((planes,) + tuple(out3) if with_idx else 1, dtype=np.int64)
    in_size = np.array([x4.shape[1:]], dtype=INDEX)
    _pooling.max_forward(x4.reshape(-1), y.reshape(-1), idx.reshape(-1), with_idx, planes,
                         in_size, tables, np.asarray(steps, dtype=INDEX), _threads(work))
    return y, (idx if with_idx else None)


def shaped(y, idx, shape):
    return y.reshape(shape), (None if idx is None else idx.reshape(shape))


def max_grad_input(gy, idx, in_shape, dtype, planes, out=None):
    """gx of shape `in_shape` (written into `out` if given): gy routed to the int64 indices
    `idx`, whose range the compiled scatter checks as it goes (ValueError from
    `indices_range_error` on one outside [-1, plane size))."""
    gx = _aligned.empty(in_shape, dtype) if out is None else out
    out_vol = int(np.prod(gy.shape)) // max(planes, 1)
    in_vol = int(np.prod(in_shape)) // max(planes, 1)
    idx = np.ascontiguousarray(idx, dtype=np.int64)
    in_range = _pooling.max_grad_input(np.ascontiguousarray(gy, dtype=dtype).reshape(-1),
                                       idx.reshape(-1), gx.reshape(-1), planes, out_vol, in_vol,
                                       _threads(gx.size))
    if not in_range:
        raise indices_range_error(idx, in_vol)
    return gx


def check_indices(indices, expected_shape, in_vol):
    """`indices` (as max_pool returns them) checked for kind and shape, as int64. Their range is
    checked by the compiled scatter (max_grad_input), with no pass of its own, except for
    unsigned 64-bit indices, which int64 cannot hold: those are checked here."""
    indices = np.asarray(indices)
    if indices.dtype.kind not in "iu":
        raise TypeError(f"indices must be an integer array (as returned with "
                        f"return_indices=True), got dtype {indices.dtype}")
    if indices.shape != tuple(expected_shape):
        raise ValueError(f"indices must have the output's shape {tuple(expected_shape)}, "
                         f"got {indices.shape}")
    if not np.can_cast(indices.dtype, np.int64) and indices.size and indices.max() >= in_vol:
        raise indices_range_error(indices, in_vol)
    return indices


def indices_range_error(indices, in_vol):
    """The ValueError for indices of which some lie outside [-1, in_vol) (only formed once the
    scatter has found one, so its full pass over the indices costs nothing on good input)."""
    return ValueError(f"indices must lie in [0, {in_vol}) (flat positions in one input plane; "
                      f"-1 for a window with no element), got values in "
                      f"[{indices.min()}, {indices.max()}]")


# --- max pooling's tables ------------------------------------------------------------------

def max_tables(in_sizes, k, s, p, d, out):
    """The window tables and tap spacings, built once per geometry (a training loop pools the
    same shapes every step; building them costs ~40 us of NumPy calls, more than a small pool)."""
    return _max_tables_cached(tuple(in_sizes), tuple(k), tuple(s), tuple(p), tuple(d), tuple(out))


@functools.lru_cache(maxsize=256)
def _max_tables_cached(in_sizes, k, s, p, d, out):
    tables, steps = [], []
    for n, kk, ss, pp, dd, o in zip(lift(in_sizes), lift(k), lift(s), lift(p, 0),
                                    lift(d), lift(out)):
        tables.extend(_taps(n, kk, ss, pp, dd, o))
        steps.append(dd)
    return tuple(tables), tuple(steps)


def linear_pool(a, mats, dtype, work, transpose=False):
    """Apply per-axis matrices (un-lifted list of (CSR, n)) to a (N, C, *spatial) array."""
    N, C = a.shape[:2]
    lifted = [None] * (LIFTED - len(mats)) + list(mats)
    a4 = np.ascontiguousarray(a, dtype=dtype).reshape((N * C,) + lift(a.shape[2:]))
    r = separable(a4, lifted, dtype, work, transpose)
    return r.reshape((N, C) + r.shape[1 + LIFTED - len(mats):])
