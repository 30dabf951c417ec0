"""Shared fixtures and helpers for the fastconv test suite.

pytest runs with ``--import-mode=importlib`` (pyproject.toml), so test modules cannot import this
file; the helpers reach them as (session-scoped) fixtures instead, and the algorithm lists as
collection-time parametrisation of the arguments ``algorithm`` and ``algorithm_or_auto``.

Tolerance (CONTRACT.md): ``max|fast - ref| <= tol * max|ref|`` with tol 2e-4 in float32 and
1e-9 in float64.
"""
import math
import os
import subprocess
import sys
import tempfile

import numpy as np
import pytest
from hypothesis import settings

# The suite must not see (or write) the user's calibration and autotuning files: "auto" would
# then depend on what this machine's user ran before. Set before fastconv reads it (lazily).
os.environ["FASTCONV_CACHE_DIR"] = tempfile.mkdtemp(prefix="fastconv-tests-cache-")
# "auto" is a pure function of the shapes here: tests compare it bitwise with the forced choice,
# and on a loaded machine the safety net would re-rank by measurement. tests/test_safety_net.py
# turns the net on where it tests it.
os.environ["FASTCONV_STRICT_CHOICE"] = "1"

import fastconv  # noqa: E402

settings.register_profile("ci", max_examples=25, deadline=None)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))

SEED = 20240917
TOLERANCE = {np.dtype(np.float32): 2e-4, np.dtype(np.float64): 1e-9}
TINY = np.finfo(np.float64).tiny

# Algorithms that must compute every valid problem: the oracle, and the general-purpose im2col
# that the chooser falls back on. Any other algorithm may refuse a problem with NotSupportedError.
GENERAL_ALGORITHMS = ("reference", "im2col")


def pytest_generate_tests(metafunc):
    """Parametrise ``algorithm`` over ``fastconv.algorithms()`` (and ``auto`` for
    ``algorithm_or_auto``) at collection time, so new algorithms join every test automatically."""
    names = tuple(fastconv.algorithms())
    explicit = {
        name
        for marker in metafunc.definition.iter_markers("parametrize")
        for name in (marker.args[0].split(",") if isinstance(marker.args[0], str) else marker.args[0])
    }
    explicit = {name.strip() for name in explicit}
    if "algorithm" in metafunc.fixturenames and "algorithm" not in explicit:
        metafunc.parametrize("algorithm", names)
    if "algorithm_or_auto" in metafunc.fixturenames and "algorithm_or_auto" not in explicit:
        metafunc.parametrize("algorithm_or_auto", names + ("auto",))


def _assert_close_to_reference(actual, expected, dtype=None):
    """CONTRACT tolerance, plus identical shape, dtype and NaN/Inf pattern."""
    actual = np.asarray(actual)
    expected = np.asarray(expected)
    dtype = np.dtype(expected.dtype if dtype is None else dtype)
    assert actual.shape == expected.shape, f"shape {actual.shape}, expected {expected.shape}"
    assert actual.dtype == dtype, f"dtype {actual.dtype}, expected {dtype}"
    assert expected.dtype == dtype, f"reference dtype {expected.dtype}, expected {dtype}"
    for name, test in (("NaN", np.isnan), ("Inf", np.isinf)):
        got, want = test(actual), test(expected)
        same = np.array_equal(got, want)
        assert same, (f"{name} pattern differs: {int(got.sum())} {name} entries, the reference has "
                      f"{int(want.sum())}; first difference at index "
                      f"{tuple(int(i) for i in np.argwhere(got != want)[0])}")
    infinite = np.isinf(expected)
    same = np.array_equal(actual[infinite], expected[infinite])
    assert same, "signs of the infinite entries differ"
    finite = np.isfinite(expected)
    if not finite.any():
        return
    a = actual[finite].astype(np.float64)
    e = expected[finite].astype(np.float64)
    scale = max(float(np.max(np.abs(e))), TINY)
    err = float(np.max(np.abs(a - e)))
    tol = TOLERANCE[dtype]
    assert err <= tol * scale, (
        f"max |actual - reference| = {err:.3e} > {tol:g} * max|reference| = {tol * scale:.3e} "
        f"(relative error {err / scale:.3e})"
    )


class NotApplicable(Exception):
    """A forced algorithm refused the problem with a legitimate NotSupportedError."""


def _call_forced(fn, *args, algorithm, **kwargs):
    """Call ``fn(*args, algorithm=algorithm, **kwargs)``.

    A NotSupportedError counts as "not applicable" (raises NotApplicable) only when the algorithm is
    not a general one and its message says "does not support"; anything else propagates.
    """
    try:
        return fn(*args, algorithm=algorithm, **kwargs)
    except fastconv.NotSupportedError as exc:
        message = str(exc)
        assert algorithm not in GENERAL_ALGORITHMS and algorithm != "auto", (
            f"{algorithm!r} must support every valid problem, but raised: {message}"
        )
        assert "does not support" in message, f"NotSupportedError without a reason: {message!r}"
        raise NotApplicable(f"{algorithm} {message}") from exc


def _forced_or_skip(fn, *args, algorithm, **kwargs):
    try:
        return _call_forced(fn, *args, algorithm=algorithm, **kwargs)
    except NotApplicable as exc:
        pytest.skip(f"not applicable: {exc}")


def _forced_or_none(fn, *args, algorithm, **kwargs):
    try:
        return _call_forced(fn, *args, algorithm=algorithm, **kwargs)
    except NotApplicable:
        return None


_KERNEL_SET_SCRIPT = """
import numpy as np, fastconv
from fastconv import {module}, reference
assert {module}.kernel_level() == {level}, {module}.kernel_level()
rng = np.random.default_rng(0)
for xs, ws, kw in {cases!r}:
    for dtype, tol in ((np.float32, 2e-4), (np.float64, 1e-9)):
        x = rng.standard_normal(xs).astype(dtype)
        w = rng.standard_normal(ws).astype(dtype)
        y = reference.conv(x, w, **kw)
        gy = rng.standard_normal(y.shape).astype(dtype)
        pairs = [(fastconv.conv(x, w, algorithm="{algorithm}", **kw), y),
                 (fastconv.conv_grad_input(gy, w, xs, algorithm="{algorithm}", **kw),
                  reference.conv_grad_input(gy, w, xs, **kw)),
                 (fastconv.conv_grad_kernel(x, gy, ws, algorithm="{algorithm}", **kw),
                  reference.conv_grad_kernel(x, gy, ws, **kw))]
        for got, want in pairs:
            assert np.abs(got - want).max() <= tol * np.abs(want).max(), (xs, ws, kw, dtype)
print("ok")
"""


def _check_kernel_set(algorithm, env_var, level, cases):
    """Run an algorithm's three operations on `cases` ((x shape, w shape, geometry) triples) in a
    fresh interpreter whose `env_var` lowers its instruction-set level to `level`, against the
    reference. Run from the folder of the fastconv under test, so that nothing shadows it."""
    code = _KERNEL_SET_SCRIPT.format(module=f"_{algorithm}", algorithm=algorithm, level=level,
                                     cases=list(cases))
    root = os.path.dirname(os.path.dirname(os.path.abspath(fastconv.__file__)))
    env = dict(os.environ, **{env_var: str(level)},
               PYTHONPATH=root + os.pathsep + os.environ.get("PYTHONPATH", ""))
    done = subprocess.run([sys.executable, "-c", code], env=env, cwd=root, capture_output=True,
                          text=True, timeout=300)
    assert done.returncode == 0 and done.stdout.strip() == "ok", done.stderr[-2000:]


def _resolve_padding(padding, n, k, stride, dilation):
    """Per-dimension (low, high) pairs from a CONTRACT padding spec (independent of the library)."""
    d = len(n)
    stride = _per_dim(stride, d)
    dilation = _per_dim(dilation, d)
    eff = [dl * (kk - 1) + 1 for kk, dl in zip(k, dilation)]
    if isinstance(padding, str):
        if padding == "valid":
            return [(0, 0)] * d
        if padding == "full":
            return [(e - 1, e - 1) for e in eff]
        if padding == "same":
            pairs = []
            for nn, s, e in zip(n, stride, eff):
                out = -(-nn // s)
                total = max((out - 1) * s + e - nn, 0)
                pairs.append((total // 2, total - total // 2))
            return pairs
        raise ValueError(padding)
    if np.ndim(padding) == 0:
        return [(int(padding), int(padding))] * d
    pairs = []
    for p in padding:
        pairs.append((int(p), int(p)) if np.ndim(p) == 0 else (int(p[0]), int(p[1])))
    return pairs


def _per_dim(value, d):
    return [int(value)] * d if np.ndim(value) == 0 else [int(v) for v in value]


def _output_spatial(n, k, stride=1, padding=0, dilation=1):
    """CONTRACT output size: floor((n + lo + hi - d*(k-1) - 1) / s) + 1 per dimension."""
    d = len(n)
    pairs = _resolve_padding(padding, n, k, stride, dilation)
    s = _per_dim(stride, d)
    dl = _per_dim(dilation, d)
    return tuple(
        (nn + lo + hi - di * (kk - 1) - 1) // ss + 1
        for nn, kk, ss, di, (lo, hi) in zip(n, k, s, dl, pairs)
    )


def _transpose_range(n_out, k, stride=1, padding=0, dilation=1):
    """Per dimension, the (smallest, largest) input sizes whose convolution has size ``n_out``
    (explicit padding only): the sizes conv_transpose can produce."""
    d = len(n_out)
    pairs = _resolve_padding(padding, [1] * d, k, stride, dilation)
    s = _per_dim(stride, d)
    dl = _per_dim(dilation, d)
    lows = [(m - 1) * ss + di * (kk - 1) + 1 - lo - hi
            for m, kk, ss, di, (lo, hi) in zip(n_out, k, s, dl, pairs)]
    return [(lo, lo + ss - 1) for lo, ss in zip(lows, s)]


class _Helpers:
    """Namespace of pure helpers handed to tests by the ``helpers`` fixture."""

    resolve_padding = staticmethod(_resolve_padding)
    output_spatial = staticmethod(_output_spatial)
    transpose_range = staticmethod(_transpose_range)
    per_dim = staticmethod(_per_dim)
    call_forced = staticmethod(_call_forced)
    NotApplicable = NotApplicable
    GENERAL_ALGORITHMS = GENERAL_ALGORITHMS
    TOLERANCE = TOLERANCE
    SEED = SEED
    ceil = staticmethod(math.ceil)


@pytest.fixture(scope="session")
def helpers():
    return _Helpers


@pytest.fixture(scope="session")
def check_kernel_set():
    """``check_kernel_set(algorithm, env_var, level, cases)``: that kernel set against the
    reference, in a fresh interpreter (see _check_kernel_set)."""
    return _check_kernel_set


@pytest.fixture(scope="session")
def assert_close_to_reference():
    return _assert_close_to_reference


@pytest.fixture(scope="session")
def forced():
    """``forced(fn, *args, algorithm=..., **kw)``: the result, or a skip marked "not applicable"."""
    return _forced_or_skip


@pytest.fixture(scope="session")
def forced_or_none():
    """``forced_or_none(fn, *args, algorithm=..., **kw)``: the result, or None if not applicable."""
    return _forced_or_none


@pytest.fixture(scope="session")
def algorithm_names():
    return tuple(fastconv.algorithms())


@pytest.fixture
def rng(request):
    """A generator seeded from the test's node id: reproducible and different per test."""
    digest = sum((i + 1) * ord(c) for i, c in enumerate(request.node.nodeid))
    return np.random.default_rng([SEED, digest])


@pytest.fixture
def restore_settings():
    """Restore the thread count and the workspace limit after the test."""
    threads = fastconv.get_num_threads()
    limit = fastconv.get_workspace_limit()
    yield
    fastconv.set_num_threads(threads)
    fastconv.set_workspace_limit(limit)


@pytest.fixture(autouse=True)
def parallel_even_when_small(monkeypatch):
    """Run every problem on the full thread budget: the library puts problems under
    SMALL_PROBLEM_FLOPS on one thread, which would make the tests' small problems prove nothing
    about the parallel code (thread invariance above all)."""
    monkeypatch.setattr(fastconv._config, "SMALL_PROBLEM_FLOPS", 0)
    # nor drop to one thread because the machine running the tests is busy (`_load`, tested
    # on its own in test_load.py)
    monkeypatch.setattr(fastconv._load, "enabled", False)
