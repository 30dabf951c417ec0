"""im2col's forward on fastconv's own GEMM (src/_gemm_kernels.h): weights packed into blocks of
the register tile's rows, columns packed straight into panels of its columns.

Every case forces the packed GEMM (FASTCONV_IM2COL_GEMM=packed; the chooser's rule takes it only
for float32 layers of enough channels and positions) and checks the plan uses it, so the test
cannot pass on the BLAS path. Shapes put output channels and positions off the tile's edges
(every narrower tile), with groups, stride (the phased input), dilation, padding, 1-D to 3-D,
few chunks (the shared path, `kblocks` > 1) and small maps (chunks of several samples, whose
tiles straddle two samples). Results match fastconv.reference, are the same
bits at 1, 2 and 3 threads, agree with the BLAS path to rounding, and never write an input.
The other instruction-set levels run in tests/test_kernel_levels.py.
"""
import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

import fastconv
from fastconv import reference
from fastconv._algorithms import im2col
from fastconv._geometry import make_spec

CASES = [
    ((2, 3, 19, 23), (13, 3, 3, 3), dict(padding=1)),
    ((1, 5, 17, 40), (37, 5, 2, 3), dict(stride=(1, 3), dilation=(2, 1), padding=(1, 2))),
    ((3, 8, 12, 12), (26, 4, 5, 5), dict(padding=2, groups=2)),
    ((2, 6, 9, 31), (1, 6, 3, 3), dict(stride=2)),
    ((1, 24, 5, 6), (320, 24, 3, 3), dict(padding=1)),                 # kblocks > 1
    ((1, 8, 9, 13), (260, 8, 3, 3), dict(stride=2, padding=1)),        # kblocks > 1, phased
    ((2, 7, 101), (50, 7, 4), dict(padding="same", dilation=3)),
    ((2, 3, 5, 9, 8), (25, 3, 3, 2, 3), dict(padding=1, stride=(1, 2, 1))),
    ((1, 4, 70, 3), (12, 4, 1, 1), dict(stride=(2, 1))),
]
SEVERAL = [             # small maps: chunks of several whole samples (49, 64, 36, 9 positions)
    ((9, 6, 9, 9), (29, 6, 3, 3), {}),
    ((16, 3, 8, 8), (16, 3, 5, 5), dict(padding=2)),
    ((5, 4, 7, 7, 4), (26, 2, 3, 3, 2), dict(groups=2, stride=(2, 1, 1))),
    ((20, 5, 17), (40, 5, 3), dict(stride=2, padding=1)),
    ((8, 70, 7, 7), (90, 70, 1, 1), {}),      # a 1x1 layer on small maps (MobileNetV2's last)
    # few chunks and many output channels: chunks of whole samples after the width was first
    # narrowed for more chunks (the buffers were sized for part of a sample: heap corruption)
    ((2, 5, 13, 13), (390, 5, 1, 1), {}),
    ((3, 4, 9, 15), (290, 2, 1, 1), dict(groups=2)),
]
CASES += SEVERAL


def plan_spec_output(x_shape, w_shape, dtype, geometry):
    return make_spec(x_shape, w_shape, dtype=dtype, **geometry).output_size


@pytest.fixture
def packed(monkeypatch):
    monkeypatch.setenv("FASTCONV_IM2COL_GEMM", "packed")


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("case", CASES, ids=lambda c: f"{c[0]}x{c[1]}")
def test_packed_forward_matches_reference(case, dtype, rng, packed, restore_settings,
                                          assert_close_to_reference, monkeypatch):
    x_shape, w_shape, geometry = case
    x = (rng.standard_normal(x_shape) * 3).astype(dtype)
    w = rng.standard_normal(w_shape).astype(dtype)
    copies = (x.copy(), w.copy())
    plan = im2col._Plan(make_spec(x_shape, w_shape, dtype=dtype, **geometry), "forward")
    assert plan.packed and (plan.samples > 1) == (case in SEVERAL), plan.samples
    positions = int(np.prod(plan_spec_output(x_shape, w_shape, dtype, geometry)))
    assert plan.samples == 1 or plan.width == positions, (plan.width, positions)
    results = []
    for threads in (1, 2, 3):
        fastconv.set_num_threads(threads)
        results.append(fastconv.conv(x, w, algorithm="im2col", **geometry))
    assert_close_to_reference(results[0], reference.conv(x, w, **geometry))
    assert all(np.array_equal(results[0], r) for r in results[1:]), "thread count changed bits"
    assert np.array_equal(x, copies[0]) and np.array_equal(w, copies[1]), "an input was written"
    monkeypatch.setenv("FASTCONV_IM2COL_GEMM", "blas")
    blas = fastconv.conv(x, w, algorithm="im2col", **geometry)
    scale = np.abs(blas).max()
    tol = 1e-5 if dtype == np.float32 else 1e-12
    assert np.abs(results[0] - blas).max() <= tol * scale


def test_packed_forward_writes_every_output(rng, packed):
    """out= poisoned with NaN: every element written (edge tiles included), nothing read."""
    x = rng.standard_normal((2, 5, 13, 11)).astype(np.float32)
    w = rng.standard_normal((29, 5, 3, 3)).astype(np.float32)
    out = np.full((2, 29, 11, 9), np.nan, np.float32)
    got = fastconv.plan(x.shape, w.shape, algorithm="im2col").forward(x, w, out=out)
    assert got is out and np.isfinite(out).all()
    np.testing.assert_allclose(out, reference.conv(x, w), rtol=1e-4, atol=1e-4)


def test_packed_forward_keeps_the_workspace_limit(rng, packed, restore_settings):
    """Its packed weights and panels count against the limit; a limit too tight for them falls
    back to the BLAS path, with the same result to rounding."""
    x = rng.standard_normal((2, 16, 20, 20)).astype(np.float32)
    w = rng.standard_normal((40, 16, 3, 3)).astype(np.float32)
    spec = make_spec(x.shape, w.shape, dtype=np.float32)
    plan = im2col._Plan(spec, "forward")
    assert plan.packed and plan.workspace_elements * 4 <= fastconv.get_workspace_limit()
    expected = reference.conv(x, w)
    fastconv.set_workspace_limit(plan.packed_w_elements * 4)      # not even the weights fit
    plan = im2col._Plan(spec, "forward")
    assert not plan.packed and plan.workspace_elements * 4 <= fastconv.get_workspace_limit()
    np.testing.assert_allclose(fastconv.conv(x, w, algorithm="im2col"), expected,
                               rtol=1e-4, atol=1e-4)


def test_the_rule_takes_float32_layers_of_enough_channels_and_positions():
    """The default: the packed GEMM for a ResNet-like float32 layer at AVX2/AVX-512, the BLAS for
    float64, 1x1 layers on large maps (read in place) and the baseline level."""
    layer = make_spec((1, 64, 56, 56), (64, 64, 3, 3), dtype=np.float32, padding=1)
    level = im2col._im2col.kernel_level()
    assert im2col._packed_gemm(layer) == (level >= 1)
    assert not im2col._packed_gemm(make_spec((1, 64, 56, 56), (64, 64, 3, 3), dtype=np.float64,
                                             padding=1))
    assert not im2col._packed_gemm(make_spec((1, 64, 56, 56), (64, 64, 1, 1), dtype=np.float32))
    # a 1x1 layer on 7x7 maps: the packed GEMM's chunks take several samples, not at batch 1
    small = make_spec((8, 320, 7, 7), (1280, 320, 1, 1), dtype=np.float32)
    assert im2col._packed_gemm(small) == (level >= 1)
    assert not im2col._packed_gemm(make_spec((1, 320, 7, 7), (1280, 320, 1, 1), dtype=np.float32))


@settings(max_examples=40, deadline=None)
@given(batch=st.integers(1, 4), channels=st.integers(1, 6),
       out=st.one_of(st.integers(1, 40), st.integers(250, 420)),
       size=st.tuples(st.integers(1, 15), st.integers(1, 15)), k=st.sampled_from([1, 3]),
       groups=st.sampled_from([1, 2]))
def test_packed_forward_any_batch_and_channels(batch, channels, out, size, k, groups):
    """Random batches, channel counts (many output channels: the shared path's blocks) and small
    maps (chunks of several samples): the plan's chunks are whole samples wherever they take
    several, and the result is the reference's."""
    channels, out = channels * groups, -(-out // groups) * groups
    rng = np.random.default_rng([batch, channels, out, *size, k])
    x = rng.standard_normal((batch, channels, *size)).astype(np.float32)
    w = rng.standard_normal((out, channels // groups, k, k)).astype(np.float32)
    geometry = dict(padding=k // 2, groups=groups)
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("FASTCONV_IM2COL_GEMM", "packed")
        spec = make_spec(x.shape, w.shape, dtype=np.float32, **geometry)
        plan = im2col._Plan(spec, "forward")
        assert plan.samples == 1 or plan.width == int(np.prod(spec.output_size))
        got = fastconv.conv(x, w, algorithm="im2col", **geometry)
    np.testing.assert_allclose(got, reference.conv(x, w, **geometry), rtol=1e-4, atol=1e-4)
