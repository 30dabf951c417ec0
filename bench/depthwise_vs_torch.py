"""Depthwise layers of MobileNetV2 and ConvNeXt: fastconv's depthwise and direct algorithms
against PyTorch's CPU convolution, side by side, interleaved, best of 25 calls each.

    python bench/depthwise_vs_torch.py [threads] [ops]        # ops: forward,grad_input,grad_kernel

Prints PyTorch's time over each fastconv algorithm's (above 1: fastconv faster) and GFLOP/s.
For the AVX2 level on an AVX-512 machine: FASTCONV_KERNEL_LEVEL=avx2 OPENBLAS_CORETYPE=Haswell
ONEDNN_MAX_CPU_ISA=AVX2. Needs torch (not a dependency of fastconv).
"""
import sys
import time

import numpy as np
import torch

import fastconv

LAYERS = [("dw32 3x3 112", 32, 112, 3, 1), ("dw96 3x3/2 112", 96, 112, 3, 2),
          ("dw144 3x3 56", 144, 56, 3, 1), ("dw192 3x3/2 28", 192, 28, 3, 2),
          ("dw384 3x3 14", 384, 14, 3, 1), ("dw960 3x3 7", 960, 7, 3, 1),
          ("cnx dw384 7x7 14", 384, 14, 7, 1)]
ALGORITHMS = ("direct", "depthwise")


def _fastconv(op, x, w, gy, a, kw):
    if op == "forward":
        return lambda: fastconv.conv(x, w, algorithm=a, **kw)
    if op == "grad_input":
        return lambda: fastconv.conv_grad_input(gy, w, x.shape, algorithm=a, **kw)
    return lambda: fastconv.conv_grad_kernel(x, gy, w.shape, algorithm=a, **kw)


def _torch(op, x, w, gy, s, p, c):
    xt, wt, gyt = torch.from_numpy(x), torch.from_numpy(w), torch.from_numpy(gy)
    if op == "forward":
        return lambda: torch.nn.functional.conv2d(xt, wt, stride=s, padding=p, groups=c)
    mask = (op == "grad_input", False, op == "grad_kernel")
    return lambda: torch.ops.aten.convolution_backward(gyt, xt, wt, None, (s, s), (p, p), (1, 1),
                                                       False, (0, 0), c, mask)


def main(threads=2, ops=("forward",)):
    torch.set_num_threads(threads)
    fastconv.set_num_threads(threads)
    for b in (1, 8):
        for name, c, hw, k, s in LAYERS:
            x = np.random.rand(b, c, hw, hw).astype(np.float32)
            w = np.random.rand(c, 1, k, k).astype(np.float32)
            kw = dict(stride=s, padding=k // 2, groups=c)
            gy = fastconv.conv(x, w, **kw)
            for op in ops:
                fns = {a: _fastconv(op, x, w, gy, a, kw) for a in ALGORITHMS}
                fns["torch"] = _torch(op, x, w, gy, s, k // 2, c)
                best = {a: float("inf") for a in fns}
                for f in fns.values():
                    f()
                for _ in range(25):
                    for a, f in fns.items():
                        start = time.perf_counter()
                        f()
                        best[a] = min(best[a], time.perf_counter() - start)
                flops = 2 * b * c * (hw // s) ** 2 * k * k
                ratios = " ".join(f"{a} x{best['torch'] / best[a]:.2f}" for a in ALGORITHMS)
                print(f"{op[:7]} b{b} {name:17s} torch {best['torch'] * 1e3:7.3f} ms "
                      f"{flops / best['torch'] / 1e9:5.1f} GF/s | {ratios} "
                      f"(depthwise {flops / best['depthwise'] / 1e9:.1f} GF/s)", flush=True)


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 2,
         tuple(sys.argv[2].split(",")) if len(sys.argv) > 2 else ("forward",))
