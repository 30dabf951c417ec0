"""``torch.nn.Module`` layers over fastconv.torch's functions.

``Conv1d/2d/3d`` and ``ConvTranspose1d/2d/3d`` take the arguments of their ``torch.nn``
namesakes, in the same order, plus fastconv's keyword-only ``algorithm=`` (and ``flip=`` for
convolution); their parameters are ``weight`` and ``bias`` of torch's shapes, initialised as
torch does, so state_dicts load both ways. They accept every padding fastconv accepts: ints,
per-axis ints, (low, high) pairs, "valid", "full" and "same" (also with a stride, which torch
refuses), and the padding modes "zeros", "reflect", "replicate" and "circular".

``LocallyConnected1d/2d/3d`` (eq. 9.9), ``TiledConv1d/2d/3d`` (eq. 9.10) and
``SeparableConv1d/2d/3d`` mirror ``fastconv.nn``'s layers and ``fastconv.separable``; torch has no
counterpart, so their parameter layouts are fastconv's.
"""
import math

import torch
from torch.nn import init

from fastconv._geometry import PADDING_MODES, per_dim, resolve_padding
from fastconv.nn._init import (bias_kind, conv_arguments, conv_repr, transpose_arguments,
                               transpose_output_size)
from fastconv.torch import _functions as F

__all__ = ["Conv1d", "Conv2d", "Conv3d", "ConvTranspose1d", "ConvTranspose2d", "ConvTranspose3d",
           "LocallyConnected1d", "LocallyConnected2d", "LocallyConnected3d",
           "TiledConv1d", "TiledConv2d", "TiledConv3d",
           "SeparableConv1d", "SeparableConv2d", "SeparableConv3d"]


def _geometry(layer, in_channels, out_channels, kernel_size, stride, padding, dilation, groups):
    """Check and set the channels, groups (unless None: a layer without groups), kernel_size,
    stride, dilation and padding of a layer with `layer.ndim` spatial axes; a bad padding fails
    here, not at the first batch."""
    conv_arguments(layer, in_channels, out_channels, kernel_size, stride, dilation, groups,
                   per_dim)
    resolve_padding(padding, layer.kernel_size, layer.kernel_size, layer.stride, layer.dilation)
    if isinstance(padding, str):
        layer.padding = padding
    elif isinstance(padding, (tuple, list)):
        layer.padding = tuple(tuple(p) if isinstance(p, (tuple, list)) else p for p in padding)
    else:
        layer.padding = (padding,) * layer.ndim


def _check_padding_mode(padding_mode, allowed=PADDING_MODES):
    if padding_mode not in allowed:
        raise ValueError(f"padding_mode must be one of {allowed}, got {padding_mode!r}")
    return padding_mode


def _parameters(layer, channels, bias, device, dtype):
    """A convolution's weight (*channels, *kernel_size) and, with `bias`, its bias
    (out_channels,), initialised as torch initialises them (`layer.reset_parameters`)."""
    factory = dict(device=device, dtype=dtype)
    layer.weight = torch.nn.Parameter(torch.empty(channels + layer.kernel_size, **factory))
    if bias:
        layer.bias = torch.nn.Parameter(torch.empty(layer.out_channels, **factory))
    else:
        layer.register_parameter("bias", None)
    layer.reset_parameters()


def _uniform(shape, bound, factory):
    t = torch.empty(shape, **factory)
    with torch.no_grad():
        t.uniform_(-bound, bound)
    return torch.nn.Parameter(t)


class _ConvNd(torch.nn.Module):
    ndim = None

    def __init__(self, in_channels, out_channels, kernel_size, stride=1, padding=0, dilation=1,
                 groups=1, bias=True, padding_mode="zeros", device=None, dtype=None, *,
                 algorithm="auto", flip=False):
        super().__init__()
        _geometry(self, in_channels, out_channels, kernel_size, stride, padding, dilation, groups)
        self.padding_mode = _check_padding_mode(padding_mode)
        self.algorithm = algorithm
        self.flip = bool(flip)
        _parameters(self, (self.out_channels, self.in_channels // self.groups), bias, device, dtype)

    def reset_parameters(self):
        """torch.nn.Conv*d's initialisation, draw for draw."""
        init.kaiming_uniform_(self.weight, a=math.sqrt(5))
        if self.bias is not None:
            fan_in = self.weight.shape[1] * math.prod(self.kernel_size)
            if fan_in:
                init.uniform_(self.bias, -1 / math.sqrt(fan_in), 1 / math.sqrt(fan_in))

    def forward(self, x):
        return F.conv(x, self.weight, self.bias, stride=self.stride, padding=self.padding,
                      dilation=self.dilation, groups=self.groups, flip=self.flip,
                      padding_mode=self.padding_mode, algorithm=self.algorithm)

    def extra_repr(self):
        return conv_repr(self, ("stride", self.stride, True), ("padding", self.padding, True),
                         ("dilation", self.dilation, any(d != 1 for d in self.dilation)),
                         ("groups", self.groups, self.groups != 1),
                         ("bias", False, self.bias is None),
                         ("padding_mode", self.padding_mode, self.padding_mode != "zeros"),
                         ("algorithm", self.algorithm, self.algorithm != "auto"))


class Conv1d(_ConvNd):
    """torch.nn.Conv1d on fastconv's kernels: (N, C, L) or (C, L) -> (N, K, L')."""
    ndim = 1


class Conv2d(_ConvNd):
    """torch.nn.Conv2d on fastconv's kernels: (N, C, H, W) or (C, H, W) -> (N, K, H', W')."""
    ndim = 2


class Conv3d(_ConvNd):
    """torch.nn.Conv3d on fastconv's kernels: (N, C, D, H, W) or (C, D, H, W)."""
    ndim = 3


class _ConvTransposeNd(torch.nn.Module):
    ndim = None

    def __init__(self, in_channels, out_channels, kernel_size, stride=1, padding=0,
                 output_padding=0, groups=1, bias=True, dilation=1, padding_mode="zeros",
                 device=None, dtype=None, *, algorithm="auto"):
        super().__init__()
        _geometry(self, in_channels, out_channels, kernel_size, stride, padding, dilation, groups)
        transpose_arguments(self, output_padding, stride, dilation, per_dim)
        self.padding_mode = _check_padding_mode(padding_mode, ("zeros",))
        self.algorithm = algorithm
        # the forward convolution's kernel, (in_channels, out_channels / groups, *kernel), as torch
        _parameters(self, (self.in_channels, self.out_channels // self.groups), bias, device, dtype)

    reset_parameters = _ConvNd.reset_parameters

    def output_size(self, input_size):
        """The spatial output size: the smallest the geometry allows, plus output_padding."""
        return transpose_output_size(self, input_size)

    def forward(self, x, output_size=None):
        spatial = tuple(x.shape[-self.ndim:])
        size = self.output_size(spatial) if output_size is None else \
            tuple(output_size)[-self.ndim:]
        return F.conv_transpose(x, self.weight, self.bias, stride=self.stride,
                                padding=self.padding, dilation=self.dilation, groups=self.groups,
                                output_shape=size, algorithm=self.algorithm)

    def extra_repr(self):
        return conv_repr(self, ("stride", self.stride, True), ("padding", self.padding, True),
                         ("output_padding", self.output_padding, any(self.output_padding)),
                         ("groups", self.groups, self.groups != 1),
                         ("bias", False, self.bias is None))


class ConvTranspose1d(_ConvTransposeNd):
    """torch.nn.ConvTranspose1d on fastconv's kernels (eq. 9.14)."""
    ndim = 1


class ConvTranspose2d(_ConvTransposeNd):
    """torch.nn.ConvTranspose2d on fastconv's kernels (eq. 9.14)."""
    ndim = 2


class ConvTranspose3d(_ConvTransposeNd):
    """torch.nn.ConvTranspose3d on fastconv's kernels (eq. 9.14)."""
    ndim = 3


# --- unshared convolution: fastconv.nn's LocallyConnected*d and TiledConv*d ----------------------

class _UnsharedNd(torch.nn.Module):
    """weight (*leading, K, C, *kernel); bias (K,) for "channel", (K, *leading) for the
    per-location / per-tile kind, or None. Initialised as torch initialises a convolution with
    the same fan-in (uniform in +-1/sqrt(C * prod(kernel_size)))."""
    ndim = None

    def _build(self, in_channels, out_channels, kernel_size, stride, padding, dilation, bias,
               kinds, device, dtype):
        _geometry(self, in_channels, out_channels, kernel_size, stride, padding, dilation, None)
        self.bias_kind = bias_kind(bias, kinds)
        self._factory = dict(device=device, dtype=dtype)

    def _parameters_for(self, leading):
        bound = 1 / math.sqrt(self.in_channels * math.prod(self.kernel_size))
        self.weight = _uniform(tuple(leading) + (self.out_channels, self.in_channels) +
                               self.kernel_size, bound, self._factory)
        if self.bias_kind is None:
            self.register_parameter("bias", None)
        else:
            shape = (self.out_channels,) + (() if self.bias_kind == "channel" else tuple(leading))
            self.bias = _uniform(shape, bound, self._factory)
        del self._factory

    def _geometry_kwargs(self):
        return dict(stride=self.stride, padding=self.padding, dilation=self.dilation)


class _LocallyConnectedNd(_UnsharedNd):
    """Every output position has its own kernel (eq. 9.9): weight (*out_spatial, K, C, *kernel),
    for inputs of the spatial size `input_size` given at construction. ``bias``: "location"
    (K, *out_spatial), "channel" (K,) or None."""

    def __init__(self, in_channels, out_channels, kernel_size, input_size, stride=1, padding=0,
                 dilation=1, bias="location", device=None, dtype=None):
        super().__init__()
        self._build(in_channels, out_channels, kernel_size, stride, padding, dilation, bias,
                    ("location", "channel"), device, dtype)
        self.input_size = per_dim(input_size, self.ndim, "input_size", 1)
        pads = resolve_padding(self.padding, self.input_size, self.kernel_size, self.stride,
                               self.dilation)
        self.out_size = tuple((n + lo + hi - d * (k - 1) - 1) // s + 1 for n, (lo, hi), k, s, d
                              in zip(self.input_size, pads, self.kernel_size, self.stride,
                                     self.dilation))
        if min(self.out_size) < 1:
            raise ValueError(f"input_size {self.input_size} gives no output with kernel_size "
                             f"{self.kernel_size} and this padding; expected a larger input_size")
        self._parameters_for(self.out_size)

    def forward(self, x):
        if tuple(x.shape[-self.ndim:]) != self.input_size:
            raise ValueError(f"{type(self).__name__} was built for inputs of spatial size "
                             f"{self.input_size}, got x of shape {tuple(x.shape)}")
        return F.locally_connected(x, self.weight, self.bias, **self._geometry_kwargs())

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
    """A set of `tiles` kernels per axis cycled through as one moves through the output
    (eq. 9.10): weight (*tiles, K, C, *kernel). ``bias``: "tiled" (K, *tiles), "channel" (K,)
    or None."""

    def __init__(self, in_channels, out_channels, kernel_size, tiles, stride=1, padding=0,
                 dilation=1, bias="tiled", device=None, dtype=None, *, algorithm="auto"):
        super().__init__()
        self._build(in_channels, out_channels, kernel_size, stride, padding, dilation, bias,
                    ("tiled", "channel"), device, dtype)
        self.tiles = per_dim(tiles, self.ndim, "tiles", 1)
        self.algorithm = algorithm
        self._parameters_for(self.tiles)

    def forward(self, x):
        return F.tiled_conv(x, self.weight, self.bias, algorithm=self.algorithm,
                            **self._geometry_kwargs())

    def extra_repr(self):
        return conv_repr(self, ("tiles", self.tiles, True),
                         ("bias", self.bias_kind, True))


class TiledConv1d(_TiledConvNd):
    ndim = 1


class TiledConv2d(_TiledConvNd):
    ndim = 2


class TiledConv3d(_TiledConvNd):
    ndim = 3


# --- separable convolution: one factor per axis ---------------------------------------------------

class _SeparableConvNd(torch.nn.Module):
    """A convolution whose kernel is the outer product of one 1-D factor per axis,
    w[k, c, a, b, ...] = factors[0][k, c, a] * factors[1][k, c, b] * ... (``fastconv.separable``):
    ``factors`` is a ParameterList of (K, C/groups, k_i); ``bias`` (K,) or None. Each factor is
    drawn uniformly so that the kernel's entries have the spread of torch's convolution init."""
    ndim = None

    def __init__(self, in_channels, out_channels, kernel_size, stride=1, padding=0, dilation=1,
                 groups=1, bias=True, padding_mode="zeros", device=None, dtype=None, *,
                 flip=False):
        super().__init__()
        _geometry(self, in_channels, out_channels, kernel_size, stride, padding, dilation, groups)
        self.padding_mode = _check_padding_mode(padding_mode)
        self.flip = bool(flip)
        factory = dict(device=device, dtype=dtype)
        fan_in = self.in_channels // self.groups * math.prod(self.kernel_size)
        # uniform(+-b) has std b/sqrt(3); a product of ndim such factors, std (b/sqrt(3))^ndim,
        # matches the std 1/sqrt(3 fan_in) of torch's init
        bound = math.sqrt(3) * (3 * fan_in) ** (-0.5 / self.ndim)
        self.factors = torch.nn.ParameterList(
            [_uniform((self.out_channels, self.in_channels // self.groups, k), bound, factory)
             for k in self.kernel_size])
        if bias:
            self.bias = _uniform(self.out_channels, 1 / math.sqrt(fan_in), factory)
        else:
            self.register_parameter("bias", None)

    def kernel(self):
        """The full kernel (K, C/groups, *kernel_size) the factors describe (differentiable)."""
        w = self.factors[0]
        for f in list(self.factors)[1:]:
            w = w.unsqueeze(-1) * f.reshape(f.shape[:2] + (1,) * (w.ndim - 2) + f.shape[2:])
        return w

    def forward(self, x):
        return F.separable_conv(x, list(self.factors), self.bias, stride=self.stride,
                                padding=self.padding, dilation=self.dilation, groups=self.groups,
                                flip=self.flip, padding_mode=self.padding_mode)

    def extra_repr(self):
        return conv_repr(self, ("stride", self.stride, True), ("padding", self.padding, True),
                         ("bias", self.bias is not None, True))


class SeparableConv1d(_SeparableConvNd):
    ndim = 1


class SeparableConv2d(_SeparableConvNd):
    ndim = 2


class SeparableConv3d(_SeparableConvNd):
    ndim = 3
