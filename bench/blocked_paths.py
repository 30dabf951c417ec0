"""blocked's paths for an operation beside im2col's, interleaved in one process, with each one's
modelled time: the input gradient by columns or by the phases' forward passes
(FASTCONV_BLOCKED_GI=columns / =phases), the kernel gradient by positions or on transposed gy's
tiles (FASTCONV_BLOCKED_GK=positions / =tiles), any operation with the minibatch as the
vector lanes or on blocked's other path (--path batch: FASTCONV_BLOCKED_BATCH=batch / =other),
and the forward pass along planes or on bk_row's rows (--path planes:
FASTCONV_BLOCKED_PLANES=planes / =other).
Prints the best of the rounds, in ms, and which path blocked takes unforced (the one "auto"
would compare with the other algorithms).

    python bench/blocked_paths.py [--op forward|grad_input|grad_kernel]
        [--path batch|planes]
        [--dtype float32] [--threads 2] [--rounds 7]
        [--layers "(1,256,14,14):(512,256,3,3):stride=2,padding=1" ...]

A layer is "x shape:w shape:geometry" (geometry as keyword=value, comma-separated). The default
layers: for the input gradient, the chooser sweep's strided ones where the choice matters
(ResNet-18, wav2vec, the U-Net) and two stride-1 layers where the phases should stay; for the
kernel gradient, first layers (CIFAR's, MobileNetV2's and ResNet-18's stems, C3D's, LeNet's,
wav2vec's) and three with many input channels where the tiles should stay; for the batch
lanes, LeNet's layers at batch 32 and 128 and CIFAR's 32 -> 64 layer, where the other path
should stay; for the planes, first layers.
"""
import argparse
import os
import time

import numpy as np

import fastconv
from fastconv import _kernel_level, _registry
from fastconv._algorithms import blocked
from fastconv._geometry import make_spec

PATHS = {   # path: (override variable, (blocked's two paths), unforced test)
    "columns": ("FASTCONV_BLOCKED_GI", ("columns", "phases"),
                lambda spec, op: blocked._by_columns(spec)),
    "positions": ("FASTCONV_BLOCKED_GK", ("positions", "tiles"),
                  lambda spec, op: blocked._by_positions(spec)),
    "batch": ("FASTCONV_BLOCKED_BATCH", ("batch", "other"), blocked._by_batch),
    "planes": ("FASTCONV_BLOCKED_PLANES", ("planes", "other"),
               lambda spec, op: blocked._by_planes(spec)),
}
DEFAULT_PATH = {"forward": "batch", "grad_input": "columns", "grad_kernel": "positions"}
BATCH_LAYERS = ("(32,1,16,16):(16,1,5,5):padding=2", "(32,16,8,8):(32,16,5,5):padding=2",
                "(32,1,28,28):(6,1,5,5)", "(32,6,12,12):(16,6,5,5)",
                "(128,1,16,16):(16,1,5,5):padding=2", "(128,16,8,8):(32,16,5,5):padding=2",
                "(128,1,28,28):(6,1,5,5)", "(128,6,12,12):(16,6,5,5)",
                "(128,3,32,32):(32,3,3,3):padding=1", "(128,32,16,16):(64,32,3,3):padding=1")
LAYERS = {"forward": (  # first layers, for --path planes
    "(32,3,32,32):(32,3,3,3):padding=1",
    "(128,3,32,32):(32,3,3,3):padding=1",
    "(32,1,16,16):(16,1,5,5):padding=2",
    "(128,1,28,28):(6,1,5,5)",
    "(1,3,224,224):(32,3,3,3):stride=2,padding=1",
    "(1,3,224,224):(64,3,7,7):stride=2,padding=3",
    "(1,3,8,56,56):(32,3,3,3,3):padding=1",
    "(1,1,16000):(256,1,10):stride=5",
), "grad_input": (
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
), "grad_kernel": (
    "(128,3,32,32):(32,3,3,3):padding=1",
    "(32,3,32,32):(32,3,3,3):padding=1",
    "(8,3,224,224):(32,3,3,3):stride=2,padding=1",
    "(1,3,224,224):(64,3,7,7):stride=2,padding=3",
    "(2,3,8,56,56):(32,3,3,3,3):padding=1",
    "(128,1,28,28):(6,1,5,5)",
    "(4,1,16000):(256,1,10):stride=5",
    "(1,64,56,56):(64,64,3,3):padding=1",
    "(8,64,1024):(64,64,3):padding=2",
    "(1,256,3199):(256,256,3):stride=2",
)}


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


def compare(op, path, x_shape, w_shape, geometry, dtype, rounds):
    rng = np.random.default_rng(0)
    x = rng.standard_normal(x_shape).astype(dtype)
    w = rng.standard_normal(w_shape).astype(dtype)
    gy = rng.standard_normal(fastconv.conv(x, w, **geometry).shape).astype(dtype)
    spec = make_spec(x_shape, w_shape, dtype=dtype, **geometry)
    variable, (first, second), takes = PATHS[path]
    takes_first = lambda spec: takes(spec, op)
    unforced = first if takes_first(spec) else second
    paths = {first: ("blocked", first), second: ("blocked", second), "im2col": ("im2col", None)}

    def run(algorithm, forced):
        os.environ[variable] = forced or "auto"
        if op == "forward":
            return fastconv.conv(x, w, algorithm=algorithm, **geometry)
        if op == "grad_input":
            return fastconv.conv_grad_input(gy, w, x_shape, algorithm=algorithm, **geometry)
        return fastconv.conv_grad_kernel(x, gy, w_shape, algorithm=algorithm, **geometry)

    predicted, calls = {}, {}
    for name, (algorithm, forced) in paths.items():
        os.environ[variable] = forced or "auto"
        if forced == first and not takes_first(spec):
            continue        # not applicable: it would run the other path
        predicted[name] = _registry.predicted(algorithm, spec, op) * 1e3
        calls[name] = lambda algorithm=algorithm, forced=forced: run(algorithm, forced)
    times = {name: [] for name in calls}
    try:
        for _ in range(rounds):
            for name, call in calls.items():
                times[name].append(_timed(call))
    finally:
        os.environ.pop(variable, None)
    return {name: min(t) for name, t in times.items()}, predicted, unforced


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--op", choices=tuple(DEFAULT_PATH), default="grad_input")
    parser.add_argument("--path", choices=tuple(PATHS), help="default: the op's own (forward:"
                        " batch, grad_input: columns, grad_kernel: positions)")
    parser.add_argument("--dtype", choices=("float32", "float64"), default="float32")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--layers", nargs="*")
    args = parser.parse_args()
    fastconv.set_num_threads(args.threads)
    path = args.path or DEFAULT_PATH[args.op]
    only = {"columns": "grad_input", "positions": "grad_kernel", "planes": "forward"}.get(
        path, args.op)
    if only != args.op:
        parser.error(f"--path {path} is for --op {only} only")
    names = PATHS[path][1] + ("im2col",)
    print(f"# {args.op} ({path}), {args.dtype}, {args.threads} threads, kernel level "
          f"{_kernel_level.levels()['blocked']}; best of the rounds (modelled), ms")
    print(f"{'layer':>48} " + " ".join(f"{n:>16}" for n in names) + "  blocked takes")
    for text in args.layers or (BATCH_LAYERS if path == "batch" else LAYERS[args.op]):
        x_shape, w_shape, geometry = _parse(text)
        times, predicted, unforced = compare(args.op, path, x_shape, w_shape, geometry, args.dtype,
                                             args.rounds)
        cells = [f"{times[n]:7.3f} ({predicted[n]:6.3f})" if n in times else f"{'-':>16}"
                 for n in names]
        print(f"{text:>48} " + " ".join(f"{c:>16}" for c in cells) + f"  {unforced}")


if __name__ == "__main__":
    main()
