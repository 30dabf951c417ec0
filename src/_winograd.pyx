"""Winograd convolution F(4x4, 3x3): forward (also the stride-1 input gradient) and kernel gradient.

A "plane" is one 2-D image of every channel: (sample, depth) of the lifted arrays, so the 3x3
kernels of 2-D problems and the 1x3x3 kernels of 3-D ones run the same code. Python maps each
plane of the result to the plane it reads (`src`, element offsets; -1: none, the depth is all
padding) and gives the plane's geometry in a Tiling. Output tiles are 4x4; tile (r, q) reads the
6x6 input window at rows 4r - off_h, columns 4q - off_w (zeros outside the input plane).

Work is cut into blocks of R x Cw tiles of one plane, a number fixed by the problem (never by the
thread count). Each OpenMP thread, for a block, in its own scratch (two buffers that stay in L2):
  stage      the input window, channel-last (wg_stage)           buf1 = X
  transform  V[xi] = B^T d B                                      buf2 = V  (36 x tiles x CP)
  GEMM       M[xi] = V[xi] @ U[xi] for the 36 positions xi        buf1 = M  (36 x tiles x KP)
             (single-threaded BLAS; the caller holds it at one thread)
  transform  Y = A^T M A, back to NCHW (wg_output, wg_unstage)    buf2 = Y
The kernel gradient transforms x tiles (V) and gy tiles (Mg = A gy A^T) and accumulates
dU[xi] += Mg[xi]^T V[xi] (KP x C); blocks are split into `parts` (fixed by the problem), each
summed into its own partial dU, and the partials are added in order. Nothing depends on the
thread count. The kernel transforms U = G g G^T and gw = G^T dU G (kernel_transform,
kernel_untransform) run in double here: in NumPy, products with an inner dimension of 9 took
longer than the convolution itself.
"""
from cython cimport floating
from cython.parallel cimport prange
from libc.string cimport memcpy, memset

from _blas cimport gemm
from _openmp cimport omp_get_thread_num

cdef extern from "_winograd_kernels.h":
    Py_ssize_t wg_vector_bytes() noexcept nogil
    int wg_level() noexcept nogil
    int wg_stage_float(const float* src, Py_ssize_t channels, Py_ssize_t cstride, Py_ssize_t H,
                       Py_ssize_t W, Py_ssize_t row0, Py_ssize_t col0, Py_ssize_t nrows,
                       Py_ssize_t ncols, float* dst, Py_ssize_t CP) noexcept nogil
    int wg_stage_double(const double* src, Py_ssize_t channels, Py_ssize_t cstride, Py_ssize_t H,
                        Py_ssize_t W, Py_ssize_t row0, Py_ssize_t col0, Py_ssize_t nrows,
                        Py_ssize_t ncols, double* dst, Py_ssize_t CP) noexcept nogil
    int wg_unstage_float(const float* Y, Py_ssize_t ycols, Py_ssize_t KP, float* dst,
                         Py_ssize_t channels, Py_ssize_t cstride, Py_ssize_t H, Py_ssize_t W,
                         Py_ssize_t row0, Py_ssize_t col0, Py_ssize_t nrows,
                         Py_ssize_t ncols) noexcept nogil
    int wg_unstage_double(const double* Y, Py_ssize_t ycols, Py_ssize_t KP, double* dst,
                          Py_ssize_t channels, Py_ssize_t cstride, Py_ssize_t H, Py_ssize_t W,
                          Py_ssize_t row0, Py_ssize_t col0, Py_ssize_t nrows,
                          Py_ssize_t ncols) noexcept nogil
    int wg_input_float(const float* X, Py_ssize_t xcols, Py_ssize_t CP, Py_ssize_t R,
                       Py_ssize_t Cw, float* V) noexcept nogil
    int wg_input_double(const double* X, Py_ssize_t xcols, Py_ssize_t CP, Py_ssize_t R,
                        Py_ssize_t Cw, double* V) noexcept nogil
    int wg_output_float(const float* M, Py_ssize_t KP, Py_ssize_t R, Py_ssize_t Cw, float* Y,
                        Py_ssize_t ycols) noexcept nogil
    int wg_output_double(const double* M, Py_ssize_t KP, Py_ssize_t R, Py_ssize_t Cw, double* Y,
                         Py_ssize_t ycols) noexcept nogil
    int wg_gy_float(const float* G, Py_ssize_t gcols, Py_ssize_t KP, Py_ssize_t R, Py_ssize_t Cw,
                    float* Mg) noexcept nogil
    int wg_gy_double(const double* G, Py_ssize_t gcols, Py_ssize_t KP, Py_ssize_t R,
                     Py_ssize_t Cw, double* Mg) noexcept nogil

cdef enum:
    POSITIONS = 36          # 6 x 6 transformed values per tile
    SUM_CHUNK = 4096        # values of the kernel gradient's final sum per work item


cdef struct Tiling:
    Py_ssize_t cin, cout, CP, KP        # channels read and written; both padded to the vector
    Py_ssize_t ih, iw, oh, ow           # plane sizes read and written
    Py_ssize_t off_h, off_w             # tile (r, q) reads from row 4r - off_h, col 4q - off_w
    Py_ssize_t in_cs, out_cs            # channel strides of the planes read and written
    Py_ssize_t th, tw, R, Cw            # tiles of the written plane; a block is R x Cw tiles
    Py_ssize_t rblocks, cblocks         # blocks per plane
    Py_ssize_t size1, size2, size3      # per-thread scratch buffers (elements)


cdef Tiling make_tiling(tuple t) except *:
    cdef Tiling tl
    (tl.cin, tl.cout, tl.CP, tl.KP, tl.ih, tl.iw, tl.oh, tl.ow, tl.off_h, tl.off_w, tl.in_cs,
     tl.out_cs, tl.R, tl.Cw, tl.size1, tl.size2, tl.size3) = t
    tl.th = (tl.oh + 3) // 4
    tl.tw = (tl.ow + 3) // 4
    tl.rblocks = (tl.th + tl.R - 1) // tl.R
    tl.cblocks = (tl.tw + tl.Cw - 1) // tl.Cw
    return tl


cdef inline void stage(const floating* src, Py_ssize_t channels, Py_ssize_t cstride,
                       Py_ssize_t H, Py_ssize_t W, Py_ssize_t row0, Py_ssize_t col0,
                       Py_ssize_t nrows, Py_ssize_t ncols, floating* dst,
                       Py_ssize_t CP) noexcept nogil:
    if floating is float:
        wg_stage_float(src, channels, cstride, H, W, row0, col0, nrows, ncols, dst, CP)
    else:
        wg_stage_double(src, channels, cstride, H, W, row0, col0, nrows, ncols, dst, CP)


cdef inline void input_tf(const floating* X, Py_ssize_t xcols, Py_ssize_t CP, Py_ssize_t R,
                          Py_ssize_t Cw, floating* V) noexcept nogil:
    if floating is float:
        wg_input_float(X, xcols, CP, R, Cw, V)
    else:
        wg_input_double(X, xcols, CP, R, Cw, V)


cdef inline void block_of(const Tiling* tl, Py_ssize_t b, Py_ssize_t* tr0, Py_ssize_t* tc0,
                          Py_ssize_t* nr, Py_ssize_t* nc) noexcept nogil:
    """Block b of a plane: first tile row and column, and its size in tiles."""
    tr0[0] = (b // tl.cblocks) * tl.R
    tc0[0] = (b % tl.cblocks) * tl.Cw
    nr[0] = min(tl.R, tl.th - tr0[0])
    nc[0] = min(tl.Cw, tl.tw - tc0[0])


cdef int forward_block(const Tiling* tl, const floating* xp, const floating* u, floating* yp,
                       Py_ssize_t b, floating* buf1, floating* buf2) noexcept nogil:
    """One block of the written plane yp from the plane xp; 1 if a value was not finite."""
    cdef Py_ssize_t tr0, tc0, nr, nc, tn, xi, k, r, r1, q1, bad
    cdef Py_ssize_t pad = 64 // sizeof(floating)     # WG_PLANE of _winograd_kernels.h
    block_of(tl, b, &tr0, &tc0, &nr, &nc)
    tn = nr * nc
    if xp == NULL:          # the plane read is all padding: zeros
        r1 = min(4 * (tr0 + nr), tl.oh)
        q1 = min(4 * (tc0 + nc), tl.ow)
        for k in range(tl.cout):
            for r in range(4 * tr0, r1):
                memset(yp + k * tl.out_cs + r * tl.ow + 4 * tc0, 0,
                       (q1 - 4 * tc0) * sizeof(floating))
        return 0
    stage(xp, tl.cin, tl.in_cs, tl.ih, tl.iw, 4 * tr0 - tl.off_h, 4 * tc0 - tl.off_w,
          4 * nr + 2, 4 * nc + 2, buf1, tl.CP)
    input_tf(buf1, 4 * nc + 2, tl.CP, nr, nc, buf2)
    for xi in range(POSITIONS):
        gemm(False, False, tn, tl.KP, tl.cin, <floating>1, buf2 + xi * (tn * tl.CP + pad), tl.CP,
             u + xi * tl.cin * tl.KP, tl.KP, <floating>0, buf1 + xi * (tn * tl.KP + pad), tl.KP)
    if floating is float:
        bad = wg_output_float(buf1, tl.KP, nr, nc, buf2, 4 * nc)
        wg_unstage_float(buf2, 4 * nc, tl.KP, yp, tl.cout, tl.out_cs, tl.oh, tl.ow, 4 * tr0,
                         4 * tc0, 4 * nr, 4 * nc)
    else:
        bad = wg_output_double(buf1, tl.KP, nr, nc, buf2, 4 * nc)
        wg_unstage_double(buf2, 4 * nc, tl.KP, yp, tl.cout, tl.out_cs, tl.oh, tl.ow, 4 * tr0,
                          4 * tc0, 4 * nr, 4 * nc)
    return bad


cdef void forward_items(const Tiling* tl, const floating* x, const floating* u, floating* y,
                        const Py_ssize_t* src, const Py_ssize_t* dst, Py_ssize_t planes,
                        floating* work, unsigned char* flags, int num_threads) noexcept nogil:
    cdef Py_ssize_t per_plane = tl.rblocks * tl.cblocks, item, p
    cdef floating* buf1
    for item in prange(planes * per_plane, nogil=True, schedule="static",
                       num_threads=num_threads):
        p = item // per_plane
        buf1 = work + omp_get_thread_num() * (tl.size1 + tl.size2)
        flags[item] = forward_block(tl, x + src[p] if src[p] >= 0 else NULL, u, y + dst[p],
                                    item - p * per_plane, buf1, buf1 + tl.size1)


cdef void grad_kernel_block(const Tiling* tl, const floating* xp, const floating* gp,
                            floating* part, bint first, Py_ssize_t b, floating* buf1,
                            floating* buf2, floating* buf3) noexcept nogil:
    """part[xi] (+)= Mg[xi]^T V[xi] for one block of tiles of the gy plane gp (= if first)."""
    cdef Py_ssize_t tr0, tc0, nr, nc, tn, xi
    cdef Py_ssize_t pad = 64 // sizeof(floating)     # WG_PLANE of _winograd_kernels.h
    block_of(tl, b, &tr0, &tc0, &nr, &nc)
    tn = nr * nc
    stage(xp, tl.cin, tl.in_cs, tl.ih, tl.iw, 4 * tr0 - tl.off_h, 4 * tc0 - tl.off_w,
          4 * nr + 2, 4 * nc + 2, buf1, tl.CP)
    input_tf(buf1, 4 * nc + 2, tl.CP, nr, nc, buf2)
    stage(gp, tl.cout, tl.out_cs, tl.oh, tl.ow, 4 * tr0, 4 * tc0, 4 * nr, 4 * nc, buf1, tl.KP)
    if floating is float:
        wg_gy_float(buf1, 4 * nc, tl.KP, nr, nc, buf3)
    else:
        wg_gy_double(buf1, 4 * nc, tl.KP, nr, nc, buf3)
    for xi in range(POSITIONS):
        gemm(True, False, tl.KP, tl.cin, tn, <floating>1, buf3 + xi * (tn * tl.KP + pad), tl.KP,
             buf2 + xi * (tn * tl.CP + pad), tl.CP, <floating>(0 if first else 1),
             part + xi * tl.KP * tl.cin, tl.cin)


cdef void sum_parts(const floating* partials, floating* du, Py_ssize_t size, Py_ssize_t parts,
                    Py_ssize_t e0, Py_ssize_t e1) noexcept nogil:
    """du[e] = partials[0][e] + partials[1][e] + ... in that order, for e in [e0, e1)."""
    cdef Py_ssize_t q, e
    memcpy(du + e0, partials + e0, (e1 - e0) * sizeof(floating))
    for q in range(1, parts):
        for e in range(e0, e1):
            du[e] += partials[q * size + e]


cdef void grad_kernel_parts(const Tiling* tl, const floating* x, const floating* gy,
                            floating* du, const Py_ssize_t* src, const Py_ssize_t* gsrc,
                            Py_ssize_t planes, floating* work, floating* partials,
                            Py_ssize_t parts, int num_threads) noexcept nogil:
    """Part q sums blocks [q * items / parts, (q + 1) * items / parts) into partials[q]."""
    cdef Py_ssize_t per_plane = tl.rblocks * tl.cblocks, items = planes * per_plane
    cdef Py_ssize_t size = POSITIONS * tl.cin * tl.KP, q, i, p, c
    cdef Py_ssize_t chunks = (size + SUM_CHUNK - 1) // SUM_CHUNK
    cdef floating* buf1
    cdef floating* part
    cdef bint first
    for q in prange(parts, nogil=True, schedule="static", num_threads=num_threads):
        buf1 = work + omp_get_thread_num() * (tl.size1 + tl.size2 + tl.size3)
        part = partials + q * size
        first = True
        for i in range(q * items // parts, (q + 1) * items // parts):
            p = i // per_plane
            if src[p] >= 0:
                grad_kernel_block(tl, x + src[p], gy + gsrc[p], part, first, i - p * per_plane,
                                  buf1, buf1 + tl.size1, buf1 + tl.size1 + tl.size2)
                first = False
        if first:
            memset(part, 0, size * sizeof(floating))
    for c in prange(chunks, nogil=True, schedule="static", num_threads=num_threads):
        sum_parts(partials, du, size, parts, c * SUM_CHUNK, min(size, (c + 1) * SUM_CHUNK))


cdef double SIXTH = 1.0 / 6, TWELFTH = 1.0 / 12, TWENTYFOURTH = 1.0 / 24


cdef inline void g_apply(double v0, double v1, double v2, double* o,
                         Py_ssize_t step) noexcept nogil:
    """o[0, step, ..., 5 step] = G v for the kernel transform's G (6 x 3)."""
    o[0] = 0.25 * v0
    o[step] = -SIXTH * (v0 + v1 + v2)
    o[2 * step] = -SIXTH * (v0 - v1 + v2)
    o[3 * step] = TWENTYFOURTH * v0 + TWELFTH * v1 + SIXTH * v2
    o[4 * step] = TWENTYFOURTH * v0 - TWELFTH * v1 + SIXTH * v2
    o[5 * step] = v2


cdef inline void gt_apply(const double* u, Py_ssize_t step, double* o,
                          Py_ssize_t ostep) noexcept nogil:
    """o[0, ostep, 2 ostep] = G^T u for u[0, step, ..., 5 step]."""
    o[0] = (0.25 * u[0] - SIXTH * (u[step] + u[2 * step])
            + TWENTYFOURTH * (u[3 * step] + u[4 * step]))
    o[ostep] = SIXTH * (u[2 * step] - u[step]) + TWELFTH * (u[3 * step] - u[4 * step])
    o[2 * ostep] = SIXTH * (u[3 * step] + u[4 * step] - u[step] - u[2 * step]) + u[5 * step]


cdef void transform_column(const floating* w, floating* u, Py_ssize_t col, Py_ssize_t C,
                           Py_ssize_t KP, Py_ssize_t rows, Py_ssize_t cols,
                           bint flipped) noexcept nogil:
    """u[xi][col][r] for every r: see transform_kernels. Runs of 16 r are written together, one
    cache line per position. (Local scratch: one call per thread.)"""
    cdef Py_ssize_t r0, r, n, a, i
    cdef const floating* g
    cdef double t[18]
    cdef double v[36][16]
    for r0 in range(0, rows, 16):
        n = min(16, rows - r0)
        for r in range(n):
            g = w + ((col * C + r0 + r) if flipped else ((r0 + r) * C + col)) * 9
            for a in range(3):      # t[i][b] = (G g)[i][b], columns b of g (rotated if flipped)
                if flipped:
                    g_apply(g[8 - a], g[5 - a], g[2 - a], &t[a], 3)
                else:
                    g_apply(g[a], g[3 + a], g[6 + a], &t[a], 3)
            for i in range(6):      # v[i][j] = (t G^T)[i][j]
                g_apply(t[3 * i], t[3 * i + 1], t[3 * i + 2], &v[6 * i][r], 16)
        for i in range(36):
            for r in range(n):
                u[(i * cols + col) * KP + r0 + r] = <floating>v[i][r]


cdef void transform_kernels(const floating* w, floating* u, Py_ssize_t K, Py_ssize_t C,
                            Py_ssize_t KP, bint flipped, int num_threads) noexcept nogil:
    """u[xi][col][r] = (G g G^T)[xi] in double: forward r = k, col = c, g = w[k, c]; flipped
    (the input gradient) r = c, col = k, g = w[k, c] rotated by 180 degrees. Entries r >= K
    (or C) up to KP are left as they are (zeros)."""
    cdef Py_ssize_t cols = K if flipped else C, col
    for col in prange(cols, nogil=True, schedule="static", num_threads=num_threads):
        transform_column(w, u, col, C, KP, C if flipped else K, cols, flipped)


cdef void untransform_row(const floating* du, floating* gw, Py_ssize_t k, Py_ssize_t C,
                          Py_ssize_t KP) noexcept nogil:
    """gw[k][c] = G^T dU G for every c. (Local scratch: one call per thread.)"""
    cdef Py_ssize_t c, i, a
    cdef double d[36]
    cdef double t[18]
    cdef double o[9]
    for c in range(C):
        for i in range(36):
            d[i] = du[(i * KP + k) * C + c]
        for i in range(6):          # t[a][j] = (G^T d)[a][j], column j of d
            gt_apply(&d[i], 6, &t[i], 6)
        for a in range(3):          # o[a][b] = (t G)[a][b]
            gt_apply(&t[6 * a], 1, &o[3 * a], 1)
        for a in range(9):
            gw[(k * C + c) * 9 + a] = <floating>o[a]


cdef void untransform_kernels(const floating* du, floating* gw, Py_ssize_t K, Py_ssize_t C,
                              Py_ssize_t KP, int num_threads) noexcept nogil:
    """gw[k][c] = G^T dU G (3 x 3) of du[xi][k][c], in double."""
    cdef Py_ssize_t k
    for k in prange(K, nogil=True, schedule="static", num_threads=num_threads):
        untransform_row(du, gw, k, C, KP)


def kernel_transform(const floating[::1] w, floating[::1] u, Py_ssize_t K, Py_ssize_t C,
                     Py_ssize_t KP, bint flipped, int num_threads):
    """u (36 x cols x KP, zeros) = the transformed kernels w (K x C x 3 x 3); see above."""
    with nogil:
        transform_kernels(&w[0], &u[0], K, C, KP, flipped, num_threads)


def kernel_untransform(const floating[::1] du, floating[::1] gw, Py_ssize_t K, Py_ssize_t C,
                       Py_ssize_t KP, int num_threads):
    """gw (K x C x 3 x 3) = G^T dU G for du (36 x KP x C)."""
    with nogil:
        untransform_kernels(&du[0], &gw[0], K, C, KP, num_threads)


def forward(tuple tiling, const floating[::1] x, const floating[::1] u, floating[::1] y,
            const Py_ssize_t[::1] src, const Py_ssize_t[::1] dst, floating[::1] work,
            unsigned char[::1] flags, int num_threads):
    """y's planes dst[p] = Winograd(x's plane src[p] (or zeros), u); u is U[36][cin][KP].

    `work` holds num_threads * (size1 + size2) values, `flags` one byte per block: set where
    the block computed a value that is not finite."""
    cdef Tiling tl = make_tiling(tiling)
    with nogil:
        forward_items(&tl, &x[0], &u[0], &y[0], &src[0], &dst[0], src.shape[0], &work[0],
                      &flags[0], num_threads)


def grad_kernel(tuple tiling, const floating[::1] x, const floating[::1] gy, floating[::1] du,
                const Py_ssize_t[::1] src, const Py_ssize_t[::1] gsrc, floating[::1] work,
                floating[::1] partials, Py_ssize_t parts, int num_threads):
    """du[36][KP][cin] = sum over the blocks of Mg^T V, in `parts` partial sums added in order.

    Plane p pairs x's plane src[p] (-1: padding, skipped) with gy's plane gsrc[p]."""
    cdef Tiling tl = make_tiling(tiling)
    with nogil:
        grad_kernel_parts(&tl, &x[0], &gy[0], &du[0], &src[0], &gsrc[0], src.shape[0],
                          &work[0], &partials[0], parts, num_threads)


def blocks(tuple tiling):
    """The number of blocks of one plane."""
    cdef Tiling tl = make_tiling(tiling)
    return tl.rblocks * tl.cblocks


def kernel_level():
    """The kernel set this process runs: 2 x86-64-v4, 1 x86-64-v3, 0 the build's own target."""
    return wg_level()


def lanes(itemsize):
    """Values of one vector of the kernels this machine runs; channels are padded to it."""
    return wg_vector_bytes() // itemsize
