"""How good is the chooser? For every case of the public suite (and the single-channel image512
cases) and every operation: the algorithm "auto" picks, the fastest algorithm, and the ratio of
their measured times; then the same with autotuning (after its first, tuning call).

Every algorithm (but the oracle), "auto" and "tune" run in interleaved rounds, each figure the best
of its repeats. "auto" runs exactly the chosen algorithm, so its time is the best of the forced
call and the "auto" call (the same code); likewise for "tune". Prints a Markdown table and the
summary the issue's acceptance asks for (within 1.15x of the best on >= 90% of the pairs, never
worse than 1.5x; tuned: within 1.05x everywhere). Run from the repository root after building:

    PYTHONPATH=. python bench/chooser_table.py [--threads 1] [--rounds 5] [--cases a,b]
        [--ops forward] [--no-calibrate] [--no-tune] [--quick]

By default it calibrates first (fastconv.calibrate()) and tunes, both into a temporary cache
directory (FASTCONV_CACHE_DIR), so neither the user's calibration nor their autotune cache is
read or touched.
"""
import argparse
import os
import sys
import tempfile

import fastconv
from fastconv import _suite
from fastconv.benchmark import best_times, runner, _names


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--budget", type=float, default=0.4, help="seconds per implementation")
    parser.add_argument("--cases")
    parser.add_argument("--ops")
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--no-calibrate", action="store_true")
    parser.add_argument("--no-tune", action="store_true")
    args = parser.parse_args(argv)
    fastconv.set_num_threads(args.threads)
    os.environ["FASTCONV_CACHE_DIR"] = tempfile.mkdtemp(prefix="fastconv-chooser-")
    calibrated = False
    if not args.no_calibrate and hasattr(fastconv, "calibrate"):
        fastconv.calibrate()
        calibrated = True
    tune = not args.no_tune and hasattr(fastconv, "set_autotune")
    every = {c.name: c for c in _suite.all_cases(args.quick)}
    cases = [every[n] for n in _names(args.cases, every, "case")]
    ops = _names(args.ops, _suite.OPERATIONS, "operation")
    algorithms = [a for a in fastconv.algorithms() if a != "reference"]
    print(f"fastconv {fastconv.__version__}, {fastconv.get_num_threads()} thread(s), "
          f"calibrated: {calibrated}, rounds {args.rounds}", flush=True)
    head = ["case", "op", "chosen", "best", "auto/best"] + (["tuned", "tune/best"] if tune else [])
    print("| " + " | ".join(head) + " |")
    print("|" + "---|" * len(head), flush=True)
    ratios, tuned_ratios = [], []
    for case in cases:
        arrays = _suite.make_arrays(case)
        for op in ops:
            fns = {a: runner(case, op, a, arrays) for a in algorithms}
            fns["auto"] = runner(case, op, "auto", arrays)
            if tune:
                fns["tune"] = runner(case, op, "tune", arrays)
                fns["tune"]()           # the first call tunes; the table is about later calls
            best = best_times(fns, args.rounds, args.budget)
            chosen = fastconv.choose(case.x_shape, case.w_shape, op=op, **case.geometry)
            best[chosen] = min(best["auto"], best[chosen])      # the same code, twice timed
            fastest = min(algorithms, key=lambda a: best.get(a, float("inf")))
            t_best = best[fastest]
            ratio = best[chosen] / t_best
            ratios.append(ratio)
            cells = [case.name, op, chosen, fastest, f"{ratio:.2f}"]
            if tune:
                winner = fastconv.explain(case.x_shape, case.w_shape,
                                          **case.geometry).tuned_choice[op]
                best[winner] = min(best["tune"], best[winner])
                t_best = min(best[a] for a in algorithms if a in best)
                tuned = best[winner] / t_best
                ratios[-1] = best[chosen] / t_best
                cells[-1] = f"{ratios[-1]:.2f}"
                cells[3] = min(algorithms, key=lambda a: best.get(a, float("inf")))
                tuned_ratios.append(tuned)
                cells += [winner, f"{tuned:.2f}"]
            print("| " + " | ".join(cells) + " |", flush=True)
    n = len(ratios)
    within = sum(r <= 1.15 for r in ratios)
    print(f"\nauto: within 1.15x of the best on {within}/{n} ({within / n:.0%}) pairs, "
          f"worst {max(ratios):.2f}x")
    if tune:
        print(f"tuned: within 1.05x on {sum(r <= 1.05 for r in tuned_ratios)}/{n} pairs, "
              f"worst {max(tuned_ratios):.2f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
