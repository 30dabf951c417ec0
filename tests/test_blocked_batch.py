"""blocked with the minibatch as the vector lanes (fastconv/_algorithms/blocked_batch.py,
src/_blocked_batch.pxi, src/_blocked_batch.h).

Every correctness case forces the path (FASTCONV_BLOCKED_BATCH=batch) and checks that blocked
takes it, so no case can pass on another path. Shapes give 1-D to 3-D, both precisions, a
batch that fills whole blocks and one that leaves the last block part-filled, stride and
dilation on every axis (the forward and kernel gradient; the input gradient at stride 1),
padding below, at and past the kernel's reach (a crop of the flipped problem), groups, output
channels that do not fill a tile, rows cut into several tiles. Results match
fastconv.reference, are the same bits at 1, 2 and 3 threads, agree with blocked's other paths
to rounding, never write an input, overwrite a poisoned out=, and give the textbook values for
non-finite inputs. The other instruction-set levels run in tests/test_kernel_levels.py.
"""
import os
from unittest import mock

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

import fastconv
from fastconv import reference
from fastconv._algorithms import blocked, blocked_batch
from fastconv._geometry import make_spec

OPS = ("forward", "grad_input", "grad_kernel")
# (x, w, geometry, ops); batches of 16-40 (a float32 vector is 16 lanes at AVX-512, 4 at SSE2)
CASES = {
    "lenet-digits-c2": ((32, 16, 8, 8), (32, 16, 5, 5), dict(padding=2), OPS),
    "few-outputs-part-block": ((19, 6, 12, 12), (7, 6, 5, 5), {}, OPS),
    "strided-dilated": ((17, 3, 9, 11), (5, 3, 3, 2), dict(stride=(2, 1), padding=(1, 0),
                                                           dilation=(1, 2)),
                        ("forward", "grad_kernel")),
    "1d-groups-dilated": ((16, 4, 21), (6, 2, 3), dict(groups=2, padding=2, dilation=2), OPS),
    "3d-strided": ((16, 2, 4, 5, 6), (3, 2, 2, 3, 2), dict(padding=1, stride=(1, 2, 1)),
                   ("forward", "grad_kernel")),
    "padding-past-reach": ((20, 3, 6, 7), (4, 3, 2, 3), dict(padding=(3, 4)), OPS),
    "wide-row-tiles": ((24, 2, 5, 37), (9, 2, 3, 4), dict(padding=(1, 2)), OPS),
}


def _problem(rng, dtype, x_shape, w_shape, geometry):
    x = rng.standard_normal(x_shape).astype(dtype)
    w = rng.standard_normal(w_shape).astype(dtype)
    gy = (rng.standard_normal(reference.conv(x, w, **geometry).shape) * 3).astype(dtype)
    return x, w, gy


def _run(op, x, w, gy, geometry):
    if op == "forward":
        return fastconv.conv(x, w, algorithm="blocked", **geometry)
    if op == "grad_input":
        return fastconv.conv_grad_input(gy, w, x.shape, algorithm="blocked", **geometry)
    return fastconv.conv_grad_kernel(x, gy, w.shape, algorithm="blocked", **geometry)


def _reference(op, x, w, gy, geometry):
    if op == "forward":
        return reference.conv(x, w, **geometry)
    if op == "grad_input":
        return reference.conv_grad_input(gy, w, x.shape, **geometry)
    return reference.conv_grad_kernel(x, gy, w.shape, **geometry)


@pytest.fixture
def batch(monkeypatch):
    monkeypatch.setenv("FASTCONV_BLOCKED_BATCH", "batch")


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("name", CASES)
def test_batch_lanes_match_reference(name, dtype, rng, batch, restore_settings,
                                     assert_close_to_reference, monkeypatch):
    x_shape, w_shape, geometry, ops = CASES[name]
    spec = make_spec(x_shape, w_shape, dtype=dtype, **geometry)
    x, w, gy = _problem(rng, dtype, x_shape, w_shape, geometry)
    copies = (x.copy(), w.copy(), gy.copy())
    for op in ops:
        monkeypatch.setenv("FASTCONV_BLOCKED_BATCH", "batch")
        assert blocked._by_batch(spec, op), f"{op} does not take the path it tests"
        results = []
        for threads in (1, 2, 3):
            fastconv.set_num_threads(threads)
            results.append(_run(op, x, w, gy, geometry))
        assert_close_to_reference(results[0], _reference(op, x, w, gy, geometry))
        assert all(np.array_equal(results[0], r) for r in results[1:]), f"{op}: threads"
        monkeypatch.setenv("FASTCONV_BLOCKED_BATCH", "other")
        assert not blocked._by_batch(spec, op)
        other = _run(op, x, w, gy, geometry)
        tol = 1e-5 if dtype == np.float32 else 1e-12
        assert np.abs(results[0] - other).max() <= tol * np.abs(other).max(), op
    assert all(np.array_equal(a, b) for a, b in zip((x, w, gy), copies)), "an input was written"


def test_out_is_overwritten_not_added_to(batch, rng):
    """The registry's lifted result buffer (out=) arrives holding anything: it is overwritten."""
    x_shape, w_shape, geometry, _ = CASES["1d-groups-dilated"]
    spec = make_spec(x_shape, w_shape, dtype=np.float32, **geometry)
    x, w, gy = _problem(rng, np.float32, x_shape, w_shape, geometry)
    x, gy = x.reshape(spec.x_shape), gy.reshape(spec.y_shape)
    w = w.reshape(spec.w_shape)
    for op, call, shape in (("forward", lambda o: blocked.forward(spec, x, w, out=o), spec.y_shape),
                            ("grad_input", lambda o: blocked.grad_input(spec, gy, w, out=o),
                             spec.x_shape),
                            ("grad_kernel", lambda o: blocked.grad_kernel(spec, x, gy, out=o),
                             spec.w_shape)):
        assert blocked._by_batch(spec, op)
        want = call(None)
        out = np.full(shape, np.nan, np.float32)
        got = call(out)
        assert got is out and np.array_equal(got, want), op


def test_non_finite_values_give_the_textbook_values(batch, rng):
    """Every product of the textbook sum is taken, the padding's zeros included: an Inf weight
    makes NaN where it meets padding in the forward (whose other path gives up on it); the
    input gradient gives up on it (its pass multiplies the zeros around gy, which the textbook
    sum does not) and the registry sums instead. An Inf input spreads to the outputs and
    gradients that read it, each sample in its own lane."""
    x_shape, w_shape, geometry = (18, 3, 6, 7), (4, 3, 3, 3), dict(padding=1)
    x, w, gy = _problem(rng, np.float32, x_shape, w_shape, geometry)
    x[0, 1, 2, 3], x[17, 2, 0, 6], x[5, 0, 5, 0] = np.inf, -np.inf, np.nan
    w[2, 1, 0, 0] = np.inf
    gy[3, 1, 2, 2], gy[16, 0, 5, 6] = -np.inf, np.inf
    for op in OPS:
        got = _run(op, x, w, gy, geometry)
        want = _reference(op, x, w, gy, geometry)
        assert np.array_equal(np.isnan(got), np.isnan(want)), op
        assert np.array_equal(np.isinf(got), np.isinf(want)), op
        assert np.array_equal(np.sign(got[np.isinf(got)]), np.sign(want[np.isinf(want)])), op
        finite = np.isfinite(want)
        assert np.allclose(got[finite], want[finite], rtol=1e-4, atol=1e-3), op


def test_where_the_path_does_not_apply(batch):
    """A batch short of a vector, a 1x1 kernel, the input gradient at stride 2, and maps whose
    lane planes outgrow PLANES_BYTES take blocked's other paths."""
    lanes = blocked_batch.plan(make_spec((32, 3, 8, 8), (4, 3, 3, 3), dtype=np.float32),
                               "forward").lanes
    for x_shape, w_shape, geometry, op in (
            ((lanes - 1, 3, 8, 8), (4, 3, 3, 3), {}, "forward"),
            ((32, 3, 8, 8), (4, 3, 1, 1), {}, "forward"),
            ((32, 3, 9, 9), (4, 3, 3, 3), dict(stride=2), "grad_input"),
            ((32, 64, 64, 64), (4, 64, 3, 3), {}, "grad_kernel")):
        spec = make_spec(x_shape, w_shape, dtype=np.float32, **geometry)
        assert not blocked_batch.plan(spec, op).applies and not blocked._by_batch(spec, op)
        assert blocked_batch.cost(spec, op) == float("inf")


def test_workspace_covers_the_scratch_and_a_limit_below_it_leaves_the_other_path(
        rng, restore_settings, batch):
    x_shape, w_shape, geometry, _ = CASES["lenet-digits-c2"]
    spec = make_spec(x_shape, w_shape, dtype=np.float32, **geometry)
    x, w, gy = _problem(rng, np.float32, x_shape, w_shape, geometry)
    for op in OPS:
        fastconv.set_workspace_limit(256 << 20)
        plan = blocked_batch.plan(spec, op)
        need = blocked.workspace(spec, op)
        assert need == plan.workspace_elements(spec) * 4 and need > 0
        by_batch = _run(op, x, w, gy, geometry)
        fastconv.set_workspace_limit(need - 1)
        assert not blocked._by_batch(spec, op)
        if blocked.supports(spec, op)[0]:
            other = _run(op, x, w, gy, geometry)
            assert np.abs(other - by_batch).max() <= 1e-5 * np.abs(by_batch).max()
        fastconv.set_workspace_limit(need)
        assert blocked._by_batch(spec, op)


def test_unforced_choice_takes_small_first_layers_and_leaves_large_ones(monkeypatch):
    """Unforced, the models send LeNet's first layer's input gradient on 16x16 digits (one
    output channel: 0.6-0.87x the other paths' time at the three levels) here, and CIFAR's
    32 -> 64 layer (2-4x) to the other paths, at every instruction-set level."""
    monkeypatch.delenv("FASTCONV_BLOCKED_BATCH", raising=False)
    first = make_spec((32, 1, 16, 16), (16, 1, 5, 5), dtype=np.float32, padding=2)
    deep = make_spec((128, 32, 16, 16), (64, 32, 3, 3), dtype=np.float32, padding=1)
    assert blocked._by_batch(first, "grad_input")
    assert not any(blocked._by_batch(deep, op) for op in OPS)


@settings(max_examples=40, deadline=None)
@given(data=st.data())
def test_random_geometries_match_the_reference(data):
    """Forced batch lanes on drawn geometries: 1-3-D, groups, stride and dilation on any axis
    (the input gradient at stride 1), padding past the kernel, extreme magnitudes (1e-30,
    1e30), batches filling a block or part of one."""
    with mock.patch.dict(os.environ, {"FASTCONV_BLOCKED_BATCH": "batch"}):
        _random_geometry_matches(data)


def _random_geometry_matches(data):
    ndim = data.draw(st.integers(1, 3))
    groups = data.draw(st.integers(1, 2))
    cin = groups * data.draw(st.integers(1, 3))
    cout = groups * data.draw(st.integers(1, 5))
    kernel = [data.draw(st.integers(1, 3)) for _ in range(ndim)]
    kernel[-1] = max(2, kernel[-1])                         # more than one tap
    stride = [data.draw(st.integers(1, 3)) for _ in range(ndim)]
    dilation = [data.draw(st.integers(1, 2)) for _ in range(ndim)]
    padding = [data.draw(st.integers(0, 3)) for _ in range(ndim)]
    reach = [(k - 1) * d + 1 for k, d in zip(kernel, dilation)]
    size = [data.draw(st.integers(max(1, r - 2 * p), 7)) for r, p in zip(reach, padding)]
    dtype = data.draw(st.sampled_from([np.float32, np.float64]))
    scale = data.draw(st.sampled_from([1.0, 1e-30, 1e30]))
    batch = data.draw(st.sampled_from([16, 17, 35]))
    x_shape, w_shape = (batch, cin, *size), (cout, cin // groups, *kernel)
    geometry = dict(stride=tuple(stride), dilation=tuple(dilation), padding=tuple(padding),
                    groups=groups)
    spec = make_spec(x_shape, w_shape, dtype=dtype, **geometry)
    rng = np.random.default_rng(data.draw(st.integers(0, 2**32 - 1)))
    x, w, gy = _problem(rng, dtype, x_shape, w_shape, geometry)
    x = (x * scale).astype(dtype)
    tol = 1e-5 if dtype == np.float32 else 1e-13
    for op in OPS:
        if op == "grad_input" and spec.stride != (1, 1, 1):
            continue
        assert blocked._by_batch(spec, op), op
        want = _reference(op, x, w, gy, geometry)
        got = _run(op, x, w, gy, geometry)
        assert got.shape == want.shape
        terms = {"forward": cin // groups * np.prod(kernel), "grad_input": cout * np.prod(kernel),
                 "grad_kernel": batch * gy[0, 0].size}[op]
        a, b = {"forward": (x, w), "grad_input": (gy, w), "grad_kernel": (x, gy)}[op]
        bound = tol * terms * float(np.abs(a).max()) * float(np.abs(b).max())
        assert np.abs(got - want).max() <= bound, op
