# The column matrix of im2col (src/_im2col.pyx) moved to and from the input: a row of it (one
# input channel at one kernel tap) packed from x (pack_chunk) or added back into the input
# gradient (scatter_chunk, col2im, its adjoint), along whole output rows where it can.
from cython cimport floating
from libc.string cimport memcpy

from _geometry cimport Geom, valid_range
from _phase cimport phased_offset


cdef inline void walk_row(floating* xc, floating* colrow, const Geom* g,
                          Py_ssize_t a, Py_ssize_t b, Py_ssize_t e,
                          Py_ssize_t p0, Py_ssize_t p1, bint scatter, bint phased) noexcept nogil:
    """Move one column-matrix row between the input channel `xc` and `colrow`.

    The row belongs to kernel tap (a, b, e) and covers output positions [p0, p1).
    pack (scatter=False):  colrow[p - p0] = x[input position of p], 0 in the padding;
    scatter (True):        x[input position of p] += colrow[p - p0] (the adjoint, col2im).
    phased: the rows of `xc` are stored by phase of the width stride (phase_rows), so the
    values of one output row are contiguous: a copy (or a vector add) instead of a gather.
    """
    cdef Py_ssize_t ohw = g.oh * g.ow
    cdef Py_ssize_t p = p0, o_d, o_h, o_w, o_end, zi, yi, xoff, lo, hi, o, base
    cdef floating* xrow
    cdef floating* xph
    while p < p1:
        o_d = p // ohw
        o_h = (p - o_d * ohw) // g.ow
        o_w = p - o_d * ohw - o_h * g.ow
        o_end = o_w + (p1 - p) if p1 - p < g.ow - o_w else g.ow
        base = (p - p0) - o_w              # colrow[base + o] holds output column o of this row
        zi = o_d * g.sd - g.pd + a * g.dd
        yi = o_h * g.sh - g.ph + b * g.dh
        if zi < 0 or zi >= g.id or yi < 0 or yi >= g.ih:
            if not scatter:
                for o in range(o_w, o_end):
                    colrow[base + o] = 0
        else:
            xrow = xc + (zi * g.ih + yi) * g.iw
            xoff = e * g.dw - g.pw
            valid_range(o_w, o_end, g.sw, xoff, g.iw, &lo, &hi)
            if phased:
                xph = xrow + phased_offset(g, xoff)
            if scatter:
                if phased:
                    for o in range(lo, hi):
                        xph[o] += colrow[base + o]
                else:
                    for o in range(lo, hi):
                        xrow[o * g.sw + xoff] += colrow[base + o]
            else:
                for o in range(o_w, lo):
                    colrow[base + o] = 0
                if phased:
                    if hi > lo:
                        memcpy(&colrow[base + lo], &xph[lo], (hi - lo) * sizeof(floating))
                elif g.sw == 1:
                    if hi > lo:
                        memcpy(&colrow[base + lo], &xrow[lo + xoff], (hi - lo) * sizeof(floating))
                else:
                    for o in range(lo, hi):
                        colrow[base + o] = xrow[o * g.sw + xoff]
                for o in range(hi, o_end):
                    colrow[base + o] = 0
        p += o_end - o_w


cdef inline void next_input_row(const Geom* g, Py_ssize_t a, Py_ssize_t b, Py_ssize_t* kd,
                                Py_ssize_t* kh, Py_ssize_t* zi, Py_ssize_t* yi) noexcept nogil:
    """The input depth and row (zi, yi) that output row (kd, kh) reads at tap (a, b); then
    (kd, kh) steps to the next output row."""
    zi[0] = kd[0] * g.sd - g.pd + a * g.dd
    yi[0] = kh[0] * g.sh - g.ph + b * g.dh
    kh[0] = kh[0] + 1
    if kh[0] == g.oh:
        kh[0] = 0
        kd[0] = kd[0] + 1


cdef inline void pack_chunk(const floating* x, floating* col, const Geom* g, Py_ssize_t n,
                            Py_ssize_t r0, Py_ssize_t r1, Py_ssize_t p0, Py_ssize_t p1,
                            bint phased) noexcept nogil:
    """col[r - r0, p - p0] = x[n] at row r's tap and output position p (rows r0..r1)."""
    cdef Py_ssize_t width = p1 - p0, r, c, t, a, b, e, xoff, lo, hi, k, o, zi, yi, kd, kh
    cdef floating* colrow
    cdef const floating* xc
    cdef const floating* src
    if p0 % g.ow == 0 and (p1 % g.ow == 0 or p1 == g.P):
        # Whole output rows: a tap's valid columns are the same in every row; fixed-length
        # loops instead of walk_row's per-segment bookkeeping.
        for r in range(r0, r1):
            c = r // g.k_vol
            t = r - c * g.k_vol
            a = t // (g.kh * g.kw)
            b = (t // g.kw) % g.kh
            e = t % g.kw
            xc = x + (n * g.C + c) * g.in_vol
            xoff = e * g.dw - g.pw
            valid_range(0, g.ow, g.sw, xoff, g.iw, &lo, &hi)
            if phased:
                xoff = phased_offset(g, xoff)
            colrow = col + (r - r0) * width
            kd = (p0 // g.ow) // g.oh           # output row k = kd * oh + kh, stepped without
            kh = (p0 // g.ow) % g.oh            # a division per row (8-wide rows: LeNet's maps)
            for k in range(p0 // g.ow, (p1 + g.ow - 1) // g.ow):
                next_input_row(g, a, b, &kd, &kh, &zi, &yi)
                if zi < 0 or zi >= g.id or yi < 0 or yi >= g.ih:
                    for o in range(g.ow):
                        colrow[o] = 0
                else:
                    src = xc + (zi * g.ih + yi) * g.iw + xoff
                    for o in range(lo):
                        colrow[o] = 0
                    if phased or g.sw == 1:
                        for o in range(lo, hi):
                            colrow[o] = src[o]
                    elif g.sw == 2:     # a constant step: vectorized (no phased copy needed)
                        for o in range(lo, hi):
                            colrow[o] = src[2 * o]
                    else:
                        for o in range(lo, hi):
                            colrow[o] = src[o * g.sw]
                    for o in range(hi, g.ow):
                        colrow[o] = 0
                colrow = colrow + g.ow
        return
    for r in range(r0, r1):
        c = r // g.k_vol
        t = r - c * g.k_vol
        walk_row(<floating*>x + (n * g.C + c) * g.in_vol, col + (r - r0) * width, g,
                 t // (g.kh * g.kw), (t // g.kw) % g.kh, t % g.kw, p0, p1, False, phased)


cdef inline void scatter_chunk(floating* gx, const floating* col, const Geom* g,
                               Py_ssize_t n, Py_ssize_t c0, Py_ssize_t c1, Py_ssize_t p0,
                               Py_ssize_t p1, bint phased) noexcept nogil:
    """col2im: gx[n, c] += the rows of channels c0..c1 at their taps (the adjoint of pack_chunk)."""
    cdef Py_ssize_t width = p1 - p0, c, t, a, b, e, xoff, lo, hi, k, o, zi, yi, kd, kh
    cdef const floating* colrow
    cdef floating* xc
    cdef floating* dst
    if p0 % g.ow == 0 and (p1 % g.ow == 0 or p1 == g.P):
        # Whole output rows, as in pack_chunk's fast path; same order of the sums as walk_row.
        for c in range(c0, c1):
            xc = gx + (n * g.C + c) * g.in_vol
            for t in range(g.k_vol):
                a = t // (g.kh * g.kw)
                b = (t // g.kw) % g.kh
                e = t % g.kw
                xoff = e * g.dw - g.pw
                valid_range(0, g.ow, g.sw, xoff, g.iw, &lo, &hi)
                if phased:
                    xoff = phased_offset(g, xoff)
                colrow = col + ((c - c0) * g.k_vol + t) * width
                kd = (p0 // g.ow) // g.oh
                kh = (p0 // g.ow) % g.oh
                for k in range(p0 // g.ow, (p1 + g.ow - 1) // g.ow):
                    next_input_row(g, a, b, &kd, &kh, &zi, &yi)
                    if zi >= 0 and zi < g.id and yi >= 0 and yi < g.ih:
                        dst = xc + (zi * g.ih + yi) * g.iw + xoff
                        if phased or g.sw == 1:
                            for o in range(lo, hi):
                                dst[o] += colrow[o]
                        elif g.sw == 2:
                            for o in range(lo, hi):
                                dst[2 * o] += colrow[o]
                        else:
                            for o in range(lo, hi):
                                dst[o * g.sw] += colrow[o]
                    colrow = colrow + g.ow
        return
    for c in range(c0, c1):
        for t in range(g.k_vol):
            walk_row(gx + (n * g.C + c) * g.in_vol,
                     <floating*>col + ((c - c0) * g.k_vol + t) * width,
                     g, t // (g.kh * g.kw), (t // g.kw) % g.kh, t % g.kw, p0, p1, True, phased)
