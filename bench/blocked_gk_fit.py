"""Fit blocked's kernel-gradient model (the tiles path, `blocked._kernel_cost`) at the kernel level
this process runs, and show how often blocked then takes the faster of its two kernel-gradient
paths (tiles on transposed gy, or positions: blocked_positions).

On each kernel gradient (float32 and float64) of the chooser sweep (networks, images, random geometries) where
blocked's tiles path runs and is modelled under --max-ms, both paths are timed forced
(FASTCONV_BLOCKED_GK=tiles / =positions, the minibatch-lanes path off), interleaved, best of the
rounds. The fit keeps the model's units: its target is each time scaled by the median
model/measured ratio of the rates in use, so the shipped calibration (which scales blocked's
whole kernel-gradient cost) and blocked_positions' rates (fitted in the same units) stay valid;
what changes is how the cost is shared among the terms, i.e. which problems the model finds
expensive. Least relative squares, rates kept >= 0 (scipy's nnls).

    PYTHONPATH=. python bench/blocked_gk_fit.py [--threads 2] [--rounds 5] [--max-ms 60]
        [--dtypes float32,float64] [--json rows.json]

On an AVX-512 machine, emulate AVX2 with FASTCONV_KERNEL_LEVEL=avx2 (and the baseline with
=baseline); blocked uses no BLAS.
"""
import argparse
import json
import math
import os
import statistics

import numpy as np
from scipy.optimize import nnls

import fastconv
from fastconv import _config, _kernel_level, _timing
from fastconv._algorithms import blocked, blocked_positions
from fastconv._functional import spec_from_shapes
from fastconv._sweep_problems import all_problems

TERMS = ("fma", "position", "value", "item")


def features(spec):
    """(the model's terms for `spec`, their divisor: the threads' share) of _kernel_cost."""
    plan = blocked._kernel_plan(spec)
    g = plan.geometry
    positions = spec.batch * math.prod(g.o)
    terms = (positions * spec.groups * g.blocks * g.cg * g.taps * g.kb,
             positions * plan.items, g.padded + plan.gyt, plan.items * plan.parts)
    threads = _config.model_threads(spec, plan.items * plan.parts)
    return np.array(terms, float), 1 + blocked.PARALLEL_EFFICIENCY * (threads - 1)


def modelled(spec, rates):
    f, share = features(spec)
    return float(np.dot([rates[t] for t in TERMS], f)) / share + blocked.CALL_OVERHEAD_S


def _forced(path):
    os.environ["FASTCONV_BLOCKED_GK"] = path
    os.environ["FASTCONV_BLOCKED_BATCH"] = "other"


def measure(problems, dtypes, rounds, max_s):
    """Rows {name, spec, tiles, positions (None where it does not apply)}."""
    rng = np.random.default_rng(0)
    rows = []
    for p, dtype in ((p, d) for d in dtypes for p in problems):
        g = p.geometry
        if g.get("padding_mode", "zeros") != "zeros":   # padded explicitly: another problem
            continue
        spec = spec_from_shapes(p.x_shape, p.w_shape, g.get("stride", 1), g.get("padding", 0),
                                g.get("dilation", 1), g.get("groups", 1), dtype)
        _forced("tiles")
        if (not blocked.supports(spec, "grad_kernel")[0]
                or modelled(spec, blocked.rates_of_kernel_gradient()) > max_s):
            continue
        x = rng.standard_normal(p.x_shape).astype(dtype)
        ndim = len(p.x_shape) - 2
        gy = rng.standard_normal((p.x_shape[0], p.w_shape[0], *spec.output_size[3 - ndim:]))
        gy = gy.astype(dtype)
        geometry = dict(p.geometry)
        fns = {}
        for path in ("tiles", "positions"):
            def call(path=path):
                _forced(path)
                return fastconv.conv_grad_kernel(x, gy, p.w_shape, algorithm="blocked",
                                                 **geometry)
            _forced(path)
            if path == "positions" and not blocked_positions.plan(spec).applies:
                continue
            fns[path] = call
        t = _timing.interleaved(fns, rounds, 0.02 * len(fns), warmup=1)
        rows.append({"name": f"{p.network} {p.name} {dtype}", "spec": spec, "tiles": t["tiles"],
                     "positions": t.get("positions")})
        print(f"  {rows[-1]['name']:42s} tiles {t['tiles'] * 1e3:8.3f} ms"
              + (f"  positions {t['positions'] * 1e3:8.3f} ms" if "positions" in t else ""),
              flush=True)
    return rows


def fit(rows, rates):
    """Rates (TERMS) fitted to the rows' tiles times in the units of `rates`."""
    scale = statistics.median(modelled(r["spec"], rates) / r["tiles"] for r in rows)
    a, b = [], []
    for r in rows:
        f, share = features(r["spec"])
        target = r["tiles"] * scale
        a.append(f / share / target)
        b.append(1 - blocked.CALL_OVERHEAD_S / target)
    x, _ = nnls(np.array(a), np.array(b))
    return dict(zip(TERMS, x)), scale


def report(rows, rates, label):
    """The model's error (median, 90th percentile of max(r, 1/r), its median ratio removed)
    and the path choices it makes against the measured faster path."""
    ratios = [modelled(r["spec"], rates) / r["tiles"] for r in rows]
    mid = statistics.median(ratios)
    errors = sorted(max(q / mid, mid / q) for q in ratios)
    both = [r for r in rows if r["positions"] is not None]
    right, cost = 0, []
    for r in both:
        picks_positions = blocked_positions.cost(r["spec"]) < modelled(r["spec"], rates)
        taken = r["positions"] if picks_positions else r["tiles"]
        best = min(r["positions"], r["tiles"])
        right += taken == best
        cost.append(taken / best)
    print(f"{label}: median ratio {mid:.2f}, error median {errors[len(errors) // 2]:.2f}x, "
          f"90th percentile {errors[int(0.9 * (len(errors) - 1))]:.2f}x over {len(rows)} layers; "
          f"path choice right on {right} of {len(both)}, worst {max(cost, default=1):.2f}x the "
          f"faster path, {sum(c > 1.15 for c in cost)} above 1.15x")


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--max-ms", type=float, default=60.0)
    ap.add_argument("--dtypes", default="float32,float64")
    ap.add_argument("--json", default="")
    args = ap.parse_args(argv)
    fastconv.set_num_threads(args.threads)
    level = _kernel_level.current()
    print(f"# blocked's kernel gradient, {args.dtypes}, {args.threads} threads, kernel level {level}, "
          f"vector {blocked._blocked.vector_bytes()} bytes", flush=True)
    saved = {k: os.environ.get(k) for k in ("FASTCONV_BLOCKED_GK", "FASTCONV_BLOCKED_BATCH")}
    try:
        rows = measure(all_problems(), args.dtypes.split(","), args.rounds, args.max_ms / 1e3)
    finally:
        for k, v in saved.items():
            os.environ.pop(k, None) if v is None else os.environ.__setitem__(k, v)
    current = blocked.rates_of_kernel_gradient()
    report(rows, current, "rates in use")
    fitted, scale = fit(rows, current)
    report(rows, fitted, "fitted rates")
    print("fitted: {" + ", ".join(f'"{k}": {v:.3g}' for k, v in fitted.items())
          + f"}}  (target: measured x {scale:.2f})")
    if args.json:
        with open(args.json, "w") as f:
            json.dump([{"name": r["name"], "tiles": r["tiles"], "positions": r["positions"]}
                       for r in rows], f, indent=1)


if __name__ == "__main__":
    main()
