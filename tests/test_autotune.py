"""Autotuning: algorithm="tune" (or set_autotune(True)) times the applicable algorithms once per
problem key, runs the fastest, keeps the timings in memory and in the cache directory (merged by
concurrent processes, read back by later ones, a corrupt file ignored with a warning), never
touches the caller's arrays, and gives exactly the result of the algorithm it picked."""
import json
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest

import fastconv
from fastconv import _autotune, _cachefiles, _measure, _registry
from fastconv._functional import spec_from_shapes

# The folder holding the fastconv under test (the installed package, or the source tree built
# in place): fresh interpreters import it from there, run there so that the current directory
# cannot shadow it with an unbuilt source folder.
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(fastconv.__file__)))
OPS = ("forward", "grad_input", "grad_kernel")
GEOMETRY = dict(padding=1)
X_SHAPE, W_SHAPE = (2, 3, 10, 9), (4, 3, 3, 3)


@pytest.fixture
def cache(tmp_path, monkeypatch):
    """A private cache directory; autotuning off and its memory empty before and after."""
    monkeypatch.setenv("FASTCONV_CACHE_DIR", str(tmp_path))
    monkeypatch.setattr(_measure, "ROUNDS", 2)         # tiny problems: a short timing will do
    monkeypatch.setattr(_measure, "BUDGET_S", 0.002)
    _autotune.clear_autotune_cache()
    fastconv.set_autotune(False)
    yield tmp_path
    fastconv.set_autotune(False)
    _autotune.clear_autotune_cache()


def _arrays(dtype="float64", seed=0):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal(X_SHAPE).astype(dtype)
    w = rng.standard_normal(W_SHAPE).astype(dtype)
    gy = rng.standard_normal(fastconv.conv(x, w, **GEOMETRY).shape).astype(dtype)
    return x, w, gy


def _call(op, x, w, gy, algorithm):
    if op == "forward":
        return fastconv.conv(x, w, algorithm=algorithm, **GEOMETRY)
    if op == "grad_input":
        return fastconv.conv_grad_input(gy, w, x.shape, algorithm=algorithm, **GEOMETRY)
    return fastconv.conv_grad_kernel(x, gy, w.shape, algorithm=algorithm, **GEOMETRY)


def _spec(dtype="float64"):
    return spec_from_shapes(X_SHAPE, W_SHAPE, 1, 1, 1, 1, dtype)


def _entries(cache):
    return json.loads((cache / _autotune.FILE_NAME).read_text())["entries"]


@pytest.mark.parametrize("op", OPS)
def test_tune_gives_the_result_of_the_algorithm_it_picked(cache, op):
    x, w, gy = _arrays()
    tuned = _call(op, x, w, gy, "tune")
    record = _autotune.lookup(_spec(), op)
    assert record, "tuning recorded nothing"
    winner = fastconv.explain(X_SHAPE, W_SHAPE, dtype="float64", **GEOMETRY).tuned_choice[op]
    timed = {k: v for k, v in record.items() if v is not None}
    assert winner == min(timed, key=timed.get)
    assert np.array_equal(tuned, _call(op, x, w, gy, winner))


class _Fake:
    """An algorithm that takes `seconds` (by its own clock) and counts its calls."""

    def __init__(self, name, seconds):
        self.NAME, self.seconds, self.calls = name, seconds, 0

    def forward(self, spec, x, w):
        self.calls += 1
        import time
        end = time.perf_counter() + self.seconds
        while time.perf_counter() < end:
            pass
        return x


def test_tune_times_the_plausible_candidates_and_prunes_the_hopeless(cache):
    fast, slow, hopeless = _Fake("fast", 0.0), _Fake("slow", 0.002), _Fake("hopeless", 0.0)
    candidates = [(1e-3, "slow", slow), (2e-3, "fast", fast),
                  (1e-3 * _measure.PRUNE * 1.01, "hopeless", hopeless)]
    name, record = _measure.tune(_spec(), "forward", candidates)
    assert name == "fast"
    assert record["hopeless"] is None and hopeless.calls == 0
    assert record["slow"] >= 0.002 > record["fast"]
    calls = fast.calls
    assert _measure.tune(_spec(), "forward", candidates)[0] == "fast" and fast.calls == calls


def test_tuned_calls_reuse_the_winner_and_nothing_falls_back(cache, monkeypatch):
    """After tuning, every algorithm but the winner raises: the tuned call still computes."""
    x, w, gy = _arrays()
    first = _call("forward", x, w, gy, "tune")
    winner = fastconv.explain(X_SHAPE, W_SHAPE, dtype="float64", **GEOMETRY).tuned_choice["forward"]

    def boom(*args, **kwargs):
        raise AssertionError("a losing algorithm ran")
    for name, impl in _registry.registered().items():
        if name != winner:
            monkeypatch.setattr(impl, "forward", boom)
    monkeypatch.setattr(_measure, "time_algorithms", boom)
    assert np.array_equal(_call("forward", x, w, gy, "tune"), first)
    fastconv.set_autotune(True)
    assert fastconv.get_autotune() is True
    assert np.array_equal(_call("forward", x, w, gy, "auto"), first)
    assert fastconv.choose(X_SHAPE, W_SHAPE, dtype="float64", **GEOMETRY) == winner


def test_set_autotune_checks_its_argument(cache):
    with pytest.raises(TypeError, match="enabled"):
        fastconv.set_autotune("yes")
    assert fastconv.get_autotune() is False


def test_tuning_never_writes_into_the_callers_arrays(cache):
    x, w, gy = _arrays("float32")
    copies = [a.copy() for a in (x, w, gy)]
    for a in (x, w, gy):
        a.flags.writeable = False
    for op in OPS:
        _call(op, x, w, gy, "tune")
    for a, c in zip((x, w, gy), copies):
        assert np.array_equal(a, c)


def test_the_key_holds_op_dtype_threads_machine_and_version(cache, restore_settings):
    spec = _spec()
    keys = {_autotune.key(spec, op) for op in OPS}
    assert len(keys) == 3
    assert _autotune.key(_spec("float32"), "forward") != _autotune.key(spec, "forward")
    fastconv.set_num_threads(1)
    one = _autotune.key(spec, "forward")
    fastconv.set_num_threads(2)
    assert _autotune.key(spec, "forward") != one
    assert _cachefiles.cpu_model() in one and fastconv.__version__ in one


@pytest.mark.parametrize("shapes, threads", [
    (((1, 384, 14, 14), (384, 1, 3, 3), 1, 1, 1, 384), 2),     # 1.35 MFLOP, 588 KB: threaded
    (((1, 16, 16, 16), (16, 16, 3, 3), 1, 1, 1, 1), 1),         # 1.2 MFLOP, 32 KB: one thread
])
def test_tuning_times_on_the_threads_the_call_runs_on(shapes, threads, cache, monkeypatch,
                                                      restore_settings):
    """The tuner's clock runs under the call's own thread rule (_config.work: flops and bytes),
    so a byte-heavy problem of few flops is timed on the threads it will be called with (it was
    timed on one thread while its calls ran on two, and tuned to im2col where direct won)."""
    from fastconv import _config, _timing
    monkeypatch.setattr(_config, "SMALL_PROBLEM_FLOPS", 2e6)     # the library's (conftest: 0)
    fastconv.set_num_threads(2)
    x_shape, w_shape, stride, pad, dilation, groups = shapes
    spec = spec_from_shapes(x_shape, w_shape, stride, pad, dilation, groups, "float32")
    assert spec.flops < _config.SMALL_PROBLEM_FLOPS
    seen = []
    real = _timing.interleaved

    def spy(*args, **kwargs):
        seen.append(fastconv.get_num_threads())
        return real(*args, **kwargs)
    monkeypatch.setattr(_timing, "interleaved", spy)
    impls = {name: impl for _, name, impl in _registry.candidates(spec, "forward", None)
             if name != "reference"}
    _measure.time_algorithms(spec, "forward", impls, budget=0.001)
    assert seen == [threads] == [_autotune.call_threads(spec)]


def test_the_cache_round_trips_across_processes(cache, monkeypatch):
    """One process tunes and writes the file; another reads it and times nothing."""
    monkeypatch.setattr(fastconv._config, "SMALL_PROBLEM_FLOPS", 2e6)    # as in the subprocesses
    env = dict(os.environ, PYTHONPATH=ROOT, FASTCONV_CACHE_DIR=str(cache))
    tune = textwrap.dedent(f"""
        import numpy as np, fastconv
        x = np.random.default_rng(0).standard_normal({X_SHAPE})
        w = np.random.default_rng(1).standard_normal({W_SHAPE})
        fastconv.set_autotune(True)
        fastconv.conv(x, w, padding=1)
        print(fastconv.explain(x.shape, w.shape, padding=1, dtype="float64").tuned_choice["forward"])
    """)
    first = subprocess.run([sys.executable, "-c", tune], env=env, cwd=ROOT, capture_output=True, text=True,
                           timeout=120)
    assert first.returncode == 0, first.stderr
    reuse = tune.replace("import numpy as np, fastconv", "import numpy as np, fastconv\n"
                         "from fastconv import _measure\n"
                         "def boom(*a, **k): raise SystemExit('timed again')\n"
                         "_measure.time_algorithms = boom")
    second = subprocess.run([sys.executable, "-c", reuse], env=env, cwd=ROOT, capture_output=True,
                            text=True, timeout=120)
    assert second.returncode == 0, second.stderr
    assert second.stdout == first.stdout and first.stdout.strip() in fastconv.algorithms()
    assert len(_entries(cache)) == 1
    record = _autotune.lookup(_spec(), "forward")       # and this process reads it too
    assert record and first.stdout.strip() in record


@pytest.mark.parametrize("content", ["{\"format\": 1, \"entries\": ", "\x00\x01garbage",
                                     '{"format": 0, "entries": {}}'])
def test_a_corrupt_cache_file_is_ignored_with_a_warning_and_rewritten(cache, content):
    (cache / _autotune.FILE_NAME).write_text(content)
    x, w, gy = _arrays()
    with pytest.warns(_cachefiles.CacheWarning, match="ignoring"):
        _call("forward", x, w, gy, "tune")
    assert _autotune.lookup(_spec(), "forward"), "not recomputed"
    assert len(_entries(cache)) == 1, "the file was not rewritten as a valid cache"


def test_concurrent_writers_leave_a_valid_file_with_every_key(cache):
    writer = textwrap.dedent("""
        import sys, time
        from fastconv import _autotune
        start = float(sys.argv[2])
        while time.time() < start:
            time.sleep(0.001)
        for i in range(15):
            _autotune.save({f"{sys.argv[1]}-{i}": {"im2col": 1.0 + i}})
    """)
    env = dict(os.environ, PYTHONPATH=ROOT, FASTCONV_CACHE_DIR=str(cache))
    import time
    start = time.time() + 2
    procs = [subprocess.Popen([sys.executable, "-c", writer, f"p{n}", str(start)], env=env, cwd=ROOT,
                              stderr=subprocess.PIPE, text=True) for n in range(4)]
    for p in procs:
        _, err = p.communicate(timeout=120)
        assert p.returncode == 0, err
    entries = _entries(cache)
    assert set(entries) == {f"p{n}-{i}" for n in range(4) for i in range(15)}
    assert entries["p3-14"] == {"im2col": 15.0}
    assert not [f for f in os.listdir(cache) if f.endswith(".tmp")], "temporary files left"


def test_clear_autotune_cache(cache):
    x, w, gy = _arrays()
    _call("forward", x, w, gy, "tune")
    assert (cache / _autotune.FILE_NAME).exists()
    _autotune.clear_autotune_cache()
    assert _autotune.lookup(_spec(), "forward"), "the file is still there to read back"
    fastconv.clear_autotune_cache(disk=True)
    assert not (cache / _autotune.FILE_NAME).exists()
    assert _autotune.lookup(_spec(), "forward") is None


def test_explain_shows_measured_times_after_tuning(cache):
    x, w, gy = _arrays()
    before = str(fastconv.explain(X_SHAPE, W_SHAPE, dtype="float64", **GEOMETRY))
    for op in OPS:
        _call(op, x, w, gy, "tune")
    after = fastconv.explain(X_SHAPE, W_SHAPE, dtype="float64", **GEOMETRY)
    assert all(after.tuned_choice[op] in fastconv.algorithms() for op in OPS)
    assert before.count(" ms") < str(after).count(" ms")
    assert "fastest measured" in str(after) or all(
        after.tuned_choice[op] == after.choice[op] for op in OPS)


def test_an_unwritable_cache_directory_warns_but_computes(cache, monkeypatch, tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("")
    monkeypatch.setenv("FASTCONV_CACHE_DIR", str(blocker / "sub"))   # a directory under a file
    x, w, gy = _arrays()
    with pytest.warns(_cachefiles.CacheWarning) as caught:
        y = _call("forward", x, w, gy, "tune")
    messages = " ".join(str(w.message) for w in caught)     # (reading it may warn as well)
    assert "memory only" in messages, messages
    assert np.array_equal(y, _call("forward", x, w, gy, "tune"))


@pytest.mark.parametrize("forged", [-1.0, 0.0, float("-inf"), float("nan"), "0.1", True, [1.0]])
def test_a_forged_time_in_the_cache_file_is_never_trusted(cache, forged, monkeypatch):
    """A well-formed file with an impossible time (issue 17, item 8): the record is dropped, the
    problem is timed afresh, and choose() names the algorithm the call then runs."""
    k = _autotune.key(_spec(), "forward")
    (cache / _autotune.FILE_NAME).write_text(json.dumps(
        {"format": _cachefiles.FORMAT, "entries": {k: {"reference": forged, "im2col": 1.0}}}))
    assert _autotune.lookup(_spec(), "forward") is None
    fastconv.set_autotune(True)
    x, w, gy = _arrays()
    _call("forward", x, w, gy, "auto")
    chosen = fastconv.choose(X_SHAPE, W_SHAPE, dtype="float64", **GEOMETRY)
    ran = []
    for name, impl in _registry.registered().items():
        monkeypatch.setattr(impl, "forward", (lambda *a, name=name, original=impl.forward:
                                              ran.append(name) or original(*a)))
    _call("forward", x, w, gy, "auto")
    assert ran == [chosen] and chosen != "reference"


def test_clearing_a_cache_that_cannot_exist_warns(cache, monkeypatch, tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("")
    monkeypatch.setenv("FASTCONV_CACHE_DIR", str(blocker))      # the cache "directory" is a file
    with pytest.warns(_cachefiles.CacheWarning, match="could not delete"):
        fastconv.clear_autotune_cache(disk=True)
    monkeypatch.setenv("FASTCONV_CACHE_DIR", str(blocker / "sub"))
    with pytest.warns(_cachefiles.CacheWarning, match="could not delete"):
        fastconv.clear_autotune_cache(disk=True)
