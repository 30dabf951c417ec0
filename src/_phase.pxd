# Input rows stored by phase of the width stride, for im2col (src/_im2col.pyx): with a row
# stored as x[0], x[s], x[2s], ..., x[1], x[1 + s], ..., the values one stride-s kernel tap reads
# along an output row are contiguous, so packing copies instead of gathering.
from cython cimport floating
from libc.string cimport memcpy

from _geometry cimport Geom


cdef inline Py_ssize_t phase_start(Py_ssize_t n, Py_ssize_t s, Py_ssize_t q) noexcept nogil:
    """Where phase q starts in a row of n values stored by phase (see phase_rows)."""
    return q * (n // s) + (q if q < n % s else n % s)


cdef inline Py_ssize_t phased_offset(const Geom* g, Py_ssize_t xoff) noexcept nogil:
    """In an input row stored by phase, where input column o * sw + xoff lives, less o: column
    o * sw + xoff is entry (xoff - q) / sw + o of phase q = xoff mod sw."""
    cdef Py_ssize_t q = xoff % g.sw
    if q < 0:
        q = q + g.sw
    return phase_start(g.iw, g.sw, q) + (xoff - q) // g.sw


cdef inline void phase_rows(const floating* src, floating* dst, Py_ssize_t rows, Py_ssize_t n,
                     Py_ssize_t s) noexcept nogil:
    """Store each row of n values by phase: dst row = src[0], src[s], ..., src[1], src[1 + s], ...

    With the rows of x stored so, the values a stride-s tap reads along a row are contiguous."""
    cdef Py_ssize_t r, q, j, k
    cdef const floating* row
    cdef floating* out
    cdef floating* out1
    if s == 2:          # the usual stride, with a constant step the compiler vectorizes
        k = n // 2
        for r in range(rows):
            row = src + r * n
            out = dst + r * n
            out1 = out + (n + 1) // 2
            for j in range(k):
                out[j] = row[2 * j]
                out1[j] = row[2 * j + 1]
            if n % 2:
                out[k] = row[n - 1]
        return
    for r in range(rows):
        row = src + r * n
        for q in range(min(s, n)):          # phases q >= n are empty: no loop over the stride
            out = dst + r * n + phase_start(n, s, q)
            k = phase_start(n, s, q + 1) - phase_start(n, s, q)
            for j in range(k):
                out[j] = row[q + j * s]


cdef inline void unphase_rows(floating* a, floating* tmp, Py_ssize_t rows, Py_ssize_t n,
                       Py_ssize_t s) noexcept nogil:
    """The inverse of phase_rows, in place (`tmp` holds one row)."""
    cdef Py_ssize_t r, q, i, k
    for r in range(rows):
        memcpy(tmp, a + r * n, n * sizeof(floating))
        k = 0
        for q in range(min(s, n)):
            i = q
            while i < n:
                a[r * n + i] = tmp[k]
                k = k + 1
                i = i + s
