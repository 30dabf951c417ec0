# The kernel gradient of the blocked direct algorithm (included by _blocked.pyx, whose kernels
# and helpers it runs): the weights' gradients of a block of output channels, vectorised across
# the channels, each input value broadcast against them (bk_gk, src/_blocked_gk.h).
#
# bk_gk wants the output gradient transposed, a position's channels together. Transposed whole
# before any tile read it, gy went to memory and back where it outgrew L2 (MobileNetV2's stem
# at batch 8: 12.8 MB, and every tile read it again). Here a work item (a part of the batch's
# output units, a group, a block of output channels) transposes one chunk of its units into its
# thread's buffer (CHUNK_BYTES, fastconv/_algorithms/blocked.py) and runs every (input channel,
# tile of taps) over it while it is in cache, then the next chunk: gy is read once and its
# transpose never leaves the cache. A unit is a whole sample where a sample's output fits a
# chunk (ResNet's 7x7 maps: several samples a chunk, so each tile's pass is long), else an
# output row of a (sample, depth) plane (of a 1-D layer, a position), a chunk then within one
# plane. A tile's sums are carried from chunk to chunk through the item's output (bk_gk's
# `more`: the same bits as one pass over the part). The parts, a number fixed by the problem,
# are summed in part order (sum_parts), so nothing depends on the thread count.

from _parallel cimport part_start, sum_parts


cdef inline void run_tile(const floating* x, Py_ssize_t xn, const floating* g, Py_ssize_t gn,
                          Py_ssize_t samples, const Py_ssize_t* roff, const Shape* sh,
                          floating* out, Py_ssize_t orow, int KB, int RY, int CX, int more,
                          Py_ssize_t o0, Py_ssize_t o1, Py_ssize_t o2) noexcept nogil:
    """bk_gk over `samples` samples of o0 x o1 x o2 output positions (sh's, or a chunk's)."""
    if floating is float:
        bk_gk_f32(x, xn, g, gn, samples, roff, o0, o1, o2, sh.s[0] * sh.e[1] * sh.e[2],
                  sh.s[1] * sh.e[2], sh.s[2], out, orow, KB, RY, CX, more)
    else:
        bk_gk_f64(x, xn, g, gn, samples, roff, o0, o1, o2, sh.s[0] * sh.e[1] * sh.e[2],
                  sh.s[1] * sh.e[2], sh.s[2], out, orow, KB, RY, CX, more)


cdef void gk_item(const floating* planes, const floating* gy, floating* dst, floating* buf,
                  const Py_ssize_t* roff, const Py_ssize_t[:, ::1] tiles, Py_ssize_t cols,
                  const Shape* sh, Py_ssize_t C, Py_ssize_t K, Py_ssize_t gi, Py_ssize_t Cg,
                  Py_ssize_t Kg, Py_ssize_t kb, Py_ssize_t lines, Py_ssize_t taps, int KB,
                  Py_ssize_t V, bint whole, Py_ssize_t chunk, Py_ssize_t a,
                  Py_ssize_t b) noexcept nogil:
    """dst (lines x taps x V, one block's) = block kb's sums over the output units a .. b - 1
    of the batch, `chunk` units at a time transposed into `buf`. A unit is a sample (`whole`:
    its output fits a chunk) or else one output row of a (sample, depth) plane (of a 1-D
    layer, one position), a chunk then within one plane."""
    cdef bint rows = sh.o[0] > 1 or sh.o[1] > 1
    cdef Py_ssize_t out_plane = sh.o[0] * sh.o[1] * sh.o[2], padded = sh.e[0] * sh.e[1] * sh.e[2]
    cdef Py_ssize_t units = 1 if whole else (sh.o[1] if rows else sh.o[2])
    cdef Py_ssize_t per = out_plane if whole else (sh.o[2] if rows else 1)
    cdef Py_ssize_t ustep = 0 if whole else (sh.s[1] * sh.e[2] if rows else sh.s[2])
    cdef Py_ssize_t zs = sh.s[0] * sh.e[1] * sh.e[2], lanes = block_lanes(Kg, kb, V)
    cdef Py_ssize_t u = a, u0, z, n, count, c, t, o0, o1, o2, i
    cdef const floating* xc
    while u < b:
        if whole:       # samples u .. u + count - 1
            n, z, u0, count = u, 0, 0, min(chunk, b - u)
        else:           # rows (positions) u0 .. u0 + count - 1 of the plane (n, z)
            u0 = u % units
            z = (u // units) % sh.o[0]
            n = u // (units * sh.o[0])
            count = min(chunk, units - u0, b - u)
        for i in range(count if whole else 1):      # each sample's block of gy, or the rows
            lanes_last(gy + ((n + i) * K + gi * Kg + kb * V) * out_plane + (z * units + u0) * per,
                       out_plane, buf + i * out_plane * V, V, lanes, 0,
                       out_plane if whole else count * per)
        if whole:
            o0, o1, o2 = sh.o[0], sh.o[1], sh.o[2]
        else:
            o0, o1, o2 = 1, count if rows else 1, sh.o[2] if rows else count
        for c in range(lines):
            xc = planes + (n * C + gi * Cg + c) * padded + z * zs + u0 * ustep
            for t in range(tiles.shape[0]):
                run_tile(xc + tiles[t, 2], C * padded, buf, out_plane * V,
                         count if whole else 1, roff + tiles[t, 0], sh,
                         dst + (c * taps + tiles[t, 0] * cols + tiles[t, 2]) * V, cols * V, KB,
                         <int>tiles[t, 1], <int>tiles[t, 3], u > a, o0, o1, o2)
        u = u + count


def grad_kernel(const floating[::1] x, const floating[::1] gy, floating[::1] dwp,
                floating[::1] xpad, floating[::1] bufs, floating[::1] partial,
                const Py_ssize_t[::1] roff, const Py_ssize_t[:, ::1] tiles, Py_ssize_t cols,
                Py_ssize_t N, Py_ssize_t G, Py_ssize_t Cg, Py_ssize_t Kg, int KB, Py_ssize_t V,
                object n, object p, object e, object o, object s, Py_ssize_t parts,
                bint channel_rows, bint whole, Py_ssize_t chunk, int num_threads):
    """dwp (G, blocks, Cg, taps, V) = the weight gradient (eq. 9.11, lifted), V lanes of output
    channels; zeros past the group's channels. Taps are rows of `cols` columns (input values one
    apart): tile i covers rows tiles[i, 0] to + tiles[i, 1] and columns tiles[i, 2] to
    + tiles[i, 3], row r starting roff[r] from an output's first input. With `channel_rows` the
    rows are the group's (input channel, kernel line) pairs (roff: the channel's planes plus the
    line's offset): one tile then sums several channels over one pass of gy, which a 1-D layer's
    3 taps alone left bound by reading gy (TCN, 64 channels: 6 accumulators for every 128 bytes
    of gy). `xpad` holds N * C padded planes (or is empty, as for forward); `bufs` num_threads
    buffers of `chunk` units x V lanes (units: samples where `whole`, else output rows, or a 1-D
    layer's positions); `partial` `parts` copies of dwp when parts > 1 (the units cut into that
    many runs, at most one a unit)."""
    cdef Shape g = make_shape(n, p, e, o, s)
    cdef Py_ssize_t C = G * Cg, K = G * Kg, blocks = (Kg + V - 1) // V
    cdef bint rows = g.o[0] > 1 or g.o[1] > 1
    cdef Py_ssize_t units = N if whole else N * g.o[0] * (g.o[1] if rows else g.o[2])
    cdef Py_ssize_t per_buf = chunk * (g.o[0] * g.o[1] * g.o[2] if whole
                                       else g.o[2] if rows else 1) * V
    cdef Py_ssize_t taps = roff.shape[0] * cols // Cg if channel_rows else roff.shape[0] * cols
    cdef Py_ssize_t lines = 1 if channel_rows else Cg
    cdef Py_ssize_t size = G * blocks * Cg * taps * V, item, part, gi, kb
    cdef const floating* planes
    if size == 0:
        return
    if units == 0:
        dwp[:] = 0
        return
    with nogil:
        planes = input_planes(&x[0], xpad, &g, N * C, num_threads)
        for item in prange(parts * G * blocks, schedule="static", num_threads=num_threads):
            kb = item % blocks
            gi = (item // blocks) % G
            part = item // (blocks * G)
            gk_item(planes, &gy[0],
                    ((&partial[0] + part * size) if parts > 1 else &dwp[0])
                    + (gi * blocks + kb) * Cg * taps * V,
                    &bufs[0] + omp_get_thread_num() * per_buf, &roff[0], tiles, cols, &g, C, K,
                    gi, Cg, Kg, kb, lines, taps, KB, V, whole, chunk,
                    part_start(0, units, part, parts), part_start(0, units, part + 1, parts))
    if parts > 1:
        sum_parts(&partial[0], &dwp[0], size, parts, num_threads)
