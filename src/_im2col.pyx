"""im2col + GEMM convolution: forward, input gradient (col2im) and kernel gradient.

Arrays arrive lifted to three spatial dimensions, C-contiguous and flattened; the geometry comes
from the ConvSpec (see _geometry.pxd). The column matrix of a tile has one row per
(input channel, kernel tap) -- R = C * k_vol rows, the rows of group g contiguous -- and one column
per (sample, output position) of the tile. Tiles are either `tile_n` whole samples, or, when one
sample's columns exceed the workspace, `tile_p` output positions of a single sample.

Threads: the packing loops run under OpenMP (`prange`, static schedule), the GEMMs use the
BLAS's own threads; the two never run at once, so the one budget is never oversubscribed. Every
output element is written by one thread in a fixed order, and the kernel gradient accumulates tile
after tile in a fixed order, so the result does not depend on the thread count.
"""
from cython cimport floating
from cython.parallel cimport prange
from libc.string cimport memcpy

from _blas cimport gemm
from _geometry cimport Geom, geom_from_spec, valid_range


cdef inline void walk_row(floating* xc, floating* colrow, const Geom* g,
                          Py_ssize_t a, Py_ssize_t b, Py_ssize_t e,
                          Py_ssize_t p0, Py_ssize_t p1, bint scatter) noexcept nogil:
    """Move one column-matrix row between the input channel `xc` and `colrow`.

    The row belongs to kernel tap (a, b, e) and covers output positions [p0, p1).
    pack (scatter=False):  colrow[p - p0] = x[input position of p], 0 in the padding;
    scatter (True):        x[input position of p] += colrow[p - p0] (the adjoint, col2im).
    """
    cdef Py_ssize_t ohw = g.oh * g.ow
    cdef Py_ssize_t p = p0, o_d, o_h, o_w, o_end, zi, yi, xoff, lo, hi, o, base
    cdef floating* xrow
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
            if scatter:
                for o in range(lo, hi):
                    xrow[o * g.sw + xoff] += colrow[base + o]
            else:
                for o in range(o_w, lo):
                    colrow[base + o] = 0
                if g.sw == 1:
                    if hi > lo:
                        memcpy(&colrow[base + lo], &xrow[lo + xoff], (hi - lo) * sizeof(floating))
                else:
                    for o in range(lo, hi):
                        colrow[base + o] = xrow[o * g.sw + xoff]
                for o in range(hi, o_end):
                    colrow[base + o] = 0
        p += o_end - o_w


cdef void pack_tile(const floating* x, floating* col, const Geom* g, Py_ssize_t n0, Py_ssize_t nb,
                    Py_ssize_t p0, Py_ssize_t p1, int num_threads) noexcept nogil:
    """col[r, b * (p1 - p0) + p - p0] = x[n0 + b] at row r's tap, for every row r and sample b."""
    cdef Py_ssize_t R = g.C * g.k_vol, width = p1 - p0, ld = nb * width
    cdef Py_ssize_t item, bi, r, c, t
    for item in prange(nb * R, nogil=True, schedule="static", num_threads=num_threads):
        bi = item // R
        r = item - bi * R
        c = r // g.k_vol
        t = r - c * g.k_vol
        walk_row(<floating*>x + ((n0 + bi) * g.C + c) * g.in_vol, col + r * ld + bi * width, g,
                 t // (g.kh * g.kw), (t // g.kw) % g.kh, t % g.kw, p0, p1, False)


cdef void scatter_tile(floating* gx, const floating* col, const Geom* g, Py_ssize_t n0,
                       Py_ssize_t nb, Py_ssize_t p0, Py_ssize_t p1, int num_threads) noexcept nogil:
    """col2im: gx[n0 + b] += every row of the tile's column matrix, at its tap (the adjoint of pack).

    One (sample, channel) pair per work item: each input channel is written by a single thread,
    its taps added in a fixed order.
    """
    cdef Py_ssize_t width = p1 - p0, ld = nb * width
    cdef Py_ssize_t item, bi, c, t, r
    for item in prange(nb * g.C, nogil=True, schedule="static", num_threads=num_threads):
        bi = item // g.C
        c = item - bi * g.C
        for t in range(g.k_vol):
            r = c * g.k_vol + t
            walk_row(gx + ((n0 + bi) * g.C + c) * g.in_vol, <floating*>col + r * ld + bi * width, g,
                     t // (g.kh * g.kw), (t // g.kw) % g.kh, t % g.kw, p0, p1, True)


cdef void batch_to_rows(const floating* a, floating* tmp, Py_ssize_t n0, Py_ssize_t nb,
                        Py_ssize_t rows, Py_ssize_t P, int num_threads) noexcept nogil:
    """tmp[k, b * P + p] = a[n0 + b, k, p]: a tile of (N, rows, P) as one (rows, nb * P) matrix."""
    cdef Py_ssize_t item, bi, k
    for item in prange(nb * rows, nogil=True, schedule="static", num_threads=num_threads):
        bi = item // rows
        k = item - bi * rows
        memcpy(tmp + k * nb * P + bi * P, a + ((n0 + bi) * rows + k) * P, P * sizeof(floating))


cdef void rows_to_batch(const floating* tmp, floating* a, Py_ssize_t n0, Py_ssize_t nb,
                        Py_ssize_t rows, Py_ssize_t P, int num_threads) noexcept nogil:
    """a[n0 + b, k, p] = tmp[k, b * P + p]: the inverse of batch_to_rows."""
    cdef Py_ssize_t item, bi, k
    for item in prange(nb * rows, nogil=True, schedule="static", num_threads=num_threads):
        bi = item // rows
        k = item - bi * rows
        memcpy(a + ((n0 + bi) * rows + k) * P, tmp + k * nb * P + bi * P, P * sizeof(floating))


cdef inline bint is_pointwise(const Geom* g) noexcept nogil:
    """A 1x1 kernel with stride 1 and no padding: the input itself is the column matrix."""
    return (g.k_vol == 1 and g.sd == 1 and g.sh == 1 and g.sw == 1
            and g.pd == 0 and g.ph == 0 and g.pw == 0)


cdef inline floating* data(floating[::1] a) noexcept:
    return &a[0] if a.shape[0] > 0 else NULL


cdef void forward_tiles(const Geom* g, const floating* x, const floating* w, floating* y,
                        floating* col, floating* tmp, Py_ssize_t tile_n, Py_ssize_t tile_p,
                        int num_threads) noexcept nogil:
    cdef Py_ssize_t Rg = g.Cg * g.k_vol, n0, nb, p0, p1, ld, gi
    if is_pointwise(g):
        for n0 in range(g.N):
            for gi in range(g.G):
                gemm(False, False, g.Kg, g.P, g.Cg, <floating>1, w + gi * g.Kg * g.Cg, g.Cg,
                     x + (n0 * g.C + gi * g.Cg) * g.P, g.P,
                     <floating>0, y + (n0 * g.K + gi * g.Kg) * g.P, g.P)
        return
    n0 = 0
    while n0 < g.N:
        nb = min(tile_n, g.N - n0)
        p0 = 0
        while p0 < g.P:
            p1 = min(p0 + tile_p, g.P)
            ld = nb * (p1 - p0)
            pack_tile(x, col, g, n0, nb, p0, p1, num_threads)
            for gi in range(g.G):
                if nb == 1:     # straight into y[n0], row stride P
                    gemm(False, False, g.Kg, ld, Rg, <floating>1, w + gi * g.Kg * Rg, Rg,
                         col + gi * Rg * ld, ld,
                         <floating>0, y + (n0 * g.K + gi * g.Kg) * g.P + p0, g.P)
                else:
                    gemm(False, False, g.Kg, ld, Rg, <floating>1, w + gi * g.Kg * Rg, Rg,
                         col + gi * Rg * ld, ld, <floating>0, tmp + gi * g.Kg * ld, ld)
            if nb > 1:
                rows_to_batch(tmp, y, n0, nb, g.K, g.P, num_threads)
            p0 = p1
        n0 += nb


cdef void grad_input_tiles(const Geom* g, const floating* gy, const floating* w, floating* gx,
                           floating* col, floating* tmp, Py_ssize_t tile_n, Py_ssize_t tile_p,
                           int num_threads) noexcept nogil:
    cdef Py_ssize_t Rg = g.Cg * g.k_vol, n0, nb, p0, p1, ld, gi
    if is_pointwise(g):
        for n0 in range(g.N):
            for gi in range(g.G):
                gemm(True, False, g.Cg, g.P, g.Kg, <floating>1, w + gi * g.Kg * g.Cg, g.Cg,
                     gy + (n0 * g.K + gi * g.Kg) * g.P, g.P,
                     <floating>0, gx + (n0 * g.C + gi * g.Cg) * g.P, g.P)
        return
    n0 = 0
    while n0 < g.N:
        nb = min(tile_n, g.N - n0)
        if nb > 1:
            batch_to_rows(gy, tmp, n0, nb, g.K, g.P, num_threads)
        p0 = 0
        while p0 < g.P:
            p1 = min(p0 + tile_p, g.P)
            ld = nb * (p1 - p0)
            for gi in range(g.G):
                if nb == 1:
                    gemm(True, False, Rg, ld, g.Kg, <floating>1, w + gi * g.Kg * Rg, Rg,
                         gy + (n0 * g.K + gi * g.Kg) * g.P + p0, g.P,
                         <floating>0, col + gi * Rg * ld, ld)
                else:
                    gemm(True, False, Rg, ld, g.Kg, <floating>1, w + gi * g.Kg * Rg, Rg,
                         tmp + gi * g.Kg * ld, ld, <floating>0, col + gi * Rg * ld, ld)
            scatter_tile(gx, col, g, n0, nb, p0, p1, num_threads)
            p0 = p1
        n0 += nb


cdef void grad_kernel_tiles(const Geom* g, const floating* x, const floating* gy, floating* gw,
                            floating* col, floating* tmp, Py_ssize_t tile_n, Py_ssize_t tile_p,
                            int num_threads) noexcept nogil:
    cdef Py_ssize_t Rg = g.Cg * g.k_vol, n0, nb, p0, p1, ld, gi
    if is_pointwise(g):
        for n0 in range(g.N):
            for gi in range(g.G):
                gemm(False, True, g.Kg, g.Cg, g.P, <floating>1,
                     gy + (n0 * g.K + gi * g.Kg) * g.P, g.P,
                     x + (n0 * g.C + gi * g.Cg) * g.P, g.P,
                     <floating>1, gw + gi * g.Kg * g.Cg, g.Cg)
        return
    n0 = 0
    while n0 < g.N:
        nb = min(tile_n, g.N - n0)
        if nb > 1:
            batch_to_rows(gy, tmp, n0, nb, g.K, g.P, num_threads)
        p0 = 0
        while p0 < g.P:
            p1 = min(p0 + tile_p, g.P)
            ld = nb * (p1 - p0)
            pack_tile(x, col, g, n0, nb, p0, p1, num_threads)
            for gi in range(g.G):
                if nb == 1:
                    gemm(False, True, g.Kg, Rg, ld, <floating>1,
                         gy + (n0 * g.K + gi * g.Kg) * g.P + p0, g.P,
                         col + gi * Rg * ld, ld, <floating>1, gw + gi * g.Kg * Rg, Rg)
                else:
                    gemm(False, True, g.Kg, Rg, ld, <floating>1, tmp + gi * g.Kg * ld, ld,
                         col + gi * Rg * ld, ld, <floating>1, gw + gi * g.Kg * Rg, Rg)
            p0 = p1
        n0 += nb


def forward(spec, const floating[::1] x, const floating[::1] w, floating[::1] y,
            floating[::1] col, floating[::1] tmp, Py_ssize_t tile_n, Py_ssize_t tile_p,
            int num_threads):
    """y = conv(x, w) for the lifted problem `spec`; col and tmp are the workspaces."""
    cdef Geom g = geom_from_spec(spec)
    cdef floating* colp = data(col)
    cdef floating* tmpp = data(tmp)
    with nogil:
        forward_tiles(&g, &x[0], &w[0], &y[0], colp, tmpp, tile_n, tile_p, num_threads)


def grad_input(spec, const floating[::1] gy, const floating[::1] w, floating[::1] gx,
               floating[::1] col, floating[::1] tmp, Py_ssize_t tile_n, Py_ssize_t tile_p,
               int num_threads):
    """gx = conv_grad_input(gy, w) (eq. 9.13): col = W^T gy, then col2im. gx must be zeroed."""
    cdef Geom g = geom_from_spec(spec)
    cdef floating* colp = data(col)
    cdef floating* tmpp = data(tmp)
    with nogil:
        grad_input_tiles(&g, &gy[0], &w[0], &gx[0], colp, tmpp, tile_n, tile_p, num_threads)


def grad_kernel(spec, const floating[::1] x, const floating[::1] gy, floating[::1] gw,
                floating[::1] col, floating[::1] tmp, Py_ssize_t tile_n, Py_ssize_t tile_p,
                int num_threads):
    """gw = conv_grad_kernel(x, gy) (eq. 9.11): gw += gy col^T, tile after tile. gw must be zeroed."""
    cdef Geom g = geom_from_spec(spec)
    cdef floating* colp = data(col)
    cdef floating* tmpp = data(tmp)
    with nogil:
        grad_kernel_tiles(&g, &x[0], &gy[0], &gw[0], colp, tmpp, tile_n, tile_p, num_threads)
