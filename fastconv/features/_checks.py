"""Argument checks of the feature modules' own kinds (kernel sizes, images, labels, seeds); each
names the argument, what it got, what it wants. Arrays and numbers are checked by _validate."""
import numbers

import numpy as np

from .._validate import float_array


def kernel_size(size, name="size"):
    """An int or an (h, w) pair of positive ints -> (h, w)."""
    if isinstance(size, (bool, np.bool_)):
        raise TypeError(f"{name} must be an int or a pair of ints, got {size!r}")
    if isinstance(size, numbers.Integral):
        pair = (int(size), int(size))
    else:
        try:
            pair = tuple(size)
        except TypeError:
            raise TypeError(f"{name} must be an int or a pair of ints, got {size!r}") from None
        if len(pair) != 2 or not all(isinstance(v, numbers.Integral) and not isinstance(v, bool)
                                     for v in pair):
            raise TypeError(f"{name} must be an int or a pair of ints, got {size!r}")
        pair = (int(pair[0]), int(pair[1]))
    if min(pair) < 1:
        raise ValueError(f"{name} must be positive, got {size!r}")
    return pair


def images(x, name="images"):
    """(N, H, W) or (N, C, H, W) -> float64 (N, C, H, W)."""
    arr = float_array(x, name, ndim=(3, 4))
    return arr[:, None] if arr.ndim == 3 else arr


def labels(y, n, name="y"):
    arr = np.asarray(y)
    if arr.dtype.kind not in "iub":
        raise TypeError(f"{name} must hold integer class labels, got dtype {arr.dtype}")
    if arr.shape != (n,):
        raise ValueError(f"{name} must have shape ({n},) (one label per example), got {arr.shape}")
    return arr.astype(np.int64)


def rng(seed):
    return seed if isinstance(seed, np.random.Generator) else np.random.default_rng(seed)


def one_blas_thread():
    """A context that holds BLAS at one thread: the matrices of this package's small solvers are
    too small to share, and a multi-threaded BLAS on a busy machine runs them up to 30x slower."""
    from threadpoolctl import threadpool_limits
    return threadpool_limits(limits=1, user_api="blas")
