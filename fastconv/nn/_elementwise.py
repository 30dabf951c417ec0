"""The layers' element-wise passes on fastconv's compiled loops (src/_elementwise.pyx says why):
a ReLU and its mask in one pass, its gradient in one, a bias's gradient (the output gradient
summed over the batch and space) in one. Each falls back to NumPy for what the loops do not take
(other dtypes, non-contiguous or mismatched arrays), with the same results.
"""
import numpy as np

from .. import _aligned, _pooling_plan
from .._lazy import LazyModule

_elementwise = LazyModule("fastconv._elementwise")
_FLOATS = (np.dtype(np.float32), np.dtype(np.float64))
# Below this many elements one thread: waking the others costs more than the pass (a LeNet's
# activations, 32K-130K values, take 10-20 us on one).
PARALLEL_ELEMENTS = 1 << 19


def _threads(n):
    return 1 if n < PARALLEL_ELEMENTS else _pooling_plan._threads(n)


def _compiled(a):
    return type(a) is np.ndarray and a.dtype in _FLOATS and a.flags.c_contiguous


def relu(x):
    """(max(x, 0) as np.maximum gives it, the mask x > 0)."""
    if not _compiled(x):
        return np.maximum(x, 0), x > 0
    y = _aligned.empty(x.shape, x.dtype)
    mask = np.empty(x.shape, np.bool_)
    _elementwise.relu_forward(x.reshape(-1), y.reshape(-1), mask.reshape(-1).view(np.uint8),
                              _threads(x.size))
    return y, mask


def relu_grad(gy, mask):
    """gy where mask, else 0 (NaN and Inf of gy dropped where the mask is off)."""
    if not (_compiled(gy) and gy.shape == mask.shape and mask.flags.c_contiguous
            and mask.dtype == np.bool_):
        return np.where(mask, gy, 0).astype(np.result_type(gy), copy=False)
    gx = _aligned.empty(gy.shape, gy.dtype)
    _elementwise.relu_backward(gy.reshape(-1), mask.reshape(-1).view(np.uint8), gx.reshape(-1),
                               _threads(gy.size))
    return gx


def add_bias_grad(grad, gy):
    """grad += gy summed over every axis but axis 1 (the channels; gy (N, C, ...) or (N, C))."""
    if not (_compiled(gy) and gy.ndim >= 2 and _compiled(grad) and grad.dtype == gy.dtype
            and grad.shape == (gy.shape[1],)):
        grad += gy.sum(axis=(0,) + tuple(range(2, gy.ndim)))
        return
    n, c = gy.shape[:2]
    _elementwise.channel_sums(gy.reshape(-1), grad, n, c, gy.size // max(1, n * c), True,
                              _threads(gy.size) if c > 1 else 1)
