"""Issue 13, "small networks train faster than in PyTorch": one training step of four small
networks (bench/small_nets.py: digits, mnist, cifar, audio) in fastconv.nn and in PyTorch.

A step is forward, softmax cross-entropy, backward and an SGD update (lr 0.01, momentum 0.9):
`fastconv.nn.train_step` against PyTorch's zero_grad / forward / cross_entropy / backward /
step, on the same batch. Before anything is timed, each network takes one step in both from the
same weights on the same batch and the results are compared (a benchmark of a wrong answer is
worthless): the updated weights within 1e-4 of PyTorch's, relative to each parameter's largest
weight, and the gradients the step used within 1e-4 too (a wrong gradient could hide behind the
weights it is added to: at lr 0.01, a 1% error in it is a 1e-4 change in the weights) -- or within
1e-2 where rounding made a ReLU or a max-pool window switch on a near-tie, which the check counts
and prints ("switches"; see small_nets.routing_differences).

Timing: per network and thread count, the two steps alternate round after round
(`fastconv._timing.interleaved`, one step each per round after a warm-up), so a load passing
over the machine slows both alike; the figure is the best step, with the ratio of the medians
beside it. torch / fastconv above 1: fastconv is faster. Then the per-call overhead of a tiny
convolution (1x1x8x8 by 1x1x3x3, float32, one thread), microseconds per call, the best of several
batches of many calls.

--accuracy instead trains each network in both for --steps steps (same initial weights, same
batches in the same order; bench/small_net_tasks.py) and prints both held-out losses and
accuracies: the same number of steps should give the same accuracy.

    PYTHONPATH=. python bench/train_small_nets.py [--threads 1 2] [--rounds 30] [--nets digits,cifar]
    PYTHONPATH=. python bench/train_small_nets.py --accuracy [--steps 200]
    PYTHONPATH=. python bench/train_small_nets.py --quick          # smoke run; not results

Run on an otherwise idle machine: fastconv follows the machine's load (it caps its threads at
the cores other processes leave free, `fastconv._load`; FASTCONV_ADAPT_THREADS=0 turns that off),
PyTorch does not. Needs torch (not a dependency of fastconv).
"""
import argparse
import math
import os
import subprocess
import sys
import time

import numpy as np
import torch

import fastconv
from fastconv import _timing, nn

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import small_nets  # noqa: E402
from small_nets import NETS  # noqa: E402


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--threads", type=int, nargs="+", default=[1, 2],
                   help="thread counts, set in both libraries (default: 1 2)")
    p.add_argument("--rounds", type=int, default=None,
                   help="interleaved rounds of one step each (default 30; 3 with --quick)")
    p.add_argument("--nets", default=",".join(NETS),
                   help=f"comma-separated networks (default: all of {','.join(NETS)})")
    p.add_argument("--quick", action="store_true",
                   help="a smoke run: few rounds, calls and steps; its figures are not results")
    p.add_argument("--no-overhead", action="store_true", help="skip the tiny-convolution table")
    p.add_argument("--warmup-seconds", type=float, default=1.0,
                   help="seconds of steps each library runs before timing (default 1)")
    p.add_argument("--accuracy", action="store_true",
                   help="train each network in both libraries and compare held-out accuracy "
                        "(instead of timing)")
    p.add_argument("--steps", type=int, default=None,
                   help="training steps of --accuracy (default 200; 20 with --quick)")
    p.add_argument("--seed", type=int, default=0, help="seed of the weights, batches and data")
    args = p.parse_args(argv)
    unknown = [n for n in args.nets.split(",") if n not in NETS]
    if unknown:
        p.error(f"unknown networks {unknown}; choose from {list(NETS)}")
    args.nets = [NETS[n] for n in args.nets.split(",")]
    if args.rounds is None:
        args.rounds = 3 if args.quick else 30
    if args.steps is None:
        args.steps = 20 if args.quick else 200
    return args


def set_threads(n):
    fastconv.set_num_threads(n)
    torch.set_num_threads(n)


def _commit():
    try:
        done = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True,
                              text=True, cwd=os.path.dirname(os.path.abspath(__file__)), timeout=10)
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return done.stdout.strip() or "unknown"


def print_machine():
    """Every figure below names its machine and its code."""
    from fastconv._cachefiles import cpu_model            # /proc/cpuinfo's model name
    from fastconv import _kernel_level, _load
    print(f"CPU: {cpu_model()} ({len(os.sched_getaffinity(0))} usable of {os.cpu_count()} logical)")
    print(f"fastconv {fastconv.__version__} (commit {_commit()}), kernel level "
          f"{_kernel_level.current()}, thread cap following the load: "
          f"{'on' if _load.enabled else 'off'}")
    print(f"torch {torch.__version__}, numpy {np.__version__}, python {sys.version.split()[0]}")


def check_against_torch(nets, seed):
    """One step of each network in both libraries from the same weights on the same batch; stops
    the run (SystemExit) when they differ."""
    print("\none step from the same weights on the same batch, fastconv vs PyTorch "
          "(largest relative difference over the parameters):")
    failures = []
    for net in nets:
        found = small_nets.one_step_differences(net, seed=seed)
        name_w, err_w = max(found["weights"].items(), key=lambda kv: kv[1])
        name_g, err_g = max(found["gradients"].items(), key=lambda kv: kv[1])
        ok = small_nets.step_agrees(found)
        print(f"  {net.name:7s} loss {found['loss']:.1e}  gradients {err_g:.1e} ({name_g})  "
              f"updated weights {err_w:.1e} ({name_w})  switches {found['switches']}  "
              f"{'ok' if ok else 'DIFFERENT'}")
        if not ok:
            failures.append(net.name)
    if failures:
        raise SystemExit(f"fastconv's training step differs from PyTorch's on {failures} (weights "
                         f"tolerance {small_nets.WEIGHT_TOLERANCE:g}, gradients "
                         f"{small_nets.GRADIENT_TOLERANCE:g}, {small_nets.SWITCHED_GRADIENT_TOLERANCE:g}"
                         " after a switch): not timing a wrong answer")


def step_pair(net, seed):
    """{"fastconv": step, "torch": step}: argument-free callables, each one training step of its
    twin on the same fixed batch."""
    model, twin = small_nets.twins(net, seed)
    x, y = small_nets.random_batch(net, seed=seed + 1)
    ours = small_nets.fastconv_trainer(model)
    theirs = small_nets.torch_trainer(twin)
    tx, ty = torch.from_numpy(x), torch.from_numpy(y)
    return {"fastconv": lambda: ours(x, y), "torch": lambda: theirs(tx, ty)}


def settle(steps, seconds):
    """Run each step for `seconds`: a training run's steady state. fastconv's layers prepare
    their convolutions at the first step and measure a layer whose calls have taken 0.03 s
    (the safety net's plan rule); torch warms its allocator and oneDNN's primitive cache."""
    for step in steps.values():
        end = time.perf_counter() + seconds
        while time.perf_counter() < end:
            step()


def time_steps(nets, thread_counts, rounds, seed, warmup, warmup_s=0.0):
    print(f"\none training step, best of {rounds} interleaved rounds after {warmup_s:g} s of steps "
          f"and {warmup} warm-up step(s) (torch/fastconv above 1: fastconv faster; the median "
          f"ratio beside it):")
    print(f"{'net':7s} {'batch':>5s} {'threads':>7s} {'fastconv ms':>11s} {'torch ms':>9s} "
          f"{'torch/fastconv':>14s} {'median ratio':>12s}")
    for threads in thread_counts:
        set_threads(threads)
        ratios = []
        for net in nets:
            samples = {}
            steps = step_pair(net, seed)
            settle(steps, warmup_s)
            best = _timing.interleaved(steps, rounds, 0.0, warmup=warmup,
                                       count_first=False, max_reps=1, samples=samples)
            ratio = best["torch"] / best["fastconv"]
            median = float(np.median(samples["torch"]) / np.median(samples["fastconv"]))
            ratios.append(ratio)
            print(f"{net.name:7s} {net.batch:5d} {threads:7d} {best['fastconv'] * 1e3:11.2f} "
                  f"{best['torch'] * 1e3:9.2f} {ratio:14.2f} {median:12.2f}", flush=True)
        geomean = math.exp(sum(math.log(r) for r in ratios) / len(ratios))
        print(f"{'geomean':7s} {'':5s} {threads:7d} {'':11s} {'':9s} {geomean:14.2f}")


def tiny_calls():
    """{name: argument-free callable}: one tiny convolution operation each."""
    rng = np.random.default_rng(0)
    x = rng.standard_normal((1, 1, 8, 8), dtype=np.float32)
    w = rng.standard_normal((1, 1, 3, 3), dtype=np.float32)
    y = fastconv.conv(x, w)
    gy = rng.standard_normal(y.shape, dtype=np.float32)
    calls = {
        "fastconv.conv": lambda: fastconv.conv(x, w),
        "fastconv.conv_grad_input": lambda: fastconv.conv_grad_input(gy, w, x.shape),
        "fastconv.conv_grad_kernel": lambda: fastconv.conv_grad_kernel(x, gy, w.shape),
    }
    if hasattr(fastconv, "plan"):
        p = fastconv.plan(x.shape, w.shape, stride=1, padding=0, dilation=1, groups=1,
                          dtype="float32")
        y_out, gx_out, gw_out = np.empty_like(y), np.empty_like(x), np.empty_like(w)
        calls.update({
            "plan.forward": lambda: p.forward(x, w, bias=None, out=None),
            "plan.forward out=": lambda: p.forward(x, w, bias=None, out=y_out),
            "plan.grad_input": lambda: p.grad_input(gy, w, out=None),
            "plan.grad_input out=": lambda: p.grad_input(gy, w, out=gx_out),
            "plan.grad_kernel": lambda: p.grad_kernel(x, gy, out=None),
            "plan.grad_kernel out=": lambda: p.grad_kernel(x, gy, out=gw_out),
        })
    tx, tw, tgy = (torch.from_numpy(a) for a in (x, w, gy))
    backward = torch.ops.aten.convolution_backward
    geometry = ((1, 1), (0, 0), (1, 1), False, (0, 0), 1)
    calls.update({
        "torch F.conv2d": lambda: torch.nn.functional.conv2d(tx, tw),
        "torch convolution_backward (input)":
            lambda: backward(tgy, tx, tw, None, *geometry, (True, False, False)),
        "torch convolution_backward (kernel)":
            lambda: backward(tgy, tx, tw, None, *geometry, (False, False, True)),
    })
    return calls


def time_overhead(calls_per_batch, batches):
    set_threads(1)
    calls = tiny_calls()
    if not hasattr(fastconv, "plan"):
        print("\n(fastconv has no plan API in this build: the plan rows are left out)")
    print(f"\nper-call overhead, x (1,1,8,8) w (1,1,3,3) float32, 1 thread: microseconds per "
          f"call, best of {batches} batches of {calls_per_batch} calls")
    for name, fn in calls.items():
        def batch(fn=fn):
            for _ in range(calls_per_batch):
                fn()
        seconds = _timing.best_of(batch, batches)
        print(f"  {name:36s} {seconds / calls_per_batch * 1e6:8.1f} us", flush=True)


def _torch_scores(twin, x, y):
    with torch.no_grad():
        out = twin(torch.from_numpy(x))
        loss = float(torch.nn.functional.cross_entropy(out, torch.from_numpy(y)))
    return {"loss": loss, "accuracy": float((out.argmax(1).numpy() == y).mean())}


def compare_accuracy(nets, steps, threads, seed):
    """Train both twins of each network for `steps` steps on the same batches; print both
    held-out scores and how far the weights have drifted apart by then."""
    from small_net_tasks import task
    set_threads(threads)
    print(f"\naccuracy: {steps} steps of SGD (lr {small_nets.LEARNING_RATE}, momentum "
          f"{small_nets.MOMENTUM}) from the same weights on the same batches, {threads} thread(s)")
    print(f"{'net':7s} {'batch':>5s} {'train':>5s} {'test':>5s} {'fastconv loss/acc':>18s} "
          f"{'torch loss/acc':>15s} {'last step loss f/t':>19s} {'weights apart':>13s} {'s':>5s}")
    for net in nets:
        start = time.perf_counter()
        x_train, y_train, x_test, y_test = task(net.name, seed)
        model, twin = small_nets.twins(net, seed)
        ours, theirs = small_nets.fastconv_trainer(model), small_nets.torch_trainer(twin)
        rng = np.random.default_rng(seed)
        order = np.empty(0, dtype=np.int64)
        for _ in range(steps):
            if len(order) < net.batch:
                order = np.concatenate([order, rng.permutation(len(x_train))])
            index, order = order[:net.batch], order[net.batch:]
            x, y = x_train[index], y_train[index]
            last_ours = ours(x, y)
            last_theirs = float(theirs(torch.from_numpy(x), torch.from_numpy(y)))
        mine = nn.evaluate(model, x_test, y_test)
        other = _torch_scores(twin, x_test, y_test)
        apart = max(small_nets.relative_difference(p, q.detach().numpy())
                    for p, q in zip(model.parameters(), twin.parameters()))
        print(f"{net.name:7s} {net.batch:5d} {len(x_train):5d} {len(x_test):5d} "
              f"{mine['loss']:10.4f}/{mine['accuracy']:.3f} {other['loss']:8.4f}/{other['accuracy']:.3f} "
              f"{last_ours:9.4f}/{last_theirs:.4f} {apart:13.1e} {time.perf_counter() - start:5.1f}",
              flush=True)


def main(argv=None):
    args = parse_args(argv)
    print_machine()
    check_against_torch(args.nets, args.seed)
    if args.accuracy:
        compare_accuracy(args.nets, args.steps, max(args.threads), args.seed)
        return 0
    time_steps(args.nets, args.threads, args.rounds, args.seed, warmup=1 if args.quick else 3,
               warmup_s=args.warmup_seconds)
    if not args.no_overhead:
        time_overhead(calls_per_batch=100 if args.quick else 2000, batches=3 if args.quick else 7)
    return 0


if __name__ == "__main__":
    sys.exit(main())
