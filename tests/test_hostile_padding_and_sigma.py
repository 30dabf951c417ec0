"""Issue 17, item 6 (part): values that used to escape as the wrong exception or as NaN.

An empty spatial axis padded with ``padding_mode="replicate"`` or ``"circular"`` raised IndexError
(after a divide-by-zero warning): there is nothing to copy into the padding, so it is a ValueError
naming padding_mode and the axis. ``weighted_avg_pool(x, 3, sigma=1e-300)`` returned all NaN (every
weight underflowed to 0, then 0 / 0): a tiny sigma must give its limit, each window's element(s)
nearest the centre.
"""
import warnings

import numpy as np
import pytest

import fastconv
from fastconv import pooling

MODES = ("replicate", "circular", "reflect")


def _calls(mode, x_shape, gy_shape, padding):
    w = np.ones((1, 1, 1, 1))
    return {
        "conv": lambda: fastconv.conv(np.ones(x_shape), w, padding=padding, padding_mode=mode),
        "conv_grad_input": lambda: fastconv.conv_grad_input(np.ones(gy_shape), w, x_shape,
                                                            padding=padding, padding_mode=mode),
        "conv_grad_kernel": lambda: fastconv.conv_grad_kernel(np.ones(x_shape), np.ones(gy_shape),
                                                              w.shape, padding=padding,
                                                              padding_mode=mode),
    }


@pytest.mark.parametrize("operation", ("conv", "conv_grad_input", "conv_grad_kernel"))
@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("x_shape,gy_shape,padding,axis", [
    ((1, 1, 0, 5), (1, 1, 2, 7), 1, 0),
    ((2, 1, 5, 0), (2, 1, 5, 2), ((0, 0), (1, 1)), 1),
    ((1, 1, 4, 0), (1, 1, 4, 1), ((0, 0), (0, 1)), 1),
])
def test_padding_an_empty_axis_by_copying_is_a_value_error(operation, mode, x_shape, gy_shape,
                                                           padding, axis):
    with warnings.catch_warnings():
        warnings.simplefilter("error")          # no divide-by-zero warning on the way
        with pytest.raises(ValueError) as info:
            _calls(mode, x_shape, gy_shape, padding)[operation]()
    message = str(info.value)
    assert "padding_mode" in message and repr(mode) in message, message
    assert f"spatial axis {axis}" in message and "size 0" in message, message


def test_zero_padding_of_an_empty_axis_stays_valid():
    y = fastconv.conv(np.ones((1, 1, 0, 5)), np.ones((1, 1, 1, 1)), padding=1)
    assert y.shape == (1, 1, 2, 7) and not y.any()


@pytest.mark.parametrize("sigma", (1e-300, 5e-324, 1e-30))
@pytest.mark.parametrize("dtype", (np.float32, np.float64))
def test_a_tiny_sigma_picks_the_centre_of_each_window(sigma, dtype):
    """Odd windows: exactly the centre element (stride 3 over 9 and 8 elements: centres 1, 4, 7
    and 1, 4)."""
    x = np.random.default_rng(5).standard_normal((2, 3, 9, 8)).astype(dtype)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        y = pooling.weighted_avg_pool(x, 3, sigma=sigma)
        gx = pooling.weighted_avg_pool_grad_input(np.ones_like(y), x.shape, 3, sigma=sigma)
    assert y.dtype == dtype
    assert np.array_equal(y, x[:, :, 1::3, 1:7:3])
    expected = np.zeros_like(x)
    expected[:, :, 1::3, 1:7:3] = 1
    assert np.array_equal(gx, expected)


def test_a_tiny_sigma_averages_the_two_centres_of_an_even_window():
    x = np.random.default_rng(6).standard_normal((1, 2, 8))
    y = pooling.weighted_avg_pool(x, (4,), sigma=1e-300)
    expected = (x[:, :, 1::4] + x[:, :, 2::4]) / 2
    np.testing.assert_allclose(y, expected, rtol=1e-15)


def test_a_tiny_sigma_takes_the_nearest_element_when_the_centre_is_padding():
    """Window 4, stride 4, padding 2 on 1..8: windows (-2..1), (2..5), (6..9), centres -0.5, 3.5
    and 7.5; the nearest elements inside the input are 0, (3, 4) and 7."""
    x = np.arange(1.0, 9.0)[None, None]
    y = pooling.weighted_avg_pool(x, (4,), 4, 2, sigma=1e-300)
    assert np.array_equal(y, [[[1.0, 4.5, 8.0]]])


def test_a_huge_sigma_is_the_plain_average():
    x = np.random.default_rng(7).standard_normal((1, 1, 9))
    np.testing.assert_allclose(pooling.weighted_avg_pool(x, (3,), sigma=1e300),
                               x.reshape(1, 1, 3, 3).mean(axis=-1), rtol=1e-14)


@pytest.mark.parametrize("sigma", (0.0, -1.0, float("nan"), float("inf"), -0.0))
def test_a_sigma_that_is_not_positive_and_finite_is_refused(sigma):
    with pytest.raises(ValueError, match="sigma"):
        pooling.weighted_avg_pool(np.ones((1, 1, 6)), (3,), sigma=sigma)
