"""``fastconv bench``: every algorithm and the chooser on the public suite, as a table.

For each case and operation: GFLOP/s of every registered algorithm (except the slow oracle) and of
``"auto"`` (with its pick), auto's fraction of this machine's measured sgemm peak
(``scipy.linalg.blas.sgemm``), and, where installed, PyTorch CPU's time and scipy.signal's
(single-channel cases) over auto's: above 1 means fastconv is faster. Implementations run in
interleaved rounds, each figure the best of its repeats, so a passing load hits them all alike.

    python -m fastconv bench [--quick] [--cases a,b] [--ops forward,grad_input] [--threads 1]
"""
import argparse

import numpy as np

import fastconv
from . import _suite, _timing

SKIP = ("reference",)          # the oracle: far too slow for these shapes, never the choice


def runner(case, op, algorithm, arrays):
    """A no-argument callable computing `op` of `case` with fastconv's `algorithm`."""
    x, w, gy, g = arrays["x"], arrays["w"], arrays["gy"], case.geometry
    if op == "forward":
        return lambda: fastconv.conv(x, w, algorithm=algorithm, **g)
    if op == "grad_input":
        return lambda: fastconv.conv_grad_input(gy, w, x.shape, algorithm=algorithm, **g)
    return lambda: fastconv.conv_grad_kernel(x, gy, w.shape, algorithm=algorithm, **g)


def torch_runner(case, op, arrays):
    """PyTorch CPU's version of the same call, or None when torch is not installed."""
    try:
        import torch
    except ImportError:
        return None
    F, nd, g = torch.nn.functional, case.ndim, case.geometry
    tx, tw, tgy = (torch.from_numpy(arrays[k]) for k in ("x", "w", "gy"))
    kw = dict(stride=g["stride"], padding=g["padding"], groups=g["groups"])

    def run(fn):
        def call():
            with torch.no_grad():
                return fn()
        return call
    if op == "forward":
        return run(lambda: getattr(F, f"conv{nd}d")(tx, tw, **kw))
    if op == "grad_input":
        return run(lambda: getattr(torch.nn.grad, f"conv{nd}d_input")(tx.shape, tw, tgy, **kw))
    return run(lambda: getattr(torch.nn.grad, f"conv{nd}d_weight")(tx, tw.shape, tgy, **kw))


def scipy_runner(case, op, arrays):
    """scipy.signal (method "auto") for a single-channel case without padding or stride."""
    if not case.single_channel or case.padding or case.stride != 1:
        return None
    try:
        import scipy.signal as signal
    except ImportError:
        return None
    x, w, gy = (arrays[k].reshape(arrays[k].shape[2:]) for k in ("x", "w", "gy"))
    return {"forward": lambda: signal.correlate(x, w, mode="valid"),
            "grad_input": lambda: signal.convolve(gy, w, mode="full"),
            "grad_kernel": lambda: signal.correlate(x, gy, mode="valid")}[op]


def best_times(fns, rounds=3, budget=0.3):
    """Best seconds of each callable over interleaved rounds; a callable that raises
    fastconv.NotSupportedError on its first (untimed) call is left out."""
    return _timing.interleaved(fns, rounds, budget, shortest=1e-5,
                               skip=fastconv.NotSupportedError)


def sgemm_peak(n=1024, repeat=5):
    """This machine's float32 GEMM rate (FLOP/s) under the current thread budget."""
    from scipy.linalg.blas import sgemm
    rng = np.random.default_rng(0)
    a = np.asfortranarray(rng.standard_normal((n, n), dtype=np.float32))
    b = np.asfortranarray(rng.standard_normal((n, n), dtype=np.float32))
    return 2.0 * n**3 / _timing.best_of(lambda: sgemm(1.0, a, b), repeat)


def _names(text, allowed, what):
    if text is None:
        return list(allowed)
    names = [t for t in text.split(",") if t]
    unknown = [t for t in names if t not in allowed]
    if unknown:
        raise SystemExit(f"unknown {what} {unknown}; expected some of {list(allowed)}")
    return names


def run(cases, ops, rounds=3, budget=0.3, out=print):
    """Time every algorithm, auto, torch and scipy on `cases` x `ops`; print and return rows."""
    algorithms = [a for a in fastconv.algorithms() if a not in SKIP]
    peak = sgemm_peak()
    out(f"fastconv {fastconv.__version__}, {fastconv.get_num_threads()} thread(s), "
        f"sgemm peak {peak / 1e9:.1f} GFLOP/s")
    head = (["case", "op"] + [f"{a} GF/s" for a in algorithms]
            + ["auto", "auto GF/s", "of peak", "torch/auto", "scipy/auto"])
    out("| " + " | ".join(head) + " |")
    out("|" + "---|" * len(head))
    rows = []
    for case in cases:
        arrays = _suite.make_arrays(case)
        flop = _suite.flops(case)
        for op in ops:
            fns = {a: runner(case, op, a, arrays) for a in algorithms + ["auto"]}
            for name, fn in (("torch", torch_runner(case, op, arrays)),
                             ("scipy", scipy_runner(case, op, arrays))):
                if fn is not None:
                    fns[name] = fn
            best = best_times(fns, rounds, budget)
            chosen = fastconv.choose(case.x_shape, case.w_shape, op=op, **case.geometry)
            auto = best["auto"]

            def ratio(name):
                return f"{best[name] / auto:.2f}" if name in best else "-"
            cells = [case.name, op] + [f"{flop / best[a] / 1e9:.1f}" if a in best else "n/a"
                                       for a in algorithms]
            cells += [chosen, f"{flop / auto / 1e9:.1f}", f"{flop / auto / peak:.0%}",
                      ratio("torch"), ratio("scipy")]
            out("| " + " | ".join(cells) + " |")
            rows.append({"case": case.name, "op": op, "chosen": chosen, "flops": flop,
                         "seconds": best})
    return rows


def busy_machine_note(out=print):
    """Without --threads, on a machine other processes keep busy: time on the cores they leave
    free (the anchors too), and say that these are not the machine's quiet figures."""
    from . import _config, _load
    budget = _config.get_num_threads()
    _load.settle()
    free = _load.thread_cap(budget)
    if free < budget:
        out(f"note: other processes are using {_load.cores_used_elsewhere():.1f} of this "
            f"machine's cores; timing on {free} thread(s), and the figures are not its quiet "
            f"speed (--threads N to force)")
        fastconv.set_num_threads(free)


def main(argv=None):
    from .demos import plain
    parser = argparse.ArgumentParser(prog="fastconv bench", description=plain(__doc__),
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true",
                        help="shrunk cases (batch 1, spatial / 4): a smoke run in seconds")
    parser.add_argument("--cases", help="comma-separated case names (default: all)")
    parser.add_argument("--ops", help="comma-separated operations (default: all three)")
    parser.add_argument("--threads", type=int, help="thread budget (default: fastconv's)")
    parser.add_argument("--rounds", type=int, default=3, help="interleaved rounds (default 3)")
    args = parser.parse_args(argv)
    if args.threads is not None:
        fastconv.set_num_threads(args.threads)
    else:
        busy_machine_note()
    try:
        import torch
        torch.set_num_threads(fastconv.get_num_threads())
    except ImportError:
        pass
    every = {c.name: c for c in _suite.all_cases(args.quick)}
    cases = [every[n] for n in _names(args.cases, every, "case")]
    ops = _names(args.ops, _suite.OPERATIONS, "operation")
    run(cases, ops, rounds=args.rounds, budget=0.05 if args.quick else 0.3)
    return 0
