"""The chooser sweep: "auto" against every applicable algorithm on real layers (issue 11).

For each problem of `_sweep_problems` and each operation and dtype, every registered algorithm
(but the oracle) runs forced, as "auto" would run it (its applicability checked once a problem,
not every call: `_registry.supports_checked_once`), in interleaved rounds, best of its repeats;
one whose first call takes GIVE_UP times the fastest first call is not repeated (it cannot be the
best); those within CLOSE of the fastest run as many rounds again among themselves, as
autotuning's timing does (on a shared machine a near-tie's order is otherwise the noise's). A
pick of "auto" (below) measured RECHECK times the fastest (autotuning's pick: RECHECK_TUNED) is
timed again against it, head to head, and each keeps its best time: one burst of load during a
pick's rounds once made a 15 ms pick read 37 ms. Then:

* **model**: the algorithm "auto" runs in strict mode (``set_strict_choice(True)``: the cost
  models through the calibration in use, shipped or calibrated) and its time over the fastest;
* **net**: the algorithm "auto" runs after NET_CALLS calls with the safety net on (the default),
  and its time over the fastest;
* tuned (``--autotune``): the algorithm "auto" picks with autotuning on, after its first call
  (which times the candidates, in a private cache directory), and its time over the fastest;
* the models' predicted time of every algorithm, for the prediction-error table.

    python bench/sweep.py [--quick] [--dtypes float32] [--threads 2] [--json rows.json]
    fastconv bench --sweep ...      (the same)
"""
import argparse
import contextlib
import json
import math
import os
import statistics
import sys
import tempfile

import numpy as np

import fastconv
from . import _autotune, _kernel_level, _measure, _registry, _safety_net, _timing
from ._sweep_problems import all_problems

OPERATIONS = ("forward", "grad_input", "grad_kernel")
GIVE_UP = 8.0
CLOSE = _measure.CLOSE     # near-ties run again among themselves, as in autotuning's timing
RECHECK = 1.5   # a pick this many times the fastest is timed again against it (best of both)
RECHECK_TUNED = 1.05    # ... and autotuning's pick from this (its bar): a near-tie's first
                        # rounds on a shared machine put 7-12 of 360 tuned picks at 1.05-1.2x
NET_CALLS = _safety_net.STRIKES + 3


def _calls(problem, dtype, seed=0):
    """{op: f(algorithm)} computing each operation of `problem` on fixed random arrays."""
    rng = np.random.default_rng(seed)
    x = rng.standard_normal(problem.x_shape).astype(dtype)
    w = rng.standard_normal(problem.w_shape).astype(dtype)
    g = problem.geometry
    gy = rng.standard_normal(fastconv.conv(x, w, algorithm="im2col", **g).shape).astype(dtype)
    return {"forward": lambda a: fastconv.conv(x, w, algorithm=a, **g),
            "grad_input": lambda a: fastconv.conv_grad_input(gy, w, x.shape, algorithm=a, **g),
            "grad_kernel": lambda a: fastconv.conv_grad_kernel(x, gy, w.shape, algorithm=a, **g)}


def best_times(fns, rounds=3, budget=0.05, give_up=GIVE_UP, always=()):
    """Best seconds of each callable: an untimed call each (planning, page faults), a first
    timed call (NotSupportedError: left out), then interleaved rounds of those within `give_up`
    of the fastest first call, and of `always`, then rounds again of those within CLOSE of the
    fastest. (Without the untimed call, an FFT's first call, 50 ms of planning on a 0.7 ms
    problem, was given up on before it ran warm.) Each runs as "auto" would run it: its
    ``supports`` checked on its first call only (`_registry.supports_checked_once`)."""
    with _registry.supports_checked_once():
        return _timing.interleaved(fns, rounds, budget, warmup=1,
                                   skip=fastconv.NotSupportedError, give_up=give_up, keep=always,
                                   close=CLOSE)


def _pick(call):
    """(algorithm, spec) of what "auto" ran for `call`."""
    call("auto")
    return _registry.last_used()


def _tuned_pick(call):
    """What "auto" runs with autotuning on, after the first call (which tunes)."""
    _autotune.clear_autotune_cache()
    enabled = _autotune.get_autotune()
    _autotune.set_autotune(True)
    try:
        call("auto")
        return _pick(call)[0]
    finally:
        _autotune.set_autotune(enabled)


def measure(problem, op, dtype, rounds=3, budget=0.05, autotune=False):
    """One row: pick and time of "auto" (model, net, and tuned with `autotune`), the fastest,
    every time and prediction."""
    call = _calls(problem, dtype)[op]
    names = [a for a in fastconv.algorithms() if a != "reference"]
    strict = _safety_net.get_strict_choice()
    try:
        _safety_net.set_strict_choice(True)
        model, spec = _pick(call)
        _safety_net.set_strict_choice(False)
        _safety_net.reset()
        for _ in range(NET_CALLS):
            net, _ = _pick(call)
    finally:
        _safety_net.set_strict_choice(strict)
        _safety_net.reset()
    tuned = _tuned_pick(call) if autotune else None
    fns = {a: (lambda a=a: call(a)) for a in names}
    times = best_times(fns, rounds, budget, always=(model, net) + ((tuned,) if tuned else ()))
    for pick in dict.fromkeys(p for p in (model, net, tuned) if p):     # each once, in order
        fastest = min(times, key=times.get)
        if times[pick] > (RECHECK_TUNED if pick == tuned else RECHECK) * times[fastest]:
            again = best_times({a: fns[a] for a in (pick, fastest)}, rounds, budget,
                               always=(pick,))
            times.update({a: min(times[a], t) for a, t in again.items()})
    predicted = {a: _registry.predicted(a, spec, op) for a in times}
    fastest = min(times, key=times.get)
    row = {"network": problem.network, "problem": problem.name, "op": op, "dtype": dtype,
           "model": model, "net": net, "fastest": fastest, "times": times,
           "predicted": predicted, "model_ratio": times[model] / times[fastest],
           "net_ratio": times[net] / times[fastest]}
    if tuned:
        row.update(tuned=tuned, tuned_ratio=times[tuned] / times[fastest])
    return row


def summary(rows, key):
    ratios = [r[key] for r in rows]
    n = len(ratios)
    if n == 0:
        return f"{key.split('_')[0]:>5}: no problems"
    return (f"{key.split('_')[0]:>5}: within 1.15x on {sum(x <= 1.15 for x in ratios)}/{n} "
            f"({sum(x <= 1.15 for x in ratios) / n:.0%}), within 1.5x on "
            f"{sum(x <= 1.5 for x in ratios)}/{n} ({sum(x <= 1.5 for x in ratios) / n:.0%}), "
            f"above 2x on {sum(x > 2 for x in ratios)}, worst {max(ratios):.2f}x")


def prediction_errors(rows):
    """{(algorithm, op): (count, median, 90th percentile of |log2(predicted / measured)|)}."""
    errors = {}
    for r in rows:
        for name, p in r["predicted"].items():
            t = r["times"][name]
            if p > 0 and t > 0 and t <= GIVE_UP * r["times"][r["fastest"]]:
                errors.setdefault((name, r["op"]), []).append(abs(math.log2(p / t)))
    return {k: (len(v), statistics.median(v), sorted(v)[int(0.9 * (len(v) - 1))])
            for k, v in sorted(errors.items())}


@contextlib.contextmanager
def _private_cache(enabled):
    """With `enabled`, autotuning's records go to a temporary directory, not the user's cache."""
    if not enabled:
        yield
        return
    before = os.environ.get("FASTCONV_CACHE_DIR")
    with tempfile.TemporaryDirectory(prefix="fastconv-sweep-") as directory:
        os.environ["FASTCONV_CACHE_DIR"] = directory
        try:
            yield
        finally:
            if before is None:
                del os.environ["FASTCONV_CACHE_DIR"]
            else:
                os.environ["FASTCONV_CACHE_DIR"] = before
            _autotune.clear_autotune_cache()


def main(argv=None, out=print):
    from .demos import plain
    parser = argparse.ArgumentParser(prog="fastconv bench --sweep", description=plain(__doc__),
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="a small subset (a smoke run)")
    parser.add_argument("--dtypes", default="float32,float64")
    parser.add_argument("--ops", default=",".join(OPERATIONS))
    parser.add_argument("--networks", help="only these networks (comma-separated)")
    parser.add_argument("--threads", type=int)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--budget", type=float, default=0.03, help="seconds per algorithm")
    parser.add_argument("--calibrate", action="store_true", help="run fastconv.calibrate() first")
    parser.add_argument("--autotune", action="store_true",
                        help="add the pick of autotuning after its first call (tuned column)")
    parser.add_argument("--json", help="write every row (times, predictions) to this file")
    args = parser.parse_args(argv)
    if args.threads:
        fastconv.set_num_threads(args.threads)
    if args.calibrate:
        fastconv.calibrate(save=False)
    problems = all_problems(args.quick)
    if args.networks:
        known = sorted({p.network for p in all_problems()})
        unknown = sorted(set(args.networks.split(",")) - set(known))
        if unknown:
            parser.error(f"--networks: no network named {', '.join(map(repr, unknown))} in the "
                         f"sweep; expected some of {', '.join(known)}")
        problems = [p for p in problems if p.network in args.networks.split(",")]
    out(f"fastconv {fastconv.__version__}, kernel level {_kernel_level.current()}, "
        f"{fastconv.get_num_threads()} thread(s), calibration: "
        f"{'this machine' if args.calibrate else 'shipped'}, {len(problems)} problems")
    tuned = " tuned pick | x best |" if args.autotune else ""
    out(f"| network | problem | op | dtype | model pick | x best | net pick | x best |{tuned} "
        "fastest |")
    out("|---|---|---|---|---|---|---|---|---|" + ("---|---|" if args.autotune else ""))
    rows, start = [], _timing.clock()
    with _private_cache(args.autotune):
        for dtype in args.dtypes.split(","):
            for problem in problems:
                for op in args.ops.split(","):
                    r = measure(problem, op, dtype, args.rounds, args.budget, args.autotune)
                    rows.append(r)
                    tuned = f" {r['tuned']} | {r['tuned_ratio']:.2f} |" if args.autotune else ""
                    out(f"| {r['network']} | {r['problem']} | {op} | {dtype} | {r['model']} | "
                        f"{r['model_ratio']:.2f} | {r['net']} | {r['net_ratio']:.2f} |{tuned} "
                        f"{r['fastest']} |")
                    sys.stdout.flush()
    out("")
    out(summary(rows, "model_ratio"))
    out(summary(rows, "net_ratio"))
    if args.autotune:
        out(summary(rows, "tuned_ratio"))
        out(f"tuned: within 1.05x on {sum(r['tuned_ratio'] <= 1.05 for r in rows)}/{len(rows)}")
    out("\nprediction error |log2(predicted / measured)| of the algorithms within "
        f"{GIVE_UP:g}x of the fastest:")
    for (name, op), (n, median, p90) in prediction_errors(rows).items():
        out(f"  {name:<10} {op:<12} n={n:<4} median {2 ** median:.2f}x  90th percentile {2 ** p90:.2f}x")
    out(f"\n{_timing.clock() - start:.0f} s")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(rows, f)
    return 0
