"""Regenerate the shipped calibration of this machine's CPU vendor: fastconv.calibrate() at every
kernel level, into fastconv/_calibration_shipped_intel.py on an Intel processor and
fastconv/_calibration_shipped.py on any other (_calibration.shipped_module).

Each level runs in a fresh interpreter (the level is fixed at a process's first kernel call):
the machine's own level, then each lower one forced with FASTCONV_KERNEL_LEVEL, the BLAS held
to the matching OpenBLAS kernels (OPENBLAS_CORETYPE=Haswell for avx2, Prescott for baseline)
so that the lines describe what such a machine runs. Run on a quiet machine, from the
repository root after building in place:

    PYTHONPATH=. python bench/ship_calibration.py [--threads 2] [--levels avx512,avx2,baseline]
        [--repeats 3]
"""
import argparse
import json
import os
import pprint
import statistics
import subprocess
import sys
import time

from fastconv import _cachefiles

CORETYPE = {"avx2": "Haswell", "baseline": "Prescott"}
# the lines for every CPU but Intel's (measured on an AMD EPYC), and for Intel's
TARGET = [os.path.join(os.path.dirname(__file__), "..", "fastconv", name)
          for name in ("_calibration_shipped.py", "_calibration_shipped_intel.py")]
CHILD = """
import json, fastconv
from fastconv import _kernel_level, _cachefiles
fastconv.set_num_threads({threads})
data = fastconv.calibrate(save=False)
print(json.dumps({{"level": _kernel_level.current(), "levels": _kernel_level.levels(),
                  "cpu": _cachefiles.cpu_model(), "factors": data["factors"]}}))
"""


def calibrate_at(level, threads):
    env = dict(os.environ, FASTCONV_KERNEL_LEVEL=level)
    env.pop("OPENBLAS_CORETYPE", None)
    if level in CORETYPE:
        env["OPENBLAS_CORETYPE"] = CORETYPE[level]
    out = subprocess.run([sys.executable, "-c", CHILD.format(threads=threads)], env=env,
                         capture_output=True, text=True, check=True)
    result = json.loads(out.stdout.strip().splitlines()[-1])
    if result["level"] != level or set(result["levels"].values()) != {level}:
        raise SystemExit(f"asked for {level}, the kernels ran {result['levels']}")
    return result


def median_lines(tables):
    """{algorithm: {op: {key: [scale, overhead]}}}: per line, the median scale and the median
    overhead of the runs that have it."""
    out = {}
    for table in tables:
        for name, ops in table.items():
            for op, lines in ops.items():
                for key, line in lines.items():
                    out.setdefault(name, {}).setdefault(op, {}).setdefault(key, []).append(line)
    return {name: {op: {key: [round(statistics.median(v[i] for v in lines), 4 if i == 0 else 8)
                              for i in range(2)]
                        for key, lines in keyed.items()}
                   for op, keyed in ops.items()}
            for name, ops in out.items()}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--levels", default="avx512,avx2,baseline")
    parser.add_argument("--out", default=None,
                        help="the file to write (default: the shipped lines of this machine's "
                             "CPU vendor, fastconv/_calibration_shipped[_intel].py)")
    parser.add_argument("--repeats", type=int, default=3,
                        help="calibrations per level, interleaved across levels; each line is "
                             "their median (one run on a shared machine moved scales up to 2x)")
    args = parser.parse_args(argv)
    runs, cpu = {}, None
    for repeat in range(args.repeats):
        for level in args.levels.split(","):
            start = time.perf_counter()
            try:
                result = calibrate_at(level, args.threads)
            except subprocess.CalledProcessError as exc:
                print(f"{level}: not measured ({exc.stderr.strip().splitlines()[-1:]})")
                continue
            runs.setdefault(level, []).append(result["factors"])
            cpu = result["cpu"]
            print(f"{level}: calibrated in {time.perf_counter() - start:.0f} s "
                  f"(run {repeat + 1} of {args.repeats})", flush=True)
    tables = {level: median_lines(factors) for level, factors in runs.items()}
    intel = _cachefiles.cpu_vendor() == "intel"
    vendor = "Intel" if intel else "not Intel"
    header = f'''"""The calibration shipped with fastconv: `fastconv.calibrate()` at each kernel level.

Made by `python bench/ship_calibration.py --threads {args.threads} --repeats {args.repeats}` on
{cpu!r}, {time.strftime("%Y-%m-%d")}: the median line of {args.repeats} runs, each level in its own
process with FASTCONV_KERNEL_LEVEL forcing it (and OpenBLAS's kernels of such a machine:
OPENBLAS_CORETYPE=Haswell for avx2, Prescott for baseline). Without a calibration of the user's
own machine, the chooser applies the lines of the level the process runs (`_calibration.shipped`)
to the cost models: scale * cost + overhead, on a CPU of this vendor ({vendor}).
"""
MACHINE = {cpu!r}
'''
    target = args.out or TARGET[intel]
    with open(target, "w") as f:
        f.write(header + "FACTORS = " + pprint.pformat(tables, width=100, sort_dicts=True) + "\n")
    print(f"wrote {os.path.normpath(target)} with levels {sorted(tables)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
