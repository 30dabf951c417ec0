"""Locally connected (unshared) convolution, eq. 9.9: every output position has its own kernel.

Arrays arrive lifted to three spatial dimensions, C-contiguous and flattened: x (N, C, D, H, W),
w (P, K, R) -- P output positions, each with its own K x R kernel, R = C * k_vol --, and
y / gy (N, K, P). The geometry is the one Geom of _geometry.pxd (groups is always 1).

The input (or its gradient) is kept batch-last, xt (C, D*H*W, N): then row (c, tap) of a
position's patch matrix is N contiguous values, copied (or added back) as one vector. Per output
position p and chunk of m samples, with X_p (R x m) the patch -- row (c, t) the values tap t of
channel c reads, zero in the padding -- and G_p (K x m) the output gradient at p:
  forward      Y_p  = W_p X_p          work items (position, chunk), one GEMM each;
  grad_kernel  GW_p = G_p X_p^T        work items positions, the chunks added in order;
  grad_input   GX_p = W_p^T G_p        a block of positions at a time into a buffer, then added
                                       onto gxt in position order, parallel over (channel,
                                       sample range): each thread owns whole rows of gxt.
With a map kernel_of (position -> kernel) several positions share a kernel -- tiled convolution,
eq. 9.10 --; the kernel gradient's work items are then the kernels, each summing its positions
in order.
Each thread packs into its own scratch and calls the single-threaded BLAS (the caller holds the
BLAS at one thread). Chunk and block sizes come from the problem alone, so no result depends on
the thread count.
"""
from cython cimport floating
from cython.parallel cimport prange
from libc.string cimport memcpy, memset

from _blas cimport gemm
from _geometry cimport Geom, geom_from_spec
from _parallel cimport data_or_null, thread_slice

cdef enum:
    TRANSPOSE_BLOCK = 64    # rows (channel, position) per work item of the batch-last transposes
    SCATTER_LANES = 16      # samples per work item of the grad_input scatter


cdef void batch_transpose(const floating* src, floating* dst, Py_ssize_t N, Py_ssize_t rows,
                          bint to_batch_last, int num_threads) noexcept nogil:
    """Between (N, C, S) and batch-last (C, S, N), rows = C * in_vol: to_batch_last, xt[j, n] =
    x[n, j] (src x, dst xt); else x[n, j] = xt[j, n] (src xt, dst x)."""
    cdef Py_ssize_t blocks = (rows + TRANSPOSE_BLOCK - 1) // TRANSPOSE_BLOCK, item, j0, j1, j, n
    for item in prange(blocks, nogil=True, schedule="static", num_threads=num_threads):
        j0 = item * TRANSPOSE_BLOCK
        j1 = min(j0 + TRANSPOSE_BLOCK, rows)
        for n in range(N):
            if to_batch_last:
                for j in range(j0, j1):
                    dst[j * N + n] = src[n * rows + j]
            else:
                for j in range(j0, j1):
                    dst[n * rows + j] = src[j * N + n]


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


cdef void pack_patch(const floating* xt, floating* patch, const Geom* g, const Py_ssize_t* off,
                     Py_ssize_t n0, Py_ssize_t n1) noexcept nogil:
    """patch[c * k_vol + t, n - n0] = xt[c, off[t], n] (0 where off[t] < 0), samples n0..n1."""
    cdef Py_ssize_t m = n1 - n0, c, t
    cdef const floating* xc
    cdef floating* row = patch
    for c in range(g.C):
        xc = xt + c * g.in_vol * g.N + n0
        for t in range(g.k_vol):
            if off[t] >= 0:
                memcpy(row, xc + off[t] * g.N, m * sizeof(floating))
            else:
                memset(row, 0, m * sizeof(floating))
            row = row + m


cdef inline void gather_gy(const floating* gy, floating* G, const Geom* g, Py_ssize_t p,
                           Py_ssize_t n0, Py_ssize_t n1) noexcept nogil:
    """G[k, n - n0] = gy[n, k, p]: the output gradient at one position as a K x m matrix."""
    cdef Py_ssize_t m = n1 - n0, n, k
    for n in range(n0, n1):
        for k in range(g.K):
            G[k * m + n - n0] = gy[(n * g.K + k) * g.P + p]


cdef void forward_items(const Geom* g, const floating* xt, const floating* w,
                        const Py_ssize_t* kernel_of, floating* y, floating* work,
                        Py_ssize_t* offsets, Py_ssize_t nb, int num_threads) noexcept nogil:
    cdef Py_ssize_t R = g.C * g.k_vol, chunks = (g.N + nb - 1) // nb
    cdef Py_ssize_t per_thread = nb * (R + g.K), item, p, n0, n1, m, n, k
    cdef floating* patch
    cdef floating* out
    cdef Py_ssize_t* off
    for item in prange(g.P * chunks, nogil=True, schedule="static", num_threads=num_threads):
        p = item // chunks
        n0 = (item - p * chunks) * nb
        n1 = min(n0 + nb, g.N)
        m = n1 - n0
        patch = thread_slice(work, per_thread)
        out = patch + nb * R
        off = thread_slice(offsets, g.k_vol)
        tap_offsets(g, p, off)
        pack_patch(xt, patch, g, off, n0, n1)
        gemm(False, False, g.K, m, R, <floating>1, w + kernel_of[p] * g.K * R, R, patch, m,
             <floating>0, out, m)
        for n in range(n0, n1):
            for k in range(g.K):
                y[(n * g.K + k) * g.P + p] = out[k * m + n - n0]


cdef void grad_kernel_sets(const Geom* g, const floating* xt, const floating* gy, floating* gw,
                           const Py_ssize_t* order, const Py_ssize_t* starts, Py_ssize_t kernels,
                           floating* work, Py_ssize_t* offsets, Py_ssize_t nb,
                           int num_threads) noexcept nogil:
    """gw[j] = sum of G_p X_p^T over the positions order[starts[j]:starts[j + 1]] that use
    kernel j, in that order, each over the chunks of the batch in order."""
    cdef Py_ssize_t R = g.C * g.k_vol, per_thread = nb * (R + g.K), j, i, p, n0, n1
    cdef floating* patch
    cdef floating* G
    cdef Py_ssize_t* off
    for j in prange(kernels, nogil=True, schedule="static", num_threads=num_threads):
        patch = thread_slice(work, per_thread)
        G = patch + nb * R
        off = thread_slice(offsets, g.k_vol)
        if starts[j] == starts[j + 1]:
            memset(gw + j * g.K * R, 0, g.K * R * sizeof(floating))
        for i in range(starts[j], starts[j + 1]):
            p = order[i]
            tap_offsets(g, p, off)
            n0 = 0
            while n0 < g.N:
                n1 = min(n0 + nb, g.N)
                pack_patch(xt, patch, g, off, n0, n1)
                gather_gy(gy, G, g, p, n0, n1)
                gemm(False, True, g.K, R, n1 - n0, <floating>1, G, n1 - n0, patch, n1 - n0,
                     <floating>(0 if i == starts[j] and n0 == 0 else 1), gw + j * g.K * R, R)
                n0 = n1


cdef void grad_input_blocks(const Geom* g, const floating* gy, const floating* w,
                            const Py_ssize_t* kernel_of, floating* gxt, floating* work,
                            floating* block_buf, Py_ssize_t* offsets,
                            Py_ssize_t nb, Py_ssize_t block, int num_threads) noexcept nogil:
    """gxt (zeroed, batch-last) += the adjoint of the patches, positions p0..p1 of a chunk at a
    time. The GEMM loop leaves each position's tap offsets in offsets[(p - p0) * k_vol] for the
    scatter."""
    cdef Py_ssize_t R = g.C * g.k_vol, n0 = 0, n1, m, lanes, p0, p1, p, q, item, c, t, i, a, b
    cdef floating* G
    cdef floating* dst
    cdef const floating* src
    cdef const Py_ssize_t* off
    while n0 < g.N:
        n1 = min(n0 + nb, g.N)
        m = n1 - n0
        lanes = (m + SCATTER_LANES - 1) // SCATTER_LANES
        p0 = 0
        while p0 < g.P:
            p1 = min(p0 + block, g.P)
            for p in prange(p0, p1, nogil=True, schedule="static", num_threads=num_threads):
                G = thread_slice(work, nb * g.K)
                tap_offsets(g, p, offsets + (p - p0) * g.k_vol)
                gather_gy(gy, G, g, p, n0, n1)
                gemm(True, False, R, m, g.K, <floating>1, w + kernel_of[p] * g.K * R, R, G, m,
                     <floating>0, block_buf + (p - p0) * R * m, m)
            for item in prange(g.C * lanes, nogil=True, schedule="static",
                               num_threads=num_threads):
                c = item // lanes
                a = (item - c * lanes) * SCATTER_LANES
                b = min(a + SCATTER_LANES, m)
                for q in range(p0, p1):
                    off = offsets + (q - p0) * g.k_vol
                    for t in range(g.k_vol):
                        if off[t] >= 0:
                            dst = gxt + (c * g.in_vol + off[t]) * g.N + n0
                            src = block_buf + ((q - p0) * R + c * g.k_vol + t) * m
                            for i in range(a, b):
                                dst[i] += src[i]
            p0 = p1
        n0 = n1


def forward(spec, const floating[::1] x, const floating[::1] w,
            const Py_ssize_t[::1] kernel_of, floating[::1] y, floating[::1] xt,
            floating[::1] work, Py_ssize_t[::1] offsets, Py_ssize_t nb, int num_threads):
    """y = locally_connected(x, w), position p using kernel w[kernel_of[p]]. `xt` holds x's
    N * C * in_vol values batch-last, `work` num_threads * nb * (R + K), `offsets`
    num_threads * k_vol."""
    cdef Geom g = geom_from_spec(spec)
    cdef floating* workp = data_or_null(work)
    with nogil:
        batch_transpose(&x[0], &xt[0], g.N, g.C * g.in_vol, True, num_threads)
        forward_items(&g, &xt[0], &w[0], &kernel_of[0], &y[0], workp, &offsets[0], nb,
                      num_threads)


def grad_kernel(spec, const floating[::1] x, const floating[::1] gy, floating[::1] gw,
                const Py_ssize_t[::1] order, const Py_ssize_t[::1] starts, floating[::1] xt,
                floating[::1] work, Py_ssize_t[::1] offsets, Py_ssize_t nb, int num_threads):
    """gw[j] = sum over the batch and the positions order[starts[j]:starts[j + 1]] of
    G_p X_p^T. Scratch as for `forward`."""
    cdef Geom g = geom_from_spec(spec)
    cdef floating* workp = data_or_null(work)
    with nogil:
        batch_transpose(&x[0], &xt[0], g.N, g.C * g.in_vol, True, num_threads)
        grad_kernel_sets(&g, &xt[0], &gy[0], &gw[0], &order[0], &starts[0], starts.shape[0] - 1,
                         workp, &offsets[0], nb, num_threads)


def grad_input(spec, const floating[::1] gy, const floating[::1] w,
               const Py_ssize_t[::1] kernel_of, floating[::1] gx, floating[::1] gxt,
               floating[::1] work, floating[::1] block_buf, Py_ssize_t[::1] offsets,
               Py_ssize_t nb, Py_ssize_t block, int num_threads):
    """gx = the adjoint of forward applied to gy. `gxt` (N * C * in_vol values) must be zero;
    `work` holds num_threads * nb * K values, `block_buf` block * nb * R, `offsets` block * k_vol.
    """
    cdef Geom g = geom_from_spec(spec)
    cdef floating* workp = data_or_null(work)
    cdef floating* blockp = data_or_null(block_buf)
    with nogil:
        grad_input_blocks(&g, &gy[0], &w[0], &kernel_of[0], &gxt[0], workp, blockp,
                          &offsets[0], nb, block, num_threads)
        batch_transpose(&gxt[0], &gx[0], g.N, g.C * g.in_vol, False, num_threads)
