"""Unshared convolution layers: locally connected (eq. 9.9) and tiled (eq. 9.10), over
``fastconv.local``."""
import itertools
import math

import numpy as np

import fastconv.local as L
from .._geometry import make_spec
from ._init import (as_input, bias_kind, float_dtype, init_bias, init_weight, make_rng,
                    positive_int, tuple_of)
from .conv import _padding_value
from .module import Module


def _out_size(in_channels, out_channels, kernel_size, input_size, stride, padding, dilation):
    spec = make_spec((1, in_channels) + tuple(input_size), (out_channels, in_channels) + kernel_size,
                     stride=stride, padding=padding, dilation=dilation)
    return spec.output_size[3 - len(kernel_size):]


class _LocallyConnectedNd(Module):
    """Every output position has its own kernel: w (*out_spatial, K, C, *kernel). The input size
    is fixed at construction. ``bias``: "location" (K, *out_spatial), "channel" (K,) or None."""
    ndim = None

    def __init__(self, in_channels, out_channels, kernel_size, input_size, stride=1, padding=0,
                 dilation=1, bias="location", init="default", seed=None, dtype=np.float32):
        super().__init__()
        d = self.ndim
        self.in_channels = positive_int(in_channels, "in_channels")
        self.out_channels = positive_int(out_channels, "out_channels")
        self.kernel_size = tuple_of(kernel_size, d, "kernel_size")
        self.input_size = tuple_of(input_size, d, "input_size")
        self.stride = tuple_of(stride, d, "stride")
        self.dilation = tuple_of(dilation, d, "dilation")
        self.padding = padding if isinstance(padding, str) else _padding_value(padding)
        self.bias_kind = bias_kind(bias, ("location", "channel"))
        self.dtype = float_dtype(dtype)
        self.out_size = _out_size(self.in_channels, self.out_channels, self.kernel_size,
                                  self.input_size, self.stride, self.padding, self.dilation)
        rng = make_rng(seed)
        fan_in = self.in_channels * math.prod(self.kernel_size)
        fan_out = self.out_channels * math.prod(self.kernel_size)
        shape = self.out_size + (self.out_channels, self.in_channels) + self.kernel_size
        self.add_parameter("weight", init_weight(rng, shape, fan_in, fan_out, self.dtype, init))
        if self.bias_kind == "location":
            self.add_parameter("bias", init_bias(rng, (self.out_channels,) + self.out_size, fan_in,
                                                 self.dtype, init))
        elif self.bias_kind == "channel":
            self.add_parameter("bias", init_bias(rng, (self.out_channels,), fan_in, self.dtype, init))

    def _geometry(self):
        return dict(stride=self.stride, padding=self.padding, dilation=self.dilation)

    def forward(self, x):
        x = as_input(x, self.ndim, self.in_channels, type(self).__name__)
        if tuple(x.shape[2:]) != self.input_size:
            raise ValueError(f"{type(self).__name__} was built for inputs of spatial size "
                             f"{self.input_size}, got x of shape {x.shape}")
        y = L.locally_connected(x, self.weight, self._params.get("bias"), **self._geometry())
        self._push(x)
        return y

    def backward(self, gy):
        (x,) = self._pop()
        gy = np.asarray(gy)
        self.grads["weight"] += L.locally_connected_grad_kernel(x, gy, self.weight.shape,
                                                                **self._geometry())
        if self.bias_kind == "location":
            self.grads["bias"] += gy.sum(axis=0)
        elif self.bias_kind == "channel":
            self.grads["bias"] += gy.sum(axis=(0,) + tuple(range(2, gy.ndim)))
        return L.locally_connected_grad_input(gy, self.weight, x.shape, **self._geometry())

    def extra_repr(self):
        return (f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, "
                f"input_size={self.input_size}, bias={self.bias_kind!r}")


class LocallyConnected1d(_LocallyConnectedNd):
    ndim = 1


class LocallyConnected2d(_LocallyConnectedNd):
    ndim = 2


class LocallyConnected3d(_LocallyConnectedNd):
    ndim = 3


class _TiledConvNd(Module):
    """A set of `tiles` kernels per axis, cycled through as one moves through the output
    (eq. 9.10): w (*tiles, K, C, *kernel). ``bias``: "tiled" (K, *tiles), "channel" (K,) or None."""
    ndim = None

    def __init__(self, in_channels, out_channels, kernel_size, tiles, stride=1, padding=0,
                 dilation=1, bias="tiled", init="default", seed=None, dtype=np.float32):
        super().__init__()
        d = self.ndim
        self.in_channels = positive_int(in_channels, "in_channels")
        self.out_channels = positive_int(out_channels, "out_channels")
        self.kernel_size = tuple_of(kernel_size, d, "kernel_size")
        self.tiles = tuple_of(tiles, d, "tiles")
        self.stride = tuple_of(stride, d, "stride")
        self.dilation = tuple_of(dilation, d, "dilation")
        self.padding = padding if isinstance(padding, str) else _padding_value(padding)
        self.bias_kind = bias_kind(bias, ("tiled", "channel"))
        self.dtype = float_dtype(dtype)
        rng = make_rng(seed)
        fan_in = self.in_channels * math.prod(self.kernel_size)
        fan_out = self.out_channels * math.prod(self.kernel_size)
        shape = self.tiles + (self.out_channels, self.in_channels) + self.kernel_size
        self.add_parameter("weight", init_weight(rng, shape, fan_in, fan_out, self.dtype, init))
        if self.bias_kind == "tiled":
            self.add_parameter("bias", init_bias(rng, (self.out_channels,) + self.tiles, fan_in,
                                                 self.dtype, init))
        elif self.bias_kind == "channel":
            self.add_parameter("bias", init_bias(rng, (self.out_channels,), fan_in, self.dtype, init))

    def _geometry(self):
        return dict(stride=self.stride, padding=self.padding, dilation=self.dilation)

    def forward(self, x):
        x = as_input(x, self.ndim, self.in_channels, type(self).__name__)
        y = L.tiled_conv(x, self.weight, self._params.get("bias"), **self._geometry())
        self._push(x)
        return y

    def backward(self, gy):
        (x,) = self._pop()
        gy = np.asarray(gy)
        self.grads["weight"] += L.tiled_conv_grad_kernel(x, gy, self.weight.shape, **self._geometry())
        if self.bias_kind == "channel":
            self.grads["bias"] += gy.sum(axis=(0,) + tuple(range(2, gy.ndim)))
        elif self.bias_kind == "tiled":
            gb = self.grads["bias"]
            for tile in itertools.product(*(range(t) for t in self.tiles)):
                view = gy[(slice(None), slice(None)) + tuple(slice(i, None, t)
                                                             for i, t in zip(tile, self.tiles))]
                gb[(slice(None),) + tile] += view.sum(axis=(0,) + tuple(range(2, gy.ndim)))
        return L.tiled_conv_grad_input(gy, self.weight, x.shape, **self._geometry())

    def extra_repr(self):
        return (f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, "
                f"tiles={self.tiles}, bias={self.bias_kind!r}")


class TiledConv1d(_TiledConvNd):
    ndim = 1


class TiledConv2d(_TiledConvNd):
    ndim = 2


class TiledConv3d(_TiledConvNd):
    ndim = 3
