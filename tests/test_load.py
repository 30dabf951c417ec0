"""The thread cap on a busy machine (`fastconv._load`, issue 16 item 2), on fake /proc files:
how many cores other processes use, and the threads a call gets from that."""
import os

import numpy as np
import pytest

import fastconv
from fastconv import _config, _load

TICK = _load._tick


def _stat(busy_ticks_per_cpu, cpus=(0, 1), nice=0):
    """A /proc/stat whose CPUs have each been busy `busy_ticks_per_cpu` (user time) and niced
    for `nice` ticks."""
    lines = [f"cpu  {busy_ticks_per_cpu * len(cpus)} 0 0 1000 0 0 0 0 0 0"]
    lines += [f"cpu{c} {busy_ticks_per_cpu} {nice} 0 1000 0 0 0 0 0 0" for c in cpus]
    lines += ["intr 1 2 3", "ctxt 5"]
    return "\n".join(lines) + "\n"


@pytest.fixture
def fake_proc(tmp_path, monkeypatch):
    """Point `_load` at files the test writes; two CPUs, this process using no CPU time."""
    stat, loadavg = tmp_path / "stat", tmp_path / "loadavg"
    monkeypatch.setattr(_load, "_STAT", str(stat))
    monkeypatch.setattr(_load, "_LOADAVG", str(loadavg))
    monkeypatch.setattr(_load, "_cpus", frozenset({0, 1}))
    monkeypatch.setattr(_load, "_last", None)
    monkeypatch.setattr(_load, "enabled", True)
    monkeypatch.setattr(_load, "_clock", _load._clock)     # restored after the test
    monkeypatch.setattr(_load.os, "cpu_count", lambda: 2)
    own = {"seconds": 0.0}
    monkeypatch.setattr(_load.time, "process_time", lambda: own["seconds"])
    monkeypatch.setattr(_load.os, "nice", lambda inc: 0)
    loadavg.write_text("0.00 0.00 0.00 1/100 12345\n")
    return stat, loadavg, own


def _reading(stat, ticks, now, **kw):
    stat.write_text(_stat(ticks, **kw))
    _load._clock = lambda: now
    return _load.cores_used_elsewhere()


def test_a_process_spinning_on_one_of_two_cores_leaves_one_thread(fake_proc):
    stat, _, _ = fake_proc
    _reading(stat, 0, now=100.0)
    # one second later: each CPU busy half the time = one core's worth, none of it ours
    assert _reading(stat, TICK // 2, now=101.0) == pytest.approx(1.0)
    assert _load.thread_cap(2) == 1
    assert _load.thread_cap(8) == 1


def test_an_idle_machine_keeps_the_whole_budget(fake_proc):
    stat, _, _ = fake_proc
    _reading(stat, 0, now=100.0)
    assert _reading(stat, 0, now=101.0) == 0.0
    assert _load.thread_cap(2) == 2
    assert _load.thread_cap(1) == 1


def test_this_process_own_time_is_not_load(fake_proc):
    """Our own OpenMP workers keep both CPUs busy: that is not another process's load."""
    stat, _, own = fake_proc
    _reading(stat, 0, now=100.0)
    own["seconds"] = 2.0
    assert _reading(stat, TICK, now=101.0) == pytest.approx(0.0)
    assert _load.thread_cap(2) == 2


def test_niced_processes_leave_their_core_free_unless_we_are_niced_too(fake_proc, monkeypatch):
    stat, _, _ = fake_proc
    _reading(stat, 0, now=100.0, nice=0)
    assert _reading(stat, 0, now=101.0, nice=TICK) == 0.0
    monkeypatch.setattr(_load.os, "nice", lambda inc: 10)
    monkeypatch.setattr(_load, "_last", None)
    _reading(stat, 0, now=200.0, nice=0)
    assert _reading(stat, 0, now=201.0, nice=TICK) == pytest.approx(2.0)


def test_readings_are_cached_between_refreshes(fake_proc):
    stat, _, _ = fake_proc
    _reading(stat, 0, now=100.0)
    assert _reading(stat, TICK, now=101.0) == pytest.approx(2.0)
    # within REFRESH_S the file is not read again
    assert _reading(stat, 0, now=101.0 + _load.REFRESH_S / 2) == pytest.approx(2.0)


def test_the_first_reading_and_a_stale_one_count_runnable_threads(fake_proc):
    stat, loadavg, _ = fake_proc
    loadavg.write_text("1.00 1.00 1.00 2/100 12345\n")       # us and one other
    assert _reading(stat, 0, now=100.0) == 1.0
    assert _load.thread_cap(2) == 1
    # ten seconds later: the average over the window says idle, but a thread runs now
    assert _reading(stat, 0, now=110.0) == 1.0
    loadavg.write_text("0.00 0.00 0.00 1/100 12345\n")
    assert _reading(stat, 0, now=120.0) == 0.0


def test_a_cpu_outside_the_affinity_is_not_counted(fake_proc, monkeypatch):
    stat, _, _ = fake_proc
    monkeypatch.setattr(_load, "_cpus", frozenset({0}))
    _reading(stat, 0, now=100.0, cpus=(0, 1))
    stat.write_text(f"cpu  {TICK} 0 0 0 0 0 0 0\ncpu0 0 0 0 0 0 0 0 0\ncpu1 {TICK} 0 0 0 0 0 0 0\n")
    _load._clock = lambda: 101.0
    assert _load.cores_used_elsewhere() == 0.0


def test_without_proc_nothing_is_capped(fake_proc, tmp_path, monkeypatch):
    monkeypatch.setattr(_load, "_STAT", str(tmp_path / "absent"))
    _load._clock = lambda: 100.0
    assert _load.cores_used_elsewhere() == 0.0
    assert _load.thread_cap(2) == 2


def test_the_cap_can_be_turned_off(fake_proc, monkeypatch):
    stat, _, _ = fake_proc
    _reading(stat, 0, now=100.0)
    _reading(stat, TICK, now=101.0)
    monkeypatch.setattr(_load, "enabled", False)
    assert _load.thread_cap(2) == 2


def test_a_call_on_a_busy_machine_runs_on_the_free_core_and_gives_the_same_bits(fake_proc,
                                                                                  monkeypatch):
    """`threads_for` applies the cap to a large call (not to a small one, which runs on one
    thread anyway); the result is bitwise the one of an idle machine."""
    stat, _, _ = fake_proc
    monkeypatch.setattr(_config, "_num_threads", 2)
    _reading(stat, 0, now=100.0)
    with _config.threads_for(1e9):
        assert _config.get_num_threads() == 2
    _reading(stat, TICK // 2, now=101.0)       # the clock stays here: the reading is kept
    with _config.threads_for(1e9):
        assert _config.get_num_threads() == 1
    rng = np.random.default_rng(0)
    x, w = rng.standard_normal((2, 16, 40, 40)), rng.standard_normal((16, 16, 3, 3))
    for algorithm in ("im2col", "direct", "fft"):
        on_busy = fastconv.conv(x, w, padding=1, algorithm=algorithm)
        monkeypatch.setattr(_load, "enabled", False)
        on_idle = fastconv.conv(x, w, padding=1, algorithm=algorithm)
        monkeypatch.setattr(_load, "enabled", True)
        assert np.array_equal(on_busy, on_idle), algorithm


def test_a_forked_child_starts_its_own_window():
    if not hasattr(os, "fork"):
        pytest.skip("no fork on this platform")
    _load.cores_used_elsewhere()
    assert _load._last is not None
    pid = os.fork()
    if pid == 0:                                    # pragma: no cover - the child
        os._exit(0 if _load._last is None else 1)
    _, status = os.waitpid(pid, 0)
    assert os.WEXITSTATUS(status) == 0
