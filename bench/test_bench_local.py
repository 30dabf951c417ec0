"""Benchmarks of locally connected (eq. 9.9) and tiled (eq. 9.10) convolution, section 9.5.

One case, x (32, 16, 28, 28), K = 16, 3x3 kernels, padding 1, float32: locally connected (one
kernel per output position, w (28, 28, 16, 16, 3, 3)); tiled with t = 2 per axis
(w (2, 2, 16, 16, 3, 3)), "auto" (which runs it position by position at this batch size) and
with im2col forced for each tile's convolution; for scale, ordinary convolution of the same
shape (fastconv "auto"); and, when PyTorch is importable, locally connected as PyTorch users
write it (unfold + batched matmul). All three operations each; every one does
2 * N * K * C * 9 * 28 * 28 FLOPs, recorded as GFLOP/s in extra_info. Each benchmark first calls its function once, untimed, to warm up and to
check the result against an independent computation.

Run: python -m pytest bench/test_bench_local.py --benchmark-only -p no:randomly
(FASTCONV_NUM_THREADS=1 for one thread; FASTCONV_BENCH_QUICK=1 for a smoke run.)
"""
import functools
import os
import time

import numpy as np
import pytest

import fastconv
from fastconv import local

try:
    import torch
except ImportError:
    torch = None

QUICK = os.environ.get("FASTCONV_BENCH_QUICK", "0") not in ("", "0")
TARGET_SECONDS = float(os.environ.get("FASTCONV_BENCH_SECONDS") or (0.05 if QUICK else 1.0))
N, C, K, SIZE, KERNEL, PAD, TILES = (2 if QUICK else 32), 16, 16, 28, 3, 1, 2
OPERATIONS = ("forward", "grad_input", "grad_kernel")
FLOPS = 2 * N * K * C * KERNEL * KERNEL * SIZE * SIZE
SANITY_RTOL = 1e-4


@functools.lru_cache(maxsize=1)
def arrays():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((N, C, SIZE, SIZE), dtype=np.float32)
    gy = rng.standard_normal((N, K, SIZE, SIZE), dtype=np.float32)
    w_lc = rng.standard_normal((SIZE, SIZE, K, C, KERNEL, KERNEL), dtype=np.float32) / 12
    w_t = rng.standard_normal((TILES, TILES, K, C, KERNEL, KERNEL), dtype=np.float32) / 12
    return x, gy, w_lc, w_t


def fastconv_call(impl, op):
    x, gy, w_lc, w_t = arrays()
    if impl == "conv":
        w = w_t[0, 0]
        fns = (lambda: fastconv.conv(x, w, padding=PAD),
               lambda: fastconv.conv_grad_input(gy, w, x.shape, padding=PAD),
               lambda: fastconv.conv_grad_kernel(x, gy, w.shape, padding=PAD))
    else:
        w = w_lc if impl == "locally_connected" else w_t
        name = "locally_connected" if impl == "locally_connected" else "tiled_conv"
        forward, grad_input, grad_kernel = (getattr(local, name + suffix) for suffix in
                                            ("", "_grad_input", "_grad_kernel"))
        g = dict(padding=PAD)
        if impl.startswith("tiled_t2_"):
            g["algorithm"] = impl[len("tiled_t2_"):]
        fns = (lambda: forward(x, w, **g),
               lambda: grad_input(gy, w, x.shape, **g),
               lambda: grad_kernel(x, gy, w.shape, **g))
    return fns[OPERATIONS.index(op)]


def torch_call(op):
    """Locally connected in PyTorch: unfold to (N, C*9, P) columns, one bmm per position batch."""
    x, gy, w_lc, _ = arrays()
    P, R = SIZE * SIZE, C * KERNEL * KERNEL
    tx, tgy = torch.from_numpy(x), torch.from_numpy(gy)
    tw = torch.from_numpy(w_lc).reshape(P, K, R)
    unfold = torch.nn.functional.unfold
    fold = torch.nn.functional.fold

    def forward():
        cols = unfold(tx, KERNEL, padding=PAD).permute(2, 0, 1)            # (P, N, R)
        return torch.bmm(cols, tw.transpose(1, 2)).permute(1, 2, 0).reshape(N, K, SIZE, SIZE)

    def grad_input():
        g = tgy.reshape(N, K, P).permute(2, 0, 1)                          # (P, N, K)
        cols = torch.bmm(g, tw).permute(1, 2, 0)                            # (N, R, P)
        return fold(cols, (SIZE, SIZE), KERNEL, padding=PAD)

    def grad_kernel():
        cols = unfold(tx, KERNEL, padding=PAD).permute(2, 0, 1)            # (P, N, R)
        g = tgy.reshape(N, K, P).permute(2, 0, 1)
        return torch.bmm(g.transpose(1, 2), cols).reshape(w_lc.shape)

    fn = {"forward": forward, "grad_input": grad_input, "grad_kernel": grad_kernel}[op]

    def run():
        with torch.no_grad():
            return fn()
    return run


def expected(impl, op):
    """An independent answer: locally connected and tiled from the loops-free identity
    tiled(t) = sum over tiles of masked convolutions; conv needs none (it has its own suite)."""
    x, gy, w_lc, w_t = arrays()
    if impl == "conv":
        return None
    if impl == "locally_connected":
        if torch is None:
            return None
        return np.asarray(torch_call(op)())
    # tiled: each tile's kernel applied everywhere, masked to the positions that use it
    mask = np.zeros((TILES, TILES, SIZE, SIZE), np.float32)
    for a in range(TILES):
        for b in range(TILES):
            mask[a, b, a::TILES, b::TILES] = 1
    if op == "forward":
        return sum(fastconv.conv(x, w_t[a, b], padding=PAD) * mask[a, b]
                   for a in range(TILES) for b in range(TILES))
    if op == "grad_input":
        return sum(fastconv.conv_grad_input(gy * mask[a, b], w_t[a, b], x.shape, padding=PAD)
                   for a in range(TILES) for b in range(TILES))
    return np.stack([np.stack([fastconv.conv_grad_kernel(x, gy * mask[a, b], w_t.shape[2:],
                                                         padding=PAD) for b in range(TILES)])
                     for a in range(TILES)])


PARAMS = [pytest.param(impl, op, id=f"{impl}-{op}")
          for op in OPERATIONS
          for impl in ("locally_connected", "tiled_t2", "tiled_t2_im2col", "conv")
          + (("torch_unfold",) if torch else ())]


@pytest.mark.parametrize(("impl", "op"), PARAMS)
def test_local(benchmark, num_threads, impl, op):
    if impl == "torch_unfold":
        fn = torch_call(op)
        want = None
    else:
        fn = fastconv_call(impl, op)
        want = expected(impl, op)
    start = time.perf_counter()
    got = np.asarray(fn())
    elapsed = time.perf_counter() - start
    if want is not None:
        scale = float(np.abs(want).max()) or 1.0
        err = float(np.abs(got - want).max()) / scale
        assert got.shape == want.shape and err <= SANITY_RTOL, f"{impl} {op}: error {err:.2e}"
    rounds = max(1, min(1000, round(TARGET_SECONDS / max(elapsed, 1e-9))))
    benchmark.group = f"local-{op}"
    benchmark.extra_info.update(impl=impl, op=op, flops=FLOPS, threads=num_threads, quick=QUICK,
                                x_shape=[N, C, SIZE, SIZE], kernel=[K, C, KERNEL, KERNEL],
                                padding=PAD, tiles=TILES)
    benchmark.pedantic(fn, rounds=rounds, iterations=1, warmup_rounds=1)
    if benchmark.stats is not None:
        stats = benchmark.stats.stats
        benchmark.extra_info["gflops"] = FLOPS / stats.min / 1e9
        benchmark.extra_info["gflops_median"] = FLOPS / stats.median / 1e9
