"""The safety net under "auto" (fastconv/_safety_net.py): a model that lies costs a few calls.

A fake algorithm is registered whose cost model predicts it far cheaper than anything else while
it really runs slowly (it computes the right result through im2col, then waits). "auto" picks it
first; the net must notice within a few calls, measure, and move to a faster algorithm for good.
In strict mode it must never move.
"""
import time
import types

import numpy as np
import pytest

import fastconv
from fastconv import _autotune, _measure, _registry, _safety_net
from fastconv._algorithms import im2col
from fastconv._functional import spec_from_shapes

X_SHAPE, W_SHAPE, GEOMETRY = (2, 4, 20, 20), (6, 4, 3, 3), dict(padding=1)
DELAY_S = 0.004


def _liar(predicted_s=1e-9, delay_s=DELAY_S):
    calls = []

    def run(op):
        def call(spec, a, b):
            calls.append(op)
            result = getattr(im2col, op)(spec, a, b)
            end = time.perf_counter() + delay_s
            while time.perf_counter() < end:
                pass
            return result
        return call
    fake = types.SimpleNamespace(
        NAME="liar", supports=lambda spec, op: (True, ""), cost=lambda spec, op: predicted_s,
        workspace=lambda spec, op: 0, forward=run("forward"), grad_input=run("grad_input"),
        grad_kernel=run("grad_kernel"))
    return fake, calls


@pytest.fixture
def net(monkeypatch, tmp_path):
    """The net on, its memory and the autotune records empty, a private cache directory."""
    monkeypatch.setenv("FASTCONV_CACHE_DIR", str(tmp_path))
    monkeypatch.setattr(_measure, "ROUNDS", 2)
    monkeypatch.setattr(_measure, "BUDGET_S", 0.002)
    fastconv.set_autotune(False)
    fastconv.set_strict_choice(False)
    _autotune.clear_autotune_cache()
    _safety_net.reset()
    yield
    fastconv.set_strict_choice(True)
    _autotune.clear_autotune_cache()
    _safety_net.reset()


@pytest.fixture
def liar(net):
    fake, calls = _liar()
    _registry.register(fake)
    yield calls
    del _registry._ALGORITHMS["liar"]
    _registry.clear_caches()


def _arrays(dtype="float64"):
    rng = np.random.default_rng(0)
    x = rng.standard_normal(X_SHAPE).astype(dtype)
    w = rng.standard_normal(W_SHAPE).astype(dtype)
    return x, w


def test_the_net_recovers_from_a_lying_model_within_a_few_calls(liar):
    x, w = _arrays()
    assert fastconv.choose(X_SHAPE, W_SHAPE, dtype="float64", **GEOMETRY) == "liar"
    expected = fastconv.reference.conv(x, w, **GEOMETRY)
    for _ in range(_safety_net.STRIKES + 1):
        np.testing.assert_allclose(fastconv.conv(x, w, **GEOMETRY), expected, rtol=1e-9, atol=1e-9)
    runs = liar.count("forward")
    # the measurement keeps the pick (a warm-up, a first call and the rounds), and so does the
    # head-to-head confirmation of the switch
    timing = 2 * (2 + _measure.ROUNDS)
    assert runs <= _safety_net.STRIKES + 1 + timing, "the net measured late or timed too much"
    picked = fastconv.choose(X_SHAPE, W_SHAPE, dtype="float64", **GEOMETRY)
    assert picked not in ("liar", "reference")
    for _ in range(5):
        np.testing.assert_allclose(fastconv.conv(x, w, **GEOMETRY), expected, rtol=1e-9, atol=1e-9)
    assert liar.count("forward") == runs, "the liar ran again after the net moved away from it"
    spec = spec_from_shapes(X_SHAPE, W_SHAPE, 1, 1, 1, 1, "float64")
    record = _autotune.lookup(spec, "forward")
    assert record and record["liar"] >= DELAY_S, "explain has no measured times to show"
    table = str(fastconv.explain(X_SHAPE, W_SHAPE, dtype="float64", **GEOMETRY))
    assert "forward re-ranked by measurement" in table
    assert f"forward      {picked:<10}" in table and "<- chosen" in table.split(
        f"forward      {picked:<10}")[1].splitlines()[0]


def test_strict_mode_never_switches(liar):
    fastconv.set_strict_choice(True)
    assert fastconv.get_strict_choice() is True
    x, w = _arrays()
    for _ in range(8):
        fastconv.conv(x, w, **GEOMETRY)
    assert liar.count("forward") == 8
    assert fastconv.choose(X_SHAPE, W_SHAPE, dtype="float64", **GEOMETRY) == "liar"


def test_each_operation_is_watched_on_its_own(liar):
    x, w = _arrays()
    gy = np.ones(fastconv.conv(x, w, algorithm="im2col", **GEOMETRY).shape)
    for _ in range(_safety_net.STRIKES + 1):
        fastconv.conv_grad_kernel(x, gy, w.shape, **GEOMETRY)
    assert fastconv.choose(X_SHAPE, W_SHAPE, dtype="float64", op="grad_kernel",
                           **GEOMETRY) != "liar"
    assert fastconv.choose(X_SHAPE, W_SHAPE, dtype="float64", op="forward", **GEOMETRY) == "liar"


def test_a_forced_algorithm_is_never_watched(liar):
    x, w = _arrays()
    for _ in range(6):
        fastconv.conv(x, w, algorithm="liar", **GEOMETRY)
    assert liar.count("forward") == 6
    assert fastconv.choose(X_SHAPE, W_SHAPE, dtype="float64", **GEOMETRY) == "liar"


def test_a_hot_problem_is_measured_once(net, monkeypatch):
    """An accurate model is measured once the problem's calls add up to HOT_S, and never again
    (a switch the measurement finds is timed once more, head to head: pick and winner only)."""
    monkeypatch.setattr(_safety_net, "HOT_S", 0.0)
    measured = []
    original = _measure.time_algorithms

    def counted(spec, op, impls, *args, **kwargs):
        measured.append(sorted(impls))
        return original(spec, op, impls, *args, **kwargs)
    monkeypatch.setattr(_measure, "time_algorithms", counted)
    x, w = _arrays()
    for _ in range(4):
        fastconv.conv(x, w, **GEOMETRY)
    assert len(measured) in (1, 2), measured
    assert len(measured) == 1 or len(measured[1]) == 2
    seen = len(measured)
    for _ in range(4):
        fastconv.conv(x, w, **GEOMETRY)
    assert len(measured) == seen, "the problem was measured again"


@pytest.mark.parametrize("confirmed", [False, True])
def test_a_switch_needs_a_second_measurement_to_agree(net, monkeypatch, confirmed):
    """The net leaves its pick only when the head-to-head timing agrees with the measurement: a
    burst of load during the pick's rounds must not move the choice on its own."""
    spec = spec_from_shapes(X_SHAPE, W_SHAPE, 1, 1, 1, 1, "float64")
    measurements = []

    def fake_timing(spec, op, impls, *args, **kwargs):
        measurements.append(sorted(impls))
        first = len(measurements) == 1
        return {name: (1.0 if name == "im2col" else 0.1 if first or confirmed else 1.0)
                for name in impls}
    monkeypatch.setattr(_measure, "time_algorithms", fake_timing)
    _measure.net_measure(spec, "forward", None, "im2col", 1e-3)
    assert len(measurements) == 2 and "im2col" in measurements[1] and len(measurements[1]) == 2
    assert (_safety_net.winner(spec, "forward") == "im2col") is not confirmed


def test_set_strict_choice_checks_its_argument(net):
    with pytest.raises(TypeError, match="strict must be a bool"):
        fastconv.set_strict_choice("yes")
    assert fastconv.get_strict_choice() is False


def test_the_net_keeps_the_pick_unless_another_is_clearly_faster():
    assert _safety_net.switches(1.0, 0.5) and _safety_net.switches(None, 0.5)
    assert not _safety_net.switches(1.0, 0.9) and not _safety_net.switches(1.0, None)


def test_a_pick_slower_than_a_close_rival_is_measured(net, monkeypatch):
    """The liar runs 1.5x its prediction, under SLOW_FACTOR: alone that is a model error the net
    tolerates. But another algorithm is predicted only 10% slower than the liar, so by the models'
    own numbers that one would be clearly faster than what the liar does: the net measures
    (RIVAL_FACTOR) and moves to it."""
    x, w = _arrays()
    expected = fastconv.reference.conv(x, w, **GEOMETRY)
    calls = []

    def fake(name, predicted_s, delay_s):
        def forward(spec, a, b):
            calls.append(name)
            end = time.perf_counter() + delay_s
            while time.perf_counter() < end:
                pass
            return expected.copy()
        return types.SimpleNamespace(
            NAME=name, supports=lambda spec, op: (True, ""), cost=lambda spec, op: predicted_s,
            workspace=lambda spec, op: 0, forward=forward, grad_input=None, grad_kernel=None)

    predicted = 2e-3
    assert 1.5 < _safety_net.SLOW_FACTOR and 1.5 > 1.1 * _safety_net.RIVAL_FACTOR
    monkeypatch.setattr(_registry, "_ALGORITHMS", {})
    _registry.register(fake("liar", predicted, 1.5 * predicted))
    _registry.register(fake("rival", 1.1 * predicted, 0.0))
    try:
        for _ in range(_safety_net.STRIKES + 1):
            np.testing.assert_array_equal(fastconv.conv(x, w, **GEOMETRY), expected)
        assert fastconv.choose(X_SHAPE, W_SHAPE, dtype="float64", **GEOMETRY) == "rival"
        before = calls.count("liar")
        for _ in range(3):
            fastconv.conv(x, w, **GEOMETRY)
        assert calls.count("liar") == before
    finally:
        _registry.clear_caches()


def test_the_measurement_leaves_out_candidates_predicted_far_slower_than_the_pick_ran(
        net, monkeypatch):
    """Only algorithms predicted within CONSIDER times the pick's measured time are timed: one
    predicted just under that is, one just over it is recorded as not timed (an FFT's 0.3 s
    first call on a 1.7 ms layer made most of the net's cost)."""
    spec = spec_from_shapes(X_SHAPE, W_SHAPE, 1, 1, 1, 1, "float64")
    took = 1e-3

    def fake(name, predicted_s):
        return types.SimpleNamespace(
            NAME=name, supports=lambda spec, op: (True, ""), cost=lambda spec, op: predicted_s,
            workspace=lambda spec, op: 0, forward=None, grad_input=None, grad_kernel=None)
    monkeypatch.setattr(_registry, "_ALGORITHMS", {})
    for name, predicted in (("pick", 0.5 * took), ("near", 0.9 * _safety_net.CONSIDER * took),
                            ("far", 1.1 * _safety_net.CONSIDER * took)):
        _registry.register(fake(name, predicted))
    timed = []

    def fake_timing(spec, op, impls, *args, **kwargs):
        timed.append(sorted(impls))
        return {name: took for name in impls}
    monkeypatch.setattr(_measure, "time_algorithms", fake_timing)
    try:
        _measure.net_measure(spec, "forward", None, "pick", took)
        assert timed == [["near", "pick"]]
        assert _autotune.lookup(spec, "forward") == {"pick": took, "near": took, "far": None}
        assert _safety_net.winner(spec, "forward") == "pick"
    finally:
        _registry.clear_caches()


def test_the_bar_of_a_pick_without_rival_is_its_own_prediction():
    assert _safety_net.bar(1e-3, float("inf")) == pytest.approx(_safety_net.SLOW_FACTOR * 1e-3)
    assert _safety_net.bar(1e-9, 1e-9) == _safety_net.SLOW_MIN_S


# --- prepared convolutions (fastconv.plan) are watched too ------------------------------------

def test_a_plan_recovers_from_a_lying_model_within_a_few_calls(liar):
    x, w = _arrays()
    p = fastconv.plan(X_SHAPE, W_SHAPE, dtype="float64", **GEOMETRY)
    assert p.algorithm_for("forward") == "liar"
    expected = fastconv.reference.conv(x, w, **GEOMETRY)
    for _ in range(_safety_net.STRIKES + 2):
        np.testing.assert_allclose(p.forward(x, w), expected, rtol=1e-9, atol=1e-9)
    runs = liar.count("forward")
    assert p.algorithm_for("forward") not in ("liar", "reference")
    for _ in range(5):
        np.testing.assert_allclose(p.forward(x, w), expected, rtol=1e-9, atol=1e-9)
    assert liar.count("forward") == runs, "the plan ran the liar again after the net moved"


def test_a_plan_is_measured_once_its_calls_add_up(net, monkeypatch):
    """A plan's own hot rule (PLAN_HOT_S, shorter than HOT_S): measured once, then never again
    (a switch the measurement finds is timed once more, head to head: pick and winner only);
    the plan then runs what the chooser now picks (the measured winner)."""
    monkeypatch.setattr(_safety_net, "PLAN_HOT_S", 0.0)
    measured = []
    original = _measure.time_algorithms

    def counted(spec, op, impls, *args, **kwargs):
        measured.append((op, len(impls)))
        return original(spec, op, impls, *args, **kwargs)
    monkeypatch.setattr(_measure, "time_algorithms", counted)
    x, w = _arrays()
    p = fastconv.plan(X_SHAPE, W_SHAPE, dtype="float64", **GEOMETRY)
    expected = fastconv.reference.conv(x, w, **GEOMETRY)
    for _ in range(6):
        np.testing.assert_allclose(p.forward(x, w), expected, rtol=1e-9, atol=1e-9)
    assert len(measured) in (1, 2) and measured[0][0] == "forward", measured
    assert len(measured) == 1 or measured[1] == ("forward", 2)
    assert p.algorithm_for("forward") == fastconv.choose(X_SHAPE, W_SHAPE, dtype="float64",
                                                         **GEOMETRY)
    seen = list(measured)
    q = fastconv.plan(X_SHAPE, W_SHAPE, dtype="float64", **GEOMETRY)   # the same problem: known
    for _ in range(4):
        q.forward(x, w)
    assert measured == seen, "the problem was measured again"


def test_autos_remembered_pick_never_outlives_the_kernel_it_depended_on(net, monkeypatch):
    """run() remembers "auto"'s pick per problem, except where a kernel-dependent algorithm
    (separable: rank one) ranks among the first two: then each kernel decides again."""
    separable = _registry.registered()["separable"]
    monkeypatch.setattr(separable, "cost", lambda spec, op: 1e-9)     # ranked first
    # the net never measures here: the general kernel's pick is a near-tie (blocked along planes
    # and direct, 18-26 us each), which a noisy call could send it to settle between the calls
    monkeypatch.setattr(_safety_net.Tally, "add", lambda self, seconds: False)
    _registry.clear_caches()
    rng = np.random.default_rng(3)
    x = rng.standard_normal((1, 1, 32, 32))
    rank_one = np.outer(rng.standard_normal(5), rng.standard_normal(5))[None, None]
    general = rng.standard_normal((1, 1, 5, 5))
    used = []
    for w in (rank_one, general, rank_one, general):
        np.testing.assert_allclose(fastconv.conv(x, w, padding=2),
                                   fastconv.reference.conv(x, w, padding=2), rtol=1e-9, atol=1e-9)
        used.append(_registry.last_used()[0])
    assert used == ["separable", used[1], "separable", used[1]] and used[1] != "separable"
    monkeypatch.undo()
    _registry.clear_caches()
