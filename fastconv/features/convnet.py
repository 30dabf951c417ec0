"""A small convolutional network trained end to end with the functional API's three operations.

Each stage is convolution ("same" padding, odd kernels) + bias, a detector (relu or abs) and
non-overlapping average pooling; a softmax layer reads the flattened last stage. The backward pass
is `conv_grad_kernel` (eq. 9.11) and `conv_grad_input` (eq. 9.13): the module needs nothing but
NumPy and `fastconv`. It is the "fully trained" side of the comparisons in this package: the
architecture search (`search.py`) and pretraining (`pretrain.py`) initialise its stages with frozen
kernels, fit the last layer alone, then train everything.
"""
import numpy as np

import fastconv

from ._checks import images as as_images, labels, one_blas_thread, positive_int, real_number
from ._checks import rng as make_rng
from .linear import SoftmaxRegression, softmax_loss

__all__ = ["Stage", "ConvNet", "avg_pool", "avg_pool_grad"]

ACTIVATIONS = ("relu", "abs")


def avg_pool(x, p):
    """Non-overlapping p x p average pooling, the remainder rows and columns dropped."""
    if p == 1:
        return x
    n, c, h, w = x.shape
    return x[:, :, :h // p * p, :w // p * p].reshape(n, c, h // p, p, w // p, p).mean(axis=(3, 5))


def avg_pool_grad(g, p, shape):
    """The adjoint of `avg_pool`: each pooled gradient spread evenly over its p x p cell."""
    if p == 1:
        return g
    gx = np.zeros(shape, dtype=g.dtype)
    n, c, hh, ww = g.shape
    gx[:, :, :hh * p, :ww * p] = np.repeat(np.repeat(g, p, axis=2), p, axis=3) / (p * p)
    return gx


class Stage:
    """One convolution + detector + pooling stage: `n_filters` kernels of `kernel_size` (odd)."""

    def __init__(self, n_filters, kernel_size, pool=1, activation="abs"):
        self.n_filters = positive_int(n_filters, "n_filters")
        self.kernel_size = positive_int(kernel_size, "kernel_size")
        if self.kernel_size % 2 == 0:
            raise ValueError(f"kernel_size must be odd (for 'same' padding), got {kernel_size}")
        self.pool = positive_int(pool, "pool")
        if activation not in ACTIVATIONS:
            raise ValueError(f"activation must be one of {ACTIVATIONS}, got {activation!r}")
        self.activation = activation

    def __repr__(self):
        return (f"Stage({self.n_filters} filters {self.kernel_size}x{self.kernel_size}, "
                f"{self.activation}, pool {self.pool})")


class ConvNet:
    """Stages, then softmax regression on the flattened output. `kernels[i]` and `biases[i]` are
    the stage parameters; set `kernels` from any bank of the right shape before training."""

    def __init__(self, stages, in_channels, n_classes, *, seed=0, init="gaussian"):
        self.stages = list(stages)
        if not self.stages or not all(isinstance(s, Stage) for s in self.stages):
            raise TypeError("stages must be a non-empty list of Stage objects")
        self.n_classes = positive_int(n_classes, "n_classes")
        gen = make_rng(seed)
        self.kernels, self.biases = [], []
        c = positive_int(in_channels, "in_channels")
        for s in self.stages:
            fan_in = c * s.kernel_size ** 2
            self.kernels.append(gen.standard_normal((s.n_filters, c, s.kernel_size, s.kernel_size))
                                * np.sqrt(2.0 / fan_in))
            self.biases.append(np.zeros(s.n_filters))
            c = s.n_filters
        self._gen = gen
        self.head = None           # (W, b) of the softmax layer, shaped at the first fit

    # --- forward and backward ---------------------------------------------------------------
    def _forward(self, x, keep=False):
        cache = []
        for s, w, b in zip(self.stages, self.kernels, self.biases):
            z = fastconv.conv(x, w, b, padding=s.kernel_size // 2)
            a = np.maximum(z, 0) if s.activation == "relu" else np.abs(z)
            y = avg_pool(a, s.pool)
            if keep:
                cache.append((x, z, a.shape))
            x = y
        return x.reshape(x.shape[0], int(np.prod(x.shape[1:]))), cache

    def features(self, images, batch_size=512):
        """The flattened last stage for every image (the input of the softmax layer)."""
        x = as_images(images)
        parts = [self._forward(x[i:i + batch_size])[0] for i in range(0, max(len(x), 1), batch_size)]
        return np.concatenate(parts)

    def _backward(self, gflat, cache):
        grads = []
        g = gflat
        for s, w, (x, z, a_shape) in zip(self.stages[::-1], self.kernels[::-1], cache[::-1]):
            g = avg_pool_grad(g.reshape((a_shape[0], a_shape[1], a_shape[2] // s.pool,
                                         a_shape[3] // s.pool)), s.pool, a_shape)
            gz = g * (z > 0) if s.activation == "relu" else g * np.sign(z)
            pad = s.kernel_size // 2
            grads.append((fastconv.conv_grad_kernel(x, gz, w.shape, padding=pad), gz.sum(axis=(0, 2, 3))))
            if len(grads) < len(self.stages):
                g = fastconv.conv_grad_input(gz, w, x.shape, padding=pad)
        return grads[::-1]

    # --- training -----------------------------------------------------------------------------
    def fit_head(self, images, y, l2=1e-2):
        """The convex step: the softmax layer alone on the frozen stages' features (L-BFGS).
        Stored unstandardised so that `fit` can continue from it."""
        clf = SoftmaxRegression(l2=l2, standardize=True).fit(self.features(images), y)
        W = clf.coef_ / clf.scale_[:, None]
        b = clf.intercept_ - clf.mean_ @ W
        self.head = (np.zeros((W.shape[0], self.n_classes)), np.zeros(self.n_classes))
        self.head[0][:, clf.classes_] = W
        self.head[1][:] = -1e3
        self.head[1][clf.classes_] = b
        return self

    def fit(self, images, y, *, epochs=10, lr=3e-3, batch_size=64, l2=1e-4, train_stages=True,
            seed=0):
        """Adam on the mean cross-entropy (+ l2/2 ||head||^2) over minibatches: every layer when
        `train_stages`, else the head only. Returns the list of per-epoch mean losses."""
        with one_blas_thread():
            return self._fit(images, y, epochs, lr, batch_size, l2, train_stages, seed)

    def _fit(self, images, y, epochs, lr, batch_size, l2, train_stages, seed):
        x = as_images(images)
        y = labels(y, x.shape[0])
        epochs = positive_int(epochs, "epochs")
        batch_size = positive_int(batch_size, "batch_size")
        lr = real_number(lr, "lr", positive=True)
        gen = make_rng(seed)
        if self.head is None:
            d = self.features(x[:1]).shape[1]
            self.head = (gen.standard_normal((d, self.n_classes)) * np.sqrt(1.0 / d),
                         np.zeros(self.n_classes))
        params = list(self.head) + (self.kernels + self.biases if train_stages else [])
        m = [np.zeros_like(p) for p in params]
        v = [np.zeros_like(p) for p in params]
        t, losses = 0, []
        for _ in range(epochs):
            order = gen.permutation(x.shape[0])
            total = 0.0
            for start in range(0, len(order), batch_size):
                idx = order[start:start + batch_size]
                flat, cache = self._forward(x[idx], keep=train_stages)
                loss, gW, gb, gflat = softmax_loss(self.head[0], self.head[1], flat, y[idx], l2)
                grads = [gW, gb]
                if train_stages:
                    stage_grads = self._backward(gflat, cache)
                    grads += [g for g, _ in stage_grads] + [g for _, g in stage_grads]
                t += 1
                for p, g, mi, vi in zip(params, grads, m, v):
                    mi *= 0.9
                    mi += 0.1 * g
                    vi *= 0.999
                    vi += 0.001 * g * g
                    p -= lr * (mi / (1 - 0.9 ** t)) / (np.sqrt(vi / (1 - 0.999 ** t)) + 1e-8)
                total += loss * len(idx)
            losses.append(total / len(order))
        return losses

    def predict(self, images):
        flat = self.features(images)
        return np.argmax(flat @ self.head[0] + self.head[1], axis=1)

    def score(self, images, y):
        return float(np.mean(self.predict(images) == np.asarray(y)))
