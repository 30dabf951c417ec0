/* The channel product and the kernel taps' DFT of the FFT algorithm (src/_fft.pyx explains
   both). */
#ifndef FASTCONV_FFT_PRODUCT_H
#define FASTCONV_FFT_PRODUCT_H
#include <stddef.h>
#include "_cpu_level.h"
#define FC_BLOCK 8     /* complex frequencies per micro-kernel call */
#define FC_SUPER 8     /* blocks per item */
/* Blocks of frequencies ahead that the float product prefetches its b rows: in a fused pass
   the kernel's spectra are 64 or more planes read side by side, more streams than the
   hardware prefetchers follow (the product measured 1.2x faster with it). */
#define FC_AHEAD 4
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
   the respective copies (FC_LEVEL below). A block of FC_BLOCK complex values is NV vectors. */
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

/* The vector kernels of one precision for one instruction set (FC_LEVEL below): SUF is the
   precision's (P, f32 or f64) and the level's suffix (f32_v4), ATTR the level's target. */
#define FC_DEFINE(T, P, SUF, V, VU, S, ATTR)                                               \
/* A full block for bb (1..4, a constant after inlining) outputs b_i = b + i * b_row:     \
   p += a * b and q += a * swap(b) lane by lane in registers, then the real parts (even   \
   lanes) from p -+ swap(p) and the imaginary parts (odd lanes) from q +- swap(q). */      \
FC_INLINE void fc_rows_##SUF(const int bb, ptrdiff_t nj, const T* a, ptrdiff_t a_j,        \
                             const T* b, ptrdiff_t b_row, ptrdiff_t b_j,                  \
                             T* out, ptrdiff_t o_b, int conj_a, int conj_b, int acc)      \
{                                                                                          \
    enum { NV = 2 * FC_BLOCK * (int)sizeof(T) / 64 };                                    \
    V p[4][NV], q[4][NV];                                                                \
    for (int i = 0; i < bb; i++)                                                         \
        for (int v = 0; v < NV; v++) { p[i][v] = (V){0}; q[i][v] = (V){0}; }             \
    for (ptrdiff_t j = 0; j < nj; j++) {                                                 \
        for (int v = 0; v < NV; v++) {                                                   \
            V x = *(const VU*)(a + j * a_j + v * (64 / sizeof(T)));                      \
            for (int i = 0; i < bb; i++) {                                               \
                V y = *(const VU*)(b + i * b_row + j * b_j + v * (64 / sizeof(T)));      \
                p[i][v] += x * y;                                                        \
                q[i][v] += x * __builtin_shuffle(y, FC_SWAP_##S);                        \
            }                                                                            \
        }                                                                                \
    }                                                                                    \
    for (int i = 0; i < bb; i++) {                                                       \
        for (int v = 0; v < NV; v++) {                                                   \
            V ps = __builtin_shuffle(p[i][v], FC_SWAP_##S);                              \
            V qs = __builtin_shuffle(q[i][v], FC_SWAP_##S);                              \
            V re = (conj_a || conj_b) ? p[i][v] + ps : p[i][v] - ps;                     \
            V im = conj_b ? q[i][v] - qs : (conj_a ? qs - q[i][v] : q[i][v] + qs);       \
            V r = __builtin_shuffle(re, im, FC_EVEN_ODD_##S);                            \
            VU* o = (VU*)(out + i * o_b + v * (64 / sizeof(T)));                         \
            if (acc) *o += r; else *o = r;                                               \
        }                                                                                \
    }                                                                                    \
}                                                                                          \
                                                                                           \
/* Two a rows (a and a + a_row, outputs o_a apart) at once for bb (1..4) b rows: each b   \
   vector and its swap are loaded and shuffled once for both, halving the loads and the   \
   shuffles per multiply-add. One vector per block (float) only: 16 accumulators. */      \
FC_INLINE void fc_rows2_##SUF(const int bb, ptrdiff_t nj, const T* a, ptrdiff_t a_row,     \
                              ptrdiff_t a_j, const T* b, ptrdiff_t b_row, ptrdiff_t b_j,  \
                              T* out, ptrdiff_t o_a, ptrdiff_t o_b, int conj_a,           \
                              int conj_b, int acc)                                        \
{                                                                                          \
    V p[2][4], q[2][4];                                                                  \
    for (int r = 0; r < 2; r++)                                                          \
        for (int i = 0; i < bb; i++) { p[r][i] = (V){0}; q[r][i] = (V){0}; }             \
    for (ptrdiff_t j = 0; j < nj; j++) {                                                 \
        V x0 = *(const VU*)(a + j * a_j), x1 = *(const VU*)(a + a_row + j * a_j);        \
        for (int i = 0; i < bb; i++) {                                                   \
            V y = *(const VU*)(b + i * b_row + j * b_j);                                 \
            V ys = __builtin_shuffle(y, FC_SWAP_##S);                                    \
            p[0][i] += x0 * y;                                                           \
            q[0][i] += x0 * ys;                                                          \
            p[1][i] += x1 * y;                                                           \
            q[1][i] += x1 * ys;                                                          \
        }                                                                                \
    }                                                                                    \
    for (int r = 0; r < 2; r++) {                                                        \
        for (int i = 0; i < bb; i++) {                                                   \
            V ps = __builtin_shuffle(p[r][i], FC_SWAP_##S);                              \
            V qs = __builtin_shuffle(q[r][i], FC_SWAP_##S);                              \
            V re = (conj_a || conj_b) ? p[r][i] + ps : p[r][i] - ps;                     \
            V im = conj_b ? q[r][i] - qs : (conj_a ? qs - q[r][i] : q[r][i] + qs);       \
            V res = __builtin_shuffle(re, im, FC_EVEN_ODD_##S);                          \
            VU* o = (VU*)(out + r * o_a + i * o_b);                                      \
            if (acc) *o += res; else *o = res;                                           \
        }                                                                                \
    }                                                                                    \
}                                                                                          \
                                                                                           \
/* One item: nf frequencies from the given pointers, every a (rows a_row apart) and b,    \
   MB = four b at a time (eight measured slower), reused from cache for every a. Strides   \
   are in scalars. */                                                                     \
ATTR static void                                                                           \
fc_item_##SUF(ptrdiff_t na, ptrdiff_t nb, ptrdiff_t nj, ptrdiff_t nf,                     \
              const T* a, ptrdiff_t a_row, ptrdiff_t a_j,                                 \
              const T* b, ptrdiff_t b_row, ptrdiff_t b_j,                                 \
              T* out, ptrdiff_t o_a, ptrdiff_t o_b, int conj_a, int conj_b, int acc)      \
{                                                                                          \
    enum { MB = 4 };                                                                     \
    for (ptrdiff_t ib = 0; ib < nb; ib += MB) {                                          \
        ptrdiff_t bb = nb - ib < MB ? nb - ib : MB;                                      \
        ptrdiff_t ia = 0;                                                                \
        if (2 * FC_BLOCK * sizeof(T) == 64) {    /* one vector per block: float */      \
            /* frequencies outside, pairs of a rows inside: the b block of a frequency    \
               block stays in L1 while every a row uses it */                             \
            const ptrdiff_t na2 = na & ~(ptrdiff_t)1;                                    \
            ptrdiff_t f = 0;                                                             \
            for (; f + FC_BLOCK <= nf; f += FC_BLOCK) {                                  \
                if (f + (FC_AHEAD + 1) * FC_BLOCK <= nf)                                 \
                    for (ptrdiff_t i = 0; i < bb; i++)                                   \
                        for (ptrdiff_t j = 0; j < nj; j++)                               \
                            __builtin_prefetch(b + (ib + i) * b_row + j * b_j            \
                                               + 2 * (f + FC_AHEAD * FC_BLOCK));         \
                for (ia = 0; ia < na2; ia += 2) {                                        \
                    const T* ap = a + ia * a_row + 2 * f;                                \
                    const T* bp = b + ib * b_row + 2 * f;                                \
                    T* op = out + ia * o_a + ib * o_b + 2 * f;                           \
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
    enum { VL = 64 / (int)sizeof(T) };                                                   \
    const V sign = FC_SIGN_##S;                                                          \
    V acc[4][4];                                                                         \
    for (int i = 0; i < bb; i++)                                                         \
        for (int v = 0; v < nv; v++) acc[i][v] = (V){0};                                 \
    for (ptrdiff_t t = 0; t < nt; t++) {                                                 \
        V y[4], ys[4];                                                                   \
        for (int v = 0; v < nv; v++) {                                                   \
            y[v] = *(const VU*)(a + 2 * (t * nw + w) + v * VL);                          \
            ys[v] = __builtin_shuffle(y[v], FC_SWAP_##S);                                \
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
            *(VU*)(out + 2 * (i * nw + w) + v * VL) = acc[i][v];                         \
}                                                                                          \
                                                                                           \
/* bb rows i: chunks of four vectors of columns, then single vectors, then the rest. */    \
FC_INLINE void fc_mblock_##SUF(const int bb, ptrdiff_t nt, ptrdiff_t nw, const T* m,        \
                               const T* a, T* out)                                        \
{                                                                                          \
    const ptrdiff_t per = 64 / (2 * (ptrdiff_t)sizeof(T));   /* complex per vector */    \
    ptrdiff_t w = 0;                                                                     \
    for (; w + 4 * per <= nw; w += 4 * per)                                              \
        fc_mrows_##SUF(bb, 4, nt, nw, w, m, a, out);                                     \
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
   (fc_item_f32_v4, ...). The scalar tails are shared. */
#define FC_LEVEL(LV, ATTR)                                                                 \
FC_DEFINE(float, f32, f32_##LV, fc_vf, fc_vf_u, f, ATTR)                                   \
FC_DEFINE(double, f64, f64_##LV, fc_vd, fc_vd_u, d, ATTR)
#if FASTCONV_DISPATCH
FC_LEVEL(v4, FASTCONV_TARGET_V4)
FC_LEVEL(v3, FASTCONV_TARGET_V3)
#endif
FC_LEVEL(base, )

#ifndef FF_LEVEL_DEFINED       /* shared with _fft_columns.h */
#define FF_LEVEL_DEFINED
/* The FFT's kernel set; FASTCONV_FFT_LEVEL=0 or 1 asks for a lower one. */
FASTCONV_LEVEL_FUNCTION(ff_level, "FASTCONV_FFT_LEVEL")
#endif

/* The entry points: the copy of this process's kernel set. */
#define FC_ENTRY(T, P)                                                                     \
static void fc_item_##P(ptrdiff_t na, ptrdiff_t nb, ptrdiff_t nj, ptrdiff_t nf,           \
                        const T* a, ptrdiff_t a_row, ptrdiff_t a_j,                       \
                        const T* b, ptrdiff_t b_row, ptrdiff_t b_j,                       \
                        T* out, ptrdiff_t o_a, ptrdiff_t o_b, int conj_a, int conj_b,     \
                        int acc)                                                          \
{                                                                                          \
    FASTCONV_PICK(ff_level(), fc_item_##P, (na, nb, nj, nf, a, a_row, a_j, b, b_row, b_j, \
                                            out, o_a, o_b, conj_a, conj_b, acc));         \
}                                                                                          \
static void fc_matrix_##P(ptrdiff_t ni, ptrdiff_t nt, ptrdiff_t nw, const T* m, const T* a, \
                          T* out)                                                         \
{                                                                                          \
    FASTCONV_PICK(ff_level(), fc_matrix_##P, (ni, nt, nw, m, a, out));                    \
}
FC_ENTRY(float, f32)
FC_ENTRY(double, f64)

#endif
