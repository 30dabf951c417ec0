# The minibatch as the vector lanes (included by _blocked.pyx, whose kernels it runs; see
# src/_blocked_batch.h). Blocks of V samples: block b holds samples b * V .. b * V + V - 1 as
# the lanes of each (channel, position), zeros in the lanes past the batch. The input is copied
# so, zero-padded (every tap a constant offset from an output's first input); the forward pass
# runs tiles of KT output channels x PT positions of a row into its thread's buffer, then moves
# each channel's lanes back to the samples' planes; the kernel gradient copies gy so too, and
# an item -- an input channel and a tile of KT output channels of a group -- sums every line of
# the kernel's taps over the blocks (in order) into V-lane sums of its own, then adds the lanes
# in order. Every value is one item's, summed in an order fixed by the problem.


cdef void lane_plane(const floating* x, Py_ssize_t stride, Py_ssize_t lanes, floating* dst,
                     Py_ssize_t V, const Shape* g) noexcept nogil:
    """dst (e0, e1, e2, V) = `lanes` planes of x (n0, n1, n2; `stride` apart) as the lanes of
    each position, shifted by p; zeros where no input is and in the lanes past `lanes`."""
    cdef Py_ssize_t z, r, lo, hi
    lo = g.p[2] if g.p[2] > 0 else 0
    hi = g.n[2] + g.p[2]
    hi = g.e[2] if hi > g.e[2] else hi
    memset(dst, 0, g.e[0] * g.e[1] * g.e[2] * V * sizeof(floating))
    if hi <= lo:
        return
    for z in range(max(0, g.p[0]), min(g.e[0], g.n[0] + g.p[0])):
        for r in range(max(0, g.p[1]), min(g.e[1], g.n[1] + g.p[1])):
            lanes_last(x + ((z - g.p[0]) * g.n[1] + r - g.p[1]) * g.n[2] + lo - g.p[2], stride,
                       dst + ((z * g.e[1] + r) * g.e[2] + lo) * V, V, lanes, 0, hi - lo)


cdef void lane_blocks(const floating* x, floating* xb, Py_ssize_t N, Py_ssize_t C, Py_ssize_t V,
                      const Shape* g, int num_threads) noexcept nogil:
    """xb (blocks, C, e0, e1, e2, V) from x (N, C, n0, n1, n2): lane_plane per (block, c)."""
    cdef Py_ssize_t item, b, blocks = (N + V - 1) // V
    cdef Py_ssize_t plane = g.n[0] * g.n[1] * g.n[2], padded = g.e[0] * g.e[1] * g.e[2]
    for item in prange(blocks * C, schedule="static", num_threads=num_threads):
        b = item // C
        lane_plane(x + (b * V * C + item % C) * plane, C * plane,
                   N - b * V if N - b * V < V else V, xb + item * padded * V, V, g)


cdef inline void batch_tile(const floating* x, Py_ssize_t cs, const Py_ssize_t* loff,
                            Py_ssize_t lines, Py_ssize_t k2, Py_ssize_t ts, Py_ssize_t C,
                            Py_ssize_t ps, const floating* w, Py_ssize_t wk, floating* y,
                            Py_ssize_t yk, int KT, int PT) noexcept nogil:
    if floating is float:
        bkb_fwd_f32(x, cs, loff, lines, k2, ts, C, ps, w, wk, y, yk, KT, PT)
    else:
        bkb_fwd_f64(x, cs, loff, lines, k2, ts, C, ps, w, wk, y, yk, KT, PT)


cdef inline void batch_gk_tile(const floating* x, const floating* gb, Py_ssize_t gk,
                               const Shape* g, Py_ssize_t V, Py_ssize_t ts, floating* out,
                               Py_ssize_t ok, int more, int KT, int TT) noexcept nogil:
    """One block's sums of KT channels x TT taps of a line (bkb_gk)."""
    cdef Py_ssize_t zs = g.s[0] * g.e[1] * g.e[2] * V, ys = g.s[1] * g.e[2] * V
    if floating is float:
        bkb_gk_f32(x, gb, gk, g.o[0], g.o[1], g.o[2], zs, ys, g.s[2] * V, ts, out, ok, more, KT,
                   TT)
    else:
        bkb_gk_f64(x, gb, gk, g.o[0], g.o[1], g.o[2], zs, ys, g.s[2] * V, ts, out, ok, more, KT,
                   TT)


def batch_forward(const floating[::1] x, const floating[::1] w, floating[::1] y,
                  floating[::1] xb, floating[::1] rows, const Py_ssize_t[::1] loff,
                  const Py_ssize_t[::1] ktiles, const Py_ssize_t[::1] ptiles, Py_ssize_t k2,
                  Py_ssize_t d2, Py_ssize_t N, Py_ssize_t G, Py_ssize_t Cg, Py_ssize_t Kg,
                  Py_ssize_t V, object n, object p, object e, object o, object s,
                  int num_threads):
    """y (N, G * Kg, o) = x (N, G * Cg, n) convolved with w (G * Kg, Cg, taps) as given, the
    batch in blocks of V lanes. `loff`: each kernel line's offset in the lane planes (values)
    from an output's first input, its k2 taps d2 positions apart; `ktiles`, `ptiles`: (first,
    count) of the group's output channels and of a row's positions a tile; `xb` the lane
    planes; `rows` a thread's KT x o x V outputs (KT the largest tile's)."""
    cdef Shape g = make_shape(n, p, e, o, s)
    cdef Py_ssize_t C = G * Cg, K = G * Kg, lines = loff.shape[0], taps = lines * k2
    cdef Py_ssize_t blocks = (N + V - 1) // V, nk = ktiles.shape[0] // 2
    cdef Py_ssize_t npt = ptiles.shape[0] // 2, O = g.o[0] * g.o[1] * g.o[2]
    cdef Py_ssize_t padded = g.e[0] * g.e[1] * g.e[2], most = rows.shape[0]
    cdef Py_ssize_t item, b, gi, kt, k0, KT, z, r, j, kk, lanes, base
    cdef const floating* xg
    cdef const floating* wg
    cdef floating* buf
    if N == 0 or K == 0 or O == 0 or taps == 0:
        return
    most = most // max(1, num_threads)
    with nogil:
        lane_blocks(&x[0], &xb[0], N, C, V, &g, num_threads)
        for item in prange(blocks * G * nk, schedule="static", num_threads=num_threads):
            kt = item % nk
            gi = (item // nk) % G
            b = item // (nk * G)
            k0 = ktiles[2 * kt]
            KT = ktiles[2 * kt + 1]
            buf = &rows[0] + omp_get_thread_num() * most
            xg = &xb[0] + (b * C + gi * Cg) * padded * V
            wg = &w[0] + (gi * Kg + k0) * Cg * taps
            for z in range(g.o[0]):
                for r in range(g.o[1]):
                    base = ((z * g.s[0] * g.e[1] + r * g.s[1]) * g.e[2]) * V
                    for j in range(npt):
                        batch_tile(xg + base + ptiles[2 * j] * g.s[2] * V, padded * V, &loff[0],
                                   lines, k2, d2 * V, Cg, g.s[2] * V, wg, Cg * taps,
                                   buf + ((z * g.o[1] + r) * g.o[2] + ptiles[2 * j]) * V, O * V,
                                   <int>KT, <int>ptiles[2 * j + 1])
            lanes = N - b * V if N - b * V < V else V
            for kk in range(KT):
                unpack(buf + kk * O * V, V, O, 1, lanes,
                       &y[0] + (b * V * K + gi * Kg + k0 + kk) * O, K * O, O)


def batch_grad_kernel(const floating[::1] x, const floating[::1] gy, floating[::1] gw,
                      floating[::1] xb, floating[::1] gyb, floating[::1] sums,
                      const Py_ssize_t[::1] loff, const Py_ssize_t[::1] ktiles,
                      const Py_ssize_t[::1] ttiles, Py_ssize_t k2, Py_ssize_t d2, Py_ssize_t N,
                      Py_ssize_t G, Py_ssize_t Cg, Py_ssize_t Kg, Py_ssize_t V, object n,
                      object p, object e, object o, object s, int num_threads):
    """gw (G * Kg, Cg, taps) = the weight gradient (eq. 9.11, lifted), the batch in blocks of V
    lanes. `loff`: each kernel line's offset (values) in the lane planes from an output's first
    input, its k2 taps d2 positions apart; `ktiles`, `ttiles`: (first, count) of the group's
    output channels and of a line's taps a tile; `xb`, `gyb` the lane planes of x and gy;
    `sums` a thread's KT x taps x V sums (KT the largest tile's)."""
    cdef Shape g = make_shape(n, p, e, o, s)
    cdef Py_ssize_t C = G * Cg, K = G * Kg, lines = loff.shape[0], taps = lines * k2
    cdef Py_ssize_t blocks = (N + V - 1) // V, nk = ktiles.shape[0] // 2
    cdef Py_ssize_t ntt = ttiles.shape[0] // 2, O = g.o[0] * g.o[1] * g.o[2]
    cdef Py_ssize_t padded = g.e[0] * g.e[1] * g.e[2], most = sums.shape[0]
    cdef Py_ssize_t item, b, gi, c, kt, k0, KT, line, j, t0, kk, t, l
    cdef floating total
    cdef floating* acc
    if taps == 0 or K == 0:
        return
    if N * O == 0:
        gw[:] = 0
        return
    most = most // max(1, num_threads)
    with nogil:
        lane_blocks(&x[0], &xb[0], N, C, V, &g, num_threads)
        for item in prange(blocks * K, schedule="static", num_threads=num_threads):
            b = item // K
            lanes_last(&gy[0] + (b * V * K + item % K) * O, K * O, &gyb[0] + item * O * V, V,
                       N - b * V if N - b * V < V else V, 0, O)
        for item in prange(G * Cg * nk, schedule="static", num_threads=num_threads):
            kt = item % nk
            c = (item // nk) % Cg
            gi = item // (nk * Cg)
            k0 = ktiles[2 * kt]
            KT = ktiles[2 * kt + 1]
            acc = &sums[0] + omp_get_thread_num() * most
            for b in range(blocks):     # in order: each block's sums carried to the next
                for line in range(lines):
                    for j in range(ntt):
                        t0 = ttiles[2 * j]
                        batch_gk_tile(&xb[0] + ((b * C + gi * Cg + c) * padded * V + loff[line]
                                                + t0 * d2 * V),
                                      &gyb[0] + (b * K + gi * Kg + k0) * O * V, O * V, &g, V,
                                      d2 * V, acc + (line * k2 + t0) * V, taps * V, b > 0,
                                      <int>KT, <int>ttiles[2 * j + 1])
            for kk in range(KT):
                for t in range(taps):
                    total = 0
                    for l in range(V):
                        total = total + acc[(kk * taps + t) * V + l]
                    gw[((gi * Kg + k0 + kk) * Cg + c) * taps + t] = total
