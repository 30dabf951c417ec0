"""Fully connected layers, reshaping and dropout.

The matrix products run on fastconv's own thread pool (`_matmul`): NumPy's matmul would wake
its BLAS's pool, whose workers then spin beside the convolutions' OpenMP threads (a CIFAR-sized
training step on two threads: 182 ms against 58 ms on one pool; see src/_matmul.pyx).
"""
import numpy as np

from .._validate import positive_int
from . import _elementwise
from ._init import float_dtype, init_bias, init_weight, make_rng
from ._matmul import matmul
from .module import Module


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
        x2 = x.reshape(-1, self.in_features)
        y = matmul(x2, self.weight.T).reshape(x.shape[:-1] + (self.out_features,))
        if self.has_bias:
            y += self.bias          # (y is float64 whenever the bias is)
        self._push(x)
        return y

    def backward(self, gy):
        (x,) = self._pop()
        gy = np.asarray(gy)
        g2 = gy.reshape(-1, self.out_features)
        x2 = x.reshape(-1, self.in_features)
        grad = self.grads["weight"]
        if g2.dtype == grad.dtype:
            matmul(g2.T, x2, out=grad, accumulate=True)
        else:
            grad += g2.T @ x2
        gx = matmul(g2, self.weight).reshape(gy.shape[:-1] + (self.in_features,))
        if self.has_bias:
            _elementwise.add_bias_grad(self.grads["bias"], g2)
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
