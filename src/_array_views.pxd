# A NumPy array over memory another array owns, made in C: NumPy's own ways from Python (a slice,
# a reshape, np.ndarray at an offset) parse their arguments in code that a large kernel has just
# flushed from the caches (src/_memory.pyx, src/_callsteps.pyx).
cimport numpy as cnp
from cpython.object cimport PyTypeObject
from cpython.ref cimport Py_INCREF

cdef enum:
    MAX_DIMS = 32       # a view's dims buffer; more dimensions take NumPy's own path


cdef extern from "numpy/arrayobject.h":
    PyTypeObject PyArray_Type
    object PyArray_NewFromDescr(PyTypeObject* subtype, cnp.dtype descr, int nd,
                                cnp.npy_intp* dims, cnp.npy_intp* strides, void* data, int flags,
                                object obj)


cdef inline cnp.ndarray view_over(cnp.ndarray owner, cnp.dtype descr, int nd, cnp.npy_intp* dims,
                                  void* data, int flags):
    """A C-contiguous array of `descr` and dims[:nd] at `data` (inside `owner`'s memory, which it
    keeps alive as its base), with `flags` (C_CONTIGUOUS | ALIGNED, and WRITEABLE or not)."""
    Py_INCREF(descr)            # PyArray_NewFromDescr steals a reference to the descriptor
    cdef cnp.ndarray out = PyArray_NewFromDescr(&PyArray_Type, descr, nd, dims, NULL, data, flags,
                                                None)
    cnp.set_array_base(out, owner)
    return out
