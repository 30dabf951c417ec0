"""What the public functions accept: dtypes, memory layouts, lists, empty batches; the caller's
arrays are never written; flip=True is numpy/scipy convolution; conv1d/2d/3d check dimensions."""
import numpy as np
import pytest
import scipy.signal

import fastconv
from fastconv import reference

OPERATIONS = ("forward", "grad_input", "grad_kernel", "transpose")


def _problem(rng, dtype_x=np.float64, dtype_w=np.float64, N=2):
    """A 2-D grouped, strided, padded problem: x, w, gy, bias, and the geometry."""
    kw = dict(stride=(2, 1), padding=((1, 0), (1, 2)), dilation=(1, 2), groups=2)
    x = rng.standard_normal((N, 4, 9, 8))
    w = rng.standard_normal((6, 2, 3, 2))
    out = ((9 + 1 - 3) // 2 + 1, (8 + 3 - 2 - 1) // 1 + 1)
    gy = rng.standard_normal((N, 6) + out)
    return x.astype(dtype_x), w.astype(dtype_w), gy.astype(dtype_x), kw


def _call(op, x, w, gy, kw, bias=None, algorithm="auto", module=fastconv):
    if op == "forward":
        return module.conv(x, w, bias, **kw, **_alg(algorithm, module))
    if op == "grad_input":
        return module.conv_grad_input(gy, w, np.shape(x), **kw, **_alg(algorithm, module))
    if op == "grad_kernel":
        return module.conv_grad_kernel(x, gy, np.shape(w), **kw, **_alg(algorithm, module))
    return module.conv_transpose(gy, w, bias, output_shape=np.shape(x)[2:], **kw, **_alg(algorithm, module))


def _alg(algorithm, module):
    return {} if module is reference else {"algorithm": algorithm}


# --- dtype rules ---------------------------------------------------------------------------------

DTYPE_RULES = [
    (np.float32, np.float32, np.float32),
    (np.float64, np.float64, np.float64),
    (np.float32, np.float64, np.float64),
    (np.float64, np.float32, np.float64),
    (np.int32, np.float64, np.float64),
    (np.int64, np.int64, np.float64),
    (np.int16, np.float32, np.float64),
    (np.uint8, np.float64, np.float64),
    (np.bool_, np.float64, np.float64),
    (np.bool_, np.bool_, np.float64),
]


@pytest.mark.parametrize("op", OPERATIONS)
@pytest.mark.parametrize("dx,dw,expected", DTYPE_RULES, ids=lambda v: np.dtype(v).name)
def test_result_dtype(op, dx, dw, expected, algorithm_or_auto, rng, forced, assert_close_to_reference):
    x, w, gy, kw = _problem(rng)
    # the two array operands get dx and dw: (x, w), (gy, w), (x, gy) or (gy, w)
    dgy = dw if op == "grad_kernel" else dx

    def cast(a, dtype):
        return (np.abs(a) * 3).astype(dtype) if np.dtype(dtype).kind in "biu" else a.astype(dtype)

    x, w, gy = cast(x, dx), cast(w, dw), cast(gy, dgy)
    got = forced(_call, op, x, w, gy, kw, algorithm=algorithm_or_auto)
    assert got.dtype == np.dtype(expected)
    # float32 results are computed in float32: compare with the reference on the same inputs;
    # everything else is float64: compare with the reference on float64 copies.
    if np.dtype(expected) == np.float32:
        ref = _call(op, x, w, gy, kw, module=reference)
    else:
        ref = _call(op, x.astype(np.float64), w.astype(np.float64), gy.astype(np.float64), kw, module=reference)
    assert_close_to_reference(got, ref, expected)


def test_float32_result_is_accurate(rng):
    """float32 in, float32 out, within the contract tolerance of the exact (float64) result."""
    x, w, gy, kw = _problem(rng, np.float32, np.float32)
    got = fastconv.conv(x, w, **kw)
    assert got.dtype == np.float32
    exact = reference.conv(x.astype(np.float64), w.astype(np.float64), **kw)
    assert np.max(np.abs(got - exact)) <= 2e-4 * np.max(np.abs(exact))


BAD_DTYPES = [
    ("complex", lambda a: a.astype(np.complex128)),
    ("complex64", lambda a: a.astype(np.complex64)),
    ("object", lambda a: a.astype(object)),
    ("str", lambda a: a.astype(str)),
    ("bytes", lambda a: a.astype(bytes)),
]


BAD_DTYPE_CASES = [(op, which) for op in OPERATIONS for which in ("first", "second", "bias")
                   if which != "bias" or op in ("forward", "transpose")]


@pytest.mark.parametrize("op,which", BAD_DTYPE_CASES)
@pytest.mark.parametrize("kind,convert", BAD_DTYPES, ids=[b[0] for b in BAD_DTYPES])
def test_unsupported_dtypes_raise_type_error(op, which, kind, convert, rng):
    x, w, gy, kw = _problem(rng)
    bias = None
    if which == "bias":
        bias = convert(rng.standard_normal(6 if op == "forward" else 4))
    elif which == "first":
        if op in ("forward", "grad_kernel"):
            x = convert(x)
        else:
            gy = convert(gy)
    else:
        if op == "grad_kernel":
            gy = convert(gy)
        else:
            w = convert(w)
    with pytest.raises(TypeError):
        _call(op, x, w, gy, kw, bias=bias)


# --- layouts and containers ----------------------------------------------------------------------

def _layouts(a):
    """The same values as `a`, in several layouts that are not C-contiguous and owning."""
    doubled = np.repeat(a, 2, axis=-1)[..., ::2]                      # strided view
    assert np.array_equal(doubled, a) and not doubled.flags.c_contiguous
    if a.ndim >= 2:
        swapped = np.ascontiguousarray(np.swapaxes(a, -1, -2)).swapaxes(-1, -2)   # transposed view
    else:
        swapped = np.stack([a, a], axis=1)[:, 0]
    assert np.array_equal(swapped, a) and not swapped.flags.c_contiguous
    fortran = np.asfortranarray(a)
    readonly = a.copy()
    readonly.flags.writeable = False
    reversed_twice = a[..., ::-1].copy()[..., ::-1]                   # negative strides
    batch_strided = np.repeat(a, 2, axis=0)[::2]
    assert np.array_equal(batch_strided, a) and not batch_strided.flags.c_contiguous
    return {"strided": doubled, "transposed": swapped, "fortran": fortran, "readonly": readonly,
            "negative_strides": reversed_twice, "batch_strided": batch_strided}


LAYOUTS = ("strided", "transposed", "fortran", "readonly", "negative_strides", "batch_strided", "list")


@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize("op", OPERATIONS)
def test_any_layout_gives_the_contiguous_result(op, layout, algorithm_or_auto, rng, forced,
                                                assert_close_to_reference):
    x, w, gy, kw = _problem(rng)
    bias = rng.standard_normal(6 if op == "forward" else 4) if op in ("forward", "transpose") else None
    expected = forced(_call, op, x, w, gy, kw, bias, algorithm=algorithm_or_auto)

    def convert(a):
        return a.tolist() if layout == "list" else _layouts(a)[layout]

    got = forced(_call, op, convert(x), convert(w), convert(gy), kw,
                 None if bias is None else convert(bias), algorithm=algorithm_or_auto)
    assert isinstance(got, np.ndarray)
    assert_close_to_reference(got, expected, np.float64)
    if layout != "list":  # (a list is converted, so its result is allowed to differ in rounding)
        assert np.array_equal(got, expected), "the memory layout changed the result"


@pytest.mark.parametrize("op", OPERATIONS)
def test_result_is_writeable_and_owns_no_input(op, rng):
    x, w, gy, kw = _problem(rng)
    got = _call(op, x, w, gy, kw)
    assert got.flags.writeable
    for a in (x, w, gy):
        assert not np.shares_memory(got, a)


@pytest.mark.parametrize("op", ["grad_input", "grad_kernel", "transpose"])
def test_shape_arguments_full_or_spatial(op, rng, assert_close_to_reference):
    x, w, gy, kw = _problem(rng)
    if op == "grad_input":
        full = fastconv.conv_grad_input(gy, w, x.shape, **kw)
        spatial = fastconv.conv_grad_input(gy, w, x.shape[2:], **kw)
        as_list = fastconv.conv_grad_input(gy, w, list(x.shape[2:]), **kw)
    elif op == "grad_kernel":
        full = fastconv.conv_grad_kernel(x, gy, w.shape, **kw)
        spatial = fastconv.conv_grad_kernel(x, gy, w.shape[2:], **kw)
        as_list = fastconv.conv_grad_kernel(x, gy, list(w.shape[2:]), **kw)
    else:
        full = fastconv.conv_transpose(gy, w, output_shape=x.shape, **kw)
        spatial = fastconv.conv_transpose(gy, w, output_shape=x.shape[2:], **kw)
        as_list = fastconv.conv_transpose(gy, w, output_shape=list(x.shape[2:]), **kw)
    assert np.array_equal(full, spatial) and np.array_equal(full, as_list)
    assert full.shape == (x.shape if op != "grad_kernel" else w.shape)


def test_numpy_integer_geometry_arguments(rng):
    x, w, gy, kw = _problem(rng)
    expected = fastconv.conv(x, w, **kw)
    np_kw = dict(stride=(np.int64(2), np.int32(1)), padding=((np.int64(1), 0), (1, np.int16(2))),
                 dilation=(np.int64(1), 2), groups=np.int64(2))
    assert np.array_equal(fastconv.conv(x, w, **np_kw), expected)


# --- the caller's arrays are never written --------------------------------------------------------

@pytest.mark.parametrize("op,mode", [(op, mode) for op in OPERATIONS for mode in ("zeros", "reflect", "circular")
                                     if mode == "zeros" or op != "transpose"])
def test_inputs_are_not_modified(op, mode, algorithm_or_auto, rng, forced):
    x, w, gy, kw = _problem(rng)
    if mode != "zeros":
        kw = dict(kw, padding_mode=mode)
    bias = rng.standard_normal(6 if op == "forward" else 4)
    # include a NaN and an Inf: they must not be "cleaned" in place either
    x[0, 0, 0, 0], gy[1, 1, 1, 1] = np.nan, -np.inf
    arrays = {"x": x, "w": w, "gy": gy, "bias": bias}
    copies = {k: v.copy() for k, v in arrays.items()}
    flags = {k: (v.flags.c_contiguous, v.strides) for k, v in arrays.items()}
    forced(_call, op, x, w, gy, kw, bias if op in ("forward", "transpose") else None, algorithm=algorithm_or_auto)
    for k, v in arrays.items():
        assert np.array_equal(v, copies[k], equal_nan=True), f"{k} was modified"
        assert (v.flags.c_contiguous, v.strides) == flags[k], f"{k} changed layout"


@pytest.mark.parametrize("op", OPERATIONS)
def test_float32_views_are_not_modified(op, rng):
    base = {k: v for k, v in zip(("x", "w", "gy"), _problem(rng, np.float32, np.float32)[:3])}
    kw = _problem(rng)[3]
    views = {k: np.asfortranarray(v) for k, v in base.items()}
    copies = {k: v.copy() for k, v in views.items()}
    _call(op, views["x"], views["w"], views["gy"], kw)
    for k in views:
        assert np.array_equal(views[k], copies[k]), f"{k} was modified"


# --- empty batch ---------------------------------------------------------------------------------

@pytest.mark.parametrize("d", (1, 2, 3))
@pytest.mark.parametrize("op", OPERATIONS)
def test_empty_batch(op, d, algorithm_or_auto, forced):
    n = (8, 7, 6)[:d]
    k = (3, 2, 2)[:d]
    kw = dict(stride=2, padding=1, groups=2)
    out = tuple((nn + 2 - kk) // 2 + 1 for nn, kk in zip(n, k))
    x = np.zeros((0, 4) + n)
    w = np.ones((6, 2) + k)
    gy = np.zeros((0, 6) + out)
    got = forced(_call, op, x, w, gy, kw, algorithm=algorithm_or_auto)
    expected_shape = {"forward": (0, 6) + out, "grad_input": x.shape, "grad_kernel": w.shape,
                      "transpose": x.shape}[op]
    assert got.shape == expected_shape
    assert got.dtype == np.float64
    if op == "grad_kernel":
        assert np.all(got == 0), "the kernel gradient summed over no samples is zero"


@pytest.mark.parametrize("op", OPERATIONS)
def test_empty_batch_float32_keeps_dtype(op):
    x = np.zeros((0, 2, 5, 5), np.float32)
    w = np.ones((3, 2, 3, 3), np.float32)
    gy = np.zeros((0, 3, 3, 3), np.float32)
    got = _call(op, x, w, gy, {})
    assert got.dtype == np.float32
    assert got.shape == {"forward": gy.shape, "grad_input": x.shape, "grad_kernel": w.shape,
                         "transpose": x.shape}[op]


# --- flip=True is numpy / scipy convolution; flip=False is correlation -----------------------------

# numpy centres an even kernel on the other side for "same"; the contract puts the extra pad high.
@pytest.mark.parametrize("mode,m", [(mode, m) for mode in ("full", "valid", "same") for m in (1, 3, 4, 5, 8)
                                    if mode != "same" or m % 2])
def test_flip_matches_numpy_convolve_1d(mode, m, algorithm_or_auto, forced, assert_close_to_reference):
    rng = np.random.default_rng(m)
    a, v = rng.standard_normal(31), rng.standard_normal(m)
    got = forced(fastconv.conv, a[None, None], v[None, None], padding=mode, flip=True, algorithm=algorithm_or_auto)
    assert_close_to_reference(got[0, 0], np.convolve(a, v, mode=mode), np.float64)
    got = forced(fastconv.conv1d, a[None, None], v[None, None], padding=mode, algorithm=algorithm_or_auto)
    assert_close_to_reference(got[0, 0], np.correlate(a, v, mode=mode), np.float64)


@pytest.mark.parametrize("mode,kshape", [(mode, k) for mode in ("full", "valid", "same")
                                         for k in ((3, 3), (3, 5), (1, 3), (5, 1), (2, 4), (4, 1))
                                         if mode != "same" or k[0] % 2 and k[1] % 2])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_flip_matches_scipy_convolve_2d(mode, kshape, dtype, algorithm_or_auto, forced, assert_close_to_reference):
    rng = np.random.default_rng(sum(kshape))
    a = rng.standard_normal((13, 11)).astype(dtype)
    v = rng.standard_normal(kshape).astype(dtype)
    got = forced(fastconv.conv2d, a[None, None], v[None, None], padding=mode, flip=True,
                 algorithm=algorithm_or_auto)
    expected = scipy.signal.convolve(a.astype(np.float64), v.astype(np.float64), mode=mode, method="direct")
    assert_close_to_reference(got[0, 0], expected.astype(dtype), dtype)
    got = forced(fastconv.conv2d, a[None, None], v[None, None], padding=mode, algorithm=algorithm_or_auto)
    expected = scipy.signal.correlate(a.astype(np.float64), v.astype(np.float64), mode=mode, method="direct")
    assert_close_to_reference(got[0, 0], expected.astype(dtype), dtype)


def test_flip_matches_scipy_convolve_3d(assert_close_to_reference):
    rng = np.random.default_rng(5)
    a, v = rng.standard_normal((6, 7, 5)), rng.standard_normal((3, 2, 3))
    for mode in ("full", "valid"):
        got = fastconv.conv3d(a[None, None], v[None, None], padding=mode, flip=True)
        assert_close_to_reference(got[0, 0], scipy.signal.convolve(a, v, mode=mode, method="direct"), np.float64)


def test_multichannel_is_a_sum_of_scipy_correlations(assert_close_to_reference):
    rng = np.random.default_rng(9)
    x, w = rng.standard_normal((2, 3, 10, 9)), rng.standard_normal((4, 3, 3, 2))
    expected = np.array([[sum(scipy.signal.correlate(x[n, c], w[k, c], mode="valid") for c in range(3))
                          for k in range(4)] for n in range(2)])
    assert_close_to_reference(fastconv.conv(x, w), expected, np.float64)


# --- conv1d / conv2d / conv3d -------------------------------------------------------------------

_SHAPES = {1: ((2, 3, 12), (4, 3, 3)), 2: ((2, 3, 8, 7), (4, 3, 3, 2)), 3: ((2, 3, 5, 6, 4), (4, 3, 2, 3, 2))}
_FUNCS = {1: "conv1d", 2: "conv2d", 3: "conv3d"}


@pytest.mark.parametrize("d", (1, 2, 3))
def test_convNd_is_conv(d, rng):
    xs, ws = _SHAPES[d]
    x, w, b = rng.standard_normal(xs), rng.standard_normal(ws), rng.standard_normal(ws[0])
    kw = dict(stride=2, padding=1, dilation=1, groups=1, flip=True, padding_mode="replicate")
    assert np.array_equal(getattr(fastconv, _FUNCS[d])(x, w, b, **kw), fastconv.conv(x, w, b, **kw))


@pytest.mark.parametrize("func_d,problem_d", [(f, p) for f in (1, 2, 3) for p in (1, 2, 3) if f != p])
def test_convNd_rejects_other_dimensionalities(func_d, problem_d, rng):
    xs, ws = _SHAPES[problem_d]
    x, w = rng.standard_normal(xs), rng.standard_normal(ws)
    with pytest.raises(ValueError, match=r"\bx\b|\bw\b"):
        getattr(fastconv, _FUNCS[func_d])(x, w)
