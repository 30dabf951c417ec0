"""Convolution layers: the three operations of section 9.5 as one layer each way.

``ConvNd``: forward ``fastconv.conv`` (eq. 9.7/9.8), backward ``conv_grad_input`` (eq. 9.13) and
``conv_grad_kernel`` (eq. 9.11). ``ConvTransposeNd``: forward ``fastconv.conv_transpose``
(eq. 9.14), backward the forward convolution and the kernel gradient with the roles swapped.
"""
import math

import numpy as np

from .. import _functional, _prepared
from .._geometry import make_spec
from .._validate import result_dtype
from . import _elementwise
from ._init import (AcceptsUnbatched, as_input, bias_kind, conv_arguments, conv_repr, float_dtype,
                    init_bias, init_weight, make_rng, transpose_arguments, transpose_output_size,
                    tuple_of)
from .module import Module


class _ConvNd(AcceptsUnbatched, Module):
    ndim = None

    def __init__(self, in_channels, out_channels, kernel_size, stride=1, padding=0, dilation=1,
                 groups=1, bias="channel", flip=False, padding_mode="zeros", algorithm="auto",
                 input_size=None, init="default", seed=None, dtype=np.float32):
        super().__init__()
        _geometry_args(self, in_channels, out_channels, kernel_size, stride, padding, dilation,
                       groups)
        self.flip = bool(flip)
        self.padding_mode = padding_mode
        self.algorithm = algorithm
        self.bias_kind = bias_kind(bias, ("channel", "location"))
        self.dtype = float_dtype(dtype)
        self.input_size = (None if input_size is None
                           else tuple_of(input_size, self.ndim, "input_size"))
        if self.bias_kind == "location" and self.input_size is None:
            raise ValueError("bias='location' (one bias per output unit) needs input_size= "
                             "(the spatial size of the input) at construction")
        w_shape = (self.out_channels, self.in_channels // self.groups) + self.kernel_size
        k_vol = math.prod(self.kernel_size)
        _weight_and_bias(self, seed, init, w_shape, fan_in=w_shape[1] * k_vol,
                         fan_out=self.out_channels // self.groups * k_vol,
                         per_unit=lambda: self.output_size(self.input_size))
        # fail now, not at the first batch, on a bad padding or padding_mode
        if self.input_size is not None:
            self.output_size(self.input_size)

    def _geometry(self):
        return dict(stride=self.stride, padding=self.padding, dilation=self.dilation,
                    groups=self.groups)

    def output_size(self, input_size):
        """The spatial output size for a spatial input size."""
        spec = make_spec((1, self.in_channels) + tuple(input_size), self.weight.shape,
                         **self._geometry())
        return spec.output_size[3 - self.ndim:]

    def algorithms(self, x_shape):
        """The algorithm ``"auto"`` picks for each of the three operations on this input shape."""
        if self.algorithm not in ("auto", "tune"):
            return {op: self.algorithm for op in ("forward", "grad_input", "grad_kernel")}
        return {op: _functional.choose(x_shape, self.weight.shape, dtype=self.dtype, op=op,
                                    **self._geometry())
                for op in ("forward", "grad_input", "grad_kernel")}

    def _check_size(self, x):
        if self.bias_kind == "location" and tuple(x.shape[2:]) != self.input_size:
            raise ValueError(f"{type(self).__name__} with bias='location' was built for inputs of "
                             f"spatial size {self.input_size}, got x of shape {x.shape}")

    def _plan(self, x_shape, dtype):
        """The prepared convolution (fastconv.plan) of this layer for inputs of `x_shape` and
        `dtype`: made at the first batch of a shape, reused by every later one. Keyed by
        everything a plan fixes, so that changing a layer's algorithm or geometry attribute
        makes a new one; it keeps nothing of the weights' values, which every call passes."""
        key = (x_shape, dtype, self.algorithm, self.flip, self.padding_mode, self.stride,
               self.padding, self.dilation, self.groups)
        return self._kept_plan(key, lambda: _prepared.ConvPlan(
            x_shape, self.weight.shape, dtype=dtype, flip=self.flip,
            padding_mode=self.padding_mode, algorithm=self.algorithm, **self._geometry()))

    def forward(self, x):
        x = as_input(x, self.ndim, self.in_channels, type(self).__name__)
        self._check_size(x)
        b = self.bias if self.bias_kind == "channel" else None
        y = self._plan(x.shape, result_dtype(x, self.weight, b)).forward(x, self.weight, b)
        if self.bias_kind == "location":
            y += self.bias.astype(y.dtype, copy=False)
        self._push(x)
        return y

    def backward(self, gy):
        return self._backward(gy, True)

    def backward_parameters(self, gy):
        self._backward(gy, False)

    def _backward(self, gy, input_grad):
        (x,) = self._pop()
        gy = np.asarray(gy)
        dtype = result_dtype(x, gy)
        if dtype != result_dtype(gy, self.weight) or gy.ndim != x.ndim:
            return self._backward_unplanned(x, gy, input_grad)  # mixed precisions: as conv does
        plan = self._plan(x.shape, dtype)
        self.grads["weight"] += plan.grad_kernel(x, gy)
        _add_bias_grad(self, gy)
        return plan.grad_input(gy, self.weight) if input_grad else None

    def _backward_unplanned(self, x, gy, input_grad):
        g = dict(flip=self.flip, padding_mode=self.padding_mode, algorithm=self.algorithm,
                 **self._geometry())
        self.grads["weight"] += _functional.conv_grad_kernel(x, gy, self.weight.shape, **g)
        _add_bias_grad(self, gy)
        if not input_grad:
            return None
        return _functional.conv_grad_input(gy, self.weight, x.shape, **g)

    def extra_repr(self):
        return conv_repr(self, ("stride", self.stride, True), ("padding", self.padding, True),
                         ("dilation", self.dilation, any(d != 1 for d in self.dilation)),
                         ("groups", self.groups, self.groups != 1),
                         ("bias", self.bias_kind, self.bias_kind != "channel"))


def _padding_value(padding):
    """Padding as an int or nested tuples (lists from JSON become tuples)."""
    if isinstance(padding, (list, tuple)):
        return tuple(_padding_value(p) for p in padding)
    return padding


# --- what the convolution-like layers (here and in nn/local.py) share ---------------------------

def _geometry_args(layer, in_channels, out_channels, kernel_size, stride, padding, dilation,
                   groups=None):
    """Check and set the channel counts, groups (unless None), kernel_size, stride, dilation and
    padding of a layer with `layer.ndim` spatial axes."""
    conv_arguments(layer, in_channels, out_channels, kernel_size, stride, dilation, groups,
                   tuple_of)
    layer.padding = _padding_value(padding)


def _weight_and_bias(layer, seed, init, w_shape, fan_in, fan_out, per_unit=None):
    """Add `weight` of w_shape and, unless layer.bias_kind is None, `bias`: (out_channels,) for
    "channel", else (out_channels, *per_unit()) -- one per output location or tile kernel
    (per_unit is called once the weight exists). One generator from `seed` draws both."""
    rng = make_rng(seed)
    layer.add_parameter("weight", init_weight(rng, w_shape, fan_in, fan_out, layer.dtype, init))
    if layer.bias_kind is not None:
        shape = (layer.out_channels,) + (() if layer.bias_kind == "channel" else per_unit())
        layer.add_parameter("bias", init_bias(rng, shape, fan_in, layer.dtype, init))


def _add_bias_grad(layer, gy):
    """Add gy's bias gradient: summed over the batch and space ("channel") or over the batch
    ("location"); any other kind is the layer's to handle."""
    if layer.bias_kind == "channel":
        _elementwise.add_bias_grad(layer.grads["bias"], gy)
    elif layer.bias_kind == "location":
        layer.grads["bias"] += gy.sum(axis=0)


class Conv1d(_ConvNd):
    """1-D convolution layer (audio, sequences): x (N, C, L) -> (N, K, L')."""
    ndim = 1


class Conv2d(_ConvNd):
    """2-D convolution layer (images): x (N, C, H, W) -> (N, K, H', W')."""
    ndim = 2


class Conv3d(_ConvNd):
    """3-D convolution layer (volumes, video): x (N, C, D, H, W) -> (N, K, D', H', W')."""
    ndim = 3


class _ConvTransposeNd(AcceptsUnbatched, Module):
    ndim = None

    def __init__(self, in_channels, out_channels, kernel_size, stride=1, padding=0,
                 output_padding=0, groups=1, bias="channel", dilation=1, algorithm="auto",
                 init="default", seed=None, dtype=np.float32):
        super().__init__()
        _geometry_args(self, in_channels, out_channels, kernel_size, stride, padding, dilation,
                       groups)
        transpose_arguments(self, output_padding, stride, dilation, tuple_of)
        self.algorithm = algorithm
        self.bias_kind = bias_kind(bias, ("channel",))
        self.dtype = float_dtype(dtype)
        # the forward convolution's kernel: (K, C/groups, *k) with K = in_channels here
        w_shape = (self.in_channels, self.out_channels // self.groups) + self.kernel_size
        k_vol = math.prod(self.kernel_size)
        _weight_and_bias(self, seed, init, w_shape, fan_in=w_shape[1] * k_vol,  # as PyTorch does
                         fan_out=self.in_channels // self.groups * k_vol)

    def _geometry(self):
        return dict(stride=self.stride, padding=self.padding, dilation=self.dilation,
                    groups=self.groups)

    def output_size(self, input_size):
        """The spatial output size: the smallest possible plus output_padding."""
        return transpose_output_size(self, input_size)

    def _plan_key(self, y_shape, dtype):
        """The key of the prepared convolution whose input gradient this layer's forward is:
        its input is this layer's output, of `y_shape`. The plan is made after the first call
        of a shape has passed conv_transpose's checks, then reused (see _ConvNd._plan)."""
        return (y_shape, dtype, self.algorithm, self.stride, self.padding, self.dilation,
                self.groups)

    def forward(self, x, output_size=None):
        x = as_input(x, self.ndim, self.in_channels, type(self).__name__)
        size = self.output_size(x.shape[2:]) if output_size is None else tuple(output_size)
        b = self.bias if self.bias_kind == "channel" else None
        dtype = result_dtype(x, self.weight)
        y_shape = (x.shape[0], self.out_channels) + tuple(size)
        key = self._plan_key(y_shape, dtype)
        plan = self._kept_plan(key)
        if plan is not None and plan.y_shape == x.shape:
            y = plan.grad_input(x, self.weight)
            if b is not None:
                y = _functional.add_bias(y.astype(result_dtype(x, self.weight, b), copy=False), b)
        else:
            y = _functional.conv_transpose(x, self.weight, b, output_shape=size,
                                           algorithm=self.algorithm, **self._geometry())
            self._kept_plan(key, lambda: _prepared.ConvPlan(
                y_shape, self.weight.shape, dtype=dtype, algorithm=self.algorithm,
                **self._geometry()))
        self._push(x)
        return y

    def backward(self, gy):
        (x,) = self._pop()
        gy = np.asarray(gy)
        # y = A^T x, with A the convolution by weight: dL/dx = A gy, dL/dw = kernel grad of (gy, x)
        dtype = result_dtype(x, self.weight)
        plan = self._kept_plan(self._plan_key(gy.shape, dtype))
        if plan is not None and result_dtype(gy, x) == dtype == result_dtype(gy, self.weight):
            self.grads["weight"] += plan.grad_kernel(gy, x)
            _add_bias_grad(self, gy)
            return plan.forward(gy, self.weight)
        g = dict(algorithm=self.algorithm, **self._geometry())
        self.grads["weight"] += _functional.conv_grad_kernel(gy, x, self.weight.shape, **g)
        _add_bias_grad(self, gy)
        return _functional.conv(gy, self.weight, **g)

    def extra_repr(self):
        return conv_repr(self, ("stride", self.stride, True), ("padding", self.padding, True))


class ConvTranspose1d(_ConvTransposeNd):
    """The decoder of eq. 9.14 in 1-D: (N, C_in, m) -> (N, C_out, n)."""
    ndim = 1


class ConvTranspose2d(_ConvTransposeNd):
    """The decoder of eq. 9.14 in 2-D."""
    ndim = 2


class ConvTranspose3d(_ConvTransposeNd):
    """The decoder of eq. 9.14 in 3-D."""
    ndim = 3
