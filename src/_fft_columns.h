/* Column FFTs of the FFT algorithm (src/_fft.pyx): complex transforms along a strided axis.

   The spectra are (batch, L, ncols) complex, interleaved. A work item is one batch entry and a
   block of VL adjacent columns (VL complex values fill one 64-byte vector: 8 in float, 4 in
   double), so every element of the transform is one vector and each column is one lane pair:
   the transform runs on all VL columns at once, with scalar twiddles broadcast. The block is
   gathered into a scratch buffer, transformed by a mixed-radix Stockham (self-sorting) FFT and
   scattered back, scaled. With L = p_1 ... p_T and L_q = p_1 ... p_q, stage q computes

       A_q[k, j + L_{q-1} t] = sum_{s < p} w_p^(s t) (w_{L_q}^(s j) A_{q-1}[k + r s, j])

   (r = L / L_q, k < r, j < L_{q-1}; A_0 is the input, A_T the transform). Radices 2, 3, 4, 5
   have their own butterflies, the others a generic O(p^2) one. Nothing depends on how the items
   are split between threads. The body is _fft_columns_impl.h, included once per instruction
   set (each a copy of every function for both precisions, see the end of this file).

   The real transforms along the contiguous last axis (fcc_rows_r2c / fcc_rows_c2r) pair two
   real lines as the real and imaginary parts of one complex FFT, 2 VL lines per vector, moved
   in and out of the lanes by in-register transposes (fcc_transpose_*). Their half spectra are
   blocked: frequency k of a line at block k / FCC_FB, offset k % FCC_FB, blocks `bstride`
   scalars apart, so that a block of columns of a (L, blocks * FCC_FB) plane is L * FCC_FB
   contiguous values (the column FFT's and the channel product's unit of work). */
#ifndef FASTCONV_FFT_COLUMNS_H
#define FASTCONV_FFT_COLUMNS_H
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include "_cpu_level.h"

#define FCC_INLINE static inline __attribute__((always_inline))
#define FCC_MAXP 16        /* the largest radix (the caller checks) */
#define FCC_FB 8           /* frequencies per block of the blocked spectra (see below) */
/* The vector helpers are always inlined: no vector crosses a call boundary. */
#pragma GCC diagnostic ignored "-Wpsabi"

typedef float fcc_vf __attribute__((vector_size(64)));
typedef float fcc_vf_u __attribute__((vector_size(64), aligned(4)));
typedef int fcc_if __attribute__((vector_size(64)));
typedef double fcc_vd __attribute__((vector_size(64)));
typedef double fcc_vd_u __attribute__((vector_size(64), aligned(8)));
typedef long long fcc_id __attribute__((vector_size(64)));

/* In-register transposes of a square of units of u lanes (u = 1: scalars, u = 2: complex) in
   n = lanes / u vectors: stages that exchange the off-diagonal blocks of d lanes, d = lanes / 2
   down to u. Row r of the result holds unit r of every input vector. */
#define FCC_STAGE(V, a, b, LO, HI) do { V lo_ = __builtin_shuffle(a, b, LO);                  \
                                        b = __builtin_shuffle(a, b, HI); a = lo_; } while (0)
#define FCC_PASS(V, v, n, d, u, LO, HI)                                                         \
    if ((d) >= (u))                                                                         \
        for (int r_ = 0; r_ < (n); r_++)                                                    \
            if (!(r_ & ((d) / (u)))) FCC_STAGE(V, v[r_], v[r_ + (d) / (u)], LO, HI)

FCC_INLINE void fcc_transpose_f32(fcc_vf* v, const int u)
{
    const int n = 16 / u;
    FCC_PASS(fcc_vf, v, n, 8, u,
             ((fcc_if){0, 1, 2, 3, 4, 5, 6, 7, 16, 17, 18, 19, 20, 21, 22, 23}),
             ((fcc_if){8, 9, 10, 11, 12, 13, 14, 15, 24, 25, 26, 27, 28, 29, 30, 31}));
    FCC_PASS(fcc_vf, v, n, 4, u,
             ((fcc_if){0, 1, 2, 3, 16, 17, 18, 19, 8, 9, 10, 11, 24, 25, 26, 27}),
             ((fcc_if){4, 5, 6, 7, 20, 21, 22, 23, 12, 13, 14, 15, 28, 29, 30, 31}));
    FCC_PASS(fcc_vf, v, n, 2, u,
             ((fcc_if){0, 1, 16, 17, 4, 5, 20, 21, 8, 9, 24, 25, 12, 13, 28, 29}),
             ((fcc_if){2, 3, 18, 19, 6, 7, 22, 23, 10, 11, 26, 27, 14, 15, 30, 31}));
    FCC_PASS(fcc_vf, v, n, 1, u,
             ((fcc_if){0, 16, 2, 18, 4, 20, 6, 22, 8, 24, 10, 26, 12, 28, 14, 30}),
             ((fcc_if){1, 17, 3, 19, 5, 21, 7, 23, 9, 25, 11, 27, 13, 29, 15, 31}));
}

FCC_INLINE void fcc_transpose_f64(fcc_vd* v, const int u)
{
    const int n = 8 / u;
    FCC_PASS(fcc_vd, v, n, 4, u, ((fcc_id){0, 1, 2, 3, 8, 9, 10, 11}),
             ((fcc_id){4, 5, 6, 7, 12, 13, 14, 15}));
    FCC_PASS(fcc_vd, v, n, 2, u, ((fcc_id){0, 1, 8, 9, 4, 5, 12, 13}),
             ((fcc_id){2, 3, 10, 11, 6, 7, 14, 15}));
    FCC_PASS(fcc_vd, v, n, 1, u, ((fcc_id){0, 8, 2, 10, 4, 12, 6, 14}),
             ((fcc_id){1, 9, 3, 11, 5, 13, 7, 15}));
}

/* Every function of _fft_columns_impl.h compiled once per instruction set (_cpu_level.h):
   x86-64-v4 (AVX-512), x86-64-v3 (AVX2 + FMA) and the build's own target, named with the
   suffixes _v4, _v3 and _base (fcc_columns_f32_v4, ...). The vectors are 64 bytes in every
   copy (two AVX2 or four SSE registers below AVX-512), so the order of every sum is the same
   in each; only the FMA contraction the compiler chooses for a target can differ. */
#if FASTCONV_DISPATCH
#define FCC_LV v4
#define FCC_ATTR FASTCONV_TARGET_V4
#include "_fft_columns_impl.h"
#undef FCC_LV
#undef FCC_ATTR
#define FCC_LV v3
#define FCC_ATTR FASTCONV_TARGET_V3
#include "_fft_columns_impl.h"
#undef FCC_LV
#undef FCC_ATTR
#endif
#define FCC_LV base
#define FCC_ATTR
#include "_fft_columns_impl.h"
#undef FCC_LV
#undef FCC_ATTR

#ifndef FF_LEVEL_DEFINED       /* shared with _fft_product.h */
#define FF_LEVEL_DEFINED
/* The FFT's kernel set; FASTCONV_FFT_LEVEL=0 or 1 asks for a lower one. */
FASTCONV_LEVEL_FUNCTION(ff_level, "FASTCONV_FFT_LEVEL")
#endif

/* The entry points: the copy of this process's kernel set. */
#define FCC_ENTRY(T, P)                                                                    \
static int fcc_columns_##P(T* data, ptrdiff_t L, ptrdiff_t ncols, int nstages,             \
                           const int* radix, const T* tw, const T* roots, T scale,         \
                           ptrdiff_t first, ptrdiff_t last)                                \
{                                                                                          \
    return FASTCONV_PICK(ff_level(), fcc_columns_##P, (data, L, ncols, nstages, radix, tw, \
                                                       roots, scale, first, last));        \
}                                                                                          \
static int fcc_columns_placed_##P(const T* src, T* dst, ptrdiff_t L, ptrdiff_t ncols,      \
                                  ptrdiff_t nsrc, const ptrdiff_t* pos, int nstages,       \
                                  const int* radix, const T* tw, const T* roots, T scale,  \
                                  ptrdiff_t first, ptrdiff_t last)                         \
{                                                                                          \
    return FASTCONV_PICK(ff_level(), fcc_columns_placed_##P,                               \
                         (src, dst, L, ncols, nsrc, pos, nstages, radix, tw, roots, scale, \
                          first, last));                                                   \
}                                                                                          \
static int fcc_rows_r2c_##P(const T* src, const ptrdiff_t* src_off, ptrdiff_t src_step,    \
                            ptrdiff_t count, ptrdiff_t start, ptrdiff_t step, T* dst,      \
                            const ptrdiff_t* dst_off, ptrdiff_t bstride, ptrdiff_t nlines, \
                            ptrdiff_t L, int nstages, const int* radix, const T* tw,       \
                            const T* roots, ptrdiff_t first, ptrdiff_t last)               \
{                                                                                          \
    return FASTCONV_PICK(ff_level(), fcc_rows_r2c_##P,                                     \
                         (src, src_off, src_step, count, start, step, dst, dst_off, bstride, \
                          nlines, L, nstages, radix, tw, roots, first, last));             \
}                                                                                          \
static int fcc_rows_c2r_##P(const T* src, const ptrdiff_t* src_off, ptrdiff_t bstride,     \
                            T* dst, const ptrdiff_t* dst_off, ptrdiff_t dst_step,          \
                            ptrdiff_t count, ptrdiff_t start, ptrdiff_t step,              \
                            ptrdiff_t nlines, ptrdiff_t L, int nstages, const int* radix,  \
                            const T* tw, const T* roots, T scale, ptrdiff_t first,         \
                            ptrdiff_t last)                                                \
{                                                                                          \
    return FASTCONV_PICK(ff_level(), fcc_rows_c2r_##P,                                     \
                         (src, src_off, bstride, dst, dst_off, dst_step, count, start, step, \
                          nlines, L, nstages, radix, tw, roots, scale, first, last));      \
}
FCC_ENTRY(float, f32)
FCC_ENTRY(double, f64)

#endif
