"""Matrix products of the layers on fastconv's own thread pool (src/_matmul.pyx says why).

`matmul(a, b)` is ``a @ b`` for 2-D float32/float64 arrays (transposed views welcome: they are
handed to BLAS as transposes, not copied); ``out=`` receives the result, and with
``accumulate=True`` the product is added into it (``out += a @ b``, one BLAS pass). Anything
else -- other dtypes, mixed dtypes, more dimensions -- goes to NumPy, which computes the same
product on its own BLAS.
"""
import numpy as np

from .. import _config
from .._lazy import LazyModule

_matmul = LazyModule("fastconv._matmul")      # cimports SciPy's BLAS: loaded on first use
_FLOATS = (np.dtype(np.float32), np.dtype(np.float64))


def _stored(m):
    """(C-contiguous array, transposed) holding the matrix m, without a copy where possible."""
    if m.flags.c_contiguous:
        return m, False
    if m.T.flags.c_contiguous:
        return m.T, True
    return np.ascontiguousarray(m), False


def matmul(a, b, out=None, accumulate=False):
    if (a.ndim != 2 or b.ndim != 2 or a.dtype not in _FLOATS or b.dtype != a.dtype
            or (out is not None and (out.dtype != a.dtype or not out.flags.c_contiguous))):
        product = a @ b
        if out is None:
            return product
        if accumulate:
            out += product
        else:
            out[...] = product
        return out
    if out is None:
        out = np.empty((a.shape[0], b.shape[1]), a.dtype)
        accumulate = False
    sa, ta = _stored(a)
    sb, tb = _stored(b)
    flops = 2 * a.shape[0] * a.shape[1] * b.shape[1]
    with _config.threads_for(flops), _config.blas_single_threaded():
        _matmul.matmul(sa, sb, out, ta, tb, accumulate, _config.get_num_threads())
    return out
