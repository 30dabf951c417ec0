"""How many of this process's cores other processes are using: the thread cap on a busy machine.

A parallel region splits its work evenly and ends at a barrier. When another process holds one
of two cores, the thread that shares that core runs half the time, so two threads finish no
sooner than one; and every barrier waits for that thread's next time slice, so a call made of
many short regions (a small network's training step) runs many times slower on two threads
than on one (issue 16: 24.6 ms on one thread, 155 ms on two). So a call runs on at most as many
threads as there are cores the rest of the machine leaves free.

"Free" is measured, not guessed: the busy time of the CPUs this process may run on, from
``/proc/stat`` (user, system, interrupts and a hypervisor's steal; not niced processes, which
yield their core), minus this process's
own CPU time (`time.process_time`, which counts its OpenMP workers), over the time since the
last reading. Readings are taken at most every `REFRESH_S`, so a call pays for one only a few
times a second (about 20 us). A window longer than `STALE_S` (the first call in a while) may
average away a load that has just started, so then the kernel's count of runnable threads
(``/proc/loadavg``) stands in as well, and the larger of the two wins.

Results do not depend on the thread count (every algorithm is bitwise thread-count invariant),
so following the load changes only the time. Where ``/proc`` is absent (macOS, Windows) nothing
is capped. ``FASTCONV_ADAPT_THREADS=0`` turns the cap off.
"""
import os
import threading
import time

REFRESH_S = 0.25
_clock = time.monotonic
STALE_S = 2.0
_STAT = "/proc/stat"
_LOADAVG = "/proc/loadavg"

_lock = threading.Lock()
_last = None        # (monotonic seconds, busy CPU seconds of our CPUs, this process's CPU seconds)
_others = 0.0       # cores the rest of the machine used over the last window
enabled = os.environ.get("FASTCONV_ADAPT_THREADS", "1").strip() not in ("0", "false", "no", "off")


def _our_cpus():
    if hasattr(os, "sched_getaffinity"):
        return frozenset(os.sched_getaffinity(0))
    return None


_cpus = _our_cpus()
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


def _runnable_elsewhere():
    """Threads the kernel has runnable right now, less the one reading (0 if unknown, or if
    this process may not run on every CPU: the count is the whole machine's)."""
    if _cpus is None or len(_cpus) != os.cpu_count():
        return 0.0
    try:
        with open(_LOADAVG, "rb") as f:
            running = int(f.read().split()[3].split(b"/")[0])
    except (OSError, ValueError, IndexError):
        return 0.0
    return max(0.0, running - 1.0)


def cores_used_elsewhere():
    """Cores the rest of the machine has been using lately (0.0 where that cannot be told)."""
    global _last, _others
    now = _clock()
    with _lock:
        if _last is not None and now - _last[0] < REFRESH_S:
            return _others
        busy = _busy_seconds()
        if busy is None:
            return 0.0
        own = time.process_time()
        if _last is None:
            _others = _runnable_elsewhere()
        else:
            wall = now - _last[0]
            window = max(0.0, (busy - _last[1]) - (own - _last[2])) / wall
            _others = max(window, _runnable_elsewhere()) if wall > STALE_S else window
        _last = (now, busy, own)
        return _others


def thread_cap(budget):
    """At most `budget` threads, and no more than the cores other processes leave free
    (at least one)."""
    if budget <= 1 or not enabled:
        return budget
    cores = len(_cpus) if _cpus else (os.cpu_count() or 1)
    free = int(cores - cores_used_elsewhere() + 0.5)
    return max(1, min(budget, free))


def _after_fork_in_child():
    """A child's own CPU time starts at zero: its first window starts afresh."""
    global _last, _lock
    _lock = threading.Lock()
    _last = None


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)
