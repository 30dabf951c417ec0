# The OpenMP skeleton of the compiled modules, written once (as scikit-learn's _base.pyx.tp
# writes its parallel loop once). Two shapes, both giving results that do not depend on the
# number of threads:
#
#   items in parallel, each thread with its own scratch, each item writing only its own outputs:
#
#       for item in prange(n, nogil=True, schedule="static", num_threads=num_threads):
#           buf = thread_slice(work, per_thread)
#           ...
#
#   a sum over items kept as `parts` partial sums (a number fixed by the problem, not by the
#   threads), part q summing the items part_start(0, n, q, parts)..part_start(0, n, q + 1, parts)
#   - 1 into partials[q], then added in order by sum_parts.
#
# Cython makes a prange body's variables private only where the body assigns them: a helper
# that fills a loop variable through a pointer (&n) writes a variable all threads share. Helpers
# return their results (a struct for several, as _separable.pyx's item_of) instead.
from cython cimport floating
from cython.parallel cimport prange
from libc.string cimport memcpy

from _openmp cimport omp_get_thread_num

cdef enum:
    SUM_CHUNK = 4096        # values of one sum_parts step: its output stays in L1 for every part

ctypedef fused scratch_t:
    float
    double
    Py_ssize_t


cdef inline Py_ssize_t part_start(Py_ssize_t first, Py_ssize_t last, Py_ssize_t q,
                                  Py_ssize_t parts) noexcept nogil:
    """The first item of part q of `parts` contiguous parts covering first..last-1 (part q ends
    where part q + 1 starts)."""
    return first + (last - first) * q // parts


cdef inline scratch_t* thread_slice(scratch_t* base, Py_ssize_t size) noexcept nogil:
    """The calling thread's `size` values of per-thread scratch `base` (threads * size values)."""
    return base + omp_get_thread_num() * size


cdef inline floating* data_or_null(floating[::1] a) noexcept:
    """The first value of `a`, or NULL for an empty (unused) scratch buffer."""
    return &a[0] if a.shape[0] > 0 else NULL


cdef inline void sum_parts(const floating* partials, floating* out, Py_ssize_t size,
                           Py_ssize_t parts, int num_threads) noexcept nogil:
    """out[e] = partials[0][e] + partials[1][e] + ... + partials[parts - 1][e], added in that
    order for every e (partials[q] is `size` values at partials + q * size), on num_threads
    threads: each element's sum is the same however the elements are split."""
    cdef Py_ssize_t t, e, e0, e1, hi, q, ranges = max(num_threads, 1)
    for t in prange(ranges, nogil=True, schedule="static", num_threads=num_threads):
        hi = part_start(0, size, t + 1, ranges)
        e0 = part_start(0, size, t, ranges)
        while e0 < hi:
            e1 = min(hi, e0 + SUM_CHUNK)
            memcpy(out + e0, partials + e0, (e1 - e0) * sizeof(floating))
            for q in range(1, parts):
                for e in range(e0, e1):
                    out[e] += partials[q * size + e]
            e0 = e1


cdef inline bint any_set(const unsigned char* flags, Py_ssize_t n) noexcept nogil:
    """Whether an item set its flag (items that flag a value that is not finite): a C loop where
    NumPy's flags.any() took 20 us of a call after a large kernel had flushed the caches."""
    cdef Py_ssize_t i
    for i in range(n):
        if flags[i]:
            return True
    return False
