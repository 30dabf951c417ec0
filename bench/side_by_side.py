"""Side by side, interleaved: every fastconv algorithm, "auto" and PyTorch CPU on each case and op.

Rounds alternate between the implementations, so a passing load hits all of them alike; each
figure is the best of its repeats. Needs torch. Run from the repository root, after building in
place:  PYTHONPATH=. FASTCONV_NUM_THREADS=1 python bench/side_by_side.py [case,case,...]
Columns: the fastest fastconv algorithm and its GFLOP/s, auto's pick, auto's time over the best,
PyTorch's time over auto's (above 1: fastconv faster), then every implementation's GFLOP/s.
"""
import os
import sys

import numpy as np
import torch

import fastconv
from fastconv import _timing
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from cases import CASES, flops, make_arrays, torch_operations
torch.set_num_threads(fastconv.get_num_threads())
ops = ("forward", "grad_input", "grad_kernel")
names = sys.argv[1].split(",") if len(sys.argv) > 1 else list(CASES)
algs = ["auto"] + [a for a in fastconv.algorithms() if a != "reference"]
def runner(case, op, alg, x, w, gy):
    g = case.geometry
    if alg == "torch":
        return torch_operations(x, w, gy, g)[op]
    if op == "forward": return lambda: fastconv.conv(x, w, algorithm=alg, **g)
    if op == "grad_input": return lambda: fastconv.conv_grad_input(gy, w, x.shape, algorithm=alg, **g)
    return lambda: fastconv.conv_grad_kernel(x, gy, w.shape, algorithm=alg, **g)
with torch.no_grad():
    for name in names:
        case = CASES[name]
        arrays = make_arrays(case); x, w = arrays["x"], arrays["w"]
        y = fastconv.conv(x, w, **case.geometry)
        gy = np.random.default_rng(1).standard_normal(y.shape).astype(np.float32)
        fl = flops(case)
        for op in ops:
            fns = {alg: runner(case, op, alg, x, w, gy) for alg in algs + ["torch"]}
            # 3 interleaved rounds of about 1 s per implementation; the first call is not counted
            best = _timing.interleaved(fns, 3, 3.0, count_first=False, min_reps=2, max_reps=15,
                                       shortest=1e-4, skip=fastconv.NotSupportedError)
            chosen = fastconv.choose(case.x_shape, case.w_shape, op=op, **case.geometry)
            pt = best.get("torch")
            cells = "  ".join(f"{a}={fl / t / 1e9:.0f}" for a, t in best.items())
            fast = min((t, a) for a, t in best.items() if a != "torch")
            print(f"{name:13s} {op:11s} best={fast[1]:9s} {fl / fast[0] / 1e9:7.1f} GF/s  auto={chosen:9s} "
                  f"auto/best={best['auto'] / fast[0]:.2f}  torch/auto={pt / best['auto'] if pt else float('nan'):.2f}  | {cells}", flush=True)
