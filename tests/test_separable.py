"""The separable algorithm (section 9.8) and its public functions.

Rank-one kernels through ``conv(algorithm="separable")`` and "auto"; the refusal of kernels that
are not rank one; row blocks and thread counts that never change a bit; the explicit-factor
functions and their gradients; ``low_rank_conv`` and the bound it reports.
"""
import itertools

import numpy as np
import pytest

import fastconv
from fastconv import reference
from fastconv._algorithms import separable as impl
from fastconv._geometry import make_spec
from fastconv._registry import choose_name

DTYPES = (np.float32, np.float64)


def _factors(rng, K, Cg, k, dtype=np.float64):
    return [rng.standard_normal((K, Cg, size)).astype(dtype) for size in k]


def _outer(factors):
    w = factors[0].astype(np.float64)
    for f in factors[1:]:
        shape = f.shape[:2] + (1,) * (w.ndim - 2) + f.shape[2:]
        w = w[..., None] * f.astype(np.float64).reshape(shape)
    return w


def _gaussian(k, dtype=np.float32):
    t = np.arange(k) - (k - 1) / 2
    g = np.exp(-t ** 2 / (2 * (k / 6) ** 2))
    return (g / g.sum()).astype(dtype)


GEOMETRIES = [
    dict(),
    dict(padding=1),
    dict(stride=2, padding=2),
    dict(stride=3, dilation=2, padding=3),
    dict(dilation=2, padding="same"),
    dict(stride=(1, 2), padding=[(2, 0), (0, 3)]),
    dict(groups=2, padding=1),
    dict(groups=4, stride=2, padding="full"),
]
KERNELS_2D = [(3, 3), (3, 5), (1, 4), (5, 1)]
KERNELS_3D = [(3, 2, 4), (3, 1, 5), (1, 3, 3), (2, 3, 1)]


def _geometry(kw, d):
    out = {}
    for key, value in kw.items():
        if isinstance(value, tuple) and d == 3:
            value = (1,) + value
        if isinstance(value, list) and d == 3:
            value = [(1, 0)] + value
        out[key] = value
    return out


def _case(rng, d, k, kw, dtype, C=4, K=4, N=2):
    groups = kw.get("groups", 1)
    n = (11, 13) if d == 2 else (7, 9, 8)
    x = rng.standard_normal((N, C) + n).astype(dtype)
    factors = _factors(rng, K, C // groups, k)
    return x, factors, _outer(factors).astype(dtype)


def _close(a, b, dtype):
    tol = 2e-4 if np.dtype(dtype) == np.float32 else 1e-9
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    assert a.shape == b.shape
    assert np.max(np.abs(a - b), initial=0) <= tol * max(np.max(np.abs(b), initial=0), 1e-300)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("kw", GEOMETRIES, ids=str)
@pytest.mark.parametrize("d,k", [(2, k) for k in KERNELS_2D] + [(3, k) for k in KERNELS_3D])
def test_rank_one_kernels_match_the_reference(d, k, kw, dtype, rng):
    kw = _geometry(kw, d)
    x, factors, w = _case(rng, d, k, kw, dtype)
    trivial = sum(size > 1 for size in k) < 2
    try:
        y = fastconv.conv(x, w, algorithm="separable", **kw)
    except fastconv.NotSupportedError as exc:
        assert trivial and "nothing to separate" in str(exc)
        return
    assert not trivial
    _close(y, reference.conv(x, w, **kw), dtype)
    assert y.dtype == dtype
    gy = rng.standard_normal(y.shape).astype(dtype)
    gx = fastconv.conv_grad_input(gy, w, x.shape, algorithm="separable", **kw)
    _close(gx, reference.conv_grad_input(gy, w, x.shape, **kw), dtype)
    # the explicit factors give the same
    _close(fastconv.separable_conv(x, factors, **kw), reference.conv(x, w, **kw), dtype)
    _close(fastconv.separable_conv_grad_input(gy, factors, x.shape, **kw),
           reference.conv_grad_input(gy, w, x.shape, **kw), dtype)


def test_kernel_with_exact_zeros_stays_exact(rng):
    """Zero rows and columns of the kernel are zero in the factors: NaN and Inf in the input
    propagate as in the reference (0 * Inf = NaN only where the kernel itself is 0)."""
    fh = np.array([1.0, 0.0, 2.0])
    fw = np.array([0.5, -1.0, 0.0, 3.0])
    w = np.outer(fh, fw)[None, None]
    dec = impl.Decomposition.cross(w[:, :, None])
    assert np.all(dec.factors[1].ravel()[1] == 0) and np.all(dec.factors[2].ravel()[2] == 0)
    assert np.max(dec.residual) <= 1e-15 * np.linalg.norm(w)
    x = rng.standard_normal((1, 1, 9, 9))
    x[0, 0, 4, 4] = np.inf
    x[0, 0, 1, 7] = np.nan
    y = fastconv.conv(x, w, padding=1, algorithm="separable")
    r = reference.conv(x, w, padding=1)
    assert np.array_equal(np.isnan(y), np.isnan(r)) and np.array_equal(np.isinf(y), np.isinf(r))
    finite = np.isfinite(r)
    _close(y[finite], r[finite], np.float64)


@pytest.mark.parametrize("dtype", DTYPES)
def test_kernels_that_are_not_rank_one_are_refused(dtype, rng):
    x = rng.standard_normal((1, 2, 12, 12)).astype(dtype)
    w = rng.standard_normal((3, 2, 3, 3)).astype(dtype)
    with pytest.raises(fastconv.NotSupportedError, match="does not support.*not rank one"):
        fastconv.conv(x, w, algorithm="separable")
    with pytest.raises(fastconv.NotSupportedError, match="not rank one"):
        fastconv.conv_grad_input(np.ones((1, 3, 10, 10), dtype), w, x.shape, algorithm="separable")
    _close(fastconv.conv(x, w), reference.conv(x, w), dtype)
    # one slice slightly off rank one is enough to refuse
    w = _outer(_factors(rng, 3, 2, (5, 5))).astype(dtype)
    w[2, 1, 0, 0] += 1e-3 * np.abs(w[2, 1]).max()
    with pytest.raises(fastconv.NotSupportedError, match=r"slice \(k, c\) = \(2, 1\)"):
        fastconv.conv(x, w, algorithm="separable")


def test_tolerance_follows_the_precision(rng):
    """Noise far below the tolerance is accepted (and the result stays within the contract);
    noise above it is refused, in float64 at a much tighter level than in float32."""
    w = _outer(_factors(rng, 2, 2, (5, 5)))
    noise = rng.standard_normal(w.shape)
    x = rng.standard_normal((1, 2, 16, 16))
    for dtype, small, large in ((np.float64, 1e-13, 1e-8), (np.float32, 1e-7, 1e-3)):
        wd = (w + small * np.abs(w).max() * noise).astype(dtype)
        _close(fastconv.conv(x.astype(dtype), wd, algorithm="separable"),
               reference.conv(x.astype(dtype), wd), dtype)
        with pytest.raises(fastconv.NotSupportedError, match="not rank one"):
            fastconv.conv(x.astype(dtype), (w + large * np.abs(w).max() * noise).astype(dtype),
                          algorithm="separable")


def test_near_rank_one_kernel_decided_by_the_svd(rng):
    """A kernel within tolerance whose cross approximation is not (noise spread over the slice)
    is still accepted: the SVD decides where the cross is close."""
    u, v = rng.standard_normal(7), rng.standard_normal(7)
    u, v = u / np.linalg.norm(u), v / np.linalg.norm(v)
    noise = rng.standard_normal((7, 7))
    noise -= np.outer(u, u @ noise) + np.outer(noise @ v, v) - np.outer(u, v) * (u @ noise @ v)
    w = np.outer(u, v) + 0.8e-10 * noise / np.linalg.norm(noise)    # best rank-one residual 0.8e-10
    w5 = w[None, None, None]
    assert impl.Decomposition.cross(w5).relative_residual.max() > 1e-10
    spec = make_spec((1, 1, 20, 20), (1, 1, 7, 7), dtype=np.float64)
    ok, reason = impl.supports_weights(spec, "forward", w5)
    assert ok, reason
    x = rng.standard_normal((1, 1, 20, 20))
    _close(fastconv.conv(x, w[None, None], algorithm="separable"), reference.conv(x, w[None, None]),
           np.float64)


def test_non_finite_kernels_and_other_refusals(rng):
    x = rng.standard_normal((1, 1, 10, 10))
    w = np.ones((1, 1, 3, 3))
    w[0, 0, 1, 1] = np.nan
    with pytest.raises(fastconv.NotSupportedError, match="NaN or Inf"):
        fastconv.conv(x, w, algorithm="separable")
    assert np.isnan(fastconv.conv(x, w)).all()
    with pytest.raises(fastconv.NotSupportedError, match="does not support.*kernel gradient"):
        fastconv.conv_grad_kernel(x, np.ones((1, 1, 8, 8)), (1, 1, 3, 3), algorithm="separable")
    with pytest.raises(fastconv.NotSupportedError, match="nothing to separate"):
        fastconv.conv(rng.standard_normal((1, 1, 30)), np.ones((1, 1, 5)), algorithm="separable")
    spec = make_spec((1, 1, 10, 10), (1, 1, 3, 3), dtype=np.float64)
    ok, reason = fastconv._registry._supports(impl, spec, "forward", None)
    assert not ok and "kernel's values" in reason


def _rank_one_problem(rng, dtype, d=2):
    if d == 2:
        x = rng.standard_normal((3, 4, 37, 29)).astype(dtype)
        w = _outer(_factors(rng, 6, 2, (5, 7))).astype(dtype)
        kw = dict(groups=2, padding=(2, 4), stride=(1, 2))
    else:
        x = rng.standard_normal((2, 2, 13, 17, 15)).astype(dtype)
        w = _outer(_factors(rng, 3, 2, (3, 5, 4))).astype(dtype)
        kw = dict(padding=2, dilation=(2, 1, 1))
    y = fastconv.conv(x, w, algorithm="reference", **kw)
    gy = rng.standard_normal(y.shape).astype(dtype)
    return x, w, gy, kw


@pytest.mark.parametrize("d", [2, 3])
@pytest.mark.parametrize("dtype", DTYPES)
def test_bitwise_identical_for_threads_and_workspace_limits(d, dtype, rng, restore_settings):
    """Every output element is computed by the same operations whatever the row blocks (set by
    the thread count and the workspace limit), so every setting gives the same bits."""
    x, w, gy, kw = _rank_one_problem(rng, dtype, d)
    results = []
    for threads, limit in itertools.product((1, 2, 3), (256 * 2**20, 4096, 1024)):
        fastconv.set_num_threads(threads)
        fastconv.set_workspace_limit(limit)
        try:
            y = fastconv.conv(x, w, algorithm="separable", **kw)
            gx = fastconv.conv_grad_input(gy, w, x.shape, algorithm="separable", **kw)
        except fastconv.NotSupportedError as exc:
            assert "workspace limit" in str(exc)
            continue
        results.append((threads, limit, y, gx))
    assert len(results) >= 6
    _, _, y0, gx0 = results[0]
    _close(y0, reference.conv(x, w, **kw), dtype)
    _close(gx0, reference.conv_grad_input(gy, w, x.shape, **kw), dtype)
    for threads, limit, y, gx in results[1:]:
        assert np.array_equal(y, y0), f"forward differs at {threads} threads, limit {limit}"
        assert np.array_equal(gx, gx0), f"grad_input differs at {threads} threads, limit {limit}"


def test_workspace_too_small_for_one_row(rng, restore_settings):
    x = rng.standard_normal((1, 1, 8, 300))
    w = np.ones((1, 1, 3, 3))
    fastconv.set_workspace_limit(1024)      # one row of 300 float64 is 2400 bytes
    with pytest.raises(fastconv.NotSupportedError, match="workspace limit"):
        fastconv.conv(x, w, algorithm="separable")
    f = [np.ones((1, 1, 3)), np.ones((1, 1, 3))]
    _close(fastconv.separable_conv(x, f), reference.conv(x, w), np.float64)
    gy = rng.standard_normal((1, 1, 6, 298))
    _close(fastconv.separable_conv_grad_input(gy, f, x.shape),
           reference.conv_grad_input(gy, w, x.shape), np.float64)


def test_auto_detects_a_gaussian_filter():
    """The chooser, given the kernel, takes separable for image filtering with a large rank-one
    kernel, and "auto" computes exactly what the forced algorithm does."""
    rng = np.random.default_rng(5)
    x = rng.standard_normal((1, 1, 256, 256)).astype(np.float32)
    g = _gaussian(15)
    w = np.outer(g, g)[None, None]
    spec = make_spec(x.shape, w.shape, padding=7, dtype=np.float32)
    assert choose_name(spec, "forward", w[:, :, None]) == "separable"
    assert choose_name(spec, "grad_input", w[:, :, None]) == "separable"
    y = fastconv.conv(x, w, padding=7)
    assert np.array_equal(y, fastconv.conv(x, w, padding=7, algorithm="separable"))
    assert np.array_equal(y, fastconv.separable_conv(x, [g[None, None], g[None, None]], padding=7))
    _close(y, reference.conv(x, w, padding=7), np.float32)
    # shapes alone never pick it: the kernel's values decide
    assert fastconv.choose(x.shape, w.shape, padding=7) != "separable"


def test_auto_leaves_dense_small_kernels_to_the_others(rng):
    """A rank-one 3x3 kernel on 64 channels: the 1-D passes cost more than a GEMM."""
    w = _outer(_factors(rng, 64, 64, (3, 3))).astype(np.float32)
    spec = make_spec((4, 64, 28, 28), w.shape, padding=1, dtype=np.float32)
    assert choose_name(spec, "forward", w[:, :, None]) != "separable"


# --- the public functions with explicit factors --------------------------------------------

@pytest.mark.parametrize("d", [1, 2, 3])
@pytest.mark.parametrize("mode", ["zeros", "reflect", "circular"])
def test_separable_conv_options(d, mode, rng):
    n = {1: (20,), 2: (9, 12), 3: (6, 7, 8)}[d]
    k = {1: (4,), 2: (3, 4), 3: (2, 3, 3)}[d]
    x = rng.standard_normal((2, 4) + n)
    factors = _factors(rng, 6, 2, k)
    w = _outer(factors)
    bias = rng.standard_normal(6)
    kw = dict(groups=2, padding=1, padding_mode=mode)
    for flip in (False, True):
        y = fastconv.separable_conv(x, factors, bias, flip=flip, **kw)
        _close(y, fastconv.conv(x, w, bias, flip=flip, algorithm="reference", **kw), np.float64)
        gy = rng.standard_normal(y.shape)
        gx = fastconv.separable_conv_grad_input(gy, factors, x.shape, flip=flip, **kw)
        _close(gx, fastconv.conv_grad_input(gy, w, x.shape, flip=flip, algorithm="reference", **kw),
               np.float64)


def test_separable_conv_dtypes_and_empty(rng):
    x = rng.standard_normal((1, 1, 8, 8)).astype(np.float32)
    f32 = [np.ones((1, 1, 3), np.float32)] * 2
    assert fastconv.separable_conv(x, f32).dtype == np.float32
    assert fastconv.separable_conv(x, [f32[0], np.ones((1, 1, 3))]).dtype == np.float64
    assert fastconv.separable_conv(x.astype(int), [[[[1, 2]]], [[[1]]]]).dtype == np.float64
    assert fastconv.separable_conv(np.zeros((0, 1, 8, 8)), f32).shape == (0, 1, 6, 6)
    gx = fastconv.separable_conv_grad_input(np.zeros((0, 1, 6, 6)), f32, (0, 1, 8, 8))
    assert gx.shape == (0, 1, 8, 8)


@pytest.mark.parametrize("bad,match", [
    (np.ones((1, 1, 3)), "list or tuple"),
    ([], "1 to 3"),
    ([np.ones((1, 1, 3))] * 4, "1 to 3"),
    ([np.ones((1, 3)), np.ones((1, 1, 3))], r"factors\[0\] must have 3 dimensions"),
    ([np.ones((1, 1, 3)), np.ones((2, 1, 3))], r"factors\[1\] must have the \(K, C/groups\)"),
    ([np.ones((1, 2, 3)), np.ones((1, 2, 3))], "C/groups"),
    ([np.ones((1, 1, 3))], "dimensions"),
    ([np.ones((1, 1, 3)), np.ones((1, 1, 30))], "larger than the padded input"),
])
def test_separable_conv_validates_factors(bad, match):
    with pytest.raises((ValueError, TypeError), match=match) as info:
        fastconv.separable_conv(np.ones((1, 1, 8, 8)), bad)
    assert not isinstance(info.value, fastconv.NotSupportedError)
    with pytest.raises(TypeError, match="real numeric"):
        fastconv.separable_conv(np.ones((1, 1, 8, 8)), [np.ones((1, 1, 3), complex)] * 2)


@pytest.mark.parametrize("d", [1, 2, 3])
def test_gradients_of_the_factors(d, rng):
    """The chain rule through the outer product, checked against finite differences of
    L = sum(gy * separable_conv(x, factors))."""
    n = {1: (15,), 2: (8, 9), 3: (5, 6, 6)}[d]
    k = {1: (3,), 2: (3, 2), 3: (2, 3, 2)}[d]
    x = rng.standard_normal((2, 2) + n)
    factors = _factors(rng, 2, 2, k)
    kw = dict(stride=2, padding=1, flip=True)
    gy = rng.standard_normal(fastconv.separable_conv(x, factors, **kw).shape)
    grads = fastconv.separable_conv_grad_factors(x, gy, factors, **kw)
    assert len(grads) == d
    eps = 1e-6
    for i, (f, g) in enumerate(zip(factors, grads)):
        assert g.shape == f.shape and g.dtype == np.float64
        numeric = np.zeros_like(f)
        for idx in np.ndindex(f.shape):
            plus = [p.copy() for p in factors]
            minus = [p.copy() for p in factors]
            plus[i][idx] += eps
            minus[i][idx] -= eps
            numeric[idx] = (np.sum(gy * fastconv.separable_conv(x, plus, **kw))
                            - np.sum(gy * fastconv.separable_conv(x, minus, **kw))) / (2 * eps)
        np.testing.assert_allclose(g, numeric, rtol=1e-6, atol=1e-7)


# --- low_rank_conv -------------------------------------------------------------------------

def test_low_rank_conv_is_exact_at_full_rank(rng):
    x = rng.standard_normal((2, 3, 16, 16))
    w = rng.standard_normal((4, 3, 5, 5))
    y, bound = fastconv.low_rank_conv(x, w, rank=5, padding=2)
    assert bound < 1e-14
    _close(y, reference.conv(x, w, padding=2), np.float64)
    y1, bound1 = fastconv.low_rank_conv(x, _outer(_factors(rng, 4, 3, (5, 5))), rank=1)
    assert bound1 < 1e-14


def test_low_rank_bound_is_the_discarded_part(rng):
    """The bound is the Frobenius norm of the discarded singular values (per output channel,
    relative), and it bounds every output as documented."""
    x = rng.standard_normal((2, 3, 20, 18))
    w = rng.standard_normal((4, 3, 7, 6))
    exact = reference.conv(x, w, padding=1)
    previous = np.inf
    for rank in (1, 2, 3, 6):
        y, bound = fastconv.low_rank_conv(x, w, rank=rank, padding=1)
        s = np.linalg.svd(w, compute_uv=False)
        discarded = np.sqrt(np.sum(s[:, :, rank:] ** 2, axis=(1, 2)))
        expected = np.max(discarded / np.sqrt(np.sum(w ** 2, axis=(1, 2, 3))))
        assert bound == pytest.approx(expected, rel=1e-9, abs=1e-14)
        assert bound <= previous
        previous = bound
        # per output: |error| <= bound * ||w[k]|| * ||patch||
        xp = np.pad(x, ((0, 0), (0, 0), (1, 1), (1, 1)))
        patches = np.lib.stride_tricks.sliding_window_view(xp, (7, 6), axis=(2, 3))
        patch_norm = np.sqrt(np.sum(patches ** 2, axis=(1, 4, 5)))          # (N, oh, ow)
        w_norm = np.sqrt(np.sum(w ** 2, axis=(1, 2, 3)))                     # (K,)
        limit = bound * w_norm[None, :, None, None] * patch_norm[:, None]
        assert np.all(np.abs(y - exact) <= limit * (1 + 1e-9) + 1e-12)


def test_low_rank_conv_3d_and_options(rng):
    x = rng.standard_normal((1, 2, 8, 9, 7))
    w = rng.standard_normal((3, 2, 3, 3, 3))
    exact = reference.conv(x, w, padding=1, stride=(1, 2, 1))
    errors = []
    for rank in (1, 3, 9):
        y, bound = fastconv.low_rank_conv(x, w, rank=rank, padding=1, stride=(1, 2, 1))
        errors.append(bound)
        assert y.shape == exact.shape
    assert errors[0] > errors[1] > errors[2]
    # a rank-one 3-D kernel is found exactly by the first term
    w1 = _outer(_factors(rng, 3, 2, (3, 4, 2)))
    y, bound = fastconv.low_rank_conv(x, w1, rank=1, flip=True, padding_mode="replicate", padding=1)
    assert bound < 1e-12
    _close(y, fastconv.conv(x, w1, flip=True, padding=1, padding_mode="replicate",
                            algorithm="reference"), np.float64)
    b = rng.standard_normal(3).astype(np.float32)
    yb, _ = fastconv.low_rank_conv(x.astype(np.float32), w1.astype(np.float32), b, rank=2)
    assert yb.dtype == np.float32
    _close(yb, reference.conv(x.astype(np.float32), w1.astype(np.float32), b), np.float32)
    with pytest.raises(ValueError, match="rank"):
        fastconv.low_rank_conv(x, w, rank=0)
    with pytest.raises(TypeError, match="rank"):
        fastconv.low_rank_conv(x, w, rank=1.5)
