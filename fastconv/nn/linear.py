"""Fully connected layers, reshaping and dropout."""
import contextlib

import numpy as np

from .. import _config
from .._validate import positive_int
from ._init import float_dtype, init_bias, init_weight, make_rng
from .module import Module


# Below this many FLOPs a matrix product runs with the BLAS held at one thread: a second BLAS
# thread pool beside fastconv's OpenMP threads, spinning after its work, slowed a training step
# of the digits network by 1.7x (median) on a busy 2-core machine.
SMALL_MATMUL_FLOPS = 2**24


def _blas_for(flops):
    return _config.blas_single_threaded() if flops < SMALL_MATMUL_FLOPS else contextlib.nullcontext()


class Linear(Module):
    """y = x W^T + b, with W (out_features, in_features) as in PyTorch; x (N, ..., in_features)."""

    def __init__(self, in_features, out_features, bias=True, init="default", seed=None,
                 dtype=np.float32):
        super().__init__()
        self.in_features = positive_int(in_features, "in_features")
        self.out_features = positive_int(out_features, "out_features")
        self.dtype = float_dtype(dtype)
        rng = make_rng(seed)
        self.add_parameter("weight", init_weight(rng, (self.out_features, self.in_features),
                                                 self.in_features, self.out_features, self.dtype, init))
        self.has_bias = bool(bias)
        if self.has_bias:
            self.add_parameter("bias", init_bias(rng, (self.out_features,), self.in_features,
                                                 self.dtype, init))

    def forward(self, x):
        x = np.asarray(x)
        if x.ndim < 1 or x.shape[-1] != self.in_features:
            raise ValueError(f"Linear: x must have {self.in_features} features on its last axis, "
                             f"got shape {x.shape}")
        with _blas_for(2 * x.size * self.out_features):
            y = x @ self.weight.T
        if self.has_bias:
            y = y + self.bias
        self._push(x)
        return y

    def backward(self, gy):
        (x,) = self._pop()
        gy = np.asarray(gy)
        g2 = gy.reshape(-1, self.out_features)
        with _blas_for(2 * x.size * self.out_features):
            self.grads["weight"] += g2.T @ x.reshape(-1, self.in_features)
            gx = gy @ self.weight
        if self.has_bias:
            self.grads["bias"] += g2.sum(axis=0)
        return gx

    def extra_repr(self):
        return f"{self.in_features}, {self.out_features}, bias={self.has_bias}"


class Flatten(Module):
    """(N, *rest) -> (N, prod(rest))."""

    def forward(self, x):
        x = np.asarray(x)
        self._push(x.shape)
        return x.reshape(x.shape[0], int(np.prod(x.shape[1:])))

    def backward(self, gy):
        (shape,) = self._pop()
        return np.asarray(gy).reshape(shape)


class Dropout(Module):
    """Inverted dropout: in training, zero each unit with probability p and scale the rest by
    1 / (1 - p); the identity in evaluation. Its own seeded generator makes runs reproducible."""

    def __init__(self, p=0.5, seed=None):
        super().__init__()
        p = float(p)
        if not 0 <= p < 1:
            raise ValueError(f"Dropout: p must be in [0, 1), got {p}")
        self.p = p
        self.seed = seed
        self._rng = make_rng(seed) if seed is not None else np.random.default_rng(
            make_rng(None).integers(2**63))

    def forward(self, x):
        x = np.asarray(x)
        if not self.training or self.p == 0:
            return x
        keep = (self._rng.random(x.shape) >= self.p).astype(x.dtype) / np.asarray(1 - self.p, x.dtype)
        self._push(keep)
        return x * keep

    def backward(self, gy):
        if not self.training or self.p == 0:
            return gy
        (keep,) = self._pop()
        return gy * keep

    def extra_repr(self):
        return f"p={self.p}"
