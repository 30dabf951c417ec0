"""The chooser sweep (issue 11): "auto" against every applicable algorithm on the layers of
well-known networks, image filters and a seeded draw of odd geometries; see fastconv/_sweep.py.

    PYTHONPATH=. python bench/sweep.py [--quick] [--dtypes float32] [--threads 2] [--calibrate]
        [--networks resnet18,lenet] [--json rows.json]

To emulate an AVX2 machine on an AVX-512 one:
    FASTCONV_KERNEL_LEVEL=avx2 OPENBLAS_CORETYPE=Haswell PYTHONPATH=. python bench/sweep.py
"""
import sys

from fastconv._sweep import main

if __name__ == "__main__":
    sys.exit(main())
