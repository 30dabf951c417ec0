"""Unshared convolution layers: locally connected (eq. 9.9) and tiled (eq. 9.10), over
``fastconv.local``."""
import itertools
import math

import numpy as np

import fastconv.local as L
from .._geometry import make_spec
from ._init import AcceptsUnbatched, as_input, bias_kind, conv_repr, float_dtype, tuple_of
from .conv import _add_bias_grad, _geometry_args, _weight_and_bias
from .module import Module


def _out_size(in_channels, out_channels, kernel_size, input_size, stride, padding, dilation):
    spec = make_spec((1, in_channels) + tuple(input_size), (out_channels, in_channels) + kernel_size,
                     stride=stride, padding=padding, dilation=dilation)
    return spec.output_size[3 - len(kernel_size):]


class _UnsharedNd(AcceptsUnbatched, Module):
    """What both layers share: the arguments, weights (*leading, K, C, *kernel) with `leading`
    set by the subclass before `_build`, and the forward/backward over the three functions of
    ``fastconv.local`` that `_ops` names."""
    ndim = None
    _ops = None     # (forward, grad_input, grad_kernel)

    def _arguments(self, in_channels, out_channels, kernel_size, stride, padding, dilation, bias,
                   kinds, dtype):
        _geometry_args(self, in_channels, out_channels, kernel_size, stride, padding, dilation)
        self.bias_kind = bias_kind(bias, kinds)
        self.dtype = float_dtype(dtype)

    def _build(self, leading, init, seed):
        """Weights (*leading, K, C, *kernel); a non-"channel" bias is (K, *leading)."""
        k_vol = math.prod(self.kernel_size)
        shape = leading + (self.out_channels, self.in_channels) + self.kernel_size
        _weight_and_bias(self, seed, init, shape, fan_in=self.in_channels * k_vol,
                         fan_out=self.out_channels * k_vol, per_unit=lambda: leading)

    def _geometry(self):
        return dict(stride=self.stride, padding=self.padding, dilation=self.dilation)

    def _check_size(self, x):
        pass

    def forward(self, x):
        x = as_input(x, self.ndim, self.in_channels, type(self).__name__)
        self._check_size(x)
        y = self._ops[0](x, self.weight, self._params.get("bias"), **self._geometry())
        self._push(x)
        return y

    def backward(self, gy):
        (x,) = self._pop()
        gy = np.asarray(gy)
        self.grads["weight"] += self._ops[2](x, gy, self.weight.shape, **self._geometry())
        self._add_bias_grad(gy)
        return self._ops[1](gy, self.weight, x.shape, **self._geometry())

    def _add_bias_grad(self, gy):
        _add_bias_grad(self, gy)


class _LocallyConnectedNd(_UnsharedNd):
    """Every output position has its own kernel: w (*out_spatial, K, C, *kernel). The input size
    is fixed at construction. ``bias``: "location" (K, *out_spatial), "channel" (K,) or None."""
    _ops = (L.locally_connected, L.locally_connected_grad_input, L.locally_connected_grad_kernel)

    def __init__(self, in_channels, out_channels, kernel_size, input_size, stride=1, padding=0,
                 dilation=1, bias="location", init="default", seed=None, dtype=np.float32):
        super().__init__()
        self.input_size = tuple_of(input_size, self.ndim, "input_size")
        self._arguments(in_channels, out_channels, kernel_size, stride, padding, dilation, bias,
                        ("location", "channel"), dtype)
        self.out_size = _out_size(self.in_channels, self.out_channels, self.kernel_size,
                                  self.input_size, self.stride, self.padding, self.dilation)
        self._build(self.out_size, init, seed)

    def _check_size(self, x):
        if tuple(x.shape[2:]) != self.input_size:
            raise ValueError(f"{type(self).__name__} was built for inputs of spatial size "
                             f"{self.input_size}, got x of shape {x.shape}")

    def extra_repr(self):
        return conv_repr(self, ("input_size", self.input_size, True),
                         ("bias", self.bias_kind, True))


class LocallyConnected1d(_LocallyConnectedNd):
    ndim = 1


class LocallyConnected2d(_LocallyConnectedNd):
    ndim = 2


class LocallyConnected3d(_LocallyConnectedNd):
    ndim = 3


class _TiledConvNd(_UnsharedNd):
    """A set of `tiles` kernels per axis, cycled through as one moves through the output
    (eq. 9.10): w (*tiles, K, C, *kernel). ``bias``: "tiled" (K, *tiles), "channel" (K,) or None."""
    _ops = (L.tiled_conv, L.tiled_conv_grad_input, L.tiled_conv_grad_kernel)

    def __init__(self, in_channels, out_channels, kernel_size, tiles, stride=1, padding=0,
                 dilation=1, bias="tiled", init="default", seed=None, dtype=np.float32):
        super().__init__()
        self.tiles = tuple_of(tiles, self.ndim, "tiles")
        self._arguments(in_channels, out_channels, kernel_size, stride, padding, dilation, bias,
                        ("tiled", "channel"), dtype)
        self._build(self.tiles, init, seed)

    def _add_bias_grad(self, gy):
        if self.bias_kind != "tiled":
            return _add_bias_grad(self, gy)
        gb = self.grads["bias"]
        for tile in itertools.product(*(range(t) for t in self.tiles)):
            view = gy[(slice(None), slice(None)) + tuple(slice(i, None, t)
                                                         for i, t in zip(tile, self.tiles))]
            gb[(slice(None),) + tile] += view.sum(axis=(0,) + tuple(range(2, gy.ndim)))

    def extra_repr(self):
        return conv_repr(self, ("tiles", self.tiles, True),
                         ("bias", self.bias_kind, True))


class TiledConv1d(_TiledConvNd):
    ndim = 1


class TiledConv2d(_TiledConvNd):
    ndim = 2


class TiledConv3d(_TiledConvNd):
    ndim = 3
