"""Locally connected (eq. 9.9) and tiled (eq. 9.10) convolution, section 9.5 of the chapter.

Every operation against the plain-NumPy reference (1-/2-/3-D, both precisions, odd shapes, stride,
dilation, every padding form, both kinds of bias); the special cases that tie the two to ordinary
convolution (t = 1, t = output size, all kernels equal); adjoint identities and finite
differences; hypothesis shapes; small chunks and blocks; bad input; inputs never written; empty
batches; thread-count invariance.
"""
import itertools
import math

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

import fastconv
from fastconv import local, reference as ref

DTYPES = (np.float32, np.float64)
OPS = ("forward", "grad_input", "grad_kernel")
KINDS = ("local", "tiled")
PATHS = ("by-tile", "by-position")

FAST = {
    "local": (local.locally_connected, local.locally_connected_grad_input,
              local.locally_connected_grad_kernel),
    "tiled": (local.tiled_conv, local.tiled_conv_grad_input, local.tiled_conv_grad_kernel),
}
REF = {
    "local": (ref.locally_connected, ref.locally_connected_grad_input,
              ref.locally_connected_grad_kernel),
    "tiled": (ref.tiled_conv, ref.tiled_conv_grad_input, ref.tiled_conv_grad_kernel),
}

# per dimension: (input size, kernel size, geometry) -- odd sizes, every padding form
GEOMETRIES = {
    1: [((9,), (3,), dict()),
        ((10,), (4,), dict(stride=3, padding="same")),
        ((7,), (2,), dict(dilation=3, padding="full")),
        ((11,), (3,), dict(stride=2, padding=[(2, 0)], dilation=2))],
    2: [((7, 6), (3, 3), dict(padding=1)),
        ((8, 7), (3, 2), dict(stride=(2, 1), padding="same")),
        ((6, 9), (2, 3), dict(dilation=(2, 1), padding=[(0, 2), (1, 0)])),
        ((9, 5), (1, 3), dict(stride=2, padding="valid")),
        ((5, 7), (3, 3), dict(stride=(1, 3), dilation=2, padding="full"))],
    3: [((5, 4, 6), (2, 3, 2), dict(padding=(1, 0, 1))),
        ((6, 5, 5), (3, 1, 2), dict(stride=(2, 1, 2), dilation=(1, 1, 2), padding="same"))],
}
CASES = [(d, *g) for d, gs in GEOMETRIES.items() for g in gs]
CASE_IDS = [f"{d}d-{n}-{k}-{g}" for d, n, k, g in CASES]


def _set_path(monkeypatch, path):
    """Tiled convolution has two implementations (one conv per tile, or position by position):
    pin the one under test."""
    by_position = path == "by-position"
    monkeypatch.setattr(local, "_by_position", lambda *args: by_position)


@pytest.fixture(params=["local", "tiled-by-tile", "tiled-by-position"])
def kind(request, monkeypatch):
    if request.param == "local":
        return "local"
    _set_path(monkeypatch, request.param[len("tiled-"):])
    return "tiled"


@pytest.fixture(params=PATHS)
def tiled_path(request, monkeypatch):
    _set_path(monkeypatch, request.param)
    return request.param


@pytest.fixture
def one_thread(restore_settings):
    """For tests of the mathematics that make many tiny calls (tiled with many tiles): with the
    conftest's every-problem-on-all-threads setting, each call's barriers wait out scheduler
    slices on a loaded machine. The parallel code has its own tests below."""
    fastconv.set_num_threads(1)


def out_size(n, k, geometry):
    """CONTRACT output size, computed here independently of the library and the reference."""
    d = len(n)
    each = lambda v: (v,) * d if np.ndim(v) == 0 else tuple(v)  # noqa: E731
    s, dil = each(geometry.get("stride", 1)), each(geometry.get("dilation", 1))
    p = geometry.get("padding", 0)
    eff = [dd * (kk - 1) + 1 for kk, dd in zip(k, dil)]
    if p == "valid":
        pads = [(0, 0)] * d
    elif p == "full":
        pads = [(e - 1, e - 1) for e in eff]
    elif p == "same":
        return tuple(-(-nn // ss) for nn, ss in zip(n, s))
    else:
        pads = [(q, q) if np.ndim(q) == 0 else tuple(q) for q in each(p)]
    return tuple((nn + lo + hi - e) // ss + 1 for nn, e, ss, (lo, hi) in zip(n, eff, s, pads))


def tiles_for(out):
    """Tile counts that divide some axes and not others, one larger than the output."""
    return tuple((2, 3, out[-1] + 1)[i] for i in range(len(out)))


def problem(rng, kind, d, n, k, geometry, dtype, N=3, C=3, K=4, tiles=None):
    out = out_size(n, k, geometry)
    lead = out if kind == "local" else (tiles or tiles_for(out))
    x = rng.standard_normal((N, C) + n).astype(dtype)
    w = rng.standard_normal(lead + (K, C) + k).astype(dtype)
    gy = rng.standard_normal((N, K) + out).astype(dtype)
    return x, w, gy


def call(fns, op, x, w, gy, bias=None, **geometry):
    forward, grad_input, grad_kernel = fns
    if op == "forward":
        return forward(x, w, bias, **geometry)
    if op == "grad_input":
        return grad_input(gy, w, x.shape, **geometry)
    return grad_kernel(x, gy, w.shape, **geometry)


# --- against the reference ------------------------------------------------------------------

@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("op", OPS)
@pytest.mark.parametrize("d,n,k,geometry", CASES, ids=CASE_IDS)
def test_matches_reference(d, n, k, geometry, kind, op, dtype, rng, assert_close_to_reference):
    x, w, gy = problem(rng, kind, d, n, k, geometry, dtype)
    got = call(FAST[kind], op, x, w, gy, **geometry)
    assert_close_to_reference(got, call(REF[kind], op, x, w, gy, **geometry), dtype)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("per", [False, True], ids=["shared", "per-position"])
@pytest.mark.parametrize("d", [1, 2, 3])
def test_bias(d, per, kind, dtype, rng, assert_close_to_reference):
    _, n, k, geometry = next(c for c in CASES if c[0] == d)
    x, w, _ = problem(rng, kind, d, n, k, geometry, dtype)
    lead = w.shape[:d]
    b = rng.standard_normal((w.shape[d],) + (lead if per else ())).astype(dtype)
    got = FAST[kind][0](x, w, b, **geometry)
    assert_close_to_reference(got, REF[kind][0](x, w, b, **geometry), dtype)
    # the bias is added at the right place: compare with the result without it
    plain = FAST[kind][0](x, w, **geometry)
    for o in itertools.product(*map(range, got.shape[2:])):
        where = tuple(oo % t for oo, t in zip(o, lead))
        expected = b[(slice(None),) + where] if per else b
        np.testing.assert_allclose(got[(slice(None), slice(None)) + o]
                                   - plain[(slice(None), slice(None)) + o],
                                   np.broadcast_to(expected, (x.shape[0], w.shape[d])),
                                   rtol=1e-5, atol=1e-5)


def test_reference_by_hand(tiled_path):
    """eq. 9.9 on numbers small enough to check by hand: 1-D, one channel, kernel 2, stride 1."""
    x = np.array([[[1.0, 2.0, 3.0]]])
    w = np.array([[[[10.0, 1.0]]], [[[100.0, -1.0]]]])           # (2 positions, K=1, C=1, 2)
    expected = [[[1 * 10 + 2 * 1, 2 * 100 - 3]]]
    np.testing.assert_array_equal(ref.locally_connected(x, w), expected)
    np.testing.assert_array_equal(local.locally_connected(x, w), expected)
    wt = np.array([[[[1.0, 0.0]]], [[[0.0, 1.0]]]])              # 2 tiles: picks x[0], then x[2]
    x4 = np.array([[[1.0, 2.0, 3.0, 4.0, 5.0]]])
    np.testing.assert_array_equal(ref.tiled_conv(x4, wt), [[[1.0, 3.0, 3.0, 5.0]]])
    np.testing.assert_array_equal(local.tiled_conv(x4, wt), [[[1.0, 3.0, 3.0, 5.0]]])


# --- the special cases that tie them to ordinary convolution --------------------------------

@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("d,n,k,geometry", CASES, ids=CASE_IDS)
def test_tiled_with_one_tile_is_conv(d, n, k, geometry, dtype, rng, tiled_path,
                                     assert_close_to_reference):
    x, w, gy = problem(rng, "tiled", d, n, k, geometry, dtype, tiles=(1,) * d)
    w0 = w[(0,) * d]
    b = rng.standard_normal(w.shape[d]).astype(dtype)
    assert_close_to_reference(local.tiled_conv(x, w, b, **geometry),
                              fastconv.conv(x, w0, b, **geometry), dtype)
    assert_close_to_reference(local.tiled_conv_grad_input(gy, w, x.shape, **geometry),
                              fastconv.conv_grad_input(gy, w0, x.shape, **geometry), dtype)
    assert_close_to_reference(local.tiled_conv_grad_kernel(x, gy, w.shape, **geometry)[(0,) * d],
                              fastconv.conv_grad_kernel(x, gy, w0.shape, **geometry), dtype)


@pytest.mark.parametrize("extra", [0, 2], ids=["t=out", "t>out"])
@pytest.mark.parametrize("d,n,k,geometry", CASES, ids=CASE_IDS)
def test_tiled_with_output_size_tiles_is_locally_connected(d, n, k, geometry, extra, rng,
                                                           one_thread, tiled_path,
                                                           assert_close_to_reference):
    out = out_size(n, k, geometry)
    x, w, gy = problem(rng, "tiled", d, n, k, geometry, np.float64,
                       tiles=tuple(o + extra for o in out))
    used = tuple(slice(0, o) for o in out)
    w_lc = w[used]
    b = rng.standard_normal((w.shape[d],) + w.shape[:d])
    assert_close_to_reference(local.tiled_conv(x, w, b, **geometry),
                              local.locally_connected(x, w_lc, b[(slice(None),) + used],
                                                      **geometry))
    assert_close_to_reference(local.tiled_conv_grad_input(gy, w, x.shape, **geometry),
                              local.locally_connected_grad_input(gy, w_lc, x.shape, **geometry))
    gw = local.tiled_conv_grad_kernel(x, gy, w.shape, **geometry)
    assert_close_to_reference(gw[used],
                              local.locally_connected_grad_kernel(x, gy, w_lc.shape, **geometry))
    unused = np.ones(gw.shape, bool)
    unused[used] = False
    assert not gw[unused].any()      # kernels no position uses get no gradient


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("d,n,k,geometry", CASES, ids=CASE_IDS)
def test_locally_connected_with_equal_kernels_is_conv(d, n, k, geometry, dtype, rng,
                                                      assert_close_to_reference):
    x, w, gy = problem(rng, "local", d, n, k, geometry, dtype)
    w0 = w[(0,) * d]
    w_all = np.broadcast_to(w0, w.shape)               # a read-only view: must be fine
    assert_close_to_reference(local.locally_connected(x, w_all, **geometry),
                              fastconv.conv(x, w0, **geometry), dtype)
    assert_close_to_reference(local.locally_connected_grad_input(gy, w_all, x.shape, **geometry),
                              fastconv.conv_grad_input(gy, w0, x.shape, **geometry), dtype)
    gw = local.locally_connected_grad_kernel(x, gy, w.shape, **geometry)
    assert_close_to_reference(gw.sum(axis=tuple(range(d)), dtype=np.float64).astype(dtype),
                              fastconv.conv_grad_kernel(x, gy, w0.shape, **geometry), dtype)


# --- linear algebra: adjoints and finite differences ----------------------------------------

@pytest.mark.parametrize("d,n,k,geometry", CASES, ids=CASE_IDS)
def test_adjoint_identities(d, n, k, geometry, kind, rng, one_thread):
    """<f(x, w), g> = <x, grad_input(g, w)> = <w, grad_kernel(x, g)> (the map is bilinear)."""
    x, w, gy = problem(rng, kind, d, n, k, geometry, np.float64)
    forward, grad_input, grad_kernel = FAST[kind]
    lhs = np.vdot(forward(x, w, **geometry), gy)
    via_x = np.vdot(x, grad_input(gy, w, x.shape, **geometry))
    via_w = np.vdot(w, grad_kernel(x, gy, w.shape, **geometry))
    scale = np.abs(x).sum() * np.abs(w).max() * np.abs(gy).max()
    assert abs(lhs - via_x) <= 1e-12 * scale
    assert abs(lhs - via_w) <= 1e-12 * scale


@pytest.mark.parametrize("d", [1, 2, 3])
def test_finite_differences(d, kind, rng, one_thread):
    """Central differences of L = <f(x, w), g> at random entries match both gradients."""
    _, n, k, geometry = [c for c in CASES if c[0] == d][-1]
    x, w, gy = problem(rng, kind, d, n, k, geometry, np.float64, N=2, C=2, K=2)
    forward, grad_input, grad_kernel = FAST[kind]
    loss = lambda xx, ww: float(np.vdot(forward(xx, ww, **geometry), gy))  # noqa: E731
    gx = grad_input(gy, w, x.shape, **geometry)
    gw = grad_kernel(x, gy, w.shape, **geometry)
    h = 1e-6
    for array, grad, other in ((x, gx, "x"), (w, gw, "w")):
        for flat in rng.choice(array.size, size=8, replace=False):
            i = np.unravel_index(flat, array.shape)
            plus, minus = array.copy(), array.copy()
            plus[i] += h
            minus[i] -= h
            args_p = (plus, w) if other == "x" else (x, plus)
            args_m = (minus, w) if other == "x" else (x, minus)
            numeric = (loss(*args_p) - loss(*args_m)) / (2 * h)
            assert abs(numeric - grad[i]) <= 1e-6 * max(1.0, abs(grad[i])), (other, i)


# --- hypothesis shapes ------------------------------------------------------------------------

@st.composite
def shapes(draw):
    d = draw(st.integers(1, 3))
    k = tuple(draw(st.integers(1, 3)) for _ in range(d))
    dil = tuple(draw(st.integers(1, 2)) for _ in range(d))
    s = tuple(draw(st.integers(1, 3)) for _ in range(d))
    pads = tuple((draw(st.integers(0, 2)), draw(st.integers(0, 2))) for _ in range(d))
    n = tuple(max(1, dd * (kk - 1) + 1 - lo - hi + draw(st.integers(0, 5 if d < 3 else 3)))
              for kk, dd, (lo, hi) in zip(k, dil, pads))
    padding = draw(st.sampled_from([pads, "same", "valid", "full"]))
    if padding == "valid":
        n = tuple(max(nn, dd * (kk - 1) + 1) for nn, kk, dd in zip(n, k, dil))
    geometry = dict(stride=s, dilation=dil, padding=padding)
    tiles = tuple(draw(st.integers(1, 4)) for _ in range(d))
    sizes = (draw(st.integers(1, 3)), draw(st.integers(1, 3)), draw(st.integers(1, 3)))
    return d, n, k, geometry, tiles, sizes


@settings(suppress_health_check=[HealthCheck.function_scoped_fixture])   # one_thread: set once
@given(case=shapes(), kind=st.sampled_from(KINDS), path=st.sampled_from(PATHS),
       dtype=st.sampled_from(DTYPES))
def test_hypothesis_shapes(case, kind, path, dtype, assert_close_to_reference, one_thread):
    d, n, k, geometry, tiles, (N, C, K) = case
    rng = np.random.default_rng(hash((n, k, tiles)) % 2**32)
    x, w, gy = problem(rng, kind, d, n, k, geometry, dtype, N=N, C=C, K=K, tiles=tiles)
    with pytest.MonkeyPatch.context() as monkeypatch:
        _set_path(monkeypatch, path)
        for op in OPS:
            assert_close_to_reference(call(FAST[kind], op, x, w, gy, **geometry),
                                      call(REF[kind], op, x, w, gy, **geometry), dtype)


@pytest.mark.parametrize("op", OPS)
def test_tiled_forced_algorithm(op, algorithm, forced, rng, assert_close_to_reference):
    """``algorithm`` goes to every tile's convolution; a forced algorithm that cannot compute a
    tile raises NotSupportedError (the conftest's `forced` skips those)."""
    d, n, k, geometry = 2, (8, 7), (3, 2), dict(stride=(2, 1), padding="same")
    x, w, gy = problem(rng, "tiled", d, n, k, geometry, np.float64)
    fn = FAST["tiled"][OPS.index(op)]
    args = {"forward": (x, w), "grad_input": (gy, w, x.shape), "grad_kernel": (x, gy, w.shape)}
    got = forced(fn, *args[op], algorithm=algorithm, **geometry)
    assert_close_to_reference(got, call(REF["tiled"], op, x, w, gy, **geometry))


def test_tiled_path_rule(monkeypatch):
    """Position by position from batch 8 or 16 tile kernels on, never with a forced algorithm,
    and for the kernel gradient only with a work item (tile kernel) per core."""
    spec = lambda N: fastconv._geometry.make_spec((N, 3, 9, 9), (4, 3, 3, 3))  # noqa: E731
    rule = local._by_position
    monkeypatch.setattr(fastconv._config, "planning_threads", lambda: 2)
    assert rule(spec(8), (2, 2), "auto", "forward")
    assert not rule(spec(7), (2, 2), "auto", "forward")
    assert rule(spec(1), (4, 4), "auto", "grad_input")
    assert not rule(spec(8), (2, 2), "im2col", "forward")
    assert rule(spec(8), (2, 1), "auto", "grad_kernel")
    assert not rule(spec(8), (1, 1), "auto", "grad_kernel")
    assert rule(spec(8), (1, 1), "auto", "grad_input")


@pytest.mark.parametrize("fn", FAST["tiled"], ids=OPS)
def test_tiled_bad_algorithm(fn):
    x, w, gy = np.zeros((1, 2, 5)), np.zeros((2, 3, 2, 3)), np.zeros((1, 3, 3))
    args = {0: (x, w), 1: (gy, w, x.shape), 2: (x, gy, w.shape)}[FAST["tiled"].index(fn)]
    with pytest.raises(ValueError, match="algorithm.*'fastest'"):
        fn(*args, algorithm="fastest")
    with pytest.raises(TypeError, match="algorithm"):
        fn(*args, algorithm=3)


# --- the Cython driver's chunks and blocks ----------------------------------------------------

@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("op", OPS)
def test_small_chunks_and_blocks(op, dtype, rng, monkeypatch, restore_settings,
                                 assert_close_to_reference):
    """Samples split over several GEMMs and positions over several grad_input blocks: still the
    reference, and the same bits on one and two threads."""
    monkeypatch.setattr(local, "SCRATCH_ELEMENTS", 60)     # nb = 60 // (C*k_vol + K) = 2 of 5
    monkeypatch.setattr(local, "BLOCK_ELEMENTS", 150)      # 3 positions of nb * R = 54 values
    d, n, k, geometry = 2, (6, 5), (3, 3), dict(padding=1, stride=(1, 2))
    x, w, gy = problem(rng, "local", d, n, k, geometry, dtype, N=5, C=3, K=3)
    plan = local._Plan(fastconv._geometry.make_spec(x.shape, w.shape[d:], dtype=dtype,
                                                    **geometry), op)
    assert plan.nb == 2 and plan.block == 2
    results = []
    for threads in (1, 2):
        fastconv.set_num_threads(threads)
        results.append(call(FAST["local"], op, x, w, gy, **geometry))
    np.testing.assert_array_equal(results[0], results[1])
    assert_close_to_reference(results[0], call(REF["local"], op, x, w, gy, **geometry), dtype)


def test_tiny_workspace_limit_runs_on_fewer_threads(rng, restore_settings,
                                                    assert_close_to_reference):
    x, w, gy = problem(rng, "local", 2, (7, 6), (3, 3), dict(), np.float64)
    fastconv.set_num_threads(2)
    fastconv.set_workspace_limit(8)
    for op in OPS:
        assert_close_to_reference(call(FAST["local"], op, x, w, gy),
                                  call(REF["local"], op, x, w, gy))


# --- thread-count invariance --------------------------------------------------------------------

@pytest.mark.parametrize("op", OPS)
def test_thread_count_invariance(op, kind, rng, restore_settings):
    d, n, k, geometry = 2, (13, 11), (3, 3), dict(padding=1, stride=(1, 2))
    x, w, gy = problem(rng, kind, d, n, k, geometry, np.float32, N=6, C=5, K=7)
    results = []
    for threads in (1, 2, 1, 2):
        fastconv.set_num_threads(threads)
        results.append(call(FAST[kind], op, x, w, gy, **geometry))
    for r in results[1:]:
        np.testing.assert_array_equal(r, results[0])


# --- dtypes, layouts, NaN, edge cases ---------------------------------------------------------

def test_dtype_rules(kind, rng):
    x, w, gy = problem(rng, kind, 1, (8,), (3,), dict(), np.float32)
    forward, grad_input, grad_kernel = FAST[kind]
    assert forward(x, w).dtype == np.float32
    assert forward(x, w.astype(np.float64)).dtype == np.float64
    assert forward(x, w, np.zeros(w.shape[1], np.float64)).dtype == np.float64
    xi = np.arange(x.size).reshape(x.shape) % 5
    wi = np.round(w * 3).astype(np.int64)
    y = forward(xi, wi)
    assert y.dtype == np.float64
    np.testing.assert_array_equal(y, forward(xi.astype(np.float64), wi.astype(np.float64)))
    assert forward(x.tolist(), w.tolist()).dtype == np.float64
    assert grad_input(gy, w, x.shape).dtype == np.float32
    assert grad_kernel(x, gy.astype(np.float64), w.shape).dtype == np.float64
    with pytest.raises(TypeError, match="x"):
        forward(x.astype(np.complex64), w)
    with pytest.raises(TypeError, match="w"):
        forward(x, w.astype(object))
    with pytest.raises(TypeError, match="gy"):
        grad_kernel(x, gy.astype(np.complex128), w.shape)


def test_strided_inputs_and_nan(kind, rng, assert_close_to_reference):
    """Non-contiguous views give the reference's result; a NaN reaches exactly the outputs whose
    windows read it."""
    base = rng.standard_normal((2, 3, 14, 12))
    base[1, 2, 6, 8] = np.nan                       # x[1, 2, 3, 4] of the view
    x = base[:, :, ::2, ::2]                        # (2, 3, 7, 6), not contiguous
    lead = out_size((7, 6), (3, 2), dict(padding=1)) if kind == "local" else (2, 2)
    w = np.asfortranarray(rng.standard_normal(lead + (4, 3, 3, 2)))
    y = FAST[kind][0](x, w, padding=1)
    assert 0 < np.isnan(y).sum() < y.size
    assert_close_to_reference(y, REF[kind][0](x, w, padding=1))


@pytest.mark.parametrize("op", OPS)
def test_inputs_are_never_written(op, kind, rng):
    x, w, gy = problem(rng, kind, 2, (7, 6), (3, 2), dict(padding=1), np.float64)
    b = rng.standard_normal((w.shape[2],) + w.shape[:2])
    copies = [a.copy() for a in (x, w, gy, b)]
    for a in (x, w, gy, b):
        a.setflags(write=False)
    result = (FAST[kind][0](x, w, b, padding=1) if op == "forward"
              else call(FAST[kind], op, x, w, gy, padding=1))
    for a, c in zip((x, w, gy, b), copies):
        np.testing.assert_array_equal(a, c)
        assert not np.shares_memory(result, a)


@pytest.mark.parametrize("empty", ["batch", "in_channels", "out_channels"])
def test_empty_gives_empty_or_zero(empty, kind, rng):
    N, C, K = {"batch": (0, 3, 4), "in_channels": (2, 0, 4), "out_channels": (2, 3, 0)}[empty]
    x, w, gy = problem(rng, kind, 2, (6, 5), (3, 3), dict(), np.float32, N=N, C=C, K=K)
    forward, grad_input, grad_kernel = FAST[kind]
    y = forward(x, w)
    assert y.shape == (N, K) + out_size((6, 5), (3, 3), {}) and y.dtype == np.float32
    assert not y.any()
    gx = grad_input(gy, w, x.shape)
    assert gx.shape == x.shape and not gx.any()
    gw = grad_kernel(x, gy, w.shape)
    assert gw.shape == w.shape and not gw.any()


def test_spatial_only_shapes(kind, rng):
    """input_shape may be spatial sizes only; for locally connected kernel_shape too."""
    x, w, gy = problem(rng, kind, 2, (7, 6), (3, 2), dict(stride=2), np.float64)
    forward, grad_input, grad_kernel = FAST[kind]
    np.testing.assert_array_equal(grad_input(gy, w, x.shape[2:], stride=2),
                                  grad_input(gy, w, x.shape, stride=2))
    if kind == "local":
        np.testing.assert_array_equal(grad_kernel(x, gy, (3, 2), stride=2),
                                      grad_kernel(x, gy, w.shape, stride=2))


def test_tile_windows_entirely_in_the_padding(rng, assert_close_to_reference, tiled_path):
    """Large high padding: some tiles read only zeros (and must give bias only)."""
    geometry = dict(padding=[(0, 6)], stride=2)
    x, w, gy = problem(rng, "tiled", 1, (3,), (2,), geometry, np.float64, tiles=(3,))
    b = rng.standard_normal((w.shape[1], 3))
    for op in OPS:
        assert_close_to_reference(call(FAST["tiled"], op, x, w, gy, b, **geometry),
                                  call(REF["tiled"], op, x, w, gy, b, **geometry))


# --- bad input ----------------------------------------------------------------------------------

_rng = np.random.default_rng(7)
X = _rng.standard_normal((2, 3, 7, 6))
W_LC = _rng.standard_normal((5, 4, 4, 3, 3, 3))      # 3x3 valid on 7x6 -> 5x4 positions
W_T = _rng.standard_normal((2, 2, 4, 3, 3, 3))
GY = _rng.standard_normal((2, 4, 5, 4))


@pytest.mark.parametrize("args,kwargs,exc,pattern", [
    ((X[0], "W"), {}, ValueError, r"x must have 4 dimensions"),
    ((X, "W5"), {}, ValueError, r"w must have 4, 6 or 8 dimensions"),
    ((X[:, :2], "W"), {}, ValueError, r"x must have the 3 input channels"),
    ((X, "W"), dict(stride=0), ValueError, r"stride"),
    ((X, "W"), dict(stride=1.5), TypeError, r"stride"),
    ((X, "W"), dict(dilation=(1, 0)), ValueError, r"dilation"),
    ((X, "W"), dict(padding=-1), ValueError, r"padding"),
    ((X, "W"), dict(padding="sometimes"), ValueError, r"padding.*'sometimes'"),
    ((X, "W"), dict(padding=((1, 1),)), ValueError, r"padding"),
    ((X, "W"), dict(dilation=4), ValueError, r"larger than the padded input"),
    ((X, "W", np.zeros(5)), {}, ValueError, r"bias must have shape \(4,\)"),
    ((X, "W", np.zeros((4, 3, 3))), {}, ValueError, r"bias must have shape \(4,\)"),
])
def test_bad_forward(kind, args, kwargs, exc, pattern):
    w = W_LC if kind == "local" else W_T
    weights = {"W": w, "W5": w[..., 0]}
    args = tuple(weights[a] if isinstance(a, str) else a for a in args)
    with pytest.raises(exc, match=pattern):
        FAST[kind][0](*args, **kwargs)


def test_bad_positions_names_both_sizes():
    with pytest.raises(ValueError, match=r"\(6, 4\).*\(5, 4\)"):
        local.locally_connected(X, W_LC, padding=((1, 0), (0, 0)))
    with pytest.raises(ValueError, match=r"kernel_shape must have one kernel per output"):
        local.locally_connected_grad_kernel(X, GY, (4, 4, 4, 3, 3, 3))
    with pytest.raises(ValueError, match=r"w must have at least one kernel per tile"):
        local.tiled_conv(X, np.zeros((0, 2, 4, 3, 3, 3)))


def test_bad_gradients(kind):
    w = W_LC if kind == "local" else W_T
    _, grad_input, grad_kernel = FAST[kind]
    with pytest.raises(ValueError, match=r"gy must have shape \(2, 4, 5, 4\)"):
        grad_input(GY[:, :, :4], w, X.shape)
    with pytest.raises(ValueError, match=r"gy must have 4 dimensions"):
        grad_input(GY[0], w, X.shape)
    with pytest.raises(ValueError, match=r"input_shape"):
        grad_input(GY, w, (2, 3, 7))
    with pytest.raises(ValueError, match=r"input_shape must have the 3 input channels"):
        grad_input(GY, w, (2, 5, 7, 6))
    with pytest.raises(TypeError, match=r"input_shape"):
        grad_input(GY, w, "7x6")
    with pytest.raises(ValueError, match=r"gy must have shape"):
        grad_kernel(X, GY[:1], w.shape)
    with pytest.raises(ValueError, match=r"kernel_shape must have 6 entries"):
        grad_kernel(X, GY, w.shape[:5])
    with pytest.raises(ValueError, match=r"x must have 3, 4 or 5 dimensions"):
        grad_kernel(X[0, 0], GY, w.shape)
    with pytest.raises(TypeError, match=r"kernel_shape"):
        grad_kernel(X, GY, (5, 4, 4, 3, 3, 3.0))
