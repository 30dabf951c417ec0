"""Winograd convolution F(4x4, 3x3): forward (also the stride-1 input gradient) and kernel gradient.

A "plane" is one 2-D image of every channel: (sample, depth) of the lifted arrays, so the 3x3
kernels of 2-D problems and the 1x3x3 kernels of 3-D ones run the same code. Python maps each
plane of the result to the plane it reads (`src`, element offsets; -1: none, the depth is all
padding) and gives the plane's geometry in a Tiling. Output tiles are 4x4; tile (r, q) reads the
6x6 input window at rows 4r - off_h, columns 4q - off_w (zeros outside the input plane).

Work is cut into blocks of R x Cw tiles of one plane, or of P whole planes where a plane has
few tiles (small images), a number fixed by the problem (never by the thread count). Each
OpenMP thread, for a block, in its own scratch (two buffers that stay in L2):
  stage      the input window, channel-last (wg_stage)           buf1 = X
  transform  V[xi] = B^T d B                                      buf2 = V  (36 x tiles x CP)
  GEMM       M[xi] = V[xi] @ U[xi] for the 36 positions xi        buf1 = M  (36 x tiles x KP)
             (fastconv's own register tiles, wg1_gemm)
  transform  Y = A^T M A, back to NCHW (wg_output, wg_unstage)    buf2 = Y
The kernel gradient transforms x tiles (V) and gy tiles (Mg = A gy A^T) and accumulates
dU[xi] += V[xi]^T Mg[xi] (C x KP; the staged schedule's BLAS: Mg^T V, KP x C); blocks are
split into `parts` (fixed by the problem), each summed into its own partial dU, and the partials
are added in order. Nothing depends on the thread count. Where U outgrows L2 (many channels,
few tiles), every block would stream it in again: the staged schedule below does each step for a
whole wave of tiles instead, its GEMMs by position or, for one wave of a forward pass, by blocks
of output channels that transform their part of U in cache (forward_kernel_blocks). The kernel
transforms U = G g G^T and gw = G^T dU G (kernel_transform, kernel_untransform) run here,
vectorised (the untransform in double): in NumPy, products with an inner dimension of 9 took
longer than the convolution itself.
"""
from cython cimport floating
from cython.parallel cimport prange
from libc.stdlib cimport free
from libc.string cimport memcpy, memset

from _blas cimport gemm
from _parallel cimport any_set, part_start, sum_parts, thread_slice
from _winograd_kernels cimport (wg_vector_bytes, wg_level, wg_init, wg_input_float,
    wg_input_double, wg_output_float, wg_output_double, wg_gy_float, wg_gy_double, wg_kernel_float,
    wg_kernel_double, wg_untransform_float, wg_untransform_double, block_gemm, position_gemm,
    position_gemm_tn)
from _wg_staging cimport wg_stage_double, wg_stage_float, wg_unstage_double, wg_unstage_float

cdef extern from "_line_alloc.h" nogil:
    void* fc_line_alloc(size_t bytes)      # on a cache line; free() releases it

# Calls reach the kernels of this process's instruction-set level through the table that this
# fills, once, before any kernel runs (src/_cpu_level.h).
wg_init()

cdef enum:
    POSITIONS = 36          # 6 x 6 transformed values per tile


cdef struct Tiling:
    Py_ssize_t cin, cout, CP, KP        # channels read and written; both padded to the vector
    Py_ssize_t ih, iw, oh, ow           # plane sizes read and written
    Py_ssize_t off_h, off_w             # tile (r, q) reads from row 4r - off_h, col 4q - off_w
    Py_ssize_t in_cs, out_cs            # channel strides of the planes read and written
    Py_ssize_t th, tw, R, Cw            # tiles of the written plane; a block is R x Cw tiles
    Py_ssize_t P                        # of P planes (P > 1: whole planes, R = th, Cw = tw)
    Py_ssize_t rblocks, cblocks         # blocks per plane
    Py_ssize_t size1, size2, size3      # per-thread scratch buffers (elements)


cdef Tiling make_tiling(tuple t) except *:
    cdef Tiling tl
    (tl.cin, tl.cout, tl.CP, tl.KP, tl.ih, tl.iw, tl.oh, tl.ow, tl.off_h, tl.off_w, tl.in_cs,
     tl.out_cs, tl.R, tl.Cw, tl.P, tl.size1, tl.size2, tl.size3) = t
    tl.th = (tl.oh + 3) // 4
    tl.tw = (tl.ow + 3) // 4
    tl.rblocks = (tl.th + tl.R - 1) // tl.R
    tl.cblocks = (tl.tw + tl.Cw - 1) // tl.Cw
    return tl


cdef inline void stage(const floating* src, Py_ssize_t channels, Py_ssize_t cstride,
                       Py_ssize_t H, Py_ssize_t W, Py_ssize_t row0, Py_ssize_t col0,
                       Py_ssize_t nrows, Py_ssize_t ncols, floating* dst,
                       Py_ssize_t CP) noexcept nogil:
    """Channel-last copy of a window of a plane (wg_stage); src NULL: a plane of zeros."""
    if src == NULL:         # every row outside a plane of height 0
        H = 0
    if floating is float:
        wg_stage_float(src, channels, cstride, H, W, row0, col0, nrows, ncols, dst, CP)
    else:
        wg_stage_double(src, channels, cstride, H, W, row0, col0, nrows, ncols, dst, CP)


cdef inline void input_tf(const floating* X, Py_ssize_t xcols, Py_ssize_t CP, Py_ssize_t cw,
                          Py_ssize_t R, Py_ssize_t Cw, floating* V, Py_ssize_t t0,
                          Py_ssize_t tn) noexcept nogil:
    if floating is float:
        wg_input_float(X, xcols, CP, cw, R, Cw, V, t0, tn)
    else:
        wg_input_double(X, xcols, CP, cw, R, Cw, V, t0, tn)


cdef struct Block:
    Py_ssize_t p0, p1                   # planes
    Py_ssize_t tr0, tc0, nr, nc         # first tile row and column, size in tiles (each plane)


cdef inline Block block_of(const Tiling* tl, Py_ssize_t item, Py_ssize_t planes) noexcept nogil:
    """Work item `item`: P planes, or a block of R x Cw tiles of one plane."""
    cdef Py_ssize_t per_group = tl.rblocks * tl.cblocks, b = item % per_group
    cdef Block bl
    bl.p0 = (item // per_group) * tl.P
    bl.p1 = min(bl.p0 + tl.P, planes)
    bl.tr0 = (b // tl.cblocks) * tl.R
    bl.tc0 = (b % tl.cblocks) * tl.Cw
    bl.nr = min(tl.R, tl.th - bl.tr0)
    bl.nc = min(tl.Cw, tl.tw - bl.tc0)
    return bl


cdef inline const floating* plane_or_null(const floating* a, Py_ssize_t offset) noexcept nogil:
    return a + offset if offset >= 0 else NULL


cdef void plane_input(const Tiling* tl, const floating* x, Py_ssize_t src, Block bl,
                      floating* V, Py_ssize_t t0, Py_ssize_t T, floating* buf,
                      Py_ssize_t cw) noexcept nogil:
    """V[xi][t0 + tile] (planes of T tiles) of block bl of the plane at offset src of x (-1:
    padding only, transformed from zeros); `buf` stages the window. Channels in chunks of cw
    (wg_input; CP: one)."""
    stage(plane_or_null(x, src), tl.cin, tl.in_cs, tl.ih, tl.iw, 4 * bl.tr0 - tl.off_h,
          4 * bl.tc0 - tl.off_w, 4 * bl.nr + 2, 4 * bl.nc + 2, buf, tl.CP)
    input_tf(buf, 4 * bl.nc + 2, tl.CP, cw, bl.nr, bl.nc, V, t0, T)


cdef int plane_output(const Tiling* tl, const floating* M, floating* y, Block bl, Py_ssize_t t0,
                      Py_ssize_t T, floating* buf, Py_ssize_t kw) noexcept nogil:
    """Block bl of the written plane y from M[xi][t0 + tile] (channels in blocks of kw,
    wg_output); 1 if a value was not finite."""
    cdef int bad
    if floating is float:
        bad = wg_output_float(M, tl.KP, kw, bl.nr, bl.nc, buf, 4 * bl.nc, t0, T)
        wg_unstage_float(buf, 4 * bl.nc, tl.KP, y, tl.cout, tl.out_cs, tl.oh, tl.ow,
                         4 * bl.tr0, 4 * bl.tc0, 4 * bl.nr, 4 * bl.nc)
    else:
        bad = wg_output_double(M, tl.KP, kw, bl.nr, bl.nc, buf, 4 * bl.nc, t0, T)
        wg_unstage_double(buf, 4 * bl.nc, tl.KP, y, tl.cout, tl.out_cs, tl.oh, tl.ow,
                          4 * bl.tr0, 4 * bl.tc0, 4 * bl.nr, 4 * bl.nc)
    return bad


cdef void plane_gy(const Tiling* tl, const floating* gy, Block bl, floating* Mg, Py_ssize_t t0,
                   Py_ssize_t T, floating* buf) noexcept nogil:
    """Mg[xi][t0 + tile] = A gy A^T of block bl of the gy plane `gy`."""
    stage(gy, tl.cout, tl.out_cs, tl.oh, tl.ow, 4 * bl.tr0, 4 * bl.tc0, 4 * bl.nr, 4 * bl.nc,
          buf, tl.KP)
    if floating is float:
        wg_gy_float(buf, 4 * bl.nc, tl.KP, bl.nr, bl.nc, Mg, t0, T)
    else:
        wg_gy_double(buf, 4 * bl.nc, tl.KP, bl.nr, bl.nc, Mg, t0, T)


cdef int forward_block(const Tiling* tl, const floating* x, const floating* u, floating* y,
                       const Py_ssize_t* src, const Py_ssize_t* dst, Block bl, floating* buf1,
                       floating* buf2) noexcept nogil:
    """One block of the written planes; 1 if a value was not finite. A plane that reads only
    padding (src -1) is computed from zeros, so it comes out zero."""
    cdef Py_ssize_t per = bl.nr * bl.nc, tn = (bl.p1 - bl.p0) * per, xi, p
    cdef Py_ssize_t pad = 64 // sizeof(floating)     # WG_PLANE of _winograd_kernels.h
    cdef int bad = 0
    for p in range(bl.p0, bl.p1):
        plane_input(tl, x, src[p], bl, buf2, (p - bl.p0) * per, tn, buf1, tl.CP)
    for xi in range(POSITIONS):
        position_gemm(buf2 + xi * (tn * tl.CP + pad), tl.CP, u + xi * tl.cin * tl.KP, tl.KP,
                      buf1 + xi * (tn * tl.KP + pad), tn, tl.cin, False)
    for p in range(bl.p0, bl.p1):
        bad |= plane_output(tl, buf1, y + dst[p], bl, (p - bl.p0) * per, tn, buf2, tl.KP)
    return bad


cdef inline Py_ssize_t item_count(const Tiling* tl, Py_ssize_t planes) noexcept nogil:
    return (planes + tl.P - 1) // tl.P * tl.rblocks * tl.cblocks


cdef void forward_items(const Tiling* tl, const floating* x, const floating* u, floating* y,
                        const Py_ssize_t* src, const Py_ssize_t* dst, Py_ssize_t planes,
                        floating* work, unsigned char* flags, int num_threads) noexcept nogil:
    cdef Py_ssize_t item
    cdef floating* buf1
    for item in prange(item_count(tl, planes), nogil=True, schedule="static",
                       num_threads=num_threads):
        buf1 = thread_slice(work, tl.size1 + tl.size2)
        flags[item] = forward_block(tl, x, u, y, src, dst, block_of(tl, item, planes), buf1,
                                    buf1 + tl.size1)


cdef void grad_kernel_block(const Tiling* tl, const floating* x, const floating* gy,
                            const Py_ssize_t* src, const Py_ssize_t* gsrc, Block bl,
                            floating* part, bint first, floating* buf1, floating* buf2,
                            floating* buf3) noexcept nogil:
    """part[xi] (+)= Mg[xi]^T V[xi] for one block (= if first). A plane whose x is all padding
    (src -1) is transformed from zeros and adds zero."""
    cdef Py_ssize_t per = bl.nr * bl.nc, tn = (bl.p1 - bl.p0) * per, xi, p, t0
    cdef Py_ssize_t pad = 64 // sizeof(floating)     # WG_PLANE of _winograd_kernels.h
    for p in range(bl.p0, bl.p1):
        t0 = (p - bl.p0) * per
        plane_input(tl, x, src[p], bl, buf2, t0, tn, buf1, tl.CP)
        plane_gy(tl, gy + gsrc[p], bl, buf3, t0, tn, buf1)
    for xi in range(POSITIONS):
        position_gemm_tn(buf2 + xi * (tn * tl.CP + pad), tl.CP, tl.cin,
                         buf3 + xi * (tn * tl.KP + pad), tl.KP, part + xi * tl.cin * tl.KP, tn,
                         not first)


cdef void grad_kernel_parts(const Tiling* tl, const floating* x, const floating* gy,
                            floating* du, const Py_ssize_t* src, const Py_ssize_t* gsrc,
                            Py_ssize_t planes, floating* work, floating* partials,
                            Py_ssize_t parts, int num_threads) noexcept nogil:
    """Part q sums its blocks (see _parallel.pxd) into partials[q]; du is their ordered sum."""
    cdef Py_ssize_t items = item_count(tl, planes)
    cdef Py_ssize_t size = POSITIONS * tl.cin * tl.KP, q, i, i0, i1     # dU is cin x KP
    cdef floating* buf1
    cdef floating* part
    for q in prange(parts, nogil=True, schedule="static", num_threads=num_threads):
        buf1 = thread_slice(work, tl.size1 + tl.size2 + tl.size3)
        part = partials + q * size
        i0 = part_start(0, items, q, parts)
        i1 = part_start(0, items, q + 1, parts)
        if i0 == i1:
            memset(part, 0, size * sizeof(floating))
        for i in range(i0, i1):
            grad_kernel_block(tl, x, gy, src, gsrc, block_of(tl, i, planes), part, i == i0, buf1,
                              buf1 + tl.size1, buf1 + tl.size1 + tl.size2)
    sum_parts(partials, du, size, parts, num_threads)


# The staged schedule, for a transformed kernel larger than a core's L2 (many channels, small
# images): instead of streaming U through every block, a wave of whole tile rows is transformed
# into V (36 x T x CP) by all threads, the 36 GEMMs split over the threads (each one position,
# reading its slice of U once per wave), and M transformed back by all threads. Items are R rows
# of tiles of one plane (P = 1, Cw = tw), so a wave's tiles are one contiguous run; waves have a
# number of items fixed by the problem, and each GEMM runs on one thread: nothing depends on the
# thread count.

cdef inline Py_ssize_t tile_start(const Tiling* tl, Py_ssize_t item) noexcept nogil:
    """The first tile of staged item `item` (planes in order, R tile rows each)."""
    return ((item // tl.rblocks) * tl.th * tl.tw
            + min((item % tl.rblocks) * tl.R, tl.th) * tl.tw)


cdef inline Py_ssize_t wave_tiles(const Tiling* tl, Py_ssize_t wave, Py_ssize_t wave_items,
                                  Py_ssize_t items, Py_ssize_t* i0, Py_ssize_t* i1,
                                  Py_ssize_t* s0) noexcept nogil:
    """Items i0..i1 of wave `wave`, its first tile s0; returns its number of tiles."""
    i0[0] = wave * wave_items
    i1[0] = min(i0[0] + wave_items, items)
    s0[0] = tile_start(tl, i0[0])
    return tile_start(tl, i1[0]) - s0[0]


cdef void inputs_of_wave(const Tiling* tl, const floating* x, const Py_ssize_t* src,
                         Py_ssize_t planes, floating* V, Py_ssize_t i0, Py_ssize_t i1,
                         Py_ssize_t s0, Py_ssize_t T, floating* work, int num_threads,
                         Py_ssize_t cw) noexcept nogil:
    """V of the wave's items i0..i1 (tiles from s0, T of them), read from the planes src;
    channels in chunks of cw (wg_input)."""
    cdef Py_ssize_t item
    cdef floating* buf
    for item in prange(i0, i1, nogil=True, schedule="static", num_threads=num_threads):
        buf = thread_slice(work, tl.size1)
        plane_input(tl, x, src[item // tl.rblocks], block_of(tl, item, planes), V,
                    tile_start(tl, item) - s0, T, buf, cw)


cdef void forward_staged(const Tiling* tl, const floating* x, const floating* u, floating* y,
                         const Py_ssize_t* src, const Py_ssize_t* dst, Py_ssize_t planes,
                         Py_ssize_t depth_taps, floating* V, floating* M, floating* work,
                         unsigned char* flags, Py_ssize_t wave_items,
                         int num_threads) noexcept nogil:
    """A kernel `depth_taps` deep (3-D): tap d reads the planes src[d * planes + p] with its
    own transformed kernel, its GEMMs adding into M."""
    cdef Py_ssize_t items = item_count(tl, planes), wave, i0, i1, s0, T, item, xi, d
    cdef Py_ssize_t pad = 64 // sizeof(floating)     # WG_PLANE of _winograd_kernels.h
    cdef Py_ssize_t usize = POSITIONS * tl.cin * tl.KP
    cdef floating* buf
    for wave in range((items + wave_items - 1) // wave_items):
        T = wave_tiles(tl, wave, wave_items, items, &i0, &i1, &s0)
        for d in range(depth_taps):
            inputs_of_wave(tl, x, src + d * planes, planes, V, i0, i1, s0, T, work, num_threads,
                           tl.CP)
            for xi in prange(POSITIONS, nogil=True, schedule="static", num_threads=num_threads):
                position_gemm(V + xi * (T * tl.CP + pad), tl.CP,
                              u + d * usize + xi * tl.cin * tl.KP, tl.KP,
                              M + xi * (T * tl.KP + pad), T, tl.cin, d > 0)
        for item in prange(i0, i1, nogil=True, schedule="static", num_threads=num_threads):
            buf = thread_slice(work, tl.size1)
            flags[item] = plane_output(tl, M, y + dst[item // tl.rblocks],
                                       block_of(tl, item, planes), tile_start(tl, item) - s0, T,
                                       buf, tl.KP)


# The staged forward with kernel blocks, for one wave of a 2-D pass (U of ResNet-18's 256- and
# 512-channel layers: 9.4 and 37.7 MB): instead of the whole U transformed first (to memory and
# back) and the 36 GEMMs split by position, an item is a block of `width` output channels: it
# transforms its block's U a chunk of input channels at a time into its thread's scratch (36 x
# chunk x width, in L2) and runs the 36 GEMMs of that chunk at once, each output's sum carried
# from chunk to chunk through M. Each sum runs over the input channels in order, as the other
# schedules' (the same bits), and an item writes only its own channels of M.

cdef void block_columns(const floating* w, bint flipped, Py_ssize_t K, Py_ssize_t C,
                        Py_ssize_t r0, Py_ssize_t rows, Py_ssize_t c0, Py_ssize_t cc,
                        floating* uc, Py_ssize_t width, Py_ssize_t uplane) noexcept nogil:
    """uc[xi * uplane + (c - c0) * width + r] = (G g G^T)[xi] for the pass's output channels r0 +
    r (r < rows) and input channels c0 <= c < c0 + cc: wg_kernel's columns, on w (K x C x 3 x 3)
    from the block's first kernel (forward row r0 * C, flipped row r0)."""
    cdef Py_ssize_t c, first = r0 if flipped else r0 * C
    for c in range(c0, c0 + cc):
        kernel_column(w + 9 * first, 9, uc + (c - c0) * width, uplane, c, C, rows, K * C - first,
                      flipped, True)


cdef void kernel_block(const Tiling* tl, const floating* w, bint flipped, Py_ssize_t K,
                       Py_ssize_t C, const floating* V, floating* M, Py_ssize_t T, Py_ssize_t r0,
                       Py_ssize_t width, Py_ssize_t chunk, floating* uc, Py_ssize_t t0,
                       Py_ssize_t tn) noexcept nogil:
    """M[xi][t][r0 .. r0 + width) = V[xi][t] @ U[xi][:, r0 .. r0 + width) for the 36 positions
    and the tiles t0 .. t0 + tn - 1 (of T), U transformed into uc a chunk of input channels at a
    time; V's channels in
    chunks and M's in blocks (wg_input, wg_output), so that the block's slice of M is one run a
    position (in L2 from chunk to chunk). Lanes past the pass's output channels are zeros in uc,
    so those of M are."""
    cdef Py_ssize_t pad = 64 // sizeof(floating)     # WG_PLANE of _winograd_kernels.h
    cdef Py_ssize_t vplane = T * ((tl.CP + chunk - 1) // chunk * chunk) + pad
    cdef Py_ssize_t mplane = T * ((tl.KP + width - 1) // width * width) + pad
    cdef Py_ssize_t kw = width, rows, c0, cc, xi, uplane
    width = min(width, tl.KP - r0)
    rows = min(width, tl.cout - r0)
    c0 = 0
    while c0 < tl.cin:
        cc = min(chunk, tl.cin - c0)
        uplane = cc * width + pad   # planes a line apart, not 4 KiB multiples (same L1 sets)
        if rows < width:
            memset(uc, 0, POSITIONS * uplane * sizeof(floating))
        block_columns(w, flipped, K, C, r0, rows, c0, cc, uc, width, uplane)
        for xi in range(POSITIONS):
            block_gemm(V + xi * vplane + c0 * T + t0 * chunk, chunk, uc + xi * uplane, width,
                       M + xi * mplane + r0 * T + t0 * kw, kw, tn, cc, c0 > 0)
        c0 += cc


cdef void forward_kernel_blocks(const Tiling* tl, const floating* x, const floating* w,
                                bint flipped, Py_ssize_t K, Py_ssize_t C, floating* y,
                                const Py_ssize_t* src, const Py_ssize_t* dst, Py_ssize_t planes,
                                floating* V, floating* M, floating* work, Py_ssize_t per_thread,
                                unsigned char* flags, Py_ssize_t width, Py_ssize_t chunk,
                                Py_ssize_t parts, int num_threads) noexcept nogil:
    """forward_staged's one wave with the kernel transformed block by block (see above). With
    `parts` above 1 a work item is a part of the tiles instead: it transforms its tiles' inputs,
    runs every block of output channels on them (each part transforms all of U) and transforms
    its outputs back, so that no core reads V or M another core wrote (on two cores, each
    block reading every tile's V and each output tile every block's M made the input transform
    2x slower a tile than on one thread: ResNet-18's 128-channel layer at batch 1)."""
    cdef Py_ssize_t items = item_count(tl, planes), i0, i1, s0, T, item, part, a, b, kb
    cdef Py_ssize_t blocks = (tl.KP + width - 1) // width
    cdef floating* buf
    T = wave_tiles(tl, 0, items, items, &i0, &i1, &s0)
    if parts > 1:
        for part in prange(parts, nogil=True, schedule="static", num_threads=num_threads):
            buf = thread_slice(work, per_thread)
            a = part_start(i0, i1, part, parts)
            b = part_start(i0, i1, part + 1, parts)
            for item in range(a, b):
                plane_input(tl, x, src[item // tl.rblocks], block_of(tl, item, planes), V,
                            tile_start(tl, item) - s0, T, buf, chunk)
            for kb in range(blocks):
                kernel_block(tl, w, flipped, K, C, V, M, T, kb * width, width, chunk, buf,
                             tile_start(tl, a) - s0, tile_start(tl, b) - tile_start(tl, a))
            for item in range(a, b):
                flags[item] = plane_output(tl, M, y + dst[item // tl.rblocks],
                                           block_of(tl, item, planes), tile_start(tl, item) - s0,
                                           T, buf, width)
        return
    inputs_of_wave(tl, x, src, planes, V, i0, i1, s0, T, work, num_threads, chunk)
    for item in prange(blocks, nogil=True, schedule="static", num_threads=num_threads):
        kernel_block(tl, w, flipped, K, C, V, M, T, item * width, width, chunk,
                     thread_slice(work, per_thread), 0, T)
    for item in prange(i0, i1, nogil=True, schedule="static", num_threads=num_threads):
        buf = thread_slice(work, tl.size1)
        flags[item] = plane_output(tl, M, y + dst[item // tl.rblocks], block_of(tl, item, planes),
                                   tile_start(tl, item) - s0, T, buf, width)


cdef void grad_kernel_staged(const Tiling* tl, const floating* x, const floating* gy,
                             floating* du, const Py_ssize_t* src, const Py_ssize_t* gsrc,
                             Py_ssize_t planes, Py_ssize_t depth_taps, floating* V, floating* Mg,
                             floating* work, Py_ssize_t wave_items, bint own,
                             int num_threads) noexcept nogil:
    """du[d][xi] = sum over the waves (in order) of Mg[xi]^T V_d[xi], one position per thread;
    V_d transforms the x planes src[d * planes + p] of depth tap d. `own`: fastconv's register
    tiles, dU cin x KP; else BLAS, dU KP x cin."""
    cdef Py_ssize_t items = item_count(tl, planes), wave, i0, i1, s0, T, item, xi, d
    cdef Py_ssize_t pad = 64 // sizeof(floating)
    cdef Py_ssize_t usize = POSITIONS * tl.KP * tl.cin     # dU: KP x cin, or cin x KP (own)
    cdef floating* buf
    for wave in range((items + wave_items - 1) // wave_items):
        T = wave_tiles(tl, wave, wave_items, items, &i0, &i1, &s0)
        for item in prange(i0, i1, nogil=True, schedule="static", num_threads=num_threads):
            buf = thread_slice(work, tl.size1)
            plane_gy(tl, gy + gsrc[item // tl.rblocks], block_of(tl, item, planes), Mg,
                     tile_start(tl, item) - s0, T, buf)
        for d in range(depth_taps):
            inputs_of_wave(tl, x, src + d * planes, planes, V, i0, i1, s0, T, work, num_threads,
                           tl.CP)
            for xi in prange(POSITIONS, nogil=True, schedule="static", num_threads=num_threads):
                if own:
                    position_gemm_tn(V + xi * (T * tl.CP + pad), tl.CP, tl.cin,
                                     Mg + xi * (T * tl.KP + pad), tl.KP,
                                     du + d * usize + xi * tl.cin * tl.KP, T, i0 > 0)
                else:
                    gemm(True, False, tl.KP, tl.cin, T, <floating>1,
                         Mg + xi * (T * tl.KP + pad), tl.KP, V + xi * (T * tl.CP + pad), tl.CP,
                         <floating>(0 if i0 == 0 else 1), du + d * usize + xi * tl.KP * tl.cin,
                         tl.cin)


include "_winograd_kernel_transform.pxi"


def forward(tuple tiling, const floating[::1] x, const floating[::1] u, floating[::1] y,
            const Py_ssize_t[::1] src, const Py_ssize_t[::1] dst, floating[::1] work,
            unsigned char[::1] flags, int num_threads):
    """y's planes dst[p] = Winograd(x's plane src[p] (or zeros), u); u is U[36][cin][KP].

    `work` holds num_threads * (size1 + size2) values, `flags` one byte per block: set where
    the block computed a value that is not finite. Returns whether one did."""
    cdef Tiling tl = make_tiling(tiling)
    with nogil:
        forward_items(&tl, &x[0], &u[0], &y[0], &src[0], &dst[0], src.shape[0], &work[0],
                      &flags[0], num_threads)
    return any_set(&flags[0], flags.shape[0])


def grad_kernel(tuple tiling, const floating[::1] x, const floating[::1] gy, floating[::1] du,
                const Py_ssize_t[::1] src, const Py_ssize_t[::1] gsrc, floating[::1] work,
                floating[::1] partials, Py_ssize_t parts, int num_threads):
    """du[36][KP][cin] = sum over the blocks of Mg^T V, in `parts` partial sums added in order.

    Plane p pairs x's plane src[p] (-1: padding, skipped) with gy's plane gsrc[p]."""
    cdef Tiling tl = make_tiling(tiling)
    with nogil:
        grad_kernel_parts(&tl, &x[0], &gy[0], &du[0], &src[0], &gsrc[0], src.shape[0],
                          &work[0], &partials[0], parts, num_threads)


def forward_waves(tuple tiling, const floating[::1] x, const floating[::1] u, floating[::1] y,
                  const Py_ssize_t[::1] src, const Py_ssize_t[::1] dst, floating[::1] vm,
                  Py_ssize_t v_size, floating[::1] work, unsigned char[::1] flags,
                  Py_ssize_t wave_items, int num_threads):
    """`forward` in the staged schedule: vm holds V (v_size values) then M; `work` holds
    num_threads * size1 values; items of whole tile rows (P = 1, Cw = tw). src holds the planes
    read by each depth tap (dst.shape[0] each), u their transformed kernels. Returns whether a
    block flagged a value that is not finite."""
    cdef Tiling tl = make_tiling(tiling)
    with nogil:
        forward_staged(&tl, &x[0], &u[0], &y[0], &src[0], &dst[0], dst.shape[0],
                       src.shape[0] // dst.shape[0], &vm[0], &vm[v_size], &work[0], &flags[0],
                       wave_items, num_threads)
    return any_set(&flags[0], flags.shape[0])


def forward_blocks_of_kernel(tuple tiling, const floating[::1] x, const floating[::1] w,
                             bint flipped, Py_ssize_t K, Py_ssize_t C, floating[::1] y,
                             const Py_ssize_t[::1] src, const Py_ssize_t[::1] dst,
                             floating[::1] vm, Py_ssize_t v_size, floating[::1] work,
                             Py_ssize_t per_thread, unsigned char[::1] flags, Py_ssize_t width,
                             Py_ssize_t chunk, int num_threads, Py_ssize_t parts=1):
    """`forward_waves` in one wave with kernel blocks: w the kernels as given (K x C x 3 x 3;
    flipped: the input gradient's pass), `width` output channels an item (a multiple of the
    vector), `chunk` input channels a transform; `work` holds num_threads x per_thread values
    (at least size1, and 36 x (chunk x width + a line)); `parts` above 1: items are parts of
    the tiles, each running every block (forward_kernel_blocks). Returns whether a block
    flagged a value that is not finite."""
    cdef Tiling tl = make_tiling(tiling)
    with nogil:
        forward_kernel_blocks(&tl, &x[0], &w[0], flipped, K, C, &y[0], &src[0], &dst[0],
                              dst.shape[0], &vm[0], &vm[v_size], &work[0], per_thread, &flags[0],
                              width, chunk, parts, num_threads)
    return any_set(&flags[0], flags.shape[0])


def grad_kernel_waves(tuple tiling, const floating[::1] x, const floating[::1] gy,
                      floating[::1] du, const Py_ssize_t[::1] src, const Py_ssize_t[::1] gsrc,
                      floating[::1] vm, Py_ssize_t v_size, floating[::1] work,
                      Py_ssize_t wave_items, bint own, int num_threads):
    """`grad_kernel` in the staged schedule (vm: V then Mg); the waves are summed in order. src
    holds the x planes of each depth tap (gsrc.shape[0] each), du their sums (own: cin x KP a
    position, else KP x cin)."""
    cdef Tiling tl = make_tiling(tiling)
    with nogil:
        grad_kernel_staged(&tl, &x[0], &gy[0], &du[0], &src[0], &gsrc[0], gsrc.shape[0],
                           src.shape[0] // gsrc.shape[0], &vm[0], &vm[v_size], &work[0],
                           wave_items, own, num_threads)


def items(tuple tiling, Py_ssize_t planes):
    """The number of work items (blocks) of `planes` planes."""
    cdef Tiling tl = make_tiling(tiling)
    return item_count(&tl, planes)


def kernel_level():
    """The kernel set this process runs: 2 x86-64-v4, 1 x86-64-v3, 0 the build's own target."""
    return wg_level()


def lanes(itemsize):
    """Values of one vector of the kernels this machine runs; channels are padded to it."""
    return wg_vector_bytes() // itemsize
