"""Argument checks shared by the feature modules: each names the argument, what it got, what it wants."""
import numbers

import numpy as np

from ..nn._init import positive_int  # noqa: F401  (one check for the whole library)


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


def real_number(value, name, positive=False, non_negative=False):
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a real number, got {value!r} ({type(value).__name__})")
    value = float(value)
    if not np.isfinite(value):
        raise ValueError(f"{name} must be finite, got {value}")
    if positive and value <= 0:
        raise ValueError(f"{name} must be > 0, got {value}")
    if non_negative and value < 0:
        raise ValueError(f"{name} must be >= 0, got {value}")
    return value


def float_array(a, name, ndim=None):
    """A float64 copy-free view (or converted copy) of a real array with the given dimensions."""
    try:
        arr = np.asarray(a)
    except Exception as exc:
        raise TypeError(f"{name} must be array-like of numbers, got {type(a).__name__}: {exc}") from None
    if arr.dtype.kind not in "biuf":
        raise TypeError(f"{name} must be a real numeric array, got dtype {arr.dtype}")
    if ndim is not None and arr.ndim not in (ndim if isinstance(ndim, tuple) else (ndim,)):
        raise ValueError(f"{name} must have {ndim} dimensions, got {arr.ndim} (shape {arr.shape})")
    return arr.astype(np.float64, copy=False)


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
