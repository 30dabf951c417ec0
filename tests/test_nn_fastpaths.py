"""The training step's shortcuts give what the plain paths give: backward_parameters (no input
gradient for the first layer), ReLU's bitwise backward, the spec cache."""
import numpy as np
import pytest

import fastconv
from fastconv import nn
from fastconv._geometry import make_spec


def _model(seed=0):
    return nn.Sequential(nn.Conv2d(1, 4, 3, padding=1, seed=seed), nn.ReLU(), nn.MaxPool2d(2),
                         nn.Flatten(), nn.Linear(4 * 3 * 3, 5, seed=seed))


def test_backward_parameters_matches_backward(rng):
    x = rng.standard_normal((3, 1, 6, 6)).astype(np.float32)
    gy = rng.standard_normal((3, 5)).astype(np.float32)
    a, b = _model(), _model()
    a(x)
    gx = a.backward(gy)
    b(x)
    assert b.backward_parameters(gy) is None
    assert gx.shape == x.shape
    for ga, gb in zip(a.gradients(), b.gradients()):
        np.testing.assert_array_equal(ga, gb)
    assert all(not m._cache for m in b.modules())


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_relu_backward_is_where(rng, dtype):
    x = rng.standard_normal((2, 3, 4, 5)).astype(dtype)
    x.flat[:3] = [np.nan, -0.0, 0.0]
    gy = rng.standard_normal(x.shape).astype(dtype)
    gy.flat[3:9] = [np.nan, np.inf, -np.inf, -0.0, np.nan, 1.0]
    gy0 = gy.copy()
    r = nn.ReLU()
    r(x)
    g = r.backward(gy)
    expected = np.where(x > 0, gy, 0).astype(dtype)
    assert g.dtype == dtype
    assert g.tobytes() == expected.tobytes()
    np.testing.assert_array_equal(gy, gy0)          # no write into the caller's gradient
    r(x)
    g = r.backward(gy[:, :, :, ::-1])                # not contiguous: the general path
    assert g.tobytes() == np.where(x > 0, gy[:, :, :, ::-1], 0).astype(dtype).tobytes()


def test_spec_cache_keeps_validation():
    f32 = np.dtype(np.float32)
    a = make_spec((2, 3, 8, 8), (4, 3, 3, 3), padding=1, dtype=f32)
    assert make_spec((2, 3, 8, 8), (4, 3, 3, 3), padding=1, dtype=f32) is a
    with pytest.raises(TypeError, match="padding"):
        make_spec((2, 3, 8, 8), (4, 3, 3, 3), padding=True, dtype=f32)
    with pytest.raises(TypeError, match="stride"):
        make_spec((2, 3, 8, 8), (4, 3, 3, 3), stride=(True, 1), dtype=f32)
    b = make_spec((2, 3, 8, 8), (4, 3, 3, 3), padding=[1, 1], dtype=f32)   # lists: not cached
    assert b == a
    with pytest.raises(ValueError, match="kernel"):
        make_spec((2, 3, 2, 2), (4, 3, 5, 5), dtype=f32)
    with pytest.raises(ValueError, match="kernel"):
        make_spec((2, 3, 2, 2), (4, 3, 5, 5), dtype=f32)
