"""Pooling kernels (section 9.3): the two drivers that every pool of fastconv.pooling is built on.

Arrays arrive C-contiguous, lifted to three spatial axes: a stack of P planes (N * C, or N for
cross-channel pooling) of shape (D, H, W). Each driver is written once, for three axes.

Window tables (max_forward)
    Along each axis a, output position o reads the input elements lo_a[o] + t * step_a for
    t < cnt_a[o]: the taps of its window that lie inside the input (padding and the ceil-mode
    overhang are clipped away by the Python side, which builds these small tables). Regular,
    dilated, adaptive, global and cross-channel max pools differ only in their tables.

Linear pools as three 1-D passes (axis_apply)
    Every linear pool of the module weighs a window element by a product of per-axis factors:
    average (1 / divisor, and PyTorch's divisor is a product of per-axis counts), the Gaussian
    distance-weighted average (the Gaussian of a distance is a product of per-axis Gaussians, and
    so is its normaliser over the elements present), adaptive and global average. Such a pool is
    a Kronecker product A_d (x) A_h (x) A_w of small banded matrices, applied as one pass per axis
    (k_d + k_h + k_w multiply-adds per output instead of k_d * k_h * k_w, the separable trick of
    section 9.8). Its gradient is the same passes with the transposed matrices: a gather, so the
    backward is deterministic with no scatter. The matrices come in CSR form (indptr, indices,
    values) from the Python side.

Every output element is computed by the same operations in the same order whatever the thread
count, so all results are bitwise identical for any number of threads. The max gradient
(max_grad_input) zeroes and scatters each plane's gradient from one thread (planes in parallel),
in output order, checking each index's range as it goes.
"""
from cython cimport floating
from cython.parallel cimport prange
from libc.math cimport INFINITY, NAN
from libc.string cimport memset

cdef extern from *:
    """
    /* A C conditional expression compiles to a conditional move; Cython's `a if c else b`
       becomes an if/else that the compiler leaves as a branch (mispredicted on random data). */
    #define FASTCONV_SELECT(c, a, b) ((c) ? (a) : (b))
    """
    float select_f "FASTCONV_SELECT"(bint c, float a, float b) noexcept nogil
    double select_d "FASTCONV_SELECT"(bint c, double a, double b) noexcept nogil
    Py_ssize_t select_i "FASTCONV_SELECT"(bint c, Py_ssize_t a, Py_ssize_t b) noexcept nogil

cdef extern from "_pooling_2x2.h":
    void fc_max_2x2_f32_rows(const float* x, Py_ssize_t W, Py_ssize_t rows, Py_ssize_t OW,
                             long long base, float* y, long long* idx, int with_idx) noexcept nogil
    void fc_max_2x2_f64_rows(const double* x, Py_ssize_t W, Py_ssize_t rows, Py_ssize_t OW,
                             long long base, double* y, long long* idx,
                             int with_idx) noexcept nogil


cdef inline void max_rows_2x2(const floating* x, Py_ssize_t W, Py_ssize_t rows, Py_ssize_t OW,
                              Py_ssize_t base, floating* y, long long* idx,
                              bint with_idx) noexcept nogil:
    """`rows` output rows of the commonest pool, 2x2 windows at stride 2 with no padding, from
    input rows x, x + W, ... (`base`: x's flat index in its plane): src/_pooling_2x2.h, the
    same results as max_plane_rows bit for bit (the first maximum in row-major order, strictly
    greater replacing; a NaN wins and its first occurrence is the index), in vectors of outputs
    with no branch on the data."""
    if floating is float:
        fc_max_2x2_f32_rows(x, W, rows, OW, base, y, idx, with_idx)
    else:
        fc_max_2x2_f64_rows(x, W, rows, OW, base, y, idx, with_idx)


cdef inline floating select(bint c, floating a, floating b) noexcept nogil:
    if floating is float:
        return select_f(c, a, b)
    else:
        return select_d(c, a, b)


cdef void max_plane_rows(const floating* x, floating* y, long long* idx, bint with_idx,
                         Py_ssize_t od_, Py_ssize_t oh_,
                         Py_ssize_t H, Py_ssize_t W, Py_ssize_t OW,
                         const Py_ssize_t* lo_d, const Py_ssize_t* cnt_d, Py_ssize_t st_d,
                         const Py_ssize_t* lo_h, const Py_ssize_t* cnt_h, Py_ssize_t st_h,
                         const Py_ssize_t* lo_w, const Py_ssize_t* cnt_w,
                         Py_ssize_t st_w) noexcept nogil:
    """One output row (od_, oh_, :) of one plane: the maximum of each window (NaN if the window
    holds one; -inf for a window with no element) and, with `with_idx`, the flat index of its
    first occurrence in row-major order (-1 for an empty window).

    The window's input rows are visited in order, each sweeping the whole output row, so the
    loops over the depth and height taps run once per output row, not once per output. The
    values come first, with branch-free selects (random data defeats a branch predictor); the
    indices in a second sweep, backwards, where every element equal to the maximum overwrites
    the index (so the first one in row-major order stays), again without branches."""
    cdef Py_ssize_t ow, a, b, c, r, pos, bi
    cdef const floating* row
    cdef floating best, v, v2
    cdef bint nan
    cdef bint pairs = st_w == 1 and OW > 0
    for ow in range(OW):
        pairs = pairs and cnt_w[ow] == 2
    for ow in range(OW):
        y[ow] = -INFINITY
    for a in range(cnt_d[od_]):
        for b in range(cnt_h[oh_]):
            row = x + ((lo_d[od_] + a * st_d) * H + lo_h[oh_] + b * st_h) * W
            if pairs:                                   # 2-wide windows, stride 2
                for ow in range(OW):
                    pos = lo_w[ow]
                    v = row[pos]
                    v2 = row[pos + 1]
                    best = y[ow]
                    best = select(v > best, v, best)
                    best = select(v2 > best, v2, best)
                    y[ow] = NAN if (v != v) | (v2 != v2) else best
                continue
            for ow in range(OW):
                pos = lo_w[ow]
                best = y[ow]
                nan = False
                for c in range(cnt_w[ow]):
                    v = row[pos + c * st_w]
                    nan = nan | (v != v)
                    best = select(v > best, v, best)
                y[ow] = NAN if nan else best
    if not with_idx:
        return
    for ow in range(OW):
        idx[ow] = -1
    for a in range(cnt_d[od_] - 1, -1, -1):          # backwards: the last hit is the first one
        for b in range(cnt_h[oh_] - 1, -1, -1):
            r = ((lo_d[od_] + a * st_d) * H + lo_h[oh_] + b * st_h) * W
            for ow in range(OW):
                best = y[ow]
                pos = r + lo_w[ow]
                bi = idx[ow]
                if best != best:                      # rare: the window holds a NaN
                    for c in range(cnt_w[ow] - 1, -1, -1):
                        v = x[pos + c * st_w]
                        if v != v:
                            bi = pos + c * st_w
                else:
                    for c in range(cnt_w[ow] - 1, -1, -1):
                        bi = select_i(x[pos + c * st_w] == best, pos + c * st_w, bi)
                idx[ow] = bi


cdef bint is_2x2(const Py_ssize_t* lo_d, const Py_ssize_t* cnt_d, Py_ssize_t OD, Py_ssize_t D,
                 const Py_ssize_t* lo_h, const Py_ssize_t* cnt_h, Py_ssize_t OH,
                 const Py_ssize_t* lo_w, const Py_ssize_t* cnt_w, Py_ssize_t OW,
                 Py_ssize_t st_h, Py_ssize_t st_w) noexcept nogil:
    """The tables say: one depth tap, and 2x2 windows at stride 2 inside the input."""
    cdef Py_ssize_t o
    if D != 1 or OD != 1 or cnt_d[0] != 1 or lo_d[0] != 0 or st_h != 1 or st_w != 1:
        return False
    for o in range(OH):
        if cnt_h[o] != 2 or lo_h[o] != 2 * o:
            return False
    for o in range(OW):
        if cnt_w[o] != 2 or lo_w[o] != 2 * o:
            return False
    return True


def max_forward(const floating[::1] x, floating[::1] y, long long[::1] idx, bint with_idx,
                Py_ssize_t planes, Py_ssize_t[:, ::1] in_size, tables, Py_ssize_t[::1] steps,
                int num_threads):
    """y, idx (planes, OD, OH, OW) from x (planes, D, H, W); `tables` = (lo_d, cnt_d, lo_h,
    cnt_h, lo_w, cnt_w), `steps` the tap spacing per axis, in_size[0] = (D, H, W). Without
    `with_idx` the indices are not written (idx may then be any one-element array)."""
    cdef Py_ssize_t[::1] lo_d = tables[0], cnt_d = tables[1]
    cdef Py_ssize_t[::1] lo_h = tables[2], cnt_h = tables[3]
    cdef Py_ssize_t[::1] lo_w = tables[4], cnt_w = tables[5]
    cdef Py_ssize_t OD = lo_d.shape[0], OH = lo_h.shape[0], OW = lo_w.shape[0]
    cdef Py_ssize_t D = in_size[0, 0], H = in_size[0, 1], W = in_size[0, 2]
    cdef Py_ssize_t in_vol = D * H * W, rows = OD * OH
    cdef Py_ssize_t item, p, rr, off, runs, r0, r1
    cdef bint two_by_two
    if planes * rows * OW == 0:
        return
    with nogil:
        two_by_two = is_2x2(&lo_d[0], &cnt_d[0], OD, D, &lo_h[0], &cnt_h[0], OH, &lo_w[0],
                            &cnt_w[0], OW, steps[1], steps[2])
        if two_by_two:
            # runs of a plane's rows: whole planes where there are many (a LeNet's pools: 8
            # outputs a row, whose per-call cost a row per item would pay 8 times a plane)
            runs = 1 if planes >= 64 else min(rows, (64 + planes - 1) // planes)
            for item in prange(planes * runs, schedule="static", num_threads=num_threads):
                p = item // runs
                r0 = (item % runs) * rows // runs
                r1 = (item % runs + 1) * rows // runs
                off = p * rows * OW + r0 * OW
                max_rows_2x2(&x[p * in_vol + 2 * r0 * W], W, r1 - r0, OW, 2 * r0 * W, &y[off],
                             &idx[off if with_idx else 0], with_idx)
        else:
            for item in prange(planes * rows, schedule="static", num_threads=num_threads):
                p = item // rows
                rr = item % rows
                off = item * OW
                max_plane_rows(&x[p * in_vol], &y[off], &idx[off if with_idx else 0],
                               with_idx, rr // OH, rr % OH, H, W, OW,
                               &lo_d[0], &cnt_d[0], steps[0], &lo_h[0], &cnt_h[0], steps[1],
                               &lo_w[0], &cnt_w[0], steps[2])


def max_grad_input(const floating[::1] gy, const long long[::1] idx, floating[::1] gx,
                   Py_ssize_t planes, Py_ssize_t out_vol, Py_ssize_t in_vol, int num_threads):
    """gx (planes * in_vol, any contents) = gy routed to idx, plane by plane. Returns True when
    every index lay in [-1, in_vol), False when one did not (gx is then not to be used).

    Each plane is zeroed here, just before its scatter, so that gx is written while it is in
    cache rather than in a separate pass (numpy.zeros) beforehand; within a plane one thread
    adds in output order, so overlapping windows accumulate deterministically whatever the
    thread count. An index of -1 (a window with no element) routes nothing. The range check
    is part of the scatter (one predictable compare per index) instead of a separate pass over
    the indices: at an index outside the range its plane stops, later planes are skipped, and
    the caller reports the bad values."""
    cdef Py_ssize_t p, o, i
    cdef bint in_range = True
    cdef bint* in_range_p = &in_range          # written through the pointer: shared, not private
    if planes * in_vol == 0:
        return True
    with nogil:
        for p in prange(planes, schedule="static", num_threads=num_threads):
            memset(&gx[p * in_vol], 0, in_vol * sizeof(floating))
            if not in_range_p[0]:
                continue
            for o in range(p * out_vol, (p + 1) * out_vol):
                i = idx[o]
                if <size_t>i < <size_t>in_vol:
                    gx[p * in_vol + i] += gy[o]
                elif i != -1:
                    in_range_p[0] = False      # every writer writes the same value
                    break
    return in_range


cdef void apply_line(const floating* src, floating* out, Py_ssize_t R, const Py_ssize_t* ind,
                     const floating* val, Py_ssize_t nnz) noexcept nogil:
    """out[:R] = sum_j val[j] * src[ind[j] * R :][:R], in the order of j."""
    cdef Py_ssize_t j, r
    cdef floating c
    cdef const floating* row
    memset(out, 0, R * sizeof(floating))
    for j in range(nnz):
        c = val[j]
        row = src + ind[j] * R
        for r in range(R):
            out[r] += c * row[r]


cdef void apply_rows(const floating* src, floating* out, Py_ssize_t m, const Py_ssize_t* indptr,
                     const Py_ssize_t* ind, const floating* val) noexcept nogil:
    """out[o] = sum_j val[j] * src[ind[j]] for j in indptr[o] .. indptr[o + 1], every o < m."""
    cdef Py_ssize_t o, j
    cdef floating acc
    for o in range(m):
        acc = 0
        for j in range(indptr[o], indptr[o + 1]):
            acc = acc + val[j] * src[ind[j]]
        out[o] = acc


def axis_apply(const floating[::1] src, floating[::1] dst, Py_ssize_t outer, Py_ssize_t n,
               Py_ssize_t R, const Py_ssize_t[::1] indptr, const Py_ssize_t[::1] indices,
               const floating[::1] values, int num_threads):
    """dst (outer, m, R) = A applied along the middle axis of src (outer, n, R), where A is the
    (m, n) CSR matrix (indptr, indices, values): dst[q, o, :] = sum_j values[j] src[q, indices[j], :]
    for j in indptr[o] .. indptr[o + 1]."""
    cdef Py_ssize_t m = indptr.shape[0] - 1
    cdef Py_ssize_t item, q, o, j0
    cdef Py_ssize_t n_items = outer * m
    if n_items * R == 0:
        return
    if indices.shape[0] == 0:
        with nogil:
            memset(&dst[0], 0, n_items * R * sizeof(floating))
        return
    with nogil:
        if R == 1:                      # a line per item: the matrix applied along the line
            for q in prange(outer, schedule="static", num_threads=num_threads):
                apply_rows(&src[q * n], &dst[q * m], m, &indptr[0], &indices[0], &values[0])
        else:
            for item in prange(n_items, schedule="static", num_threads=num_threads):
                q = item // m
                o = item % m
                j0 = indptr[o]
                apply_line(&src[q * n * R], &dst[item * R], R, &indices[0] + j0,
                           &values[0] + j0, indptr[o + 1] - j0)
