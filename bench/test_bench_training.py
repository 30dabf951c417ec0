"""One training step of the digits demo's network: fastconv.nn against the same network in PyTorch.

A step is forward, softmax cross-entropy, backward and an SGD (momentum 0.9) update, on a batch of
16x16 single-channel images (the demo's upsampled digit scans). Before timing, one step from the
same weights on the same batch is taken by both and the updated weights compared (a benchmark of
a wrong answer is worthless). The thread count is the session's (fastconv's, and PyTorch is held
to it by bench/conftest.py): run once with FASTCONV_NUM_THREADS=1 and once with 2 and compare
the groups' "torch / fastconv" ratio, printed in extra_info.

Run: FASTCONV_NUM_THREADS=1 python -m pytest bench/test_bench_training.py --benchmark-only -p no:randomly
"""
import os
import time

import numpy as np
import pytest

try:
    import torch
except ImportError:
    torch = None

from fastconv import _timing, nn
from fastconv.demos.digits import build_model

BATCHES = (32, 64)
TARGET_SECONDS = float(os.environ.get("FASTCONV_BENCH_SECONDS") or 1.0)
_timings = {}


def _batch(n, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.random((n, 1, 16, 16), dtype=np.float32)
    y = rng.integers(0, 10, n)
    return x, y


def fastconv_step(n):
    model = build_model(seed=0)
    opt = nn.SGD(model, lr=0.01, momentum=0.9)
    loss = nn.CrossEntropyLoss()
    x, y = _batch(n)
    return model, lambda: nn.train_step(model, x, y, loss, opt)


def torch_step(n, model=None):
    tnn = torch.nn
    net = tnn.Sequential(
        tnn.Conv2d(1, 16, 5, padding=2), tnn.ReLU(), tnn.MaxPool2d(2),
        tnn.Conv2d(16, 32, 5, padding=2), tnn.ReLU(), tnn.MaxPool2d(2),
        tnn.Flatten(), tnn.Linear(512, 128), tnn.ReLU(), tnn.Linear(128, 10))
    if model is not None:
        with torch.no_grad():
            for p, q in zip(net.parameters(), model.parameters()):
                p.copy_(torch.from_numpy(q))
    opt = torch.optim.SGD(net.parameters(), lr=0.01, momentum=0.9)
    x, y = (torch.from_numpy(a) for a in _batch(n))

    def step():
        opt.zero_grad()
        out = net(x)
        torch.nn.functional.cross_entropy(out, y).backward()
        opt.step()
        return out
    return net, step


def _check_against_torch(n):
    model, step = fastconv_step(n)
    net, t_step = torch_step(n, model)
    step()
    t_step()
    for p, q in zip(model.parameters(), net.parameters()):
        q = q.detach().numpy()
        err = np.abs(p - q).max() / max(np.abs(q).max(), 1e-12)
        assert err < 1e-4, f"fastconv's updated weights differ from PyTorch's by {err:.1e}"


@pytest.fixture
def autotune(request):
    import fastconv
    before = fastconv.get_autotune()
    yield fastconv.set_autotune
    fastconv.set_autotune(before)


@pytest.mark.parametrize("impl", ["fastconv", "fastconv-tune", "torch"])
@pytest.mark.parametrize("batch", BATCHES)
def test_training_step(benchmark, num_threads, autotune, batch, impl):
    """fastconv-tune: fastconv.set_autotune(True), each layer's algorithms timed on first use."""
    autotune(impl == "fastconv-tune")
    if impl == "torch":
        if torch is None:
            pytest.skip("PyTorch is not installed")
        _, step = torch_step(batch)
    else:
        if torch is not None:
            _check_against_torch(batch)
        _, step = fastconv_step(batch)
    step()
    start = time.perf_counter()
    step()
    elapsed = time.perf_counter() - start
    rounds = max(5, min(500, round(TARGET_SECONDS / max(elapsed, 1e-9))))
    benchmark.group = f"digits-train-step-batch{batch}"
    benchmark.extra_info.update(impl=impl, batch=batch, threads=num_threads)
    benchmark.pedantic(step, rounds=rounds, iterations=1, warmup_rounds=2)
    if benchmark.stats is not None:
        best = benchmark.stats.stats.min
        benchmark.extra_info["examples_per_second"] = batch / best
        _timings[(batch, impl)] = best
        if impl != "torch" and (batch, "torch") in _timings:
            benchmark.extra_info["torch_over_fastconv"] = _timings[(batch, "torch")] / best


def interleaved(batch, threads, repeats=30):
    """Best step times (fastconv, fastconv autotuned, torch) over `repeats` alternating rounds."""
    import fastconv
    fastconv.set_num_threads(threads)
    torch.set_num_threads(threads)
    _, ours = fastconv_step(batch)
    _, tuned = fastconv_step(batch)
    _, theirs = torch_step(batch)

    def tuned_step():
        fastconv.set_autotune(True)
        try:
            tuned()
        finally:
            fastconv.set_autotune(False)
    steps = {"fastconv": ours, "tune": tuned_step, "torch": theirs}
    # three warm-up steps each, then `repeats` interleaved rounds of one timed step each
    best = _timing.interleaved(steps, repeats, 0.0, warmup=3, count_first=False, max_reps=1)
    return best["fastconv"], best["tune"], best["torch"]


if __name__ == "__main__":
    # python bench/test_bench_training.py: the ratio at one and two threads, rounds interleaved
    if torch is None:
        raise SystemExit("the comparison needs PyTorch")
    _check_against_torch(64)
    print(f"{'batch':>5} {'threads':>7} {'fastconv ms':>11} {'tuned ms':>9} {'torch ms':>9} "
          f"{'torch/fastconv':>14} {'torch/tuned':>11}")
    for batch in BATCHES:
        for threads in (1, 2):
            ours, tuned, theirs = interleaved(batch, threads)
            print(f"{batch:5d} {threads:7d} {ours * 1e3:11.2f} {tuned * 1e3:9.2f} {theirs * 1e3:9.2f} "
                  f"{theirs / ours:14.2f} {theirs / tuned:11.2f}")
