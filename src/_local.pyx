"""Locally connected (unshared) convolution, eq. 9.9: every output position has its own kernel.

Arrays arrive lifted to three spatial dimensions, C-contiguous and flattened: x (N, C, D, H, W),
w (P, K, R) -- P output positions, each with its own K x R kernel, R = C * k_vol --, and
y / gy (N, K, P). The geometry is the one Geom of _geometry.pxd (groups is always 1).

Per output position p and chunk of nb samples, with X_p (nb x R) the patch matrix -- row n holds
the input values that position p's taps read, zero in the padding -- and G_p (nb x K) the output
gradient at p:
  forward      Y_p  = X_p W_p^T      work items (position, chunk), one GEMM each;
  grad_kernel  GW_p = G_p^T X_p      work items positions, the chunks added in order;
  grad_input   GX_p = G_p W_p        a block of positions at a time, then a scatter-add onto gx
                                     parallel over (sample, channel): each thread owns whole
                                     gx[n, c] slices and adds the positions in order.
Each thread packs into its own scratch and calls the single-threaded BLAS (the caller holds the
BLAS at one thread). Chunk and block sizes come from the problem alone, so no result depends on
the thread count.
"""
from cython cimport floating
from cython.parallel cimport prange

from _blas cimport gemm
from _geometry cimport Geom, geom_from_spec
from _openmp cimport omp_get_thread_num


cdef void tap_offsets(const Geom* g, Py_ssize_t p, Py_ssize_t* off) noexcept nogil:
    """off[t] = the offset within one input channel that tap t of output position p reads, or -1
    where the tap falls in the zero padding. The same for every sample and channel."""
    cdef Py_ssize_t o_d = p // (g.oh * g.ow), o_h = (p // g.ow) % g.oh, o_w = p % g.ow
    cdef Py_ssize_t z0 = o_d * g.sd - g.pd, y0 = o_h * g.sh - g.ph, x0 = o_w * g.sw - g.pw
    cdef Py_ssize_t a, b, e, t = 0, zi, yi, xi
    for a in range(g.kd):
        zi = z0 + a * g.dd
        for b in range(g.kh):
            yi = y0 + b * g.dh
            for e in range(g.kw):
                xi = x0 + e * g.dw
                if 0 <= zi < g.id and 0 <= yi < g.ih and 0 <= xi < g.iw:
                    off[t] = (zi * g.ih + yi) * g.iw + xi
                else:
                    off[t] = -1
                t = t + 1


cdef void pack_patch(const floating* x, floating* patch, const Geom* g, const Py_ssize_t* off,
                     Py_ssize_t n0, Py_ssize_t n1) noexcept nogil:
    """patch[n - n0, c * k_vol + t] = x[n, c, off[t]] (0 where off[t] < 0), samples n0..n1."""
    cdef Py_ssize_t n, c, t, o
    cdef const floating* xc
    cdef floating* row = patch
    for n in range(n0, n1):
        for c in range(g.C):
            xc = x + (n * g.C + c) * g.in_vol
            for t in range(g.k_vol):
                o = off[t]
                row[t] = xc[o] if o >= 0 else 0
            row = row + g.k_vol


cdef inline void scatter_row(floating* gxc, const floating* row, const Py_ssize_t* off,
                             Py_ssize_t k_vol) noexcept nogil:
    """gxc[off[t]] += row[t] for the taps inside the input: the adjoint of one row of pack_patch."""
    cdef Py_ssize_t t
    for t in range(k_vol):
        if off[t] >= 0:
            gxc[off[t]] += row[t]


cdef inline void gather_gy(const floating* gy, floating* G, const Geom* g, Py_ssize_t p,
                           Py_ssize_t n0, Py_ssize_t n1) noexcept nogil:
    """G[n - n0, k] = gy[n, k, p]: the output gradient at one position as an nb x K matrix."""
    cdef Py_ssize_t n, k
    for n in range(n0, n1):
        for k in range(g.K):
            G[(n - n0) * g.K + k] = gy[(n * g.K + k) * g.P + p]


cdef void forward_items(const Geom* g, const floating* x, const floating* w, floating* y,
                        floating* work, Py_ssize_t* offsets, Py_ssize_t nb,
                        int num_threads) noexcept nogil:
    cdef Py_ssize_t R = g.C * g.k_vol, chunks = (g.N + nb - 1) // nb
    cdef Py_ssize_t per_thread = nb * (R + g.K), item, p, n0, n1, n, k
    cdef floating* patch
    cdef floating* out
    cdef Py_ssize_t* off
    for item in prange(g.P * chunks, nogil=True, schedule="static", num_threads=num_threads):
        p = item // chunks
        n0 = (item - p * chunks) * nb
        n1 = min(n0 + nb, g.N)
        patch = work + omp_get_thread_num() * per_thread
        out = patch + nb * R
        off = offsets + omp_get_thread_num() * g.k_vol
        tap_offsets(g, p, off)
        pack_patch(x, patch, g, off, n0, n1)
        gemm(False, True, n1 - n0, g.K, R, <floating>1, patch, R, w + p * g.K * R, R,
             <floating>0, out, g.K)
        for n in range(n0, n1):
            for k in range(g.K):
                y[(n * g.K + k) * g.P + p] = out[(n - n0) * g.K + k]


cdef void grad_kernel_positions(const Geom* g, const floating* x, const floating* gy,
                                floating* gw, floating* work, Py_ssize_t* offsets, Py_ssize_t nb,
                                int num_threads) noexcept nogil:
    cdef Py_ssize_t R = g.C * g.k_vol, per_thread = nb * (R + g.K), p, n0, n1
    cdef floating* patch
    cdef floating* G
    cdef Py_ssize_t* off
    for p in prange(g.P, nogil=True, schedule="static", num_threads=num_threads):
        patch = work + omp_get_thread_num() * per_thread
        G = patch + nb * R
        off = offsets + omp_get_thread_num() * g.k_vol
        tap_offsets(g, p, off)
        n0 = 0
        while n0 < g.N:
            n1 = min(n0 + nb, g.N)
            pack_patch(x, patch, g, off, n0, n1)
            gather_gy(gy, G, g, p, n0, n1)
            gemm(True, False, g.K, R, n1 - n0, <floating>1, G, g.K, patch, R,
                 <floating>(0 if n0 == 0 else 1), gw + p * g.K * R, R)
            n0 = n1


cdef void grad_input_blocks(const Geom* g, const floating* gy, const floating* w, floating* gx,
                            floating* work, floating* block_buf, Py_ssize_t* offsets,
                            Py_ssize_t nb, Py_ssize_t block, int num_threads) noexcept nogil:
    """gx (zeroed) += the adjoint of the patches; positions p0..p1 of one chunk at a time.

    The first loop also leaves each position's tap offsets in offsets[(p - p0) * k_vol], which
    the scatter then reads."""
    cdef Py_ssize_t R = g.C * g.k_vol, n0 = 0, n1, m, p0, p1, p, q, item, n, c
    cdef floating* G
    while n0 < g.N:
        n1 = min(n0 + nb, g.N)
        m = n1 - n0
        p0 = 0
        while p0 < g.P:
            p1 = min(p0 + block, g.P)
            for p in prange(p0, p1, nogil=True, schedule="static", num_threads=num_threads):
                G = work + omp_get_thread_num() * nb * g.K
                tap_offsets(g, p, offsets + (p - p0) * g.k_vol)
                gather_gy(gy, G, g, p, n0, n1)
                gemm(False, False, m, R, g.K, <floating>1, G, g.K, w + p * g.K * R, R,
                     <floating>0, block_buf + (p - p0) * m * R, R)
            for item in prange(m * g.C, nogil=True, schedule="static", num_threads=num_threads):
                n = n0 + item // g.C
                c = item - (n - n0) * g.C
                for q in range(p0, p1):
                    scatter_row(gx + (n * g.C + c) * g.in_vol,
                                block_buf + ((q - p0) * m + n - n0) * R + c * g.k_vol,
                                offsets + (q - p0) * g.k_vol, g.k_vol)
            p0 = p1
        n0 = n1


cdef inline floating* data(floating[::1] a) noexcept:
    return &a[0] if a.shape[0] > 0 else NULL


def forward(spec, const floating[::1] x, const floating[::1] w, floating[::1] y,
            floating[::1] work, Py_ssize_t[::1] offsets, Py_ssize_t nb, int num_threads):
    """y = locally_connected(x, w); `work` holds num_threads * nb * (R + K) values, `offsets`
    num_threads * k_vol."""
    cdef Geom g = geom_from_spec(spec)
    cdef floating* workp = data(work)
    with nogil:
        forward_items(&g, &x[0], &w[0], &y[0], workp, &offsets[0], nb, num_threads)


def grad_kernel(spec, const floating[::1] x, const floating[::1] gy, floating[::1] gw,
                floating[::1] work, Py_ssize_t[::1] offsets, Py_ssize_t nb, int num_threads):
    """gw[p] = sum over the batch of G_p^T X_p; `work` holds num_threads * nb * (R + K) values,
    `offsets` num_threads * k_vol."""
    cdef Geom g = geom_from_spec(spec)
    cdef floating* workp = data(work)
    with nogil:
        grad_kernel_positions(&g, &x[0], &gy[0], &gw[0], workp, &offsets[0], nb, num_threads)


def grad_input(spec, const floating[::1] gy, const floating[::1] w, floating[::1] gx,
               floating[::1] work, floating[::1] block_buf, Py_ssize_t[::1] offsets,
               Py_ssize_t nb, Py_ssize_t block, int num_threads):
    """gx (zeroed by the caller) = the adjoint of forward applied to gy.

    `work` holds num_threads * nb * K values, `block_buf` block * nb * R, `offsets` block * k_vol.
    """
    cdef Geom g = geom_from_spec(spec)
    cdef floating* workp = data(work)
    cdef floating* blockp = data(block_buf)
    with nogil:
        grad_input_blocks(&g, &gy[0], &w[0], &gx[0], workp, blockp, &offsets[0], nb, block,
                          num_threads)
