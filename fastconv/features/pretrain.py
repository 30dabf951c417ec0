"""Greedy layer-wise unsupervised pretraining with convolutional autoencoders (section 9.9).

Each layer is a denoising autoencoder: the encoder h = act(conv(x~, W) + b) reads a corrupted
input x~ (a random fraction `noise` of its entries zeroed), the decoder x^ = conv_transpose(h, V)
+ c (eq. 9.14: multiplication by the transpose of V's convolution matrix) reconstructs the clean
x, and the loss is the mean squared error. Layers are trained one at a time, each on the pooled
output of the frozen layers below it; the stack then initialises a `ConvNet` whose last layer is
fitted alone (convex), after which every layer is fine-tuned with back-propagation.

Gradients, with r = (x^ - x) / N: dV = conv_grad_kernel(r, h) (x^ is linear in V through the
transpose), dh = conv(r, V), and through the encoder dW = conv_grad_kernel(x~, dh * act'(z)).
"""
import numpy as np

import fastconv

from ._checks import images as as_images, positive_int, real_number, rng as make_rng
from .convnet import ConvNet, Stage, avg_pool

__all__ = ["ConvAutoencoder", "pretrain_stack", "pretrained_convnet"]


class ConvAutoencoder:
    """One convolutional denoising autoencoder layer (odd kernel, 'same' padding)."""

    def __init__(self, stage, in_channels, *, noise=0.3, seed=0):
        if not isinstance(stage, Stage):
            raise TypeError(f"stage must be a Stage, got {type(stage).__name__}")
        self.stage = stage
        self.noise = real_number(noise, "noise", non_negative=True)
        if self.noise >= 1:
            raise ValueError(f"noise must be in [0, 1), got {noise}")
        self._gen = make_rng(seed)
        c, k, kk = positive_int(in_channels, "in_channels"), stage.n_filters, stage.kernel_size
        scale = np.sqrt(1.0 / (c * kk * kk))
        self.W = self._gen.standard_normal((k, c, kk, kk)) * scale
        self.b = np.zeros(k)
        self.V = self._gen.standard_normal((k, c, kk, kk)) * scale
        self.c = np.zeros(c)

    def encode(self, x):
        z = fastconv.conv(x, self.W, self.b, padding=self.stage.kernel_size // 2)
        return z, (np.maximum(z, 0) if self.stage.activation == "relu" else np.abs(z))

    def decode(self, h):
        return fastconv.conv_transpose(h, self.V, self.c, padding=self.stage.kernel_size // 2)

    def reconstruction_error(self, x):
        """Mean squared error per example of reconstructing x (uncorrupted)."""
        x = as_images(x)
        return float(np.sum((self.decode(self.encode(x)[1]) - x) ** 2) / (2 * x.shape[0]))

    def loss_and_grads(self, x, corrupted):
        pad = self.stage.kernel_size // 2
        z, h = self.encode(corrupted)
        r = (self.decode(h) - x) / x.shape[0]
        loss = 0.5 * float(np.sum(r * r)) * x.shape[0]
        gV = fastconv.conv_grad_kernel(r, h, self.V.shape, padding=pad)
        gh = fastconv.conv(r, self.V, padding=pad)
        gz = gh * (z > 0) if self.stage.activation == "relu" else gh * np.sign(z)
        gW = fastconv.conv_grad_kernel(corrupted, gz, self.W.shape, padding=pad)
        return loss, [gW, gz.sum(axis=(0, 2, 3)), gV, r.sum(axis=(0, 2, 3))]

    def fit(self, images, *, epochs=5, lr=3e-3, batch_size=64):
        """Adam on the denoising reconstruction loss; returns the per-epoch mean losses."""
        x = as_images(images)
        epochs = positive_int(epochs, "epochs")
        params = [self.W, self.b, self.V, self.c]
        m = [np.zeros_like(p) for p in params]
        v = [np.zeros_like(p) for p in params]
        t, history = 0, []
        for _ in range(epochs):
            order = self._gen.permutation(x.shape[0])
            total = 0.0
            for start in range(0, len(order), batch_size):
                xb = x[order[start:start + batch_size]]
                corrupted = xb * (self._gen.random(xb.shape) >= self.noise)
                loss, grads = self.loss_and_grads(xb, corrupted)
                t += 1
                for p, g, mi, vi in zip(params, grads, m, v):
                    mi[...] = 0.9 * mi + 0.1 * g
                    vi[...] = 0.999 * vi + 0.001 * g * g
                    p -= lr * (mi / (1 - 0.9 ** t)) / (np.sqrt(vi / (1 - 0.999 ** t)) + 1e-8)
                total += loss
            history.append(total / x.shape[0])
        return history


def pretrain_stack(stages, images, *, epochs=5, noise=0.3, seed=0):
    """Greedy: train one autoencoder per stage, each on the frozen, pooled features of the ones
    below. Returns the list of trained ConvAutoencoder."""
    x = as_images(images)
    gen = make_rng(seed)
    layers = []
    for stage in stages:
        ae = ConvAutoencoder(stage, x.shape[1], noise=noise, seed=gen)
        ae.fit(x, epochs=epochs)
        layers.append(ae)
        x = avg_pool(ae.encode(x)[1], stage.pool)
    return layers


def pretrained_convnet(stages, images, y, n_classes, *, epochs=5, fine_tune_epochs=5, noise=0.3,
                       seed=0):
    """Pretrain the stack, copy the encoders into a ConvNet, fit its last layer alone, then
    fine-tune every layer. Returns (net, layers, accuracy_history) where accuracy_history holds
    the training accuracy after the convex fit and after fine-tuning."""
    x = as_images(images)
    layers = pretrain_stack(stages, x, epochs=epochs, noise=noise, seed=seed)
    net = ConvNet(stages, x.shape[1], n_classes, seed=seed)
    for i, ae in enumerate(layers):
        net.kernels[i] = ae.W.copy()
        net.biases[i] = ae.b.copy()
    net.fit_head(x, y)
    before = net.score(x, y)
    if fine_tune_epochs:
        net.fit(x, y, epochs=fine_tune_epochs, seed=seed)
    return net, layers, [before, net.score(x, y)]
