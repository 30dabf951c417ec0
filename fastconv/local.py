"""Locally connected (unshared, eq. 9.9) and tiled (eq. 9.10) convolution with both gradients.

Section 9.5 of the chapter. A *locally connected* layer has its own kernel at every output
position; *tiled* convolution cycles through a set of t_1 x ... x t_d kernels as one moves through
the output (t = 1 is ordinary convolution, t = the output size is locally connected). Both take
the geometry arguments of `fastconv.conv` (stride, zero padding in every form, dilation) for 1, 2
and 3 spatial dimensions, batches and several channels; there are no groups (every output
channel reads every input channel). The three operations of each -- forward, ``grad_input``,
``grad_kernel`` -- are the adjoint family of section 9.5, as for ordinary convolution.

Locally connected runs on `src/_local.pyx`: one GEMM per output position (its patch matrix
times its own kernel) over OpenMP threads. Tiled convolution has two implementations, picked from
the shapes (`_by_position`): the same core with a map from positions to tile kernels, or
prod(t) ordinary convolutions (`fastconv.conv` and its gradients, so the chooser's algorithm) on
strided slices -- the outputs whose index is a (mod t) along each axis are a convolution with
stride s * t of the input shifted by a * s. Every path is bitwise independent of the thread count.
"""
import itertools
import math

import numpy as np

from . import _config, _registry
from ._lazy import LazyModule
from ._functional import conv, conv_grad_input, conv_grad_kernel
from ._geometry import effective_kernel, make_spec
from ._validate import (check_output_grad, full_shape, lifted, real_array, result_dtype,
                        shape_tuple, spatial_dims)

_local = LazyModule("fastconv._local")     # cimports SciPy's BLAS: loaded on first use

__all__ = ["locally_connected", "locally_connected_grad_input", "locally_connected_grad_kernel",
           "tiled_conv", "tiled_conv_grad_input", "tiled_conv_grad_kernel"]

SCRATCH_ELEMENTS = 2**18    # one thread's patch matrix (samples x C * k_vol) stays in L2
BLOCK_ELEMENTS = 2**18      # grad_input: per-position GEMM results held before the scatter
# Tiled convolution runs position by position (the locally connected core with a kernel map)
# from this batch size or this many tile kernels on; below both, as one convolution per tile.
# Measured on one thread (2-core AVX-512 Xeon): batch 32 or t = 7 per axis, by position is
# 2-20x faster (each tile's convolution copies its slice of the input, and strided
# convolutions are the chooser's weak spot); batch 1 with 3 channels and t = 2, per tile is ~2x
# faster (the per-position products are then matrix-vector products).
BY_POSITION_MIN_BATCH = 8
BY_POSITION_MIN_TILES = 16


# --- shapes and validation ------------------------------------------------------------------

def _spatial_dims(w_shape, name, leading):
    """d from a weight of shape (*leading, K, C, *kernel), 2 * d + 2 dimensions."""
    if len(w_shape) not in (4, 6, 8):
        raise ValueError(f"{name} must have 4, 6 or 8 dimensions ({leading}, K, C, *kernel) for "
                         f"1-, 2- or 3-D, got shape {tuple(w_shape)}")
    return (len(w_shape) - 2) // 2


def _check_x(x_shape, d, channels, x_name, w_name, w_shape):
    if len(x_shape) != d + 2:
        raise ValueError(f"{x_name} must have {d + 2} dimensions (N, C, *spatial) to match the "
                         f"{d}-D weights {w_name} of shape {tuple(w_shape)}, got shape "
                         f"{tuple(x_shape)}")
    if x_shape[1] != channels:
        raise ValueError(f"{x_name} must have the {channels} input channels of {w_name} (axis "
                         f"{d + 1} of shape {tuple(w_shape)}), got shape {tuple(x_shape)}")


def _spec(x_shape, w_shape, d, stride, padding, dilation, dtype, x_name="x", w_name="w"):
    """The ConvSpec of one position's (or tile's) kernel (K, C, *kernel) on x."""
    _check_x(x_shape, d, w_shape[d + 1], x_name, w_name, w_shape)
    return make_spec(x_shape, w_shape[d:], stride=stride, padding=padding, dilation=dilation,
                     dtype=dtype, x_name=x_name, w_name=w_name)


def _out_spatial(spec):
    return spec.user_shape(spec.y_shape)[2:]


def _check_positions(spec, w_shape, d, w_name):
    out = _out_spatial(spec)
    if tuple(w_shape[:d]) != out:
        raise ValueError(f"{w_name} must have one kernel per output position: leading axes "
                         f"{out} (the output size of this geometry), got {tuple(w_shape[:d])} in "
                         f"shape {tuple(w_shape)}")


def _check_tiles(w_shape, d, w_name):
    if any(t < 1 for t in w_shape[:d]):
        raise ValueError(f"{w_name} must have at least one kernel per tile axis: leading axes "
                         f"(t_1, ..., t_{d}) >= 1, got shape {tuple(w_shape)}")


def _check_bias(b, channels, per, what):
    """bias: None, (K,) shared, or (K, *per) -- one per output position or tile kernel."""
    if b is not None and b.shape not in ((channels,), (channels,) + tuple(per)):
        raise ValueError(f"bias must have shape ({channels},) (one per output channel) or "
                         f"{(channels,) + tuple(per)} (one per output channel and {what}), got "
                         f"{b.shape}")


def _forward_args(x, w, bias, leading, stride, padding, dilation):
    """x, w, bias as arrays, d and the spec of a forward call; w is (leading, K, C, *kernel)."""
    x, w = real_array(x, "x"), real_array(w, "w")
    b = None if bias is None else real_array(bias, "bias")
    d = _spatial_dims(w.shape, "w", leading)
    return x, w, b, d, _spec(x.shape, w.shape, d, stride, padding, dilation, result_dtype(x, w, b))


def _grad_input_args(gy, w, input_shape, leading, stride, padding, dilation):
    """gy, w as arrays, d and the spec of a grad_input call (input_shape full or spatial)."""
    gy, w = real_array(gy, "gy"), real_array(w, "w")
    d = _spatial_dims(w.shape, "w", leading)
    if gy.ndim != d + 2:
        raise ValueError(f"gy must have {d + 2} dimensions (N, K, *out_spatial) for {d}-D weights "
                         f"w of shape {w.shape}, got shape {gy.shape}")
    x_shape = full_shape(input_shape, "input_shape", d, (gy.shape[0], w.shape[d + 1]))
    spec = _spec(x_shape, w.shape, d, stride, padding, dilation, result_dtype(gy, w),
                 x_name="input_shape")
    return gy, w, d, spec


def _grad_kernel_args(x, gy, kernel_shape):
    """x, gy as arrays, d and kernel_shape as a tuple (its length is the caller's to check)."""
    x, gy = real_array(x, "x"), real_array(gy, "gy")
    d = spatial_dims(x, "x", "N, C, *spatial", gy, "gy", "N, K, *out_spatial", "like x")
    return x, gy, d, shape_tuple(kernel_shape, "kernel_shape")


def _empty(spec):
    return 0 in (spec.batch, spec.out_channels, spec.in_channels)


# --- locally connected (eq. 9.9) --------------------------------------------------------------

class _Plan:
    """Samples per GEMM (nb), positions per grad_input block, threads and scratch of a call.

    nb and the block depend on the problem only (they fix the rounding); the workspace limit is
    kept by running fewer threads, down to one. Scratch: the input (or its gradient) batch-last,
    per-thread patch matrices, and for grad_input a block of per-position GEMM results.
    """

    def __init__(self, spec, op):
        rows = spec.in_channels * math.prod(spec.kernel_size)
        channels = spec.out_channels
        positions = math.prod(spec.output_size)
        k_vol = math.prod(spec.kernel_size)
        self.nb = max(1, min(spec.batch, SCRATCH_ELEMENTS // (rows + channels)))
        per_thread = self.nb * (channels if op == "grad_input" else rows + channels)
        self.block = max(1, min(positions, BLOCK_ELEMENTS // (self.nb * rows)))
        self.block_elements = self.block * self.nb * rows if op == "grad_input" else 0
        self.batch_last = spec.batch * spec.in_channels * math.prod(spec.input_size)
        room = (_config.get_workspace_limit() // spec.dtype.itemsize - self.block_elements
                - self.batch_last)
        self.threads = max(1, min(_config.get_num_threads(), room // per_thread))
        self.work_elements = self.threads * per_thread
        self.offsets = np.empty((self.block if op == "grad_input" else self.threads) * k_vol,
                                np.intp)


def _positions(spec):
    """Every output position its own kernel: the map for locally connected."""
    return np.arange(math.prod(spec.output_size), dtype=np.intp)


def _lc_forward(spec, x5, w3, kernel_of):
    plan = _Plan(spec, "forward")
    y = np.empty(spec.y_shape, spec.dtype)
    with _config.blas_single_threaded():
        _local.forward(spec, x5.reshape(-1), w3.reshape(-1), kernel_of, y.reshape(-1),
                       np.empty(plan.batch_last, spec.dtype),
                       np.empty(plan.work_elements, spec.dtype), plan.offsets, plan.nb,
                       plan.threads)
    return y


def _lc_grad_input(spec, gy5, w3, kernel_of):
    plan = _Plan(spec, "grad_input")
    gx = np.empty(spec.x_shape, spec.dtype)
    with _config.blas_single_threaded():
        _local.grad_input(spec, gy5.reshape(-1), w3.reshape(-1), kernel_of, gx.reshape(-1),
                          np.zeros(plan.batch_last, spec.dtype),
                          np.empty(plan.work_elements, spec.dtype),
                          np.empty(plan.block_elements, spec.dtype), plan.offsets, plan.nb,
                          plan.block, plan.threads)
    return gx


def _lc_grad_kernel(spec, x5, gy5, kernel_of, kernels):
    """The gradient of each of `kernels` kernels, position p feeding kernel_of[p]'s."""
    plan = _Plan(spec, "grad_kernel")
    order = np.argsort(kernel_of, kind="stable").astype(np.intp)
    starts = np.concatenate([[0], np.cumsum(np.bincount(kernel_of, minlength=kernels))])
    gw = np.empty(kernels * math.prod(spec.w_shape), spec.dtype)
    with _config.blas_single_threaded():
        _local.grad_kernel(spec, x5.reshape(-1), gy5.reshape(-1), gw, order,
                           starts.astype(np.intp), np.empty(plan.batch_last, spec.dtype),
                           np.empty(plan.work_elements, spec.dtype), plan.offsets, plan.nb,
                           plan.threads)
    return gw


def locally_connected(x, w, bias=None, *, stride=1, padding=0, dilation=1):
    """Unshared convolution, eq. 9.9: every output position p has its own kernel w[p].

    y[n, k, p] = sum_{c, t} x[n, c, p * stride + t * dilation] w[p][k, c, t] over the zero-padded
    input. ``x`` is (N, C, *in_spatial); ``w`` is (*out_spatial, K, C, *kernel) -- positions first,
    so each position's (K, C, *kernel) kernel is contiguous --, and ``out_spatial`` must be the
    output size the geometry gives. ``stride``, ``padding`` (int, per axis, (low, high) pairs,
    "valid", "same", "full") and ``dilation`` are those of `fastconv.conv`; there are no groups.
    ``bias`` is None, (K,) shared over positions, or (K, *out_spatial), one per output location
    (section 9.5). Returns (N, K, *out_spatial) in the inputs' precision.
    """
    x, w, b, d, spec = _forward_args(x, w, bias, "*out_spatial", stride, padding, dilation)
    _check_positions(spec, w.shape, d, "w")
    out = _out_spatial(spec)
    _check_bias(b, spec.out_channels, out, "output position")
    if _empty(spec):
        y = np.zeros(spec.user_shape(spec.y_shape), spec.dtype)
    else:
        x5 = lifted(x, spec.x_shape, spec.dtype)
        w3 = lifted(w, -1, spec.dtype)
        with _config.threads_for(spec.flops, key=(spec, "locally_connected")):
            y = _lc_forward(spec, x5, w3, _positions(spec)).reshape(
                spec.user_shape(spec.y_shape))
    if b is not None:
        y += b.astype(spec.dtype, copy=False).reshape((1, spec.out_channels) + (
            out if b.ndim > 1 else (1,) * d))
    return y


def locally_connected_grad_input(gy, w, input_shape, *, stride=1, padding=0, dilation=1):
    """The input gradient of `locally_connected`: multiplication of gy by its transposed matrix.

    ``gy`` is (N, K, *out_spatial), ``w`` the forward weights (*out_spatial, K, C, *kernel);
    ``input_shape`` is x's shape, (N, C, *in_spatial) or in_spatial alone (several input sizes give
    the same output size under a stride).
    """
    gy, w, d, spec = _grad_input_args(gy, w, input_shape, "*out_spatial", stride, padding, dilation)
    _check_positions(spec, w.shape, d, "w")
    check_output_grad(gy, spec.user_shape(spec.y_shape), "gy")
    if _empty(spec):
        return np.zeros(spec.user_shape(spec.x_shape), spec.dtype)
    gy5 = lifted(gy, spec.y_shape, spec.dtype)
    w3 = lifted(w, -1, spec.dtype)
    with _config.threads_for(spec.flops, key=(spec, "locally_connected_grad_input")):
        gx = _lc_grad_input(spec, gy5, w3, _positions(spec))
    return gx.reshape(spec.user_shape(spec.x_shape))


def locally_connected_grad_kernel(x, gy, kernel_shape, *, stride=1, padding=0, dilation=1):
    """The weight gradient of `locally_connected`, summed over the batch.

    gw[p][k, c, t] = sum_n gy[n, k, p] x[n, c, p * stride + t * dilation]. ``kernel_shape`` is
    w's full shape (*out_spatial, K, C, *kernel), or the kernel's spatial sizes alone.
    """
    x, gy, d, shape = _grad_kernel_args(x, gy, kernel_shape)
    dtype = result_dtype(x, gy)
    if len(shape) == d:
        k_shape = (gy.shape[1], x.shape[1]) + shape
        spec = make_spec(x.shape, k_shape, stride=stride, padding=padding, dilation=dilation,
                         dtype=dtype, w_name="kernel_shape")
        shape = _out_spatial(spec) + k_shape
    elif len(shape) != 2 * d + 2:
        raise ValueError(f"kernel_shape must have {2 * d + 2} entries (*out_spatial, K, C, "
                         f"*kernel) "
                         f"or {d} (the kernel's spatial sizes) for a {d}-D x, got {shape}")
    spec = _spec(x.shape, shape, d, stride, padding, dilation, dtype, w_name="kernel_shape")
    _check_positions(spec, shape, d, "kernel_shape")
    check_output_grad(gy, (x.shape[0], shape[d]) + _out_spatial(spec))
    if _empty(spec):
        return np.zeros(shape, spec.dtype)
    x5 = lifted(x, spec.x_shape, spec.dtype)
    gy5 = lifted(gy, spec.y_shape, spec.dtype)
    with _config.threads_for(spec.flops, key=(spec, "locally_connected_grad_kernel")):
        kernel_of = _positions(spec)
        gw = _lc_grad_kernel(spec, x5, gy5, kernel_of, kernel_of.size)
    return gw.reshape(shape)


# --- tiled (eq. 9.10) -----------------------------------------------------------------------

class _Tile:
    """Output positions a, a + t, a + 2t, ... along every axis, as an ordinary convolution.

    Output o = a + t * j reads the padded input from o * s; in unpadded coordinates the tile's
    outputs read x[start + j * s * t + m * dilation] with start = a * s - pad_low. The tile's
    convolution takes the input slice [max(start, 0), min(stop, n)) with stride s * t and the
    zero padding that the slice lacks on each side.
    """

    def __init__(self, index, tiles, spec, d):
        self.index = index
        lift = 3 - d
        sizes = spec.input_size[lift:]
        self.outputs, self.x_slices, self.pads, self.stride, self.y_slices = [], [], [], [], []
        for a, n, k, s, dil, lo, out, t in zip(
                index, sizes, spec.kernel_size[lift:], spec.stride[lift:],
                spec.dilation[lift:], spec.pad_low[lift:], spec.output_size[lift:], tiles):
            count = len(range(a, out, t))
            start = a * s - lo
            stop = start + (count - 1) * s * t + effective_kernel(k, dil)
            self.outputs.append(count)
            self.x_slices.append(slice(max(start, 0), min(stop, n)))
            self.pads.append((max(-start, 0), max(stop - n, 0)))
            self.stride.append(s * t)
            self.y_slices.append(slice(a, None, t))
        # a tile with no outputs, or whose windows all lie in the padding, contributes nothing
        self.empty = any(c == 0 for c in self.outputs) or any(
            sl.stop <= sl.start for sl in self.x_slices)

    def x_view(self, x):
        return x[(slice(None), slice(None)) + tuple(self.x_slices)]

    def y_view(self, y):
        return y[(slice(None), slice(None)) + tuple(self.y_slices)]

    def geometry(self, dilation):
        return dict(stride=tuple(self.stride), padding=tuple(self.pads), dilation=dilation)


def _tiles(spec, tiles, d):
    """Every tile, in a fixed order (the order the gradients add them in)."""
    return [_Tile(index, tiles, spec, d) for index in itertools.product(*(range(t) for t in tiles))]


def _dilation(spec, d):
    return spec.dilation[3 - d:]


def _by_position(spec, tiles, algorithm, op):
    """Whether tiled convolution runs position by position rather than one conv per tile.

    Shapes only (never the thread count, so the rounding does not change with it). A forced
    algorithm means the per-tile convolutions. The kernel gradient by position has one work item
    per tile kernel, so it needs at least as many kernels as the machine has cores.
    """
    kernels = math.prod(tiles)
    if algorithm != "auto" or (op == "grad_kernel" and kernels < _config.planning_threads()):
        return False
    return spec.batch >= BY_POSITION_MIN_BATCH or kernels >= BY_POSITION_MIN_TILES


def _tile_map(spec, tiles):
    """kernel_of[p]: the flat index of the tile kernel output position p (lifted) uses."""
    lifted = (1,) * (3 - len(tiles)) + tuple(tiles)
    a, b, c = (np.arange(o) % t for o, t in zip(spec.output_size, lifted))
    index = (a[:, None, None] * lifted[1] + b[None, :, None]) * lifted[2] + c[None, None, :]
    return np.ascontiguousarray(index.reshape(-1), dtype=np.intp)


def tiled_conv(x, w, bias=None, *, stride=1, padding=0, dilation=1, algorithm="auto"):
    """Tiled convolution, eq. 9.10: output position p uses kernel w[p_1 % t_1, ..., p_d % t_d].

    ``x`` is (N, C, *in_spatial); ``w`` is (*tiles, K, C, *kernel) with tiles = (t_1, ..., t_d):
    a set of t_i kernels along axis i, cycled through as one moves through the output. t = 1 is
    `fastconv.conv`; t = the output size is `locally_connected`. Geometry as `fastconv.conv`;
    there are no groups. ``bias`` is None, (K,) shared, or (K, *tiles): the tiled bias, one per
    tile kernel and output channel, cycled like the kernels. ``algorithm="auto"`` runs
    position by position or as one `fastconv.conv` per tile, whichever suits the shapes; a named
    algorithm forces one convolution per tile with that algorithm. Returns (N, K, *out_spatial).
    """
    _registry.check_algorithm(algorithm)
    x, w, b, d, spec = _forward_args(x, w, bias, "*tiles", stride, padding, dilation)
    _check_tiles(w.shape, d, "w")
    tiles = tuple(w.shape[:d])
    _check_bias(b, spec.out_channels, tiles, "tile kernel")
    y = np.zeros(spec.user_shape(spec.y_shape), spec.dtype)
    if _empty(spec):
        pass
    elif _by_position(spec, tiles, algorithm, "forward"):
        with _config.threads_for(spec.flops, key=(spec, "tiled_conv")):
            y = _lc_forward(spec, lifted(x, spec.x_shape, spec.dtype), lifted(w, -1, spec.dtype),
                            _tile_map(spec, tiles)).reshape(y.shape)
    else:
        x, w = np.asarray(x, spec.dtype), np.asarray(w, spec.dtype)
        for tile in _tiles(spec, tiles, d):
            if not tile.empty:
                tile.y_view(y)[...] = conv(tile.x_view(x), w[tile.index], algorithm=algorithm,
                                           **tile.geometry(_dilation(spec, d)))
    if b is not None:
        b = b.astype(spec.dtype, copy=False)
        if b.ndim == 1:
            y += b.reshape((1, -1) + (1,) * d)
        else:
            for tile in _tiles(spec, tiles, d):
                tile.y_view(y)[...] += b[(slice(None),) + tile.index].reshape((1, -1) + (1,) * d)
    return y


def tiled_conv_grad_input(gy, w, input_shape, *, stride=1, padding=0, dilation=1,
                          algorithm="auto"):
    """The input gradient of `tiled_conv`: the sum over tiles of their convolutions' gradients.

    ``gy`` is (N, K, *out_spatial), ``w`` the forward weights (*tiles, K, C, *kernel),
    ``input_shape`` x's shape or its spatial sizes alone. The tiles are added in a fixed order.
    """
    _registry.check_algorithm(algorithm)
    gy, w, d, spec = _grad_input_args(gy, w, input_shape, "*tiles", stride, padding, dilation)
    _check_tiles(w.shape, d, "w")
    check_output_grad(gy, spec.user_shape(spec.y_shape), "gy")
    gx = np.zeros(spec.user_shape(spec.x_shape), spec.dtype)
    tiles = tuple(w.shape[:d])
    if _empty(spec):
        return gx
    if _by_position(spec, tiles, algorithm, "grad_input"):
        with _config.threads_for(spec.flops, key=(spec, "tiled_conv_grad_input")):
            return _lc_grad_input(spec, lifted(gy, spec.y_shape, spec.dtype),
                                  lifted(w, -1, spec.dtype),
                                  _tile_map(spec, tiles)).reshape(gx.shape)
    gy, w = np.asarray(gy, spec.dtype), np.asarray(w, spec.dtype)
    for tile in _tiles(spec, tiles, d):
        if not tile.empty:
            region = tile.x_view(gx)
            region += conv_grad_input(tile.y_view(gy), w[tile.index], region.shape,
                                      algorithm=algorithm, **tile.geometry(_dilation(spec, d)))
    return gx


def tiled_conv_grad_kernel(x, gy, kernel_shape, *, stride=1, padding=0, dilation=1,
                           algorithm="auto"):
    """The weight gradient of `tiled_conv`, summed over the batch and over each tile's positions.

    ``kernel_shape`` is w's full shape (*tiles, K, C, *kernel). A tile kernel that no output
    position uses (t larger than the output) gets a zero gradient.
    """
    _registry.check_algorithm(algorithm)
    x, gy, d, shape = _grad_kernel_args(x, gy, kernel_shape)
    if len(shape) != 2 * d + 2:
        raise ValueError(f"kernel_shape must have {2 * d + 2} entries (*tiles, K, C, *kernel) for "
                         f"a {d}-D x, got {shape}")
    spec = _spec(x.shape, shape, d, stride, padding, dilation, result_dtype(x, gy),
                 w_name="kernel_shape")
    _check_tiles(shape, d, "kernel_shape")
    check_output_grad(gy, (x.shape[0], shape[d]) + _out_spatial(spec))
    gw = np.zeros(shape, spec.dtype)
    tiles = shape[:d]
    if _empty(spec):
        return gw
    if _by_position(spec, tiles, algorithm, "grad_kernel"):
        with _config.threads_for(spec.flops, key=(spec, "tiled_conv_grad_kernel")):
            return _lc_grad_kernel(spec, lifted(x, spec.x_shape, spec.dtype),
                                   lifted(gy, spec.y_shape, spec.dtype), _tile_map(spec, tiles),
                                   math.prod(tiles)).reshape(shape)
    x, gy = np.asarray(x, spec.dtype), np.asarray(gy, spec.dtype)
    for tile in _tiles(spec, tiles, d):
        if not tile.empty:
            gw[tile.index] = conv_grad_kernel(tile.x_view(x), tile.y_view(gy), shape[d:],
                                              algorithm=algorithm,
                                              **tile.geometry(_dilation(spec, d)))
    return gw
