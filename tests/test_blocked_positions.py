"""blocked's kernel gradient by positions (fastconv/_algorithms/blocked_positions.py,
src/_blocked_positions.pxi, src/_blocked_gkp.h): dot products along output rows, gy read as it
lies, the input stored by phase of the width stride.

Every correctness case forces the path (FASTCONV_BLOCKED_GK=positions) and checks that blocked
takes it, so no case can pass on the other path. Shapes give 1-D to 3-D, both precisions,
strides on every axis (the width's through the phased rows), dilation, padding below, at and
past the kernel, groups, output channels that do not fill a block of 4, rows that are and are
not a whole number of vectors, and runs of rows cut by planes, parts and chunks. Results match
fastconv.reference, are the same bits at 1, 2 and 3 threads, agree with the other path to
rounding, never write an input, overwrite a poisoned out=, and give the textbook values for
non-finite inputs. The other instruction-set levels run in tests/test_kernel_levels.py.
"""
import os
from unittest import mock

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

import fastconv
from fastconv import reference
from fastconv._algorithms import blocked, blocked_positions
from fastconv._geometry import make_spec

# (x, w, geometry); every output row at least 16 wide (a float32 vector at AVX-512)
CASES = {
    "cifar-first-layer": ((4, 3, 32, 32), (32, 3, 3, 3), dict(padding=1)),
    "stem-stride-2": ((2, 3, 40, 40), (13, 3, 3, 3), dict(padding=1, stride=2)),
    "resnet-stem-7x7-2": ((1, 3, 45, 47), (6, 3, 7, 7), dict(padding=3, stride=2)),
    "3d": ((2, 3, 5, 9, 20), (8, 3, 3, 3, 3), dict(padding=1)),
    "1d-strided-dilated": ((3, 2, 70), (5, 2, 4), dict(stride=3, dilation=2, padding=2)),
    "groups-mixed": ((2, 4, 23, 45), (6, 2, 3, 5), dict(groups=2, dilation=(2, 1),
                                                         padding=(1, 3), stride=(1, 2))),
    "one-channel-valid": ((2, 1, 28, 28), (6, 1, 5, 5), {}),
    "stride-3-width": ((2, 6, 12, 70), (9, 6, 2, 3), dict(stride=(2, 3))),
    "padding-past-kernel": ((1, 2, 6, 17), (3, 2, 2, 2), dict(padding=(3, 4))),
    "long-1d": ((1, 1, 3000), (10, 1, 10), dict(stride=5)),
}


def _problem(rng, dtype, x_shape, w_shape, geometry):
    x = rng.standard_normal(x_shape).astype(dtype)
    y_shape = reference.conv(x, np.zeros(w_shape, dtype), **geometry).shape
    gy = (rng.standard_normal(y_shape) * 3).astype(dtype)
    return x, gy


@pytest.fixture
def positions(monkeypatch):
    monkeypatch.setenv("FASTCONV_BLOCKED_GK", "positions")


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("name", CASES)
def test_positions_kernel_gradient_matches_reference(name, dtype, rng, positions,
                                                     restore_settings,
                                                     assert_close_to_reference, monkeypatch):
    x_shape, w_shape, geometry = CASES[name]
    spec = make_spec(x_shape, w_shape, dtype=dtype, **geometry)
    assert blocked._by_positions(spec), "the case does not take the path it tests"
    x, gy = _problem(rng, dtype, x_shape, w_shape, geometry)
    copies = (x.copy(), gy.copy())
    results = []
    for threads in (1, 2, 3):
        fastconv.set_num_threads(threads)
        results.append(fastconv.conv_grad_kernel(x, gy, w_shape, algorithm="blocked",
                                                 **geometry))
    want = reference.conv_grad_kernel(x, gy, w_shape, **geometry)
    assert_close_to_reference(results[0], want)
    assert all(np.array_equal(results[0], r) for r in results[1:]), "thread count changed bits"
    assert np.array_equal(x, copies[0]) and np.array_equal(gy, copies[1]), "an input was written"
    monkeypatch.setenv("FASTCONV_BLOCKED_GK", "tiles")
    assert not blocked._by_positions(spec)
    tiles = fastconv.conv_grad_kernel(x, gy, w_shape, algorithm="blocked", **geometry)
    tol = 1e-5 if dtype == np.float32 else 1e-12
    assert np.abs(results[0] - tiles).max() <= tol * np.abs(tiles).max()


def test_out_is_overwritten_not_added_to(positions, rng):
    """The registry's lifted result buffer (out=) arrives holding anything: it is overwritten."""
    x_shape, w_shape, geometry = CASES["groups-mixed"]
    spec = make_spec(x_shape, w_shape, dtype=np.float32, **geometry)
    x, gy = _problem(rng, np.float32, x_shape, w_shape, geometry)
    want = blocked.grad_kernel(spec, x.reshape(spec.x_shape), gy.reshape(spec.y_shape))
    out = np.full(spec.w_shape, np.nan, np.float32)
    got = blocked.grad_kernel(spec, x.reshape(spec.x_shape), gy.reshape(spec.y_shape), out=out)
    assert got is out and np.array_equal(got, want)


def test_non_finite_inputs_give_the_textbook_values(positions, rng):
    """Each product is counted once (a row's last vector zeroes the lanes counted before, in gy
    and x, so an Inf there is not multiplied again), and the padding's zeros meet gy as the
    textbook sum over the padded input has them meet."""
    x_shape, w_shape, geometry = (2, 3, 9, 21), (5, 3, 3, 3), dict(padding=1)
    x, gy = _problem(rng, np.float32, x_shape, w_shape, geometry)
    # rows of 21 outputs: the last vector (outputs 5-20) overlaps the first (0-15), so column
    # 10's products lie in lanes it must not count again (counted: inf; again: 0 * inf = NaN)
    x[0, 1, 4, 10], x[0, 1, 6, 20], x[1, 2, 0, 3] = np.inf, -np.inf, np.nan
    gy[1, 3, 8, 0], gy[0, 0, 2, 19], gy[1, 4, 5, 10] = -np.inf, np.inf, np.inf
    got = fastconv.conv_grad_kernel(x, gy, w_shape, algorithm="blocked", **geometry)
    want = reference.conv_grad_kernel(x, gy, w_shape, **geometry)
    assert np.array_equal(np.isnan(got), np.isnan(want))
    assert np.array_equal(np.isinf(got), np.isinf(want))
    assert np.array_equal(np.sign(got[np.isinf(got)]), np.sign(want[np.isinf(want)]))
    finite = np.isfinite(want)
    assert np.allclose(got[finite], want[finite], rtol=1e-4, atol=1e-4)


def test_rows_narrower_than_a_vector_take_the_other_path(positions):
    lanes = blocked_positions.plan(make_spec((1, 3, 8, 8), (4, 3, 3, 3),
                                             dtype=np.float32)).lanes
    narrow = make_spec((1, 3, 8, lanes + 1), (4, 3, 3, 3), dtype=np.float32)   # rows lanes - 1
    assert not blocked_positions.plan(narrow).applies and not blocked._by_positions(narrow)
    assert blocked_positions.cost(narrow) == float("inf")


def test_workspace_covers_the_scratch_and_a_limit_below_it_leaves_the_other_path(
        rng, restore_settings, monkeypatch):
    x_shape, w_shape, geometry = CASES["cifar-first-layer"]
    spec = make_spec(x_shape, w_shape, dtype=np.float32, **geometry)
    plan = blocked_positions.plan(spec)
    monkeypatch.setenv("FASTCONV_BLOCKED_GK", "positions")
    need = blocked.workspace(spec, "grad_kernel")
    assert need == (spec.batch * spec.in_channels * plan.plane + plan.items * plan.per_item) * 4
    x, gy = _problem(rng, np.float32, x_shape, w_shape, geometry)
    by_positions = fastconv.conv_grad_kernel(x, gy, w_shape, algorithm="blocked", **geometry)
    fastconv.set_workspace_limit(need - 1)
    assert not blocked._by_positions(spec)
    if blocked.supports(spec, "grad_kernel")[0]:
        other = fastconv.conv_grad_kernel(x, gy, w_shape, algorithm="blocked", **geometry)
        assert np.abs(other - by_positions).max() <= 1e-5 * np.abs(by_positions).max()
    fastconv.set_workspace_limit(need)
    assert blocked._by_positions(spec)


def test_unforced_choice_takes_first_layers_and_leaves_wide_channels(monkeypatch):
    """Unforced, the models send wav2vec's first layer (one input channel, 10 taps, stride 5:
    0.54-0.89x the other path's time at the three levels) here, and its 256-channel k3/2 layer
    (1.5-2.5x) to the other path, at every instruction-set level."""
    monkeypatch.delenv("FASTCONV_BLOCKED_GK", raising=False)
    first = make_spec((4, 1, 16000), (256, 1, 10), dtype=np.float32, stride=5)
    wide = make_spec((1, 256, 3199), (256, 256, 3), dtype=np.float32, stride=2)
    assert blocked._by_positions(first) and not blocked._by_positions(wide)


def test_unforced_choice_takes_few_channel_first_layers_at_every_level(monkeypatch):
    """CIFAR's 3 -> 32 and MNIST's 1 -> 6 first layers at batch 128 ran by positions in
    0.52-0.69x the other path's time at all three levels (2-core Xeon, 2 threads,
    bench/blocked_gk_fit.py). With AVX-512's rates for the other path at every level, AVX2's
    models kept both there, at 1.3x and 1.9x: the rates are the level's own."""
    monkeypatch.delenv("FASTCONV_BLOCKED_GK", raising=False)
    cifar = make_spec((128, 3, 32, 32), (32, 3, 3, 3), dtype=np.float32, padding=1)
    mnist = make_spec((128, 1, 28, 28), (6, 1, 5, 5), dtype=np.float32)
    assert blocked._by_positions(cifar) and blocked._by_positions(mnist)


@settings(max_examples=40, deadline=None)
@given(data=st.data())
def test_random_geometries_match_the_reference(data):
    """Forced positions on drawn geometries: 1-3-D, groups, stride and dilation on any axis,
    padding past the kernel, extreme magnitudes (1e-30, 1e30)."""
    with mock.patch.dict(os.environ, {"FASTCONV_BLOCKED_GK": "positions"}):
        _random_geometry_matches(data)


def _random_geometry_matches(data):
    ndim = data.draw(st.integers(1, 3))
    groups = data.draw(st.integers(1, 2))
    cin = groups * data.draw(st.integers(1, 3))
    cout = groups * data.draw(st.integers(1, 6))
    kernel = [data.draw(st.integers(1, 4)) for _ in range(ndim)]
    stride = [data.draw(st.integers(1, 3)) for _ in range(ndim)]
    dilation = [data.draw(st.integers(1, 2)) for _ in range(ndim)]
    padding = [data.draw(st.integers(0, 3)) for _ in range(ndim)]
    reach = [(k - 1) * d + 1 for k, d in zip(kernel, dilation)]
    size = [data.draw(st.integers(max(1, r - 2 * p), 7)) for r, p in zip(reach, padding)]
    # the last axis wide enough for 16 outputs (a float32 vector at AVX-512), or 17-40
    size[-1] = (16 + data.draw(st.integers(0, 24)) - 1) * stride[-1] + reach[-1] - 2 * padding[-1]
    dtype = data.draw(st.sampled_from([np.float32, np.float64]))
    scale = data.draw(st.sampled_from([1.0, 1e-30, 1e30]))
    x_shape, w_shape = (data.draw(st.integers(1, 2)), cin, *size), (cout, cin // groups, *kernel)
    geometry = dict(stride=tuple(stride), dilation=tuple(dilation), padding=tuple(padding),
                    groups=groups)
    assert blocked._by_positions(make_spec(x_shape, w_shape, dtype=dtype, **geometry))
    rng = np.random.default_rng(data.draw(st.integers(0, 2**32 - 1)))
    x, gy = _problem(rng, dtype, x_shape, w_shape, geometry)
    gy = (gy * scale).astype(dtype)
    want = reference.conv_grad_kernel(x, gy, w_shape, **geometry)
    got = fastconv.conv_grad_kernel(x, gy, w_shape, algorithm="blocked", **geometry)
    tol = 1e-5 if dtype == np.float32 else 1e-13
    assert got.shape == want.shape
    positions = gy[0, 0].size * x_shape[0]
    bound = tol * positions * float(np.abs(x).max()) * float(np.abs(gy).max())
    assert np.abs(got - want).max() <= bound
