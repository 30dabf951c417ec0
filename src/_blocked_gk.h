/* The kernel gradient of the blocked direct algorithm (src/_blocked.pyx): weights' gradients of
   a block of output channels, vectorised across the channels, each input value broadcast.

     bk_gk:  out[(r * CX + c) * V + l] = sum_s sum_o g[s * gn + o * V + l] * x[s * xn + xo(o) + roff[r] + c]

   for the RY rows r of taps (each a constant offset roff[r] in the padded input plane) and the CX
   columns c of each row (taps one input value apart), over the samples s and the output
   positions o = (z, y, j) of a plane, whose first input is xo(o) = z * zs + y * ys + j * js. g is
   the output gradient transposed so that the V = KB vectors of a position's channels lie
   together (zeros past the block's channels). RY x CX x KB accumulators stay in registers for the
   whole sum; each input value is broadcast once and multiplied with the KB gradient vectors of
   its position. A tap's sum runs over s, then o, in order: fixed by the problem and the
   instruction set, never by threads. With `more`, the sums start from out's values instead of 0:
   a later chunk of the positions (the sums carried exactly, the same bits as one pass).

   Register tiles: up to BK_GK_ACC(bytes) accumulators (28 of AVX-512's 32 registers, 12 of the
   16 below), at most 8 rows and 8 columns; the caller (fastconv/_algorithms/blocked.py) cuts the
   kernel into tiles that fit. Each (KB, RY, CX) is its own compiled loop: a column is a constant
   displacement from its row's pointer, and the accumulators never leave their registers. */
#ifndef FASTCONV_BLOCKED_GK_H
#define FASTCONV_BLOCKED_GK_H

#define BK_GK_ACC(BYTES) ((BYTES) == 64 ? 28 : 12)
#define BK_GK_MAX 8         /* rows and columns of a tile */

#define BK_GK_TYPE(SUF, ATTR, BYTES, T, P)                                                       \
ATTR static inline __attribute__((always_inline))                                               \
void bk_gk_tile_##P##_##SUF(const T* x, ptrdiff_t xn, const T* g, ptrdiff_t gn,                 \
                            ptrdiff_t samples, const ptrdiff_t* roff, ptrdiff_t o0,             \
                            ptrdiff_t o1, ptrdiff_t o2, ptrdiff_t zs, ptrdiff_t ys,             \
                            ptrdiff_t js, T* out, ptrdiff_t orow,                               \
                            const int KB, const int RY, const int CX, int more) {               \
    typedef bk_vec_##P##_##SUF V;                                                                \
    enum { N = BYTES / sizeof(T), ACC = BK_GK_ACC(BYTES) };                                      \
    if (RY * CX * KB > ACC)                                                                      \
        return;                     /* never called: the tiles are cut to fit */                 \
    const ptrdiff_t step = (ptrdiff_t)KB * N;                                                    \
    V acc[ACC];                                                                                  \
    _Pragma("GCC unroll 8")                                                                      \
    for (int r = 0; r < RY; r++) {                                                               \
        _Pragma("GCC unroll 8")                                                                  \
        for (int c = 0; c < CX; c++) {                                                           \
            _Pragma("GCC unroll 2")                                                              \
            for (int b = 0; b < KB; b++) {  /* the sums so far (`more`: a later chunk) */        \
                if (more)                                                                        \
                    memcpy(&acc[(r * CX + c) * KB + b], out + r * orow + c * step + b * N,       \
                           sizeof(V));                                                           \
                else                                                                             \
                    acc[(r * CX + c) * KB + b] = (V){0};                                         \
            }                                                                                    \
        }                                                                                        \
    }                                                                                            \
    for (ptrdiff_t s = 0; s < samples; s++)                                                      \
        for (ptrdiff_t z = 0; z < o0; z++)                                                       \
            for (ptrdiff_t y = 0; y < o1; y++) {                                                 \
                const T* xr = x + s * xn + z * zs + y * ys;                                      \
                const T* gr = g + s * gn + (z * o1 + y) * o2 * step;                             \
                const T* p[BK_GK_MAX];                                                           \
                _Pragma("GCC unroll 8")                                                          \
                for (int r = 0; r < RY; r++)                                                     \
                    p[r] = xr + roff[r];                                                         \
                for (ptrdiff_t j = 0; j < o2; j++) {                                             \
                    V gv[2];                                                                     \
                    _Pragma("GCC unroll 2")                                                      \
                    for (int b = 0; b < KB; b++)                                                 \
                        memcpy(&gv[b], gr + j * step + b * N, sizeof(V));                        \
                    _Pragma("GCC unroll 8")                                                      \
                    for (int r = 0; r < RY; r++) {                                               \
                        _Pragma("GCC unroll 8")                                                  \
                        for (int c = 0; c < CX; c++) {                                           \
                            const T xv = p[r][j * js + c];                                       \
                            _Pragma("GCC unroll 2")                                              \
                            for (int b = 0; b < KB; b++)                                         \
                                acc[(r * CX + c) * KB + b] += gv[b] * xv;                        \
                        }                                                                        \
                    }                                                                            \
                }                                                                                \
            }                                                                                    \
    _Pragma("GCC unroll 8")                                                                      \
    for (int r = 0; r < RY; r++) {                                                               \
        _Pragma("GCC unroll 8")                                                                  \
        for (int c = 0; c < CX; c++) {                                                           \
            _Pragma("GCC unroll 2")                                                              \
            for (int b = 0; b < KB; b++)                                                         \
                memcpy(out + r * orow + c * step + b * N, &acc[(r * CX + c) * KB + b],           \
                       sizeof(V));                                                               \
        }                                                                                        \
    }                                                                                            \
}                                                                                                \
                                                                                                 \
BK_GK_SWITCH(SUF, ATTR, T, P, 1)                                                                 \
BK_GK_SWITCH(SUF, ATTR, T, P, 2)                                                                 \
                                                                                                 \
/* One tile of RY rows and CX columns (1 to 8 each, RY * CX * KB within the level's registers;   \
   anything else does nothing). */                                                               \
ATTR static void bk_gk_##P##_##SUF(const T* x, ptrdiff_t xn, const T* g, ptrdiff_t gn,          \
                                   ptrdiff_t samples, const ptrdiff_t* roff, ptrdiff_t o0,      \
                                   ptrdiff_t o1, ptrdiff_t o2, ptrdiff_t zs, ptrdiff_t ys,      \
                                   ptrdiff_t js, T* out, ptrdiff_t orow, int KB, int RY,        \
                                   int CX, int more) {                                           \
    if (KB == 1)                                                                                 \
        bk_gk_kb1_##P##_##SUF(x, xn, g, gn, samples, roff, o0, o1, o2, zs, ys, js, out, orow,   \
                              RY, CX, more);                                                     \
    else                                                                                         \
        bk_gk_kb2_##P##_##SUF(x, xn, g, gn, samples, roff, o0, o1, o2, zs, ys, js, out, orow,   \
                              RY, CX, more);                                                     \
}

/* bk_gk_kb<KB>: a switch over (RY, CX), one case per compiled tile. */
#define BK_GK_CASE(P, SUF, KB, RY, CX)                                                           \
    case RY * 16 + CX:                                                                           \
        bk_gk_tile_##P##_##SUF(x, xn, g, gn, samples, roff, o0, o1, o2, zs, ys, js, out, orow,  \
                               KB, RY, CX, more);                                                \
        break;
#define BK_GK_ROW(P, SUF, KB, RY)                                                                \
    BK_GK_CASE(P, SUF, KB, RY, 1) BK_GK_CASE(P, SUF, KB, RY, 2) BK_GK_CASE(P, SUF, KB, RY, 3)   \
    BK_GK_CASE(P, SUF, KB, RY, 4) BK_GK_CASE(P, SUF, KB, RY, 5) BK_GK_CASE(P, SUF, KB, RY, 6)   \
    BK_GK_CASE(P, SUF, KB, RY, 7) BK_GK_CASE(P, SUF, KB, RY, 8)
#define BK_GK_SWITCH(SUF, ATTR, T, P, KB)                                                        \
ATTR static void bk_gk_kb##KB##_##P##_##SUF(const T* x, ptrdiff_t xn, const T* g, ptrdiff_t gn, \
                                            ptrdiff_t samples, const ptrdiff_t* roff,           \
                                            ptrdiff_t o0, ptrdiff_t o1, ptrdiff_t o2,           \
                                            ptrdiff_t zs, ptrdiff_t ys, ptrdiff_t js, T* out,   \
                                            ptrdiff_t orow, int RY, int CX, int more) {         \
    switch (RY * 16 + CX) {                                                                      \
        BK_GK_ROW(P, SUF, KB, 1) BK_GK_ROW(P, SUF, KB, 2) BK_GK_ROW(P, SUF, KB, 3)               \
        BK_GK_ROW(P, SUF, KB, 4) BK_GK_ROW(P, SUF, KB, 5) BK_GK_ROW(P, SUF, KB, 6)               \
        BK_GK_ROW(P, SUF, KB, 7) BK_GK_ROW(P, SUF, KB, 8)                                        \
        default: break;                                                                          \
    }                                                                                            \
}

#endif
