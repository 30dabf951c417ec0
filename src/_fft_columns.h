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

/* Inlined helpers carry their level's target too: clang refuses a wide vector argument of a
   function compiled without it, inlined or not. */
#define FCC_INLINE static inline __attribute__((always_inline)) FASTCONV_ATTR
#define FCC_MAXP 16        /* the largest radix (the caller checks) */
#define FCC_FB 8           /* frequencies per block of the blocked spectra (see below) */

/* Every function of _fft_columns_impl.h compiled once per instruction set (_cpu_level.h), named
   with the level's suffix (fcc_columns_f32_v4, ...), each with vectors of its own width.
   _fft_kernels.h holds the entry points. */
#define FASTCONV_LEVEL_BODY "_fft_columns_impl.h"
#include "_cpu_each_level.h"
#undef FASTCONV_LEVEL_BODY

#endif
