"""Checks of fastconv.reference itself, independently of the rest of fastconv.

The reference is the oracle of every other test, so here it is compared with outside
implementations (numpy.convolve, scipy.signal, scipy.ndimage), with a literal transcription of
eq. 9.8 in Python loops, with its own structural identities (stride, dilation, groups), and its
gradients with the adjoint identities and finite differences.
"""

import itertools

import numpy as np
import pytest
import scipy.ndimage
import scipy.signal
from hypothesis import given, settings
from hypothesis import strategies as st

from fastconv import reference

PADDING_MODES = ("zeros", "reflect", "replicate", "circular")


def _rng(seed):
    return np.random.default_rng(seed)


def _randn(rng, shape):
    return rng.standard_normal(shape)


def _geometry_kwargs(g):
    return {key: g[key] for key in ("stride", "padding", "dilation", "groups", "flip")
            if key in g}


# ---------------------------------------------------------------------------------------------
# (a) agreement with numpy / scipy
# ---------------------------------------------------------------------------------------------

@pytest.mark.parametrize("n, k", [(7, 3), (8, 4), (5, 1), (6, 6), (9, 2)])
@pytest.mark.parametrize("mode", ["full", "valid"])
def test_1d_flip_matches_numpy_convolve(n, k, mode):
    rng = _rng(n * 10 + k)
    x, w = _randn(rng, n), _randn(rng, k)
    y = reference.conv(x[None, None], w[None, None], padding=mode, flip=True)
    np.testing.assert_allclose(y[0, 0], np.convolve(x, w, mode=mode), rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("n, k", [(7, 3), (8, 5), (5, 1), (4, 3)])
def test_1d_same_odd_kernel_matches_numpy_convolve(n, k):
    rng = _rng(n * 10 + k)
    x, w = _randn(rng, n), _randn(rng, k)
    y = reference.conv(x[None, None], w[None, None], padding="same", flip=True)
    np.testing.assert_allclose(y[0, 0], np.convolve(x, w, mode="same"), rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("x_shape, w_shape", [
    ((6, 7), (3, 2)), ((5, 5), (5, 5)), ((8, 4), (1, 3)),
    ((5, 6, 4), (2, 3, 2)), ((4, 4, 4), (3, 1, 3)),
])
@pytest.mark.parametrize("mode", ["full", "valid"])
def test_nd_flip_matches_scipy_convolve(x_shape, w_shape, mode):
    rng = _rng(len(x_shape))
    x, w = _randn(rng, x_shape), _randn(rng, w_shape)
    y = reference.conv(x[None, None], w[None, None], padding=mode, flip=True)
    expected = scipy.signal.convolve(x, w, mode=mode, method="direct")
    np.testing.assert_allclose(y[0, 0], expected, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("x_shape, w_shape", [((6, 7), (3, 5)), ((5, 4, 6), (3, 3, 1))])
def test_nd_same_odd_kernel_matches_scipy_convolve(x_shape, w_shape):
    rng = _rng(7)
    x, w = _randn(rng, x_shape), _randn(rng, w_shape)
    y = reference.conv(x[None, None], w[None, None], padding="same", flip=True)
    expected = scipy.signal.convolve(x, w, mode="same", method="direct")
    np.testing.assert_allclose(y[0, 0], expected, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("x_shape, w_shape", [
    ((7,), (4,)), ((6, 5), (2, 4)), ((4, 5, 3), (2, 3, 2)),
])
def test_same_even_kernel_puts_the_extra_padding_high(x_shape, w_shape):
    # Contract: total padding k - 1 at stride 1, low = total // 2, the odd extra on the high side.
    # Output i of "same" is then output i + (k - 1 - low) of "full".
    rng = _rng(8)
    x, w = _randn(rng, x_shape), _randn(rng, w_shape)
    full = scipy.signal.correlate(x, w, mode="full", method="direct")
    start = [k - 1 - (k - 1) // 2 for k in w_shape]
    expected = full[tuple(slice(s, s + n) for s, n in zip(start, x_shape))]
    y = reference.conv(x[None, None], w[None, None], padding="same")
    np.testing.assert_allclose(y[0, 0], expected, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("x_shape, w_shape, pads", [
    ((2, 3, 9), (4, 3, 3), ((2, 1),)),
    ((2, 3, 6, 5), (4, 3, 3, 2), ((1, 0), (2, 2))),
    ((1, 2, 4, 5, 3), (3, 2, 2, 3, 2), ((0, 1), (1, 1), (2, 0))),
])
def test_multichannel_is_sum_of_scipy_correlates(x_shape, w_shape, pads):
    rng = _rng(9)
    x, w, b = _randn(rng, x_shape), _randn(rng, w_shape), _randn(rng, w_shape[0])
    xp = np.pad(x, ((0, 0), (0, 0)) + pads)
    expected = np.array([[sum(scipy.signal.correlate(xp[n, c], w[k, c], mode="valid",
                                                     method="direct")
                              for c in range(x_shape[1])) + b[k]
                          for k in range(w_shape[0])] for n in range(x_shape[0])])
    y = reference.conv(x, w, b, padding=pads)
    np.testing.assert_allclose(y, expected, rtol=1e-12, atol=1e-12)


NDIMAGE_MODES = {"zeros": "constant", "reflect": "mirror", "replicate": "nearest",
                 "circular": "wrap"}


@pytest.mark.parametrize("padding_mode", PADDING_MODES)
@pytest.mark.parametrize("x_shape, w_shape", [
    ((9,), (5,)), ((6, 7), (3, 5)), ((4, 5, 4), (3, 3, 1)),
])
def test_padding_modes_match_ndimage_correlate(padding_mode, x_shape, w_shape):
    # For odd kernels, "same" pads (k - 1) / 2 on both sides, which is ndimage's centred window.
    rng = _rng(10)
    x, w = _randn(rng, x_shape), _randn(rng, w_shape)
    y = reference.conv(x[None, None], w[None, None], padding="same", padding_mode=padding_mode)
    expected = scipy.ndimage.correlate(x, w, mode=NDIMAGE_MODES[padding_mode], cval=0.0)
    np.testing.assert_allclose(y[0, 0], expected, rtol=1e-12, atol=1e-12)


def _conv2d_loops(x, w, stride, pads, dilation, groups):
    """Eq. 9.8 written out: every index of every sum, zero padding by a bounds test."""
    n_batch, channels, h, wd = x.shape
    k_out, c_group, kh, kw = w.shape
    (sh, sw), (dh, dw) = stride, dilation
    (ph, _), (pw, _) = pads
    oh = (h + sum(pads[0]) - dh * (kh - 1) - 1) // sh + 1
    ow = (wd + sum(pads[1]) - dw * (kw - 1) - 1) // sw + 1
    k_group = k_out // groups
    y = np.zeros((n_batch, k_out, oh, ow))
    for b, i, j, k in itertools.product(range(n_batch), range(k_out), range(oh), range(ow)):
        g = i // k_group
        total = 0.0
        for l, m, n in itertools.product(range(c_group), range(kh), range(kw)):
            row, col = j * sh + m * dh - ph, k * sw + n * dw - pw
            if 0 <= row < h and 0 <= col < wd:
                total += x[b, g * c_group + l, row, col] * w[i, l, m, n]
        y[b, i, j, k] = total
    return y


@pytest.mark.parametrize("x_shape, w_shape, stride, pads, dilation, groups", [
    ((2, 2, 6, 5), (3, 2, 3, 2), (1, 1), ((0, 0), (0, 0)), (1, 1), 1),
    ((1, 3, 7, 8), (2, 3, 2, 3), (2, 3), ((1, 2), (0, 1)), (1, 1), 1),
    ((2, 4, 7, 6), (4, 2, 2, 2), (1, 2), ((2, 0), (1, 1)), (2, 3), 2),
    ((1, 6, 5, 5), (3, 2, 3, 1), (3, 1), ((1, 1), (0, 2)), (1, 2), 3),
])
def test_matches_equation_9_8_written_as_loops(x_shape, w_shape, stride, pads, dilation, groups):
    rng = _rng(11)
    x, w = _randn(rng, x_shape), _randn(rng, w_shape)
    y = reference.conv(x, w, stride=stride, padding=pads, dilation=dilation, groups=groups)
    expected = _conv2d_loops(x, w, stride, pads, dilation, groups)
    np.testing.assert_allclose(y, expected, rtol=1e-12, atol=1e-12)


# ---------------------------------------------------------------------------------------------
# (b) stride, dilation, groups and "same" through their definitions
# ---------------------------------------------------------------------------------------------

@pytest.mark.parametrize("x_shape, w_shape, stride, padding", [
    ((2, 2, 11), (3, 2, 3), (2,), ((1, 2),)),
    ((1, 2, 9, 8), (2, 2, 3, 2), (3, 2), ((0, 1), (2, 0))),
    ((1, 1, 7, 6, 8), (2, 1, 2, 3, 3), (2, 1, 3), 1),
])
def test_stride_subsamples_the_stride_one_result(x_shape, w_shape, stride, padding):
    rng = _rng(12)
    x, w = _randn(rng, x_shape), _randn(rng, w_shape)
    dense = reference.conv(x, w, padding=padding)
    expected = dense[(Ellipsis,) + tuple(slice(None, None, s) for s in stride)]
    y = reference.conv(x, w, stride=stride, padding=padding)
    np.testing.assert_allclose(y, expected, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("x_shape, w_shape, dilation", [
    ((2, 2, 12), (3, 2, 3), (3,)),
    ((1, 2, 9, 10), (2, 2, 2, 3), (2, 3)),
    ((1, 1, 7, 6, 8), (2, 1, 2, 2, 3), (3, 1, 2)),
])
def test_dilation_is_a_zero_dilated_kernel(x_shape, w_shape, dilation):
    rng = _rng(13)
    x, w = _randn(rng, x_shape), _randn(rng, w_shape)
    dilated = np.zeros(w_shape[:2] + tuple(d * (k - 1) + 1 for k, d in zip(w_shape[2:], dilation)))
    dilated[(Ellipsis,) + tuple(slice(None, None, d) for d in dilation)] = w
    expected = reference.conv(x, dilated, padding=1)
    y = reference.conv(x, w, dilation=dilation, padding=1)
    np.testing.assert_allclose(y, expected, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("x_shape, w_shape, groups", [
    ((2, 4, 9), (6, 2, 3), 2),
    ((1, 6, 6, 5), (3, 2, 3, 2), 3),
    ((1, 4, 4, 5, 3), (8, 1, 2, 2, 2), 4),
])
def test_groups_concatenate_separate_convs(x_shape, w_shape, groups):
    rng = _rng(14)
    x, w = _randn(rng, x_shape), _randn(rng, w_shape)
    cg, kg = x_shape[1] // groups, w_shape[0] // groups
    expected = np.concatenate([
        reference.conv(x[:, g * cg:(g + 1) * cg], w[g * kg:(g + 1) * kg], stride=2, padding=1)
        for g in range(groups)], axis=1)
    y = reference.conv(x, w, stride=2, padding=1, groups=groups)
    np.testing.assert_allclose(y, expected, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("n, k, stride, dilation", [
    (10, 3, 2, 1), (10, 4, 3, 1), (7, 2, 2, 2), (5, 5, 4, 1), (9, 3, 1, 3), (4, 1, 3, 1),
])
def test_same_padding_is_the_smallest_giving_ceil_n_over_stride(n, k, stride, dilation):
    rng = _rng(15)
    x, w = _randn(rng, (1, 1, n)), _randn(rng, (1, 1, k))
    target = -(-n // stride)
    eff = dilation * (k - 1) + 1
    total = next(t for t in itertools.count()
                 if n + t >= eff and (n + t - eff) // stride + 1 == target)
    pads = ((total // 2, total - total // 2),)
    y = reference.conv(x, w, stride=stride, dilation=dilation, padding="same")
    assert y.shape == (1, 1, target)
    expected = reference.conv(x, w, stride=stride, dilation=dilation, padding=pads)
    np.testing.assert_allclose(y, expected, rtol=1e-12, atol=1e-12)


def test_full_padding_equals_effective_kernel_minus_one():
    rng = _rng(16)
    x, w = _randn(rng, (1, 2, 6, 7)), _randn(rng, (3, 2, 3, 2))
    y = reference.conv(x, w, dilation=(2, 3), padding="full")
    expected = reference.conv(x, w, dilation=(2, 3), padding=(4, 3))
    assert y.shape == (1, 3, 6 + 4, 7 + 3)
    np.testing.assert_allclose(y, expected, rtol=1e-12, atol=1e-12)


def test_padding_spellings_agree():
    rng = _rng(17)
    x, w = _randn(rng, (1, 1, 6, 5)), _randn(rng, (1, 1, 3, 3))
    y = reference.conv(x, w, padding=2)
    for spelling in [(2, 2), ((2, 2), (2, 2)), [2, (2, 2)]]:
        np.testing.assert_array_equal(reference.conv(x, w, padding=spelling), y)
    np.testing.assert_array_equal(reference.conv(x, w, padding="valid"), reference.conv(x, w))
    x1, w1 = x[:, :, 0], w[:, :, 0]
    np.testing.assert_array_equal(reference.conv(x1, w1, padding=(1, 2)),
                                  reference.conv(x1, w1, padding=((1, 2),)))


@pytest.mark.parametrize("n, k, stride, lo, hi, dilation", [
    (10, 3, 1, 0, 0, 1), (10, 3, 2, 1, 2, 1), (7, 2, 3, 0, 1, 2), (5, 5, 1, 0, 0, 1),
    (4, 3, 2, 2, 2, 3),
])
def test_output_size_counts_kernel_placements(n, k, stride, lo, hi, dilation):
    eff = dilation * (k - 1) + 1
    count = len(range(0, n + lo + hi - eff + 1, stride))
    assert reference.output_size(n, k, stride, lo, hi, dilation) == count


# ---------------------------------------------------------------------------------------------
# (c) adjoint identities
# ---------------------------------------------------------------------------------------------

GEOMETRIES = [
    dict(x_shape=(2, 3, 9), w_shape=(4, 3, 3)),
    dict(x_shape=(2, 2, 11), w_shape=(3, 2, 3), stride=2, padding=((2, 1),), dilation=2),
    dict(x_shape=(1, 4, 7, 6), w_shape=(4, 2, 3, 2), stride=(2, 1), padding=((1, 2), (0, 1)),
         groups=2, flip=True),
    dict(x_shape=(2, 3, 6, 7), w_shape=(6, 1, 2, 3), stride=(1, 3), padding=(1, 2),
         dilation=(2, 1), groups=3),
    dict(x_shape=(1, 2, 8, 5), w_shape=(2, 2, 4, 3), stride=3, padding="same", dilation=(1, 2)),
    dict(x_shape=(1, 1, 5, 4), w_shape=(2, 1, 3, 2), padding="full"),
    dict(x_shape=(1, 2, 5, 4, 6), w_shape=(2, 2, 2, 3, 2), stride=(2, 1, 2),
         padding=((1, 0), (1, 1), (0, 2)), dilation=(1, 1, 2)),
    dict(x_shape=(2, 2, 4, 4, 4), w_shape=(4, 1, 2, 2, 2), stride=2, padding=1, groups=2,
         flip=True),
]


def _adjoint_gaps(g, padding_mode, rng):
    kwargs = dict(_geometry_kwargs(g), padding_mode=padding_mode)
    x, w = _randn(rng, g["x_shape"]), _randn(rng, g["w_shape"])
    y = reference.conv(x, w, **kwargs)
    gy = _randn(rng, y.shape)
    gx = reference.conv_grad_input(gy, w, x.shape, **kwargs)
    gw = reference.conv_grad_kernel(x, gy, w.shape, **kwargs)
    assert gx.shape == x.shape and gw.shape == w.shape
    lhs = np.vdot(y, gy)
    # the size of the rounding errors: the sums of products without cancellation
    scale = max(np.vdot(abs(y), abs(gy)) + np.vdot(abs(x), abs(gx)) + np.vdot(abs(w), abs(gw)),
                np.finfo(np.float64).tiny)
    return (lhs - np.vdot(x, gx)) / scale, (lhs - np.vdot(w, gw)) / scale


@pytest.mark.parametrize("padding_mode", PADDING_MODES)
@pytest.mark.parametrize("g", GEOMETRIES, ids=lambda g: "x{}-w{}".format(*g.values()))
def test_adjoint_identities(g, padding_mode):
    gap_input, gap_kernel = _adjoint_gaps(g, padding_mode, _rng(20))
    assert abs(gap_input) < 1e-13
    assert abs(gap_kernel) < 1e-13


@st.composite
def _random_geometries(draw):
    nd = draw(st.integers(1, 3))
    groups = draw(st.integers(1, 2))
    c_group, k_group, batch = (draw(st.integers(1, 2)) for _ in range(3))
    k, d, s, pads, n = [], [], [], [], []
    for _ in range(nd):
        k.append(draw(st.integers(1, 3)))
        d.append(draw(st.integers(1, 2)))
        s.append(draw(st.integers(1, 3)))
        pads.append((draw(st.integers(0, 2)), draw(st.integers(0, 2))))
        eff = d[-1] * (k[-1] - 1) + 1
        n.append(draw(st.integers(max(1, eff - sum(pads[-1])), eff + 4)))
    return dict(x_shape=(batch, c_group * groups, *n), w_shape=(k_group * groups, c_group, *k),
                stride=tuple(s), padding=tuple(pads), dilation=tuple(d), groups=groups,
                flip=draw(st.booleans()))


@settings(max_examples=60, deadline=None)
@given(g=_random_geometries(), padding_mode=st.sampled_from(PADDING_MODES),
       seed=st.integers(0, 2**32 - 1))
def test_adjoint_identities_random_geometries(g, padding_mode, seed):
    gap_input, gap_kernel = _adjoint_gaps(g, padding_mode, _rng(seed))
    assert abs(gap_input) < 1e-13
    assert abs(gap_kernel) < 1e-13


def test_conv_matrix_transpose_is_grad_input():
    # Build the convolution matrix column by column and compare its transpose with h (eq. 9.13).
    x_shape, w_shape = (1, 2, 5, 4), (3, 2, 2, 3)
    kwargs = dict(stride=(2, 1), padding=((1, 0), (1, 1)), padding_mode="reflect")
    w = _randn(_rng(21), w_shape)
    columns = []
    for index in range(np.prod(x_shape)):
        e = np.zeros(np.prod(x_shape))
        e[index] = 1.0
        columns.append(reference.conv(e.reshape(x_shape), w, **kwargs).ravel())
    matrix = np.stack(columns, axis=1)
    y_shape = reference.conv(np.zeros(x_shape), w, **kwargs).shape
    gy = _randn(_rng(22), y_shape)
    gx = reference.conv_grad_input(gy, w, x_shape, **kwargs)
    np.testing.assert_allclose(gx.ravel(), matrix.T @ gy.ravel(), rtol=1e-12, atol=1e-12)


# ---------------------------------------------------------------------------------------------
# (d) finite differences
# ---------------------------------------------------------------------------------------------

FD_CASES = [
    dict(x_shape=(1, 2, 7), w_shape=(2, 2, 3), stride=2, padding=((2, 1),), dilation=2),
    dict(x_shape=(1, 2, 5, 4), w_shape=(2, 1, 2, 3), stride=(2, 1), padding=((1, 0), (1, 2)),
         dilation=(1, 2), groups=2, flip=True),
    dict(x_shape=(1, 1, 3, 4, 3), w_shape=(2, 1, 2, 2, 2), stride=(1, 2, 1), padding=1),
]


def _central_difference(f, a, eps=1e-3):
    grad = np.zeros_like(a)
    for index in np.ndindex(a.shape):
        step = np.zeros_like(a)
        step[index] = eps
        grad[index] = (f(a + step) - f(a - step)) / (2 * eps)
    return grad


@pytest.mark.parametrize("padding_mode", PADDING_MODES)
@pytest.mark.parametrize("g", FD_CASES, ids=["1d", "2d", "3d"])
def test_gradients_match_finite_differences(g, padding_mode):
    rng = _rng(30)
    kwargs = dict(_geometry_kwargs(g), padding_mode=padding_mode)
    x, w = _randn(rng, g["x_shape"]), _randn(rng, g["w_shape"])
    gy = _randn(rng, reference.conv(x, w, **kwargs).shape)

    def loss_x(xv):
        return np.vdot(reference.conv(xv, w, **kwargs), gy)

    def loss_w(wv):
        return np.vdot(reference.conv(x, wv, **kwargs), gy)

    np.testing.assert_allclose(reference.conv_grad_input(gy, w, x.shape[2:], **kwargs),
                               _central_difference(loss_x, x), rtol=1e-7, atol=1e-8)
    np.testing.assert_allclose(reference.conv_grad_kernel(x, gy, w.shape[2:], **kwargs),
                               _central_difference(loss_w, w), rtol=1e-7, atol=1e-8)


def test_bias_gradient_is_sum_of_gy():
    # Not an API of the reference, but confirms that bias is added once per output channel.
    rng = _rng(31)
    x, w, b = _randn(rng, (2, 2, 6, 5)), _randn(rng, (3, 2, 2, 2)), _randn(rng, 3)
    gy = _randn(rng, reference.conv(x, w).shape)
    fd = _central_difference(lambda bv: np.vdot(reference.conv(x, w, bv), gy), b)
    np.testing.assert_allclose(fd, gy.sum(axis=(0, 2, 3)), rtol=1e-7, atol=1e-8)


# ---------------------------------------------------------------------------------------------
# (e) conv_transpose
# ---------------------------------------------------------------------------------------------

@pytest.mark.parametrize("m, k, stride, padding, dilation", [
    (3, 3, 2, 0, 1), (4, 3, 2, 1, 1), (4, 2, 3, (2, 0), 1), (3, 3, 1, 1, 2), (5, 1, 4, 0, 1),
    (3, 4, 3, "same", 1), (4, 3, 2, "full", 1), (2, 3, 2, "valid", 2),
])
def test_transpose_output_size_choices(m, k, stride, padding, dilation):
    rng = _rng(40)
    x, w = _randn(rng, (2, 3, m)), _randn(rng, (3, 2, k))
    kwargs = dict(stride=stride, padding=padding, dilation=dilation)

    def forward_size(n):
        try:
            return reference.conv(np.zeros((1, 2, n)), w, **kwargs).shape[2]
        except ValueError:  # kernel larger than the padded input
            return None

    candidates = [n for n in range(1, 60) if forward_size(n) == m]
    assert candidates, "the test geometry must admit an output size"
    y = reference.conv_transpose(x, w, **kwargs)
    assert y.shape == (2, 2, candidates[0])
    for n in candidates:
        expected = reference.conv_grad_input(x, w, (n,), **kwargs)
        for request in [(n,), (2, 2, n)]:
            y = reference.conv_transpose(x, w, output_shape=request, **kwargs)
            assert y.shape == (2, 2, n)
            np.testing.assert_allclose(y, expected, rtol=1e-12, atol=1e-12)
    for n in {candidates[0] - 1, candidates[-1] + 1} - {0}:
        with pytest.raises(ValueError, match="output_shape"):
            reference.conv_transpose(x, w, output_shape=(n,), **kwargs)


def test_transpose_matches_scatter_loops_and_adds_bias():
    # Eq. 9.14 as a scatter: each input x[b, i, j] adds x * w[i, c, m] at output j * s + m * d - lo.
    rng = _rng(41)
    x, w, b = _randn(rng, (2, 4, 5)), _randn(rng, (4, 3, 3)), _randn(rng, 6)
    stride, dilation, lo, n_out, groups = 3, 2, 2, 15, 2
    y = reference.conv_transpose(x, w, b, stride=stride, padding=((lo, 1),), dilation=dilation,
                                 groups=groups, output_shape=(n_out,))
    expected = np.zeros((2, 6, n_out))
    for bt, i, j, c, m in itertools.product(range(2), range(4), range(5), range(3), range(3)):
        g = i // 2
        pos = j * stride + m * dilation - lo
        if 0 <= pos < n_out:
            expected[bt, g * 3 + c, pos] += x[bt, i, j] * w[i, c, m]
    expected += b[None, :, None]
    np.testing.assert_allclose(y, expected, rtol=1e-12, atol=1e-12)


def test_transpose_2d_default_and_requested_sizes():
    rng = _rng(42)
    x, w = _randn(rng, (1, 2, 3, 4)), _randn(rng, (2, 1, 3, 2))
    y = reference.conv_transpose(x, w, stride=(2, 3), padding=1)
    assert y.shape == (1, 1, 5, 9)  # (m - 1) * s + eff - lo - hi
    y = reference.conv_transpose(x, w, stride=(2, 3), padding=1, output_shape=(6, 11))
    assert y.shape == (1, 1, 6, 11)
    with pytest.raises(ValueError):
        reference.conv_transpose(x, w, stride=(2, 3), padding=1, output_shape=(6, 12))
    with pytest.raises(ValueError):
        reference.conv_transpose(x, w, stride=(2, 3), padding=1, output_shape=(1, 2, 6, 11))


# ---------------------------------------------------------------------------------------------
# (f) dtypes, shapes and bad input
# ---------------------------------------------------------------------------------------------

def _all_operations(x, w, gy, b=None):
    return {
        "conv": lambda: reference.conv(x, w, b, padding=1),
        "grad_input": lambda: reference.conv_grad_input(gy, w, x.shape, padding=1),
        "grad_kernel": lambda: reference.conv_grad_kernel(x, gy, w.shape, padding=1),
        "transpose": lambda: reference.conv_transpose(gy, w, padding=1,
                                                      output_shape=x.shape[2:]),
    }


@pytest.mark.parametrize("first, second, expected", [
    (np.float32, np.float32, np.float32),
    (np.float64, np.float64, np.float64),
    (np.float32, np.float64, np.float64),
    (np.float64, np.float32, np.float64),
    (np.int32, np.int64, np.float64),
    (np.bool_, np.bool_, np.float64),
    (np.int8, np.float32, np.float64),
    (np.float32, np.uint8, np.float64),
])
@pytest.mark.parametrize("operation", ["conv", "grad_input", "grad_kernel", "transpose"])
def test_result_dtype(first, second, expected, operation):
    # Each operation takes two arrays; the third one stays float32 so it cannot decide the type.
    rng = _rng(50)
    arrays = {"x": _randn(rng, (2, 3, 5, 4)) * 3, "w": _randn(rng, (2, 3, 3, 2)) * 3,
              "gy": _randn(rng, (2, 2, 5, 5)) * 3}
    operands = {"conv": ("x", "w"), "grad_input": ("gy", "w"), "grad_kernel": ("x", "gy"),
                "transpose": ("gy", "w")}[operation]
    typed = {name: a.astype(np.float32) for name, a in arrays.items()}
    typed[operands[0]] = arrays[operands[0]].astype(first)
    typed[operands[1]] = arrays[operands[1]].astype(second)
    assert _all_operations(typed["x"], typed["w"], typed["gy"])[operation]().dtype == expected


@pytest.mark.parametrize("operation", ["conv", "grad_input", "grad_kernel", "transpose"])
def test_float32_results_are_float64_accumulations_rounded_once(operation):
    # 400 taps of values near 1 make float32 accumulation visibly different.
    rng = _rng(51)
    x = (1 + 0.1 * _randn(rng, (1, 16, 8, 8))).astype(np.float32)
    w = (1 + 0.1 * _randn(rng, (4, 16, 5, 5))).astype(np.float32)
    gy = (1 + 0.1 * _randn(rng, (1, 4, 6, 6))).astype(np.float32)
    single = _all_operations(x, w, gy)[operation]()
    double = _all_operations(x.astype(np.float64), w.astype(np.float64),
                             gy.astype(np.float64))[operation]()
    assert single.dtype == np.float32
    np.testing.assert_array_equal(single, double.astype(np.float32))


def test_bias_takes_part_in_dtype_promotion():
    x, w = np.ones((1, 1, 4), np.float32), np.ones((2, 1, 2), np.float32)
    assert reference.conv(x, w, np.zeros(2, np.float32)).dtype == np.float32
    assert reference.conv(x, w, np.zeros(2, np.float64)).dtype == np.float64
    assert reference.conv_transpose(x[:, :1], w[:1], np.zeros(1)).dtype == np.float64


@pytest.mark.parametrize("bad", [np.complex128, object, str])
def test_non_real_arrays_raise_type_error(bad):
    x = np.ones((1, 1, 4)).astype(bad)
    w = np.ones((1, 1, 2))
    with pytest.raises(TypeError):
        reference.conv(x, w)
    with pytest.raises(TypeError):
        reference.conv_grad_kernel(x, np.ones((1, 1, 3)), (2,))


def test_array_likes_are_accepted():
    y = reference.conv([[[1, 2, 3, 4]]], [[[1, -1]]])
    np.testing.assert_array_equal(y, [[[-1.0, -1.0, -1.0]]])
    assert y.dtype == np.float64


def test_empty_batch_gives_empty_results():
    x, w = np.zeros((0, 2, 5, 4)), np.ones((3, 2, 2, 2))
    y = reference.conv(x, w, stride=2, padding=1)
    assert y.shape == (0, 3, 3, 3)
    assert reference.conv_grad_input(y, w, x.shape, stride=2, padding=1).shape == x.shape
    gw = reference.conv_grad_kernel(x, y, w.shape, stride=2, padding=1)
    assert gw.shape == w.shape and not gw.any()


def test_spatial_only_shapes_match_full_shapes():
    rng = _rng(52)
    x, w = _randn(rng, (2, 4, 6, 5)), _randn(rng, (6, 2, 3, 2))
    kwargs = dict(stride=2, padding=1, groups=2)
    gy = _randn(rng, reference.conv(x, w, **kwargs).shape)
    np.testing.assert_array_equal(reference.conv_grad_input(gy, w, (6, 5), **kwargs),
                                  reference.conv_grad_input(gy, w, x.shape, **kwargs))
    np.testing.assert_array_equal(reference.conv_grad_kernel(x, gy, (3, 2), **kwargs),
                                  reference.conv_grad_kernel(x, gy, w.shape, **kwargs))


def test_inputs_are_not_modified():
    rng = _rng(53)
    x, w, b = _randn(rng, (1, 2, 5, 5)), _randn(rng, (2, 2, 3, 3)), _randn(rng, 2)
    gy = _randn(rng, (1, 2, 5, 5))
    copies = [a.copy() for a in (x, w, b, gy)]
    for mode in PADDING_MODES:
        reference.conv(x, w, b, padding=1, padding_mode=mode, flip=True)
        reference.conv_grad_input(gy, w, x.shape, padding=1, padding_mode=mode)
        reference.conv_grad_kernel(x, gy, w.shape, padding=1, padding_mode=mode, flip=True)
    reference.conv_transpose(gy, w, b, padding=1)
    for original, copy in zip((x, w, b, gy), copies):
        np.testing.assert_array_equal(original, copy)


def test_nan_propagates_only_where_it_is_read():
    x = np.zeros((1, 1, 6))
    x[0, 0, 0] = np.nan
    y = reference.conv(x, np.ones((1, 1, 2)))
    assert np.isnan(y[0, 0, 0]) and not np.isnan(y[0, 0, 1:]).any()


X, W = np.ones((1, 2, 5, 5)), np.ones((4, 2, 3, 3))


@pytest.mark.parametrize("call, word", [
    (lambda: reference.conv(X, W, stride=0), "stride"),
    (lambda: reference.conv(X, W, stride=(1, 2, 3)), "stride"),
    (lambda: reference.conv(X, W, dilation=(1, 0)), "dilation"),
    (lambda: reference.conv(X, W, padding=-1), "padding"),
    (lambda: reference.conv(X, W, padding=((1, -1), (0, 0))), "padding"),
    (lambda: reference.conv(X, W, padding="half"), "padding"),
    (lambda: reference.conv(X, W, padding_mode="mirror"), "padding_mode"),
    (lambda: reference.conv(X, W, groups=2), "channels"),
    (lambda: reference.conv(X, W, groups=0), "groups"),
    (lambda: reference.conv(np.ones((1, 4, 5, 5)), np.ones((3, 2, 3, 3)), groups=2), "w"),
    (lambda: reference.conv(X[:, :, :2], W), "w"),
    (lambda: reference.conv(X[0], W), "x"),
    (lambda: reference.conv(X, W, np.ones(3)), "bias"),
    (lambda: reference.conv_grad_input(np.ones((1, 4, 4, 3)), W, (5, 5)), "gy"),
    (lambda: reference.conv_grad_input(np.ones((1, 4, 3, 3)), W, (2, 2, 5, 5)), "input_shape"),
    (lambda: reference.conv_grad_input(np.ones((1, 4, 3, 3)), W, (5,)), "input_shape"),
    (lambda: reference.conv_grad_kernel(X, np.ones((1, 4, 3, 3)), (4, 1, 3, 3)), "kernel_shape"),
    (lambda: reference.conv_grad_kernel(X, np.ones((1, 4, 3, 4)), (3, 3)), "gy"),
    (lambda: reference.conv_transpose(np.ones((1, 3, 3, 3)), W), "x"),
])
def test_bad_input_raises_value_error_naming_the_argument(call, word):
    with pytest.raises(ValueError, match=word):
        call()
