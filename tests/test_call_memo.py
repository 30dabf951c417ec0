"""The call memo (fastconv/_call_memo.py): a call seen before skips its validation, so a second
call must give what the first gave, and every bad call must still be refused as it was before any
call had been remembered."""
import numpy as np
import pytest

import fastconv
from fastconv import _call_memo, _callsteps, reference
from fastconv._geometry import _plain


@pytest.fixture(autouse=True)
def _fresh_memo():
    _call_memo.clear()
    yield
    _call_memo.clear()


def _problem(dtype=np.float32, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((2, 4, 9, 8)).astype(dtype)
    w = rng.standard_normal((6, 2, 3, 3)).astype(dtype)
    return x, w


GEOMETRY = dict(stride=2, padding=1, dilation=1, groups=2)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_remembered_calls_match_the_reference_and_the_first_call(dtype):
    x, w = _problem(dtype)
    b = np.arange(6, dtype=dtype)
    tol = 1e-4 if dtype == np.float32 else 1e-10
    first = fastconv.conv(x, w, b, **GEOMETRY)
    assert len(_call_memo._memo) == 1
    again = fastconv.conv(x, w, b, **GEOMETRY)
    np.testing.assert_array_equal(first, again)
    want = reference.conv(x.astype(np.float64), w.astype(np.float64), **GEOMETRY) \
        + b.reshape(1, -1, 1, 1)
    np.testing.assert_allclose(again, want, rtol=tol, atol=tol)
    assert again.dtype == dtype

    gy = np.random.default_rng(1).standard_normal(first.shape).astype(dtype)
    for call in (lambda: fastconv.conv_grad_input(gy, w, x.shape, **GEOMETRY),
                 lambda: fastconv.conv_grad_kernel(x, gy, w.shape, **GEOMETRY)):
        a, b2 = call(), call()
        np.testing.assert_array_equal(a, b2)
    np.testing.assert_allclose(
        fastconv.conv_grad_input(gy, w, x.shape, **GEOMETRY),
        reference.conv_grad_input(gy.astype(np.float64), w.astype(np.float64), x.shape,
                                  **GEOMETRY), rtol=tol, atol=tol)
    np.testing.assert_allclose(
        fastconv.conv_grad_kernel(x, gy, w.shape, **GEOMETRY),
        reference.conv_grad_kernel(x.astype(np.float64), gy.astype(np.float64), w.shape,
                                   **GEOMETRY), rtol=tol, atol=tol)


def test_a_remembered_call_reads_new_values_and_layouts():
    x, w = _problem()
    fastconv.conv(x, w, **GEOMETRY)
    x2, w2 = _problem(seed=5)
    strided = np.asfortranarray(x2)              # same shape and dtype, another layout
    got = fastconv.conv(strided, w2, **GEOMETRY)
    np.testing.assert_allclose(got, reference.conv(x2, w2, **GEOMETRY), rtol=1e-4, atol=1e-4)
    np.testing.assert_array_equal(strided, x2)   # not written


def test_flip_and_the_kernel_gradient_flip_after_a_remembered_call():
    x, w = _problem(np.float64)
    for flip in (False, True, True):
        got = fastconv.conv(x, w, **GEOMETRY, flip=flip)
        want = reference.conv(x, w[..., ::-1, ::-1] if flip else w, **GEOMETRY)
        np.testing.assert_allclose(got, want, rtol=1e-10, atol=1e-10)
        gy = np.ones_like(got)
        gw = fastconv.conv_grad_kernel(x, gy, w.shape, **GEOMETRY, flip=flip)
        want_gw = reference.conv_grad_kernel(x, gy, w.shape, **GEOMETRY)
        np.testing.assert_allclose(gw, want_gw[..., ::-1, ::-1] if flip else want_gw,
                                   rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("bad, error", [
    (dict(stride=2.0), TypeError),          # 2.0 == 2 and hashes alike: not a plain value
    (dict(stride=(2, 2.0)), TypeError),
    (dict(groups=True), TypeError),         # True == 1
    (dict(flip=1), TypeError),              # 1 == True
    (dict(algorithm=b"auto"), TypeError),
    (dict(padding="bogus"), ValueError),
])
def test_equal_but_invalid_arguments_are_still_refused(bad, error):
    x, w = _problem()
    geometry = dict(stride=2, padding=1, groups=2 if "groups" not in bad else 1)
    w1 = w if "groups" not in bad else np.concatenate([w, w], axis=1)
    fastconv.conv(x, w1, **geometry)             # remembered
    with pytest.raises(error):
        fastconv.conv(x, w1, **{**geometry, **bad})


def test_gradients_refuse_what_they_refused_before():
    x, w = _problem()
    y = fastconv.conv(x, w, **GEOMETRY)
    gy = np.ones_like(y)
    fastconv.conv_grad_input(gy, w, x.shape, **GEOMETRY)
    fastconv.conv_grad_kernel(x, gy, w.shape, **GEOMETRY)
    with pytest.raises(TypeError):
        fastconv.conv_grad_input(gy, w, (2.0, 4, 9, 8), **GEOMETRY)
    with pytest.raises(TypeError):
        fastconv.conv_grad_kernel(x, gy, w.shape, **{**GEOMETRY, "flip": 0})
    with pytest.raises(ValueError):
        fastconv.conv_grad_input(gy[:, :, :-1], w, x.shape, **GEOMETRY)
    with pytest.raises(TypeError):
        fastconv.conv_grad_kernel(x.astype(complex), gy, w.shape, **GEOMETRY)


def test_padding_modes_and_unbatched_calls_are_not_remembered_and_stay_right():
    x, w = _problem(np.float64)
    for _ in range(2):
        got = fastconv.conv(x, w, padding=1, groups=2, padding_mode="reflect")
        xp = np.pad(x, ((0, 0), (0, 0), (1, 1), (1, 1)), mode="reflect")
        np.testing.assert_allclose(got, reference.conv(xp, w, groups=2), rtol=1e-10, atol=1e-10)
        one = fastconv.conv(x[0], w, padding=1, groups=2)
        np.testing.assert_allclose(one, reference.conv(x[:1], w, padding=1, groups=2)[0],
                                   rtol=1e-10, atol=1e-10)
    assert all(k[0] == "conv" for k in _call_memo._memo)     # only the batched zero-padded call


def test_the_memo_stays_bounded():
    w = np.ones((1, 1, 1), np.float32)
    for n in range(_call_memo.SIZE + 5):
        fastconv.conv(np.ones((1, 1, n + 1), np.float32), w)
    assert len(_call_memo._memo) <= _call_memo.SIZE


VALUES = [1, 0, -3, True, False, 1.0, np.int64(2), np.float32(1), "same", "valid", None, [1, 2],
          (1, 2), (1, True), ((1, 1), (2, 2)), ((1, 1), (2, 2.0)), ((1, (2,)),), (), (np.int64(1),),
          [(1, 1)], (1, "a")]


@pytest.mark.parametrize("value", VALUES, ids=repr)
def test_the_key_in_c_takes_exactly_the_plain_values(value):
    """src/_callsteps.pyx's key refuses what `_geometry._plain` refuses, and keeps it as given."""
    x = np.ones((1, 2, 3), np.float32)
    k = _callsteps.key("conv", (x, x, None), (value, 1), False, "zeros", "auto")
    assert (k is None) == (_plain(value) is None)
    if k is not None:
        assert k[-2] is value


def test_the_key_tells_dtypes_and_byte_orders_apart_and_refuses_other_calls():
    a = np.ones(4, np.float32)
    keys = {_callsteps.key("conv", (x,), (), False, "zeros", "auto")
            for x in (a, a.astype(">f4"), a.astype(np.float64), a.astype(np.int64),
                      a.reshape(2, 2))}
    assert len(keys) == 5 and None not in keys
    for bad in [dict(flip=0), dict(padding_mode="reflect"), dict(padding_mode=np.str_("zeros")),
                dict(algorithm=np.str_("auto"))]:
        args = {**dict(flip=False, padding_mode="zeros", algorithm="auto"), **bad}
        assert _callsteps.key("conv", (a,), (), args["flip"], args["padding_mode"],
                              args["algorithm"]) is None
    for not_an_array in (list(a), np.ma.masked_array(a)):
        assert _callsteps.key("conv", (not_an_array,), (), False, "zeros", "auto") is None


def test_the_view_in_c_is_numpys_reshape_or_nothing():
    a = np.arange(24, dtype=np.float32).reshape(2, 3, 4)
    v = _callsteps.view_as(a, (2, 3, 1, 1, 4), np.dtype(np.float32))
    np.testing.assert_array_equal(v, a.reshape(2, 3, 1, 1, 4))
    assert np.shares_memory(v, a) and v.flags.writeable and v.flags.c_contiguous
    ro = a.copy()
    ro.flags.writeable = False
    assert not _callsteps.view_as(ro, (24,), np.dtype(np.float32)).flags.writeable
    unaligned = np.frombuffer(b"\0" + a.tobytes(), np.uint8)[1:].view(np.float32)
    for other, shape, dtype in [(a[:, ::2], (12,), np.float32), (a, (24,), np.float64),
                                (a, (5, 5), np.float32), (a, (-24, -1), np.float32),
                                (np.ma.masked_array(a), (24,), np.float32),
                                (unaligned, (24,), np.float32),
                                (a, [24], np.float32), (a, (np.int64(24),), np.float32),
                                (a, (24,), "float32")]:
        assert _callsteps.view_as(other, shape, dtype if isinstance(dtype, str)
                                  else np.dtype(dtype)) is None
