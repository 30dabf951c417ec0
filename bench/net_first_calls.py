"""What the chooser's safety net costs a network's first calls: per network of the chooser sweep,
the first CALLS "auto" calls of each operation of every layer (where the net measures the problems
whose calls look wrong, once), the next CALLS calls (steady state), and the net's measurements
among the first: how many, and the seconds they took.

    PYTHONPATH=. python bench/net_first_calls.py [--threads 2] [--calls 8] [--networks a,b]

The inputs are float32, drawn as in bench/networks_vs_torch.py; each network's layers run in the
order of `fastconv._sweep_problems.network_problems`, forward, input gradient, kernel gradient.
"""
import argparse
import time

import numpy as np

import fastconv
from fastconv import _registry
from fastconv._sweep_problems import network_problems


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--calls", type=int, default=8)
    parser.add_argument("--networks", default="")
    args = parser.parse_args(argv)
    fastconv.set_num_threads(args.threads)
    fastconv.set_strict_choice(False)
    wanted = set(filter(None, args.networks.split(",")))
    spent = {"seconds": 0.0, "count": 0}
    measure = _registry._measurer["net_measure"]

    def counted(*a, **k):
        start = time.perf_counter()
        try:
            return measure(*a, **k)
        finally:
            spent["seconds"] += time.perf_counter() - start
            spent["count"] += 1
    _registry._measurer["net_measure"] = counted
    rows = {}
    for p in network_problems():
        if wanted and p.network not in wanted:
            continue
        rng = np.random.default_rng(0)
        x = rng.standard_normal(p.x_shape).astype(np.float32)
        w = rng.standard_normal(p.w_shape).astype(np.float32)
        g = p.geometry
        gy = rng.standard_normal(fastconv.conv(x, w, **g).shape).astype(np.float32)
        calls = (lambda: fastconv.conv(x, w, **g),
                 lambda: fastconv.conv_grad_input(gy, w, x.shape, **g),
                 lambda: fastconv.conv_grad_kernel(x, gy, w.shape, **g))
        row = rows.setdefault(p.network, [0.0, 0.0, 0, 0.0])
        count, seconds = spent["count"], spent["seconds"]
        for phase in (0, 1):
            start = time.perf_counter()
            for call in calls:
                for _ in range(args.calls):
                    call()
            row[phase] += time.perf_counter() - start
        row[2] += spent["count"] - count
        row[3] += spent["seconds"] - seconds
    print(f"{'network':12s} {'first calls':>12s} {'next calls':>11s} {'measured':>9s} "
          f"{'measuring':>10s}")
    for name, (first, steady, count, seconds) in rows.items():
        print(f"{name:12s} {first:10.3f} s {steady:9.3f} s {count:9d} {seconds:8.3f} s")
    print(f"{'all':12s} {sum(r[0] for r in rows.values()):10.3f} s "
          f"{sum(r[1] for r in rows.values()):9.3f} s {spent['count']:9d} "
          f"{spent['seconds']:8.3f} s")


if __name__ == "__main__":
    main()
