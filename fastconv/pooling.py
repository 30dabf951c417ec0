"""Pooling (section 9.3): max, average, Lp, distance-weighted, adaptive, global and cross-channel.

Channels-first: ``x`` is ``(N, C, *spatial)`` with 1 to 3 spatial dimensions, or one unbatched
example ``(C, *spatial)`` (the result is then unbatched too, as in PyTorch). A tuple argument
(``kernel_size``, ``stride``, ..., or ``output_size``) gives the number of spatial dimensions;
when all are ints it is ``x.ndim - 2`` for 4-D and 5-D arrays, a 2-D array is one unbatched 1-D
example, and a 3-D array (a batch of 1-D signals or one 2-D example) raises ``ValueError``.
The global and cross-channel pools take batched arrays only.
``kernel_size``, ``stride`` (default: the kernel size), ``padding`` and ``dilation`` are an int
for every spatial dimension or one int per dimension; padding is symmetric and at most
``kernel_size // 2`` (PyTorch's rule). Output size per axis::

    floor((n + 2 * padding - dilation * (kernel_size - 1) - 1) / stride) + 1

or, with ``ceil_mode=True``, the ceiling, minus one when the last window would start past the
input and its low padding (PyTorch's rule). The ceil-mode window at the edge is partial
(figure 9.10): it pools only the elements that exist. float32 and float64 are computed in their
own precision (float16 in float32, returned as float32); integers and bools become float64;
complex and object arrays raise ``TypeError``.

Every function has its ``*_grad_input`` (the gradient with respect to ``x`` given the gradient
``gy`` of the output), so each pool is a layer's forward and backward. The reference versions,
written as plain loops from the definitions, are in ``fastconv.reference``.

How it is computed (``src/_pooling.pyx``): the max pools run one driver over per-axis window
tables (the taps of each window that lie in the input); every linear pool (average, weighted,
adaptive and global average) is a product of per-axis banded matrices and runs as one 1-D pass
per axis, its gradient as the transposed passes. Results do not depend on the thread count.

For a loop that pools one shape many times, ``plan("max" or "avg", x_shape, ...)`` does the
checks, geometry and tables once and returns an object whose ``forward`` and ``grad_input``
give these functions' results bitwise, into caller buffers if asked (``_pooling_prepared.py``).
"""
import functools
import inspect
import numbers

import numpy as np

from . import _pooling_plan as compute
from ._pooling_prepared import plan
from ._geometry import _int
from ._validate import check_bool, real_array, result_dtype

__all__ = [
    "max_pool", "max_pool_grad_input", "avg_pool", "avg_pool_grad_input",
    "lp_pool", "lp_pool_grad_input", "weighted_avg_pool", "weighted_avg_pool_grad_input",
    "adaptive_max_pool", "adaptive_max_pool_grad_input",
    "adaptive_avg_pool", "adaptive_avg_pool_grad_input",
    "global_avg_pool", "global_avg_pool_grad_input", "global_max_pool", "global_max_pool_grad_input",
    "channel_pool", "channel_pool_grad_input", "plan",
]


# --- unbatched inputs ------------------------------------------------------------------------------

def _unbatched(first, spatial, shape=None, also=()):
    """Let a pool take one unbatched example (C, *spatial), as PyTorch does: the array argument
    `first` decides (with the number of spatial axes that a tuple among the arguments `spatial`
    gives); an unbatched call runs as a batch of one, the arrays in `also` and the shape argument
    `shape` ((C, *spatial) or spatial sizes) lifted alike, and returns unbatched results."""
    def wrap(fn):
        signature = inspect.signature(fn)

        @functools.wraps(fn)
        def call(*args, **kwargs):
            bound = signature.bind(*args, **kwargs)
            values = [bound.arguments.get(n, signature.parameters[n].default) for n in spatial]
            given = [(n, v) for n, v in zip(spatial, values) if isinstance(v, (tuple, list))]
            what, value = given[0] if given else (spatial[0], values[0])
            a, unbatched = compute.batched_input(bound.arguments[first],
                                                 compute.spatial_count(value),
                                              first, what, value)
            if not unbatched:
                return fn(*args, **kwargs)
            bound.arguments[first] = a
            for n in also:
                if bound.arguments.get(n) is not None:
                    bound.arguments[n] = real_array(bound.arguments[n], n)[None]
            given = bound.arguments.get(shape)
            if isinstance(given, (tuple, list)) and len(given) == a.ndim - 1:
                bound.arguments[shape] = (1,) + tuple(given)     # (C, *spatial) -> (1, C, ...)
            out = fn(*bound.args, **bound.kwargs)
            return tuple(o[0] for o in out) if isinstance(out, tuple) else out[0]
        return call
    return wrap


# --- max pooling ---------------------------------------------------------------------------------

def _max_pool(x, k, s, p, d, out, dtype, with_idx=True):
    N, C = x.shape[:2]
    x4 = np.ascontiguousarray(x, dtype=dtype).reshape((N * C,) + compute.lift(x.shape[2:]))
    tables, steps = compute.max_tables(x.shape[2:], k, s, p, d, out)
    y, idx = compute.run_max(x4, dtype, tables, steps, compute.lift(out),
                             x.size * int(np.prod(k)), with_idx)
    return compute.shaped(y, idx, (N, C) + out)


@_unbatched("x", ("kernel_size", "stride", "padding", "dilation"))
def max_pool(x, kernel_size, stride=None, padding=0, dilation=1, ceil_mode=False,
             return_indices=False):
    """Max pooling: each output is the largest element of its window (padding is -inf, never
    chosen). Ties go to the first position of the window in row-major order; a NaN wins over
    numbers. With ``return_indices`` also the int64 flat index of each maximum in its (n, c)
    input plane (PyTorch's convention). A dilated window can fall entirely on padding (e.g.
    n=1, kernel 2, padding 1, dilation 2): it gives -inf and index -1, and routes no gradient."""
    x = compute.spatial_input(x)
    return_indices = check_bool(return_indices, "return_indices")
    k, s, p, d, out = compute.window(x.shape[2:], kernel_size, stride, padding, dilation, ceil_mode)
    y, idx = _max_pool(x, k, s, p, d, out, result_dtype(x), return_indices)
    return (y, idx) if return_indices else y


@_unbatched("x", ("kernel_size", "stride", "padding", "dilation"), also=("gy", "indices"))
def max_pool_grad_input(gy, x, kernel_size, stride=None, padding=0, dilation=1, ceil_mode=False,
                        indices=None):
    """Gradient of :func:`max_pool`: each ``gy`` element goes to its window's maximum (from
    ``indices`` if given, else recomputed); overlapping windows add up in a fixed order."""
    x = compute.spatial_input(x)
    gy = compute.spatial_input(gy, "gy")
    k, s, p, d, out = compute.window(x.shape[2:], kernel_size, stride, padding, dilation, ceil_mode)
    compute.check_gy(gy, x.shape[:2] + out, "max_pool of x with this geometry")
    dtype = result_dtype(gy, x)
    if indices is None:
        _, indices = _max_pool(x, k, s, p, d, out, dtype)
    else:
        indices = compute.check_indices(indices, gy.shape, int(np.prod(x.shape[2:])))
    return compute.max_grad_input(gy, indices, x.shape, dtype, x.shape[0] * x.shape[1])


# --- average pooling -----------------------------------------------------------------------------

def _avg_mats(in_sizes, k, s, p, out, count_include_pad):
    return [(compute.avg_matrix(n, kk, ss, pp, o, count_include_pad), n)
            for n, kk, ss, pp, o in zip(in_sizes, k, s, p, out)]


@_unbatched("x", ("kernel_size", "stride", "padding"))
def avg_pool(x, kernel_size, stride=None, padding=0, ceil_mode=False, count_include_pad=True):
    """Average pooling with PyTorch's divisor: the window size clipped to the padded input (so
    the ceil-mode overhang never counts) if ``count_include_pad``, else the number of input
    elements in the window."""
    x = compute.spatial_input(x)
    k, s, p, _, out = compute.window(x.shape[2:], kernel_size, stride, padding, 1, ceil_mode)
    mats = _avg_mats(x.shape[2:], k, s, p, out, check_bool(count_include_pad, "count_include_pad"))
    return compute.linear_pool(x, mats, result_dtype(x), x.size * sum(k))


@_unbatched("gy", ("kernel_size", "stride", "padding"), shape="input_shape")
def avg_pool_grad_input(gy, input_shape, kernel_size, stride=None, padding=0, ceil_mode=False,
                        count_include_pad=True):
    """Gradient of :func:`avg_pool` (its transpose), for an input of ``input_shape``."""
    gy = compute.spatial_input(gy, "gy")
    shape = compute.input_shape(input_shape, gy, gy.ndim - 2)
    k, s, p, _, out = compute.window(shape[2:], kernel_size, stride, padding, 1, ceil_mode)
    compute.check_gy(gy, shape[:2] + out, "avg_pool of input_shape with this geometry")
    mats = _avg_mats(shape[2:], k, s, p, out, check_bool(count_include_pad, "count_include_pad"))
    return compute.linear_pool(gy, mats, result_dtype(gy), int(np.prod(shape)) * sum(k),
                               transpose=True)


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
    return [(compute.band([0], [n]) + (np.full(n, 1.0 / n),), n) for n in in_sizes]


def global_avg_pool(x):
    """Mean over all spatial positions: (N, C, *spatial) -> (N, C)."""
    x = compute.spatial_input(x)
    if 0 in x.shape[2:]:
        raise ValueError(f"x: every spatial size must be >= 1, got shape {x.shape}")
    return compute.linear_pool(x, _global_mats(x.shape[2:]), result_dtype(x),
                               x.size).reshape(x.shape[:2])


def global_avg_pool_grad_input(gy, input_shape):
    """Gradient of :func:`global_avg_pool`: gy / (number of spatial positions), broadcast."""
    gy = real_array(gy, "gy")
    shape = _global_input_shape(input_shape, gy)
    nd = len(shape) - 2
    g = gy.reshape(gy.shape + (1,) * nd)
    return compute.linear_pool(g, _global_mats(shape[2:]), result_dtype(gy), int(np.prod(shape)),
                               transpose=True)


def _global_max(x, dtype, with_idx=True):
    N, C = x.shape[:2]
    x4 = np.ascontiguousarray(x, dtype=dtype).reshape((N * C,) + compute.lift(x.shape[2:]))
    tables = []
    for n in x4.shape[1:]:
        tables.extend((np.zeros(1, dtype=compute.INDEX), np.full(1, n, dtype=compute.INDEX)))
    y, idx = compute.run_max(x4, dtype, tables, (1, 1, 1), (1, 1, 1), x.size, with_idx)
    return compute.shaped(y, idx, (N, C))


def global_max_pool(x):
    """Maximum over all spatial positions: (N, C, *spatial) -> (N, C); ties as in max_pool."""
    x = compute.spatial_input(x)
    if 0 in x.shape[2:]:
        raise ValueError(f"x: every spatial size must be >= 1, got shape {x.shape}")
    return _global_max(x, result_dtype(x), with_idx=False)[0]


def global_max_pool_grad_input(gy, x):
    """Gradient of :func:`global_max_pool`: gy goes to the (first) maximum of each plane."""
    x = compute.spatial_input(x)
    gy = real_array(gy, "gy")
    if 0 in x.shape[2:]:
        raise ValueError(f"x: every spatial size must be >= 1, got shape {x.shape}")
    compute.check_gy(gy, x.shape[:2], "global_max_pool of x")
    dtype = result_dtype(gy, x)
    _, idx = _global_max(x, dtype)
    return compute.max_grad_input(gy, idx, x.shape, dtype, x.shape[0] * x.shape[1])


# --- Lp pooling ------------------------------------------------------------------------------

def _check_p(p):
    if isinstance(p, (bool, np.bool_)) or not isinstance(p, numbers.Real):
        raise TypeError(f"p must be a real number, got {p!r} ({type(p).__name__})")
    if not (np.isfinite(p) and p > 0):
        raise ValueError(f"p must be a finite number > 0, got {p!r}")
    return float(p)


def _lp_setup(x, p, kernel_size, stride, padding, ceil_mode):
    k, s, pad, _, out = compute.window(x.shape[2:], kernel_size, stride, padding, 1, ceil_mode)
    mats = [(compute.sum_matrix(n, kk, ss, pp, o), n)
            for n, kk, ss, pp, o in zip(x.shape[2:], k, s, pad, out)]
    return mats, out, x.size * sum(k)


def _lp_forward(xc, p, mats, work):
    powered = xc * xc if p == 2 else np.abs(xc) ** p
    total = compute.linear_pool(powered, mats, xc.dtype, work)
    return np.sqrt(total) if p == 2 else total ** (1.0 / p)


@_unbatched("x", ("kernel_size", "stride", "padding"))
def lp_pool(x, p, kernel_size, stride=None, padding=0, ceil_mode=False):
    """Lp pooling, ``(sum over the window of |x|^p)^(1/p)``; p = 2 is the chapter's L2 norm
    pooling, p = 1 the sum of magnitudes, large p approaches max pooling of |x|. Padding adds
    nothing to the sum. (PyTorch's lp_pool raises x, not |x|, to the power p, and with
    ceil_mode it scales a partial window's sum up to the full window size; this is the norm.)
    |x|^p is formed in the input's precision, so float32 overflows for large |x| and p."""
    x = compute.spatial_input(x)
    p = _check_p(p)
    mats, _, work = _lp_setup(x, p, kernel_size, stride, padding, ceil_mode)
    return _lp_forward(np.asarray(x, dtype=result_dtype(x)), p, mats, work)


@_unbatched("x", ("kernel_size", "stride", "padding"), also=("gy",))
def lp_pool_grad_input(gy, x, p, kernel_size, stride=None, padding=0, ceil_mode=False):
    """Gradient of :func:`lp_pool`: ``gx = sign(x) |x|^(p-1) * sum over the windows of x of
    gy / y^(p-1)``. Where the norm ``y`` of a window is 0 that window passes no gradient (the
    norm has no derivative there; 0 is its smallest subgradient), and an element ``x == 0``
    gets 0 (for p < 1 its derivative is infinite)."""
    x = compute.spatial_input(x)
    gy = compute.spatial_input(gy, "gy")
    p = _check_p(p)
    mats, out, work = _lp_setup(x, p, kernel_size, stride, padding, ceil_mode)
    compute.check_gy(gy, x.shape[:2] + out, "lp_pool of x with this geometry")
    dtype = result_dtype(gy, x)
    xc = np.asarray(x, dtype=dtype)
    y = _lp_forward(xc, p, mats, work)
    gyc = np.asarray(gy, dtype=dtype)
    with np.errstate(divide="ignore", invalid="ignore"):
        scaled = np.where(y == 0, 0, gyc if p == 1 else gyc / y ** (p - 1)).astype(dtype)
        back = compute.linear_pool(scaled, mats, dtype, work, transpose=True)
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
    k, s, p, _, out = compute.window(in_sizes, kernel_size, stride, padding, 1, ceil_mode)
    sig = _sigma(sigma, k)
    mats = [(compute.gaussian_matrix(n, kk, ss, pp, o, sg), n)
            for n, kk, ss, pp, o, sg in zip(in_sizes, k, s, p, out, sig)]
    return mats, out, sum(k)


@_unbatched("x", ("kernel_size", "stride", "padding", "sigma"))
def weighted_avg_pool(x, kernel_size, stride=None, padding=0, ceil_mode=False, sigma=None):
    """The chapter's "weighted average based on the distance from the central pixel": weights
    ``exp(-t^2 / (2 sigma^2))`` of the offset t of each element from the window's centre
    (``(kernel_size - 1) / 2``), per axis and multiplied, normalised to sum to 1 over the
    elements of the window that lie in the input (padding and the ceil-mode overhang carry no
    weight). ``sigma``: a number or one per axis; default ``kernel_size / 4`` per axis, so the
    window spans about +-2 sigma: an edge tap weighs exp(-2 (k - 1)^2 / k^2) of the centre per
    axis (0.61 for k = 2, 0.41 for k = 3, tending to e^-2 ~ 0.14 for large k)."""
    x = compute.spatial_input(x)
    mats, _, taps = _weighted_mats(x.shape[2:], kernel_size, stride, padding, ceil_mode, sigma)
    return compute.linear_pool(x, mats, result_dtype(x), x.size * taps)


@_unbatched("gy", ("kernel_size", "stride", "padding", "sigma"), shape="input_shape")
def weighted_avg_pool_grad_input(gy, input_shape, kernel_size, stride=None, padding=0,
                                 ceil_mode=False, sigma=None):
    """Gradient of :func:`weighted_avg_pool` (its transpose), for an input of ``input_shape``."""
    gy = compute.spatial_input(gy, "gy")
    shape = compute.input_shape(input_shape, gy, gy.ndim - 2)
    mats, out, taps = _weighted_mats(shape[2:], kernel_size, stride, padding, ceil_mode, sigma)
    compute.check_gy(gy, shape[:2] + out, "weighted_avg_pool of input_shape with this geometry")
    return compute.linear_pool(gy, mats, result_dtype(gy), int(np.prod(shape)) * taps,
                               transpose=True)


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
    x4 = np.ascontiguousarray(x, dtype=dtype).reshape((N * C,) + compute.lift(x.shape[2:]))
    tables = []
    for n, o in zip(x4.shape[1:], compute.lift(out)):
        tables.extend(np.ascontiguousarray(t, dtype=compute.INDEX) for t in compute.bins(n, o))
    y, idx = compute.run_max(x4, dtype, tables, (1, 1, 1), compute.lift(out), x.size * 2, with_idx)
    return compute.shaped(y, idx, (N, C) + out)


@_unbatched("x", ("output_size",))
def adaptive_max_pool(x, output_size, return_indices=False):
    """Max over PyTorch's adaptive bins: along an axis of n elements, output i pools
    ``[floor(i n / out), ceil((i + 1) n / out))``, so the output has ``output_size`` whatever
    the input size (figure 9.11, centre). Ties and indices as in :func:`max_pool`."""
    x = compute.spatial_input(x)
    out = _output_size(output_size, x.shape[2:])
    return_indices = check_bool(return_indices, "return_indices")
    y, idx = _adaptive_max(x, out, result_dtype(x), return_indices)
    return (y, idx) if return_indices else y


@_unbatched("x", ("output_size",), also=("gy", "indices"))
def adaptive_max_pool_grad_input(gy, x, output_size, indices=None):
    """Gradient of :func:`adaptive_max_pool` (``indices`` reused if given, else recomputed)."""
    x = compute.spatial_input(x)
    gy = compute.spatial_input(gy, "gy")
    out = _output_size(output_size, x.shape[2:])
    compute.check_gy(gy, x.shape[:2] + out, "adaptive_max_pool of x")
    dtype = result_dtype(gy, x)
    if indices is None:
        _, indices = _adaptive_max(x, out, dtype)
    else:
        indices = compute.check_indices(indices, gy.shape, int(np.prod(x.shape[2:])))
    return compute.max_grad_input(gy, indices, x.shape, dtype, x.shape[0] * x.shape[1])


def _adaptive_mats(in_sizes, out):
    mats = []
    for n, o in zip(in_sizes, out):
        lo, cnt = compute.bins(n, o)
        indptr, indices = compute.band(lo, cnt)
        mats.append(((indptr, indices, np.repeat(1.0 / cnt, cnt)), n))
    return mats


@_unbatched("x", ("output_size",))
def adaptive_avg_pool(x, output_size):
    """Mean over PyTorch's adaptive bins (see :func:`adaptive_max_pool`)."""
    x = compute.spatial_input(x)
    out = _output_size(output_size, x.shape[2:])
    return compute.linear_pool(x, _adaptive_mats(x.shape[2:], out), result_dtype(x), x.size * 2)


@_unbatched("gy", ("output_size",), shape="input_shape")
def adaptive_avg_pool_grad_input(gy, input_shape, output_size):
    """Gradient of :func:`adaptive_avg_pool` (its transpose), for an input of ``input_shape``."""
    gy = compute.spatial_input(gy, "gy")
    shape = compute.input_shape(input_shape, gy, gy.ndim - 2)
    out = _output_size(output_size, shape[2:])
    compute.check_gy(gy, shape[:2] + out, "adaptive_avg_pool of input_shape")
    return compute.linear_pool(gy, _adaptive_mats(shape[2:], out), result_dtype(gy),
                               int(np.prod(shape)) * 2, transpose=True)


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
    tables = [np.zeros(1, dtype=compute.INDEX), np.ones(1, dtype=compute.INDEX),
              np.arange(G, dtype=compute.INDEX) * g, np.full(G, g, dtype=compute.INDEX),
              np.arange(S, dtype=compute.INDEX), np.ones(S, dtype=compute.INDEX)]
    return compute.run_max(x4, dtype, tables, (1, 1, 1), (1, G, S), x.size, with_idx)


def _channel_avg_mat(C, g):
    G = C // g
    indptr, indices = compute.band(np.arange(G) * g, np.full(G, g))
    return [None, ((indptr, indices, np.full(C, 1.0 / g)), C), None]


def channel_pool(x, group_size, mode="max"):
    """Pool over groups of ``group_size`` consecutive channels (figure 9.9): (N, C, *spatial)
    -> (N, C // group_size, *spatial); ``mode="max"`` is maxout (ties: the first channel of the
    group), ``"avg"`` the mean. Any number of spatial dimensions, none included."""
    x = compute.spatial_input(x, min_ndim=2)
    g = _channel_setup(x, group_size, mode)
    dtype = result_dtype(x)
    out_shape = (x.shape[0], x.shape[1] // g) + x.shape[2:]
    if mode == "max":
        return _channel_max(x, g, dtype, with_idx=False)[0].reshape(out_shape)
    return compute.separable(_channel_view(x, dtype), _channel_avg_mat(x.shape[1], g), dtype,
                      x.size).reshape(out_shape)


def channel_pool_grad_input(gy, x, group_size, mode="max"):
    """Gradient of :func:`channel_pool`: to the group's (first) maximum, or gy / group_size
    to every channel of the group."""
    x = compute.spatial_input(x, min_ndim=2)
    gy = compute.spatial_input(gy, "gy", min_ndim=2)
    g = _channel_setup(x, group_size, mode)
    compute.check_gy(gy, (x.shape[0], x.shape[1] // g) + x.shape[2:], "channel_pool of x")
    dtype = result_dtype(gy, x)
    if mode == "max":
        _, idx = _channel_max(x, g, dtype)
        return compute.max_grad_input(gy, idx, x.shape, dtype, x.shape[0])
    gy4 = _channel_view(gy, dtype)
    return compute.separable(gy4, _channel_avg_mat(x.shape[1], g), dtype, x.size,
                         transpose=True).reshape(x.shape)
