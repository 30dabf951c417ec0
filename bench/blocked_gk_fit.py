"""Fit the cost models of two of blocked's paths for one operation at the kernel level this
process runs, and show how often blocked takes the faster path with the rates in use and with the
fitted ones:

* --op grad_kernel (the default): tiles on transposed gy (`blocked_gk.terms`, rates
  `blocked_gk.SECONDS`) against positions (`blocked_positions.terms`, its SECONDS);
* --op forward: bk_row's rows (`blocked.pass_terms`, rates `blocked.SECONDS`) against the planes
  (`blocked_planes.terms`, its SECONDS); only the planes' rates are fitted (the rows' model
  also prices every input-gradient pass).

On each such operation (float32 and float64) of the chooser sweep (networks, images, random
geometries, zero padding) where the first path runs and is modelled under --max-ms, both paths
are timed forced (FASTCONV_BLOCKED_GK=tiles / =positions, FASTCONV_BLOCKED_PLANES=other /
=planes; the minibatch-lanes path off), interleaved, best of the rounds. Each fit keeps the
models' units: its target is each time scaled by the first model's median model/measured ratio
at that precision, so the shipped calibration (which scales blocked's whole cost of the
operation) stays valid and the two paths compare in one unit; what a fit changes is how a cost
is shared among the counted terms, i.e. which problems a model finds expensive. Least relative
squares, rates kept >= 0 (scipy's nnls).

    PYTHONPATH=. python bench/blocked_gk_fit.py [--op grad_kernel|forward] [--threads 2]
        [--rounds 5] [--max-ms 60] [--dtypes float32,float64] [--json rows.json]
        [--from-json rows.json] [--units first|second]

(--from-json refits on the times a run wrote with --json, at the same level, without timing.)

On an AVX-512 machine, emulate AVX2 with FASTCONV_KERNEL_LEVEL=avx2 (and the baseline with
=baseline); blocked uses no BLAS.
"""
import argparse
import json
import os
import statistics

import numpy as np
from scipy.optimize import nnls

import fastconv
from fastconv import _config, _kernel_level, _timing
from fastconv._algorithms import blocked, blocked_gk, blocked_planes, blocked_positions
from fastconv._functional import spec_from_shapes
from fastconv._sweep_problems import all_problems


class Model:
    """One path's model: counted terms x rates, shared among the threads its items keep busy."""

    def __init__(self, terms, rates, efficiency, overhead):
        self.terms, self.rates = terms, dict(rates)
        self.efficiency, self.overhead = efficiency, overhead

    def features(self, spec):
        counts, items = self.terms(spec)
        return (np.array([counts.get(k, 0) for k in self.rates], float)
                / _config.model_speedup(spec, items, self.efficiency))

    def seconds(self, spec, rates=None):
        """The model's time with `rates` (the module's by default): the modules' own formula."""
        return _config.model_seconds(spec, *self.terms(spec),
                                     self.rates if rates is None else rates, self.efficiency,
                                     self.overhead)

    def fit(self, rows, key, scale):
        """Rates fitted to the rows' `key` times, each scaled by scale[its dtype]."""
        a, b = [], []
        for r in rows:
            target = r[key] * scale[r["dtype"]]
            a.append(self.features(r["spec"]) / target)
            b.append(1 - self.overhead / target)
        x, _ = nnls(np.array(a), np.array(b))
        return dict(zip(self.rates, x))


# op: (override variable, (the first path's name, its forced value), (the second's))
PATHS = {"grad_kernel": ("FASTCONV_BLOCKED_GK", ("tiles", "tiles"), ("positions", "positions")),
         "forward": ("FASTCONV_BLOCKED_PLANES", ("rows", "other"), ("planes", "planes"))}


def models(op):
    """(the first path's Model, the second's, whether the second applies to a spec)."""
    width = blocked._blocked.vector_bytes()
    if op == "forward":
        return (Model(lambda spec: blocked.pass_terms(spec, blocked._geometry(spec, False), True),
                      blocked.SECONDS, blocked.PARALLEL_EFFICIENCY, blocked.CALL_OVERHEAD_S),
                Model(blocked_planes.terms,
                      blocked_planes.SECONDS.get(width, blocked_planes.SECONDS[16]),
                      blocked_planes.PARALLEL_EFFICIENCY, blocked_planes.CALL_OVERHEAD_S),
                lambda spec: blocked_planes.plan(spec).applies)
    return (Model(lambda spec: blocked_gk.terms(blocked._kernel_plan(spec), spec),
                  blocked_gk.SECONDS[width],
                  blocked.PARALLEL_EFFICIENCY, blocked.CALL_OVERHEAD_S),
            Model(blocked_positions.terms,
                  blocked_positions.SECONDS.get(width, blocked_positions.SECONDS[16]),
                  blocked_positions.PARALLEL_EFFICIENCY, blocked_positions.CALL_OVERHEAD_S),
            lambda spec: blocked_positions.plan(spec).applies)


def _spec(problem, dtype):
    g = problem.geometry
    return spec_from_shapes(problem.x_shape, problem.w_shape, g.get("stride", 1),
                            g.get("padding", 0), g.get("dilation", 1), g.get("groups", 1), dtype)


def _forced(op, forced):
    os.environ[PATHS[op][0]] = forced
    os.environ["FASTCONV_BLOCKED_BATCH"] = "other"


def measure(op, problems, dtypes, rounds, max_s, first, second_applies):
    """Rows {name, dtype, spec, and each path's time (the second's None where it does not
    apply)}."""
    _, (name1, forced1), (name2, forced2) = PATHS[op]
    rng = np.random.default_rng(0)
    rows = []
    for p, dtype in ((p, d) for d in dtypes for p in problems):
        g = p.geometry
        if g.get("padding_mode", "zeros") != "zeros":   # padded explicitly: another problem
            continue
        spec = _spec(p, dtype)
        _forced(op, forced1)
        if not blocked.supports(spec, op)[0] or first.seconds(spec) > max_s:
            continue
        x = rng.standard_normal(p.x_shape).astype(dtype)
        w = rng.standard_normal(p.w_shape).astype(dtype)
        ndim = len(p.x_shape) - 2
        gy = rng.standard_normal((p.x_shape[0], p.w_shape[0], *spec.output_size[3 - ndim:]))
        gy = gy.astype(dtype)
        paths = {name1: forced1}
        if second_applies(spec):
            paths[name2] = forced2

        def call(forced):
            _forced(op, forced)
            if op == "forward":
                return fastconv.conv(x, w, algorithm="blocked", **g)
            return fastconv.conv_grad_kernel(x, gy, p.w_shape, algorithm="blocked", **g)
        t = _timing.interleaved({n: lambda f=f: call(f) for n, f in paths.items()}, rounds,
                                0.02 * len(paths), warmup=1)
        rows.append({"name": f"{p.network} {p.name}", "dtype": dtype, "spec": spec,
                     name1: t[name1], name2: t.get(name2)})
        print(f"  {rows[-1]['name']:34s} {dtype}  "
              + "  ".join(f"{n} {v * 1e3:8.3f} ms" for n, v in t.items()), flush=True)
    return rows


def load(path):
    """The rows a run wrote with --json, their problems rebuilt from the chooser sweep's."""
    problems = {f"{p.network} {p.name}": p for p in all_problems()}
    rows = []
    for r in json.load(open(path)):
        r["spec"] = _spec(problems[r["name"]], r["dtype"])
        rows.append(r)
    return rows


def _spread(ratios):
    mid = statistics.median(ratios)
    errors = sorted(max(q / mid, mid / q) for q in ratios)
    return mid, errors[len(errors) // 2], errors[int(0.9 * (len(errors) - 1))]


def report(op, rows, first, second, applies, label, first_rates=None, second_rates=None):
    """Each model's error (median of max(r, 1/r) with its median ratio r removed, and its 90th
    percentile), and the path choices against the measured faster path, per precision."""
    _, (name1, _), (name2, _) = PATHS[op]
    for dtype in sorted({r["dtype"] for r in rows}):
        mine = [r for r in rows if r["dtype"] == dtype]
        both = [r for r in mine if r[name2] is not None and applies(r["spec"])]
        t_mid, t_med, t_90 = _spread([first.seconds(r["spec"], first_rates) / r[name1]
                                      for r in mine])
        p_mid, p_med, p_90 = _spread([second.seconds(r["spec"], second_rates)
                                      / r[name2] for r in both] or [1.0])
        cost = []
        for r in both:
            by_second = (second.seconds(r["spec"], second_rates)
                         < first.seconds(r["spec"], first_rates))
            cost.append((r[name2] if by_second else r[name1]) / min(r[name2], r[name1]))
        print(f"{label}, {dtype}: {name1} median ratio {t_mid:.2f}, error {t_med:.2f}x "
              f"(90th percentile {t_90:.2f}x) over {len(mine)}; {name2} {p_mid:.2f}, "
              f"{p_med:.2f}x ({p_90:.2f}x) over {len(both)}; the faster path taken on "
              f"{sum(c == 1 for c in cost)} of {len(both)}, {sum(c > 1.15 for c in cost)} "
              f"above 1.15x, worst {max(cost, default=1):.2f}x")


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--op", choices=tuple(PATHS), default="grad_kernel")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--max-ms", type=float, default=60.0)
    ap.add_argument("--dtypes", default="float32,float64")
    ap.add_argument("--json", default="")
    ap.add_argument("--from-json", default="")
    ap.add_argument("--units", choices=("first", "second"), default="first",
                    help="whose median model/measured ratio scales the targets: the first "
                         "path's (default), or the second's (where the first path's speed "
                         "changed and the second's rates still hold the calibration's units)")
    args = ap.parse_args(argv)
    fastconv.set_num_threads(args.threads)
    op = args.op
    variable, (name1, _), (name2, _) = PATHS[op]
    first, second, second_applies = models(op)
    print(f"# blocked's {op}, {args.dtypes}, {args.threads} threads, kernel level "
          f"{_kernel_level.current()}", flush=True)
    saved = {k: os.environ.get(k) for k in (variable, "FASTCONV_BLOCKED_BATCH")}
    try:
        rows = (load(args.from_json) if args.from_json else
                measure(op, all_problems(), args.dtypes.split(","), args.rounds,
                        args.max_ms / 1e3, first, second_applies))
    finally:
        for k, v in saved.items():
            os.environ.pop(k, None) if v is None else os.environ.__setitem__(k, v)
    report(op, rows, first, second, second_applies, "rates in use")
    unit, name, timed = ((first, name1, lambda r: True) if args.units == "first" else
                         (second, name2,
                          lambda r: r[name2] is not None and second_applies(r["spec"])))
    scale = {d: statistics.median(unit.seconds(r["spec"]) / r[name] for r in rows
                                  if r["dtype"] == d and timed(r))
             for d in {r["dtype"] for r in rows}}
    fitted_first = first.rates if op == "forward" else first.fit(rows, name1, scale)
    fitted_second = second.fit([r for r in rows
                                if r[name2] is not None and second_applies(r["spec"])],
                               name2, scale)
    report(op, rows, first, second, second_applies, "fitted rates", fitted_first,
           fitted_second)
    for name, rates in ((name1, fitted_first), (name2, fitted_second)):
        print(f"fitted {name}: {{" + ", ".join(f'"{k}": {v:.3g}' for k, v in rates.items())
              + "}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump([{k: v for k, v in r.items() if k != "spec"} for r in rows], f, indent=1)


if __name__ == "__main__":
    main()
