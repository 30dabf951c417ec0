"""The fft cost model: predicted seconds of a plan (see _plan.Plan), from counted work.

Seconds per unit of each term of `terms()`, one thread, least-squares fitted on the 2-core
AVX-512 Xeon of the benchmark machine (tests/test_fft.py checks the choices "auto" must make
with it). The transforms and the product are memory-bound there, so a point costs about as much
in copies and cache misses as in arithmetic. This module reads a plan's fields and imports no
other part of the algorithm.
"""
import math

COST = {
    "float32": {"fft": 0.03e-9, "points": 2.3e-9, "gemm": 1 / 70e9, "product": 1 / 19e9,
                "bytes": 0.1e-9, "passes": 42e-6, "call": 70e-6},
    "float64": {"fft": 0.02e-9, "points": 3.6e-9, "gemm": 1 / 35e9, "product": 1 / 12e9,
                "bytes": 0.1e-9, "passes": 40e-6, "call": 50e-6},
}
PARALLEL_TERMS = ("fft", "points", "gemm", "product", "bytes")
ITEM_FREQS = 64                   # complex frequencies of one product item (FC_BLOCK x FC_SUPER)
CACHE_BYTES = 2 * 2**20           # the kernel spectra one item reads stay in a core's cache below
THREAD_GAIN = 0.75                # speed-up of each extra thread (memory-bound work)
GEMM_FLOPS_PER_S = 100e9          # the kernel taps' DFT by matrix product (matrix_along)...
KERNEL_FFT_S_PER_LOG = 0.3e-9     # ... or by FFT, per frequency and log2(L), with its copies
SPATIAL = 3


def by_gemm(k, L):
    """Whether a DFT between k taps and L frequencies is cheaper as a product with the DFT
    matrix than as an FFT of the zero-filled taps (measured: up to k ~ 30 at L = 512)."""
    return 8 * k / GEMM_FLOPS_PER_S <= KERNEL_FFT_S_PER_LOG * math.log2(max(L, 2))


def _transform(plan, count, extents, inverse):
    """(real points x log2 L, real points) of the pruned transforms of `count` signals."""
    sizes = list(plan.F) if inverse else list(extents)
    work = points = 0.0
    for ax in (plan.taxes if inverse else plan.taxes[::-1]):
        L = plan.L[ax]
        lines = count * math.prod(sizes[j] for j in range(SPATIAL) if j != ax)
        n = (1 if ax == plan.taxes[-1] else 2) * lines * L
        work += n * math.log2(max(L, 2))
        points += n
        sizes[ax] = extents[ax] if inverse else plan.F[ax]
    return work, points


def terms(plan):
    """The quantities the cost model weighs (see COST)."""
    s = plan.spec
    N, K, C = s.batch, s.out_channels, s.in_channels
    x_ext = [min(a.L, (a.per_tile - 1) * a.s + a.e) for a in plan.axes]
    y_ext = [a.per_tile for a in plan.axes]
    ins, outs = {"forward": ((C, x_ext), (K, y_ext)), "grad_input": ((K, y_ext), (C, x_ext)),
                 "grad_kernel": ((C, x_ext), (K, y_ext))}[plan.op]
    t_in = _transform(plan, N * ins[0], ins[1], False)
    t_out = _transform(plan, N * outs[0], outs[1], plan.op != "grad_kernel")
    c_kernel = K * (C // s.groups)
    gemm = fft = points = 0.0
    sizes = [a.k for a in plan.axes]        # the kernel's transform, axis by axis
    for ax in plan.taxes[::-1]:
        a = plan.axes[ax]
        lines = c_kernel * math.prod(sizes[j] for j in range(SPATIAL) if j != ax)
        if plan.gemm[ax]:
            gemm += 8 * lines * plan.F[ax] * a.k
        else:
            n = (1 if ax == plan.taxes[-1] else 2) * lines * a.L
            fft += n * math.log2(a.L)
            points += n
        sizes[ax] = plan.F[ax]
    spectra = plan.freqs * c_kernel * 2 * plan.item     # the kernel's spectra, bytes
    # A product item (one sample, a block of frequencies) reads the kernel's spectra of its
    # block; past a core's cache every sample streams them from memory again (and the kernel
    # gradient writes them back): ResNet's 512-channel layers ran 3x over the model without it.
    streamed = (plan.tiles * N * spectra * (2 if plan.op == "grad_kernel" else 1)
                if c_kernel * ITEM_FREQS * 2 * plan.item > CACHE_BYTES else 0)
    return {"fft": plan.tiles * (t_in[0] + t_out[0]) + fft,
            "points": plan.tiles * (t_in[1] + t_out[1]) + points,
            "gemm": gemm,
            "product": 8.0 * plan.freqs * plan.tiles * N * c_kernel,
            "bytes": plan.freqs * plan.tiles * N * (C + K) * 2 * plan.item + spectra + streamed,
            "passes": plan.tiles * -(-N // max(plan.chunk, 1)),
            "call": 1.0}


def seconds(plan, threads):
    """Predicted seconds of the plan's call on `threads` threads."""
    weights = COST[plan.spec.dtype.name]
    parallel = 1 + THREAD_GAIN * (max(threads, 1) - 1)
    return sum(weights[name] * value / (parallel if name in PARALLEL_TERMS else 1)
               for name, value in terms(plan).items())
