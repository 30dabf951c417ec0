"""Greedy layer-wise unsupervised pretraining with convolutional autoencoders (section 9.9).

Each layer is a denoising autoencoder, an `nn.Sequential` of an encoder `nn.Conv2d`, its
detector, and a decoder `nn.ConvTranspose2d` (eq. 9.14: multiplication by the transpose of a
convolution matrix): it reads a corrupted input (a random fraction `noise` of its entries zeroed)
and is trained with `nn.MSELoss` and `nn.Adam` to give back the clean one. Layers are trained one
at a time, each on the pooled output of the frozen layers below it; the encoders then become the
first layers of a `convnet` whose head is fitted alone (convex), after which every layer is
fine-tuned with back-propagation.
"""
import numpy as np

from .. import nn
from .._validate import positive_int, real_number
from ._checks import images as as_images
from ._checks import rng as make_rng
from .convnet import (architectures, conv_layer, convnet, fit_head, score, stage_layers,
                      train_convnet)

__all__ = ["ConvAutoencoder", "pretrain_stack", "pretrained_convnet"]


class ConvAutoencoder(nn.Sequential):
    """One convolutional denoising autoencoder layer: encoder, detector, decoder."""

    def __init__(self, architecture, in_channels, *, noise=0.3, seed=0, dtype=np.float32):
        (arch,) = architectures(architecture)
        gen = make_rng(seed)
        c, k = positive_int(in_channels, "in_channels"), arch.kernel_size
        conv, detector = stage_layers(arch, conv_layer(arch, c, gen, dtype))[:2]
        super().__init__(conv, detector, nn.ConvTranspose2d(arch.n_filters, c, k, padding=k // 2,
                                                            seed=gen, dtype=dtype))
        self.architecture = arch
        self.noise = real_number(noise, "noise", non_negative=True)
        if self.noise >= 1:
            raise ValueError(f"noise must be in [0, 1), got {noise}")
        self._gen = gen

    @property
    def encoder(self):
        return self[0]

    @property
    def decoder(self):
        return self[2]

    def _inputs(self, images):
        return as_images(images).astype(self.encoder.weight.dtype, copy=False)

    def encode(self, images):
        """The detector's output h = act(conv(x, W) + b) (evaluation mode)."""
        return nn.predict(nn.Sequential(self[0], self[1]), self._inputs(images))

    def reconstruction_error(self, images):
        """Mean squared error per pixel of reconstructing the (uncorrupted) images."""
        x = self._inputs(images)
        return nn.evaluate(self, x, x, loss=nn.MSELoss())["loss"]

    def fit(self, images, *, epochs=5, lr=3e-3, batch_size=64):
        """Adam on the denoising reconstruction loss, a fresh corruption each epoch; returns the
        per-epoch mean losses."""
        x = self._inputs(images)
        optimizer = nn.Adam(self, lr=real_number(lr, "lr", positive=True))
        loss = nn.MSELoss()
        history = []
        for _ in range(positive_int(epochs, "epochs")):
            corrupted = x * (self._gen.random(x.shape) >= self.noise)
            h = nn.fit(self, (corrupted, x), epochs=1, batch_size=batch_size, loss=loss,
                       optimizer=optimizer, seed=self._gen, progress=False)
            history.append(h.loss[0])
        return history


def pretrain_stack(architecture, images, *, epochs=5, noise=0.3, seed=0, dtype=np.float32):
    """Greedy: train one autoencoder per stage, each on the frozen, pooled features of the ones
    below. Returns the list of trained ConvAutoencoder."""
    x = as_images(images).astype(dtype)
    gen = make_rng(seed)
    layers = []
    for arch in architectures(architecture):
        ae = ConvAutoencoder(arch, x.shape[1], noise=noise, seed=gen, dtype=dtype)
        ae.fit(x, epochs=epochs)
        layers.append(ae)
        x = nn.predict(nn.Sequential(stage_layers(arch, ae.encoder)), x)
    return layers


def pretrained_convnet(architecture, images, y, n_classes, *, epochs=5, fine_tune_epochs=5,
                       noise=0.3, seed=0, dtype=np.float32):
    """Pretrain the stack, copy the encoders into the first layers of a `convnet`, fit its head
    alone, then fine-tune every layer. Returns (net, layers, accuracy_history) where
    accuracy_history holds the training accuracy after the convex fit and after fine-tuning."""
    archs = architectures(architecture)
    x = as_images(images)
    layers = pretrain_stack(archs, x, epochs=epochs, noise=noise, seed=seed, dtype=dtype)
    net = convnet(archs, x.shape[1], n_classes, x.shape[2:], seed=seed, dtype=dtype,
                  kernels=[ae.encoder.weight for ae in layers],
                  biases=[ae.encoder.bias for ae in layers])
    fit_head(net, x, y)
    history = [score(net, x, y)]
    if fine_tune_epochs:
        train_convnet(net, x, y, epochs=fine_tune_epochs, seed=seed)
    return net, layers, history + [score(net, x, y)]
