"""Hand-designed kernels (section 9.9): the edge detector of figure 9.6, Sobel, Prewitt, difference
of Gaussians and oriented derivative-of-Gaussian edges, as (K, C, h, w) banks for `fastconv.conv`.

All kernels are written for `fastconv.conv`, which is cross-correlation (eq. 9.8): the output at
(i, j) is sum_{m, n} x[i + m, j + n] w[m, n]. So ``[-1, 1]`` computes "pixel minus its left
neighbour", positive where the image gets brighter to the right.
"""
import math
from dataclasses import dataclass

import numpy as np

from .._validate import positive_int, real_number
from ._checks import kernel_size

__all__ = ["edge_kernel", "EdgeDetectorCost", "edge_detector_cost", "sobel", "prewitt",
           "difference_of_gaussians", "oriented_edges", "expand_channels"]


def _dtype(dtype):
    dtype = np.dtype(dtype)
    if dtype not in (np.float32, np.float64):
        raise TypeError(f"dtype must be float32 or float64, got {dtype}")
    return dtype


def edge_kernel(dtype=np.float64):
    """Figure 9.6: each output pixel is the input pixel minus its neighbour on the left.
    Shape (1, 1, 1, 2), the values [-1, 1]."""
    return np.array([[[[-1.0, 1.0]]]], dtype=_dtype(dtype))


@dataclass(frozen=True)
class EdgeDetectorCost:
    """The arithmetic of figure 9.6's caption for an image of height x width pixels."""
    height: int
    width: int
    kernel_width: int
    output_height: int
    output_width: int
    conv_flops: int        # per output pixel: k multiplications and k - 1 additions
    conv_storage: int      # the kernel's k numbers
    dense_entries: int     # the same linear map as a dense matrix: inputs x outputs entries
    dense_flops: int       # matrix-vector product: per output, n_in multiplications, n_in - 1 additions

    @property
    def flop_ratio(self):
        return self.dense_flops / self.conv_flops

    @property
    def storage_ratio(self):
        return self.dense_entries / self.conv_storage

    def __str__(self):
        return (f"a {self.height}x{self.width} image gives a {self.output_height}x"
                f"{self.output_width} output: {self.conv_flops:,} FLOPs as a convolution vs "
                f"{self.dense_flops:,} as a dense matrix ({self.flop_ratio:,.0f}x more); storage "
                f"{self.conv_storage} numbers vs {self.dense_entries:,} matrix entries "
                f"({self.storage_ratio:.2e}x more)")


def edge_detector_cost(height=280, width=320, kernel_width=2):
    """FLOPs and storage of figure 9.6's edge detector, as a convolution and as a dense matrix.

    The defaults are the caption's: a 320-wide, 280-tall image gives a 319x280 output; the
    convolution takes 319 * 280 * 3 = 267,960 FLOPs, the dense matrix has 320 * 280 * 319 * 280
    (over eight billion) entries and its product takes over sixteen billion FLOPs.
    """
    height = positive_int(height, "height")
    width = positive_int(width, "width")
    kernel_width = positive_int(kernel_width, "kernel_width")
    if kernel_width > width:
        raise ValueError(f"kernel_width must be at most the image width {width}, got {kernel_width}")
    out_w = width - kernel_width + 1
    n_out, n_in = height * out_w, height * width
    return EdgeDetectorCost(height=height, width=width, kernel_width=kernel_width,
                            output_height=height, output_width=out_w,
                            conv_flops=n_out * (2 * kernel_width - 1), conv_storage=kernel_width,
                            dense_entries=n_in * n_out, dense_flops=n_out * (2 * n_in - 1))


def _pair(horizontal, dtype):
    """(2, 1, 3, 3): d/dx (brighter to the right is positive) and d/dy (brighter below)."""
    gx = np.outer(horizontal, [-1.0, 0.0, 1.0])
    return np.stack([gx, gx.T])[:, None].astype(_dtype(dtype))


def sobel(dtype=np.float64):
    """The Sobel pair, shape (2, 1, 3, 3): horizontal gradient, then vertical gradient."""
    return _pair([1.0, 2.0, 1.0], dtype)


def prewitt(dtype=np.float64):
    """The Prewitt pair, shape (2, 1, 3, 3): horizontal gradient, then vertical gradient."""
    return _pair([1.0, 1.0, 1.0], dtype)


def _centred_grid(h, w):
    y = np.arange(h, dtype=np.float64) - (h - 1) / 2.0
    x = np.arange(w, dtype=np.float64) - (w - 1) / 2.0
    return np.meshgrid(y, x, indexing="ij")


def _gaussian(y, x, sigma):
    g = np.exp(-(x * x + y * y) / (2 * sigma * sigma))
    return g / g.sum()


def difference_of_gaussians(size=9, sigmas=((1.0, 1.6),), dtype=np.float64):
    """Centre-surround kernels G(sigma_centre) - G(sigma_surround), each Gaussian summing to 1
    (so each kernel sums to 0). `sigmas`: one (centre, surround) pair per kernel.
    Shape (len(sigmas), 1, h, w)."""
    h, w = kernel_size(size)
    y, x = _centred_grid(h, w)
    pairs = list(sigmas)
    if not pairs:
        raise ValueError("sigmas must hold at least one (centre, surround) pair")
    kernels = []
    for pair in pairs:
        if np.ndim(pair) != 1 or len(pair) != 2:
            raise ValueError(f"sigmas must hold (centre, surround) pairs, got {pair!r}")
        s1 = real_number(pair[0], "sigmas", positive=True)
        s2 = real_number(pair[1], "sigmas", positive=True)
        kernels.append(_gaussian(y, x, s1) - _gaussian(y, x, s2))
    return np.stack(kernels)[:, None].astype(_dtype(dtype))


def oriented_edges(size=7, angles=4, scales=(1.0, 2.0), dtype=np.float64):
    """First derivatives of a Gaussian along the directions (cos a, sin a): oriented edge
    detectors at several angles and scales sigma. `angles`: a count n (the angles k pi / n,
    which cover [0, pi): the sign of the response gives the edge's polarity) or the angles.
    Each kernel has unit L2 norm. Shape (len(angles) * len(scales), 1, h, w), angle-major."""
    h, w = kernel_size(size)
    if isinstance(angles, (int, np.integer)) and not isinstance(angles, bool):
        n = positive_int(angles, "angles")
        angles = [math.pi * k / n for k in range(n)]
    angles = [real_number(a, "angles") for a in np.atleast_1d(angles)]
    scales = [real_number(s, "scales", positive=True) for s in np.atleast_1d(scales)]
    if not angles or not scales:
        raise ValueError("angles and scales must not be empty")
    y, x = _centred_grid(h, w)
    kernels = []
    for a in angles:
        along = x * math.cos(a) + y * math.sin(a)
        for s in scales:
            k = along * np.exp(-(x * x + y * y) / (2 * s * s))
            kernels.append(k / np.linalg.norm(k))
    return np.stack(kernels)[:, None].astype(_dtype(dtype))


def expand_channels(bank, channels):
    """(K, 1, h, w) -> (K, channels, h, w): the same kernel on every channel, divided by the
    number of channels (so a grey image repeated on every channel gives the grey response)."""
    bank = np.asarray(bank)
    channels = positive_int(channels, "channels")
    if bank.ndim < 3 or bank.shape[1] != 1:
        raise ValueError(f"bank must have shape (K, 1, *kernel), got {bank.shape}")
    return np.repeat(bank, channels, axis=1) / channels
