"""The pointwise algorithm (1x1 layers as GEMMs with the large operand read in place) against the
reference: forward and both gradients, float32 and float64, 1-D to 3-D, groups, output channels
and positions off its register tile's edges (fewer rows than a tile, rows past the last whole
block, part-filled panels), batches; bitwise thread-count invariance, untouched inputs, every
output written, values that are not finite, what it refuses, and its workspace."""
import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

import fastconv
from fastconv import reference
from fastconv._algorithms import pointwise
from fastconv._geometry import make_spec

OPS = ("forward", "grad_input", "grad_kernel")

# (x shape, w shape, geometry); the tile is 12 (AVX-512) or 6 rows by 2 vectors of columns
CASES = {
    "mobilenet-320-1280": ((1, 320, 7, 7), (1280, 320, 1, 1), {}),
    "one-of-everything": ((1, 1, 1, 1), (1, 1, 1, 1), {}),
    "rows-below-a-tile": ((2, 5, 3, 4), (7, 5, 1, 1), {}),
    "rows-past-whole-blocks": ((3, 13, 40), (25, 13, 1), {}),
    "one-output-channel": ((2, 40, 37), (1, 40, 1), {}),
    "groups": ((4, 33, 9, 9), (51, 11, 1, 1), dict(groups=3)),
    "groups-1d": ((3, 6, 11), (4, 3, 1), dict(groups=2)),
    "3d": ((2, 24, 5, 5, 5), (36, 24, 1, 1, 1), {}),
    "long-rows": ((2, 64, 100), (13, 64, 1), {}),
    "many-samples-few-positions": ((4, 20, 150), (30, 20, 1), {}),
    "deep-small-map": ((2, 300, 7, 7), (50, 300, 1, 1), {}),
    "dilation-is-moot": ((2, 3, 17), (11, 3, 1), dict(dilation=4)),
    # the last panel's few columns past its whole vectors, summed without a vector (gm_ip_tail):
    # 49 = 3 vectors + 1 at AVX-512 float32; depth off the vectors; rows off its row groups
    "tail-column": ((2, 37, 7, 7), (70, 37, 1, 1), {}),
    "tail-columns-kernel-gradient": ((3, 17, 66), (40, 17, 1), {}),
    "tail-only": ((2, 45, 3), (150, 45, 1), {}),
    # B read in place (at most IN_PLACE_ROWS rows of C): whole panels only (64 positions: a
    # multiple of every level's panel), and rows split into two small tiles (16 and 28 rows at
    # AVX-512: 8 + 8 for the last 16; 8 and 20 at AVX2: 4 + 4 for the last 8)
    "in-place-whole-panels": ((2, 9, 8, 8), (12, 9, 1, 1), {}),
    "in-place-two-small-tiles": ((3, 19, 33), (16, 19, 1), {}),
    "in-place-28-rows": ((2, 10, 70), (28, 10, 1), {}),
    "in-place-8-rows": ((2, 7, 51), (8, 7, 1), {}),
    "in-place-20-rows-groups": ((2, 12, 45), (40, 6, 1), dict(groups=2)),
}


def _run(op, x, w, gy, geometry, algorithm="pointwise"):
    if op == "forward":
        return fastconv.conv(x, w, algorithm=algorithm, **geometry)
    if op == "grad_input":
        return fastconv.conv_grad_input(gy, w, x.shape, algorithm=algorithm, **geometry)
    return fastconv.conv_grad_kernel(x, gy, w.shape, algorithm=algorithm, **geometry)


def _want(op, x, w, gy, geometry):
    if op == "forward":
        return reference.conv(x, w, **geometry)
    if op == "grad_input":
        return reference.conv_grad_input(gy, w, x.shape, **geometry)
    return reference.conv_grad_kernel(x, gy, w.shape, **geometry)


def _arrays(rng, case, dtype):
    x_shape, w_shape, geometry = case
    x = rng.standard_normal(x_shape).astype(dtype)
    w = rng.standard_normal(w_shape).astype(dtype)
    gy = rng.standard_normal(reference.conv(x, w, **geometry).shape).astype(dtype)
    return x, w, gy, geometry


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("op", OPS)
@pytest.mark.parametrize("name", sorted(CASES))
def test_matches_the_reference_at_any_thread_count(name, op, dtype, rng, restore_settings,
                                                   assert_close_to_reference):
    x, w, gy, geometry = _arrays(rng, CASES[name], dtype)
    copies = [a.copy() for a in (x, w, gy)]
    results = []
    for threads in (1, 2, 3):
        fastconv.set_num_threads(threads)
        results.append(_run(op, x, w, gy, geometry))
    assert results[0].dtype == dtype
    assert_close_to_reference(results[0], _want(op, x, w, gy, geometry))
    assert all(np.array_equal(results[0], r) for r in results[1:]), "thread count changed bits"
    assert all(np.array_equal(a, b) for a, b in zip((x, w, gy), copies)), "an input was written"


@pytest.mark.parametrize("op", OPS)
def test_every_output_is_written(op, rng):
    """out= poisoned with NaN: every element written (part-filled panels and the rows past the
    last whole block of tiles included), none read."""
    x, w, gy, geometry = _arrays(rng, CASES["rows-past-whole-blocks"], np.float32)
    spec = make_spec(x.shape, w.shape, dtype=np.float32)
    shape = {"forward": spec.y_shape, "grad_input": spec.x_shape, "grad_kernel": spec.w_shape}[op]
    out = np.full(shape, np.nan, np.float32)
    a, b = {"forward": (x, w), "grad_input": (gy, w), "grad_kernel": (x, gy)}[op]
    lifted = {"forward": (spec.x_shape, spec.w_shape), "grad_input": (spec.y_shape, spec.w_shape),
              "grad_kernel": (spec.x_shape, spec.y_shape)}[op]
    got = getattr(pointwise, op)(spec, a.reshape(lifted[0]), b.reshape(lifted[1]), out)
    assert got is out and np.isfinite(out).all()
    want = _want(op, x, w, gy, geometry)
    np.testing.assert_allclose(out.reshape(want.shape), want, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("op", OPS)
def test_values_that_are_not_finite_spread_as_in_the_textbook_sum(op, rng):
    """Every product of the sum is taken: an Inf or NaN reaches exactly the outputs the
    reference's does (the panels' zero columns past the positions never reach an output)."""
    x, w, gy, geometry = _arrays(rng, CASES["rows-past-whole-blocks"], np.float64)
    x[1, 3, 17], w[4, 2, 0], gy[2, 9, 33] = np.inf, np.nan, -np.inf
    got = _run(op, x, w, gy, geometry)
    with np.errstate(invalid="ignore"):
        want = _want(op, x, w, gy, geometry)
    np.testing.assert_array_equal(np.isnan(got), np.isnan(want))
    np.testing.assert_array_equal(np.isinf(got), np.isinf(want))
    finite = np.isfinite(want)
    np.testing.assert_allclose(got[finite], want[finite], rtol=1e-10, atol=1e-10)


@settings(max_examples=30, deadline=None)
@given(batch=st.integers(1, 3), channels=st.integers(1, 40), out=st.integers(1, 40),
       size=st.integers(1, 70), groups=st.sampled_from([1, 2]), op=st.sampled_from(OPS),
       scale=st.sampled_from([1.0, 1e-30, 1e30]))
def test_any_sizes_and_extreme_values(batch, channels, out, size, groups, op, scale):
    """Random channel counts and positions (every tile and panel shape) with values near the
    ends of float32's range: the reference's result, to rounding."""
    channels, out = channels * groups, out * groups
    rng = np.random.default_rng([batch, channels, out, size])
    x = (rng.standard_normal((batch, channels, size)) * scale).astype(np.float32)
    w = rng.standard_normal((out, channels // groups, 1)).astype(np.float32)
    gy = rng.standard_normal((batch, out, size)).astype(np.float32)
    geometry = dict(groups=groups)
    got = _run(op, x, w, gy, geometry)
    want = _want(op, x.astype(np.float64), w.astype(np.float64), gy.astype(np.float64), geometry)
    bound = np.abs(want).max() if np.isfinite(want).all() else 0.0
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4 * bound)


@pytest.mark.parametrize("geometry, w_shape, why", [
    (dict(padding=1), (4, 3, 1, 1), "padding"),
    (dict(stride=2), (4, 3, 1, 1), "stride 1"),
    ({}, (4, 3, 3, 3), "1x1 kernel"),
])
def test_refuses_what_is_not_a_pointwise_layer(geometry, w_shape, why):
    spec = make_spec((1, 3, 8, 8), w_shape, dtype=np.float32, **geometry)
    for op in OPS:
        ok, reason = pointwise.supports(spec, op)
        assert not ok and why in reason


def test_keeps_the_workspace_limit(rng, restore_settings):
    """Its packed panels count against the limit: below them it refuses, and "auto" runs
    another algorithm with the same result."""
    x = rng.standard_normal((2, 64, 14, 14)).astype(np.float32)
    w = rng.standard_normal((96, 64, 1, 1)).astype(np.float32)
    spec = make_spec(x.shape, w.shape, dtype=np.float32)
    need = pointwise.workspace(spec, "forward")
    assert 0 < need <= fastconv.get_workspace_limit() and pointwise.supports(spec, "forward")[0]
    fastconv.set_workspace_limit(need - 1)
    ok, reason = pointwise.supports(spec, "forward")
    assert not ok and "workspace limit" in reason
    np.testing.assert_allclose(fastconv.conv(x, w), reference.conv(x, w), rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("dtype, tail", [(np.float32, 1), (np.float64, None)])
def test_a_7x7_map_sums_its_last_column_without_a_vector(dtype, tail):
    """49 positions: whole vectors, then one column that gm_ip_tail sums (float32 at every
    level; float64 where a vector has at least 4 lanes). Without it that column took a vector
    of its own: 4 vectors of work for 3 1/16 at AVX-512."""
    spec = make_spec((1, 320, 7, 7), (1280, 320, 1, 1), dtype=dtype)
    plan = pointwise._plan(spec, "forward")
    if tail is None:
        tail = 1 if plan.lanes >= 4 else 0
    assert plan.tail_columns == tail
    assert plan.widths[-1] == (49 % plan.cols) // plan.lanes if tail else plan.widths[-1] >= 1


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_reads_b_in_place_where_few_rows_read_each_panel(dtype):
    """Forward and grad_input read x's or gy's rows where they lie when C has at most
    IN_PLACE_ROWS rows (packing then cost more than it saved: 35% of MobileNetV2's 32 -> 16
    layer), packing only a part-filled last panel; the kernel gradient (B transposed) packs."""
    def plan(x_shape, w_shape, op):
        return pointwise._plan(make_spec(x_shape, w_shape, dtype=dtype), op)
    small = plan((1, 32, 112, 112), (16, 32, 1, 1), "forward")
    assert small.in_place
    assert small.packed == (small.k * small.cols if small.n % small.cols else 0)
    assert plan((1, 32, 112, 112), (16, 32, 1, 1), "grad_input").in_place      # m = 32
    assert not plan((1, 32, 112, 112), (16, 32, 1, 1), "grad_kernel").in_place
    rows = pointwise.IN_PLACE_ROWS
    assert plan((1, 8, 30), (rows, 8, 1), "forward").in_place
    big = plan((1, 8, 30), (rows + 1, 8, 1), "forward")
    assert not big.in_place and big.packed == big.panels * big.k * big.cols


def test_the_model_counts_the_row_tiles_gm_inplace_runs():
    """gm_inplace's tiles down a panel: whole blocks of the tile's rows, but two tiles of 8 (4
    below AVX-512) for a rest of that, then powers of two; the model counts the same."""
    rows = pointwise._plan(make_spec((1, 4, 9), (1, 4, 1), dtype=np.float32), "forward").rows
    small = 8 if rows > 8 else 4

    def tiles(m):
        return [t for t in pointwise._plan(make_spec((1, 4, 9), (m, 4, 1), dtype=np.float32),
                                           "forward").tiles if t[1]]
    assert tiles(2 * small) == [(small, 2)]                         # 16 (AVX-512), 8 below
    assert tiles(2 * rows + (2 * small - rows)) == [(rows, 1), (small, 2)]
    assert tiles(rows + 1) == [(rows, 1), (1, 1)]
    assert sum(r * c for r, c in tiles(2 * rows + 3)) == 2 * rows + 3
