"""Depthwise convolution (one input channel per group) along flattened planes.

Arrays arrive lifted to three spatial dimensions, C-contiguous and flattened: x (N, C, D, H, W),
w (K, D', H', W') with K = C * m (m outputs per input channel), y / gy (N, K, ...). The plan
(fastconv/_algorithms/depthwise.py) gives, per axis, the phase grid: a stride s splits the zero-
padded input into s phases (every s-th position), each a grid of L positions, so that tap t of
output o reads phase a_t at o + c_t. Laid out flat (phases, then depth, height, width of the
grid), each tap is one offset off[t] into the buffer and the outputs one run of positions
q = (o_d * L_h + o_h) * L_w + o_w; the columns past the output's width are computed and dropped.

  forward      item (n, c): pack x[n, c] into phases; per output k of c: taps; unpack the run.
  grad_input   item (n, c): per phase of gx, the taps of that phase over gy zero-padded (the
               full correlation by the flipped kernel), summed over the m outputs of c; the
               phases are interleaved back into gx[n, c].
  grad_kernel  item c: per sample n in order, pack x[n, c] and gy[n, k] (zeros in the dropped
               columns) and add the dot products of every tap.
Items run in parallel on OpenMP threads, each with its own scratch; every sum's order depends on
the problem alone, never on the thread count. The channel-blocked layout of 1-D and 2-D layers
with a multiplier of 1 is at the end of the file.
"""
from cython cimport floating
from cython.parallel cimport prange
from libc.string cimport memcpy, memset

import numpy as np

from fastconv import _aligned

from _depthwise_grid cimport (Plane2, clear_grids, stage_flat, stage_grid, unstage,
    wg_init)
from _geometry cimport ceil_div
from _parallel cimport thread_slice


cdef extern from "_depthwise_kernels.h":
    int dw_level() noexcept nogil
    Py_ssize_t fastconv_vector_bytes(int level) noexcept nogil
    void dw_init() noexcept nogil
    const int DW_SLACK
    void dw_taps_f32 "dw_kernels.dw_taps_f32"(const float* src, const Py_ssize_t* off, const float* w, Py_ssize_t taps,
                     float* y, Py_ssize_t nq, int accumulate) noexcept nogil
    void dw_taps_f64 "dw_kernels.dw_taps_f64"(const double* src, const Py_ssize_t* off, const double* w, Py_ssize_t taps,
                     double* y, Py_ssize_t nq, int accumulate) noexcept nogil
    void dw_dots_f32 "dw_kernels.dw_dots_f32"(const float* gy, const float* src, const Py_ssize_t* off, Py_ssize_t taps,
                     Py_ssize_t nq, float* g) noexcept nogil
    void dw_dots_f64 "dw_kernels.dw_dots_f64"(const double* gy, const double* src, const Py_ssize_t* off,
                     Py_ssize_t taps, Py_ssize_t nq, double* g) noexcept nogil
    void dwb_taps_f32 "dw_kernels.dwb_taps_f32"(const float* src, const Py_ssize_t* off,
                     const float* w, Py_ssize_t taps, float* y, Py_ssize_t n,
                     Py_ssize_t step) noexcept nogil
    void dwb_taps_f64 "dw_kernels.dwb_taps_f64"(const double* src, const Py_ssize_t* off,
                     const double* w, Py_ssize_t taps, double* y, Py_ssize_t n,
                     Py_ssize_t step) noexcept nogil
    void dwb_dots_f32 "dw_kernels.dwb_dots_f32"(const float* gy, const float* src,
                     const Py_ssize_t* off, Py_ssize_t taps, Py_ssize_t n, Py_ssize_t step,
                     float* g) noexcept nogil
    void dwb_dots_f64 "dw_kernels.dwb_dots_f64"(const double* gy, const double* src,
                     const Py_ssize_t* off, Py_ssize_t taps, Py_ssize_t n, Py_ssize_t step,
                     double* g) noexcept nogil

    void dwb_rows_f32 "dw_kernels.dwb_rows_f32"(const float* src, const Py_ssize_t* off,
                     Py_ssize_t rows, int kw, const float* w, float* y, Py_ssize_t n) noexcept nogil
    void dwb_rows_f64 "dw_kernels.dwb_rows_f64"(const double* src, const Py_ssize_t* off,
                     Py_ssize_t rows, int kw, const double* w, double* y,
                     Py_ssize_t n) noexcept nogil
    void dwb_scatter_f32 "dw_kernels.dwb_scatter_f32"(const float* gy, const Py_ssize_t* off,
                     const float* w, Py_ssize_t taps, float* grid, Py_ssize_t n,
                     Py_ssize_t step) noexcept nogil
    void dwb_scatter_f64 "dw_kernels.dwb_scatter_f64"(const double* gy, const Py_ssize_t* off,
                     const double* w, Py_ssize_t taps, double* grid, Py_ssize_t n,
                     Py_ssize_t step) noexcept nogil

# Calls reach the kernels of this process's instruction-set level through the table that this
# fills, once, before any kernel runs (src/_cpu_level.h).
dw_init()
wg_init()


cdef struct Grid:
    Py_ssize_t n[3]     # the plane's size (input, or gy for grad_input's padded copy)
    Py_ssize_t s[3]     # phases (the stride), 1 for a plain zero-padded copy
    Py_ssize_t p[3]     # zeros before the first element (position e holds element e - p)
    Py_ssize_t L[3]     # positions of each phase
    Py_ssize_t phase    # elements of one phase: L[0] * L[1] * L[2]


cdef Grid make_grid(object n, object s, object p, object L):
    cdef Grid g
    cdef int i
    for i in range(3):
        g.n[i], g.s[i], g.p[i], g.L[i] = n[i], s[i], p[i], L[i]
    g.phase = g.L[0] * g.L[1] * g.L[2]
    return g


cdef inline Py_ssize_t clip(Py_ssize_t v, Py_ssize_t lo, Py_ssize_t hi) noexcept nogil:
    return lo if v < lo else (hi if v > hi else v)


cdef inline void row_range(const Grid* g, Py_ssize_t a, Py_ssize_t* lo, Py_ssize_t* hi) noexcept nogil:
    """The positions j of phase a along the width whose element j * s + a - p lies in the plane."""
    lo[0] = clip(ceil_div(g.p[2] - a, g.s[2]), 0, g.L[2])
    hi[0] = clip(ceil_div(g.n[2] + g.p[2] - a, g.s[2]), lo[0], g.L[2])


cdef void pack(const floating* src, floating* dst, const Grid* g) noexcept nogil:
    """dst (phases, L0, L1, L2) from one plane src (n0, n1, n2), zeros outside it."""
    cdef Py_ssize_t a0, a1, a2, j0, j1, j, i0, i1, lo, hi, s2 = g.s[2]
    cdef floating* row
    cdef const floating* srow
    for a0 in range(g.s[0]):
        for a1 in range(g.s[1]):
            for a2 in range(s2):
                row_range(g, a2, &lo, &hi)
                for j0 in range(g.L[0]):
                    i0 = j0 * g.s[0] + a0 - g.p[0]
                    for j1 in range(g.L[1]):
                        i1 = j1 * g.s[1] + a1 - g.p[1]
                        row = dst + (((a0 * g.s[1] + a1) * s2 + a2) * g.L[0] + j0) * g.L[1] * g.L[2] \
                            + j1 * g.L[2]
                        if i0 < 0 or i0 >= g.n[0] or i1 < 0 or i1 >= g.n[1] or hi == lo:
                            for j in range(g.L[2]):
                                row[j] = 0
                            continue
                        srow = src + (i0 * g.n[1] + i1) * g.n[2] + a2 - g.p[2]
                        for j in range(lo):
                            row[j] = 0
                        if s2 == 1:
                            for j in range(lo, hi):
                                row[j] = srow[j]
                        else:
                            for j in range(lo, hi):
                                row[j] = srow[j * s2]
                        for j in range(hi, g.L[2]):
                            row[j] = 0


cdef void unpack(const floating* run, floating* dst, const Py_ssize_t* o, const Py_ssize_t* L) noexcept nogil:
    """dst (o0, o1, o2) from the run of positions (o0, o1) * L[1:] + o2 of a grid L."""
    cdef Py_ssize_t r0, r1, j
    cdef floating* drow
    cdef const floating* rrow
    for r0 in range(o[0]):
        for r1 in range(o[1]):
            drow = dst + (r0 * o[1] + r1) * o[2]
            rrow = run + (r0 * L[1] + r1) * L[2]
            for j in range(o[2]):
                drow[j] = rrow[j]


cdef void spread(const floating* run, floating* gx, const Grid* g, const Py_ssize_t* a,
                 const Py_ssize_t* L) noexcept nogil:
    """gx[j * s + a - p] = run[j] for the positions j of phase a (a grid of pitch L) that fall in
    the plane gx (n0, n1, n2)."""
    cdef Py_ssize_t j0, j1, j, i0, i1, lo, hi
    cdef floating* grow
    cdef const floating* rrow
    row_range(g, a[2], &lo, &hi)
    for j0 in range(g.L[0]):
        i0 = j0 * g.s[0] + a[0] - g.p[0]
        if i0 < 0 or i0 >= g.n[0]:
            continue
        for j1 in range(g.L[1]):
            i1 = j1 * g.s[1] + a[1] - g.p[1]
            if i1 < 0 or i1 >= g.n[1]:
                continue
            grow = gx + (i0 * g.n[1] + i1) * g.n[2] + a[2] - g.p[2]
            rrow = run + (j0 * L[1] + j1) * L[2]
            for j in range(lo, hi):
                grow[j * g.s[2]] = rrow[j]


cdef inline void taps(const floating* src, const Py_ssize_t* off, const floating* w, Py_ssize_t n,
                      floating* y, Py_ssize_t nq, int accumulate) noexcept nogil:
    if floating is float:
        dw_taps_f32(src, off, w, n, y, nq, accumulate)
    else:
        dw_taps_f64(src, off, w, n, y, nq, accumulate)


cdef inline void dots(const floating* gy, const floating* src, const Py_ssize_t* off,
                      Py_ssize_t n, Py_ssize_t nq, floating* g) noexcept nogil:
    if floating is float:
        dw_dots_f32(gy, src, off, n, nq, g)
    else:
        dw_dots_f64(gy, src, off, n, nq, g)


cdef inline Py_ssize_t per_thread(Py_ssize_t planes, Py_ssize_t run,
                                  Py_ssize_t tail) noexcept nogil:
    """Elements of one thread's scratch: the packed planes, DW_SLACK zeros that the last block
    reads past them, the run, and `tail` (the slack the last block writes past the run, or the
    kernel gradient's partial sums)."""
    return planes + DW_SLACK + run + tail


cdef inline Py_ssize_t whole_run(Py_ssize_t nq) noexcept nogil:
    """The kernel gradient's run: nq summed to a multiple of 16 positions, the widest vector."""
    return (nq + 15) // 16 * 16


def scratch_elements(str op, Py_ssize_t planes, Py_ssize_t nq, Py_ssize_t taps):
    """Elements of one thread's scratch for `op`: `planes` packed elements, a run of nq."""
    if op == "grad_kernel":
        return per_thread(planes, whole_run(nq), taps)
    return per_thread(planes, nq, DW_SLACK)


def kernel_level():
    """The kernel set this process runs: 2 x86-64-v4, 1 x86-64-v3, 0 the build's own target."""
    return dw_level()


def vector_bytes():
    """Bytes of one vector of the kernel set this process runs (the build's own width at 0)."""
    return fastconv_vector_bytes(dw_level())


def forward(const floating[::1] x, const floating[::1] w, floating[::1] y, floating[::1] scratch,
            const Py_ssize_t[::1] off, Py_ssize_t N, Py_ssize_t C, Py_ssize_t m, in_size,
            stride, pad, L, out_size, Py_ssize_t nq, int threads):
    """y = x * w (see the module docstring); scratch holds `threads` x (packed input + run)."""
    cdef Grid g = make_grid(in_size, stride, pad, L)
    cdef Py_ssize_t o[3]
    o[0], o[1], o[2] = out_size
    cdef Py_ssize_t T = off.shape[0], in_vol = g.n[0] * g.n[1] * g.n[2]
    cdef Py_ssize_t out_vol = o[0] * o[1] * o[2], packed = g.s[0] * g.s[1] * g.s[2] * g.phase
    cdef Py_ssize_t step = per_thread(packed, nq, DW_SLACK), item, n, c, j, k
    cdef floating* buf
    cdef floating* run
    if N * C == 0 or T == 0 or out_vol == 0:
        return
    for j in range(threads):        # what the last block reads past the packed planes
        memset(&scratch[0] + j * step + packed, 0, DW_SLACK * sizeof(floating))
    for item in prange(N * C, nogil=True, schedule="static", num_threads=threads):
        n = item // C
        c = item % C
        buf = thread_slice(&scratch[0], step)
        run = buf + packed + DW_SLACK
        pack(&x[0] + item * in_vol, buf, &g)
        for j in range(m):
            k = c * m + j
            taps(buf, &off[0], &w[0] + k * T, T, run, nq, 0)
            unpack(run, &y[0] + (n * C * m + k) * out_vol, o, g.L)


def grad_input(const floating[::1] gy, const floating[::1] wt, floating[::1] gx,
               floating[::1] scratch, const Py_ssize_t[::1] off, const Py_ssize_t[::1] phase_ids,
               const Py_ssize_t[::1] starts,
               Py_ssize_t N, Py_ssize_t C, Py_ssize_t m, in_size, stride, pad, Lq, out_size,
               gy_pad, Lg, Py_ssize_t nq, int threads):
    """gx = the adjoint of forward for gy (see the module docstring). wt (K, T) and off hold the
    taps by phase: those of phase phase_ids[i] are starts[i]..starts[i+1]-1; off indexes gy's padded copy (grid
    Lg, gy_pad zeros before it); the runs are on the grid Lg and hold phase positions j < Lq."""
    cdef Grid g = make_grid(in_size, stride, pad, Lq)      # gx and its phases
    cdef Grid h = make_grid(out_size, (1, 1, 1), gy_pad, Lg)  # gy's zero-padded copy
    cdef Py_ssize_t T = off.shape[0], in_vol = g.n[0] * g.n[1] * g.n[2]
    cdef Py_ssize_t out_vol = h.n[0] * h.n[1] * h.n[2], phases = phase_ids.shape[0], i
    cdef Py_ssize_t step = per_thread(m * h.phase, nq, DW_SLACK), item, n, c, j, k, ph
    cdef Py_ssize_t a[3]
    cdef floating* buf
    cdef floating* run
    if N * C == 0 or in_vol == 0:
        return
    for j in range(threads):        # what the last block reads past the packed planes
        memset(&scratch[0] + j * step + m * h.phase, 0, DW_SLACK * sizeof(floating))
    for item in prange(N * C, nogil=True, schedule="static", num_threads=threads):
        n = item // C
        c = item % C
        buf = thread_slice(&scratch[0], step)
        run = buf + m * h.phase + DW_SLACK
        memset(&gx[0] + item * in_vol, 0, in_vol * sizeof(floating))
        if out_vol == 0:
            continue
        for j in range(m):
            pack(&gy[0] + (n * C * m + c * m + j) * out_vol, buf + j * h.phase, &h)
        for i in range(phases):
            ph = phase_ids[i]
            for j in range(m):
                k = c * m + j
                taps(buf + j * h.phase, &off[0] + starts[i], &wt[0] + k * T + starts[i],
                     starts[i + 1] - starts[i], run, nq, j > 0)
            a[0] = ph // (g.s[1] * g.s[2])
            a[1] = ph // g.s[2] % g.s[1]
            a[2] = ph % g.s[2]
            spread(run, &gx[0] + item * in_vol, &g, a, h.L)


def grad_kernel(const floating[::1] x, const floating[::1] gy, floating[::1] gw,
                floating[::1] scratch, const Py_ssize_t[::1] off, Py_ssize_t N, Py_ssize_t C,
                Py_ssize_t m, in_size, stride, pad, L, out_size, Py_ssize_t nq, int threads):
    """gw = sum over samples of x (packed as forward packs it) against gy (a run on the same
    grid, zeros in the dropped columns): per input channel, the samples in order. The run is
    summed to whole_run(nq) positions (zeros past nq, against the packed planes' zeroed slack),
    so that no scalar tail follows the vectors: a 7x7 plane's run of 61 had 13."""
    cdef Grid g = make_grid(in_size, stride, pad, L)
    cdef Py_ssize_t o[3]
    o[0], o[1], o[2] = out_size
    cdef Py_ssize_t T = off.shape[0], in_vol = g.n[0] * g.n[1] * g.n[2]
    cdef Py_ssize_t out_vol = o[0] * o[1] * o[2], packed = g.s[0] * g.s[1] * g.s[2] * g.phase
    cdef Py_ssize_t whole = whole_run(nq)
    cdef Py_ssize_t step = per_thread(packed, whole, T), c, n, j, k, t, r0, r1
    cdef floating* buf
    cdef floating* run
    cdef floating* part
    cdef floating* dst
    cdef const floating* grow
    if C * m * T == 0:
        return
    for j in range(threads):        # what the whole run reads past the packed planes
        memset(&scratch[0] + j * step + packed, 0, DW_SLACK * sizeof(floating))
    for c in prange(C, nogil=True, schedule="static", num_threads=threads):
        buf = thread_slice(&scratch[0], step)
        run = buf + packed + DW_SLACK
        part = run + whole
        for j in range(m):
            memset(&gw[0] + (c * m + j) * T, 0, T * sizeof(floating))
        if out_vol == 0:
            continue
        memset(run, 0, whole * sizeof(floating))   # the dropped columns and the tail stay zero
        for n in range(N):
            pack(&x[0] + (n * C + c) * in_vol, buf, &g)
            for j in range(m):
                k = c * m + j
                grow = &gy[0] + (n * C * m + k) * out_vol
                for r0 in range(o[0]):
                    for r1 in range(o[1]):
                        for t in range(o[2]):
                            run[(r0 * g.L[1] + r1) * g.L[2] + t] = grow[(r0 * o[1] + r1) * o[2] + t]
                dots(run, buf, &off[0], T, whole, part)
                dst = &gw[0] + k * T
                for t in range(T):
                    dst[t] = dst[t] + part[t]


# Channel-blocked, for 1-D and 2-D problems with a multiplier of 1: `lanes` channels (one vector
# of the kernel set) side by side at every position, so that small planes (MobileNet's 14x14 and
# 7x7) waste no lanes on short rows and pay the per-plane work once per `lanes` planes. Item
# (sample, block of channels), or a block of channels summing the samples in order (grad_kernel):
#   stage     the block's planes, flat, into channel-last scratch (wg_stage's register
#             transposes), then row by row into a zero-padded grid (Hp x Wp x lanes)
#   taps      per output row, dwb_taps over the grid (stride: the step, dilation: the offsets);
#             at stride 1 along rows with rows of 3, 5 or 7 taps one apart, dwb_rows (a kernel
#             row's weights in registers, each input loaded once a kernel row: ConvNeXt's 7x7
#             at batch 8 0.71 -> 0.55 ms forward, AVX-512; the same order of sums, the same bits)
#   unstage   the output rows back to the planes (wg_unstage)
# grad_input at stride 1 is the same pass over gy with the kernel rotated by 180 degrees (the
# caller's `flip`, padding (k - 1) * d - p); at a larger stride gy's rows are scattered into a
# zeroed grid by dwb_scatter (the adjoint of the taps) and its inner part is unstaged into gx.
# grad_kernel takes dwb_dots of gy's rows against the grid. Lanes past the last channel hold
# zeros and are never stored.

cdef struct Blocked:
    Plane2 p
    Py_ssize_t oh, ow, sh, sw          # the output rows and columns, the stride (the step)
    Py_ssize_t T, in_vol, out_vol, gsize, blocks, step     # step: one thread's scratch


cdef inline Py_ssize_t blocked_step(Py_ssize_t staged, Py_ssize_t grid, Py_ssize_t run,
                                    Py_ssize_t taps, Py_ssize_t lanes) noexcept nogil:
    """One thread's scratch: the staged planes, the grid, the run (or gy's rows), the weights
    (or the kernel gradient's sums), `lanes` values each."""
    return lanes * (staged + grid + run + taps)


cdef Blocked make_blocked(plane, grid, out_size, stride, Py_ssize_t T, Py_ssize_t C,
                          Py_ssize_t lanes) except *:
    cdef Blocked b
    b.p.h, b.p.w, b.p.ph, b.p.pw = plane
    b.p.gh, b.p.gw = grid
    b.oh, b.ow = out_size
    b.sh, b.sw = stride
    b.T, b.in_vol, b.out_vol = T, b.p.h * b.p.w, b.oh * b.ow
    b.gsize, b.blocks = b.p.gh * b.p.gw, (C + lanes - 1) // lanes
    b.step = blocked_step(b.in_vol, b.gsize, b.out_vol, T, lanes)
    return b


cdef bint lane_weights(const floating* w, Py_ssize_t c0, Py_ssize_t count, Py_ssize_t T,
                       bint flip, Py_ssize_t lanes, floating* wv) noexcept nogil:
    """wv[t * lanes + v] = w[c0 + v][t] (or [T - 1 - t] with flip), zeros past count; whether
    every weight copied is finite (v - v summed: NaN where one is not)."""
    cdef Py_ssize_t v, t
    cdef floating a, bad = 0
    for t in range(T):
        for v in range(lanes):
            a = w[(c0 + v) * T + (T - 1 - t if flip else t)] if v < count else 0
            bad += a - a
            wv[t * lanes + v] = a
    return bad == bad


cdef int row_taps(const Py_ssize_t[::1] off, Py_ssize_t sw):
    """7, 5 or 3 where the taps lie in rows of that many one position apart and the stride along
    a row is 1 (dwb_rows keeps such a row of weights in registers), else 0."""
    cdef Py_ssize_t T = off.shape[0], t
    cdef int kw
    if sw != 1:
        return 0
    for kw in (7, 5, 3):
        if T % kw == 0 and all(off[t] == off[t - t % kw] + t % kw for t in range(T)):
            return kw
    return 0


cdef void taps_rows(const floating* grid, const Py_ssize_t* off, const floating* wv, Py_ssize_t T,
                    floating* run, Py_ssize_t oh, Py_ssize_t ow, Py_ssize_t sh, Py_ssize_t sw,
                    const Plane2* p, Py_ssize_t lanes, int kw, bint skip) noexcept nogil:
    """The output rows: dwb_rows (kw taps a kernel row) or dwb_taps. With `skip` (a finite
    kernel), dwb_rows runs only the kernel rows that reach the plane's rows of the grid, the
    others reading its zeros only (a 7x7 on 14x14 planes: 12% of the multiply-adds); the sums
    keep their order, less terms that are +-0 (a finite weight times a zero)."""
    cdef Py_ssize_t r, gw = p.gw, kh = T // kw if kw else 0, k0, k1
    cdef Py_ssize_t lo = max(p.ph, 0), hi = min(p.ph + p.h, p.gh)   # the grid rows with data
    for r in range(oh):
        if kw:
            k0, k1 = 0, kh
            if skip:    # runs k of kw taps whose grid row r * sh + off[k * kw] // gw is in [lo, hi)
                while k0 < kh and r * sh + off[k0 * kw] // gw < lo:
                    k0 += 1
                while k1 > k0 and r * sh + off[(k1 - 1) * kw] // gw >= hi:
                    k1 -= 1
                if k1 == k0:
                    memset(run + r * ow * lanes, 0, ow * lanes * sizeof(floating))
                    continue
            if floating is float:
                dwb_rows_f32(grid + r * sh * gw * lanes, off + k0 * kw, k1 - k0, kw,
                             wv + k0 * kw * lanes, run + r * ow * lanes, ow)
            else:
                dwb_rows_f64(grid + r * sh * gw * lanes, off + k0 * kw, k1 - k0, kw,
                             wv + k0 * kw * lanes, run + r * ow * lanes, ow)
        elif floating is float:
            dwb_taps_f32(grid + r * sh * gw * lanes, off, wv, T, run + r * ow * lanes, ow, sw)
        else:
            dwb_taps_f64(grid + r * sh * gw * lanes, off, wv, T, run + r * ow * lanes, ow, sw)


def blocked_scratch_elements(Py_ssize_t staged, Py_ssize_t grid, Py_ssize_t run,
                             Py_ssize_t taps, Py_ssize_t lanes):
    """Elements of one thread's scratch (blocked_step)."""
    return blocked_step(staged, grid, run, taps, lanes)


def blocked_pass(const floating[::1] a, const floating[::1] w, floating[::1] out,
                 floating[::1] scratch, const Py_ssize_t[::1] off, Py_ssize_t N, Py_ssize_t C,
                 plane, grid, out_size, stride, bint flip, Py_ssize_t lanes, int threads):
    """out = the taps of w (flipped with `flip`) over a's planes staged into the grid:
    forward (a = x), or grad_input at stride 1 (a = gy, flip). plane = (h, w, ph, pw) of a's
    planes in the grid (gh, gw); out_size = (oh, ow); stride = (sh, sw)."""
    cdef Blocked b = make_blocked(plane, grid, out_size, stride, off.shape[0], C, lanes)
    cdef Py_ssize_t item, n, c0, count, k
    cdef floating* flat
    if N * C == 0 or b.out_vol == 0:
        return
    cdef int kw = row_taps(off, b.sw)
    cdef floating* wts
    clear_grids(&scratch[0], b.step, lanes * b.in_vol, &b.p, lanes, threads)
    # with several samples, every block's weights in lanes once a call, not once an item (their
    # scalar gather was ~5% of ConvNeXt's 7x7 at batch 8; at batch 1 the region cost more)
    cdef bint hoisted = N > 1, skip
    cdef floating[::1] lw
    cdef int bad = 0
    cdef int* badp = &bad       # written only with 1, by any thread (a pointer: not privatized)
    if hoisted:
        lw = _aligned.empty(max(1, b.blocks * b.T * lanes),
                            np.float32 if floating is float else np.float64)
        for k in prange(b.blocks, nogil=True, schedule="static", num_threads=threads):
            if not lane_weights(&w[0], k * lanes, min(lanes, C - k * lanes), b.T, flip, lanes,
                                &lw[0] + k * b.T * lanes):
                badp[0] = 1
    for item in prange(N * b.blocks, nogil=True, schedule="static", num_threads=threads):
        n = item // b.blocks
        c0 = item % b.blocks * lanes
        count = min(lanes, C - c0)
        flat = thread_slice(&scratch[0], b.step)
        if b.T == 0 or b.in_vol == 0:
            memset(&out[0] + (n * C + c0) * b.out_vol, 0, count * b.out_vol * sizeof(floating))
            continue
        stage_grid(&a[0] + (n * C + c0) * b.in_vol, count, &b.p, flat, flat + lanes * b.in_vol,
                   lanes)
        if hoisted:
            wts = &lw[0] + c0 * b.T
            skip = bad == 0
        else:
            wts = flat + lanes * (b.in_vol + b.gsize + b.out_vol)
            skip = lane_weights(&w[0], c0, count, b.T, flip, lanes, wts)
        taps_rows(flat + lanes * b.in_vol, &off[0], wts, b.T,
                  flat + lanes * (b.in_vol + b.gsize), b.oh, b.ow, b.sh, b.sw, &b.p, lanes, kw,
                  skip)
        unstage(flat + lanes * (b.in_vol + b.gsize), b.ow, &out[0] + (n * C + c0) * b.out_vol,
                count, b.oh, b.ow, lanes)


def blocked_grad_kernel(const floating[::1] x, const floating[::1] gy, floating[::1] gw,
                        floating[::1] scratch, const Py_ssize_t[::1] off, Py_ssize_t N,
                        Py_ssize_t C, plane, grid, out_size, stride, Py_ssize_t lanes,
                        int threads):
    """gw[c][t] = sum over samples (in order), output rows and columns of gy[c] times the grid
    of x[c] at the tap: item = a block of channels."""
    cdef Blocked b = make_blocked(plane, grid, out_size, stride, off.shape[0], C, lanes)
    cdef Py_ssize_t k, n, c0, count, v, t, r
    cdef floating* flat
    cdef floating* rows
    cdef floating* acc
    if C * b.T == 0:
        return
    clear_grids(&scratch[0], b.step, lanes * b.in_vol, &b.p, lanes, threads)
    for k in prange(b.blocks, nogil=True, schedule="static", num_threads=threads):
        c0 = k * lanes
        count = min(lanes, C - c0)
        flat = thread_slice(&scratch[0], b.step)
        rows = flat + lanes * (b.in_vol + b.gsize)
        acc = rows + lanes * b.out_vol
        memset(acc, 0, b.T * lanes * sizeof(floating))
        for n in range(N if b.out_vol > 0 and b.in_vol > 0 else 0):
            stage_grid(&x[0] + (n * C + c0) * b.in_vol, count, &b.p, flat,
                       flat + lanes * b.in_vol, lanes)
            stage_flat(&gy[0] + (n * C + c0) * b.out_vol, count, b.out_vol, rows, lanes)
            for r in range(b.oh):
                if floating is float:
                    dwb_dots_f32(rows + r * b.ow * lanes,
                                 flat + lanes * (b.in_vol + r * b.sh * b.p.gw), &off[0], b.T,
                                 b.ow, b.sw, acc)
                else:
                    dwb_dots_f64(rows + r * b.ow * lanes,
                                 flat + lanes * (b.in_vol + r * b.sh * b.p.gw), &off[0], b.T,
                                 b.ow, b.sw, acc)
        for v in range(count):
            for t in range(b.T):
                gw[(c0 + v) * b.T + t] = acc[t * lanes + v]


def blocked_scatter(const floating[::1] gy, const floating[::1] w, floating[::1] gx,
                    floating[::1] scratch, const Py_ssize_t[::1] off, Py_ssize_t N, Py_ssize_t C,
                    plane, grid, out_size, stride, Py_ssize_t lanes, int threads):
    """grad_input at any stride: gy's rows (out_size) scattered by the taps into a zeroed grid
    whose (ph, pw) corner holds gx's plane (h, w)."""
    cdef Blocked b = make_blocked(plane, grid, out_size, stride, off.shape[0], C, lanes)
    cdef Py_ssize_t item, n, c0, count, r
    cdef floating* rows
    cdef floating* g
    cdef floating* wv
    if N * C == 0 or b.in_vol == 0:
        return
    for item in prange(N * b.blocks, nogil=True, schedule="static", num_threads=threads):
        n = item // b.blocks
        c0 = item % b.blocks * lanes
        count = min(lanes, C - c0)
        g = thread_slice(&scratch[0], b.step) + lanes * b.in_vol
        rows = g + lanes * b.gsize
        wv = rows + lanes * b.out_vol
        memset(g, 0, b.gsize * lanes * sizeof(floating))
        if b.T > 0 and b.out_vol > 0:
            lane_weights(&w[0], c0, count, b.T, False, lanes, wv)
            stage_flat(&gy[0] + (n * C + c0) * b.out_vol, count, b.out_vol, rows, lanes)
            for r in range(b.oh):
                if floating is float:
                    dwb_scatter_f32(rows + r * b.ow * lanes, &off[0], wv, b.T,
                                    g + r * b.sh * b.p.gw * lanes, b.ow, b.sw)
                else:
                    dwb_scatter_f64(rows + r * b.ow * lanes, &off[0], wv, b.T,
                                    g + r * b.sh * b.p.gw * lanes, b.ow, b.sw)
        unstage(g + (b.p.ph * b.p.gw + b.p.pw) * lanes, b.p.gw,
                &gx[0] + (n * C + c0) * b.in_vol, count, b.p.h, b.p.w, lanes)
