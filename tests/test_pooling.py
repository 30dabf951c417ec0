"""fastconv.pooling against the plain-loop reference, PyTorch, finite differences and adjoints."""
import numpy as np
import pytest
from hypothesis import given, strategies as st

import fastconv
from fastconv import pooling as P
from fastconv import reference as R

DTYPES = (np.float32, np.float64)
# The pooling functions; their prepared forms (plan) have these tests in test_pooling_prepared.py.
FUNCTIONS = sorted(set(P.__all__) - {"plan"})


@pytest.fixture(autouse=True)
def serial(restore_settings):
    """One thread, except where a test asks for more. These problems are tiny, and on a loaded
    machine every parallel region waits out a time slice at its barrier (minutes over the whole
    file). The parallel paths are covered by test_thread_count_does_not_change_results: bitwise
    equal to the serial ones, which are checked against the reference here."""
    fastconv.set_num_threads(1)

# (spatial size, kernel, stride, padding, dilation, ceil_mode); one int means every axis.
WINDOWS = [
    ((6, 5, 4), 3, 1, 1, 1, False),          # stride < kernel, padding
    ((7, 6, 5), 2, 2, 0, 1, False),          # stride == kernel
    ((7, 6, 5), 2, 3, 1, 1, False),          # stride > kernel
    ((7, 6, 5), 3, 2, 1, 1, True),           # ceil_mode: a partial window at the edge
    ((8, 5, 6), (3, 2, 1), (2, 1, 3), (1, 1, 0), 1, True),
    ((9, 7, 6), 3, 2, 1, 2, False),          # dilation (max only)
    ((9, 7, 6), (2, 3, 2), 2, (1, 0, 1), (3, 1, 2), True),
]


def _cut(value, nd):
    """One value per axis; an int stays an int where it is not ambiguous (an int kernel_size on a
    3-D array, a batch of 1-D signals or one 2-D example, is refused)."""
    if isinstance(value, tuple):
        return value[:nd]
    return (value,) if nd == 1 and isinstance(value, int) else value


def _case(window, nd):
    n, k, s, p, d, ceil = window
    return n[:nd], _cut(k, nd), _cut(s, nd), _cut(p, nd), _cut(d, nd), ceil


def _k(x, value):
    """`value` once per spatial axis of x (or of the shape x): an int is ambiguous for 3-D x."""
    return (value,) * (len(x if isinstance(x, tuple) else np.shape(x)) - 2)


def _data(rng, shape, dtype):
    return rng.standard_normal(shape).astype(dtype)


def _distinct(rng, shape):
    """Values at least 1e-2 apart: no ties, so max pools are differentiable at them."""
    return (rng.permutation(int(np.prod(shape))).reshape(shape) * 1e-2 - 0.3).astype(np.float64)


@pytest.mark.parametrize("nd", (1, 2, 3))
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("window", range(len(WINDOWS)))
def test_max_pool_matches_reference(rng, assert_close_to_reference, nd, dtype, window):
    n, k, s, p, d, ceil = _case(WINDOWS[window], nd)
    x = _data(rng, (2, 3) + n, dtype)
    y, idx = P.max_pool(x, k, s, p, d, ceil, return_indices=True)
    ry, ridx = R.max_pool(x, k, s, p, d, ceil, return_indices=True)
    assert_close_to_reference(y, ry)
    assert idx.dtype == np.int64 and np.array_equal(idx, ridx)
    gy = _data(rng, y.shape, dtype)
    expected = R.max_pool_grad_input(gy, x, k, s, p, d, ceil)
    assert_close_to_reference(P.max_pool_grad_input(gy, x, k, s, p, d, ceil), expected)
    assert_close_to_reference(P.max_pool_grad_input(gy, x, k, s, p, d, ceil, indices=idx),
                              expected)


@pytest.mark.parametrize("nd", (1, 2, 3))
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("window", range(5))
@pytest.mark.parametrize("count_include_pad", (True, False))
def test_avg_pool_matches_reference(rng, assert_close_to_reference, nd, dtype, window,
                                    count_include_pad):
    n, k, s, p, _, ceil = _case(WINDOWS[window], nd)
    x = _data(rng, (2, 3) + n, dtype)
    y = P.avg_pool(x, k, s, p, ceil, count_include_pad)
    assert_close_to_reference(y, R.avg_pool(x, k, s, p, ceil, count_include_pad))
    gy = _data(rng, y.shape, dtype)
    for shape in (x.shape, n):
        assert_close_to_reference(
            P.avg_pool_grad_input(gy, shape, k, s, p, ceil, count_include_pad),
            R.avg_pool_grad_input(gy, shape, k, s, p, ceil, count_include_pad))


@pytest.mark.parametrize("nd", (1, 2, 3))
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("window", (0, 3, 4))
@pytest.mark.parametrize("p_norm", (1, 3.5, 0.7))
def test_lp_pool_matches_reference(rng, assert_close_to_reference, nd, dtype, window, p_norm):
    n, k, s, p, _, ceil = _case(WINDOWS[window], nd)
    x = _data(rng, (2, 2) + n, dtype)
    y = P.lp_pool(x, p_norm, k, s, p, ceil)
    assert_close_to_reference(y, R.lp_pool(x, p_norm, k, s, p, ceil))
    gy = _data(rng, y.shape, dtype)
    assert_close_to_reference(P.lp_pool_grad_input(gy, x, p_norm, k, s, p, ceil),
                              R.lp_pool_grad_input(gy, x, p_norm, k, s, p, ceil))


@pytest.mark.parametrize("nd", (1, 2, 3))
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("window", (1, 3, 4))
@pytest.mark.parametrize("sigma", (None, (2.0, 0.5, 1.0)))
def test_weighted_avg_pool_matches_reference(rng, assert_close_to_reference, nd, dtype, window,
                                             sigma):
    n, k, s, p, _, ceil = _case(WINDOWS[window], nd)
    sigma = _cut(sigma, nd)
    x = _data(rng, (2, 2) + n, dtype)
    y = P.weighted_avg_pool(x, k, s, p, ceil, sigma)
    assert_close_to_reference(y, R.weighted_avg_pool(x, k, s, p, ceil, sigma))
    gy = _data(rng, y.shape, dtype)
    assert_close_to_reference(P.weighted_avg_pool_grad_input(gy, x.shape, k, s, p, ceil, sigma),
                              R.weighted_avg_pool_grad_input(gy, x.shape, k, s, p, ceil, sigma))


def test_weighted_avg_pool_weights_by_distance_from_centre():
    """A 3x3 window on an impulse at the centre gives the normalised centre weight; a constant
    input stays constant even in partial windows (weights normalised over what is present)."""
    x = np.zeros((1, 1, 3, 3))
    x[0, 0, 1, 1] = 1.0
    g = np.exp(-np.array([1.0, 0.0, 1.0]) / (2 * 0.75**2))    # default sigma = 3 / 4
    assert P.weighted_avg_pool(x, 3)[0, 0, 0, 0] == pytest.approx(1 / g.sum() ** 2)
    const = np.full((1, 1, 5, 4), 2.5)
    np.testing.assert_allclose(P.weighted_avg_pool(const, 3, 2, 1, ceil_mode=True), 2.5)


@pytest.mark.parametrize("nd", (1, 2, 3))
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("output_size", (1, 3, (4, 2, 5), (None, 3, 7)))
def test_adaptive_pools_match_reference(rng, assert_close_to_reference, nd, dtype, output_size):
    n = (7, 5, 6)[:nd]
    out = _cut(output_size, nd)
    x = _data(rng, (2, 3) + n, dtype)
    y, idx = P.adaptive_max_pool(x, out, return_indices=True)
    ry, ridx = R.adaptive_max_pool(x, out, return_indices=True)
    assert_close_to_reference(y, ry)
    assert np.array_equal(idx, ridx)
    gy = _data(rng, y.shape, dtype)
    assert_close_to_reference(P.adaptive_max_pool_grad_input(gy, x, out),
                              R.adaptive_max_pool_grad_input(gy, x, out))
    assert_close_to_reference(P.adaptive_max_pool_grad_input(gy, x, out, indices=idx),
                              R.adaptive_max_pool_grad_input(gy, x, out))
    assert_close_to_reference(P.adaptive_avg_pool(x, out), R.adaptive_avg_pool(x, out))
    assert_close_to_reference(P.adaptive_avg_pool_grad_input(gy, x.shape, out),
                              R.adaptive_avg_pool_grad_input(gy, x.shape, out))


@pytest.mark.parametrize("nd", (1, 2, 3))
@pytest.mark.parametrize("dtype", DTYPES)
def test_global_pools_match_reference(rng, assert_close_to_reference, nd, dtype):
    x = _data(rng, (3, 4) + (5, 6, 3)[:nd], dtype)
    gy = _data(rng, (3, 4), dtype)
    assert P.global_avg_pool(x).shape == (3, 4)
    assert_close_to_reference(P.global_avg_pool(x), R.global_avg_pool(x))
    assert_close_to_reference(P.global_max_pool(x), R.global_max_pool(x))
    assert_close_to_reference(P.global_avg_pool_grad_input(gy, x.shape),
                              R.global_avg_pool_grad_input(gy, x.shape))
    assert_close_to_reference(P.global_max_pool_grad_input(gy, x),
                              R.global_max_pool_grad_input(gy, x))


@pytest.mark.parametrize("shape", ((2, 12), (1, 12, 4, 3), (2, 12, 3, 2, 2)))
@pytest.mark.parametrize("group_size", (1, 4, 12))
@pytest.mark.parametrize("mode", ("max", "avg"))
@pytest.mark.parametrize("dtype", DTYPES)
def test_channel_pool_matches_reference(rng, assert_close_to_reference, shape, group_size, mode,
                                        dtype):
    x = _data(rng, shape, dtype)
    y = P.channel_pool(x, group_size, mode)
    assert y.shape == (shape[0], 12 // group_size) + shape[2:]
    assert_close_to_reference(y, R.channel_pool(x, group_size, mode))
    gy = _data(rng, y.shape, dtype)
    assert_close_to_reference(P.channel_pool_grad_input(gy, x, group_size, mode),
                              R.channel_pool_grad_input(gy, x, group_size, mode))


# --- PyTorch ----------------------------------------------------------------------------------

def _torch_pool(torch, name, nd):
    return getattr(torch.nn.functional, f"{name}{nd}d")


@pytest.mark.parametrize("nd", (1, 2, 3))
@pytest.mark.parametrize("window", range(len(WINDOWS)))
def test_max_pool_matches_torch(rng, nd, window):
    torch = pytest.importorskip("torch")
    n, k, s, p, d, ceil = _case(WINDOWS[window], nd)
    x = _data(rng, (2, 3) + n, np.float64)
    x[0, 0] = np.round(x[0, 0])                          # ties too
    xt = torch.from_numpy(x).requires_grad_()
    yt, it = _torch_pool(torch, "max_pool", nd)(xt, k, s, p, d, ceil, return_indices=True)
    y, idx = P.max_pool(x, k, s, p, d, ceil, return_indices=True)
    np.testing.assert_array_equal(y, yt.detach().numpy())
    np.testing.assert_array_equal(idx[0, 1:], it.numpy()[0, 1:])   # torch's tie-break is its own
    gy = _data(rng, y.shape, np.float64)
    yt.backward(torch.from_numpy(gy))
    gx = P.max_pool_grad_input(gy, x[:, :], k, s, p, d, ceil, indices=it.numpy())
    np.testing.assert_allclose(gx, xt.grad.numpy(), rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("nd", (1, 2, 3))
@pytest.mark.parametrize("window", range(5))
@pytest.mark.parametrize("count_include_pad", (True, False))
def test_avg_pool_matches_torch(rng, nd, window, count_include_pad):
    torch = pytest.importorskip("torch")
    n, k, s, p, _, ceil = _case(WINDOWS[window], nd)
    x = _data(rng, (2, 3) + n, np.float64)
    xt = torch.from_numpy(x).requires_grad_()
    yt = _torch_pool(torch, "avg_pool", nd)(xt, k, s, p, ceil, count_include_pad)
    np.testing.assert_allclose(P.avg_pool(x, k, s, p, ceil, count_include_pad),
                               yt.detach().numpy(), rtol=1e-12, atol=1e-12)
    gy = _data(rng, tuple(yt.shape), np.float64)
    yt.backward(torch.from_numpy(gy))
    np.testing.assert_allclose(P.avg_pool_grad_input(gy, x.shape, k, s, p, ceil,
                                                      count_include_pad),
                               xt.grad.numpy(), rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("nd", (1, 2, 3))
@pytest.mark.parametrize("p_norm", (1, 2, 3))
def test_lp_pool_matches_torch(rng, nd, p_norm):
    """PyTorch's lp_pool raises x (not |x|) to p and has no padding: compare on x > 0."""
    torch = pytest.importorskip("torch")
    x = np.abs(_data(rng, (2, 3) + (7, 6, 5)[:nd], np.float64)) + 0.1
    xt = torch.from_numpy(x).requires_grad_()
    yt = getattr(torch.nn.functional, f"lp_pool{nd}d")(xt, p_norm, 2, 2)
    np.testing.assert_allclose(P.lp_pool(x, p_norm, _k(x, 2), 2), yt.detach().numpy(), rtol=1e-12)
    gy = _data(rng, tuple(yt.shape), np.float64)
    yt.backward(torch.from_numpy(gy))
    np.testing.assert_allclose(P.lp_pool_grad_input(gy, x, p_norm, _k(x, 2), 2), xt.grad.numpy(),
                               rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("nd", (1, 2, 3))
@pytest.mark.parametrize("output_size", (1, 3, (4, 2, 5)))
def test_adaptive_pools_match_torch(rng, nd, output_size):
    torch = pytest.importorskip("torch")
    out = _cut(output_size, nd)
    x = _distinct(rng, (2, 3) + (7, 5, 6)[:nd])
    for name in ("adaptive_max_pool", "adaptive_avg_pool"):
        xt = torch.from_numpy(x).requires_grad_()
        yt = _torch_pool(torch, name, nd)(xt, out)
        y = getattr(P, name)(x, out)
        np.testing.assert_allclose(y, yt.detach().numpy(), rtol=1e-12, atol=1e-12)
        gy = _data(rng, y.shape, np.float64)
        yt.backward(torch.from_numpy(gy))
        first = x if name == "adaptive_max_pool" else x.shape
        gx = getattr(P, name + "_grad_input")(gy, first, out)
        np.testing.assert_allclose(gx, xt.grad.numpy(), rtol=1e-12, atol=1e-12)


# --- finite differences and adjoints ---------------------------------------------------------

def _directional(f, x, v, h=1e-6):
    return (f(x + h * v) - f(x - h * v)) / (2 * h)


GRADIENTS = {
    "max_pool": (lambda x: P.max_pool(x, _k(x, 3), 2, 1, 1, True),
                 lambda gy, x: P.max_pool_grad_input(gy, x, _k(x, 3), 2, 1, 1, True)),
    "max_pool_dilated": (lambda x: P.max_pool(x, _k(x, 2), 1, 1, 2),
                         lambda gy, x: P.max_pool_grad_input(gy, x, _k(x, 2), 1, 1, 2)),
    "lp_pool_2": (lambda x: P.lp_pool(x, 2, _k(x, 3), 2, 1, True),
                  lambda gy, x: P.lp_pool_grad_input(gy, x, 2, _k(x, 3), 2, 1, True)),
    "lp_pool_3": (lambda x: P.lp_pool(x, 3, _k(x, 2), 1),
                  lambda gy, x: P.lp_pool_grad_input(gy, x, 3, _k(x, 2), 1)),
    "lp_pool_0.8": (lambda x: P.lp_pool(x, 0.8, _k(x, 3), 2),
                    lambda gy, x: P.lp_pool_grad_input(gy, x, 0.8, _k(x, 3), 2)),
    "adaptive_max": (lambda x: P.adaptive_max_pool(x, _k(x, 3)),
                     lambda gy, x: P.adaptive_max_pool_grad_input(gy, x, _k(x, 3))),
    "global_max": (lambda x: P.global_max_pool(x),
                   lambda gy, x: P.global_max_pool_grad_input(gy, x)),
    "maxout": (lambda x: P.channel_pool(x, 2),
               lambda gy, x: P.channel_pool_grad_input(gy, x, 2)),
}


@pytest.mark.parametrize("name", GRADIENTS)
@pytest.mark.parametrize("nd", (1, 2, 3))
def test_gradient_matches_finite_differences(rng, name, nd):
    forward, backward = GRADIENTS[name]
    x = _distinct(rng, (2, 4) + (7, 6, 5)[:nd])
    v = rng.standard_normal(x.shape)
    gy = rng.standard_normal(forward(x).shape)
    numeric = float(np.sum(gy * _directional(forward, x, v)))
    analytic = float(np.sum(backward(gy, x) * v))
    assert analytic == pytest.approx(numeric, rel=1e-6, abs=1e-8)


LINEAR = {
    "avg": (lambda x: P.avg_pool(x, _k(x, 3), 2, 1, True, True),
            lambda g, s: P.avg_pool_grad_input(g, s, _k(s, 3), 2, 1, True, True)),
    "avg_exclude_pad": (lambda x: P.avg_pool(x, _k(x, 3), 2, 1, True, False),
                        lambda g, s: P.avg_pool_grad_input(g, s, _k(s, 3), 2, 1, True, False)),
    "avg_overlap": (lambda x: P.avg_pool(x, _k(x, 3), 1, 1),
                    lambda g, s: P.avg_pool_grad_input(g, s, _k(s, 3), 1, 1)),
    "weighted": (lambda x: P.weighted_avg_pool(x, _k(x, 3), 2, 1, True),
                 lambda g, s: P.weighted_avg_pool_grad_input(g, s, _k(s, 3), 2, 1, True)),
    "adaptive_avg": (lambda x: P.adaptive_avg_pool(x, _k(x, 4)),
                     lambda g, s: P.adaptive_avg_pool_grad_input(g, s, _k(s, 4))),
    "global_avg": (P.global_avg_pool, P.global_avg_pool_grad_input),
    "channel_avg": (lambda x: P.channel_pool(x, 2, "avg"),
                    lambda g, s: P.channel_pool_grad_input(g, np.zeros(s), 2, "avg")),
}


@pytest.mark.parametrize("name", LINEAR)
@pytest.mark.parametrize("nd", (1, 2, 3))
def test_adjoint_identity(rng, name, nd):
    forward, transpose = LINEAR[name]
    x = rng.standard_normal((2, 4) + (7, 6, 5)[:nd])
    y = forward(x)
    g = rng.standard_normal(y.shape)
    assert np.sum(y * g) == pytest.approx(np.sum(x * transpose(g, x.shape)), rel=1e-12, abs=1e-12)


@pytest.mark.parametrize("name", GRADIENTS)
def test_gradient_reaches_the_input(rng, name):
    """The nonlinear gradients are not the zero map: a finite-difference check is only as good
    as its direction, so also check that every gradient reaches some input."""
    forward, backward = GRADIENTS[name]
    x = _distinct(rng, (1, 4, 6, 5))
    gx = backward(np.ones(forward(x).shape), x)
    assert np.count_nonzero(gx) > 0


# --- semantics --------------------------------------------------------------------------------

def test_max_ties_go_to_the_first_position_in_row_major_order():
    x = np.zeros((1, 1, 4, 4))
    _, idx = P.max_pool(x, 2, return_indices=True)
    np.testing.assert_array_equal(idx[0, 0], [[0, 2], [8, 10]])
    _, idx = P.max_pool(x, 3, 1, 1, return_indices=True)     # padding -inf is never chosen
    np.testing.assert_array_equal(idx[0, 0], [[0, 0, 1, 2], [0, 0, 1, 2], [4, 4, 5, 6],
                                             [8, 8, 9, 10]])
    gx = P.max_pool_grad_input(np.ones((1, 1, 4, 4)), x, 3, 1, 1)
    np.testing.assert_array_equal(gx[0, 0], [[4, 2, 2, 0], [2, 1, 1, 0], [2, 1, 1, 0],
                                             [0, 0, 0, 0]])
    np.testing.assert_array_equal(P.channel_pool_grad_input(np.ones((1, 2)), np.zeros((1, 6)), 3),
                                  [[1, 0, 0, 1, 0, 0]])


def test_max_pool_propagates_nan_and_pads_with_minus_inf():
    x = np.full((1, 1, 5), -np.inf)
    x[0, 0, 2] = np.nan
    y, idx = P.max_pool(x, _k(x, 3), 2, 1, return_indices=True)
    assert np.isneginf(y[0, 0, 0]) and idx[0, 0, 0] == 0
    assert np.isnan(y[0, 0, 1]) and idx[0, 0, 1] == 2
    assert np.isnan(P.global_max_pool(x)[0, 0])


@pytest.mark.parametrize("nd", (1, 2, 3))
def test_max_pools_with_nan_match_reference(rng, nd):
    """NaN wins, and the first NaN of the window (row-major) is the index, in every max pool."""
    x = _data(rng, (2, 3) + (7, 6, 5)[:nd], np.float64)
    x[rng.random(x.shape) < 0.15] = np.nan
    x[rng.random(x.shape) < 0.1] = -np.inf
    for fast, ref in (
            (P.max_pool(x, _k(x, 3), 2, 1, 1, True, True), R.max_pool(x, 3, 2, 1, 1, True, True)),
            (P.max_pool(x, _k(x, 2), 1, 1, 2, False, True), R.max_pool(x, 2, 1, 1, 2, False, True)),
            (P.adaptive_max_pool(x, _k(x, 3), True), R.adaptive_max_pool(x, 3, True))):
        np.testing.assert_array_equal(fast[0], ref[0])
        np.testing.assert_array_equal(fast[1], ref[1])
    np.testing.assert_array_equal(P.global_max_pool(x), R.global_max_pool(x))
    two_nans = np.array([[[1.0, np.nan, 3.0, np.nan, 2.0]]])
    assert P.max_pool(two_nans, _k(two_nans, 5), return_indices=True)[1][0, 0, 0] == 1


def test_reference_matches_torch(rng):
    """The oracle itself against PyTorch: max values and indices, both average divisors."""
    torch = pytest.importorskip("torch")
    F = torch.nn.functional
    x = _distinct(rng, (2, 3, 9, 8))
    xt = torch.from_numpy(x)
    y, idx = F.max_pool2d(xt, 3, 2, 1, 2, True, return_indices=True)
    ry, ridx = R.max_pool(x, 3, 2, 1, 2, True, return_indices=True)
    np.testing.assert_array_equal(ry, y.numpy())
    np.testing.assert_array_equal(ridx, idx.numpy())
    for cip in (True, False):
        np.testing.assert_allclose(R.avg_pool(x, 3, 2, 1, True, cip),
                                   F.avg_pool2d(xt, 3, 2, 1, True, cip).numpy(), rtol=1e-12)
    np.testing.assert_allclose(R.adaptive_avg_pool(x, (4, 3)),
                               F.adaptive_avg_pool2d(xt, (4, 3)).numpy(), rtol=1e-12)
    np.testing.assert_allclose(R.lp_pool(np.abs(x), 2, 3, 2), F.lp_pool2d(xt.abs(), 2, 3, 2).numpy(),
                               rtol=1e-12)


def test_ceil_mode_keeps_the_partial_window():
    """Figure 9.10: 5 inputs, kernel 2, stride 2 -> 2 windows, or 3 with the partial last one."""
    x = np.arange(5.0).reshape(1, 1, 5)
    np.testing.assert_array_equal(P.max_pool(x, (2,)), [[[1, 3]]])
    np.testing.assert_array_equal(P.max_pool(x, (2,), ceil_mode=True), [[[1, 3, 4]]])
    np.testing.assert_array_equal(P.avg_pool(x, (2,), ceil_mode=True), [[[0.5, 2.5, 4]]])
    np.testing.assert_allclose(P.lp_pool(x, 2, (2,), ceil_mode=True), [[[1, 13**0.5, 4]]])
    # a window that would start in the high padding is dropped (PyTorch's rule)
    assert P.max_pool(np.zeros((1, 1, 5)), (2,), 2, 1, ceil_mode=True).shape == (1, 1, 3)


def test_adaptive_pool_has_a_fixed_output_size_whatever_the_input():
    for n in (5, 8, 13):
        x = np.arange(float(n)).reshape(1, 1, n)
        assert P.adaptive_max_pool(x, (3,)).shape == (1, 1, 3)
        assert P.adaptive_max_pool(x, (3,))[0, 0, -1] == n - 1
        assert P.adaptive_avg_pool(x, (1,))[0, 0, 0] == pytest.approx((n - 1) / 2)


def test_lp_pool_gradient_is_zero_where_the_norm_is_zero():
    x = np.zeros((1, 1, 4, 4))
    x[0, 0, 0, 0] = 2.0
    gx = P.lp_pool_grad_input(np.ones((1, 1, 2, 2)), x, 2, 2)
    np.testing.assert_array_equal(gx[0, 0], np.diag([1.0, 0, 0, 0]))
    assert np.all(np.isfinite(P.lp_pool_grad_input(np.ones((1, 1, 2, 2)), x, 0.5, 2)))


@pytest.mark.parametrize("name", FUNCTIONS)
@pytest.mark.parametrize("shape", ((2, 4, 9, 7), (1, 2, 11, 6)))   # planes, or rows, in parallel
def test_thread_count_does_not_change_results(rng, name, shape):
    x = _data(rng, shape, np.float32)
    calls = _all_calls(rng, x)
    fastconv.set_num_threads(1)
    one = calls[name]()
    fastconv.set_num_threads(2)
    two = calls[name]()
    for a, b in zip(one if isinstance(one, tuple) else (one,), two if isinstance(two, tuple)
                    else (two,)):
        assert np.array_equal(a, b, equal_nan=True)


def _all_calls(rng, x):
    y = P.max_pool(x, 3, 2, 1)
    gy = rng.standard_normal(y.shape).astype(x.dtype)
    g1 = rng.standard_normal(x.shape[:2]).astype(x.dtype)
    ga = rng.standard_normal(x.shape[:2] + (3, 2)).astype(x.dtype)
    gc = rng.standard_normal((x.shape[0], x.shape[1] // 2) + x.shape[2:]).astype(x.dtype)
    return {
        "max_pool": lambda: P.max_pool(x, 3, 2, 1, return_indices=True),
        "max_pool_grad_input": lambda: P.max_pool_grad_input(gy, x, 3, 2, 1),
        "avg_pool": lambda: P.avg_pool(x, 3, 2, 1),
        "avg_pool_grad_input": lambda: P.avg_pool_grad_input(gy, x.shape, 3, 2, 1),
        "lp_pool": lambda: P.lp_pool(x, 2, 3, 2, 1),
        "lp_pool_grad_input": lambda: P.lp_pool_grad_input(gy, x, 2, 3, 2, 1),
        "weighted_avg_pool": lambda: P.weighted_avg_pool(x, 3, 2, 1),
        "weighted_avg_pool_grad_input": lambda: P.weighted_avg_pool_grad_input(gy, x.shape, 3,
                                                                                2, 1),
        "adaptive_max_pool": lambda: P.adaptive_max_pool(x, (3, 2), return_indices=True),
        "adaptive_max_pool_grad_input": lambda: P.adaptive_max_pool_grad_input(ga, x, (3, 2)),
        "adaptive_avg_pool": lambda: P.adaptive_avg_pool(x, (3, 2)),
        "adaptive_avg_pool_grad_input": lambda: P.adaptive_avg_pool_grad_input(ga, x.shape,
                                                                                (3, 2)),
        "global_avg_pool": lambda: P.global_avg_pool(x),
        "global_avg_pool_grad_input": lambda: P.global_avg_pool_grad_input(g1, x.shape),
        "global_max_pool": lambda: P.global_max_pool(x),
        "global_max_pool_grad_input": lambda: P.global_max_pool_grad_input(g1, x),
        "channel_pool": lambda: P.channel_pool(x, 2),
        "channel_pool_grad_input": lambda: P.channel_pool_grad_input(gc, x, 2, "avg"),
    }


@pytest.mark.parametrize("name", FUNCTIONS)
def test_inputs_are_never_written(rng, name):
    x = _data(rng, (2, 4, 9, 7), np.float32)
    calls = _all_calls(rng, x)
    # every array the calls hold is x or a gradient made there: freeze them all
    arrays = [c for f in calls.values() for c in (f.__closure__ or ()) if
              isinstance(c.cell_contents, np.ndarray)]
    before = [c.cell_contents.copy() for c in arrays]
    for c in arrays:
        c.cell_contents.setflags(write=False)
    result = calls[name]()
    for c, b in zip(arrays, before):
        assert np.array_equal(c.cell_contents, b)
    for r in result if isinstance(result, tuple) else (result,):
        assert not np.shares_memory(r, x)


def test_identity_pool_returns_a_new_array():
    x = np.arange(6.0).reshape(1, 1, 6)
    for y in (P.avg_pool(x, (1,)), P.channel_pool(x, 1, "avg"), P.adaptive_avg_pool(x, (6,)),
              P.max_pool(x, (1,))):
        np.testing.assert_array_equal(y, x)
        assert not np.shares_memory(y, x)


def test_strided_and_list_inputs(rng):
    base = _data(rng, (3, 8, 10, 9), np.float64)
    x = base[::2, ::3, ::-1, 1::2]                 # a view with odd strides
    xc = np.ascontiguousarray(x)
    gy = _data(rng, P.max_pool(xc, 2).shape, np.float64)
    np.testing.assert_array_equal(P.max_pool(x, 2), P.max_pool(xc, 2))
    np.testing.assert_array_equal(P.avg_pool(x, 3, 1, 1), P.avg_pool(xc, 3, 1, 1))
    np.testing.assert_array_equal(P.max_pool_grad_input(gy[..., ::1], x, 2),
                                  P.max_pool_grad_input(gy, xc, 2))
    np.testing.assert_array_equal(P.channel_pool(x.transpose(0, 1, 3, 2), 3),
                                  P.channel_pool(np.ascontiguousarray(xc.transpose(0, 1, 3, 2)), 3))
    np.testing.assert_array_equal(P.global_avg_pool(xc.tolist()), P.global_avg_pool(xc))


def test_dtypes():
    xi = np.arange(2 * 2 * 16).reshape(2, 2, 4, 4)
    assert P.max_pool(xi, 2).dtype == np.float64
    assert P.avg_pool(xi.astype(bool), 2).dtype == np.float64
    x32 = xi.astype(np.float32)
    for f in (lambda a: P.max_pool(a, 2), lambda a: P.avg_pool(a, 2), lambda a: P.lp_pool(a, 2, 2),
              P.global_avg_pool, lambda a: P.channel_pool(a, 2, "avg")):
        assert f(x32).dtype == np.float32
        assert f(xi.astype(np.float64)).dtype == np.float64
    assert P.max_pool_grad_input(np.ones((2, 2, 2, 2)), x32, 2).dtype == np.float64
    assert P.max_pool_grad_input(np.ones((2, 2, 2, 2), np.float32), x32, 2).dtype == np.float32
    with pytest.raises(TypeError, match="x"):
        P.max_pool(xi.astype(complex), 2)
    with pytest.raises(TypeError, match="x"):
        P.avg_pool(np.array([[["a"]]]), 1)


@pytest.mark.parametrize("name", FUNCTIONS)
def test_empty_batch_gives_empty_result(rng, name):
    x = np.zeros((0, 4, 9, 7), np.float32)
    result = _all_calls(rng, x)[name]()
    for r in result if isinstance(result, tuple) else (result,):
        assert r.size == 0 and r.shape[0] == 0


# --- bad input --------------------------------------------------------------------------------

X = np.zeros((2, 4, 6, 6))
BAD = [
    (lambda: P.max_pool(np.zeros(6), 2), ValueError, "x must have shape"),
    (lambda: P.max_pool(np.zeros((1, 1, 2, 2, 2, 2)), 2), ValueError, "x must have shape"),
    (lambda: P.max_pool(X, 0), ValueError, "kernel_size"),
    (lambda: P.max_pool(X, (2, 2, 2, 2)), ValueError, "kernel_size"),
    (lambda: P.max_pool(X, 2.0), TypeError, "kernel_size"),
    (lambda: P.max_pool(X, 2, 0), ValueError, "stride"),
    (lambda: P.max_pool(X, 2, 1, -1), ValueError, "padding"),
    (lambda: P.max_pool(X, 3, 1, 2), ValueError, "padding must be at most"),
    (lambda: P.max_pool(X, 2, dilation=0), ValueError, "dilation"),
    (lambda: P.max_pool(X, 7), ValueError, "kernel_size.*larger than the padded input"),
    (lambda: P.max_pool(X, 3, dilation=3), ValueError, "larger than the padded input"),
    (lambda: P.max_pool(X, 2, ceil_mode=1), TypeError, "ceil_mode"),
    (lambda: P.max_pool(X, 2, return_indices="yes"), TypeError, "return_indices"),
    (lambda: P.max_pool_grad_input(np.zeros((2, 4, 2, 2)), X, 2), ValueError, "gy"),
    (lambda: P.max_pool_grad_input(np.zeros((2, 4, 3, 3)), X, 2, indices=np.zeros((2, 4, 3), int)),
     ValueError, "indices"),
    (lambda: P.max_pool_grad_input(np.zeros((2, 4, 3, 3)), X, 2,
                                   indices=np.full((2, 4, 3, 3), 36)), ValueError, "indices"),
    (lambda: P.max_pool_grad_input(np.zeros((2, 4, 3, 3)), X, 2,
                                   indices=np.zeros((2, 4, 3, 3))), TypeError, "indices"),
    (lambda: P.avg_pool(X, 3, padding=2), ValueError, "padding"),
    (lambda: P.avg_pool(X, 2, count_include_pad=None), TypeError, "count_include_pad"),
    (lambda: P.avg_pool_grad_input(np.zeros((2, 4, 3, 3)), (2, 4, 7), 2), ValueError,
     "input_shape"),
    (lambda: P.avg_pool_grad_input(np.zeros((2, 4, 3, 3)), (3, 4, 6, 6), 2), ValueError,
     "input_shape"),
    (lambda: P.avg_pool_grad_input(np.zeros((2, 4, 3, 3)), (8, 8), 2), ValueError, "gy"),
    (lambda: P.avg_pool_grad_input(np.zeros((2, 4, 3, 3)), 6, 2), TypeError, "input_shape"),
    (lambda: P.lp_pool(X, 0, 2), ValueError, "p must be"),
    (lambda: P.lp_pool(X, -1.5, 2), ValueError, "p must be"),
    (lambda: P.lp_pool(X, np.inf, 2), ValueError, "p must be"),
    (lambda: P.lp_pool(X, "2", 2), TypeError, "p must be"),
    (lambda: P.lp_pool_grad_input(np.zeros((2, 4, 2, 2)), X, 2, 2), ValueError, "gy"),
    (lambda: P.weighted_avg_pool(X, 3, sigma=0), ValueError, "sigma"),
    (lambda: P.weighted_avg_pool(X, (3, 3), sigma=(1, 1, 1)), ValueError, "sigma"),
    (lambda: P.weighted_avg_pool(X, 3, sigma="wide"), TypeError, "sigma"),
    (lambda: P.adaptive_max_pool(X, 0), ValueError, "output_size"),
    (lambda: P.adaptive_avg_pool(X, (2, 2, 2, 2)), ValueError, "output_size"),
    (lambda: P.adaptive_avg_pool(X, 2.5), TypeError, "output_size"),
    (lambda: P.adaptive_max_pool_grad_input(np.zeros((2, 4, 3, 3)), X, 2), ValueError, "gy"),
    (lambda: P.adaptive_avg_pool_grad_input(np.zeros((2, 4, 3, 3)), X.shape, 2), ValueError,
     "gy"),
    (lambda: P.global_avg_pool(np.zeros((2, 4))), ValueError, "x must have shape"),
    (lambda: P.global_avg_pool(np.zeros((2, 4, 0))), ValueError, "spatial size"),
    (lambda: P.global_avg_pool_grad_input(np.zeros((2, 4)), (6, 6)), ValueError, "input_shape"),
    (lambda: P.global_avg_pool_grad_input(np.zeros((2, 4, 1)), X.shape), ValueError, "gy"),
    (lambda: P.global_max_pool_grad_input(np.zeros((2, 3)), X), ValueError, "gy"),
    (lambda: P.channel_pool(X, 3), ValueError, "group_size"),
    (lambda: P.channel_pool(X, 0), ValueError, "group_size"),
    (lambda: P.channel_pool(X, 2, "min"), ValueError, "mode"),
    (lambda: P.channel_pool(X, 2, None), TypeError, "mode"),
    (lambda: P.channel_pool(np.zeros(4), 2), ValueError, "x must have shape"),
    (lambda: P.channel_pool_grad_input(np.zeros((2, 4, 6, 6)), X, 2), ValueError, "gy"),
]


@pytest.mark.parametrize("case", range(len(BAD)))
def test_bad_input_raises_naming_the_argument(case):
    call, error, message = BAD[case]
    with pytest.raises(error, match=message):
        call()


# --- hypothesis ---------------------------------------------------------------------------------

@st.composite
def pooling_problems(draw):
    nd = draw(st.integers(1, 3))
    k = tuple(draw(st.integers(1, 4)) for _ in range(nd))
    s = tuple(draw(st.integers(1, 3)) for _ in range(nd))
    p = tuple(draw(st.integers(0, kk // 2)) for kk in k)
    d = tuple(draw(st.integers(1, 2)) for _ in range(nd))
    n = tuple(draw(st.integers(max(dd * (kk - 1) + 1 - 2 * pp, 1), 8))
              for kk, pp, dd in zip(k, p, d))
    batch = (draw(st.integers(1, 2)), draw(st.integers(1, 3)))
    return batch + n, k, s, p, d, draw(st.booleans()), draw(st.sampled_from(DTYPES))


@given(pooling_problems(), st.integers(0, 2**32 - 1))
def test_hypothesis_shapes_match_reference(problem, seed):
    shape, k, s, p, d, ceil, dtype = problem
    rng = np.random.default_rng(seed)
    x = rng.standard_normal(shape).astype(dtype)
    tol = 2e-4 if dtype == np.float32 else 1e-9
    y, idx = P.max_pool(x, k, s, p, d, ceil, return_indices=True)
    ry, ridx = R.max_pool(x, k, s, p, d, ceil, return_indices=True)
    assert y.dtype == dtype and np.array_equal(y, ry) and np.array_equal(idx, ridx)
    gy = rng.standard_normal(y.shape).astype(dtype)
    np.testing.assert_allclose(P.max_pool_grad_input(gy, x, k, s, p, d, ceil),
                               R.max_pool_grad_input(gy, x, k, s, p, d, ceil), atol=tol * 4)
    ya = P.avg_pool(x, k, s, p, ceil, False)
    ra = R.avg_pool(x, k, s, p, ceil, False)
    assert ya.shape == ra.shape
    np.testing.assert_allclose(ya, ra, atol=tol * max(1.0, float(np.abs(ra).max())))
    ga = rng.standard_normal(ya.shape).astype(dtype)
    rg = R.avg_pool_grad_input(ga, shape, k, s, p, ceil, False)
    np.testing.assert_allclose(P.avg_pool_grad_input(ga, shape, k, s, p, ceil, False), rg,
                               atol=tol * max(1.0, float(np.abs(rg).max())))
