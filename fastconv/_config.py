"""Process-wide settings: the one thread budget (OpenMP kernels and BLAS) and the workspace limit.

The thread budget is ``set_num_threads(n)``, else ``FASTCONV_NUM_THREADS``, else OpenMP's own
count -- which ``threadpoolctl.threadpool_limits(n, "openmp")`` changes, so threadpoolctl works on
fastconv as on any OpenMP library. Setting the budget also limits the BLAS that fastconv's GEMMs
run on (SciPy's OpenBLAS), so the kernels' threads and BLAS's threads never add up beyond it: the
kernels split their GEMMs over their own OpenMP threads and hold the BLAS at one thread while they
run (`blas_single_threaded`), so only one thread pool is ever busy.
"""
import contextlib
import numbers
import os
import threading

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


_blas_lock = threading.Lock()
_blas_users = 0
_blas_saved = []


def _blas_controllers():
    from threadpoolctl import ThreadpoolController
    import scipy.linalg.cython_blas  # noqa: F401  (load SciPy's BLAS so that it is found)
    return [c for c in ThreadpoolController().lib_controllers if c.user_api == "blas"]


@contextlib.contextmanager
def blas_single_threaded():
    """Hold every loaded BLAS at one thread while a kernel calls it from its own OpenMP threads.

    Two pools on two cores (OpenMP's and OpenBLAS's, each spinning while the other works) slow
    both several times over. Counted, so overlapping calls from several Python threads restore
    the BLAS's own setting only when the last one leaves.
    """
    global _blas_users, _blas_saved, _controllers
    with _blas_lock:
        if _blas_users == 0:
            if _controllers is None:
                _controllers = _blas_controllers()
            _blas_saved = [(c, c.get_num_threads()) for c in _controllers]
            for c, _ in _blas_saved:
                c.set_num_threads(1)
        _blas_users += 1
    try:
        yield
    finally:
        with _blas_lock:
            _blas_users -= 1
            if _blas_users == 0:
                for c, n in _blas_saved:
                    c.set_num_threads(n)


_controllers = None


# Below this much arithmetic a call runs on one thread: a parallel region costs more than it
# saves, and when another process holds a core each barrier waits out a scheduler time slice
# (seen: figure 9.6's 0.5 MFLOP edge filter, 0.15 ms on one thread, 9 ms on two).
SMALL_PROBLEM_FLOPS = 2e6
_call = threading.local()


def get_num_threads():
    """The thread budget the next call will use."""
    n = _num_threads if _num_threads is not None else _openmp_info.max_threads()
    return min(n, getattr(_call, "cap", n))


@contextlib.contextmanager
def threads_for(flops):
    """Inside one call: the budget, or one thread for a small problem. Results do not depend
    on it (every algorithm is bitwise thread-count invariant), only the time does."""
    previous = getattr(_call, "cap", None)
    _call.cap = 1 if flops < SMALL_PROBLEM_FLOPS else get_num_threads()
    try:
        yield
    finally:
        if previous is None:
            del _call.cap
        else:
            _call.cap = previous


def planning_threads():
    """The thread count the cost models assume: the cores this process may run on.

    Not `get_num_threads()`: the chooser's pick -- and so the result's rounding -- must not change
    with the thread setting, only the speed.
    """
    if hasattr(os, "sched_getaffinity"):
        return max(1, len(os.sched_getaffinity(0)))
    return max(1, os.cpu_count() or 1)


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
