"""Calibration: fastconv.calibrate() measures per-algorithm factors on this machine, stores them
in the cache directory, and a later process's first choice loads them; a corrupt or stale file is
ignored with a warning and the shipped defaults apply. Everything runs in a temporary
FASTCONV_CACHE_DIR with the tiny calibration mode."""
import json
import os
import subprocess
import sys
import warnings

import pytest

import fastconv
from fastconv import _cachefiles, _calibrate, _calibration, _kernel_level, _registry

# The folder holding the fastconv under test (the installed package, or the source tree built
# in place): fresh interpreters import it from there, run there so that the current directory
# cannot shadow it with an unbuilt source folder.
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(fastconv.__file__)))
# The line shipped for direct's float32 forward (the development machine's calibration), read
# from the shipped table itself: what applies when this machine has no calibration of its own.
SHIPPED_DIRECT = tuple(float(v) for v in _calibration.shipped()["direct"]["forward"]["float32"])


@pytest.fixture
def cache(tmp_path, monkeypatch):
    """A private cache directory; the calibration in memory is forgotten before and after."""
    monkeypatch.setenv("FASTCONV_CACHE_DIR", str(tmp_path))
    _calibration.reset()
    yield tmp_path
    _calibration.reset()


def _spec(x_shape=(1, 1, 64, 64), w_shape=(1, 1, 9, 9)):
    from fastconv._functional import spec_from_shapes
    return spec_from_shapes(x_shape, w_shape, 1, 0, 1, 1, "float32")


def _write(cache, **changes):
    data = {"format": _cachefiles.FORMAT, "cpu": _cachefiles.cpu_model(),
            "fastconv": fastconv.__version__, "kernel_level": _kernel_level.current(),
            "threads": 1, "constants": {},
            "factors": {"direct": {"forward": {"float32": [1000.0, 0.0]}}}}
    data.update(changes)
    (cache / _calibration.FILE_NAME).write_text(json.dumps(data))


def test_cache_dir_follows_the_environment(monkeypatch, tmp_path):
    monkeypatch.setenv("FASTCONV_CACHE_DIR", str(tmp_path / "a"))
    assert _cachefiles.cache_dir() == str(tmp_path / "a")
    monkeypatch.delenv("FASTCONV_CACHE_DIR")
    if sys.platform not in ("win32", "darwin"):
        monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
        assert _cachefiles.cache_dir() == str(tmp_path / "xdg" / "fastconv")
        monkeypatch.delenv("XDG_CACHE_HOME")
        assert _cachefiles.cache_dir() == os.path.expanduser("~/.cache/fastconv")


def test_without_calibration_the_shipped_defaults_apply(cache):
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert _calibration.current() is None
        assert _calibration.factor("direct", "forward", "float32") == SHIPPED_DIRECT
    spec = _spec()
    scale, overhead = _calibration.factor("direct", "forward", "float32", _calibration.kind(spec))
    assert _registry.predicted("direct", spec, "forward") == pytest.approx(
        fastconv._algorithms.direct.cost(spec, "forward") * scale + overhead)


def test_calibration_round_trip(cache):
    data = fastconv.calibrate(quick=True)
    stored = json.loads((cache / _calibration.FILE_NAME).read_text())
    assert stored["factors"] == data["factors"] and stored["factors"], stored
    assert stored["cpu"] == _cachefiles.cpu_model() and stored["fastconv"] == fastconv.__version__
    for name, per_op in stored["factors"].items():
        assert name in fastconv.algorithms() and name != "reference"
        for op, per_dtype in per_op.items():
            assert op in _registry.OPERATIONS
            for scale, overhead in per_dtype.values():
                assert 1 / _calibrate.MAX_FACTOR <= scale <= _calibrate.MAX_FACTOR
                assert 0 <= overhead < 0.1
    _calibration.reset()                # as a new process: loaded lazily at the first use
    name, op = "im2col", "forward"
    scale, overhead = stored["factors"][name][op]["float32"]
    assert _calibration.factor(name, op, "float32") == (scale, overhead)
    spec = _spec((1, 2, 12, 12), (2, 2, 3, 3))
    expected = fastconv._algorithms.im2col.cost(spec, op) * scale + overhead
    assert _registry.predicted(name, spec, op) == pytest.approx(expected)


def test_a_later_process_loads_the_calibration(cache):
    _write(cache)
    code = ("import fastconv; from fastconv import _calibration; "
            "print(_calibration.factor('direct', 'forward', 'float32')[0])")
    env = dict(os.environ, PYTHONPATH=ROOT, FASTCONV_CACHE_DIR=str(cache))
    out = subprocess.run([sys.executable, "-c", code], env=env, cwd=ROOT, capture_output=True, text=True,
                         check=True, timeout=60)
    assert float(out.stdout) == 1000.0


def test_calibration_changes_the_choice(cache):
    """A factor that makes the model's pick expensive moves "auto" to another algorithm."""
    spec = _spec()
    before = _registry.choose_name(spec, "forward")
    _write(cache, factors={before: {"forward": {"float32": [8.0, 1e-3]}}})
    _calibration.reset()
    costs = {name: _registry.predicted(name, spec, "forward")
             for name, ok, *_ in _registry.assess(spec, "forward") if ok}
    after = _registry.choose_name(spec, "forward")
    assert after == min(costs, key=costs.get)
    raw = fastconv._algorithms.__dict__[before].cost(spec, "forward")
    assert costs[before] == pytest.approx(8.0 * raw + 1e-3)
    assert after != before


@pytest.mark.parametrize("content", ["{not json", "[1, 2]", '{"format": 999, "factors": {}}'])
def test_a_corrupt_calibration_file_is_ignored_with_a_warning(cache, content):
    (cache / _calibration.FILE_NAME).write_text(content)
    with pytest.warns(_cachefiles.CacheWarning, match="ignoring"):
        assert _calibration.current() is None
    assert _calibration.factor("direct", "forward", "float32") == SHIPPED_DIRECT
    assert fastconv.choose((1, 1, 64, 64), (1, 1, 9, 9)) in fastconv.algorithms()


@pytest.mark.parametrize("field, value", [("cpu", "another processor"), ("fastconv", "0.0.1"),
                                          ("kernel_level", "another level")])
def test_a_stale_calibration_file_is_ignored_with_a_warning(cache, field, value):
    _write(cache, **{field: value})
    with pytest.warns(_cachefiles.CacheWarning, match="calibrate"):
        assert _calibration.current() is None
    assert _calibration.factor("direct", "forward", "float32") == SHIPPED_DIRECT


def test_fit_recovers_a_scale_and_an_overhead_from_competitive_problems():
    line = [("a", "forward", "float32", "", p, 2.0 * p + 1e-4, 2.0 * p + 1e-4)
            for p in (1e-5, 1e-4, 1e-3, 1e-2)]
    slow = [("a", "forward", "float32", "", 1.0, 100.0, 1.0)]        # far from the fastest
    hopeless = [("b", "forward", "float32", "", 1.0, 1000.0, 1000.0)]
    one_d = [("a", "forward", "float32", "/1d", p, 3.0 * p, 3.0 * p) for p in (1e-3, 1e-2)]
    factors = _calibrate.fit(line + slow + hopeless)
    scale, overhead = factors["a"]["forward"]["float32"]
    assert scale == pytest.approx(2.0, rel=0.1) and overhead == pytest.approx(1e-4, rel=0.4)
    assert "float32/1d" not in factors["a"]["forward"]
    assert factors["b"]["forward"]["float32"][0] == _calibrate.MAX_FACTOR
    factors = _calibrate.fit(line + one_d)
    scale_1d, overhead_1d = factors["a"]["forward"]["float32/1d"]
    assert scale_1d == pytest.approx(3.0, rel=0.05)
    assert overhead_1d == factors["a"]["forward"]["float32"][1], "1-D keeps the pooled overhead"


@pytest.mark.parametrize("line", [[0.0, 0.0], [-1.0, 0.0], [float("nan"), 0.0], [float("inf"), 0.0],
                                  [1.0, -1e-3], [1.0, float("nan")], [1.0, float("-inf")],
                                  ["1", 0.0], [True, 0.0], [1.0], "fast", None])
def test_a_forged_calibration_line_is_never_used(cache, line):
    """Scales <= 0 or non-finite, negative or NaN overheads (issue 17, item 8): the shipped line
    applies instead, and the choice of a ResNet layer is not the oracle."""
    _write(cache, factors={"direct": {"forward": {"float32": line}},
                           "reference": {"forward": {"float32": line}}})
    with pytest.warns(_cachefiles.CacheWarning, match="out-of-range"):
        _calibration.current()
    assert _calibration.factor("direct", "forward", "float32") == SHIPPED_DIRECT
    assert fastconv.choose((8, 64, 56, 56), (64, 64, 3, 3), padding=1) != "reference"


@pytest.mark.parametrize("vendor", sorted(_calibration.SHIPPED))
def test_the_shipped_lines_cover_every_kernel_level_this_build_can_run(vendor):
    """Each vendor's table (Intel's, every other CPU's) has every level this build runs, each
    level a line for each algorithm but the oracle and each operation, and every line is valid;
    this process's level has its own table (or the nearest)."""
    module = _calibration.SHIPPED[vendor]
    table = module.FACTORS
    assert isinstance(module.MACHINE, str) and module.MACHINE
    assert set(_kernel_level.NAMES) <= set(table), sorted(table)
    for level, factors in table.items():
        assert level in _kernel_level.NAMES
        for name in set(fastconv.algorithms()) - {"reference"}:
            assert name in factors, (level, name)
            for op, lines in factors[name].items():
                assert all(_calibration.valid_line(v) for v in lines.values()), (level, name, op)
    own = _calibration.shipped_module().FACTORS
    assert _calibration.shipped() is own.get(_kernel_level.current(), _calibration.shipped())


@pytest.mark.parametrize("vendor, module", [("intel", "_calibration_shipped_intel"),
                                            ("amd", "_calibration_shipped"),
                                            ("", "_calibration_shipped")])
def test_the_shipped_lines_are_those_of_the_cpu_vendor(vendor, module, monkeypatch, cache):
    """Intel's processors take the lines measured on a Xeon, every other CPU (AMD, ARM, an
    unknown vendor) the EPYC's; explain names the machine they were measured on. (`cache`, set
    up after the patch, forgets every choice made under it before the patch is undone.)"""
    monkeypatch.setattr(_calibration, "_vendor", vendor)
    assert _calibration.shipped_module().__name__ == "fastconv." + module
    level = _kernel_level.current()
    assert _calibration.shipped() is _calibration.shipped_module().FACTORS.get(
        level, _calibration.shipped())
    machine = _calibration.shipped_module().MACHINE
    assert f"shipped defaults for {level}, measured on {machine!r}" in str(
        fastconv.explain((1, 3, 16, 16), (4, 3, 3, 3)))


def test_the_cpu_vendor_is_read_from_cpuinfo():
    assert _cachefiles.cpu_vendor() in ("intel", "amd", "")
