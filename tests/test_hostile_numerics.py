"""Issue 17, items 1 and 4: hostile values and long reductions.

Item 1: finite data near the top of the dtype's range, for which the textbook sum stays finite
but a transform (FFT's, Winograd's) overflows. Every algorithm that accepts the problem must give
a finite result equal to the reference (CONTRACT.md's tolerance), for the three operations, 1-D
and 2-D, float32 and float64. Before the fix, FFT checked one output per tile and channel and
returned Inf/NaN elsewhere.

Item 4: float32 sums of millions of terms. direct summed a 2**21-tap kernel in one running sum
(relative error 5.7e-4 against the contract's 2e-4 on uniform data); it now sums blocks of taps.
The expected values are float64 sums by NumPy, independent of fastconv.
"""
import numpy as np
import pytest

import fastconv
from fastconv import reference
from fastconv import _finite, _registry

OPS = ("forward", "grad_input", "grad_kernel")
SHAPES = {        # (x shape, w shape): 2-D with a Winograd-sized kernel, a larger one, and 1-D
    "2d_3x3": ((2, 3, 40, 40), (4, 3, 3, 3)),
    "2d_5x5": ((2, 3, 48, 40), (4, 3, 5, 5)),
    "1d": ((2, 3, 700), (4, 3, 9)),
}


def _operands(op, xs, ws, dtype, rng):
    """Positive data at a quarter of the dtype's largest value (a transform of a line or tile
    sums many of them: far beyond the range), against small weights (or gradients) scaled so that
    every partial sum of the textbook's stays below half the largest value."""
    big = np.finfo(dtype).max / 4
    taps = int(np.prod(ws[1:]))
    x = (rng.uniform(0.5, 1.0, xs) * big).astype(dtype)
    w = (rng.uniform(-1, 1, ws) / (ws[0] * taps)).astype(dtype)    # also K x taps of grad_input
    y_shape = reference.conv(np.zeros(xs, dtype), np.zeros(ws, dtype)).shape
    if op == "forward":
        return (x, w), {}
    if op == "grad_input":
        gy = (rng.uniform(0.5, 1.0, y_shape) * big).astype(dtype)
        return (gy, w, xs), {}
    positions = int(np.prod(y_shape)) // y_shape[1]         # terms of each kernel gradient entry
    gy = (rng.uniform(-1, 1, y_shape) / positions).astype(dtype)
    return (x, gy, ws), {}


def _call(op, args, algorithm):
    fn = {"forward": fastconv.conv, "grad_input": fastconv.conv_grad_input,
          "grad_kernel": fastconv.conv_grad_kernel}[op]
    ref = {"forward": reference.conv, "grad_input": reference.conv_grad_input,
           "grad_kernel": reference.conv_grad_kernel}[op]
    try:
        return fn(*args, algorithm=algorithm), ref(*args)
    except fastconv.NotSupportedError:
        return None, None


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("case", sorted(SHAPES))
@pytest.mark.parametrize("op", OPS)
def test_no_overflow_where_the_textbook_sum_has_none(op, case, dtype, assert_close_to_reference):
    rng = np.random.default_rng(17)
    xs, ws = SHAPES[case]
    args, _ = _operands(op, xs, ws, np.dtype(dtype), rng)
    checked = []
    for algorithm in fastconv.algorithms() + ("auto",):
        got, want = _call(op, args, algorithm)
        if got is None:
            continue
        assert np.isfinite(want).all()                      # the problem is representable
        assert np.isfinite(got).all(), (
            f"{algorithm} {op} {case} {np.dtype(dtype).name}: "
            f"{int((~np.isfinite(got)).sum())} of {got.size} values not finite")
        assert_close_to_reference(got, want)
        checked.append(algorithm)
    must = {"fft", "im2col", "direct", "reference"} | ({"winograd"} if case == "2d_3x3" else set())
    assert must <= set(checked), checked


@pytest.mark.parametrize("dtype,scale", [("f4", 1e35), ("f8", 5e304)])
def test_issue_example_every_output_checked(dtype, scale, assert_close_to_reference):
    """Issue 17's case (and its float64 twin): 4,421 of 51,076 outputs were Inf/NaN, none at a
    probed corner."""
    rng = np.random.default_rng(0)
    x = (rng.standard_normal((1, 1, 256, 256)) * scale).astype(dtype)
    w = (rng.standard_normal((1, 1, 31, 31)) * 0.01).astype(dtype)
    want = reference.conv(x, w)
    assert np.isfinite(want).all() and np.abs(want).max() < 10 * scale
    for algorithm in ("auto", "fft"):
        y = fastconv.conv(x, w, algorithm=algorithm)
        assert np.isfinite(y).all(), int((~np.isfinite(y)).sum())
        assert_close_to_reference(y, want)
    gy = (rng.standard_normal(want.shape) * scale).astype(dtype)
    gx = fastconv.conv_grad_input(gy, w, x.shape, algorithm="fft")
    assert np.isfinite(gx).all(), int((~np.isfinite(gx)).sum())
    assert_close_to_reference(gx, reference.conv_grad_input(gy, w, x.shape))


def test_one_dimensional_fft_near_3e35(assert_close_to_reference):
    rng = np.random.default_rng(3)
    x = (rng.standard_normal((1, 2, 5000)) * 3e35).astype("f4")
    w = (rng.standard_normal((3, 2, 40)) * 0.01).astype("f4")
    y = fastconv.conv(x, w, algorithm="fft")
    assert np.isfinite(y).all(), int((~np.isfinite(y)).sum())
    assert_close_to_reference(y, reference.conv(x, w))


def test_nonfinite_inputs_still_propagate_as_arithmetic_says(assert_close_to_reference):
    """The fallback keeps the contract's NaN/Inf pattern (the reference's) for fft and winograd."""
    rng = np.random.default_rng(5)
    x = rng.standard_normal((1, 2, 20, 20))
    w = rng.standard_normal((3, 2, 3, 3))
    x[0, 1, 7, 11] = np.inf
    x[0, 0, 2, 3] = np.nan
    for algorithm in ("fft", "winograd"):
        assert_close_to_reference(fastconv.conv(x, w, algorithm=algorithm), reference.conv(x, w))


@pytest.mark.parametrize("algorithm", ["direct", "im2col", "fft", "auto"])
def test_outputs_of_padding_alone_multiply_nonfinite_values(algorithm):
    """An empty input with padding: every output is a sum of zeros times the weights (forward)
    or gy times zeros (grad_kernel): NaN where the other factor is Inf or NaN, by arithmetic.
    direct and fft returned zeros without looking. (Not the reference: its tensordot goes
    through BLAS gemv, which skips a zero operand, and gave 0 for the kernel gradient.)"""
    x = np.ones((1, 1, 0))
    w = np.array([[[np.nan, 1.0]], [[1.0, 2.0]]])
    y = fastconv.conv(x, w, padding=1, algorithm=algorithm)
    assert y.shape == (1, 2, 1) and np.isnan(y[0, 0, 0]) and y[0, 1, 0] == 0
    gy = np.array([[[np.inf], [3.0]]])
    gw = fastconv.conv_grad_kernel(x, gy, (2, 1, 2), padding=1, algorithm=algorithm)
    assert np.isnan(gw[0]).all() and not gw[1].any()
    finite = fastconv.conv(x, np.ones((2, 1, 2)), padding=1, algorithm=algorithm)
    assert finite.tolist() == [[[0.0], [0.0]]]


@pytest.mark.parametrize("dtype", [np.float32, np.float64, np.float16])
@pytest.mark.parametrize("threads", [1, 2, 3])
def test_all_finite_looks_at_every_value(dtype, threads, restore_settings):
    """Both ways of looking (the kernels' vectors over the call's threads for contiguous
    float32/64 arrays past VECTOR_ABOVE values, NumPy's isfinite in chunks otherwise) see a NaN
    or an infinity wherever it is: the ends, the threads' part boundaries, a vector's tail."""
    fastconv.set_num_threads(threads)
    for n in (_finite.VECTOR_ABOVE, _finite.VECTOR_ABOVE + 1, (1 << 16) - 1, 1 << 16,
              3 * _finite.CHUNK + 5):
        a = np.zeros(n, dtype)
        assert _finite.all_finite(a)
        assert _finite.all_finite(a[::2])      # not contiguous: NumPy's way
        places = {0, 1, n - 1, n - 2, n // 2, n // 3, 2 * n // 3, (2 * n) // 3 - 1}
        for where in sorted(places):
            for value in (np.nan, np.inf, -np.inf):
                b = a.copy()
                b[where] = value
                assert not _finite.all_finite(b), (n, where, value)
                assert not _finite.all_finite(b.reshape(1, 1, -1)), (n, where, value)
                assert _finite.all_finite(b[where + 1:]) and _finite.all_finite(b[:where])
    assert _finite.all_finite(np.zeros((0, 3), dtype))


def test_the_registry_holds_the_one_non_finite_policy():
    """Every algorithm's NONFINITE names operations and rules the registry knows; a declaration
    it does not know is refused at registration, not ignored at the first Inf."""
    for impl in _registry.registered().values():
        for op, rule in getattr(impl, "NONFINITE", {}).items():
            assert op in _registry.OPERATIONS and rule in _finite.RULES

    class Bad:
        NAME = "bad"
        NONFINITE = {"forward": "check_results"}
    with pytest.raises(ValueError, match="NONFINITE"):
        _registry.register(Bad)
    assert "bad" not in _registry.algorithms()


# --- item 4: long reductions in float32 -------------------------------------------------------

def _relative_error(got, want):
    return float(np.abs(got.astype(np.float64) - want).max() / np.abs(want).max())


def test_direct_long_kernel_float32():
    """A 2**21-tap 1-D kernel, uniform data: the issue measured 5.7e-4 through "auto" (direct)."""
    rng = np.random.default_rng(0)
    n = 2**21
    x = rng.random((1, 1, n + 7)).astype("f4")
    w = rng.random((1, 1, n)).astype("f4")
    want = np.array([np.dot(x[0, 0, i:i + n].astype("f8"), w[0, 0].astype("f8"))
                     for i in range(8)])
    for algorithm in ("auto", "direct"):
        err = _relative_error(fastconv.conv(x, w, algorithm=algorithm)[0, 0], want)
        assert err <= 2e-5, err                     # contract 2e-4; the blocked sums give ~1e-6


def test_direct_many_channels_float32():
    """The reduction runs over channels x taps: 2**21 input channels of a 1-tap kernel."""
    rng = np.random.default_rng(1)
    C = 2**21
    x = rng.random((1, C, 4)).astype("f4")
    w = rng.random((1, C, 1)).astype("f4")
    want = np.einsum("ct,c->t", x[0].astype("f8"), w[0, :, 0].astype("f8"))
    err = _relative_error(fastconv.conv(x, w, algorithm="direct")[0, 0], want)
    assert err <= 2e-5, err


@pytest.mark.parametrize("stride", [1, 2])
def test_direct_grad_input_many_output_channels_float32(stride):
    """grad_input sums over output channels x taps: at stride 1 the transposed forward pass, at
    stride 2 the scatter (which now sums blocks in a scratch plane)."""
    rng = np.random.default_rng(2)
    K, k = 2**21, 2
    gy = rng.random((1, K, 4)).astype("f4")
    w = rng.random((K, 1, k)).astype("f4")
    n = (4 - 1) * stride + k
    want = np.zeros(n)
    g8, w8 = gy[0].astype("f8"), w[:, 0].astype("f8")
    for o in range(4):
        for t in range(k):
            want[o * stride + t] += g8[:, o] @ w8[:, t]
    err = _relative_error(fastconv.conv_grad_input(gy, w, (1, 1, n), stride=stride,
                                                   algorithm="direct")[0, 0], want)
    assert err <= 2e-5, err


BLOCKED_CASES = [   # (x shape, w shape, geometry): sums longer than a block, every path of direct
    ((2, 3, 2, 1100), (4, 3, 1, 1000), dict(padding=((0, 0), (0, 7)))),       # 4 channels a tile
    ((1, 2, 3, 2600), (1, 2, 2, 2500), dict(padding=((0, 0), (3, 3)), stride=(1, 2))),  # strided
    ((1, 1, 1, 2070), (2, 1, 1, 2050), dict(stride=(1, 3))),                   # narrow: scalar
    ((1, 2, 5, 300), (2, 2, 3, 400), dict(padding=((1, 1), (60, 60)))),        # rows, edges
    ((1, 3, 12, 40), (1, 3, 3, 300), dict(padding=((0, 0), (150, 150)))),      # 4 rows, kh 3
    ((2, 2, 9, 30), (2, 2, 5, 250), dict(padding=((0, 0), (125, 125)))),       # 4 rows, kh 5
    ((1, 3, 4, 20, 9), (1, 3, 4, 9, 9), dict(padding=2, dilation=(1, 2, 1))),  # 3-D, 3 x 324
]


@pytest.mark.parametrize("case", range(len(BLOCKED_CASES)))
def test_direct_blocked_sums_match_reference(case, assert_close_to_reference):
    xs, ws, kw = BLOCKED_CASES[case]
    rng = np.random.default_rng(case)
    x, w = rng.standard_normal(xs), rng.standard_normal(ws)
    want = reference.conv(x, w, **kw)
    assert_close_to_reference(fastconv.conv(x, w, algorithm="direct", **kw), want)
    gy = rng.standard_normal(want.shape)
    assert_close_to_reference(fastconv.conv_grad_input(gy, w, xs, algorithm="direct", **kw),
                              reference.conv_grad_input(gy, w, xs, **kw))


def test_direct_blocked_scatter_matches_reference(assert_close_to_reference):
    """grad_input at stride 2 with (K/G) x taps above a block: the scratch-plane path."""
    rng = np.random.default_rng(9)
    for ws, xs, kw in (((5, 3, 500), (2, 3, 1100), dict(stride=2, padding=((7, 3),))),
                       ((6, 2, 3, 300), (1, 4, 7, 700), dict(stride=(2, 3), groups=2,
                                                             padding=((1, 0), (4, 4))))):
        w = rng.standard_normal(ws)
        gy = rng.standard_normal(reference.conv(np.zeros(xs), w, **kw).shape)
        assert_close_to_reference(fastconv.conv_grad_input(gy, w, xs, algorithm="direct", **kw),
                                  reference.conv_grad_input(gy, w, xs, **kw))
