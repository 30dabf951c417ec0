"""The direct algorithm's own paths, each against the reference and across thread counts.

The general suites already run "direct" over the geometry matrix; these cases aim at what is
particular to it (src/_direct.pyx, src/_direct_kernels.h): the kinds of register tile (4 output
channels, 4 rows of a run, one long row), the vector widths chosen by the row width (full, half,
quarter, scalar) in float32 (16 lanes) and float64 (8 lanes), the edge tiles that shift their
loads instead of padding, the overlapping last block of a row, the strided forward's rows stored
by phase (and its gathered tiles where the copy exceeds the workspace), the transposed forward pass of grad_input at stride 1 and its scatter at stride > 1, and the kernel
gradient's dot products (tap pairs, masked tails, narrow rows, long rows, row groups, parts).
"""

import numpy as np
import pytest

import fastconv
from fastconv import reference
from fastconv._algorithms import direct
from fastconv._geometry import make_spec

DTYPES = (np.float32, np.float64)

# name -> (x shape, w shape, keyword arguments)
CASES = {
    # 2-D, 4 output channels a tile, with an overlapping last block (6 = 4 + 2 channels)
    "channels-6-padded": ((2, 3, 21, 37), (6, 3, 3, 3), dict(padding=1)),
    # depthwise: 4 rows of a run a tile, edge tiles on both sides of 28-wide rows
    "depthwise-28": ((2, 8, 28, 28), (8, 1, 3, 3), dict(padding=1, groups=8)),
    # 5x5 depthwise (row tiles that share input rows, kernel gradient by kernel column) and a
    # 5x3 one whose rows are shorter than a vector in float32
    "depthwise-5x5": ((2, 4, 30, 41), (4, 1, 5, 5), dict(padding=2, groups=4)),
    "depthwise-5x3-narrow": ((1, 3, 21, 9), (3, 1, 5, 3), dict(padding=(2, 1), groups=3)),
    # depthwise with a channel multiplier (2 output channels per group, still rows tiles)
    "depthwise-multiplier": ((1, 3, 17, 19), (6, 1, 3, 3), dict(padding=1, groups=3)),
    # widths 7, 11, 3: quarter and half vectors, and scalar columns
    "narrow-7": ((2, 4, 7, 7), (4, 1, 3, 3), dict(padding=1, groups=4)),
    "narrow-11": ((1, 2, 9, 11), (5, 2, 3, 3), dict(padding=1)),
    "narrow-3": ((1, 2, 5, 3), (3, 2, 3, 3), dict(padding=1)),
    # a kernel nearly as wide as the input: each kernel column's valid span is shorter than a
    # vector (half vectors) while the transposed pass's rows are long
    "kernel-nearly-input": ((1, 3, 10, 40), (3, 3, 10, 30), dict(padding=((9, 0), (0, 0)))),
    # padding wider than the kernel: no interior column at all, and a transposed pass whose
    # "padding" is negative
    "wide-padding": ((1, 2, 6, 20), (3, 2, 3, 3), dict(padding=((0, 4), (5, 9)))),
    # asymmetric padding, dilation and a kernel wider than a quarter vector
    "dilated-asymmetric": ((2, 3, 12, 40), (5, 3, 2, 7),
                           dict(padding=((1, 0), (6, 2)), dilation=(2, 3))),
    # long 1-D rows: one channel in (8-vector tiles of one row; 4 output channels of 4-vector
    # tiles, audio-channels), several parts of the columns
    "audio-like": ((1, 1, 9000), (1, 1, 33), dict(padding=16)),
    "audio-channels": ((2, 1, 3000), (8, 1, 64), {}),
    # strides: gathered columns in forward and grad_kernel, scatter in grad_input
    "strided-2": ((2, 3, 19, 41), (4, 3, 3, 3), dict(stride=2, padding=1)),
    "strided-rows-only": ((1, 2, 13, 40), (3, 2, 3, 3), dict(stride=(2, 1), padding=1)),
    "strided-3-dilated": ((1, 2, 11, 50), (2, 2, 3, 5), dict(stride=(1, 3), dilation=2, padding=3)),
    # the forward's phases: wav2vec's single-channel first layer (10 taps, stride 5, rows whose
    # length is no multiple of the stride), a stem's 7x7/2 with padding wider than a phase's
    # first tap, a stride longer than the kernel (phases no tap reads) and past the input
    "phased-audio": ((2, 1, 1003), (12, 1, 10), dict(stride=5)),
    "phased-stem": ((1, 3, 23, 37), (5, 3, 7, 7), dict(stride=2, padding=3)),
    "phased-sparse": ((1, 2, 40), (3, 2, 2), dict(stride=7, padding=(5,))),
    "phased-3d": ((1, 2, 5, 6, 41), (3, 2, 2, 3, 3), dict(stride=(1, 2, 4), padding=1)),
    # 3-D through the lifted geometry
    "3d": ((2, 3, 7, 9, 20), (5, 3, 3, 3, 3), dict(padding=1)),
    "3d-depthwise": ((1, 4, 6, 8, 18), (4, 1, 3, 2, 3), dict(padding=(1, 0, 2), groups=4)),
    # grouped dense, 1x1 kernels, a single output element
    "grouped": ((2, 8, 15, 23), (8, 2, 3, 3), dict(groups=4, dilation=2, padding=2)),
    "pointwise": ((2, 16, 9, 20), (8, 16, 1, 1), {}),
    "single-output": ((1, 3, 5, 5), (2, 3, 5, 5), {}),
    # tall images: the kernel gradient's row groups
    "tall": ((1, 2, 90, 20), (5, 2, 3, 3), dict(padding=1)),
    # one-channel rows 4096 / 4000 bytes apart (8192 / 8000 in float64): the kernel gradient's
    # groups of 4 rows (rows that share the L1's sets), with 2 rows past the last group
    "rows-on-one-set": ((1, 1, 22, 1024), (1, 1, 5, 5), dict(padding=2)),
    "rows-near-one-set": ((1, 1, 14, 1000), (1, 1, 7, 7), {}),
}


def _arrays(name, dtype, seed=0):
    xs, ws, kw = CASES[name]
    spec = make_spec(xs, ws, **kw)
    ys = (xs[0], ws[0]) + tuple(spec.output_size[3 - (len(ws) - 2):])
    rng = np.random.default_rng(seed)
    return (rng.standard_normal(xs).astype(dtype), rng.standard_normal(ws).astype(dtype),
            rng.standard_normal(ys).astype(dtype), kw)


def _three(x, w, gy, kw, algorithm):
    return (fastconv.conv(x, w, algorithm=algorithm, **kw),
            fastconv.conv_grad_input(gy, w, x.shape, algorithm=algorithm, **kw),
            fastconv.conv_grad_kernel(x, gy, w.shape, algorithm=algorithm, **kw))


@pytest.mark.parametrize("dtype", DTYPES, ids=["float32", "float64"])
@pytest.mark.parametrize("name", list(CASES))
def test_matches_reference(name, dtype, assert_close_to_reference):
    x, w, gy, kw = _arrays(name, dtype)
    got = _three(x, w, gy, kw, "direct")
    expected = _three(x, w, gy, kw, "reference")
    for a, e in zip(got, expected):
        assert_close_to_reference(a, e, dtype)


@pytest.mark.parametrize("name", ["depthwise-28", "audio-like", "audio-channels", "strided-2", "3d",
                                  "phased-audio", "phased-stem",
                                  "tall", "rows-on-one-set"])
def test_bitwise_identical_for_any_thread_count(name, restore_settings):
    x, w, gy, kw = _arrays(name, np.float32)
    results = []
    for threads in (1, 2, 3):
        fastconv.set_num_threads(threads)
        results.append(_three(x, w, gy, kw, "direct"))
    for other in results[1:]:
        for a, b in zip(results[0], other):
            assert np.array_equal(a, b)


def test_kernel_gradient_parts_are_fixed_by_the_problem(restore_settings):
    """Few work items: the kernel gradient splits the rows into partial sums added in order."""
    x, w, gy, kw = _arrays("audio-like", np.float64)
    spec = make_spec(x.shape, w.shape, dtype=np.float64, **kw)
    fastconv.set_num_threads(1)
    one = direct._Plan(spec, "grad_kernel").parts
    fastconv.set_num_threads(2)
    assert direct._Plan(spec, "grad_kernel").parts == one > 1


def test_long_rows_are_split_into_column_parts():
    x, w, gy, kw = _arrays("audio-like", np.float32)
    spec = make_spec(x.shape, w.shape, dtype=np.float32, **kw)
    assert direct._Plan(spec, "forward").cparts > 1


@pytest.mark.parametrize("name", ["depthwise-28", "wide-padding", "strided-2", "3d"])
def test_nan_and_inf_propagate_like_the_reference(name):
    """Edge tiles never read outside the input and never multiply the padding; the NaN that the
    textbook sum gets from 0 * Inf on the padding (weights in forward, gy in grad_kernel) is put
    back, and grad_input, a sum over the input only, gets none."""
    x, w, gy, kw = _arrays(name, np.float64)
    x[(0, 1) + (0,) * (x.ndim - 2)] = np.nan            # a corner: read by edge tiles only
    x[(0, 2 % x.shape[1]) + tuple(n - 1 for n in x.shape[2:])] = np.inf
    gy[(0, 1) + (0,) * (gy.ndim - 2)] = -np.inf
    w[(1, 0) + (0,) * (w.ndim - 2)] = np.inf
    with np.errstate(invalid="ignore"):
        pairs = list(zip(_three(x, w, gy, kw, "direct"), _three(x, w, gy, kw, "reference")))
    for got, expected in pairs:
        assert np.array_equal(np.isnan(got), np.isnan(expected))
        assert np.array_equal(np.isinf(got), np.isinf(expected))
        finite = np.isfinite(expected)
        np.testing.assert_allclose(got[finite], expected[finite], rtol=1e-9, atol=1e-9)


def test_inputs_are_not_written():
    x, w, gy, kw = _arrays("strided-2", np.float32)
    copies = [a.copy() for a in (x, w, gy)]
    _three(x, w, gy, kw, "direct")
    for a, b in zip((x, w, gy), copies):
        assert np.array_equal(a, b)


def test_refuses_when_one_thread_does_not_fit_the_workspace(restore_settings):
    fastconv.set_workspace_limit(512)
    x, w, gy, kw = _arrays("3d", np.float64)
    with pytest.raises(fastconv.NotSupportedError, match="does not support"):
        fastconv.conv(x, w, algorithm="direct", **kw)


def test_workspace_limit_lowers_the_threads_not_the_result(restore_settings):
    x, w, gy, kw = _arrays("3d", np.float32)
    fastconv.set_num_threads(2)
    untiled = fastconv.conv(x, w, algorithm="direct", **kw)
    spec = make_spec(x.shape, w.shape, dtype=np.float32, **kw)
    fastconv.set_workspace_limit(direct.workspace(spec, "forward") - 1)
    assert direct._Plan(spec, "forward").threads == 1
    assert np.array_equal(untiled, fastconv.conv(x, w, algorithm="direct", **kw))


@pytest.mark.parametrize("op", ["forward", "grad_kernel"])
@pytest.mark.parametrize("name", ["phased-audio", "phased-stem", "phased-sparse", "strided-2",
                                  "strided-3-dilated", "phased-3d"])
def test_strided_passes_by_phase_match_the_gathered_ones(name, op, restore_settings):
    """A strided forward or kernel gradient stores x's rows by phase and reads them as at
    stride 1; under a workspace limit that leaves no room for the copy it gathers instead. Both
    give the reference's values (the forward sums each output's taps in the same order: the
    same bits; the kernel gradient's lanes may group the columns differently)."""
    x, w, gy, kw = _arrays(name, np.float32)
    spec = make_spec(x.shape, w.shape, dtype=np.float32, **kw)
    plan = direct._Plan(spec, op)
    assert plan.phased == x.size
    call = {"forward": lambda: fastconv.conv(x, w, algorithm="direct", **kw),
            "grad_kernel": lambda: fastconv.conv_grad_kernel(x, gy, w.shape, algorithm="direct",
                                                             **kw)}[op]
    expected = {"forward": lambda: reference.conv(x, w, **kw),
                "grad_kernel": lambda: reference.conv_grad_kernel(x, gy, w.shape, **kw)}[op]()
    phased, phased_cost = call(), direct.cost(spec, op)
    fastconv.set_workspace_limit(plan._bytes(1, 4) - 1)      # one thread, less the copy
    gathered_plan = direct._Plan(spec, op)
    assert gathered_plan.phased == 0 and gathered_plan.workspace_bytes < plan.workspace_bytes
    if spec.output_size[2] >= 16:       # the model knows the gathers (a 7-wide row's cost
        assert direct.cost(spec, op) > phased_cost      # less than the copy of its 40 values)
    gathered = call()
    scale = np.abs(expected).max()
    for got in (phased, gathered):
        np.testing.assert_allclose(got, expected, rtol=0, atol=2e-5 * scale)
    if op == "forward":
        assert np.array_equal(phased, gathered)


@pytest.mark.parametrize("op", ["forward", "grad_input", "grad_kernel"])
def test_chooser_takes_direct_for_depthwise_and_im2col_for_dense(op, restore_settings):
    """The depthwise suite case goes to a summing algorithm; a ResNet-like dense layer does not
    go to direct."""
    fastconv.set_num_threads(2)
    depthwise = fastconv.explain((8, 128, 28, 28), (128, 1, 3, 3), padding=1, groups=128)
    assert depthwise.choice[op] in ("direct", "depthwise")
    dense = fastconv.explain((8, 64, 56, 56), (64, 64, 3, 3), padding=1)
    assert dense.choice[op] != "direct"


@pytest.mark.parametrize("op", ["forward", "grad_input", "grad_kernel"])
def test_cost_and_workspace_are_positive(op):
    spec = make_spec((2, 4, 30, 30), (8, 4, 3, 3), padding=1, dtype=np.float32)
    assert direct.cost(spec, op) > 0
    assert direct.workspace(spec, op) > 0
    assert direct.supports(spec, op) == (True, "")


def _stream_and_rest(spec):
    count, _ = direct._operations(spec, "grad_kernel")
    stream = count.pop("stream") * direct.SECONDS["stream"]
    return stream, sum(direct.SECONDS[k] * v for k, v in count.items())


def test_one_stream_kernel_gradient_costs_the_longer_of_streaming_and_arithmetic():
    """A one-output-channel kernel gradient streams its two planes beside its dot products (the
    prefetcher keeps them ahead): its cost grows with the larger part only. With four output
    channels the streaming adds to the arithmetic."""
    one = make_spec((1, 1, 2048, 2048), (1, 1, 3, 3), dtype=np.float32)
    four = make_spec((1, 1, 2048, 2048), (4, 1, 3, 3), dtype=np.float32)
    for spec in (one, four):
        stream, rest = _stream_and_rest(spec)
        assert stream > 0 and rest > 0          # both parts are counted on this 16 MB plane
    stream, rest = _stream_and_rest(one)
    overhead = direct.CALL_OVERHEAD_S
    share = (direct.cost(one, "grad_kernel") - overhead) / max(stream, rest)    # 1 / the threads'
    assert 0.4 < share <= 1                                                   # speedup
    stream4, rest4 = _stream_and_rest(four)
    assert direct.cost(four, "grad_kernel") - overhead == pytest.approx((stream4 + rest4) * share)



def test_a_forward_whose_input_span_exceeds_l2_pays_a_stream_per_channel_block():
    """wav2vec's 256 -> 256 k3/2 layer: 3.3 MB of input read again by each of 64 blocks of 4
    output channels; the stream adds to its arithmetic (it measured 3x the arithmetic alone), and
    the chooser predicts it slower than blocked (it measured 3-5x); a small input (1 x 16 x 200)
    counts no stream."""
    from fastconv import _registry
    big = make_spec((1, 256, 3199), (256, 256, 3), stride=2, dtype=np.float32)
    count, _ = direct._operations(big, "forward")
    assert count["stream"] == 64 * 256 * 3199 * 4
    overhead = direct.CALL_OVERHEAD_S
    share = (direct.cost(big, "forward") - overhead) / sum(
        direct.SECONDS[k] * v for k, v in count.items())            # 1 / the threads' speedup
    assert 0.4 < share <= 1          # the stream adds to the arithmetic (4 channels' streams)
    assert _registry.predicted("direct", big, "forward") > _registry.predicted("blocked", big,
                                                                               "forward")
    small = make_spec((1, 16, 200), (16, 16, 3), dtype=np.float32)
    assert direct._operations(small, "forward")[0]["stream"] == 0


@pytest.mark.parametrize("level", [0, 1])
def test_every_kernel_set_matches_the_reference(level, check_kernel_set):
    """The x86-64-v3 kernels and the build's own (baseline) ones, which this machine would not
    pick, run in a fresh interpreter with FASTCONV_DIRECT_LEVEL lowered."""
    from fastconv import _direct
    if _direct.kernel_level() < level:
        pytest.skip("this machine runs a lower kernel set already")
    names = ("channels-6-padded", "depthwise-28", "depthwise-5x5", "narrow-7", "audio-channels",
             "strided-2", "3d", "kernel-nearly-input", "phased-audio")
    check_kernel_set("direct", "FASTCONV_DIRECT_LEVEL", level, [CASES[n] for n in names])
