"""One policy for values that are not finite, for the algorithms whose arithmetic can differ there
from the textbook sum's (fft, winograd, separable's 1-D passes, depthwise's skipped zeros and
dropped columns), applied in one place: the registry (`_registry.settled`), on every call an
algorithm runs -- ``run()``, prepared convolutions and autotuning's timings alike.

A transform adds up many inputs (a whole line for the FFT, 36 values of a tile for Winograd), so
finite data near the top of the dtype's range can overflow to Inf in a transform while every
product and partial sum of the textbook sum stays finite; and a transform spreads one NaN or Inf
over values the textbook sum keeps apart. An algorithm that skips products (the padding's zeros,
dropped columns) loses the NaN that 0 * Inf makes in the textbook sum. Either way some value of
the result is not finite, or a skipped operand is. So such an operation is checked and, where a
value is not finite, computed again by summation -- im2col, or the reference where im2col's
workspace does not fit -- whose overflow and NaN/Inf pattern are arithmetic's (CONTRACT.md). A
result that is all finite is exact up to rounding: an overflow never comes back to a finite
value (Inf - Inf and 0 * Inf are NaN).

An algorithm declares per operation what the registry does with its result, in ``NONFINITE``
({op: rule}; an operation it does not name is returned as it comes, with no Python work added):

* ``CHECK_RESULT``: the registry checks every value of the result (one pass over the output,
  cheap beside the convolution; no intermediate is scanned) and sums again where one is not
  finite.
* ``GIVES_UP``: the algorithm checked what it needs itself (winograd each value as it wrote it,
  depthwise the kernel before its input gradient); its result is taken as it is.

Under either rule an operation returns None where it gave up -- a non-finite operand it would
skip or smear (a kernel for winograd, the operand multiplied by padding only for fft) or a
block of its result that was not finite -- and the registry computes the operation by summation.
"""
import numpy as np

from . import _config
from ._lazy import LazyModule

_blocked = LazyModule("fastconv._blocked")      # its kernels' nonfinite check, on first use

CHUNK = 1 << 16     # elements checked at a time: no temporary of the result's size
VECTOR_ABOVE = 4096     # float32/64 arrays past this many values: bk_nonfinite on the call's threads

CHECK_RESULT = "check_result"
GIVES_UP = "gives_up"
RULES = (CHECK_RESULT, GIVES_UP)


def all_finite(a):
    """Whether every value of `a` is finite. A contiguous float32/64 array of more than
    VECTOR_ABOVE values is read once in the kernels' vectors, on the call's threads (NumPy's
    isfinite in chunks, a flag array written and read again, took 3-5% of an FFT convolution of a
    512-2048 square image: 0.72 ms of a 2048 x 2048 image's 14 ms, 2.4x less this way on the
    2-core Xeon); others by isfinite in chunks of CHUNK with one small flag buffer."""
    flat = a.reshape(-1)
    if (flat.size > VECTOR_ABOVE and flat.dtype in (np.float32, np.float64)
            and flat.flags.c_contiguous):
        return _blocked.all_finite(flat, _config.get_num_threads())
    if flat.size <= CHUNK:
        return bool(np.isfinite(flat).all())
    flags = np.empty(CHUNK, bool)
    for start in range(0, flat.size, CHUNK):
        part = flat[start:start + CHUNK]
        if not np.isfinite(part, out=flags[:part.size]).all():
            return False
    return True
