"""Reference pooling in plain NumPy (part of `fastconv.reference`).

Written from the definitions of section 9.3, one output position at a time (vectorised over the
batch and the channels only), in float64, sharing nothing with `fastconv.pooling`. For each
output position the window's taps are listed in row-major order; those outside the input are
padding (or the ceil-mode overhang) and take no part, except that an average with
``count_include_pad`` counts the padded ones (PyTorch's divisor). Gradients scatter ``gy`` back
through the same windows. Results are float32 when the inputs are float32, else float64.
"""
import itertools
import math

import numpy as np

from ._reference_common import real_array, result_dtype

__all__ = [
    "max_pool", "max_pool_grad_input", "avg_pool", "avg_pool_grad_input",
    "lp_pool", "lp_pool_grad_input", "weighted_avg_pool", "weighted_avg_pool_grad_input",
    "adaptive_max_pool", "adaptive_max_pool_grad_input",
    "adaptive_avg_pool", "adaptive_avg_pool_grad_input",
    "global_avg_pool", "global_avg_pool_grad_input", "global_max_pool", "global_max_pool_grad_input",
    "channel_pool", "channel_pool_grad_input",
]


def _each(value, nd):
    return tuple(value) if isinstance(value, (tuple, list)) else (value,) * nd


def _pool_length(n, k, s, p, d, ceil_mode):
    """Number of windows along one axis (PyTorch's rule for ceil_mode)."""
    span = n + 2 * p - d * (k - 1) - 1
    if span < 0:
        raise ValueError(f"kernel_size: window larger than the padded input ({n} + 2 * {p})")
    if not ceil_mode:
        return span // s + 1
    count = math.ceil(span / s) + 1
    if (count - 1) * s >= n + p:
        count -= 1
    return count


def _geometry(spatial, kernel_size, stride, padding, dilation, ceil_mode):
    nd = len(spatial)
    k = _each(kernel_size, nd)
    s = k if stride is None else _each(stride, nd)
    p = _each(padding, nd)
    d = _each(dilation, nd)
    if any(pp > kk // 2 for pp, kk in zip(p, k)):
        raise ValueError(f"padding: at most kernel_size // 2, got {p} for kernel {k}")
    out = tuple(_pool_length(*args, ceil_mode) for args in zip(spatial, k, s, p, d))
    return k, s, p, d, out


def _outputs(out):
    return itertools.product(*(range(o) for o in out))


def _taps(o, k, s, p, d):
    """Every tap of window ``o`` in row-major order: (tap offsets t, input position)."""
    for t in itertools.product(*(range(kk) for kk in k)):
        yield t, tuple(oo * ss - pp + tt * dd for oo, ss, pp, tt, dd in zip(o, s, p, t, d))


def _inside(pos, spatial):
    return all(0 <= q < n for q, n in zip(pos, spatial))


def _at(pos):
    return (slice(None), slice(None)) + tuple(pos)


def _first_max(values):
    """Index of the first maximum along the last axis; the first NaN if there is one."""
    nan = np.isnan(values)
    return np.where(nan.any(-1), nan.argmax(-1), np.argmax(np.where(nan, -np.inf, values), -1))


def _max_over(x, windows, out_shape):
    """Max and flat in-plane index over the windows: a list of position lists, one per output."""
    N, C = x.shape[:2]
    spatial = x.shape[2:]
    y = np.full((N, C, len(windows)), -np.inf)
    idx = np.full((N, C, len(windows)), -1, dtype=np.int64)
    for j, positions in enumerate(windows):
        if not positions:
            continue
        values = np.stack([x[_at(pos)] for pos in positions], axis=-1)
        first = _first_max(values)
        y[:, :, j] = np.take_along_axis(values, first[..., None], -1)[..., 0]
        flat = np.array([np.ravel_multi_index(pos, spatial) for pos in positions])
        idx[:, :, j] = flat[first]
    return y.reshape(out_shape), idx.reshape(out_shape)


def _route(gy, idx, x_shape):
    """Add each gy to the input element its index names, output by output."""
    N, C = x_shape[:2]
    gx = np.zeros((N * C, int(np.prod(x_shape[2:]))))
    g = gy.reshape(N * C, -1)
    i = idx.reshape(N * C, -1)
    for j in range(g.shape[1]):
        keep = i[:, j] >= 0
        rows = np.nonzero(keep)[0]
        np.add.at(gx, (rows, i[keep, j]), g[keep, j])
    return gx.reshape(x_shape)


def _sliding_windows(spatial, k, s, p, d, out):
    return [[pos for _, pos in _taps(o, k, s, p, d) if _inside(pos, spatial)]
            for o in _outputs(out)]


def max_pool(x, kernel_size, stride=None, padding=0, dilation=1, ceil_mode=False,
             return_indices=False):
    """y[o] = max over the taps o*s - p + t*d inside the input; first maximum in row-major order."""
    x = real_array(x, "x")
    k, s, p, d, out = _geometry(x.shape[2:], kernel_size, stride, padding, dilation, ceil_mode)
    y, idx = _max_over(x.astype(np.float64), _sliding_windows(x.shape[2:], k, s, p, d, out),
                       x.shape[:2] + out)
    y = y.astype(result_dtype(x))
    return (y, idx) if return_indices else y


def max_pool_grad_input(gy, x, kernel_size, stride=None, padding=0, dilation=1, ceil_mode=False,
                        indices=None):
    x, gy = real_array(x, "x"), real_array(gy, "gy")
    if indices is None:
        _, indices = max_pool(x, kernel_size, stride, padding, dilation, ceil_mode, True)
    return _route(gy.astype(np.float64), np.asarray(indices), x.shape).astype(result_dtype(gy, x))


def _avg_windows(spatial, kernel_size, stride, padding, ceil_mode, count_include_pad):
    """Per output: (positions inside the input, divisor)."""
    k, s, p, _, out = _geometry(spatial, kernel_size, stride, padding, 1, ceil_mode)
    windows = []
    for o in _outputs(out):
        positions = [pos for _, pos in _taps(o, k, s, p, (1,) * len(k)) if _inside(pos, spatial)]
        if count_include_pad:   # the window clipped to the padded input
            divisor = 1
            for oo, kk, ss, pp, n in zip(o, k, s, p, spatial):
                start = oo * ss - pp
                divisor *= min(start + kk, n + pp) - start
        else:
            divisor = len(positions)
        windows.append((positions, divisor))
    return windows, out


def _linear(x, windows, out):
    """y[o] = sum over (position, weight) of window o."""
    y = np.zeros(x.shape[:2] + (len(windows),))
    for j, pairs in enumerate(windows):
        for pos, weight in pairs:
            y[:, :, j] += weight * x[_at(pos)]
    return y.reshape(x.shape[:2] + out)


def _linear_transpose(gy, windows, x_shape):
    gx = np.zeros(x_shape)
    g = gy.reshape(gy.shape[:2] + (-1,))
    for j, pairs in enumerate(windows):
        for pos, weight in pairs:
            gx[_at(pos)] += weight * g[:, :, j]
    return gx


def _avg_pairs(spatial, kernel_size, stride, padding, ceil_mode, count_include_pad):
    windows, out = _avg_windows(spatial, kernel_size, stride, padding, ceil_mode,
                                count_include_pad)
    return [[(pos, 1.0 / divisor) for pos in positions] for positions, divisor in windows], out


def avg_pool(x, kernel_size, stride=None, padding=0, ceil_mode=False, count_include_pad=True):
    x = real_array(x, "x")
    pairs, out = _avg_pairs(x.shape[2:], kernel_size, stride, padding, ceil_mode,
                            count_include_pad)
    return _linear(x.astype(np.float64), pairs, out).astype(result_dtype(x))


def avg_pool_grad_input(gy, input_shape, kernel_size, stride=None, padding=0, ceil_mode=False,
                        count_include_pad=True):
    gy = real_array(gy, "gy")
    shape = tuple(gy.shape[:2]) + tuple(input_shape)[-(gy.ndim - 2):]
    pairs, _ = _avg_pairs(shape[2:], kernel_size, stride, padding, ceil_mode, count_include_pad)
    return _linear_transpose(gy.astype(np.float64), pairs, shape).astype(result_dtype(gy))


def lp_pool(x, p, kernel_size, stride=None, padding=0, ceil_mode=False):
    """y[o] = (sum over the window's elements of |x|^p)^(1/p)."""
    x = real_array(x, "x")
    k, s, pad, d, out = _geometry(x.shape[2:], kernel_size, stride, padding, 1, ceil_mode)
    windows = _sliding_windows(x.shape[2:], k, s, pad, d, out)
    ax = np.abs(x.astype(np.float64))
    total = np.zeros(x.shape[:2] + (len(windows),))
    for j, positions in enumerate(windows):
        for pos in positions:
            total[:, :, j] += ax[_at(pos)] ** p
    return (total ** (1.0 / p)).reshape(x.shape[:2] + out).astype(result_dtype(x))


def lp_pool_grad_input(gy, x, p, kernel_size, stride=None, padding=0, ceil_mode=False):
    """dy/dx = sign(x) |x|^(p-1) / y^(p-1) per window; 0 where y == 0 or x == 0."""
    x, gy = real_array(x, "x"), real_array(gy, "gy")
    k, s, pad, d, out = _geometry(x.shape[2:], kernel_size, stride, padding, 1, ceil_mode)
    windows = _sliding_windows(x.shape[2:], k, s, pad, d, out)
    xf = x.astype(np.float64)
    y = lp_pool(xf, p, kernel_size, stride, padding, ceil_mode).reshape(x.shape[:2] + (-1,))
    g = gy.astype(np.float64).reshape(x.shape[:2] + (-1,))
    gx = np.zeros(x.shape)
    for j, positions in enumerate(windows):
        live = y[:, :, j] != 0
        for pos in positions:
            v = xf[_at(pos)]
            with np.errstate(divide="ignore", invalid="ignore"):
                slope = np.sign(v) * np.abs(v) ** (p - 1) / y[:, :, j] ** (p - 1)
            gx[_at(pos)] += np.where(live & (v != 0), slope * g[:, :, j], 0.0)
    return gx.astype(result_dtype(gy, x))


def _gauss_pairs(spatial, kernel_size, stride, padding, ceil_mode, sigma):
    k, s, p, d, out = _geometry(spatial, kernel_size, stride, padding, 1, ceil_mode)
    sig = tuple(kk / 4.0 for kk in k) if sigma is None else _each(sigma, len(k))
    windows = []
    for o in _outputs(out):
        pairs = []
        for t, pos in _taps(o, k, s, p, d):
            if _inside(pos, spatial):
                dist2 = sum((tt - (kk - 1) / 2.0) ** 2 / (2.0 * sg**2)
                            for tt, kk, sg in zip(t, k, sig))
                pairs.append((pos, math.exp(-dist2)))
        total = sum(w for _, w in pairs)
        windows.append([(pos, w / total) for pos, w in pairs])
    return windows, out


def weighted_avg_pool(x, kernel_size, stride=None, padding=0, ceil_mode=False, sigma=None):
    """Gaussian weights of the distance from the window's centre, normalised over the window's
    elements inside the input."""
    x = real_array(x, "x")
    pairs, out = _gauss_pairs(x.shape[2:], kernel_size, stride, padding, ceil_mode, sigma)
    return _linear(x.astype(np.float64), pairs, out).astype(result_dtype(x))


def weighted_avg_pool_grad_input(gy, input_shape, kernel_size, stride=None, padding=0,
                                 ceil_mode=False, sigma=None):
    gy = real_array(gy, "gy")
    shape = tuple(gy.shape[:2]) + tuple(input_shape)[-(gy.ndim - 2):]
    pairs, _ = _gauss_pairs(shape[2:], kernel_size, stride, padding, ceil_mode, sigma)
    return _linear_transpose(gy.astype(np.float64), pairs, shape).astype(result_dtype(gy))


def _adaptive_windows(spatial, output_size):
    out = tuple(n if o is None else o for o, n in zip(_each(output_size, len(spatial)), spatial))
    bins = [[range(i * n // o, -(-(i + 1) * n // o)) for i in range(o)]
            for n, o in zip(spatial, out)]
    return [list(itertools.product(*(b[i] for b, i in zip(bins, o)))) for o in _outputs(out)], out


def adaptive_max_pool(x, output_size, return_indices=False):
    """Max over bins [floor(i n / out), ceil((i + 1) n / out)) along every axis."""
    x = real_array(x, "x")
    windows, out = _adaptive_windows(x.shape[2:], output_size)
    y, idx = _max_over(x.astype(np.float64), windows, x.shape[:2] + out)
    y = y.astype(result_dtype(x))
    return (y, idx) if return_indices else y


def adaptive_max_pool_grad_input(gy, x, output_size, indices=None):
    x, gy = real_array(x, "x"), real_array(gy, "gy")
    if indices is None:
        _, indices = adaptive_max_pool(x, output_size, True)
    return _route(gy.astype(np.float64), np.asarray(indices), x.shape).astype(result_dtype(gy, x))


def _adaptive_pairs(spatial, output_size):
    windows, out = _adaptive_windows(spatial, output_size)
    return [[(pos, 1.0 / len(w)) for pos in w] for w in windows], out


def adaptive_avg_pool(x, output_size):
    x = real_array(x, "x")
    pairs, out = _adaptive_pairs(x.shape[2:], output_size)
    return _linear(x.astype(np.float64), pairs, out).astype(result_dtype(x))


def adaptive_avg_pool_grad_input(gy, input_shape, output_size):
    gy = real_array(gy, "gy")
    shape = tuple(gy.shape[:2]) + tuple(input_shape)[-(gy.ndim - 2):]
    pairs, _ = _adaptive_pairs(shape[2:], output_size)
    return _linear_transpose(gy.astype(np.float64), pairs, shape).astype(result_dtype(gy))


def global_avg_pool(x):
    """Mean over every spatial position: (N, C)."""
    x = real_array(x, "x")
    planes = x.astype(np.float64).reshape(x.shape[:2] + (-1,))
    total = np.zeros(x.shape[:2])
    for j in range(planes.shape[2]):
        total += planes[:, :, j]
    return (total / planes.shape[2]).astype(result_dtype(x))


def global_avg_pool_grad_input(gy, input_shape):
    gy = real_array(gy, "gy")
    shape = tuple(input_shape)
    size = int(np.prod(shape[2:]))
    gx = np.repeat(gy.astype(np.float64)[:, :, None] / size, size, axis=2)
    return gx.reshape(shape).astype(result_dtype(gy))


def global_max_pool(x):
    x = real_array(x, "x")
    windows = [list(itertools.product(*(range(n) for n in x.shape[2:])))]
    y, _ = _max_over(x.astype(np.float64), windows, x.shape[:2])
    return y.astype(result_dtype(x))


def global_max_pool_grad_input(gy, x):
    x, gy = real_array(x, "x"), real_array(gy, "gy")
    windows = [list(itertools.product(*(range(n) for n in x.shape[2:])))]
    _, idx = _max_over(x.astype(np.float64), windows, x.shape[:2])
    return _route(gy.astype(np.float64), idx, x.shape).astype(result_dtype(gy, x))


def _channel_groups(x, group_size, mode):
    if mode not in ("max", "avg"):
        raise ValueError(f"mode: expected 'max' or 'avg', got {mode!r}")
    if x.shape[1] % group_size:
        raise ValueError(f"group_size: {group_size} does not divide {x.shape[1]} channels")
    return x.shape[1] // group_size


def channel_pool(x, group_size, mode="max"):
    """Output channel j pools input channels j*g .. j*g + g - 1 (max: the first maximum)."""
    x = real_array(x, "x")
    groups = _channel_groups(x, group_size, mode)
    xf = x.astype(np.float64)
    y = np.zeros((x.shape[0], groups) + x.shape[2:])
    for j in range(groups):
        block = np.moveaxis(xf[:, j * group_size:(j + 1) * group_size], 1, -1)
        if mode == "max":
            y[:, j] = np.take_along_axis(block, _first_max(block)[..., None], -1)[..., 0]
        else:
            y[:, j] = block.sum(-1) / group_size
    return y.astype(result_dtype(x))


def channel_pool_grad_input(gy, x, group_size, mode="max"):
    x, gy = real_array(x, "x"), real_array(gy, "gy")
    groups = _channel_groups(x, group_size, mode)
    xf, g = x.astype(np.float64), gy.astype(np.float64)
    gx = np.zeros(x.shape)
    for j in range(groups):
        for m in range(group_size):
            c = j * group_size + m
            if mode == "avg":
                gx[:, c] = g[:, j] / group_size
            else:
                block = np.moveaxis(xf[:, j * group_size:(j + 1) * group_size], 1, -1)
                gx[:, c] = np.where(_first_max(block) == m, g[:, j], 0.0)
    return gx.astype(result_dtype(gy, x))
