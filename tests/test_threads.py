"""Thread count and workspace limit change the speed, never the result.

Results are bitwise identical for 1 and 2 threads (every algorithm, all three operations), both on
an ordinary problem and on one whose im2col workspace is tiled; tiling changes results at most
within the contract tolerance. FASTCONV_NUM_THREADS is read at import.
"""
import os
import subprocess
import sys

import numpy as np
import pytest

import fastconv

OPERATIONS = ("forward", "grad_input", "grad_kernel", "transpose")
TINY_LIMIT = 64 * 1024
DEFAULT_LIMIT = 256 * 2**20


def _problem(dtype, N=3, rank1=False):
    """N=3, C=5, K=7, 23x19 input, 3x3 kernel, padding 1: one image's im2col buffer is
    5*9*23*19 elements (157 KB in float64, 79 KB in float32), above the 64 KiB tiny limit.
    ``rank1``: every (K, C) kernel is an outer product (a separable kernel)."""
    rng = np.random.default_rng(17)
    x = rng.standard_normal((N, 5, 23, 19)).astype(dtype)
    if rank1:
        w = (rng.standard_normal((7, 5, 3, 1)) * rng.standard_normal((7, 5, 1, 3))).astype(dtype)
    else:
        w = rng.standard_normal((7, 5, 3, 3)).astype(dtype)
    gy = rng.standard_normal((N, 7, 23, 19)).astype(dtype)
    b = rng.standard_normal(7).astype(dtype)
    return x, w, gy, b


def _run(op, x, w, gy, b, *, algorithm, **kw):
    if op == "forward":
        return fastconv.conv(x, w, b, padding=1, algorithm=algorithm, **kw)
    if op == "grad_input":
        return fastconv.conv_grad_input(gy, w, x.shape, padding=1, algorithm=algorithm, **kw)
    if op == "grad_kernel":
        return fastconv.conv_grad_kernel(x, gy, w.shape, padding=1, algorithm=algorithm, **kw)
    wt = np.ascontiguousarray(np.swapaxes(w, 0, 1))  # (C=5, K=7, 3, 3): maps 5 channels to 7
    return fastconv.conv_transpose(x, wt, b, padding=1, algorithm=algorithm, **kw)


@pytest.mark.parametrize("kernel", ["random", "rank1"])
@pytest.mark.parametrize("limit", [None, TINY_LIMIT], ids=["untiled", "tiled"])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("op", OPERATIONS)
def test_bitwise_identical_for_1_and_2_threads(op, dtype, limit, kernel, algorithm_or_auto, restore_settings,
                                               forced):
    x, w, gy, b = _problem(dtype, rank1=kernel == "rank1")
    if limit is not None:
        fastconv.set_workspace_limit(limit)
    results = []
    for threads in (1, 2, 1):
        fastconv.set_num_threads(threads)
        assert fastconv.get_num_threads() == threads
        results.append(forced(_run, op, x, w, gy, b, algorithm=algorithm_or_auto))
    assert results[0].dtype == np.dtype(dtype)
    assert np.all(np.isfinite(results[0]))
    assert np.array_equal(results[0], results[1]), "1 and 2 threads gave different results"
    assert np.array_equal(results[0], results[2]), "the same call gave different results twice"


@pytest.mark.parametrize("kernel", ["random", "rank1"])
@pytest.mark.parametrize("limit", [TINY_LIMIT, 200 * 1024, 8 * 1024])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("op", OPERATIONS)
def test_tiled_equals_untiled(op, dtype, limit, kernel, algorithm_or_auto, restore_settings, forced,
                              assert_close_to_reference):
    """A workspace limit (64 KiB and 200 KiB: tiles over the batch, then over output positions;
    8 KiB: a few output positions per tile) gives the untiled result within tolerance, and the
    reference's."""
    x, w, gy, b = _problem(dtype, rank1=kernel == "rank1")
    fastconv.set_workspace_limit(DEFAULT_LIMIT)
    untiled = forced(_run, op, x, w, gy, b, algorithm=algorithm_or_auto)
    fastconv.set_workspace_limit(limit)
    assert fastconv.get_workspace_limit() == limit
    for threads in (1, 2):
        fastconv.set_num_threads(threads)
        tiled = forced(_run, op, x, w, gy, b, algorithm=algorithm_or_auto)
        assert_close_to_reference(tiled, untiled, dtype)
    fastconv.set_workspace_limit(DEFAULT_LIMIT)
    ref = _run(op, x, w, gy, b, algorithm="reference")
    assert_close_to_reference(tiled, ref, dtype)


@pytest.mark.parametrize("op", OPERATIONS)
def test_tiling_with_a_single_large_image(op, restore_settings, assert_close_to_reference):
    """N=1: tiling can only split the output positions."""
    x, w, gy, b = _problem(np.float64, N=1)
    expected = _run(op, x, w, gy, b, algorithm="reference")
    fastconv.set_workspace_limit(TINY_LIMIT)
    for threads in (1, 2):
        fastconv.set_num_threads(threads)
        assert_close_to_reference(_run(op, x, w, gy, b, algorithm="im2col"), expected, np.float64)


def test_settings_round_trip(restore_settings):
    fastconv.set_num_threads(1)
    assert fastconv.get_num_threads() == 1
    fastconv.set_num_threads(2)
    assert fastconv.get_num_threads() == 2
    fastconv.set_workspace_limit(TINY_LIMIT)
    assert fastconv.get_workspace_limit() == TINY_LIMIT
    fastconv.set_workspace_limit(DEFAULT_LIMIT)
    assert fastconv.get_workspace_limit() == DEFAULT_LIMIT


@pytest.mark.parametrize("value,exc_type", [(0, ValueError), (-1, ValueError), ("2", TypeError),
                                            (1.5, TypeError), (None, TypeError)])
def test_set_num_threads_rejects(value, exc_type, restore_settings):
    before = fastconv.get_num_threads()
    with pytest.raises(exc_type):
        fastconv.set_num_threads(value)
    assert fastconv.get_num_threads() == before, "a rejected value changed the setting"


def _fresh_interpreter(env_updates, code):
    package_root = os.path.dirname(os.path.dirname(os.path.abspath(fastconv.__file__)))
    env = {k: v for k, v in os.environ.items() if k != "FASTCONV_NUM_THREADS"}
    env.update(env_updates)
    env["PYTHONPATH"] = package_root + os.pathsep + env.get("PYTHONPATH", "")
    done = subprocess.run([sys.executable, "-c", code], env=env, cwd=package_root,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    return done.stdout.split()


def test_environment_variable_and_defaults_in_a_fresh_interpreter():
    code = ("import fastconv; print(fastconv.get_num_threads(), fastconv.get_workspace_limit(), "
            "fastconv.__file__)")
    one = _fresh_interpreter({"FASTCONV_NUM_THREADS": "1"}, code)
    assert one[2] == fastconv.__file__, "the subprocess imported another fastconv"
    assert one[:2] == ["1", str(DEFAULT_LIMIT)]
    two = _fresh_interpreter({"FASTCONV_NUM_THREADS": "2"}, code)
    assert two[0] == "2"
    unset = _fresh_interpreter({}, code)
    assert int(unset[0]) >= 1


def test_small_problems_run_on_one_thread_and_large_ones_on_the_budget(monkeypatch, restore_settings):
    from fastconv import _config
    monkeypatch.setattr(_config, "SMALL_PROBLEM_FLOPS", 1e6)
    fastconv.set_num_threads(2)
    with _config.threads_for(1e5):
        assert fastconv.get_num_threads() == 1
        with _config.threads_for(1e7):          # nested calls keep the outer call's cap
            assert fastconv.get_num_threads() == 1
        assert fastconv.get_num_threads() == 1
    with _config.threads_for(1e7):
        assert fastconv.get_num_threads() == 2
    assert fastconv.get_num_threads() == 2


def test_a_problem_of_few_flops_and_many_bytes_runs_on_the_budget(monkeypatch, restore_settings):
    """Work counts bytes as well as flops: MobileNetV2's 384-channel depthwise 3x3 at batch 1
    (1.35 MFLOP, 588 KB) ran 1.45-1.49x faster on two threads than on the one its flops gave
    it; 16 channels of 16 x 16 (1.2 MFLOP, 32 KB) stays on one, where two lost 10-15%."""
    from fastconv import _config
    from fastconv._algorithms import depthwise
    from fastconv._geometry import make_spec
    monkeypatch.setattr(_config, "SMALL_PROBLEM_FLOPS", 2e6)     # the library's (conftest: 0)
    fastconv.set_num_threads(2)
    dw = make_spec((1, 384, 14, 14), (384, 1, 3, 3), padding=1, groups=384, dtype=np.float32)
    dense = make_spec((1, 16, 16, 16), (16, 16, 3, 3), padding=1, dtype=np.float32)
    assert dw.flops < _config.SMALL_PROBLEM_FLOPS and dw.io_bytes == 4 * 2 * 384 * 196
    assert _config.work(dense) < _config.SMALL_PROBLEM_FLOPS < _config.work(dw)
    for spec, threads in ((dw, 2), (dense, 1)):
        with _config.threads_for(_config.work(spec)):
            assert fastconv.get_num_threads() == threads
        assert _config.model_threads(spec) == (threads if threads == 1 else
                                               _config.planning_threads())
    assert depthwise._plan(dw).threads("forward") == 2


@pytest.mark.parametrize("op", ("forward", "grad_input", "grad_kernel"))
def test_many_groups_repeated_on_two_threads(op, algorithm_or_auto, restore_settings, forced,
                                             assert_close_to_reference):
    """A depthwise problem called again and again in one process on two threads: each work item
    makes one GEMM per group, long enough for a value shared between threads by mistake to be
    overwritten mid-item (it once was: im2col's column stride, which made BLAS reject the call)."""
    rng = np.random.default_rng(3)
    x = rng.standard_normal((4, 64, 20, 20)).astype(np.float32)
    w = rng.standard_normal((64, 1, 3, 3)).astype(np.float32)
    gy = rng.standard_normal((4, 64, 20, 20)).astype(np.float32)
    b = rng.standard_normal(64).astype(np.float32)
    expected = _run(op, x, w, gy, b, algorithm="reference", groups=64)
    fastconv.set_num_threads(2)
    for _ in range(8):
        assert_close_to_reference(forced(_run, op, x, w, gy, b, algorithm=algorithm_or_auto,
                                         groups=64), expected, np.float32)
