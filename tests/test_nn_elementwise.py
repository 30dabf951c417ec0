"""fastconv.nn's element-wise passes on the compiled loops (src/_elementwise.pyx) give NumPy's
results bit for bit: ReLU as np.maximum(x, 0) with the mask x > 0 (NaN kept, -0.0 made +0.0), its
gradient as np.where(mask, gy, 0) (NaN and Inf of gy dropped where the mask is off), and the bias
gradient as the sum over the batch and space (to float rounding: the loops add in double
precision); the same at 1, 2 and 3 threads, past the size where they go parallel; arrays the
loops do not take (other dtypes, non-contiguous) go to NumPy."""
import numpy as np
import pytest

import fastconv
from fastconv import nn
from fastconv.nn import _elementwise

TRICKY = np.array([0.0, -0.0, 1.5, -2.0, np.inf, -np.inf, np.nan, 1e-45, -1e-45])


def _tricky(rng, shape, dtype):
    return rng.choice(TRICKY, size=shape).astype(dtype) * rng.random(shape).astype(dtype)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("shape", [(3, 5, 7), (2, 4, 300, 500), (0, 3)])
def test_relu_and_its_gradient_are_numpys(rng, dtype, shape, restore_settings):
    x = _tricky(rng, shape, dtype)
    gy = _tricky(rng, shape, dtype)
    x0, gy0 = x.copy(), gy.copy()
    want_y, want_gx = np.maximum(x, 0), np.where(x > 0, gy, 0).astype(dtype)
    results = []
    for threads in (1, 2, 3):
        fastconv.set_num_threads(threads)
        layer = nn.ReLU()
        y = layer(x)
        results.append((y, layer.backward(gy)))
    for y, gx in results:
        assert y.dtype == dtype and gx.dtype == dtype
        assert y.tobytes() == want_y.tobytes()
        assert gx.tobytes() == want_gx.tobytes()
    assert np.array_equal(x, x0, equal_nan=True) and np.array_equal(gy, gy0, equal_nan=True)


def test_relu_takes_what_the_loops_do_not(rng):
    """A transposed view, integers and float16 go to NumPy, with its results."""
    x = rng.standard_normal((40, 30)).astype(np.float32).T
    layer = nn.ReLU()
    assert np.array_equal(layer(x), np.maximum(x, 0))
    assert np.array_equal(layer.backward(np.ones((30, 40), np.float32)), (x > 0).astype(np.float32))
    for a in (np.arange(-3, 4), np.linspace(-1, 1, 9, dtype=np.float16)):
        assert np.array_equal(layer(a), np.maximum(a, 0))
        layer.backward(np.ones_like(a))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("shape", [(32, 16, 8, 8), (3, 5), (4, 3, 1001), (2, 6, 3, 4, 5),
                                   (0, 4, 3), (5, 0, 2)])
def test_the_bias_gradient_is_the_sum_over_batch_and_space(rng, dtype, shape, restore_settings):
    gy = rng.standard_normal(shape).astype(dtype) * 1e3
    want = gy.astype(np.float64).sum(axis=(0,) + tuple(range(2, gy.ndim)))
    results = []
    for threads in (1, 2, 3):
        fastconv.set_num_threads(threads)
        grad = np.full(shape[1], 0.5, dtype)
        _elementwise.add_bias_grad(grad, gy)
        results.append(grad)
    for grad in results:
        assert grad.dtype == dtype and grad.tobytes() == results[0].tobytes()
    tol = 1e-5 if dtype == np.float32 else 1e-12
    assert np.allclose(results[0], want + 0.5, rtol=tol, atol=tol * max(1.0, np.abs(gy).sum()))


def test_the_bias_gradient_takes_a_wider_output_gradient(rng):
    """A float64 gy into a float32 layer's gradient: NumPy's sum, cast as += casts it."""
    gy = rng.standard_normal((4, 3, 5, 5))
    grad = np.zeros(3, np.float32)
    _elementwise.add_bias_grad(grad, gy)
    assert np.allclose(grad, gy.sum(axis=(0, 2, 3)), rtol=1e-6)


def test_a_training_step_of_conv_relu_linear_matches_the_numpy_layers(rng):
    """The layers that now use the loops give the gradients of NumPy's passes."""
    model = nn.Sequential(nn.Conv2d(2, 4, 3, padding=1, seed=1), nn.ReLU(), nn.Flatten(),
                          nn.Linear(4 * 6 * 6, 3, seed=2))
    x = rng.standard_normal((5, 2, 6, 6)).astype(np.float32)
    gy = rng.standard_normal((5, 3)).astype(np.float32)
    model.zero_grad()
    model(x)
    model.backward(gy)
    conv, linear = model[0], model[3]
    h = np.maximum(fastconv.conv(x, conv.weight, padding=1) + conv.bias[:, None, None], 0)
    assert np.allclose(linear.grads["bias"], gy.sum(axis=0), rtol=1e-6)
    assert np.allclose(linear.grads["weight"], gy.T @ h.reshape(5, -1), rtol=1e-4, atol=1e-5)
    g_h = (gy @ linear.weight).reshape(h.shape) * (h > 0)
    assert np.allclose(conv.grads["bias"], g_h.sum(axis=(0, 2, 3)), rtol=1e-5, atol=1e-5)
