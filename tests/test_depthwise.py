"""The depthwise algorithm (flattened planes) against the reference: every geometry it takes,
non-finite values, thread-count invariance, the workspace limit and each kernel set, in both of
its layouts (one plane at a time, and channel-blocked: `layout`)."""
import numpy as np
import pytest

import fastconv
from fastconv import reference
from fastconv._algorithms import depthwise
from fastconv._geometry import make_spec

OPS = ("forward", "grad_input", "grad_kernel")

# (x shape, w shape, geometry): groups = input channels, multipliers 1-3, 1-3-D
CASES = {
    "mobilenet-3x3": ((2, 8, 14, 14), (8, 1, 3, 3), dict(padding=1, groups=8)),
    "mobilenet-3x3-stride-2": ((2, 8, 15, 13), (8, 1, 3, 3), dict(stride=2, padding=1, groups=8)),
    "convnext-7x7": ((1, 4, 14, 14), (4, 1, 7, 7), dict(padding=3, groups=4)),
    # rows of a vector and more (16 floats at AVX-512) are staged straight into the grid
    "convnext-7x7-wide-rows": ((2, 20, 9, 21), (20, 1, 7, 7), dict(padding=3, groups=20)),
    "tiny-plane": ((3, 5, 2, 3), (5, 1, 2, 2), dict(padding=1, groups=5)),
    "multiplier-3": ((2, 3, 9, 11), (9, 1, 3, 2), dict(padding=(1, 0), groups=3)),
    "filter-bank": ((2, 1, 20, 17), (6, 1, 5, 5), {}),
    "stride-3-dilation-2": ((1, 4, 23, 19), (4, 1, 3, 3), dict(stride=(3, 2), dilation=2, groups=4,
                                                             padding=((2, 0), (1, 3)))),
    "1d-dilated": ((2, 6, 50), (6, 1, 5), dict(dilation=3, padding=6, groups=6)),
    "1d-stride-4": ((1, 2, 37), (4, 1, 6), dict(stride=4, padding=2, groups=2)),
    "3d": ((1, 3, 5, 6, 7), (3, 1, 3, 3, 3), dict(padding=1, groups=3)),
    "3d-stride": ((2, 2, 6, 5, 9), (4, 1, 2, 3, 2), dict(stride=(2, 1, 3), padding=1, groups=2)),
    "kernel-as-large-as-input": ((1, 2, 6, 6), (2, 1, 6, 6), dict(groups=2)),
    "padding-beyond-kernel": ((1, 2, 4, 4), (2, 1, 2, 2), dict(padding=5, groups=2)),
    "same": ((2, 4, 10, 9), (4, 1, 4, 3), dict(padding="same", groups=4)),
    "channels-past-a-vector": ((2, 37, 7, 7), (37, 1, 3, 3), dict(padding=1, groups=37)),
    "3d-depth-1-padded": ((1, 2, 1, 4, 4), (2, 1, 1, 3, 3), dict(padding=1, groups=2)),
    "channels-past-a-vector-stride-2": ((3, 21, 9, 8), (21, 1, 3, 3),
                                        dict(stride=2, padding=1, groups=21)),
}


@pytest.fixture(params=["blocked", "planes"])
def layout(request, monkeypatch):
    """Channel-blocked wherever it applies (1-D and 2-D, a multiplier of 1), or one plane at
    a time everywhere."""
    monkeypatch.setattr(depthwise, "BLOCKED_MAX_OUTPUTS",
                        2**40 if request.param == "blocked" else -1)
    depthwise._plan.cache_clear()
    yield request.param
    depthwise._plan.cache_clear()


def _arrays(rng, xs, ws, kw, dtype):
    x = rng.standard_normal(xs).astype(dtype)
    w = rng.standard_normal(ws).astype(dtype)
    gy = rng.standard_normal(reference.conv(x, w, **kw).shape).astype(dtype)
    return x, w, gy


def _three(x, w, gy, kw, algorithm):
    return (fastconv.conv(x, w, algorithm=algorithm, **kw),
            fastconv.conv_grad_input(gy, w, x.shape, algorithm=algorithm, **kw),
            fastconv.conv_grad_kernel(x, gy, w.shape, algorithm=algorithm, **kw))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("name", sorted(CASES))
def test_matches_the_reference(name, dtype, layout, rng, assert_close_to_reference):
    xs, ws, kw = CASES[name]
    x, w, gy = _arrays(rng, xs, ws, kw, dtype)
    plan = depthwise._plan(make_spec(xs, ws, dtype=dtype, **kw))
    assert bool(plan.blocked) == (layout == "blocked" and ws[0] == xs[1] and len(xs) < 5)
    for got, want in zip(_three(x, w, gy, kw, "depthwise"), _three(x, w, gy, kw, "reference")):
        assert_close_to_reference(got, want, dtype)


@pytest.mark.parametrize("padding_mode", ["reflect", "replicate", "circular"])
def test_padding_modes(padding_mode, rng, assert_close_to_reference):
    x, w, gy = _arrays(rng, (2, 4, 9, 8), (4, 1, 3, 3), dict(padding=1, groups=4), np.float64)
    kw = dict(padding=1, groups=4, padding_mode=padding_mode)
    got = fastconv.conv(x, w, algorithm="depthwise", **kw)
    assert_close_to_reference(got, reference.conv(x, w, **kw), np.float64)


def test_random_geometries_match_the_reference(layout, rng, assert_close_to_reference):
    """A seeded draw of 1-3-D geometries: strides up to 3, dilations, uneven padding,
    multipliers, planes smaller than a vector."""
    checked = 0
    while checked < 60:
        nd = int(rng.integers(1, 4))
        C, m, N = (int(v) for v in rng.integers(1, 4, size=3))
        k = tuple(int(v) for v in rng.integers(1, 5, size=nd))
        kw = dict(stride=tuple(int(v) for v in rng.integers(1, 4, size=nd)),
                  dilation=tuple(int(v) for v in rng.integers(1, 3, size=nd)),
                  padding=tuple((int(a), int(b)) for a, b in rng.integers(0, 4, size=(nd, 2))),
                  groups=C)
        xs = (N, C) + tuple(int(v) for v in rng.integers(1, 12, size=nd))
        try:
            x, w, gy = _arrays(rng, xs, (C * m, 1) + k, kw, np.float64)
        except ValueError:          # the kernel does not fit the padded input
            continue
        for got, want in zip(_three(x, w, gy, kw, "depthwise"), _three(x, w, gy, kw, "reference")):
            assert_close_to_reference(got, want, np.float64)
        checked += 1


@pytest.mark.parametrize("where", ["x", "w", "gy"])
@pytest.mark.parametrize("value", [np.inf, -np.inf, np.nan])
# convnext-7x7: stride 1, where the channel-blocked rows skip the kernel rows that read only
# padding -- unless a weight is not finite, whose products with the padding's zeros are NaN (a
# batch of one packs each item's weights, of more the call's: both checked)
@pytest.mark.parametrize("case", ["mobilenet-3x3-stride-2", "convnext-7x7", "mobilenet-3x3"])
def test_non_finite_values_give_the_reference_pattern(where, value, case, layout, rng,
                                                     assert_close_to_reference):
    xs, ws, kw = CASES[case]
    arrays = dict(zip(("x", "w", "gy"), _arrays(rng, xs, ws, kw, np.float64)))
    arrays[where].reshape(-1)[[0, 3]] = value     # a corner tap too: its kernel row is skipped
    x, w, gy = arrays["x"], arrays["w"], arrays["gy"]
    with np.errstate(all="ignore"):
        for got, want in zip(_three(x, w, gy, kw, "depthwise"),
                             _three(x, w, gy, kw, "reference")):
            assert_close_to_reference(got, want, np.float64)


def test_refuses_dense_layers():
    spec = make_spec((1, 4, 8, 8), (4, 4, 3, 3), dtype=np.float32)
    ok, reason = depthwise.supports(spec, "forward")
    assert not ok and "one input channel per group" in reason
    with pytest.raises(fastconv.NotSupportedError, match="does not support"):
        fastconv.conv(np.zeros((1, 4, 8, 8), np.float32), np.zeros((4, 4, 3, 3), np.float32),
                      algorithm="depthwise")


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("multiplier", [1, 2])
def test_bitwise_identical_for_any_thread_count(dtype, multiplier, layout, rng, restore_settings):
    xs, ws, kw = (4, 40, 17, 15), (40 * multiplier, 1, 3, 3), dict(stride=2, padding=1, groups=40)
    x, w, gy = _arrays(rng, xs, ws, kw, dtype)
    results = []
    for threads in (1, 2, 3):
        fastconv.set_num_threads(threads)
        results.append(_three(x, w, gy, kw, "depthwise"))
    for other in results[1:]:
        for a, b in zip(results[0], other):
            assert np.array_equal(a, b)


def test_workspace_limit_is_kept_or_refused(rng, restore_settings):
    xs, ws, kw = (2, 3, 40, 40), (3, 1, 3, 3), dict(padding=1, groups=3)
    spec = make_spec(xs, ws, padding=1, groups=3, dtype=np.float32)
    for op in OPS:
        assert depthwise.workspace(spec, op) > 0
    fastconv.set_workspace_limit(1024)
    assert not depthwise.supports(spec, "forward")[0]
    with pytest.raises(fastconv.NotSupportedError, match="workspace"):
        fastconv.conv(np.ones(xs, np.float32), np.ones(ws, np.float32), algorithm="depthwise", **kw)


def test_does_not_write_into_its_inputs(rng):
    xs, ws, kw = CASES["convnext-7x7"]
    x, w, gy = _arrays(rng, xs, ws, kw, np.float32)
    copies = [a.copy() for a in (x, w, gy)]
    _three(x, w, gy, kw, "depthwise")
    for a, b in zip((x, w, gy), copies):
        assert np.array_equal(a, b)


@pytest.mark.parametrize("level", [0, 1])
def test_every_kernel_set_matches_the_reference(level, check_kernel_set):
    """The x86-64-v3 kernels and the build's own (baseline) ones, which this machine would not
    pick, run in a fresh interpreter with FASTCONV_DEPTHWISE_LEVEL lowered."""
    from fastconv import _depthwise
    if _depthwise.kernel_level() < level:
        pytest.skip("this machine runs a lower kernel set already")
    names = ("mobilenet-3x3", "mobilenet-3x3-stride-2", "convnext-7x7", "multiplier-3",
             "1d-dilated", "3d-stride")
    check_kernel_set("depthwise", "FASTCONV_DEPTHWISE_LEVEL", level, [CASES[n] for n in names])


def test_explain_says_which_layout_runs():
    lanes = depthwise._lanes(4)
    text = str(fastconv.explain((2, 40, 7, 7), (40, 1, 3, 3), padding=1, groups=40,
                                dtype="float32"))
    assert text.count(f"channel-blocked, {lanes} channels a vector") == 3
    text = str(fastconv.explain((2, 4, 7, 7), (8, 1, 3, 3), padding=1, groups=4,
                                dtype="float32"))
    assert text.count("plane by plane") == 3         # a multiplier of 2
