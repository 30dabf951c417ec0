"""Frozen-kernel feature extraction: convolution, rectification, pooling, flatten.

The stage of figure 9.7 (convolution, detector, pooling) with kernels that are not learned by
back-propagation. `conv_features` runs it over a whole data set once; the result goes to the
convex last layer (`fastconv.features.linear.SoftmaxRegression`).
"""
import numpy as np

from .. import _functional, pooling
from .._validate import positive_int, real_number
from ._checks import images as as_images

__all__ = ["RECTIFIERS", "rectify", "grid_pool", "pool", "conv_features"]

RECTIFIERS = ("relu", "abs", "split", "none")


def rectify(maps, mode="split", threshold=0.0):
    """The detector stage.

    "relu":  max(0, y - threshold);
    "abs":   |y| (Jarrett et al. 2009's absolute-value rectification);
    "split": max(0, y - threshold) and max(0, -y - threshold) as two channels each (both
             polarities of an edge; Coates and Ng's soft threshold when threshold > 0);
    "none":  y unchanged.
    """
    if mode not in RECTIFIERS:
        raise ValueError(f"rectify must be one of {RECTIFIERS}, got {mode!r}")
    threshold = real_number(threshold, "threshold", non_negative=True)
    if mode == "relu":
        return np.maximum(maps - threshold, 0)
    if mode == "abs":
        return np.abs(maps)
    if mode == "split":
        return np.concatenate([np.maximum(maps - threshold, 0), np.maximum(-maps - threshold, 0)],
                              axis=1)
    return maps


def _bounds(n, parts):
    return np.array_split(np.arange(n), parts)


def grid_pool(maps, regions=2, mode="avg"):
    """Pool each (H, W) map over a regions x regions grid of nearly equal cells (the quadrant
    pooling of Coates et al. 2011 when regions = 2): (N, C, H, W) -> (N, C, regions, regions)."""
    regions = positive_int(regions, "regions")
    if mode not in ("avg", "max", "sum"):
        raise ValueError(f"mode must be 'avg', 'max' or 'sum', got {mode!r}")
    n, c, h, w = maps.shape
    if regions > min(h, w):
        raise ValueError(f"regions must be at most the map size {min(h, w)}, got {regions}")
    out = np.empty((n, c, regions, regions), dtype=maps.dtype)
    for i, rows in enumerate(_bounds(h, regions)):
        for j, cols in enumerate(_bounds(w, regions)):
            cell = maps[:, :, rows[0]:rows[-1] + 1, cols[0]:cols[-1] + 1]
            out[:, :, i, j] = (cell.max(axis=(2, 3)) if mode == "max" else
                               cell.sum(axis=(2, 3)) if mode == "sum" else cell.mean(axis=(2, 3)))
    return out


def _numpy_pool(maps, size, mode):
    n, c, h, w = maps.shape
    hh, ww = h // size, w // size
    blocks = maps[:, :, :hh * size, :ww * size].reshape(n, c, hh, size, ww, size)
    return blocks.max(axis=(3, 5)) if mode == "max" else blocks.mean(axis=(3, 5))


def pool(maps, size=2, mode="max"):
    """Non-overlapping size x size pooling (stride = size, the remainder dropped), with
    `fastconv.pooling`, and NumPy where it raises (the same numbers)."""
    size = positive_int(size, "size")
    if mode not in ("max", "avg"):
        raise ValueError(f"mode must be 'max' or 'avg', got {mode!r}")
    if size > min(maps.shape[2:]):
        raise ValueError(f"size must be at most the map size {min(maps.shape[2:])}, got {size}")
    try:
        return np.asarray(getattr(pooling, f"{mode}_pool")(maps, (size, size), stride=size))
    except Exception:
        return _numpy_pool(maps, size, mode)


def conv_features(images, bank, *, padding=0, rectify_mode="split", threshold=0.0, regions=2,
                  pool_mode="avg", batch_size=512, dtype=np.float32):
    """Features of every image: conv with the frozen `bank`, `rectify`, `grid_pool` into
    regions x regions cells, flattened to (N, K * (2 if split) * regions^2)."""
    x = as_images(images)
    bank = np.asarray(bank)
    if bank.ndim != 4 or bank.shape[1] != x.shape[1]:
        raise ValueError(f"bank must have shape (K, {x.shape[1]}, h, w) for images with "
                         f"{x.shape[1]} channels, got {bank.shape}")
    batch_size = positive_int(batch_size, "batch_size")
    parts = []
    for start in range(0, max(x.shape[0], 1), batch_size):
        chunk = x[start:start + batch_size].astype(dtype, copy=False)
        maps = _functional.conv(chunk, bank.astype(dtype, copy=False), padding=padding)
        pooled = grid_pool(rectify(maps, rectify_mode, threshold), regions, pool_mode)
        parts.append(pooled.reshape(pooled.shape[0], int(np.prod(pooled.shape[1:]))))
    return np.concatenate(parts).astype(np.float64)
