"""Max pooling's kernel paths agree bitwise: 2x2 windows at stride 2 inside the input take
values and indices in one pass, in vectors of outputs and then one output at a time for the
rest of a row (src/_pooling_2x2.h); other windows two elements wide
take their values in a sweep of their own (two elements per window, no inner loop), the rest in
the general loop, the indices in a backward sweep.

The same windows run through the general path when the problem gets one more axis of size 1
with a 1-wide window: x (N, C, H, W) pooled with kernel (kh, 2) is x[..., None] pooled with
kernel (kh, 2, 1), visited in the same row-major order and with the same flat indices. (3-D
pools have no room for the extra axis: they are checked against the reference alone.)
"""
import numpy as np
import pytest

from fastconv import pooling as P
from fastconv import reference as R

# Values that break a careless maximum: ties, signed zeros, infinities, NaN.
TRICKY = np.array([0.0, -0.0, 1.0, -1.0, 2.0, -np.inf, np.inf, np.nan])

# (x spatial shape, kernel, stride, padding, ceil_mode); the last axis's windows are 2 wide.
PAIR_CASES = [
    ((9,), (2,), (2,), (0,), False),
    ((8, 10), (2, 2), (2, 2), (0, 0), False),
    ((9, 11), (2, 2), (2, 2), (0, 0), False),     # 2x2 at stride 2: the one-pass row kernel
    ((16, 24), (2, 2), (2, 2), (0, 0), False),
    ((5, 70), (2, 2), (2, 2), (0, 0), False),     # 35 a row: 16-lane vectors and a tail
    ((6, 7), (2, 2), (2, 2), (0, 0), True),       # a partial last window: the general path
    ((8, 10), (2, 2), (1, 1), (0, 0), False),
    ((7, 10), (3, 2), (2, 2), (1, 0), True),
    ((4, 6, 8), (2, 2, 2), (2, 2, 2), (0, 0, 0), False),
]


@pytest.mark.parametrize("nan_share", (0.0, 0.1, 0.5))
@pytest.mark.parametrize("dtype", (np.float32, np.float64))
@pytest.mark.parametrize("case", PAIR_CASES)
def test_pair_windows_equal_the_general_path(rng, case, dtype, nan_share):
    spatial, k, s, p, ceil = case
    weights = np.r_[np.full(7, (1 - nan_share) / 7), nan_share]
    x = rng.choice(TRICKY, size=(2, 3) + spatial, p=weights).astype(dtype)
    y, idx = P.max_pool(x, k, s, p, 1, ceil, return_indices=True)
    if len(spatial) < 3:                        # room for one more axis
        general_y, general_idx = P.max_pool(x[..., None], k + (1,), s + (1,), p + (0,), 1, ceil,
                                            return_indices=True)
        assert y.tobytes() == general_y[..., 0].tobytes()
        np.testing.assert_array_equal(idx, general_idx[..., 0])
    ref_y, ref_idx = R.max_pool(x, k, s, p, 1, ceil, return_indices=True)
    np.testing.assert_array_equal(y, ref_y)
    np.testing.assert_array_equal(idx, ref_idx)
