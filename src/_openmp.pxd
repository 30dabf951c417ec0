# OpenMP shim (after scikit-learn's _openmp_helpers): the same code builds serial when the
# compiler has no OpenMP, in which case there is exactly one thread.
cdef extern from *:
    """
    #ifdef _OPENMP
    #include <omp.h>
    #define FASTCONV_OPENMP 1
    #else
    #define FASTCONV_OPENMP 0
    static int omp_get_max_threads(void) { return 1; }
    static void omp_set_num_threads(int n) { (void)n; }
    static int omp_get_thread_num(void) { return 0; }
    #endif
    """
    bint FASTCONV_OPENMP
    int omp_get_max_threads() noexcept nogil
    void omp_set_num_threads(int n) noexcept nogil
    int omp_get_thread_num() noexcept nogil
