"""Elementwise nonlinearities (section 9.3's detector stage) and the softmax."""
import numpy as np

from . import _elementwise
from .module import Module


class ReLU(Module):
    """max(0, x); the gradient passes where x > 0."""

    def forward(self, x):
        y, mask = _elementwise.relu(np.asarray(x))
        self._push(mask)
        return y

    def backward(self, gy):
        (mask,) = self._pop()
        return _elementwise.relu_grad(np.asarray(gy), mask)


class LeakyReLU(Module):
    """x where x > 0, negative_slope * x elsewhere."""

    def __init__(self, negative_slope=0.01):
        super().__init__()
        self.negative_slope = float(negative_slope)

    def forward(self, x):
        x = np.asarray(x)
        mask = x > 0
        self._push(mask)
        return np.where(mask, x, x * np.asarray(self.negative_slope, x.dtype))

    def backward(self, gy):
        (mask,) = self._pop()
        gy = np.asarray(gy)
        return np.where(mask, gy, gy * np.asarray(self.negative_slope, gy.dtype))

    def extra_repr(self):
        return f"negative_slope={self.negative_slope}"


class Tanh(Module):
    def forward(self, x):
        y = np.tanh(np.asarray(x))
        self._push(y)
        return y

    def backward(self, gy):
        (y,) = self._pop()
        return gy * (1 - y * y)


def sigmoid(x):
    """The logistic function, without overflow for large |x|."""
    x = np.asarray(x)
    e = np.exp(-np.abs(x))
    return np.where(x >= 0, 1 / (1 + e), e / (1 + e)).astype(np.result_type(x, np.float32), copy=False)


class Sigmoid(Module):
    def forward(self, x):
        y = sigmoid(x)
        self._push(y)
        return y

    def backward(self, gy):
        (y,) = self._pop()
        return gy * y * (1 - y)


def softmax(x, axis=1):
    x = np.asarray(x)
    z = x - x.max(axis=axis, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=axis, keepdims=True)


def log_softmax(x, axis=1):
    x = np.asarray(x)
    z = x - x.max(axis=axis, keepdims=True)
    return z - np.log(np.exp(z).sum(axis=axis, keepdims=True))


class Softmax(Module):
    """Softmax over ``dim`` (the channels by default: per example or per pixel)."""

    def __init__(self, dim=1):
        super().__init__()
        self.dim = int(dim)

    def forward(self, x):
        y = softmax(x, self.dim)
        self._push(y)
        return y

    def backward(self, gy):
        (y,) = self._pop()
        return y * (gy - (gy * y).sum(axis=self.dim, keepdims=True))

    def extra_repr(self):
        return f"dim={self.dim}"


class Identity(Module):
    def forward(self, x):
        return np.asarray(x)

    def backward(self, gy):
        return gy
