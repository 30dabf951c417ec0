"""Separable convolution (section 9.8): a rank-one kernel runs as one 1-D pass per axis.

A kernel slice w[k, c] that is an outer product fd o fh o fw costs kd + kh + kw multiply-adds per
output instead of kd * kh * kw (src/_separable.pyx). Whether a kernel is separable depends on its
values, not on the shapes in the spec, so the chooser asks `supports_weights(spec, op, w)` once it
has the kernel: each (k, c) slice is factored and the kernel is accepted when every slice's
relative residual ||w[k, c] - fd o fh o fw|| / ||w[k, c]|| is at most RANK_ONE_TOLERANCE -- tight
enough that the factoring is never the visible error under the contract's tolerance (1e-9 in
float64, 2e-4 in float32). The factoring is the cross approximation through each slice's largest
entry (one pass over the kernel, exact for rank-one slices, so a general kernel is turned down in
microseconds); where it misses the tolerance narrowly, the SVD of the slice (HOSVD and the
higher-order power method in 3-D) decides. The kernel gradient is a general kernel: nothing
separable to exploit there.

The same machinery takes several terms per slice (`Decomposition.truncated(w, rank)`), which
`fastconv.low_rank_conv` uses, and explicit factors (`fastconv.separable_conv`).
"""
import math

import numpy as np

from .. import _aligned, _config, _finite, _separable
from .._registry import NotSupportedError

NAME = "separable"
# The passes multiply by one factor at a time: near the dtype's maximum the first pass can
# overflow where the textbook sum does not; the registry checks every result (_finite). (They
# also skip the padding, whose zeros times an Inf or NaN weight are NaN in the textbook sum; but
# such a kernel is refused, `supports_weights`.)
NONFINITE = {"forward": _finite.CHECK_RESULT, "grad_input": _finite.CHECK_RESULT}

# Largest relative residual per (k, c) slice accepted as rank one; float64 is kept far below the
# contract's 1e-9 so that the factorisation is never the visible error.
RANK_ONE_TOLERANCE = {"float32": 1e-5, "float64": 1e-10}
CROSS_SLACK = 4                # the SVD decides where the cross misses by < this * sqrt(size)
POWER_ITERATIONS = 50          # higher-order power method (3-D slices), stops early on convergence
BLOCK_BYTES = 256 * 2**10      # output rows per block when several terms accumulate into them
SLAB_BYTES = 4 * 2**20         # depth-combined input rows per block (3-D kernels)
ITEMS_PER_THREAD = 8
MEMO_ELEMENTS = 2**20          # kernels up to this size are remembered between check and call
# Cost model, fitted (least squares on relative error, one thread) to 16 problems x 2 operations
# x 2 dtypes on the 2-core development machine (baseline SSE2 build; images 64^2 to 2048^2 with
# kernels 3 to 63, depthwise, dense 16 and 64 channels, 3-D): the fit is within 0.8-1.1x of
# the measured time on all of them. The 1-D passes run at MADDS_PER_S per thread plus ROW_S per
# row pass; strided problems run slower (scattered phases, fewer paired taps); the input and the
# result are streamed mostly under the arithmetic; the call and the rank-one check cost a fixed
# overhead plus a little per kernel slice.
MADDS_PER_S = {"float32": 13.5e9, "float64": 6.9e9}
ROW_S = 18e-9
STRIDED_SLOWDOWN = {"forward": 1.3, "grad_input": 1.8}
PARALLEL_EFFICIENCY = 0.5      # each thread beyond the first adds this much of one (measured
                               # 1.4-1.6x on 2 threads: the development VM's cores are not free)
BYTES_PER_S = 50e9
OVERHEAD_S = 30e-6
PER_SLICE_S = 50e-9


# --- factoring a kernel ------------------------------------------------------------------

def _nontrivial(kernel_size):
    return [axis for axis, k in enumerate(kernel_size) if k > 1]


def _best_rank_one_3d(t):
    """Batched best rank-one approximation of (B, p, q, r) tensors: HOSVD start, then the
    higher-order power method. Returns unit vectors a, b, c and the weights lam."""
    B, p, q, r = t.shape
    vecs = []
    for axis, size in enumerate((p, q, r)):
        unfolded = np.moveaxis(t, axis + 1, 1).reshape(B, size, -1)
        u = np.linalg.svd(unfolded, full_matrices=False)[0]
        vecs.append(u[:, :, 0])
    a, b, c = vecs
    lam = np.einsum("bijk,bi,bj,bk->b", t, a, b, c)
    for _ in range(POWER_ITERATIONS):
        a = _unit(np.einsum("bijk,bj,bk->bi", t, b, c))
        b = _unit(np.einsum("bijk,bi,bk->bj", t, a, c))
        c = _unit(np.einsum("bijk,bi,bj->bk", t, a, b))
        new = np.einsum("bijk,bi,bj,bk->b", t, a, b, c)
        converged = np.all(np.abs(new - lam) <= 1e-15 * np.maximum(np.abs(new), 1e-300))
        lam = new
        if converged:
            break
    return a, b, c, lam


def _unit(v):
    norm = np.linalg.norm(v, axis=-1, keepdims=True)
    return np.divide(v, norm, out=np.zeros_like(v), where=norm > 0)


def _terms(m, rank):
    """Up to `rank` rank-one terms of each (B, *sizes) slice: a list per axis of (B, R, size)."""
    sizes = m.shape[1:]
    if len(sizes) == 2:
        u, s, vt = np.linalg.svd(m, full_matrices=False)
        R = min(rank, s.shape[1])
        root = np.sqrt(s[:, :R])
        return [np.swapaxes(u[:, :, :R], 1, 2) * root[:, :, None], vt[:, :R, :] * root[:, :, None]]
    factors = [[], [], []]
    residual = m.copy()
    p, q, r = sizes
    for _ in range(min(rank, p * q * r)):       # greedy deflation
        a, b, c, lam = _best_rank_one_3d(residual)
        root = np.cbrt(np.abs(lam))
        a, b, c = a * (np.sign(lam) * root)[:, None], b * root[:, None], c * root[:, None]
        residual -= np.einsum("bi,bj,bk->bijk", a, b, c)
        for axis, f in enumerate((a, b, c)):
            factors[axis].append(f)
    return [np.stack(f, axis=1) for f in factors]


class Decomposition:
    """w[k, c] ~= sum_j fd[k, c, j] o fh[k, c, j] o fw[k, c, j], with its residuals.

    `factors` are three float64 arrays (K, C/groups, R, k_axis), one per lifted axis, a factor of
    length 1 being exactly 1; `residual` and `norm` are ||w[k, c] - approximation||_F and
    ||w[k, c]||_F per slice (K, C/groups), the residual computed from the factors themselves.
    """

    def __init__(self, w, factors, residual=None, norm=None):
        self.factors = [np.ascontiguousarray(f) for f in factors]
        self.terms = factors[0].shape[2]
        if residual is None:
            approx = self.factors[0][..., :, None, None] * self.factors[1][..., None, :, None]
            approx = (approx * self.factors[2][..., None, None, :]).sum(axis=2)
            residual = np.sqrt(np.sum((w - approx) ** 2, axis=(2, 3, 4)))
            norm = np.sqrt(np.sum(w ** 2, axis=(2, 3, 4)))
        self.residual, self.norm = residual, norm

    @classmethod
    def truncated(cls, w, rank):
        """`rank` terms per slice: truncated SVD of 2-D slices, greedy deflation of 3-D ones by
        their best rank-one term (HOSVD start, higher-order power method)."""
        w = np.asarray(w, dtype=np.float64)
        K, Cg, *kernel = w.shape
        axes = _nontrivial(kernel)
        m = w.reshape((K * Cg,) + tuple(kernel[a] for a in axes))
        if len(axes) <= 1:                  # one axis: the slice itself is its only factor
            parts = [m[:, None, :]] if axes else []
        else:
            parts = _terms(m, rank)
            for axis, part in zip(axes, parts):         # keep the kernel's exact zeros exact
                others = tuple(a + 1 for a in range(len(axes)) if axes[a] != axis)
                zero = np.all(m == 0, axis=others)
                part[np.broadcast_to(zero[:, None, :], part.shape)] = 0
        R = parts[0].shape[1] if parts else 1
        factors = [(parts[axes.index(axis)] if axis in axes else np.ones((K * Cg, R, 1)))
                   .reshape(K, Cg, R, size) for axis, size in enumerate(kernel)]
        return cls(w, factors)

    @classmethod
    def cross(cls, w):
        """One term per slice from the fibres through the slice's largest entry p:
        w ~= w[:, j, l] o w[i, :, l] o w[i, j, :] / p^2 (the cross, or skeleton, approximation).

        Exact for a rank-one slice (up to rounding), zeros included, and near-optimal otherwise
        (in 2-D its entrywise error is at most twice the second singular value); it costs one
        pass over the kernel, so a kernel that is not separable is turned down at once.
        """
        w = np.ascontiguousarray(w, dtype=np.float64)
        K, Cg, *kernel = w.shape
        factors = [np.empty((K * Cg, size)) for size in kernel]
        residual, norm = np.empty(K * Cg), np.empty(K * Cg)
        _separable.cross_factors(w.reshape(K * Cg, *kernel), *factors, residual, norm)
        return cls(w, [f.reshape(K, Cg, 1, size) for f, size in zip(factors, kernel)],
                   residual.reshape(K, Cg), norm.reshape(K, Cg))

    @property
    def relative_residual(self):
        """Per (k, c) slice: ||w[k, c] - approximation|| / ||w[k, c]|| (0 for a zero slice)."""
        return np.divide(self.residual, self.norm, out=np.zeros_like(self.residual),
                         where=self.norm > 0)

    def factors_as(self, dtype):
        return [np.ascontiguousarray(f, dtype=dtype).reshape(-1) for f in self.factors]


_memo = (None, None)      # (copy of the last kernel checked, its (Decomposition, reason))


def _rank_one(spec, w):
    """(Decomposition, reason): reason is "" when every slice is rank one within the tolerance.

    The cross approximation decides at the cost of one pass over the kernel; only where it misses
    the tolerance by a margin it could owe to its own sub-optimality does the SVD (or HOSVD) decide.
    The last answer is remembered by value (a copy of the kernel), so the chooser's check and the
    call that follows factor once, and a changed kernel never matches.
    """
    global _memo
    last, answer = _memo
    if (last is not None and last.shape == w.shape and last.dtype == w.dtype
            and _same_values(last, w)):
        return answer
    answer = _check_rank_one(spec, w)
    if w.size <= MEMO_ELEMENTS:
        _memo = (np.array(w, copy=True), answer)
    return answer


def _same_values(last, w):
    """The memo's kernel and `w` hold the same values. A small kernel is compared as bytes (0.3
    against 4 us for np.array_equal on a 3x3 kernel: "auto" asks on every call); bytes are
    stricter only on -0.0 against 0.0, which then decomposes again, to the same answer."""
    if w.size <= 1024:
        return last.tobytes() == np.ascontiguousarray(w).tobytes()
    return np.array_equal(last, w)


def _check_rank_one(spec, w):
    if w.size == 0:
        return Decomposition.cross(w), ""
    if not np.all(np.isfinite(w)):
        return None, "the kernel has NaN or Inf values"
    tol = RANK_ONE_TOLERANCE[spec.dtype.name]
    slack = CROSS_SLACK * math.sqrt(math.prod(w.shape[2:])) * tol
    dec = Decomposition.cross(w[:1])            # a general kernel fails on its first slices
    if np.max(dec.relative_residual) <= slack:
        dec = Decomposition.cross(w)
    rel = dec.relative_residual
    if tol < np.max(rel) <= slack:
        dec = Decomposition.truncated(w, 1)
        rel = dec.relative_residual
    worst = np.unravel_index(np.argmax(rel), rel.shape)
    if rel[worst] > tol:
        return dec, (f"kernel is not rank one (relative residual {rel[worst]:.2e} > {tol:g} on "
                     f"slice (k, c) = {tuple(int(i) for i in worst)})")
    return dec, ""


# --- the interface ---------------------------------------------------------------------------

class _Plan:
    """Row blocks, threads and workspace of one problem, operation and number of terms.

    The blocks never change a result (every element is computed by the same operations whatever
    the block), so they are chosen for the cache, the thread count and the workspace limit only.
    """

    def __init__(self, spec, op, terms=1):
        (id_, ih, iw), (od, oh, ow) = spec.input_size, spec.output_size
        kd, kh, _ = spec.kernel_size
        (_, sh, sw), (_, dh, _) = spec.stride, spec.dilation
        item = spec.dtype.itemsize
        Cg, Kg = spec.in_channels // spec.groups, spec.out_channels // spec.groups
        if op == "forward":
            lines, row_len, out_len = oh, iw, ow
            items = spec.batch * spec.out_channels * od
            accumulated = Cg * terms
            self.slab_rows = (lambda r: min(ih, (r - 1) * sh + (kh - 1) * dh + 1)) if kd > 1 \
                else (lambda r: 0)
        else:
            lines, row_len, out_len = ih, ow, iw
            items = spec.batch * spec.in_channels * id_
            accumulated = Kg * terms
            self.slab_rows = (lambda r: min(oh, (r - 1 + (kh - 1) * dh) // sh + 2)) if kd > 1 \
                else (lambda r: 0)
        rows = lines
        if accumulated > 1:
            rows = min(rows, max(1, BLOCK_BYTES // (max(out_len, 1) * item)))
        while rows > 1 and self.slab_rows(rows) * row_len * item > SLAB_BYTES:
            rows = -(-rows // 2)
        threads = _config.get_num_threads()
        wanted_blocks = -(-ITEMS_PER_THREAD * threads // max(items, 1))
        rows = max(1, min(rows, -(-lines // wanted_blocks)))
        phases = iw + sw if sw > 1 else 0
        limit = _config.get_workspace_limit() // item
        while rows > 1 and row_len * (1 + self.slab_rows(rows)) + phases > limit:
            rows = -(-rows // 2)
        self.rows = rows
        self.stride = row_len * (1 + self.slab_rows(rows)) + phases
        self.threads = max(1, min(threads, limit // max(self.stride, 1)))   # empty rows: 0
        self.fits = self.stride <= limit
        self.work_elements = self.threads * self.stride
        self.blocks = -(-lines // rows)
        self.items = items * self.blocks


def supports(spec, op):
    if op == "grad_kernel":
        return False, ("the kernel gradient is a general kernel, not a separable one: nothing to "
                       "separate")
    if len(_nontrivial(spec.kernel_size)) < 2:
        return False, ("the kernel has fewer than two axes longer than 1: nothing to separate "
                       "(a single 1-D pass is the direct method)")
    plan = _Plan(spec, op)
    if not plan.fits:
        return False, (f"one row and its slab ({plan.stride * spec.dtype.itemsize} bytes) exceed "
                       f"the workspace limit of {_config.get_workspace_limit()} bytes")
    return True, ""


def supports_weights(spec, op, w):
    """Whether this kernel's values are separable: every (k, c) slice rank one within tolerance."""
    _, reason = _rank_one(spec, w)
    return not reason, reason


def workspace(spec, op):
    return _Plan(spec, op).work_elements * spec.dtype.itemsize


def _work(spec, op, terms=1):
    """(multiply-adds, row passes) of the 1-D passes, taps in range counted as if all were."""
    (id_, ih, iw), (od, oh, ow) = spec.input_size, spec.output_size
    kd, kh, kw = spec.kernel_size
    sd, sh, _ = spec.stride
    plan = _Plan(spec, op, terms)
    pairs = spec.out_channels * (spec.in_channels // spec.groups) * terms * spec.batch
    if op == "forward":
        depth = od * plan.blocks * plan.slab_rows(plan.rows) * iw * kd if kd > 1 else 0
        height = od * oh * iw * kh if kh > 1 else 0
        rows = od * oh
        width = rows * ow * kw
    else:       # only the rows some output reaches get a width pass
        depth = id_ * plan.blocks * plan.slab_rows(plan.rows) * ow * -(-kd // sd) if kd > 1 else 0
        height = id_ * ih * ow * -(-kh // sh) if kh > 1 else 0
        rows = id_ * ih
        width = rows * min(1, kd / sd) * min(1, kh / sh) * ow * kw
    return pairs * (depth + height + width), pairs * rows


def multiply_adds(spec, op, terms=1):
    """Multiply-adds of the 1-D passes (taps in range counted as if all were)."""
    return _work(spec, op, terms)[0]


def cost(spec, op, terms=1):
    """The 1-D passes at a fitted rate plus a fixed cost per row pass, the traffic of reading the
    input and writing the result, and the factoring of the kernel."""
    if op == "grad_kernel":
        return math.inf
    plan = _Plan(spec, op, terms)
    # For the machine's cores (as the other models), not the thread setting: the choice must not
    # change with set_num_threads; only the workspace limit and the work items bound the threads.
    fitting = max(1, _config.get_workspace_limit() // spec.dtype.itemsize // max(plan.stride, 1))
    threads = 1 + PARALLEL_EFFICIENCY * (min(_config.model_threads(spec, plan.items), fitting) - 1)
    madds, rows = _work(spec, op, terms)
    if max(spec.stride) > 1:
        madds *= STRIDED_SLOWDOWN[op]
    passes = (madds / MADDS_PER_S[spec.dtype.name] + rows * ROW_S) / threads
    traffic = (math.prod(spec.x_shape) + math.prod(spec.y_shape)) * spec.dtype.itemsize
    slices = spec.out_channels * (spec.in_channels // spec.groups)
    return passes + traffic / BYTES_PER_S + OVERHEAD_S + PER_SLICE_S * slices


def run_forward(spec, x, factors, terms):
    """y for lifted x and factors (three flat arrays of (K, C/groups, terms, k_axis), fd/fh == 1
    where kd/kh == 1)."""
    return _passes(spec, "forward", spec.y_shape, x, factors, terms)


def run_grad_input(spec, gy, factors, terms):
    return _passes(spec, "grad_input", spec.x_shape, gy, factors, terms)


def _passes(spec, op, shape, a, factors, terms):
    plan = _Plan(spec, op, terms)
    result = _aligned.empty(shape, spec.dtype)
    getattr(_separable, op)(spec, a.reshape(-1), *factors, result.reshape(-1),
                            _aligned.empty(plan.work_elements, spec.dtype), terms, plan.rows,
                            plan.stride, plan.threads)
    return result


def _checked_factors(spec, w):
    dec, reason = _rank_one(spec, w)
    if reason:
        raise NotSupportedError(f"algorithm 'separable' does not support this problem: {reason}")
    return dec.factors_as(spec.dtype)


def forward(spec, x, w):
    return run_forward(spec, x, _checked_factors(spec, w), 1)


def grad_input(spec, gy, w):
    return run_grad_input(spec, gy, _checked_factors(spec, w), 1)


def grad_kernel(spec, x, gy):
    raise NotSupportedError("algorithm 'separable' does not support the kernel gradient: "
                            + supports(spec, "grad_kernel")[1])
