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
computes a range of items without the GIL, and the caller runs disjoint ranges on its threads
(fastconv/_algorithms/fft.py explains why those are Python threads rather than OpenMP's). Every
output element is computed by one item with j summed in increasing order, so results do not
depend on the thread count.

`matrix_along` applies a small complex matrix along one axis of a stack of spectra (the DFT of
the kernel's few taps, to all frequencies or back), four rows at a time with each vector of
the input loaded once for them.

The transforms themselves are in _fft_columns.h: `columns` (complex FFTs along a strided axis,
vectorised over blocks of columns), `columns_placed` (the same from the only nonzero rows),
`rows_r2c` / `rows_c2r` (real transforms of lines into / out of blocked half spectra); `fused`
and `fused_sum` run a 2-D pass's column transforms and channel product per block of columns.

The micro-kernels are the only code that depends on the instruction set: with GCC on x86-64 they
are compiled for AVX-512, AVX2+FMA and the baseline, and the loader picks one per machine.
"""
from cython cimport floating

cdef extern from *:
    """
    #include <stddef.h>
    #define FC_BLOCK 8     /* complex frequencies per micro-kernel call */
    #define FC_SUPER 8     /* blocks per item */
    #if defined(__GNUC__) && !defined(__clang__) && defined(__x86_64__) && defined(__linux__)
    #define FC_CLONES __attribute__((target_clones("arch=x86-64-v4", "arch=x86-64-v3", "default")))
    #else
    #define FC_CLONES
    #endif
    #define FC_INLINE static inline __attribute__((always_inline))
    /* GCC 12 SLP-vectorises the scalar tails below with a dead load from row j + 1, which reads
       past the last row (a segfault seen in tests); the tails are a few values: keep them
       scalar. */
    #if defined(__GNUC__) && !defined(__clang__)
    #define FC_SCALAR __attribute__((optimize("no-tree-vectorize")))
    #else
    #define FC_SCALAR
    #endif

    /* GCC vector extensions of 64 bytes: one AVX-512 register, two AVX2 or four SSE ones in
       the respective clones. A block of FC_BLOCK complex values is NV vectors. */
    typedef float fc_vf __attribute__((vector_size(64)));
    typedef float fc_vf_u __attribute__((vector_size(64), aligned(4)));
    typedef int fc_if __attribute__((vector_size(64)));
    typedef double fc_vd __attribute__((vector_size(64)));
    typedef double fc_vd_u __attribute__((vector_size(64), aligned(8)));
    typedef long long fc_id __attribute__((vector_size(64)));
    #define FC_SWAP_f ((fc_if){1, 0, 3, 2, 5, 4, 7, 6, 9, 8, 11, 10, 13, 12, 15, 14})
    #define FC_EVEN_ODD_f ((fc_if){0, 17, 2, 19, 4, 21, 6, 23, 8, 25, 10, 27, 12, 29, 14, 31})
    #define FC_SWAP_d ((fc_id){1, 0, 3, 2, 5, 4, 7, 6})
    #define FC_EVEN_ODD_d ((fc_id){0, 9, 2, 11, 4, 13, 6, 15})
    #define FC_SIGN_f ((fc_vf){-1, 1, -1, 1, -1, 1, -1, 1, -1, 1, -1, 1, -1, 1, -1, 1})
    #define FC_SIGN_d ((fc_vd){-1, 1, -1, 1, -1, 1, -1, 1})

    /* Partial block (nf < FC_BLOCK complex): the same sums, one scalar at a time. p holds
       ar*br, ai*bi and q ar*bi, ai*br per frequency; out = sum_j op(a) op(b). */
    #define FC_DEFINE(T, SUF, V, VU, S)                                                        \\
    FC_SCALAR static void fc_tail_##SUF(ptrdiff_t nf, ptrdiff_t nj, const T* a, ptrdiff_t a_j,          \\
                              const T* b, ptrdiff_t b_j, T* o, int conj_a, int conj_b, int acc) \\
    {                                                                                          \\
        for (ptrdiff_t c = 0; c < nf; c++) {                                                 \\
            T p0 = 0, p1 = 0, q0 = 0, q1 = 0;                                                \\
            for (ptrdiff_t j = 0; j < nj; j++) {                                             \\
                const T* x = a + j * a_j + 2 * c;                                            \\
                const T* y = b + j * b_j + 2 * c;                                            \\
                p0 += x[0] * y[0]; p1 += x[1] * y[1]; q0 += x[0] * y[1]; q1 += x[1] * y[0];  \\
            }                                                                                \\
            T re = (conj_a || conj_b) ? p0 + p1 : p0 - p1;                                   \\
            T im = conj_b ? q1 - q0 : (conj_a ? q0 - q1 : q0 + q1);                          \\
            if (acc) { o[2 * c] += re; o[2 * c + 1] += im; }                                 \\
            else { o[2 * c] = re; o[2 * c + 1] = im; }                                       \\
        }                                                                                    \\
    }                                                                                          \\
                                                                                               \\
    /* A full block for bb (1..4, a constant after inlining) outputs b_i = b + i * b_row:     \\
       p += a * b and q += a * swap(b) lane by lane in registers, then the real parts (even   \\
       lanes) from p -+ swap(p) and the imaginary parts (odd lanes) from q +- swap(q). */      \\
    FC_INLINE void fc_rows_##SUF(const int bb, ptrdiff_t nj, const T* a, ptrdiff_t a_j,        \\
                                 const T* b, ptrdiff_t b_row, ptrdiff_t b_j,                  \\
                                 T* out, ptrdiff_t o_b, int conj_a, int conj_b, int acc)      \\
    {                                                                                          \\
        enum { NV = 2 * FC_BLOCK * (int)sizeof(T) / 64 };                                    \\
        V p[4][NV], q[4][NV];                                                                \\
        for (int i = 0; i < bb; i++)                                                         \\
            for (int v = 0; v < NV; v++) { p[i][v] = (V){0}; q[i][v] = (V){0}; }             \\
        for (ptrdiff_t j = 0; j < nj; j++) {                                                 \\
            for (int v = 0; v < NV; v++) {                                                   \\
                V x = *(const VU*)(a + j * a_j + v * (64 / sizeof(T)));                      \\
                for (int i = 0; i < bb; i++) {                                               \\
                    V y = *(const VU*)(b + i * b_row + j * b_j + v * (64 / sizeof(T)));      \\
                    p[i][v] += x * y;                                                        \\
                    q[i][v] += x * __builtin_shuffle(y, FC_SWAP_##S);                        \\
                }                                                                            \\
            }                                                                                \\
        }                                                                                    \\
        for (int i = 0; i < bb; i++) {                                                       \\
            for (int v = 0; v < NV; v++) {                                                   \\
                V ps = __builtin_shuffle(p[i][v], FC_SWAP_##S);                              \\
                V qs = __builtin_shuffle(q[i][v], FC_SWAP_##S);                              \\
                V re = (conj_a || conj_b) ? p[i][v] + ps : p[i][v] - ps;                     \\
                V im = conj_b ? q[i][v] - qs : (conj_a ? qs - q[i][v] : q[i][v] + qs);       \\
                V r = __builtin_shuffle(re, im, FC_EVEN_ODD_##S);                            \\
                VU* o = (VU*)(out + i * o_b + v * (64 / sizeof(T)));                         \\
                if (acc) *o += r; else *o = r;                                               \\
            }                                                                                \\
        }                                                                                    \\
    }                                                                                          \\
                                                                                               \\
    /* Two a rows (a and a + a_row, outputs o_a apart) at once for bb (1..4) b rows: each b   \\
       vector and its swap are loaded and shuffled once for both, halving the loads and the   \\
       shuffles per multiply-add. One vector per block (float) only: 16 accumulators. */      \\
    FC_INLINE void fc_rows2_##SUF(const int bb, ptrdiff_t nj, const T* a, ptrdiff_t a_row,     \\
                                  ptrdiff_t a_j, const T* b, ptrdiff_t b_row, ptrdiff_t b_j,  \\
                                  T* out, ptrdiff_t o_a, ptrdiff_t o_b, int conj_a,           \\
                                  int conj_b, int acc)                                        \\
    {                                                                                          \\
        V p[2][4], q[2][4];                                                                  \\
        for (int r = 0; r < 2; r++)                                                          \\
            for (int i = 0; i < bb; i++) { p[r][i] = (V){0}; q[r][i] = (V){0}; }             \\
        for (ptrdiff_t j = 0; j < nj; j++) {                                                 \\
            V x0 = *(const VU*)(a + j * a_j), x1 = *(const VU*)(a + a_row + j * a_j);        \\
            for (int i = 0; i < bb; i++) {                                                   \\
                V y = *(const VU*)(b + i * b_row + j * b_j);                                 \\
                V ys = __builtin_shuffle(y, FC_SWAP_##S);                                    \\
                p[0][i] += x0 * y;                                                           \\
                q[0][i] += x0 * ys;                                                          \\
                p[1][i] += x1 * y;                                                           \\
                q[1][i] += x1 * ys;                                                          \\
            }                                                                                \\
        }                                                                                    \\
        for (int r = 0; r < 2; r++) {                                                        \\
            for (int i = 0; i < bb; i++) {                                                   \\
                V ps = __builtin_shuffle(p[r][i], FC_SWAP_##S);                              \\
                V qs = __builtin_shuffle(q[r][i], FC_SWAP_##S);                              \\
                V re = (conj_a || conj_b) ? p[r][i] + ps : p[r][i] - ps;                     \\
                V im = conj_b ? q[r][i] - qs : (conj_a ? qs - q[r][i] : q[r][i] + qs);       \\
                V res = __builtin_shuffle(re, im, FC_EVEN_ODD_##S);                          \\
                VU* o = (VU*)(out + r * o_a + i * o_b);                                      \\
                if (acc) *o += res; else *o = res;                                           \\
            }                                                                                \\
        }                                                                                    \\
    }                                                                                          \\
                                                                                               \\
    /* One item: nf frequencies from the given pointers, every a (rows a_row apart) and b,    \\
       MB = four b at a time (eight measured slower), reused from cache for every a. Strides   \\
       are in scalars. */                                                                     \\
    FC_CLONES static void                                                                      \\
    fc_item_##SUF(ptrdiff_t na, ptrdiff_t nb, ptrdiff_t nj, ptrdiff_t nf,                     \\
                  const T* a, ptrdiff_t a_row, ptrdiff_t a_j,                                 \\
                  const T* b, ptrdiff_t b_row, ptrdiff_t b_j,                                 \\
                  T* out, ptrdiff_t o_a, ptrdiff_t o_b, int conj_a, int conj_b, int acc)      \\
    {                                                                                          \\
        enum { MB = 4 };                                                                     \\
        for (ptrdiff_t ib = 0; ib < nb; ib += MB) {                                          \\
            ptrdiff_t bb = nb - ib < MB ? nb - ib : MB;                                      \\
            ptrdiff_t ia = 0;                                                                \\
            if (2 * FC_BLOCK * sizeof(T) == 64)      /* one vector per block: float */      \\
                for (; ia + 2 <= na; ia += 2) {                                              \\
                    ptrdiff_t f = 0;                                                         \\
                    for (; f + FC_BLOCK <= nf; f += FC_BLOCK) {                              \\
                        const T* ap = a + ia * a_row + 2 * f;                                \\
                        const T* bp = b + ib * b_row + 2 * f;                                \\
                        T* op = out + ia * o_a + ib * o_b + 2 * f;                           \\
                        switch (bb) {                                                        \\
                        case 4: fc_rows2_##SUF(4, nj, ap, a_row, a_j, bp, b_row, b_j, op,    \\
                                               o_a, o_b, conj_a, conj_b, acc); break;        \\
                        case 3: fc_rows2_##SUF(3, nj, ap, a_row, a_j, bp, b_row, b_j, op,    \\
                                               o_a, o_b, conj_a, conj_b, acc); break;        \\
                        case 2: fc_rows2_##SUF(2, nj, ap, a_row, a_j, bp, b_row, b_j, op,    \\
                                               o_a, o_b, conj_a, conj_b, acc); break;        \\
                        default: fc_rows2_##SUF(1, nj, ap, a_row, a_j, bp, b_row, b_j, op,   \\
                                                o_a, o_b, conj_a, conj_b, acc); break;       \\
                        }                                                                    \\
                    }                                                                        \\
                    for (ptrdiff_t r = 0; r < 2 && f < nf; r++)                              \\
                        for (ptrdiff_t i = 0; i < bb; i++)                                   \\
                            fc_tail_##SUF(nf - f, nj, a + (ia + r) * a_row + 2 * f, a_j,     \\
                                          b + (ib + i) * b_row + 2 * f, b_j,                 \\
                                          out + (ia + r) * o_a + (ib + i) * o_b + 2 * f,     \\
                                          conj_a, conj_b, acc);                              \\
                }                                                                            \\
            for (; ia < na; ia++) {                                                          \\
                for (ptrdiff_t f = 0; f < nf; f += FC_BLOCK) {                               \\
                    const T* ap = a + ia * a_row + 2 * f;                                    \\
                    const T* bp = b + ib * b_row + 2 * f;                                    \\
                    T* op = out + ia * o_a + ib * o_b + 2 * f;                               \\
                    if (nf - f < FC_BLOCK) {                                                 \\
                        for (ptrdiff_t i = 0; i < bb; i++)                                   \\
                            fc_tail_##SUF(nf - f, nj, ap, a_j, bp + i * b_row, b_j,          \\
                                          op + i * o_b, conj_a, conj_b, acc);                \\
                        continue;                                                            \\
                    }                                                                        \\
                    switch (bb) {                                                            \\
                    case 4: fc_rows_##SUF(4, nj, ap, a_j, bp, b_row, b_j, op, o_b,          \\
                                          conj_a, conj_b, acc); break;                       \\
                    case 3: fc_rows_##SUF(3, nj, ap, a_j, bp, b_row, b_j, op, o_b,          \\
                                          conj_a, conj_b, acc); break;                       \\
                    case 2: fc_rows_##SUF(2, nj, ap, a_j, bp, b_row, b_j, op, o_b,          \\
                                          conj_a, conj_b, acc); break;                       \\
                    default: fc_rows_##SUF(1, nj, ap, a_j, bp, b_row, b_j, op, o_b,         \\
                                           conj_a, conj_b, acc); break;                      \\
                    }                                                                        \\
                }                                                                            \\
            }                                                                                \\
        }                                                                                    \\
    }                                                                                          \\
                                                                                               \\
    /* The columns w0.. of the tap DFT below, one value at a time (scalar, see FC_SCALAR). */  \\
    FC_SCALAR static void fc_mtail_##SUF(int bb, ptrdiff_t nt, ptrdiff_t nw, ptrdiff_t w0,      \\
                                         const T* m, const T* a, T* out)                      \\
    {                                                                                          \\
        for (ptrdiff_t w = w0; w < nw; w++) {                                                \\
            for (int i = 0; i < bb; i++) {                                                   \\
                T re = 0, im = 0;                                                            \\
                for (ptrdiff_t t = 0; t < nt; t++) {                                         \\
                    const T* mi = m + 2 * (i * nt + t);                                      \\
                    const T* y = a + 2 * (t * nw + w);                                       \\
                    re += mi[0] * y[0] - mi[1] * y[1];                                       \\
                    im += mi[0] * y[1] + mi[1] * y[0];                                       \\
                }                                                                            \\
                out[2 * (i * nw + w)] = re;                                                  \\
                out[2 * (i * nw + w) + 1] = im;                                              \\
            }                                                                                \\
        }                                                                                    \\
    }                                                                                          \\
                                                                                               \\
    /* The tap DFTs: out[i, w] = sum_t m[i, t] a[t, w] for one spectrum stack, complex and     \\
       interleaved, rows of nw values; four rows i at a time share each load of a. */          \\
    FC_INLINE void fc_mrows_##SUF(const int bb, const int nv, ptrdiff_t nt, ptrdiff_t nw,       \\
                                  ptrdiff_t w, const T* m, const T* a, T* out)                \\
    {                                                                                          \\
        enum { VL = 64 / (int)sizeof(T) };                                                   \\
        const V sign = FC_SIGN_##S;                                                          \\
        V acc[4][4];                                                                         \\
        for (int i = 0; i < bb; i++)                                                         \\
            for (int v = 0; v < nv; v++) acc[i][v] = (V){0};                                 \\
        for (ptrdiff_t t = 0; t < nt; t++) {                                                 \\
            V y[4], ys[4];                                                                   \\
            for (int v = 0; v < nv; v++) {                                                   \\
                y[v] = *(const VU*)(a + 2 * (t * nw + w) + v * VL);                          \\
                ys[v] = __builtin_shuffle(y[v], FC_SWAP_##S);                                \\
            }                                                                                \\
            for (int i = 0; i < bb; i++) {                                                   \\
                const T* mi = m + 2 * (i * nt + t);                                          \\
                V re = (V){0} + mi[0], im = sign * mi[1];                                    \\
                for (int v = 0; v < nv; v++) {                                               \\
                    acc[i][v] += re * y[v];                                                  \\
                    acc[i][v] += im * ys[v];                                                 \\
                }                                                                            \\
            }                                                                                \\
        }                                                                                    \\
        for (int i = 0; i < bb; i++)                                                         \\
            for (int v = 0; v < nv; v++)                                                     \\
                *(VU*)(out + 2 * (i * nw + w) + v * VL) = acc[i][v];                         \\
    }                                                                                          \\
                                                                                               \\
    /* bb rows i: chunks of four vectors of columns, then single vectors, then the rest. */    \\
    FC_INLINE void fc_mblock_##SUF(const int bb, ptrdiff_t nt, ptrdiff_t nw, const T* m,        \\
                                   const T* a, T* out)                                        \\
    {                                                                                          \\
        const ptrdiff_t per = 64 / (2 * (ptrdiff_t)sizeof(T));   /* complex per vector */    \\
        ptrdiff_t w = 0;                                                                     \\
        for (; w + 4 * per <= nw; w += 4 * per)                                              \\
            fc_mrows_##SUF(bb, 4, nt, nw, w, m, a, out);                                     \\
        for (; w + per <= nw; w += per)                                                      \\
            fc_mrows_##SUF(bb, 1, nt, nw, w, m, a, out);                                     \\
        if (w < nw && nw >= per)     /* the last vector overlaps the one before: same values */ \\
            fc_mrows_##SUF(bb, 1, nt, nw, nw - per, m, a, out);                              \\
        else if (w < nw)                                                                     \\
            fc_mtail_##SUF(bb, nt, nw, w, m, a, out);                                        \\
    }                                                                                          \\
                                                                                               \\
    FC_CLONES static void                                                                      \\
    fc_matrix_##SUF(ptrdiff_t ni, ptrdiff_t nt, ptrdiff_t nw, const T* m, const T* a, T* out) \\
    {                                                                                          \\
        for (ptrdiff_t i = 0; i < ni; i += 4) {                                              \\
            const T* mi = m + 2 * i * nt;                                                    \\
            T* oi = out + 2 * i * nw;                                                        \\
            switch (ni - i < 4 ? ni - i : 4) {                                               \\
            case 4: fc_mblock_##SUF(4, nt, nw, mi, a, oi); break;                            \\
            case 3: fc_mblock_##SUF(3, nt, nw, mi, a, oi); break;                            \\
            case 2: fc_mblock_##SUF(2, nt, nw, mi, a, oi); break;                            \\
            default: fc_mblock_##SUF(1, nt, nw, mi, a, oi); break;                           \\
            }                                                                                \\
        }                                                                                    \\
    }

    FC_DEFINE(float, f32, fc_vf, fc_vf_u, f)
    FC_DEFINE(double, f64, fc_vd, fc_vd_u, d)
    """
    void fc_matrix_f32(ptrdiff_t ni, ptrdiff_t nt, ptrdiff_t nw, const float* m, const float* a,
                       float* out) noexcept nogil
    void fc_matrix_f64(ptrdiff_t ni, ptrdiff_t nt, ptrdiff_t nw, const double* m,
                       const double* a, double* out) noexcept nogil
    const int BLOCK "FC_BLOCK"
    const int SUPER "FC_SUPER"
    void fc_item_f32(ptrdiff_t na, ptrdiff_t nb, ptrdiff_t nj, ptrdiff_t nf,
                     const float* a, ptrdiff_t a_row, ptrdiff_t a_j,
                     const float* b, ptrdiff_t b_row, ptrdiff_t b_j,
                     float* out, ptrdiff_t o_a, ptrdiff_t o_b, int conj_a, int conj_b,
                     int acc) noexcept nogil
    void fc_item_f64(ptrdiff_t na, ptrdiff_t nb, ptrdiff_t nj, ptrdiff_t nf,
                     const double* a, ptrdiff_t a_row, ptrdiff_t a_j,
                     const double* b, ptrdiff_t b_row, ptrdiff_t b_j,
                     double* out, ptrdiff_t o_a, ptrdiff_t o_b, int conj_a, int conj_b,
                     int acc) noexcept nogil


cdef struct Operand:
    Py_ssize_t g, r, j      # spectrum-index strides per group, per row (a or b, or out's a), per j
    bint conj


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
            if floating is float:
                fc_item_f32(na, nb, nj, nf, a + gi * opa.g * F2 + 2 * f0, opa.r * F2, opa.j * F2,
                            b + gi * opb.g * F2 + 2 * f0, opb.r * F2, opb.j * F2,
                            out + gi * opo.g * F2 + 2 * f0, opo.r * F2, opo.j * F2,
                            opa.conj, opb.conj, accumulate)
            else:
                fc_item_f64(na, nb, nj, nf, a + gi * opa.g * F2 + 2 * f0, opa.r * F2, opa.j * F2,
                            b + gi * opb.g * F2 + 2 * f0, opb.r * F2, opb.j * F2,
                            out + gi * opo.g * F2 + 2 * f0, opo.r * F2, opo.j * F2,
                            opa.conj, opb.conj, accumulate)


def items(Py_ssize_t F):
    """Work items of a spectrum of F frequencies (the unit `channel_product` ranges count)."""
    return (F + SUPER * BLOCK - 1) // (SUPER * BLOCK)


def channel_product(const floating[::1] a, const floating[::1] b, floating[::1] out,
                    Py_ssize_t F, Py_ssize_t G, Py_ssize_t na, Py_ssize_t nb, Py_ssize_t nj,
                    tuple a_strides, bint conj_a, tuple b_strides, bint conj_b,
                    tuple out_strides, bint accumulate, Py_ssize_t first, Py_ssize_t last):
    """out (+)= sum_j op(a) op(b) per group, for the items first..last-1 (see `items`).

    `a`, `b`, `out` are complex spectra of F values each viewed as flat real arrays; the strides
    are (per group, per row, per j) for a and b and (per group, per a, per b) for out, counted in
    spectra. Runs without the GIL: callers may run disjoint item ranges on several threads.
    """
    cdef Operand opa, opb, opo
    opa.g, opa.r, opa.j = a_strides
    opa.conj = conj_a
    opb.g, opb.r, opb.j = b_strides
    opb.conj = conj_b
    opo.g, opo.r, opo.j = out_strides
    opo.conj = False
    if F == 0 or G == 0 or na == 0 or nb == 0 or last <= first:
        return
    with nogil:
        product_items(&a[0], &b[0], &out[0], F, G, na, nb, nj, opa, opb, opo, accumulate,
                      first, last)


def matrix_along(const floating[::1] m, const floating[::1] a, floating[::1] out,
                 Py_ssize_t ni, Py_ssize_t nt, Py_ssize_t nw, Py_ssize_t first, Py_ssize_t last):
    """out[s] = m @ a[s] for the stacks s = first..last-1: m is (ni, nt), a[s] (nt, nw) and
    out[s] (ni, nw), all complex, C-contiguous and viewed as flat real arrays. This applies the
    kernel taps' DFT along one axis (fastconv/_algorithms/fft.py); without the GIL."""
    cdef Py_ssize_t s
    if ni == 0 or nw == 0 or last <= first:
        return
    cdef const floating* mp = &m[0]
    cdef const floating* ap = &a[0]
    cdef floating* op = &out[0]
    with nogil:
        for s in range(first, last):
            if floating is float:
                fc_matrix_f32(ni, nt, nw, mp, ap + 2 * s * nt * nw, op + 2 * s * ni * nw)
            else:
                fc_matrix_f64(ni, nt, nw, mp, ap + 2 * s * nt * nw, op + 2 * s * ni * nw)


cdef extern from "_fft_columns.h":
    const int MAX_RADIX "FCC_MAXP"
    const int FREQ_BLOCK "FCC_FB"
    int fcc_columns_f32(float* data, ptrdiff_t L, ptrdiff_t ncols, int nstages, const int* radix,
                        const float* tw, const float* roots, float scale, ptrdiff_t first,
                        ptrdiff_t last) noexcept nogil
    int fcc_columns_f64(double* data, ptrdiff_t L, ptrdiff_t ncols, int nstages,
                        const int* radix, const double* tw, const double* roots, double scale,
                        ptrdiff_t first, ptrdiff_t last) noexcept nogil
    int fcc_columns_placed_f32(const float* src, float* dst, ptrdiff_t L, ptrdiff_t ncols,
                               ptrdiff_t nsrc, const Py_ssize_t* pos, int nstages,
                               const int* radix, const float* tw, const float* roots,
                               float scale, ptrdiff_t first, ptrdiff_t last) noexcept nogil
    int fcc_columns_placed_f64(const double* src, double* dst, ptrdiff_t L, ptrdiff_t ncols,
                               ptrdiff_t nsrc, const Py_ssize_t* pos, int nstages,
                               const int* radix, const double* tw, const double* roots,
                               double scale, ptrdiff_t first, ptrdiff_t last) noexcept nogil
    int fcc_rows_r2c_f32(const float* src, const Py_ssize_t* src_off, ptrdiff_t src_step,
                         ptrdiff_t count, ptrdiff_t start, ptrdiff_t step, float* dst,
                         const Py_ssize_t* dst_off, ptrdiff_t bstride, ptrdiff_t nlines,
                         ptrdiff_t L, int nstages,
                         const int* radix, const float* tw, const float* roots, ptrdiff_t first,
                         ptrdiff_t last) noexcept nogil
    int fcc_rows_r2c_f64(const double* src, const Py_ssize_t* src_off, ptrdiff_t src_step,
                         ptrdiff_t count, ptrdiff_t start, ptrdiff_t step, double* dst,
                         const Py_ssize_t* dst_off, ptrdiff_t bstride, ptrdiff_t nlines,
                         ptrdiff_t L, int nstages,
                         const int* radix, const double* tw, const double* roots,
                         ptrdiff_t first, ptrdiff_t last) noexcept nogil
    int fcc_rows_c2r_f32(const float* src, const Py_ssize_t* src_off, ptrdiff_t bstride,
                         float* dst,
                         const Py_ssize_t* dst_off, ptrdiff_t dst_step, ptrdiff_t count,
                         ptrdiff_t start, ptrdiff_t step, ptrdiff_t nlines, ptrdiff_t L,
                         int nstages, const int* radix, const float* tw, const float* roots,
                         float scale, ptrdiff_t first, ptrdiff_t last) noexcept nogil
    int fcc_rows_c2r_f64(const double* src, const Py_ssize_t* src_off, ptrdiff_t bstride,
                         double* dst,
                         const Py_ssize_t* dst_off, ptrdiff_t dst_step, ptrdiff_t count,
                         ptrdiff_t start, ptrdiff_t step, ptrdiff_t nlines, ptrdiff_t L,
                         int nstages, const int* radix, const double* tw, const double* roots,
                         double scale, ptrdiff_t first, ptrdiff_t last) noexcept nogil



cdef extern from *:
    """
    /* The column transforms, channel product and inverse column transforms of a 2-D pass fused
       per item: one block of FCC_FB spectrum columns of two samples (their a spectra
       transformed along the columns, the product for their a rows over those frequencies,
       their out spectra transformed back), so that the blocks stay in cache between the three
       steps, and the product takes two a rows at a time (fc_rows2).
       Strides (in spectra) and conjugates as channel_product's; a and out are blocked spectra
       (planes, blocks, L, FCC_FB): a block of a plane is L * FCC_FB contiguous values. */
    #define FF_DEFINE(T, SUF, V)                                                               \\
    static int ff_fused_##SUF(T* a, const T* b, T* out, ptrdiff_t L, ptrdiff_t blocks,         \\
            ptrdiff_t nsamples, ptrdiff_t a_planes, ptrdiff_t o_planes,                       \\
            int ns_f, const int* rad_f, const T* tw_f, const T* ro_f,                         \\
            int ns_i, const int* rad_i, const T* tw_i, const T* ro_i, T scale,                \\
            ptrdiff_t G, ptrdiff_t nb, ptrdiff_t nj,                                          \\
            ptrdiff_t sa_g, ptrdiff_t sa_r, ptrdiff_t sa_j, int conj_a,                       \\
            ptrdiff_t sb_g, ptrdiff_t sb_r, ptrdiff_t sb_j, int conj_b,                       \\
            ptrdiff_t so_g, ptrdiff_t so_r, ptrdiff_t so_j, ptrdiff_t first, ptrdiff_t last)  \\
    {                                                                                          \\
        const ptrdiff_t nf = L * FCC_FB, F2 = 2 * nf * blocks;                               \\
        V* buf = (V*)aligned_alloc(64, 2 * (size_t)L * sizeof(V));                           \\
        if (buf == NULL) return -1;                                                          \\
        const ptrdiff_t pairs = (nsamples + 1) / 2;                                          \\
        for (ptrdiff_t item = first; item < last; item++) {                                  \\
            const ptrdiff_t off = (item / pairs) * 2 * nf, n = (item % pairs) * 2;           \\
            const ptrdiff_t cnt = nsamples - n < 2 ? nsamples - n : 2;                       \\
            fcc_column_blocks_##SUF(a + n * a_planes * F2 + off, cnt * a_planes, F2, L,      \\
                                    FCC_FB, 0, FCC_FB, buf, ns_f, rad_f, tw_f, ro_f, 1);     \\
            for (ptrdiff_t g = 0; g < G; g++)                                                \\
                fc_item_##SUF(cnt, nb, nj, nf, a + (g * sa_g + n * sa_r) * F2 + off,         \\
                              sa_r * F2, sa_j * F2, b + g * sb_g * F2 + off, sb_r * F2,      \\
                              sb_j * F2, out + (g * so_g + n * so_r) * F2 + off, so_r * F2,  \\
                              so_j * F2, conj_a, conj_b, 0);                                 \\
            fcc_column_blocks_##SUF(out + n * o_planes * F2 + off, cnt * o_planes, F2, L,    \\
                                    FCC_FB, 0, FCC_FB, buf, ns_i, rad_i, tw_i, ro_i, scale); \\
        }                                                                                    \\
        free(buf);                                                                           \\
        return 0;                                                                            \\
    }
    FF_DEFINE(float, f32, fcc_vf)
    FF_DEFINE(double, f64, fcc_vd)

    /* The kernel gradient's 2-D pass fused per block of columns: the column transforms of
       that block of every a and b spectrum (na_planes and nb_planes of them), then the channel
       product accumulated into out over it (all rows: every a, b and j). */
    #define FG_DEFINE(T, SUF, V)                                                               \
    static int ff_fused_sum_##SUF(T* a, T* b, T* out, ptrdiff_t L, ptrdiff_t blocks,           \
            ptrdiff_t na_planes, ptrdiff_t nb_planes,                                         \
            int ns_f, const int* rad_f, const T* tw_f, const T* ro_f,                         \
            ptrdiff_t G, ptrdiff_t na, ptrdiff_t nb, ptrdiff_t nj,                            \
            ptrdiff_t sa_g, ptrdiff_t sa_r, ptrdiff_t sa_j, int conj_a,                       \
            ptrdiff_t sb_g, ptrdiff_t sb_r, ptrdiff_t sb_j, int conj_b,                       \
            ptrdiff_t so_g, ptrdiff_t so_r, ptrdiff_t so_j, ptrdiff_t first, ptrdiff_t last)  \
    {                                                                                          \
        const ptrdiff_t nf = L * FCC_FB, F2 = 2 * nf * blocks;                               \
        V* buf = (V*)aligned_alloc(64, 2 * (size_t)L * sizeof(V));                           \
        if (buf == NULL) return -1;                                                          \
        for (ptrdiff_t item = first; item < last; item++) {                                  \
            const ptrdiff_t off = item * 2 * nf;                                             \
            fcc_column_blocks_##SUF(a + off, na_planes, F2, L, FCC_FB, 0, FCC_FB, buf, ns_f, \
                                    rad_f, tw_f, ro_f, 1);                                   \
            fcc_column_blocks_##SUF(b + off, nb_planes, F2, L, FCC_FB, 0, FCC_FB, buf, ns_f, \
                                    rad_f, tw_f, ro_f, 1);                                   \
            for (ptrdiff_t g = 0; g < G; g++)                                                \
                fc_item_##SUF(na, nb, nj, nf, a + g * sa_g * F2 + off, sa_r * F2, sa_j * F2, \
                              b + g * sb_g * F2 + off, sb_r * F2, sb_j * F2,                 \
                              out + g * so_g * F2 + off, so_r * F2, so_j * F2,               \
                              conj_a, conj_b, 1);                                            \
        }                                                                                    \
        free(buf);                                                                           \
        return 0;                                                                            \
    }
    FG_DEFINE(float, f32, fcc_vf)
    FG_DEFINE(double, f64, fcc_vd)
    """
    int ff_fused_sum_f32(float* a, float* b, float* out, ptrdiff_t L, ptrdiff_t blocks,
                         ptrdiff_t na_planes, ptrdiff_t nb_planes,
                         int ns_f, const int* rad_f, const float* tw_f, const float* ro_f,
                         ptrdiff_t G, ptrdiff_t na, ptrdiff_t nb, ptrdiff_t nj,
                         ptrdiff_t sa_g, ptrdiff_t sa_r, ptrdiff_t sa_j, int conj_a,
                         ptrdiff_t sb_g, ptrdiff_t sb_r, ptrdiff_t sb_j, int conj_b,
                         ptrdiff_t so_g, ptrdiff_t so_r, ptrdiff_t so_j, ptrdiff_t first,
                         ptrdiff_t last) noexcept nogil
    int ff_fused_sum_f64(double* a, double* b, double* out, ptrdiff_t L, ptrdiff_t blocks,
                         ptrdiff_t na_planes, ptrdiff_t nb_planes,
                         int ns_f, const int* rad_f, const double* tw_f, const double* ro_f,
                         ptrdiff_t G, ptrdiff_t na, ptrdiff_t nb, ptrdiff_t nj,
                         ptrdiff_t sa_g, ptrdiff_t sa_r, ptrdiff_t sa_j, int conj_a,
                         ptrdiff_t sb_g, ptrdiff_t sb_r, ptrdiff_t sb_j, int conj_b,
                         ptrdiff_t so_g, ptrdiff_t so_r, ptrdiff_t so_j, ptrdiff_t first,
                         ptrdiff_t last) noexcept nogil
    int ff_fused_f32(float* a, const float* b, float* out, ptrdiff_t L, ptrdiff_t blocks,
                     ptrdiff_t nsamples, ptrdiff_t a_planes, ptrdiff_t o_planes,
                     int ns_f, const int* rad_f, const float* tw_f, const float* ro_f,
                     int ns_i, const int* rad_i, const float* tw_i, const float* ro_i,
                     float scale, ptrdiff_t G, ptrdiff_t nb, ptrdiff_t nj,
                     ptrdiff_t sa_g, ptrdiff_t sa_r, ptrdiff_t sa_j, int conj_a,
                     ptrdiff_t sb_g, ptrdiff_t sb_r, ptrdiff_t sb_j, int conj_b,
                     ptrdiff_t so_g, ptrdiff_t so_r, ptrdiff_t so_j, ptrdiff_t first,
                     ptrdiff_t last) noexcept nogil
    int ff_fused_f64(double* a, const double* b, double* out, ptrdiff_t L, ptrdiff_t blocks,
                     ptrdiff_t nsamples, ptrdiff_t a_planes, ptrdiff_t o_planes,
                     int ns_f, const int* rad_f, const double* tw_f, const double* ro_f,
                     int ns_i, const int* rad_i, const double* tw_i, const double* ro_i,
                     double scale, ptrdiff_t G, ptrdiff_t nb, ptrdiff_t nj,
                     ptrdiff_t sa_g, ptrdiff_t sa_r, ptrdiff_t sa_j, int conj_a,
                     ptrdiff_t sb_g, ptrdiff_t sb_r, ptrdiff_t sb_j, int conj_b,
                     ptrdiff_t so_g, ptrdiff_t so_r, ptrdiff_t so_j, ptrdiff_t first,
                     ptrdiff_t last) noexcept nogil

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
            Py_ssize_t last):
    """The complex FFT along the middle axis of (batch, L, ncols) interleaved complex `data`
    (viewed as a flat real array), in place and times `scale`, for the items first..last-1 (see
    `column_items` and _fft_columns.h); `radix`, `tw` and `roots` are the plan of
    fastconv/_algorithms/fft.py's _column_plan. Runs without the GIL."""
    cdef int rc = 0
    if last <= first or L == 0 or ncols == 0:
        return
    with nogil:
        if floating is float:
            rc = fcc_columns_f32(&data[0], L, ncols, radix.shape[0], &radix[0], &tw[0],
                                 &roots[0], <float>scale, first, last)
        else:
            rc = fcc_columns_f64(&data[0], L, ncols, radix.shape[0], &radix[0], &tw[0],
                                 &roots[0], scale, first, last)
    if rc != 0:
        raise MemoryError("no scratch for the column FFT")


def row_items(Py_ssize_t nlines, Py_ssize_t itemsize):
    """Work items of `rows_r2c` / `rows_c2r` on `nlines` lines of real `itemsize` bytes."""
    cdef Py_ssize_t per = 64 // itemsize
    return (nlines + per - 1) // per


def rows_r2c(size_t src, const Py_ssize_t[::1] src_off, Py_ssize_t src_step, Py_ssize_t count,
             Py_ssize_t start, Py_ssize_t step, floating[::1] dst, const Py_ssize_t[::1] dst_off,
             Py_ssize_t bstride, Py_ssize_t L, const int[::1] radix, const floating[::1] tw,
             const floating[::1] roots, Py_ssize_t first, Py_ssize_t last):
    """Half spectra of real lines of the dst's type, blocked: frequency k of line l at
    dst[dst_off[l] + (k // FREQ_BLOCK) * bstride + 2 * (k % FREQ_BLOCK)] for k < L // 2 + 1, and
    zeros up to the end of the last block;
    line l's `count` values at element offsets src_off[l] + i * src_step from the address `src`
    (an array's first element, which the caller keeps alive), placed at (start + i * step) mod
    L. Items as `row_items`; the plan as `columns`' (forward); without the GIL."""
    cdef int rc = 0
    if last <= first or src_off.shape[0] == 0:
        return
    with nogil:
        if floating is float:
            rc = fcc_rows_r2c_f32(<const float*>src, &src_off[0], src_step, count, start, step,
                                  &dst[0], &dst_off[0], bstride, src_off.shape[0], L,
                                  radix.shape[0],
                                  &radix[0], &tw[0], &roots[0], first, last)
        else:
            rc = fcc_rows_r2c_f64(<const double*>src, &src_off[0], src_step, count, start, step,
                                  &dst[0], &dst_off[0], bstride, src_off.shape[0], L,
                                  radix.shape[0],
                                  &radix[0], &tw[0], &roots[0], first, last)
    if rc != 0:
        raise MemoryError("no scratch for the row FFT")


def rows_c2r(const floating[::1] src, const Py_ssize_t[::1] src_off, Py_ssize_t bstride,
             size_t dst,
             const Py_ssize_t[::1] dst_off, Py_ssize_t dst_step, Py_ssize_t count,
             Py_ssize_t start, Py_ssize_t step, Py_ssize_t L, const int[::1] radix,
             const floating[::1] tw, const floating[::1] roots, double scale, Py_ssize_t first,
             Py_ssize_t last):
    """The inverse of `rows_r2c` (the plan inverse), times `scale`: line l's half spectrum at
    src[src_off[l]:] blocked as rows_r2c writes it, its positions (start + i * step) mod L, i < count, written at element
    offsets dst_off[l] + i * dst_step from the address `dst` (of src's real type)."""
    cdef int rc = 0
    if last <= first or src_off.shape[0] == 0:
        return
    with nogil:
        if floating is float:
            rc = fcc_rows_c2r_f32(&src[0], &src_off[0], bstride, <float*>dst, &dst_off[0], dst_step,
                                  count, start, step, src_off.shape[0], L, radix.shape[0],
                                  &radix[0], &tw[0], &roots[0], <float>scale, first, last)
        else:
            rc = fcc_rows_c2r_f64(&src[0], &src_off[0], bstride, <double*>dst, &dst_off[0], dst_step,
                                  count, start, step, src_off.shape[0], L, radix.shape[0],
                                  &radix[0], &tw[0], &roots[0], scale, first, last)
    if rc != 0:
        raise MemoryError("no scratch for the row FFT")


def fused_items(Py_ssize_t nsamples, Py_ssize_t blocks):
    """Work items of `fused`: blocks of columns times pairs of samples."""
    return (nsamples + 1) // 2 * blocks


def fused(floating[::1] a, const floating[::1] b, floating[::1] out, Py_ssize_t L,
          Py_ssize_t blocks, Py_ssize_t nsamples, Py_ssize_t a_planes, Py_ssize_t o_planes,
          tuple forward_plan, tuple inverse_plan, double scale, Py_ssize_t G, Py_ssize_t nb,
          Py_ssize_t nj, tuple a_strides, bint conj_a, tuple b_strides, bint conj_b,
          tuple out_strides, Py_ssize_t first, Py_ssize_t last):
    """For the items first..last-1 (see `fused_items`): the column FFT (forward plan) of a's
    spectra (nsamples * a_planes blocked planes of (blocks, L, FREQ_BLOCK)), the channel product into out as
    `channel_product` (one a row per sample; not accumulated), and the inverse column FFT of
    out's spectra times `scale`, block of columns by block; a is overwritten. Without the GIL."""
    cdef const int[::1] rad_f = forward_plan[0]
    cdef const floating[::1] tw_f = forward_plan[1]
    cdef const floating[::1] ro_f = forward_plan[2]
    cdef const int[::1] rad_i = inverse_plan[0]
    cdef const floating[::1] tw_i = inverse_plan[1]
    cdef const floating[::1] ro_i = inverse_plan[2]
    cdef Py_ssize_t sa_g, sa_r, sa_j, sb_g, sb_r, sb_j, so_g, so_r, so_j
    cdef int rc = 0
    sa_g, sa_r, sa_j = a_strides
    sb_g, sb_r, sb_j = b_strides
    so_g, so_r, so_j = out_strides
    if last <= first:
        return
    with nogil:
        if floating is float:
            rc = ff_fused_f32(&a[0], &b[0], &out[0], L, blocks, nsamples, a_planes, o_planes,
                              rad_f.shape[0], &rad_f[0], &tw_f[0], &ro_f[0],
                              rad_i.shape[0], &rad_i[0], &tw_i[0], &ro_i[0], <float>scale,
                              G, nb, nj, sa_g, sa_r, sa_j, conj_a, sb_g, sb_r, sb_j, conj_b,
                              so_g, so_r, so_j, first, last)
        else:
            rc = ff_fused_f64(&a[0], &b[0], &out[0], L, blocks, nsamples, a_planes, o_planes,
                              rad_f.shape[0], &rad_f[0], &tw_f[0], &ro_f[0],
                              rad_i.shape[0], &rad_i[0], &tw_i[0], &ro_i[0], scale,
                              G, nb, nj, sa_g, sa_r, sa_j, conj_a, sb_g, sb_r, sb_j, conj_b,
                              so_g, so_r, so_j, first, last)
    if rc != 0:
        raise MemoryError("no scratch for the fused column FFT")


def columns_placed(const floating[::1] src, floating[::1] dst, Py_ssize_t L, Py_ssize_t ncols,
                   const Py_ssize_t[::1] pos, const int[::1] radix, const floating[::1] tw,
                   const floating[::1] roots, double scale, Py_ssize_t first, Py_ssize_t last):
    """`columns` from compact planes: src is (batch, len(pos), ncols) complex holding the only
    nonzero rows, at rows `pos` of dst's (batch, L, ncols) planes, which get the transform;
    items as `column_items`. Without the GIL."""
    cdef int rc = 0
    if last <= first or L == 0 or ncols == 0:
        return
    with nogil:
        if floating is float:
            rc = fcc_columns_placed_f32(&src[0], &dst[0], L, ncols, pos.shape[0], &pos[0],
                                        radix.shape[0], &radix[0], &tw[0], &roots[0],
                                        <float>scale, first, last)
        else:
            rc = fcc_columns_placed_f64(&src[0], &dst[0], L, ncols, pos.shape[0], &pos[0],
                                        radix.shape[0], &radix[0], &tw[0], &roots[0], scale,
                                        first, last)
    if rc != 0:
        raise MemoryError("no scratch for the column FFT")


def fused_sum(floating[::1] a, floating[::1] b, floating[::1] out, Py_ssize_t L,
              Py_ssize_t blocks, Py_ssize_t na_planes, Py_ssize_t nb_planes, tuple forward_plan,
              Py_ssize_t G, Py_ssize_t na, Py_ssize_t nb, Py_ssize_t nj, tuple a_strides,
              bint conj_a, tuple b_strides, bint conj_b, tuple out_strides, Py_ssize_t first,
              Py_ssize_t last):
    """For the blocks of columns first..last-1: the column FFTs of that block of a's and b's
    blocked spectra (overwritten), then out += their channel product as `channel_product`'s
    (the kernel gradient's). Without the GIL."""
    cdef const int[::1] rad_f = forward_plan[0]
    cdef const floating[::1] tw_f = forward_plan[1]
    cdef const floating[::1] ro_f = forward_plan[2]
    cdef Py_ssize_t sa_g, sa_r, sa_j, sb_g, sb_r, sb_j, so_g, so_r, so_j
    cdef int rc = 0
    sa_g, sa_r, sa_j = a_strides
    sb_g, sb_r, sb_j = b_strides
    so_g, so_r, so_j = out_strides
    if last <= first:
        return
    with nogil:
        if floating is float:
            rc = ff_fused_sum_f32(&a[0], &b[0], &out[0], L, blocks, na_planes, nb_planes,
                                  rad_f.shape[0], &rad_f[0], &tw_f[0], &ro_f[0], G, na, nb, nj,
                                  sa_g, sa_r, sa_j, conj_a, sb_g, sb_r, sb_j, conj_b,
                                  so_g, so_r, so_j, first, last)
        else:
            rc = ff_fused_sum_f64(&a[0], &b[0], &out[0], L, blocks, na_planes, nb_planes,
                                  rad_f.shape[0], &rad_f[0], &tw_f[0], &ro_f[0], G, na, nb, nj,
                                  sa_g, sa_r, sa_j, conj_a, sb_g, sb_r, sb_j, conj_b,
                                  so_g, so_r, so_j, first, last)
    if rc != 0:
        raise MemoryError("no scratch for the fused column FFT")
