"""CONTRACT.md "Bad input", case by case, for every public function.

Each case asserts the exception type (ValueError, or TypeError for a wrong type) and that the
message names the offending argument; a few also check that the given value is quoted. Invalid
input is invalid for every algorithm, so it must never be reported as NotSupportedError.
"""
import numpy as np
import pytest

import fastconv

_rng = np.random.default_rng(42)
# Base problem: 2-D, groups=2, C=4, K=6, 8x7 input, 3x3 kernel -> 6x5 output.
X = _rng.standard_normal((2, 4, 8, 7))
W = _rng.standard_normal((6, 2, 3, 3))
GY = _rng.standard_normal((2, 6, 6, 5))
GROUPS = 2

ARRAY_FUNCS = ("conv", "conv2d", "grad_input", "grad_kernel", "transpose")
GEOMETRY_FUNCS = ARRAY_FUNCS + ("choose", "explain")


def _gy_for(o):
    """gy consistent with the (possibly invalid) geometry when its output size is computable, so
    that the geometry, not gy, is what is wrong."""
    try:
        n, k = X.shape[2:], W.shape[2:]
        s = o.get("stride", 1)
        s = (s, s) if np.ndim(s) == 0 else tuple(s)
        dl = o.get("dilation", 1)
        dl = (dl, dl) if np.ndim(dl) == 0 else tuple(dl)
        p = o.get("padding", 0)
        if np.ndim(p) == 0:
            p = ((int(p), int(p)),) * 2
        else:
            p = tuple((int(q), int(q)) if np.ndim(q) == 0 else (int(q[0]), int(q[1])) for q in p)
        out = tuple((nn + lo + hi - d * (kk - 1) - 1) // ss + 1 for nn, kk, ss, d, (lo, hi) in zip(n, k, s, dl, p))
        if len(out) == 2 and all(isinstance(v, int) and v >= 1 for v in out) and len(s) == len(dl) == len(p) == 2:
            return np.zeros(GY.shape[:2] + out)
    except Exception:
        pass
    return GY


def invoke(func, o):
    """Call public function `func` on the base problem with the overrides `o`."""
    x, w = o.get("x", X), o.get("w", W)
    gy = o["gy"] if "gy" in o else _gy_for(o)
    geo = {k: o[k] for k in ("stride", "padding", "dilation") if k in o}
    geo["groups"] = o.get("groups", GROUPS)
    extra = {k: o[k] for k in ("padding_mode", "algorithm") if k in o}
    if func == "conv":
        return fastconv.conv(x, w, o.get("bias"), **geo, **extra)
    if func == "conv2d":
        return fastconv.conv2d(x, w, o.get("bias"), **geo, **extra)
    if func == "grad_input":
        return fastconv.conv_grad_input(gy, w, o.get("input_shape", np.shape(x)), **geo, **extra)
    if func == "grad_kernel":
        return fastconv.conv_grad_kernel(x, gy, o.get("kernel_shape", np.shape(w)), **geo, **extra)
    if func == "transpose":
        extra.pop("padding_mode", None)
        return fastconv.conv_transpose(gy, w, o.get("bias"), output_shape=o.get("output_shape"), **geo, **extra)
    if func == "choose":
        return fastconv.choose(np.shape(x), np.shape(w), **geo)
    if func == "explain":
        return str(fastconv.explain(np.shape(x), np.shape(w), **geo))
    raise AssertionError(func)


def check(func, overrides, exc_type, pattern, given=None):
    with pytest.raises(exc_type, match=pattern) as info:
        invoke(func, overrides)
    assert not isinstance(info.value, fastconv.NotSupportedError), (
        f"invalid input reported as NotSupportedError: {info.value}")
    if given is not None:
        assert given in str(info.value), f"the message does not quote the given value {given!r}: {info.value}"


def test_base_problem_is_valid():
    """Every case below changes one thing in a problem that is itself valid for every function."""
    for func in GEOMETRY_FUNCS:
        invoke(func, {})
    for func in ("grad_input", "grad_kernel", "transpose"):
        invoke(func, {"gy": GY})


# --- geometry arguments: every function that takes them -----------------------------------------

GEOMETRY_CASES = [
    ("stride_zero", dict(stride=0), ValueError, "stride", None),
    ("stride_negative", dict(stride=-3), ValueError, "stride", "-3"),
    ("stride_negative_per_dim", dict(stride=(1, -2)), ValueError, "stride", "-2"),
    ("stride_zero_per_dim", dict(stride=(0, 1)), ValueError, "stride", None),
    ("stride_too_many", dict(stride=(1, 1, 1)), ValueError, "stride", None),
    ("stride_too_few", dict(stride=(2,)), ValueError, "stride", None),
    ("stride_empty", dict(stride=()), ValueError, "stride", None),
    ("stride_float", dict(stride=1.5), TypeError, "stride", None),
    ("stride_float_per_dim", dict(stride=(1, 2.5)), TypeError, "stride", None),
    ("stride_str", dict(stride="2"), TypeError, "stride", None),
    ("stride_none", dict(stride=None), TypeError, "stride", None),
    ("dilation_zero", dict(dilation=0), ValueError, "dilation", None),
    ("dilation_negative", dict(dilation=-2), ValueError, "dilation", "-2"),
    ("dilation_zero_per_dim", dict(dilation=(1, 0)), ValueError, "dilation", None),
    ("dilation_too_many", dict(dilation=(1, 1, 1)), ValueError, "dilation", None),
    ("dilation_float", dict(dilation=2.5), TypeError, "dilation", None),
    ("dilation_str", dict(dilation="1"), TypeError, "dilation", None),
    ("padding_negative", dict(padding=-1), ValueError, "padding", "-1"),
    ("padding_negative_per_dim", dict(padding=(1, -2)), ValueError, "padding", "-2"),
    ("padding_negative_pair", dict(padding=((0, 1), (-1, 0))), ValueError, "padding", "-1"),
    ("padding_too_many", dict(padding=(1, 1, 1)), ValueError, "padding", None),
    ("padding_too_few", dict(padding=(1,)), ValueError, "padding", None),
    ("padding_too_many_pairs", dict(padding=((0, 1), (1, 1), (0, 0))), ValueError, "padding", None),
    ("padding_pair_of_three", dict(padding=((0, 1, 2), (1, 1))), ValueError, "padding", None),
    ("padding_unknown_string", dict(padding="middle"), ValueError, "padding", "middle"),
    ("padding_float", dict(padding=1.5), TypeError, "padding", None),
    ("padding_none", dict(padding=None), TypeError, "padding", None),
    ("groups_zero", dict(groups=0), ValueError, "groups", None),
    ("groups_negative", dict(groups=-2), ValueError, "groups", None),
    ("groups_float", dict(groups=1.5), TypeError, "groups", None),
    ("groups_not_dividing_channels", dict(groups=3), ValueError, "groups", None),
    ("groups_mismatch_w", dict(groups=1), ValueError, r"groups|\bw\b|\bx\b|channel", None),
]


@pytest.mark.parametrize("func", GEOMETRY_FUNCS)
@pytest.mark.parametrize("case", GEOMETRY_CASES, ids=[c[0] for c in GEOMETRY_CASES])
def test_geometry_arguments(func, case):
    _, overrides, exc_type, pattern, given = case
    if func == "transpose" and overrides.get("groups") in (1, 3):
        # conv_transpose(x (K=6 channels), w (6, 2, ...)) is valid with groups 1 or 3 (C = 2 or 6
        # outputs); 4 does not divide K.
        overrides = dict(overrides, groups=4)
    check(func, overrides, exc_type, pattern, given)


@pytest.mark.parametrize("case", ["stride_zero", "padding_negative", "padding_unknown_string", "groups_zero"])
def test_geometry_validated_before_any_forced_algorithm(case, algorithm):
    _, overrides, exc_type, pattern, given = next(c for c in GEOMETRY_CASES if c[0] == case)
    for func in ARRAY_FUNCS:
        check(func, dict(overrides, algorithm=algorithm), exc_type, pattern, given)


ALGORITHM_CASES = [
    ("unknown", dict(algorithm="winograd9"), ValueError, "algorithm", "winograd9"),
    ("empty", dict(algorithm=""), ValueError, "algorithm", None),
    ("case", dict(algorithm="IM2COL_NOPE"), ValueError, "algorithm", None),
    ("int", dict(algorithm=3), TypeError, "algorithm", None),
    ("none", dict(algorithm=None), TypeError, "algorithm", None),
]


@pytest.mark.parametrize("func", ARRAY_FUNCS)
@pytest.mark.parametrize("case", ALGORITHM_CASES, ids=[c[0] for c in ALGORITHM_CASES])
def test_algorithm_argument(func, case):
    _, overrides, exc_type, pattern, given = case
    check(func, overrides, exc_type, pattern, given)


@pytest.mark.parametrize("func", ["conv", "conv2d", "grad_input", "grad_kernel"])
@pytest.mark.parametrize("mode", ["mirror", "zero", "constant", ""])
def test_unknown_padding_mode(func, mode):
    check(func, dict(padding=1, padding_mode=mode), ValueError, "padding_mode", mode or None)


# --- arrays and shapes, per function --------------------------------------------------------------

def _k(*kernel):
    return _rng.standard_normal(kernel)


FORWARD_CASES = [
    ("x_2d", dict(x=X[0, 0]), ValueError, r"\bx\b"),     # X[0] is one unbatched example
    ("x_5d", dict(x=X[..., None]), ValueError, r"\bx\b"),
    ("x_1d", dict(x=X[0, 0, 0]), ValueError, r"\bx\b"),
    ("x_scalar", dict(x=np.float64(1.0)), ValueError, r"\bx\b"),
    ("w_2d", dict(w=W[:, :, 0, 0]), ValueError, r"\bw\b"),
    ("w_6d", dict(w=W[..., None, None], x=X[..., None, None]), ValueError, r"\bw\b"),
    ("x_channels", dict(x=X[:, :3]), ValueError, r"\bx\b|\bw\b|groups"),
    ("w_channels", dict(w=_k(6, 3, 3, 3)), ValueError, r"\bx\b|\bw\b|groups"),
    ("K_not_divisible", dict(w=_k(5, 2, 3, 3)), ValueError, r"\bw\b|groups"),
    ("kernel_larger_than_input", dict(x=X[:, :, :2]), ValueError, r"\bx\b|\bw\b|kernel|padding"),
    ("kernel_larger_than_padded_input", dict(x=X[:, :, :1], padding=((0, 1), (0, 0))), ValueError,
     r"\bx\b|\bw\b|kernel|padding"),
    ("dilated_kernel_larger_than_input", dict(dilation=(4, 1)), ValueError, r"\bx\b|\bw\b|kernel|dilation|padding"),
    ("valid_kernel_larger", dict(x=X[:, :, :, :2], padding="valid"), ValueError, r"\bx\b|\bw\b|kernel|padding"),
    ("bias_too_long", dict(bias=np.zeros(7)), ValueError, "bias"),
    ("bias_too_short", dict(bias=np.zeros(4)), ValueError, "bias"),
    ("bias_2d", dict(bias=np.zeros((6, 1))), ValueError, "bias"),
    ("bias_row", dict(bias=np.zeros((1, 6))), ValueError, "bias"),
]


@pytest.mark.parametrize("func", ["conv", "conv2d"])
@pytest.mark.parametrize("case", FORWARD_CASES, ids=[c[0] for c in FORWARD_CASES])
def test_forward_arrays(func, case):
    _, overrides, exc_type, pattern = case
    check(func, overrides, exc_type, pattern)


GRAD_INPUT_CASES = [
    ("gy_3d", dict(gy=GY[0]), ValueError, r"\bgy\b"),
    ("gy_5d", dict(gy=GY[..., None]), ValueError, r"\bgy\b"),
    ("gy_spatial", dict(gy=np.zeros((2, 6, 6, 6))), ValueError, r"\bgy\b|input_shape"),
    ("gy_spatial_stride", dict(gy=GY, stride=2), ValueError, r"\bgy\b|input_shape"),
    ("gy_channels", dict(gy=np.zeros((2, 5, 6, 5))), ValueError, r"\bgy\b|\bw\b"),
    ("gy_batch", dict(gy=np.zeros((3, 6, 6, 5))), ValueError, r"\bgy\b|input_shape"),
    ("w_2d", dict(gy=GY, w=W[:, :, 0, 0]), ValueError, r"\bw\b"),
    ("w_6d", dict(gy=GY, w=W[..., None, None]), ValueError, r"\bw\b"),
    ("K_not_divisible", dict(gy=np.zeros((2, 5, 6, 5)), w=_k(5, 2, 3, 3)), ValueError, r"\bw\b|groups"),
    ("input_shape_one_entry", dict(gy=GY, input_shape=(8,)), ValueError, "input_shape"),
    ("input_shape_three_entries", dict(gy=GY, input_shape=(2, 4, 8)), ValueError, "input_shape"),
    ("input_shape_five_entries", dict(gy=GY, input_shape=(2, 4, 8, 7, 1)), ValueError, "input_shape"),
    ("input_shape_channels", dict(gy=GY, input_shape=(2, 5, 8, 7)), ValueError, r"input_shape|groups|\bw\b"),
    ("input_shape_batch", dict(gy=GY, input_shape=(3, 4, 8, 7)), ValueError, r"input_shape|\bgy\b"),
    ("input_shape_spatial", dict(gy=GY, input_shape=(9, 7)), ValueError, r"input_shape|\bgy\b"),
    ("input_shape_too_small", dict(gy=GY, input_shape=(2, 7)), ValueError, r"input_shape|\bgy\b|kernel|\bw\b"),
    ("input_shape_negative", dict(gy=GY, input_shape=(-8, 7)), ValueError, "input_shape"),
    ("input_shape_float", dict(gy=GY, input_shape=(8.5, 7)), TypeError, "input_shape"),
    ("input_shape_str", dict(gy=GY, input_shape="8,7"), TypeError, "input_shape"),
    ("input_shape_none", dict(gy=GY, input_shape=None), TypeError, "input_shape"),
]


@pytest.mark.parametrize("case", GRAD_INPUT_CASES, ids=[c[0] for c in GRAD_INPUT_CASES])
def test_grad_input_arrays(case):
    _, overrides, exc_type, pattern = case
    check("grad_input", overrides, exc_type, pattern)


GRAD_KERNEL_CASES = [
    ("x_3d", dict(gy=GY, x=X[0]), ValueError, r"\bx\b"),
    ("x_5d", dict(gy=GY, x=X[..., None]), ValueError, r"\bx\b"),
    ("x_channels", dict(gy=GY, x=X[:, :3]), ValueError, r"\bx\b|groups|kernel_shape"),
    ("gy_3d", dict(gy=GY[0]), ValueError, r"\bgy\b"),
    ("gy_spatial", dict(gy=np.zeros((2, 6, 5, 5))), ValueError, r"\bgy\b|kernel_shape"),
    ("gy_batch", dict(gy=np.zeros((3, 6, 6, 5))), ValueError, r"\bgy\b|\bx\b"),
    ("gy_channels", dict(gy=np.zeros((2, 5, 6, 5))), ValueError, r"\bgy\b|kernel_shape"),
    ("gy_channels_spatial_kernel_shape", dict(gy=np.zeros((2, 5, 6, 5)), kernel_shape=(3, 3)), ValueError,
     r"\bgy\b|groups"),
    ("kernel_shape_one_entry", dict(gy=GY, kernel_shape=(3,)), ValueError, "kernel_shape"),
    ("kernel_shape_three_entries", dict(gy=GY, kernel_shape=(2, 3, 3)), ValueError, "kernel_shape"),
    ("kernel_shape_five_entries", dict(gy=GY, kernel_shape=(6, 2, 3, 3, 1)), ValueError, "kernel_shape"),
    ("kernel_shape_K", dict(gy=GY, kernel_shape=(5, 2, 3, 3)), ValueError, r"kernel_shape|\bgy\b"),
    ("kernel_shape_channels", dict(gy=GY, kernel_shape=(6, 3, 3, 3)), ValueError, r"kernel_shape|\bx\b|groups"),
    ("kernel_shape_spatial", dict(gy=GY, kernel_shape=(4, 3)), ValueError, r"kernel_shape|\bgy\b"),
    ("kernel_shape_zero", dict(gy=np.zeros((2, 6, 9, 5)), kernel_shape=(0, 3)), ValueError, "kernel_shape"),
    ("kernel_shape_negative", dict(gy=GY, kernel_shape=(-3, 3)), ValueError, "kernel_shape"),
    ("kernel_shape_larger_than_input", dict(gy=np.zeros((2, 6, 1, 5)), kernel_shape=(9, 3)), ValueError,
     r"kernel_shape|kernel|\bx\b|padding"),
    ("kernel_shape_float", dict(gy=GY, kernel_shape=(3.0, 3.5)), TypeError, "kernel_shape"),
    ("kernel_shape_none", dict(gy=GY, kernel_shape=None), TypeError, "kernel_shape"),
]


@pytest.mark.parametrize("case", GRAD_KERNEL_CASES, ids=[c[0] for c in GRAD_KERNEL_CASES])
def test_grad_kernel_arrays(case):
    _, overrides, exc_type, pattern = case
    check("grad_kernel", overrides, exc_type, pattern)


# conv_transpose(x, w): x (N, K, *m) plays gy; with stride 2, the 3x3 output of an 8x7 or 7x7
# input is reached from outputs 7..8 in both dimensions.
GY_S2 = _rng.standard_normal((2, 6, 3, 3))

TRANSPOSE_CASES = [
    ("x_2d", dict(gy=GY[0, 0]), ValueError, r"\bx\b"),     # GY[0] is one unbatched example
    ("x_5d", dict(gy=GY[..., None]), ValueError, r"\bx\b"),
    ("x_channels", dict(gy=np.zeros((2, 5, 6, 5))), ValueError, r"\bx\b|\bw\b"),
    ("w_2d", dict(gy=GY, w=W[:, :, 0, 0]), ValueError, r"\bw\b"),
    ("w_6d", dict(gy=GY, w=W[..., None, None]), ValueError, r"\bw\b"),
    ("K_not_divisible", dict(gy=np.zeros((2, 5, 6, 5)), w=_k(5, 2, 3, 3)), ValueError, r"\bw\b|groups"),
    ("bias_K_not_C", dict(gy=GY, bias=np.zeros(6)), ValueError, "bias"),
    ("bias_2d", dict(gy=GY, bias=np.zeros((4, 1))), ValueError, "bias"),
    ("output_below_range", dict(gy=GY_S2, stride=2, output_shape=(6, 7)), ValueError, "output_shape"),
    ("output_above_range", dict(gy=GY_S2, stride=2, output_shape=(8, 9)), ValueError, "output_shape"),
    ("output_stride1_not_unique", dict(gy=GY, output_shape=(9, 7)), ValueError, "output_shape"),
    ("output_zero", dict(gy=GY, output_shape=(0, 7)), ValueError, "output_shape"),
    ("output_negative", dict(gy=GY, output_shape=(-8, 7)), ValueError, "output_shape"),
    ("output_one_entry", dict(gy=GY, output_shape=(8,)), ValueError, "output_shape"),
    ("output_three_entries", dict(gy=GY, output_shape=(4, 8, 7)), ValueError, "output_shape"),
    ("output_full_channels", dict(gy=GY, output_shape=(2, 5, 8, 7)), ValueError, "output_shape"),
    ("output_full_batch", dict(gy=GY, output_shape=(3, 4, 8, 7)), ValueError, "output_shape"),
    ("output_float", dict(gy=GY, output_shape=(8.5, 7)), TypeError, "output_shape"),
]


@pytest.mark.parametrize("case", TRANSPOSE_CASES, ids=[c[0] for c in TRANSPOSE_CASES])
def test_transpose_arrays(case):
    _, overrides, exc_type, pattern = case
    check("transpose", overrides, exc_type, pattern)


@pytest.mark.parametrize("output_shape", [(7, 7), (7, 8), (8, 7), (8, 8), None])
def test_transpose_every_reachable_output_shape_works(output_shape):
    got = fastconv.conv_transpose(GY_S2, W, stride=2, groups=GROUPS, output_shape=output_shape)
    assert got.shape == (2, 4) + (output_shape or (7, 7))
    again = fastconv.conv(np.zeros(got.shape), W, stride=2, groups=GROUPS)
    assert again.shape == GY_S2.shape


def test_kernel_exactly_as_large_as_padded_input_is_valid():
    y = fastconv.conv(X[:, :, :1, :3], W, padding=((1, 1), (0, 0)), groups=GROUPS)
    assert y.shape == (2, 6, 1, 1)
    y = fastconv.conv(X[:, :, :5, :3], W, dilation=(2, 1), groups=GROUPS)
    assert y.shape == (2, 6, 1, 1)


@pytest.mark.parametrize("case", ["gy_spatial", "gy_channels", "gy_batch"])
def test_gradient_shapes_checked_before_any_forced_algorithm(case, algorithm_or_auto):
    _, overrides, exc_type, pattern = next(c for c in GRAD_INPUT_CASES if c[0] == case)
    check("grad_input", dict(overrides, algorithm=algorithm_or_auto), exc_type, pattern)
    _, overrides, exc_type, pattern = next(c for c in GRAD_KERNEL_CASES if c[0] == case)
    check("grad_kernel", dict(overrides, algorithm=algorithm_or_auto), exc_type, pattern)


CHOOSE_CASES = [
    ("x_shape_ndim", dict(x=X[0]), ValueError, r"x_shape|\bx\b"),
    ("w_shape_ndim", dict(w=W[:, :, 0, 0]), ValueError, r"w_shape|\bw\b"),
    ("kernel_larger", dict(x=X[:, :, :2]), ValueError, r"x_shape|w_shape|kernel|padding|\bx\b|\bw\b"),
    ("channels", dict(x=X[:, :3]), ValueError, r"x_shape|w_shape|groups|\bx\b|\bw\b"),
]


@pytest.mark.parametrize("func", ["choose", "explain"])
@pytest.mark.parametrize("case", CHOOSE_CASES, ids=[c[0] for c in CHOOSE_CASES])
def test_chooser_shapes(func, case):
    _, overrides, exc_type, pattern = case
    check(func, overrides, exc_type, pattern)


# --- NotSupportedError ---------------------------------------------------------------------------

def test_not_supported_error_is_a_value_error():
    assert issubclass(fastconv.NotSupportedError, ValueError)


# A battery of valid problems of different kinds: an algorithm may refuse some of them.
BATTERY = [
    ("plain", (2, 3, 12, 11), (4, 3, 3, 3), {}),
    ("stride_dilation", (2, 3, 12, 11), (4, 3, 3, 3), dict(stride=2, dilation=2, padding=1)),
    ("groups", (2, 4, 12, 11), (4, 1, 3, 3), dict(groups=4, padding="same")),
    ("big_kernel", (1, 2, 16, 16), (2, 2, 9, 9), dict(padding="full")),
    ("k1", (2, 3, 12, 11), (4, 3, 1, 1), dict(stride=2)),
    ("1d", (2, 3, 40), (4, 3, 5), dict(padding=2)),
    ("3d", (1, 2, 6, 6, 6), (2, 2, 3, 3, 3), dict(padding=1, padding_mode="reflect")),
    ("flip_even", (2, 3, 12, 11), (4, 3, 4, 2), dict(flip=True, padding="same")),
]


def test_forced_algorithms_refuse_only_with_a_reason(algorithm_names):
    """Each NotSupportedError names the problem it refuses ("does not support") and why, and the
    chooser never picks a refusing algorithm. Skipped (not passed) while no algorithm refuses any
    of these problems, so that it cannot pass vacuously."""
    rng = np.random.default_rng(0)
    refusals = []
    for name, xs, ws, kw in BATTERY:
        x, w = rng.standard_normal(xs), rng.standard_normal(ws)
        geo = {k: v for k, v in kw.items() if k in ("stride", "padding", "dilation", "groups")}
        for algorithm in algorithm_names:
            try:
                fastconv.conv(x, w, algorithm=algorithm, **kw)
            except fastconv.NotSupportedError as exc:
                message = str(exc)
                assert algorithm not in ("reference", "im2col"), f"{algorithm} refused {name}: {message}"
                assert "does not support" in message, message
                assert len(message) > len("does not support") + 10, f"no reason given: {message!r}"
                assert fastconv.choose(xs, ws, dtype="float64", **geo) != algorithm, (
                    f"choose picked {algorithm} for {name}, which it refuses")
                refusals.append((name, algorithm))
    if not refusals:
        pytest.skip(f"no registered algorithm ({', '.join(algorithm_names)}) refuses any battery problem yet")
