"""fastconv.pooling.plan (issue 13): prepared max and average pools give the pooling functions'
results bitwise, write caller buffers completely, and refuse bad arrays and buffers by name."""
import pickle

import numpy as np
import pytest

import fastconv
from fastconv import nn
from fastconv import pooling as P

DTYPES = (np.float32, np.float64)

# (spatial size, kernel, stride, padding, dilation, ceil_mode); one int means every axis.
WINDOWS = [
    ((7, 6, 5), 2, None, 0, 1, False),       # the default stride, non-overlapping windows
    ((6, 5, 4), 3, 1, 1, 1, False),          # overlapping windows, padding
    ((7, 6, 5), 2, 3, 1, 1, False),          # stride > kernel: elements in no window
    ((7, 6, 5), 3, 2, 1, 1, True),           # ceil_mode: a partial window at the edge
    ((8, 5, 6), (3, 2, 1), (2, 1, 3), (1, 1, 0), 1, True),
    ((9, 7, 6), 3, 2, 1, 2, False),          # dilation (max only)
    ((9, 7, 6), (2, 3, 2), 2, (1, 0, 1), (3, 1, 2), True),
]


@pytest.fixture(autouse=True)
def serial(restore_settings):
    fastconv.set_num_threads(1)


def _cut(value, nd):
    return value[:nd] if isinstance(value, tuple) else value


def _args(window, nd):
    """(spatial sizes, kernel as a tuple (so the number of axes is never ambiguous), stride,
    padding, dilation, ceil_mode) for `nd` spatial axes."""
    n, k, s, p, d, ceil = window
    k = k[:nd] if isinstance(k, tuple) else (k,) * nd
    return n[:nd], k, _cut(s, nd), _cut(p, nd), _cut(d, nd), ceil


def _same(a, b):
    a, b = np.asarray(a), np.asarray(b)
    assert a.dtype == b.dtype and a.shape == b.shape
    assert a.tobytes() == b.tobytes()


def _poisoned(shape, dtype):
    return np.full(shape, -12345 if np.dtype(dtype).kind == "i" else np.nan, dtype=dtype)


# --- the same results as the functions -------------------------------------------------------

@pytest.mark.parametrize("unbatched", (False, True), ids=("batched", "unbatched"))
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("window", WINDOWS)
@pytest.mark.parametrize("nd", (1, 2, 3))
def test_max_plan_equals_max_pool(rng, nd, window, dtype, unbatched):
    n, k, s, p, d, ceil = _args(window, nd)
    shape = ((3,) if unbatched else (2, 3)) + n
    x = np.round(rng.standard_normal(shape) * 2).astype(dtype)          # many ties
    plan = P.plan("max", shape, k, s, p, d, ceil, dtype=dtype)
    y, idx = P.max_pool(x, k, s, p, d, ceil, return_indices=True)
    assert plan.y_shape == y.shape and plan.x_shape == shape and plan.dtype == dtype
    _same(plan.forward(x), y)
    got_y, got_idx = plan.forward(x, return_indices=True)
    _same(got_y, y)
    _same(got_idx, idx)
    gy = rng.standard_normal(y.shape).astype(dtype)
    gx = P.max_pool_grad_input(gy, x, k, s, p, d, ceil, indices=idx)
    _same(plan.grad_input(gy, indices=idx), gx)
    _same(plan.grad_input(gy, x=x), P.max_pool_grad_input(gy, x, k, s, p, d, ceil))
    # into caller buffers poisoned with NaN (and indices with a sentinel): every element written
    out, indices_out, gx_out = (_poisoned(y.shape, dtype), _poisoned(y.shape, np.int64),
                                _poisoned(shape, dtype))
    r = plan.forward(x, return_indices=True, out=out, indices_out=indices_out)
    assert r[0] is out and r[1] is indices_out
    _same(out, y)
    _same(indices_out, idx)
    assert plan.grad_input(gy, indices=idx, out=gx_out) is gx_out
    _same(gx_out, gx)


@pytest.mark.parametrize("unbatched", (False, True), ids=("batched", "unbatched"))
@pytest.mark.parametrize("count_include_pad", (True, False))
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("window", [w for w in WINDOWS if w[4] == 1])
@pytest.mark.parametrize("nd", (1, 2, 3))
def test_avg_plan_equals_avg_pool(rng, nd, window, dtype, count_include_pad, unbatched):
    n, k, s, p, _, ceil = _args(window, nd)
    shape = ((3,) if unbatched else (2, 3)) + n
    x = rng.standard_normal(shape).astype(dtype)
    plan = P.plan("avg", shape, k, s, p, ceil_mode=ceil, count_include_pad=count_include_pad,
                  dtype=dtype)
    y = P.avg_pool(x, k, s, p, ceil, count_include_pad)
    _same(plan.forward(x), y)
    gy = rng.standard_normal(y.shape).astype(dtype)
    gx = P.avg_pool_grad_input(gy, shape, k, s, p, ceil, count_include_pad)
    _same(plan.grad_input(gy), gx)
    _same(plan.grad_input(gy, x=x), gx)
    out, gx_out = _poisoned(y.shape, dtype), _poisoned(shape, dtype)
    assert plan.forward(x, out=out) is out
    _same(out, y)
    assert plan.grad_input(gy, out=gx_out) is gx_out
    _same(gx_out, gx)


@pytest.mark.parametrize("kind", ("max", "avg"))
def test_identity_pool_copies_into_out(rng, kind):
    """Kernel 1, stride 1: no pass to make; the result is still a new array (or out)."""
    x = rng.standard_normal((2, 3, 5))
    plan = P.plan(kind, x.shape, (1,), dtype=np.float64)
    y = plan.forward(x)
    _same(y, x)
    assert not np.shares_memory(y, x)
    out = _poisoned(x.shape, np.float64)
    plan.forward(x, out=out)
    _same(out, x)


def test_converted_and_strided_inputs(rng):
    """Another dtype that casts safely is converted, a strided array copied; results as the
    functions give for the converted array."""
    base = rng.standard_normal((3, 4, 12, 10))
    x = base[::2, :, ::-1, 1::2]                          # (2, 4, 12, 5), odd strides
    plan = P.plan("max", x.shape, (3, 2), 2, 1, dtype=np.float64)
    _same(plan.forward(x), P.max_pool(np.ascontiguousarray(x), (3, 2), 2, 1))
    x16 = x.astype(np.float16)
    plan32 = P.plan("max", x.shape, (3, 2), 2, 1, dtype=np.float32)
    _same(plan32.forward(x16), P.max_pool(x16, (3, 2), 2, 1))
    xi = (x * 10).astype(np.int32)
    _same(plan.forward(xi), P.max_pool(xi, (3, 2), 2, 1))
    _same(plan.forward(x.tolist()), P.max_pool(x, (3, 2), 2, 1))
    y, idx = plan.forward(x, return_indices=True)
    gy = rng.standard_normal(y.shape)
    expected = P.max_pool_grad_input(gy, x, (3, 2), 2, 1, indices=idx)
    _same(plan.grad_input(np.asfortranarray(gy), indices=idx.astype(np.int32)), expected)
    _same(plan.grad_input(gy, indices=idx.tolist()), expected)


# --- what every pooling function also promises --------------------------------------------------

def _plan_results(x, gy):
    mx = P.plan("max", x.shape, 3, 2, 1, dtype=x.dtype)
    av = P.plan("avg", x.shape, 3, 2, 1, dtype=x.dtype)
    y, idx = mx.forward(x, return_indices=True)
    return (y, idx, mx.grad_input(gy, indices=idx), mx.grad_input(gy, x=x), av.forward(x),
            av.grad_input(gy))


@pytest.mark.parametrize("shape", ((2, 4, 9, 7), (1, 2, 11, 6)))
def test_thread_count_does_not_change_results(rng, shape):
    x = rng.standard_normal(shape).astype(np.float32)
    gy = rng.standard_normal(P.max_pool(x, 3, 2, 1).shape).astype(np.float32)
    fastconv.set_num_threads(1)
    one = _plan_results(x, gy)
    fastconv.set_num_threads(2)
    for a, b in zip(one, _plan_results(x, gy)):
        _same(a, b)


def test_inputs_are_never_written(rng):
    x = rng.standard_normal((2, 4, 9, 7)).astype(np.float32)
    gy = rng.standard_normal(P.max_pool(x, 3, 2, 1).shape).astype(np.float32)
    before = x.copy(), gy.copy()
    x.setflags(write=False)
    gy.setflags(write=False)
    for r in _plan_results(x, gy):
        assert not np.shares_memory(r, x) and not np.shares_memory(r, gy)
    _same(x, before[0])
    _same(gy, before[1])


def test_empty_batch_gives_empty_result():
    x = np.zeros((0, 4, 9, 7), np.float32)
    for r in _plan_results(x, np.zeros((0, 4, 5, 4), np.float32)):
        assert r.size == 0 and r.shape[0] == 0


def test_plans_pickle_and_copy(rng):
    """A model sent to dask workers carries its layers' plans."""
    x = rng.standard_normal((2, 3, 6, 6))
    for plan in (P.plan("max", x.shape, 2, dtype=np.float64),
                 P.plan("avg", (3, 6, 6), (3, 3), 2, 1, count_include_pad=False,
                        dtype=np.float64)):
        again = pickle.loads(pickle.dumps(plan))
        assert repr(again) == repr(plan)
        xs = x if len(plan.x_shape) == 4 else x[0]
        _same(again.forward(xs), plan.forward(xs))


# --- bad arguments --------------------------------------------------------------------------

X = np.zeros((2, 4, 6, 6))
MAX = P.plan("max", X.shape, 2, dtype=np.float64)
AVG = P.plan("avg", X.shape, 2, dtype=np.float64)
GY = np.zeros((2, 4, 3, 3))
IDX = MAX.forward(X, return_indices=True)[1]

BAD_PLANS = [
    (lambda: P.plan(1, X.shape, 2), TypeError, "kind"),
    (lambda: P.plan("min", X.shape, 2), ValueError, "kind"),
    (lambda: P.plan("max", X.shape, 2, dtype=np.int32), TypeError, "dtype"),
    (lambda: P.plan("max", X.shape, 2, dtype="float128x"), TypeError, "dtype"),
    (lambda: P.plan("max", 6, 2), TypeError, "x_shape"),
    (lambda: P.plan("max", (2, 4, 6.0, 6), 2), TypeError, "x_shape"),
    (lambda: P.plan("max", (2, 4, -6, 6), 2), ValueError, "x_shape"),
    (lambda: P.plan("max", (4, 6, 6), 2), ValueError, "ambiguous"),
    (lambda: P.plan("max", (6,), 2), ValueError, "x_shape"),
    (lambda: P.plan("max", (1, 2, 3, 4, 5, 6), 2), ValueError, "x_shape"),
    (lambda: P.plan("max", X.shape, (2, 2, 2, 2, 2)), ValueError, "x_shape"),
    (lambda: P.plan("max", X.shape, 0), ValueError, "kernel_size"),
    (lambda: P.plan("max", X.shape, 7), ValueError, "kernel_size"),
    (lambda: P.plan("max", X.shape, 2, 0), ValueError, "stride"),
    (lambda: P.plan("max", X.shape, 3, 1, 2), ValueError, "padding"),
    (lambda: P.plan("max", X.shape, 2, ceil_mode=1), TypeError, "ceil_mode"),
    (lambda: P.plan("avg", X.shape, 2, dilation=2), ValueError, "dilation"),
    (lambda: P.plan("avg", X.shape, 2, count_include_pad=None), TypeError, "count_include_pad"),
]

BAD_CALLS = [
    (lambda: MAX.forward(np.zeros((2, 4, 6, 7))), ValueError,
     r"x must have shape \(2, 4, 6, 6\).*got \(2, 4, 6, 7\)"),
    (lambda: MAX.forward(X.astype(np.complex128)), TypeError, "x has dtype complex128"),
    (lambda: P.plan("max", X.shape, 2).forward(X), TypeError, "x has dtype float64.*float32"),
    (lambda: MAX.forward([[1, 2], [3]]), TypeError, "x"),
    (lambda: MAX.forward(X, return_indices="yes"), TypeError, "return_indices"),
    (lambda: MAX.forward(X, indices_out=np.zeros(GY.shape, np.int64)), ValueError, "indices_out"),
    (lambda: MAX.grad_input(np.zeros((2, 4, 3, 2)), indices=IDX), ValueError,
     r"gy must have shape \(2, 4, 3, 3\).*got \(2, 4, 3, 2\)"),
    (lambda: MAX.grad_input(GY), ValueError, "indices= .* or x="),
    (lambda: MAX.grad_input(GY, x=np.zeros((2, 4, 6, 5))), ValueError, "x must have shape"),
    (lambda: MAX.grad_input(GY, indices=IDX[:, :2]), ValueError, "indices must have shape"),
    (lambda: MAX.grad_input(GY, indices=IDX.astype(float)), TypeError, "indices"),
    (lambda: MAX.grad_input(GY, indices=IDX.astype(bool)), TypeError, "indices"),
    (lambda: MAX.grad_input(GY, indices=IDX.astype(np.uint64)), TypeError, "indices"),
    (lambda: MAX.grad_input(GY, indices="0"), TypeError, "indices"),
    (lambda: MAX.grad_input(GY, indices=np.full(GY.shape, 36)), ValueError,
     r"indices must lie in \[0, 36\)"),
    (lambda: MAX.grad_input(GY, indices=np.full(GY.shape, -2)), ValueError, "indices must lie"),
    (lambda: AVG.grad_input(GY, indices=IDX), ValueError, "indices"),
    (lambda: AVG.grad_input(GY, x=np.zeros((2, 4, 6))), ValueError, "x must have shape"),
    (lambda: AVG.forward(np.zeros((2, 4, 6))), ValueError, "x must have shape"),
]


def _forward_into_overlap():
    """An out that shares its first element with x's last."""
    buf = np.zeros(X.size + GY.size - 1)
    return MAX.forward(buf[:X.size].reshape(X.shape), out=buf[X.size - 1:].reshape(GY.shape))


BAD_OUTS = [
    (lambda: MAX.forward(X, out=GY.tolist()), TypeError, "out must be a numpy.ndarray"),
    (lambda: MAX.forward(X, out=GY.astype(np.float32)), TypeError, "out must have dtype"),
    (lambda: MAX.forward(X, out=np.zeros((2, 4, 3, 4))), ValueError, "out must have shape"),
    (lambda: MAX.forward(X, out=np.zeros((2, 4, 3, 6))[..., ::2]), ValueError, "C-contiguous"),
    (lambda: MAX.forward(X, out=np.broadcast_to(0.0, GY.shape)), ValueError, "out"),
    (lambda: _forward_into_overlap(), ValueError, "out shares memory with x"),
    (lambda: MAX.forward(X, return_indices=True, indices_out=np.zeros(GY.shape, np.int32)),
     TypeError, "indices_out must have dtype"),
    (lambda: MAX.grad_input(GY, indices=IDX, out=np.zeros((2, 4, 6, 5))), ValueError,
     "out must have shape"),
    (lambda: MAX.grad_input(GY, indices=IDX, out=X.astype(np.float32)), TypeError, "out"),
    (lambda: AVG.grad_input(GY, out=np.zeros(X.shape)[::-1]), ValueError, "C-contiguous"),
    (lambda: AVG.forward(X, out=X), ValueError, "out must have shape"),
    (lambda: P.plan("avg", X.shape, 1, dtype=np.float64).forward(X, out=X), ValueError,
     "out shares memory with x"),
]


def _read_only_out():
    out = np.zeros(GY.shape)
    out.setflags(write=False)
    return out


BAD_OUTS.append((lambda: MAX.forward(X, out=_read_only_out()), ValueError, "writeable"))


@pytest.mark.parametrize("call,error,match", BAD_PLANS + BAD_CALLS + BAD_OUTS)
def test_bad_arguments_raise_naming_them(call, error, match):
    with pytest.raises(error, match=match):
        call()


def test_indices_out_sharing_memory_with_out_is_refused():
    buf = np.zeros(GY.size * 2)
    with pytest.raises(ValueError, match="indices_out shares memory with out"):
        MAX.forward(X, return_indices=True, out=buf[:GY.size].reshape(GY.shape),
                    indices_out=buf.view(np.int64)[:GY.size].reshape(GY.shape))


@pytest.mark.parametrize("position", (0, 40, -1))
def test_an_index_out_of_range_anywhere_is_reported(rng, position):
    """The range is checked inside the scatter: a bad index in the first, a middle or the last
    plane raises the functions' ValueError, from the plan and from max_pool_grad_input."""
    x = rng.standard_normal((3, 5, 8, 8))
    gy = rng.standard_normal((3, 5, 4, 4))
    plan = P.plan("max", x.shape, 2, dtype=np.float64)
    _, idx = plan.forward(x, return_indices=True)
    for bad in (64, -2, 2**40):
        wrong = idx.copy()
        wrong.flat[position] = bad
        with pytest.raises(ValueError, match=r"indices must lie in \[0, 64\)"):
            plan.grad_input(gy, indices=wrong)
        with pytest.raises(ValueError, match=r"indices must lie in \[0, 64\)"):
            P.max_pool_grad_input(gy, x, 2, indices=wrong)
    with pytest.raises(ValueError, match="indices must lie"):       # beyond int64 (uint64)
        P.max_pool_grad_input(gy, x, 2, indices=np.full(gy.shape, 2**64 - 1, np.uint64))
    empty = idx.copy()
    empty.flat[position] = -1                       # a window with no element routes nothing
    expected = P.max_pool_grad_input(gy, x, 2, indices=idx)
    o = position % idx.size                         # windows do not overlap: one gy per element
    expected.flat[idx.flat[o] + (o // 16) * 64] = 0
    _same(plan.grad_input(gy, indices=empty), expected)


# --- the layers run on plans ---------------------------------------------------------------

@pytest.mark.parametrize("layer,kind", ((nn.MaxPool2d(3, 2, 1), "max"),
                                        (nn.AvgPool2d(3, 2, 1, count_include_pad=False), "avg")))
def test_layers_prepare_once_per_shape_and_dtype(rng, layer, kind):
    x = rng.standard_normal((2, 3, 9, 7)).astype(np.float32)
    layer._plans = {}
    for _ in range(3):
        y = layer(x)
        gx = layer.backward(np.ones_like(y))
    assert len(layer._plans) == 1
    fn = (P.max_pool if kind == "max" else P.avg_pool)
    geometry = dict(count_include_pad=False) if kind == "avg" else {}
    _same(y, fn(x, 3, 2, 1, **geometry))
    if kind == "max":
        _same(gx, P.max_pool_grad_input(np.ones_like(y), x, 3, 2, 1))
    else:
        _same(gx, P.avg_pool_grad_input(np.ones_like(y), x.shape, 3, 2, 1, **geometry))
    layer(x)                                        # a float64 gradient into a float32 layer:
    gy = rng.standard_normal(y.shape)               # float64, as the functions give
    g64 = layer.backward(gy)
    assert g64.dtype == np.float64
    if kind == "max":
        _same(g64, P.max_pool_grad_input(gy, x, 3, 2, 1))
    for n in range(2 * layer.PLANS_KEPT):           # a layer fed many shapes keeps a few plans
        layer(np.zeros((1, 3, 5 + n, 7), np.float32))
    assert len(layer._plans) == layer.PLANS_KEPT
    layer.clear_cache()
    unbatched = layer(x[0])                         # one example (C, H, W): a batch of one
    _same(unbatched, fn(x[:1], 3, 2, 1, **geometry)[0])
    assert layer.backward(np.ones_like(unbatched)).shape == x[0].shape


def test_layer_whose_geometry_is_reset_prepares_again(rng):
    layer = nn.MaxPool2d(2)
    x = rng.standard_normal((2, 3, 8, 8))
    layer(x)
    layer.stride = 1
    _same(layer(x), P.max_pool(x, 2, 1))


def test_max_layer_keeps_no_input(rng):
    """The backward needs only the forward's indices and plan, not x."""
    layer = nn.MaxPool2d(2)
    x = rng.standard_normal((2, 3, 8, 8))
    layer(x)
    assert not any(a is x for entry in layer._cache for a in entry)
