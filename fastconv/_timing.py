"""The one clock and the one pair of timers behind every measurement in fastconv.

Calibration, autotuning, the safety net's measurement, ``fastconv bench``, the sweep, the CLI's
tour and the scripts in bench/ all time through these two functions; what differs between them
(repeats, warm-up, when to give up on a slow candidate, a deadline) is a parameter, so their
numbers mean the same thing.

* `best_of(fn, repeat)`: the best of `repeat` timed calls of one callable after a warm-up.
* `interleaved(fns, rounds, budget)`: the best time of each of several callables, run in turns
  (round after round, each callable a few times in each), so that a load that passes over the
  machine slows them all alike instead of deciding the ranking.

This module imports nothing from fastconv: any floor may read the clock.
"""
import math
import time

clock = time.perf_counter


def seconds(fn):
    """The seconds one call of `fn` takes."""
    start = clock()
    fn()
    return clock() - start


def best_of(fn, repeat, *, warmup=1, budget=math.inf):
    """Best seconds of `repeat` timed calls of `fn`, after `warmup` untimed ones; stops early once
    the timed calls have taken more than `budget` seconds in all (at least one is timed)."""
    for _ in range(warmup):
        fn()
    best, spent = math.inf, 0.0
    for _ in range(repeat):
        elapsed = seconds(fn)
        best, spent = min(best, elapsed), spent + elapsed
        if spent > budget:
            break
    return best


def interleaved(fns, rounds, budget, *, warmup=0, count_first=True, min_reps=1, max_reps=10,
                shortest=1e-6, skip=(), give_up=None, keep=(), close=None, deadline=None,
                samples=None):
    """{name: best seconds} of each callable of `fns` ({name: callable}), in the order of `fns`.

    Each callable is called `warmup` times untimed, then once timed: its first time, which sizes
    its repeats and (with `count_first`) counts as a measurement. One whose first call raises an
    exception of the classes in `skip` is left out of the result. Then `rounds` rounds each run
    every callable in turn, `reps` times in a row, reps = budget / rounds / first time (taken as
    at least `shortest`), clamped to [min_reps, max_reps]: `budget` is roughly the seconds each
    callable gets over all rounds.

    * `give_up`: a callable (but those in `keep`) whose first call took more than `give_up` times
      the fastest first call is timed once more, and if that call too is that slow, it is not
      run in the rounds; the better of the two is its result. (One call can meet a stall of the
      host: blocked's first call on a 77 MB layer once took 88 ms against its 10-11, and the
      safety net dropped it from the candidates it then measured.)
    * `deadline`: a `clock()` time after which no further round starts (the first always runs).
    * `close`: afterwards, the callables within `close` times the fastest run `rounds` rounds more
      among themselves (when two or more were timed): noise would otherwise decide near-ties.
    * `samples`: a dict that receives, per callable, the list of its timed calls in the rounds
      (not the first call), so that a caller can see how much the repeats differ.
    """
    first = {}
    for name, fn in fns.items():
        try:
            for _ in range(warmup):
                fn()
            first[name] = seconds(fn)
        except skip:
            continue
    best = {name: (t if count_first else math.inf) for name, t in first.items()}
    fastest_first = min(first.values(), default=0.0)
    reps = {}
    for name, t in first.items():
        if give_up is not None and name not in keep and t > give_up * fastest_first:
            again = seconds(fns[name])              # a second look before giving up
            t = min(t, again)
            if t > give_up * fastest_first:
                best[name] = t
                continue
            best[name] = min(best[name], again)
        reps[name] = max(min_reps, min(max_reps, int(budget / rounds / max(t, shortest))))

    def run_rounds(names, count):
        for r in range(count):
            if r and deadline is not None and clock() > deadline:
                break
            for name in names:
                fn = fns[name]
                for _ in range(reps[name]):
                    elapsed = seconds(fn)
                    best[name] = min(best[name], elapsed)
                    if samples is not None:
                        samples.setdefault(name, []).append(elapsed)

    run_rounds(list(reps), rounds)
    if close is not None and len(best) > 1:
        floor = min(best.values())
        run_rounds([n for n in reps if best[n] <= close * floor], rounds)
    return best
