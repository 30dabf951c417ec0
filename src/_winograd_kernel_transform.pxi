# The kernel transforms of src/_winograd.pyx, included there: U = G g G^T for the forward pass
# and the input gradient (wg_kernel, compiled per instruction-set level, which also reports a
# value that is not finite), and gw = G^T dU G for the kernel gradient (wg_untransform, in
# double).

cdef Py_ssize_t STAGE_ABOVE_BYTES = 16 << 20


cdef int transform_column(const floating* w, Py_ssize_t kstride, floating* u, Py_ssize_t col,
                          Py_ssize_t C, Py_ssize_t KP, Py_ssize_t rows, Py_ssize_t cols,
                          bint flipped) noexcept nogil:
    """u[xi][col][r] for every r: see transform_kernels (the arithmetic is wg_kernel's, compiled
    per instruction-set level; 1: a value read was not finite). Past STAGE_ABOVE_BYTES of U, the
    36 positions' values of this column are written out position by position at the end: one
    sequential run each. Writing each 16 rows' 36 lines as they came (36 interleaved streams)
    ran at 2 ns a value there (ResNet's 512 channels: 36 MB, 18 ms on one thread) against 0.7 ns
    in the cache, where the staging's copy costs 10%."""
    cdef Py_ssize_t i
    cdef int bad
    cdef floating* stage = NULL
    if 36 * cols * KP * sizeof(floating) > STAGE_ABOVE_BYTES:
        stage = <floating*>fc_line_alloc(36 * rows * sizeof(floating))
    if stage == NULL:
        return kernel_column(w, kstride, u + col * KP, cols * KP, col, C, rows, rows * cols,
                             flipped)
    bad = kernel_column(w, kstride, stage, rows, col, C, rows, rows * cols, flipped)
    for i in range(36):
        memcpy(u + (i * cols + col) * KP, stage + i * rows, rows * sizeof(floating))
    free(stage)
    return bad


cdef inline int kernel_column(const floating* w, Py_ssize_t kstride, floating* out,
                              Py_ssize_t ostride, Py_ssize_t col, Py_ssize_t C, Py_ssize_t rows,
                              Py_ssize_t kernels, bint flipped, bint prefetch=False) noexcept nogil:
    """wg_kernel: `kernels` (K x C) is the array's count, the last of which is read no further
    than its taps; `prefetch` the next column's kernels (a kernel block's few rows). 1: a value
    read was not finite."""
    if floating is float:
        return wg_kernel_float(w, kstride, out, ostride, col, C, rows, kernels, flipped, prefetch)
    else:
        return wg_kernel_double(w, kstride, out, ostride, col, C, rows, kernels, flipped, prefetch)


cdef int transform_kernels(const floating* w, floating* u, Py_ssize_t K, Py_ssize_t C,
                           Py_ssize_t KP, bint flipped, Py_ssize_t depth,
                           int num_threads) noexcept nogil:
    """u[d][xi][col][r] = (G g G^T)[xi] for each depth tap d of w (K x C x depth x 3 x
    3, read in place: a copy of each tap's kernels cost C3D's 128 x 64 layer 40 us of one
    thread, three times, while the other waited): forward r = k, col = c, g = w[k, c, d];
    flipped (the input gradient) r = c, col = k, g = w[k, c, d] rotated by 180 degrees in its
    plane. Entries r >= K (or C) up to KP are left as they are (zeros). One parallel loop over
    every (tap, column). Returns 1 where a value of w is not finite (wg_kernel checks them)."""
    cdef Py_ssize_t cols = K if flipped else C, item, d, col
    cdef Py_ssize_t size = 36 * cols * KP
    cdef int bad = 0
    for item in prange(depth * cols, nogil=True, schedule="static", num_threads=num_threads):
        d = item // cols
        col = item % cols
        bad |= transform_column(w + 9 * d, 9 * depth, u + d * size, col, C, KP,
                                C if flipped else K, cols, flipped)     # a reduction
    return bad


cdef inline void untransform_one(const floating* du, floating* gw, Py_ssize_t gstride,
                                 Py_ssize_t row, Py_ssize_t K, Py_ssize_t C, Py_ssize_t KP,
                                 bint by_input) noexcept nogil:
    if floating is float:
        wg_untransform_float(du, gw, gstride, row, K, C, KP, by_input)
    else:
        wg_untransform_double(du, gw, gstride, row, K, C, KP, by_input)


cdef void untransform_kernels(const floating* du, floating* gw, Py_ssize_t K, Py_ssize_t C,
                              Py_ssize_t KP, bint by_input, Py_ssize_t depth,
                              int num_threads) noexcept nogil:
    """gw[k][c][d] = G^T dU[d] G (3 x 3), in double, of each depth tap's du[d][xi][c][k]
    (by_input: C x KP a position) or du[d][xi][k][c] (KP x C); gw is K x C x depth x 3 x 3,
    written in place. An item is a row (c, or k) with all its taps: the taps of one kernel
    share cache lines, and items (tap, row) on two threads made C3D's 128 x 64 x 3 untransform
    slower on two threads than on one (530 against 485 us)."""
    cdef Py_ssize_t item, d, size = 36 * KP * C
    cdef Py_ssize_t rows = C if by_input else K
    for item in prange(rows, nogil=True, schedule="static", num_threads=num_threads):
        for d in range(depth):
            untransform_one(du + d * size, gw + 9 * d, 9 * depth, item, K, C, KP, by_input)


def kernel_transform(const floating[::1] w, floating[::1] u, Py_ssize_t K, Py_ssize_t C,
                     Py_ssize_t KP, bint flipped, Py_ssize_t depth, int num_threads):
    """u (depth x 36 x cols x KP, zeros) = the transformed kernels w (K x C x depth x 3 x 3);
    see above. Returns whether every value of w is finite."""
    cdef int bad = 0
    with nogil:
        bad = transform_kernels(&w[0], &u[0], K, C, KP, flipped, depth, num_threads)
    return bad == 0


def kernel_untransform(const floating[::1] du, floating[::1] gw, Py_ssize_t K, Py_ssize_t C,
                       Py_ssize_t KP, bint by_input, Py_ssize_t depth, int num_threads):
    """gw (K x C x depth x 3 x 3) = G^T dU G for du (depth x 36 x C x KP by_input, else depth x
    36 x KP x C)."""
    with nogil:
        untransform_kernels(&du[0], &gw[0], K, C, KP, by_input, depth, num_threads)
