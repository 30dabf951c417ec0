"""The blocked direct algorithm (output channels in vector blocks, each input value broadcast)
against the reference: forward and grad_kernel at every geometry, grad_input at stride 1, in
both precisions, 1-D to 3-D; output-channel counts on and past the vector blocks (one vector and
two per block, the pair of rows an item takes, a part-filled last block); kernels cut into
several register tiles (wide, tall, dilated: one column per tap) and batches cut into parts;
bitwise the same at 1, 2 and 3 threads; no input written; an Inf weight sends grad_input to the
textbook sum, and non-finite inputs give grad_kernel the textbook's NaN and Inf; no strided
and dilated input gradient (refused, with the reason). Strided input gradients: test_blocked_phases. The generic suites (test_conv_matrix, test_adjoint,
the hostile ones) run it too, through fastconv.algorithms()."""
import numpy as np
import pytest

import fastconv
from fastconv import _config, reference
from fastconv._algorithms import _positions_row, blocked
from fastconv._geometry import make_spec

CASES = {
    "lenet-5x5": ((4, 6, 12, 12), (16, 6, 5, 5), {}),
    "one-vector-odd-rows": ((2, 3, 9, 7), (8, 3, 3, 3), dict(padding=1)),
    "two-vectors-and-a-part": ((1, 4, 6, 11), (37, 4, 3, 2), dict(padding=(1, 0))),
    "groups": ((2, 6, 8, 9), (21, 2, 3, 3), dict(groups=3, padding="same")),
    "dilated-asymmetric": ((1, 5, 13, 10), (12, 5, 3, 2), dict(dilation=(2, 3),
                                                             padding=((3, 1), (0, 2)))),
    "1d": ((3, 4, 40), (24, 4, 7), dict(padding=3)),
    "3d": ((1, 3, 5, 6, 7), (9, 3, 3, 2, 3), dict(padding=1)),
    "kernel-as-large-as-input": ((2, 2, 5, 5), (3, 2, 5, 5), {}),
    "padding-beyond-kernel": ((1, 2, 3, 4), (5, 2, 2, 2), dict(padding=4)),
    "wide-kernel-tiles": ((3, 2, 6, 30), (20, 2, 3, 19), dict(padding=(1, 9))),
    "tall-kernel-tiles": ((2, 3, 40, 7), (33, 3, 17, 2), dict(padding=(8, 0))),
    "batch-in-parts": ((9, 1, 10, 10), (5, 1, 3, 3), dict(padding=1)),
    # two rows of two vectors a tile at AVX-512, an odd last row, a part-filled block
    "two-row-tiles-7x7": ((1, 40, 7, 7), (70, 40, 3, 3), dict(padding=1)),
    # rows cut into tiles of balanced widths (31 columns, at most 7 a tile: 7 + 4 x 6)
    "balanced-tiles": ((2, 3, 5, 31), (40, 3, 3, 3), dict(padding=1)),
    # kernels of one line: the kernel gradient's tiles take input channels as rows
    "1d-channel-rows": ((2, 13, 50), (20, 13, 3), dict(padding=1)),
    "1xk-channel-rows": ((2, 5, 6, 20), (18, 5, 1, 4), dict(padding=(0, 2))),
    "dilated-1d-channel-rows": ((2, 7, 60), (20, 7, 3), dict(dilation=4, padding=((8, 0),))),
    # long rows (a row buffer larger than L1), one row and two, and a grouped layer's copy
    "long-1d-row-segments": ((2, 3, 700), (20, 3, 5), dict(padding=2)),
    "two-row-segments": ((1, 2, 4, 600), (40, 2, 3, 3), dict(padding=1)),
    "grouped-row-segments": ((1, 4, 900), (4, 1, 3), dict(groups=4, padding=1)),
    # grad_input's packing by register transposes: lanes in whole vectors and a tail, taps in a
    # whole block of them and a short one (16 floats a vector at AVX-512)
    "flip-many-taps": ((1, 20, 9, 9), (6, 20, 5, 5), dict(padding=2)),
    "flip-many-lanes": ((2, 40, 6, 5), (3, 40, 3, 7), dict(padding=(1, 3))),
    "flip-one-tap": ((2, 20, 4, 5), (24, 20, 1, 1), {}),
    # the store's last blocks overlap the ones before: 21 columns, 25 channels (9 or 25 lanes
    # in a block past a whole vector at AVX2 and AVX-512)
    "overlapping-store-blocks": ((2, 3, 5, 21), (25, 3, 3, 3), dict(padding=1)),
    # rows of several tiles take their input channels in chunks whose weights fit L1 (sums
    # carried through the row buffer): one row and two, several chunks at every level
    "channel-chunks-1d": ((2, 100, 60), (20, 100, 5), dict(padding=2)),
    "channel-chunks-2d": ((1, 60, 4, 40), (20, 60, 3, 3), dict(padding=1)),
    # pointwise layers on small planes run as one row of their positions (_positions_row)
    "pointwise-as-row": ((8, 20, 7, 7), (70, 20, 1, 1), {}),
    "grouped-pointwise-as-row": ((8, 12, 5, 6), (48, 6, 1, 1), dict(groups=2)),
    # padding of the kernel's extent: grad_input's forward problem (gy in) has none
    "full-padding-1d": ((2, 3, 21), (10, 3, 3), dict(padding=2)),
    # a padded plane above SMALL_PLANE (src/_blocked.pyx) is copied row by row, not zeroed whole
    "large-padded-plane": ((1, 2, 70, 70), (5, 2, 3, 3), dict(padding=1)),
}
STRIDED = {
    "stride-2": ((2, 3, 15, 13), (17, 3, 3, 3), dict(stride=2, padding=1)),
    "stride-3-1d": ((1, 2, 50), (33, 2, 4), dict(stride=3)),
    # stride 2 on one row is its own code (bk_row's stride-2 columns), in several tiles
    "stride-2-1d-tiles": ((2, 5, 61), (20, 5, 3), dict(stride=2)),
    "stride-3d": ((1, 2, 6, 7, 9), (5, 2, 2, 3, 2), dict(stride=(2, 1, 3), padding=1)),
    "dilated-columns-strided": ((2, 3, 9, 16), (18, 3, 2, 4), dict(dilation=(1, 3), stride=2)),
    # planes cropped (the last input row and column no output reads), small and large
    "small-plane-crop": ((1, 2, 11, 11), (4, 2, 2, 2), dict(stride=3, padding=1)),
    "large-plane-crop": ((1, 2, 80, 79), (4, 2, 2, 2), dict(stride=3, padding=1)),
}


def _close(got, want):
    scale = max(float(np.abs(want).max()), 1.0)
    tol = 1e-4 if got.dtype == np.float32 else 1e-11
    assert got.shape == want.shape and got.dtype == want.dtype
    assert np.abs(got - want).max() <= tol * scale


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("name", sorted(CASES) + sorted(STRIDED))
def test_blocked_matches_the_reference(name, dtype, rng, restore_settings):
    x_shape, w_shape, geometry = {**CASES, **STRIDED}[name]
    x = rng.standard_normal(x_shape).astype(dtype)
    w = rng.standard_normal(w_shape).astype(dtype)
    y = reference.conv(x, w, **geometry)
    gy = rng.standard_normal(y.shape).astype(dtype)
    copies = (x.copy(), w.copy(), gy.copy())
    ops = {"forward": (lambda: fastconv.conv(x, w, algorithm="blocked", **geometry), y),
           "grad_kernel": (lambda: fastconv.conv_grad_kernel(x, gy, w_shape, algorithm="blocked",
                                                             **geometry),
                           reference.conv_grad_kernel(x, gy, w_shape, **geometry))}
    if name in CASES:
        ops["grad_input"] = (lambda: fastconv.conv_grad_input(gy, w, x_shape, algorithm="blocked",
                                                              **geometry),
                             reference.conv_grad_input(gy, w, x_shape, **geometry))
    for op, (call, want) in ops.items():
        results = []
        for threads in (1, 2, 3):
            fastconv.set_num_threads(threads)
            results.append(call())
        _close(results[0], want)
        assert all(np.array_equal(results[0], r) for r in results[1:]), (op, "thread count")
    for a, a0 in zip((x, w, gy), copies):
        assert np.array_equal(a, a0), "an input was written"


@pytest.mark.parametrize("name, flipped, copies", [
    ("lenet-5x5", False, False), ("kernel-as-large-as-input", False, False),
    ("stride-3-1d", False, False),                  # planes shorter than the input: read as is
    ("dilated-columns-strided", False, False), ("full-padding-1d", True, False),
    ("lenet-5x5", True, True), ("1d", False, True), ("two-row-tiles-7x7", False, True),
])
def test_unpadded_inputs_are_read_in_place(name, flipped, copies):
    """Without padding the kernels read the input itself (no copy, no workspace for it); the
    cases above that do so are named here, so that the reference test covers both paths."""
    x_shape, w_shape, geometry = {**CASES, **STRIDED}[name]
    g = blocked._Geometry(make_spec(x_shape, w_shape, dtype=np.float32, **geometry), flipped)
    assert g.copies == copies and (g.padded > 0) == copies


EDGE_CASES = {     # (x, w, geometry, the edges _Geometry finds for forward, or None: copied)
    "causal-tcn": ((2, 5, 40), (7, 5, 3), dict(padding=((2, 0),)), (2, 40, 4, 0)),
    "causal-dilated": ((1, 3, 64), (4, 3, 3), dict(padding=((16, 0),), dilation=8), (16, 64, 32, 0)),
    "both-ends-strided": ((1, 4, 33), (6, 4, 5), dict(padding=3, stride=2), (2, 16, 7, 7)),
    "right-only-groups": ((1, 6, 30), (4, 3, 4), dict(padding=((0, 3),), groups=2), (0, 27, 0, 6)),
    "asymmetric-dilated": ((1, 2, 20), (3, 2, 3), dict(padding=((1, 2),), dilation=2), (1, 17, 5, 6)),
    "mostly-padding": ((1, 2, 4), (3, 2, 3), dict(padding=6), None),
    "wide-edge": ((1, 2, 2000), (2, 2, 3), dict(padding=((600, 0),)), None),
}


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("name", sorted(EDGE_CASES))
def test_a_1d_row_padded_at_its_ends_is_read_in_place(name, dtype, rng, restore_settings):
    """A 1-D row with padding only at its ends is read in place, its edge outputs computed from
    small zero-padded windows (src/_blocked.pyx, forward: `edges`): against the reference for
    forward and the stride-1 input gradient (its flipped problem has edges too), at 1 and 2
    threads bit for bit; wide or dominant padding copies the row as before."""
    x_shape, w_shape, geometry, edges = EDGE_CASES[name]
    spec = make_spec(x_shape, w_shape, dtype=dtype, **geometry)
    g = blocked._Geometry(spec)
    assert g.edges == edges and (g.run_padded(1) < g.padded) == (edges is not None)
    x, w = rng.standard_normal(x_shape).astype(dtype), rng.standard_normal(w_shape).astype(dtype)
    want = reference.conv(x, w, **geometry)
    gy = rng.standard_normal(want.shape).astype(dtype)
    want_gi = reference.conv_grad_input(gy, w, x_shape, **geometry)
    results = []
    for threads in (1, 2):
        fastconv.set_num_threads(threads)
        got = fastconv.conv(x, w, algorithm="blocked", **geometry)
        _close(got, want)
        results.append(got)
        if geometry.get("stride", 1) == 1:
            gi = fastconv.conv_grad_input(gy, w, x_shape, algorithm="blocked", **geometry)
            _close(gi, want_gi)
            results.append(gi)
    assert all(np.array_equal(a, b) for a, b in zip(results[:len(results) // 2],
                                                     results[len(results) // 2:]))


def test_blocked_refuses_what_it_does_not_have():
    """A strided input gradient runs as stride-1 phases (test_blocked_phases), which need
    dilation 1 along the strided axes."""
    spec = make_spec((1, 2, 9, 9), (4, 2, 3, 3), dtype=np.float32, stride=2, dilation=(1, 2))
    ok, why = blocked.supports(spec, "grad_input")
    assert not ok and "dilation 1" in why
    with pytest.raises(fastconv.NotSupportedError):
        fastconv.conv_grad_input(np.ones((1, 4, 4, 3), np.float32), np.ones((4, 2, 3, 3),
                                 np.float32), (1, 2, 9, 9), stride=2, dilation=(1, 2),
                                 algorithm="blocked")


@pytest.mark.parametrize("w_shape, geometry", [
    ((16, 6, 5, 5), {}), ((40, 2, 3, 19), dict(padding=(1, 9))), ((7, 3, 17, 2), {}),
    ((33, 4, 2, 4), dict(dilation=(1, 3))), ((5, 2, 3, 3, 3), {})])
def test_kernel_gradient_tiles_are_counted_as_they_are_listed(w_shape, geometry):
    """The cost model and the workspace count the tiles without listing them (a hostile kernel
    size must not build a list as large as it); the call lists them: the two must agree, cover
    every tap once and fit the level's registers."""
    x_shape = (3, w_shape[1]) + (24,) * (len(w_shape) - 2)
    spec = make_spec(x_shape, w_shape, dtype=np.float32, **geometry)
    plan = blocked._kernel_plan(spec)
    roff, tiles = plan.arrays
    assert len(tiles) == plan.tile_count
    covered = np.zeros((len(roff), plan.cols), int)
    for r0, ry, c0, cx in tiles:
        assert 1 <= ry <= 8 and 1 <= cx <= 8 and ry * cx * plan.geometry.kb <= plan.acc
        covered[r0:r0 + ry, c0:c0 + cx] += 1
    assert (covered == 1).all()


def test_the_forward_model_counts_a_tile_pass_per_input_channel():
    """The forward model adds a register tile's pass over each input channel: equal
    multiply-adds over 9x the channels at one tap each (a 1x1 layer's tiles pass over a channel
    for 28 of them at AVX-512) make 9x the passes, each "step1" ("step" where a channel has
    several taps); the terms are exactly that, the rest of the model unchanged."""
    from fastconv._algorithms import blocked as b
    pointwise = make_spec((1, 576, 14, 14), (64, 576, 1, 1), dtype=np.float32)
    three = make_spec((1, 64, 16, 16), (64, 64, 3, 3), dtype=np.float32)
    g1, g3 = b._geometry(pointwise, False), b._geometry(three, False)
    fmas = [g.kb * g.cg * g.taps * g.tap_share() * g.blocks * 196 for g in (g1, g3)]
    assert fmas[0] == fmas[1]
    acc = b.TILE_ACCUMULATORS.get(b._blocked.vector_bytes(), 12)
    steps = [f / (g.taps * acc) for f, g in zip(fmas, (g1, g3))]
    assert steps[0] == 9 * steps[1]
    with_steps = [b._pass_cost(s, g, steps=True) for s, g in ((pointwise, g1), (three, g3))]
    without = [b._pass_cost(s, g) for s, g in ((pointwise, g1), (three, g3))]
    for spec, g, w, wo, n in zip((pointwise, three), (g1, g3), with_steps, without, steps):
        per_second = 1 / _config.model_speedup(spec, g.items, b.PARALLEL_EFFICIENCY)  # threads
        step = b.SECONDS["step" if g.taps > 1 else "step1"]     # 1x1: one loop, unrolled
        assert w - wo == pytest.approx(step * n * per_second, rel=1e-9)
    assert b.cost(pointwise, "forward") == with_steps[0]


def test_a_hostile_kernel_size_is_costed_without_building_it():
    spec = make_spec((1, 1, 1 << 20, 1 << 20), (1, 1, 1 << 20, 1 << 20), dtype=np.float32)
    assert blocked.cost(spec, "grad_kernel") > 0
    assert not blocked.supports(spec, "grad_kernel")[0]


def test_non_finite_inputs_give_the_kernel_gradient_the_textbook_values(rng):
    """The padded planes hold the zeros the textbook sum multiplies: 0 * Inf is NaN in both."""
    x = rng.standard_normal((2, 3, 7, 7)).astype(np.float32)
    gy = rng.standard_normal((2, 4, 7, 7)).astype(np.float32)
    x[0, 1, 2, 3], x[1, 2, 0, 0], gy[0, 2, 0, 6], gy[1, 0, 3, 3] = np.inf, np.nan, -np.inf, np.inf
    got = fastconv.conv_grad_kernel(x, gy, (4, 3, 3, 3), padding=1, algorithm="blocked")
    want = reference.conv_grad_kernel(x, gy, (4, 3, 3, 3), padding=1)
    assert np.array_equal(np.isnan(got), np.isnan(want))
    assert np.array_equal(np.isinf(got), np.isinf(want))
    finite = np.isfinite(want)
    assert np.allclose(got[finite], want[finite], rtol=1e-4, atol=1e-4)


def test_an_inf_weight_sends_the_call_to_the_textbook_sum(rng):
    """Both read zeros that the textbook sum does not multiply (the padding of x, and the
    kernel's extent around gy): 0 * Inf = NaN where the sum has Inf, so with a non-finite weight
    both give the call up to summation. (w[2, 1, 0, 2] meets padding columns.)"""
    x_shape = (1, 2, 6, 6)
    x = rng.standard_normal(x_shape).astype(np.float32)
    w = rng.standard_normal((4, 2, 3, 3)).astype(np.float32)
    w[1, 0, 1, 1], w[2, 1, 0, 2] = np.inf, -np.inf
    gy = rng.standard_normal((1, 4, 6, 6)).astype(np.float32)
    for got, want in ((fastconv.conv(x, w, padding=1, algorithm="blocked"),
                       reference.conv(x, w, padding=1)),
                      (fastconv.conv_grad_input(gy, w, x_shape, padding=1, algorithm="blocked"),
                       reference.conv_grad_input(gy, w, x_shape, padding=1))):
        assert np.isinf(want).any()
        assert np.array_equal(np.isnan(got), np.isnan(want))
        assert np.array_equal(np.isinf(got), np.isinf(want))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_packing_finds_every_non_finite_weight(dtype, bad, rng):
    """The finiteness check rides on packing (blocked._packed): a NaN or Inf anywhere -- first,
    last, in a part-filled last block, in grad_input's flipped packing -- makes both operations
    give up (None, for the registry's summation); finite weights pack."""
    # 19 a group; and 3 values a lane, fewer than the check's four vectors at a time (its tail)
    for x_shape, w_shape, groups in (((1, 6, 5, 5), (38, 3, 2, 3), 2),
                                     ((1, 3, 4, 4), (5, 3, 1, 1), 1)):
        spec = make_spec(x_shape, w_shape, dtype=dtype, groups=groups)
        w = rng.standard_normal(w_shape).astype(dtype)
        for flip in (False, True):
            g = blocked._Geometry(spec, flip)
            assert blocked._packed(w, spec, g, flip) is not None
            for index in (0, w.size - 1, *rng.integers(0, w.size, 6)):
                w2 = w.copy()
                w2.reshape(-1)[index] = bad
                assert blocked._packed(w2, spec, g, flip) is None, (flip, index)
    spec = make_spec((1, 6, 5, 5), (38, 3, 2, 3), dtype=dtype, groups=2)
    w = rng.standard_normal((38, 3, 2, 3)).astype(dtype)
    w[37, 2, 1, 2] = bad
    assert blocked.forward(spec, np.ones(spec.x_shape, dtype), w) is None
    assert blocked.grad_input(spec, np.ones(spec.y_shape, dtype), w) is None


def test_skipped_kernel_rows_read_only_padding(rng):
    """Rows of outputs near the border skip the kernel rows that read padding alone: values
    there must still be the reference's, on every axis that can skip (height in 2-D, depth in
    3-D), with stride, dilation and padding wider than the kernel."""
    for x_shape, w_shape, geometry in (
            ((2, 3, 8, 8), (32, 3, 5, 5), dict(padding=2)),
            ((1, 2, 7, 9), (5, 2, 3, 3), dict(padding=(6, 1), stride=(2, 1), dilation=(2, 1))),
            ((1, 2, 5, 4, 4), (3, 2, 3, 3, 3), dict(padding=(3, 1, 1), dilation=(2, 1, 1)))):
        x = rng.standard_normal(x_shape)
        w = rng.standard_normal(w_shape)
        _close(fastconv.conv(x, w, algorithm="blocked", **geometry),
               reference.conv(x, w, **geometry))


def test_blocked_keeps_the_workspace_limit(restore_settings):
    spec = make_spec((2, 8, 30, 30), (16, 8, 3, 3), dtype=np.float32, padding=1)
    need = blocked.workspace(spec, "forward")
    assert blocked.supports(spec, "forward")[0]
    fastconv.set_workspace_limit(need - 1)
    ok, why = blocked.supports(spec, "forward")
    assert not ok and "workspace" in why


@pytest.mark.parametrize("name, as_row", [("pointwise-as-row", True),
                                          ("grouped-pointwise-as-row", True),
                                          ("flip-one-tap", False)])     # too few items
def test_pointwise_layers_on_small_planes_run_as_one_row(name, as_row, rng):
    """The cases named here take the row (or not), so the reference test above covers the path;
    a prepared convolution's out= is filled in place through it."""
    x_shape, w_shape, geometry = CASES[name]
    spec = make_spec(x_shape, w_shape, dtype=np.float64, **geometry)
    assert (_positions_row.as_row(spec, blocked._row_items) is not None) == as_row
    x, w = rng.standard_normal(x_shape), rng.standard_normal(w_shape)
    y = reference.conv(x, w, **geometry)
    gy = rng.standard_normal(y.shape)
    p = fastconv.plan(x_shape, w_shape, dtype="float64", algorithm="blocked", **geometry)
    for call, want, shape in ((lambda o: p.forward(x, w, out=o), y, y.shape),
                              (lambda o: p.grad_input(gy, w, out=o),
                               reference.conv_grad_input(gy, w, x_shape, **geometry), x_shape),
                              (lambda o: p.grad_kernel(x, gy, out=o),
                               reference.conv_grad_kernel(x, gy, w_shape, **geometry), w_shape)):
        out = np.full(shape, np.nan)
        assert call(out) is out
        _close(out, want)


@pytest.mark.parametrize("path", ["tiles", "positions"])
@pytest.mark.parametrize("x_shape, w_shape", [((2, 3, 5, 5), (0, 3, 3, 3)),
                                              ((2, 0, 5, 5), (4, 0, 3, 3)),
                                              ((0, 3, 5, 5), (4, 3, 3, 3))])
def test_kernel_gradient_plans_of_empty_problems(path, x_shape, w_shape, monkeypatch):
    """No output channels, no input channels or no samples: both kernel-gradient paths plan,
    price and run them (the public functions answer such calls before any algorithm; a plan
    divided by the blocks' count), giving zeros of the kernel's shape."""
    monkeypatch.setenv("FASTCONV_BLOCKED_GK", path)
    spec = make_spec(x_shape, w_shape, dtype=np.float32)
    assert blocked.supports(spec, "grad_kernel")[0]
    assert blocked.cost(spec, "grad_kernel") > 0 and blocked.workspace(spec, "grad_kernel") >= 0
    gw = blocked.grad_kernel(spec, np.ones(spec.x_shape, np.float32),
                             np.ones(spec.y_shape, np.float32))
    assert gw.shape == spec.w_shape and not gw.any()
