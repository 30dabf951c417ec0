/* Column FFTs of the FFT algorithm (src/_fft.pyx): complex transforms along a strided axis.

   The spectra are (batch, L, ncols) complex, interleaved. A work item is one batch entry and a
   block of 64 bytes of adjacent columns (8 complex in float, 4 in double), run VL columns at a
   time, VL complex values filling one vector of the kernel set (_fft_vectors.h): every element
   of the transform is one vector and each column is one lane pair, so the transform runs on VL
   columns at once, with scalar twiddles broadcast. The block is gathered into a scratch
   buffer, transformed by a mixed-radix Stockham (self-sorting) FFT and scattered back, scaled.
   With L = p_1 ... p_T and L_q = p_1 ... p_q, stage q computes

       A_q[k, j + L_{q-1} t] = sum_{s < p} w_p^(s t) (w_{L_q}^(s j) A_{q-1}[k + r s, j])

   (r = L / L_q, k < r, j < L_{q-1}; A_0 is the input, A_T the transform). Radices 2, 3, 4, 5
   have their own butterflies, the others a generic O(p^2) one. Nothing depends on how the items
   are split between threads. The body is _fft_columns_impl.h, included once per instruction
   set (each a copy of every function for both precisions, see the end of this file).

   The real transforms along the contiguous last axis (fcc_rows_r2c / fcc_rows_c2r) pair two
   real lines as the real and imaginary parts of one complex FFT, 2 VL lines per vector, moved
   in and out of the lanes by in-register transposes; an item is 64 bytes' worth of lines (16
   in float, 8 in double). Their half spectra are blocked: frequency k of a line at block
   k / FCC_FB, offset k % FCC_FB, blocks `bstride` scalars apart, so that a block of columns of
   a (L, blocks * FCC_FB) plane is L * FCC_FB contiguous values (the column FFT's and the
   channel product's unit of work). */
#ifndef FASTCONV_FFT_COLUMNS_H
#define FASTCONV_FFT_COLUMNS_H
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include "_fft_vectors.h"

#define FCC_INLINE static inline __attribute__((always_inline))
#define FCC_MAXP 16        /* the largest radix (the caller checks) */
#define FCC_FB 8           /* frequencies per block of the blocked spectra (see below) */

/* Every function of _fft_columns_impl.h compiled once per instruction set (_cpu_level.h):
   x86-64-v4 (AVX-512), x86-64-v3 (AVX2 + FMA) and the build's own target, named with the
   suffixes _v4, _v3 and _base (fcc_columns_f32_v4, ...), each with vectors of its own width:
   FCC_VB bytes, FCC_NF float or FCC_ND double lanes (literals). */
#if FASTCONV_DISPATCH
#define FCC_LV v4
#define FCC_ATTR FASTCONV_TARGET_V4
#define FCC_VB 64
#define FCC_NF 16
#define FCC_ND 8
#include "_fft_columns_impl.h"
#undef FCC_LV
#undef FCC_ATTR
#undef FCC_VB
#undef FCC_NF
#undef FCC_ND
#define FCC_LV v3
#define FCC_ATTR FASTCONV_TARGET_V3
#define FCC_VB 32
#define FCC_NF 8
#define FCC_ND 4
#include "_fft_columns_impl.h"
#undef FCC_LV
#undef FCC_ATTR
#undef FCC_VB
#undef FCC_NF
#undef FCC_ND
#endif
#define FCC_LV base
#define FCC_ATTR
#define FCC_VB FASTCONV_BASE_BYTES
#define FCC_NF FF_BASE_LANES_F
#define FCC_ND FF_BASE_LANES_D
#include "_fft_columns_impl.h"
#undef FCC_LV
#undef FCC_ATTR
#undef FCC_VB
#undef FCC_NF
#undef FCC_ND

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
