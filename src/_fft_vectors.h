/* What the FFT's kernel sets (_fft_columns.h, _fft_product.h, _fft_fused.h) share: which set
   runs, the vector width of each and the constant shuffles written for any lane count.

   Each set uses vectors of its own instruction set's width, as direct and Winograd do:
   x86-64-v4 64 bytes (AVX-512), x86-64-v3 32 (AVX2), the build's own target its native width
   (FASTCONV_BASE_BYTES, 16 for plain x86-64). 64-byte vectors below AVX-512 lived in memory and
   GCC lowered their shuffles lane by lane (AVX2 ran 5-7x slower than AVX-512). Every lane is
   its own column, line or frequency and no sum runs across lanes, so the width changes the
   order of no sum: the sets agree up to the FMA contraction the compiler picks for each.
   The units of work the caller (src/_fft.pyx) counts stay 64 bytes wide at every level; a
   narrower set runs one in 64 / width pieces.

   The shuffles are __builtin_shufflevector (GCC 12 and clang; __builtin_shuffle with the same
   indices as a mask before GCC 12) with index lists built by FF_SEQ, so that they are
   constant and take the lane count as a literal. */
#ifndef FASTCONV_FFT_VECTORS_H
#define FASTCONV_FFT_VECTORS_H
#include <stddef.h>
#include <stdlib.h>

#include "_cpu_level.h"

/* Vectors never cross a non-inlined call, so the ABI note about wide vector arguments in the
   lower sets does not apply. */
#pragma GCC diagnostic ignored "-Wpsabi"

/* The FFT's kernel set; FASTCONV_FFT_LEVEL=0 or 1 asks for a lower one. */
FASTCONV_LEVEL_FUNCTION(ff_level, "FASTCONV_FFT_LEVEL")

/* Lanes of the build's own vectors, as literals: they are pasted into macro names. */
#if FASTCONV_BASE_BYTES == 64
#  define FF_BASE_LANES_F 16
#  define FF_BASE_LANES_D 8
#elif FASTCONV_BASE_BYTES == 32
#  define FF_BASE_LANES_F 8
#  define FF_BASE_LANES_D 4
#else
#  define FF_BASE_LANES_F 4
#  define FF_BASE_LANES_D 2
#endif

/* F(b, 0), ..., F(b, N - 1) for a literal N (or a macro expanding to one). */
#define FF_SEQ(N, F, b) FF_SEQ_(N, F, b)
#define FF_SEQ_(N, F, b) FF_SEQ##N(F, b)
#define FF_SEQ1(F, b) F(b, 0)
#define FF_SEQ2(F, b) F(b, 0), F(b, 1)
#define FF_SEQ4(F, b) FF_SEQ2(F, b), F(b, 2), F(b, 3)
#define FF_SEQ8(F, b) FF_SEQ4(F, b), F(b, 4), F(b, 5), F(b, 6), F(b, 7)
#define FF_SEQ16(F, b) FF_SEQ8(F, b), F(b, 8), F(b, 9), F(b, 10), F(b, 11), F(b, 12), F(b, 13), \
                       F(b, 14), F(b, 15)

/* The lanes of a (0..N-1) and b (N..2N-1) the indices (constants) pick; IT is the integer
   type of the lanes' size (int for float, long long for double), for the mask of GCC < 12. */
#if defined(__clang__) || __GNUC__ >= 12
#  define FF_SHUFFLE(IT, a, b, ...) __builtin_shufflevector((a), (b), __VA_ARGS__)
#else
#  define FF_SHUFFLE(IT, a, b, ...)                                                        \
       __builtin_shuffle((a), (b), (IT __attribute__((vector_size(sizeof(a))))){__VA_ARGS__})
#endif

#define FF_SWAP_AT(b, j) ((j) ^ 1)
#define FF_EVEN_ODD_AT(n, j) ((j) & 1 ? (n) + (j) : (j))
#define FF_SIGN_AT(b, j) ((j) & 1 ? 1 : -1)
/* The real and imaginary lanes of v (N lanes) exchanged: an in-lane permute at every width. */
#define FF_SWAP(IT, N, v) FF_SHUFFLE(IT, (v), (v), FF_SEQ(N, FF_SWAP_AT, 0))
/* The even lanes of a and the odd ones of b: a blend. */
#define FF_EVEN_ODD(IT, N, a, b) FF_SHUFFLE(IT, (a), (b), FF_SEQ(N, FF_EVEN_ODD_AT, N))
/* -1 on the real lanes, +1 on the imaginary ones, as an initialiser list. */
#define FF_SIGN(N) FF_SEQ(N, FF_SIGN_AT, 0)

/* Scratch of `bytes`, 64-byte aligned (aligned_alloc wants a multiple of the alignment). */
static inline void* ff_alloc(size_t bytes)
{
    return aligned_alloc(64, (bytes + 63) & ~(size_t)63);
}

#endif
