"""Batch normalisation over the batch and spatial axes, per channel."""
import numpy as np

from .._validate import positive_int
from ._init import float_dtype, reserve
from .module import Module


class _BatchNorm(Module):
    ndim = None

    def __init__(self, num_features, eps=1e-5, momentum=0.1, affine=True, dtype=np.float32):
        super().__init__()
        self.num_features = positive_int(num_features, "num_features")
        self.eps = float(eps)
        self.momentum = float(momentum)
        self.affine = bool(affine)
        self.dtype = float_dtype(dtype)
        reserve(((4 if self.affine else 2) * self.num_features + 1,),
                f"{type(self).__name__}({self.num_features})'s parameters and statistics")
        if self.affine:
            self.add_parameter("weight", np.ones(self.num_features, self.dtype))
            self.add_parameter("bias", np.zeros(self.num_features, self.dtype))
        self.add_buffer("running_mean", np.zeros(self.num_features, self.dtype))
        self.add_buffer("running_var", np.ones(self.num_features, self.dtype))
        self.add_buffer("num_batches_tracked", np.zeros((), np.int64))

    def _shape(self, x):
        if x.ndim not in self.ndim or x.shape[1] != self.num_features:
            dims = " or ".join(str(d) for d in self.ndim)
            raise ValueError(f"{type(self).__name__}: x must have {dims} dimensions with "
                             f"{self.num_features} channels on axis 1, got shape {x.shape}")
        return (1, -1) + (1,) * (x.ndim - 2)

    def forward(self, x):
        x = np.asarray(x)
        shape = self._shape(x)
        axes = (0,) + tuple(range(2, x.ndim))
        if self.training:
            count = x.size // self.num_features
            if count < 2:
                raise ValueError(f"{type(self).__name__}: training needs more than one value per "
                                 f"channel, got x of shape {x.shape}")
            mean = x.mean(axis=axes)
            var = x.var(axis=axes)
            m = self.momentum
            self.running_mean[...] = (1 - m) * self.running_mean + m * mean
            self.running_var[...] = (1 - m) * self.running_var + m * var * (count / (count - 1))
            self.num_batches_tracked[...] += 1
        else:
            mean, var = self.running_mean, self.running_var
        inv_std = 1.0 / np.sqrt(var + self.eps)
        xhat = (x - mean.reshape(shape)) * inv_std.reshape(shape)
        y = xhat * self.weight.reshape(shape) + self.bias.reshape(shape) if self.affine else xhat
        self._push(xhat, inv_std, shape, axes)
        return y.astype(np.result_type(x, self.dtype), copy=False)

    def backward(self, gy):
        xhat, inv_std, shape, axes = self._pop()
        gy = np.asarray(gy)
        if self.affine:
            self.grads["weight"] += (gy * xhat).sum(axis=axes)
            self.grads["bias"] += gy.sum(axis=axes)
            gxhat = gy * self.weight.reshape(shape)
        else:
            gxhat = gy
        count = gy.size // self.num_features
        mean_g = gxhat.sum(axis=axes, keepdims=True) / count
        mean_gx = (gxhat * xhat).sum(axis=axes, keepdims=True) / count
        return (gxhat - mean_g - xhat * mean_gx) * inv_std.reshape(shape)

    def extra_repr(self):
        return f"{self.num_features}, eps={self.eps}, momentum={self.momentum}, affine={self.affine}"


class BatchNorm1d(_BatchNorm):
    """Over (N, C) or (N, C, L)."""
    ndim = (2, 3)


class BatchNorm2d(_BatchNorm):
    """Over (N, C, H, W)."""
    ndim = (4,)


class BatchNorm3d(_BatchNorm):
    """Over (N, C, D, H, W)."""
    ndim = (5,)
