"""What the compiled core knows about OpenMP: whether it was built with it, its thread count, and
how to make a ``fork`` safe for it."""
import os

from _openmp cimport FASTCONV_OPENMP, omp_get_max_threads, omp_set_num_threads

cdef extern from *:
    """
    /* A child made by fork() inherits the OpenMP runtime's bookkeeping of its worker threads but
       not the threads, so its first parallel region on more than one thread waits for them
       forever -- unless the workers were ended before the fork. omp_pause_resource_all (OpenMP
       5.0: libgomp 9+, LLVM's libomp 8+, Intel's) ends them; the next region starts new ones.
       Declared weak under its own name, so that an older runtime still loads (the call then
       reports failure) and omp.h's declaration does not clash. kmp_get_blocktime, weak too,
       only exists in LLVM's and Intel's runtimes: it tells them from GCC's libgomp at run
       time, whichever compiler built this module. */
    #if defined(_OPENMP) && defined(__GNUC__) && defined(__ELF__)
    extern int fastconv_omp_pause_resource_all(int kind)
        __asm__("omp_pause_resource_all") __attribute__((weak));
    extern int fastconv_kmp_get_blocktime(void)
        __asm__("kmp_get_blocktime") __attribute__((weak));
    static int fastconv_runtime(void) { return fastconv_kmp_get_blocktime ? 2 : 1; }
    static int fastconv_pause_all(void) {
        if (!fastconv_omp_pause_resource_all) return -1;
        return fastconv_omp_pause_resource_all(2);   /* omp_pause_hard */
    }
    #else
    static int fastconv_runtime(void) { return 0; }
    static int fastconv_pause_all(void) { return -1; }
    #endif
    """
    int fastconv_runtime() noexcept nogil
    int fastconv_pause_all() noexcept nogil

# Which runtime the kernels run on: one fastconv cannot tell apart (a serial build, or no ELF
# weak symbols), GCC's libgomp, or LLVM's libomp (Intel's libiomp5 behaves the same).
_UNKNOWN, _GNU, _LLVM = 0, 1, 2
_RUNTIME = fastconv_runtime() if FASTCONV_OPENMP else _UNKNOWN

# How LLVM's runtime reads "false" in a boolean setting (kmp_str.cpp, __kmp_str_match_false):
# a prefix of one of these words, case aside, at least as long as the number says (0: all of it).
_KMP_FALSE = (("false", 1), ("off", 2), ("0", 1), (".false.", 2), (".f.", 2), ("no", 1),
              ("disabled", 0))


def _kmp_init_at_fork_off():
    value = os.environ.get("KMP_INIT_AT_FORK", "").strip().lower()
    return any(value == word if least == 0 else len(value) >= least and word.startswith(value)
               for word, least in _KMP_FALSE)


# LLVM's runtime reads KMP_INIT_AT_FORK when it starts (made to start here if nothing started it
# yet) and, unless it says false, installs pthread_atfork handlers that reset it in the child:
# nothing to do then -- and nothing may be done, since after a hard pause the runtime starts
# again and installs its handlers a second time, and libomp 14's prepare handler then deadlocks
# the parent at the next fork. joblib and scikit-learn set KMP_INIT_AT_FORK=FALSE when imported.
if _RUNTIME == _LLVM:
    omp_get_max_threads()
_LLVM_RESETS_ITSELF = _RUNTIME == _LLVM and not _kmp_init_at_fork_off()


def openmp_enabled():
    """True when the kernels were compiled with OpenMP."""
    return bool(FASTCONV_OPENMP)


def max_threads():
    """OpenMP's current thread count (threadpoolctl's ``"openmp"`` limit changes it)."""
    return omp_get_max_threads()


def set_max_threads(int n):
    omp_set_num_threads(n)


def release_threads():
    """Before a ``fork``: end the OpenMP worker threads the child would otherwise wait for, so
    that it can start its own. True when done or not needed; False when the runtime cannot (the
    child must then stay on one thread). The parent's next parallel region starts new workers.

    GCC's libgomp: the calling thread's workers are ended. LLVM's libomp with its own fork
    handlers: nothing to do. LLVM's libomp without them (KMP_INIT_AT_FORK=FALSE): the whole
    runtime is shut down and started again, keeping the thread count; OpenMP settings changed
    by other calls than ``omp_set_num_threads`` fall back to their environment values. Workers
    of other Python threads' parallel regions cannot be ended from here (the runtime leaves
    them in its pool), so with this runtime only fork from a process whose fastconv calls ran
    on one Python thread, or use the 'spawn' or 'forkserver' start method.
    """
    if _RUNTIME == _UNKNOWN or _LLVM_RESETS_ITSELF:
        return True
    if _RUNTIME == _GNU:
        return fastconv_pause_all() == 0
    if not _kmp_init_at_fork_off():     # restarting would install the runtime's handlers
        return False
    n = omp_get_max_threads()
    # 0: ended; 1: nothing to end (already paused, no parallel region since); -1: no pause.
    done = fastconv_pause_all() >= 0
    omp_set_num_threads(n)
    return done
