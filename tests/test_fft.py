"""The FFT algorithm's own paths, each against the reference and across thread counts.

The general suites already run "fft" over the geometry matrix; these cases aim at what is
particular to it (fastconv/_algorithms/fft/, src/_fft.pyx): the circular wrap-around that must
fall on padding (asymmetric, wider than the kernel, input parts no output reads), every tiling the
chooser may pick (overlap-save forward, overlap-add input gradient, summed kernel-gradient
spectra) including tiles whose input window wraps around the buffer, batch chunks, the pruned
transforms of inputs that fill little of their buffer, the kernel's DFT by GEMM and by FFT, the
channel product's partial frequency blocks, groups and conjugates, the NaN/Inf fallback (also when
a float32 transform overflows on finite inputs), the buffers kept between calls, the cost
model's choices, and every instruction-set level of the C kernels.
"""
import os
import subprocess
import sys

import numpy as np
import pytest

import fastconv
from fastconv import _fft, _registry, reference
from fastconv._algorithms import fft
from fastconv._algorithms.fft import _buffers, _kernel, _own, _places, _plan, _product, _taps
from fastconv._geometry import make_spec

DTYPES = (np.float32, np.float64)
OPS = ("forward", "grad_input", "grad_kernel")

# name -> (x shape, w shape, keyword arguments)
CASES = {
    "1d-asymmetric": ((2, 3, 40), (4, 3, 7), dict(padding=((5, 1),))),
    "1d-padding-wider-than-kernel": ((2, 2, 9), (3, 2, 3), dict(padding=((7, 11),))),
    "2d-largek": ((2, 3, 30, 26), (4, 3, 9, 7), dict(padding=(4, 3))),
    "2d-full": ((1, 2, 12, 10), (3, 2, 7, 9), dict(padding="full")),
    "2d-same-even": ((2, 2, 17, 16), (2, 2, 4, 6), dict(padding="same")),
    "2d-strided-unused-tail": ((2, 2, 23, 21), (3, 2, 5, 4), dict(stride=(3, 2), padding=1)),
    "2d-dilated": ((1, 3, 25, 27), (2, 3, 3, 4), dict(dilation=(3, 2), padding=((2, 5), (0, 4)))),
    "2d-groups": ((2, 6, 19, 18), (9, 2, 5, 5), dict(groups=3, padding=2)),
    "2d-depthwise": ((2, 4, 16, 16), (4, 1, 7, 7), dict(groups=4, padding=3)),
    "3d": ((1, 2, 9, 11, 10), (3, 2, 3, 4, 5), dict(padding=(1, 2, 2))),
    "3d-width-1": ((1, 2, 6, 7, 1), (2, 2, 3, 2, 1), dict(padding=(1, 0, 0))),   # real axis: h
    "2d-width-1": ((2, 2, 9, 1), (3, 2, 4, 1), dict(padding=((2, 1), (0, 0)))),
    "3d-strided-dilated": ((1, 2, 10, 12, 9), (2, 2, 2, 3, 3),
                           dict(stride=2, dilation=(1, 2, 1), padding=2)),
}


def _problem(name, dtype, seed=0):
    xs, ws, kw = CASES[name]
    rng = np.random.default_rng([seed, len(name)])
    x = rng.standard_normal(xs).astype(dtype)
    w = rng.standard_normal(ws).astype(dtype)
    gy = rng.standard_normal(reference.conv(x, w, **kw).shape).astype(dtype)
    return x, w, gy, kw


def _run(op, x, w, gy, kw, algorithm="fft"):
    if op == "forward":
        return fastconv.conv(x, w, algorithm=algorithm, **kw)
    if op == "grad_input":
        return fastconv.conv_grad_input(gy, w, x.shape, algorithm=algorithm, **kw)
    return fastconv.conv_grad_kernel(x, gy, w.shape, algorithm=algorithm, **kw)


def _spec(name, dtype):
    xs, ws, kw = CASES[name]
    return make_spec(xs, ws, dtype=dtype, **kw)


def _run_plan(op, plan, x, w, gy):
    """`op` by fft under `plan` (the algorithm's functions, on the lifted arrays, through the
    registry's non-finite policy), user-shaped."""
    spec = plan.spec
    x5, w5, gy5 = (np.ascontiguousarray(a, spec.dtype).reshape(shape)
                   for a, shape in ((x, spec.x_shape), (w, spec.w_shape), (gy, spec.y_shape)))
    a, b, shape = {"forward": (x5, w5, spec.y_shape), "grad_input": (gy5, w5, spec.x_shape),
                   "grad_kernel": (x5, gy5, spec.w_shape)}[op]
    out = _registry.settled(fft, spec, op, getattr(fft, op)(spec, a, b, plan=plan), a, b)
    return out.reshape(spec.user_shape(shape))


def _tiled(op, factor, x, w, gy, kw, limit=2**28):
    """`op` by fft on the tiling of `factor` (None: one tile) under the workspace `limit`."""
    spec = make_spec(x.shape, w.shape, dtype=x.dtype, **kw)
    return _run_plan(op, fft.Plan(spec, op, factor, limit), x, w, gy)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("op", OPS)
@pytest.mark.parametrize("name", list(CASES))
def test_matches_reference_at_every_tiling(name, op, dtype, assert_close_to_reference):
    x, w, gy, kw = _problem(name, dtype)
    expected = _run(op, x, w, gy, kw, algorithm="reference")
    spec = _spec(name, dtype)
    seen = set()
    for factor in (None,) + _plan.TILE_FACTORS:
        plan = fft.Plan(spec, op, factor, 2**28)
        key = (plan.L, plan.tiles)
        if key in seen:
            continue
        seen.add(key)
        assert_close_to_reference(_run_plan(op, plan, x, w, gy), expected, dtype)
    assert len(seen) >= 2, "the case should have at least one tiled plan"


@pytest.mark.parametrize("op", OPS)
def test_tiles_whose_window_wraps_around(op, assert_close_to_reference):
    """pad_low > 0 puts every later tile's first inputs at the end of its buffer."""
    x, w, gy, kw = _problem("2d-largek", np.float64)
    spec = _spec("2d-largek", np.float64)
    plan = fft.Plan(spec, op, 2, 2**28)
    assert plan.tiles > 4
    assert any(a.input_place(1)[0] + a.input_place(1)[1] > a.L for a in plan.axes if a.tiles > 1)
    assert_close_to_reference(_run_plan(op, plan, x, w, gy), _run(op, x, w, gy, kw, "reference"),
                              np.float64)


@pytest.mark.parametrize("op", OPS)
@pytest.mark.parametrize("dtype", DTYPES)
def test_batch_chunks_under_a_small_workspace_limit(op, dtype, restore_settings,
                                                    assert_close_to_reference):
    x, w, gy, kw = _problem("2d-groups", dtype)
    x, gy = np.concatenate([x] * 3), np.concatenate([gy] * 3)        # a batch of 6
    spec = make_spec(x.shape, w.shape, dtype=dtype, **kw)
    limit = fft.Plan(spec, op, None, 2**28).workspace(2) + 1
    fastconv.set_workspace_limit(limit)
    assert fft.workspace(spec, op) <= limit              # whatever tiling the chooser takes
    for threads in (1, 2, 3):                            # the core's scratch on every thread too
        fastconv.set_num_threads(threads)
        assert fft.workspace(spec, op) <= limit
    plan = fft.Plan(spec, op, None, limit)
    assert 1 <= plan.chunk < 6
    assert_close_to_reference(_run_plan(op, plan, x, w, gy), _run(op, x, w, gy, kw, "reference"),
                              dtype)


def test_workspace_counts_the_cores_scratch_on_every_thread(restore_settings):
    """The column, row and fused passes of src/_fft_columns_impl.h and src/_fft_fused.h take
    (2 L + lanes) vectors of scratch per thread: workspace() counts them for 64-byte vectors on
    the call's threads, and a call runs fewer threads where theirs would pass the limit."""
    spec = make_spec((16, 1, 16000), (32, 1, 64), dtype=np.float32)
    fastconv.set_num_threads(2)
    plan = fft.current_plan(spec, "forward")
    assert plan.scratch == (2 * max(plan.L) + 64 // 4) * 64
    buffers_only = plan.workspace(plan.chunk, threads=0)
    assert fft.workspace(spec, "forward") == buffers_only + 2 * plan.scratch
    tight = fft.Plan(spec, "forward", plan.factor, plan.workspace(plan.chunk) + plan.scratch - 1)
    assert tight.chunk == plan.chunk and tight.threads(2) == 1 and tight.threads(1) == 1
    fastconv.set_workspace_limit(tight.limit)
    assert fft.workspace(spec, "forward") <= tight.limit


def test_refuses_with_a_reason_when_no_tile_fits(restore_settings):
    spec = _spec("2d-largek", np.float64)
    fastconv.set_workspace_limit(1024)
    ok, reason = fft.supports(spec, "forward")
    assert not ok and "workspace limit" in reason
    x, w, gy, kw = _problem("2d-largek", np.float64)
    with pytest.raises(fastconv.NotSupportedError, match="does not support"):
        fastconv.conv(x, w, algorithm="fft", **kw)


@pytest.mark.parametrize("prune", [0.0, 2.0], ids=["bulk", "pruned"])
@pytest.mark.parametrize("gemm", [True, False], ids=["gemm", "fft"])
@pytest.mark.parametrize("op", OPS)
@pytest.mark.parametrize("name", ["2d-full", "3d", "1d-padding-wider-than-kernel", "2d-dilated",
                                  "3d-width-1"])
def test_kernel_dft_and_pruned_transforms(name, op, gemm, prune, assert_close_to_reference):
    """On pocketfft's path (lengths with a prime factor beyond the Cython core's radices): both
    ways to the kernel's frequencies (GEMM with the DFT matrix, FFT of the placed taps) and both
    ways to the input's (one padded transform, or axis by axis on the data lines)."""
    for dtype in DTYPES:
        x, w, gy, kw = _problem(name, dtype)
        plan = _plan.best(_spec(name, dtype), op, 2**28, backend="pocketfft", by_gemm=gemm,
                          prune_below=prune)                                # pocketfft's path
        assert plan.backend == "pocketfft" and not plan.fused
        assert_close_to_reference(_run_plan(op, plan, x, w, gy),
                                  _run(op, x, w, gy, kw, "reference"), dtype)


@pytest.mark.parametrize("op", OPS)
@pytest.mark.parametrize("name", ["2d-largek", "2d-groups", "3d-strided-dilated"])
def test_bitwise_identical_for_1_2_and_3_threads(name, op, restore_settings):
    """Also where the channel product and the kernel GEMMs are split over threads."""
    rng = np.random.default_rng(3)
    xs, ws, kw = CASES[name]
    xs = (6,) + xs[1:2] + tuple(3 * n for n in xs[2:])          # enough work to split
    ws = (ws[0] * 4,) + ws[1:]
    kw = dict(kw, groups=kw.get("groups", 1))
    x = rng.standard_normal(xs).astype(np.float32)
    w = rng.standard_normal(ws).astype(np.float32)
    spec = make_spec(xs, ws, dtype=np.float32, **kw)
    gy = rng.standard_normal(spec.user_shape(spec.y_shape)).astype(np.float32)
    for factor in (None, 4):
        results = []
        for threads in (1, 2, 3, 1):
            fastconv.set_num_threads(threads)
            results.append(_tiled(op, factor, x, w, gy, kw))
        for r in results[1:]:
            assert np.array_equal(results[0], r)


def _product_reference(op, a, b, G):
    """The channel contraction of _fft.pyx in complex128 with einsum, per group."""
    out = []
    if op == "forward":                      # a = X (N, C, F), b = W (K, Cg, F)
        Cg, Kg = a.shape[1] // G, b.shape[0] // G
        for g in range(G):
            out.append(np.einsum("ncf,kcf->nkf", a[:, g * Cg:(g + 1) * Cg],
                                 np.conj(b[g * Kg:(g + 1) * Kg])))
        return np.concatenate(out, axis=1)
    if op == "grad_input":                   # a = GY (N, K, F), b = W (K, Cg, F)
        Kg = a.shape[1] // G
        for g in range(G):
            out.append(np.einsum("nkf,kcf->ncf", a[:, g * Kg:(g + 1) * Kg], b[g * Kg:(g + 1) * Kg]))
        return np.concatenate(out, axis=1)
    Kg, Cg = a.shape[1] // G, b.shape[1] // G      # a = GY (N, K, F), b = X (N, C, F)
    for g in range(G):
        out.append(np.einsum("nkf,ncf->kcf", np.conj(a[:, g * Kg:(g + 1) * Kg]),
                             b[:, g * Cg:(g + 1) * Cg]))
    return np.concatenate(out, axis=0)


@pytest.mark.parametrize("dtype", [np.complex64, np.complex128])
@pytest.mark.parametrize("F", [1, 7, 8, 9, 63, 64, 65, 200])
@pytest.mark.parametrize("op", OPS)
def test_channel_product_blocks_and_tails(op, F, dtype):
    """Full blocks of 8 frequencies, partial ones, items of 64; 1..4 outputs at a time; groups."""
    rng = np.random.default_rng(F)
    N, C, K, G = 3, 6, 10, 2

    def spectra(*shape):
        return (rng.standard_normal(shape) + 1j * rng.standard_normal(shape)).astype(dtype)

    X, GY, W = spectra(N, C, F), spectra(N, K, F), spectra(K, C // G, F)
    spec = make_spec((N, C, F), (K, C // G, 1), groups=G,
                     dtype=np.float32 if dtype == np.complex64 else np.float64)
    plan = fft.Plan(spec, op, None, 2**28)
    plan.freqs = F
    a, b = {"forward": (X, W), "grad_input": (GY, W), "grad_kernel": (GY, X)}[op]
    expected = _product_reference(op, a, b, G)
    out = np.full(expected.shape, np.nan, dtype)
    if op == "grad_kernel":                  # accumulates
        out[...] = 1 + 1j
        expected = expected + (1 + 1j)
    for threads in (1, 3):
        got = out.copy()
        _product.product(plan, a, b, got, op == "grad_kernel", threads)
        tol = 1e-5 if dtype == np.complex64 else 1e-12
        assert np.max(np.abs(got - expected)) <= tol * np.max(np.abs(expected))
        if threads == 1:
            first = got
        else:
            assert np.array_equal(first, got)


def test_channel_product_item_count():
    assert _fft.items(1) == 1 and _fft.items(64) == 1 and _fft.items(65) == 2


@pytest.mark.parametrize("op", OPS)
@pytest.mark.parametrize("where", ["x", "w"])
@pytest.mark.parametrize("value", [np.nan, np.inf])
def test_non_finite_inputs_give_arithmetic_pattern(op, where, value, assert_close_to_reference):
    """A transform smears a NaN over its whole line; the fallback restores the exact pattern,
    also on tiled plans (one probe per tile)."""
    x, w, gy, kw = _problem("2d-largek", np.float64)
    if op == "grad_input" and where == "x":
        gy = gy.copy()
        gy[1, 2, 3, 4] = value
    elif where == "x":
        x = x.copy()
        x[1, 2, 3, 4] = value
    elif op == "grad_kernel":
        gy = gy.copy()
        gy[0, 1, 5, 5] = value
    else:
        w = w.copy()
        w[1, 0, 2, 2] = value
    expected = _run(op, x, w, gy, kw, algorithm="reference")
    for factor in (None, 3):
        assert_close_to_reference(_tiled(op, factor, x, w, gy, kw), expected, np.float64)


def test_float32_transform_overflow_falls_back():
    """Finite float32 inputs whose spectrum overflows: the result is still the finite one."""
    x = np.full((1, 1, 64, 64), 3e36, np.float32)
    w = np.ones((1, 1, 3, 3), np.float32)
    got = fastconv.conv(x, w, algorithm="fft")
    assert np.all(np.isfinite(got))
    np.testing.assert_allclose(got, 9 * 3e36, rtol=1e-6)


def test_results_do_not_alias_the_kept_buffers():
    x, w, gy, kw = _problem("2d-largek", np.float32)
    first = [_run(op, x, w, gy, kw) for op in OPS]
    saved = [r.copy() for r in first]
    for op in OPS:
        _run(op, 2 * x, 3 * w, 5 * gy, kw)
    for r, s in zip(first, saved):
        assert np.array_equal(r, s)
        assert r.flags.c_contiguous
        assert not any(np.shares_memory(r, raw) for raw in _buffers.buffers.store.values())


def test_buffers_are_dropped_past_the_retention_size():
    x, w, gy, kw = _problem("2d-largek", np.float32)
    plan = _plan.best(_spec("2d-largek", np.float32), "forward", 2**28, retain_bytes=1)
    _run_plan("forward", plan, x, w, gy)
    assert _buffers.buffers.store == {} and _buffers.buffers.kernel is None


def test_segments_and_take_wrap_around():
    L = 10
    assert _places.segments((7, 5, 1), L) == [(0, slice(7, 10, 1)), (3, slice(0, 2, 1))]
    assert _places.segments((0, 4, 3), L) == [(0, slice(0, 10, 3))]
    assert _places.segments((8, 3, 2), L) == [(0, slice(8, 9, 2)), (1, slice(0, 3, 2))]
    assert _places.segments((3, 0, 1), L) == []
    a = np.arange(L)[None, None]
    np.testing.assert_array_equal(_places.take(a, 2, (8, 3, 2), L)[0, 0], [8, 0, 2])
    np.testing.assert_array_equal(_places.take(a, 2, (2, 4, 1), L)[0, 0], [2, 3, 4, 5])


@pytest.mark.parametrize("n,k,lo,hi,d", [(128, 15, 7, 7, 1), (512, 63, 0, 0, 1), (20, 5, 9, 0, 1),
                                         (9, 3, 7, 11, 1), (30, 4, 0, 3, 3)])
def test_transform_length_lets_the_wrap_around_fall_on_padding(n, k, lo, hi, d):
    """One tile needs L >= n + max(pad_low, pad_high used) and >= the kernel, not the padded
    length: 'valid' keeps L = n (up to a fast size)."""
    e = d * (k - 1) + 1
    o = n + lo + hi - e + 1
    axis = _plan.Axis(n, k, 1, d, lo, o, o, True)
    assert axis.tiles == 1
    need = max(n + max(lo, hi), e, o)
    assert need <= axis.L == _plan.fast_len(need, True)


def test_tap_dft_matches_the_fft_of_the_placed_kernel():
    rng = np.random.default_rng(0)
    L, k, d, lo = 27, 5, 3, 4
    taps = rng.standard_normal(k)
    placed = np.zeros(L)
    placed[(np.arange(k) * d - lo) % L] = taps
    D = _taps.tap_dft(L, k, d, lo, False, False, np.dtype(np.float64))
    np.testing.assert_allclose(D @ taps, np.fft.fft(placed), atol=1e-12)
    Dh = _taps.tap_dft(L, k, d, lo, True, False, np.dtype(np.float64))
    np.testing.assert_allclose(Dh @ taps, np.fft.rfft(placed), atol=1e-12)
    for half, spectrum in ((False, np.fft.fft(placed)), (True, np.fft.rfft(placed))):
        inverse = _taps.tap_dft(L, k, d, lo, half, True, np.dtype(np.float64))
        np.testing.assert_allclose((inverse @ spectrum).real, taps, atol=1e-12)
    even = _taps.tap_dft(28, k, d, lo, True, True, np.dtype(np.float64))
    placed28 = np.zeros(28)
    placed28[(np.arange(k) * d - lo) % 28] = taps
    np.testing.assert_allclose((even @ np.fft.rfft(placed28)).real, taps, atol=1e-12)


# --- the cost model ----------------------------------------------------------------------

@pytest.mark.parametrize("op", OPS)
@pytest.mark.parametrize("x_shape,w_shape,padding", [
    ((4, 8, 128, 128), (8, 8, 15, 15), 7),                # the suite's largek15
    ((1, 1, 512, 512), (1, 1, 63, 63), 0),                # a single image, large kernel
    ((2, 4, 256, 256), (4, 4, 21, 21), 0),                # the 21x21 anchor
])
def test_auto_picks_fft_for_large_kernels(x_shape, w_shape, padding, op):
    ex = fastconv.explain(x_shape, w_shape, padding=padding, dtype="float32")
    assert ex.choice[op] == "fft", str(ex)


@pytest.mark.parametrize("x_shape,w_shape,padding", [
    ((8, 64, 56, 56), (64, 64, 3, 3), 1),                 # resnet3x3
    ((8, 256, 28, 28), (64, 256, 1, 1), 0),               # pointwise
    ((1, 1, 512, 512), (1, 1, 3, 3), 0),
    ((2, 4, 32, 32, 32), (8, 4, 3, 3, 3), 1),
])
def test_auto_does_not_pick_fft_for_small_kernels(x_shape, w_shape, padding):
    ex = fastconv.explain(x_shape, w_shape, padding=padding, dtype="float32")
    assert "fft" not in ex.choice.values(), str(ex)


def test_cost_grows_with_the_problem_and_the_thread_count_helps():
    small = make_spec((1, 4, 64, 64), (4, 4, 9, 9), padding=4, dtype=np.float32)
    big = make_spec((4, 4, 256, 256), (4, 4, 9, 9), padding=4, dtype=np.float32)
    assert 0 < fft.cost(small, "forward") < fft.cost(big, "forward")
    plan = fft.current_plan(big, "forward")
    assert plan.seconds(2) < plan.seconds(1)
    big64 = make_spec((4, 4, 256, 256), (4, 4, 9, 9), padding=4, dtype=np.float64)
    assert fft.cost(big, "forward") < fft.cost(big64, "forward")


def test_the_tiling_does_not_depend_on_the_thread_count(restore_settings):
    spec = make_spec((16, 1, 16000), (32, 1, 64), dtype=np.float32)
    plans = []
    for threads in (1, 2, 4):
        fastconv.set_num_threads(threads)
        plan = fft.current_plan(spec, "forward")
        plans.append((plan.L, plan.tiles, plan.chunk))
    assert plans[0] == plans[1] == plans[2]


@pytest.mark.parametrize("op", OPS)
@pytest.mark.parametrize("n,k,padding,stride", [(1, 1, (3, 2), 2), (2, 2, (5, 5), 7),
                                                (4, 1, (0, 3), 5)])
def test_outputs_that_read_only_padding_are_exact_zeros(op, n, k, padding, stride):
    """Where no output reads an input element the result is zero, exactly (a transform would
    leave rounding noise, which the relative tolerance cannot absorb when everything is zero)."""
    rng = np.random.default_rng(n)
    x = rng.standard_normal((2, 3, n))
    w = rng.standard_normal((2, 3, k))
    kw = dict(padding=(padding,), stride=stride)
    y = reference.conv(x, w, **kw)
    gy = rng.standard_normal(y.shape)
    expected = _run(op, x, w, gy, kw, algorithm="reference")
    got = _run(op, x, w, gy, kw)
    if not np.any(expected):
        assert not np.any(got)
    np.testing.assert_allclose(got, expected, atol=1e-12)


@pytest.mark.parametrize("L", [1, 2, 3, 4])
def test_tap_dft_inverse_weights_for_tiny_lengths(L):
    """The half spectrum's weights: 1 at frequency 0 and at L/2 (L even), 2 elsewhere."""
    rng = np.random.default_rng(L)
    taps = rng.standard_normal(1)
    placed = np.zeros(L)
    placed[0] = taps[0]
    inverse = _taps.tap_dft(L, 1, 1, 0, True, True, np.dtype(np.float64))
    np.testing.assert_allclose((inverse @ np.fft.rfft(placed)).real, taps, atol=1e-12)


@pytest.mark.parametrize("dtype", [np.complex64, np.complex128])
@pytest.mark.parametrize("ni,nt,nw", [(1, 1, 1), (3, 5, 7), (4, 15, 8), (5, 2, 9), (9, 7, 33),
                                      (135, 15, 68), (6, 40, 64)])
def test_matrix_along(ni, nt, nw, dtype):
    """Four rows at a time and fewer, column chunks of 4 vectors, single vectors, the last
    (overlapping) vector and the scalar columns of rows shorter than a vector."""
    rng = np.random.default_rng(ni * nt * nw)
    m = (rng.standard_normal((ni, nt)) + 1j * rng.standard_normal((ni, nt))).astype(dtype)
    a = (rng.standard_normal((3, nt, nw)) + 1j * rng.standard_normal((3, nt, nw))).astype(dtype)
    out = np.full((3, ni, nw), np.nan, dtype)
    real = m.real.dtype
    flat = [z.view(real).reshape(-1) for z in (m, a, out)]
    _fft.matrix_along(*flat, ni, nt, nw, 0, 2)
    _fft.matrix_along(*flat, ni, nt, nw, 2, 3)
    expected = np.matmul(m.astype(np.complex128), a.astype(np.complex128))
    tol = 1e-5 if dtype == np.complex64 else 1e-13
    assert np.max(np.abs(out - expected)) <= tol * np.max(np.abs(expected))


def test_concurrent_calls_from_python_threads(restore_settings):
    """Each Python thread has its own kept buffers."""
    from concurrent.futures import ThreadPoolExecutor
    fastconv.set_num_threads(2)
    x, w, gy, kw = _problem("2d-largek", np.float32)
    inputs = [(s * x, w + s, gy) for s in range(6)]
    expected = [[_run(op, *i[:2], i[2], kw) for op in OPS] for i in inputs]
    with ThreadPoolExecutor(4) as pool:
        got = list(pool.map(lambda i: [_run(op, *i[:2], i[2], kw) for op in OPS], inputs))
    for e, g in zip(expected, got):
        for a, b in zip(e, g):
            assert np.array_equal(a, b)


# --- the Cython core's own transforms (src/_fft_columns.h) ---------------------------------

def test_radices():
    assert _own.radices(135) == [3, 3, 3, 5]
    assert _own.radices(512) == [4, 4, 4, 4, 2]
    assert _own.radices(4) == [2, 2] and _own.radices(8) == [4, 2]
    assert _own.radices(7 * 11 * 13) == [7, 11, 13]
    assert _own.radices(2 * 17) is None                 # beyond the largest radix: pocketfft
    assert _own.column_plan(34, True, np.dtype(np.float32)) is None
    assert _own.column_plan(1, True, np.dtype(np.float32)) is None
    assert _own.takes(135) and not _own.takes(34) and not _own.takes(1)
    assert not _own.takes(3 * 2**60 + 17 * 2**40)        # decided without building tables


def _complex_array(rng, shape, dtype):
    return (rng.standard_normal(shape) + 1j * rng.standard_normal(shape)).astype(dtype)


@pytest.mark.parametrize("dtype", [np.complex64, np.complex128])
@pytest.mark.parametrize("L", [2, 3, 4, 5, 7, 8, 9, 11, 12, 13, 16, 27, 135, 144, 270])
@pytest.mark.parametrize("ncols", [1, 5, 8, 13])
def test_column_fft_matches_numpy(L, ncols, dtype):
    """Every butterfly (2, 3, 4, 5 and the generic one), full and partial blocks of columns,
    forward and inverse (scaled 1/L), the same whatever the split of the items."""
    rng = np.random.default_rng(L * ncols)
    a = _complex_array(rng, (3, L, ncols), dtype)
    tol = 2e-6 if dtype == np.complex64 else 1e-13
    for forward, reference_fft in ((True, np.fft.fft), (False, np.fft.ifft)):
        expected = reference_fft(a.astype(np.complex128), axis=1)
        got = a.copy()
        assert _own.columns(got, 1, forward, 1) is got
        assert np.max(np.abs(got - expected)) <= tol * np.max(np.abs(expected))
        split = a.copy()
        _own.columns(split, 1, forward, 3)
        assert np.array_equal(got, split)


def _rows_case(rng, nlines, L, count, start, step, src_step, dtype):
    """Lines of `count` values `src_step` apart, placed at (start + i step) mod L."""
    real = np.dtype(dtype)
    src = rng.standard_normal((nlines, count * src_step)).astype(real)
    placed = np.zeros((nlines, L))
    placed[:, (start + step * np.arange(count)) % L] = src[:, ::src_step]
    return src, placed


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("nlines", [1, 3, 16, 17, 40])
@pytest.mark.parametrize("L,count,start,step,src_step", [
    (135, 128, 0, 1, 1),            # the largek15 rows: vector path and its tail
    (135, 128, 130, 1, 1),          # wrapping around the end of the buffer
    (64, 20, 50, 3, 1),             # strided placement (scalar path)
    (30, 9, 4, 1, 2),               # strided source (scalar path)
    (7, 7, 0, 1, 1), (8, 5, 6, 1, 1), (1024, 1000, 3, 1, 1),
])
def test_row_transforms_match_numpy(nlines, L, count, start, step, src_step, dtype):
    """rows_r2c: real lines, two per complex transform, into blocked half spectra (zeros up to
    the end of the last block); rows_c2r back to the placed positions."""
    rng = np.random.default_rng(nlines * L + count)
    src, placed = _rows_case(rng, nlines, L, count, start, step, src_step, dtype)
    fb = _fft.freq_block()
    F = L // 2 + 1
    blocks = -(-F // fb)
    out = np.full((nlines, blocks, fb), np.nan, _places.complex_dtype(src.dtype))
    flat = out.view(src.dtype).reshape(-1)
    src_off = (np.arange(nlines) * src.shape[1]).astype(np.intp)
    dst_off = (np.arange(nlines) * 2 * blocks * fb).astype(np.intp)
    forward = _own.column_plan(L, True, src.dtype)
    items = _fft.row_items(nlines, src.itemsize)
    _fft.rows_r2c(src.ctypes.data, src_off, src_step, count, start, step, flat, dst_off,
                  2 * fb, L, *forward, 0, 1)
    _fft.rows_r2c(src.ctypes.data, src_off, src_step, count, start, step, flat, dst_off,
                  2 * fb, L, *forward, 1, items)
    half = out.reshape(nlines, blocks * fb)
    expected = np.fft.rfft(placed, axis=1)
    tol = 2e-6 if dtype == np.float32 else 1e-13
    assert np.max(np.abs(half[:, :F] - expected)) <= tol * np.max(np.abs(expected))
    assert not np.any(half[:, F:])
    back = np.full((nlines, count), np.nan, src.dtype)
    inverse = _own.column_plan(L, False, src.dtype)
    back_off = (np.arange(nlines) * count).astype(np.intp)
    _fft.rows_c2r(flat, dst_off, 2 * fb, back.ctypes.data, back_off, 1, count, start, step, L,
                  *inverse, 1.0 / L, 0, items)
    np.testing.assert_allclose(back, src[:, ::src_step], atol=tol * np.max(np.abs(src)) * 10)


def test_inverse_rows_ignore_the_imaginary_parts_a_real_signal_cannot_have():
    """Frequency 0 (and L/2 for even L) of a real line is real; rows_c2r drops an imaginary
    part there, as a real inverse transform does, so that it does not leak into the line it is
    paired with."""
    rng = np.random.default_rng(5)
    for L in (12, 13):
        F = L // 2 + 1
        spectra = np.fft.rfft(rng.standard_normal((2, L)), axis=1)
        spectra[:, 0] += 3j
        if L % 2 == 0:
            spectra[:, -1] -= 2j
        fb = _fft.freq_block()
        blocks = -(-F // fb)
        buf = np.zeros((2, blocks * fb), np.complex128)
        buf[:, :F] = spectra
        out = np.empty((2, L))
        _fft.rows_c2r(buf.view(np.float64).reshape(-1), np.array([0, 2 * blocks * fb], np.intp),
                      2 * fb, out.ctypes.data, np.array([0, L], np.intp), 1, L, 0, 1, L,
                      *_own.column_plan(L, False, np.dtype(np.float64)), 1.0 / L, 0, 1)
        np.testing.assert_allclose(out, np.fft.irfft(spectra, n=L, axis=1), atol=1e-12)


@pytest.mark.parametrize("op", OPS)
@pytest.mark.parametrize("name", ["2d-largek", "2d-groups", "2d-strided-unused-tail", "2d-full"])
def test_fused_pass_matches_the_separate_steps(name, op):
    """The 2-D pass fused per block of columns (column FFTs, channel product, and for the
    forward and input gradient the inverse column FFTs) against the same steps one after the
    other."""
    for dtype in DTYPES:
        x, w, gy, kw = _problem(name, dtype)
        spec = _spec(name, dtype)
        plan = fft.current_plan(spec, op)
        assert plan.fused
        fused = _run(op, x, w, gy, kw)
        steps = _plan.best(spec, op, plan.limit, fuse=False)
        assert not steps.fused and (steps.L, steps.tiles, steps.chunk) == (plan.L, plan.tiles,
                                                                           plan.chunk)
        separate = _run_plan(op, steps, x, w, gy)
        tol = 1e-5 if dtype == np.float32 else 1e-12
        assert np.max(np.abs(fused - separate)) <= tol * np.max(np.abs(separate))


def test_kernel_spectra_are_reused_only_for_an_equal_kernel(assert_close_to_reference):
    """The last kernel spectra of a thread serve a call with equal kernel values and geometry;
    a kernel changed in place, or another geometry, is transformed again."""
    x, w, gy, kw = _problem("2d-largek", np.float64)
    spec = _spec("2d-largek", np.float64)
    w5 = np.ascontiguousarray(w.reshape(spec.w_shape))
    plan = fft.current_plan(spec, "forward")
    first = _kernel.spectra(plan, w5, 1, _own)
    assert _kernel.spectra(plan, w5.copy(), 1, _own) is first          # equal values: reused
    w = w.copy()
    for step in range(2):
        expected = _run("forward", x, w, gy, kw, algorithm="reference")
        assert_close_to_reference(_run("forward", x, w, gy, kw), expected, np.float64)
        assert_close_to_reference(_run("grad_input", x, w, gy, kw),
                                  _run("grad_input", x, w, gy, kw, algorithm="reference"),
                                  np.float64)
        w[0, 0, 1, 1] += 1.0                                          # changed in place
    other = make_spec(x.shape, w.shape, dtype=np.float64, padding=1)
    assert_close_to_reference(fastconv.conv(x, w, padding=1, algorithm="fft"),
                              reference.conv(x, w, padding=1), np.float64)
    assert fft.current_plan(other, "forward").L != plan.L


@pytest.mark.parametrize("level", [0, 1])
def test_every_kernel_set_matches_the_reference(level, check_kernel_set):
    """The x86-64-v3 kernels and the build's own (baseline) ones, which this machine would not
    pick, run in a fresh interpreter with FASTCONV_FFT_LEVEL lowered: 1-D (row transforms and
    the channel product), 2-D (the fused passes, groups, strides) and 3-D (column FFTs, pruned
    ones and the product)."""
    if _fft.kernel_level() < level:
        pytest.skip("this machine cannot run that kernel set")
    names = ("1d-asymmetric", "2d-largek", "2d-groups", "2d-strided-unused-tail", "2d-width-1",
             "3d", "3d-strided-dilated")
    check_kernel_set("fft", "FASTCONV_FFT_LEVEL", level, [CASES[n] for n in names])


@pytest.mark.parametrize("level", [0, 1])
def test_every_kernel_set_passes_the_kernel_tests(level):
    """This file's tests of the C kernels themselves (partial blocks and tails, every radix,
    matrix_along, which the algorithm reaches only for lengths next_fast_len never gives) and
    of thread-count invariance, in a fresh pytest with FASTCONV_FFT_LEVEL lowered."""
    if _fft.kernel_level() < level:
        pytest.skip("this machine cannot run that kernel set")
    root = os.path.dirname(os.path.dirname(os.path.abspath(fastconv.__file__)))
    env = dict(os.environ, FASTCONV_FFT_LEVEL=str(level),
               PYTHONPATH=root + os.pathsep + os.environ.get("PYTHONPATH", ""))
    tests = ("channel_product_blocks or matrix_along or column_fft or row_transforms "
             "or inverse_rows or fused_pass or bitwise_identical")
    done = subprocess.run([sys.executable, "-m", "pytest", os.path.abspath(__file__), "-q",
                           "-p", "no:cacheprovider", "-k", tests], env=env, cwd=root,
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout[-3000:]
