"""im2col + GEMM convolution: forward, input gradient (col2im) and kernel gradient.

Arrays arrive lifted to three spatial dimensions, C-contiguous and flattened; the geometry comes
from the ConvSpec (see _geometry.pxd). A column matrix has one row per (input channel, kernel tap)
-- R = C * k_vol rows, those of group g contiguous -- and one column per output position.

Work is cut into chunks of `width` output positions of one sample. Each OpenMP thread packs a
chunk into its own small buffer (it stays in cache) and at once multiplies it with the
single-threaded BLAS (the caller holds the BLAS at one thread): one thread pool, no buffer the size
of the whole column matrix. Forward can instead run on fastconv's own GEMM (_gemm.pxd,
src/_gemm_kernels.h): the weights packed once per call into blocks of its register tile's rows,
each chunk packed straight into panels of the tile's columns (forward_panels), which the BLAS
would otherwise copy into its own panels again; the input gradient's small GEMMs run on it too,
reading gy in place (rows_gemm), and so does the whole input gradient where im2col.py's GI_PANELS
says (grad_input_panels: W^T packed once, gy's chunks into panels). The column matrix's packing
and col2im are _im2col_columns.pxd's. Results do not depend on the thread count:
  forward      each chunk of y is written by one GEMM;
  grad_input   work items are (sample, block of input channels, part of the positions), and
               parts that write the same values never run at once (grad_input_blocks); or
               (whole samples, group, block of input channels) (grad_input_panels);
  grad_kernel  items are (part, group, slab of the column matrix's rows); the chunks are split
               into `parts` (a number fixed by the problem, not by the threads), each summed
               into its own partial gradient, and the partials are added in order.
"""
from cython cimport floating
from cython.parallel cimport prange
from libc.string cimport memset

from _blas cimport gemm
from _gemm cimport (gm_cols_double, gm_cols_float, gm_init, gm_level, gm_rows_double,
                    gm_rows_float, pack_a, panels_gemm, rows_gemm, tile_cols, tile_rows)
from _geometry cimport Geom, geom_from_spec
from _phase cimport phase_rows, unphase_rows
from _im2col_columns cimport pack_chunk, scatter_chunk
from _im2col_items cimport ChannelBlock, Chunk, channel_block, chunk_of, part_position
from _parallel cimport data_or_null, part_start, sum_parts, thread_slice

# The packed GEMM's kernels run at this process's instruction-set level (src/_cpu_level.h).
gm_init()

cdef enum:
    PACK_SLABS = 8  # row slabs of a chunk packed in parallel when forward packs each chunk once
    PANEL_ROWS = 8  # column-matrix rows packed at a time on their way into panels
    WT_DEPTH = 16   # output channels of W^T packed a work item (pack_wt)


cdef inline bint is_pointwise(const Geom* g) noexcept nogil:
    """A 1x1 kernel with stride 1 and no padding: the input itself is the column matrix.

    Geom carries only the low padding; an output as large as the input rules out the high one.
    """
    return (g.k_vol == 1 and g.sd == 1 and g.sh == 1 and g.sw == 1
            and g.pd == 0 and g.ph == 0 and g.pw == 0
            and g.od == g.id and g.oh == g.ih and g.ow == g.iw)


cdef const floating* phased_input(const Geom* g, const floating* x, floating* xp,
                                  int num_threads) noexcept nogil:
    """x with its rows stored by phase of the width stride, in `xp` (x itself when xp is NULL)."""
    cdef Py_ssize_t item
    if xp == NULL:
        return x
    for item in prange(g.N * g.C, nogil=True, schedule="static", num_threads=num_threads):
        phase_rows(x + item * g.in_vol, xp + item * g.in_vol, g.id * g.ih, g.iw, g.sw)
    return xp


cdef inline const floating* chunk_columns(const Geom* g, const floating* x, floating* col,
                                          Py_ssize_t n, Py_ssize_t p0, Py_ssize_t p1,
                                          bint pointwise, bint phased) noexcept nogil:
    """The column matrix of positions p0..p1-1 of sample n: x itself for a pointwise kernel
    (rows g.P apart), else packed into `col` (rows p1 - p0 apart)."""
    if pointwise:
        return x + n * g.C * g.P + p0
    pack_chunk(x, col, g, n, 0, g.C * g.k_vol, p0, p1, phased)
    return col


cdef void forward_chunks(const Geom* g, const floating* x, const floating* w, floating* y,
                         floating* work, floating* xp, Py_ssize_t width, Py_ssize_t kblocks,
                         int num_threads) noexcept nogil:
    """Items are chunks: the thread that multiplies a chunk (one GEMM per group) packs it into its
    own buffer. With `kblocks` > 1 (too few chunks to keep the threads busy) every chunk is
    packed once, in row slabs, into a buffer of its own, and the items are (chunk, group, block
    of output channels)."""
    cdef Py_ssize_t chunks = g.N * ((g.P + width - 1) // width)
    cdef Py_ssize_t R = g.C * g.k_vol, Rg = g.Cg * g.k_vol, kb = (g.Kg + kblocks - 1) // kblocks
    cdef Py_ssize_t item, i, n, p0, p1, gi, ld, k0, k1
    cdef const floating* b
    cdef Chunk c
    cdef ChannelBlock blk
    cdef bint pointwise = is_pointwise(g), phased = xp != NULL, shared = kblocks > 1
    x = phased_input(g, x, xp, num_threads)
    if not shared:
        for i in prange(chunks, nogil=True, schedule="static", num_threads=num_threads):
            c = chunk_of(g, i, width, 1)
            n, p0, p1 = c.n, c.p0, c.p1
            b = chunk_columns(g, x, thread_slice(work, R * width), n, p0, p1, pointwise, phased)
            ld = g.P if pointwise else p1 - p0
            for gi in range(g.G):
                gemm(False, False, g.Kg, p1 - p0, Rg, <floating>1, w + gi * g.Kg * Rg, Rg,
                     b + gi * Rg * ld, ld, <floating>0, y + (n * g.K + gi * g.Kg) * g.P + p0, g.P)
        return
    if not pointwise:
        for item in prange(chunks * PACK_SLABS, nogil=True, schedule="static",
                           num_threads=num_threads):
            i = item // PACK_SLABS
            c = chunk_of(g, i, width, 1)
            n, p0, p1 = c.n, c.p0, c.p1
            k0 = (item % PACK_SLABS) * R // PACK_SLABS
            k1 = (item % PACK_SLABS + 1) * R // PACK_SLABS
            pack_chunk(x, work + i * R * width + k0 * (p1 - p0), g, n, k0, k1, p0, p1, phased)
    for item in prange(chunks * g.G * kblocks, nogil=True, schedule="static",
                       num_threads=num_threads):
        blk = channel_block(g, item, kblocks, kb, g.Kg)
        i, gi, k0, k1 = blk.chunk, blk.group, blk.k0, blk.k1
        c = chunk_of(g, i, width, 1)
        n, p0, p1 = c.n, c.p0, c.p1
        if pointwise:
            b = x + n * g.C * g.P + p0
            ld = g.P
        else:
            b = work + i * R * width
            ld = p1 - p0
        if k0 < k1:
            gemm(False, False, k1 - k0, p1 - p0, Rg, <floating>1, w + (gi * g.Kg + k0) * Rg, Rg,
                 b + gi * Rg * ld, ld, <floating>0, y + (n * g.K + gi * g.Kg + k0) * g.P + p0,
                 g.P)


cdef inline void row_into_panels(const floating* src, Py_ssize_t count, Py_ssize_t at,
                                 floating* row, Py_ssize_t panel_stride,
                                 Py_ssize_t nr) noexcept nogil:
    """src[0..count) into columns at..at + count of one row of the packed GEMM's panels: column
    q at row[(q // nr) * panel_stride + q % nr], a panel's piece at a time (a loop: a piece is
    at most nr values, fewer than a call of memcpy pays for)."""
    cdef Py_ssize_t q = 0, cnt, i
    cdef floating* out
    while q < count:
        cnt = min(nr - (at + q) % nr, count - q)
        out = row + ((at + q) // nr) * panel_stride + (at + q) % nr
        for i in range(cnt):
            out[i] = src[q + i]
        q = q + cnt


cdef inline void zero_in_panels(Py_ssize_t at, Py_ssize_t end, floating* row,
                                Py_ssize_t panel_stride, Py_ssize_t nr) noexcept nogil:
    """Columns at..end of one row of the packed GEMM's panels (laid out as row_into_panels's) set
    to 0: the columns past a chunk's last, or the rows past a block's (pack_wt)."""
    cdef Py_ssize_t q = at, cnt
    while q < end:
        cnt = min(nr - q % nr, end - q)
        memset(row + (q // nr) * panel_stride + q % nr, 0, cnt * sizeof(floating))
        q = q + cnt


cdef void pack_panels(const floating* x, floating* panels, floating* tmp, const Geom* g,
                      Chunk c, Py_ssize_t r0, Py_ssize_t r1, Py_ssize_t nr,
                      bint phased) noexcept nogil:
    """Rows r0..r1 of chunk c's column matrix, in the packed GEMM's panels: column q (sample
    q // span, position p0 + q % span) of row r at panels[group][q // nr][r - group * Rg][q % nr],
    the columns past the chunk's zero. PANEL_ROWS rows of one sample at a time are packed into
    `tmp` first (pack_chunk's layout, in L1) and cut into their panels from there."""
    cdef Py_ssize_t span = c.p1 - c.p0, cols = c.samples * span, npan = (cols + nr - 1) // nr
    cdef Py_ssize_t Rg = g.Cg * g.k_vol, r = r0, s, rr, t, gi
    while r < r1:
        s = min(<Py_ssize_t>PANEL_ROWS, r1 - r)
        for t in range(c.samples):
            pack_chunk(x, tmp, g, c.n + t, r, r + s, c.p0, c.p1, phased)
            for rr in range(r, r + s):
                gi = rr // Rg
                row_into_panels(tmp + (rr - r) * span, span, t * span,
                                panels + gi * npan * Rg * nr + (rr - gi * Rg) * nr, Rg * nr, nr)
        for rr in range(r, r + s):
            gi = rr // Rg
            zero_in_panels(cols, npan * nr, panels + gi * npan * Rg * nr + (rr - gi * Rg) * nr,
                           Rg * nr, nr)
        r = r + s


cdef void forward_panels(const Geom* g, const floating* x, const floating* w, floating* y,
                         floating* ap, floating* work, floating* tmp, floating* xp,
                         Py_ssize_t width, Py_ssize_t samples, Py_ssize_t kblocks,
                         int num_threads) noexcept nogil:
    """forward_chunks on fastconv's own GEMM (src/_gemm_kernels.h): the weights packed once into
    blocks of the register tile's rows (`ap`), each chunk packed straight into panels of its
    columns (`work`), so no value is copied twice. A chunk is `width` positions of one sample,
    or (`samples` > 1, small maps) that many whole samples. Items as in forward_chunks; with
    `kblocks` > 1 the blocks of output channels are whole blocks of the tile's rows."""
    cdef Py_ssize_t kr = tile_rows(w), nr = tile_cols(w)
    cdef Py_ssize_t chunks = (g.N + samples - 1) // samples if samples > 1 else \
        g.N * ((g.P + width - 1) // width)
    cdef Py_ssize_t R = g.C * g.k_vol, Rg = g.Cg * g.k_vol, nblk = (g.Kg + kr - 1) // kr
    cdef Py_ssize_t cols = samples * g.P if samples > 1 else width
    cdef Py_ssize_t chunk_size = R * ((cols + nr - 1) // nr) * nr, rows_size = PANEL_ROWS * (
        g.P if samples > 1 else width)
    cdef Py_ssize_t kb = ((g.Kg + kblocks - 1) // kblocks + kr - 1) // kr * kr
    cdef Py_ssize_t item, i, gi, k0, k1, npan, span
    cdef floating* panels
    cdef Chunk c
    cdef ChannelBlock blk
    cdef bint phased = xp != NULL
    x = phased_input(g, x, xp, num_threads)
    for item in prange(g.G * nblk, nogil=True, schedule="static", num_threads=num_threads):
        gi = item // nblk
        k0 = (item - gi * nblk) * kr
        pack_a(w + (gi * g.Kg + k0) * Rg, min(kr, g.Kg - k0), Rg, Rg, 1, ap + item * kr * Rg)
    if kblocks == 1:
        for i in prange(chunks, nogil=True, schedule="static", num_threads=num_threads):
            c = chunk_of(g, i, width, samples)
            span = c.p1 - c.p0
            panels = thread_slice(work, chunk_size)
            pack_panels(x, panels, thread_slice(tmp, rows_size), g, c, 0, R, nr, phased)
            npan = (c.samples * span + nr - 1) // nr
            for gi in range(g.G):
                panels_gemm(g.Kg, c.samples * span, Rg, ap + gi * nblk * kr * Rg,
                            panels + gi * npan * Rg * nr,
                            y + (c.n * g.K + gi * g.Kg) * g.P + c.p0, g.P, span, g.K * g.P)
        return
    for item in prange(chunks * PACK_SLABS, nogil=True, schedule="static", num_threads=num_threads):
        i = item // PACK_SLABS
        pack_panels(x, work + i * chunk_size, thread_slice(tmp, rows_size), g,
                    chunk_of(g, i, width, samples), (item % PACK_SLABS) * R // PACK_SLABS,
                    (item % PACK_SLABS + 1) * R // PACK_SLABS, nr, phased)
    for item in prange(chunks * g.G * kblocks, nogil=True, schedule="static",
                       num_threads=num_threads):
        blk = channel_block(g, item, kblocks, kb, g.Kg)
        i, gi, k0, k1 = blk.chunk, blk.group, blk.k0, blk.k1
        c = chunk_of(g, i, width, samples)
        span = c.p1 - c.p0
        npan = (c.samples * span + nr - 1) // nr
        if k0 < k1:
            panels_gemm(k1 - k0, c.samples * span, Rg, ap + (gi * nblk + k0 // kr) * kr * Rg,
                        work + i * chunk_size + gi * npan * Rg * nr,
                        y + (c.n * g.K + gi * g.Kg + k0) * g.P + c.p0, g.P, span, g.K * g.P)


cdef void grad_input_blocks(const Geom* g, const floating* gy, const floating* w, floating* gx,
                            floating* work, floating* rowtmp, floating* packed, Py_ssize_t width,
                            Py_ssize_t block, Py_ssize_t parts, int num_threads) noexcept nogil:
    """Items are (sample, group, block of `block` input channels, part of the positions);
    positions in chunks of `width`.

    With `parts` > 1 (few items: wav2vec's single-channel first layer at batch 1 had one), the
    even parts run first, then the odd ones: the plan makes each part wide enough that only
    neighbours write the same gx values, so no value is written by two threads at once, and each
    value's sums come in an order fixed by the parts, not by the threads.
    With `rowtmp` (one row of the input per thread) the block is summed with its rows stored by
    phase of the width stride (contiguous adds), then put back in order. With `packed` (per
    thread: the block's weights in tile blocks, then a strip) the GEMMs run on fastconv's own
    kernel, reading gy in place (rows_gemm): the BLAS ran wav2vec's 10-row one at 41 GFLOP/s."""
    cdef Py_ssize_t per_group = (g.Cg + block - 1) // block, Rg = g.Cg * g.k_vol
    cdef Py_ssize_t items = g.N * g.G * per_group, half, parity, q, kr = tile_rows(w), r0
    cdef Py_ssize_t a_size = (block * g.k_vol + kr - 1) // kr * kr * g.Kg
    cdef Py_ssize_t item, n, gi, c0, c1, p0, p1, pend, ld
    cdef floating* col
    cdef floating* tmp
    cdef floating* ap
    cdef const floating* wb
    cdef const floating* gyb
    cdef ChannelBlock blk
    cdef bint pointwise = is_pointwise(g), phased = rowtmp != NULL
    for parity in range(2 if parts > 1 else 1):
        half = (parts + 1 - parity) // 2
        for item in prange(items * half, nogil=True, schedule="static", num_threads=num_threads):
            q = 2 * (item % half) + parity
            blk = channel_block(g, item // half, per_group, block, g.Cg)
            n = blk.chunk
            gi = blk.group
            c0 = gi * g.Cg + blk.k0
            c1 = gi * g.Cg + blk.k1
            col = thread_slice(work, block * g.k_vol * width)
            wb = w + gi * g.Kg * Rg + blk.k0 * g.k_vol      # W_g^T's rows of channels c0..c1
            gyb = gy + (n * g.K + gi * g.Kg) * g.P          # gy[n, group]
            if packed != NULL:
                ap = thread_slice(packed, a_size + g.Kg * tile_cols(w))
                r0 = 0
                while r0 < (c1 - c0) * g.k_vol:
                    pack_a(wb + r0, min(kr, (c1 - c0) * g.k_vol - r0), g.Kg, 1, Rg,
                           ap + r0 * g.Kg)
                    r0 = r0 + kr
            p0 = part_position(g, q, parts)
            pend = part_position(g, q + 1, parts)
            while p0 < pend:
                p1 = min(p0 + width, pend)
                if pointwise:       # gx[n, c0:c1, p0:p1] = W_g^T[c0:c1] gy[n, group, p0:p1]
                    gemm(True, False, c1 - c0, p1 - p0, g.Kg, <floating>1, wb, Rg, gyb + p0, g.P,
                         <floating>0, gx + (n * g.C + c0) * g.P + p0, g.P)
                else:
                    ld = p1 - p0
                    if packed != NULL:
                        rows_gemm((c1 - c0) * g.k_vol, ld, g.Kg, ap, gyb + p0, g.P, col, ld,
                                  ap + a_size)
                    else:
                        gemm(True, False, (c1 - c0) * g.k_vol, ld, g.Kg, <floating>1, wb, Rg,
                             gyb + p0, g.P, <floating>0, col, ld)
                    scatter_chunk(gx, col, g, n, c0, c1, p0, p1, phased)
                p0 = p1
            if phased and parts == 1:
                tmp = thread_slice(rowtmp, g.iw)
                unphase_rows(gx + (n * g.C + c0) * g.in_vol, tmp, (c1 - c0) * g.id * g.ih, g.iw,
                             g.sw)
    if phased and parts > 1:
        for item in prange(items, nogil=True, schedule="static", num_threads=num_threads):
            blk = channel_block(g, item, per_group, block, g.Cg)
            tmp = thread_slice(rowtmp, g.iw)
            unphase_rows(gx + (blk.chunk * g.C + blk.group * g.Cg + blk.k0) * g.in_vol, tmp,
                         (blk.k1 - blk.k0) * g.id * g.ih, g.iw, g.sw)


cdef void pack_gy_panels(const floating* gy, floating* panels, const Geom* g, Py_ssize_t n,
                         Py_ssize_t samples, Py_ssize_t gi, Py_ssize_t p0, Py_ssize_t p1,
                         Py_ssize_t nr) noexcept nogil:
    """Positions p0..p1 of gy[n..n + samples, group gi] (Kg rows a sample) in the packed GEMM's
    panels: column q (sample q // span, position p0 + q % span) of row kk at
    panels[q // nr][kk][q % nr], the columns past the last zero. A row of a sample at a time,
    cut into its panels."""
    cdef Py_ssize_t span = p1 - p0, cols = samples * span, npan = (cols + nr - 1) // nr
    cdef Py_ssize_t s, kk
    for s in range(samples):
        for kk in range(g.Kg):
            row_into_panels(gy + ((n + s) * g.K + gi * g.Kg + kk) * g.P + p0, span, s * span,
                            panels + kk * nr, g.Kg * nr, nr)
    for kk in range(g.Kg):
        zero_in_panels(cols, npan * nr, panels + kk * nr, g.Kg * nr, nr)


cdef void pack_wt(const Geom* g, const floating* w, floating* ap, Py_ssize_t item,
                  Py_ssize_t per_group, Py_ssize_t block, Py_ssize_t rb,
                  Py_ssize_t kr) noexcept nogil:
    """Item (group, channel block, WT_DEPTH output channels) of W^T in the packed GEMM's blocks
    of kr rows (pack_a's layout: row r, depth kk at [r // kr][kk][r % kr], rows past the block
    zero): a few rows of w at a time, each cut into its blocks (pack_a reading W^T a column at
    a time went to a new page every kr values: 18% of ResNet's layer4 input gradient)."""
    cdef Py_ssize_t depths = (g.Kg + WT_DEPTH - 1) // WT_DEPTH, Rg = g.Cg * g.k_vol
    cdef Py_ssize_t gi = item // (per_group * depths), bi = (item // depths) % per_group
    cdef Py_ssize_t k0 = (item % depths) * WT_DEPTH, k1 = min(k0 + WT_DEPTH, g.Kg)
    cdef Py_ssize_t rows = min(block, g.Cg - bi * block) * g.k_vol, kk
    cdef floating* out
    for kk in range(k0, k1):        # row kk of w: depth kk of every block, kr rows a block
        out = ap + (gi * per_group + bi) * rb * g.Kg + kk * kr
        row_into_panels(w + (gi * g.Kg + kk) * Rg + bi * block * g.k_vol, rows, 0, out,
                        kr * g.Kg, kr)
        zero_in_panels(rows, rb, out, kr * g.Kg, kr)


cdef void grad_input_panels(const Geom* g, const floating* gy, const floating* w, floating* gx,
                            floating* ap, floating* work, Py_ssize_t samples, Py_ssize_t width,
                            Py_ssize_t block, int num_threads) noexcept nogil:
    """grad_input_blocks on fastconv's own GEMM with W^T packed once per call (`ap`: for each
    group and block of `block` input channels, its block x taps rows in blocks of the tile's
    rows). Items are (`samples` whole samples, group, channel block); an item's positions go in
    chunks of `width` (`samples` 1 where a sample has more): gy of the chunk packed into panels,
    col = W^T gy written a sample after another (panels_gemm's segments), then col2im. An item
    writes its own channels of its own samples: no two threads write the same gx value, and
    each value's sums come in the order of the chunks and taps, fixed by the problem."""
    cdef Py_ssize_t kr = tile_rows(w), nr = tile_cols(w)
    cdef Py_ssize_t per_group = (g.Cg + block - 1) // block
    cdef Py_ssize_t rb = (block * g.k_vol + kr - 1) // kr * kr
    cdef Py_ssize_t chunks = (g.N + samples - 1) // samples
    cdef Py_ssize_t cols = samples * width, panel_size = (cols + nr - 1) // nr * nr * g.Kg
    cdef Py_ssize_t item, gi, rows, n, s, c0, c1, cnt, p0, p1, span
    cdef floating* panels
    cdef floating* col
    cdef ChannelBlock blk
    for item in prange(g.G * per_group * ((g.Kg + WT_DEPTH - 1) // WT_DEPTH), nogil=True,
                       schedule="static", num_threads=num_threads):
        pack_wt(g, w, ap, item, per_group, block, rb, kr)
    for item in prange(chunks * g.G * per_group, nogil=True, schedule="static",
                       num_threads=num_threads):
        blk = channel_block(g, item, per_group, block, g.Cg)
        n = blk.chunk * samples
        cnt = min(samples, g.N - n)
        gi = blk.group
        rows = (blk.k1 - blk.k0) * g.k_vol
        c0 = gi * g.Cg + blk.k0
        c1 = gi * g.Cg + blk.k1
        panels = thread_slice(work, panel_size + rb * cols)
        col = panels + panel_size
        p0 = 0
        while p0 < g.P:
            p1 = min(p0 + width, g.P)
            span = p1 - p0
            pack_gy_panels(gy, panels, g, n, cnt, gi, p0, p1, nr)
            panels_gemm(rows, cnt * span, g.Kg,
                        ap + (gi * per_group + blk.k0 // block) * rb * g.Kg, panels, col, span,
                        span, rows * span)
            for s in range(cnt):
                scatter_chunk(gx, col + s * rows * span, g, n + s, c0, c1, p0, p1, False)
            p0 = p1


cdef void grad_kernel_parts(const Geom* g, const floating* x, const floating* gy, floating* gw,
                            floating* work, floating* partials, floating* xp, Py_ssize_t width,
                            Py_ssize_t parts, Py_ssize_t slabs, int num_threads) noexcept nogil:
    """Item (q, group, slab) sums chunks [q * chunks / parts, (q + 1) * chunks / parts) into
    partials[q] (into gw itself when there is one part), for the rows of one slab of its group's
    column matrix: it packs only those rows and writes only their columns of the gradient, so
    slabs need no partial sums, keep an item's block of the gradient in cache, and keep threads
    busy when the chunks are few."""
    cdef Py_ssize_t chunks = g.N * ((g.P + width - 1) // width)
    cdef Py_ssize_t R = g.C * g.k_vol, Rg = g.Cg * g.k_vol, size = g.K * Rg
    cdef Py_ssize_t item, q, i, k, n, p0, p1, gi, r0, r1, ld
    cdef floating* col
    cdef floating* part
    cdef const floating* b
    cdef Chunk c
    cdef bint pointwise = is_pointwise(g), phased = xp != NULL
    x = phased_input(g, x, xp, num_threads)
    for item in prange(parts * g.G * slabs, nogil=True, schedule="static",
                       num_threads=num_threads):
        q = item // (g.G * slabs)
        gi = (item // slabs) % g.G
        r0 = gi * Rg + (item % slabs) * Rg // slabs
        r1 = gi * Rg + (item % slabs + 1) * Rg // slabs
        col = thread_slice(work, R * width)
        part = (gw if parts == 1 else partials + q * size) + gi * g.Kg * Rg + r0 - gi * Rg
        for k in range(g.Kg):
            memset(part + k * Rg, 0, (r1 - r0) * sizeof(floating))
        for i in range(part_start(0, chunks, q, parts), part_start(0, chunks, q + 1, parts)):
            c = chunk_of(g, i, width, 1)
            n, p0, p1 = c.n, c.p0, c.p1
            if pointwise:
                b = x + (n * g.C + r0) * g.P + p0
                ld = g.P
            else:
                pack_chunk(x, col, g, n, r0, r1, p0, p1, phased)
                b = col
                ld = p1 - p0
            gemm(False, True, g.Kg, r1 - r0, p1 - p0, <floating>1,
                 gy + (n * g.K + gi * g.Kg) * g.P + p0, g.P, b, ld, <floating>1, part, Rg)
    if parts > 1:
        sum_parts(partials, gw, size, parts, num_threads)


def forward(spec, const floating[::1] x, const floating[::1] w, floating[::1] y,
            floating[::1] work, floating[::1] phased, Py_ssize_t width, Py_ssize_t kblocks,
            int num_threads):
    """y = conv(x, w) for the lifted problem `spec`; `work` holds num_threads * R * width values
    (kblocks 1) or chunks * R * width (kblocks > 1: each chunk packed once, see forward_chunks).

    `phased` (as large as x, or empty) takes x's rows stored by phase of the width stride."""
    cdef Geom g = geom_from_spec(spec)
    cdef floating* workp = data_or_null(work)
    cdef floating* xp = data_or_null(phased)
    with nogil:
        forward_chunks(&g, &x[0], &w[0], &y[0], workp, xp, width, kblocks, num_threads)


def forward_packed(spec, const floating[::1] x, const floating[::1] w, floating[::1] y,
                   floating[::1] packed_w, floating[::1] work, floating[::1] rows,
                   floating[::1] phased, Py_ssize_t width, Py_ssize_t samples, Py_ssize_t kblocks,
                   int num_threads):
    """forward on fastconv's own GEMM: `packed_w` holds the weights in blocks of tile_shape's
    rows, `work` each thread's chunk (or every chunk, kblocks > 1) in panels of its columns,
    `rows` PANEL_ROWS x the positions of one sample in a chunk, per thread (forward_panels)."""
    cdef Geom g = geom_from_spec(spec)
    cdef floating* xp = data_or_null(phased)
    with nogil:
        forward_panels(&g, &x[0], &w[0], &y[0], &packed_w[0], &work[0], &rows[0], xp, width,
                       samples, kblocks, num_threads)


def tile_shape(int itemsize):
    """(rows, columns) of the packed GEMM's register tile at this process's level, for float32
    (itemsize 4) or float64 (8)."""
    if itemsize == 4:
        return gm_rows_float(), gm_cols_float()
    return gm_rows_double(), gm_cols_double()


def kernel_level():
    """The instruction-set level of the packed GEMM's kernels (0, 1, 2; see src/_cpu_level.h)."""
    return gm_level()


def grad_input(spec, const floating[::1] gy, const floating[::1] w, floating[::1] gx,
               floating[::1] work, floating[::1] rowtmp, floating[::1] packed, Py_ssize_t width,
               Py_ssize_t block, Py_ssize_t parts, int num_threads):
    """gx = conv_grad_input(gy, w) (eq. 9.13): col = W^T gy, then col2im into gx (zeroed).

    `rowtmp` (num_threads input rows, or empty): col2im sums by phase of the width stride;
    `parts` splits each (sample, channel block)'s positions; `packed` (or empty: the BLAS) is
    each thread's room for fastconv's own GEMM (grad_input_blocks)."""
    cdef Geom g = geom_from_spec(spec)
    cdef floating* workp = data_or_null(work)
    cdef floating* tmp = data_or_null(rowtmp)
    cdef floating* packedp = data_or_null(packed)
    with nogil:
        grad_input_blocks(&g, &gy[0], &w[0], &gx[0], workp, tmp, packedp, width, block, parts,
                          num_threads)


def grad_input_packed(spec, const floating[::1] gy, const floating[::1] w, floating[::1] gx,
                      floating[::1] packed_w, floating[::1] work, Py_ssize_t samples,
                      Py_ssize_t width, Py_ssize_t block, int num_threads):
    """grad_input on fastconv's own GEMM (grad_input_panels); gx zeroed. `packed_w` holds the
    packed W^T, `work` per thread gy's panels of a chunk and its col."""
    cdef Geom g = geom_from_spec(spec)
    with nogil:
        grad_input_panels(&g, &gy[0], &w[0], &gx[0], &packed_w[0], &work[0], samples, width,
                          block, num_threads)


def grad_kernel(spec, const floating[::1] x, const floating[::1] gy, floating[::1] gw,
                floating[::1] work, floating[::1] partials, floating[::1] phased,
                Py_ssize_t width, Py_ssize_t parts, Py_ssize_t slabs, int num_threads):
    """gw = conv_grad_kernel(x, gy) (eq. 9.11): gy col^T summed over every chunk, in fixed order;
    the column matrix's rows in `slabs` per group.

    `phased` (as large as x, or empty) takes x's rows stored by phase of the width stride."""
    cdef Geom g = geom_from_spec(spec)
    cdef floating* workp = data_or_null(work)
    cdef floating* xp = data_or_null(phased)
    cdef floating* partialsp = data_or_null(partials)
    with nogil:
        grad_kernel_parts(&g, &x[0], &gy[0], &gw[0], workp, partialsp, xp, width, parts,
                          slabs, num_threads)
