"""Prepared convolutions (fastconv.plan): the same numbers as the functions, bit for bit, under
every algorithm and geometry; ``out=`` written, never read; each call's arrays checked; the
choice made again when the chooser's state changes; and fastconv.nn's layers reusing them."""
import pickle
import threading

import numpy as np
import pytest

import fastconv
from fastconv import _prepared, nn

PROBLEMS = [
    ((2, 4, 9, 11), (6, 2, 3, 3), dict(stride=2, padding=1, groups=2)),
    ((2, 3, 17), (5, 3, 4), dict(dilation=2, padding="same")),
    ((1, 4, 5, 6, 7), (4, 1, 3, 3, 3), dict(groups=4, padding=1)),
    ((2, 3, 8, 8), (4, 3, 3, 3), dict(padding=1, padding_mode="reflect")),
    ((2, 3, 8, 8), (4, 3, 3, 3), dict(padding=(1, 2), padding_mode="circular", flip=True)),
    ((3, 2, 7, 5), (2, 2, 1, 1), {}),
    ((2, 1, 12, 12), (3, 1, 5, 5), dict(padding=2, flip=True)),
]


def _arrays(rng, x_shape, w_shape, dtype):
    x = rng.standard_normal(x_shape).astype(dtype)
    w = rng.standard_normal(w_shape).astype(dtype)
    return x, w, rng.standard_normal(w_shape[0]).astype(dtype)


def _poisoned(like):
    return np.full(like.shape, np.nan, like.dtype)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("x_shape, w_shape, kw", PROBLEMS)
@pytest.mark.parametrize("algorithm", ["auto"] + [a for a in fastconv.algorithms()
                                                  if a not in ("separable", "reference")])
def test_a_plan_computes_what_the_functions_compute(x_shape, w_shape, kw, dtype, algorithm):
    rng = np.random.default_rng(7)
    x, w, b = _arrays(rng, x_shape, w_shape, dtype)
    try:
        p = fastconv.plan(x_shape, w_shape, dtype=dtype, algorithm=algorithm, **kw)
        y = p.forward(x, w, b)
    except fastconv.NotSupportedError:
        with pytest.raises(fastconv.NotSupportedError):
            fastconv.conv(x, w, b, algorithm=algorithm, **kw)
        return
    expected = fastconv.conv(x, w, b, algorithm=algorithm, **kw)
    assert y.dtype == dtype and y.shape == p.y_shape
    np.testing.assert_array_equal(y, expected)
    out = _poisoned(expected)
    assert p.forward(x, w, b, out=out) is out
    np.testing.assert_array_equal(out, expected)

    gy = rng.standard_normal(p.y_shape).astype(dtype)
    gradients = {"grad_input": (lambda: fastconv.conv_grad_input(gy, w, x_shape,
                                                                 algorithm=algorithm, **kw),
                                lambda **o: p.grad_input(gy, w, **o)),
                 "grad_kernel": (lambda: fastconv.conv_grad_kernel(x, gy, w_shape,
                                                                   algorithm=algorithm, **kw),
                                 lambda **o: p.grad_kernel(x, gy, **o))}
    for function, prepared in gradients.values():
        try:
            expected = function()
        except fastconv.NotSupportedError:      # an operation the algorithm does not have
            with pytest.raises(fastconv.NotSupportedError):
                prepared()
            continue
        np.testing.assert_array_equal(prepared(), expected)
        out = _poisoned(expected)
        assert prepared(out=out) is out
        np.testing.assert_array_equal(out, expected)


def test_a_plan_agrees_with_the_reference():
    rng = np.random.default_rng(1)
    x, w, b = _arrays(rng, (2, 3, 10, 9), (4, 3, 3, 2), np.float64)
    p = fastconv.plan(x.shape, w.shape, stride=(2, 1), padding=1, dilation=(1, 2), dtype="float64")
    np.testing.assert_allclose(p.forward(x, w, b),
                               fastconv.reference.conv(x, w, b, stride=(2, 1), padding=1,
                                                       dilation=(1, 2)), rtol=1e-12, atol=1e-12)


def test_a_call_leaves_the_callers_arrays_alone_and_converts_what_casts_safely():
    rng = np.random.default_rng(2)
    x, w, _ = _arrays(rng, (2, 3, 8, 8), (4, 3, 3, 3), np.float32)
    p = fastconv.plan(x.shape, w.shape, padding=1, padding_mode="reflect")
    xs, ws = x.copy(), w.copy()
    wide = np.asfortranarray(x)                     # another layout: copied, same numbers
    np.testing.assert_array_equal(p.forward(wide, w), p.forward(x, w))
    np.testing.assert_array_equal(p.forward(x.astype(np.float16), w),
                                  fastconv.conv(x.astype(np.float16), w, padding=1,
                                                padding_mode="reflect"))
    small = np.round(x * 3).astype(np.int8)          # integers that float32 holds exactly
    np.testing.assert_array_equal(p.forward(small, w),
                                  p.forward(small.astype(np.float32), w))
    np.testing.assert_array_equal(x, xs)
    np.testing.assert_array_equal(w, ws)


def test_bad_arrays_get_clear_errors():
    p = fastconv.plan((2, 3, 8, 8), (4, 3, 3, 3), padding=1)
    x = np.zeros((2, 3, 8, 8), np.float32)
    w = np.zeros((4, 3, 3, 3), np.float32)
    with pytest.raises(ValueError, match=r"x must have shape \(2, 3, 8, 8\).*got \(2, 3, 8, 9\)"):
        p.forward(np.zeros((2, 3, 8, 9), np.float32), w)
    with pytest.raises(ValueError, match="w must have shape"):
        p.forward(x, w[:2])
    with pytest.raises(TypeError, match="x has dtype float64.*float32 plan"):
        p.forward(x.astype(np.float64), w)
    with pytest.raises(TypeError, match="gy must be a real numeric array"):
        p.grad_input(np.zeros((2, 4, 8, 8), complex), w)
    with pytest.raises(ValueError, match="bias must have shape"):
        p.forward(x, w, np.zeros(3, np.float32))
    with pytest.raises(TypeError, match="out must be a numpy.ndarray"):
        p.forward(x, w, out=[0.0])
    with pytest.raises(ValueError, match="out must have shape"):
        p.forward(x, w, out=np.zeros((2, 4, 8, 8), np.float64))
    with pytest.raises(ValueError, match="out must be C-contiguous"):
        p.forward(x, w, out=np.zeros((2, 4, 8, 16), np.float32)[..., ::2])
    readonly = np.zeros((2, 4, 8, 8), np.float32)
    readonly.flags.writeable = False
    with pytest.raises(ValueError, match="writeable"):
        p.forward(x, w, out=readonly)
    same = np.zeros((2, 3, 8, 8), np.float32)
    with pytest.raises(ValueError, match="out must not overlap gy"):
        fastconv.plan((2, 3, 8, 8), (3, 3, 3, 3), padding=1).grad_input(same, w[:3], out=same)


def test_bad_plans_get_clear_errors():
    with pytest.raises(TypeError, match="dtype must be float32 or float64"):
        fastconv.plan((1, 1, 8), (1, 1, 3), dtype="int32")
    with pytest.raises(ValueError, match="x_shape must be batched"):
        fastconv.plan((1, 8, 8), (1, 1, 3, 3))
    with pytest.raises(ValueError, match="groups=2 must divide"):
        fastconv.plan((1, 3, 8, 8), (2, 1, 3, 3), groups=2)
    with pytest.raises(ValueError, match="algorithm must be"):
        fastconv.plan((1, 1, 8), (1, 1, 3), algorithm="fastest")
    with pytest.raises(TypeError, match="x_shape must be a tuple of ints"):
        fastconv.plan("1, 1, 8", (1, 1, 3))
    with pytest.raises(fastconv.NotSupportedError):
        fastconv.plan((1, 2, 8, 8), (2, 1, 3, 3), groups=2, algorithm="winograd").forward(
            np.zeros((1, 2, 8, 8), np.float32), np.zeros((2, 1, 3, 3), np.float32))


def test_a_forced_kernel_dependent_algorithm_is_checked_against_each_kernel():
    p = fastconv.plan((1, 1, 16, 16), (1, 1, 3, 3), padding=1, algorithm="separable")
    x = np.random.default_rng(3).standard_normal((1, 1, 16, 16)).astype(np.float32)
    rank_one = np.outer([1.0, 2.0, 1.0], [1.0, 0.0, -1.0]).astype(np.float32)[None, None]
    np.testing.assert_array_equal(p.forward(x, rank_one),
                                  fastconv.conv(x, rank_one, padding=1, algorithm="separable"))
    with pytest.raises(fastconv.NotSupportedError):
        p.forward(x, np.eye(3, dtype=np.float32)[None, None])


def test_empty_problems_give_zeros_and_fill_out():
    p = fastconv.plan((0, 3, 8, 8), (4, 3, 3, 3))
    assert p.forward(np.zeros((0, 3, 8, 8), np.float32), np.ones((4, 3, 3, 3), np.float32)).shape \
        == (0, 4, 6, 6)
    q = fastconv.plan((2, 0, 8, 8), (4, 0, 3, 3))
    out = np.full((2, 4, 6, 6), np.nan, np.float32)
    q.forward(np.zeros((2, 0, 8, 8), np.float32), np.zeros((4, 0, 3, 3), np.float32),
              np.arange(4, dtype=np.float32), out=out)
    np.testing.assert_array_equal(out, np.broadcast_to(np.arange(4.0)[:, None, None], out.shape))


def test_the_choice_is_made_again_when_the_chooser_changes(restore_settings):
    x_shape, w_shape = (1, 2, 64, 64), (2, 2, 31, 31)      # a large kernel: fft with its spectra
    p = fastconv.plan(x_shape, w_shape, padding=15)
    first = p.algorithm_for("forward")
    assert first == fastconv.choose(x_shape, w_shape, padding=15)
    need = p.workspace("forward")
    assert need > 0
    fastconv.set_workspace_limit(max(need // 4, 1))
    assert p.algorithm_for("forward") == fastconv.choose(x_shape, w_shape, padding=15)
    rng = np.random.default_rng(4)
    x, w, _ = _arrays(rng, x_shape, w_shape, np.float32)
    np.testing.assert_array_equal(p.forward(x, w), fastconv.conv(x, w, padding=15))


def test_explain_shows_what_a_plan_runs():
    p = fastconv.plan((2, 3, 8, 8), (4, 3, 3, 3), padding=1, algorithm="direct")
    text = str(fastconv.explain(p))
    assert "this plan runs: forward direct, grad_input direct, grad_kernel direct" in text
    with pytest.raises(TypeError, match="takes no w_shape"):
        fastconv.explain(p, (4, 3, 3, 3))
    with pytest.raises(TypeError, match="needs x_shape and w_shape"):
        fastconv.explain((2, 3, 8, 8))


def test_a_plan_survives_pickling_and_threads():
    p = fastconv.plan((2, 3, 12, 12), (4, 3, 3, 3), padding=1)
    rng = np.random.default_rng(5)
    x, w, _ = _arrays(rng, (2, 3, 12, 12), (4, 3, 3, 3), np.float32)
    expected = fastconv.conv(x, w, padding=1)
    np.testing.assert_array_equal(p.forward(x, w), expected)
    np.testing.assert_array_equal(pickle.loads(pickle.dumps(p)).forward(x, w), expected)
    results, errors = [], []

    def work():
        try:
            for _ in range(20):
                results.append(np.array_equal(p.forward(x, w), expected))
        except Exception as exc:        # pragma: no cover - reported below
            errors.append(exc)
    threads = [threading.Thread(target=work) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors and len(results) == 60 and all(results)


# --- fastconv.nn keeps one plan per input shape, and never a stale kernel ----------------------

def test_a_layer_prepares_once_per_input_shape(monkeypatch):
    made = []
    real = _prepared.ConvPlan.__init__

    def counting(self, *args, **kwargs):
        made.append(args[0])
        real(self, *args, **kwargs)
    monkeypatch.setattr(_prepared.ConvPlan, "__init__", counting)
    layer = nn.Conv2d(3, 4, 3, padding=1, seed=0)
    rng = np.random.default_rng(6)
    for shape in [(2, 3, 8, 8)] * 3 + [(5, 3, 8, 8)] * 2 + [(2, 3, 8, 8)]:
        x = rng.standard_normal(shape).astype(np.float32)
        y = layer(x)
        layer.backward(np.ones_like(y))
    assert made == [(2, 3, 8, 8), (5, 3, 8, 8)]


@pytest.mark.parametrize("optimizer", ["sgd", "adam"])
def test_the_layer_computes_with_the_weights_the_optimizer_left(optimizer):
    rng = np.random.default_rng(8)
    model = nn.Sequential(nn.Conv2d(2, 3, 3, padding=1, seed=1), nn.ReLU(),
                          nn.Conv2d(3, 2, 3, padding=1, seed=2))
    opt = nn.SGD(model, lr=0.1, momentum=0.9) if optimizer == "sgd" else nn.Adam(model, lr=0.01)
    loss = nn.MSELoss()
    x = rng.standard_normal((4, 2, 6, 6)).astype(np.float32)
    target = rng.standard_normal((4, 2, 6, 6)).astype(np.float32)
    for _ in range(3):
        nn.train_step(model, x, target, loss, opt)
        first, second = model[0], model[2]
        expected = fastconv.conv(np.maximum(fastconv.conv(x, first.weight, first.bias, padding=1), 0),
                                 second.weight, second.bias, padding=1)
        model.eval()
        np.testing.assert_array_equal(model(x), expected)
        model.train()
    first.weight[...] = 0           # an edit by hand, outside any optimizer
    model.eval()
    np.testing.assert_array_equal(model(x)[:, 0], np.broadcast_to(
        fastconv.conv(np.maximum(first.bias, 0)[None, :, None, None] * np.ones((4, 3, 6, 6),
                                                                              np.float32),
                      second.weight, second.bias, padding=1)[:, 0], (4, 6, 6)))


def test_a_layer_with_a_plan_pickles_and_copies():
    import copy
    layer = nn.Conv1d(2, 3, 5, padding=2, seed=0)
    x = np.random.default_rng(9).standard_normal((2, 2, 20)).astype(np.float32)
    y = layer(x)
    for clone in (pickle.loads(pickle.dumps(layer)), copy.deepcopy(layer)):
        np.testing.assert_array_equal(clone(x), y)


@pytest.mark.parametrize("layer_type, shape, kw", [
    (nn.ConvTranspose2d, (2, 4, 5, 6), dict(stride=2, padding=1, output_padding=1)),
    (nn.ConvTranspose1d, (3, 4, 9), dict(stride=3, groups=2, dilation=2)),
])
def test_a_transpose_layer_plans_its_later_calls_and_keeps_the_functions_numbers(
        layer_type, shape, kw):
    layer = layer_type(4, 6, 3, seed=0, **kw)
    g = dict(stride=layer.stride, padding=layer.padding, dilation=layer.dilation,
             groups=layer.groups)
    rng = np.random.default_rng(10)
    for _ in range(3):                  # the first call checks and plans, the others run the plan
        x = rng.standard_normal(shape).astype(np.float32)
        y = layer(x)
        expected = fastconv.conv_transpose(x, layer.weight, layer.bias,
                                           output_shape=y.shape[2:], **g)
        np.testing.assert_array_equal(y, expected)
        gy = rng.standard_normal(y.shape).astype(np.float32)
        layer.zero_grad()
        gx = layer.backward(gy)
        np.testing.assert_array_equal(gx, fastconv.conv(gy, layer.weight, **g))
        np.testing.assert_array_equal(layer.grads["weight"],
                                      fastconv.conv_grad_kernel(gy, x, layer.weight.shape, **g))
    assert len(layer._plans) == 1


def test_explain_names_a_forced_kernel_dependent_algorithm():
    p = fastconv.plan((1, 1, 16, 16), (1, 1, 3, 3), padding=1, algorithm="separable")
    assert "this plan runs: forward separable" in str(fastconv.explain(p))


# --- property: any geometry, any values (extremes included), the functions' numbers ------------

from hypothesis import given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

VALUES = st.sampled_from([0.0, -0.0, 1.0, -2.5, 1e-38, 3e38, -3e38, np.inf, -np.inf, np.nan])


@st.composite
def _problems(draw):
    nd = draw(st.integers(1, 3))
    groups = draw(st.sampled_from((1, 2)))
    c, k = groups * draw(st.integers(1, 2)), groups * draw(st.integers(1, 2))
    kernel = tuple(draw(st.integers(1, 3)) for _ in range(nd))
    stride = tuple(draw(st.integers(1, 2)) for _ in range(nd))
    dilation = tuple(draw(st.integers(1, 2)) for _ in range(nd))
    size = tuple(draw(st.integers((q - 1) * d + 1, 7)) for q, d in zip(kernel, dilation))
    padding = draw(st.sampled_from((0, 1, "same")))
    mode = draw(st.sampled_from(("zeros", "zeros", "reflect", "circular")))
    if mode != "zeros" and padding != 0:
        lo = max(1, (max(kernel) - 1) // 2)
        if min(size) <= lo:
            mode = "zeros"
    x_shape = (draw(st.integers(1, 2)), c) + size
    w_shape = (k, c // groups) + kernel
    dtype = draw(st.sampled_from((np.float32, np.float64)))
    extreme = draw(st.booleans())
    return x_shape, w_shape, dict(stride=stride, dilation=dilation, groups=groups,
                                  padding=padding, padding_mode=mode,
                                  flip=draw(st.booleans())), dtype, extreme


@settings(max_examples=40, deadline=None)
@given(_problems(), st.data())
def test_any_plan_computes_what_the_functions_compute(problem, data):
    x_shape, w_shape, kw, dtype, extreme = problem
    try:
        p = fastconv.plan(x_shape, w_shape, dtype=dtype, **kw)
    except ValueError:              # a geometry the functions refuse too (padding vs mode)
        with pytest.raises(ValueError):
            fastconv.conv(np.zeros(x_shape, dtype), np.zeros(w_shape, dtype), **kw)
        return
    rng = np.random.default_rng(data.draw(st.integers(0, 2**32 - 1)))
    x = rng.standard_normal(x_shape).astype(dtype)
    w = rng.standard_normal(w_shape).astype(dtype)
    gy = rng.standard_normal(p.y_shape).astype(dtype)
    if extreme:                     # a few extreme values where the drawn positions fall
        for a in (x, w, gy):
            a.reshape(-1)[data.draw(st.integers(0, a.size - 1))] = data.draw(VALUES)
    with np.errstate(all="ignore"):
        np.testing.assert_array_equal(p.forward(x, w), fastconv.conv(x, w, **kw))
        np.testing.assert_array_equal(p.grad_input(gy, w),
                                      fastconv.conv_grad_input(gy, w, x_shape, **kw))
        np.testing.assert_array_equal(p.grad_kernel(x, gy),
                                      fastconv.conv_grad_kernel(x, gy, w_shape, **kw))
