"""k-means features (Coates, Lee and Ng 2011; Coates and Ng 2012), section 9.9 and figure 9.19.

The pipeline: sample small patches from the training images; normalise each patch's brightness
and contrast; ZCA-whiten them; run spherical k-means; use each centroid as a convolution kernel;
extract features for the whole training set once (convolution, rectification, pooling) and fit
only the convex last layer.

Where the kernels live. A centroid ``d`` is a direction in *whitened, normalised patch space*:
its response to a pixel patch ``p`` is ``d . W((p - mean(p)) / sqrt(var(p) + eps) - mu)``, with
``W`` the (symmetric) ZCA matrix and ``mu`` the patches' mean. `KMeansFeatures.centroids` holds
the ``d`` (what figure 9.19 shows: oriented edges); `KMeansFeatures.kernels` holds ``W d``, the
same filter moved into pixel space, so that the response is
``(conv(x, W d) - mean(p) * sum(W d)) / sqrt(var(p) + eps) - (W d) . mu``. `transform` computes
exactly that with three convolutions (the kernels, and a box filter on x and on x^2 for the
per-patch mean and variance): no patch is ever materialised for the whole data set.
"""
import numpy as np

from .. import _functional
from .._validate import float_array, positive_int, real_number
from ._checks import images as as_images, kernel_size, one_blas_thread
from ._checks import rng as make_rng
from .pipeline import grid_pool, rectify

__all__ = ["extract_patches", "normalize_patches", "ZCA", "spherical_kmeans", "KMeansFeatures"]


def extract_patches(images, size, n_patches, *, seed=None):
    """`n_patches` patches of `size` (int or (h, w)) at uniformly random images and positions:
    (n_patches, C * h * w), rows in (C, h, w) order (the kernel layout)."""
    x = as_images(images)
    h, w = kernel_size(size)
    n_patches = positive_int(n_patches, "n_patches")
    N, C, H, W = x.shape
    if N == 0:
        raise ValueError("images must hold at least one image, got 0")
    if h > H or w > W:
        raise ValueError(f"size {(h, w)} must fit in the images' {(H, W)}")
    gen = make_rng(seed)
    idx = gen.integers(0, N, n_patches)
    rows = gen.integers(0, H - h + 1, n_patches)
    cols = gen.integers(0, W - w + 1, n_patches)
    r = rows[:, None, None, None] + np.arange(h)[None, None, :, None]
    c = cols[:, None, None, None] + np.arange(w)[None, None, None, :]
    ch = np.arange(C)[None, :, None, None]
    return x[idx[:, None, None, None], ch, r, c].reshape(n_patches, C * h * w)


def normalize_patches(patches, eps):
    """Brightness and contrast normalisation of each row: (p - mean(p)) / sqrt(var(p) + eps)."""
    p = float_array(patches, "patches", ndim=2)
    eps = real_number(eps, "eps", non_negative=True)
    centred = p - p.mean(axis=1, keepdims=True)
    return centred / np.sqrt(centred.var(axis=1, keepdims=True) + eps)


class ZCA:
    """ZCA whitening: ``transform(X) = (X - mean) W`` with ``W = U diag(1 / sqrt(s + eps)) U^T``
    from the eigendecomposition ``cov = U diag(s) U^T``. With eps = 0 (and full-rank data) the
    whitened data have identity covariance; eps > 0 damps the directions of variance below eps.
    W is symmetric, and ZCA is the whitening closest to the identity (it keeps patches
    looking like patches)."""

    def __init__(self, eps=0.1):
        self.eps = real_number(eps, "eps", non_negative=True)

    def fit(self, X):
        X = float_array(X, "X", ndim=2)
        if X.shape[0] < 2:
            raise ValueError(f"X must have at least 2 rows to estimate a covariance, got {X.shape[0]}")
        self.mean_ = X.mean(axis=0)
        cov = np.cov(X - self.mean_, rowvar=False, bias=True)
        s, U = np.linalg.eigh(np.atleast_2d(cov))
        s = np.maximum(s, 0.0)
        if self.eps == 0 and s.min() <= 1e-12 * max(s.max(), 1e-300):
            raise ValueError("the covariance is singular: use eps > 0")
        self.matrix_ = (U / np.sqrt(s + self.eps)) @ U.T
        self.inverse_ = (U * np.sqrt(s + self.eps)) @ U.T
        return self

    def transform(self, X):
        X = float_array(X, "X", ndim=2)
        return (X - self.mean_) @ self.matrix_

    def inverse_transform(self, Z):
        Z = float_array(Z, "Z", ndim=2)
        return Z @ self.inverse_ + self.mean_


def _objective(X, D, sq):
    return float(np.sum(sq - np.max((X @ D.T) ** 2, axis=1)))


def spherical_kmeans(X, k, iters=10, *, seed=None, return_history=False):
    """Spherical k-means of Coates and Ng (2012) on the rows of X: unit-norm centroids D (k, d).

    Each step assigns every x to the centroid of largest |d . x| with code s = d . x, then sets
    each d to the normalised sum of s x over its members plus the old d. The objective
    ``sum_x min_j ||x - d_j (d_j . x)||^2 = sum ||x||^2 - max_j (d_j . x)^2`` never increases: the
    update is one power-iteration step of the members' (scatter matrix + I), which cannot lower
    the Rayleigh quotient of a positive semi-definite matrix; a centroid left with no members is
    moved to a random example (which cannot increase the objective either).
    Returns D, or (D, history) with the objective before each step and after the last.
    """
    X = float_array(X, "X", ndim=2)
    k = positive_int(k, "k")
    iters = positive_int(iters, "iters")
    n, d = X.shape
    if n < k:
        raise ValueError(f"X must have at least k = {k} rows, got {n}")
    gen = make_rng(seed)
    D = gen.standard_normal((k, d))
    D /= np.linalg.norm(D, axis=1, keepdims=True)
    sq = np.einsum("ij,ij->i", X, X)
    with one_blas_thread():
        history = [_objective(X, D, sq)]
        D = _iterate(X, D, sq, iters, gen, history)
    return (D, history) if return_history else D


def _iterate(X, D, sq, iters, gen, history):
    n, k = X.shape[0], D.shape[0]
    rows = np.arange(n)
    for _ in range(iters):
        S = X @ D.T                                   # (n, k) codes
        assign = np.argmax(np.abs(S), axis=1)
        codes = np.zeros((k, n))
        codes[assign, rows] = S[rows, assign]
        D = codes @ X + D
        counts = np.bincount(assign, minlength=k)
        empty = np.flatnonzero(counts == 0)
        if empty.size:
            D[empty] = X[gen.choice(n, empty.size, replace=False)]
        norms = np.linalg.norm(D, axis=1, keepdims=True)
        D /= np.where(norms > 0, norms, 1.0)
        history.append(_objective(X, D, sq))
    return D


class KMeansFeatures:
    """Coates et al. (2011): k-means kernels and the features they give.

    fit(images)        learn `centroids` (k, C, h, w; whitened space, figure 9.19) and `kernels`
                       (k, C, h, w; the same filters in pixel space, see the module docstring);
    transform(images)  the responses d . ZCA(normalise(patch)) at every position, (N, k, H', W');
    features(images)   rectified (split polarity, soft threshold) and grid-pooled, (N, F).

    contrast_eps: the eps of `normalize_patches`; None takes 10% of the mean patch variance
    (Coates et al. use 10 for 0-255 pixels). zca_eps: ZCA's eps on the normalised patches (whose
    per-pixel variance is about 1; Coates et al. use 0.1).
    """

    def __init__(self, n_centroids=32, patch_size=6, n_patches=20000, *, contrast_eps=None,
                 zca_eps=0.1, iters=10, threshold=0.25, regions=2, seed=0):
        self.n_centroids = positive_int(n_centroids, "n_centroids")
        self.patch_size = kernel_size(patch_size, "patch_size")
        self.n_patches = positive_int(n_patches, "n_patches")
        self.contrast_eps = None if contrast_eps is None else real_number(
            contrast_eps, "contrast_eps", non_negative=True)
        self.zca_eps = real_number(zca_eps, "zca_eps", non_negative=True)
        self.iters = positive_int(iters, "iters")
        self.threshold = real_number(threshold, "threshold", non_negative=True)
        self.regions = positive_int(regions, "regions")
        self.seed = seed

    def fit(self, images):
        x = as_images(images)
        gen = make_rng(self.seed)
        patches = extract_patches(x, self.patch_size, self.n_patches, seed=gen)
        eps = self.contrast_eps
        if eps is None:
            eps = 0.1 * float(patches.var(axis=1).mean())
        self.contrast_eps_ = eps
        normalised = normalize_patches(patches, eps)
        self.zca_ = ZCA(self.zca_eps).fit(normalised)
        D, self.history_ = spherical_kmeans(self.zca_.transform(normalised), self.n_centroids,
                                            self.iters, seed=gen, return_history=True)
        shape = (self.n_centroids, x.shape[1]) + self.patch_size
        self.centroids = D.reshape(shape)
        filters = D @ self.zca_.matrix_                 # W symmetric: rows are W d
        self.kernels = filters.reshape(shape)
        self._offsets = filters @ self.zca_.mean_       # (W d) . mu
        self._sums = filters.sum(axis=1)                # sum of W d
        return self

    def transform(self, images, dtype=np.float64):
        """Responses (N, k, H - h + 1, W - w + 1), exactly the per-patch pipeline at each position."""
        if not hasattr(self, "kernels"):
            raise RuntimeError("KMeansFeatures: call fit before transform")
        x = as_images(images).astype(dtype, copy=False)
        if x.shape[1] != self.kernels.shape[1]:
            raise ValueError(f"images must have {self.kernels.shape[1]} channels (as in fit), "
                             f"got {x.shape[1]}")
        size = self.kernels[0].size
        box = np.ones((1,) + self.kernels.shape[1:], dtype)
        raw = _functional.conv(x, self.kernels.astype(dtype))
        mean = _functional.conv(x, box) / size
        var = np.maximum(_functional.conv(x * x, box) / size - mean * mean, 0.0)
        scale = np.sqrt(var + self.contrast_eps_)
        sums = self._sums.astype(dtype)[None, :, None, None]
        offsets = self._offsets.astype(dtype)[None, :, None, None]
        return (raw - mean * sums) / scale - offsets

    def features(self, images, batch_size=512):
        """Split-polarity soft-threshold rectification and regions x regions average pooling,
        flattened: (N, 2 k regions^2)."""
        x = as_images(images)
        batch_size = positive_int(batch_size, "batch_size")
        parts = []
        for start in range(0, max(x.shape[0], 1), batch_size):
            maps = self.transform(x[start:start + batch_size], dtype=np.float32)
            pooled = grid_pool(rectify(maps, "split", self.threshold), self.regions, "avg")
            parts.append(pooled.reshape(pooled.shape[0], int(np.prod(pooled.shape[1:]))))
        return np.concatenate(parts).astype(np.float64)
