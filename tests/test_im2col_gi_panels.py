"""im2col's input gradient on fastconv's own GEMM (grad_input_panels, src/_im2col.pyx): W^T packed
once per call, gy's chunks packed into panels (whole samples on small maps, chunks of whole
output rows on large ones), col = W^T gy on the register tiles, then col2im.

Every correctness case forces the path (FASTCONV_IM2COL_GI=panels) and checks that the plan took
it, so no case can pass on the BLAS's path. Shapes put the rows of a channel block and the
columns of a chunk off the tile's edges, with groups, stride, dilation, padding, 1-D to 3-D,
chunks of several samples whose panels straddle two samples, and a sample's positions in
several chunks. Results match fastconv.reference, are the same bits at 1, 2 and 3 threads,
agree with the BLAS's path to rounding and never write an input. The other instruction-set
levels run in tests/test_kernel_levels.py.
"""
import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

import fastconv
from fastconv import reference
from fastconv._algorithms import im2col
from fastconv._geometry import make_spec

CASES = [
    ((8, 24, 14, 14), (40, 24, 3, 3), dict(stride=2, padding=1)),     # chunks of samples of 49
    ((3, 5, 9, 7), (6, 5, 3, 3), dict(stride=2, padding=1)),
    ((2, 4, 6, 6, 5), (6, 2, 3, 2, 2), dict(stride=(1, 2, 1), groups=2)),     # 3-D, groups
    ((4, 7, 30), (5, 7, 4), dict(stride=3, padding=2, dilation=2)),
    ((5, 16, 8, 8), (40, 16, 5, 5), dict(padding=2)),
    ((1, 6, 40, 37), (33, 6, 3, 3), dict(padding=1)),       # a sample's positions in 3 chunks
    ((2, 3, 700), (17, 3, 5), dict(padding=((0, 3),))),      # 1-D rows of 700: chunks
    ((1, 96, 9, 9), (70, 96, 2, 2), dict(stride=2)),        # few items: smaller channel blocks
]


def _run(x_shape, w_shape, geometry, dtype, rng):
    w = rng.standard_normal(w_shape).astype(dtype)
    y_shape = reference.conv(np.zeros(x_shape, dtype), w, **geometry).shape
    gy = (rng.standard_normal(y_shape) * 3).astype(dtype)
    return w, gy


@pytest.fixture
def panels(monkeypatch):
    monkeypatch.setenv("FASTCONV_IM2COL_GI", "panels")


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("case", CASES, ids=lambda c: f"{c[0]}x{c[1]}")
def test_panels_input_gradient_matches_reference(case, dtype, rng, panels, restore_settings,
                                                 assert_close_to_reference, monkeypatch):
    x_shape, w_shape, geometry = case
    plan = im2col._Plan(make_spec(x_shape, w_shape, dtype=dtype, **geometry), "grad_input")
    assert plan.gi_panels and plan.packed_w_elements > 0
    w, gy = _run(x_shape, w_shape, geometry, dtype, rng)
    copies = (w.copy(), gy.copy())
    results = []
    for threads in (1, 2, 3):
        fastconv.set_num_threads(threads)
        results.append(fastconv.conv_grad_input(gy, w, x_shape, algorithm="im2col", **geometry))
    want = reference.conv_grad_input(gy, w, x_shape, **geometry)
    assert_close_to_reference(results[0], want)
    assert all(np.array_equal(results[0], r) for r in results[1:]), "thread count changed bits"
    assert np.array_equal(w, copies[0]) and np.array_equal(gy, copies[1]), "an input was written"
    monkeypatch.setenv("FASTCONV_IM2COL_GI", "blocks")
    assert not im2col._Plan(make_spec(x_shape, w_shape, dtype=dtype, **geometry),
                            "grad_input").gi_panels
    blocks = fastconv.conv_grad_input(gy, w, x_shape, algorithm="im2col", **geometry)
    tol = 1e-5 if dtype == np.float32 else 1e-12
    assert np.abs(results[0] - blocks).max() <= tol * np.abs(blocks).max()


def test_chunks_are_whole_samples_or_whole_rows(panels):
    small = im2col._Plan(make_spec(*CASES[0][:2], dtype=np.float32, **CASES[0][2]), "grad_input")
    assert small.samples > 1 and small.width == 49      # 4 items: chunks of 2 samples
    large = im2col._Plan(make_spec(*CASES[5][:2], dtype=np.float32, **CASES[5][2]), "grad_input")
    assert large.samples == 1 and large.width % 37 == 0 and large.width < 40 * 37


def test_out_is_overwritten_not_added_to(panels, rng):
    """The registry's lifted result buffer (out=) arrives holding anything: it is zeroed."""
    x_shape, w_shape, geometry = CASES[0]
    w, gy = _run(x_shape, w_shape, geometry, np.float32, rng)
    spec = make_spec(x_shape, w_shape, dtype=np.float32, **geometry)
    out = np.full(spec.x_shape, np.nan, np.float32)
    got = im2col.grad_input(spec, gy.reshape(spec.y_shape), w.reshape(spec.w_shape), out=out)
    assert got is out
    np.testing.assert_allclose(out.reshape(x_shape),
                               reference.conv_grad_input(gy, w, x_shape, **geometry),
                               rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("x_shape, w_shape, geometry, dtype, taken", [
    ((8, 256, 14, 14), (512, 256, 3, 3), dict(stride=2, padding=1), np.float32, True),
    ((8, 256, 14, 14), (512, 256, 3, 3), dict(stride=2, padding=1), np.float64, True),
    ((1, 64, 56, 56), (64, 64, 3, 3), dict(padding=1), np.float32, True),     # 448-wide chunks
    ((1, 256, 14, 14), (512, 256, 3, 3), dict(stride=2, padding=1), np.float32, False),  # 49
    ((8, 64, 56, 56), (128, 64, 1, 1), dict(stride=2), np.float32, False),   # 1x1: the BLAS's
    ((8, 6, 12, 12), (16, 6, 5, 5), {}, np.float32, False),                  # 16 deep
    ((1, 32, 128, 128), (32, 32, 3, 3), dict(padding=1), np.float32, False),  # 72-row blocks
])
def test_which_input_gradients_take_the_panels(x_shape, w_shape, geometry, dtype, taken,
                                               monkeypatch):
    monkeypatch.delenv("FASTCONV_IM2COL_GI", raising=False)
    monkeypatch.delenv("FASTCONV_IM2COL_GEMM", raising=False)
    spec = make_spec(x_shape, w_shape, dtype=dtype, **geometry)
    if im2col.PACKED_MIN.get(im2col._im2col.kernel_level()) is None:
        taken = False           # the baseline level keeps the BLAS
    assert im2col._Plan(spec, "grad_input").gi_panels == taken
    monkeypatch.setenv("FASTCONV_IM2COL_GEMM", "blas")
    assert not im2col._Plan(spec, "grad_input").gi_panels


def test_a_workspace_limit_too_small_for_the_packed_weights_keeps_the_blas_path(
        panels, rng, restore_settings):
    x_shape, w_shape, geometry = CASES[0]
    spec = make_spec(x_shape, w_shape, dtype=np.float32, **geometry)
    plan = im2col._Plan(spec, "grad_input")
    fastconv.set_workspace_limit(plan.packed_w_elements * 4)     # not one thread's chunk more
    small = im2col._Plan(spec, "grad_input")
    assert not small.gi_panels
    assert small.workspace_elements * 4 <= fastconv.get_workspace_limit()
    w, gy = _run(x_shape, w_shape, geometry, np.float32, rng)
    np.testing.assert_allclose(
        fastconv.conv_grad_input(gy, w, x_shape, algorithm="im2col", **geometry),
        reference.conv_grad_input(gy, w, x_shape, **geometry), rtol=1e-4, atol=1e-4)


@settings(max_examples=30, deadline=None)
@given(batch=st.integers(1, 6), cin=st.integers(1, 20), cout=st.integers(1, 40),
       size=st.integers(3, 30), kernel=st.integers(1, 4), stride=st.integers(1, 3),
       scale=st.sampled_from([1e-30, 1.0, 1e30]), ndim=st.integers(1, 2))
def test_panels_property(batch, cin, cout, size, kernel, stride, scale, ndim):
    """Any geometry, values of extreme magnitude: the reference's values."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("FASTCONV_IM2COL_GI", "panels")
        x_shape = (batch, cin) + (size,) * ndim
        w_shape = (cout, cin) + (min(kernel, size),) * ndim
        geometry = dict(stride=stride, padding=kernel // 2)
        rng = np.random.default_rng([batch, cin, cout, size, kernel, stride, ndim])
        w = rng.standard_normal(w_shape)
        gy = rng.standard_normal(reference.conv(np.zeros(x_shape), w, **geometry).shape) * scale
        got = fastconv.conv_grad_input(gy, w, x_shape, algorithm="im2col", **geometry)
        want = reference.conv_grad_input(gy, w, x_shape, **geometry)
        assert np.abs(got - want).max() <= 1e-12 * max(np.abs(want).max(), 1e-300)
