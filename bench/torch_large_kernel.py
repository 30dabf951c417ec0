"""A training step of a large-kernel layer: fastconv.torch.Conv2d against torch.nn.Conv2d.

    python bench/torch_large_kernel.py [--quick] [--threads N] [--rounds R] [--budget S]

One step is forward, backward (input and weight gradients) and an SGD update, on the same
weights and batch in both layers: Conv2d(C, C, kernel_size=31, padding="same") on
(batch, C, size, size) float32 (default batch 4, C 8, 128x128; --quick: batch 2, C 2, 24x24).
The two steps are timed in turns by fastconv's interleaved timer (fastconv._timing), so a load
passing over the machine slows both alike; prints each one's best step time and the ratio
torch / fastconv (above 1: fastconv faster). Needs torch (pip install "fastconv[torch]").
"""
import argparse

import torch

import fastconv
import fastconv.torch as ft
from fastconv._timing import interleaved

KERNEL = 31


def _step(layer, x, target, opt):
    def step():
        opt.zero_grad(set_to_none=False)
        loss = torch.nn.functional.mse_loss(layer(x), target)
        loss.backward()
        opt.step()
    return step


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="tiny sizes: check that it runs")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--budget", type=float, default=None,
                        help="seconds each layer gets over all rounds (default 10, --quick 0.5)")
    args = parser.parse_args(argv)
    batch, channels, size = (2, 2, 24) if args.quick else (4, 8, 128)
    budget = args.budget if args.budget is not None else (0.5 if args.quick else 10.0)
    torch.set_num_threads(args.threads)
    fastconv.set_num_threads(args.threads)
    torch.manual_seed(0)
    ours = ft.Conv2d(channels, channels, KERNEL, padding="same")
    theirs = torch.nn.Conv2d(channels, channels, KERNEL, padding="same")
    theirs.load_state_dict(ours.state_dict())
    x = torch.randn(batch, channels, size, size)
    target = torch.randn(batch, channels, size, size)
    with torch.no_grad():
        gap = (ours(x) - theirs(x)).abs().max().item()
    steps = {name: _step(layer, x, target, torch.optim.SGD(layer.parameters(), lr=1e-6))
             for name, layer in (("fastconv", ours), ("torch", theirs))}
    print(f"layer Conv2d({channels}, {channels}, kernel_size={KERNEL}, padding='same'), input "
          f"({batch}, {channels}, {size}, {size}) float32, {args.threads} threads; "
          f"max |fastconv - torch| forward {gap:.2e}")
    picks = {op: fastconv.choose(tuple(x.shape), tuple(ours.weight.shape), padding="same", op=op)
             for op in ("forward", "grad_input", "grad_kernel")}
    print("fastconv's chooser picks " + ", ".join(f"{op} {a}" for op, a in picks.items()))
    best = interleaved(steps, args.rounds, budget, warmup=1)
    for name, seconds in best.items():
        print(f"{name:9s} training step {seconds * 1e3:9.2f} ms (best of the interleaved rounds)")
    print(f"ratio torch / fastconv: {best['torch'] / best['fastconv']:.2f}")


if __name__ == "__main__":
    main()
