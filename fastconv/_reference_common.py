"""Array and dtype rules shared by the parts of `fastconv.reference` (convolution, pooling,
unshared convolution). Like the rest of the reference, independent of fastconv's fast code."""
import numpy as np


def real_array(a, name):
    """``np.asarray(a)``, refusing anything that is not bool, integer or real floating point."""
    a = np.asarray(a)
    if a.dtype.kind not in "biuf":
        raise TypeError(f"{name}: expected a real numeric array, got dtype {a.dtype}")
    return a


def result_dtype(*arrays):
    """float32 if every array given (None: absent) is a float of at most 32 bits, else float64
    (the contract's rule)."""
    single = all(a.dtype.kind == "f" and a.dtype.itemsize <= 4 for a in arrays if a is not None)
    return np.dtype(np.float32 if single else np.float64)
