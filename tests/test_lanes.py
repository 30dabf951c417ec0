"""The registry's lanes (fastconv/_registry.py, _Lane): a watched "auto" call of a problem seen
before skips the chooser's working-out -- but only while the chooser's state holds and no kernel
can change the pick, and it still counts for the safety net."""
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


def _refusing(spec, a, b):
    raise _Used


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
    lane.call = _refusing               # the next call must go through the lane
    with pytest.raises(_Used):
        fastconv.conv(x, w, padding=1)


@pytest.mark.parametrize("change", ["strict", "autotune", "workspace"])
def test_a_changed_chooser_state_leaves_the_lane(change):
    x, w = _problem()
    fastconv.conv(x, w, padding=1)
    _, spec = _registry.last_used()
    _registry._lanes[(spec, "forward")].call = _refusing
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


def test_lane_calls_count_for_the_safety_net():
    x, w = _problem()
    fastconv.conv(x, w, padding=1)
    _, spec = _registry.last_used()
    lane = _registry._lanes[(spec, "forward")]
    calls = lane.tally.calls if lane.tally is not None else None
    fastconv.conv(x, w, padding=1)
    if calls is not None:
        assert lane.tally.calls == calls + 1
