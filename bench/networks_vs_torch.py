"""Issue 12's judge: "auto" against PyTorch CPU on the chooser sweep's network layers, summed per
network (one network at one batch size), forward and forward + backward.

Every layer of `fastconv._sweep_problems.network_problems` runs its three operations in fastconv
("auto", after `fastconv._sweep.NET_CALLS` calls so the safety net has settled, as in a training
loop) and in PyTorch (``F.convNd``, ``torch.nn.grad.convNd_input`` / ``_weight``), float32, in
interleaved rounds, best of the repeats. Ratios are PyTorch's time over fastconv's: above 1,
fastconv is faster.

    PYTHONPATH=. python bench/networks_vs_torch.py [--threads 2] [--networks resnet18,lenet]
        [--layers] [--json rows.json] [--peak GFLOPS]

With --peak (the machine's measured FMA peak at the thread count, `bench/peak_fma.py`), two
more columns give each network's ratios as they would be if every operation that computes the
textbook sum (all but Winograd's and the FFT's, which do less arithmetic) ran at that peak: the
most the direct and GEMM kernels could give, the physical limit issue 12 names.

On an AVX-512 machine, emulate AVX2 with
    FASTCONV_KERNEL_LEVEL=avx2 OPENBLAS_CORETYPE=Haswell ONEDNN_MAX_CPU_ISA=AVX2 \
    MKL_ENABLE_INSTRUCTIONS=AVX2 python ...
(PyTorch runs some layers -- a 1x1 convolution at batch 1 -- as im2col and MKL's sgemm, which
ONEDNN_MAX_CPU_ISA does not reach: without MKL's variable those ran at AVX-512.)
"""
import argparse
import json
import math
import os
import sys

import numpy as np
import torch

import fastconv
from fastconv import _kernel_level, _registry, _timing
from fastconv._geometry import make_spec
from fastconv._sweep import NET_CALLS
from fastconv._sweep_problems import network_problems
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from cases import torch_operations  # noqa: E402

OPERATIONS = ("forward", "grad_input", "grad_kernel")


def _fastconv_calls(problem, x, w, gy):
    g = problem.geometry
    return {"forward": lambda: fastconv.conv(x, w, **g),
            "grad_input": lambda: fastconv.conv_grad_input(gy, w, x.shape, **g),
            "grad_kernel": lambda: fastconv.conv_grad_kernel(x, gy, w.shape, **g)}


def measure(problem, rounds=3, budget=0.06):
    """{op: (fastconv seconds, torch seconds, auto's algorithm)} for one layer."""
    rng = np.random.default_rng(0)
    x = rng.standard_normal(problem.x_shape).astype(np.float32)
    w = rng.standard_normal(problem.w_shape).astype(np.float32)
    y = fastconv.conv(x, w, **problem.geometry)
    gy = rng.standard_normal(y.shape).astype(np.float32)
    mine = _fastconv_calls(problem, x, w, gy)
    theirs = torch_operations(x, w, gy, problem.geometry)
    out = {}
    for op in OPERATIONS:
        for _ in range(NET_CALLS):
            mine[op]()
        algorithm = _registry.last_used()[0]
        with torch.no_grad():
            t = _timing.interleaved({"fastconv": mine[op], "torch": theirs[op]}, rounds, budget,
                                    warmup=1, close=1.5)
        out[op] = (t["fastconv"], t["torch"], algorithm)
    return out


def _flops(problem):
    """Multiply-adds x 2 of one operation of `problem` (the three take the same)."""
    return make_spec(problem.x_shape, problem.w_shape, **problem.geometry).flops


def _at_peak(row, op, peak):
    """Seconds of `op` were it run at `peak` FLOP/s: Winograd and the FFT (fewer operations than
    the textbook sum) as measured, the others at the peak."""
    measured = row[op]["fastconv"]
    return measured if row[op]["algorithm"] in ("winograd", "fft") else row["flops"] / peak


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--networks", default="", help="comma-separated network names (default all)")
    ap.add_argument("--layers", action="store_true", help="print every layer's row")
    ap.add_argument("--json", default="")
    ap.add_argument("--peak", type=float, default=0.0,
                    help="the machine's FMA peak in GFLOP/s at --threads: adds the at-peak bound")
    args = ap.parse_args(argv)
    fastconv.set_num_threads(args.threads)
    torch.set_num_threads(args.threads)
    wanted = set(filter(None, args.networks.split(",")))
    problems = [p for p in network_problems() if not wanted or p.network in wanted]
    print(f"# fastconv {fastconv.__version__}, kernel level {_kernel_level.current()}, "
          f"torch {torch.__version__} (oneDNN {os.environ.get('ONEDNN_MAX_CPU_ISA', 'native')}"
          f", MKL {os.environ.get('MKL_ENABLE_INSTRUCTIONS', 'native')}), "
          f"{args.threads} threads, float32; ratios are torch time / fastconv time")
    rows, groups = [], {}
    for p in problems:
        r = measure(p)
        batch = p.name.rsplit("/", 1)[1]
        rows.append({"network": p.network, "layer": p.name, "flops": _flops(p), **{
            op: {"fastconv": r[op][0], "torch": r[op][1], "algorithm": r[op][2]} for op in r}})
        groups.setdefault(f"{p.network}/{batch}", []).append(rows[-1])
        if args.layers:
            f = {op: r[op][1] / r[op][0] for op in r}
            both = sum(r[op][1] for op in r) / sum(r[op][0] for op in r)
            print(f"  {p.network:12s} {p.name:22s} fwd {f['forward']:5.2f} ({r['forward'][2]:9s})"
                  f" gi {f['grad_input']:5.2f} ({r['grad_input'][2]:9s})"
                  f" gk {f['grad_kernel']:5.2f} ({r['grad_kernel'][2]:9s}) all {both:5.2f}"
                  f"  fwd {r['forward'][0] * 1e3:8.3f} ms", flush=True)
    peak = args.peak * 1e9
    print(f"\n{'network/batch':18s} {'forward':>8s} {'fwd+bwd':>8s}   {'worst layer op':42s}"
          + (f" at peak: {'forward':>8s} {'fwd+bwd':>8s}" if peak else ""))
    summary = []
    for name, layer_rows in groups.items():
        def total(ops, who):
            return sum(row[op][who] for row in layer_rows for op in ops)
        fwd = total(("forward",), "torch") / total(("forward",), "fastconv")
        both = total(OPERATIONS, "torch") / total(OPERATIONS, "fastconv")
        worst = min(((row[op]["torch"] / row[op]["fastconv"], row["layer"], op)
                     for row in layer_rows for op in OPERATIONS))
        summary.append((name, fwd, both, worst[0]))
        line = (f"{name:18s} {fwd:8.2f} {both:8.2f}   {worst[0]:5.2f} "
                f"{worst[1] + ' ' + worst[2]:36s}")
        if peak:
            def bound(ops):
                return total(ops, "torch") / sum(_at_peak(row, op, peak)
                                                 for row in layer_rows for op in ops)
            line = f"{line} {bound(('forward',)):8.2f} {bound(OPERATIONS):8.2f}"
        print(line)
    def geomean(column):
        return math.exp(np.mean([math.log(s[column]) for s in summary]))
    below = sum(1 for row in rows for op in OPERATIONS
                if row[op]["torch"] / row[op]["fastconv"] < 0.9)
    print(f"geomean over networks: forward {geomean(1):.2f}, fwd+bwd {geomean(2):.2f}; "
          f"layer ops below 0.9x: {below} of {len(rows) * 3}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(rows, f, indent=1)


if __name__ == "__main__":
    sys.exit(main())
