"""blocked's input gradient by columns (fastconv/_algorithms/blocked_columns.py,
src/_blocked_columns.pxi): col = W^T gy with (input channel, tap) as the vector lanes, then
col2im.

Every correctness case forces the path (FASTCONV_BLOCKED_GI=columns) and checks that blocked
takes it, so no case can pass on the phases' path. Shapes give 1-D to 3-D, both precisions,
stride (with dilation along the same axis, which the phases refuse), padding below, at and past
the kernel, groups, kernels narrower than the stride (inputs no tap reaches: zeros), maps whose
positions take several chunks of rows, and channel blocks of 1 to 32 lanes' worth of taps.
Results match fastconv.reference, are the same bits at 1, 2 and 3 threads, agree with the
phases' path to rounding, never write an input, overwrite a poisoned out=, and give the
textbook values for non-finite weights. The other instruction-set levels run in
tests/test_kernel_levels.py.
"""
import math
import os
from unittest import mock

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

import fastconv
from fastconv import reference
from fastconv._algorithms import blocked, blocked_columns
from fastconv._geometry import make_spec

# (x, w, geometry); input channels per group a multiple of 32 so that whole channel blocks
# exist at every level and precision (32 lanes of taps at AVX-512 float32)
CASES = {
    "resnet-3x3-2": ((2, 32, 14, 14), (20, 32, 3, 3), dict(stride=2, padding=1)),
    "odd-input-3x3-2": ((1, 32, 15, 13), (17, 32, 3, 3), dict(stride=2, padding=1)),
    "stride-1-5x5": ((2, 32, 9, 8), (11, 32, 5, 5), dict(padding=2)),
    "1d-stride-2-dilated": ((2, 32, 41), (9, 32, 3), dict(stride=2, dilation=2, padding=3)),
    "1d-causal": ((1, 64, 30), (7, 64, 4), dict(stride=3, padding=((5, 0),))),
    "3d-mixed-strides": ((1, 32, 5, 7, 9), (6, 32, 2, 3, 2), dict(stride=(2, 1, 3), padding=1)),
    "kernel-below-stride": ((1, 32, 7, 7), (3, 32, 2, 2), dict(stride=3, padding=4)),
    "groups": ((2, 64, 11, 10), (10, 32, 3, 3), dict(stride=2, groups=2, padding=(1, 2))),
    "1x1-stride-2": ((2, 32, 9, 9), (6, 32, 1, 1), dict(stride=2)),
    "chunks-of-rows": ((1, 32, 40, 41), (5, 32, 3, 3), dict(padding=1)),   # 1640 positions
    "dilated-2d": ((1, 32, 12, 12), (4, 32, 3, 3), dict(stride=(2, 1), dilation=(2, 3),
                                                         padding=2)),
}


def _problem(rng, dtype, x_shape, w_shape, geometry):
    w = rng.standard_normal(w_shape).astype(dtype)
    y_shape = reference.conv(np.zeros(x_shape, dtype), w, **geometry).shape
    gy = (rng.standard_normal(y_shape) * 3).astype(dtype)
    return w, gy


@pytest.fixture
def columns(monkeypatch):
    monkeypatch.setenv("FASTCONV_BLOCKED_GI", "columns")


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("name", CASES)
def test_columns_input_gradient_matches_reference(name, dtype, rng, columns, restore_settings,
                                                  assert_close_to_reference, monkeypatch):
    x_shape, w_shape, geometry = CASES[name]
    spec = make_spec(x_shape, w_shape, dtype=dtype, **geometry)
    assert blocked._by_columns(spec), "the case does not take the path it tests"
    w, gy = _problem(rng, dtype, x_shape, w_shape, geometry)
    copies = (w.copy(), gy.copy())
    results = []
    for threads in (1, 2, 3):
        fastconv.set_num_threads(threads)
        results.append(fastconv.conv_grad_input(gy, w, x_shape, algorithm="blocked", **geometry))
    want = reference.conv_grad_input(gy, w, x_shape, **geometry)
    assert_close_to_reference(results[0], want)
    assert all(np.array_equal(results[0], r) for r in results[1:]), "thread count changed bits"
    assert np.array_equal(w, copies[0]) and np.array_equal(gy, copies[1]), "an input was written"
    if spec.stride != (1, 1, 1) and max(spec.dilation) > 1 and "dilated" in name:
        return      # the phases refuse a dilated strided axis: nothing to agree with
    monkeypatch.setenv("FASTCONV_BLOCKED_GI", "phases")
    assert not blocked._by_columns(spec)
    phases = fastconv.conv_grad_input(gy, w, x_shape, algorithm="blocked", **geometry)
    tol = 1e-5 if dtype == np.float32 else 1e-12
    assert np.abs(results[0] - phases).max() <= tol * np.abs(phases).max()


def test_out_is_overwritten_not_added_to(columns, rng):
    """The registry's lifted result buffer (out=) arrives holding anything: it is overwritten."""
    x_shape, w_shape, geometry = CASES["groups"]
    spec = make_spec(x_shape, w_shape, dtype=np.float32, **geometry)
    w, gy = _problem(rng, np.float32, x_shape, w_shape, geometry)
    want = blocked.grad_input(spec, gy.reshape(spec.y_shape), w.reshape(spec.w_shape))
    out = np.full(spec.x_shape, np.nan, np.float32)
    got = blocked.grad_input(spec, gy.reshape(spec.y_shape), w.reshape(spec.w_shape), out=out)
    assert got is out and np.array_equal(got, want)


def test_a_non_finite_weight_gives_the_textbook_values(columns, rng):
    """The lanes are the weights' own values and col2im drops the products that reach into the
    padding, so an Inf or NaN weight reaches exactly the inputs the textbook sum sends it to."""
    x_shape, w_shape, geometry = CASES["resnet-3x3-2"]
    w, gy = _problem(rng, np.float32, x_shape, w_shape, geometry)
    w[3, 1, 2, 0], w[7, 4, 1, 1], w[0, 31, 0, 0] = np.inf, np.nan, -np.inf
    got = fastconv.conv_grad_input(gy, w, x_shape, algorithm="blocked", **geometry)
    want = reference.conv_grad_input(gy, w, x_shape, **geometry)
    assert np.array_equal(np.isnan(got), np.isnan(want))
    assert np.array_equal(np.isinf(got), np.isinf(want))
    finite = np.isfinite(want)
    assert np.allclose(got[finite], want[finite], rtol=1e-4, atol=1e-4)


def test_strided_dilated_axes_run_by_columns_unforced(rng):
    """The phases refuse dilation along a strided axis; blocked now takes such a problem by
    columns where whole channel blocks exist, and still refuses it where they do not."""
    x_shape, w_shape, geometry = CASES["1d-stride-2-dilated"]
    for dtype, tol in ((np.float32, 1e-5), (np.float64, 1e-12)):    # float64 too: no other way
        spec = make_spec(x_shape, w_shape, dtype=dtype, **geometry)
        assert blocked.supports(spec, "grad_input")[0] and blocked._by_columns(spec)
        w, gy = _problem(rng, dtype, x_shape, w_shape, geometry)
        got = fastconv.conv_grad_input(gy, w, x_shape, algorithm="blocked", **geometry)
        want = reference.conv_grad_input(gy, w, x_shape, **geometry)
        assert np.abs(got - want).max() <= tol * np.abs(want).max()
    odd = make_spec((2, 3, 41), (9, 3, 3), dtype=np.float32, **geometry)     # 3 channels
    ok, why = blocked.supports(odd, "grad_input")
    assert not ok and "dilation 1" in why


def test_blocks_fill_whole_vectors_and_workspace_covers_the_scratch(columns):
    for name, (x_shape, w_shape, geometry) in CASES.items():
        for dtype in (np.float32, np.float64):
            spec = make_spec(x_shape, w_shape, dtype=dtype, **geometry)
            plan = blocked_columns.plan(spec)
            assert plan.applies and plan.cb * plan.taps % plan.v == 0, name
            assert plan.cg % plan.cb == 0
            assert (blocked.workspace(spec, "grad_input")
                    == plan.threads() * plan.per_thread * spec.dtype.itemsize)


def test_partial_channel_blocks_take_the_phases(columns):
    """A group whose input channels do not fill whole blocks is never run by columns."""
    spec = make_spec((1, 20, 9, 9), (8, 20, 3, 3), dtype=np.float32, stride=2, padding=1)
    assert not blocked_columns.plan(spec).applies and not blocked._by_columns(spec)


def test_unforced_choice_is_float32_and_short_passes(monkeypatch):
    """Unforced, only float32 takes the columns where the phases run (float64 measured slower
    than its model), and a 1-D row longer than CHUNK_MOST never does (one pass of it)."""
    monkeypatch.delenv("FASTCONV_BLOCKED_GI", raising=False)
    geometry = dict(stride=2, padding=1)
    f32 = make_spec((1, 256, 14, 14), (512, 256, 3, 3), dtype=np.float32, **geometry)
    f64 = make_spec((1, 256, 14, 14), (512, 256, 3, 3), dtype=np.float64, **geometry)
    assert blocked._by_columns(f32) and not blocked._by_columns(f64)
    long = make_spec((1, 64, 2 * blocked_columns.CHUNK_MOST + 9), (64, 64, 3), dtype=np.float32,
                     stride=2)
    assert not blocked_columns.plan(long).applies


def test_a_workspace_limit_below_the_columns_scratch_leaves_the_phases(rng, restore_settings,
                                                                        monkeypatch):
    """The columns' scratch counts against the workspace limit: below it blocked runs the
    phases where their own scratch fits (the same result to rounding), and otherwise declines
    the problem with the workspace as its reason."""
    x_shape, w_shape, geometry = (1, 64, 14, 14), (128, 64, 3, 3), dict(stride=2, padding=1)
    spec = make_spec(x_shape, w_shape, dtype=np.float32, **geometry)
    assert blocked._by_columns(spec)
    w, gy = _problem(rng, np.float32, x_shape, w_shape, geometry)
    by_columns = fastconv.conv_grad_input(gy, w, x_shape, algorithm="blocked", **geometry)
    columns_bytes = blocked.workspace(spec, "grad_input")
    monkeypatch.setenv("FASTCONV_BLOCKED_GI", "phases")
    phases_bytes = blocked.workspace(spec, "grad_input")
    monkeypatch.delenv("FASTCONV_BLOCKED_GI")
    fastconv.set_workspace_limit(columns_bytes - 1)
    assert not blocked._by_columns(spec)
    ok, why = blocked.supports(spec, "grad_input")
    if phases_bytes < columns_bytes:        # the level's vectors decide which is larger
        assert ok
        by_phases = fastconv.conv_grad_input(gy, w, x_shape, algorithm="blocked", **geometry)
        assert np.abs(by_phases - by_columns).max() <= 1e-5 * np.abs(by_columns).max()
    else:
        assert not ok and "workspace limit" in why
    fastconv.set_workspace_limit(max(columns_bytes, phases_bytes) + 1)
    assert blocked._by_columns(spec)


@settings(max_examples=40, deadline=None)
@given(data=st.data())
def test_random_geometries_match_the_reference(data):
    """Forced columns on drawn geometries: 1-3-D, groups, stride and dilation on any axis,
    padding past the kernel, extreme magnitudes (1e-30, 1e30)."""
    with mock.patch.dict(os.environ, {"FASTCONV_BLOCKED_GI": "columns"}):
        _random_geometry_matches(data)


def _random_geometry_matches(data):
    ndim = data.draw(st.integers(1, 3))
    groups = data.draw(st.integers(1, 2))
    cin = groups * 32 * data.draw(st.integers(1, 2))
    cout = groups * data.draw(st.integers(1, 9))
    kernel = [data.draw(st.integers(1, 4)) for _ in range(ndim)]
    stride = [data.draw(st.integers(1, 3)) for _ in range(ndim)]
    dilation = [data.draw(st.integers(1, 2)) for _ in range(ndim)]
    padding = [data.draw(st.integers(0, 3)) for _ in range(ndim)]
    reach = [(k - 1) * d + 1 for k, d in zip(kernel, dilation)]
    size = [data.draw(st.integers(max(1, r - 2 * p), 9)) for r, p in zip(reach, padding)]
    dtype = data.draw(st.sampled_from([np.float32, np.float64]))
    scale = data.draw(st.sampled_from([1.0, 1e-30, 1e30]))
    x_shape, w_shape = (data.draw(st.integers(1, 2)), cin, *size), (cout, cin // groups, *kernel)
    geometry = dict(stride=tuple(stride), dilation=tuple(dilation), padding=tuple(padding),
                    groups=groups)
    assert blocked._by_columns(make_spec(x_shape, w_shape, dtype=dtype, **geometry))
    rng = np.random.default_rng(data.draw(st.integers(0, 2**32 - 1)))
    w, gy = _problem(rng, dtype, x_shape, w_shape, geometry)
    gy = (gy * scale).astype(dtype)
    want = reference.conv_grad_input(gy, w, x_shape, **geometry)
    got = fastconv.conv_grad_input(gy, w, x_shape, algorithm="blocked", **geometry)
    tol = 1e-5 if dtype == np.float32 else 1e-13
    assert got.shape == want.shape
    bound = tol * max(float(np.abs(want).max()), float(np.abs(gy).max()) * float(np.abs(w).max()))
    assert np.abs(got - want).max() <= bound


def test_a_hostile_stride_never_sizes_a_phase_buffer_by_it(columns):
    """col2im's phase buffer has stride-many phases a row: a stride of 2**62 would make it
    astronomically large. Such a plan does not apply (its scratch is past WORK_BYTES), and
    blocked declines the problem as the phases do, without allocating."""
    spec = make_spec((1, 32, 10**6), (2, 32, 3), dtype=np.float32, stride=2**62)
    assert not blocked_columns.plan(spec).applies and not blocked._by_columns(spec)
    assert not blocked.supports(spec, "grad_input")[0]
    assert blocked.cost(spec, "grad_input") == math.inf
