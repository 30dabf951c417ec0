"""Unbatched inputs (C, *spatial), as PyTorch takes them: the result is the batched call's on a
batch of one, without the batch axis; an int kernel_size on a 3-D array is refused as ambiguous;
a channels-last array gets a hint."""
import numpy as np
import pytest

import fastconv
from fastconv import nn
from fastconv import pooling as P


@pytest.mark.parametrize("nd", (1, 2, 3))
def test_convolutions_take_one_example(rng, nd):
    x = rng.standard_normal((3,) + (7, 6, 5)[:nd])
    w = rng.standard_normal((4, 3) + (3, 2, 2)[:nd])
    b = rng.standard_normal(4)
    y = fastconv.conv(x, w, b, padding=1)
    np.testing.assert_array_equal(y, fastconv.conv(x[None], w, b, padding=1)[0])
    gy = rng.standard_normal(y.shape)
    for shape in (x.shape, x.shape[1:]):
        np.testing.assert_array_equal(fastconv.conv_grad_input(gy, w, shape, padding=1),
                                      fastconv.conv_grad_input(gy[None], w, (1,) + x.shape,
                                                               padding=1)[0])
    for shape in (w.shape, w.shape[2:]):
        np.testing.assert_array_equal(fastconv.conv_grad_kernel(x, gy, shape, padding=1),
                                      fastconv.conv_grad_kernel(x[None], gy[None], w.shape,
                                                                padding=1))
    bt = b[:3]      # conv_transpose's bias: one per channel of x
    t = fastconv.conv_transpose(gy, w, bt, padding=1, output_shape=x.shape)
    assert t.shape == x.shape
    np.testing.assert_array_equal(t, fastconv.conv_transpose(gy[None], w, bt, padding=1)[0])
    named = getattr(fastconv, f"conv{nd}d")(x, w, b, padding=1)
    np.testing.assert_array_equal(named, y)


def test_bad_unbatched_shapes_name_the_argument(rng):
    x, w = rng.standard_normal((3, 8, 8)), rng.standard_normal((4, 3, 3, 3))
    with pytest.raises(ValueError, match=r"x must have 4 dimensions .* or 3"):
        fastconv.conv(x[0], w)
    with pytest.raises(ValueError, match="input_shape"):
        fastconv.conv_grad_input(np.ones((4, 6, 6)), w, (1, 3, 8, 8))
    with pytest.raises(ValueError, match=r"\bx\b.*\bgy\b"):
        fastconv.conv_grad_kernel(x, np.ones((1, 4, 6, 6)), w.shape)


def test_channels_last_gets_a_hint(rng):
    w = rng.standard_normal((4, 3, 3, 3))
    with pytest.raises(ValueError, match="channels-last.*moveaxis"):
        fastconv.conv(rng.standard_normal((2, 8, 8, 3)), w)
    with pytest.raises(ValueError, match="channels-last.*moveaxis"):
        nn.Conv2d(3, 4, 3)(rng.standard_normal((2, 8, 8, 3)))


def test_pooling_takes_one_example_when_the_kernel_says_how_many_axes(rng):
    x = rng.random((2, 6, 6))
    assert P.max_pool(x, (3, 3)).shape == (2, 2, 2)           # PyTorch's max_pool2d
    np.testing.assert_array_equal(P.max_pool(x, (3, 3)), P.max_pool(x[None], 3)[0])
    np.testing.assert_array_equal(P.avg_pool(x, 3, padding=(1, 1)),
                                  P.avg_pool(x[None], 3, padding=1)[0])
    assert P.max_pool(x, (3,)).shape == (2, 6, 2)             # a batch of 1-D signals
    y, idx = P.max_pool(x, (2, 2), return_indices=True)
    gx = P.max_pool_grad_input(np.ones(y.shape), x, (2, 2), indices=idx)
    assert gx.shape == x.shape
    assert P.avg_pool_grad_input(np.ones((2, 2, 2)), x.shape, (3, 3)).shape == x.shape
    assert P.adaptive_avg_pool(x, (2, 3)).shape == (2, 2, 3)
    assert P.lp_pool(x, 2, (2, 2)).shape == (2, 3, 3)
    assert P.max_pool(rng.random((2, 9)), 3).shape == (2, 3)  # 2-D: only unbatched 1-D


def test_an_int_kernel_on_a_3d_array_is_ambiguous():
    with pytest.raises(ValueError, match=r"ambiguous.*\(3,\) for 1-D or \(3, 3\) for 2-D"):
        P.max_pool(np.zeros((2, 6, 6)), 3)
    with pytest.raises(ValueError, match="output_size"):
        P.adaptive_max_pool(np.zeros((2, 6, 6)), 3)


@pytest.mark.parametrize("layer, shape", [
    (lambda: nn.Conv2d(3, 4, 3, padding=1), (3, 6, 5)),
    (lambda: nn.Conv1d(3, 4, 3), (3, 9)),
    (lambda: nn.ConvTranspose2d(3, 2, 3, stride=2), (3, 4, 4)),
    (lambda: nn.MaxPool2d(2), (3, 6, 4)),
    (lambda: nn.AvgPool1d(3), (3, 9)),
    (lambda: nn.AdaptiveAvgPool2d(2), (3, 6, 4)),
    (lambda: nn.LocallyConnected2d(3, 2, 3, input_size=(6, 5)), (3, 6, 5)),
])
def test_layers_take_one_example(rng, layer, shape):
    layer = layer()
    x = rng.standard_normal(shape)
    y = layer(x)
    gy = rng.standard_normal(y.shape)
    gx = layer.backward(gy)
    grads = {k: v.copy() for k, v in layer.grads.items()}
    layer.zero_grad()
    yb = layer(x[None])
    np.testing.assert_allclose(y, yb[0], rtol=1e-6)
    np.testing.assert_allclose(gx, layer.backward(gy[None])[0], rtol=1e-6)
    for k, v in layer.grads.items():
        np.testing.assert_allclose(grads[k], v, rtol=1e-6)


def test_dtype_rules_are_documented_and_alike(rng):
    x16 = rng.standard_normal((1, 3, 6, 6)).astype(np.float16)
    w32 = rng.standard_normal((4, 3, 3, 3)).astype(np.float32)
    assert fastconv.conv(x16, w32).dtype == np.float32
    assert fastconv.conv(x16, w32.astype(np.float16)).dtype == np.float32
    assert fastconv.conv(x16.astype(np.float64), w32).dtype == np.float64
    layer = nn.Conv2d(3, 4, 3, dtype=np.float32)
    assert layer(x16).dtype == np.float32
    assert layer(x16.astype(np.float64)).dtype == np.float64   # as conv(float64, float32)
