"""im2col on strided problems: the phased rows and whole-output-row chunks give the reference.

A stride along the width makes im2col store the input's rows by phase (forward, grad_kernel) and
sum col2im by phase (grad_input); chunks of whole output rows take packing's fast path; a tight
workspace limit leaves both for the general path. Each case compares all three operations with
fastconv.reference (eq. 9.8, 9.11, 9.13) and checks 1 and 2 threads give identical bits.
"""
import numpy as np
import pytest

import fastconv
from fastconv import reference

OPS = ("forward", "grad_input", "grad_kernel")

# (x shape, w shape, stride, padding, dilation): odd and even widths (uneven phases), strides 2 and
# 3, a stride along one axis only, 1-D, 3-D; 40 channels x 3x3 = 360 rows makes chunks of 728
# positions at most, so 30x31 outputs take two chunks of whole rows; 64 x 9 rows and 1247 outputs
# in one row make chunks shorter than a row (the general path, phased).
CASES = [
    ((2, 40, 60, 62), (6, 40, 3, 3), 2, 1, 1),
    ((2, 3, 17, 15), (4, 3, 3, 3), 2, 1, 1),
    ((1, 4, 16, 21), (5, 4, 5, 4), 3, 2, 1),
    ((2, 3, 19, 17), (4, 3, 3, 3), (1, 2), 1, 2),
    ((2, 3, 19, 17), (4, 3, 2, 3), (2, 1), 0, 1),
    ((2, 5, 101), (3, 5, 4), 2, 1, 1),
    ((1, 64, 2501), (3, 64, 9), 2, 4, 1),
    ((1, 2, 7, 9, 11), (3, 2, 3, 3, 3), 2, 1, 1),
]


def _run(op, x, w, gy, impl, geometry):
    if op == "forward":
        return impl.conv(x, w, **geometry)
    if op == "grad_input":
        return impl.conv_grad_input(gy, w, x.shape, **geometry)
    return impl.conv_grad_kernel(x, gy, w.shape, **geometry)


def _problem(rng, case, dtype):
    x_shape, w_shape, stride, padding, dilation = case
    geometry = dict(stride=stride, padding=padding, dilation=dilation)
    x = rng.standard_normal(x_shape).astype(dtype)
    w = rng.standard_normal(w_shape).astype(dtype)
    gy = rng.standard_normal(reference.conv(x, w, **geometry).shape).astype(dtype)
    return x, w, gy, geometry


class _Im2col:
    def __getattr__(self, name):
        fn = getattr(fastconv, name)
        return lambda *a, **k: fn(*a, algorithm="im2col", **k)


@pytest.mark.parametrize("limit", [None, 64 * 1024], ids=["phased", "tight-limit"])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("case", CASES, ids=lambda c: f"{c[0]}s{c[2]}")
@pytest.mark.parametrize("op", OPS)
def test_strided_im2col_matches_reference(op, case, dtype, limit, rng, restore_settings,
                                          assert_close_to_reference):
    if limit is not None:
        fastconv.set_workspace_limit(limit)
    x, w, gy, geometry = _problem(rng, case, dtype)
    x0, w0, gy0 = x.copy(), w.copy(), gy.copy()
    expected = _run(op, x, w, gy, reference, geometry)
    results = []
    for threads in (1, 2):
        fastconv.set_num_threads(threads)
        results.append(_run(op, x, w, gy, _Im2col(), geometry))
    assert_close_to_reference(results[0], expected)
    assert np.array_equal(results[0], results[1]), "1 and 2 threads differ"
    for a, a0 in ((x, x0), (w, w0), (gy, gy0)):
        assert np.array_equal(a, a0), "an input was written"

