"""The three operations are one linear map and its two adjoints (section 9.5 of the chapter).

Checked without trusting the reference: adjoint identities, finite differences through the public
API, and structural identities (flip, stride, dilation, groups, padding modes, bias, transpose).
Then hypothesis-generated geometries compare every operation with the reference and every output
shape with the CONTRACT formula.
"""
import numpy as np
import pytest
from hypothesis import given, strategies as st

import fastconv
from fastconv import reference

F64 = np.float64

# (x shape, w shape, keyword arguments): float64 problems exercising every geometry feature.
ADJOINT_CASES = {
    "1d-stride2-pairs-dilation2": ((2, 3, 23), (4, 3, 3), dict(stride=2, padding=((1, 2),), dilation=2)),
    "1d-same-even-flip": ((2, 2, 17), (3, 2, 4), dict(padding="same", flip=True)),
    "2d-groups2-stride-same": ((2, 4, 11, 9), (6, 2, 3, 2), dict(groups=2, stride=(2, 1), padding="same")),
    "2d-reflect-stride2": ((2, 3, 10, 9), (4, 3, 3, 3), dict(stride=2, padding=2, padding_mode="reflect")),
    "2d-circular-pairs": ((1, 3, 9, 8), (2, 3, 3, 4), dict(padding=((1, 2), (0, 3)), padding_mode="circular")),
    "2d-replicate-flip-dilation": ((2, 2, 9, 9), (3, 2, 2, 3), dict(padding=(1, 2), dilation=(2, 1),
                                                                  padding_mode="replicate", flip=True)),
    "2d-full-k1-stride2": ((2, 3, 7, 6), (5, 3, 1, 1), dict(padding="full", stride=2)),
    "3d-depthwise-stride-dilation": ((2, 3, 7, 6, 5), (3, 1, 3, 2, 2), dict(groups=3, stride=2, dilation=(1, 2, 1),
                                                                           padding=1)),
    "3d-reflect-same": ((1, 2, 6, 5, 5), (2, 2, 3, 3, 2), dict(padding="same", padding_mode="reflect")),
}


def _inputs(x_shape, w_shape, kwargs, helpers, seed):
    rng = np.random.default_rng([helpers.SEED, seed])
    d = len(w_shape) - 2
    geometry = {key: kwargs[key] for key in ("stride", "padding", "dilation") if key in kwargs}
    out = helpers.output_spatial(x_shape[2:], w_shape[2:], **geometry)
    x = rng.standard_normal(x_shape)
    w = rng.standard_normal(w_shape)
    gy = rng.standard_normal(x_shape[:1] + w_shape[:1] + out)
    assert len(out) == d
    return x, w, gy


def _dot(a, b):
    return float(np.sum(a * b))


def _scale(a, b):
    return float(np.sum(np.abs(a) * np.abs(b)))


@pytest.mark.parametrize("case", list(ADJOINT_CASES))
def test_adjoint_identities(case, algorithm, helpers, forced):
    x_shape, w_shape, kw = ADJOINT_CASES[case]
    x, w, gy = _inputs(x_shape, w_shape, kw, helpers, len(case))
    y = forced(fastconv.conv, x, w, algorithm=algorithm, **kw)
    gx = forced(fastconv.conv_grad_input, gy, w, x.shape, algorithm=algorithm, **kw)
    gw = forced(fastconv.conv_grad_kernel, x, gy, w.shape, algorithm=algorithm, **kw)
    assert y.shape == gy.shape and gx.shape == x.shape and gw.shape == w.shape
    lhs = _dot(y, gy)
    scale = _scale(y, gy)
    assert abs(lhs - _dot(x, gx)) <= 1e-10 * scale, (lhs, _dot(x, gx))
    assert abs(lhs - _dot(w, gw)) <= 1e-10 * scale, (lhs, _dot(w, gw))


@pytest.mark.parametrize("case", [c for c in ADJOINT_CASES if "padding_mode" not in ADJOINT_CASES[c][2]
                                  and "flip" not in ADJOINT_CASES[c][2]])
def test_transpose_is_grad_input_plus_bias(case, algorithm, helpers, forced, assert_close_to_reference):
    x_shape, w_shape, kw = ADJOINT_CASES[case]
    x, w, gy = _inputs(x_shape, w_shape, kw, helpers, 7)
    pairs = helpers.resolve_padding(kw.get("padding", 0), x_shape[2:], w_shape[2:], kw.get("stride", 1),
                                    kw.get("dilation", 1))
    kw = dict(kw, padding=pairs)
    bias = np.random.default_rng(3).standard_normal(x_shape[1])
    gx = fastconv.conv_grad_input(gy, w, x.shape, **kw)
    expected = gx + bias.reshape((1, -1) + (1,) * (x.ndim - 2))
    got = forced(fastconv.conv_transpose, gy, w, bias, output_shape=x.shape[2:], algorithm=algorithm, **kw)
    assert_close_to_reference(got, expected, F64)
    got_spatial_only = fastconv.conv_transpose(gy, w, bias, output_shape=x.shape, **kw)
    assert_close_to_reference(got_spatial_only, expected, F64)


# --- finite differences -------------------------------------------------------------------------

FD_CASES = {
    "1d": ((1, 2, 9), (3, 2, 3), dict(stride=2, padding=(1,), dilation=2)),
    "1d-reflect-flip": ((1, 2, 8), (2, 2, 4), dict(padding="same", padding_mode="reflect", flip=True)),
    "2d-groups": ((1, 4, 6, 5), (2, 2, 3, 2), dict(groups=2, stride=(1, 2), padding=((1, 0), (2, 1)))),
    "2d-circular": ((1, 2, 5, 5), (2, 2, 3, 3), dict(padding=1, padding_mode="circular", dilation=(1, 2))),
    "3d": ((1, 2, 4, 4, 3), (2, 2, 2, 3, 2), dict(stride=(2, 1, 1), padding="full")),
    "3d-replicate": ((1, 1, 4, 3, 4), (2, 1, 2, 2, 2), dict(padding=(1, 0, 1), padding_mode="replicate")),
}
EPS = 1e-3


def _loss(x, w, gy, kw):
    return float(np.sum(fastconv.conv(x, w, **kw) * gy))


def _fd_grad_input(x, w, gy, kw):
    """Central differences of <conv(x, w), gy> in every element of x (N == 1), as one batch."""
    size = x.size
    basis = np.eye(size).reshape((size,) + x.shape[1:])
    y_plus = fastconv.conv(x + EPS * basis, w, **kw)
    y_minus = fastconv.conv(x - EPS * basis, w, **kw)
    axes = tuple(range(1, y_plus.ndim))
    return (np.sum((y_plus - y_minus) * gy, axis=axes) / (2 * EPS)).reshape(x.shape)


def _fd_grad_kernel(x, w, gy, kw):
    g = np.zeros_like(w)
    for i in np.ndindex(w.shape):
        wp, wm = w.copy(), w.copy()
        wp[i] += EPS
        wm[i] -= EPS
        g[i] = (_loss(x, wp, gy, kw) - _loss(x, wm, gy, kw)) / (2 * EPS)
    return g


_FD_CACHE = {}


def _fd(case, helpers):
    if case not in _FD_CACHE:
        x_shape, w_shape, kw = FD_CASES[case]
        x, w, gy = _inputs(x_shape, w_shape, kw, helpers, 11 + len(case))
        _FD_CACHE[case] = (x, w, gy, kw, _fd_grad_input(x, w, gy, kw), _fd_grad_kernel(x, w, gy, kw))
    return _FD_CACHE[case]


def _assert_fd_close(actual, numeric):
    scale = max(float(np.max(np.abs(numeric))), 1e-300)
    err = float(np.max(np.abs(actual - numeric)))
    assert err <= 1e-7 * scale, f"max |analytic - finite difference| = {err:.3e} (scale {scale:.3e})"


@pytest.mark.parametrize("case", list(FD_CASES))
def test_finite_differences(case, algorithm, helpers, forced):
    x, w, gy, kw, fd_gx, fd_gw = _fd(case, helpers)
    assert np.any(fd_gx != 0) and np.any(fd_gw != 0)
    gx = forced(fastconv.conv_grad_input, gy, w, x.shape, algorithm=algorithm, **kw)
    gw = forced(fastconv.conv_grad_kernel, x, gy, w.shape, algorithm=algorithm, **kw)
    _assert_fd_close(gx, fd_gx)
    _assert_fd_close(gw, fd_gw)


# --- structural identities (independent of the reference) ---------------------------------------

IDENTITY_DIMS = (1, 2, 3)
_X = {1: (2, 4, 21), 2: (2, 4, 10, 9), 3: (2, 4, 7, 6, 5)}
_K = {1: (3,), 2: (3, 2), 3: (3, 2, 2)}


def _xw(d, K=3, C=4, groups=1, seed=0):
    rng = np.random.default_rng([seed, d])
    x = rng.standard_normal(_X[d][:1] + (C,) + _X[d][2:])
    w = rng.standard_normal((K, C // groups) + _K[d])
    return x, w


@pytest.mark.parametrize("d", IDENTITY_DIMS)
def test_flip_is_a_flipped_kernel(d, algorithm, forced, assert_close_to_reference):
    x, w = _xw(d)
    w_flipped = np.ascontiguousarray(w[(Ellipsis,) + (slice(None, None, -1),) * d])
    got = forced(fastconv.conv, x, w, flip=True, padding=1, algorithm=algorithm)
    assert_close_to_reference(got, fastconv.conv(x, w_flipped, padding=1), F64)


@pytest.mark.parametrize("d", IDENTITY_DIMS)
def test_stride_subsamples_the_unit_stride_result(d, algorithm, forced, assert_close_to_reference):
    x, w = _xw(d)
    strides = (3, 2, 2)[:d] if d > 1 else (3,)
    got = forced(fastconv.conv, x, w, stride=strides, padding=1, algorithm=algorithm)
    full = fastconv.conv(x, w, padding=1)
    assert_close_to_reference(got, full[(Ellipsis,) + tuple(slice(None, None, s) for s in strides)], F64)


@pytest.mark.parametrize("d", IDENTITY_DIMS)
def test_dilation_is_a_kernel_with_holes(d, algorithm, forced, assert_close_to_reference):
    x, w = _xw(d)
    dil = (2, 1, 2)[:d]
    holes = np.zeros(w.shape[:2] + tuple(dl * (k - 1) + 1 for dl, k in zip(dil, w.shape[2:])))
    holes[(Ellipsis,) + tuple(slice(None, None, dl) for dl in dil)] = w
    got = forced(fastconv.conv, x, w, dilation=dil, algorithm=algorithm)
    assert_close_to_reference(got, fastconv.conv(x, holes), F64)


@pytest.mark.parametrize("d", IDENTITY_DIMS)
def test_groups_are_independent_convolutions(d, algorithm, forced, assert_close_to_reference):
    x, w = _xw(d, K=6, C=4, groups=2)
    got = forced(fastconv.conv, x, w, groups=2, padding=1, algorithm=algorithm)
    parts = [fastconv.conv(x[:, 2 * g:2 * g + 2], w[3 * g:3 * g + 3], padding=1) for g in range(2)]
    assert_close_to_reference(got, np.concatenate(parts, axis=1), F64)


NUMPY_PAD_MODE = {"zeros": "constant", "reflect": "reflect", "replicate": "edge", "circular": "wrap"}


@pytest.mark.parametrize("mode", list(NUMPY_PAD_MODE))
@pytest.mark.parametrize("d", IDENTITY_DIMS)
def test_padding_mode_is_numpy_pad(d, mode, algorithm, forced, assert_close_to_reference):
    x, w = _xw(d)
    pads = ((2, 1), (0, 2), (1, 1))[:d]
    padded = np.pad(x, ((0, 0), (0, 0)) + pads, mode=NUMPY_PAD_MODE[mode])
    got = forced(fastconv.conv, x, w, padding=pads, padding_mode=mode, algorithm=algorithm)
    assert_close_to_reference(got, fastconv.conv(padded, w), F64)


@pytest.mark.parametrize("d", IDENTITY_DIMS)
def test_bias_is_added_per_output_channel(d, algorithm, forced, assert_close_to_reference):
    x, w = _xw(d)
    b = np.array([1.5, -2.0, 0.25])
    got = forced(fastconv.conv, x, w, b, algorithm=algorithm)
    assert_close_to_reference(got, fastconv.conv(x, w) + b.reshape((1, 3) + (1,) * d), F64)


# --- hypothesis: random valid geometries against the reference and the shape formula ----------

@st.composite
def problems(draw):
    d = draw(st.integers(1, 3))
    groups = draw(st.integers(1, 3))
    C = groups * draw(st.integers(1, 2))
    K = groups * draw(st.integers(1, 2))
    N = draw(st.integers(0, 3))
    max_n = {1: 16, 2: 8, 3: 5}[d]
    k = tuple(draw(st.integers(1, 4)) for _ in range(d))
    stride = tuple(draw(st.integers(1, 3)) for _ in range(d))
    dilation = tuple(draw(st.integers(1, 2)) for _ in range(d))
    n = tuple(draw(st.integers(1, max_n)) for _ in range(d))
    style = draw(st.sampled_from(["pairs", "int", "valid", "same", "full"]))
    eff = [dl * (kk - 1) + 1 for kk, dl in zip(k, dilation)]
    if style == "valid":
        n = tuple(max(nn, e) for nn, e in zip(n, eff))
        padding = "valid"
    elif style in ("same", "full"):
        padding = style
    elif style == "int":
        padding = draw(st.integers(0, 3))
        n = tuple(max(nn, e - 2 * padding) for nn, e in zip(n, eff))
    else:
        padding = []
        for nn, e in zip(n, eff):
            lo = draw(st.integers(0, 3))
            hi = max(draw(st.integers(0, 3)), e - nn - lo)
            padding.append((lo, hi))
        padding = tuple(padding)
    mode = draw(st.sampled_from(["zeros", "zeros", "reflect", "replicate", "circular"]))
    flip = draw(st.booleans())
    dtype = draw(st.sampled_from([np.float32, np.float64]))
    seed = draw(st.integers(0, 2**32 - 1))
    return dict(d=d, N=N, C=C, K=K, n=n, k=k, groups=groups, stride=stride, dilation=dilation,
                padding=padding, padding_mode=mode, flip=flip, dtype=np.dtype(dtype), seed=seed)


def _valid_mode(p, pairs):
    """reflect needs each pad < n; circular each pad <= n; otherwise fall back to zeros."""
    mode = p["padding_mode"]
    if mode == "reflect" and any(max(lo, hi) >= nn for (lo, hi), nn in zip(pairs, p["n"])):
        return "zeros"
    if mode == "circular" and any(max(lo, hi) > nn for (lo, hi), nn in zip(pairs, p["n"])):
        return "zeros"
    return mode


@given(problems())
def test_random_geometries_match_reference(helpers, algorithm_names, assert_close_to_reference, p):
    rng = np.random.default_rng(p["seed"])
    dtype, n, k = p["dtype"], p["n"], p["k"]
    geometry = dict(stride=p["stride"], padding=p["padding"], dilation=p["dilation"])
    pairs = helpers.resolve_padding(p["padding"], n, k, p["stride"], p["dilation"])
    out = tuple((nn + lo + hi - dl * (kk - 1) - 1) // s + 1
                for nn, kk, s, dl, (lo, hi) in zip(n, k, p["stride"], p["dilation"], pairs))
    assert min(out) >= 1
    kw = dict(geometry, groups=p["groups"], flip=p["flip"], padding_mode=_valid_mode(p, pairs))
    x = rng.standard_normal((p["N"], p["C"]) + n).astype(dtype)
    w = rng.standard_normal((p["K"], p["C"] // p["groups"]) + k).astype(dtype)
    gy = rng.standard_normal((p["N"], p["K"]) + out).astype(dtype)
    bias = rng.standard_normal(p["K"]).astype(dtype)

    transposed_kw = dict(geometry, padding=pairs, groups=p["groups"])
    reachable = helpers.transpose_range(out, k, p["stride"], pairs, p["dilation"])
    assert all(lo <= nn <= hi for (lo, hi), nn in zip(reachable, n))
    smallest = tuple(lo for lo, _ in reachable)
    t_bias = rng.standard_normal(p["C"]).astype(dtype)

    calls = [
        ("conv", (x, w, bias), kw, (p["N"], p["K"]) + out),
        ("conv_grad_input", (gy, w, x.shape), kw, x.shape),
        ("conv_grad_input", (gy, w, n), kw, x.shape),
        ("conv_grad_kernel", (x, gy, w.shape), kw, w.shape),
        ("conv_grad_kernel", (x, gy, k), kw, w.shape),
        ("conv_transpose", (gy, w, t_bias), dict(transposed_kw, output_shape=n), x.shape),
    ]
    if min(smallest) >= 1:
        calls.append(("conv_transpose", (gy, w, None), transposed_kw, (p["N"], p["C"]) + smallest))
    ran = 0
    for name, args, call_kw, shape in calls:
        expected = getattr(reference, name)(*args, **call_kw)
        assert expected.shape == shape, f"reference {name}: shape {expected.shape}, formula {shape}"
        for algorithm in algorithm_names + ("auto",):
            try:
                got = helpers.call_forced(getattr(fastconv, name), *args, algorithm=algorithm, **call_kw)
            except helpers.NotApplicable:
                continue
            assert got.shape == shape, f"{algorithm} {name}: shape {got.shape}, formula {shape}"
            if p["N"] == 0 and name == "conv_grad_kernel":
                assert np.all(got == 0), f"{algorithm}: an empty batch gives a zero kernel gradient"
            try:
                assert_close_to_reference(got, expected, dtype)
            except AssertionError as exc:
                raise AssertionError(f"algorithm {algorithm!r}, {name}: {exc}") from None
            ran += 1
    assert ran >= 2 * len(calls)  # at least "auto" and one forced algorithm ran every call
