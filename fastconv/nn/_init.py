"""Initial weights and the small argument checks the layers share."""
import contextlib
import contextvars
import functools
import math
import numbers

import numpy as np

from .._geometry import transpose_input_sizes
from .._validate import positive_int, real_array
from .module import float_dtype, make_rng

INITS = ("default", "he", "glorot")

# While `fastconv.nn.load` rebuilds a model, how many parameter and buffer values its layers may
# still create: the values the file really holds. A forged architecture (Linear(100000, 100000)
# beside tiny arrays) is then refused before its arrays exist. None: no limit.
_allowance = contextvars.ContextVar("fastconv_nn_allowance", default=None)


@contextlib.contextmanager
def allowance(values):
    """Within the block, layers may create at most `values` parameter and buffer values in all."""
    token = _allowance.set([int(values)])
    try:
        yield
    finally:
        _allowance.reset(token)


def reserve(shape, what):
    """Count an array of `shape` against the allowance, if one is set, before creating it: every
    layer creates its parameters and buffers through this module's functions or calls this."""
    left = _allowance.get()
    if left is None:
        return
    n = math.prod(max(int(s), 0) for s in shape)
    if n > left[0]:
        raise ValueError(f"{what} would hold {n} values, more than the {left[0]} that the file "
                         "being loaded still holds")
    left[0] -= n


def init_weight(rng, shape, fan_in, fan_out, dtype, init="default"):
    """PyTorch's default (kaiming_uniform with a = sqrt(5): U(+-1/sqrt(fan_in))), He normal
    (std sqrt(2 / fan_in), for ReLU) or Glorot uniform (U(+-sqrt(6 / (fan_in + fan_out))))."""
    reserve(shape, f"a weight of shape {tuple(shape)}")
    if init == "default":
        bound = 1.0 / math.sqrt(max(fan_in, 1))
        w = rng.uniform(-bound, bound, size=shape)
    elif init == "he":
        w = rng.standard_normal(size=shape) * math.sqrt(2.0 / max(fan_in, 1))
    elif init == "glorot":
        bound = math.sqrt(6.0 / max(fan_in + fan_out, 1))
        w = rng.uniform(-bound, bound, size=shape)
    else:
        raise ValueError(f"init must be one of {INITS}, got {init!r}")
    return w.astype(dtype)


def init_bias(rng, shape, fan_in, dtype, init="default"):
    """PyTorch's default U(+-1/sqrt(fan_in)); zeros for He and Glorot."""
    reserve(shape, f"a bias of shape {tuple(shape)}")
    if init == "default":
        bound = 1.0 / math.sqrt(max(fan_in, 1))
        return rng.uniform(-bound, bound, size=shape).astype(dtype)
    return np.zeros(shape, dtype)


def tuple_of(value, ndim, name, minimum=1):
    """An int or `ndim` ints, as a tuple of ints >= minimum."""
    if isinstance(value, (tuple, list)):
        if len(value) != ndim:
            raise ValueError(f"{name} must be an int or {ndim} ints, got {value!r}")
        values = tuple(value)
    else:
        values = (value,) * ndim
    out = []
    for v in values:
        if isinstance(v, (bool, np.bool_)) or not isinstance(v, numbers.Integral):
            raise TypeError(f"{name} must be an int or {ndim} ints, got {value!r}")
        if v < minimum:
            raise ValueError(f"{name} must be >= {minimum}, got {value!r}")
        out.append(int(v))
    return tuple(out)


def as_input(x, ndim, channels, layer):
    """x as an array of shape (N, channels, *spatial) with `ndim` spatial axes, or a clear error.
    (An unbatched x, one axis fewer, has been given a batch axis by AcceptsUnbatched.)"""
    x = real_array(x, f"{layer}: x", "a real numeric array")
    if x.ndim != ndim + 2:
        raise ValueError(f"{layer}: x must have {ndim + 2} dimensions (N, C, *spatial) or, "
                         f"unbatched, {ndim + 1} (C, *spatial) for a {ndim}-D layer, got shape "
                         f"{x.shape}")
    if channels is not None and x.shape[1] != channels:
        hint = (f"; x looks channels-last ({channels} channels on its last axis): the layers are "
                f"channels-first, pass np.moveaxis(x, -1, 1)" if x.shape[-1] == channels else "")
        raise ValueError(f"{layer}: x must have {channels} channels (axis 1), got shape "
                         f"{x.shape}{hint}")
    return x


_UNBATCHED = object()       # tags a cache entry pushed by a forward call on an unbatched x


def _forward_unbatched(forward):
    @functools.wraps(forward)
    def call(self, x, *args, **kwargs):
        if np.ndim(x) != self.ndim + 1:
            return forward(self, x, *args, **kwargs)
        cache = self._cache
        n = len(cache)
        y = forward(self, np.asarray(x)[None], *args, **kwargs)
        if len(cache) > n:
            cache[n] = (_UNBATCHED, cache[n])
        return y[0]
    return call


def _backward_unbatched(backward):
    @functools.wraps(backward)
    def call(self, gy, *args, **kwargs):
        cache = self._cache
        if not (cache and cache[-1] and cache[-1][0] is _UNBATCHED):
            return backward(self, gy, *args, **kwargs)
        cache[-1] = cache[-1][1]
        gx = backward(self, np.asarray(gy)[None], *args, **kwargs)
        return None if gx is None else gx[0]
    return call


class AcceptsUnbatched:
    """Mixin of the layers with `ndim` spatial axes: like PyTorch's, they take one unbatched
    example (C, *spatial) and return an unbatched result (an input with one axis fewer gives an
    output with one axis fewer). forward runs it as a batch of one and tags what it cached, so
    the matching backward takes an unbatched gy and returns an unbatched gradient."""

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        for name, wrap in (("forward", _forward_unbatched), ("backward", _backward_unbatched),
                           ("backward_parameters", _backward_unbatched)):
            if name in cls.__dict__:
                setattr(cls, name, wrap(cls.__dict__[name]))


def bias_kind(bias, allowed, name="bias"):
    """Normalise bias= : True -> 'channel', False/None -> None, else one of `allowed`."""
    if bias is True:
        return "channel"
    if bias is None or bias is False:
        return None
    if bias not in allowed:
        raise ValueError(f"{name} must be one of {allowed}, True, False or None, got {bias!r}")
    return bias



# --- what the convolution-like layers share, here and in fastconv.torch --------------------------

def conv_arguments(layer, in_channels, out_channels, kernel_size, stride, dilation, groups,
                   per_axis):
    """Check and set the channel counts, groups (unless None: a layer without groups),
    kernel_size, stride and dilation of a layer with `layer.ndim` spatial axes;
    ``per_axis(value, ndim, name, minimum)`` reads a per-axis argument (the layer's own rules and
    messages). The padding is each layer family's to store."""
    layer.in_channels = positive_int(in_channels, "in_channels")
    layer.out_channels = positive_int(out_channels, "out_channels")
    if groups is not None:
        layer.groups = positive_int(groups, "groups")
        if layer.in_channels % layer.groups or layer.out_channels % layer.groups:
            raise ValueError(f"groups={groups} must divide in_channels ({in_channels}) and "
                             f"out_channels ({out_channels})")
    layer.kernel_size = per_axis(kernel_size, layer.ndim, "kernel_size", 1)
    layer.stride = per_axis(stride, layer.ndim, "stride", 1)
    layer.dilation = per_axis(dilation, layer.ndim, "dilation", 1)


def transpose_arguments(layer, output_padding, stride, dilation, per_axis):
    """Check and set a transposed convolution's output_padding (after conv_arguments): each
    smaller than that axis's stride or dilation, as PyTorch asks."""
    layer.output_padding = per_axis(output_padding, layer.ndim, "output_padding", 0)
    if any(p >= max(s, d) for p, s, d in zip(layer.output_padding, layer.stride, layer.dilation)):
        raise ValueError(f"output_padding must be smaller than stride or dilation, got "
                         f"output_padding={output_padding}, stride={stride}, dilation={dilation}")


def transpose_output_size(layer, input_size):
    """A transposed convolution layer's spatial output size for a spatial input size: the
    smallest its geometry allows, plus output_padding."""
    ranges = transpose_input_sizes(tuple(input_size), tuple(layer.weight.shape),
                                   stride=layer.stride, padding=layer.padding,
                                   dilation=layer.dilation)
    return tuple(lo + p for (lo, _), p in zip(ranges, layer.output_padding))


def conv_repr(layer, *shown):
    """extra_repr of a convolution-like layer: "in, out, kernel_size=k", then each
    ``(name, value, show)`` of `shown` as "name=repr(value)" where `show` is true."""
    return ", ".join([f"{layer.in_channels}, {layer.out_channels}, kernel_size={layer.kernel_size}"]
                     + [f"{name}={value!r}" for name, value, show in shown if show])


__all__ = ["AcceptsUnbatched", "allowance", "reserve", "init_weight", "init_bias", "tuple_of",
           "as_input", "bias_kind", "conv_arguments", "conv_repr",
           "transpose_arguments", "transpose_output_size",
           "float_dtype", "make_rng", "INITS"]
