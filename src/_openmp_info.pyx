"""What the compiled core knows about OpenMP: whether it was built with it, its thread count, and
how to make a ``fork`` safe for it."""
from _openmp cimport FASTCONV_OPENMP, omp_get_max_threads, omp_set_num_threads

cdef extern from *:
    """
    /* GCC's libgomp keeps a pool of threads per thread that started a parallel region. A child
       made by fork() inherits the pool's bookkeeping but not its threads, so its first parallel
       region on more than one thread waits for them forever. libgomp 9+ (GCC 9, 2019) frees the
       calling thread's pool and joins its threads in omp_pause_resource_all; the next region
       starts a fresh pool. Declared weak under its own name, so that an older libgomp still
       loads (the call then reports failure) and omp.h's declaration does not clash. LLVM's and
       Intel's runtimes reset themselves in their own pthread_atfork handlers: nothing to do. */
    #if defined(_OPENMP) && defined(__GNUC__) && !defined(__clang__) && defined(__ELF__)
    extern int fastconv_omp_pause_resource_all(int kind)
        __asm__("omp_pause_resource_all") __attribute__((weak));
    static int fastconv_release_threads(void) {
        if (!fastconv_omp_pause_resource_all) return -1;
        return fastconv_omp_pause_resource_all(2);   /* omp_pause_hard */
    }
    #else
    static int fastconv_release_threads(void) { return 0; }
    #endif
    """
    int fastconv_release_threads() noexcept nogil


def openmp_enabled():
    """True when the kernels were compiled with OpenMP."""
    return bool(FASTCONV_OPENMP)


def max_threads():
    """OpenMP's current thread count (threadpoolctl's ``"openmp"`` limit changes it)."""
    return omp_get_max_threads()


def set_max_threads(int n):
    omp_set_num_threads(n)


def release_threads():
    """Before a ``fork``: end the calling thread's OpenMP worker threads, so that the child can
    start its own. True when done or not needed; False when the runtime cannot (the child must
    then stay on one thread). The parent's next parallel region starts new workers."""
    return fastconv_release_threads() == 0
