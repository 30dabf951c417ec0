"""Winograd F(4x4, 3x3) (src/_winograd.pyx, src/_winograd_kernels.h) against the reference.

The general suites run "winograd" over the geometry matrix wherever it applies; these cases aim at
what is particular to it: output sizes that are not multiples of the 4x4 tile, channel counts
that are not multiples of the vector (the padded lanes of the channel-last staging and of the
register transposes, rows shorter than a vector), padding of every kind (0, 1, 2, wider than the
kernel, (low, high), "same", "full"; the input gradient's "padding" 2 - p is then negative), 3-D
problems with a kernel of depth 1 or more (each depth tap a 2-D pass of its own, planes that read
only padding, depth stride and dilation), blocks of tiles
split over rows and columns or made of several small planes, the kernel gradient's partial sums,
the fallback for non-finite values, the workspace limit, and float32 accuracy at realistic
magnitudes and channel counts.
"""
import math

import numpy as np
import pytest

import fastconv
from fastconv import _scratch, reference
from fastconv._algorithms import winograd
from fastconv._geometry import make_spec

DTYPES = (np.float32, np.float64)
OPS = ("forward", "grad_input", "grad_kernel")

# name -> (x shape, w shape, keyword arguments)
CASES = {
    "tiny-1x1-channels": ((1, 1, 5, 5), (1, 1, 3, 3), {}),
    "odd-sizes": ((2, 3, 9, 11), (4, 3, 3, 3), dict(padding=1)),
    "one-output-row": ((1, 2, 3, 17), (3, 2, 3, 3), {}),
    "lo-hi-padding": ((2, 5, 13, 7), (3, 5, 3, 3), dict(padding=((2, 0), (1, 2)))),
    "padding-2": ((1, 4, 10, 6), (2, 4, 3, 3), dict(padding=2)),
    "full": ((1, 3, 6, 9), (5, 3, 3, 3), dict(padding="full")),
    "wide-padding": ((1, 2, 6, 20), (3, 2, 3, 3), dict(padding=((0, 4), (5, 9)))),
    "same-37-channels": ((2, 37, 23, 19), (20, 37, 3, 3), dict(padding="same")),
    "channels-17-to-1": ((1, 17, 12, 12), (1, 17, 3, 3), dict(padding=1)),
    "rows-shorter-than-a-vector": ((2, 20, 9, 6), (18, 20, 3, 3), dict(padding=1)),
    "3d-depth-1": ((2, 3, 4, 6, 7), (5, 3, 1, 3, 3), dict(padding=1)),
    "3d-depth-stride-padding": ((2, 3, 5, 6, 7), (5, 3, 1, 3, 3),
                                dict(padding=((2, 1), (0, 1), (1, 1)), stride=(2, 1, 1))),
    "resnet-like": ((2, 64, 30, 30), (64, 64, 3, 3), dict(padding=1)),
    "3d-3x3x3": ((2, 3, 5, 6, 7), (4, 3, 3, 3, 3), dict(padding=1)),
    "3d-deep-stride-dilation": ((2, 3, 9, 6, 7), (5, 3, 2, 3, 3),
                                dict(padding=((2, 1), (1, 1), (0, 2)), stride=(2, 1, 1),
                                     dilation=(2, 1, 1))),
    "3d-c3d-like": ((1, 16, 4, 10, 10), (8, 16, 3, 3, 3), dict(padding=1)),
}


def _arrays(name, dtype, seed=0):
    xs, ws, kw = CASES[name]
    spec = make_spec(xs, ws, **kw)
    ys = (xs[0], ws[0]) + tuple(spec.output_size[3 - (len(ws) - 2):])
    rng = np.random.default_rng(seed)
    return (rng.standard_normal(xs).astype(dtype), rng.standard_normal(ws).astype(dtype),
            rng.standard_normal(ys).astype(dtype), kw)


def _three(x, w, gy, kw, algorithm="winograd"):
    return (fastconv.conv(x, w, algorithm=algorithm, **kw),
            fastconv.conv_grad_input(gy, w, x.shape, algorithm=algorithm, **kw),
            fastconv.conv_grad_kernel(x, gy, w.shape, algorithm=algorithm, **kw))


@pytest.mark.parametrize("dtype", DTYPES, ids=["float32", "float64"])
@pytest.mark.parametrize("name", list(CASES))
def test_matches_reference(name, dtype, assert_close_to_reference):
    x, w, gy, kw = _arrays(name, dtype)
    for got, expected in zip(_three(x, w, gy, kw), _three(x, w, gy, kw, "reference")):
        assert_close_to_reference(got, expected, dtype)


@pytest.mark.parametrize("op", OPS)
def test_float32_accuracy_at_realistic_magnitudes(op):
    """ReLU-like activations (non-negative, mean far from zero) and He-scaled kernels over 256
    channels: the transforms' rounding stays well inside the contract's 2e-4."""
    rng = np.random.default_rng(5)
    x = np.maximum(rng.standard_normal((1, 256, 14, 14)), 0) * 3 + 1
    w = rng.standard_normal((32, 256, 3, 3)) * np.sqrt(2 / (9 * 256))
    gy = rng.standard_normal((1, 32, 14, 14)) * 1e-3
    args = {"forward": (x, w), "grad_input": (gy, w, x.shape), "grad_kernel": (x, gy, w.shape)}[op]
    fn = {"forward": "conv", "grad_input": "conv_grad_input", "grad_kernel": "conv_grad_kernel"}[op]
    expected = getattr(reference, fn)(*args, padding=1)
    got = getattr(fastconv, fn)(*[a.astype(np.float32) if isinstance(a, np.ndarray) else a
                                  for a in args], padding=1, algorithm="winograd")
    error = np.abs(got - expected).max() / np.abs(expected).max()
    assert error < 2e-5, error


def test_adjoint_identities():
    """<conv(x, w), gy> = <x, grad_input(gy, w)> = <w, grad_kernel(x, gy)> in float64."""
    x, w, gy, kw = _arrays("lo-hi-padding", np.float64, seed=3)
    y, gx, gw = _three(x, w, gy, kw)
    assert np.isclose(np.vdot(y, gy), np.vdot(x, gx), rtol=1e-12)
    assert np.isclose(np.vdot(y, gy), np.vdot(w, gw), rtol=1e-12)


def test_kernel_gradient_by_finite_differences():
    x, w, gy, kw = _arrays("odd-sizes", np.float64, seed=4)
    gw = fastconv.conv_grad_kernel(x, gy, w.shape, algorithm="winograd", **kw)
    eps = 1e-6
    for index in [(0, 0, 0, 0), (3, 2, 1, 2), (1, 1, 2, 0)]:
        step = np.zeros_like(w)
        step[index] = eps
        loss = [np.vdot(fastconv.conv(x, w + s, algorithm="winograd", **kw), gy)
                for s in (step, -step)]
        assert np.isclose((loss[0] - loss[1]) / (2 * eps), gw[index], rtol=1e-6, atol=1e-8)


def _same_bits_at_1_2_3_threads(name):
    x, w, gy, kw = _arrays(name, np.float32)
    results = []
    for threads in (1, 2, 3):
        fastconv.set_num_threads(threads)
        results.append(_three(x, w, gy, kw))
    for other in results[1:]:
        for a, b in zip(results[0], other):
            assert np.array_equal(a, b)


@pytest.mark.parametrize("name", ["resnet-like", "3d-depth-stride-padding", "same-37-channels",
                                  "3d-deep-stride-dilation"])
def test_bitwise_identical_for_any_thread_count(name, restore_settings):
    _same_bits_at_1_2_3_threads(name)


def test_blocks_and_parts_are_fixed_by_the_problem(restore_settings):
    x, w, gy, kw = _arrays("resnet-like", np.float32)
    spec = make_spec(x.shape, w.shape, dtype=np.float32, **kw)
    plans = []
    for threads in (1, 2):
        fastconv.set_num_threads(threads)
        plans.append(winograd._Plan(spec, "grad_kernel"))
    assert plans[0].tiling == plans[1].tiling and plans[0].parts == plans[1].parts > 1


def test_blocks_split_long_rows_into_columns(assert_close_to_reference, restore_settings):
    """A row of more tiles than a block holds: blocks of columns, the last one narrower."""
    rng = np.random.default_rng(6)
    x, w = rng.standard_normal((1, 16, 5, 1203)), rng.standard_normal((8, 16, 3, 3))
    spec = make_spec(x.shape, w.shape, padding=1, dtype=np.float64)
    tiling = winograd._Plan(spec, "forward").tiling
    assert tiling[13] < -(-1203 // 4)          # Cw: fewer tile columns than the row has
    gy = rng.standard_normal((1, 8, 5, 1203))
    for got, expected in zip(_three(x, w, gy, dict(padding=1)),
                             _three(x, w, gy, dict(padding=1), "reference")):
        assert_close_to_reference(got, expected, np.float64)


@pytest.mark.parametrize("op", OPS)
def test_blocks_of_whole_small_planes(op, assert_close_to_reference):
    """7x7 images hold 4 tiles: a block takes several whole planes (samples and depths, some
    of them all padding) so that its GEMMs are not 4 rows tall; in grad_input (21 planes of
    11) and grad_kernel (42 of 9) the last block has fewer."""
    rng = np.random.default_rng(8)
    kw = dict(padding=((1, 2), (1, 1), (1, 1)))
    x, w = rng.standard_normal((7, 24, 3, 7, 7)), rng.standard_normal((40, 24, 1, 3, 3))
    spec = make_spec(x.shape, w.shape, dtype=np.float64, **kw)
    plan = winograd._Plan(spec, op)
    assert plan.tiling[14] > 1
    gy = rng.standard_normal(spec.y_shape)
    got = _three(x, w, gy, kw)[OPS.index(op)]
    assert_close_to_reference(got, _three(x, w, gy, kw, "reference")[OPS.index(op)], np.float64)


@pytest.mark.parametrize("name", ["odd-sizes", "3d-depth-stride-padding", "wide-padding"])
def test_nan_and_inf_propagate_like_the_reference(name):
    """A transform spreads a NaN over its tile: a non-finite block or kernel sends the call to an
    algorithm whose pattern is arithmetic's."""
    x, w, gy, kw = _arrays(name, np.float64)
    x[(0, 1 % x.shape[1]) + (0,) * (x.ndim - 2)] = np.nan
    x[(0, 2 % x.shape[1]) + tuple(n - 1 for n in x.shape[2:])] = np.inf
    gy[(0, 1) + (0,) * (gy.ndim - 2)] = -np.inf
    x_finite, gy_finite = (np.where(np.isfinite(a), a, 0) for a in (x, gy))
    w_inf = w.copy()
    w_inf[(1, 0) + (0,) * (w.ndim - 2)] = np.inf
    cases = [(x, w, gy), (x_finite, w, gy), (x, w, gy_finite), (x_finite, w_inf, gy_finite)]
    for args in cases:
        with np.errstate(invalid="ignore", over="ignore"):
            pairs = list(zip(_three(*args, kw), _three(*args, kw, "reference")))
        for got, expected in pairs:
            assert np.array_equal(np.isnan(got), np.isnan(expected))
            assert np.array_equal(np.isinf(got), np.isinf(expected))
            finite = np.isfinite(expected)
            np.testing.assert_allclose(got[finite], expected[finite], rtol=1e-9, atol=1e-9)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("flipped", [False, True])
def test_the_kernel_transform_reports_a_kernel_value_that_is_not_finite(dtype, flipped):
    """The transform checks the values it reads (no isfinite pass of its own over w): a NaN or
    an infinity in any kernel -- the first, one in the middle of a vector's kernels, the
    array's last (read a tap at a time), at any tap -- makes it answer None, and a finite
    kernel, however large, never does. 19 x 21 kernels: a part-filled vector of rows at
    every level."""
    rng = np.random.default_rng(3)
    w = rng.standard_normal((19, 21, 3, 3)).astype(dtype)
    KP = 32
    assert winograd._transformed_kernel(w, flipped, KP, 2) is not None
    big = np.full_like(w, np.finfo(dtype).max / 4)
    assert winograd._transformed_kernel(big, flipped, KP, 1) is not None
    for k, c, tap in [(0, 0, 0), (7, 11, 4), (18, 20, 8), (18, 20, 0), (5, 20, 7)]:
        for bad in (np.nan, np.inf, -np.inf):
            v = w.copy()
            v[k, c].flat[tap] = bad
            for threads in (1, 3):
                assert winograd._transformed_kernel(v, flipped, KP, threads) is None, \
                    (k, c, tap, bad, threads)


def test_float32_overflow_in_a_transform_falls_back():
    """x near the float32 maximum: B^T d B overflows where the textbook sum does not."""
    signs = np.random.default_rng(7).choice([-1.0, 1.0], (1, 2, 8, 8))
    x = (signs * 1e38).astype(np.float32)
    w = np.full((1, 2, 3, 3), 1e-38, np.float32)
    expected = reference.conv(x, w, padding=1)
    assert np.isfinite(expected).all()
    got = fastconv.conv(x, w, padding=1, algorithm="winograd")
    assert np.isfinite(got).all()
    assert np.abs(got - expected).max() <= 2e-4 * np.abs(expected).max()


def test_inputs_are_not_written():
    x, w, gy, kw = _arrays("odd-sizes", np.float32)
    copies = [a.copy() for a in (x, w, gy)]
    _three(x, w, gy, kw)
    for a, b in zip((x, w, gy), copies):
        assert np.array_equal(a, b)


def test_empty_batch():
    x, w = np.zeros((0, 3, 8, 8)), np.ones((4, 3, 3, 3))
    gy = np.zeros((0, 4, 8, 8))
    y, gx, gw = _three(x, w, gy, dict(padding=1))
    assert y.shape == (0, 4, 8, 8) and gx.shape == x.shape
    assert gw.shape == w.shape and not gw.any()


@pytest.mark.parametrize("xs,ws,kw,why", [
    ((1, 2, 9, 9), (3, 2, 3, 3), dict(stride=2), "stride"),
    ((1, 2, 9, 9), (3, 2, 3, 3), dict(dilation=2), "dilation"),
    ((1, 4, 9, 9), (4, 2, 3, 3), dict(groups=2), "groups"),
    ((1, 2, 9, 9), (3, 2, 5, 5), {}, "3x3"),
    ((1, 2, 9, 9), (3, 2, 3, 1), {}, "3x3"),
    ((1, 2, 9), (3, 2, 5), {}, "3 taps"),        # 1-D: winograd1d.py
])
def test_refuses_other_geometries_with_a_reason(xs, ws, kw, why):
    x, w = np.ones(xs), np.ones(ws)
    with pytest.raises(fastconv.NotSupportedError, match="does not support") as info:
        fastconv.conv(x, w, algorithm="winograd", **kw)
    assert why in str(info.value)
    spec = make_spec(xs, ws, dtype=np.float64, **kw)
    for op in OPS:
        ok, reason = winograd.supports(spec, op)
        assert not ok and why in reason


def test_refuses_when_one_block_does_not_fit_the_workspace(restore_settings):
    fastconv.set_workspace_limit(4096)
    x, w, gy, kw = _arrays("odd-sizes", np.float64)
    with pytest.raises(fastconv.NotSupportedError, match="workspace limit"):
        fastconv.conv(x, w, algorithm="winograd", **kw)


@pytest.mark.parametrize("op", OPS)
def test_workspace_limit_shrinks_blocks_and_threads(op, restore_settings,
                                                    assert_close_to_reference):
    x, w, gy, kw = _arrays("resnet-like", np.float64)
    spec = make_spec(x.shape, w.shape, dtype=np.float64, **kw)
    fastconv.set_num_threads(2)
    full = winograd._Plan(spec, op)
    limit = (full.fixed + full.per_thread // 2) * 8
    fastconv.set_workspace_limit(limit)
    small = winograd._Plan(spec, op)
    tiles = [math.prod(plan.tiling[12:15]) for plan in (small, full)]     # P x R x Cw
    assert tiles[0] < tiles[1] or small.parts < full.parts or small.threads < full.threads
    assert winograd.workspace(spec, op) <= limit
    args = {"forward": (x, w), "grad_input": (gy, w, x.shape), "grad_kernel": (x, gy, w.shape)}[op]
    fn = {"forward": "conv", "grad_input": "conv_grad_input", "grad_kernel": "conv_grad_kernel"}[op]
    assert_close_to_reference(getattr(fastconv, fn)(*args, algorithm="winograd", **kw),
                              getattr(reference, fn)(*args, **kw), np.float64)


@pytest.mark.parametrize("op", OPS)
def test_cost_and_workspace_are_positive_and_grow(op):
    small = make_spec((2, 16, 28, 28), (16, 16, 3, 3), padding=1, dtype=np.float32)
    large = make_spec((8, 64, 56, 56), (64, 64, 3, 3), padding=1, dtype=np.float32)
    assert 0 < winograd.cost(small, op) < winograd.cost(large, op)
    assert 0 < winograd.workspace(small, op) <= fastconv.get_workspace_limit()
    assert winograd.supports(large, op) == (True, "")


@pytest.mark.parametrize("op", OPS)
def test_a_transformed_kernel_in_memory_costs_its_passes(op, monkeypatch):
    """ResNet-18's 512-channel 3x3 (37.7 MB of U) pays U_MEMORY_PASSES over U; its 256-channel
    one (9.4 MB) does not."""
    monkeypatch.setattr(winograd, "_kernel_blocks_win", lambda kernel_blocks, positions: False)
    deep = make_spec((8, 512, 7, 7), (512, 512, 3, 3), padding=1, dtype=np.float32)
    mid = make_spec((8, 256, 14, 14), (256, 256, 3, 3), padding=1, dtype=np.float32)
    with_passes = winograd.cost(deep, op), winograd.cost(mid, op)
    monkeypatch.setattr(winograd, "U_MEMORY_PASSES", (0, 0))
    assert winograd.cost(deep, op) < 0.9 * with_passes[0]
    assert winograd.cost(mid, op) == with_passes[1]


@pytest.mark.parametrize("level", [0, 1])
def test_every_kernel_set_matches_the_reference(level, check_kernel_set):
    """The x86-64-v3 kernels and the build's own (baseline) ones, which this machine would not
    pick, run in a fresh interpreter with FASTCONV_WINOGRAD_LEVEL lowered."""
    from fastconv import _winograd
    if _winograd.kernel_level() <= level:
        pytest.skip("this machine runs that kernel set already")
    names = ("odd-sizes", "same-37-channels", "rows-shorter-than-a-vector",
             "3d-depth-stride-padding", "wide-padding")
    check_kernel_set("winograd", "FASTCONV_WINOGRAD_LEVEL", level, [CASES[n] for n in names])


# The staged schedule (src/_winograd.pyx): waves of whole tile rows, the 36 GEMMs split over the
# threads, the transformed kernel read once per wave. "winograd" runs it where the transformed
# kernel outgrows a core's L2 (many channels) and it moves fewer bytes than the blocks; the
# `staged` fixture forces it on every case above, in one wave and in a wave per item
# (WAVE_BYTES = 1: the kernel gradient then sums its waves in order), its kernel gradient's
# GEMMs on fastconv's register tiles (small dU, as these cases') and on BLAS (many channels),
# and a one-wave forward and input gradient by kernel blocks (forward_kernel_blocks): of the
# default size (one block, one chunk in these cases) and one vector by one vector of channels
# (several blocks and chunks, the last ones part-filled).
WAVES = {"one-wave": 2**40, "wave-per-item": 1}
GRAD_KERNEL_GEMMS = {"own-gemm": 2**40, "blas-gemm": -1}
KERNEL_BLOCKS = {"position-gemms": None, "kernel-blocks": (64, 64), "narrow-kernel-blocks": (1, 1)}
STAGED = ([(wave, gemm, "position-gemms") for wave in WAVES for gemm in GRAD_KERNEL_GEMMS]
          + [("one-wave", "own-gemm", blocks) for blocks in list(KERNEL_BLOCKS)[1:]])


@pytest.fixture(params=STAGED, ids=lambda p: "-".join(p))
def staged(request, monkeypatch):
    wave, gemm, blocks = request.param
    monkeypatch.setattr(winograd, "STAGED_ABOVE_U_BYTES", 0)
    monkeypatch.setattr(winograd, "_staged_wins", lambda staged, blocks: True)
    monkeypatch.setattr(winograd, "WAVE_BYTES", WAVES[wave])
    monkeypatch.setattr(winograd, "STAGED_OWN_GEMM_BYTES", GRAD_KERNEL_GEMMS[gemm])
    monkeypatch.setattr(winograd, "_kernel_blocks_win",
                        lambda kernel_blocks, positions: KERNEL_BLOCKS[blocks] is not None)
    if KERNEL_BLOCKS[blocks]:
        width, chunk = KERNEL_BLOCKS[blocks]
        monkeypatch.setattr(winograd, "KERNEL_BLOCK_CHANNELS", width)
        monkeypatch.setattr(winograd, "KERNEL_CHUNK_CHANNELS", chunk)
    return wave


@pytest.mark.parametrize("dtype", (np.float32, np.float64), ids=["float32", "float64"])
@pytest.mark.parametrize("name", list(CASES))
def test_staged_matches_reference(name, dtype, staged, assert_close_to_reference):
    x, w, gy, kw = _arrays(name, dtype)
    spec = make_spec(x.shape, w.shape, dtype=dtype, **kw)
    for op in OPS:
        plan = winograd._Plan(spec, op)
        assert plan.staged
        if staged == "wave-per-item":
            assert plan.waves == plan.items
        forced = winograd._kernel_blocks_win(0, 0)     # the fixture's answer, whatever the bytes
        assert (plan.kernel_blocks is not None) == (op != "grad_kernel" and plan.kd == 1 and forced)
    for got, expected in zip(_three(x, w, gy, kw), _three(x, w, gy, kw, "reference")):
        assert_close_to_reference(got, expected, dtype)


@pytest.mark.parametrize("name", ["resnet-like", "3d-depth-stride-padding", "same-37-channels"])
def test_staged_bitwise_identical_for_any_thread_count(name, staged, restore_settings):
    _same_bits_at_1_2_3_threads(name)


def test_staged_nan_and_inf_propagate_like_the_reference(staged):
    x, w, gy, kw = _arrays("odd-sizes", np.float64)
    x[0, 1, 0, 0] = np.nan
    gy[0, 2, -1, -1] = np.inf
    with np.errstate(invalid="ignore", over="ignore"):
        pairs = list(zip(_three(x, w, gy, kw), _three(x, w, gy, kw, "reference")))
    for got, expected in pairs:
        assert np.array_equal(np.isnan(got), np.isnan(expected))
        assert np.array_equal(np.isinf(got), np.isinf(expected))
        finite = np.isfinite(expected)
        np.testing.assert_allclose(got[finite], expected[finite], rtol=1e-9, atol=1e-9)


@pytest.mark.parametrize("op", OPS)
def test_many_channels_run_staged_by_default(op, assert_close_to_reference):
    """256 channels on 14x14 (ResNet's layer3): a 9 MiB transformed kernel, so staged, in
    waves that hold the whole batch."""
    rng = np.random.default_rng(11)
    x = rng.standard_normal((2, 256, 14, 14)).astype(np.float32)
    w = (rng.standard_normal((256, 256, 3, 3)) / 48).astype(np.float32)
    gy = rng.standard_normal((2, 256, 14, 14)).astype(np.float32)
    spec = make_spec(x.shape, w.shape, padding=1, dtype=np.float32)
    plan = winograd._Plan(spec, op)
    assert plan.staged and plan.waves == 1
    i = OPS.index(op)
    got = _three(x, w, gy, dict(padding=1))[i]
    expected = _three(x, w, gy, dict(padding=1), "reference")[i]
    assert_close_to_reference(got, expected, np.float32)


@pytest.mark.parametrize("kc", [(512, 300), (300, 520)])
@pytest.mark.parametrize("op", ["forward", "grad_input"])
def test_a_transformed_kernel_past_16_mib_is_written_position_by_position(
        kc, op, assert_close_to_reference):
    """Past 16 MiB of transformed kernel (float64 here: 36 x 300 x 512 x 8 bytes = 42 MiB) each
    kernel column's 36 positions are staged and written as one run each (src/_winograd.pyx,
    transform_column); forward's columns are input channels, the input gradient's output
    channels, so the two shapes cover both sides."""
    K, C = kc
    rng = np.random.default_rng(12)
    x = rng.standard_normal((1, C, 5, 6))
    w = rng.standard_normal((K, C, 3, 3))
    gy = rng.standard_normal((1, K, 5, 6))
    i = OPS.index(op)
    got = _three(x, w, gy, dict(padding=1))[i]
    expected = _three(x, w, gy, dict(padding=1), "reference")[i]
    assert_close_to_reference(got, expected, np.float64)


@pytest.mark.parametrize("op", OPS)
def test_a_wave_that_does_not_fit_gives_way_to_blocks(op, monkeypatch, restore_settings,
                                                       assert_close_to_reference):
    """Under a workspace limit that one wave of one item exceeds, the fused blocks run."""
    monkeypatch.setattr(winograd, "STAGED_ABOVE_U_BYTES", 0)
    monkeypatch.setattr(winograd, "_staged_wins", lambda staged, blocks: True)
    x, w, gy, kw = _arrays("resnet-like", np.float64)
    spec = make_spec(x.shape, w.shape, dtype=np.float64, **kw)
    staged = winograd._Plan(spec, op)
    assert staged.staged
    fastconv.set_workspace_limit((staged.u_elements + 2 * 36 * 64) * 8 * 2)
    fused = winograd._Plan(spec, op)
    assert not fused.staged
    assert winograd.workspace(spec, op) <= fastconv.get_workspace_limit()
    i = OPS.index(op)
    assert_close_to_reference(_three(x, w, gy, kw)[i], _three(x, w, gy, kw, "reference")[i],
                              np.float64)


def test_results_do_not_share_the_reused_scratch(staged):
    """Scratch is reused from call to call; what a call returns is its own."""
    x, w, gy, kw = _arrays("same-37-channels", np.float64)
    first = _three(x, w, gy, kw)
    kept = [a.copy() for a in first]
    _three(x * 2, w[:, :, ::-1].copy(), gy * 3, kw)
    for a, b in zip(first, kept):
        assert np.array_equal(a, b)
    for a in first:
        assert a.base is None or not np.shares_memory(a, _scratch.empty("winograd.vm", 1, a.dtype))


@pytest.mark.parametrize("op", OPS)
def test_a_deep_kernel_whose_wave_does_not_fit_is_refused(op, restore_settings):
    """A kernel deeper than 1 runs staged only: under a limit that one wave exceeds, refused."""
    x, w, gy, kw = _arrays("3d-c3d-like", np.float64)
    spec = make_spec(x.shape, w.shape, dtype=np.float64, **kw)
    plan = winograd._Plan(spec, op)
    assert plan.staged and plan.kd == 3
    fastconv.set_workspace_limit(plan.u_elements * 8)
    ok, reason = winograd.supports(spec, op)
    assert not ok and "3 deep" in reason


def test_explain_says_which_schedule_runs():
    text = str(fastconv.explain((2, 32, 8, 28, 28), (64, 32, 3, 3, 3), padding=1,
                                dtype="float32"))
    rows = [line for line in text.splitlines() if " winograd " in line]
    assert len(rows) == 3 and all("staged: 1 wave of 784 tiles, 3 depth tap(s)" in r for r in rows)
    text = str(fastconv.explain((2, 16, 30, 30), (16, 16, 3, 3), padding=1, dtype="float32"))
    assert "blocks: " in text


@pytest.mark.parametrize("depth", [0, 3])
def test_staged_float32_overflow_falls_back(depth, staged):
    """Values near the float32 maximum in the staged schedule, 2-D and with a 3x3x3 kernel:
    B^T d B overflows where the textbook sums (of products near 1) do not, and each operation
    still gives them (forward and grad_input by giving up, grad_kernel by the registry's check)."""
    rng = np.random.default_rng(9)
    xs = (1, 2) + ((4,) if depth else ()) + (8, 8)
    ws = (2, 2) + ((depth,) if depth else ()) + (3, 3)
    x = (rng.choice([-1.0, 1.0], xs) * 1e38).astype(np.float32)
    w = np.full(ws, 1e-38, np.float32)
    signs = rng.choice([-1.0, 1.0], reference.conv(x, w, padding=1).shape)
    big, small = (signs * 1e38).astype(np.float32), (signs * 1e-38).astype(np.float32)
    kw = dict(padding=1)
    pairs = [(fastconv.conv(x, w, algorithm="winograd", **kw), reference.conv(x, w, **kw)),
             (fastconv.conv_grad_input(big, w, xs, algorithm="winograd", **kw),
              reference.conv_grad_input(big, w, xs, **kw)),
             (fastconv.conv_grad_kernel(x, small, ws, algorithm="winograd", **kw),
              reference.conv_grad_kernel(x, small, ws, **kw))]
    for got, want in pairs:
        assert np.isfinite(want).all() and np.isfinite(got).all() and np.abs(want).max() > 0.5
        assert np.abs(got - want).max() <= 2e-4 * np.abs(want).max()
