/* The channel product and the kernel taps' DFT of the FFT algorithm (src/_fft.pyx explains
   both). */
#ifndef FASTCONV_FFT_PRODUCT_H
#define FASTCONV_FFT_PRODUCT_H
#include <stddef.h>
#include "_fft_vectors.h"
#define FC_BLOCK 8     /* complex frequencies per micro-kernel call */
#define FC_SUPER 8     /* blocks per item */
/* Blocks of frequencies ahead that the float product prefetches its b rows: in a fused pass
   the kernel's spectra are 64 or more planes read side by side, more streams than the
   hardware prefetchers follow (the product measured 1.2x faster with it). */
#define FC_AHEAD 4
/* The b rows per step of the product below AVX-512 (fc_item): two a rows by two b rows
   hold 8 accumulators of the 16 vector registers, three spilled (AVX2, 1.1 vs 1.5 ms for
   the fused passes of x (4, 8, 128, 128), w (8, 8, 15, 15)). */
#define FC_MB_NARROW 2
#define FC_INLINE static inline __attribute__((always_inline))
/* GCC 12 SLP-vectorises the scalar tails below with a dead load from row j + 1, which reads
   past the last row (a segfault seen in tests); the tails are a few values: keep them
   scalar. */
#if defined(__GNUC__) && !defined(__clang__)
#define FC_SCALAR __attribute__((optimize("no-tree-vectorize")))
#else
#define FC_SCALAR
#endif


/* Partial block (nf < FC_BLOCK complex): the same sums, one scalar at a time. p holds
   ar*br, ai*bi and q ar*bi, ai*br per frequency; out = sum_j op(a) op(b). */
#define FC_TAILS(T, SUF)                                                                   \
FC_SCALAR static void fc_tail_##SUF(ptrdiff_t nf, ptrdiff_t nj, const T* a, ptrdiff_t a_j,          \
                          const T* b, ptrdiff_t b_j, T* o, int conj_a, int conj_b, int acc) \
{                                                                                          \
    for (ptrdiff_t c = 0; c < nf; c++) {                                                 \
        T p0 = 0, p1 = 0, q0 = 0, q1 = 0;                                                \
        for (ptrdiff_t j = 0; j < nj; j++) {                                             \
            const T* x = a + j * a_j + 2 * c;                                            \
            const T* y = b + j * b_j + 2 * c;                                            \
            p0 += x[0] * y[0]; p1 += x[1] * y[1]; q0 += x[0] * y[1]; q1 += x[1] * y[0];  \
        }                                                                                \
        T re = (conj_a || conj_b) ? p0 + p1 : p0 - p1;                                   \
        T im = conj_b ? q1 - q0 : (conj_a ? q0 - q1 : q0 + q1);                          \
        if (acc) { o[2 * c] += re; o[2 * c + 1] += im; }                                 \
        else { o[2 * c] = re; o[2 * c + 1] = im; }                                       \
    }                                                                                    \
}                                                                                          \
                                                                                           \
/* The columns w0.. of the tap DFT below, one value at a time (scalar, see FC_SCALAR). */  \
FC_SCALAR static void fc_mtail_##SUF(int bb, ptrdiff_t nt, ptrdiff_t nw, ptrdiff_t w0,      \
                                     const T* m, const T* a, T* out)                      \
{                                                                                          \
    for (ptrdiff_t w = w0; w < nw; w++) {                                                \
        for (int i = 0; i < bb; i++) {                                                   \
            T re = 0, im = 0;                                                            \
            for (ptrdiff_t t = 0; t < nt; t++) {                                         \
                const T* mi = m + 2 * (i * nt + t);                                      \
                const T* y = a + 2 * (t * nw + w);                                       \
                re += mi[0] * y[0] - mi[1] * y[1];                                       \
                im += mi[0] * y[1] + mi[1] * y[0];                                       \
            }                                                                            \
            out[2 * (i * nw + w)] = re;                                                  \
            out[2 * (i * nw + w) + 1] = im;                                              \
        }                                                                                \
    }                                                                                    \
}

FC_TAILS(float, f32)
FC_TAILS(double, f64)

/* One output vector of the product kernels below (V, VU their vector types) from its sums p
   (a * b) and q (a * swap(b)): the real parts (even lanes) from p -+ swap(p), the imaginary
   parts (odd lanes) from q +- swap(q), the conjugates changing only signs; stored at out, or
   added to it with acc. A macro, so that the vectors stay in the caller's registers. */
#define FC_FINISH(IT, N, out, p, q, conj_a, conj_b, acc) do {                             \
        V ps_ = FF_SWAP(IT, N, p), qs_ = FF_SWAP(IT, N, q);                              \
        V re_ = (conj_a || conj_b) ? p + ps_ : p - ps_;                                  \
        V im_ = conj_b ? q - qs_ : (conj_a ? qs_ - q : q + qs_);                         \
        V r_ = FF_EVEN_ODD(IT, N, re_, im_);                                             \
        VU* o_ = (VU*)(out);                                                             \
        if (acc) *o_ += r_; else *o_ = r_;                                               \
    } while (0)

/* The vector kernels of one precision for one instruction set (FC_LEVEL below): SUF is the
   precision's (P, f32 or f64) and the level's suffix (f32_v4), ATTR the level's target, VB
   its vector bytes, N the lanes of T (a literal) and IT the integer of T's size. A block of
   FC_BLOCK complex values is NV vectors; below AVX-512 (16 vector registers, not 32) fewer
   outputs are held at once. */
#define FC_DEFINE(T, IT, P, SUF, VB, N, ATTR)                                              \
typedef T fc_v_##SUF __attribute__((vector_size(VB)));                                     \
typedef T fc_vu_##SUF __attribute__((vector_size(VB), aligned(sizeof(T))));                \
/* A full block for bb (1..4, a constant after inlining) outputs b_i = b + i * b_row:     \
   p += a * b and q += a * swap(b) lane by lane in registers, then the real parts (even   \
   lanes) from p -+ swap(p) and the imaginary parts (odd lanes) from q +- swap(q); NR of  \
   the block's NV vectors at a time. */                                                  \
FC_INLINE void fc_rows_##SUF(const int bb, ptrdiff_t nj, const T* a, ptrdiff_t a_j,        \
                             const T* b, ptrdiff_t b_row, ptrdiff_t b_j,                  \
                             T* out, ptrdiff_t o_b, int conj_a, int conj_b, int acc)      \
{                                                                                          \
    typedef fc_v_##SUF V;                                                                \
    typedef fc_vu_##SUF VU;                                                              \
    enum { NV = 2 * FC_BLOCK * (int)sizeof(T) / VB, NR = VB == 64 ? NV : 1 };            \
    for (int v0 = 0; v0 < NV; v0 += NR) {                                                \
        V p[4][NR], q[4][NR];                                                            \
        for (int i = 0; i < bb; i++)                                                     \
            for (int v = 0; v < NR; v++) { p[i][v] = (V){0}; q[i][v] = (V){0}; }         \
        for (ptrdiff_t j = 0; j < nj; j++) {                                             \
            for (int v = 0; v < NR; v++) {                                               \
                V x = *(const VU*)(a + j * a_j + (v0 + v) * N);                          \
                for (int i = 0; i < bb; i++) {                                           \
                    V y = *(const VU*)(b + i * b_row + j * b_j + (v0 + v) * N);          \
                    p[i][v] += x * y;                                                    \
                    q[i][v] += x * FF_SWAP(IT, N, y);                                      \
                }                                                                        \
            }                                                                            \
        }                                                                                \
        for (int i = 0; i < bb; i++)                                                     \
            for (int v = 0; v < NR; v++)                                                 \
                FC_FINISH(IT, N, out + i * o_b + (v0 + v) * N, p[i][v], q[i][v], conj_a, \
                          conj_b, acc);                                                  \
    }                                                                                    \
}                                                                                          \
                                                                                           \
/* Two a rows (a and a + a_row, outputs o_a apart) at once for bb (1..4) b rows, one      \
   vector of frequencies: each b vector and its swap are loaded and shuffled once for     \
   both, halving the loads and the shuffles per multiply-add; 4 bb accumulators. */       \
FC_INLINE void fc_rows2_##SUF(const int bb, ptrdiff_t nj, const T* a, ptrdiff_t a_row,     \
                              ptrdiff_t a_j, const T* b, ptrdiff_t b_row, ptrdiff_t b_j,  \
                              T* out, ptrdiff_t o_a, ptrdiff_t o_b, int conj_a,           \
                              int conj_b, int acc)                                        \
{                                                                                          \
    typedef fc_v_##SUF V;                                                                \
    typedef fc_vu_##SUF VU;                                                              \
    V p[2][4], q[2][4];                                                                  \
    for (int r = 0; r < 2; r++)                                                          \
        for (int i = 0; i < bb; i++) { p[r][i] = (V){0}; q[r][i] = (V){0}; }             \
    for (ptrdiff_t j = 0; j < nj; j++) {                                                 \
        V x0 = *(const VU*)(a + j * a_j), x1 = *(const VU*)(a + a_row + j * a_j);        \
        for (int i = 0; i < bb; i++) {                                                   \
            V y = *(const VU*)(b + i * b_row + j * b_j);                                 \
            V ys = FF_SWAP(IT, N, y);                                                      \
            p[0][i] += x0 * y;                                                           \
            q[0][i] += x0 * ys;                                                          \
            p[1][i] += x1 * y;                                                           \
            q[1][i] += x1 * ys;                                                          \
        }                                                                                \
    }                                                                                    \
    for (int r = 0; r < 2; r++)                                                          \
        for (int i = 0; i < bb; i++)                                                     \
            FC_FINISH(IT, N, out + r * o_a + i * o_b, p[r][i], q[r][i], conj_a, conj_b,  \
                      acc);                                                              \
}                                                                                          \
                                                                                           \
/* One item: nf frequencies from the given pointers, every a (rows a_row apart) and b,    \
   MB b at a time, reused from cache for every a: four with AVX-512 (eight measured        \
   slower), FC_MB_NARROW below it. Strides are in scalars. */                              \
ATTR static void                                                                           \
fc_item_##SUF(ptrdiff_t na, ptrdiff_t nb, ptrdiff_t nj, ptrdiff_t nf,                     \
              const T* a, ptrdiff_t a_row, ptrdiff_t a_j,                                 \
              const T* b, ptrdiff_t b_row, ptrdiff_t b_j,                                 \
              T* out, ptrdiff_t o_a, ptrdiff_t o_b, int conj_a, int conj_b, int acc)      \
{                                                                                          \
    enum { MB = VB == 64 ? 4 : FC_MB_NARROW };                                           \
    for (ptrdiff_t ib = 0; ib < nb; ib += MB) {                                          \
        ptrdiff_t bb = nb - ib < MB ? nb - ib : MB;                                      \
        ptrdiff_t ia = 0;                                                                \
        if (2 * FC_BLOCK * sizeof(T) == 64) {    /* 64 bytes per block: float */        \
            /* frequencies outside, pairs of a rows inside: the b block of a frequency    \
               block stays in L1 while every a row uses it, one vector after the other */ \
            const ptrdiff_t na2 = na & ~(ptrdiff_t)1;                                    \
            ptrdiff_t f = 0;                                                             \
            for (; f + FC_BLOCK <= nf; f += FC_BLOCK) {                                  \
                if (f + (FC_AHEAD + 1) * FC_BLOCK <= nf)                                 \
                    for (ptrdiff_t i = 0; i < bb; i++)                                   \
                        for (ptrdiff_t j = 0; j < nj; j++)                               \
                            __builtin_prefetch(b + (ib + i) * b_row + j * b_j            \
                                               + 2 * (f + FC_AHEAD * FC_BLOCK));         \
                for (ia = 0; ia < na2; ia += 2)                                          \
                for (ptrdiff_t v = 2 * f; v < 2 * (f + FC_BLOCK); v += N) {              \
                    const T* ap = a + ia * a_row + v;                                    \
                    const T* bp = b + ib * b_row + v;                                    \
                    T* op = out + ia * o_a + ib * o_b + v;                               \
                    switch (bb) {                                                        \
                    case 4: fc_rows2_##SUF(4, nj, ap, a_row, a_j, bp, b_row, b_j, op,    \
                                           o_a, o_b, conj_a, conj_b, acc); break;        \
                    case 3: fc_rows2_##SUF(3, nj, ap, a_row, a_j, bp, b_row, b_j, op,    \
                                           o_a, o_b, conj_a, conj_b, acc); break;        \
                    case 2: fc_rows2_##SUF(2, nj, ap, a_row, a_j, bp, b_row, b_j, op,    \
                                           o_a, o_b, conj_a, conj_b, acc); break;        \
                    default: fc_rows2_##SUF(1, nj, ap, a_row, a_j, bp, b_row, b_j, op,   \
                                            o_a, o_b, conj_a, conj_b, acc); break;       \
                    }                                                                    \
                }                                                                        \
            }                                                                            \
            for (ia = 0; ia < na2 && f < nf; ia++)                                       \
                for (ptrdiff_t i = 0; i < bb; i++)                                       \
                    fc_tail_##P(nf - f, nj, a + ia * a_row + 2 * f, a_j,                 \
                                b + (ib + i) * b_row + 2 * f, b_j,                       \
                                out + ia * o_a + (ib + i) * o_b + 2 * f,                 \
                                conj_a, conj_b, acc);                                    \
            ia = na2;                                                                    \
        }                                                                                \
        for (; ia < na; ia++) {                                                          \
            for (ptrdiff_t f = 0; f < nf; f += FC_BLOCK) {                               \
                const T* ap = a + ia * a_row + 2 * f;                                    \
                const T* bp = b + ib * b_row + 2 * f;                                    \
                T* op = out + ia * o_a + ib * o_b + 2 * f;                               \
                if (nf - f < FC_BLOCK) {                                                 \
                    for (ptrdiff_t i = 0; i < bb; i++)                                   \
                        fc_tail_##P(nf - f, nj, ap, a_j, bp + i * b_row, b_j,            \
                                    op + i * o_b, conj_a, conj_b, acc);                  \
                    continue;                                                            \
                }                                                                        \
                switch (bb) {                                                            \
                case 4: fc_rows_##SUF(4, nj, ap, a_j, bp, b_row, b_j, op, o_b,          \
                                      conj_a, conj_b, acc); break;                       \
                case 3: fc_rows_##SUF(3, nj, ap, a_j, bp, b_row, b_j, op, o_b,          \
                                      conj_a, conj_b, acc); break;                       \
                case 2: fc_rows_##SUF(2, nj, ap, a_j, bp, b_row, b_j, op, o_b,          \
                                      conj_a, conj_b, acc); break;                       \
                default: fc_rows_##SUF(1, nj, ap, a_j, bp, b_row, b_j, op, o_b,         \
                                       conj_a, conj_b, acc); break;                      \
                }                                                                        \
            }                                                                            \
        }                                                                                \
    }                                                                                    \
}                                                                                          \
                                                                                           \
/* The tap DFTs: out[i, w] = sum_t m[i, t] a[t, w] for one spectrum stack, complex and     \
   interleaved, rows of nw values; four rows i at a time share each load of a. */          \
FC_INLINE void fc_mrows_##SUF(const int bb, const int nv, ptrdiff_t nt, ptrdiff_t nw,       \
                              ptrdiff_t w, const T* m, const T* a, T* out)                \
{                                                                                          \
    typedef fc_v_##SUF V;                                                                \
    typedef fc_vu_##SUF VU;                                                              \
    const V sign = {FF_SIGN(N)};                                                         \
    V acc[4][4];                                                                         \
    for (int i = 0; i < bb; i++)                                                         \
        for (int v = 0; v < nv; v++) acc[i][v] = (V){0};                                 \
    for (ptrdiff_t t = 0; t < nt; t++) {                                                 \
        V y[4], ys[4];                                                                   \
        for (int v = 0; v < nv; v++) {                                                   \
            y[v] = *(const VU*)(a + 2 * (t * nw + w) + v * N);                          \
            ys[v] = FF_SWAP(IT, N, y[v]);                                                  \
        }                                                                                \
        for (int i = 0; i < bb; i++) {                                                   \
            const T* mi = m + 2 * (i * nt + t);                                          \
            V re = (V){0} + mi[0], im = sign * mi[1];                                    \
            for (int v = 0; v < nv; v++) {                                               \
                acc[i][v] += re * y[v];                                                  \
                acc[i][v] += im * ys[v];                                                 \
            }                                                                            \
        }                                                                                \
    }                                                                                    \
    for (int i = 0; i < bb; i++)                                                         \
        for (int v = 0; v < nv; v++)                                                     \
            *(VU*)(out + 2 * (i * nw + w) + v * N) = acc[i][v];                         \
}                                                                                          \
                                                                                           \
/* bb rows i: chunks of MC vectors of columns (four with AVX-512, two below: 16 vector    \
   registers), then single vectors, then the rest. */                                     \
FC_INLINE void fc_mblock_##SUF(const int bb, ptrdiff_t nt, ptrdiff_t nw, const T* m,        \
                               const T* a, T* out)                                        \
{                                                                                          \
    enum { MC = VB == 64 ? 4 : 2 };                                                      \
    const ptrdiff_t per = N / 2;   /* complex per vector */                              \
    ptrdiff_t w = 0;                                                                     \
    for (; w + MC * per <= nw; w += MC * per)                                            \
        fc_mrows_##SUF(bb, MC, nt, nw, w, m, a, out);                                    \
    for (; w + per <= nw; w += per)                                                      \
        fc_mrows_##SUF(bb, 1, nt, nw, w, m, a, out);                                     \
    if (w < nw && nw >= per)     /* the last vector overlaps the one before: same values */ \
        fc_mrows_##SUF(bb, 1, nt, nw, nw - per, m, a, out);                              \
    else if (w < nw)                                                                     \
        fc_mtail_##P(bb, nt, nw, w, m, a, out);                                          \
}                                                                                          \
                                                                                           \
ATTR static void                                                                           \
fc_matrix_##SUF(ptrdiff_t ni, ptrdiff_t nt, ptrdiff_t nw, const T* m, const T* a, T* out) \
{                                                                                          \
    for (ptrdiff_t i = 0; i < ni; i += 4) {                                              \
        const T* mi = m + 2 * i * nt;                                                    \
        T* oi = out + 2 * i * nw;                                                        \
        switch (ni - i < 4 ? ni - i : 4) {                                               \
        case 4: fc_mblock_##SUF(4, nt, nw, mi, a, oi); break;                            \
        case 3: fc_mblock_##SUF(3, nt, nw, mi, a, oi); break;                            \
        case 2: fc_mblock_##SUF(2, nt, nw, mi, a, oi); break;                            \
        default: fc_mblock_##SUF(1, nt, nw, mi, a, oi); break;                           \
        }                                                                                \
    }                                                                                    \
}

/* Both precisions for one instruction set (_cpu_level.h): x86-64-v4 (AVX-512), x86-64-v3
   (AVX2 + FMA) and the build's own target, with the name suffixes _v4, _v3 and _base
   (fc_item_f32_v4, ...) and their own vector widths (_fft_vectors.h). The scalar tails are
   shared. */
#define FC_LEVEL(LV, ATTR, VB, NF, ND)                                                     \
FC_DEFINE(float, int, f32, f32_##LV, VB, NF, ATTR)                                         \
FC_DEFINE(double, long long, f64, f64_##LV, VB, ND, ATTR)
FASTCONV_EACH_LEVEL(FC_LEVEL)

#endif
