"""im2col's forward on fastconv's own packed GEMM against the same im2col on the BLAS, on the
chooser sweep's network layers (not depthwise, not 1x1 stride-1 layers, which stay on the
BLAS), interleaved in one process, best of the rounds.

    PYTHONPATH=. python bench/packed_gemm.py [--dtype float32] [--networks resnet18,lenet]

Prints each layer's time and GFLOP/s on both, the ratio packed / BLAS (below 1: the packed GEMM
is faster), whether the default rule (im2col.PACKED_MIN) takes the layer, and the geomean over
the layers the rule takes and over all. For the AVX2 level on an AVX-512 machine:
FASTCONV_KERNEL_LEVEL=avx2 OPENBLAS_CORETYPE=Haswell.
"""
import argparse
import math
import os

import numpy as np

import fastconv
from fastconv import _kernel_level, _timing
from fastconv._algorithms import im2col
from fastconv._geometry import make_spec
from fastconv._sweep_problems import network_problems

SWITCH = "FASTCONV_IM2COL_GEMM"


def _layers(networks):
    for p in network_problems():
        if networks and p.network not in networks:
            continue
        groups = p.geometry.get("groups", 1)
        if groups > 1 and groups == p.x_shape[1]:
            continue                                    # depthwise: not im2col's
        if math.prod(p.w_shape[2:]) == 1 and "stride" not in p.geometry:
            continue                                    # 1x1: the BLAS reads it in place
        yield p


def _with(choice, fn):
    def call():
        os.environ[SWITCH] = choice
        return fn()
    return call


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--dtype", default="float32")
    ap.add_argument("--networks", default="")
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--layers", default="", help="comma-separated substrings of layer names")
    args = ap.parse_args()
    dtype = np.dtype(args.dtype)
    networks = set(filter(None, args.networks.split(",")))
    print(f"# fastconv {fastconv.__version__}, kernel level {_kernel_level.current()}, "
          f"{fastconv.get_num_threads()} threads, {dtype.name}; ratio = packed / BLAS time")
    rng = np.random.default_rng(0)
    taken, every = [], []
    for p in _layers(networks):
        if args.layers and not any(part in p.name for part in args.layers.split(",")):
            continue
        x = rng.standard_normal(p.x_shape).astype(dtype)
        w = rng.standard_normal(p.w_shape).astype(dtype)
        conv = lambda: fastconv.conv(x, w, algorithm="im2col", **p.geometry)  # noqa: E731
        os.environ.pop(SWITCH, None)
        rule = im2col._packed_gemm(make_spec(p.x_shape, p.w_shape, dtype=dtype, **p.geometry))
        t = _timing.interleaved({"packed": _with("packed", conv), "blas": _with("blas", conv)},
                                args.rounds, 0.1, warmup=1)
        os.environ.pop(SWITCH, None)
        flops = 2 * math.prod(conv().shape) * math.prod(p.w_shape[1:])
        ratio = t["packed"] / t["blas"]
        every.append(ratio)
        if rule:
            taken.append(ratio)
        print(f"{p.network:12s} {p.name:22s} packed {t['packed'] * 1e3:8.3f} ms "
              f"{flops / t['packed'] / 1e9:6.1f} GF/s   blas {t['blas'] * 1e3:8.3f} ms "
              f"{flops / t['blas'] / 1e9:6.1f} GF/s   ratio {ratio:5.2f}  "
              f"{'taken' if rule else 'blas'}", flush=True)
    for name, ratios in (("taken by the rule", taken), ("all", every)):
        if ratios:
            print(f"geomean packed / BLAS, {name} ({len(ratios)} layers): "
                  f"{math.exp(np.mean(np.log(ratios))):.3f}")


if __name__ == "__main__":
    main()
