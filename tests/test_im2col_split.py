"""im2col on problems with few chunks: forward's output-channel blocks, grad_kernel's row slabs,
grad_input's smaller channel blocks and parts of the positions.

A small batch of small maps (ResNet's last stage at batch 1 is a single chunk) once ran on one
thread. Now forward packs each chunk once and splits the GEMMs into blocks of output channels
(`kblocks`), grad_kernel splits the column matrix's rows into slabs, each with its own block
of the gradient (`slabs`), and grad_input splits the positions (a row's, a map's rows or a 3-D map's
planes) into parts whose writes overlap only their neighbours' (`position_parts`: even parts
first, then odd ones). Each case asserts that its split is in use (so the test cannot pass on
the old path), then compares the three operations with fastconv.reference (eq. 9.8, 9.11, 9.13),
checks 1 and 2 threads give identical bits (the split comes from the problem, never from the
thread count), and that no input was written.
"""
import numpy as np
import pytest

import fastconv
from fastconv import reference
from fastconv._algorithms import im2col
from fastconv._geometry import make_spec

OPS = ("forward", "grad_input", "grad_kernel")

# (x shape, w shape, geometry, the split each op must use {op: (attribute, value)})
CASES = [
    ((1, 24, 5, 6), (320, 24, 3, 3), dict(padding=1), {"forward": ("kblocks", 2)}),
    ((1, 16, 5, 5), (512, 8, 3, 3), dict(padding=1, groups=2), {"forward": ("kblocks", 2)}),
    ((1, 16, 4, 5), (500, 16, 1, 1), {}, {"forward": ("kblocks", 3)}),
    ((1, 8, 9, 13), (260, 8, 3, 3), dict(stride=2, padding=1), {"forward": ("kblocks", 2)}),
    ((1, 16, 30), (300, 16, 3), dict(dilation=2), {"forward": ("kblocks", 2)}),
    ((1, 4, 4, 5, 6), (256, 4, 3, 3, 3), dict(padding=1), {"forward": ("kblocks", 2)}),
    ((1, 40, 6, 7), (16, 40, 3, 3), {}, {"grad_kernel": ("slabs", 5)}),
    ((2, 40, 6, 7), (16, 40, 3, 3), dict(stride=(1, 2)), {"grad_kernel": ("slabs", 4)}),
    ((3, 24, 5, 5), (600, 24, 3, 3), dict(padding=1), {"grad_kernel": ("slabs", 3)}),
    ((1, 128, 5, 5), (64, 64, 3, 3), dict(padding=1, groups=2), {"grad_kernel": ("slabs", 4)}),
    ((1, 200, 3, 3), (8, 200, 1, 1), {}, {"grad_kernel": ("slabs", 3)}),
    ((1, 16, 9, 9), (8, 16, 3, 3), dict(stride=2, padding=1), {"grad_input": ("block", 8)}),
    ((1, 320, 3, 3), (40, 320, 1, 1), {}, {"grad_input": ("block", 80)}),
    ((1, 256, 4, 4), (16, 128, 1, 1), dict(groups=2), {"grad_input": ("block", 64)}),
    ((1, 16, 7, 20), (8, 16, 3, 3), dict(stride=(1, 3)), {"grad_input": ("block", 8)}),
    # grad_input's parts of the positions: a single-channel first layer (wav2vec's 10/5, phased)
    ((1, 1, 200), (16, 1, 10), dict(stride=5), {"grad_input": ("position_parts", 4)}),
    ((1, 1, 20, 17), (8, 1, 3, 3), dict(padding=1), {"grad_input": ("position_parts", 4)}),
    ((1, 2, 12, 20), (8, 2, 3, 3), dict(stride=(1, 3)), {"grad_input": ("position_parts", 4)}),
    ((2, 3, 60), (4, 3, 3), dict(dilation=4, padding=4), {"grad_input": ("position_parts", 2)}),
    ((1, 1, 3, 40), (4, 1, 3, 5), dict(stride=(1, 2)), {"grad_input": ("position_parts", 4)}),
    ((1, 1, 10), (2, 1, 5), {}, {"grad_input": ("position_parts", 1)}),     # parts too narrow
    # 3-D maps along their planes (C3D's 3-channel first layer at batch 1 was one item)
    ((1, 1, 6, 6, 6), (2, 1, 3, 3, 3), {}, {"grad_input": ("position_parts", 2)}),
    ((1, 3, 8, 6, 5), (4, 3, 3, 3, 3), dict(padding=1), {"grad_input": ("position_parts", 4)}),
    ((1, 1, 1, 9, 7), (2, 1, 1, 3, 3), {}, {"grad_input": ("position_parts", 3)}),   # one plane
]


def _arrays(rng, case, dtype):
    x_shape, w_shape, geometry, _ = case
    x = rng.standard_normal(x_shape).astype(dtype)
    w = rng.standard_normal(w_shape).astype(dtype)
    gy = rng.standard_normal(reference.conv(x, w, **geometry).shape).astype(dtype)
    return x, w, gy


def _run(op, impl, x, w, gy, geometry, **kw):
    if op == "forward":
        return impl.conv(x, w, **geometry, **kw)
    if op == "grad_input":
        return impl.conv_grad_input(gy, w, x.shape, **geometry, **kw)
    return impl.conv_grad_kernel(x, gy, w.shape, **geometry, **kw)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("case", CASES, ids=lambda c: f"{c[0]}x{c[1]}")
@pytest.mark.parametrize("op", OPS)
def test_split_im2col_matches_reference(op, case, dtype, rng, restore_settings,
                                        assert_close_to_reference, monkeypatch):
    x_shape, w_shape, geometry, splits = case
    if op == "forward":     # the BLAS plan's blocks (at AVX2 C3D's would go to the packed GEMM,
        monkeypatch.setenv("FASTCONV_IM2COL_GEMM", "blas")      # whose are test_packed_gemm's)
    spec = make_spec(x_shape, w_shape, dtype=dtype, **geometry)
    for threads in (1, 2):
        fastconv.set_num_threads(threads)
        plan = im2col._Plan(spec, op)
        if op in splits:
            attribute, value = splits[op]
            assert getattr(plan, attribute) == value, f"{attribute} {getattr(plan, attribute)}"
    x, w, gy = _arrays(rng, case, dtype)
    copies = [a.copy() for a in (x, w, gy)]
    expected = _run(op, reference, x, w, gy, geometry)
    results = []
    for threads in (1, 2, 1):
        fastconv.set_num_threads(threads)
        results.append(_run(op, fastconv, x, w, gy, geometry, algorithm="im2col"))
    assert_close_to_reference(results[0], expected)
    assert np.array_equal(results[0], results[1]) and np.array_equal(results[0], results[2])
    for a, a0 in zip((x, w, gy), copies):
        assert np.array_equal(a, a0), "an input was written"


def test_kblocks_fall_back_when_every_chunk_does_not_fit(rng, restore_settings,
                                                         assert_close_to_reference):
    """Packing every chunk once needs all their columns at once; under a workspace limit that
    holds only one thread's chunk, forward runs one block per chunk again, with the same result
    up to rounding and within the limit."""
    case = ((2, 24, 5, 6),) + CASES[0][1:]        # two chunks, each 216 rows x 30 columns
    x, w, gy = _arrays(rng, case, np.float64)
    spec = make_spec(x.shape, w.shape, dtype=np.float64, **case[2])
    assert im2col._Plan(spec, "forward").kblocks == 2
    fastconv.set_workspace_limit(216 * 30 * 8)       # room for one chunk only
    fastconv.set_num_threads(2)
    plan = im2col._Plan(spec, "forward")
    assert plan.kblocks == 1 and plan.workspace_elements * 8 <= fastconv.get_workspace_limit()
    assert_close_to_reference(fastconv.conv(x, w, algorithm="im2col", **case[2]),
                              reference.conv(x, w, **case[2]))


def test_one_part_sums_straight_into_the_gradient(restore_settings):
    """With one part, grad_kernel needs no partial sums buffer."""
    spec = make_spec((1, 40, 6, 7), (16, 40, 3, 3), dtype=np.float32)
    plan = im2col._Plan(spec, "grad_kernel")
    assert plan.parts == 1 and plan.partial_elements == 0
    spec = make_spec((4, 40, 6, 7), (16, 40, 3, 3), dtype=np.float32)
    plan = im2col._Plan(spec, "grad_kernel")
    assert plan.parts == 4 and plan.partial_elements == 4 * 16 * 360


@pytest.mark.parametrize("x_shape, w_shape, geometry", [
    ((1, 1, 16000), (64, 1, 10), dict(stride=5)),
    ((1, 1, 96, 96), (16, 1, 5, 5), dict(padding=2)),
    ((1, 3, 8, 40, 40), (16, 3, 3, 3, 3), dict(padding=1)),
])
def test_position_parts_give_the_same_bits_on_any_thread_count(x_shape, w_shape, geometry, rng,
                                                               restore_settings):
    """Large enough that two parts writing one value at once would show (a race loses adds):
    every run at 2 and 3 threads equals the 1-thread result bit for bit, and the reference."""
    spec = make_spec(x_shape, w_shape, dtype=np.float32, **geometry)
    assert im2col._Plan(spec, "grad_input").position_parts == 4
    w = rng.standard_normal(w_shape).astype(np.float32)
    gy_shape = (1, w_shape[0]) + spec.output_size[3 - (len(x_shape) - 2):]
    gy = rng.standard_normal(gy_shape).astype(np.float32)
    fastconv.set_num_threads(1)
    first = fastconv.conv_grad_input(gy, w, x_shape, algorithm="im2col", **geometry)
    np.testing.assert_allclose(first, reference.conv_grad_input(gy, w, x_shape, **geometry),
                               rtol=1e-4, atol=1e-4)
    for threads in (2, 3, 2, 3):
        fastconv.set_num_threads(threads)
        again = fastconv.conv_grad_input(gy, w, x_shape, algorithm="im2col", **geometry)
        assert np.array_equal(first, again), f"{threads} threads"


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("x_shape, w_shape, geometry", [
    ((2, 1, 203), (40, 1, 10), dict(stride=5)),             # 10 rows, 39 positions: a strip
    ((1, 3, 11, 13), (5, 3, 3, 3), dict(padding=1)),        # 27 rows: two tile blocks, an edge
    ((3, 2, 9, 70), (7, 2, 2, 3), dict(stride=(2, 3), dilation=(1, 2))),    # phased rows
    ((1, 4, 5, 6, 7), (6, 2, 2, 2, 2), dict(groups=2, padding=1)),          # 3-D, groups
])
def test_small_input_gradient_gemms_run_on_fastconv_s_own_kernel(x_shape, w_shape, geometry,
                                                                 dtype, rng, restore_settings,
                                                                 monkeypatch):
    """The input gradient's GEMMs on rows_gemm (forced here, so float64 and every shape run
    it), gy read in place (whole panels) or through the strip (the last columns): the
    reference's values, the BLAS path's up to rounding, the same bits at 1, 2 and 3 threads."""
    monkeypatch.setenv("FASTCONV_IM2COL_GEMM", "packed")
    spec = make_spec(x_shape, w_shape, dtype=dtype, **geometry)
    plan = im2col._Plan(spec, "grad_input")
    assert plan.rows_gemm and plan.gemm_elements > 0
    w = rng.standard_normal(w_shape).astype(dtype)
    gy = rng.standard_normal(reference.conv(np.zeros(x_shape, dtype), w, **geometry).shape
                             ).astype(dtype)
    want = reference.conv_grad_input(gy, w, x_shape, **geometry)
    results = []
    for threads in (1, 2, 3):
        fastconv.set_num_threads(threads)
        results.append(fastconv.conv_grad_input(gy, w, x_shape, algorithm="im2col", **geometry))
    scale = max(1.0, float(np.abs(want).max()))
    tol = 1e-5 if dtype == np.float32 else 1e-12
    assert np.abs(results[0] - want).max() <= tol * scale
    assert all(np.array_equal(results[0], r) for r in results[1:])
    monkeypatch.setenv("FASTCONV_IM2COL_GEMM", "blas")
    assert not im2col._Plan(spec, "grad_input").rows_gemm
    blas = fastconv.conv_grad_input(gy, w, x_shape, algorithm="im2col", **geometry)
    assert np.abs(blas - results[0]).max() <= tol * scale


@pytest.mark.parametrize("x_shape, w_shape, geometry, dtype, own", [
    ((1, 1, 16000), (256, 1, 10), dict(stride=5), np.float32, True),    # wav2vec's first layer
    ((2, 3, 8, 56, 56), (32, 3, 3, 3, 3), dict(padding=1), np.float32, True),     # C3D's
    ((1, 1, 16000), (256, 1, 10), dict(stride=5), np.float64, False),
    ((1, 1, 64, 64), (1, 1, 3, 3), {}, np.float32, False),      # an image filter: 1 deep
    ((1, 64, 9, 9), (32, 64, 3, 3), {}, np.float32, False),     # 144 rows a block
    ((1, 200, 5, 5), (8, 200, 1, 1), {}, np.float32, False),    # pointwise: gy is the result
])
def test_which_input_gradients_run_on_fastconv_s_own_gemm(x_shape, w_shape, geometry, dtype,
                                                          own):
    spec = make_spec(x_shape, w_shape, dtype=dtype, **geometry)
    plan = im2col._Plan(spec, "grad_input")
    if im2col.PACKED_MIN.get(im2col._im2col.kernel_level()) is None:
        own = False         # the baseline level keeps the BLAS
    assert plan.rows_gemm == own and (plan.gemm_elements > 0) == own


def test_the_cost_counts_the_input_gradient_a_1x1_gemm_writes():
    """A shallow 1x1 input gradient is bound by writing gx, which its GEMM writes itself: the cost
    counts it; a 3x3 input gradient's GEMM writes the columns (counted as copies already)."""
    f32 = np.dtype(np.float32)
    deep = make_spec((8, 16, 56, 56), (384, 16, 1, 1), dtype=f32)     # same flops as shallow,
    shallow = make_spec((8, 256, 56, 56), (24, 256, 1, 1), dtype=f32)  # 16x the gx it writes
    assert im2col._results_written(shallow, "grad_input") == 2 * 8 * 256 * 56 * 56
    assert im2col.cost(shallow, "grad_input") > 1.3 * im2col.cost(deep, "grad_input")
    three = make_spec((8, 16, 56, 56), (24, 16, 3, 3), padding=1, dtype=f32)
    for op in ("forward", "grad_input", "grad_kernel"):
        assert im2col._results_written(three, op) == 0
    assert im2col._results_written(shallow, "forward") == 0
