/* The kernel gradient of the blocked direct algorithm by positions (src/_blocked_positions.pxi):
   vectors along an output row, so that the output gradient is read as it lies (no transpose)
   and each loaded row serves every tap of the item's channels while it is in L1.

     bk_gkp:  acc[(t * 4 + m) * N + l] +=
                  sum_j sum_r g[r * grs + m * gc + j] * x[r * xrs + toff[t] + j]

   for `rows` output rows r, evenly spaced in gy (grs) and in x (xrs: the rows of one plane;
   channel m of the block at m * gc in gy, every tap t a constant offset toff[t] in x, read at
   stride 1: the caller stores the input by phase of the width stride), and the positions
   j < ow, lane l holding the positions j = l mod N of the full vectors; a row's last, partial
   vector overlaps the one before and keeps only its new lanes (gy and x both zeroed in the old
   lanes, so a NaN or Inf already counted is not multiplied again). The loop runs the rows
   inside each vector of positions: a step costs its loads and multiply-adds, nothing more (a
   row at a time, ResNet's 32-wide rows paid a pointer setup every two vectors: 35% of the
   peak). Each lane's sum runs over j's vectors, then r, in order: fixed by the problem (the
   caller's runs of rows are), never by threads.

   Register tiles: M (1-4) channels x NT taps (up to 6 at AVX-512, whose 32 registers hold the
   24 accumulators, 4 gy vectors and an input vector; 2 below): per vector step M + NT loads
   feed M * NT multiply-adds. Rows must be at least a vector wide (ow >= N). */
#ifndef FASTCONV_BLOCKED_GKP_H
#define FASTCONV_BLOCKED_GKP_H

#define BK_GKP_NT(BYTES) ((BYTES) == 64 ? 6 : 2)   /* taps a tile */
#define BK_GKP_NTMAX 6

#define BK_GKP_TYPE(SUF, ATTR, BYTES, T, P, IT)                                                  \
ATTR static inline __attribute__((always_inline))                                               \
void bk_gkp_tile_##P##_##SUF(const T* x, ptrdiff_t xrs, const T* g, ptrdiff_t grs,              \
                             ptrdiff_t gc, ptrdiff_t rows, ptrdiff_t ow, const ptrdiff_t* toff, \
                             T* acc, const int M, const int NT) {                               \
    typedef T V __attribute__((vector_size(BYTES)));                                             \
    typedef IT VI __attribute__((vector_size(BYTES)));                                           \
    enum { N = BYTES / sizeof(T) };                                                              \
    V a[4][BK_GKP_NTMAX];                                                                        \
    const T* gp[4];                                                                              \
    const T* xp[BK_GKP_NTMAX];                                                                   \
    VI lane;                                                                                     \
    for (int l = 0; l < N; l++) lane[l] = l;                                                     \
    /* the last vector starts at ow - N; its lanes below N - ow % N were counted already */      \
    const VI keep = lane >= (IT)(N - ow % N);                                                    \
    _Pragma("GCC unroll 4")                                                                      \
    for (int m = 0; m < M; m++) gp[m] = g + m * gc;                                              \
    _Pragma("GCC unroll 6")                                                                      \
    for (int t = 0; t < NT; t++) {                                                               \
        xp[t] = x + toff[t];                                                                     \
        _Pragma("GCC unroll 4")                                                                  \
        for (int m = 0; m < M; m++) memcpy(&a[m][t], acc + (t * 4 + m) * N, sizeof(V));         \
    }                                                                                            \
    for (ptrdiff_t o = 0; o < ow; o += N) {                                                      \
        if (o + N <= ow) {                                                                       \
            for (ptrdiff_t r = 0; r < rows; r++) {                                               \
                V gv[4];                                                                         \
                _Pragma("GCC unroll 4")                                                          \
                for (int m = 0; m < M; m++) memcpy(&gv[m], gp[m] + r * grs + o, sizeof(V));     \
                _Pragma("GCC unroll 6")                                                          \
                for (int t = 0; t < NT; t++) {                                                   \
                    V xv;                                                                        \
                    memcpy(&xv, xp[t] + r * xrs + o, sizeof(V));                                 \
                    _Pragma("GCC unroll 4")                                                      \
                    for (int m = 0; m < M; m++) a[m][t] += gv[m] * xv;                           \
                }                                                                                \
            }                                                                                    \
        } else {                                  /* the last, partial vector, at ow - N */      \
            const ptrdiff_t at = ow - N;                                                         \
            for (ptrdiff_t r = 0; r < rows; r++) {                                               \
                V gv[4];                                                                         \
                _Pragma("GCC unroll 4")                                                          \
                for (int m = 0; m < M; m++) {                                                    \
                    memcpy(&gv[m], gp[m] + r * grs + at, sizeof(V));                             \
                    gv[m] = (V)((VI)gv[m] & keep);                                               \
                }                                                                                \
                _Pragma("GCC unroll 6")                                                          \
                for (int t = 0; t < NT; t++) {                                                   \
                    V xv;                                                                        \
                    memcpy(&xv, xp[t] + r * xrs + at, sizeof(V));                                \
                    xv = (V)((VI)xv & keep);                                                     \
                    _Pragma("GCC unroll 4")                                                      \
                    for (int m = 0; m < M; m++) a[m][t] += gv[m] * xv;                           \
                }                                                                                \
            }                                                                                    \
        }                                                                                        \
    }                                                                                            \
    _Pragma("GCC unroll 6")                                                                      \
    for (int t = 0; t < NT; t++)                                                                 \
        _Pragma("GCC unroll 4")                                                                  \
        for (int m = 0; m < M; m++) memcpy(acc + (t * 4 + m) * N, &a[m][t], sizeof(V));         \
}                                                                                                \
                                                                                                 \
/* Every tap of toff[0 .. taps) in tiles of NT, over the same rows (each row's gy vectors are   \
   read once a tile, from L1 after the first). */                                               \
ATTR static void bk_gkp_##P##_##SUF(const T* x, ptrdiff_t xrs, const T* g, ptrdiff_t grs,       \
                                    ptrdiff_t gc, int M, ptrdiff_t rows, ptrdiff_t ow,          \
                                    const ptrdiff_t* toff, ptrdiff_t taps, T* acc) {             \
    enum { N = BYTES / sizeof(T), NT = BK_GKP_NT(BYTES) };                                       \
    for (ptrdiff_t t0 = 0; t0 < taps; t0 += NT) {                                                \
        const int nt = taps - t0 < NT ? (int)(taps - t0) : NT;                                   \
        T* at = acc + t0 * 4 * N;                                                                \
        switch (M * 8 + nt) {                                                                    \
            BK_GKP_M(P, SUF, 1) BK_GKP_M(P, SUF, 2) BK_GKP_M(P, SUF, 3) BK_GKP_M(P, SUF, 4)      \
            default: break;                                                                      \
        }                                                                                        \
    }                                                                                            \
}

#define BK_GKP_CASE(P, SUF, M_, NT_)                                                             \
    case M_ * 8 + NT_:                                                                           \
        if (NT_ <= NT)                                                                           \
            bk_gkp_tile_##P##_##SUF(x, xrs, g, grs, gc, rows, ow, toff + t0, at, M_, NT_);     \
        break;
#define BK_GKP_M(P, SUF, M_)                                                                     \
    BK_GKP_CASE(P, SUF, M_, 1) BK_GKP_CASE(P, SUF, M_, 2) BK_GKP_CASE(P, SUF, M_, 3)             \
    BK_GKP_CASE(P, SUF, M_, 4) BK_GKP_CASE(P, SUF, M_, 5) BK_GKP_CASE(P, SUF, M_, 6)

#endif
