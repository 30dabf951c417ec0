"""Issue 17, items 5 and 6: geometry values near and beyond the int64 range.

Item 5: a stride of 2**63 - 1 gave wrong numbers through direct (ceil_div's a + b - 1 overflowed);
im2col looped over every phase of the stride (8.3 s at 1e8, no return at 2**40) and fft stepped
through its buffer once per stride (no return at 2**40). Values that cannot be represented must be
refused with ValueError; the work must never grow with the stride itself. The spec now keeps every
derived size within int64 (ValueError naming the argument otherwise) and normalises a stride along
an axis with one output (and the dilation of a one-tap kernel), without changing any result.

Item 6: values >= 2**63 raised OverflowError from Cython; they raise ValueError naming the
argument.

Calls that could hang run in a fresh interpreter under a generous timeout.
"""
import os
import subprocess
import sys

import numpy as np
import pytest

import fastconv
from fastconv import reference
from fastconv._geometry import make_spec

HUGE_STRIDES = (10**8, 2**40, 2**62, 2**63 - 1)


def _run_fresh(code, timeout=240):
    """Run `code` in a fresh interpreter on the fastconv under test; it prints "ok" at the end."""
    root = os.path.dirname(os.path.dirname(os.path.abspath(fastconv.__file__)))
    env = dict(os.environ, PYTHONPATH=root + os.pathsep + os.environ.get("PYTHONPATH", ""))
    done = subprocess.run([sys.executable, "-c", code], env=env, cwd=root, capture_output=True,
                          text=True, timeout=timeout)
    assert done.returncode == 0 and done.stdout.strip().endswith("ok"), (
        done.stdout[-2000:] + done.stderr[-3000:])


_HUGE_STRIDE_SCRIPT = """
import numpy as np, fastconv
from fastconv import reference
rng = np.random.default_rng(0)
names = fastconv.algorithms() + ("auto",)
for xs, ws in (((2, 3, 10), (4, 3, 3)), ((1, 2, 9, 11), (3, 2, 2, 3))):
    x, w = rng.standard_normal(xs), rng.standard_normal(ws)
    nd = len(xs) - 2
    for s in {strides!r}:
        for stride in (s, (s,) + (1,) * (nd - 1)):
            want = reference.conv(x, w, stride=stride)
            # a huge stride along an axis keeps output 0 only: as a stride of the input's size
            small = tuple(n if t > 1 else 1 for n, t in zip(xs[2:], np.broadcast_to(stride, nd)))
            assert np.array_equal(want, reference.conv(x, w, stride=small)), stride
            gy = rng.standard_normal(want.shape)
            wants = (want, reference.conv_grad_input(gy, w, xs, stride=stride),
                     reference.conv_grad_kernel(x, gy, ws, stride=stride))
            for name in names:
                for op, fn, args, ref in (
                        ("forward", fastconv.conv, (x, w), wants[0]),
                        ("grad_input", fastconv.conv_grad_input, (gy, w, xs), wants[1]),
                        ("grad_kernel", fastconv.conv_grad_kernel, (x, gy, ws), wants[2])):
                    try:
                        got = fn(*args, stride=stride, algorithm=name)
                    except fastconv.NotSupportedError:
                        continue
                    err = np.abs(got - ref).max()
                    assert err <= 1e-9 * max(np.abs(ref).max(), 1e-300), (name, op, stride, err)
print("ok")
"""


def test_huge_strides_every_algorithm():
    """Strides 1e8 .. 2**63 - 1, every algorithm and "auto", the three operations, 1-D and 2-D:
    the reference's result, in a fresh interpreter that must finish (im2col and fft hung)."""
    _run_fresh(_HUGE_STRIDE_SCRIPT.format(strides=HUGE_STRIDES))


_HUGE_PADDING_SCRIPT = """
import numpy as np, fastconv
x = np.arange(1, 11, dtype="f4").reshape(1, 1, 10)
w = np.array([[[1, 2, 4]]], dtype="f4")
fast = [n for n in fastconv.algorithms() if n != "reference"] + ["auto"]
for name in fast:
    # outputs at -2**40, 0 and 2**40: only the middle one reads the input
    try:
        y = fastconv.conv(x, w, padding=2**40, stride=2**40, algorithm=name)
    except fastconv.NotSupportedError:
        continue
    assert y.tolist() == [[[0.0, 17.0, 0.0]]], (name, y)
w2 = np.array([[[3, 5]]], dtype="f4")
for name in fast:
    # a dilation of 2**59 and a padding of 2**59: the one output reads x[0] with tap 1 only
    try:
        y = fastconv.conv(x, w2, padding=2**59, dilation=2**59, stride=2**60, algorithm=name)
    except fastconv.NotSupportedError:
        continue
    assert y.tolist() == [[[5.0]]], (name, y)
x2, w3 = np.ones((1, 2, 2)), np.ones((2, 2, 3))
for name in fast:
    # tap 0's first valid output lies 2**30 outputs past the only one: im2col zero-filled the
    # row up to it (past the buffer: a segmentation fault)
    try:
        y = fastconv.conv(x2, w3, stride=2**31, padding=2**31, dilation=2**31, algorithm=name)
    except fastconv.NotSupportedError:
        continue
    assert y.tolist() == [[[2.0], [2.0]]], (name, y)
    gy = np.ones((1, 2, 1))
    gw = fastconv.conv_grad_kernel(x2, gy, w3.shape, stride=2**31, padding=2**31,
                                   dilation=2**31, algorithm=name)
    assert gw[:, :, 1].tolist() == [[1.0, 1.0]] * 2 and not gw[:, :, ::2].any(), (name, gw)
print("ok")
"""


def test_huge_padding_and_dilation_computed_without_looping_over_them():
    _run_fresh(_HUGE_PADDING_SCRIPT)


@pytest.mark.parametrize("kwargs", [
    dict(padding=2**62), dict(padding=((2**62, 0),)), dict(padding=2**61, dilation=2**61),
    dict(padding=2**59, dilation=2**59, stride=2**60),      # fits in float32, not in float64
])
def test_paddings_that_cannot_be_represented_are_refused(kwargs):
    x = np.arange(10.0).reshape(1, 1, 10)
    w = np.ones((1, 1, 2))
    with pytest.raises(ValueError, match="padding"):
        fastconv.conv(x, w, **kwargs)
    with pytest.raises(ValueError, match="padding"):
        fastconv.choose(x.shape, w.shape, dtype="float64", **kwargs)


def test_dilation_beyond_the_padded_input_is_refused():
    with pytest.raises(ValueError, match="larger than the padded input"):
        fastconv.conv(np.ones((1, 1, 10)), np.ones((1, 1, 3)), dilation=2**62)


# --- item 6: values >= 2**63 ------------------------------------------------------------------

TOO_BIG = (2**63, 2**64, 10**30)


@pytest.mark.parametrize("value", TOO_BIG)
@pytest.mark.parametrize("name", ["stride", "padding", "dilation", "groups"])
def test_geometry_values_beyond_int64_raise_value_error(name, value):
    x, w = np.ones((1, 1, 10)), np.ones((1, 1, 3))
    calls = [lambda **kw: fastconv.conv(x, w, **kw),
             lambda **kw: fastconv.conv_grad_input(np.ones((1, 1, 8)), w, (1, 1, 10), **kw),
             lambda **kw: fastconv.conv_grad_kernel(x, np.ones((1, 1, 8)), (1, 1, 3), **kw),
             lambda **kw: fastconv.conv_transpose(np.ones((1, 1, 8)), w, **kw),
             lambda **kw: fastconv.choose(x.shape, w.shape, **kw),
             lambda **kw: fastconv.explain(x.shape, w.shape, **kw)]
    forms = [value] + ([(value,)] if name != "groups" else []) + (
        [((0, value),)] if name == "padding" else [])
    for call in calls:
        for form in forms:
            with pytest.raises(ValueError, match=name):
                call(**{name: form})


@pytest.mark.parametrize("value", TOO_BIG + (-2**63, -1))
def test_shapes_beyond_int64_raise_value_error(value):
    x, w, gy = np.ones((1, 1, 10)), np.ones((1, 1, 3)), np.ones((1, 1, 8))
    cases = [("input_shape", lambda: fastconv.conv_grad_input(gy, w, (1, 1, value))),
             ("input_shape", lambda: fastconv.conv_grad_input(gy, w, (value,))),
             ("kernel_shape", lambda: fastconv.conv_grad_kernel(x, gy, (1, 1, value))),
             ("output_shape", lambda: fastconv.conv_transpose(gy, w, output_shape=(value,))),
             ("x_shape", lambda: fastconv.choose((1, 1, value), (1, 1, 3))),
             ("w_shape", lambda: fastconv.choose((1, 1, 10), (value, 1, 3))),
             ("x_shape", lambda: fastconv.explain((value, 1, 10), (1, 1, 3))),
             ("w_shape", lambda: fastconv.explain((1, 1, 10), (1, 1, value)))]
    for name, call in cases:
        with pytest.raises(ValueError, match=name):
            call()


@pytest.mark.parametrize("xs,ws", [((0, 1, 5), (1, 1, 3)), ((0, 2, 6, 6), (4, 2, 3, 3)),
                                   ((1, 1, 1), (1, 1, 1))])
def test_choose_and_explain_on_empty_problems(xs, ws):
    """An empty batch is a valid problem: the plans divided by its zero work items."""
    for dtype in ("float32", "float64"):
        name = fastconv.choose(xs, ws, padding=1, dtype=dtype)
        assert name in fastconv.algorithms()
        assert name in str(fastconv.explain(xs, ws, padding=1, dtype=dtype))


def test_conv_transpose_reaches_an_empty_output_where_only_that_fits(assert_close_to_reference):
    """Padding beyond the kernel: x of 2 positions comes only from an empty input (the range
    was (1, 0), refused with a self-contradicting message); none fits 1 position."""
    w = np.ones((1, 1, 1))
    out = fastconv.conv_transpose(np.ones((1, 1, 2)), w, padding=1)
    assert out.shape == (1, 1, 0)
    assert fastconv.conv(np.ones((1, 1, 0)), w, padding=1).shape == (1, 1, 2)
    with pytest.raises(ValueError, match="no output size gives"):
        fastconv.conv_transpose(np.ones((1, 1, 1)), w, padding=1)
    x = np.arange(6.0).reshape(1, 1, 6)             # the usual range is unchanged
    assert_close_to_reference(fastconv.conv_transpose(x, np.ones((1, 1, 3)), stride=2),
                              reference.conv_transpose(x, np.ones((1, 1, 3)), stride=2))


def test_derived_sizes_beyond_int64_raise_value_error():
    gy, w = np.ones((1, 1, 8)), np.ones((1, 1, 3))
    with pytest.raises(ValueError, match="input_shape"):      # 2**62 float64 values
        fastconv.conv_grad_input(gy, w, (1, 1, 2**62), stride=2**60)
    with pytest.raises(ValueError, match="output_shape"):     # the smallest output, 7 * 2**62 + 3
        fastconv.conv_transpose(gy, w, stride=2**62)
    with pytest.raises(ValueError, match="x_shape"):
        fastconv.choose((2**21, 2**21, 2**21), (1, 2**21, 3), dtype="float64")
    assert fastconv.choose((1, 1, 2**40), (1, 1, 3)) in fastconv.algorithms()   # shapes only


# --- normalisation changes no result and no message --------------------------------------

def test_spec_stride_bounded_by_the_input_on_single_output_axes():
    spec = make_spec((1, 1, 10), (1, 1, 3), stride=2**63 - 1, dilation=1)
    assert spec.output_size[-1] == 1 and spec.stride[-1] <= 10
    spec = make_spec((1, 1, 10, 10), (1, 1, 1, 3), stride=(2**62, 2), dilation=(2**62, 2))
    # axis -2: one output (the smallest stride saying so: 10 - 1 + 1), a one-tap kernel
    assert spec.output_size[-2:] == (1, 3)
    assert spec.stride[-2:] == (10, 2) and spec.dilation[-2:] == (1, 2)


@pytest.mark.parametrize("stride", [1, 2, 5, 7, 8, 100, 2**31])
def test_single_output_axes_match_the_reference(stride, assert_close_to_reference):
    """Every algorithm, every stride giving one output along the last axis (and a second axis of
    several outputs), the three operations and conv_transpose at each reachable output size."""
    rng = np.random.default_rng(stride % 1000)
    xs, ws = (2, 2, 6, 8), (3, 2, 3, 3)
    x, w = rng.standard_normal(xs), rng.standard_normal(ws)
    kw = dict(stride=(1, stride), padding=((1, 1), (0, 0)))
    want = reference.conv(x, w, **kw)
    if stride >= 6:
        assert want.shape[-1] == 1
    gy = rng.standard_normal(want.shape)
    for name in fastconv.algorithms() + ("auto",):
        for got, ref in ((lambda: fastconv.conv(x, w, algorithm=name, **kw), want),
                         (lambda: fastconv.conv_grad_input(gy, w, xs, algorithm=name, **kw),
                          reference.conv_grad_input(gy, w, xs, **kw)),
                         (lambda: fastconv.conv_grad_kernel(x, gy, ws, algorithm=name, **kw),
                          reference.conv_grad_kernel(x, gy, ws, **kw))):
            try:
                result = got()
            except fastconv.NotSupportedError:
                continue
            assert_close_to_reference(result, ref)
    m = rng.standard_normal((1, 3, 4, 1))
    for width in range(3, 3 + min(stride, 5)):          # the reachable sizes 3 .. 2 + stride
        for name in ("im2col", "direct", "fft", "auto"):
            assert_close_to_reference(
                fastconv.conv_transpose(m, w, stride=(1, stride), output_shape=(6, width),
                                        algorithm=name),
                # conv_transpose is grad_input with m as the output gradient (the reference's
                # own conv_transpose zero-stuffs by the stride: 2**31 zeros a row)
                reference.conv_grad_input(m, w, (1, 2, 6, width), stride=(1, stride)))


def test_error_messages_unchanged_by_normalisation():
    w = np.ones((1, 1, 3))
    with pytest.raises(ValueError, match=r"gy must have shape \(1, 1, 1\)"):
        fastconv.conv_grad_input(np.ones((1, 1, 2)), w, (1, 1, 10), stride=100)
    with pytest.raises(ValueError, match=r"gives outputs of size 3 to 102"):
        fastconv.conv_transpose(np.ones((1, 1, 1)), w, stride=100, output_shape=(103,))
    with pytest.raises(ValueError, match=r"padding < input size, got padding \(0, 200\)"):
        fastconv.conv(np.ones((1, 1, 10)), w, padding=((0, 200),), stride=300,
                      padding_mode="reflect")
    out = fastconv.conv_transpose(np.ones((1, 1, 1)), w, stride=100, output_shape=(102,))
    assert out.shape == (1, 1, 102) and out[0, 0, :3].tolist() == [1, 1, 1]
    assert not out[0, 0, 3:].any()
