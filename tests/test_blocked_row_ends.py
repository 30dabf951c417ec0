"""blocked's tiles at the ends of a row skip the products of padding zeros (src/_blocked.pyx,
same_row_taps; src/_blocked_kernels.h, bk_cols' EK): rows of 3 or 5 taps with a "same" padding,
stride 1, rows short enough (3 taps up to 9 outputs, 5 up to 17) -- LeNet's 5x5 on 8x8 maps, a
3x3 on 7x7 ones. At AVX-512 and AVX2 the tiles of up to BK_EK_ACC accumulators at a row's ends
run a kernel row's taps unrolled, each kernel column over the outputs where it reads the input.

Each case checks that the geometry qualifies (so no case passes on the other code), then that the
forward pass and the input gradient match fastconv.reference, are the same bits at 1, 2 and 3
threads, and the same bits as with the skipping off (the products left out are exact zeros of
finite weights), for one row to many, one and two vectors of channels, groups, 2-D and 3-D, both
precisions, and non-finite inputs next to the padding. At the baseline level the kernels take
every product whatever the geometry says; the suite run with FASTCONV_KERNEL_LEVEL=avx2 or
=baseline checks the cases there.
"""
import numpy as np
import pytest

import fastconv
from fastconv import _blocked, reference
from fastconv._algorithms import blocked
from fastconv._geometry import make_spec

# (x, w, padding): output channels 8-40 (one or two vectors at AVX-512), rows of 1-17
CASES = {
    "lenet-c2": ((4, 16, 8, 8), (32, 16, 5, 5), 2),
    "3x3-rows-of-9": ((3, 8, 9, 9), (12, 8, 3, 3), 1),
    "3x3-rows-of-1": ((2, 4, 3, 1), (16, 4, 3, 3), 1),
    "5x5-rows-of-2": ((2, 5, 3, 2), (20, 5, 5, 5), 2),
    "5x5-rows-of-17": ((2, 3, 4, 17), (16, 3, 5, 5), 2),
    "3d": ((1, 4, 3, 6, 6), (40, 4, 3, 3, 3), 1),
    "groups": ((2, 8, 5, 6), (24, 4, 3, 3), 1),
}
GROUPS = {"groups": 2}
OPS = ("forward", "grad_input")


@pytest.fixture
def rows(monkeypatch):
    """blocked on bk_row's rows (not the minibatch as lanes, not the planes; the input gradient
    by its flipped forward pass, not by columns), the skipping on again afterwards."""
    monkeypatch.setenv("FASTCONV_BLOCKED_BATCH", "other")
    monkeypatch.setenv("FASTCONV_BLOCKED_PLANES", "other")
    monkeypatch.setenv("FASTCONV_BLOCKED_GI", "phases")
    yield
    _blocked.skip_padding_at_row_ends(True)


def _run(op, x, w, gy, padding, groups=1):
    if op == "forward":
        return fastconv.conv(x, w, padding=padding, groups=groups, algorithm="blocked")
    return fastconv.conv_grad_input(gy, w, x.shape, padding=padding, groups=groups,
                                    algorithm="blocked")


def _expected(op, x, w, gy, padding, groups=1):
    if op == "forward":
        return reference.conv(x, w, padding=padding, groups=groups)
    return reference.conv_grad_input(gy, w, x.shape, padding=padding, groups=groups)


def _qualifies(spec, op):
    g = blocked._geometry(spec, op == "grad_input")
    return _blocked.row_end_taps(g.n, g.p, g.e, g.o, g.s, g.kernel[2], g.dilation[2],
                                 g.copies and not g.edges)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("op", OPS)
@pytest.mark.parametrize("name", CASES)
def test_row_ends_match_reference_and_the_full_sums(name, op, dtype, rng, rows,
                                                    restore_settings, assert_close_to_reference):
    x_shape, w_shape, padding = CASES[name]
    groups = GROUPS.get(name, 1)
    spec = make_spec(x_shape, w_shape, padding=padding, groups=groups, dtype=dtype)
    assert _qualifies(spec, op) == w_shape[-1], "the case does not take the path it tests"
    assert not blocked._by_batch(spec, op) and not blocked._by_columns(spec)
    x = rng.standard_normal(x_shape).astype(dtype)
    w = rng.standard_normal(w_shape).astype(dtype)
    gy = rng.standard_normal((x_shape[0], w_shape[0]) + x_shape[2:]).astype(dtype)   # 'same'
    copies = (x.copy(), w.copy(), gy.copy())
    results = []
    for threads in (1, 2, 3):
        fastconv.set_num_threads(threads)
        results.append(_run(op, x, w, gy, padding, groups))
    assert_close_to_reference(results[0], _expected(op, x, w, gy, padding, groups))
    for other in results[1:]:
        assert np.array_equal(results[0], other), "the result depends on the thread count"
    _blocked.skip_padding_at_row_ends(False)
    assert _qualifies(spec, op) == 0
    full = _run(op, x, w, gy, padding, groups)
    assert np.array_equal(results[0], full), "skipping padding's products changed the sums"
    for a, b in zip((x, w, gy), copies):
        assert np.array_equal(a, b), "an input was written"


@pytest.mark.parametrize("op", OPS)
def test_non_finite_values_next_to_the_padding(op, rng, rows, assert_close_to_reference):
    x_shape, w_shape, padding = CASES["lenet-c2"]
    x = rng.standard_normal(x_shape)
    w = rng.standard_normal(w_shape)
    gy = rng.standard_normal((x_shape[0], w_shape[0]) + x_shape[2:])
    for a in (x, gy):       # the first and last columns, where the skipped products lie
        a[0, 1, 2, 0], a[1, 3, 0, -1], a[2, 0, -1, -1] = np.nan, np.inf, -np.inf
    assert_close_to_reference(_run(op, x, w, gy, padding), _expected(op, x, w, gy, padding))


@pytest.mark.parametrize("geometry", [
    dict(x=(1, 4, 9, 10), w=(8, 4, 3, 3), padding=1),       # rows of 10: too long for 3 taps
    dict(x=(1, 4, 9, 18), w=(8, 4, 5, 5), padding=2),       # rows of 18: too long for 5 taps
    dict(x=(1, 4, 9, 9), w=(8, 4, 3, 3), padding=(1, 0)),   # no padding along the row
    dict(x=(1, 4, 9, 9), w=(8, 4, 3, 3), padding=1, dilation=2),
    dict(x=(1, 4, 9, 9), w=(8, 4, 7, 7), padding=3),        # 7 taps a row
])
def test_other_rows_take_every_product(geometry):
    spec = make_spec(geometry["x"], geometry["w"], padding=geometry["padding"],
                     dilation=geometry.get("dilation", 1))
    assert _qualifies(spec, "forward") == 0
