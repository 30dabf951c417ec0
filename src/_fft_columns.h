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
   are split between threads. The body is _fft_columns_impl.h, included once per precision.

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

#if defined(__GNUC__) && !defined(__clang__) && defined(__x86_64__) && defined(__linux__)
#define FCC_CLONES __attribute__((target_clones("arch=x86-64-v4", "arch=x86-64-v3", "default")))
#else
#define FCC_CLONES
#endif
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

#define FCC_T float
#define FCC_V fcc_vf
#define FCC_VU fcc_vf_u
#define FCC_SUF f32
#define FCC_SWAP(v) __builtin_shuffle((v), \
    ((fcc_if){1, 0, 3, 2, 5, 4, 7, 6, 9, 8, 11, 10, 13, 12, 15, 14}))
#define FCC_SIGN ((fcc_vf){-1, 1, -1, 1, -1, 1, -1, 1, -1, 1, -1, 1, -1, 1, -1, 1})
#include "_fft_columns_impl.h"
#undef FCC_T
#undef FCC_V
#undef FCC_VU
#undef FCC_SUF
#undef FCC_SWAP
#undef FCC_SIGN

#define FCC_T double
#define FCC_V fcc_vd
#define FCC_VU fcc_vd_u
#define FCC_SUF f64
#define FCC_SWAP(v) __builtin_shuffle((v), ((fcc_id){1, 0, 3, 2, 5, 4, 7, 6}))
#define FCC_SIGN ((fcc_vd){-1, 1, -1, 1, -1, 1, -1, 1})
#include "_fft_columns_impl.h"
#undef FCC_T
#undef FCC_V
#undef FCC_VU
#undef FCC_SUF
#undef FCC_SWAP
#undef FCC_SIGN

#endif
