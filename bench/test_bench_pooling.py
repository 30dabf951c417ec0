"""Benchmarks of 2-D max and average pooling, forward and input gradient, fastconv vs PyTorch.

Shapes: x (32, 64, 56, 56) float32 (a ResNet stage's activations), kernel 3 stride 2 padding 1
(ResNet's stem pool) and kernel 2 stride 2 (VGG's). Pooling does no multiply-adds worth counting,
so the figure of merit is input elements per second (``extra_info["elements_per_s"]``, from the
best round). The max gradient is timed given the indices of the forward call, for both
libraries. Each benchmark first checks its result against PyTorch when PyTorch is importable.

Run: python -m pytest bench/test_bench_pooling.py --benchmark-only -p no:randomly
(``FASTCONV_NUM_THREADS=1`` for one thread; the conftest holds PyTorch to the same count.)
"""
import functools
import os
import time

import numpy as np
import pytest

from cases import QUICK

try:
    import fastconv
    from fastconv import pooling
except ImportError as exc:
    fastconv = None
    FASTCONV_MISSING = f"fastconv is not importable ({exc})"
try:
    import torch
except ImportError:
    torch = None

SHAPE = (1, 64, 14, 14) if QUICK else (32, 64, 56, 56)
GEOMETRIES = {"k3s2": (3, 2, 1), "k2s2": (2, 2, 0)}
OPERATIONS = ("max_forward", "max_grad_input", "avg_forward", "avg_grad_input")
TARGET_SECONDS = float(os.environ.get("FASTCONV_BENCH_SECONDS") or (0.05 if QUICK else 1.0))
IMPLS = ("fastconv", "torch")


@functools.lru_cache(maxsize=2)
def arrays(geometry):
    k, s, p = GEOMETRIES[geometry]
    rng = np.random.default_rng(0)
    x = rng.standard_normal(SHAPE, dtype=np.float32)
    out = tuple((n + 2 * p - k) // s + 1 for n in SHAPE[2:])
    gy = rng.standard_normal(SHAPE[:2] + out, dtype=np.float32)
    return x, gy


def fastconv_call(op, geometry, x, gy):
    k, s, p = GEOMETRIES[geometry]
    if op == "max_forward":
        return lambda: pooling.max_pool(x, k, s, p)
    if op == "max_grad_input":
        _, idx = pooling.max_pool(x, k, s, p, return_indices=True)
        return lambda: pooling.max_pool_grad_input(gy, x, k, s, p, indices=idx)
    if op == "avg_forward":
        return lambda: pooling.avg_pool(x, k, s, p)
    return lambda: pooling.avg_pool_grad_input(gy, x.shape, k, s, p)


def torch_call(op, geometry, x, gy):
    k, s, p = GEOMETRIES[geometry]
    xt, gyt = torch.from_numpy(x), torch.from_numpy(gy)
    F, aten = torch.nn.functional, torch.ops.aten
    if op == "max_forward":
        fn = lambda: F.max_pool2d(xt, k, s, p)  # noqa: E731
    elif op == "max_grad_input":
        _, idx = F.max_pool2d(xt, k, s, p, return_indices=True)
        fn = lambda: aten.max_pool2d_with_indices_backward(  # noqa: E731
            gyt, xt, [k, k], [s, s], [p, p], [1, 1], False, idx)
    elif op == "avg_forward":
        fn = lambda: F.avg_pool2d(xt, k, s, p)  # noqa: E731
    else:
        fn = lambda: aten.avg_pool2d_backward(  # noqa: E731
            gyt, xt, [k, k], [s, s], [p, p], False, True, None)

    def run():
        with torch.no_grad():
            return fn()

    return run


@functools.lru_cache(maxsize=1)
def anchor(op, geometry):
    if torch is None:
        return None
    return np.asarray(torch_call(op, geometry, *arrays(geometry))())


@pytest.mark.parametrize("impl", IMPLS)
@pytest.mark.parametrize("op", OPERATIONS)
@pytest.mark.parametrize("geometry", GEOMETRIES)
def test_pooling(benchmark, num_threads, geometry, op, impl):
    x, gy = arrays(geometry)
    if impl == "fastconv":
        if fastconv is None:
            pytest.skip(FASTCONV_MISSING)
        fn = fastconv_call(op, geometry, x, gy)
    else:
        if torch is None:
            pytest.skip("PyTorch is not installed")
        fn = torch_call(op, geometry, x, gy)
    start = time.perf_counter()
    result = np.asarray(fn())
    elapsed = time.perf_counter() - start
    expected = anchor(op, geometry)
    if expected is not None:
        assert result.shape == expected.shape and result.dtype == np.float32
        err = float(np.abs(result - expected).max()) / (float(np.abs(expected).max()) or 1.0)
        assert err <= 1e-5, f"{impl} {op} differs from PyTorch by {err:.2e} of max |result|"
    del result
    rounds = max(1, min(1000, round(TARGET_SECONDS / max(elapsed, 1e-9))))
    elements = int(np.prod(SHAPE))
    benchmark.group = f"pool-{geometry}-{op}"
    benchmark.extra_info.update(impl=impl, op=op, geometry=geometry, x_shape=list(SHAPE),
                                threads=num_threads, elements=elements, quick=QUICK)
    benchmark.pedantic(fn, rounds=rounds, iterations=1, warmup_rounds=1)
    if benchmark.stats is not None:
        stats = benchmark.stats.stats
        benchmark.extra_info["elements_per_s"] = elements / stats.min
        benchmark.extra_info["elements_per_s_median"] = elements / stats.median
