"""The public fastconv benchmark suite, for the benchmarks in this folder.

The case list lives in the package (``fastconv/_suite.py``, so that ``fastconv bench`` has it
where ``bench/`` is not installed); this module re-exports it and adds the quick switch:
``FASTCONV_BENCH_QUICK=1`` shrinks every case (batch 1, each spatial size divided by 4 but never
below the kernel) so that a smoke run of the whole harness takes seconds; names stay the same and
the JSON records the flag.
"""

import os

from fastconv._suite import (IMAGE_CASES, IMAGE_KERNELS, OPERATIONS, SUITE, Case,  # noqa: F401
                             flops, make_arrays, output_shape, output_spatial, result_shape, shrink)
from fastconv._suite import all_cases as _all_cases

QUICK = os.environ.get("FASTCONV_BENCH_QUICK", "0") not in ("", "0")


def all_cases(quick=QUICK):
    return _all_cases(quick)


CASES = {case.name: case for case in all_cases()}


def torch_operations(x, w, gy, geometry):
    """{op: callable} computing the three operations in PyTorch (``F.convNd``,
    ``torch.nn.grad.convNd_input`` / ``_weight``) on fixed arrays, for side-by-side timing.
    `geometry` holds fastconv.conv's keywords; a padding given as (before, after) pairs (a
    causal layer) is applied to x beforehand, since PyTorch pads both sides alike."""
    import numpy as np
    import torch
    g = dict(geometry)
    padding = g.pop("padding", 0)
    if isinstance(padding, tuple) and padding and isinstance(padding[0], tuple):
        x = np.ascontiguousarray(np.pad(x, [(0, 0), (0, 0)] + list(padding)))
        padding = 0
    nd = w.ndim - 2
    tx, tw, tgy = map(torch.from_numpy, (x, w, gy))
    conv = getattr(torch.nn.functional, f"conv{nd}d")
    grad_x = getattr(torch.nn.grad, f"conv{nd}d_input")
    grad_w = getattr(torch.nn.grad, f"conv{nd}d_weight")
    kw = dict(padding=padding, **g)
    return {"forward": lambda: conv(tx, tw, **kw),
            "grad_input": lambda: grad_x(tx.shape, tw, tgy, **kw),
            "grad_kernel": lambda: grad_w(tx, tw.shape, tgy, **kw)}
