"""Pointwise (1x1, stride 1, unpadded) convolution as GEMMs whose large operand is read in place.

Arrays arrive lifted and flattened: x (N, C, P), y (N, K, P) with P the positions of a plane, w
(K, Cg). Per group g, with Kg = K / G output and Cg = C / G input channels:

    forward        y[n, g]  (Kg x P)  = w[g] (Kg x Cg)   x[n, g] (Cg x P)
    grad_input     gx[n, g] (Cg x P)  = w[g]^T (Cg x Kg) gy[n, g] (Kg x P)
    grad_kernel    gw[g]    (Kg x Cg) = sum_n gy[n, g] (Kg x P) x[n, g]^T (P x Cg)

on fastconv's own GEMM with A read where it lies (src/_gemm_inplace.h): the weights, or gy for
the kernel gradient, are never packed; B (x or gy, transposed x for the kernel gradient) is
packed into the tile's panels first, in parallel, panel by panel. Then each work item (group,
chunk of A's rows, sample, panel; no sample for the kernel gradient, whose sums run over every
sample and position) computes its rows of C on its panel. Every value of C is one sum in a fixed
order, whatever item or thread computes it: results do not depend on the thread count.
"""
from cython cimport floating
from cython.parallel cimport prange

from _openmp cimport omp_get_thread_num

from _gemm cimport gm_init, gm_level, inplace_gemm, pack_b, tile_cols, tile_rows

gm_init()


def kernel_level():
    """The instruction-set level the GEMM kernels run at (0 reference, 1 AVX2, 2 AVX-512)."""
    return gm_level()


def tile(floating[::1] like):
    """(rows, columns) of the GEMM's register tile for this precision."""
    return tile_rows(&like[0]), tile_cols(&like[0])


cdef inline Py_ssize_t chunk_count(Py_ssize_t m, Py_ssize_t kr, Py_ssize_t chunk_rows) noexcept:
    """Chunks of `chunk_rows` rows over the whole blocks of kr rows among m (at least one): the
    rows past the last whole block join the last chunk."""
    cdef Py_ssize_t whole = m // kr * kr
    return (whole + chunk_rows - 1) // chunk_rows if whole > 0 else 1


cdef inline Py_ssize_t chunk_end(Py_ssize_t ch, Py_ssize_t chunks, Py_ssize_t chunk_rows,
                                 Py_ssize_t m) noexcept nogil:
    """The row after chunk ch's last."""
    return m if ch == chunks - 1 else (ch + 1) * chunk_rows


cdef enum:
    PACK_PANELS = 8     # panels a packing item fills from rows of B: a row read in runs this long


cdef void pack_panels(const floating* b, Py_ssize_t sets, Py_ssize_t set_stride,
                      Py_ssize_t samples, Py_ssize_t k, Py_ssize_t n, Py_ssize_t rs,
                      Py_ssize_t cs, Py_ssize_t ss, floating* bp, Py_ssize_t nr,
                      int num_threads) noexcept nogil:
    """For each of `sets` matrices B (set_stride apart in b), its panels into bp, one set's
    panels after another's: set q's panel t at bp + (q * panels + t) * samples * k * nr; an item
    packs PACK_PANELS panels of a set from its rows (cs 1), one from its columns."""
    cdef Py_ssize_t panels = (n + nr - 1) // nr, depth = samples * k
    cdef Py_ssize_t per = PACK_PANELS if cs == 1 else 1
    cdef Py_ssize_t runs = (panels + per - 1) // per, item, q, t, cols
    for item in prange(sets * runs, schedule="static", num_threads=num_threads):
        q = item // runs
        t = (item % runs) * per
        cols = n - t * nr if n - t * nr < per * nr else per * nr
        pack_b(b + q * set_stride + t * nr * cs, samples, k, cols, rs, cs, ss,
               bp + (q * panels + t) * depth * nr)


def forward(const floating[::1] x, const floating[::1] w, floating[::1] y, floating[::1] bp,
            floating[::1] parts, Py_ssize_t N, Py_ssize_t G, Py_ssize_t Cg, Py_ssize_t Kg,
            Py_ssize_t P, Py_ssize_t chunk_rows, bint transposed, int num_threads,
            bint in_place=False):
    """y = w x per sample and group (forward), or with `transposed` gx = w^T gy (grad_input: x is
    then gy, Kg its channels, and y gx, Cg its channels). `bp` holds every (sample, group)'s
    panels, or with `in_place` only each one's last panel where it is part-filled (the whole
    panels are read from x's rows as they lie); `chunk_rows` (a multiple of the tile's rows)
    the rows of C an item computes, the last chunk also the rows past the last whole block of
    the tile's rows; `parts`, num_threads x (chunk_rows + the tile's rows) x its columns, a
    part-filled panel's rows. Either way each value of y is the same sum in the same order."""
    cdef Py_ssize_t nr = tile_cols(&bp[0])
    cdef Py_ssize_t panels = (P + nr - 1) // nr
    cdef Py_ssize_t m = Cg if transposed else Kg, k = Kg if transposed else Cg
    cdef Py_ssize_t kr = tile_rows(&bp[0])
    cdef Py_ssize_t chunks = chunk_count(m, kr, chunk_rows)
    cdef Py_ssize_t item, rest, t, nn, gi, ch, ldb
    cdef Py_ssize_t last = P - (panels - 1) * nr     # the last panel's columns
    cdef const floating* b
    if m == 0 or P == 0 or N * G == 0:
        return
    with nogil:
        if not in_place:
            pack_panels(&x[0], N * G, k * P, 1, k, P, P, 1, 0, &bp[0], nr, num_threads)
        elif last < nr:     # each set's part-filled last panel, one panel a set in bp
            pack_panels(&x[0] + (panels - 1) * nr, N * G, k * P, 1, k, last, P, 1, 0, &bp[0],
                        nr, num_threads)
        for item in prange(G * chunks * N * panels, schedule="static", num_threads=num_threads):
            t = item % panels
            rest = item // panels
            nn = rest % N
            rest = rest // N
            ch = rest % chunks
            gi = rest // chunks
            if not in_place:
                b = &bp[0] + ((nn * G + gi) * panels + t) * k * nr
                ldb = nr
            elif t < panels - 1 or last == nr:
                b = &x[0] + (nn * G + gi) * k * P + t * nr
                ldb = P
            else:
                b = &bp[0] + (nn * G + gi) * k * nr
                ldb = nr
            inplace_gemm(ch * chunk_rows, chunk_end(ch, chunks, chunk_rows, m), t, P, 1, k,
                         &w[0] + gi * Kg * Cg, Cg, 0, transposed, b, ldb,
                         &y[0] + (nn * G + gi) * m * P, P,
                         &parts[0] + omp_get_thread_num() * (chunk_rows + kr) * nr)


def grad_kernel(const floating[::1] x, const floating[::1] gy, floating[::1] gw,
                floating[::1] bp, floating[::1] parts, Py_ssize_t N, Py_ssize_t G, Py_ssize_t Cg,
                Py_ssize_t Kg, Py_ssize_t P, Py_ssize_t chunk_rows, int num_threads):
    """gw[g] = sum_n gy[n, g] x[n, g]^T: `bp` holds each group's panels of x transposed (every
    sample's positions in turn), `chunk_rows` and `parts` as forward's."""
    cdef Py_ssize_t nr = tile_cols(&bp[0])
    cdef Py_ssize_t panels = (Cg + nr - 1) // nr
    cdef Py_ssize_t kr = tile_rows(&bp[0])
    cdef Py_ssize_t chunks = chunk_count(Kg, kr, chunk_rows)
    cdef Py_ssize_t item, rest, t, gi, ch
    if Kg == 0 or Cg == 0 or G == 0:
        return
    with nogil:
        pack_panels(&x[0], G, Cg * P, N, P, Cg, 1, P, G * Cg * P, &bp[0], nr, num_threads)
        for item in prange(G * chunks * panels, schedule="static", num_threads=num_threads):
            t = item % panels
            rest = item // panels
            ch = rest % chunks
            gi = rest // chunks
            inplace_gemm(ch * chunk_rows, chunk_end(ch, chunks, chunk_rows, Kg), t, Cg, N, P,
                         &gy[0] + gi * Kg * P, P, G * Kg * P, 0,
                         &bp[0] + (gi * panels + t) * N * P * nr, nr, &gw[0] + gi * Kg * Cg,
                         Cg,
                         &parts[0] + omp_get_thread_num() * (chunk_rows + kr) * nr)
