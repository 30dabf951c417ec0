"""The channel product per frequency (src/_fft.pyx, src/_fft_product.h), alone on whole
spectra or fused with a 2-D pass's column transforms (src/_fft_fused.h).

    forward      Y[n, k]   = sum_c X[n, c] conj(W[k, c])
    grad_input   GX[n, c]  = sum_k GY[n, k] W[k, c]
    grad_kernel  GW[k, c] += sum_n conj(GY[n, k]) X[n, c]

Work items run on OpenMP threads; every output element is computed by one item whatever the
split, so the thread count never changes a result. The product needs no buffer of its own.
"""
import math

from ... import _fft
from . import _parallel
from ._own import column_plan


def _contraction(plan, a, b):
    """(rows of a, rows of b, j), then (strides, conjugate) of a and of b, and out's strides,
    in spectra, of the plan's channel product on spectra `a` and `b`."""
    spec = plan.spec
    G, K, C = spec.groups, spec.out_channels, spec.in_channels
    Kg, Cg = K // G, C // G
    if plan.op == "forward":         # a = X (nb, C), b = W (K, Cg), out = Y (nb, K)
        nb = a.shape[0]
        return (nb, Kg, Cg), (Cg, C, 1), False, (Kg * Cg, Cg, 1), True, (Kg, K, 1)
    if plan.op == "grad_input":      # a = GY (nb, K), b = W (K, Cg), out = GX (nb, C)
        nb = a.shape[0]
        return (nb, Cg, Kg), (Kg, K, 1), False, (Kg * Cg, 1, Cg), False, (Cg, C, 1)
    nb = b.shape[0]                  # a = GY (nb, K), b = X (nb, C), out = GW (K, Cg)
    return (Kg, Cg, nb), (Kg, 1, K), True, (Cg, 1, C), False, (Kg * Cg, Cg, 1)


def _flat(plan, *arrays):
    real = plan.spec.dtype
    return tuple(z.view(real).reshape(-1) for z in arrays)


def product(plan, a, b, out, accumulate, threads):
    """`out` (+)= the channel contraction of the plan's op on spectra `a` and `b`, the items
    split into `threads` contiguous ranges. (With pocketfft's transforms, libgomp's threads
    spinning after the product slowed its workers; that path is tested, not timed.)"""
    dims, sa, ca, sb, cb, so = _contraction(plan, a, b)
    freqs = math.prod(a.shape[2:])
    items = _fft.items(freqs)
    threads = _parallel.for_macs(threads, math.prod(dims) * plan.spec.groups * freqs)
    geometry = (freqs, plan.spec.groups, *dims, sa, ca, sb, cb, so, accumulate)
    _fft.channel_product(*_flat(plan, a, b, out), *geometry, 0, items,
                         _parallel.threads(threads, items))


def fused(plan, a, b, out, workers):
    """`a`'s column transforms, the channel product into `out` and out's inverse column
    transforms, block of columns by block (see _fft.pyx's `fused`); `a` is overwritten. Items
    (block of columns, sample) are split over the threads as in `product`."""
    spec = plan.spec
    (na, nb, nj), sa, ca, sb, cb, so = _contraction(plan, a, b)
    L = plan.L[plan.taxes[0]]
    blocks = a.shape[2]
    geometry = (L, blocks, na, a.shape[1], out.shape[1], column_plan(L, True, spec.dtype),
                column_plan(L, False, spec.dtype), 1.0 / L, spec.groups, nb, nj, sa, ca, sb, cb,
                so)
    threads = _parallel.for_macs(workers, na * nb * nj * spec.groups * plan.freqs)
    items = _fft.fused_items(na, blocks)
    _fft.fused(*_flat(plan, a, b, out), *geometry, 0, items, _parallel.threads(threads, items))


def fused_sum(plan, a, b, out, workers):
    """The kernel gradient's 2-D pass: a's and b's column transforms and out += their channel
    product, block of columns by block (see _fft.pyx's `fused_sum`); a and b are overwritten.
    The blocks are split over the threads; each is computed alike whatever the split."""
    spec = plan.spec
    (na, nb, nj), sa, ca, sb, cb, so = _contraction(plan, a, b)
    L = plan.L[plan.taxes[0]]
    blocks = a.shape[2]
    geometry = (L, blocks, a.shape[0] * a.shape[1], b.shape[0] * b.shape[1],
                column_plan(L, True, spec.dtype), spec.groups, na, nb, nj, sa, ca, sb, cb, so)
    threads = _parallel.for_macs(workers, na * nb * nj * spec.groups * plan.freqs)
    _fft.fused_sum(*_flat(plan, a, b, out), *geometry, 0, blocks,
                   _parallel.threads(threads, blocks))
