# The blocked direct algorithm along planes (included by _blocked.pyx; its tiles are
# src/_blocked_planes.h, its plan fastconv/_algorithms/blocked_planes.py). Each input channel's
# plane is first copied into the phases of the stride that the taps read: phase a = (a0, a1, a2)
# holds the zero-padded input at positions m * s + a, so that every tap reads one phase at one
# constant offset, whatever the stride; output position (z, y, x) reads position
# (z * f1 + y) * f2 + x of a phase plus its tap's offset, f the phases' extent. The tiles run
# along output rows and store in place (NCHW).


cdef struct Phases:
    Py_ssize_t n[3]     # the input plane
    Py_ssize_t p[3]     # padded position e holds input element e - p
    Py_ssize_t f[3]     # a phase's extent
    Py_ssize_t o[3]     # the output
    Py_ssize_t s[3]     # the stride
    Py_ssize_t plane    # values a phase takes: f0 f1 f2, then zeros a tile may read past them
    Py_ssize_t count    # phases a channel


cdef inline Py_ssize_t first_at(Py_ssize_t lo, Py_ssize_t a, Py_ssize_t s) noexcept nogil:
    """The first m >= 0 with m * s + a >= lo."""
    return (lo - a + s - 1) // s if lo > a else 0


cdef void phase_row(const floating* src, floating* dst, const Phases* g, const Py_ssize_t* a,
                    Py_ssize_t m0, Py_ssize_t m1) noexcept nogil:
    """Row (m0, m1) of the phase a (a0, a1, a2) of the input plane src (n0, n1, n2) into dst
    (f2 values): value m is the input at (m0, m1, m) * s + a - p, zero where that lies outside
    it. The phase's last row also zeroes the slack after it."""
    cdef Py_ssize_t m, lo, hi, s2 = g.s[2]
    cdef Py_ssize_t z = m0 * g.s[0] + a[0] - g.p[0], r = m1 * g.s[1] + a[1] - g.p[1]
    cdef const floating* srow
    lo = first_at(g.p[2], a[2], s2)
    hi = first_at(g.n[2] + g.p[2], a[2], s2)
    lo = g.f[2] if lo > g.f[2] else lo
    hi = g.f[2] if hi > g.f[2] else hi
    hi = lo if hi < lo else hi
    if m0 == g.f[0] - 1 and m1 == g.f[1] - 1:
        memset(dst + g.f[2], 0, (g.plane - g.f[0] * g.f[1] * g.f[2]) * sizeof(floating))
    if z < 0 or z >= g.n[0] or r < 0 or r >= g.n[1] or hi == lo:
        memset(dst, 0, g.f[2] * sizeof(floating))
        return
    memset(dst, 0, lo * sizeof(floating))
    srow = src + (z * g.n[1] + r) * g.n[2] + a[2] - g.p[2]
    if s2 == 1:
        memcpy(dst + lo, srow + lo, (hi - lo) * sizeof(floating))
    else:
        for m in range(lo, hi):
            dst[m] = srow[m * s2]
    memset(dst + hi, 0, (g.f[2] - hi) * sizeof(floating))


cdef inline Py_ssize_t tile_first(Py_ssize_t kg, Py_ssize_t Kg, Py_ssize_t kgroups) noexcept nogil:
    """The first output channel of tile kg of a group's Kg in kgroups tiles: the tiles as even as
    can be (a last tile of 2 of 6 rows left a thread idle a fifth of a stem's call)."""
    return kg * Kg // kgroups


cdef inline void planes_row(const floating* x, Py_ssize_t cs, const Py_ssize_t* toff,
                            Py_ssize_t taps, Py_ssize_t C, const floating* w, floating* y,
                            Py_ssize_t yr, Py_ssize_t xrs, Py_ssize_t yrs, Py_ssize_t ow,
                            int R, int RW, int NV) noexcept nogil:
    if floating is float:
        bpl_row_f32(x, cs, toff, taps, C, w, y, yr, xrs, yrs, ow, R, RW, NV)
    else:
        bpl_row_f64(x, cs, toff, taps, C, w, y, yr, xrs, yrs, ow, R, RW, NV)


def planes_forward(const floating[::1] x, const floating[::1] w, floating[::1] y,
                   floating[::1] xph, floating[::1] wpk, const Py_ssize_t[::1] toff,
                   const Py_ssize_t[::1] ph, Py_ssize_t N, Py_ssize_t G, Py_ssize_t Cg,
                   Py_ssize_t Kg, object n, object p, object f, object o, object s,
                   Py_ssize_t plane, int R, int RW, int NV, int num_threads):
    """y (N, G * Kg, o) = x (N, G * Cg, n) convolved with w (G * Kg, Cg, taps), first
    interleaved into `wpk` by tiles of R output channels (group, tile, channel, tap, R rows;
    zeros past a tile's channels). `ph`: the phases a channel
    keeps (a0, a1, a2 each), `plane` values apart in `xph` (N * G * Cg channels of them); `toff`
    each tap's offset there from an output's position (z, y, x), which lies at (z * f1 + y) * f2
    + x in a phase. Output rows at least a vector wide: a tile takes RW output rows of one depth
    and NV vectors of each (a row's last vector ends at its last output, overlapping the one
    before), R output channels, and stores them in place; an item takes the RW rows whole, for
    R channels."""
    cdef Phases g
    cdef int i
    cdef Py_ssize_t taps = toff.shape[0], tiles, kgroups, cs, nplane, oplane, yblocks
    cdef Py_ssize_t item, rest, qt, kg, gi, nn, k0, rr, z, yy, rw, c, t, r, k
    cdef Py_ssize_t per_tile
    cdef const floating* xs
    cdef const floating* wk
    cdef floating* yk
    for i in range(3):
        g.n[i], g.p[i], g.f[i], g.o[i], g.s[i] = n[i], p[i], f[i], o[i], s[i]
    g.plane, g.count = plane, ph.shape[0] // 3
    oplane = g.o[0] * g.o[1] * g.o[2]
    if N * G * Kg * oplane == 0:
        return
    yblocks = (g.o[1] + RW - 1) // RW
    tiles = g.o[0] * yblocks
    kgroups = (Kg + R - 1) // R
    cs = g.count * plane
    nplane = g.n[0] * g.n[1] * g.n[2]
    per_tile = Cg * taps * R
    with nogil:
        for item in prange(G * kgroups, schedule="static", num_threads=num_threads):
            gi = item // kgroups
            k0 = tile_first(item % kgroups, Kg, kgroups)
            rr = tile_first(item % kgroups + 1, Kg, kgroups) - k0
            for c in range(Cg):
                for t in range(taps):
                    for r in range(R):
                        k = k0 + r
                        wpk[item * per_tile + (c * taps + t) * R + r] = (
                            w[((gi * Kg + k) * Cg + c) * taps + t] if r < rr else 0)
        for item in prange(N * G * Cg * g.count * g.f[0] * g.f[1], schedule="static",
                           num_threads=num_threads):     # a row of a phase an item
            rest = item // (g.f[0] * g.f[1])
            phase_row(&x[0] + (rest // g.count) * nplane,
                      &xph[0] + rest * plane + (item % (g.f[0] * g.f[1])) * g.f[2], &g,
                      &ph[0] + 3 * (rest % g.count), (item // g.f[1]) % g.f[0], item % g.f[1])
        for item in prange(N * G * kgroups * tiles, schedule="static", num_threads=num_threads):
            qt = item % tiles
            rest = item // tiles
            kg = rest % kgroups
            rest = rest // kgroups
            gi = rest % G
            nn = rest // G
            k0 = tile_first(kg, Kg, kgroups)
            rr = tile_first(kg + 1, Kg, kgroups) - k0
            xs = &xph[0] + (nn * G + gi) * Cg * cs
            wk = &wpk[0] + (gi * kgroups + kg) * per_tile
            yk = &y[0] + ((nn * G + gi) * Kg + k0) * oplane
            z = qt // yblocks
            yy = (qt - z * yblocks) * RW
            rw = g.o[1] - yy if g.o[1] - yy < RW else RW
            planes_row(xs + (z * g.f[1] + yy) * g.f[2], cs, &toff[0], taps, Cg, wk,
                       yk + (z * g.o[1] + yy) * g.o[2], oplane, g.f[2], g.o[2], g.o[2],
                       <int>rr, <int>rw, NV)
