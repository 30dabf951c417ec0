"""The public functions of CONTRACT.md: validate, convert, lift, dispatch, un-lift.

Everything here is thin: dtype rules, the explicit copy for non-zero padding modes (and its adjoint
for the gradients), the kernel flip, the bias. The arithmetic is in the algorithms.
"""
import numpy as np

from . import _call_memo, _registry
from ._registry import NotSupportedError
from ._geometry import (check_groups, check_padding_mode, make_spec, padding_index,
                        transpose_input_sizes, with_explicit_padding)
from ._validate import (check_bias, check_bool, check_output_grad, full_shape, lifted, real_array,
                        result_dtype, shape_tuple, spatial_dims)


# --- arrays -------------------------------------------------------------------------------

def _kernel(w, spec, flip):
    w5 = lifted(w, spec.w_shape, spec.dtype)
    return np.ascontiguousarray(w5[..., ::-1, ::-1, ::-1]) if flip else w5


def add_bias(y, bias):
    """y (N, K, ...) plus the bias (K,) of each output channel, in place."""
    if bias is not None:
        y += bias.astype(y.dtype, copy=False).reshape((1, -1) + (1,) * (y.ndim - 2))
    return y


# --- padding modes: an explicit copy, and its adjoint -----------------------------------

def _padded_axes(spec):
    return [(2 + axis, n, lo, hi) for axis, (n, lo, hi)
            in enumerate(zip(spec.input_size, spec.pad_low, spec.pad_high)) if lo or hi]


def pad(x5, spec, mode):
    """x5 with the padding of `spec` made explicit, filled by `mode` (reflect, replicate, ...)."""
    for axis, n, lo, hi in _padded_axes(spec):
        x5 = np.take(x5, padding_index(n, lo, hi, mode), axis=axis)
    return np.ascontiguousarray(x5)


def fold_padding(gxp, spec, mode):
    """The adjoint of pad: each padded position's gradient goes back to the element it copied."""
    for axis, n, lo, hi in reversed(_padded_axes(spec)):
        index = padding_index(n, lo, hi, mode)
        moved = np.moveaxis(gxp, axis, 0)
        folded = moved[lo:lo + n].copy()
        for j in list(range(lo)) + list(range(lo + n, lo + n + hi)):
            folded[index[j]] += moved[j]
        gxp = np.moveaxis(folded, 0, axis)
    return np.ascontiguousarray(gxp)


# --- the three operations ----------------------------------------------------------------

KERNEL = "K, C/groups, *kernel"


def _opening(arrays, flip=False, algorithm=None, lead=None, other=None):
    """The checks every operation opens with, in one order, before any geometry: each array of
    `arrays` [(value or None, name)] real numeric, `flip` a bool, `algorithm` known (None: not
    checked). With `lead` = (index, layout) and `other` = (index, layout, relation), the array
    at `lead` sets the number of spatial dimensions (it has 3, 4 or 5) and the one at `other`
    must have as many. Returns (the arrays, the number of spatial dimensions or None)."""
    out = [None if a is None else real_array(a, name) for a, name in arrays]
    check_bool(flip, "flip")
    if algorithm is not None:
        _registry.check_algorithm(algorithm)
    if lead is None:
        return out, None
    (i, layout), (j, other_layout, relation) = lead, other
    return out, spatial_dims(out[i], arrays[i][1], layout, out[j], arrays[j][1], other_layout,
                             relation)


def _unbatched(a, name, ndim, layout, w_shape=None):
    """Whether `a` is one unbatched example (C, *spatial) of a problem with `ndim` spatial axes,
    as PyTorch accepts it: True for ndim + 1 dimensions, False for ndim + 2 (N, C, *spatial);
    anything else is a ValueError naming `a`."""
    if a.ndim == ndim + 2:
        return False
    if a.ndim == ndim + 1:
        return True
    kernel = f" to match the {ndim}-D kernel w of shape {w_shape}" if w_shape is not None else ""
    raise ValueError(f"{name} must have {ndim + 2} dimensions ({layout}) or {ndim + 1} for one "
                     f"unbatched example{kernel}, got shape {a.shape}")


def _channels_last_hint(x, w, groups):
    """A hint for an error about channels when x looks channels-last: (N, *spatial, C) with C
    where w wants it at the last axis and not at axis 1."""
    try:
        channels = w.shape[1] * int(groups)
    except (TypeError, ValueError, IndexError):
        return ""
    if x.ndim >= 3 and x.shape[1] != channels and x.shape[-1] == channels:
        return (f"; x looks channels-last ({channels} channels on its last axis): fastconv is "
                f"channels-first, pass np.moveaxis(x, -1, 1)")
    return ""


def _check_ndim(w, ndim, fname):
    if ndim is not None and w.ndim != ndim + 2:
        raise ValueError(f"{fname} needs a {ndim}-D kernel w of shape (K, C/groups, "
                         f"{', '.join('k' * ndim)}), got w with {w.ndim} dimensions {w.shape}")


def _forward(x, w, bias, stride, padding, dilation, groups, flip, padding_mode, algorithm,
             ndim=None, fname="conv"):
    memo, seen = _call_memo.find(fname, (x, w, bias), (stride, padding, dilation, groups), flip,
                                 padding_mode, algorithm)
    if seen is not None:                # validated before: the same checks would pass
        spec, shape = seen
        w5 = _kernel(w, spec, flip)
        y = _registry.run(spec, "forward", algorithm, lifted(x, spec.x_shape, spec.dtype), w5, w5)
        return (y if bias is None else add_bias(y, bias)).reshape(shape)
    (x, w, b), _ = _opening([(x, "x"), (w, "w"), (bias, "bias")], flip, algorithm)
    _check_ndim(w, ndim, fname)
    if w.ndim in (3, 4, 5) and _unbatched(x, "x", w.ndim - 2, "N, C, *spatial", w.shape):
        return _forward(x[None], w, b, stride, padding, dilation, groups, flip, padding_mode,
                        algorithm, ndim, fname)[0]
    try:
        spec, x5 = forward_problem(x, w.shape, b, result_dtype(x, w, b), stride, padding,
                                   dilation, groups, padding_mode)
    except ValueError as exc:
        hint = _channels_last_hint(x, w, groups) if w.ndim == x.ndim else ""
        if not hint:
            raise
        raise ValueError(f"{exc}{hint}") from None
    shape = spec.user_shape(spec.y_shape)
    if x5 is None:
        return add_bias(np.zeros(spec.y_shape, spec.dtype), b).reshape(shape)
    _call_memo.remember(memo, (spec, shape))
    return _forward_run(spec, x5, w, b, flip, algorithm, shape)


def _forward_run(spec, x5, w, b, flip, algorithm, shape):
    w5 = _kernel(w, spec, flip)
    return add_bias(_registry.run(spec, "forward", algorithm, x5, w5, w5), b).reshape(shape)


def forward_problem(x, w_shape, b, dtype, stride, padding, dilation, groups, padding_mode,
                    w_name="w"):
    """Validate a forward call: (spec, x5), x5 lifted and explicitly padded for a non-zero
    padding_mode (and the spec then without implicit padding), or None when the result is empty
    or all zeros."""
    spec = make_spec(x.shape, w_shape, stride=stride, padding=padding, dilation=dilation,
                     groups=groups, dtype=dtype, w_name=w_name)
    check_padding_mode(padding_mode, spec)
    check_bias(b, spec.out_channels)
    if 0 in (spec.batch, spec.out_channels, spec.in_channels):
        return spec, None
    x5 = lifted(x, spec.x_shape, dtype)
    if padding_mode != "zeros":
        x5, spec = pad(x5, spec, padding_mode), with_explicit_padding(spec)
    return spec, x5


def conv(x, w, bias=None, *, stride=1, padding=0, dilation=1, groups=1, flip=False,
         padding_mode="zeros", algorithm="auto"):
    """Multi-channel cross-correlation of x (N, C, *spatial) with w (K, C/groups, *kernel).

    Eq. 9.7/9.8 of the chapter: y[n, k, o] = sum_{c, t} x[n, c, o * stride + t * dilation] w[k, c, t]
    over the zero-padded input (or reflect/replicate/circular, `padding_mode`). ``flip=True`` flips
    the kernel first: true convolution, as ``scipy.signal.convolve``. The number of spatial
    dimensions (1, 2 or 3) is ``w.ndim - 2``; an unbatched x (C, *spatial), with one axis
    fewer, gives an unbatched result (K, *output), as in PyTorch. Returns (N, K, *output) in the
    inputs' precision: float32 if every array is float32 or float16 (float16 is computed in
    float32 and returned as float32), float64 otherwise (integers and bools become float64).
    """
    return _forward(x, w, bias, stride, padding, dilation, groups, flip, padding_mode, algorithm)


def conv1d(x, w, bias=None, **kwargs):
    """`conv` for (N, C, L) inputs and (K, C/groups, k) kernels."""
    return _forward(x, w, bias, **_defaults(kwargs), ndim=1, fname="conv1d")


def conv2d(x, w, bias=None, **kwargs):
    """`conv` for (N, C, H, W) inputs and (K, C/groups, kh, kw) kernels."""
    return _forward(x, w, bias, **_defaults(kwargs), ndim=2, fname="conv2d")


def conv3d(x, w, bias=None, **kwargs):
    """`conv` for (N, C, D, H, W) inputs and (K, C/groups, kd, kh, kw) kernels."""
    return _forward(x, w, bias, **_defaults(kwargs), ndim=3, fname="conv3d")


_CONV_DEFAULTS = dict(stride=1, padding=0, dilation=1, groups=1, flip=False,
                      padding_mode="zeros", algorithm="auto")


def _defaults(kwargs):
    unknown = set(kwargs) - set(_CONV_DEFAULTS)
    if unknown:
        raise TypeError(f"unexpected keyword argument(s) {sorted(unknown)}; expected some of "
                        f"{sorted(_CONV_DEFAULTS)}")
    return {**_CONV_DEFAULTS, **kwargs}


def _grad_input(gy, w, input_shape, stride, padding, dilation, groups, flip, padding_mode,
                algorithm, gy_name="gy", shape_name="input_shape"):
    memo, seen = _call_memo.find(("grad_input", gy_name), (gy, w),
                                 (input_shape, stride, padding, dilation, groups), flip,
                                 padding_mode, algorithm)
    if seen is not None:
        spec, shape = seen
        return _grad_input_run(spec, lifted(gy, spec.y_shape, spec.dtype), w, flip, algorithm,
                               shape)
    (gy, w), _ = _opening([(gy, gy_name), (w, "w")], flip, algorithm)
    ndim = spatial_dims(w, "w", KERNEL, w, "w", KERNEL, "")
    if _unbatched(gy, gy_name, ndim, "N, K, *output", w.shape):
        shape = shape_tuple(input_shape, shape_name)
        if len(shape) not in (ndim, ndim + 1):
            raise ValueError(f"{shape_name} must have {ndim} (spatial) or {ndim + 1} (C, *spatial) "
                             f"entries for an unbatched {gy_name} of shape {gy.shape}, got {shape}")
        return _grad_input(gy[None], w, (1,) + shape if len(shape) == ndim + 1 else shape, stride,
                           padding, dilation, groups, flip, padding_mode, algorithm, gy_name,
                           shape_name)[0]
    groups = check_groups(groups)
    x_shape = full_shape(input_shape, shape_name, ndim, (gy.shape[0], w.shape[1] * groups))
    dtype = result_dtype(gy, w)
    spec = make_spec(x_shape, w.shape, stride=stride, padding=padding, dilation=dilation,
                     groups=groups, dtype=dtype, x_name=shape_name)
    check_padding_mode(padding_mode, spec)
    check_output_grad(gy, spec.user_shape(spec.y_shape), gy_name)
    if 0 in (spec.batch, spec.out_channels, spec.in_channels):
        return np.zeros(spec.user_shape(spec.x_shape), dtype)
    gy5 = lifted(gy, spec.y_shape, dtype)
    shape = spec.user_shape(spec.x_shape)
    if padding_mode == "zeros":
        _call_memo.remember(memo, (spec, shape))
        return _grad_input_run(spec, gy5, w, flip, algorithm, shape)
    w5 = _kernel(w, spec, flip)
    gx5 = _registry.run(with_explicit_padding(spec), "grad_input", algorithm, gy5, w5, w5)
    return fold_padding(gx5, spec, padding_mode).reshape(shape)


def _grad_input_run(spec, gy5, w, flip, algorithm, shape):
    w5 = _kernel(w, spec, flip)
    return _registry.run(spec, "grad_input", algorithm, gy5, w5, w5).reshape(shape)


def conv_grad_input(gy, w, input_shape, *, stride=1, padding=0, dilation=1, groups=1, flip=False,
                    padding_mode="zeros", algorithm="auto"):
    """The input gradient h of eq. 9.13: multiplication of gy by the transposed convolution matrix.

    ``input_shape`` is the forward input's shape, (N, C, *spatial) or its spatial sizes alone: it is
    needed because several input sizes give the same output size under a stride. An unbatched
    gy (K, *output) gives an unbatched result (C, *spatial); its ``input_shape`` is then
    (C, *spatial) or the spatial sizes.
    """
    return _grad_input(gy, w, input_shape, stride, padding, dilation, groups, flip, padding_mode,
                       algorithm)


def conv_grad_kernel(x, gy, kernel_shape, *, stride=1, padding=0, dilation=1, groups=1, flip=False,
                     padding_mode="zeros", algorithm="auto"):
    """The kernel gradient g of eq. 9.11, summed over the batch.

    ``kernel_shape`` is (K, C/groups, *kernel) or the kernel's spatial sizes alone. x and gy may
    both be unbatched, (C, *spatial) and (K, *output): ``kernel_shape`` says how many spatial
    axes there are.
    """
    memo, seen = _call_memo.find("grad_kernel", (x, gy),
                                 (kernel_shape, stride, padding, dilation, groups), flip,
                                 padding_mode, algorithm)
    if seen is not None:
        spec, shape = seen
        return _grad_kernel_run(spec, lifted(x, spec.x_shape, spec.dtype),
                                lifted(gy, spec.y_shape, spec.dtype), flip, algorithm, shape)
    (x, gy), _ = _opening([(x, "x"), (gy, "gy")], flip, algorithm)
    if x.ndim != gy.ndim:
        raise ValueError(f"x and gy must both be batched, (N, C, *spatial) and (N, K, *output), or "
                         f"both unbatched, (C, *spatial) and (K, *output); got x of shape "
                         f"{x.shape} and gy of shape {gy.shape}")
    if isinstance(kernel_shape, (tuple, list)) and (x.ndim - len(kernel_shape)) % 2 and \
            2 <= x.ndim <= 4:       # (C, *spatial) against (*kernel) or (K, C/groups, *kernel)
        try:
            return conv_grad_kernel(x[None], gy[None], kernel_shape, stride=stride,
                                    padding=padding, dilation=dilation, groups=groups, flip=flip,
                                    padding_mode=padding_mode, algorithm=algorithm)
        except NotSupportedError:
            raise
        except ValueError as exc:
            raise ValueError(
                f"kernel_shape {tuple(kernel_shape)} makes x of shape {x.shape} one unbatched "
                f"example (C, *spatial), which does not fit: {exc}. For a batch (N, C, *spatial) "
                f"kernel_shape has {x.ndim - 2} (spatial) or {x.ndim} (full) entries") from None
    (x, gy), ndim = _opening([(x, "x"), (gy, "gy")], flip, algorithm, lead=(0, "N, C, *spatial"),
                             other=(1, "N, K, *output", "like x"))
    groups = check_groups(groups)
    w_shape = full_shape(kernel_shape, "kernel_shape", ndim, (gy.shape[1], x.shape[1] // groups))
    dtype = result_dtype(x, gy)
    spec = make_spec(x.shape, w_shape, stride=stride, padding=padding, dilation=dilation,
                     groups=groups, dtype=dtype, w_name="kernel_shape")
    check_padding_mode(padding_mode, spec)
    if gy.shape[0] != x.shape[0]:
        raise ValueError(f"gy must have the batch size of x ({x.shape[0]}), got shape {gy.shape}")
    check_output_grad(gy, spec.user_shape(spec.y_shape), "gy")
    if 0 in (spec.batch, spec.out_channels, spec.in_channels):
        return np.zeros(spec.user_shape(spec.w_shape), dtype)
    x5 = lifted(x, spec.x_shape, dtype)
    gy5 = lifted(gy, spec.y_shape, dtype)
    shape = spec.user_shape(spec.w_shape)
    if padding_mode != "zeros":
        x5, spec = pad(x5, spec, padding_mode), with_explicit_padding(spec)
    else:
        _call_memo.remember(memo, (spec, shape))
    return _grad_kernel_run(spec, x5, gy5, flip, algorithm, shape)


def _grad_kernel_run(spec, x5, gy5, flip, algorithm, shape):
    gw5 = _registry.run(spec, "grad_kernel", algorithm, x5, gy5)
    if flip:        # d/dw of conv with flip(w) is the flip of d/dw'
        gw5 = np.ascontiguousarray(gw5[..., ::-1, ::-1, ::-1])
    return gw5.reshape(shape)


def conv_transpose(x, w, bias=None, *, stride=1, padding=0, dilation=1, groups=1,
                   output_shape=None, algorithm="auto"):
    """The decoder of eq. 9.14: conv_grad_input with x (N, K, *m) in the role of the gradient.

    w has the forward kernel's shape (K, C/groups, *kernel); the result is (N, C, *n). Several n give
    the same m under a stride: ``output_shape`` (spatial sizes, or full) picks one; the default is
    the smallest. An unbatched x (K, *m) gives an unbatched result (C, *n); its ``output_shape``
    is then (C, *n) or the spatial sizes.
    """
    (x, w, b), _ = _opening([(x, "x"), (w, "w"), (bias, "bias")], algorithm=algorithm)
    ndim = spatial_dims(w, "w", KERNEL, w, "w", KERNEL, "")
    if _unbatched(x, "x", ndim, "N, K, *spatial", w.shape):
        if output_shape is not None:
            shape = shape_tuple(output_shape, "output_shape")
            if len(shape) not in (ndim, ndim + 1):
                raise ValueError(f"output_shape must have {ndim} (spatial) or {ndim + 1} "
                                 f"(C, *spatial) entries for an unbatched x of shape {x.shape}, "
                                 f"got {shape}")
            output_shape = (1,) + shape if len(shape) == ndim + 1 else shape
        return conv_transpose(x[None], w, b, stride=stride, padding=padding, dilation=dilation,
                              groups=groups, output_shape=output_shape, algorithm=algorithm)[0]
    groups = check_groups(groups)
    channels = w.shape[1] * groups
    check_bias(b, channels)
    ranges = transpose_input_sizes(x.shape[2:], w.shape, stride=stride, padding=padding,
                                   dilation=dilation, lowest=True)
    for axis, (lo, hi) in enumerate(ranges):
        if hi < lo:
            raise ValueError(f"x has {x.shape[2 + axis]} positions along spatial axis {axis}, "
                             f"which no output size gives with this geometry (the padding "
                             f"alone makes more); expected more positions or less padding")
    if output_shape is None:        # the smallest, non-empty where one is
        sizes = tuple(max(lo, 1) if max(lo, 1) <= hi else lo for lo, hi in ranges)
    else:
        full = full_shape(output_shape, "output_shape", ndim, (x.shape[0], channels))
        if full[:2] != (x.shape[0], channels):
            raise ValueError(f"output_shape {full} must start with the batch size and the output "
                             f"channels (C/groups * groups) ({x.shape[0]}, {channels})")
        sizes = full[2:]
    for axis, (n, (lo, hi)) in enumerate(zip(sizes, ranges)):
        if not lo <= n <= hi:
            raise ValueError(f"output_shape {sizes} cannot be reached along spatial axis {axis}: "
                             f"an input of size {x.shape[2 + axis]} gives outputs of size {lo} to "
                             f"{hi} with this geometry")
    input_shape = (x.shape[0], channels) + sizes
    y = _grad_input(x, w, input_shape, stride, padding, dilation, groups, False, "zeros", algorithm,
                    gy_name="x", shape_name="output_shape")
    if b is not None:
        y = add_bias(y.astype(result_dtype(x, w, b), copy=False), b)
    return y


# --- the chooser ---------------------------------------------------------------------------

def spec_from_shapes(x_shape, w_shape, stride, padding, dilation, groups, dtype):
    dtype = np.dtype(dtype)
    if dtype not in (np.float32, np.float64):
        raise TypeError(f"dtype must be float32 or float64, got {dtype}")
    return make_spec(shape_tuple(x_shape, "x_shape"), shape_tuple(w_shape, "w_shape"), stride=stride,
                     padding=padding, dilation=dilation, groups=groups, dtype=dtype,
                     x_name="x_shape", w_name="w_shape")


def choose(x_shape, w_shape, *, stride=1, padding=0, dilation=1, groups=1, dtype="float32",
           op="forward"):
    """The algorithm ``algorithm="auto"`` uses for `op` on this problem.

    With autotuning on (``set_autotune(True)``) and the problem already tuned, the measured
    winner; otherwise the cost models' pick (never timing anything here). Algorithms that depend
    on the kernel's values (separable) are not considered: only the call has the kernel.
    """
    if op not in _registry.OPERATIONS:
        raise ValueError(f"op must be one of {_registry.OPERATIONS}, got {op!r}")
    spec = spec_from_shapes(x_shape, w_shape, stride, padding, dilation, groups, dtype)
    return _registry.shape_choice(spec, op)


def explain(x_shape, w_shape=None, *, stride=1, padding=0, dilation=1, groups=1, dtype="float32"):
    """For forward, grad_input and grad_kernel: every algorithm, applicable or why not, its
    predicted time, its measured time if the problem was autotuned, its workspace, and the choice.
    str() of the result is the table; ``.choice`` and ``.tuned_choice`` map op -> name.

    ``explain(p)`` of a prepared convolution (`fastconv.plan`) explains its problem and adds
    what the plan runs for each operation (``.planned``: op -> name)."""
    planned = getattr(x_shape, "algorithm_for", None)
    if planned is not None:
        if w_shape is not None:
            raise TypeError("explain(plan) takes no w_shape: the plan has its problem")
        return _registry.Explanation(x_shape._run_spec,
                                     {op: planned(op) for op in _registry.OPERATIONS})
    if w_shape is None:
        raise TypeError("explain() needs x_shape and w_shape, or a plan (fastconv.plan)")
    return _registry.Explanation(spec_from_shapes(x_shape, w_shape, stride, padding, dilation,
                                                   groups, dtype))
