"""blocked's strided input gradient, run as stride-1 phases (fastconv/_algorithms/_phases.py),
against the reference: 1-D to 3-D, both precisions, strides of 2 to 4 on some axes or all,
padding below, at and beyond the kernel, kernels narrower than the stride (inputs no tap
reaches: zeros), groups, dilation along the unstrided axes, inputs whose last values no output
reads; bitwise the same at 1, 2 and 3 threads, no input written; the phases' taps partition the
kernel; a non-finite weight gives the call up to the textbook sum; random geometries
(hypothesis), extreme values included."""
import math

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

import fastconv
from fastconv import reference
from fastconv._algorithms import _phases, blocked
from fastconv._geometry import make_spec



@pytest.fixture(autouse=True)
def phases(monkeypatch):
    """The phases' path even where the input gradient by columns would apply
    (tests/test_blocked_columns.py tests that one)."""
    monkeypatch.setenv("FASTCONV_BLOCKED_GI", "phases")


CASES = {
    "resnet-3x3-2": ((2, 5, 14, 14), (20, 5, 3, 3), dict(stride=2, padding=1)),
    "odd-input-3x3-2": ((2, 3, 15, 13), (17, 3, 3, 3), dict(stride=2, padding=1)),
    "1d-stride-3": ((1, 2, 50), (33, 2, 4), dict(stride=3)),
    "1d-causal": ((2, 4, 21), (5, 4, 3), dict(stride=2, padding=((3, 0),))),
    "1d-stride-4-wide-padding": ((2, 3, 17), (4, 3, 5), dict(stride=4, padding=6)),
    "3d-mixed-strides": ((1, 2, 6, 7, 9), (5, 2, 2, 3, 2), dict(stride=(2, 1, 3), padding=1)),
    "1x1-stride-2": ((2, 4, 9, 9), (6, 4, 1, 1), dict(stride=2)),
    "kernel-below-stride": ((1, 2, 5, 5), (3, 2, 2, 2), dict(stride=3, padding=4)),
    "groups": ((2, 6, 11, 10), (9, 2, 3, 3), dict(stride=2, groups=3, padding=(1, 2))),
    "dilated-unstrided-axis": ((1, 3, 7, 8), (4, 3, 3, 3), dict(stride=(2, 1), dilation=(1, 2),
                                                                 padding=2)),
    "dcgan-4x4-2": ((1, 6, 16, 16), (40, 6, 4, 4), dict(stride=2, padding=1)),
    "unread-last-inputs": ((1, 3, 12, 12), (34, 3, 3, 3), dict(stride=4)),
    "one-input": ((1, 2, 1), (3, 2, 1), dict(stride=2, padding=1)),
}


def _problem(rng, dtype, x_shape, w_shape, geometry):
    w = rng.standard_normal(w_shape).astype(dtype)
    y_shape = reference.conv(np.zeros(x_shape, dtype), w, **geometry).shape
    return w, rng.standard_normal(y_shape).astype(dtype)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("name", sorted(CASES))
def test_strided_input_gradient_matches_the_reference(name, dtype, rng, restore_settings):
    x_shape, w_shape, geometry = CASES[name]
    w, gy = _problem(rng, dtype, x_shape, w_shape, geometry)
    copies = (w.copy(), gy.copy())
    want = reference.conv_grad_input(gy, w, x_shape, **geometry)
    results = []
    for threads in (1, 2, 3):
        fastconv.set_num_threads(threads)
        results.append(fastconv.conv_grad_input(gy, w, x_shape, algorithm="blocked", **geometry))
    scale = max(float(np.abs(want).max()), 1.0)
    tol = 1e-5 if dtype == np.float32 else 1e-13
    assert results[0].shape == want.shape and results[0].dtype == want.dtype
    assert np.abs(results[0] - want).max() <= tol * scale
    assert all(np.array_equal(results[0], r) for r in results[1:]), "thread count"
    assert np.array_equal(w, copies[0]) and np.array_equal(gy, copies[1]), "an input was written"


@pytest.mark.parametrize("name", sorted(CASES))
def test_the_phases_partition_the_inputs_and_the_taps(name):
    """Every input lies in exactly one phase; the phases' taps are disjoint, cover every tap an
    input receives, and take their packed places once each (pos: a permutation)."""
    x_shape, w_shape, geometry = CASES[name]
    spec = make_spec(x_shape, w_shape, dtype=np.float32, **geometry)
    plan = blocked._phase_plan(spec)
    covered = np.zeros((1, 1) + spec.input_size, int)
    for phase in plan.list:
        covered[phase.gx] += 1
        assert covered[phase.gx].size == math.prod(a.count for a in phase.axes)
    assert (covered == 1).all()
    assert sorted(plan.pos) == list(range(math.prod(spec.kernel_size)))
    taps_run = sum(p.geometry.taps for p in plan.list if p.geometry is not None)
    assert taps_run <= math.prod(spec.kernel_size)


def test_axis_phases_follow_the_index_algebra():
    """Input i = q s + r - p receives taps r, r + s, ... from gy[q], gy[q - 1], ...: the phases
    of an axis checked against the forward sum's own index pairs."""
    for n, k, s, p in ((14, 3, 2, 1), (17, 5, 4, 6), (5, 2, 3, 4), (9, 1, 2, 0), (50, 4, 3, 0)):
        o = (n + 2 * p - k) // s + 1
        for a in _phases.axis_phases(n, k, s, p, 1):
            for m in range(a.count):
                i = a.first + m * s
                want = sorted((t, (i + p - t) // s) for t in range(k)
                              if (i + p - t) % s == 0 and 0 <= (i + p - t) // s < o)
                got = sorted((a.r + u * s, a.first_q + m - u) for u in range(a.taps)
                             if 0 <= a.first_q + m - u < o)
                assert got == want, (n, k, s, p, i)


def test_a_non_finite_weight_gives_the_textbook_values(rng):
    x_shape, w_shape, geometry = CASES["resnet-3x3-2"]
    w, gy = _problem(rng, np.float32, x_shape, w_shape, geometry)
    w[3, 1, 2, 0], w[7, 4, 1, 1] = np.inf, np.nan
    got = fastconv.conv_grad_input(gy, w, x_shape, algorithm="blocked", **geometry)
    want = reference.conv_grad_input(gy, w, x_shape, **geometry)
    assert np.array_equal(np.isnan(got), np.isnan(want))
    assert np.array_equal(np.isinf(got), np.isinf(want))


@settings(max_examples=40, deadline=None)
@given(data=st.data())
def test_random_strided_geometries_match_the_reference(data):
    ndim = data.draw(st.integers(1, 3))
    groups = data.draw(st.integers(1, 2))
    cin = groups * data.draw(st.integers(1, 3))
    cout = groups * data.draw(st.integers(1, 20))
    kernel = [data.draw(st.integers(1, 4)) for _ in range(ndim)]
    stride = [data.draw(st.integers(1, 3)) for _ in range(ndim)]
    padding = [data.draw(st.integers(0, 3)) for _ in range(ndim)]
    size = [data.draw(st.integers(max(1, k - 2 * p), 9)) for k, p in zip(kernel, padding)]
    dtype = data.draw(st.sampled_from([np.float32, np.float64]))
    scale = data.draw(st.sampled_from([1.0, 1e-30, 1e30]))
    x_shape, w_shape = (2, cin, *size), (cout, cin // groups, *kernel)
    geometry = dict(stride=tuple(stride), padding=tuple(padding), groups=groups)
    rng = np.random.default_rng(data.draw(st.integers(0, 2**32 - 1)))
    w, gy = _problem(rng, dtype, x_shape, w_shape, geometry)
    gy = (gy * scale).astype(dtype)
    want = reference.conv_grad_input(gy, w, x_shape, **geometry)
    got = fastconv.conv_grad_input(gy, w, x_shape, algorithm="blocked", **geometry)
    tol = 1e-5 if dtype == np.float32 else 1e-13
    assert got.shape == want.shape
    bound = tol * max(float(np.abs(want).max()), float(np.abs(gy).max()) * float(np.abs(w).max()))
    assert np.abs(got - want).max() <= bound


def test_a_hostile_stride_is_refused_without_listing_its_phases():
    """A pass per phase: a stride of 2**62 on a long input would be as many passes as inputs.
    Remainders no input has are never listed, and past MAX_PHASES passes blocked declines."""
    spec = make_spec((1, 1, 10**6), (2, 1, 3), dtype=np.float32, stride=2**62)
    ok, why = blocked.supports(spec, "grad_input")
    assert not ok and "pass per phase" in why
    assert blocked.cost(spec, "grad_input") == math.inf
    short = make_spec((1, 1, 5), (2, 1, 3), dtype=np.float32, stride=2**62)
    # each of 5 inputs its own remainder; inputs 0-2 receive one tap each, 3 and 4 none
    assert [(a.r, a.taps, a.count) for a in _phases.axis_phases(5, 3, 2**62, 0, 1)] == [
        (0, 1, 1), (1, 1, 1), (2, 1, 1), (3, 0, 1), (4, 0, 1)]
    assert blocked.supports(short, "grad_input")[0]
