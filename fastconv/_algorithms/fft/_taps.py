"""The DFT between a kernel's few taps and all frequencies as a matrix product (pocketfft's
back-end takes it where `_cost.by_gemm` finds it cheaper than an FFT of the zero-filled taps)."""
from functools import lru_cache
import math

import numpy as np

from ... import _fft
from . import _parallel
from ._places import complex_dtype


@lru_cache(maxsize=64)
def tap_dft(L, k, d, lo, half, inverse, dtype):
    """The DFT between the k kernel taps, at positions (t*d - lo) mod L, and the frequencies.

    Forward (F x k): spectrum = D @ taps, F = L, or L//2 + 1 on the real axis (`half`).
    Inverse (k x F): taps = D @ spectrum with the 1/L; on the real axis the half spectrum stands
    for its mirror image too (weight 2 but at frequencies 0 and L/2) and the taps are the real
    part. Angles are reduced modulo L in integers, so they are exact before rounding.
    """
    f = np.arange(L // 2 + 1 if half else L)
    theta = 2 * np.pi * (np.outer(f, (np.arange(k) * d - lo) % L) % L) / L
    if not inverse:
        return np.exp(-1j * theta).astype(complex_dtype(dtype))
    weight = np.ones(len(f))
    if half:
        weight[1:] = 2
        if L % 2 == 0:
            weight[-1] = 1
    return (np.exp(1j * theta) * (weight / L)[:, None]).T.astype(complex_dtype(dtype))


def along(a, ax, M, out, threads):
    """out = the matrix M (m x n) applied along spatial axis `ax` (of size n) of 5-D `a`, in
    complex: the Cython core's matrix_along, a GEMM with a complex scalar per (row, tap)
    vectorised along the contiguous trailing axes (along the last axis, one column), the stacks
    split over `threads` OpenMP threads; each is computed alike whatever the split."""
    threads = _parallel.for_macs(threads, out.size * M.shape[1])
    a = np.ascontiguousarray(a, out.dtype)
    stacks, nw = math.prod(a.shape[:2 + ax]), math.prod(a.shape[3 + ax:])
    real = a.real.dtype
    flat = [np.ascontiguousarray(M, a.dtype).view(real).reshape(-1),
            a.view(real).reshape(-1), out.view(real).reshape(-1)]
    _fft.matrix_along(*flat, M.shape[0], M.shape[1], nw, 0, stacks,
                      _parallel.threads(threads, stacks))
    return out
