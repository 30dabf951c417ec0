"""How many of this process's cores other processes are using: the thread cap on a busy machine.

A parallel region splits its work evenly and ends at a barrier. When another process holds one
of two cores, the thread that shares that core runs half the time, so two threads finish no
sooner than one; and every barrier waits for that thread's next time slice, so a call made of
many short regions (a small network's training step) runs many times slower on two threads
than on one (issue 16: 24.6 ms on one thread, 155 ms on two). So a call runs on at most as many
threads as there are cores the rest of the machine leaves free.

"Free" is measured, not guessed: the busy time of the CPUs this process may run on, from
``/proc/stat`` (user, system, interrupts and a hypervisor's steal; not niced processes, which
yield their core), minus this process's own CPU time (`time.process_time`, which counts its
OpenMP workers), over the time since the last reading. Readings are taken at most every `REFRESH_S`, so a call pays for one only a few
times a second (about 20 us). The first reading has nothing to compare with, and a window longer
than `STALE_S` (the first call in a while) may average away a load that has just started: after
either, the next reading comes after `FIRST_WINDOW_S` (five scheduler ticks per core), so a
process starting on a busy machine runs its first 50 ms uncapped.

Results do not depend on the thread count (every algorithm is bitwise thread-count invariant),
so following the load changes only the time. Where ``/proc`` is absent (macOS, Windows) nothing
is capped. ``FASTCONV_ADAPT_THREADS=0`` turns the cap off.
"""
import os
import threading
import time

REFRESH_S = 0.25
FIRST_WINDOW_S = 0.05
STALE_S = 2.0
_clock = time.monotonic
_STAT = "/proc/stat"

_lock = threading.Lock()
_last = None        # (monotonic seconds, busy CPU seconds of our CPUs, this process's CPU seconds)
_others = 0.0       # cores the rest of the machine used over the last window
_look_again_s = REFRESH_S
enabled = os.environ.get("FASTCONV_ADAPT_THREADS", "1").strip() not in ("0", "false", "no", "off")


def _our_cpus():
    if hasattr(os, "sched_getaffinity"):
        return frozenset(os.sched_getaffinity(0))
    return None


_cpus = _our_cpus()
_cores = len(_cpus) if _cpus else (os.cpu_count() or 1)
_tick = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


def _busy_seconds():
    """Busy CPU seconds, since boot, of the CPUs this process may run on; None without /proc."""
    try:
        with open(_STAT, "rb") as f:
            lines = f.read().splitlines()
    except OSError:
        return None
    # a niced process's time is not counted: it yields its core to us (nice 19 keeps about
    # 1.5% of a core against a normal one), so that core is as good as free -- unless this
    # process is niced too, when its own time is in that column and its rivals are its peers
    niced = os.nice(0) > 0 if hasattr(os, "nice") else False
    busy = 0
    for line in lines[1:]:
        if not line.startswith(b"cpu"):
            break
        fields = line.split()
        if _cpus is not None and int(fields[0][3:]) not in _cpus:
            continue
        # user nice system idle iowait irq softirq steal (guest time is inside user already)
        user, nice, system, _idle, _iowait, irq, softirq, steal = map(int, fields[1:9])
        busy += user + system + irq + softirq + steal + (nice if niced else 0)
    return busy / _tick


def cores_used_elsewhere():
    """Cores the rest of the machine has been using lately (0.0 where that cannot be told)."""
    global _last, _others, _look_again_s
    now = _clock()
    last = _last
    if last is not None and now - last[0] < _look_again_s:
        return _others              # the common case, without the lock
    with _lock:
        if _last is not None and now - _last[0] < _look_again_s:
            return _others
        busy = _busy_seconds()
        if busy is None:
            return 0.0
        own = time.process_time()
        if _last is None:           # nothing to compare with yet: free until a window says not
            _others, _look_again_s = 0.0, FIRST_WINDOW_S
        else:
            wall = now - _last[0]
            _others = max(0.0, (busy - _last[1]) - (own - _last[2])) / wall
            # a long window may average away a load that has just begun: look again soon
            _look_again_s = FIRST_WINDOW_S if wall > STALE_S else REFRESH_S
        _last = (now, busy, own)
        return _others


def settle(seconds=0.1):
    """For a long command about to start (a benchmark): a fresh window of `seconds`, so that its
    first calls see the load instead of assuming none. Returns `cores_used_elsewhere()`."""
    global _last
    with _lock:
        _last = None
    cores_used_elsewhere()                  # the first reading: the next is due FIRST_WINDOW_S on
    time.sleep(max(seconds, FIRST_WINDOW_S))
    return cores_used_elsewhere()


def thread_cap(budget):
    """At most `budget` threads, and no more than the cores other processes leave free
    (at least one)."""
    if budget <= 1 or not enabled:
        return budget
    free = int(_cores - cores_used_elsewhere() + 0.5)
    return max(1, min(budget, free))


# --- trying the full budget on a busy machine ----------------------------------------------------
# The cap is right for calls made of many short parallel regions (a small network's step: each
# barrier waits out a time slice) and wrong for one long region: the scheduler shares two cores
# among three busy threads, so two of them get 4/3 of a core, not one (a ResNet layer on
# Winograd: 4.4 ms on two threads beside a spinning process, 7.8 ms on one). Which kind a call
# is, only the clock knows; so a call that repeats (a training loop, a benchmark) is timed under
# both counts, alternately, `TRIAL_CALLS` times each after an untimed first call, and its later
# calls use the faster in total -- the full budget only if it is clearly faster
# (`FULL_MUST_WIN`), since a busy machine's times scatter and its stalls are the cost. A call
# under `TRIAL_MIN_S` on the capped count is not tried further: its stalls would cost more than
# a second thread could win. A verdict holds for `TRIAL_S` seconds of the same load, then is
# tried again.
TRIAL_CALLS = 5
TRIAL_MIN_S = 0.0015   # a call shorter than this on the capped count is not tried on more
FULL_MUST_WIN = 0.85
TRIAL_S = 20.0
_trials = {}        # (key, capped, budget) -> [expires, {threads: [seconds, ...]}]


def trial_threads(key, capped, budget):
    """(threads for this call of `key`, whether to `record` its time) when the machine is busy:
    `capped` or `budget` while the trial runs, then the faster."""
    now = _clock()
    with _lock:
        entry = _trials.get((key, capped, budget))
        if entry is None or entry[0] < now:
            if len(_trials) > 4096:
                _trials.clear()
            entry = _trials[(key, capped, budget)] = [now + TRIAL_S, {capped: [], budget: []}]
            return capped, False        # the first call plans and warms caches: not timed
        times = entry[1]
        if times[capped] and min(times[capped]) < TRIAL_MIN_S:
            return capped, False
        tried_capped, tried_full = len(times[capped]), len(times[budget])
        if tried_capped <= tried_full and tried_capped < TRIAL_CALLS:     # in turns
            return capped, True
        if tried_full < TRIAL_CALLS:
            return budget, True
        # sums, not minima: what a busy machine costs a parallel call is its stalls
        full_wins = sum(times[budget]) < FULL_MUST_WIN * sum(times[capped])
        return (budget if full_wins else capped), False


def record(key, capped, budget, threads, seconds):
    """A trial call's time."""
    with _lock:
        entry = _trials.get((key, capped, budget))
        if entry is not None and len(entry[1][threads]) < TRIAL_CALLS:
            entry[1][threads].append(seconds)


def _after_fork_in_child():
    """A child's own CPU time starts at zero: its first window starts afresh."""
    global _last, _lock, _look_again_s
    _lock = threading.Lock()
    _last, _look_again_s = None, REFRESH_S
    _trials.clear()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)
