"""Direct convolution: loops over the kernel taps with register tiles, no column buffer.

Arrays arrive lifted to three spatial dimensions, C-contiguous and flattened (see _geometry.pxd).
An output "row" is one (depth, height) index: `ow` contiguous outputs. This module builds the
work items, the tables of valid taps and per run of rows (rows with the same valid kernel rows)
the list of taps; the arithmetic is in the C micro-kernels of _direct_kernels.h:

  fc_fwd_rows   a run of output rows: register tiles of 4 output channels (sharing each input
                vector), or of 4 output rows (sharing each weight; at stride 1 with 3 or 5
                kernel rows, sharing each input row too), or of up to 8 vectors of one row;
  fc_gw_rows    the kernel gradient's dot products of a run of rows, 4 channels or 4 rows (or a
                kernel column's 3 taps) at once, into V-lane accumulators per tap.

Borders are never padded in memory: the valid kernel depths and rows of each output row come
from tables built with `valid_range`; along a row, vectors whose every tap lies inside the input
are computed as they are, the others ("edge" tiles) load each vector where it lies inside the
input and shift it into place with a shuffle that fills zeros; the last vector of a row overlaps
the one before and rewrites the same values. Rows too narrow for a quarter vector go one column
at a time with the taps that fall inside. At a width stride above 1, forward and grad_kernel
first store x's rows by phase of the stride (_phase.pxd: x[0], x[s], x[2s], ..., x[1], ...) and
read them as at stride 1, each tap's columns contiguous (store_by_phase, read_by_phase).

The three operations:
  forward      items (sample, group, block of 4 output channels or one channel, part of the rows,
               part of the columns); each output element is computed by one tile, in a fixed
               order of taps.
  grad_input   stride 1: a "full" correlation of gy with the flipped kernel, i.e. the forward pass
               on the transposed geometry (input and output channels swapped), reading the kernel
               through a strided, flipped view; items partition the input channels. Stride > 1:
               items (sample, input channel), each zeroes its own plane and scatters every tap
               into its strided positions (more than FC_TAP_BLOCK (channel, tap) pairs: block by
               block through a scratch plane, as the forward tiles sum their taps in blocks).
  grad_kernel  items (group, block of output channels, input channel, part of the rows and
               columns), each summing into its own per-thread V-lane accumulators, reduced in a
               fixed order at the end of the item; the parts (a number fixed by the problem) are
               added in order. No atomics; nothing depends on the thread count.
Per-thread scratch is spaced by more than a cache line, so threads never share one.
"""
from cython cimport floating
from cython.parallel cimport prange
from libc.string cimport memset

from _geometry cimport Geom, geom_from_spec, valid_range
from _parallel cimport data_or_null, part_start, sum_parts, thread_slice
from _phase cimport phase_rows, phased_offset

cdef extern from "_direct_kernels.h":
    enum: FC_TAP_BLOCK
    Py_ssize_t fc_vector_bytes() noexcept nogil
    int fc_level() noexcept nogil
    void fc_init() noexcept nogil
    void fc_fwd_rows_float "fc_kernels.fc_fwd_rows_float"(int channels, const float* x,
            Py_ssize_t base, Py_ssize_t xrs, Py_ssize_t sw, const Py_ssize_t* xoff,
            const Py_ssize_t* widx, const Py_ssize_t* ecol, Py_ssize_t ntaps, const float* w,
            Py_ssize_t wm, float* y, Py_ssize_t yrs, Py_ssize_t ys, Py_ssize_t nrows, Py_ssize_t o0,
            Py_ssize_t o1, const Py_ssize_t* clo, const Py_ssize_t* chi, Py_ssize_t kw,
            Py_ssize_t kh) noexcept nogil
    void fc_fwd_rows_double "fc_kernels.fc_fwd_rows_double"(int channels, const double* x,
            Py_ssize_t base, Py_ssize_t xrs, Py_ssize_t sw, const Py_ssize_t* xoff,
            const Py_ssize_t* widx, const Py_ssize_t* ecol, Py_ssize_t ntaps, const double* w,
            Py_ssize_t wm, double* y, Py_ssize_t yrs, Py_ssize_t ys, Py_ssize_t nrows,
            Py_ssize_t o0, Py_ssize_t o1, const Py_ssize_t* clo, const Py_ssize_t* chi,
            Py_ssize_t kw, Py_ssize_t kh) noexcept nogil
    void fc_gw_rows_float "fc_kernels.fc_gw_rows_float"(int channels, const float* g, Py_ssize_t gs,
            Py_ssize_t grs, const float* x, Py_ssize_t base, Py_ssize_t xrs, Py_ssize_t sw,
            Py_ssize_t nrows, const Py_ssize_t* xoff, const Py_ssize_t* tap, const Py_ssize_t* ecol,
            Py_ssize_t ntaps, const Py_ssize_t* clo, const Py_ssize_t* chi, Py_ssize_t o0,
            Py_ssize_t o1, Py_ssize_t kh, float* acc) noexcept nogil
    void fc_gw_rows_double "fc_kernels.fc_gw_rows_double"(int channels, const double* g,
            Py_ssize_t gs, Py_ssize_t grs, const double* x, Py_ssize_t base, Py_ssize_t xrs,
            Py_ssize_t sw, Py_ssize_t nrows, const Py_ssize_t* xoff, const Py_ssize_t* tap,
            const Py_ssize_t* ecol, Py_ssize_t ntaps, const Py_ssize_t* clo, const Py_ssize_t* chi,
            Py_ssize_t o0, Py_ssize_t o1, Py_ssize_t kh, double* acc) noexcept nogil

# Calls reach the kernels of this process's instruction-set level through the table that this
# fills, once, before any kernel runs (src/_cpu_level.h).
fc_init()

cdef enum:
    STREAMS = 4             # streams of the micro-kernel tiles: output channels or output rows


cdef inline Py_ssize_t per_thread(Py_ssize_t n) noexcept nogil:
    """Entries between two threads' scratch: n rounded up, plus a gap of at least a cache line
    (64 bytes), so that threads never write the same line."""
    return (n // 16 + 2) * 16


def scratch_entries(n):
    """per_thread(n): the spacing of each thread's share of a scratch buffer of n entries."""
    return per_thread(n)


cdef inline void fwd_rows(bint channels, const floating* x, Py_ssize_t base, Py_ssize_t xrs,
                          Py_ssize_t sw, const Py_ssize_t* xoff, const Py_ssize_t* widx,
                          const Py_ssize_t* ecol, Py_ssize_t ntaps, const floating* w,
                          Py_ssize_t wm, floating* y, Py_ssize_t yrs, Py_ssize_t ys,
                          Py_ssize_t nrows, Py_ssize_t o0, Py_ssize_t o1, const Py_ssize_t* clo,
                          const Py_ssize_t* chi, Py_ssize_t kw, Py_ssize_t kh) noexcept nogil:
    if floating is float:
        fc_fwd_rows_float(channels, x, base, xrs, sw, xoff, widx, ecol, ntaps, w, wm, y, yrs, ys,
                          nrows, o0, o1, clo, chi, kw, kh)
    else:
        fc_fwd_rows_double(channels, x, base, xrs, sw, xoff, widx, ecol, ntaps, w, wm, y, yrs, ys,
                           nrows, o0, o1, clo, chi, kw, kh)


cdef inline void gw_rows(bint channels, const floating* gy, Py_ssize_t gs, Py_ssize_t grs,
                         const floating* x, Py_ssize_t base, Py_ssize_t xrs, Py_ssize_t sw,
                         Py_ssize_t nrows, const Py_ssize_t* xoff, const Py_ssize_t* tap,
                         const Py_ssize_t* ecol, Py_ssize_t ntaps, const Py_ssize_t* clo,
                         const Py_ssize_t* chi, Py_ssize_t o0, Py_ssize_t o1, Py_ssize_t kh,
                         floating* acc) noexcept nogil:
    if floating is float:
        fc_gw_rows_float(channels, gy, gs, grs, x, base, xrs, sw, nrows, xoff, tap, ecol, ntaps,
                         clo, chi, o0, o1, kh, acc)
    else:
        fc_gw_rows_double(channels, gy, gs, grs, x, base, xrs, sw, nrows, xoff, tap, ecol, ntaps,
                          clo, chi, o0, o1, kh, acc)


# --- tables of valid taps -----------------------------------------------------------------------

cdef struct Tables:
    Py_ssize_t* alo         # per output depth zo: kernel depths [alo, ahi) fall inside the input
    Py_ssize_t* ahi
    Py_ssize_t* blo         # per output row yo: kernel rows [blo, bhi)
    Py_ssize_t* bhi
    Py_ssize_t* clo         # per kernel column e: output columns [clo, chi)
    Py_ssize_t* chi
    Py_ssize_t* coff        # per kernel column e: its input's offset from the row's origin


def tables_size(spec, transposed=False):
    """Entries of the table buffer for `spec` (its transposed geometry if `transposed`)."""
    sizes = spec.input_size if transposed else spec.output_size
    return 2 * (sizes[0] + sizes[1] + spec.kernel_size[2]) + spec.kernel_size[2]


cdef void fill_tables(const Geom* g, Py_ssize_t* buf, Tables* tb) noexcept nogil:
    cdef Py_ssize_t i
    tb.alo = buf
    tb.ahi = tb.alo + g.od
    tb.blo = tb.ahi + g.od
    tb.bhi = tb.blo + g.oh
    tb.clo = tb.bhi + g.oh
    tb.chi = tb.clo + g.kw
    tb.coff = tb.chi + g.kw
    for i in range(g.od):
        valid_range(0, g.kd, g.dd, i * g.sd - g.pd, g.id, &tb.alo[i], &tb.ahi[i])
    for i in range(g.oh):
        valid_range(0, g.kh, g.dh, i * g.sh - g.ph, g.ih, &tb.blo[i], &tb.bhi[i])
    for i in range(g.kw):
        valid_range(0, g.ow, g.sw, i * g.dw - g.pw, g.iw, &tb.clo[i], &tb.chi[i])
        tb.coff[i] = i * g.dw


cdef struct WView:
    Py_ssize_t gstride      # the weights of group gi start at w + gi * gstride
    Py_ssize_t kstride      # + k * kstride for output channel k of the group
    Py_ssize_t cstride      # + c * cstride for input channel c of the group
    bint flip               # tap t reads tap k_vol - 1 - t


cdef Py_ssize_t row_taps(const Geom* g, const Tables* tb, const WView* wv, Py_ssize_t zo,
                         Py_ssize_t yo, Py_ssize_t channels, Py_ssize_t* xoff, Py_ssize_t* widx,
                         Py_ssize_t* ecol) noexcept nogil:
    """The taps of output row (zo, yo) whose kernel depth and row lie inside the input.

    xoff: input offset from the row's origin (first channel, column 0 of the row's window);
    widx: weight offset (WView); ecol: kernel column. Order: channel, depth, row, column -- the
    order of every sum.
    """
    cdef Py_ssize_t t = 0, c, a, b, e, tap
    for c in range(channels):
        for a in range(tb.alo[zo], tb.ahi[zo]):
            for b in range(tb.blo[yo], tb.bhi[yo]):
                tap = (a * g.kh + b) * g.kw
                for e in range(g.kw):
                    xoff[t] = c * g.in_vol + (a * g.dd * g.ih + b * g.dh) * g.iw + tb.coff[e]
                    widx[t] = c * wv.cstride + (g.k_vol - 1 - tap - e if wv.flip else tap + e)
                    ecol[t] = e
                    t += 1
    return t


cdef inline Py_ssize_t run_end(const Tables* tb, const Geom* g, Py_ssize_t r, Py_ssize_t r1,
                               Py_ssize_t yo) noexcept nogil:
    """End of the run of rows from r (output row yo) with the same valid kernel rows."""
    cdef Py_ssize_t e = r + 1
    while (e < r1 and yo + e - r < g.oh and tb.blo[yo + e - r] == tb.blo[yo]
           and tb.bhi[yo + e - r] == tb.bhi[yo]):
        e += 1
    return e


cdef inline Py_ssize_t full_rows(const Geom* g, const Tables* tb, Py_ssize_t yo) noexcept nogil:
    """kh when the rows of yo's run may share input rows in the kernels (stride and dilation 1
    along the rows, a kernel of 3 or 5 rows all inside the input), else 0."""
    if (g.sh == 1 and g.dh == 1 and (g.kh == 3 or g.kh == 5) and tb.blo[yo] == 0
            and tb.bhi[yo] == g.kh):
        return g.kh
    return 0


cdef inline Py_ssize_t row_origin(const Geom* g, Py_ssize_t n, Py_ssize_t c, Py_ssize_t zo,
                                  Py_ssize_t yo) noexcept nogil:
    """Input offset of output row (zo, yo)'s window origin in channel c (may be negative)."""
    return ((n * g.C + c) * g.in_vol + (zo * g.sd - g.pd) * g.ih * g.iw
            + (yo * g.sh - g.ph) * g.iw - g.pw)


# --- rows stored by phase of the width stride ---------------------------------------------------

cdef void store_by_phase(const Geom* g, const floating* x, floating* phased,
                         int num_threads) noexcept nogil:
    """x's rows stored by phase of the width stride (phase_rows), in parts over the threads."""
    cdef Py_ssize_t rows = g.N * g.C * g.id * g.ih, part, parts = 4 * num_threads, r0, r1
    for part in prange(parts, schedule="static", num_threads=num_threads):
        r0 = part_start(0, rows, part, parts)
        r1 = part_start(0, rows, part + 1, parts)
        phase_rows(x + r0 * g.iw, phased + r0 * g.iw, r1 - r0, g.iw, g.sw)


cdef Geom read_by_phase(const Geom* g, Tables* tb) noexcept nogil:
    """The geometry the kernels read x stored by phase with: every tap's column offset is its
    phase's (tb.coff; they hold the padding), and a row's taps are contiguous, as at stride 1.
    The valid columns (tb.clo, tb.chi) stay the strided geometry's."""
    cdef Geom gs = g[0]
    cdef Py_ssize_t e
    for e in range(g.kw):
        tb.coff[e] = phased_offset(g, e * g.dw - g.pw)
    gs.pw = 0
    gs.sw = 1
    return gs


# --- forward (and grad_input at stride 1) --------------------------------------------------------

cdef void fwd_item(const Geom* g, const Tables* tb, const WView* wv, const floating* x,
                   const floating* w, floating* y, Py_ssize_t n, Py_ssize_t gi, Py_ssize_t kb,
                   Py_ssize_t r0, Py_ssize_t r1, Py_ssize_t o0, Py_ssize_t o1,
                   Py_ssize_t* lists) noexcept nogil:
    """Rows r0..r1 (flat depth * height), columns o0..o1, of output-channel block kb.

    With at least 4 output channels a group, 4 channels share each input load; otherwise 4 rows
    of a run (rows with the same valid taps) share each weight, the last block overlapping.
    """
    cdef Py_ssize_t ntap = g.Cg * g.k_vol, r, re, zo, yo, nt, k0, wm
    cdef Py_ssize_t* xoff = lists
    cdef Py_ssize_t* widx = lists + ntap
    cdef Py_ssize_t* ecol = lists + 2 * ntap
    cdef bint channel_block = g.Kg >= STREAMS
    cdef const floating* wb
    cdef floating* yb
    k0 = min(kb * STREAMS, g.Kg - STREAMS) if channel_block else kb
    wm = wv.kstride if channel_block else 0
    wb = w + gi * wv.gstride + k0 * wv.kstride
    yb = y + (n * g.K + gi * g.Kg + k0) * g.P
    r = r0
    while r < r1:
        zo = r // g.oh
        yo = r - zo * g.oh
        re = run_end(tb, g, r, r1, yo)
        nt = row_taps(g, tb, wv, zo, yo, g.Cg, xoff, widx, ecol)
        fwd_rows(channel_block, x, row_origin(g, n, gi * g.Cg, zo, yo), g.sh * g.iw, g.sw, xoff,
                 widx, ecol, nt, wb, wm, yb + r * g.ow, g.ow, g.P, re - r, o0, o1, tb.clo,
                 tb.chi, g.kw, full_rows(g, tb, yo))
        r = re


cdef void forward_items(const Geom* g, const WView* wv, const floating* x, const floating* w,
                        floating* y, Py_ssize_t* tables, Py_ssize_t* lists,
                        Py_ssize_t rparts, Py_ssize_t cparts, int num_threads,
                        bint phased=False) noexcept nogil:
    """The forward items; `phased`: x's rows are stored by phase of the width stride (phase_rows),
    so every tap reads contiguous values along an output row, as at stride 1 (the valid columns
    are the strided geometry's; the taps' offsets and the row origins those of the phases)."""
    cdef Tables tb
    cdef Geom gs = g[0]
    cdef Py_ssize_t nkb = (g.Kg + STREAMS - 1) // STREAMS if g.Kg >= STREAMS else g.Kg
    cdef Py_ssize_t rows = g.od * g.oh, rstep = (rows + rparts - 1) // rparts
    cdef Py_ssize_t cstep = (g.ow + cparts - 1) // cparts, per_list = per_thread(3 * g.Cg * g.k_vol)
    cdef Py_ssize_t item, rest, n, gi, kb, rp, cp
    fill_tables(g, tables, &tb)
    if phased:
        gs = read_by_phase(g, &tb)
    for item in prange(g.N * g.G * nkb * rparts * cparts, nogil=True, schedule="static",
                       num_threads=num_threads):
        cp = item % cparts
        rest = item // cparts
        rp = rest % rparts
        rest = rest // rparts
        kb = rest % nkb
        rest = rest // nkb
        gi = rest % g.G
        n = rest // g.G
        if rp * rstep < rows and cp * cstep < g.ow:
            fwd_item(&gs, &tb, wv, x, w, y, n, gi, kb, rp * rstep, min(rows, (rp + 1) * rstep),
                     cp * cstep, min(g.ow, (cp + 1) * cstep),
                     thread_slice(lists, per_list))


cdef Geom transposed(const Geom* g) noexcept nogil:
    """The geometry of grad_input at stride 1 as a forward pass: gy in, gx out, kernel flipped."""
    cdef Geom t = g[0]
    t.C, t.K, t.Cg, t.Kg = g.K, g.C, g.Kg, g.Cg
    t.id, t.ih, t.iw = g.od, g.oh, g.ow
    t.od, t.oh, t.ow = g.id, g.ih, g.iw
    t.sd = t.sh = t.sw = 1
    t.pd = (g.kd - 1) * g.dd - g.pd
    t.ph = (g.kh - 1) * g.dh - g.ph
    t.pw = (g.kw - 1) * g.dw - g.pw
    t.in_vol, t.P = g.P, g.in_vol
    return t


# --- grad_input at stride > 1: scatter within each input plane ------------------------------------

cdef void scatter_taps(const Geom* g, const Tables* tb, const floating* gy, const floating* w,
                       floating* plane, Py_ssize_t n, Py_ssize_t c, Py_ssize_t j0,
                       Py_ssize_t j1) noexcept nogil:
    """plane += what the pairs j = (output channel of the group) * k_vol + tap, j0 <= j < j1,
    scatter into gx plane (n, c), in the order of j then output position."""
    cdef Py_ssize_t gi = c // g.Cg, cl = c - gi * g.Cg, kk, k, zo, yo, a, b, e, o, off
    cdef Py_ssize_t t0, t1, row, e0, e1
    cdef floating* xrow
    cdef const floating* grow
    cdef const floating* wk
    cdef floating wv
    for kk in range(j0 // g.k_vol, (j1 - 1) // g.k_vol + 1):
        k = gi * g.Kg + kk
        t0 = max(j0 - kk * g.k_vol, 0)
        t1 = min(j1 - kk * g.k_vol, g.k_vol)
        wk = w + (k * g.Cg + cl) * g.k_vol
        for zo in range(g.od):
            for yo in range(g.oh):
                grow = gy + (n * g.K + k) * g.P + (zo * g.oh + yo) * g.ow
                for a in range(tb.alo[zo], tb.ahi[zo]):
                    for b in range(tb.blo[yo], tb.bhi[yo]):
                        row = (a * g.kh + b) * g.kw
                        e0 = max(t0 - row, 0)
                        e1 = min(t1 - row, g.kw)
                        xrow = plane + ((zo * g.sd - g.pd + a * g.dd) * g.ih
                                        + yo * g.sh - g.ph + b * g.dh) * g.iw
                        for e in range(e0, e1):
                            wv = wk[row + e]
                            off = e * g.dw - g.pw
                            for o in range(tb.clo[e], tb.chi[e]):
                                xrow[o * g.sw + off] += wv * grow[o]


cdef void scatter_plane(const Geom* g, const Tables* tb, const floating* gy, const floating* w,
                        floating* gx, floating* scratch, Py_ssize_t n, Py_ssize_t c) noexcept nogil:
    """gx plane (n, c). More than FC_TAP_BLOCK (channel, tap) pairs (a long reduction) go in
    blocks, each summed in `scratch` (a plane) and added to gx, as the forward tiles do."""
    cdef Py_ssize_t total = g.Kg * g.k_vol, j0, i
    cdef floating* plane = gx + (n * g.C + c) * g.in_vol
    memset(plane, 0, g.in_vol * sizeof(floating))
    if scratch == NULL or total <= FC_TAP_BLOCK:
        scatter_taps(g, tb, gy, w, plane, n, c, 0, total)
        return
    j0 = 0
    while j0 < total:
        memset(scratch, 0, g.in_vol * sizeof(floating))
        scatter_taps(g, tb, gy, w, scratch, n, c, j0, min(j0 + FC_TAP_BLOCK, total))
        for i in range(g.in_vol):
            plane[i] += scratch[i]
        j0 += FC_TAP_BLOCK


# --- grad_kernel -------------------------------------------------------------------------------

cdef void gw_item(const Geom* g, const Tables* tb, const floating* x, const floating* gy,
                  floating* out, floating* acc, Py_ssize_t* lists, Py_ssize_t gi, Py_ssize_t kb,
                  Py_ssize_t c, Py_ssize_t r0, Py_ssize_t r1, Py_ssize_t o0,
                  Py_ssize_t o1) noexcept nogil:
    """Sum over flat rows r0..r1 (sample, depth, height), columns o0..o1, of gw[block kb, c].

    acc holds V lanes per (tap, stream); streams are 4 output channels (at least 4 a group) or
    4 rows of a run; the lanes and streams are added in a fixed order at the end.
    """
    cdef Py_ssize_t V = fc_vector_bytes() // sizeof(floating), kv = g.k_vol
    cdef Py_ssize_t* xoff = lists
    cdef Py_ssize_t* tap = lists + kv
    cdef Py_ssize_t* ecol = lists + 2 * kv
    cdef bint channel_block = g.Kg >= STREAMS
    cdef Py_ssize_t k0, skip, per_sample = g.od * g.oh, r, re, n, rr, zo, yo, nt, gb, m, t, i
    cdef floating s
    cdef WView taps
    taps.gstride = taps.kstride = taps.cstride = 0
    taps.flip = False
    if channel_block:
        k0 = min(kb * STREAMS, g.Kg - STREAMS)
        skip = kb * STREAMS - k0        # the overlapping last block writes only its own channels
    else:
        k0, skip = kb, 0
    memset(acc, 0, kv * STREAMS * V * sizeof(floating))
    r = r0
    while r < r1:
        n = r // per_sample
        rr = r - n * per_sample
        zo = rr // g.oh
        yo = rr - zo * g.oh
        re = run_end(tb, g, r, r1, yo)
        nt = row_taps(g, tb, &taps, zo, yo, 1, xoff, tap, ecol)
        gb = (n * g.K + gi * g.Kg + k0) * g.P + rr * g.ow
        gw_rows(channel_block, gy + gb, g.P, g.ow, x, row_origin(g, n, gi * g.Cg + c, zo, yo),
                g.sh * g.iw, g.sw, re - r, xoff, tap, ecol, nt, tb.clo, tb.chi, o0, o1,
                full_rows(g, tb, yo), acc)
        r = re
    for m in range(skip, STREAMS if channel_block else 1):
        for t in range(kv):
            s = 0
            if channel_block:
                for i in range(V):
                    s = s + acc[(t * STREAMS + m) * V + i]
            else:
                for i in range(STREAMS * V):
                    s = s + acc[t * STREAMS * V + i]
            out[((gi * g.Kg + k0 + m) * g.Cg + c) * kv + t] = s


cdef void grad_kernel_items(const Geom* g, const floating* x, const floating* gy, floating* gw,
                            floating* partials, floating* accs, Py_ssize_t* tables,
                            Py_ssize_t* lists, Py_ssize_t rparts, Py_ssize_t cparts,
                            int num_threads, bint phased) noexcept nogil:
    """Items (group, channel block, input channel, part); a part is a range of rows and columns,
    and with several parts each writes its own partial gradient, added in order at the end.
    `phased`: x's rows are stored by phase of the width stride (as forward_items')."""
    cdef Tables tb
    cdef Geom gs = g[0]
    cdef Py_ssize_t nkb = (g.Kg + STREAMS - 1) // STREAMS if g.Kg >= STREAMS else g.Kg
    cdef Py_ssize_t rows = g.N * g.od * g.oh, size = g.K * g.Cg * g.k_vol, parts = rparts * cparts
    cdef Py_ssize_t nlanes = fc_vector_bytes() // sizeof(floating)
    cdef Py_ssize_t acc_size = per_thread(g.k_vol * STREAMS * nlanes)
    cdef Py_ssize_t item, rest, p, rp, cp, c, kb, gi
    fill_tables(g, tables, &tb)
    if phased:
        gs = read_by_phase(g, &tb)
    for item in prange(g.G * nkb * g.Cg * parts, nogil=True, schedule="static",
                       num_threads=num_threads):
        p = item % parts
        rp = p // cparts
        cp = p - rp * cparts
        rest = item // parts
        c = rest % g.Cg
        rest = rest // g.Cg
        kb = rest % nkb
        gi = rest // nkb
        gw_item(&gs, &tb, x, gy, gw if parts == 1 else partials + p * size,
                thread_slice(accs, acc_size), thread_slice(lists, per_thread(3 * g.k_vol)), gi,
                kb, c, part_start(0, rows, rp, rparts), part_start(0, rows, rp + 1, rparts),
                part_start(0, g.ow, cp, cparts), part_start(0, g.ow, cp + 1, cparts))
    if parts > 1:
        sum_parts(partials, gw, size, parts, num_threads)


# --- entry points --------------------------------------------------------------------------------

def forward(spec, const floating[::1] x, const floating[::1] w, floating[::1] y,
            Py_ssize_t[::1] tables, Py_ssize_t[::1] lists, Py_ssize_t rparts, Py_ssize_t cparts,
            int num_threads, floating[::1] phased):
    """y = conv(x, w); `lists` holds num_threads * scratch_entries(3 * (C/G) * k_vol) entries.
    `phased` (x.size values, or empty) takes x's rows stored by phase of the width stride, which
    the kernels then read as at stride 1 (contiguous vectors, not gathers)."""
    cdef Geom g = geom_from_spec(spec)
    cdef WView wv
    cdef bint by_phase = phased.shape[0] > 0 and g.sw > 1
    wv.gstride = g.Kg * g.Cg * g.k_vol
    wv.kstride = g.Cg * g.k_vol
    wv.cstride = g.k_vol
    wv.flip = False
    if by_phase and phased.shape[0] < x.shape[0]:
        raise ValueError(f"phased holds {phased.shape[0]} values, x {x.shape[0]}")
    with nogil:
        if by_phase:
            store_by_phase(&g, &x[0], &phased[0], num_threads)
        forward_items(&g, &wv, &phased[0] if by_phase else &x[0], &w[0], &y[0], &tables[0],
                      &lists[0], rparts, cparts, num_threads, by_phase)


def grad_input(spec, const floating[::1] gy, const floating[::1] w, floating[::1] gx,
               Py_ssize_t[::1] tables, Py_ssize_t[::1] lists, Py_ssize_t rparts,
               Py_ssize_t cparts, int num_threads):
    """gx = conv_grad_input(gy, w) at stride 1: the forward pass of the transposed geometry.

    `tables` is sized by tables_size(spec, transposed=True); `lists` holds
    num_threads * scratch_entries(3 * (K/G) * k_vol) entries. Edge tiles multiply the weights by
    the zeros around gy, so with non-finite weights use grad_input_scatter (a sum over the input
    only, as the textbook's).
    """
    cdef Geom g = geom_from_spec(spec)
    cdef Geom t = transposed(&g)
    cdef WView wv
    wv.gstride = g.Kg * g.Cg * g.k_vol
    wv.kstride = g.k_vol
    wv.cstride = g.Cg * g.k_vol
    wv.flip = True
    with nogil:
        forward_items(&t, &wv, &gy[0], &w[0], &gx[0], &tables[0], &lists[0], rparts, cparts,
                      num_threads)


def grad_input_scatter(spec, const floating[::1] gy, const floating[::1] w, floating[::1] gx,
                       Py_ssize_t[::1] tables, floating[::1] scratch, int num_threads):
    """gx = conv_grad_input(gy, w) at any stride: each (sample, channel) plane scatters its taps.
    `scratch` holds num_threads * scratch_entries(in_vol) values where (K/G) * k_vol exceeds
    tap_block() (else it may be empty)."""
    cdef Geom g = geom_from_spec(spec)
    cdef Tables tb
    cdef Py_ssize_t item, spacing = per_thread(g.in_vol)
    cdef floating* work = &scratch[0] if scratch.shape[0] > 0 else NULL
    with nogil:
        fill_tables(&g, &tables[0], &tb)
        for item in prange(g.N * g.C, schedule="static", num_threads=num_threads):
            scatter_plane(&g, &tb, &gy[0], &w[0], &gx[0],
                          thread_slice(work, spacing) if work != NULL else NULL,
                          item // g.C, item % g.C)


def grad_kernel(spec, const floating[::1] x, const floating[::1] gy, floating[::1] gw,
                floating[::1] partials, floating[::1] accs, Py_ssize_t[::1] tables,
                Py_ssize_t[::1] lists, Py_ssize_t rparts, Py_ssize_t cparts, int num_threads,
                floating[::1] phased):
    """gw = conv_grad_kernel(x, gy), summed in rparts x cparts parts (fixed by the problem);
    `partials` holds parts * gw.size values when there are several parts, `accs`
    num_threads * k_vol * 4 * V values and `lists` num_threads * 3 * k_vol entries; `phased`
    (x.size values, or empty) as forward's."""
    cdef Geom g = geom_from_spec(spec)
    cdef floating* part = data_or_null(partials)
    cdef bint by_phase = phased.shape[0] > 0 and g.sw > 1
    if by_phase and phased.shape[0] < x.shape[0]:
        raise ValueError(f"phased holds {phased.shape[0]} values, x {x.shape[0]}")
    with nogil:
        if by_phase:
            store_by_phase(&g, &x[0], &phased[0], num_threads)
        grad_kernel_items(&g, &phased[0] if by_phase else &x[0], &gy[0], &gw[0], part,
                          &accs[0], &tables[0], &lists[0], rparts, cparts, num_threads, by_phase)


def tap_block():
    """(channel, tap) pairs a sum takes at once before it starts a fresh block (see
    _direct_kernels.h's FC_TAP_BLOCK)."""
    return FC_TAP_BLOCK


def kernel_level():
    """The kernel set this process runs: 2 x86-64-v4, 1 x86-64-v3, 0 the build's own target."""
    return fc_level()


def lanes(dtype_size):
    """Lanes of one accumulator vector, on this machine, for items of `dtype_size` bytes."""
    return fc_vector_bytes() // dtype_size
