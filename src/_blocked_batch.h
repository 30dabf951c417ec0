/* The blocked direct algorithm with the minibatch as the vector lanes (src/_blocked_batch.pxi):
   lane l of every vector is sample b * N + l of a block of N samples, so a vector is full
   whatever the channels and the map's width (LeNet's 16 -> 32 channels on 8x8 maps: a row is
   half a vector and bk_row's channel blocks are full, but its tiles hold 16 of 28
   accumulators). Inputs and outputs are stored (channel, position, lane) per block.

     bkb_fwd:  y[k * yk + p * N + l] = sum_c sum_r sum_t w[k * wk + (c * lines + r) * k2 + t]
                                                 * x[c * cs + loff[r] + t * ts + p * ps + l]
     bkb_gk:   out[k * ok + t * N + l] (+)= sum_pos g[k * gk + pos * N + l]
                                                 * x[xo(pos) + t * ts + l]

   bkb_fwd: a tile of KT output channels x PT positions of a row, weights broadcast where they
   lie (the kernel as given: (output channel, input channel, tap)), the PT input vectors of a tap
   loaded once for the KT channels. bkb_gk: KT output channels x TT taps of one kernel line (taps
   ts apart), over one block's output positions pos = (z, y, j), its first input xo(pos)
   = z * zs + y * ys + j * js; per position KT + TT vectors feed KT x TT multiply-adds, and each
   lane holds its own sample's sum (the caller adds the lanes). With `more` the sums start from
   out's values (the same bits as one pass: a later block carried exactly).
   Every sum runs over c then t (forward), or over the positions, the caller running the
   blocks in order (kernel gradient): fixed by the problem, never by threads.

   Tiles: KT x PT (or KT x TT) accumulators plus the PT (TT) input vectors and one more within
   the level's registers (32 at AVX-512, 16 below); KT at most 4, PT 6, TT 8. */
#ifndef FASTCONV_BLOCKED_BATCH_H
#define FASTCONV_BLOCKED_BATCH_H

#define BKB_REGS(BYTES) ((BYTES) == 64 ? 32 : 16)
#define BKB_KT 4
#define BKB_PT 6
#define BKB_TT 8

#define BKB_TYPE(SUF, ATTR, BYTES, T, P)                                                         \
ATTR static inline __attribute__((always_inline))                                               \
void bkb_fwd_tile_##P##_##SUF(const T* x, ptrdiff_t cs, const ptrdiff_t* loff, ptrdiff_t lines, \
                              ptrdiff_t k2, ptrdiff_t ts, ptrdiff_t C, ptrdiff_t ps, const T* w, \
                              ptrdiff_t wk, T* y, ptrdiff_t yk, const int KT, const int PT,     \
                              const int UNIT) {                                                  \
    typedef T V __attribute__((vector_size(BYTES)));                                             \
    enum { N = BYTES / sizeof(T) };                                                              \
    if (KT * PT + PT + 1 > BKB_REGS(BYTES))                                                      \
        return;                     /* never called: the tiles are cut to fit */                 \
    V acc[BKB_KT][BKB_PT];                                                                       \
    _Pragma("GCC unroll 4")                                                                      \
    for (int k = 0; k < KT; k++)                                                                 \
        _Pragma("GCC unroll 6")                                                                  \
        for (int p = 0; p < PT; p++)                                                             \
            acc[k][p] = (V){0};                                                                  \
    if (UNIT) {                 /* stride and dilation 1 along the row: constant offsets */    \
        ps = N;                                                                                  \
        ts = N;                                                                                  \
    }                                                                                            \
    for (ptrdiff_t c = 0; c < C; c++)                                                            \
        for (ptrdiff_t r = 0; r < lines; r++) {                                                  \
            const T* xl = x + c * cs + loff[r];                                                  \
            const T* wl = w + (c * lines + r) * k2;                                              \
            _Pragma("GCC unroll 1")     /* unrolled, it kept copies of the input vectors */ \
            for (ptrdiff_t t = 0; t < k2; t++, xl += ts) {                                       \
                V xv[BKB_PT];                                                                    \
                _Pragma("GCC unroll 6")                                                          \
                for (int p = 0; p < PT; p++)                                                     \
                    memcpy(&xv[p], xl + p * ps, sizeof(V));                                      \
                _Pragma("GCC unroll 4")                                                          \
                for (int k = 0; k < KT; k++) {                                                   \
                    const T wv = wl[k * wk + t];                                                 \
                    _Pragma("GCC unroll 6")                                                      \
                    for (int p = 0; p < PT; p++)                                                 \
                        acc[k][p] += xv[p] * wv;                                                 \
                }                                                                                \
            }                                                                                    \
        }                                                                                        \
    _Pragma("GCC unroll 4")                                                                      \
    for (int k = 0; k < KT; k++)                                                                 \
        _Pragma("GCC unroll 6")                                                                  \
        for (int p = 0; p < PT; p++)                                                             \
            memcpy(y + k * yk + p * N, &acc[k][p], sizeof(V));                                   \
}                                                                                                \
                                                                                                 \
ATTR static inline __attribute__((always_inline))                                               \
void bkb_gk_tile_##P##_##SUF(const T* x, const T* g, ptrdiff_t gk, ptrdiff_t o0, ptrdiff_t o1,  \
                             ptrdiff_t o2,                                                       \
                             ptrdiff_t zs, ptrdiff_t ys, ptrdiff_t js, ptrdiff_t ts, T* out,    \
                             ptrdiff_t ok, int more, const int KT, const int TT,                \
                             const int UNIT) {                                                   \
    typedef T V __attribute__((vector_size(BYTES)));                                             \
    enum { N = BYTES / sizeof(T) };                                                              \
    if (KT * TT + TT + 1 > BKB_REGS(BYTES))                                                      \
        return;                     /* never called: the tiles are cut to fit */                 \
    if (UNIT) {                 /* stride and dilation 1 along the row: constant offsets */    \
        js = N;                                                                                  \
        ts = N;                                                                                  \
    }                                                                                            \
    V acc[BKB_KT][BKB_TT];                                                                       \
    _Pragma("GCC unroll 4")                                                                      \
    for (int k = 0; k < KT; k++)                                                                 \
        _Pragma("GCC unroll 8")                                                                  \
        for (int t = 0; t < TT; t++) {                                                           \
            if (more)                                                                            \
                memcpy(&acc[k][t], out + k * ok + t * N, sizeof(V));                             \
            else                                                                                 \
                acc[k][t] = (V){0};                                                              \
        }                                                                                        \
    for (ptrdiff_t z = 0; z < o0; z++)                                                           \
        for (ptrdiff_t y = 0; y < o1; y++) {                                                     \
            const T* xr = x + z * zs + y * ys;                                                   \
            const T* gr = g + (z * o1 + y) * o2 * N;                                             \
            for (ptrdiff_t j = 0; j < o2; j++) {                                                 \
                V xv[BKB_TT];                                                                    \
                _Pragma("GCC unroll 8")                                                          \
                for (int t = 0; t < TT; t++)                                                     \
                    memcpy(&xv[t], xr + j * js + t * ts, sizeof(V));                             \
                _Pragma("GCC unroll 4")                                                          \
                for (int k = 0; k < KT; k++) {                                                   \
                    V gv;                                                                        \
                    memcpy(&gv, gr + k * gk + j * N, sizeof(V));                                 \
                    _Pragma("GCC unroll 8")                                                      \
                    for (int t = 0; t < TT; t++)                                                 \
                        acc[k][t] += gv * xv[t];                                                 \
                }                                                                                \
            }                                                                                    \
        }                                                                                        \
    _Pragma("GCC unroll 4")                                                                      \
    for (int k = 0; k < KT; k++)                                                                 \
        _Pragma("GCC unroll 8")                                                                  \
        for (int t = 0; t < TT; t++)                                                             \
            memcpy(out + k * ok + t * N, &acc[k][t], sizeof(V));                                 \
}                                                                                                \
                                                                                                 \
/* One tile (KT 1-4 x PT 1-6 within the registers; anything else does nothing). */              \
ATTR static void bkb_fwd_##P##_##SUF(const T* x, ptrdiff_t cs, const ptrdiff_t* loff,           \
                                     ptrdiff_t lines, ptrdiff_t k2, ptrdiff_t ts, ptrdiff_t C,  \
                                     ptrdiff_t ps, const T* w, ptrdiff_t wk, T* y, ptrdiff_t yk, \
                                     int KT, int PT) {                                           \
    enum { N = BYTES / sizeof(T) };                                                              \
    if (ps == N && ts == N)                                                                      \
        switch (KT * 16 + PT) {                                                                  \
        BKB_CASES(BKB_FWD_UNIT, P, SUF, 6)                                                       \
        default: break;                                                                          \
        }                                                                                        \
    else                                                                                         \
        switch (KT * 16 + PT) {                                                                  \
        BKB_CASES(BKB_FWD_CASE, P, SUF, 6)                                                       \
        default: break;                                                                          \
        }                                                                                        \
}                                                                                                \
                                                                                                 \
/* One tile (KT 1-4 x TT 1-8 within the registers; anything else does nothing). */              \
ATTR static void bkb_gk_##P##_##SUF(const T* x, const T* g, ptrdiff_t gk, ptrdiff_t o0,         \
                                    ptrdiff_t o1,                                               \
                                    ptrdiff_t o2, ptrdiff_t zs, ptrdiff_t ys, ptrdiff_t js,     \
                                    ptrdiff_t ts, T* out, ptrdiff_t ok, int more, int KT,       \
                                    int TT) {                                                    \
    enum { N = BYTES / sizeof(T) };                                                              \
    if (js == N && ts == N)                                                                      \
        switch (KT * 16 + TT) {                                                                  \
        BKB_CASES(BKB_GK_UNIT, P, SUF, 8)                                                        \
        default: break;                                                                          \
        }                                                                                        \
    else                                                                                         \
        switch (KT * 16 + TT) {                                                                  \
        BKB_CASES(BKB_GK_CASE, P, SUF, 8)                                                        \
        default: break;                                                                          \
        }                                                                                        \
}

#define BKB_FWD_CASE(P, SUF, KT, PT)                                                             \
    case KT * 16 + PT:                                                                           \
        bkb_fwd_tile_##P##_##SUF(x, cs, loff, lines, k2, ts, C, ps, w, wk, y, yk, KT, PT, 0);    \
        break;
#define BKB_FWD_UNIT(P, SUF, KT, PT)                                                             \
    case KT * 16 + PT:                                                                           \
        bkb_fwd_tile_##P##_##SUF(x, cs, loff, lines, k2, ts, C, ps, w, wk, y, yk, KT, PT, 1);    \
        break;
#define BKB_GK_CASE(P, SUF, KT, TT)                                                              \
    case KT * 16 + TT:                                                                           \
        bkb_gk_tile_##P##_##SUF(x, g, gk, o0, o1, o2, zs, ys, js, ts, out, ok,                  \
                                more, KT, TT, 0);                                                \
        break;
#define BKB_GK_UNIT(P, SUF, KT, TT)                                                              \
    case KT * 16 + TT:                                                                           \
        bkb_gk_tile_##P##_##SUF(x, g, gk, o0, o1, o2, zs, ys, js, ts, out, ok,                  \
                                more, KT, TT, 1);                                                \
        break;
/* the cases KT 1-4 x 1-6 (MOST 6) or 1-8 (MOST 8) */
#define BKB_ROW6(CASE, P, SUF, KT) CASE(P, SUF, KT, 1) CASE(P, SUF, KT, 2) CASE(P, SUF, KT, 3)   \
    CASE(P, SUF, KT, 4) CASE(P, SUF, KT, 5) CASE(P, SUF, KT, 6)
#define BKB_ROW8(CASE, P, SUF, KT) BKB_ROW6(CASE, P, SUF, KT) CASE(P, SUF, KT, 7)                \
    CASE(P, SUF, KT, 8)
#define BKB_CASES(CASE, P, SUF, MOST) BKB_ROW##MOST(CASE, P, SUF, 1)                              \
    BKB_ROW##MOST(CASE, P, SUF, 2) BKB_ROW##MOST(CASE, P, SUF, 3) BKB_ROW##MOST(CASE, P, SUF, 4)

#endif
