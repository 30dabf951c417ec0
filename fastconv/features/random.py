"""Random filters (section 9.9): kernels that are never trained.

Jarrett et al. (2009) and Saxe et al. (2011) found that random convolution kernels followed by
rectification and pooling are often surprisingly good features, and that how well an architecture
does with random kernels predicts how well it does when trained: the basis of the cheap search in
`fastconv.features.search`.
"""
import math

import numpy as np

from .._validate import positive_int, real_number
from ._checks import kernel_size, rng as make_rng
from .gabor import _evaluate, _grid, normalize_kernels

__all__ = ["DISTRIBUTIONS", "random_filters"]

DISTRIBUTIONS = ("gaussian", "uniform", "ternary", "sparse", "gabor")


def random_filters(n, channels, size, distribution="gaussian", *, seed=None, normalize=True,
                   density=0.25, dtype=np.float64):
    """`n` random kernels of shape (channels, h, w): a (n, channels, h, w) bank.

    distribution:
      "gaussian"  independent N(0, 1) entries;
      "uniform"   independent U(-1, 1) entries;
      "ternary"   entries -1, 0, +1 with probabilities 1/3 each;
      "sparse"    N(0, 1) entries kept with probability `density`, else 0 (at least one kept);
      "gabor"     Gabor functions (eq. 9.16) with random orientation, phase, frequency, envelope
                  and centre, the same on every channel with a random per-channel gain.
    `normalize=True` makes each kernel zero-mean (over all its entries) with unit L2 norm.
    `seed`: an int, None or a numpy Generator.
    """
    n = positive_int(n, "n")
    channels = positive_int(channels, "channels")
    h, w = kernel_size(size)
    if distribution not in DISTRIBUTIONS:
        raise ValueError(f"distribution must be one of {DISTRIBUTIONS}, got {distribution!r}")
    density = real_number(density, "density", positive=True)
    if density > 1:
        raise ValueError(f"density must be in (0, 1], got {density}")
    dtype = np.dtype(dtype)
    if dtype not in (np.float32, np.float64):
        raise TypeError(f"dtype must be float32 or float64, got {dtype}")
    gen = make_rng(seed)
    shape = (n, channels, h, w)
    if distribution == "gaussian":
        bank = gen.standard_normal(shape)
    elif distribution == "uniform":
        bank = gen.uniform(-1.0, 1.0, shape)
    elif distribution == "ternary":
        bank = gen.integers(-1, 2, shape).astype(np.float64)
    elif distribution == "sparse":
        bank = gen.standard_normal(shape) * (gen.random(shape) < density)
        flat = bank.reshape(n, -1)
        empty = ~flat.any(axis=1)
        flat[empty, gen.integers(0, flat.shape[1], int(empty.sum()))] = 1.0
    else:
        bank = _random_gabors(gen, shape)
    if normalize:
        bank = normalize_kernels(bank, zero_mean=distribution != "sparse")
    return bank.astype(dtype, copy=False)


def _random_gabors(gen, shape):
    n, channels, h, w = shape
    y, x = _grid(h, w)
    m = min(h, w)
    out = np.empty(shape)
    for k in range(n):
        wavelength = gen.uniform(2.5, max(m, 3.0))
        sigma = gen.uniform(0.3, 0.7) * wavelength
        p = {"alpha": 1.0, "beta_x": 1 / (2 * sigma ** 2),
             "beta_y": gen.uniform(0.5, 2.0) / (2 * sigma ** 2),
             "f": 2 * math.pi / wavelength, "phi": gen.uniform(0, 2 * math.pi),
             "x0": gen.uniform(-0.15, 0.15) * w, "y0": gen.uniform(-0.15, 0.15) * h,
             "tau": gen.uniform(0, math.pi)}
        out[k] = _evaluate(x, y, **p)[None] * gen.uniform(0.5, 1.5, (channels, 1, 1))
    return out
