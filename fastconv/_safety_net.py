"""The safety net under "auto": a model error may cost a few calls, never a whole run.

The chooser picks by predicted time (cost models x calibration). A model can be wrong on a
machine or a layer it was not fitted on, and then "auto" runs an algorithm many times slower than
the best one fastconv has. The net watches the calls "auto" makes (a clock read before and after
the kernel: tens of nanoseconds) and measures the problem once, by timing the applicable
algorithms as autotuning does, when either

* **slow**: each of STRIKES calls after the first (which pays page faults and cold caches) took
  at least the problem's bar (the fastest of them counts, so one call slowed by a passing load
  does not): SLOW_FACTOR times the pick's prediction, or RIVAL_FACTOR times the prediction of the
  next-best algorithm if that is lower (by the models' own numbers another algorithm would then
  be clearly faster than what the pick does), and never under SLOW_MIN_S (overheads the models
  leave out); or
* **hot**: the problem's "auto" calls have taken HOT_S seconds in all (the measurement then costs
  a small fraction of the time the problem takes anyway); this catches the other kind of error,
  an algorithm predicted slow that is fast.

From then on "auto" runs the measured winner for that problem (and operation) in this process,
if it was measured clearly faster than the models' pick (SWITCH) twice -- the measurement, then
the two timed again head to head (`_measure`), so that one burst of load on a shared machine cannot
move the choice -- else keeps the pick.
The timings join the autotune records, so ``explain`` shows them, and are written to the cache
file when autotuning is on (``set_autotune(True)``, which measures every problem at its first call
and so needs no net).

Reproducibility: the choice, and so the rounding of the result, of a problem can change once in a
process, after a few calls; which way depends on measured times. ``set_strict_choice(True)`` (or
``FASTCONV_STRICT_CHOICE=1``) turns the net off: "auto" is then a pure function of the shapes,
the calibration and the workspace limit, as before. Forced algorithms are never watched.
"""
import math
import os
import threading

SLOW_FACTOR = 2.0       # calls this many times their prediction are slow,
RIVAL_FACTOR = 1.1      # ... or this many times the next-best algorithm's prediction (1.25
                        # let ConvNeXt's 7x7 depthwise input gradient run on direct at 2.3-2.4x:
                        # both models erred 1.5-1.9x, in opposite directions),
SLOW_MIN_S = 2e-5       # ... unless they took less than this (a call's own fixed cost, 10-20 us;
                        # 50 us before the call memo, which let a 20 us 1-D layer run 1.6x slow)
STRIKES = 2             # slow calls (after the first) before the net measures
HOT_S = 2.0             # measure a problem once its auto calls have taken this long in all
GIVE_UP = 4.0           # a candidate whose first timed call is this many times the best is dropped
SWITCH = 0.8            # the net leaves the models' pick only for one measured this much faster
CONSIDER = 3.0          # candidates predicted this many times slower than the pick took are not
                        # timed: over the chooser sweeps at three kernel levels (about 4,000
                        # problems and operations) no algorithm 1.25x faster than the models' pick
                        # was predicted above 1.33x the pick's measured time. At 30 the net also
                        # warmed up FFTs (0.3 s first calls: plans, 160 MB of spectra) and slow
                        # directs: 15.5 s of measurement over the judge's networks, 7.5 s at 3

_lock = threading.Lock()
_strict = os.environ.get("FASTCONV_STRICT_CHOICE", "") not in ("", "0")
_watch = {}             # (spec, op) -> (calls, seconds in all, fastest call after the first)
_winner = {}            # (spec, op) -> the measured winner
changes = 0             # bumped whenever a winner is settled or forgotten (choices made before
                        # may be stale: prepared convolutions and run()'s cache look at it)


def set_strict_choice(strict=True):
    """With ``strict=True`` "auto" never re-ranks a problem from the times it observes: the
    choice depends on the shapes, the calibration and the workspace limit alone."""
    global _strict
    if not isinstance(strict, bool):
        raise TypeError(f"strict must be a bool, got {strict!r} ({type(strict).__name__})")
    _strict = strict


def get_strict_choice():
    return _strict


def reset():
    """Forget every observation and measured winner (after calibrating, in tests)."""
    global changes
    with _lock:
        _watch.clear()
        _winner.clear()
        changes += 1


def winner(spec, op):
    """The measured winner of this problem, or None."""
    return _winner.get((spec, op))


def bar(predicted, rival):
    """Seconds from which a call of the pick (`predicted` seconds; the next-best algorithm
    `rival`, inf where there is none) counts as slow."""
    return max(min(SLOW_FACTOR * predicted, RIVAL_FACTOR * rival), SLOW_MIN_S)


def observe(spec, op, slow_s, seconds):
    """Record one "auto" call of `seconds` (slow from `slow_s`, see bar()); True when the
    problem should now be measured (once)."""
    key = (spec, op)
    with _lock:
        if key in _winner:
            return False
        calls, total, best = _watch.get(key, (0, 0.0, math.inf))
        if calls:                       # the first call pays page faults and cold caches
            best = min(best, seconds)
        calls, total = calls + 1, total + seconds
        _watch[key] = (calls, total, best)
        slow = calls > STRIKES and best >= slow_s
        if slow or total >= HOT_S:
            _winner[key] = None         # measuring: no other call starts it again
            return True
        return False


def switches(picked_s, fastest_s):
    """Whether a measurement (seconds of the models' pick and of the fastest) is reason to leave
    the pick: a clear win only, so that noise on a shared machine does not move the choice."""
    if picked_s is None or fastest_s is None:
        return fastest_s is not None
    return fastest_s <= SWITCH * picked_s


def settle(spec, op, name):
    """Make `name` the winner of this problem from now on."""
    global changes
    with _lock:
        _winner[(spec, op)] = name
        _watch.pop((spec, op), None)
        changes += 1


REPORT_S = 0.05         # a tally hands its fast calls' time to the hot rule in steps of this much
PLAN_HOT_S = 0.03       # a prepared convolution is measured once its own calls have taken this long


class Tally:
    """The watch of one problem's calls, kept by a prepared convolution (`_prepared`) or by
    `conv`'s remembered pick (`_registry._auto_pick`): it reports to the net only
    what can change the net's verdict -- each call until one after the first has been fast (under
    `slow_s`; from then on the slow rule cannot fire for the problem, as `observe` keeps the
    fastest call), every slow call, and the time of the others in steps of REPORT_S for the hot
    rule. `observe` on every call costs a lock and a dict update (2 us); this costs an addition.

    A plan is made to be called many times, so its hot rule is its own and shorter: once its
    calls have taken PLAN_HOT_S in all, the problem is measured (the measurement times each
    candidate for about NET_BUDGET_CALLS calls of the pick: a few percent of a run that calls it
    that long, and a model's 2x miss on a small network's layer is then paid back within a few
    dozen calls)."""

    __slots__ = ("spec", "op", "slow_s", "calls", "fast_seen", "pending", "total")

    def __init__(self, spec, op, slow_s, prepared=True):
        """`prepared`: a plan's tally, with its own hot rule; `conv`'s calls have only the
        problem's (HOT_S)."""
        self.spec, self.op, self.slow_s = spec, op, slow_s
        self.calls, self.fast_seen, self.pending = 0, False, 0.0
        self.total = 0.0 if prepared else -math.inf

    def add(self, seconds):
        """Count one call; True when the problem should now be measured (once)."""
        self.calls += 1
        self.total += seconds
        if self.total >= PLAN_HOT_S and self.calls > 1:
            self.total = -math.inf          # asks once
            if _request((self.spec, self.op)):
                return True
        fast = seconds < self.slow_s
        if self.fast_seen and fast:
            self.pending += seconds
            if self.pending < REPORT_S:
                return False
            seconds, self.pending = self.pending, 0.0
            return _add_time(self.spec, self.op, seconds)
        if fast and self.calls > 1:
            self.fast_seen = True
        return observe(self.spec, self.op, self.slow_s, seconds)


def _request(key):
    """Mark the problem `key` as being measured; False when it is or has been already."""
    with _lock:
        if key in _winner:
            return False
        _winner[key] = None
        _watch.pop(key, None)
        return True


def _add_time(spec, op, seconds):
    """Add `seconds` of fast calls to the problem's time in all (the hot rule only)."""
    key = (spec, op)
    with _lock:
        if key in _winner:
            return False
        calls, total, best = _watch.get(key, (0, 0.0, math.inf))
        _watch[key] = (calls, total + seconds, best)
        if total + seconds >= HOT_S:
            _winner[key] = None
            return True
        return False
