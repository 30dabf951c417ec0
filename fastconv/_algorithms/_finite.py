"""One policy for the algorithms whose arithmetic can leave finite values where the textbook sum
does not: FFT and Winograd.

Both transform the data before they multiply it. A transform adds up many inputs (a whole line
for the FFT, 36 values of a tile for Winograd), so finite data near the top of the dtype's range
can overflow to Inf in a transform while every product and partial sum of the textbook sum
stays finite; and a transform spreads one NaN or Inf over values the textbook sum keeps apart.
Either way some value of the result is not finite. So these algorithms check the WHOLE result
(one pass over the output, cheap beside the convolution; no intermediate is scanned) and, where
a value is not finite, compute the operation again by summation -- im2col, or the reference where
im2col's workspace does not fit -- whose overflow and NaN/Inf pattern are arithmetic's
(CONTRACT.md). A result that is all finite is exact up to rounding: an overflow never comes back
to a finite value (Inf - Inf and 0 * Inf are NaN). Where every output reads only padding, the
result is zeros -- or NaN where a weight (or gy) is not finite (`padding_only`).
"""
import numpy as np

from .. import _config
from . import im2col, reference

CHUNK = 1 << 16     # elements checked at a time: no temporary of the result's size


def all_finite(a):
    """Whether every value of `a` is finite, in chunks of CHUNK with one small flag buffer."""
    flat = a.reshape(-1)
    if flat.size <= CHUNK:
        return bool(np.isfinite(flat).all())
    flags = np.empty(CHUNK, bool)
    for start in range(0, flat.size, CHUNK):
        part = flat[start:start + CHUNK]
        if not np.isfinite(part, out=flags[:part.size]).all():
            return False
    return True


def exact(op, spec, a, b):
    """`op` on `spec` by summation: im2col where its workspace fits, else the reference."""
    ok, _ = im2col.supports(spec, op)
    fits = ok and im2col.workspace(spec, op) <= _config.get_workspace_limit()
    return getattr(im2col if fits else reference, op)(spec, a, b)


def finite_or_exact(result, spec, op, a, b, *also, checked=False):
    """`result` when it (and each array of `also`, operands the algorithm skipped) is all finite;
    else the op computed again by summation. `result` None: the algorithm gave up already;
    `checked`: it checked every value of `result` as it wrote it (so no second pass here)."""
    if (result is not None and (checked or all_finite(result))
            and all(all_finite(v) for v in also)):
        return result
    return exact(op, spec, a, b)


def padding_only(spec, op, a, b, multiplied):
    """The result of forward or grad_kernel where every output reads only padding: zeros, unless
    `multiplied` (the weights, or gy) holds an Inf or NaN, whose product with the padding's
    zeros is NaN in the textbook sum: then the op by summation."""
    if all_finite(multiplied):
        return np.zeros(spec.y_shape if op == "forward" else spec.w_shape, spec.dtype)
    return exact(op, spec, a, b)
