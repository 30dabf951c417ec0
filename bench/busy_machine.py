"""fastconv's public entry points on a machine another process keeps busy (issue 16, item 2).

Starts its own load: one process spinning on one core, at normal priority, as a compile or a
browser tab would. Each entry point then runs in three thread settings, each in a process of its
own (one setting's thread pools must not linger into the next), interleaved round by round so
that the load hits all alike:

* default  -- no thread setting: fastconv's budget (every core), capped by the load (`_load`);
* 1        -- ``set_num_threads(1)``;
* N        -- ``set_num_threads(N)`` with the load cap turned off (what fastconv did before).

and reports each setting's median time (a busy machine's best time is a lucky one; a user waits
the typical time; the first calls of the default setting, which try both counts, are in it) and default / best. The criterion: default <= 1.3 x the best setting. Then the
same without the load: default against N, where the cap must cost nothing.

The setting travels in the environment (FASTCONV_NUM_THREADS, FASTCONV_ADAPT_THREADS=0), and
the models' pick is used (FASTCONV_STRICT_CHOICE=1: a safety net measuring under load picks by
the load's luck). The CLI entry points' times (tour, bench --quick, demo digits --quick) include
starting Python.

Run from the repository root after building in place:
    PYTHONPATH=. python bench/busy_machine.py [--rounds 5] [--calls 20] [--only conv,pool] [--no-cli]
"""
import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time

import numpy as np

import fastconv
from fastconv import nn

CORES = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
SETTINGS = ("default", "1", str(CORES))


def _environment(setting):
    """The environment of a process that runs with `setting`."""
    env = dict(os.environ)
    for name in ("FASTCONV_NUM_THREADS", "FASTCONV_ADAPT_THREADS"):
        env.pop(name, None)
    if setting != "default":
        env["FASTCONV_NUM_THREADS"] = setting
        env["FASTCONV_ADAPT_THREADS"] = "1" if setting == "1" else "0"
    env["FASTCONV_STRICT_CHOICE"] = "1"
    home = os.path.dirname(os.path.dirname(os.path.abspath(fastconv.__file__)))
    env["PYTHONPATH"] = os.pathsep.join([home, env.get("PYTHONPATH", "")])    # the fastconv measured
    return env


def _digits_step():
    from fastconv.demos.digits import build_model
    rng = np.random.default_rng(0)
    model = build_model(seed=0)
    x = rng.standard_normal((32, 1, 16, 16)).astype(np.float32)
    y = rng.integers(0, 10, 32)
    loss, optimizer = nn.CrossEntropyLoss(), nn.SGD(model, lr=1e-3)
    return lambda: nn.train_step(model, x, y, loss, optimizer)


def _digits_fit():
    from fastconv.demos.digits import build_model
    rng = np.random.default_rng(0)
    model = build_model(seed=0)
    x = rng.standard_normal((256, 1, 16, 16)).astype(np.float32)
    y = rng.integers(0, 10, 256)
    return lambda: nn.fit(model, (x, y), epochs=1, batch_size=32, progress=False)


def in_process_cases():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((8, 64, 56, 56)).astype(np.float32)      # a ResNet-18 stage-1 layer
    w = rng.standard_normal((64, 64, 3, 3)).astype(np.float32)
    gy = rng.standard_normal((8, 64, 56, 56)).astype(np.float32)
    image = rng.standard_normal((1, 1, 512, 512)).astype(np.float32)
    big = rng.standard_normal((1, 1, 31, 31)).astype(np.float32)
    feature_maps = rng.standard_normal((8, 64, 112, 112)).astype(np.float32)
    small = rng.standard_normal((1, 1, 64, 64)).astype(np.float32)
    return {
        "conv 3x3 64ch 56x56 b8": lambda: fastconv.conv(x, w, padding=1),
        "conv_grad_input (same)": lambda: fastconv.conv_grad_input(gy, w, x.shape, padding=1),
        "conv_grad_kernel (same)": lambda: fastconv.conv_grad_kernel(x, gy, w.shape, padding=1),
        "conv 31x31 on 512x512": lambda: fastconv.conv(image, big, padding=15),
        "conv 3x3 on 64x64 (tiny)": lambda: fastconv.conv(small, w[:1, :1], padding=1),
        "max_pool 3/2 64ch 112x112 b8": lambda: fastconv.pooling.max_pool(feature_maps, 3, stride=2,
                                                                           padding=1),
        "nn.train_step digits b32": _digits_step(),
        "nn.fit 1 epoch, 256 digits": _digits_fit(),
    }


CLI_CASES = {
    "fastconv tour": ["tour"],
    "fastconv bench --quick": ["bench", "--quick"],
    "fastconv demo digits --quick": ["demo", "digits", "--quick"],
}


def _worker(case, calls):
    """In a process of its own (so that one setting's thread pools do not linger into the
    next): `calls` calls of `case` after one untimed call; prints their median seconds."""
    fn = in_process_cases()[case]
    fn()
    times = []
    for _ in range(calls):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    print(statistics.median(times))


def _run_in_process(case, setting, calls):
    done = subprocess.run([sys.executable, os.path.abspath(__file__), "--worker", case,
                           "--calls", str(calls)], env=_environment(setting), check=True,
                          capture_output=True, text=True)
    return float(done.stdout.split()[-1])


def _run_cli(args, setting, out_dir):
    extra = ["--out", out_dir] if args[0] == "demo" else []
    t0 = time.perf_counter()
    subprocess.run([sys.executable, "-m", "fastconv", *args, *extra], env=_environment(setting),
                   check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=out_dir)
    return time.perf_counter() - t0


def measure(runs, rounds):
    """{name: {setting: median seconds over rounds}}; each round runs every setting once, in
    turn, so that a change in the load hits all settings alike. `runs`: {name: fn(setting)}."""
    times = {name: {s: [] for s in SETTINGS} for name in runs}
    for _ in range(rounds):
        for name, run in runs.items():
            for s in SETTINGS:
                times[name][s].append(run(s))
    return {name: {s: statistics.median(t) for s, t in per.items()} for name, per in times.items()}


def report(title, medians):
    print(f"\n{title}")
    print(f"| entry point | default | 1 thread | {CORES} threads (no cap) | default / best |")
    print("|---|---|---|---|---|")
    worst = 0.0
    for name, m in medians.items():
        ratio = m["default"] / min(m["1"], m[str(CORES)])
        worst = max(worst, ratio)
        print(f"| {name} | {m['default'] * 1e3:.1f} ms | {m['1'] * 1e3:.1f} ms | "
              f"{m[str(CORES)] * 1e3:.1f} ms | {ratio:.2f} |")
    print(f"worst default / best: {worst:.2f}")
    return worst


def _spinner():
    return subprocess.Popen([sys.executable, "-c", "while True: pass"])


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--calls", type=int, default=20, help="timed calls per process")
    parser.add_argument("--cli-rounds", type=int, default=3)
    parser.add_argument("--only", help="comma-separated substrings of the entry points to run")
    parser.add_argument("--no-cli", action="store_true", help="skip the CLI entry points")
    parser.add_argument("--no-idle", action="store_true", help="skip the idle-machine check")
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        return _worker(args.worker, args.calls)
    import platform
    print(f"{platform.machine()}, {CORES} cores usable, fastconv kernel level "
          f"{fastconv._kernel_level.current()}; each setting in its own process, "
          f"{args.calls} calls after a first, median; median over {args.rounds} rounds")
    names = [n for n in in_process_cases()
             if not args.only or any(k in n for k in args.only.split(","))]
    in_proc = {n: (lambda n: lambda s: _run_in_process(n, s, args.calls))(n) for n in names}
    with tempfile.TemporaryDirectory() as out_dir:
        cli = {} if args.no_cli else {n: (lambda a: lambda s: _run_cli(a, s, out_dir))(a)
                                       for n, a in CLI_CASES.items()}
        load = _spinner()
        try:
            time.sleep(1.0)                                  # let the load show in /proc/stat
            busy = measure(in_proc, args.rounds)
            busy.update(measure(cli, args.cli_rounds))
        finally:
            load.kill()
            load.wait()
        report("with one other process spinning on one core (median times)", busy)
        if not args.no_idle:
            time.sleep(1.0)
            idle = measure(in_proc, args.rounds)
            idle.update(measure(cli, args.cli_rounds))
            report("idle machine (median times)", idle)
            print("\nidle: default / no-cap", ", ".join(
                f"{n}: {m['default'] / m[str(CORES)]:.2f}" for n, m in idle.items()))


if __name__ == "__main__":
    main()
