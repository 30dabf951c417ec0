# The kernel gradient by positions (included by _blocked.pyx, whose kernels it runs).
#
# gw[k, c, t] = sum over the output positions of gy[k, pos] x[c, pos + t]: dot products along
# output rows, as vectors of positions (bk_gkp), gy read where it lies. The other path
# (grad_kernel) transposes gy so that a position's channels lie together and broadcasts x: for
# a first layer (3 input channels, 27 taps, 32 output channels) that transpose of the whole
# output gradient cost as much as the products. Here an item is a block of 4 output channels of
# a group over a part of the rows (the batch's output rows cut into `parts`, a number fixed by
# the problem); it runs its rows in chunks whose gy rows stay in L1 while every (channel, tap)
# of the group reads them, into V-lane sums of its own. The sums are then reduced: lanes in
# order, then parts in order, so every value is the same whatever the thread count.
#
# The input is copied zero-padded with each padded row stored by phase of the width stride
# (columns q, q + s, q + 2s, ... at q * plen): a tap's inputs along a row are then consecutive.


cdef void phase_plane(const floating* src, floating* dst, const Shape* g,
                      Py_ssize_t plen) noexcept nogil:
    """dst (e0, e1, s2 x plen) = src (n0, n1, n2) zero-padded (shifted by p) with each row's
    padded columns u stored at (u mod s2) * plen + u // s2; pad_plane's at stride 1."""
    cdef Py_ssize_t s = g.s[2], rowlen = g.s[2] * plen, z, r, zi, ri, q, i, lo, hi
    cdef floating* row
    cdef const floating* srow
    if s == 1:
        pad_plane(src, dst, g)
        return
    for z in range(g.e[0]):
        zi = z - g.p[0]
        for r in range(g.e[1]):
            ri = r - g.p[1]
            row = dst + (z * g.e[1] + r) * rowlen
            memset(row, 0, rowlen * sizeof(floating))
            if zi < 0 or zi >= g.n[0] or ri < 0 or ri >= g.n[1]:
                continue
            srow = src + (zi * g.n[1] + ri) * g.n[2]
            for q in range(s):      # phase q: padded columns q + i * s (first_at_least: columns)
                lo = first_at_least(q - g.p[2], s, 0)
                hi = first_at_least(q - g.p[2], s, g.n[2])
                for i in range(lo, hi if hi < plen else plen):
                    row[q * plen + i] = srow[q + i * s - g.p[2]]


cdef void gkp_item(const floating* planes, const floating* gy, floating* acc,
                   const Py_ssize_t* toff, Py_ssize_t CT, const Shape* g, Py_ssize_t plane,
                   Py_ssize_t rowlen, Py_ssize_t C, Py_ssize_t K, Py_ssize_t gi, Py_ssize_t Cg,
                   Py_ssize_t Kg, Py_ssize_t kb, Py_ssize_t r0, Py_ssize_t r1,
                   Py_ssize_t chunk) noexcept nogil:
    """acc (CT taps x 4 channels x V lanes) += block kb's dot products over rows r0 .. r1 - 1
    of the batch's output rows (sample, depth, height): runs of at most `chunk` rows of one
    (sample, depth) plane a call."""
    cdef Py_ssize_t oplane = g.o[0] * g.o[1] * g.o[2], r = r0, rows, nn, od, oh
    cdef int M = <int>(Kg - kb * 4 if Kg - kb * 4 < 4 else 4)
    cdef const floating* xr
    cdef const floating* gr
    while r < r1:
        oh = r % g.o[1]
        od = (r // g.o[1]) % g.o[0]
        nn = r // (g.o[1] * g.o[0])
        rows = g.o[1] - oh                  # to the plane's end, the item's end, or a chunk
        if rows > r1 - r:
            rows = r1 - r
        if rows > chunk:
            rows = chunk
        xr = planes + (nn * C + gi * Cg) * plane + (od * g.s[0] * g.e[1] + oh * g.s[1]) * rowlen
        gr = gy + (nn * K + gi * Kg + kb * 4) * oplane + (od * g.o[1] + oh) * g.o[2]
        if floating is float:
            bk_gkp_f32(xr, g.s[1] * rowlen, gr, g.o[2], oplane, M, rows, g.o[2], toff, CT, acc)
        else:
            bk_gkp_f64(xr, g.s[1] * rowlen, gr, g.o[2], oplane, M, rows, g.o[2], toff, CT, acc)
        r += rows


def grad_kernel_positions(const floating[::1] x, const floating[::1] gy, floating[::1] gw,
                          floating[::1] xph, floating[::1] partial, const Py_ssize_t[::1] toff,
                          Py_ssize_t N, Py_ssize_t G, Py_ssize_t Cg, Py_ssize_t Kg,
                          Py_ssize_t V, object n, object p, object e, object o, object s,
                          Py_ssize_t plen, Py_ssize_t parts, Py_ssize_t chunk,
                          int num_threads):
    """gw (G * Kg, Cg, taps) = the weight gradient (eq. 9.11, lifted) by positions. `toff`
    (Cg x taps, channel-major): each (channel, tap)'s offset in the phased planes from an
    output row's first input; `xph` N * C phased planes (e0 x e1 rows of s2 * plen values);
    `partial` parts x G x ceil(Kg / 4) items of Cg * taps x 4 x V sums; `chunk`: rows a
    bk_gkp call, at most."""
    cdef Shape g = make_shape(n, p, e, o, s)
    cdef Py_ssize_t C = G * Cg, K = G * Kg, CT = toff.shape[0], taps = CT // Cg
    cdef Py_ssize_t blocks = (Kg + 3) // 4, rowlen = g.s[2] * plen
    cdef Py_ssize_t plane = g.e[0] * g.e[1] * rowlen, rows = N * g.o[0] * g.o[1]
    cdef Py_ssize_t per_item = CT * 4 * V, items = parts * G * blocks
    cdef Py_ssize_t item, part, gi, kb, m, ct, l, src_plane = g.n[0] * g.n[1] * g.n[2]
    cdef floating total, lanes_sum
    cdef floating* acc
    if chunk < 1:
        chunk = 1
    if CT == 0 or K == 0:
        return
    if rows * g.o[2] == 0:
        gw[:] = 0
        return
    with nogil:
        for item in prange(N * C, schedule="static", num_threads=num_threads):
            phase_plane(&x[0] + item * src_plane, &xph[0] + item * plane, &g, plen)
        for item in prange(items, schedule="static", num_threads=num_threads):
            kb = item % blocks
            gi = (item // blocks) % G
            part = item // (blocks * G)
            acc = &partial[0] + item * per_item
            memset(acc, 0, per_item * sizeof(floating))
            gkp_item(&xph[0], &gy[0], acc, &toff[0], CT, &g, plane, rowlen, C, K, gi, Cg, Kg,
                     kb, part * rows // parts, (part + 1) * rows // parts, chunk)
        for item in prange(G * blocks, schedule="static", num_threads=num_threads):
            kb = item % blocks
            gi = item // blocks
            for m in range(Kg - kb * 4 if Kg - kb * 4 < 4 else 4):
                for ct in range(CT):
                    total = 0
                    for part in range(parts):
                        acc = &partial[0] + ((part * G + gi) * blocks + kb) * per_item
                        lanes_sum = 0
                        for l in range(V):
                            lanes_sum = lanes_sum + acc[(ct * 4 + m) * V + l]
                        total = total + lanes_sum
                    gw[((gi * Kg + kb * 4 + m) * Cg) * taps + ct] = total
