"""Winograd's staged pass two ways on the same build: by kernel blocks and by position GEMMs
(src/_winograd.pyx, forward_kernel_blocks and forward_staged), interleaved in one process, for
the forward pass or the input gradient of 3x3 layers with padding 1. Checks that both give the
same bits, then prints the best of the rounds of each, in ms.

    python bench/winograd_schedules.py [--op forward|grad_input] [--dtype float32]
        [--threads 2] [--rounds 9] [--shapes "(1,256,14,14):256" ...]

A shape is "(N, C, H, W):K". The plan is forced through winograd._kernel_blocks_win (the
schedule's thresholds are part of the plan's key, so each flip plans anew); anything the plan
cannot run as kernel blocks (a kernel gradient, several waves) runs the same schedule twice.
"""
import argparse
import time

import numpy as np

import fastconv
from fastconv import _kernel_level
from fastconv._algorithms import winograd

SHAPES = ("(1,256,14,14):256", "(8,512,7,7):512", "(8,256,14,14):256", "(1,128,28,28):128")


def _parse(text):
    x, k = text.split(":")
    x = tuple(int(v) for v in x.strip("() ").split(","))
    return x, (int(k), x[1], 3, 3)


def _timed(fn, calls=5):
    fn()
    start = time.perf_counter()
    for _ in range(calls):
        fn()
    return (time.perf_counter() - start) / calls * 1e3


def compare(x_shape, w_shape, op, dtype, rounds):
    rng = np.random.default_rng(0)
    x = rng.standard_normal(x_shape).astype(dtype)
    w = rng.standard_normal(w_shape).astype(dtype)
    gy = rng.standard_normal((x_shape[0], w_shape[0]) + x_shape[2:]).astype(dtype)
    shipped = winograd._kernel_blocks_win

    def run(blocks):
        winograd._kernel_blocks_win = lambda kernel_blocks, positions: blocks
        if op == "forward":
            return fastconv.conv(x, w, padding=1, algorithm="winograd")
        return fastconv.conv_grad_input(gy, w, x_shape, padding=1, algorithm="winograd")

    try:
        same = np.array_equal(run(True), run(False))
        times = {True: [], False: []}
        for _ in range(rounds):
            for blocks in (True, False):
                times[blocks].append(_timed(lambda: run(blocks)))
    finally:
        winograd._kernel_blocks_win = shipped
    return same, min(times[True]), min(times[False])


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--op", choices=("forward", "grad_input"), default="forward")
    parser.add_argument("--dtype", choices=("float32", "float64"), default="float32")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=9)
    parser.add_argument("--shapes", nargs="*", default=list(SHAPES))
    args = parser.parse_args()
    fastconv.set_num_threads(args.threads)
    print(f"# winograd {args.op}, {args.dtype}, {args.threads} threads, kernel level "
          f"{_kernel_level.levels()['winograd']}; best of the rounds, ms")
    print(f"{'x shape':>18} {'K':>5} {'kernel blocks':>14} {'position GEMMs':>15}  same bits")
    for text in args.shapes:
        x_shape, w_shape = _parse(text)
        same, blocks, positions = compare(x_shape, w_shape, args.op, args.dtype, args.rounds)
        print(f"{str(x_shape):>18} {w_shape[0]:>5} {blocks:>14.3f} {positions:>15.3f}  {same}")


if __name__ == "__main__":
    main()
