"""Autograd functions over fastconv's operations, and the functional API built on them.

Each operation family of fastconv -- convolution, transpose convolution, locally connected,
tiled, separable -- is closed under differentiation (section 9.5): the backward of its forward is
its ``grad_input`` and ``grad_kernel``. One ``torch.autograd.Function`` (`_Convolution`) runs any
family given as an `Operation` of three NumPy callables; the bias gradient is a sum over gy done
in torch. Separable convolution, whose kernel is a list of factors, has its own Function.

Tensors reach fastconv as NumPy views and come back through ``torch.from_numpy`` (see _tensors):
no copy where the memory layout allows. Backward computes only the gradients autograd asks for
(``ctx.needs_input_grad``), and is once-differentiable: a second derivative raises.
"""
import itertools
from typing import Callable, NamedTuple

import torch
from torch.autograd.function import once_differentiable

import fastconv
import fastconv.local
import fastconv.separable
from fastconv.torch._tensors import as_array, as_arrays, check_tensor, to_tensor

__all__ = ["conv", "conv1d", "conv2d", "conv3d", "conv_transpose", "locally_connected",
           "tiled_conv", "separable_conv"]


# --- bias gradients (gy is batched: (N, K, *output)) --------------------------------------------

def _channel_bias_grad(gy, bias_shape, geometry):
    return gy.sum(dim=(0,) + tuple(range(2, gy.ndim)))


def _location_bias_grad(gy, bias_shape, geometry):
    """(K,) shared, or (K, *out_spatial): one bias per output location."""
    return _channel_bias_grad(gy, bias_shape, geometry) if len(bias_shape) == 1 else gy.sum(0)


def _tiled_bias_grad(gy, bias_shape, geometry):
    """(K,) shared, or (K, *tiles): output position p adds bias[:, p % tiles]."""
    if len(bias_shape) == 1:
        return _channel_bias_grad(gy, bias_shape, geometry)
    tiles, gb = bias_shape[1:], gy.new_zeros(bias_shape)
    spatial = tuple(range(2, gy.ndim))
    for tile in itertools.product(*(range(t) for t in tiles)):
        view = gy[(slice(None), slice(None)) + tuple(slice(i, None, t)
                                                     for i, t in zip(tile, tiles))]
        gb[(slice(None),) + tile] = view.sum(dim=(0,) + spatial)
    return gb


class Operation(NamedTuple):
    """One family's three operations on NumPy arrays, and its bias gradient on tensors."""
    forward: Callable       # (x, w, b, geometry) -> y
    grad_input: Callable    # (gy, w, x_shape, geometry) -> gx
    grad_kernel: Callable   # (x, gy, w_shape, geometry) -> gw
    bias_grad: Callable     # (gy, bias_shape, geometry) -> gb


CONV = Operation(
    lambda x, w, b, g: fastconv.conv(x, w, b, **g),
    lambda gy, w, x_shape, g: fastconv.conv_grad_input(gy, w, x_shape, **g),
    lambda x, gy, w_shape, g: fastconv.conv_grad_kernel(x, gy, w_shape, **g),
    _channel_bias_grad)


def _transpose_geometry(g):
    return {k: v for k, v in g.items() if k != "output_shape"}


# y = A^T x with A the convolution by w: dL/dx = A gy, dL/dw = the kernel gradient of (gy, x)
CONV_TRANSPOSE = Operation(
    lambda x, w, b, g: fastconv.conv_transpose(x, w, b, **g),
    lambda gy, w, x_shape, g: fastconv.conv(gy, w, **_transpose_geometry(g)),
    lambda x, gy, w_shape, g: fastconv.conv_grad_kernel(gy, x, w_shape, **_transpose_geometry(g)),
    _channel_bias_grad)

LOCALLY_CONNECTED = Operation(
    lambda x, w, b, g: fastconv.local.locally_connected(x, w, b, **g),
    lambda gy, w, x_shape, g: fastconv.local.locally_connected_grad_input(gy, w, x_shape, **g),
    lambda x, gy, w_shape, g: fastconv.local.locally_connected_grad_kernel(x, gy, w_shape, **g),
    _location_bias_grad)

TILED = Operation(
    lambda x, w, b, g: fastconv.local.tiled_conv(x, w, b, **g),
    lambda gy, w, x_shape, g: fastconv.local.tiled_conv_grad_input(gy, w, x_shape, **g),
    lambda x, gy, w_shape, g: fastconv.local.tiled_conv_grad_kernel(x, gy, w_shape, **g),
    _tiled_bias_grad)


class _Convolution(torch.autograd.Function):
    """y = op.forward(x, w, b); backward by op.grad_input, op.grad_kernel and op.bias_grad."""

    @staticmethod
    def forward(ctx, op, geometry, x, w, b):
        xa, wa, ba = as_arrays((x, w, b), ("x", "w", "bias"))
        ctx.op, ctx.geometry = op, geometry
        ctx.bias_shape = None if b is None else tuple(b.shape)
        ctx.save_for_backward(x, w)
        return to_tensor(op.forward(xa, wa, ba, geometry))

    @staticmethod
    @once_differentiable
    def backward(ctx, gy):
        x, w = ctx.saved_tensors
        need_x, need_w, need_b = ctx.needs_input_grad[2:]
        gya = as_array(gy, "gy")
        gx = gw = gb = None
        if need_x:
            gx = to_tensor(ctx.op.grad_input(gya, as_array(w, "w"), tuple(x.shape), ctx.geometry),
                           x.dtype)
        if need_w:
            gw = to_tensor(ctx.op.grad_kernel(as_array(x, "x"), gya, tuple(w.shape),
                                              ctx.geometry), w.dtype)
        if need_b:
            gb = ctx.op.bias_grad(gy, ctx.bias_shape, ctx.geometry)
        return None, None, gx, gw, gb


def _lead(x, w, bias):
    """Check the tensors (each named) before anything else reads them."""
    for t, name in ((x, "x"), (w, "w"), (bias, "bias")):
        if t is not None:
            check_tensor(t, name)


def _run(op, geometry, x, w, bias, spatial):
    """_Convolution on x, with an unbatched x (C, *spatial) -- one axis fewer than a batch of
    `spatial`-D inputs -- run as a batch of one and returned unbatched, as torch.nn does."""
    if x.ndim == spatial + 1:
        return _Convolution.apply(op, geometry, x.unsqueeze(0), w, bias)[0]
    return _Convolution.apply(op, geometry, x, w, bias)


def conv(x, w, bias=None, *, stride=1, padding=0, dilation=1, groups=1, flip=False,
         padding_mode="zeros", algorithm="auto"):
    """``fastconv.conv`` on tensors, differentiable in x, w and bias.

    x (N, C, *spatial) or unbatched (C, *spatial), w (K, C/groups, *kernel), bias (K,) or None;
    every argument is that of ``fastconv.conv``: padding as an int, per axis, (low, high) pairs,
    "valid", "same" (also with a stride) or "full"; padding_mode "zeros", "reflect", "replicate"
    or "circular"; algorithm "auto", "tune" or a name of ``fastconv.algorithms()``.
    """
    _lead(x, w, bias)
    g = dict(stride=stride, padding=padding, dilation=dilation, groups=groups, flip=flip,
             padding_mode=padding_mode, algorithm=algorithm)
    return _run(CONV, g, x, w, bias, w.ndim - 2)


def _conv_nd(ndim):
    def conv_nd(x, w, bias=None, **kwargs):
        check_tensor(w, "w")
        if w.ndim != ndim + 2:
            raise ValueError(f"conv{ndim}d needs a {ndim}-D kernel w of shape (K, C/groups, "
                             f"{', '.join('k' * ndim)}), got w of shape {tuple(w.shape)}")
        return conv(x, w, bias, **kwargs)
    conv_nd.__name__ = conv_nd.__qualname__ = f"conv{ndim}d"
    conv_nd.__doc__ = f"`conv` checking that the kernel is {ndim}-D."
    return conv_nd


conv1d, conv2d, conv3d = _conv_nd(1), _conv_nd(2), _conv_nd(3)


def conv_transpose(x, w, bias=None, *, stride=1, padding=0, dilation=1, groups=1,
                   output_shape=None, algorithm="auto"):
    """``fastconv.conv_transpose`` (eq. 9.14) on tensors: x (N, K, *m) or (K, *m), w the forward
    kernel (K, C/groups, *kernel) as in ``torch.nn.ConvTranspose*d``, bias (C,) or None;
    output_shape (the spatial sizes, or the full shape) picks among the output sizes (default:
    the smallest)."""
    _lead(x, w, bias)
    ndim = w.ndim - 2
    if output_shape is not None and x.ndim == ndim + 1:     # unbatched: run as a batch of one
        output_shape = tuple(output_shape)
        output_shape = (1,) + output_shape if len(output_shape) == ndim + 1 else output_shape
    g = dict(stride=stride, padding=padding, dilation=dilation, groups=groups,
             output_shape=output_shape, algorithm=algorithm)
    return _run(CONV_TRANSPOSE, g, x, w, bias, ndim)


def locally_connected(x, w, bias=None, *, stride=1, padding=0, dilation=1):
    """``fastconv.local.locally_connected`` (eq. 9.9) on tensors: w (*out_spatial, K, C, *kernel),
    bias None, (K,) or (K, *out_spatial); x (N, C, *spatial) or unbatched (C, *spatial)."""
    _lead(x, w, bias)
    g = dict(stride=stride, padding=padding, dilation=dilation)
    return _run(LOCALLY_CONNECTED, g, x, w, bias, (w.ndim - 2) // 2)


def tiled_conv(x, w, bias=None, *, stride=1, padding=0, dilation=1, algorithm="auto"):
    """``fastconv.local.tiled_conv`` (eq. 9.10) on tensors: w (*tiles, K, C, *kernel), bias None,
    (K,) or (K, *tiles); x (N, C, *spatial) or unbatched (C, *spatial)."""
    _lead(x, w, bias)
    g = dict(stride=stride, padding=padding, dilation=dilation, algorithm=algorithm)
    return _run(TILED, g, x, w, bias, (w.ndim - 2) // 2)


# --- separable convolution: the kernel is one factor per axis ----------------------------------

class _Separable(torch.autograd.Function):

    @staticmethod
    def forward(ctx, geometry, x, b, *factors):
        xa, ba = as_arrays((x, b), ("x", "bias"))
        fa = as_arrays(factors, [f"factors[{i}]" for i in range(len(factors))])
        ctx.geometry = geometry
        ctx.save_for_backward(x, *factors)
        return to_tensor(fastconv.separable.separable_conv(xa, fa, ba, **geometry))

    @staticmethod
    @once_differentiable
    def backward(ctx, gy):
        x, *factors = ctx.saved_tensors
        need_x, need_b, *need_f = ctx.needs_input_grad[1:]
        gya = as_array(gy, "gy")
        fa = [as_array(f, f"factors[{i}]") for i, f in enumerate(factors)]
        gx = gb = None
        gfs = [None] * len(factors)
        if need_x:
            gx = to_tensor(fastconv.separable.separable_conv_grad_input(
                gya, fa, tuple(x.shape), **ctx.geometry), x.dtype)
        if need_b:
            gb = _channel_bias_grad(gy, None, ctx.geometry)
        if any(need_f):
            grads = fastconv.separable.separable_conv_grad_factors(as_array(x, "x"), gya, fa,
                                                                   **ctx.geometry)
            gfs = [to_tensor(g, f.dtype) if need else None
                   for g, f, need in zip(grads, factors, need_f)]
        return (None, gx, gb, *gfs)


def separable_conv(x, factors, bias=None, *, stride=1, padding=0, dilation=1, groups=1,
                   flip=False, padding_mode="zeros"):
    """``fastconv.separable_conv`` on tensors: the kernel w[k, c, a, b, ...] =
    factors[0][k, c, a] * factors[1][k, c, b] * ..., one factor (K, C/groups, k_i) per spatial
    axis; differentiable in x, every factor and bias."""
    if not isinstance(factors, (list, tuple)):
        raise TypeError(f"factors must be a list or tuple of tensors (one per spatial axis), got "
                        f"{type(factors).__name__}")
    _lead(x, None, bias)
    for i, f in enumerate(factors):
        check_tensor(f, f"factors[{i}]")
    g = dict(stride=stride, padding=padding, dilation=dilation, groups=groups, flip=flip,
             padding_mode=padding_mode)
    if x.ndim == len(factors) + 1:
        return _Separable.apply(g, x.unsqueeze(0), bias, *factors)[0]
    return _Separable.apply(g, x, bias, *factors)
