"""Two builds of fastconv side by side: every algorithm forced on every case of the public suite,
the builds alternating in fresh processes, best of all rounds; prints new/old time ratios.

    python bench/compare_builds.py OLD_TREE NEW_TREE [--rounds 3]
    python bench/compare_builds.py OLD_TREE NEW_TREE --networks resnet18 --algorithms im2col

Each tree is a checkout built in place (`python setup.py build_ext --inplace`). Used for issue
15 (a restructuring must not slow anything): run on a quiet machine; an algorithm whose code did
not change shows the noise floor.
"""
import argparse
import json
import math
import os
import statistics
import subprocess
import sys

CHILD = r"""
import json, sys, time
import numpy as np
import fastconv
from fastconv._suite import all_cases, make_arrays
from fastconv._sweep_problems import network_problems
fastconv.set_num_threads(2)
options = json.loads(sys.argv[1])


def problems():
    # (name, x, w, gy, geometry): the public suite, or the named networks' layers
    if not options["networks"]:
        for case in all_cases():
            a = make_arrays(case)
            yield (case.name, a["x"], a["w"], a["gy"],
                   dict(stride=case.stride, padding=case.padding, groups=case.groups))
        return
    rng = np.random.default_rng(0)
    for p in network_problems():
        if p.network in options["networks"]:
            x = rng.standard_normal(p.x_shape).astype(np.float32)
            w = rng.standard_normal(p.w_shape).astype(np.float32)
            y = fastconv.conv(x, w, algorithm="im2col", **p.geometry)
            gy = rng.standard_normal(y.shape).astype(np.float32)
            yield f"{p.network} {p.name}", x, w, gy, p.geometry


out = {}
for name, x, w, gy, kw in problems():
    for algo in options["algorithms"]:
        fns = {"forward": lambda: fastconv.conv(x, w, algorithm=algo, **kw),
               "grad_input": lambda: fastconv.conv_grad_input(gy, w, x.shape, algorithm=algo,
                                                              **kw),
               "grad_kernel": lambda: fastconv.conv_grad_kernel(x, gy, w.shape, algorithm=algo,
                                                                **kw)}
        for op, f in fns.items():
            try:
                t0 = time.perf_counter(); f(); first = time.perf_counter() - t0
            except fastconv.NotSupportedError:
                continue
            if first > 0.5:
                continue
            best = first
            for _ in range(max(3, min(20, int(0.15 / max(first, 1e-5))))):
                t0 = time.perf_counter(); f(); best = min(best, time.perf_counter() - t0)
            out[f"{name}|{op}|{algo}"] = best
print(json.dumps(out))
"""


def run(tree, options):
    env = dict(os.environ, PYTHONPATH=os.path.abspath(tree))
    done = subprocess.run([sys.executable, "-c", CHILD, json.dumps(options)], env=env, cwd="/",
                          capture_output=True, text=True, check=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("old")
    parser.add_argument("new")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--show-above", type=float, default=1.15,
                        help="list the pairs whose new/old ratio is above this")
    parser.add_argument("--networks", default="",
                        help="the chooser sweep's layers of these networks (comma-separated, "
                             "float32) instead of the public suite")
    parser.add_argument("--algorithms", default="im2col,direct,fft,winograd")
    args = parser.parse_args(argv)
    options = {"networks": list(filter(None, args.networks.split(","))),
               "algorithms": args.algorithms.split(",")}
    best = {"old": {}, "new": {}}
    for _ in range(args.rounds):
        for name in ("old", "new"):
            for key, seconds in run(getattr(args, name), options).items():
                best[name][key] = min(best[name].get(key, math.inf), seconds)
    keys = sorted(set(best["old"]) & set(best["new"]))
    ratios = {k: best["new"][k] / best["old"][k] for k in keys}
    print(f"{len(keys)} pairs, geomean new/old "
          f"{math.exp(statistics.mean(math.log(r) for r in ratios.values())):.3f}")
    for algo in sorted({k.split('|')[2] for k in keys}):
        values = [r for k, r in ratios.items() if k.endswith("|" + algo)]
        print(f"  {algo:9s} n={len(values):3d} geomean "
              f"{math.exp(statistics.mean(map(math.log, values))):.3f} "
              f"min {min(values):.2f} max {max(values):.2f}")
    slower = sorted((r, k) for k, r in ratios.items() if r > args.show_above)
    for r, k in slower[::-1]:
        print(f"  slower: {k:45s} {r:.2f} "
              f"({best['old'][k] * 1e3:.3f} -> {best['new'][k] * 1e3:.3f} ms)")
    if args.networks:
        for k in keys:
            print(f"  {k:50s} new/old {ratios[k]:.2f} "
                  f"({best['old'][k] * 1e3:.3f} -> {best['new'][k] * 1e3:.3f} ms)")


if __name__ == "__main__":
    main()
