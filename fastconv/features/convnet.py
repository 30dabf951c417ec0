"""Small convolutional networks as `fastconv.nn.Sequential` models, first layers set by hand.

A stage (figure 9.7) is `nn.Conv2d` ("same" padding, odd kernels) + a detector (`nn.ReLU` or
`Abs`) + non-overlapping `nn.AvgPool2d`; `nn.Flatten` and `nn.Linear` read the last stage. The
conv kernels can be given (random, Gabor, k-means, pretrained) and frozen. Two ways to learn:

- `fit_head`: the convex step of section 9.9, softmax regression alone (L-BFGS) on the frozen
  stages' features, written into the `nn.Linear` head;
- `train_convnet`: `nn.fit` with `nn.Adam` on every layer not frozen (back-propagation).
"""
from dataclasses import dataclass

import numpy as np

from .. import nn
from .._validate import positive_int, real_number
from ._checks import images as as_images, labels
from ._checks import rng as make_rng
from .linear import SoftmaxRegression

__all__ = ["ACTIVATIONS", "Architecture", "Abs", "convnet", "trainable", "head_features",
           "fit_head", "train_convnet", "score"]

ACTIVATIONS = ("relu", "abs")


@dataclass(frozen=True)
class Architecture:
    """One stage: n_filters kernels of kernel_size x kernel_size (odd), a detector, pool x pool
    average pooling (1: none)."""
    kernel_size: int
    n_filters: int
    pool: int = 1
    activation: str = "abs"

    def __post_init__(self):
        for name in ("kernel_size", "n_filters", "pool"):
            positive_int(getattr(self, name), name)
        if self.kernel_size % 2 == 0:
            raise ValueError(f"kernel_size must be odd (for 'same' padding), got {self.kernel_size}")
        if self.activation not in ACTIVATIONS:
            raise ValueError(f"activation must be one of {ACTIVATIONS}, got {self.activation!r}")

    def __str__(self):
        return f"{self.n_filters:>3} filters {self.kernel_size}x{self.kernel_size}, pool {self.pool}"


class Abs(nn.Module):
    """|x|, the absolute-value rectification of Jarrett et al. (2009); the gradient is sign(x)."""

    def forward(self, x):
        x = np.asarray(x)
        self._push(np.sign(x))
        return np.abs(x)

    def backward(self, gy):
        (sign,) = self._pop()
        return np.asarray(gy) * sign


def architectures(architecture):
    """One Architecture or a non-empty sequence of them, as a list."""
    archs = [architecture] if isinstance(architecture, Architecture) else list(architecture)
    if not archs or not all(isinstance(a, Architecture) for a in archs):
        raise TypeError(f"architecture must be an Architecture or a non-empty list of them, "
                        f"got {architecture!r}")
    return archs


def conv_layer(arch, in_channels, seed, dtype):
    """The stage's convolution: He-initialised kernels, zero biases, 'same' padding."""
    return nn.Conv2d(in_channels, arch.n_filters, arch.kernel_size, padding=arch.kernel_size // 2,
                     init="he", seed=seed, dtype=dtype)


def stage_layers(arch, conv):
    """conv, detector, pooling: the layers of one stage."""
    layers = [conv, nn.ReLU() if arch.activation == "relu" else Abs()]
    return layers + ([nn.AvgPool2d(arch.pool)] if arch.pool > 1 else [])


def convnet(architecture, in_channels, n_classes, input_size, *, kernels=None, biases=None,
            freeze=False, seed=0, dtype=np.float32):
    """An `nn.Sequential`: a stage per Architecture, then Flatten and a Linear layer to
    `n_classes` logits, for inputs of spatial size `input_size` (h, w).

    `kernels[i]` (None or a (n_filters, C, k, k) bank) and `biases[i]` replace stage i's initial
    kernels and biases; `freeze=True` marks every conv layer frozen (`trainable` leaves it out),
    so that only the head learns."""
    archs = architectures(architecture)
    c = positive_int(in_channels, "in_channels")
    size = tuple(positive_int(s, "input_size") for s in np.atleast_1d(input_size))
    if len(size) != 2:
        raise ValueError(f"input_size must be (h, w), got {input_size!r}")
    gen = make_rng(seed)
    layers = []
    for i, arch in enumerate(archs):
        conv = conv_layer(arch, c, gen, dtype)
        for name, given in (("weight", kernels), ("bias", biases)):
            if given is not None and given[i] is not None:
                setattr(conv, name, given[i])          # a copy, its shape checked
        conv.frozen = bool(freeze)
        layers += stage_layers(arch, conv)
        size = tuple(s // arch.pool for s in size)
        if min(size) < 1:
            raise ValueError(f"input_size {tuple(input_size)} is too small for the pooling of "
                             f"{archs}")
        c = arch.n_filters
    return nn.Sequential(layers + [nn.Flatten(),
                                   nn.Linear(c * size[0] * size[1], positive_int(n_classes, "n_classes"),
                                             seed=gen, dtype=dtype)])


def trainable(model):
    """(parameter, gradient) pairs of the layers not marked frozen: what the optimizer updates."""
    return [pair for m in model.modules() if not m.children() and not getattr(m, "frozen", False)
            for pair in m.param_groups()]


def _inputs(model, images):
    """(N, H, W) or (N, C, H, W) images in the dtype of the model's first layer."""
    return as_images(images).astype(model[0].weight.dtype, copy=False)


def head_features(model, images, batch_size=512):
    """The flattened last stage for every image: the input of the head (evaluation mode)."""
    return nn.predict(nn.Sequential(list(model)[:-1]), _inputs(model, images), batch_size)


def fit_head(model, images, y, l2=1e-2):
    """The convex step: softmax regression alone (L-BFGS) on the features of the stages as they
    are, written, unstandardised, into the Linear head (so training can go on from it). Classes
    absent from y get a bias of -1000. Returns the fitted SoftmaxRegression."""
    x = _inputs(model, images)
    y = labels(y, x.shape[0])
    clf = SoftmaxRegression(l2=real_number(l2, "l2", non_negative=True)).fit(head_features(model, x), y)
    W = clf.coef_ / clf.scale_[:, None]
    head = model[-1]
    weight = np.zeros((head.out_features, head.in_features))
    weight[clf.classes_] = W.T
    bias = np.full(head.out_features, -1e3)
    bias[clf.classes_] = clf.intercept_ - clf.mean_ @ W
    head.weight, head.bias = weight, bias
    return clf


def train_convnet(model, images, y, *, epochs=10, lr=3e-3, batch_size=64, seed=0, validation=None):
    """Back-propagation: `nn.fit` with `nn.Adam` on the layers not frozen and the mean
    cross-entropy. Returns the `nn.History` (per-epoch loss and accuracy)."""
    x = _inputs(model, images)
    y = labels(y, x.shape[0])
    if validation is not None:
        validation = (_inputs(model, validation[0]), validation[1])
    return nn.fit(model, (x, y), epochs=positive_int(epochs, "epochs"),
                  batch_size=positive_int(batch_size, "batch_size"),
                  optimizer=nn.Adam(trainable(model), lr=real_number(lr, "lr", positive=True)),
                  validation=validation, seed=seed, progress=False)


def score(model, images, y, batch_size=512):
    """Accuracy: the fraction of images whose largest logit is at their label."""
    return nn.accuracy(model, _inputs(model, images), np.asarray(y), batch_size)
