/* What every hand-vectorised kernel set (direct, Winograd, FFT) writes its vectors with, for
   GCC and clang alike: GCC vector types (`T __attribute__((vector_size(B)))`, with +, *, [] and
   casts between types of one size, which both compilers take) and these shuffles.

   FASTCONV_SHUFFLE takes constant lane indices: __builtin_shufflevector (GCC 12 and clang), or
   __builtin_shuffle with the same indices as a mask before GCC 12. FASTCONV_PERMUTE takes them
   in a vector computed at run time: __builtin_shuffle on GCC (one vpermt2ps on AVX-512); clang
   has no such builtin, so there the lanes are moved one by one. Index lists are built by
   FASTCONV_SEQ, so that they stay constant and take the lane count as a literal. */
#ifndef FASTCONV_VECTORS_H
#define FASTCONV_VECTORS_H

/* Vectors never cross a non-inlined call, so the ABI note about wide vector arguments in the
   lower levels does not apply. */
#pragma GCC diagnostic ignored "-Wpsabi"

/* F(b, 0), ..., F(b, N - 1) for a literal N (or a macro expanding to one). */
#define FASTCONV_SEQ(N, F, b) FASTCONV_SEQ_(N, F, b)
#define FASTCONV_SEQ_(N, F, b) FASTCONV_SEQ##N(F, b)
#define FASTCONV_SEQ1(F, b) F(b, 0)
#define FASTCONV_SEQ2(F, b) F(b, 0), F(b, 1)
#define FASTCONV_SEQ4(F, b) FASTCONV_SEQ2(F, b), F(b, 2), F(b, 3)
#define FASTCONV_SEQ8(F, b) FASTCONV_SEQ4(F, b), F(b, 4), F(b, 5), F(b, 6), F(b, 7)
#define FASTCONV_SEQ16(F, b) FASTCONV_SEQ8(F, b), F(b, 8), F(b, 9), F(b, 10), F(b, 11), F(b, 12), \
                             F(b, 13), F(b, 14), F(b, 15)

/* The lanes of a (0..N-1) and b (N..2N-1) the indices (constants) pick; IT is the integer
   type of the lanes' size (int for float, long long for double), for the mask of GCC < 12. */
#if defined(__clang__) || __GNUC__ >= 12
#  define FASTCONV_SHUFFLE(IT, a, b, ...) __builtin_shufflevector((a), (b), __VA_ARGS__)
#else
#  define FASTCONV_SHUFFLE(IT, a, b, ...)                                                    \
       __builtin_shuffle((a), (b), (IT __attribute__((vector_size(sizeof(a))))){__VA_ARGS__})
#endif

/* The lanes of a (0..L-1) and b (L..2L-1) that idx (a vector of L integers of the lanes' size,
   each in 0..2L-1) picks, as a value of a's type VT. */
#if defined(__clang__)
#  define FASTCONV_PERMUTE(VT, a, b, idx) ({                                                 \
       const VT a_ = (a), b_ = (b);                                                          \
       const __typeof__(idx) i_ = (idx);                                                     \
       enum { L_ = (int)(sizeof(VT) / sizeof(a_[0])) };                                      \
       VT r_;                                                                                \
       for (int j_ = 0; j_ < L_; j_++) r_[j_] = i_[j_] < L_ ? a_[i_[j_]] : b_[i_[j_] - L_];  \
       r_;                                                                                   \
   })
#else
#  define FASTCONV_PERMUTE(VT, a, b, idx) __builtin_shuffle((a), (b), (idx))
#endif

#endif
