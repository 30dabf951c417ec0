"""``fastconv.calibrate()``: measure this machine's constants for the chooser (the measuring floor).

It runs every registered algorithm (but the oracle) on a fixed set of small problems that cover
the kinds the suite has (dense 3x3, strided, pointwise, depthwise, few-channel, large kernel, 1-D,
3-D), for each operation and dtype, and fits per (algorithm, operation, dtype) a scale and a fixed
overhead: ``measured = scale * predicted + overhead``, on the problems where the algorithm is
within COMPETITIVE of the fastest (those are where its prediction decides anything), the scale
clamped to [1/MAX_FACTOR, MAX_FACTOR]. It also records the machine's GEMM rate and copy
bandwidth, for the report. The chooser's prediction is the model's cost through that line
((1, 0) where none was measured, e.g. for an algorithm registered after calibrating); the lines
themselves, the file they are kept in and the shipped defaults are `_calibration`, the data floor
below the registry, which this module hands its result to (`_calibration.use`).

The measurements run at the current thread budget, recorded in the file: calibrate with the thread
count you compute with. The cost models themselves keep predicting for the machine's cores
(`_config.planning_threads()`), so the choice does not change with `set_num_threads`.
"""
import math
import statistics
import time

import numpy as np

from . import _cachefiles, _calibration, _config, _functional, _registry, _timing

PRUNE = 10.0                # not timed when predicted this many times slower than the best
COMPETITIVE = 4.0           # problems where an algorithm is within this of the fastest count
MAX_FACTOR = 8.0
NOISY = 1.5                 # a measurement whose repeats' median is this far above their best
NOISY_SHARE = 0.1           # summary() warns when more than this share of measurements is noisy
SKIP = ("reference",)

# (x shape, w shape, geometry): the suite's kinds of layer at a quarter of its sizes or less (dense
# 3x3, few input channels, pointwise -- and a deep one on a 7x7 map --, strided, large kernel,
# depthwise, MNIST-like, 1-D audio, 1-D sequence layers, 3-D), single-channel images (up to
# 512x512, where transforms and direct loops part ways) with kernels 5 to 41, and three tiny
# problems (dense and depthwise) that show the fixed costs of a call; each takes milliseconds.
PROBLEMS = (
    ((4, 32, 28, 28), (32, 32, 3, 3), dict(padding=1)),
    ((2, 3, 112, 112), (32, 3, 3, 3), dict(padding=1)),
    ((4, 128, 14, 14), (32, 128, 1, 1), {}),
    ((1, 256, 7, 7), (512, 256, 1, 1), {}),     # 1x1 layers: a deep one on a small map, and a
    ((8, 64, 28, 28), (128, 64, 1, 1), {}),     # batch on a larger one (pointwise's scale)
    ((4, 32, 28, 28), (64, 32, 3, 3), dict(stride=2, padding=1)),
    ((2, 4, 64, 64), (4, 4, 15, 15), dict(padding=7)),
    ((4, 64, 28, 28), (64, 1, 3, 3), dict(padding=1, groups=64)),
    ((2, 32, 28, 28), (32, 1, 7, 7), dict(padding=3, groups=32)),  # ConvNeXt's 7x7 depthwise
    ((16, 1, 28, 28), (32, 1, 5, 5), {}),
    ((4, 1, 8000), (32, 1, 64), {}),
    ((8, 16, 2000), (16, 16, 9), dict(padding=4)),
    ((2, 1, 16000), (8, 1, 15), {}),
    ((4, 8, 4000), (16, 8, 31), {}),
    ((4, 32, 2000), (32, 32, 3), dict(padding=1)),          # 1-D k3 (Winograd F(6, 3)): TCN
    ((2, 64, 1000), (64, 64, 3), dict(padding=2, dilation=2)),
    ((1, 4, 24, 24, 24), (8, 4, 3, 3, 3), dict(padding=1)),
    ((1, 1, 256, 256), (1, 1, 5, 5), {}),
    ((1, 1, 512, 512), (1, 1, 11, 11), {}),
    ((1, 1, 512, 512), (1, 1, 21, 21), {}),
    ((1, 1, 512, 512), (1, 1, 41, 41), {}),
    ((1, 2, 12, 12), (2, 2, 3, 3), dict(padding=1)),
    ((2, 8, 16, 16), (8, 8, 3, 3), dict(padding=1)),
    ((1, 8, 12, 12), (8, 1, 3, 3), dict(padding=1, groups=8)),  # depthwise's fixed cost
)
QUICK_PROBLEMS = (((1, 2, 12, 12), (2, 2, 3, 3), dict(padding=1)),)


def _rank_one_kernel(rng, shape, dtype):
    """A random kernel whose every (k, c) slice is an outer product, so that weight-dependent
    algorithms (separable) are measured too; the others do not look at the values."""
    w = np.ones(shape)
    spatial = shape[2:]
    for axis, size in enumerate(spatial):
        factor_shape = shape[:2] + tuple(size if a == axis else 1 for a in range(len(spatial)))
        w = w * rng.standard_normal(factor_shape)
    return w.astype(dtype)


def _gemm_rate(dtype, n=512, repeat=3):
    from scipy.linalg import blas
    gemm = blas.sgemm if dtype == "float32" else blas.dgemm
    rng = np.random.default_rng(0)
    a = np.asfortranarray(rng.standard_normal((n, n)).astype(dtype))
    return 2.0 * n**3 / _timing.best_of(lambda: gemm(1.0, a, a), repeat, budget=1.0)


def _copy_rate(nbytes=64 * 2**20):
    a = np.ones(nbytes // 8)
    b = np.empty_like(a)
    return 2.0 * nbytes / _timing.best_of(lambda: np.copyto(b, a), 3, budget=1.0)


def describe(dtype, xs, ws, kw):
    """One problem of PROBLEMS in words: ``float32 x (4, 32, 28, 28) w (32, 32, 3, 3) padding=1``."""
    geometry = "".join(f" {k}={v}" for k, v in sorted(kw.items()))
    return f"{dtype} x {tuple(xs)} w {tuple(ws)}{geometry}"


def measure(problems=PROBLEMS, dtypes=("float32", "float64"), rounds=3, budget=0.03,
            seconds=20.0, *, progress=None, spread=None):
    """[(algorithm, op, dtype, kind, predicted s, measured s, fastest measured s)]; after
    `seconds`, every remaining measurement is cut to one round.

    `progress(done, total, what)` is called before each problem (`what`: `describe`'s words);
    `spread`, a list, receives (algorithm, op, problem in words, median / best of the repeats)
    for each measurement with two or more repeats: how much the machine's noise moved them."""
    rng = np.random.default_rng(1)
    deadline = _timing.clock() + seconds
    rows = []
    total, done = len(dtypes) * len(problems), 0
    for dtype in dtypes:
        for xs, ws, kw in problems:
            what = describe(dtype, xs, ws, kw)
            if progress is not None:
                progress(done, total, what)
            done += 1
            x = rng.standard_normal(xs).astype(dtype)
            w = _rank_one_kernel(rng, ws, dtype)
            spec = _functional.spec_from_shapes(xs, ws, kw.get("stride", 1), kw.get("padding", 0),
                                                kw.get("dilation", 1), kw.get("groups", 1), dtype)
            gy = rng.standard_normal(spec.user_shape(spec.y_shape)).astype(dtype)
            w5 = w.reshape(spec.w_shape)
            calls = {"forward": lambda a: _functional.conv(x, w, algorithm=a, **kw),
                     "grad_input": lambda a: _functional.conv_grad_input(gy, w, xs, algorithm=a, **kw),
                     "grad_kernel": lambda a: _functional.conv_grad_kernel(x, gy, ws, algorithm=a, **kw)}
            impls = _registry.registered()
            for op, call in calls.items():
                fns = {}
                for name, impl in _registry.registered().items():
                    if name in SKIP or not impl.supports(spec, op)[0]:
                        continue
                    if hasattr(impl, "supports_weights") and (
                            op == "grad_kernel" or not impl.supports_weights(spec, op, w5)[0]):
                        continue
                    fns[name] = (lambda name=name: call(name))
                costs = {name: impls[name].cost(spec, op) for name in fns}
                floor = min(costs.values(), default=0.0)    # hopeless ones are not timed
                fns = {n: fn for n, fn in fns.items() if costs[n] <= PRUNE * floor}
                samples = {}
                best = _timing.interleaved(fns, rounds, budget, max_reps=5, deadline=deadline,
                                           samples=samples)
                if spread is not None:
                    spread += [(name, op, what, statistics.median(t) / min(t))
                               for name, t in samples.items() if len(t) > 1 and min(t) > 0]
                fastest = min(best.values(), default=math.inf)
                rows += [(name, op, dtype, _calibration.kind(spec), costs[name], t, fastest)
                         for name, t in best.items()]
    return rows


OVERHEADS_S = (0.0,) + tuple(1e-6 * 10 ** (i / 8) for i in range(33))   # 1 us to 10 ms


def _fit_one(points, overheads=OVERHEADS_S):
    """(scale, overhead) minimising sum (log(scale * predicted + overhead) - log(measured))^2."""
    best = None
    for b in overheads:
        if b >= min(m for _, m in points):
            break
        a = math.exp(statistics.median(math.log((m - b) / p) for p, m in points))
        a = min(MAX_FACTOR, max(1.0 / MAX_FACTOR, a))
        loss = sum((math.log(a * p + b) - math.log(m)) ** 2 for p, m in points)
        if best is None or loss < best[0] - 1e-12:
            best = (loss, a, b)
    return best[1], best[2]


def fit(rows):
    """{algorithm: {op: {dtype: [scale, overhead seconds]}}} from measure()'s rows: the
    measured time is modelled as scale * predicted + overhead, fitted (on the log) over the
    problems where the algorithm is within COMPETITIVE of the fastest (all of them if it never
    is). The overhead is the fixed cost of a call on this machine that the models leave out.
    Two kinds of problem (see _calibration.kind) also get their own scale (key dtype + kind, with the pooled
    overhead) where two or more were measured: 1-D problems (long rows and 1-D transforms) and
    problems with one input and one output channel per group (single-channel images, depthwise),
    whose loops run at other rates than the channel sums of ordinary layers."""
    points = {}
    for name, op, dtype, problem_kind, predicted, seconds, fastest in rows:
        if predicted > 0 and seconds > 0:
            point = (seconds <= COMPETITIVE * fastest, predicted, seconds)
            points.setdefault((name, op, dtype), []).append(point)
            if problem_kind:
                points.setdefault((name, op, dtype + problem_kind), []).append(point)
    factors = {}
    for (name, op, dtype), values in sorted(points.items()):     # "float32" before "float32/1d"
        chosen = [(p, m) for c, p, m in values if c] or [(p, m) for _, p, m in values]
        overheads = OVERHEADS_S
        if "/" in dtype:                # few points: their own scale, the pooled overhead
            if len(chosen) < 2:
                continue
            overheads = (factors[name][op][dtype.split("/")[0]][1],)
        a, b = _fit_one(chosen, overheads)
        factors.setdefault(name, {}).setdefault(op, {})[dtype] = [round(a, 4), float(f"{b:.3g}")]
    return factors


def calibrate(*, quick=False, save=True, progress=None):
    """Measure this machine's constants for the chooser (< 30 s) and use them from now on.

    Times every registered algorithm on a fixed set of small problems for the three operations in
    float32 and float64 and fits one factor per (algorithm, operation, dtype) on top of the shipped
    cost models. With ``save`` (the default) the result is written to ``calibration.json`` in the
    cache directory (``FASTCONV_CACHE_DIR``, else the platform's user cache directory) and later
    processes load it at their first choice. ``quick=True`` runs one tiny problem (for tests).
    ``progress``, a callable ``progress(done, total, what)``, is told before each step what is
    being timed (``fastconv calibrate`` prints it); by default nothing is printed.
    Returns the stored dict (``factors``, ``constants``, ``threads``, ``cpu``, ``fastconv``, and
    ``noise``: how many measurements had repeats and those whose repeats differed by more than
    NOISY, which `summary` reports).
    """
    start = _timing.clock()
    spread = []
    if quick:
        rows = measure(QUICK_PROBLEMS, ("float32",), rounds=1, budget=0.001, progress=progress,
                       spread=spread)
        constants = {}
    else:
        steps = 2 * len(PROBLEMS) + 1
        rows = measure(progress=progress and (lambda done, _, what: progress(done, steps, what)),
                       spread=spread)
        if progress is not None:
            progress(steps - 1, steps, "the GEMM rate and the copy bandwidth")
        constants = {"sgemm_flops_per_s": _gemm_rate("float32"),
                     "dgemm_flops_per_s": _gemm_rate("float64"),
                     "copy_bytes_per_s": _copy_rate()}
    data = {"format": _cachefiles.FORMAT, **_calibration.machine(),
            "threads": _config.get_num_threads(),
            "created": time.strftime("%Y-%m-%dT%H:%M:%S"), "quick": quick,
            "seconds": round(_timing.clock() - start, 2), "constants": constants,
            "factors": fit(rows),
            "noise": {"measurements": len(spread),
                      "noisy": [[name, op, what, round(ratio, 2)]
                                for name, op, what, ratio in spread if ratio > NOISY]}}
    if save:
        path = _calibration.path()
        try:
            with _cachefiles.locked(path):
                _cachefiles.write_atomic(path, data)
        except OSError as exc:      # still used by this process
            import warnings
            warnings.warn(f"fastconv: could not write the calibration to {path} ({exc})",
                          _cachefiles.CacheWarning, stacklevel=2)
    _calibration.use(data)
    return data


def _capped(scale):
    return scale >= MAX_FACTOR or scale <= round(1.0 / MAX_FACTOR, 4)


def summary(data):
    """The lines ``fastconv calibrate`` ends with: per algorithm, operation and dtype (and kind of
    problem) the scale and overhead fitted, marked ``cap`` where the scale hit MAX_FACTOR (or its
    inverse) and with the count of noisy measurements; then a WARNING line for capped scales and
    one when more than NOISY_SHARE of the measurements were noisy: a busy machine does both."""
    noise = data.get("noise", {})
    noisy = {}
    for name, op, what, _ in noise.get("noisy", []):
        key = (name, op, what.split(" ", 1)[0])
        noisy[key] = noisy.get(key, 0) + 1
    lines = [f"calibrated in {data.get('seconds', 0):.1f} s at {data.get('threads', '?')} "
             f"thread{'' if data.get('threads') == 1 else 's'} on {data.get('cpu', '?')}",
             f"  {'algorithm':<12} {'operation':<12} {'dtype':<16} {'scale':>7} {'overhead':>10}"]
    capped = 0
    for name, ops in sorted(data.get("factors", {}).items()):
        for op, dtypes in ops.items():
            for dtype, (scale, overhead) in sorted(dtypes.items()):
                notes = []
                if _capped(scale):
                    capped += 1
                    notes.append("cap")
                if noisy.get((name, op, dtype)):
                    notes.append(f"noisy {noisy[(name, op, dtype)]}")
                lines.append(f"  {name:<12} {op:<12} {dtype:<16} {scale:7.3f} "
                             f"{overhead * 1e6:7.1f} us  {', '.join(notes)}".rstrip())
    busy = "the machine may be busy; rerun fastconv calibrate when it is quiet"
    if capped:
        lines.append(f"WARNING: {capped} scale{'s' if capped > 1 else ''} hit the cap "
                     f"(x{MAX_FACTOR:g} or /{MAX_FACTOR:g}, marked cap): the models are that far "
                     f"off, or {busy}")
    total, count = noise.get("measurements", 0), len(noise.get("noisy", []))
    if total and count > NOISY_SHARE * total:
        lines.append(f"WARNING: {count} of {total} measurements varied more than {NOISY:g}x "
                     f"between repeats (marked noisy): {busy}")
    elif count:
        lines.append(f"({count} of {total} measurements varied more than {NOISY:g}x between "
                     "repeats)")
    return lines
