"""blocked's input gradient two ways -- by columns and by the phases' forward passes
(FASTCONV_BLOCKED_GI=columns / =phases) -- beside im2col's, interleaved in one process, with
each one's modelled time. Prints the best of the rounds, in ms, and whether the unforced choice
(the one "auto" would compare with the other algorithms) is the faster of blocked's two.

    python bench/blocked_gi_paths.py [--dtype float32] [--threads 2] [--rounds 7]
        [--layers "(1,256,14,14):(512,256,3,3):stride=2,padding=1" ...]

A layer is "x shape:w shape:geometry" (geometry as keyword=value, comma-separated). The default
layers are the chooser sweep's strided ones where the choice matters (ResNet-18, wav2vec, the
U-Net), and two stride-1 layers where the phases should stay.
"""
import argparse
import os
import time

import numpy as np

import fastconv
from fastconv import _kernel_level, _registry
from fastconv._algorithms import blocked
from fastconv._geometry import make_spec

LAYERS = (
    "(1,64,56,56):(128,64,3,3):stride=2,padding=1",
    "(1,128,28,28):(256,128,3,3):stride=2,padding=1",
    "(1,256,14,14):(512,256,3,3):stride=2,padding=1",
    "(8,128,28,28):(256,128,3,3):stride=2,padding=1",
    "(8,256,14,14):(512,256,3,3):stride=2,padding=1",
    "(1,256,99):(256,256,2):stride=2",
    "(1,512,50):(512,512,3):stride=2",
    "(1,64,64,64):(128,64,2,2):stride=2",
    "(1,64,32,32):(128,64,4,4):stride=2,padding=1",
    "(1,512,7,7):(512,512,3,3):padding=1",
    "(1,256,14,14):(256,256,3,3):padding=1",
)


def _parse(text):
    x, w, geometry = (text.split(":") + [""])[:3]
    shape = lambda s: tuple(int(v) for v in s.strip("() ").split(",") if v.strip())
    kw = {}
    for item in filter(None, geometry.split(",")):
        key, value = item.split("=")
        kw[key.strip()] = int(value)
    return shape(x), shape(w), kw


def _timed(fn, calls=3):
    fn()
    start = time.perf_counter()
    for _ in range(calls):
        fn()
    return (time.perf_counter() - start) / calls * 1e3


def compare(x_shape, w_shape, geometry, dtype, rounds):
    rng = np.random.default_rng(0)
    w = rng.standard_normal(w_shape).astype(dtype)
    y = fastconv.conv(np.zeros(x_shape, dtype), w, **geometry)
    gy = rng.standard_normal(y.shape).astype(dtype)
    spec = make_spec(x_shape, w_shape, dtype=dtype, **geometry)
    unforced = "columns" if blocked._by_columns(spec) else "phases"
    paths = {"columns": ("blocked", "columns"), "phases": ("blocked", "phases"),
             "im2col": ("im2col", None)}
    def run(algorithm, forced):
        os.environ["FASTCONV_BLOCKED_GI"] = forced or "auto"
        return fastconv.conv_grad_input(gy, w, x_shape, algorithm=algorithm, **geometry)

    predicted, calls = {}, {}
    for name, (algorithm, forced) in paths.items():
        os.environ["FASTCONV_BLOCKED_GI"] = forced or "auto"
        if forced == "columns" and not blocked._by_columns(spec):
            continue        # not applicable: it would run the phases
        predicted[name] = _registry.predicted(algorithm, spec, "grad_input") * 1e3
        calls[name] = lambda algorithm=algorithm, forced=forced: run(algorithm, forced)
    times = {name: [] for name in calls}
    try:
        for _ in range(rounds):
            for name, call in calls.items():
                times[name].append(_timed(call))
    finally:
        os.environ.pop("FASTCONV_BLOCKED_GI", None)
    return {name: min(t) for name, t in times.items()}, predicted, unforced


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dtype", choices=("float32", "float64"), default="float32")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--layers", nargs="*", default=list(LAYERS))
    args = parser.parse_args()
    fastconv.set_num_threads(args.threads)
    print(f"# grad_input, {args.dtype}, {args.threads} threads, kernel level "
          f"{_kernel_level.levels()['blocked']}; best of the rounds (modelled), ms")
    print(f"{'layer':>48} {'columns':>16} {'phases':>16} {'im2col':>16}  blocked takes")
    for text in args.layers:
        x_shape, w_shape, geometry = _parse(text)
        times, predicted, unforced = compare(x_shape, w_shape, geometry, args.dtype,
                                             args.rounds)
        cells = [f"{times[n]:7.3f} ({predicted[n]:6.3f})" if n in times else f"{'-':>16}"
                 for n in ("columns", "phases", "im2col")]
        print(f"{text:>48} {cells[0]:>16} {cells[1]:>16} {cells[2]:>16}  {unforced}")


if __name__ == "__main__":
    main()
