"""A repeated call's steps before the arithmetic, in C: the call memo's key and lookup
(fastconv/_call_memo.py) and the lifted view of an operand (fastconv/_validate.lifted).

After a large kernel has flushed the caches each Python step of a call costs 10-20x its warm
time: on ResNet-18's layers at batch 1 (2-core Xeon, AVX-512, after a PyTorch call, median) the
memo's key and lookup took 10 us and the two operands' views 9 us, of the 44 us a call spent
outside its algorithm. The same steps here are one call each, with the same answers.
"""
cimport numpy as cnp
from cpython.object cimport PyObject

from _array_views cimport MAX_DIMS, view_over

cnp.import_array()


cdef inline bint plain(object value):
    """`_geometry._plain(value) is not None`: an int, a str, or a tuple of ints and tuples of
    ints -- types whose equal values validate alike (a bool equals 1 but must be refused)."""
    if type(value) is int or type(value) is str:
        return True
    if type(value) is not tuple:
        return False
    for v in <tuple>value:
        if type(v) is int:
            continue
        if type(v) is not tuple:
            return False
        for u in <tuple>v:
            if type(u) is not int:
                return False
    return True


cdef inline long dtype_code(cnp.ndarray a):
    """The array's type number and byte order, for the key: the dtype object's own hash walks
    its fields in NumPy's code. Dtypes that share a code share their validation (they are all
    real numbers of one kind and size, or all refused, and refused calls are never kept)."""
    return cnp.PyArray_TYPE(a) * 256 + <long>(<cnp.dtype><PyObject*>cnp.PyArray_DESCR(a)).byteorder


def key(kind, tuple arrays, tuple values, flip, padding_mode, algorithm):
    """A hashable key of a call of `kind` with `arrays` (NumPy arrays, or None for an absent
    bias) and the geometry `values`, or None where the call is not plain (a padding mode other
    than zeros takes the full path every time)."""
    if (type(flip) is not bool or type(algorithm) is not str or type(padding_mode) is not str
            or padding_mode != "zeros"):
        return None
    parts = [kind, flip, algorithm]
    for a in arrays:
        if a is None:
            parts.append(None)
        elif type(a) is cnp.ndarray:
            parts.append(a.shape)
            parts.append(dtype_code(<cnp.ndarray>a))
        else:
            return None
    for v in values:
        if not plain(v):
            return None
        parts.append(v)
    return tuple(parts)


def find(dict memo, kind, tuple arrays, tuple values, flip, padding_mode, algorithm):
    """(`key`'s key, what `memo` holds for it or None)."""
    k = key(kind, arrays, values, flip, padding_mode, algorithm)
    return k, (None if k is None else memo.get(k))


def view_as(a, shape, dtype):
    """`a` (exactly a NumPy array, C-contiguous, aligned, of `dtype`) viewed as `shape` (a tuple
    of ints), with a's data and writeability, as ``a.reshape(shape)`` gives it; None for any
    other `a` or `shape`, or a shape of another size (the caller copies, or reshapes and so
    raises)."""
    if type(a) is not cnp.ndarray or type(shape) is not tuple:
        return None
    cdef cnp.ndarray arr = <cnp.ndarray>a
    cdef int flags = cnp.PyArray_FLAGS(arr)
    cdef int need = cnp.NPY_ARRAY_C_CONTIGUOUS | cnp.NPY_ARRAY_ALIGNED
    cdef cnp.dtype descr = <cnp.dtype><PyObject*>cnp.PyArray_DESCR(arr)
    if (flags & need) != need or not isinstance(dtype, cnp.dtype) \
            or not cnp.PyArray_EquivTypes(descr, <cnp.dtype>dtype):
        return None
    cdef int nd = len(shape), i
    cdef cnp.npy_intp dims[MAX_DIMS]
    cdef cnp.npy_intp size = 1
    if nd > MAX_DIMS:
        return None
    for i in range(nd):
        if type(shape[i]) is not int:
            return None
        dims[i] = shape[i]
        if dims[i] < 0:
            return None
        size *= dims[i]
    if size != cnp.PyArray_SIZE(arr):
        return None
    return view_over(arr, descr, nd, dims, cnp.PyArray_DATA(arr),
                     need | (flags & cnp.NPY_ARRAY_WRITEABLE))
