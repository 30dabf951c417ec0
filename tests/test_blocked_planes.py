"""blocked's forward pass along planes (fastconv/_algorithms/blocked_planes.py,
src/_blocked_planes.pxi, src/_blocked_planes.h).

Every correctness case forces the path (FASTCONV_BLOCKED_PLANES=planes) and checks that blocked
takes it, so no case can pass on another path. Shapes give 1-D to 3-D, both precisions, rows of
exactly a vector, of one lane more (the last vector overlapping the one before) and of several
tiles of vectors, a stride's phases on every axis, dilation, padding below, at and past the
kernel's reach, groups, output channels that do not fill a tile (2, 7, 13). Results match
fastconv.reference, are the same bits at 1, 2 and 3 threads, agree with bk_row's rows to
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
from fastconv._algorithms import blocked, blocked_planes
from fastconv._geometry import make_spec

# (x, w, geometry); rows of 16-70 outputs (a float32 vector is 16 lanes at AVX-512, 4 at SSE2)
CASES = {
    "cifar-c1": ((3, 3, 32, 32), (32, 3, 3, 3), dict(padding=1)),
    "row-of-a-vector-plus-one": ((2, 4, 6, 19), (7, 4, 3, 3), dict(padding=(1, 0))),
    "strided-dilated": ((2, 3, 19, 70), (13, 3, 3, 2), dict(stride=(2, 3), padding=(1, 2),
                                                            dilation=(1, 2))),
    "1d-groups": ((2, 4, 300), (6, 2, 7), dict(groups=2, padding=3, stride=2)),
    "3d": ((1, 2, 4, 5, 40), (5, 2, 2, 3, 3), dict(padding=1, stride=(2, 1, 1))),
    "padding-past-reach": ((2, 3, 5, 33), (2, 3, 2, 3), dict(padding=(3, 4))),
    "one-row": ((1, 1, 1, 64), (8, 1, 1, 5), {}),
}


def _problem(rng, dtype, x_shape, w_shape):
    return (rng.standard_normal(x_shape).astype(dtype),
            rng.standard_normal(w_shape).astype(dtype))


@pytest.fixture
def planes(monkeypatch):
    monkeypatch.setenv("FASTCONV_BLOCKED_PLANES", "planes")
    monkeypatch.setenv("FASTCONV_BLOCKED_BATCH", "other")


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("name", CASES)
def test_planes_match_reference(name, dtype, rng, planes, restore_settings,
                                assert_close_to_reference, monkeypatch):
    x_shape, w_shape, geometry = CASES[name]
    spec = make_spec(x_shape, w_shape, dtype=dtype, **geometry)
    x, w = _problem(rng, dtype, x_shape, w_shape)
    copies = (x.copy(), w.copy())
    assert blocked._by_planes(spec), "the forward pass does not take the path it tests"
    results = []
    for threads in (1, 2, 3):
        fastconv.set_num_threads(threads)
        results.append(fastconv.conv(x, w, algorithm="blocked", **geometry))
    assert_close_to_reference(results[0], reference.conv(x, w, **geometry))
    assert all(np.array_equal(results[0], r) for r in results[1:]), "threads"
    monkeypatch.setenv("FASTCONV_BLOCKED_PLANES", "other")
    assert not blocked._by_planes(spec)
    other = fastconv.conv(x, w, algorithm="blocked", **geometry)
    tol = 1e-5 if dtype == np.float32 else 1e-12
    assert np.abs(results[0] - other).max() <= tol * np.abs(other).max()
    assert all(np.array_equal(a, b) for a, b in zip((x, w), copies)), "an input was written"


def test_out_is_overwritten_not_added_to(planes, rng):
    """The registry's lifted result buffer (out=) arrives holding anything: it is overwritten."""
    x_shape, w_shape, geometry = CASES["strided-dilated"]
    spec = make_spec(x_shape, w_shape, dtype=np.float32, **geometry)
    x, w = _problem(rng, np.float32, x_shape, w_shape)
    x, w = x.reshape(spec.x_shape), w.reshape(spec.w_shape)
    assert blocked._by_planes(spec)
    want = blocked.forward(spec, x, w)
    out = np.full(spec.y_shape, np.nan, np.float32)
    got = blocked.forward(spec, x, w, out=out)
    assert got is out and np.array_equal(got, want)


def test_non_finite_values_give_the_textbook_values(planes, rng):
    """Every product of the textbook sum is taken, the padding's zeros included: an Inf weight
    makes NaN where it meets padding (bk_row's rows give up on it); an Inf or NaN input spreads
    to the outputs that read it, and only to those (the columns computed past a row's outputs
    are never stored)."""
    x_shape, w_shape, geometry = (2, 3, 6, 37), (7, 3, 3, 3), dict(padding=1)
    x, w = _problem(rng, np.float32, x_shape, w_shape)
    x[0, 1, 2, 3], x[1, 2, 0, 36], x[1, 0, 5, 0] = np.inf, -np.inf, np.nan
    w[2, 1, 0, 0] = np.inf
    got = fastconv.conv(x, w, algorithm="blocked", **geometry)
    want = reference.conv(x, w, **geometry)
    assert np.array_equal(np.isnan(got), np.isnan(want))
    assert np.array_equal(np.isinf(got), np.isinf(want))
    assert np.array_equal(np.sign(got[np.isinf(got)]), np.sign(want[np.isinf(want)]))
    finite = np.isfinite(want)
    assert np.allclose(got[finite], want[finite], rtol=1e-4, atol=1e-3)


def test_where_the_path_does_not_apply(planes):
    """Rows narrower than a vector (ResNet-18's 7x7 maps), more than FEW_CHANNELS input channels
    a group, more than SHORT_SUM products an output (ResNet-18's 3 x 49-tap stem) and one output
    channel a group (a depthwise layer) take the rows."""
    lanes = blocked_planes.plan(make_spec((1, 3, 8, 8), (4, 3, 3, 3), dtype=np.float32)).lanes
    for x_shape, w_shape, geometry in (
            ((1, 2, 7, lanes + 1), (4, 2, 3, 3), {}),                  # rows of lanes - 1
            ((1, 5, 7, 40), (4, 5, 3, 3), {}),
            ((1, 3, 64, 64), (8, 3, 7, 7), dict(stride=2, padding=3)),
            ((1, 4, 5, 40), (4, 1, 3, 3), dict(groups=4))):
        spec = make_spec(x_shape, w_shape, dtype=np.float32, **geometry)
        assert not blocked_planes.plan(spec).applies and not blocked._by_planes(spec)
        assert blocked_planes.cost(spec) == float("inf")


def test_workspace_covers_the_scratch_and_a_limit_below_it_leaves_the_rows(
        rng, restore_settings, planes):
    x_shape, w_shape, geometry = CASES["cifar-c1"]
    spec = make_spec(x_shape, w_shape, dtype=np.float32, **geometry)
    x, w = _problem(rng, np.float32, x_shape, w_shape)
    fastconv.set_workspace_limit(256 << 20)
    need = blocked.workspace(spec, "forward")
    assert need == blocked_planes.plan(spec).workspace_elements(spec) * 4 and need > 0
    by_planes = fastconv.conv(x, w, algorithm="blocked", **geometry)
    fastconv.set_workspace_limit(need - 1)
    assert not blocked._by_planes(spec)
    if blocked.supports(spec, "forward")[0]:    # the rows' own workspace may not fit either
        other = fastconv.conv(x, w, algorithm="blocked", **geometry)
        assert np.abs(other - by_planes).max() <= 1e-5 * np.abs(by_planes).max()
    fastconv.set_workspace_limit(need)
    assert blocked._by_planes(spec)


def test_unforced_choice_takes_few_channel_first_layers_and_leaves_deep_ones(monkeypatch):
    """Unforced, the model sends CIFAR's first layer (3 -> 32 channels on 32x32 maps: 0.7-0.83x
    the rows' time at AVX-512 and AVX2, 2 threads) along planes, and ResNet-18's 64 -> 64 3x3
    and 256-channel 1-D layers (1.2-2.8x) to the rows, at AVX-512 and AVX2; at the baseline level
    (where the two tie) nothing."""
    monkeypatch.delenv("FASTCONV_BLOCKED_PLANES", raising=False)
    first = make_spec((32, 3, 32, 32), (32, 3, 3, 3), dtype=np.float32, padding=1)
    deep = (make_spec((1, 64, 56, 56), (64, 64, 3, 3), dtype=np.float32, padding=1),
            make_spec((1, 256, 3199), (256, 256, 3), dtype=np.float32, stride=2))
    assert blocked._by_planes(first) == (blocked._blocked.vector_bytes() >= 32)
    assert not any(blocked._by_planes(spec) for spec in deep)


@settings(max_examples=40, deadline=None)
@given(data=st.data())
def test_random_geometries_match_the_reference(data):
    """Forced planes on drawn geometries: 1-3-D, groups, stride and dilation on any axis,
    padding past the kernel, extreme magnitudes (1e-30, 1e30), rows of 16-40 outputs."""
    with mock.patch.dict(os.environ, {"FASTCONV_BLOCKED_PLANES": "planes",
                                      "FASTCONV_BLOCKED_BATCH": "other"}):
        _random_geometry_matches(data)


def _random_geometry_matches(data):
    ndim = data.draw(st.integers(1, 3))
    groups = data.draw(st.integers(1, 2))
    cin = groups * data.draw(st.integers(1, 3))
    cout = groups * data.draw(st.integers(2, 8))
    kernel = [data.draw(st.integers(1, 3)) for _ in range(ndim)]
    stride = [data.draw(st.integers(1, 3)) for _ in range(ndim)]
    dilation = [data.draw(st.integers(1, 2)) for _ in range(ndim)]
    padding = [data.draw(st.integers(0, 3)) for _ in range(ndim)]
    reach = [(k - 1) * d + 1 for k, d in zip(kernel, dilation)]
    size = [data.draw(st.integers(max(1, r - 2 * p), 6)) for r, p in zip(reach, padding)]
    width = data.draw(st.integers(16, 40))          # the last axis: a row of 16-40 outputs
    size[-1] = (width - 1) * stride[-1] + reach[-1] - 2 * padding[-1]
    dtype = data.draw(st.sampled_from([np.float32, np.float64]))
    scale = data.draw(st.sampled_from([1.0, 1e-30, 1e30]))
    batch = data.draw(st.integers(1, 3))
    x_shape, w_shape = (batch, cin, *size), (cout, cin // groups, *kernel)
    geometry = dict(stride=tuple(stride), dilation=tuple(dilation), padding=tuple(padding),
                    groups=groups)
    spec = make_spec(x_shape, w_shape, dtype=dtype, **geometry)
    rng = np.random.default_rng(data.draw(st.integers(0, 2**32 - 1)))
    x, w = _problem(rng, dtype, x_shape, w_shape)
    x = (x * scale).astype(dtype)
    assert blocked._by_planes(spec)
    want = reference.conv(x, w, **geometry)
    got = fastconv.conv(x, w, algorithm="blocked", **geometry)
    assert got.shape == want.shape
    tol = 1e-5 if dtype == np.float32 else 1e-13
    bound = (tol * (cin // groups) * np.prod(kernel) * float(np.abs(x).max())
             * float(np.abs(w).max()))
    assert np.abs(got - want).max() <= bound
