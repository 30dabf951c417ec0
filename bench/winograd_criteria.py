"""Issue 2's open criterion, side by side: fastconv's forward + backward within 1.2x of PyTorch CPU.

For the dense 3x3 cases of the suite (resnet3x3, vgg_first; strided, where Winograd does not
apply, with im2col), at 1 and 2 threads: the best time of each operation (forward, grad_input,
grad_kernel) for fastconv with the algorithm forced, fastconv "auto" (and what it picked), and
PyTorch, interleaved round by round so a passing load hits all of them alike; then the sums and
whether auto's sum is within 1.2x of PyTorch's. Needs torch. From the repository root, after
building in place:

    PYTHONPATH=. python bench/winograd_criteria.py [rounds]
"""
import os
import sys

import numpy as np
import torch

import fastconv
from fastconv import _timing
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from cases import CASES, flops, make_arrays  # noqa: E402

OPS = ("forward", "grad_input", "grad_kernel")
CRITERION = 1.2
PLAN = (("resnet3x3", "winograd"), ("vgg_first", "winograd"), ("strided", "im2col"))


def runner(case, op, impl, x, w, gy):
    geometry = case.geometry
    if impl == "torch":
        tx, tw, tgy = map(torch.from_numpy, (x, w, gy))
        kw = dict(stride=geometry["stride"], padding=geometry["padding"], groups=geometry["groups"])
        if op == "forward":
            return lambda: torch.nn.functional.conv2d(tx, tw, **kw)
        if op == "grad_input":
            return lambda: torch.nn.grad.conv2d_input(tx.shape, tw, tgy, **kw)
        return lambda: torch.nn.grad.conv2d_weight(tx, tw.shape, tgy, **kw)
    if op == "forward":
        return lambda: fastconv.conv(x, w, algorithm=impl, **geometry)
    if op == "grad_input":
        return lambda: fastconv.conv_grad_input(gy, w, x.shape, algorithm=impl, **geometry)
    return lambda: fastconv.conv_grad_kernel(x, gy, w.shape, algorithm=impl, **geometry)


def measure(case, forced, rounds):
    arrays = make_arrays(case)
    x, w = arrays["x"], arrays["w"]
    y = fastconv.conv(x, w, **case.geometry)
    gy = np.random.default_rng(1).standard_normal(y.shape).astype(x.dtype)
    rows = {}
    with torch.no_grad():
        for op in OPS:
            fns = {impl: runner(case, op, impl, x, w, gy) for impl in (forced, "auto", "torch")}
            # about 0.5 s per implementation a round; the first (sizing) call is not counted
            rows[op] = _timing.interleaved(fns, rounds, 0.5 * rounds, count_first=False,
                                           shortest=1e-4)
            rows[op]["pick"] = fastconv.choose(case.x_shape, case.w_shape, op=op, **case.geometry)
    return rows


def main():
    rounds = int(sys.argv[1]) if len(sys.argv) > 1 else 5
    print(f"fastconv {fastconv.__version__}, torch {torch.__version__} "
          f"({torch.backends.cpu.get_cpu_capability()}), best of {rounds} interleaved rounds")
    verdicts = []
    for threads in (1, 2):
        fastconv.set_num_threads(threads)
        torch.set_num_threads(threads)
        print(f"\n{threads} thread{'s' if threads > 1 else ''}")
        print(f"{'case':10} {'operation':12} {'forced':>16} {'auto':>9} {'auto picks':10} "
              f"{'torch':>9} {'torch/auto':>10}")
        for name, forced in PLAN:
            case = CASES[name]
            rows = measure(case, forced, rounds)
            gflop = flops(case) / 1e9
            for op in OPS:
                r = rows[op]
                print(f"{name:10} {op:12} {forced:>8} {r[forced] * 1e3:6.2f}ms "
                      f"{r['auto'] * 1e3:7.2f}ms {r['pick']:10} {r['torch'] * 1e3:7.2f}ms "
                      f"{r['torch'] / r['auto']:10.2f}   ({gflop / r['auto']:.0f} vs "
                      f"{gflop / r['torch']:.0f} GFLOP/s)")
            total = {impl: sum(rows[op][impl] for op in OPS) for impl in (forced, "auto", "torch")}
            ok = total["auto"] <= CRITERION * total["torch"]
            verdicts.append((name, threads, ok))
            print(f"{name:10} {'sum':12} {forced:>8} {total[forced] * 1e3:6.2f}ms "
                  f"{total['auto'] * 1e3:7.2f}ms {'':10} {total['torch'] * 1e3:7.2f}ms "
                  f"{total['torch'] / total['auto']:10.2f}   "
                  f"{'within' if ok else 'NOT within'} {CRITERION}x of PyTorch")
    print("\ncriterion (forward + grad_input + grad_kernel within 1.2x of PyTorch):",
          "met" if all(ok for *_, ok in verdicts) else
          "NOT met for " + ", ".join(f"{n} at {t} thread(s)" for n, t, ok in verdicts if not ok))


if __name__ == "__main__":
    main()
