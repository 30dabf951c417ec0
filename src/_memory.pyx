"""Arrays whose data starts on a cache line, for fastconv._aligned: a byte buffer from NumPy, one
line longer than asked, viewed from its first line. In C, one call: the three NumPy steps of the
same in Python (``np.empty``, the address through ``.ctypes.data`` or ``__array_interface__``,
``np.ndarray(..., offset)``) took 15-18 us of a call after a large kernel had flushed the
caches, this 10 us and NumPy's own empty 6-8 (2-core Xeon)."""
cimport numpy as cnp

from _array_views cimport MAX_DIMS, view_over

cnp.import_array()
from operator import index

from numpy import empty as np_empty, integer as np_integer


def empty_on_line(shape, dtype, size_t line, size_t above):
    """An uninitialised C-contiguous array of `shape` (a tuple or an int) and `dtype` whose data
    starts on a multiple of `line` bytes where it is larger than `above` bytes: a view into a
    byte buffer that it keeps alive (``.base``); NumPy's own below that."""
    cdef cnp.dtype descr = dtype if isinstance(dtype, cnp.dtype) else cnp.dtype(dtype)
    cdef tuple dims_t = shape if type(shape) is tuple else (
        (int(shape),) if isinstance(shape, (int, np_integer)) else tuple(shape))
    cdef int ndim = len(dims_t), i
    cdef cnp.npy_intp dims[MAX_DIMS]
    cdef size_t nbytes = descr.itemsize
    if ndim > MAX_DIMS or descr.hasobject:    # NumPy's own: its errors, its initialised objects
        return np_empty(dims_t, descr)
    for i in range(ndim):
        dims[i] = index(dims_t[i])
        if dims[i] < 0:
            raise ValueError(f"negative dimensions are not allowed, got shape {dims_t}")
        if dims[i] and nbytes > (<size_t>-1 >> 1) // <size_t>dims[i]:
            return np_empty(dims_t, descr)      # too large: NumPy's own error
        nbytes *= <size_t>dims[i]
    if nbytes <= above:
        return np_empty(dims_t, descr)
    cdef cnp.npy_intp size = nbytes + line
    cdef cnp.ndarray raw = cnp.PyArray_EMPTY(1, &size, cnp.NPY_UINT8, 0)
    cdef size_t address = <size_t>cnp.PyArray_DATA(raw)
    return view_over(raw, descr, ndim, dims, <void*>(address + (line - address % line) % line),
                     cnp.NPY_ARRAY_CARRAY)
