"""Pooling layers (section 9.3) over ``fastconv.pooling``: max, average, Lp, distance-weighted,
adaptive (figure 9.11), global and across channels (maxout)."""
import numpy as np

import fastconv.pooling as P
from .._validate import positive_int, real_array, result_dtype
from ._init import AcceptsUnbatched, as_input
from .module import Module


def _spatial(value):
    """Ints, or lists from JSON, as they go to the pooling functions (tuples)."""
    if isinstance(value, list):
        return tuple(_spatial(v) for v in value)
    return value


class _Pool(AcceptsUnbatched, Module):
    ndim = None
    _GEOMETRY = ()      # the arguments that go to the pooling functions as keywords

    def _arguments(self, **arguments):
        """Keep the constructor's arguments: ceil_mode and count_include_pad as bools, the others
        as the pooling functions take them."""
        for name, value in arguments.items():
            setattr(self, name, bool(value) if name in ("ceil_mode", "count_include_pad")
                    else _spatial(value))

    def _geometry(self):
        return {name: getattr(self, name) for name in self._GEOMETRY}

    def _input(self, x):
        return as_input(x, self.ndim, None, type(self).__name__)

    def _nd(self, value):
        """An int argument as one per spatial axis: the pooling functions take a tuple as the
        number of spatial axes, which an int leaves ambiguous for a 3-D array."""
        return value if isinstance(value, tuple) else (value,) * self.ndim


class _PreparedPoolNd(_Pool):
    """Max and average pooling run on prepared pools (fastconv.pooling.plan): the checks, window
    geometry and tables are done once per input shape and dtype, and kept in the layer (a few,
    for a layer that sees several shapes), so a training step's forward and backward only run
    the kernels. The backward gets the plan from the forward's cache entry."""
    kind = None

    def _plan(self, shape, dtype):
        geometry = self._geometry()
        key = (shape, dtype, self.kernel_size, *geometry.values())   # attributes may be reset
        return self._kept_plan(key, lambda: P.plan(self.kind, shape, self._nd(self.kernel_size),
                                                   dtype=dtype, **geometry))

    def extra_repr(self):
        return f"kernel_size={self.kernel_size}, stride={self.stride}, padding={self.padding}"

    def _forward_plan(self, x):
        return self._plan(x.shape, result_dtype(x))

    def _backward_plan(self, plan, gy):
        """gy as an array, and the plan to run it on: the forward's, or, for a gy of a wider
        dtype (float64 into a float32 layer), the same pool in that dtype, as the pooling
        functions would compute it."""
        gy = real_array(gy, "gy")
        dtype = result_dtype(gy, plan)              # the plan's dtype stands for x's
        return gy, (plan if dtype == plan.dtype else self._plan(plan.x_shape, dtype))


class _MaxPoolNd(_PreparedPoolNd):
    kind = "max"
    _GEOMETRY = ("stride", "padding", "dilation", "ceil_mode")

    def __init__(self, kernel_size, stride=None, padding=0, dilation=1, ceil_mode=False):
        super().__init__()
        self._arguments(kernel_size=kernel_size, stride=stride, padding=padding,
                        dilation=dilation, ceil_mode=ceil_mode)

    def forward(self, x):
        x = self._input(x)
        plan = self._forward_plan(x)
        if not self.training:
            return plan.forward(x)
        y, indices = plan.forward(x, return_indices=True)
        self._push(plan, indices)
        return y

    def backward(self, gy):
        """The forward's indices route gy: no maxima are searched again, and their range is
        checked inside the scatter, not by a pass of its own."""
        plan, indices = self._pop()
        gy, plan = self._backward_plan(plan, gy)
        return plan.grad_input(gy, indices=indices)


class MaxPool1d(_MaxPoolNd):
    ndim = 1


class MaxPool2d(_MaxPoolNd):
    ndim = 2


class MaxPool3d(_MaxPoolNd):
    ndim = 3


class _AvgPoolNd(_PreparedPoolNd):
    kind = "avg"
    _GEOMETRY = ("stride", "padding", "ceil_mode", "count_include_pad")

    def __init__(self, kernel_size, stride=None, padding=0, ceil_mode=False, count_include_pad=True):
        super().__init__()
        self._arguments(kernel_size=kernel_size, stride=stride, padding=padding,
                        ceil_mode=ceil_mode, count_include_pad=count_include_pad)

    def forward(self, x):
        x = self._input(x)
        plan = self._forward_plan(x)
        self._push(plan)
        return plan.forward(x)

    def backward(self, gy):
        (plan,) = self._pop()
        gy, plan = self._backward_plan(plan, gy)
        return plan.grad_input(gy)


class AvgPool1d(_AvgPoolNd):
    ndim = 1


class AvgPool2d(_AvgPoolNd):
    ndim = 2


class AvgPool3d(_AvgPoolNd):
    ndim = 3


class _LPPoolNd(_Pool):
    """(sum over the window of |x|^p)^(1/p): p = 1 is sum pooling, p -> inf max pooling."""
    _GEOMETRY = ("stride", "padding", "ceil_mode")

    def __init__(self, p, kernel_size, stride=None, padding=0, ceil_mode=False):
        super().__init__()
        self.p = float(p)
        self._arguments(kernel_size=kernel_size, stride=stride, padding=padding,
                        ceil_mode=ceil_mode)

    def forward(self, x):
        x = self._input(x)
        self._push(x)
        return P.lp_pool(x, self.p, self._nd(self.kernel_size), **self._geometry())

    def backward(self, gy):
        (x,) = self._pop()
        return P.lp_pool_grad_input(gy, x, self.p, self._nd(self.kernel_size), **self._geometry())

    def extra_repr(self):
        return f"p={self.p}, kernel_size={self.kernel_size}, stride={self.stride}"


class LPPool1d(_LPPoolNd):
    ndim = 1


class LPPool2d(_LPPoolNd):
    ndim = 2


class LPPool3d(_LPPoolNd):
    ndim = 3


class _WeightedAvgPoolNd(_Pool):
    """Average weighted by a Gaussian of the distance from the window's centre."""
    _GEOMETRY = ("stride", "padding", "ceil_mode", "sigma")

    def __init__(self, kernel_size, stride=None, padding=0, ceil_mode=False, sigma=None):
        super().__init__()
        self._arguments(kernel_size=kernel_size, stride=stride, padding=padding,
                        ceil_mode=ceil_mode, sigma=sigma)

    def forward(self, x):
        x = self._input(x)
        self._push(x.shape)
        return P.weighted_avg_pool(x, self._nd(self.kernel_size), **self._geometry())

    def backward(self, gy):
        (shape,) = self._pop()
        return P.weighted_avg_pool_grad_input(gy, shape, self._nd(self.kernel_size), **self._geometry())


class WeightedAvgPool1d(_WeightedAvgPoolNd):
    ndim = 1


class WeightedAvgPool2d(_WeightedAvgPoolNd):
    ndim = 2


class WeightedAvgPool3d(_WeightedAvgPoolNd):
    ndim = 3


class _AdaptivePoolNd(_Pool):
    """Pooling over output_size regions whatever the input size (figure 9.11)."""

    def __init__(self, output_size):
        super().__init__()
        self._arguments(output_size=output_size)

    def extra_repr(self):
        return f"output_size={self.output_size}"


class _AdaptiveMaxPoolNd(_AdaptivePoolNd):
    """Max over output_size regions whatever the input size (figure 9.11)."""

    def forward(self, x):
        x = self._input(x)
        if not self.training:
            return P.adaptive_max_pool(x, self._nd(self.output_size))
        y, indices = P.adaptive_max_pool(x, self._nd(self.output_size), return_indices=True)
        self._push(x, indices)
        return y

    def backward(self, gy):
        x, indices = self._pop()
        return P.adaptive_max_pool_grad_input(gy, x, self._nd(self.output_size), indices=indices)


class AdaptiveMaxPool1d(_AdaptiveMaxPoolNd):
    ndim = 1


class AdaptiveMaxPool2d(_AdaptiveMaxPoolNd):
    ndim = 2


class AdaptiveMaxPool3d(_AdaptiveMaxPoolNd):
    ndim = 3


class _AdaptiveAvgPoolNd(_AdaptivePoolNd):
    """Average over output_size regions whatever the input size (figure 9.11)."""

    def forward(self, x):
        x = self._input(x)
        self._push(x.shape)
        return P.adaptive_avg_pool(x, self._nd(self.output_size))

    def backward(self, gy):
        (shape,) = self._pop()
        return P.adaptive_avg_pool_grad_input(gy, shape, self._nd(self.output_size))


class AdaptiveAvgPool1d(_AdaptiveAvgPoolNd):
    ndim = 1


class AdaptiveAvgPool2d(_AdaptiveAvgPoolNd):
    ndim = 2


class AdaptiveAvgPool3d(_AdaptiveAvgPoolNd):
    ndim = 3


class GlobalAvgPool(Module):
    """(N, C, *spatial) -> (N, C): the mean of each channel, any number of spatial axes."""

    def forward(self, x):
        x = np.asarray(x)
        self._push(x.shape)
        return P.global_avg_pool(x)

    def backward(self, gy):
        (shape,) = self._pop()
        return P.global_avg_pool_grad_input(gy, shape)


class GlobalMaxPool(Module):
    """(N, C, *spatial) -> (N, C): the maximum of each channel."""

    def forward(self, x):
        x = np.asarray(x)
        self._push(x)
        return P.global_max_pool(x)

    def backward(self, gy):
        (x,) = self._pop()
        return P.global_max_pool_grad_input(gy, x)


class ChannelPool(Module):
    """Pooling across groups of group_size consecutive channels: (N, C, ...) -> (N, C/g, ...)."""

    def __init__(self, group_size, mode="max"):
        super().__init__()
        self.group_size = positive_int(group_size, "group_size")
        self.mode = mode

    def forward(self, x):
        x = np.asarray(x)
        self._push(x)
        return P.channel_pool(x, self.group_size, mode=self.mode)

    def backward(self, gy):
        (x,) = self._pop()
        return P.channel_pool_grad_input(gy, x, self.group_size, mode=self.mode)

    def extra_repr(self):
        return f"group_size={self.group_size}, mode={self.mode!r}"


class Maxout(ChannelPool):
    """Maxout units (section 9.3): the maximum over groups of group_size channels."""

    def __init__(self, group_size):
        super().__init__(group_size, mode="max")
