/* What the FFT's kernels (_fft_columns.h, _fft_product.h, _fft_fused.h) share: the vector
   width of each level and the constant shuffles of complex lanes, written for any lane count.

   Each set uses vectors of its own instruction set's width, as direct and Winograd do:
   x86-64-v4 64 bytes (AVX-512), x86-64-v3 32 (AVX2), the build's own target its native width
   (FASTCONV_BASE_BYTES, 16 for plain x86-64). 64-byte vectors below AVX-512 lived in memory and
   GCC lowered their shuffles lane by lane (AVX2 ran 5-7x slower than AVX-512). Every lane is
   its own column, line or frequency and no sum runs across lanes, so the width changes the
   order of no sum: the sets agree up to the FMA contraction the compiler picks for each.
   The units of work the caller (src/_fft.pyx) counts stay 64 bytes wide at every level; a
   narrower set runs one in 64 / width pieces.

   The shuffles are FASTCONV_SHUFFLE's (_vectors.h), shared with direct and Winograd. */
#ifndef FASTCONV_FFT_VECTORS_H
#define FASTCONV_FFT_VECTORS_H
#include <stddef.h>
#include <stdlib.h>

#include "_cpu_level.h"
#include "_line_alloc.h"
#include "_vectors.h"

#define FF_SWAP_AT(b, j) ((j) ^ 1)
#define FF_EVEN_ODD_AT(n, j) ((j) & 1 ? (n) + (j) : (j))
#define FF_SIGN_AT(b, j) ((j) & 1 ? 1 : -1)
/* The real and imaginary lanes of v (N lanes) exchanged: an in-lane permute at every width. */
#define FF_SWAP(IT, N, v) FASTCONV_SHUFFLE(IT, (v), (v), FASTCONV_SEQ(N, FF_SWAP_AT, 0))
/* The even lanes of a and the odd ones of b: a blend. */
#define FF_EVEN_ODD(IT, N, a, b) FASTCONV_SHUFFLE(IT, (a), (b), FASTCONV_SEQ(N, FF_EVEN_ODD_AT, N))
/* -1 on the real lanes, +1 on the imaginary ones, as an initialiser list. */
#define FF_SIGN(N) FASTCONV_SEQ(N, FF_SIGN_AT, 0)

#endif
