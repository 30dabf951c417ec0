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
