"""Blocked direct convolution: output channels in vector blocks, each input value broadcast.

Arrays arrive lifted to three spatial dimensions, C-contiguous and flattened: x (N, C, D, H, W),
y (N, K, OD, OH, OW), and the weights packed by fastconv/_algorithms/blocked.py as
(group, channel block, input channel of the group, tap, V lanes), V = KB vectors, zeros past the
group's channels. The input is first copied, per plane, into a zero-padded buffer that covers
every input position an output reads (padding before, and the rows a stride or a crop leaves
out), so every tap is one constant offset from an output's first input and no border needs a
test. Then each work item (sample, group, channel block, output row) runs bk_row over the row
into its thread's row buffer (columns x V lanes) and writes the block's channels of the row;
where the weights outgrow L2 the items run block by block, a block packed by its item (forward).

The kernel gradient reads the same padded planes and the output gradient transposed, a chunk
at a time, so that a position's channels lie together (src/_blocked_gk_chunks.pxi, bk_gk).

Every output is summed by one item in an order fixed by the problem (input channels, then taps),
so results do not change with the thread count.
"""
from cython cimport floating
from cython.parallel cimport prange
from libc.string cimport memcpy, memset

from _blocked_kernels cimport (bk_level, fastconv_vector_bytes, bk_init, bk_row_f32, bk_row_f64,
    bk_unpack_f32, bk_unpack_f64, bk_pack_f32, bk_pack_f64, bk_flip_f32, bk_flip_f64,
    bk_nonfinite_f32, bk_nonfinite_f64, bk_gk_f32, bk_gk_f64, bk_gkp_f32, bk_gkp_f64,
    bkb_fwd_f32, bkb_fwd_f64, bkb_gk_f32, bkb_gk_f64, bpl_row_f32, bpl_row_f64)
from _openmp cimport omp_get_thread_num

# Calls reach the kernels of this process's instruction-set level through the table that this
# fills, once, before any kernel runs (src/_cpu_level.h).
bk_init()


def kernel_level():
    """The instruction-set level the kernels run at (0 reference, 1 AVX2, 2 AVX-512)."""
    return bk_level()


def vector_bytes():
    """Bytes of one vector at that level."""
    return fastconv_vector_bytes(bk_level())


cdef struct Shape:
    Py_ssize_t n[3]     # the input plane
    Py_ssize_t p[3]     # padded position e holds input element e - p (p < 0: a crop)
    Py_ssize_t e[3]     # the padded buffer's size
    Py_ssize_t o[3]     # the output
    Py_ssize_t s[3]     # the stride


cdef Shape make_shape(object n, object p, object e, object o, object s):
    cdef Shape g
    cdef int i
    for i in range(3):
        g.n[i], g.p[i], g.e[i], g.o[i], g.s[i] = n[i], p[i], e[i], o[i], s[i]
    return g


# Padded planes of at most this many values are zeroed whole, then their rows copied: their rows
# are short (a 12x12 plane, LeNet's 5x5 input gradient, took 28 library calls: the copy was 14%
# of that layer's call at batch 128 on one Xeon core, 9% with one memset a plane), and a plane
# this size is written twice in L1
cdef enum:
    SMALL_PLANE = 4096


cdef void pad_plane(const floating* src, floating* dst, const Shape* g) noexcept nogil:
    """dst (e0, e1, e2) = src (n0, n1, n2) shifted by p, zeros where no input is."""
    cdef Py_ssize_t z, r, zi, ri, lo, hi
    cdef Py_ssize_t padded = g.e[0] * g.e[1] * g.e[2]
    cdef floating* row
    lo = g.p[2] if g.p[2] > 0 else 0
    hi = g.n[2] + g.p[2]
    hi = g.e[2] if hi > g.e[2] else hi
    if padded <= SMALL_PLANE:   # one memset, then the rows' copies (below: three calls a row)
        memset(dst, 0, padded * sizeof(floating))
        if hi <= lo:
            return
        for z in range(max(0, g.p[0]), min(g.e[0], g.n[0] + g.p[0])):
            for r in range(max(0, g.p[1]), min(g.e[1], g.n[1] + g.p[1])):
                memcpy(dst + (z * g.e[1] + r) * g.e[2] + lo,
                       src + ((z - g.p[0]) * g.n[1] + r - g.p[1]) * g.n[2] + lo - g.p[2],
                       (hi - lo) * sizeof(floating))
        return
    for z in range(g.e[0]):
        zi = z - g.p[0]
        for r in range(g.e[1]):
            ri = r - g.p[1]
            row = dst + (z * g.e[1] + r) * g.e[2]
            if zi < 0 or zi >= g.n[0] or ri < 0 or ri >= g.n[1] or hi <= lo:
                memset(row, 0, g.e[2] * sizeof(floating))
                continue
            memset(row, 0, lo * sizeof(floating))
            memcpy(row + lo, src + (zi * g.n[1] + ri) * g.n[2] + lo - g.p[2],
                   (hi - lo) * sizeof(floating))
            memset(row + hi, 0, (g.e[2] - hi) * sizeof(floating))


cdef const floating* input_planes(const floating* x, floating[::1] xpad, const Shape* g,
                                  Py_ssize_t count, int num_threads) noexcept nogil:
    """The `count` input planes the kernels read: x's copied into `xpad` zero-padded, or x
    itself where `xpad` is empty (no padding and planes as large as x's: _Geometry.copies)."""
    cdef Py_ssize_t item
    cdef Py_ssize_t plane = g.n[0] * g.n[1] * g.n[2], padded = g.e[0] * g.e[1] * g.e[2]
    if xpad.shape[0] == 0:
        return x
    for item in prange(count, schedule="static", num_threads=num_threads):
        pad_plane(x + item * plane, &xpad[0] + item * padded, g)
    return &xpad[0]


cdef inline void run_row(const floating* x, Py_ssize_t cs, const Py_ssize_t* toff,
                         Py_ssize_t taps, Py_ssize_t ts, Py_ssize_t C, const floating* w, int KB,
                         int RT, Py_ssize_t js, Py_ssize_t rs, Py_ssize_t ow,
                         floating* out, Py_ssize_t ek=0) noexcept nogil:
    if floating is float:
        bk_row_f32(x, cs, toff, taps, ts, C, w, KB, RT, js, rs, ow, out, ek)
    else:
        bk_row_f64(x, cs, toff, taps, ts, C, w, KB, RT, js, rs, ow, out, ek)


cdef inline void unpack(const floating* buf, Py_ssize_t V, Py_ssize_t ow, Py_ssize_t rt,
                        Py_ssize_t lanes, floating* y, Py_ssize_t plane,
                        Py_ssize_t yrow) noexcept nogil:
    """bk_unpack: rt rows of ow positions x V lanes into the first `lanes` channel planes."""
    if floating is float:
        bk_unpack_f32(buf, V, ow, rt, lanes, y, plane, yrow)
    else:
        bk_unpack_f64(buf, V, ow, rt, lanes, y, plane, yrow)


cdef void edge_window(const floating* src, Py_ssize_t plane, Py_ssize_t n, Py_ssize_t start,
                      Py_ssize_t width, Py_ssize_t channels, floating* out) noexcept nogil:
    """out[c * width + i] = input position start + i of channel c (src[c * plane + start + i]),
    or 0 where that lies outside [0, n): the zero-padded window of a row's edge outputs."""
    cdef Py_ssize_t c, lo = -start if start < 0 else 0, hi = n - start
    cdef floating* row
    if hi > width:
        hi = width
    for c in range(channels):
        row = out + c * width
        if hi <= lo:
            memset(row, 0, width * sizeof(floating))
            continue
        memset(row, 0, lo * sizeof(floating))
        memcpy(row + lo, src + c * plane + start + lo, (hi - lo) * sizeof(floating))
        memset(row + hi, 0, (width - hi) * sizeof(floating))


cdef inline Py_ssize_t first_in(Py_ssize_t o, Py_ssize_t s, Py_ssize_t d, Py_ssize_t lo,
                                Py_ssize_t k) noexcept nogil:
    """The first of the k kernel positions t whose input o * s + t * d is at or past lo."""
    cdef Py_ssize_t t = lo - o * s
    if t <= 0:
        return 0
    t = (t + d - 1) // d
    return t if t < k else k


cdef struct TapRun:
    Py_ssize_t first, count


cdef TapRun tap_run(const Shape* g, const Py_ssize_t* kernel, const Py_ssize_t* dil,
                    Py_ssize_t od, Py_ssize_t oh, Py_ssize_t rt) noexcept nogil:
    """The run of taps [first, first + count) that output rows oh .. oh + rt - 1 of depth od
    read outside the padding, along the kernel's outermost axis of more than one position
    (depth in 3-D, else height; the taps run in (depth, height, width) order, so it is one
    run). The taps skipped read only padding zeros. (Returned by value: a prange's variable
    written through a pointer would be shared among its threads.)"""
    cdef TapRun run
    cdef int a = 0 if kernel[0] > 1 else 1
    cdef Py_ssize_t o = od if a == 0 else oh
    cdef Py_ssize_t last = od if a == 0 else oh + rt - 1
    cdef Py_ssize_t block = kernel[1] * kernel[2] if a == 0 else kernel[2]
    # row o reads input at taps [first_in(o, p), first_in(o, p + n)): later rows start sooner
    cdef Py_ssize_t lo = first_in(last, g.s[a], dil[a], g.p[a], kernel[a])
    cdef Py_ssize_t hi = first_in(o, g.s[a], dil[a], g.p[a] + g.n[a], kernel[a])
    run.first = lo * block
    run.count = (hi - lo) * block if hi > lo else 0
    return run


cdef inline Py_ssize_t block_lanes(Py_ssize_t Kg, Py_ssize_t kb, Py_ssize_t V) noexcept nogil:
    """The group's output channels in block kb: V, or fewer in the last block."""
    return Kg - kb * V if Kg - kb * V < V else V


cdef inline bint lanes_last(const floating* src, Py_ssize_t stride, floating* dst, Py_ssize_t V,
                            Py_ssize_t lanes, Py_ssize_t q0, Py_ssize_t q1) noexcept nogil:
    """dst[q * V + l] = src[l * stride + q] for q in [q0, q1): `lanes` rows of src become the
    first lanes of dst's positions, the lanes past them zeros (weights packed for bk_row, gy
    transposed for bk_gk; bk_pack, by register transposes). Returns whether a copied value is
    NaN or infinite (checked in registers as it is copied)."""
    if floating is float:
        return bk_pack_f32(src, stride, dst, V, lanes, q0, q1) != 0
    else:
        return bk_pack_f64(src, stride, dst, V, lanes, q0, q1) != 0


cdef enum:
    PACK_RUN = 128  # values of one output channel's row a forward pack item copies at once


cdef inline bint any_not_finite(const floating* a, Py_ssize_t n) noexcept nogil:
    """Whether a value of a[0..n) is NaN or infinite (bk_nonfinite, at the kernels' level), over
    values just written (still in cache)."""
    if floating is float:
        return bk_nonfinite_f32(a, n) != 0
    else:
        return bk_nonfinite_f64(a, n) != 0


def all_finite(const floating[::1] a, int num_threads=1):
    """Whether every value of a is finite: any_not_finite over up to num_threads parts (the
    registry's check of a result, fastconv/_finite.py)."""
    cdef Py_ssize_t n = a.shape[0], p, parts = num_threads if n >= 1 << 16 else 1
    cdef int bad = 0
    if n == 0:
        return True
    for p in prange(parts, nogil=True, schedule="static", num_threads=parts):
        bad |= any_not_finite(&a[n * p // parts], n * (p + 1) // parts - n * p // parts)
    return bad == 0


cdef extern from *:
    void __builtin_prefetch(const void* p) noexcept nogil


cdef enum:
    FLIP_AHEAD = 4  # channels ahead whose weights bk_flip's caller prefetches


cdef inline void flip_channel(const floating* src, Py_ssize_t taps, const Py_ssize_t* pos,
                              floating* dst, Py_ssize_t V, Py_ssize_t lanes,
                              const floating* ahead) noexcept nogil:
    """bk_flip of one input channel's block, after prefetching `ahead` (the block of the channel
    FLIP_AHEAD later, or NULL): blocks lie a kernel row of weights apart (18 KB on ResNet-18's
    512-channel 3x3), a stride the hardware does not follow (packing: 30% of that layer's input
    gradient at batch 1, its lines missed one at a time)."""
    cdef Py_ssize_t i = 0, line = 64 // sizeof(floating)
    if ahead != NULL:
        while i < lanes * taps:
            __builtin_prefetch(ahead + i)
            i += line
    if floating is float:
        bk_flip_f32(src, taps, pos, dst, V, lanes)
    else:
        bk_flip_f64(src, taps, pos, dst, V, lanes)


cdef inline Py_ssize_t same_row_taps(const Shape* g, Py_ssize_t k2, Py_ssize_t d2,
                                     bint padded) noexcept nogil:
    """k2 where bk_row's tiles at a row's ends skip the products of padding zeros kernel column
    by kernel column (bk_cols' EK), else 0: rows of 3 or 5 taps next to each other, stride 1 along
    the row, the input padded by k2 // 2 on both sides into planes of its own (`padded`: not x
    read in place, not a 1-D row's edge windows, not a strided input gradient's phase), and rows
    short enough that at least 7% of their products are padding's (k2 // 2 (k2 // 2 + 1) of
    k2 ow): 3 taps on rows of up to 9, 5 on up to 17. At AVX-512 LeNet's 5 taps on 8 columns
    (15%) ran 1.14-1.19x faster, 5 on 16 (7.5%) 1.06x, 3 on 16 (4%) 1.00x. The kernels skip in
    tiles of up to BK_EK_ACC accumulators (src/_blocked_kernels.h), at AVX-512 and AVX2."""
    cdef Py_ssize_t pad = k2 // 2
    if not SKIP_ENDS[0] or not padded or (k2 != 3 and k2 != 5) or d2 != 1 or g.s[2] != 1:
        return 0
    if g.p[2] != pad or g.o[2] != g.n[2] or g.e[2] != g.n[2] + 2 * pad:
        return 0
    return k2 if 100 * pad * (pad + 1) >= 7 * k2 * g.o[2] else 0


cdef bint SKIP_ENDS[1]
SKIP_ENDS[0] = True


def skip_padding_at_row_ends(bint skip):
    """Whether bk_row's tiles at a row's ends skip padding's products (same_row_taps); True
    unless a test or benchmark compares the two."""
    SKIP_ENDS[0] = skip


def row_end_taps(n, p, e, o, s, Py_ssize_t k2, Py_ssize_t d2, bint padded):
    """same_row_taps of a forward pass's geometry (the tests' check that a case takes the path;
    the kernels use it at AVX-512 and AVX2, in tiles of up to BK_EK_ACC accumulators)."""
    cdef Shape g = make_shape(n, p, e, o, s)
    return same_row_taps(&g, k2, d2, padded)


# What every row item of one forward pass shares (forward's arguments, as C values)
cdef struct Rows:
    Shape g
    const Py_ssize_t* toff
    const Py_ssize_t* kern
    const Py_ssize_t* dil
    Py_ssize_t padded, C, Cg, Kg, V, wtaps, pair
    int KB
    Py_ssize_t ysample, ychan, yd, yh, yw
    bint edged
    Py_ssize_t jl, jr, wl, wr, ew
    Py_ssize_t ek       # taps a kernel row where the rows' ends skip padding's products, or 0


cdef void row_item(const Rows* R, const floating* planes, const floating* block,
                   floating* y, floating* buf, floating* window, Py_ssize_t nn, Py_ssize_t gi,
                   Py_ssize_t kb, Py_ssize_t od, Py_ssize_t oh) noexcept nogil:
    """One work item: output rows oh (and oh + 1) of depth od, sample nn, block kb of group gi,
    from `planes` (the sample's input planes) and `block` (its packed weights), into `buf` (the
    thread's row buffer), then y."""
    cdef const Shape* g = &R.g
    cdef Py_ssize_t rt = g.o[1] - oh, lanes, r, l, j
    cdef TapRun run
    cdef const floating* src
    cdef const floating* w_at
    cdef floating* yrow
    if rt > R.pair:
        rt = R.pair
    src = planes + gi * R.Cg * R.padded + (od * g.s[0] * g.e[1] + oh * g.s[1]) * g.e[2]
    run = tap_run(g, R.kern, R.dil, od, oh, rt)
    w_at = block + run.first * R.V
    if not R.edged:
        run_row(src, R.padded, R.toff + run.first, run.count, R.wtaps, R.Cg, w_at, R.KB, rt,
                g.s[2], g.s[1] * g.e[2], g.o[2], buf, R.ek)
    else:
        if R.jl > 0:
            edge_window(src, R.padded, g.n[2], -g.p[2], R.wl, R.Cg, window)
            run_row(window, R.wl, R.toff + run.first, run.count, R.wtaps, R.Cg, w_at, R.KB,
                    rt, g.s[2], 0, R.jl, buf)
        if R.jr > R.jl:
            run_row(src + R.jl * g.s[2] - g.p[2], R.padded, R.toff + run.first, run.count,
                    R.wtaps, R.Cg, w_at, R.KB, rt, g.s[2], 0, R.jr - R.jl, buf + R.jl * R.V)
        if g.o[2] > R.jr:
            edge_window(src, R.padded, g.n[2], R.jr * g.s[2] - g.p[2], R.wr, R.Cg, window)
            run_row(window, R.wr, R.toff + run.first, run.count, R.wtaps, R.Cg, w_at, R.KB,
                    rt, g.s[2], 0, g.o[2] - R.jr, buf + R.jr * R.V)
    lanes = block_lanes(R.Kg, kb, R.V)
    yrow = y + nn * R.ysample + (gi * R.Kg + kb * R.V) * R.ychan + od * R.yd + oh * R.yh
    if lanes * R.KB < R.V or R.yw != 1:   # under a vector of channels (groups), or strided
        for r in range(rt):
            for l in range(lanes):
                for j in range(g.o[2]):
                    yrow[l * R.ychan + r * R.yh + j * R.yw] = buf[(r * g.o[2] + j) * R.V + l]
    else:
        unpack(buf, R.V, g.o[2], rt, lanes, yrow, R.ychan, R.yh)


cdef bint pack_block(const floating* w, Py_ssize_t Kg, Py_ssize_t Cg, Py_ssize_t taps,
                     Py_ssize_t V, Py_ssize_t gi, Py_ssize_t kb, bint flip,
                     floating* dst) noexcept nogil:
    """dst (Cg, taps, V) = block kb of group gi packed as pack_weights packs it (flip: reversed
    taps, grad_input's); whether every value is finite."""
    cdef Py_ssize_t lanes = block_lanes(Kg, kb, V), c, row = Cg * taps
    if not flip:
        return not lanes_last(w + (gi * Kg + kb * V) * row, row, dst, V, lanes, 0, row)
    else:
        for c in range(Cg):
            flip_channel(w + ((gi * Cg + c) * Kg + kb * V) * taps, taps, NULL,
                         dst + c * taps * V, V, lanes,
                         w + ((gi * Cg + c + FLIP_AHEAD) * Kg + kb * V) * taps
                         if c + FLIP_AHEAD < Cg else NULL)
    return not any_not_finite(dst, row * V)


cdef void sample_items(const Rows* R, const floating* x, const floating* wp, floating* y,
                       floating* xpad, floating* rows, Py_ssize_t N, Py_ssize_t G,
                       Py_ssize_t blocks, Py_ssize_t pairs, int num_threads) noexcept nogil:
    """forward's `per_sample` order: sample nn's planes padded into the thread's part of xpad,
    then its rows, in the order of the items of the other orders."""
    cdef Py_ssize_t plane = R.g.n[0] * R.g.n[1] * R.g.n[2], nn, c, sub, rest, oh, od, kb, gi
    cdef floating* planes
    for nn in prange(N, nogil=True, schedule="static", num_threads=num_threads):
        planes = xpad + omp_get_thread_num() * R.C * R.padded
        for c in range(R.C):
            pad_plane(x + (nn * R.C + c) * plane, planes + c * R.padded, &R.g)
        for sub in range(G * blocks * R.g.o[0] * pairs):
            oh = (sub % pairs) * R.pair
            rest = sub // pairs
            od = rest % R.g.o[0]
            rest = rest // R.g.o[0]
            kb = rest % blocks
            gi = rest // blocks
            row_item(R, planes, wp + (gi * blocks + kb) * R.Cg * R.wtaps * R.V, y,
                     rows + omp_get_thread_num() * 2 * R.g.o[2] * R.V, NULL, nn, gi, kb, od, oh)


def forward(const floating[::1] x, const floating[::1] wp, floating[::1] y, floating[::1] xpad,
            floating[::1] rows, const Py_ssize_t[::1] toff, const Py_ssize_t[::1] kern,
            const Py_ssize_t[::1] dil, Py_ssize_t N, Py_ssize_t G, Py_ssize_t Cg, Py_ssize_t Kg,
            int KB, Py_ssize_t V, int pair, object n, object p, object e, object o, object s,
            int num_threads, object ystrides=None, Py_ssize_t wtaps=0, object edges=None,
            bint by_block=False, int fuse=0, floating[::1] wblocks=None,
            bint per_sample=False):
    """y = conv(x, w) (eq. 9.8, lifted). `xpad`: N * C padded planes (empty: x read in place);
    `rows`: num_threads x 2 rows of ow x V values (V = KB vectors); `kern`, `dil`: the kernel's
    size and dilation. With `pair` 2 an item takes two output rows, so each weight vector loaded
    serves both. An item runs only the taps whose kernel rows (planes, in 3-D) reach the input
    (a 5x5 kernel on 8x8 maps padded by 2 reads only zeros with 15% of its taps).

    `ystrides` (sample, channel, depth, row, column) places the outputs elsewhere than y's C
    order (a strided input gradient's phase writes every s-th value of gx); `wtaps`: the packed
    taps a channel where wp holds more than this problem's (a phase's are a run of the kernel's).
    `edges` (jl, jr, wl, wr), a 1-D row padded at its ends (_Geometry.edges): x is read in place
    for outputs jl .. jr - 1; those before and after come from their zero-padded windows (wl and
    wr wide) copied into `xpad` (a TCN layer's whole-input copy was 12% of its call).

    Orders of work (they move work between threads, never a sum's terms): sample by sample, each
    over every channel block; `by_block`, block by block over every sample, so a block's weights
    stay in L2 across the batch where the layer's do not (ResNet-18's 512-channel layers: 9.4 MB,
    read once a sample otherwise); `fuse` 1 (forward) or 2 (grad_input's flipped weights, stride
    1), a whole block an item: `wp` is then the weights as given, and the item packs its block
    into its thread's part of `wblocks` (num_threads x Cg x taps x V) before its rows (packing
    the whole kernel first wrote and read back those 9.4 MB: 38% of the call at batch 1).
    `per_sample`, an item a sample: it pads the sample's planes into its thread's part of
    `xpad` (num_threads x C planes) and runs all their rows while they are in cache, where the
    batch's padded planes would go to memory and back. Returns whether every weight was finite
    (always True unfused: pack_weights said so); where not, y is unspecified and the caller
    gives up."""
    cdef Rows R
    cdef Py_ssize_t blocks = (Kg + V - 1) // V
    cdef Py_ssize_t pairs, out_plane, per_block
    cdef Py_ssize_t item, rest, nn, gi, kb, od, oh, sub
    cdef const floating* planes
    cdef floating* block
    cdef int bad = 0
    cdef int* badp = &bad       # written only with 1, by any thread (a pointer: not privatized)
    R.g = make_shape(n, p, e, o, s)
    pairs = (R.g.o[1] + pair - 1) // pair
    out_plane = R.g.o[0] * R.g.o[1] * R.g.o[2]
    R.toff, R.kern, R.dil = &toff[0], &kern[0], &dil[0]
    R.padded = R.g.e[0] * R.g.e[1] * R.g.e[2]
    R.C, R.Cg, R.Kg, R.V, R.KB, R.pair = G * Cg, Cg, Kg, V, KB, pair
    R.wtaps = wtaps if wtaps else toff.shape[0]
    R.edged = edges is not None
    R.jl = R.jr = R.wl = R.wr = R.ew = 0
    if N * G * Kg * out_plane == 0:
        return True
    if ystrides is None:
        R.ysample, R.ychan, R.yd, R.yh, R.yw = (G * Kg * out_plane, out_plane,
                                                R.g.o[1] * R.g.o[2], R.g.o[2], 1)
    else:
        R.ysample, R.ychan, R.yd, R.yh, R.yw = ystrides
    if R.edged:
        R.jl, R.jr, R.wl, R.wr = edges
        R.ew = R.wl if R.wl > R.wr else R.wr
    R.ek = same_row_taps(&R.g, kern[2], dil[2], xpad.shape[0] > 0 and not R.edged and not wtaps)
    per_block = N * R.g.o[0] * pairs
    if per_sample:
        sample_items(&R, &x[0], &wp[0], &y[0], &xpad[0], &rows[0], N, G, blocks, pairs,
                     num_threads)
        return True
    with nogil:
        planes = &x[0] if R.edged else input_planes(&x[0], xpad, &R.g, N * R.C, num_threads)
        if fuse:
            for item in prange(G * blocks, schedule="static", num_threads=num_threads):
                kb = item % blocks
                gi = item // blocks
                block = &wblocks[0] + omp_get_thread_num() * Cg * R.wtaps * V
                if not pack_block(&wp[0], Kg, Cg, R.wtaps, V, gi, kb, fuse == 2, block):
                    badp[0] = 1
                for sub in range(per_block):
                    oh = (sub % pairs) * pair
                    od = (sub // pairs) % R.g.o[0]
                    nn = sub // (pairs * R.g.o[0])
                    row_item(&R, planes + nn * R.C * R.padded, block, &y[0],
                             &rows[0] + omp_get_thread_num() * 2 * R.g.o[2] * V,
                             &xpad[0] + omp_get_thread_num() * Cg * R.ew if R.edged else NULL,
                             nn, gi, kb, od, oh)
        else:
            for item in prange(N * G * blocks * R.g.o[0] * pairs, schedule="static",
                               num_threads=num_threads):
                oh = (item % pairs) * pair
                rest = item // pairs
                od = rest % R.g.o[0]
                rest = rest // R.g.o[0]
                if by_block:
                    nn = rest % N
                    rest = rest // N
                    kb = rest % blocks
                    gi = rest // blocks
                else:
                    kb = rest % blocks
                    rest = rest // blocks
                    gi = rest % G
                    nn = rest // G
                row_item(&R, planes + nn * R.C * R.padded,
                         &wp[0] + (gi * blocks + kb) * Cg * R.wtaps * V, &y[0],
                         &rows[0] + omp_get_thread_num() * 2 * R.g.o[2] * V,
                         &xpad[0] + omp_get_thread_num() * Cg * R.ew if R.edged else NULL,
                         nn, gi, kb, od, oh)
    return bad == 0


def unpack_gradient(const floating[::1] dwp, floating[::1] gw, Py_ssize_t G, Py_ssize_t Kg,
                    Py_ssize_t Cg, Py_ssize_t taps, Py_ssize_t V, int num_threads):
    """gw (G * Kg, Cg, taps) = the packed kernel gradient dwp (G, blocks, Cg, taps, V), lane l of
    block kb being output channel kb * V + l of its group (lanes past Kg dropped): a block's Cg x
    taps rows of V lanes transposed by bk_unpack, an item a block. NumPy's strided copy of
    ResNet-18's 512-channel 3x3 gradient (2.4 M values) took 2.9 ms of one thread, 70% of the
    call at batch 1."""
    cdef Py_ssize_t blocks = (Kg + V - 1) // V, item, row = Cg * taps
    for item in prange(G * blocks, nogil=True, schedule="static", num_threads=num_threads):
        unpack(&dwp[0] + item * row * V, V, row, 1, block_lanes(Kg, item % blocks, V),
               &gw[0] + ((item // blocks) * Kg + item % blocks * V) * row, row, row)


def pack_weights(const floating[::1] w, floating[::1] out, Py_ssize_t G, Py_ssize_t Kg,
                 Py_ssize_t Cg, Py_ssize_t taps, Py_ssize_t V, bint flip, int num_threads,
                 const Py_ssize_t[::1] pos=None):
    """out (G, blocks, Cg, taps, V) = the weights as bk_row reads them: lane l of block b holds
    output channel b * V + l of the group, zeros past Kg.

    Forward (w is (G * Kg, Cg, taps)): a block is the transpose of its V rows of Cg * taps
    values; an item copies runs of PACK_RUN values of those rows into the lanes, reading along
    the rows (gathering one (channel, tap) at a time took 1.4 ms on ResNet-18's 512-channel 3x3).
    `flip`, grad_input's (w is (G * Cg, Kg, taps), lanes its second axis, the taps reversed: the
    adjoint): an item fills one input channel's taps x V; `pos` (flip only) puts tap q at pos[q]
    instead of taps - 1 - q (a strided input gradient's phases, each one's taps together).
    Returns whether every weight is finite (checked on the packed values, in cache)."""
    cdef Py_ssize_t blocks = (Kg + V - 1) // V, row = Cg * taps
    cdef Py_ssize_t runs = (row + PACK_RUN - 1) // PACK_RUN
    cdef Py_ssize_t item, gi, kb, c, q0, q1, lanes
    cdef const floating* src
    cdef floating* dst
    cdef int bad = 0
    cdef int* badp = &bad       # written only with 1, by any thread (a pointer: not privatized)
    cdef const Py_ssize_t* tap_pos = NULL if pos is None else &pos[0]
    with nogil:
        if not flip:
            for item in prange(G * blocks * runs, schedule="static", num_threads=num_threads):
                q0 = (item % runs) * PACK_RUN
                q1 = q0 + PACK_RUN if q0 + PACK_RUN < row else row
                kb = (item // runs) % blocks
                gi = item // (runs * blocks)
                dst = &out[0] + (gi * blocks + kb) * row * V
                src = &w[0] + (gi * Kg + kb * V) * row
                lanes = block_lanes(Kg, kb, V)
                if lanes_last(src, row, dst, V, lanes, q0, q1):
                    badp[0] = 1
        else:
            for item in prange(G * blocks * Cg, schedule="static", num_threads=num_threads):
                c = item % Cg
                kb = (item // Cg) % blocks
                gi = item // (Cg * blocks)
                dst = &out[0] + item * taps * V
                src = &w[0] + ((gi * Cg + c) * Kg + kb * V) * taps
                lanes = block_lanes(Kg, kb, V)
                flip_channel(src, taps, tap_pos, dst, V, lanes,
                             src + FLIP_AHEAD * Kg * taps if c + FLIP_AHEAD < Cg else NULL)
                if any_not_finite(dst, taps * V):
                    badp[0] = 1
    return bad == 0


include "_blocked_gk_chunks.pxi"
include "_blocked_columns.pxi"
include "_blocked_positions.pxi"
include "_blocked_batch.pxi"
include "_blocked_planes.pxi"
