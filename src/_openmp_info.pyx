"""What the compiled core knows about OpenMP: whether it was built with it, and its thread count."""
from _openmp cimport FASTCONV_OPENMP, omp_get_max_threads, omp_set_num_threads


def openmp_enabled():
    """True when the kernels were compiled with OpenMP."""
    return bool(FASTCONV_OPENMP)


def max_threads():
    """OpenMP's current thread count (threadpoolctl's ``"openmp"`` limit changes it)."""
    return omp_get_max_threads()


def set_max_threads(int n):
    omp_set_num_threads(n)
