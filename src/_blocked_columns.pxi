# The input gradient by columns (included by _blocked.pyx, whose kernels it runs).
#
# gx = col2im(col), col[(c, t), o] = sum_k w[k, c, t] gy[k, o]: the column matrix that im2col's
# input gradient builds, with (input channel, tap) as the vector lanes. Those lanes are w's rows
# as given, so a block of them is w[k, m0:m0 + V] for every k: copied, never transposed (the
# flipped packing of the other path is a transpose of V x taps values per (k, block), 30% of
# ResNet-18's 512-channel input gradient at batch 1). bk_row then runs the positions of gy as
# one row of columns, gy's channels as its input channels and one tap, so each weight vector
# serves a tile of positions and each gy value its block of lanes. col2im adds col into gx,
# tap by tap, where each tap's inputs lie inside gx: every stride, dilation and padding.
#
# An item is one block of CB input channels of a group (CB x taps lanes, a whole number of
# vectors), over the batch: it copies its slice of w once (Kg rows of CB x taps values, kept in
# L2 across the samples), and owns its channels of gx. Each gx value is the sum over taps in
# order of sums over k in order, whatever the thread count.


cdef inline Py_ssize_t first_at_least(Py_ssize_t a, Py_ssize_t s, Py_ssize_t v) noexcept nogil:
    """The least i >= 0 with a + i * s >= v (s > 0): the first output whose input a + i * s,
    one every s, is at or past v."""
    if a >= v:
        return 0
    return (v - a + s - 1) // s


cdef void col2im_rows(const floating* colt, Py_ssize_t chunk, floating* out, Py_ssize_t CB,
                      const Py_ssize_t* k, const Py_ssize_t* d, const Shape* g, Py_ssize_t row0,
                      Py_ssize_t rows) noexcept nogil:
    """out += col2im of colt (CB x taps lanes of `chunk` positions: output rows row0 .. row0 +
    rows - 1 of the (depth, height) rows, o[2] positions each). `out` holds the CB channels'
    planes with each row split by the stride's phases, (c, depth, height, phase, j) for input
    column j * s + phase (m = ceil(n / s) a phase): a tap's outputs then fall on consecutive
    values of one phase, a loop the compiler vectorises (the stride-2 scatter it replaces took a
    fifth of ResNet-18's 128 -> 256 3x3/2 input gradient at batch 1). At stride 1 that is gx's
    own layout. Each value sums its taps in order, as before."""
    cdef Py_ssize_t taps = k[0] * k[1] * k[2], s = g.s[2], m = (g.n[2] + s - 1) // s
    cdef Py_ssize_t c, t, r, od, oh, i0, i1, lo, hi, base, phase, shift
    cdef const floating* src
    cdef floating* prow
    for c in range(CB):
        for t in range(taps):
            src = colt + (c * taps + t) * chunk
            base = (t % k[2]) * d[2] - g.p[2]       # output ow reads input column ow * s + base
            phase = base % s if base >= 0 else (s - (-base) % s) % s
            shift = (base - phase) // s if base >= phase else -((phase - base) // s)
            # the outputs whose input column lies in [0, n)
            lo = first_at_least(base, s, 0)
            hi = first_at_least(base, s, g.n[2])
            if hi > g.o[2]:
                hi = g.o[2]
            for r in range(rows):
                od = (row0 + r) // g.o[1]
                oh = (row0 + r) % g.o[1]
                i0 = od * g.s[0] + t // (k[1] * k[2]) * d[0] - g.p[0]
                i1 = oh * g.s[1] + (t // k[2]) % k[1] * d[1] - g.p[1]
                if i0 < 0 or i0 >= g.n[0] or i1 < 0 or i1 >= g.n[1]:
                    continue
                add_run(out + (((c * g.n[0] + i0) * g.n[1] + i1) * s + phase) * m + shift,
                        src + r * g.o[2], lo, hi)


cdef inline void add_run(floating* dst, const floating* src, Py_ssize_t lo,
                         Py_ssize_t hi) noexcept nogil:
    cdef Py_ssize_t j
    for j in range(lo, hi):
        dst[j] += src[j]


cdef void unphase(const floating* phased, floating* dst, Py_ssize_t CB,
                  const Shape* g) noexcept nogil:
    """dst (CB channel planes) = phased (col2im_rows' layout at a stride s > 1)."""
    cdef Py_ssize_t s = g.s[2], m = (g.n[2] + s - 1) // s, lines = CB * g.n[0] * g.n[1]
    cdef Py_ssize_t line, ph, j
    cdef const floating* src
    cdef floating* row
    for line in range(lines):
        row = dst + line * g.n[2]
        src = phased + line * s * m
        for ph in range(s):
            for j in range((g.n[2] - ph + s - 1) // s):
                row[j * s + ph] = src[ph * m + j]


def grad_input_columns(const floating[::1] gy, const floating[::1] w, floating[::1] gx,
                       floating[::1] work, const Py_ssize_t[::1] k, const Py_ssize_t[::1] d,
                       Py_ssize_t N, Py_ssize_t G, Py_ssize_t Cg, Py_ssize_t Kg, Py_ssize_t CB,
                       int KB, Py_ssize_t V, Py_ssize_t chunk_rows, object n, object p,
                       object o, object s, int num_threads):
    """gx (N, G * Cg, n) = the input gradient of gy (N, G * Kg, o) and w (G * Kg, Cg, k) by
    columns (see above). `work`: per thread, Kg x CB x taps values of w, then twice chunk_rows
    x o[2] positions x CB x taps lanes (bk_row's rows of V lanes, then their transpose), then
    (stride above 1 along the row) CB planes of gx in col2im_rows' phases; V = KB vectors and
    CB x taps a multiple of V."""
    cdef Shape g = make_shape(n, p, n, o, s)
    cdef Py_ssize_t taps = k[0] * k[1] * k[2], row = Cg * taps, lanes = CB * taps
    cdef Py_ssize_t P = g.o[0] * g.o[1] * g.o[2], plane = g.n[0] * g.n[1] * g.n[2]
    cdef Py_ssize_t rows = g.o[0] * g.o[1], chunk = chunk_rows * g.o[2]
    cdef Py_ssize_t per_group = Cg // CB, vectors = lanes // V
    cdef Py_ssize_t m = (g.n[2] + g.s[2] - 1) // g.s[2]
    cdef Py_ssize_t phased = CB * g.n[0] * g.n[1] * g.s[2] * m if g.s[2] > 1 else 0
    cdef Py_ssize_t per_thread = Kg * lanes + 2 * chunk * lanes + phased
    cdef Py_ssize_t item, gi, c0, kk, b, nn, ci, r0, rc, zero = 0
    cdef floating* wb
    cdef floating* buf
    cdef floating* colt
    cdef floating* dst
    cdef floating* out
    cdef const floating* ys
    if N * G * Cg * plane == 0:
        return
    for item in prange(G * per_group, nogil=True, schedule="static", num_threads=num_threads):
        gi = item // per_group
        c0 = item % per_group * CB
        wb = &work[0] + omp_get_thread_num() * per_thread
        buf = wb + Kg * lanes
        colt = buf + chunk * lanes
        for kk in range(Kg):        # block b of the lanes: Kg rows of V values
            for b in range(vectors):
                memcpy(wb + (b * Kg + kk) * V, &w[0] + (gi * Kg + kk) * row + c0 * taps + b * V,
                       V * sizeof(floating))
        for nn in range(N):
            dst = &gx[0] + ((nn * G + gi) * Cg + c0) * plane
            out = colt + chunk * lanes if phased else dst
            memset(out, 0, (phased if phased else CB * plane) * sizeof(floating))
            ys = &gy[0] + (nn * G + gi) * Kg * P
            for ci in range((rows + chunk_rows - 1) // chunk_rows):
                r0 = ci * chunk_rows
                rc = rows - r0 if rows - r0 < chunk_rows else chunk_rows
                for b in range(vectors):
                    run_row(ys + r0 * g.o[2], P, &zero, 1, 1, Kg, wb + b * Kg * V, KB, 1, 1, 0,
                            rc * g.o[2], buf + b * chunk * V)
                    unpack(buf + b * chunk * V, V, rc * g.o[2], 1, V, colt + b * V * chunk,
                           chunk, chunk)
                col2im_rows(colt, chunk, out, CB, &k[0], &d[0], &g, r0, rc)
            if phased:
                unphase(out, dst, CB, &g)
