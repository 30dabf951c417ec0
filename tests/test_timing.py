"""fastconv._timing: the give-up rule of interleaved timing, on scripted durations (no clock)."""
import pytest

from fastconv import _timing


@pytest.fixture
def scripted(monkeypatch):
    """Callables return their call's duration; `seconds` reports it instead of reading the clock."""
    monkeypatch.setattr(_timing, "seconds", lambda fn: fn())


def _script(times, calls, name):
    def fn():
        calls.append(name)
        return times.pop(0) if len(times) > 1 else times[0]
    return fn


def test_a_stalled_first_call_gets_a_second_look(scripted):
    """A candidate whose first timed call met a stall (100 against 1) is timed once more and, at
    its real speed then, runs the rounds like the others; one slow twice is given up."""
    calls = []
    fns = {"fast": _script([1.0], calls, "fast"),
           "stalled": _script([1.0, 100.0, 0.9], calls, "stalled"),    # warm-up, first, again
           "slow": _script([50.0], calls, "slow")}
    best = _timing.interleaved(fns, rounds=2, budget=4.0, warmup=1, give_up=4.0)
    assert best["stalled"] == 0.9 and best["fast"] == 1.0 and best["slow"] == 50.0
    assert calls.count("stalled") > 3          # warm-up, first, the second look, then rounds
    assert calls.count("slow") == 3            # warm-up, first, the second look: given up


def test_kept_candidates_are_never_given_up(scripted):
    calls = []
    fns = {"fast": _script([1.0], calls, "fast"), "slow": _script([50.0], calls, "slow")}
    _timing.interleaved(fns, rounds=2, budget=4.0, give_up=4.0, keep=("slow",))
    assert calls.count("slow") == 1 + 2        # its first call, then a repeat in each round
