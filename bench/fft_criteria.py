"""Issue 3's FFT criteria, measured side by side in one run (needs torch).

    PYTHONPATH=. python bench/fft_criteria.py [--threads 1,2] [--rounds 5]

For each thread count (fastconv, PyTorch and scipy.fft all set to it) and each case, the
implementations are timed in interleaved rounds, so a passing load hits all of them alike; each
figure is the best of all repeats, in milliseconds.

- largek15: x (4, 8, 128, 128), w (8, 8, 15, 15), padding 7, float32; fastconv's "fft" against
  PyTorch CPU forward, grad_input (torch.nn.grad.conv2d_input) and grad_kernel (conv2d_weight).
  Criterion: torch / fft >= 20 for all three. fastconv reuses the spectra of an equal kernel
  from its previous call; forward and grad_input are also timed with a changed kernel each call.
- anchor21: the issue's anchor, x (2, 4, 256, 256), w (4, 4, 21, 21), padding 10 (same size);
  the issue's reference machine: PyTorch 162 ms forward, 460 ms backward (both gradients).
- image512_k{15,31,63}: one 512x512 image, 'valid', against scipy.signal.fftconvolve and
  oaconvolve (which compute a convolution: the flipped kernel, the same cost).
  Criterion: fftconvolve / fft >= 1.
"""
import argparse
import os
import sys

import numpy as np
import scipy.fft
import scipy.signal
import torch

import fastconv
from fastconv import _timing
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from cases import CASES, make_arrays  # noqa: E402


def _best(fns, rounds, budget=0.25):
    """Best time (s) of each callable, interleaved rounds of ~budget seconds per callable."""
    return _timing.interleaved(fns, rounds, budget * rounds, warmup=1, count_first=False,
                               max_reps=50, shortest=1e-5)


def _multichannel(x, w, padding, rounds):
    tx, tw = torch.from_numpy(x), torch.from_numpy(w)
    y = fastconv.conv(x, w, padding=padding, algorithm="fft")
    gy = np.random.default_rng(1).standard_normal(y.shape).astype(np.float32)
    tgy = torch.from_numpy(gy)
    fns = {
        ("forward", "fft"): lambda: fastconv.conv(x, w, padding=padding, algorithm="fft"),
        ("forward", "torch"): lambda: torch.nn.functional.conv2d(tx, tw, padding=padding),
        ("grad_input", "fft"): lambda: fastconv.conv_grad_input(gy, w, x.shape, padding=padding,
                                                                algorithm="fft"),
        ("grad_input", "torch"): lambda: torch.nn.grad.conv2d_input(tx.shape, tw, tgy,
                                                                    padding=padding),
        ("grad_kernel", "fft"): lambda: fastconv.conv_grad_kernel(x, gy, w.shape, padding=padding,
                                                                  algorithm="fft"),
        ("grad_kernel", "torch"): lambda: torch.nn.grad.conv2d_weight(tx, tw.shape, tgy,
                                                                      padding=padding),
    }
    # fastconv keeps the last kernel spectra and reuses them for an equal kernel (a layer's
    # forward then input gradient, inference): "new w" alternates two kernels that differ in one
    # tap, so that every call transforms its kernel, as a training step's first call does.
    w2 = w.copy()
    w2.flat[0] += 1
    pair = [w, w2]

    def alternating(op):
        def run():
            pair.reverse()
            if op == "forward":
                return fastconv.conv(x, pair[0], padding=padding, algorithm="fft")
            return fastconv.conv_grad_input(gy, pair[0], x.shape, padding=padding,
                                            algorithm="fft")
        return run
    fns[("forward", "fft new w")] = alternating("forward")
    fns[("grad_input", "fft new w")] = alternating("grad_input")
    return _best(fns, rounds)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--threads", default="1,2")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--only", default="largek15,anchor21,image512")
    args = parser.parse_args()
    only = args.only.split(",")
    rng = np.random.default_rng(0)
    print(f"fastconv {fastconv.__version__ if hasattr(fastconv, '__version__') else ''}, "
          f"torch {torch.__version__}, numpy {np.__version__}, scipy {scipy.__version__}")
    with torch.no_grad():
        for threads in map(int, args.threads.split(",")):
            fastconv.set_num_threads(threads)
            torch.set_num_threads(threads)
            print(f"\n== {threads} thread(s): best of {args.rounds} interleaved rounds, ms ==")
            cases = []
            if "largek15" in only:
                a = make_arrays(CASES["largek15"])
                cases.append(("largek15", a["x"], a["w"], 7, 20.0))
            if "anchor21" in only:
                cases.append(("anchor21",
                              rng.standard_normal((2, 4, 256, 256), dtype=np.float32),
                              rng.standard_normal((4, 4, 21, 21), dtype=np.float32), 10, None))
            for name, x, w, padding, target in cases:
                best = _multichannel(x, w, padding, args.rounds)
                for op in ("forward", "grad_input", "grad_kernel"):
                    f, t = best[(op, "fft")], best[(op, "torch")]
                    verdict = "" if target is None else ("  ok" if t / f >= target else "  MISS")
                    fresh = best.get((op, "fft new w"))
                    extra = "" if fresh is None else (f"   (new w each call: fft {fresh * 1e3:.3f}, "
                                                      f"torch/fft {t / fresh:.2f})")
                    print(f"{name:9s} {op:11s} fft {f * 1e3:8.3f}  torch {t * 1e3:8.3f}  "
                          f"torch/fft {t / f:6.2f}{verdict}{extra}", flush=True)
                if name == "anchor21":
                    back = best[("grad_input", "fft")] + best[("grad_kernel", "fft")]
                    tback = best[("grad_input", "torch")] + best[("grad_kernel", "torch")]
                    print(f"{name:9s} {'backward':11s} fft {back * 1e3:8.3f}  torch "
                          f"{tback * 1e3:8.3f}  torch/fft {tback / back:6.2f}  "
                          f"(issue's machine: torch 162 ms forward, 460 ms backward)")
            if "image512" not in only:
                continue
            for k in (15, 31, 63):
                a = make_arrays(CASES[f"image512_k{k}"])
                x, w = a["x"], a["w"]
                x2, w2 = x[0, 0], w[0, 0, ::-1, ::-1].copy()
                with scipy.fft.set_workers(threads):
                    best = _best({
                        "fft": lambda: fastconv.conv(x, w, algorithm="fft"),
                        "fftconvolve": lambda: scipy.signal.fftconvolve(x2, w2, mode="valid"),
                        "oaconvolve": lambda: scipy.signal.oaconvolve(x2, w2, mode="valid"),
                    }, args.rounds)
                f = best["fft"]
                verdict = "  ok" if best["fftconvolve"] / f >= 1 else "  MISS"
                print(f"image512_k{k:<2d} forward     fft {f * 1e3:8.3f}  fftconvolve "
                      f"{best['fftconvolve'] * 1e3:8.3f} ({best['fftconvolve'] / f:5.2f}x)  "
                      f"oaconvolve {best['oaconvolve'] * 1e3:8.3f} "
                      f"({best['oaconvolve'] / f:5.2f}x){verdict}", flush=True)


if __name__ == "__main__":
    main()
