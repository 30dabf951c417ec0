"""Process-wide settings: the one thread budget (OpenMP kernels and BLAS) and the workspace limit.

The thread budget is ``set_num_threads(n)``, else ``FASTCONV_NUM_THREADS``, else OpenMP's own
count -- which ``threadpoolctl.threadpool_limits(n, "openmp")`` changes, so threadpoolctl works on
fastconv as on any OpenMP library. Setting the budget also limits the BLAS that fastconv's GEMMs
run on (SciPy's OpenBLAS), so the kernels' threads and BLAS's threads never add up beyond it: the
kernels split their GEMMs over their own OpenMP threads and hold the BLAS at one thread while they
run (`blas_single_threaded`), so only one thread pool is ever busy.

Each call runs on no more of the budget than other processes leave cores free (`_load`), and
while they are busy OpenMP's own count and the BLAS follow (`_pools_follow_load`).

The budget is at most `MAX_THREADS`; a larger count from any source (the call, the environment
variable, OpenMP's own setting) is refused or capped, because the OpenMP runtime ends the process
when it cannot create a thread. fastconv is fork-safe: before a ``fork`` it ends the forking
thread's OpenMP workers (`_openmp_info.release_threads`), so a child made by ``multiprocessing``
or ``os.fork`` starts its own instead of waiting forever for its parent's.
"""
import contextlib
import os
import threading
import time
import warnings

from . import _load, _openmp_info
from ._validate import positive_int

DEFAULT_WORKSPACE_LIMIT = 256 * 2**20

# More threads than four per core only adds switching; 64 keeps small machines free to test
# thread counts above their core count.
MAX_THREADS = max(64, 4 * (os.cpu_count() or 1))

_num_threads = None
_forked_single = False     # a forked child whose parent's workers could not be ended: one thread
_workspace_limit = DEFAULT_WORKSPACE_LIMIT
_blas_limiter = None


def _thread_count(value, name):
    n = positive_int(value, name)
    if n > MAX_THREADS:
        raise ValueError(f"{name} must be between 1 and {MAX_THREADS} (four threads per core, at "
                         f"least 64), got {n}")
    return n


def set_num_threads(n):
    """Use at most `n` threads in fastconv's kernels and in the BLAS they call.

    `n` is an int from 1 to ``MAX_THREADS`` (four times ``os.cpu_count()``, at least 64); anything
    else raises TypeError or ValueError and changes nothing.
    """
    global _num_threads, _blas_limiter
    n = _thread_count(n, "n")
    if _forked_single and n > 1:
        warnings.warn("this process was forked while OpenMP threads that could not be ended were "
                      "running, so its OpenMP runtime cannot start threads: fastconv stays on one "
                      "thread here (use the 'spawn' or 'forkserver' start method)", RuntimeWarning,
                      stacklevel=2)
    _num_threads = n
    _unfollow()
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
_following = None   # while the pools are held to the load cap: (OpenMP's count, [(BLAS, count)])


def _pools_follow_load(free, budget):
    """While other processes leave fewer cores free than the budget, OpenMP's own thread count
    and every loaded BLAS (NumPy's matmul in a layer, SciPy's) follow the cap too, and get their
    counts back when the load goes. The kernels pass their thread count to each parallel region,
    yet with OpenMP's count left at the budget a small network's epoch beside a spinning process
    took 114 ms against 70 ms with it lowered (its idle workers still compete for the cores), and
    a BLAS pool waits at barriers as the kernels' would. A transition costs a threadpoolctl call;
    a steady state costs nothing."""
    global _following, _controllers
    busy = free < budget
    if busy == (_following is not None):
        return
    with _blas_lock:
        if _blas_users or busy == (_following is not None):
            return          # a kernel holds the BLAS at one thread: the next call follows
        if busy:
            if _controllers is None:
                _controllers = _blas_controllers()
            _following = (_openmp_info.max_threads(),
                          [(c, c.get_num_threads()) for c in _controllers])
            _openmp_info.set_max_threads(free)
            for c, n in _following[1]:
                c.set_num_threads(min(free, n))
        else:
            _openmp_info.set_max_threads(_following[0])
            _give_back_blas()


# Below this much work a call runs on one thread: a parallel region costs more than it saves.
# Work is the arithmetic plus BYTE_FLOPS per byte of input and output: a problem of few flops
# that moves many bytes (MobileNetV2's 384-channel depthwise 3x3 at batch 1: 1.35 MFLOP, 588 KB,
# 71 us on one thread and 48 on two; a single-channel 3x3 filter of a 256 x 256 image, 1.2x)
# gains from a second thread, and one of few flops and bytes (16 channels of 16 x 16, 3x3: 30 us)
# loses 10-15% (Xeon, 2 threads; every problem of 200 KB and up gained, of 32-60 KB some lost).
# On a busy machine the load-following cap (_load) keeps such short calls on the free cores:
# figure 9.6's 0.5 MFLOP edge filter ran 0.15 ms on one thread and 9 ms on two beside a spinning
# process before it.
SMALL_PROBLEM_FLOPS = 2e6
BYTE_FLOPS = 12


def work(spec):
    """The work that decides whether a call of `spec` is small (SMALL_PROBLEM_FLOPS)."""
    return spec.flops + BYTE_FLOPS * spec.io_bytes


class _CallState(threading.local):
    """Per Python thread: the cap of the call (or block) it is in, None outside any. A class
    default, so reading it never raises inside getattr (0.6 us a read, twice a call)."""
    cap = None


_call = _CallState()


def _give_back_blas():
    """The BLAS's own counts, and no longer following the load (under `_blas_lock`)."""
    global _following
    for c, n in _following[1]:
        c.set_num_threads(n)
    _following = None


def _unfollow():
    """A new budget: the pools' counts are the user's now; the next call looks at the load."""
    with _blas_lock:
        if _following is not None:
            _give_back_blas()


def _process_budget():
    """The budget of the whole process (no call's cap)."""
    if _num_threads is not None:
        n = _num_threads
    else:           # OpenMP's own count, as it was before the load lowered it
        n = _following[0] if _following is not None else _openmp_info.max_threads()
    return 1 if _forked_single else min(n, MAX_THREADS)


def get_num_threads():
    """The thread budget the next call will use (at most ``MAX_THREADS``)."""
    n = _process_budget()
    cap = _call.cap
    return n if cap is None else min(n, cap)


class threads_for:
    """Inside one call: the budget, or one thread for a small problem, and no more threads than
    other processes leave cores free (`_load`) -- unless this call's `key` (a hashable naming
    the problem and operation) has been timed faster on the full budget under the same load.
    Results do not depend on it (every algorithm is bitwise thread-count invariant), only the
    time does. A class, not a generator: entered on every convolution, it costs a third as much
    (1.2 against 3.8 us), which a prepared call of a tiny problem feels."""

    __slots__ = ("flops", "key", "state")

    def __init__(self, flops, key=None):
        self.flops, self.key = flops, key

    def __enter__(self):
        self.state = enter_call(self.flops, self.key)
        return self

    def __exit__(self, *exc):
        leave_call(self.key, self.state)
        return False


def enter_call(flops, key=None):
    """`threads_for`'s entry as a function (a lane's call, `_registry._Lane`, skips the object and
    the with-statement): sets this Python thread's cap for a call of `flops` work and returns
    what `leave_call` needs."""
    previous = _call.cap
    if flops < SMALL_PROBLEM_FLOPS:     # one thread whatever the load: nothing to ask
        _call.cap = 1
        return previous, None
    process_budget = _process_budget()
    free = _load.thread_cap(process_budget)
    _pools_follow_load(free, process_budget)
    budget = process_budget if previous is None else min(process_budget, previous)
    threads = capped = min(budget, free)
    trial = None
    if capped < budget and key is not None:
        threads, timed = _load.trial_threads(key, capped, budget)
        if timed:
            trial = (capped, budget, threads, time.perf_counter())
    _call.cap = threads
    return previous, trial


def leave_call(key, state):
    """The end of the call `enter_call` began (`state`, what it returned): the trial's time
    recorded, the enclosing cap back."""
    previous, trial = state
    if trial is not None:
        capped, budget, threads, start = trial
        _load.record(key, capped, budget, threads, time.perf_counter() - start)
    _restore_cap(previous)


@contextlib.contextmanager
def thread_limit(n):
    """Inside the block, calls made from this Python thread use at most `n` threads (kernels and
    their BLAS); other threads and the process-wide setting are untouched. For task schedulers
    (fastconv.dask) that run one task per pool thread and must not oversubscribe the cores."""
    n = _thread_count(n, "n")
    previous = _call.cap
    _call.cap = n if previous is None else min(n, previous)
    try:
        yield
    finally:
        _restore_cap(previous)


def _restore_cap(previous):
    """Leave a call's (or a block's) cap: the enclosing one's again, or none."""
    _call.cap = previous


def planning_threads():
    """The thread count the cost models assume: the cores this process may run on.

    Not `get_num_threads()`: the chooser's pick -- and so the result's rounding -- must not change
    with the thread setting, only the speed.
    """
    if hasattr(os, "sched_getaffinity"):
        return max(1, len(os.sched_getaffinity(0)))
    return max(1, os.cpu_count() or 1)


def model_threads(spec, items=None):
    """The threads a cost model shares `spec`'s work among: one below SMALL_PROBLEM_FLOPS of
    `work` (where every call runs on one, `threads_for`), else the machine's cores
    (`planning_threads`), at most the call's `items` work items. Every model reads it, so none
    predicts a small problem's call on threads it will not get (a 1-D kernel gradient of 1.9
    MFLOP was predicted 2x too fast)."""
    if work(spec) < SMALL_PROBLEM_FLOPS:
        return 1
    threads = planning_threads()
    return threads if items is None else max(1, min(threads, items))


def model_speedup(spec, items, efficiency):
    """How many threads' worth `items` equal work items run on `model_threads`: each thread past
    the first adds `efficiency` of one, and a last round that leaves threads idle takes as long
    as a full one (3 items on 2 threads run as 2 rounds: blocked's chunked kernel gradient of
    C3D's first layer at batch 1 took as long as at batch 2)."""
    threads = model_threads(spec, items)
    items = max(1, items)
    return (1 + efficiency * (threads - 1)) * items / (threads * -(-items // threads))


def model_seconds(spec, counts, items, rates, efficiency, overhead):
    """A cost model's time: its counted operations times their seconds on one thread (`rates`,
    by the counts' keys), shared among the threads `items` work items keep busy
    (model_speedup), plus the call's `overhead`. (counts, items) is what the models' terms
    functions return."""
    work = sum(rates[k] * n for k, n in counts.items())
    return work / model_speedup(spec, items, efficiency) + overhead


def set_workspace_limit(nbytes):
    """Bound the extra memory (column buffers, transforms) one call may allocate, in bytes."""
    global _workspace_limit
    _workspace_limit = positive_int(nbytes, "nbytes")


def get_workspace_limit():
    return _workspace_limit


def _from_environment():
    """FASTCONV_NUM_THREADS, if set; a bad value is reported and ignored, not fatal to import."""
    value = os.environ.get("FASTCONV_NUM_THREADS")
    if value is None or value.strip() == "":
        return
    try:
        n = _thread_count(int(value), "FASTCONV_NUM_THREADS")
    except ValueError:
        warnings.warn(f"FASTCONV_NUM_THREADS must be an integer from 1 to {MAX_THREADS} (four "
                      f"threads per core, at least 64), got {value!r}; ignored, fastconv uses "
                      "OpenMP's thread count", RuntimeWarning, stacklevel=2)
        return
    set_num_threads(n)


def _before_fork():
    global _released
    _released = _openmp_info.release_threads()


def _after_fork_in_child():
    """The child owns no other thread: no lock may stay held, no count of kernels inside the BLAS
    section stay raised (a Python thread may have been in one when its parent forked)."""
    global _blas_lock, _blas_users, _forked_single
    _forked_single = _forked_single or not _released
    _blas_lock = threading.Lock()
    if _blas_users:
        _blas_users = 0
        for c, n in _blas_saved:
            c.set_num_threads(n)


_released = True
_from_environment()
if hasattr(os, "register_at_fork"):
    os.register_at_fork(before=_before_fork, after_in_child=_after_fork_in_child)
