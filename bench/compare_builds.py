"""Two builds of fastconv side by side: every algorithm forced on every case of the public suite,
the builds alternating in fresh processes, best of all rounds; prints new/old time ratios.

    python bench/compare_builds.py OLD_TREE NEW_TREE [--rounds 3]

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
import json, time
import fastconv
from fastconv._suite import all_cases, make_arrays
fastconv.set_num_threads(2)
out = {}
for case in all_cases():
    a = make_arrays(case)
    kw = dict(stride=case.stride, padding=case.padding, groups=case.groups)
    for algo in ("im2col", "direct", "fft", "winograd"):
        fns = {"forward": lambda: fastconv.conv(a["x"], a["w"], algorithm=algo, **kw),
               "grad_input": lambda: fastconv.conv_grad_input(a["gy"], a["w"], a["x"].shape,
                                                              algorithm=algo, **kw),
               "grad_kernel": lambda: fastconv.conv_grad_kernel(a["x"], a["gy"], a["w"].shape,
                                                                algorithm=algo, **kw)}
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
            out[f"{case.name}|{op}|{algo}"] = best
print(json.dumps(out))
"""


def run(tree):
    env = dict(os.environ, PYTHONPATH=os.path.abspath(tree))
    done = subprocess.run([sys.executable, "-c", CHILD], env=env, cwd="/", capture_output=True,
                          text=True, check=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("old")
    parser.add_argument("new")
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args(argv)
    best = {"old": {}, "new": {}}
    for _ in range(args.rounds):
        for name in ("old", "new"):
            for key, seconds in run(getattr(args, name)).items():
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


if __name__ == "__main__":
    main()
