"""The registry's lanes (fastconv/_registry.py, _Lane): a watched "auto" call of a problem seen
before skips the chooser's working-out -- but only while the chooser's state holds and no kernel
can change the pick, and it still counts for the safety net."""
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

import fastconv
from fastconv import _call_memo, _registry, _safety_net, reference


@pytest.fixture(autouse=True)
def _fresh():
    """The net on (the suite runs in strict choice, tests/conftest.py), nothing remembered."""
    strict = fastconv.get_strict_choice()
    fastconv.set_strict_choice(False)
    _call_memo.clear()
    _registry._lanes.clear()
    _safety_net.reset()
    yield
    _registry._lanes.clear()
    _safety_net.reset()
    fastconv.set_strict_choice(strict)


def _problem(seed=0):
    rng = np.random.default_rng(seed)
    return (rng.standard_normal((2, 4, 11, 10)).astype(np.float32),
            rng.standard_normal((6, 4, 3, 3)).astype(np.float32))


class _Used(Exception):
    pass


class _Refusing:
    """An algorithm whose every operation raises _Used: put on a lane, it shows the lane ran."""

    def __getattr__(self, op):
        def refuse(spec, a, b):
            raise _Used
        return refuse


_refusing = _Refusing()


def test_a_second_auto_call_runs_on_the_lane_and_matches_the_forced_algorithm():
    x, w = _problem()
    first = fastconv.conv(x, w, padding=1)
    name, spec = _registry.last_used()
    lane = _registry._lanes[(spec, "forward")]
    assert lane.name == name
    again = fastconv.conv(x, w, padding=1)
    np.testing.assert_array_equal(first, again)
    np.testing.assert_array_equal(again, fastconv.conv(x, w, padding=1, algorithm=name))
    np.testing.assert_allclose(again, reference.conv(x.astype(np.float64), w.astype(np.float64),
                                                     padding=1), rtol=1e-4, atol=1e-4)
    lane.impl = _refusing               # the next call must go through the lane
    with pytest.raises(_Used):
        fastconv.conv(x, w, padding=1)


@pytest.mark.parametrize("change", ["strict", "autotune", "workspace"])
def test_a_changed_chooser_state_leaves_the_lane(change):
    x, w = _problem()
    fastconv.conv(x, w, padding=1)
    _, spec = _registry.last_used()
    _registry._lanes[(spec, "forward")].impl = _refusing
    tune, limit = fastconv.get_autotune(), fastconv.get_workspace_limit()
    try:
        if change == "strict":
            fastconv.set_strict_choice(True)
        elif change == "autotune":
            fastconv.set_autotune(True)
        else:
            fastconv.set_workspace_limit(limit // 2)
        y = fastconv.conv(x, w, padding=1)     # not the refusing lane
    finally:
        fastconv.set_strict_choice(False)
        fastconv.set_autotune(tune)
        fastconv.set_workspace_limit(limit)
    np.testing.assert_allclose(y, reference.conv(x.astype(np.float64), w.astype(np.float64),
                                                 padding=1), rtol=1e-4, atol=1e-4)


def test_a_pick_that_depends_on_the_kernel_gets_no_lane():
    """Separable (a rank-one kernel) can decide "auto" for a one-channel image with a large
    kernel: each call's kernel must be looked at, so no lane is kept."""
    rng = np.random.default_rng(3)
    x = rng.standard_normal((1, 1, 128, 128))
    rank_one = np.outer(rng.standard_normal(15), rng.standard_normal(15))[None, None]
    full = rng.standard_normal((1, 1, 15, 15))
    picks = set()
    for w in (rank_one, full, rank_one):
        y = fastconv.conv(x, w)
        picks.add(_registry.last_used()[0])
        np.testing.assert_allclose(y, reference.conv(x, w), rtol=1e-10, atol=1e-10)
    spec = _registry.last_used()[1]
    assert _registry._auto[(spec, "forward")][1], "separable should decide this problem"
    assert (spec, "forward") not in _registry._lanes
    assert len(picks) == 2


def _ops(x, w, geometry):
    y = fastconv.conv(x, w, **geometry)
    gy = np.random.default_rng(9).standard_normal(y.shape).astype(x.dtype)
    return {"forward": lambda: fastconv.conv(x, w, **geometry),
            "grad_input": lambda: fastconv.conv_grad_input(gy, w, x.shape, **geometry),
            "grad_kernel": lambda: fastconv.conv_grad_kernel(x, gy, w.shape, **geometry)}


@pytest.mark.parametrize("op", ["forward", "grad_input", "grad_kernel"])
def test_every_operation_runs_on_its_lane_as_on_the_full_path(op):
    x, w = _problem()
    call = _ops(x, w, dict(padding=1))[op]
    first = call()
    name, spec = _registry.last_used()
    lane = _registry._lanes[(spec, op)]
    assert lane.name == name and lane.tally is not None
    calls = lane.tally.calls
    np.testing.assert_array_equal(call(), first)
    assert lane.tally.calls == calls + 1            # the net counts lane calls
    fastconv.set_strict_choice(True)                # the full path, the same pick
    try:
        np.testing.assert_array_equal(call(), first)
        assert _registry.last_used()[0] == name
    finally:
        fastconv.set_strict_choice(False)


def test_the_non_finite_policy_holds_on_the_lane():
    """An infinity in x and one in w (blocked and Winograd give such a kernel up, to the
    summation): the lane's result is the full path's, NaN for NaN."""
    x, w = _problem()
    fastconv.conv(x, w, padding=1)
    x, w = x.copy(), w.copy()
    x[0, 1, 4, 4] = np.inf
    w[2, 3, 1, 1] = -np.inf
    on_lane = fastconv.conv(x, w, padding=1)
    fastconv.set_strict_choice(True)
    try:
        full = fastconv.conv(x, w, padding=1)
    finally:
        fastconv.set_strict_choice(False)
    np.testing.assert_array_equal(on_lane, full)
    with np.errstate(invalid="ignore"):        # inf - inf in the textbook sum: NaN, as ours
        want = reference.conv(x.astype(np.float64), w.astype(np.float64), padding=1)
    np.testing.assert_array_equal(np.isfinite(on_lane), np.isfinite(want))


def test_a_settled_or_forgotten_winner_leaves_the_lane():
    x, w = _problem()
    fastconv.conv(x, w, padding=1)
    _, spec = _registry.last_used()
    _registry._lanes[(spec, "forward")].impl = None     # a lane still taken would fail
    _safety_net.reset()                                 # the net's state changed
    np.testing.assert_allclose(fastconv.conv(x, w, padding=1),
                               reference.conv(x.astype(np.float64), w.astype(np.float64),
                                              padding=1), rtol=1e-4, atol=1e-4)
    assert _registry._lanes[(spec, "forward")].impl is not None    # a new lane


def test_threads_calling_one_problem_get_the_same_result():
    """Three Python threads on one problem, its lane dropped now and then: every result the same
    (a lane made from another thread's state once kept a stale pick)."""
    x, w = _problem()
    want = fastconv.conv(x, w, padding=1)

    def calls(seed):
        out = []
        for i in range(60):
            out.append(fastconv.conv(x, w, padding=1))
            if (i + seed) % 17 == 0:
                _registry._lanes.clear()
        return out
    with ThreadPoolExecutor(3) as pool:
        results = [y for out in pool.map(calls, range(3)) for y in out]
    assert len(results) == 180
    for r in results:
        np.testing.assert_array_equal(r, want)
