"""1-D Winograd F(6, 3) (src/_winograd1d.pyx, fastconv/_algorithms/winograd1d.py) against the
reference.

What is particular to it: lengths that are not multiples of the tile (or of 4 d tiles, a block's
runs), shorter than one tile, split into several blocks per sample; dilation 1 to beyond the
length (each residue a run of its own); padding of every kind (causal, wider than the kernel,
"same", "full"; the input gradient's offset 2 d - p is then negative); channel counts that are
not multiples of the vector; the GEMM's register tiles (column blocks of 4, 2 and 1 vectors,
rows off the tile); the kernel gradient's partial sums; thread-count invariance; the fallback for
non-finite values; the workspace limit; and every kernel set.
"""
import numpy as np
import pytest

import fastconv
from fastconv import reference
from fastconv._algorithms import winograd, winograd1d
from fastconv._geometry import make_spec

DTYPES = (np.float32, np.float64)
OPS = ("forward", "grad_input", "grad_kernel")

# name -> (x shape, w shape, keyword arguments)
CASES = {
    "tiny": ((1, 1, 3), (1, 1, 3), {}),
    "shorter-than-a-tile": ((2, 3, 5), (2, 3, 3), dict(padding=1)),
    "odd-length-padding-1": ((2, 5, 37), (7, 5, 3), dict(padding=1)),
    "causal": ((3, 17, 61), (9, 17, 3), dict(padding=((2, 0),))),
    "causal-dilation-2": ((2, 6, 50), (4, 6, 3), dict(padding=((4, 0),), dilation=2)),
    "dilation-3-same": ((2, 20, 47), (33, 20, 3), dict(padding="same", dilation=3)),
    "dilation-8-causal": ((1, 64, 300), (64, 64, 3), dict(padding=((16, 0),), dilation=8)),
    "dilation-past-the-length": ((2, 3, 9), (5, 3, 3), dict(padding=((12, 12),), dilation=6)),
    "full": ((2, 3, 7), (4, 3, 3), dict(padding="full")),
    "wide-padding": ((1, 4, 11), (3, 4, 3), dict(padding=((7, 9),), dilation=2)),
    "valid": ((2, 19, 40), (18, 19, 3), {}),
    "long-rows-many-blocks": ((1, 8, 3001), (5, 8, 3), dict(padding=1)),
    "tcn-like": ((2, 64, 1024), (64, 64, 3), dict(padding=((2, 0),))),
    # the GEMM tiles' column blocks of 4, 2 and 1 vectors at every level, rows off the tile
    "channels-70-to-100": ((1, 70, 97), (100, 70, 3), dict(padding=1, dilation=2)),
}


def _arrays(name, dtype, seed=0):
    xs, ws, kw = CASES[name]
    spec = make_spec(xs, ws, **kw)
    rng = np.random.default_rng(seed)
    return (rng.standard_normal(xs).astype(dtype), rng.standard_normal(ws).astype(dtype),
            rng.standard_normal((xs[0], ws[0], spec.output_size[2])).astype(dtype), kw)


def _three(x, w, gy, kw, algorithm="winograd"):
    return (fastconv.conv(x, w, algorithm=algorithm, **kw),
            fastconv.conv_grad_input(gy, w, x.shape, algorithm=algorithm, **kw),
            fastconv.conv_grad_kernel(x, gy, w.shape, algorithm=algorithm, **kw))


@pytest.mark.parametrize("dtype", DTYPES, ids=["float32", "float64"])
@pytest.mark.parametrize("name", list(CASES))
def test_matches_reference(name, dtype, assert_close_to_reference):
    x, w, gy, kw = _arrays(name, dtype)
    for got, expected in zip(_three(x, w, gy, kw), _three(x, w, gy, kw, "reference")):
        assert got.shape == expected.shape and got.dtype == dtype
        assert_close_to_reference(got, expected, dtype)


def test_several_blocks_per_sample():
    """The long rows are cut into blocks (and the TCN's sample into a few, for the threads)."""
    for name in ("long-rows-many-blocks", "dilation-8-causal"):
        xs, ws, kw = CASES[name]
        plan = winograd1d.plan(make_spec(xs, ws, dtype=np.float64, **kw), "forward")
        assert plan.items > xs[0]


@pytest.mark.parametrize("op", OPS)
def test_float32_accuracy_at_realistic_magnitudes(op):
    """ReLU-like activations and He-scaled kernels over 256 channels: well inside 2e-4."""
    rng = np.random.default_rng(5)
    x = np.maximum(rng.standard_normal((2, 256, 200)), 0) * 3 + 1
    w = rng.standard_normal((64, 256, 3)) * np.sqrt(2 / (3 * 256))
    gy = rng.standard_normal((2, 64, 200))
    kw = dict(padding=2, dilation=2)
    args = {"forward": (x, w), "grad_input": (gy, w, x.shape), "grad_kernel": (x, gy, w.shape)}[op]
    fn = {"forward": "conv", "grad_input": "conv_grad_input", "grad_kernel": "conv_grad_kernel"}[op]
    expected = getattr(reference, fn)(*args, **kw)
    got = getattr(fastconv, fn)(*[a.astype(np.float32) if isinstance(a, np.ndarray) else a
                                  for a in args],
                                algorithm="winograd", **kw)
    error = np.abs(got - expected).max() / np.abs(expected).max()
    assert error < 2e-5, error


def test_adjoint_identities():
    """<conv(x, w), gy> = <x, grad_input(gy, w)> = <w, grad_kernel(x, gy)> in float64."""
    x, w, gy, kw = _arrays("causal-dilation-2", np.float64, seed=3)
    y, gx, gw = _three(x, w, gy, kw)
    assert np.isclose(np.vdot(y, gy), np.vdot(x, gx), rtol=1e-12)
    assert np.isclose(np.vdot(y, gy), np.vdot(w, gw), rtol=1e-12)


def test_kernel_gradient_by_finite_differences():
    x, w, gy, kw = _arrays("dilation-3-same", np.float64, seed=4)
    gw = fastconv.conv_grad_kernel(x, gy, w.shape, algorithm="winograd", **kw)
    eps = 1e-6
    for index in [(0, 0, 0), (32, 19, 2), (7, 3, 1)]:
        step = np.zeros_like(w)
        step[index] = eps
        loss = [np.vdot(fastconv.conv(x, w + s, algorithm="winograd", **kw), gy)
                for s in (step, -step)]
        # the difference of two losses of ~200 loses ~3e-14 / 2e-6 to rounding: scale atol
        assert np.isclose((loss[0] - loss[1]) / (2 * eps), gw[index], rtol=1e-6,
                          atol=1e-6 * np.abs(gw).max())


@pytest.mark.parametrize("batch", [1, 2, 3])
@pytest.mark.parametrize("dilation", [1, 2, 4, 8])
def test_few_blocks_are_a_multiple_of_four_for_even_threads(batch, dilation):
    """The TCN's sample at batch 1 was cut into 5 blocks, 3 of them on one of 2 threads: where
    a few blocks are all the work, there are 4, 8, ... of them over the batch, each of a whole
    number of runs, together covering the sample and none empty."""
    spec = make_spec((batch, 64, 1024), (64, 64, 3), dtype=np.float32,
                     padding=((2 * dilation, 0),), dilation=dilation)
    plan = winograd1d.plan(spec, "forward")
    runs = -(-1024 // (6 * dilation))
    tiles_per_run = plan.tiling[8]
    assert plan.items % 4 == 0 and plan.items >= 4
    assert plan.blocks == -(-runs // tiles_per_run) and (plan.blocks - 1) * tiles_per_run < runs


@pytest.mark.parametrize("name", ["tcn-like", "dilation-3-same", "long-rows-many-blocks"])
def test_bitwise_identical_for_any_thread_count(name, restore_settings):
    x, w, gy, kw = _arrays(name, np.float32)
    results = []
    for threads in (1, 2, 3):
        fastconv.set_num_threads(threads)
        results.append(_three(x, w, gy, kw))
    for other in results[1:]:
        for a, b in zip(results[0], other):
            assert np.array_equal(a, b)


def test_blocks_and_parts_are_fixed_by_the_problem(restore_settings):
    xs, ws, kw = CASES["tcn-like"]
    spec = make_spec(xs, ws, dtype=np.float32, **kw)
    plans = []
    for threads in (1, 2):
        fastconv.set_num_threads(threads)
        plans.append(winograd1d.plan(spec, "grad_kernel"))
    assert plans[0].tiling == plans[1].tiling and plans[0].parts == plans[1].parts > 1


@pytest.mark.parametrize("name", ["odd-length-padding-1", "causal-dilation-2", "wide-padding"])
def test_nan_and_inf_propagate_like_the_reference(name):
    """A transform spreads a NaN over its tile: a non-finite block or kernel sends the call to
    an algorithm whose pattern is arithmetic's."""
    x, w, gy, kw = _arrays(name, np.float64)
    x[0, 1 % x.shape[1], 0] = np.nan
    x[0, 2 % x.shape[1], -1] = np.inf
    gy[0, 1, 0] = -np.inf
    x_finite, gy_finite = (np.where(np.isfinite(a), a, 0) for a in (x, gy))
    w_inf = w.copy()
    w_inf[1, 0, 0] = np.inf
    cases = [(x, w, gy), (x_finite, w, gy), (x, w, gy_finite), (x_finite, w_inf, gy_finite)]
    for args in cases:
        with np.errstate(invalid="ignore", over="ignore"):
            pairs = list(zip(_three(*args, kw), _three(*args, kw, "reference")))
        for got, expected in pairs:
            assert np.array_equal(np.isnan(got), np.isnan(expected))
            assert np.array_equal(np.isinf(got), np.isinf(expected))
            finite = np.isfinite(expected)
            np.testing.assert_allclose(got[finite], expected[finite], rtol=1e-9, atol=1e-9)


def test_float32_overflow_in_a_transform_falls_back():
    """x near the float32 maximum: B^T d overflows where the textbook sum does not."""
    signs = np.random.default_rng(7).choice([-1.0, 1.0], (1, 2, 16))
    x = (signs * 1e38).astype(np.float32)
    w = np.full((1, 2, 3), 1e-38, np.float32)
    expected = reference.conv(x, w, padding=1)
    assert np.isfinite(expected).all()
    got = fastconv.conv(x, w, padding=1, algorithm="winograd")
    assert np.isfinite(got).all()
    assert np.abs(got - expected).max() <= 2e-4 * np.abs(expected).max()


def test_inputs_are_not_written():
    x, w, gy, kw = _arrays("causal", np.float32)
    copies = [a.copy() for a in (x, w, gy)]
    _three(x, w, gy, kw)
    for a, b in zip((x, w, gy), copies):
        assert np.array_equal(a, b)


def test_empty_batch_and_channels():
    for xs, ws, ys in [((0, 3, 8), (4, 3, 3), (0, 4, 8)), ((2, 0, 8), (4, 0, 3), (2, 4, 8)),
                       ((2, 3, 8), (0, 3, 3), (2, 0, 8))]:
        x, w, gy = np.ones(xs), np.ones(ws), np.ones(ys)
        y, gx, gw = _three(x, w, gy, dict(padding=1))
        assert y.shape == ys and not y.any()
        assert gx.shape == xs and not gx.any()
        assert gw.shape == ws and not gw.any()


@pytest.mark.parametrize("xs,ws,kw,why", [
    ((1, 2, 30), (3, 2, 3), dict(stride=2), "stride"),
    ((1, 4, 30), (4, 2, 3), dict(groups=2), "groups"),
    ((1, 2, 30), (3, 2, 5), {}, "3 taps"),
])
def test_refuses_other_geometries_with_a_reason(xs, ws, kw, why):
    with pytest.raises(fastconv.NotSupportedError, match="does not support") as info:
        fastconv.conv(np.ones(xs), np.ones(ws), algorithm="winograd", **kw)
    assert why in str(info.value)
    spec = make_spec(xs, ws, dtype=np.float64, **kw)
    for op in OPS:
        ok, reason = winograd.supports(spec, op)
        assert not ok and why in reason


def test_refuses_a_dilation_whose_block_exceeds_the_workspace(restore_settings):
    """A block holds at least one tile per residue: 4 d positions of every channel."""
    fastconv.set_workspace_limit(1 << 20)
    x, w = np.ones((1, 64, 100)), np.ones((64, 64, 3))
    with pytest.raises(fastconv.NotSupportedError, match="workspace limit"):
        fastconv.conv(x, w, dilation=4000, padding=8000, algorithm="winograd")


@pytest.mark.parametrize("op", OPS)
def test_workspace_limit_shrinks_blocks_and_threads(op, restore_settings,
                                                    assert_close_to_reference):
    x, w, gy, kw = _arrays("tcn-like", np.float64)
    spec = make_spec(x.shape, w.shape, dtype=np.float64, **kw)
    fastconv.set_num_threads(2)
    full = winograd1d.plan(spec, op)
    fastconv.set_workspace_limit((full.fixed + full.per_thread // 2) * 8)
    small = winograd1d.plan(spec, op)
    assert small.tiling[8] < full.tiling[8] or small.threads < full.threads     # Tr
    assert winograd.workspace(spec, op) <= fastconv.get_workspace_limit()
    args = {"forward": (x, w), "grad_input": (gy, w, x.shape), "grad_kernel": (x, gy, w.shape)}[op]
    fn = {"forward": "conv", "grad_input": "conv_grad_input", "grad_kernel": "conv_grad_kernel"}[op]
    assert_close_to_reference(getattr(fastconv, fn)(*args, algorithm="winograd", **kw),
                              getattr(reference, fn)(*args, **kw), np.float64)


@pytest.mark.parametrize("op", OPS)
def test_cost_and_workspace_are_positive_and_grow(op):
    small = make_spec((1, 16, 256), (16, 16, 3), padding=1, dtype=np.float32)
    large = make_spec((8, 64, 1024), (64, 64, 3), padding=1, dtype=np.float32)
    assert 0 < winograd.cost(small, op) < winograd.cost(large, op)
    assert 0 < winograd.workspace(small, op) <= fastconv.get_workspace_limit()
    assert winograd.supports(large, op) == (True, "")
    assert "1-D blocks" in winograd.layout(large, op)


@pytest.mark.parametrize("level", [0, 1])
def test_every_kernel_set_matches_the_reference(level, check_kernel_set):
    """The x86-64-v3 kernels and the build's own, in a fresh interpreter with
    FASTCONV_WINOGRAD_LEVEL lowered (the 1-D kernels share the 2-D ones' table)."""
    from fastconv import _winograd1d
    if _winograd1d.kernel_level() <= level:
        pytest.skip("this machine runs that kernel set already")
    names = ("odd-length-padding-1", "dilation-3-same", "wide-padding", "valid",
             "channels-70-to-100")
    check_kernel_set("winograd", "FASTCONV_WINOGRAD_LEVEL", level, [CASES[n] for n in names])
