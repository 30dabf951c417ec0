"""fastconv's public entry points on a machine another process keeps busy (issue 16, item 2).

Starts its own load: one process spinning on one core, at normal priority, as a compile or a
browser tab would. Each entry point then runs in three thread settings, interleaved round by
round so that the load hits all alike:

* default  -- no thread setting: fastconv's budget (every core), capped by the load (`_load`);
* 1        -- ``set_num_threads(1)``;
* N        -- ``set_num_threads(N)`` with the load cap turned off (what fastconv did before).

and reports each setting's median time (a busy machine's best time is a lucky one; a user waits
the typical time) and default / best. The criterion: default <= 1.3 x the best setting. Then the
same without the load: default against N, where the cap must cost nothing.

The CLI entry points (tour, bench --quick, demo digits --quick) run as subprocesses with the
setting in the environment (FASTCONV_NUM_THREADS, FASTCONV_ADAPT_THREADS=0); their times
include starting Python.

Run from the repository root after building in place:
    PYTHONPATH=. python bench/busy_machine.py [--rounds 5] [--only conv,pool,...] [--no-cli]
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
from fastconv import _load, nn

CORES = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
SETTINGS = ("default", "1", str(CORES))


def _set(setting):
    """Apply a thread setting in this process."""
    if setting == "default":
        fastconv._config._num_threads = None
        _load.enabled = True
    else:
        fastconv.set_num_threads(int(setting))
        _load.enabled = setting == "1"


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


def _cli_runner(args, setting, out_dir):
    env = dict(os.environ)
    env.pop("FASTCONV_NUM_THREADS", None)
    env.pop("FASTCONV_ADAPT_THREADS", None)
    home = os.path.dirname(os.path.dirname(os.path.abspath(fastconv.__file__)))
    env["PYTHONPATH"] = os.pathsep.join([home, env.get("PYTHONPATH", "")])    # the fastconv measured
    if setting != "default":
        env["FASTCONV_NUM_THREADS"] = setting
        env["FASTCONV_ADAPT_THREADS"] = "1" if setting == "1" else "0"
    extra = ["--out", out_dir] if args[0] == "demo" else []

    def run():
        subprocess.run([sys.executable, "-m", "fastconv", *args, *extra], env=env, check=True,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=out_dir)
    return run


def measure(cases, rounds, in_process):
    """{case: {setting: median seconds}}, the settings interleaved within each round."""
    times = {name: {s: [] for s in SETTINGS} for name in cases}
    for name, make in cases.items():
        runners = {s: make(s) for s in SETTINGS}
        for s in SETTINGS:                                   # warm up: plans, caches, imports
            if in_process:
                _set(s)
            runners[s]()
        for _ in range(rounds):
            for s in SETTINGS:
                if in_process:
                    _set(s)
                t0 = time.perf_counter()
                runners[s]()
                times[name][s].append(time.perf_counter() - t0)
    _set("default")
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
    parser.add_argument("--cli-rounds", type=int, default=3)
    parser.add_argument("--only", help="comma-separated substrings of the entry points to run")
    parser.add_argument("--no-cli", action="store_true", help="skip the subprocess entry points")
    parser.add_argument("--no-idle", action="store_true", help="skip the idle-machine check")
    args = parser.parse_args()
    import platform
    print(f"{platform.machine()}, {CORES} cores usable, fastconv kernel level "
          f"{fastconv._kernel_level.current()}")
    cases = in_process_cases()
    if args.only:
        keys = args.only.split(",")
        cases = {n: f for n, f in cases.items() if any(k in n for k in keys)}
    in_proc = {n: (lambda f: lambda s: f)(f) for n, f in cases.items()}
    with tempfile.TemporaryDirectory() as out_dir:
        cli = {} if args.no_cli else {n: (lambda a: lambda s: _cli_runner(a, s, out_dir))(a)
                                       for n, a in CLI_CASES.items()}
        load = _spinner()
        try:
            time.sleep(1.0)                                  # let the load show in /proc/stat
            busy = measure(in_proc, args.rounds, True)
            busy.update(measure(cli, args.cli_rounds, False))
        finally:
            load.kill()
            load.wait()
        report("with one other process spinning on one core (median times)", busy)
        if not args.no_idle:
            time.sleep(1.0)
            idle = measure(in_proc, args.rounds, True)
            idle.update(measure(cli, args.cli_rounds, False))
            report("idle machine (median times)", idle)
            print("\nidle: default / no-cap", ", ".join(
                f"{n}: {m['default'] / m[str(CORES)]:.2f}" for n, m in idle.items()))


if __name__ == "__main__":
    main()
