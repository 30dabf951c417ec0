"""Process-wide settings: the one thread budget (OpenMP kernels and BLAS) and the workspace limit.

The thread budget is ``set_num_threads(n)``, else ``FASTCONV_NUM_THREADS``, else OpenMP's own
count -- which ``threadpoolctl.threadpool_limits(n, "openmp")`` changes, so threadpoolctl works on
fastconv as on any OpenMP library. Setting the budget also limits the BLAS that fastconv's GEMMs
run on (SciPy's OpenBLAS), so the kernels' threads and BLAS's threads never add up beyond it: the
kernels run their OpenMP loops and the BLAS calls one after the other, never at once.
"""
import numbers
import os

from . import _openmp_info

DEFAULT_WORKSPACE_LIMIT = 256 * 2**20

_num_threads = None
_workspace_limit = DEFAULT_WORKSPACE_LIMIT
_blas_limiter = None


def _positive_int(value, name):
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name} must be an int, got {value!r} ({type(value).__name__})")
    if value < 1:
        raise ValueError(f"{name} must be >= 1, got {value}")
    return int(value)


def set_num_threads(n):
    """Use at most `n` threads in fastconv's kernels and in the BLAS they call."""
    global _num_threads, _blas_limiter
    n = _positive_int(n, "n")
    _num_threads = n
    _openmp_info.set_max_threads(n)
    from threadpoolctl import threadpool_limits
    import scipy.linalg.cython_blas  # noqa: F401  (make sure SciPy's BLAS is loaded to be found)
    _blas_limiter = threadpool_limits(limits=n, user_api="blas")


def get_num_threads():
    """The thread budget the next call will use."""
    return _num_threads if _num_threads is not None else _openmp_info.max_threads()


def set_workspace_limit(nbytes):
    """Bound the extra memory (column buffers, transforms) one call may allocate, in bytes."""
    global _workspace_limit
    _workspace_limit = _positive_int(nbytes, "nbytes")


def get_workspace_limit():
    return _workspace_limit


def _from_environment():
    value = os.environ.get("FASTCONV_NUM_THREADS")
    if value is None or value == "":
        return
    try:
        n = int(value)
    except ValueError:
        raise ValueError(f"FASTCONV_NUM_THREADS must be a positive integer, got {value!r}") from None
    set_num_threads(n)


_from_environment()
