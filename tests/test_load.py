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
    stat = tmp_path / "stat"
    monkeypatch.setattr(_load, "_STAT", str(stat))
    monkeypatch.setattr(_load, "_look_again_s", _load.REFRESH_S)
    monkeypatch.setattr(_load, "_cpus", frozenset({0, 1}))
    monkeypatch.setattr(_load, "_cores", 2)
    monkeypatch.setattr(_load, "_last", None)
    monkeypatch.setattr(_load, "enabled", True)
    monkeypatch.setattr(_load, "_clock", _load._clock)     # restored after the test
    monkeypatch.setattr(_load.os, "cpu_count", lambda: 2)
    own = {"seconds": 0.0}
    monkeypatch.setattr(_load.time, "process_time", lambda: own["seconds"])
    monkeypatch.setattr(_load.os, "nice", lambda inc: 0)
    yield stat, None, own
    _config._pools_follow_load(1, 1)         # whatever a test left held comes back


def _blas_threads():
    from threadpoolctl import threadpool_info
    return [i["num_threads"] for i in threadpool_info() if i["user_api"] == "blas"]


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


def test_the_first_reading_assumes_free_and_a_short_window_follows(fake_proc):
    """The first reading has nothing to compare with; the next is due FIRST_WINDOW_S later (not
    REFRESH_S), as after a stale window, which may have averaged away a load that just began."""
    stat, _, _ = fake_proc
    short = 2 * _load.FIRST_WINDOW_S                 # past the short window, before REFRESH_S
    assert short < _load.REFRESH_S
    busy = int(TICK * short)                          # each CPU busy all the window
    assert _reading(stat, 0, now=100.0) == 0.0
    assert _load.thread_cap(2) == 2
    assert _reading(stat, busy, now=100.0 + short) == pytest.approx(2.0)
    # a steady reader waits REFRESH_S: a reading `short` later is the cached one
    assert _reading(stat, busy, now=100.0 + 2 * short) == pytest.approx(2.0)
    assert _reading(stat, busy, now=100.0 + short + _load.REFRESH_S) == 0.0
    # after ten quiet seconds the next reading is due after a short window again
    assert _reading(stat, busy, now=110.0) == 0.0
    assert _reading(stat, 2 * busy, now=110.0 + short) == pytest.approx(2.0)


def test_a_cpu_outside_the_affinity_is_not_counted(fake_proc, monkeypatch):
    stat, _, _ = fake_proc
    monkeypatch.setattr(_load, "_cpus", frozenset({0}))
    monkeypatch.setattr(_load, "_cores", 1)
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


def test_a_repeated_call_on_a_busy_machine_is_tried_on_both_counts_and_keeps_the_faster(
        fake_proc, monkeypatch):
    """Alternately capped and full, TRIAL_CALLS each; then the full budget only if it was
    clearly faster; a new verdict after TRIAL_S."""
    stat, _, _ = fake_proc
    _reading(stat, 0, now=100.0)
    _reading(stat, TICK // 2, now=101.0)                 # busy: the cap is 1 of 2
    monkeypatch.setattr(_load, "_trials", {})
    assert _load.trial_threads("k", 1, 2) == (1, False)         # the first call is not timed
    seen = []
    for _ in range(2 * _load.TRIAL_CALLS):
        n, measuring = _load.trial_threads("k", 1, 2)
        assert measuring
        seen.append(n)
        _load.record("k", 1, 2, n, {1: 5.0, 2: 3.0}[n])
    assert seen == [1, 2] * _load.TRIAL_CALLS
    assert _load.trial_threads("k", 1, 2) == (2, False)          # 3.0 < 0.8 * 5.0
    # a key whose full-budget time is only a little better stays capped
    _load.trial_threads("close", 1, 2)
    for _ in range(2 * _load.TRIAL_CALLS):
        n, _measuring = _load.trial_threads("close", 1, 2)
        _load.record("close", 1, 2, n, {1: 5.0, 2: 4.5}[n])
    assert _load.trial_threads("close", 1, 2) == (1, False)
    # the verdict expires
    _load._clock = lambda: 101.0 + _load.TRIAL_S + 1
    assert _load.trial_threads("k", 1, 2) == (1, False)


def test_threads_for_runs_the_trial_for_a_keyed_call(fake_proc, monkeypatch):
    stat, _, _ = fake_proc
    monkeypatch.setattr(_load, "TRIAL_MIN_S", 0.0)                # these calls take no time
    monkeypatch.setattr(_config, "_num_threads", 2)
    monkeypatch.setattr(_load, "_trials", {})
    _reading(stat, 0, now=100.0)
    _reading(stat, TICK // 2, now=101.0)
    counts = []
    for _ in range(2 * _load.TRIAL_CALLS + 3):
        with _config.threads_for(1e9, key="problem"):
            counts.append(_config.get_num_threads())
    assert counts[:2 * _load.TRIAL_CALLS + 1] == [1] + [1, 2] * _load.TRIAL_CALLS
    assert len(set(counts[2 * _load.TRIAL_CALLS + 1:])) == 1       # settled on one count
    with _config.threads_for(1e9):                                  # no key: the cap
        assert _config.get_num_threads() == 1


def test_openmp_and_the_blas_follow_the_load_and_get_their_own_counts_back(fake_proc, monkeypatch):
    """NumPy's matmul in a layer runs on the BLAS's own threads: while the machine is busy they
    are held to the free cores too, as is OpenMP's own count, and given back when the load goes."""
    stat, _, _ = fake_proc
    monkeypatch.setattr(_config, "_num_threads", 2)
    monkeypatch.setattr(_config, "_following", None)
    import scipy.linalg.cython_blas  # noqa: F401  (load SciPy's BLAS too)
    from threadpoolctl import threadpool_limits
    omp = fastconv._openmp_info
    previous = omp.max_threads()
    omp.set_max_threads(2)                      # OpenMP's own count, whatever earlier tests left
    try:
        with threadpool_limits(limits=2, user_api="blas"):
            own = _blas_threads()
            assert own and max(own) == 2
            _reading(stat, 0, now=100.0)
            _reading(stat, TICK // 2, now=101.0)                    # busy
            with _config.threads_for(10):                           # a small call too
                pass
            assert max(_blas_threads()) == 1
            assert omp.max_threads() == 1
            assert fastconv.get_num_threads() == 2      # the budget is still the process's
            _reading(stat, TICK // 2, now=102.0)                    # idle again
            with _config.threads_for(10):
                pass
            assert _blas_threads() == own
            assert omp.max_threads() == 2
    finally:
        omp.set_max_threads(previous)


def test_a_short_call_is_not_tried_on_the_full_budget(fake_proc, monkeypatch):
    monkeypatch.setattr(_load, "_trials", {})
    _load._clock = lambda: 100.0
    _load.trial_threads("small", 1, 2)                           # untimed first call
    assert _load.trial_threads("small", 1, 2) == (1, True)
    _load.record("small", 1, 2, 1, _load.TRIAL_MIN_S / 2)
    assert _load.trial_threads("small", 1, 2) == (1, False)


def test_settle_measures_a_fresh_window(fake_proc, monkeypatch):
    stat, _, _ = fake_proc
    stat.write_text(_stat(0))
    clock = iter([100.0, 100.0 + _load.FIRST_WINDOW_S * 2])
    monkeypatch.setattr(_load, "_clock", lambda: next(clock))
    monkeypatch.setattr(_load.time, "sleep", lambda s: stat.write_text(
        _stat(int(TICK * _load.FIRST_WINDOW_S))))                  # one core's worth meanwhile
    assert _load.settle() == pytest.approx(1.0)
