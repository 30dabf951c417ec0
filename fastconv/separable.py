"""Separable convolution as public functions (section 9.8 of the chapter).

A kernel that is an outer product of one 1-D kernel per spatial axis,
w[k, c, a, b, ...] = f0[k, c, a] * f1[k, c, b] * ..., runs as one 1-D pass per axis: O(sum of the
kernel's sizes) instead of O(their product) per output. ``fastconv.conv`` finds such kernels by
itself (algorithm "separable"); these functions take the factors directly, give their gradients,
and approximate a general kernel by a few separable terms (`low_rank_conv`).
"""

import numpy as np

from ._algorithms import separable as _impl
from ._functional import (add_bias, conv, conv_grad_input, conv_grad_kernel, fold_padding,
                          forward_problem, pad)
from ._geometry import LIFTED_DIMS, check_padding_mode, make_spec, with_explicit_padding
from ._validate import (check_bias, check_bool, check_output_grad, full_shape, lifted, real_array,
                        result_dtype)

__all__ = ["separable_conv", "separable_conv_grad_input", "separable_conv_grad_factors",
           "low_rank_conv"]


def _as_factors(factors):
    """The factors as arrays (K, C/groups, k_i) sharing K and C/groups; returns them and the
    kernel shape they describe."""
    if isinstance(factors, np.ndarray) or not isinstance(factors, (list, tuple)):
        raise TypeError(f"factors must be a list or tuple of arrays (one per spatial axis), got "
                        f"{type(factors).__name__}")
    if not 1 <= len(factors) <= LIFTED_DIMS:
        raise ValueError(f"factors must hold 1 to {LIFTED_DIMS} arrays (one per spatial axis), got "
                         f"{len(factors)}")
    arrays = [real_array(f, f"factors[{i}]") for i, f in enumerate(factors)]
    for i, f in enumerate(arrays):
        if f.ndim != 3:
            raise ValueError(f"factors[{i}] must have 3 dimensions (K, C/groups, k), got shape "
                             f"{f.shape}")
        if f.shape[:2] != arrays[0].shape[:2]:
            raise ValueError(f"factors[{i}] must have the (K, C/groups) = {arrays[0].shape[:2]} of "
                             f"factors[0], got shape {f.shape}")
    return arrays, arrays[0].shape[:2] + tuple(f.shape[2] for f in arrays)


def _lifted_factors(arrays, spec, flip):
    """Three flat arrays (K, C/groups, 1, k_axis) for the lifted axes in spec.dtype, the scalars of
    length-1 depth/height factors folded into the width factor (the passes skip those axes)."""
    K, Cg = arrays[0].shape[:2]
    axes = [np.ones((K, Cg, 1))] * (LIFTED_DIMS - len(arrays))
    axes += [np.asarray(f, dtype=np.float64)[..., ::-1] if flip else np.asarray(f, np.float64)
            for f in arrays]
    for axis in range(LIFTED_DIMS - 1):
        if axes[axis].shape[2] == 1:
            axes[2] = axes[2] * axes[axis]
            axes[axis] = np.ones((K, Cg, 1))
    return [np.ascontiguousarray(f, dtype=spec.dtype).reshape(-1) for f in axes]


def _outer(arrays):
    """The full kernel (K, C/groups, k0, k1, ...) of the factors."""
    w = arrays[0]
    for f in arrays[1:]:
        w = w[..., None] * f.reshape(f.shape[:2] + (1,) * (w.ndim - 2) + f.shape[2:])
    return w


def _fits(spec, op, terms):
    return _impl._Plan(spec, op, terms).fits


def separable_conv(x, factors, bias=None, *, stride=1, padding=0, dilation=1, groups=1,
                   flip=False, padding_mode="zeros"):
    """``conv(x, w, bias, ...)`` for the kernel w = f0 o f1 o ... given by its factors.

    ``factors`` holds one array per spatial axis, ``factors[i]`` of shape (K, C/groups, k_i), and
    w[k, c, a, b, ...] = factors[0][k, c, a] * factors[1][k, c, b] * ... . The arguments and the
    result are those of `fastconv.conv`; ``flip=True`` flips every factor (true convolution). Each
    output costs sum(k_i) multiply-adds per (k, c) pair instead of prod(k_i).
    """
    x = real_array(x, "x")
    arrays, w_shape = _as_factors(factors)
    b = None if bias is None else real_array(bias, "bias")
    check_bool(flip, "flip")
    dtype = result_dtype(x, *arrays, b)
    spec, x5 = forward_problem(x, w_shape, b, dtype, stride, padding, dilation, groups,
                               padding_mode, w_name="factors")
    if x5 is None:
        y5 = np.zeros(spec.y_shape, dtype)
    else:
        if _fits(spec, "forward", 1):
            y5 = _impl.run_forward(spec, x5, _lifted_factors(arrays, spec, flip), 1)
        else:       # not even one row fits the workspace limit: the full kernel, any algorithm
            y5 = conv(x5, _outer(arrays).reshape(spec.w_shape).astype(dtype), stride=spec.stride,
                      padding=tuple(zip(spec.pad_low, spec.pad_high)), dilation=spec.dilation,
                      groups=spec.groups, flip=flip).astype(dtype, copy=False)
    return add_bias(y5, b).reshape(spec.user_shape(spec.y_shape))


def separable_conv_grad_input(gy, factors, input_shape, *, stride=1, padding=0, dilation=1,
                              groups=1, flip=False, padding_mode="zeros"):
    """``conv_grad_input(gy, w, input_shape, ...)`` (eq. 9.13) for the kernel given by its factors.

    The adjoint of `separable_conv`: one transposed 1-D pass per axis.
    """
    gy = real_array(gy, "gy")
    arrays, w_shape = _as_factors(factors)
    check_bool(flip, "flip")
    ndim = len(arrays)
    if gy.ndim != ndim + 2:
        raise ValueError(f"gy must have {ndim + 2} dimensions (N, K, *output) for {ndim} factors, "
                         f"got shape {gy.shape}")
    channels = w_shape[1] * groups if isinstance(groups, int) else 0
    x_shape = full_shape(input_shape, "input_shape", ndim, (gy.shape[0], channels))
    dtype = result_dtype(gy, *arrays)
    spec = make_spec(x_shape, w_shape, stride=stride, padding=padding, dilation=dilation,
                     groups=groups, dtype=dtype, x_name="input_shape", w_name="factors")
    check_padding_mode(padding_mode, spec)
    check_output_grad(gy, spec.user_shape(spec.y_shape), "gy")
    if 0 in (spec.batch, spec.out_channels, spec.in_channels):
        return np.zeros(spec.user_shape(spec.x_shape), dtype)
    gy5 = lifted(gy, spec.y_shape, dtype)
    run = with_explicit_padding(spec) if padding_mode != "zeros" else spec
    if _fits(run, "grad_input", 1):
        gx5 = _impl.run_grad_input(run, gy5, _lifted_factors(arrays, run, flip), 1)
    else:
        gx5 = conv_grad_input(gy5, _outer(arrays).reshape(spec.w_shape).astype(dtype), run.x_shape,
                              stride=run.stride, padding=tuple(zip(run.pad_low, run.pad_high)),
                              dilation=run.dilation, groups=run.groups,
                              flip=flip).astype(dtype, copy=False)
    if padding_mode != "zeros":
        gx5 = fold_padding(gx5, spec, padding_mode)
    return gx5.reshape(spec.user_shape(spec.x_shape))


def separable_conv_grad_factors(x, gy, factors, *, stride=1, padding=0, dilation=1, groups=1,
                                flip=False, padding_mode="zeros"):
    """The gradient of a loss with respect to each factor, given gy = dL/dy of `separable_conv`.

    By the chain rule through the outer product, with gw = conv_grad_kernel(x, gy) (eq. 9.11),
    dL/df0[k, c, a] = sum_{b, ...} gw[k, c, a, b, ...] * f1[k, c, b] * ... and likewise for the
    others. Returns a tuple with one array per factor, of the factors' shapes.
    """
    x, gy = real_array(x, "x"), real_array(gy, "gy")
    arrays, w_shape = _as_factors(factors)
    check_bool(flip, "flip")
    dtype = result_dtype(x, gy, *arrays)
    if x.ndim != len(arrays) + 2:
        raise ValueError(f"x must have {len(arrays) + 2} dimensions (N, C, *spatial) for "
                         f"{len(arrays)} factors, got shape {x.shape}")
    gw = conv_grad_kernel(x.astype(dtype, copy=False), gy.astype(dtype, copy=False), w_shape,
                          stride=stride, padding=padding, dilation=dilation, groups=groups,
                          flip=flip, padding_mode=padding_mode)
    gw = gw.astype(np.float64)
    letters = "xyz"[:len(arrays)]
    grads = []
    for i in range(len(arrays)):
        operands = [gw] + [np.asarray(f, np.float64) for j, f in enumerate(arrays) if j != i]
        subscripts = ",".join(["kc" + letters] + [f"kc{letters[j]}" for j in range(len(arrays))
                                                  if j != i])
        grads.append(np.einsum(f"{subscripts}->kc{letters[i]}", *operands).astype(dtype))
    return tuple(grads)


def low_rank_conv(x, w, bias=None, *, rank=1, stride=1, padding=0, dilation=1, groups=1,
                  flip=False, padding_mode="zeros"):
    """``conv(x, w_r, bias, ...)`` with w_r a sum of `rank` separable terms per (k, c) slice of w.

    Each slice w[k, c] is approximated by `rank` outer products of 1-D kernels (truncated SVD of a
    2-D slice, the best approximation of that rank; for a 3-D slice, greedy deflation by best
    rank-one terms, HOSVD start and higher-order power method), and the `rank` separable
    convolutions run in one sweep over the input: rank * sum(k_i) multiply-adds per output and
    (k, c) pair instead of prod(k_i). A kernel with one axis longer than 1 is computed exactly.

    Returns ``(y, bound)``. ``bound`` = max over output channels k of
    ||w[k] - w_r[k]||_F / ||w[k]||_F (0 where w[k] = 0), computed from the factors actually used.
    By Cauchy-Schwarz it bounds, in exact arithmetic, every output of the approximation:
    |y[n, k, o] - conv(x, w)[n, k, o]| <= bound * ||w[k]||_F * ||x patch of (n, o)||_2, where the
    patch is the (padded) input under the kernel at o over the channels of k's group; and so
    ||y - conv(x, w)||_F <= bound * ||w||_F * sqrt(prod(k_i)) * ||x (padded)||_F. Rounding of
    the computation itself comes on top (as for any algorithm).
    """
    x, w = real_array(x, "x"), real_array(w, "w")
    b = None if bias is None else real_array(bias, "bias")
    check_bool(flip, "flip")
    if isinstance(rank, (bool, np.bool_)) or not isinstance(rank, (int, np.integer)):
        raise TypeError(f"rank must be an int, got {rank!r} ({type(rank).__name__})")
    if rank < 1:
        raise ValueError(f"rank must be >= 1, got {rank}")
    dtype = result_dtype(x, w, b)
    spec = make_spec(x.shape, w.shape, stride=stride, padding=padding, dilation=dilation,
                     groups=groups, dtype=dtype)
    check_padding_mode(padding_mode, spec)
    check_bias(b, spec.out_channels)
    if not np.all(np.isfinite(w)):
        raise ValueError("w must be finite to be approximated by separable terms (it has NaN or "
                         "Inf values)")
    w5 = np.asarray(w, np.float64).reshape(spec.w_shape)
    if flip:
        w5 = w5[..., ::-1, ::-1, ::-1]
    dec = _impl.Decomposition.truncated(w5, int(rank))
    per_channel = np.sqrt(np.sum(dec.residual ** 2, axis=1))
    norms = np.sqrt(np.sum(dec.norm ** 2, axis=1))
    bound = float(np.max(np.divide(per_channel, norms, out=np.zeros_like(norms), where=norms > 0),
                         initial=0.0))
    if 0 in (spec.batch, spec.out_channels, spec.in_channels):
        y5 = np.zeros(spec.y_shape, dtype)
    else:
        x5 = lifted(x, spec.x_shape, dtype)
        if padding_mode != "zeros":
            x5, spec = pad(x5, spec, padding_mode), with_explicit_padding(spec)
        if _fits(spec, "forward", dec.terms):
            y5 = _impl.run_forward(spec, x5, dec.factors_as(dtype), dec.terms)
        else:
            fd, fh, fw = dec.factors
            approx = sum(fd[:, :, j, :, None, None] * fh[:, :, j, None, :, None]
                         * fw[:, :, j, None, None, :] for j in range(dec.terms))
            y5 = conv(x5, approx.astype(dtype), stride=spec.stride,
                      padding=tuple(zip(spec.pad_low, spec.pad_high)), dilation=spec.dilation,
                      groups=spec.groups)
    return add_bias(y5, b).reshape(spec.user_shape(spec.y_shape)), bound
