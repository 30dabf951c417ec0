"""Issue 17, items 2 and 3: the thread budget survives fork and refuses counts that would kill.

Fork: a child made by ``fork`` after its parent ran a 2-thread call used to wait forever in
libgomp on its first threaded call. Each scenario runs in its own interpreter under a timeout, so
a regression fails instead of hanging the suite; the children's results must equal the parent's
bit for bit (thread-count invariance), on the thread budget they inherited.

Bounds: ``set_num_threads(100000)`` used to kill the interpreter on the next call and
``set_num_threads(2**31)`` to leave the setting at 2**31; a bad ``FASTCONV_NUM_THREADS`` broke
the import.
"""
import os
import signal
import subprocess
import sys

import numpy as np
import pytest

import fastconv
from fastconv import _config

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(fastconv.__file__)))

_FORK_SCRIPT = r'''
import concurrent.futures, multiprocessing as mp, os, sys
import numpy as np
import fastconv

def work(algorithm):
    """The three operations on a problem above SMALL_PROBLEM_FLOPS, so that they run threaded."""
    rng = np.random.default_rng(1)
    x = rng.standard_normal((2, 8, 48, 48)).astype(np.float32)
    w = rng.standard_normal((8, 8, 3, 3)).astype(np.float32)
    try:
        y = fastconv.conv(x, w, padding=1, algorithm=algorithm)
    except fastconv.NotSupportedError:
        return None
    results = [y.tobytes()]
    for call in (lambda: fastconv.conv_grad_input(y, w, x.shape, padding=1, algorithm=algorithm),
                 lambda: fastconv.conv_grad_kernel(x, y, w.shape, padding=1, algorithm=algorithm)):
        try:
            results.append(call().tobytes())
        except fastconv.NotSupportedError:      # an operation the algorithm does not have
            results.append(None)
    return fastconv.get_num_threads(), results

def in_forked_child(algorithms):
    pid = os.fork()
    if pid == 0:
        ok = False
        try:
            ok = [work(a) for a in algorithms] == expected
        finally:
            os._exit(0 if ok else 3)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0, "the forked child's results differ"
    return expected

if __name__ == "__main__":
    method, runner, threads = sys.argv[1], sys.argv[2], int(sys.argv[3])
    if runner == "unreleasable":     # a runtime that cannot end its workers before the fork
        fastconv._openmp_info.release_threads = lambda: False
    fastconv.set_num_threads(2)
    algorithms = [a for a in fastconv.algorithms() if a != "reference"] + ["auto"]
    expected = [work(a) for a in algorithms]
    assert sum(e is not None for e in expected) >= 3, expected
    if os.path.isdir("/proc/self/task"):      # the parent did start OpenMP workers
        assert len(os.listdir("/proc/self/task")) >= 2
    expected = [None if e is None else (threads, e[1]) for e in expected]
    ctx = mp.get_context(method)
    if runner == "fork":
        got = in_forked_child(algorithms)
    elif runner == "executor":
        with concurrent.futures.ProcessPoolExecutor(2, mp_context=ctx) as pool:
            got = list(pool.map(work, algorithms, timeout=60))
    else:
        with ctx.Pool(2) as pool:
            got = pool.map_async(work, algorithms).get(timeout=60)
    assert got == expected, "a child's results or thread count differ from the parent's"
    print("ok", len(algorithms))
'''


def _env(updates):
    """This environment without thread settings, plus `updates`, on the fastconv under test.
    KMP_INIT_AT_FORK goes too: importing scikit-learn or joblib (other tests do) sets it."""
    env = {k: v for k, v in os.environ.items()
           if k not in ("FASTCONV_NUM_THREADS", "OMP_NUM_THREADS", "KMP_INIT_AT_FORK")}
    env.update(updates)
    env["PYTHONPATH"] = ROOT + os.pathsep + env.get("PYTHONPATH", "")
    return env


def _run_script(tmp_path, *args, env_updates=None):
    script = tmp_path / "fork_scenario.py"      # a file: forkserver children import __main__
    script.write_text(_FORK_SCRIPT)
    env = _env(env_updates or {})
    # Its own session, so that a hang is cleaned up with every child it forked.
    proc = subprocess.Popen([sys.executable, str(script), *map(str, args)], env=env, cwd=ROOT,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            start_new_session=True)
    try:
        out, err = proc.communicate(timeout=120)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.communicate()
        pytest.fail(f"{args}: hung (no answer in 120 s)")
    assert proc.returncode == 0 and out.split()[-2:-1] == ["ok"], err[-3000:]


@pytest.mark.skipif(not hasattr(os, "fork"), reason="no fork on this platform")
@pytest.mark.parametrize("method,runner", [("fork", "pool"), ("fork", "executor"), ("fork", "fork"),
                                           ("forkserver", "pool"), ("forkserver", "executor")])
def test_children_run_threaded_after_a_threaded_call_in_the_parent(tmp_path, method, runner):
    """The children keep the budget of 2 threads (forkserver children import it afresh: the
    environment variable says 2) and compute what the parent computed."""
    _run_script(tmp_path, method, runner, 2, env_updates={"FASTCONV_NUM_THREADS": "2"})


@pytest.mark.skipif(not hasattr(os, "fork"), reason="no fork on this platform")
@pytest.mark.parametrize("runner", ["pool", "fork"])
def test_children_run_threaded_when_llvm_openmp_has_no_fork_handlers(tmp_path, runner):
    """joblib and scikit-learn set KMP_INIT_AT_FORK=FALSE when imported, which stops LLVM's
    OpenMP runtime from resetting itself in a child: fastconv must end its workers itself
    (GCC's runtime ignores the variable)."""
    _run_script(tmp_path, "fork", runner, 2,
                env_updates={"FASTCONV_NUM_THREADS": "2", "KMP_INIT_AT_FORK": "FALSE"})


@pytest.mark.skipif(not hasattr(os, "fork"), reason="no fork on this platform")
def test_a_child_whose_parent_could_not_end_its_workers_runs_on_one_thread(tmp_path):
    """Where the OpenMP runtime cannot end the workers before a fork, the child computes on one
    thread (the only count that cannot wait for the parent's workers)."""
    _run_script(tmp_path, "fork", "unreleasable", 1)


def test_the_fork_fallback_warns_when_asked_for_more_threads(restore_settings):
    _config._forked_single = True
    try:
        with pytest.warns(RuntimeWarning, match="forked"):
            fastconv.set_num_threads(2)
        assert fastconv.get_num_threads() == 1
    finally:
        _config._forked_single = False


@pytest.mark.parametrize("value", [100000, 2**31, 2**63, 2**100, _config.MAX_THREADS + 1])
def test_set_num_threads_refuses_counts_above_the_bound_and_changes_nothing(value,
                                                                           restore_settings):
    fastconv.set_num_threads(2)
    with pytest.raises(ValueError) as info:
        fastconv.set_num_threads(value)
    message = str(info.value)
    assert "n must be between 1 and" in message and str(value) in message, message
    assert fastconv.get_num_threads() == 2, "a refused count changed the setting"
    x = np.ones((1, 2, 9, 9), np.float32)
    assert fastconv.conv(x, np.ones((2, 2, 3, 3), np.float32)).shape == (1, 2, 7, 7)


def test_the_bound_is_at_least_64_and_four_per_core(restore_settings):
    assert _config.MAX_THREADS >= 64
    assert _config.MAX_THREADS >= 4 * (os.cpu_count() or 1)
    fastconv.set_num_threads(64)
    assert fastconv.get_num_threads() == 64


def _fresh(env_updates, code):
    try:
        return subprocess.run([sys.executable, "-c", code], env=_env(env_updates), cwd=ROOT,
                              capture_output=True, text=True, timeout=120)
    except subprocess.TimeoutExpired:
        pytest.fail(f"{env_updates}: no answer in 120 s")


# OpenMP's own count (OMP_NUM_THREADS) only reaches a build that has OpenMP.
needs_openmp = pytest.mark.skipif(not fastconv._openmp_info.openmp_enabled(),
                                  reason="a serial build (no OpenMP) runs one thread")

_CALL = ("import numpy as np, fastconv; x = np.ones((2, 8, 48, 48), np.float32); "
         "y = fastconv.conv(x, np.ones((8, 8, 3, 3), np.float32)); "
         "print(fastconv.get_num_threads(), float(y.sum()))")


@needs_openmp
@pytest.mark.parametrize("value", ["abc", "0", "-3", "1.5", "100000", "99999999999999999999"])
def test_a_bad_environment_variable_is_reported_and_ignored(value):
    done = _fresh({"FASTCONV_NUM_THREADS": value, "OMP_NUM_THREADS": "2"}, _CALL)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "RuntimeWarning" in done.stderr and "FASTCONV_NUM_THREADS" in done.stderr, done.stderr
    assert repr(value) in done.stderr, done.stderr
    threads, total = done.stdout.split()[-2:]
    assert threads == "2", "the bad value was not ignored in favour of OpenMP's count"
    assert float(total) == 2 * 8 * 46 * 46 * 72


@needs_openmp
def test_an_openmp_count_above_the_bound_is_capped():
    """OMP_NUM_THREADS (or threadpoolctl's "openmp" limit) is OpenMP's own setting, not
    validated by fastconv: its kernels use at most MAX_THREADS of it."""
    done = _fresh({"OMP_NUM_THREADS": "100000"}, _CALL)
    assert done.returncode == 0, done.stderr[-2000:]
    threads, total = done.stdout.split()[-2:]
    assert int(threads) == _config.MAX_THREADS
    assert float(total) == 2 * 8 * 46 * 46 * 72
