"""Spectral channel products of the FFT algorithm: one complex multiply-accumulate per frequency.

The spectra arrive as interleaved complex arrays viewed as flat float/double arrays; spectrum `s`
(one channel of one sample, or one kernel) is `F` complex values starting at float `2 * s * F`. For
each group g and frequency f the product is

    out[g, a, b, f] (+)= sum_j op_A(A[g, a, j, f]) * op_B(B[g, b, j, f])

where the spectrum indices of A, B and out are linear in (g, a, j), (g, b, j) and (g, a, b) (the
strides are arguments), and op is the identity or the complex conjugate:

    forward       Y[n, k]   = sum_c X[n, c] conj(W[k, c])      a = n, b = k, j = c
    grad_input    GX[n, c]  = sum_k GY[n, k] W[k, c]           a = n, b = c, j = k
    grad_kernel   GW[k, c] += sum_n conj(GY[n, k]) X[n, c]     a = k, b = c, j = n

A C micro-kernel works on the interleaved data in place, without packing: for BLOCK
frequencies of one a and four b it accumulates over j the products a*b and a*swap(b) lane by lane
(swap exchanges real and imaginary parts), in registers, and combines them into the real and
imaginary parts at the end, where the conjugates only change signs. An item is SUPER blocks
(every a and b), so the rows it reads stay in cache and the TLB while they are reused; a call
computes the items first..last-1 without the GIL, cut into `threads` contiguous ranges run on
OpenMP's threads (every entry point below takes `threads`). Every output element is computed
by one item with j summed in increasing order, so results do not depend on the thread count.

`matrix_along` applies a small complex matrix along one axis of a stack of spectra (the DFT of
the kernel's few taps, to all frequencies or back), four rows at a time with each vector of
the input loaded once for them.

The product also takes two a rows at a time in float (each b vector loaded and swapped once
for both). The transforms: `columns` (complex FFTs along a strided axis, vectorised over blocks
of columns), `columns_placed` (the same from the only nonzero rows), `rows_r2c` / `rows_c2r`
(real transforms of lines into / out of blocked half spectra); `fused` and `fused_sum` run a
2-D pass's column transforms and channel product per block of columns. The C lives in headers:
the product and matrix_along micro-kernels in _fft_product.h, the transforms in _fft_columns.h,
the fused passes in _fft_fused.h, their table in _fft_kernels.h.

The micro-kernels are the only code that depends on the instruction set: on x86-64 with GCC or
clang they are compiled for AVX-512, AVX2+FMA and the build's own target (src/_cpu_level.h), and
the best the machine has is put in the kernel set's table at import; FASTCONV_FFT_LEVEL=0 or 1
asks for a lower one (`kernel_level` says which runs). Each entry point is declared once for both
precisions (FF_ITEM, ...: _fft_kernels.h picks the float or double copy by the arrays' type).
"""
from cython cimport floating
from cython.parallel cimport prange

from _parallel cimport part_start

# The kernels, one name for both precisions (the arrays are float or double, as `floating`).
cdef extern from "_fft_kernels.h":
    int ff_level() noexcept nogil
    void ff_init() noexcept nogil
    const int BLOCK "FC_BLOCK"
    const int SUPER "FC_SUPER"
    const int MAX_RADIX "FCC_MAXP"
    const int FREQ_BLOCK "FCC_FB"
    enum: FF_GROUP
    ctypedef struct Operand "ff_operand":   # strides per group, per row, per j (_fft_fused.h)
        Py_ssize_t g, r, j
        int conj
    void fc_item "FF_ITEM"(ptrdiff_t na, ptrdiff_t nb, ptrdiff_t nj, ptrdiff_t nf, const void* a,
            ptrdiff_t a_row, ptrdiff_t a_j, const void* b, ptrdiff_t b_row, ptrdiff_t b_j,
            void* out, ptrdiff_t o_a, ptrdiff_t o_b, int conj_a, int conj_b, int acc) noexcept nogil
    void fc_matrix "FF_MATRIX"(ptrdiff_t ni, ptrdiff_t nt, ptrdiff_t nw, const void* m,
            const void* a, void* out) noexcept nogil
    int fcc_columns "FF_COLUMNS"(void* data, ptrdiff_t L, ptrdiff_t ncols, int nstages,
            const int* radix, const void* tw, const void* roots, double scale, ptrdiff_t first,
            ptrdiff_t last) noexcept nogil
    int fcc_columns_placed "FF_COLUMNS_PLACED"(const void* src, void* dst, ptrdiff_t L,
            ptrdiff_t ncols, ptrdiff_t nsrc, const Py_ssize_t* pos, int nstages, const int* radix,
            const void* tw, const void* roots, double scale, ptrdiff_t first,
            ptrdiff_t last) noexcept nogil
    int fcc_rows_r2c "FF_ROWS_R2C"(const void* src, const Py_ssize_t* src_off, ptrdiff_t src_step,
            ptrdiff_t count, ptrdiff_t start, ptrdiff_t step, void* dst, const Py_ssize_t* dst_off,
            ptrdiff_t bstride, ptrdiff_t nlines, ptrdiff_t L, int nstages, const int* radix,
            const void* tw, const void* roots, ptrdiff_t first, ptrdiff_t last) noexcept nogil
    int fcc_rows_c2r "FF_ROWS_C2R"(const void* src, const Py_ssize_t* src_off, ptrdiff_t bstride,
            void* dst, const Py_ssize_t* dst_off, ptrdiff_t dst_step, ptrdiff_t count,
            ptrdiff_t start, ptrdiff_t step, ptrdiff_t nlines, ptrdiff_t L, int nstages,
            const int* radix, const void* tw, const void* roots, double scale, ptrdiff_t first,
            ptrdiff_t last) noexcept nogil
    int ff_fused "FF_FUSED"(void* a, const void* b, void* out, ptrdiff_t L, ptrdiff_t blocks,
            ptrdiff_t nsamples, ptrdiff_t a_planes, ptrdiff_t o_planes, int ns_f,
            const int* rad_f, const void* tw_f, const void* ro_f, int ns_i, const int* rad_i,
            const void* tw_i, const void* ro_i, double scale, ptrdiff_t G, ptrdiff_t nb,
            ptrdiff_t nj, Operand oa, Operand ob, Operand oo, ptrdiff_t first,
            ptrdiff_t last) noexcept nogil
    int ff_fused_sum "FF_FUSED_SUM"(void* a, void* b, void* out, ptrdiff_t L, ptrdiff_t blocks,
            ptrdiff_t na_planes, ptrdiff_t nb_planes, int ns_f, const int* rad_f,
            const void* tw_f, const void* ro_f, ptrdiff_t G, ptrdiff_t na, ptrdiff_t nb,
            ptrdiff_t nj, Operand oa, Operand ob, Operand oo, ptrdiff_t first,
            ptrdiff_t last) noexcept nogil

# Calls reach the kernels of this process's instruction-set level through the table that this
# fills, once, before any kernel runs (src/_cpu_level.h).
ff_init()


cdef struct Operands:
    Operand a, b, out


cdef Operands operands(tuple a_strides, bint conj_a, tuple b_strides, bint conj_b,
                       tuple out_strides):
    """The channel product's operands: the strides of a and b (per group, per row, per j) and
    of out (per group, per a, per b), in spectra."""
    cdef Operands op
    op.a.g, op.a.r, op.a.j = a_strides
    op.a.conj = conj_a
    op.b.g, op.b.r, op.b.j = b_strides
    op.b.conj = conj_b
    op.out.g, op.out.r, op.out.j = out_strides
    op.out.conj = False
    return op


cdef inline void no_scratch(int rc, str what):
    if rc != 0:
        raise MemoryError(f"no scratch for the {what}")


cdef void product_items(const floating* a, const floating* b, floating* out, Py_ssize_t F,
                        Py_ssize_t G, Py_ssize_t na, Py_ssize_t nb, Py_ssize_t nj,
                        Operand opa, Operand opb, Operand opo, bint accumulate,
                        Py_ssize_t first, Py_ssize_t last) noexcept nogil:
    """Items first..last-1 (SUPER * BLOCK frequencies each) of every group, in order."""
    cdef Py_ssize_t item, f0, nf, gi, width = SUPER * BLOCK, F2 = 2 * F
    for item in range(first, last):
        f0 = item * width
        nf = min(width, F - f0)
        for gi in range(G):
            fc_item(na, nb, nj, nf, a + gi * opa.g * F2 + 2 * f0, opa.r * F2, opa.j * F2,
                    b + gi * opb.g * F2 + 2 * f0, opb.r * F2, opb.j * F2,
                    out + gi * opo.g * F2 + 2 * f0, opo.r * F2, opo.j * F2,
                    opa.conj, opb.conj, accumulate)


def items(Py_ssize_t F):
    """Work items of a spectrum of F frequencies (the unit `channel_product` ranges count)."""
    return (F + SUPER * BLOCK - 1) // (SUPER * BLOCK)


def channel_product(const floating[::1] a, const floating[::1] b, floating[::1] out,
                    Py_ssize_t F, Py_ssize_t G, Py_ssize_t na, Py_ssize_t nb, Py_ssize_t nj,
                    tuple a_strides, bint conj_a, tuple b_strides, bint conj_b,
                    tuple out_strides, bint accumulate, Py_ssize_t first, Py_ssize_t last,
                    int threads=1):
    """out (+)= sum_j op(a) op(b) per group, for the items first..last-1 (see `items`), on
    `threads` OpenMP threads.

    `a`, `b`, `out` are complex spectra of F values each viewed as flat real arrays; the strides
    are (per group, per row, per j) for a and b and (per group, per a, per b) for out, counted in
    spectra. Runs without the GIL.
    """
    cdef int t
    cdef Operands op = operands(a_strides, conj_a, b_strides, conj_b, out_strides)
    if F == 0 or G == 0 or na == 0 or nb == 0 or last <= first:
        return
    for t in prange(threads, nogil=True, schedule="static", num_threads=threads):
        product_items(&a[0], &b[0], &out[0], F, G, na, nb, nj, op.a, op.b, op.out, accumulate,
                      part_start(first, last, t, threads), part_start(first, last, t + 1, threads))


def matrix_along(const floating[::1] m, const floating[::1] a, floating[::1] out,
                 Py_ssize_t ni, Py_ssize_t nt, Py_ssize_t nw, Py_ssize_t first, Py_ssize_t last,
                 int threads=1):
    """out[s] = m @ a[s] for the stacks s = first..last-1: m is (ni, nt), a[s] (nt, nw) and
    out[s] (ni, nw), all complex, C-contiguous and viewed as flat real arrays. This applies the
    kernel taps' DFT along one axis (fastconv/_algorithms/fft/_taps.py); on `threads` OpenMP
    threads, without the GIL."""
    cdef Py_ssize_t s, t
    if ni == 0 or nw == 0 or last <= first:
        return
    cdef const floating* mp = &m[0]
    cdef const floating* ap = &a[0]
    cdef floating* op = &out[0]
    for t in prange(threads, nogil=True, schedule="static", num_threads=threads):
        for s in range(part_start(first, last, t, threads),
                       part_start(first, last, t + 1, threads)):
            fc_matrix(ni, nt, nw, mp, ap + 2 * s * nt * nw, op + 2 * s * ni * nw)


def kernel_level():
    """The kernel set this process runs: 2 x86-64-v4, 1 x86-64-v3, 0 the build's own target."""
    return ff_level()


def freq_block():
    """Frequencies per block of the blocked spectra that `rows_r2c` writes."""
    return FREQ_BLOCK


def max_radix():
    """The largest prime factor `columns` takes in a transform length."""
    return MAX_RADIX


def column_items(Py_ssize_t batch, Py_ssize_t ncols, Py_ssize_t itemsize):
    """Work items of `columns` on (batch, L, ncols) complex spectra of real `itemsize` bytes."""
    cdef Py_ssize_t per = 64 // (2 * itemsize)
    return batch * ((ncols + per - 1) // per)


def columns(floating[::1] data, Py_ssize_t L, Py_ssize_t ncols, const int[::1] radix,
            const floating[::1] tw, const floating[::1] roots, double scale, Py_ssize_t first,
            Py_ssize_t last, int threads=1):
    """The complex FFT along the middle axis of (batch, L, ncols) interleaved complex `data`
    (viewed as a flat real array), in place and times `scale`, for the items first..last-1 (see
    `column_items` and _fft_columns.h); `radix`, `tw` and `roots` are the plan of
    fastconv/_algorithms/fft/_own.py's column_plan. Runs without the GIL."""
    cdef int t, rc = 0
    if last <= first or L == 0 or ncols == 0:
        return
    for t in prange(threads, nogil=True, schedule="static", num_threads=threads):
        rc += fcc_columns(&data[0], L, ncols, radix.shape[0], &radix[0], &tw[0], &roots[0], scale,
                          part_start(first, last, t, threads),
                          part_start(first, last, t + 1, threads))
    no_scratch(rc, "column FFT")


def row_items(Py_ssize_t nlines, Py_ssize_t itemsize):
    """Work items of `rows_r2c` / `rows_c2r` on `nlines` lines of real `itemsize` bytes."""
    cdef Py_ssize_t per = 64 // itemsize
    return (nlines + per - 1) // per


def rows_r2c(size_t src, const Py_ssize_t[::1] src_off, Py_ssize_t src_step, Py_ssize_t count,
             Py_ssize_t start, Py_ssize_t step, floating[::1] dst, const Py_ssize_t[::1] dst_off,
             Py_ssize_t bstride, Py_ssize_t L, const int[::1] radix, const floating[::1] tw,
             const floating[::1] roots, Py_ssize_t first, Py_ssize_t last, int threads=1):
    """Half spectra of real lines of the dst's type, blocked: frequency k of line l at
    dst[dst_off[l] + (k // FREQ_BLOCK) * bstride + 2 * (k % FREQ_BLOCK)] for k < L // 2 + 1, and
    zeros up to the end of the last block;
    line l's `count` values at element offsets src_off[l] + i * src_step from the address `src`
    (an array's first element, which the caller keeps alive), placed at (start + i * step) mod
    L. Items as `row_items`; the plan as `columns`' (forward); without the GIL."""
    cdef int t, rc = 0
    if last <= first or src_off.shape[0] == 0:
        return
    step, start = step % L, start % L       # the same positions; the cores step once per value
    for t in prange(threads, nogil=True, schedule="static", num_threads=threads):
        rc += fcc_rows_r2c(<const floating*>src, &src_off[0], src_step, count, start, step,
                           &dst[0], &dst_off[0], bstride, src_off.shape[0], L, radix.shape[0],
                           &radix[0], &tw[0], &roots[0], part_start(first, last, t, threads),
                           part_start(first, last, t + 1, threads))
    no_scratch(rc, "row FFT")


def rows_c2r(const floating[::1] src, const Py_ssize_t[::1] src_off, Py_ssize_t bstride,
             size_t dst,
             const Py_ssize_t[::1] dst_off, Py_ssize_t dst_step, Py_ssize_t count,
             Py_ssize_t start, Py_ssize_t step, Py_ssize_t L, const int[::1] radix,
             const floating[::1] tw, const floating[::1] roots, double scale, Py_ssize_t first,
             Py_ssize_t last, int threads=1):
    """The inverse of `rows_r2c` (the plan inverse), times `scale`: line l's half spectrum at
    src[src_off[l]:] blocked as rows_r2c writes it, its positions (start + i * step) mod L, i < count, written at element
    offsets dst_off[l] + i * dst_step from the address `dst` (of src's real type)."""
    cdef int t, rc = 0
    if last <= first or src_off.shape[0] == 0:
        return
    step, start = step % L, start % L       # the same positions; the cores step once per value
    for t in prange(threads, nogil=True, schedule="static", num_threads=threads):
        rc += fcc_rows_c2r(&src[0], &src_off[0], bstride, <floating*>dst, &dst_off[0], dst_step,
                           count, start, step, src_off.shape[0], L, radix.shape[0], &radix[0],
                           &tw[0], &roots[0], scale, part_start(first, last, t, threads),
                           part_start(first, last, t + 1, threads))
    no_scratch(rc, "row FFT")


def fused_items(Py_ssize_t nsamples, Py_ssize_t blocks):
    """Work items of `fused`: blocks of columns times groups of FF_GROUP samples."""
    return (nsamples + FF_GROUP - 1) // FF_GROUP * blocks


def fused(floating[::1] a, const floating[::1] b, floating[::1] out, Py_ssize_t L,
          Py_ssize_t blocks, Py_ssize_t nsamples, Py_ssize_t a_planes, Py_ssize_t o_planes,
          tuple forward_plan, tuple inverse_plan, double scale, Py_ssize_t G, Py_ssize_t nb,
          Py_ssize_t nj, tuple a_strides, bint conj_a, tuple b_strides, bint conj_b,
          tuple out_strides, Py_ssize_t first, Py_ssize_t last, int threads=1):
    """For the items first..last-1 (see `fused_items`): the column FFT (forward plan) of a's
    spectra (nsamples * a_planes blocked planes of (blocks, L, FREQ_BLOCK)), the channel product into out as
    `channel_product` (one a row per sample; not accumulated), and the inverse column FFT of
    out's spectra times `scale`, block of columns by block; a is overwritten. Without the GIL."""
    cdef const int[::1] rad_f = forward_plan[0], rad_i = inverse_plan[0]
    cdef const floating[::1] tw_f = forward_plan[1], ro_f = forward_plan[2]
    cdef const floating[::1] tw_i = inverse_plan[1], ro_i = inverse_plan[2]
    cdef Operands op = operands(a_strides, conj_a, b_strides, conj_b, out_strides)
    cdef int t, rc = 0
    if last <= first:
        return
    for t in prange(threads, nogil=True, schedule="static", num_threads=threads):
        rc += ff_fused(&a[0], &b[0], &out[0], L, blocks, nsamples, a_planes, o_planes,
                       rad_f.shape[0], &rad_f[0], &tw_f[0], &ro_f[0], rad_i.shape[0], &rad_i[0],
                       &tw_i[0], &ro_i[0], scale, G, nb, nj, op.a, op.b, op.out,
                       part_start(first, last, t, threads), part_start(first, last, t + 1, threads))
    no_scratch(rc, "fused column FFT")


def columns_placed(const floating[::1] src, floating[::1] dst, Py_ssize_t L, Py_ssize_t ncols,
                   const Py_ssize_t[::1] pos, const int[::1] radix, const floating[::1] tw,
                   const floating[::1] roots, double scale, Py_ssize_t first, Py_ssize_t last,
                   int threads=1):
    """`columns` from compact planes: src is (batch, len(pos), ncols) complex holding the only
    nonzero rows, at rows `pos` of dst's (batch, L, ncols) planes, which get the transform;
    items as `column_items`. Without the GIL."""
    cdef int t, rc = 0
    if last <= first or L == 0 or ncols == 0:
        return
    for t in prange(threads, nogil=True, schedule="static", num_threads=threads):
        rc += fcc_columns_placed(&src[0], &dst[0], L, ncols, pos.shape[0], &pos[0],
                                 radix.shape[0], &radix[0], &tw[0], &roots[0], scale,
                                 part_start(first, last, t, threads),
                                 part_start(first, last, t + 1, threads))
    no_scratch(rc, "column FFT")


def fused_sum(floating[::1] a, floating[::1] b, floating[::1] out, Py_ssize_t L,
              Py_ssize_t blocks, Py_ssize_t na_planes, Py_ssize_t nb_planes, tuple forward_plan,
              Py_ssize_t G, Py_ssize_t na, Py_ssize_t nb, Py_ssize_t nj, tuple a_strides,
              bint conj_a, tuple b_strides, bint conj_b, tuple out_strides, Py_ssize_t first,
              Py_ssize_t last, int threads=1):
    """For the blocks of columns first..last-1: the column FFTs of that block of a's and b's
    blocked spectra (overwritten), then out += their channel product as `channel_product`'s
    (the kernel gradient's). Without the GIL."""
    cdef const int[::1] rad_f = forward_plan[0]
    cdef const floating[::1] tw_f = forward_plan[1], ro_f = forward_plan[2]
    cdef Operands op = operands(a_strides, conj_a, b_strides, conj_b, out_strides)
    cdef int t, rc = 0
    if last <= first:
        return
    for t in prange(threads, nogil=True, schedule="static", num_threads=threads):
        rc += ff_fused_sum(&a[0], &b[0], &out[0], L, blocks, na_planes, nb_planes, rad_f.shape[0],
                           &rad_f[0], &tw_f[0], &ro_f[0], G, na, nb, nj, op.a, op.b, op.out,
                           part_start(first, last, t, threads),
                           part_start(first, last, t + 1, threads))
    no_scratch(rc, "fused column FFT")
