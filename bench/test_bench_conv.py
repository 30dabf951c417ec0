"""Benchmarks: every case x operation x implementation, grouped by shape so they line up.

Implementations are each fastconv algorithm except "reference" (which is far too slow for these
shapes and is never benchmarked here), fastconv's "auto", PyTorch CPU when it is importable, and
for the single-channel image cases scipy.signal's fftconvolve, oaconvolve and convolve2d.

Each benchmark first calls its function once, untimed: that warms it up, skips a forced fastconv
algorithm that raises NotSupportedError, checks the result's shape and dtype and compares it with
PyTorch (a benchmark of a wrong answer is worthless), and times the call to choose the rounds so
that a benchmark takes about FASTCONV_BENCH_SECONDS (1 s; 0.05 s with FASTCONV_BENCH_QUICK=1).

Run: python -m pytest bench --benchmark-only --benchmark-json=bench/results.json -p no:randomly
"""

import ctypes
import functools
import gc
import os
import resource
import time
import tracemalloc
from math import prod

import numpy as np
import pytest

from cases import (CASES, OPERATIONS, QUICK, flops, make_arrays, output_spatial, result_shape,
                   torch_operations)

try:
    import fastconv
except ImportError as exc:
    fastconv = None
    FASTCONV_MISSING = f"fastconv is not importable ({exc}); build it with setup.py build_ext --inplace"
try:
    import torch
except ImportError:
    torch = None
try:
    import scipy.signal
except ImportError:
    scipy = None

NOT_SUPPORTED = getattr(fastconv, "NotSupportedError", ())
CONTRACT_ALGORITHMS = ("im2col", "direct", "fft", "separable")
SCIPY_METHODS = ("fftconvolve", "oaconvolve", "convolve2d")
TARGET_SECONDS = float(os.environ.get("FASTCONV_BENCH_SECONDS") or (0.05 if QUICK else 1.0))
MAX_ROUNDS = 1000
SANITY_RTOL = 1e-3
MEMORY_CASES = ("resnet3x3", "vgg_first")
MIB = 2.0**20


def fastconv_algorithms():
    """Forced algorithms to benchmark, then "auto"; the contract's names while fastconv is missing."""
    names = fastconv.algorithms() if fastconv is not None else CONTRACT_ALGORITHMS
    return tuple(name for name in names if name != "reference") + ("auto",)


def implementations(case, op):
    impls = [f"fastconv-{name}" for name in fastconv_algorithms()]
    if torch is not None:
        impls.append("torch")
    if scipy is not None and op == "forward" and case.single_channel:
        impls.extend(f"scipy-{method}" for method in SCIPY_METHODS)
    return impls


PARAMS = [
    pytest.param(name, op, impl, id=f"{name}-{op}-{impl}")
    for name, case in CASES.items()
    for op in OPERATIONS
    for impl in implementations(case, op)
]


@functools.lru_cache(maxsize=1)
def arrays_for(name):
    """The arrays of one case, kept while its benchmarks run (they are collected in case order)."""
    return make_arrays(CASES[name])


def fastconv_call(case, op, algorithm, a):
    g = dict(case.geometry, algorithm=algorithm)
    if op == "forward":
        return lambda: fastconv.conv(a["x"], a["w"], **g)
    if op == "grad_input":
        return lambda: fastconv.conv_grad_input(a["gy"], a["w"], case.x_shape, **g)
    return lambda: fastconv.conv_grad_kernel(a["x"], a["gy"], case.w_shape, **g)


def torch_call(case, op, a):
    fn = torch_operations(a["x"], a["w"], a["gy"], case.geometry)[op]

    def run():
        with torch.no_grad():
            return fn()

    return run


def scipy_call(method, a):
    """Cross-correlation of the single image as scipy's convolution with the flipped kernel."""
    image = a["x"][0, 0]
    kernel = np.ascontiguousarray(a["w"][0, 0, ::-1, ::-1])
    f = getattr(scipy.signal, method)
    return lambda: f(image, kernel, mode="valid")[None, None]


@functools.lru_cache(maxsize=1)
def anchor_result(name, op):
    """PyTorch's answer for the sanity check, or None without PyTorch."""
    if torch is None:
        return None
    return np.asarray(torch_call(CASES[name], op, arrays_for(name))())


def check(result, case, op, impl):
    got = np.asarray(result)
    expected = result_shape(case, op)
    assert got.shape == expected, f"{impl} {op} returned shape {got.shape}, expected {expected}"
    assert got.dtype == np.float32, f"{impl} {op} returned {got.dtype} for float32 inputs"
    anchor = anchor_result(case.name, op)
    if anchor is not None:
        scale = float(np.abs(anchor).max()) or 1.0
        err = float(np.abs(got - anchor).max()) / scale
        assert err <= SANITY_RTOL, f"{impl} {op} differs from PyTorch by {err:.2e} of max |result|"


def timed(fn):
    start = time.perf_counter()
    result = fn()
    return result, time.perf_counter() - start


def measure(benchmark, fn, case, op, impl, skip_on=(), **extra):
    """Warm up and check once, then time about TARGET_SECONDS worth of rounds; record GFLOP/s."""
    try:
        result, elapsed = timed(fn)
    except skip_on as exc:
        pytest.skip(f"{impl}: {exc}")
    check(result, case, op, impl)
    del result
    rounds = max(1, min(MAX_ROUNDS, round(TARGET_SECONDS / max(elapsed, 1e-9))))
    n_flops = flops(case)
    benchmark.group = f"{case.name}-{op}"
    benchmark.extra_info.update(
        impl=impl, case=case.name, op=op, flops=n_flops, quick=QUICK,
        x_shape=list(case.x_shape), w_shape=list(case.w_shape), **extra,
    )
    # The untimed call above already warmed up a slow function; a fast one gets one more.
    warmup = 1 if elapsed < TARGET_SECONDS else 0
    benchmark.pedantic(fn, rounds=rounds, iterations=1, warmup_rounds=warmup)
    if benchmark.stats is not None:  # None under --benchmark-disable
        stats = benchmark.stats.stats
        benchmark.extra_info["gflops"] = n_flops / stats.min / 1e9
        benchmark.extra_info["gflops_median"] = n_flops / stats.median / 1e9


@pytest.mark.parametrize(("name", "op", "impl"), PARAMS)
def test_conv(benchmark, num_threads, name, op, impl):
    case = CASES[name]
    a = arrays_for(name)
    family, _, method = impl.partition("-")
    extra = {"threads": num_threads}
    skip_on = ()
    if family == "fastconv":
        if fastconv is None:
            pytest.skip(FASTCONV_MISSING)
        fn = fastconv_call(case, op, method, a)
        if method == "auto" and op == "forward":
            extra["chosen"] = fastconv.choose(case.x_shape, case.w_shape, dtype="float32", **case.geometry)
        if method != "auto":
            skip_on = NOT_SUPPORTED
    elif family == "torch":
        fn = torch_call(case, op, a)
    else:
        fn = scipy_call(method, a)
    measure(benchmark, fn, case, op, impl, skip_on=skip_on, **extra)


def _status_kib(field):
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise OSError(f"{field} not in /proc/self/status")


def _release_free_heap():
    gc.collect()
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):
        pass


def traced_peak_bytes(fn):
    """Peak bytes allocated during one call as tracemalloc sees them (NumPy and Python heaps)."""
    _release_free_heap()
    tracemalloc.start()
    try:
        base = tracemalloc.get_traced_memory()[0]
        result = fn()
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    return peak - base, np.asarray(result).nbytes


def rss_peak_bytes(fn):
    """Peak resident growth during one call; also sees C malloc and OpenMP scratch."""
    _release_free_heap()
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")  # resets VmHWM to the current RSS
        before = _status_kib("VmRSS")
        fn()
        return (_status_kib("VmHWM") - before) * 1024, "VmHWM after clear_refs"
    except OSError:
        before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        fn()
        after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        return (after - before) * 1024, "ru_maxrss growth (lower bound)"


@pytest.mark.parametrize("name", [n for n in MEMORY_CASES if n in CASES])
def test_memory_im2col(benchmark, num_threads, name):
    """Peak extra memory of im2col forward: a full column matrix would be C*k*out*N floats."""
    if fastconv is None:
        pytest.skip(FASTCONV_MISSING)
    case = CASES[name]
    fn = fastconv_call(case, "forward", "im2col", arrays_for(name))
    try:
        check(fn(), case, "forward", "fastconv-im2col")
    except NOT_SUPPORTED as exc:
        pytest.skip(f"fastconv-im2col: {exc}")
    traced, output = traced_peak_bytes(fn)
    rss, rss_method = rss_peak_bytes(fn)
    full_columns = 4 * case.N * case.C * prod(case.kernel) * prod(output_spatial(case))
    limit = getattr(fastconv, "get_workspace_limit", None)
    benchmark.group = f"{name}-forward-memory"
    benchmark.extra_info.update(
        impl="fastconv-im2col", case=name, op="forward", flops=flops(case), quick=QUICK,
        threads=num_threads, peak_mib=traced / MIB, output_mib=output / MIB,
        workspace_mib=(traced - output) / MIB, rss_peak_mib=rss / MIB, rss_method=rss_method,
        full_columns_mib=full_columns / MIB,
        workspace_limit=limit() if limit is not None else None,
    )
    benchmark.pedantic(fn, rounds=1, iterations=1, warmup_rounds=0)
