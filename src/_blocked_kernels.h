/* The inner loop of the blocked direct algorithm (src/_blocked.pyx): one output row of a block of
   output channels, vectorised across the channels (oneDNN's layout for small maps and few
   channels, where a row is too short for vectors along it).

     bk_row:  out[j * V + l] = sum_c sum_t w[(c * ts + t) * V + l] * x[c * cs + toff[t] + j * js]

   for the ow columns j of the row and the V = KB vectors of lanes l of one channel block, over
   taps t < taps. x is the row's first input (every tap a constant offset toff[t] from it,
   channel c at c * cs), w the block's weights packed as (input channel, tap, V lanes), ts taps a
   channel, with zeros past the block's channels; toff and w may start at a later tap (a run of
   the kernel's rows that skips those reading only padding).
   Tiles of CT columns of RT rows keep KB x RT x CT accumulators in registers (up to 28 at
   AVX-512, 12 below); each input value is broadcast once and multiplied with the KB weight
   vectors of its tap, each weight vector with the tile's RT x CT inputs. A row is cut into as
   few tiles as the registers allow, since each tile reads the block's weights once: ResNet's
   7x7 maps with 512 channels (590 KB of weights a block) were cut into 4 + 2 + 1 columns.
   Every output's sum runs over c, then t, in order whatever its tile: fixed by the problem and
   the instruction set, never by threads.

   Compiled per level of _cpu_level.h, with vectors of that level's width, and reached through
   the table bk_init() fills at import (FASTCONV_BLOCKED_LEVEL = 0 or 1 asks for a lower one). */
#ifndef FASTCONV_BLOCKED_KERNELS_H
#define FASTCONV_BLOCKED_KERNELS_H
#include <stddef.h>
#include <string.h>

#include "_cpu_level.h"
#include "_blocked_gk.h"

#pragma GCC diagnostic ignored "-Wpsabi"

#define BK_MAX_CT 12        /* columns of a tile (2 x 12 accumulators fill AVX-512's 32 registers) */
#define BK_ACC(BYTES) ((BYTES) == 64 ? 28 : 12)    /* accumulators a tile keeps in registers */

#define BK_LEVEL(SUF, ATTR, BYTES, NF, ND)                                                       \
BK_TYPE(SUF, ATTR, BYTES, float, f32)                                                            \
BK_TYPE(SUF, ATTR, BYTES, double, f64)                                                           \
BK_GK_TYPE(SUF, ATTR, BYTES, float, f32)                                                         \
BK_GK_TYPE(SUF, ATTR, BYTES, double, f64)

#define BK_TYPE(SUF, ATTR, BYTES, T, P)                                                          \
typedef T bk_vec_##P##_##SUF __attribute__((vector_size(BYTES)));                                \
                                                                                                 \
/* A tile of CT columns of RT rows (rs apart in x, orow apart in out) x KB vectors of channels:  \
   KB x RT x CT accumulators. Each weight vector loaded serves the RT x CT positions, each input \
   value broadcast serves the KB vectors. */                                                     \
ATTR static inline __attribute__((always_inline))                                                \
void bk_tile_##P##_##SUF(const T* x, ptrdiff_t cs, const ptrdiff_t* toff, ptrdiff_t taps,        \
                         ptrdiff_t ts, ptrdiff_t C, const T* w, ptrdiff_t js, ptrdiff_t rs,      \
                         T* out,                                                                 \
                         ptrdiff_t orow, const int KB, const int RT, const int CT) {             \
    typedef bk_vec_##P##_##SUF V;                                                                \
    enum { N = BYTES / sizeof(T) };                                                              \
    V acc[4][BK_MAX_CT];                                                                         \
    _Pragma("GCC unroll 12")                                                                     \
    for (int j = 0; j < CT; j++)                                                                 \
        for (int m = 0; m < KB * RT; m++)                                                        \
            acc[m][j] = (V){0};                                                                  \
    for (ptrdiff_t c = 0; c < C; c++) {                                                          \
        const T* xc = x + c * cs;                                                                \
        const T* wc = w + c * ts * KB * N;                                                       \
        for (ptrdiff_t t = 0; t < taps; t++) {                                                   \
            const T* xt = xc + toff[t];                                                          \
            V wv[2];                                                                             \
            for (int b = 0; b < KB; b++)                                                         \
                memcpy(&wv[b], wc + (t * KB + b) * N, sizeof(V));                                \
            _Pragma("GCC unroll 12")                                                             \
            for (int j = 0; j < CT; j++) {                                                       \
                const T x0 = xt[j * js];    /* vector x scalar: one broadcast, no 0 + x */       \
                acc[0][j] += wv[0] * x0;                                                         \
                if (KB == 2)                                                                     \
                    acc[1][j] += wv[1] * x0;                                                     \
                if (RT == 2) {                                                                   \
                    const T x1 = xt[rs + j * js];                                                \
                    acc[KB][j] += wv[0] * x1;                                                    \
                    if (KB == 2)                                                                 \
                        acc[3][j] += wv[1] * x1;                                                 \
                }                                                                                \
            }                                                                                    \
        }                                                                                        \
    }                                                                                            \
    _Pragma("GCC unroll 12")                                                                     \
    for (int j = 0; j < CT; j++)                                                                 \
        for (int r = 0; r < RT; r++)                                                             \
            for (int b = 0; b < KB; b++)                                                         \
                memcpy(out + r * orow + (j * KB + b) * N, &acc[r * KB + b][j], sizeof(V));       \
}                                                                                                \
                                                                                                 \
/* One tile of ct columns, ct a constant in each case (fully unrolled tiles). */                 \
ATTR static inline __attribute__((always_inline))                                                \
void bk_tile_any_##P##_##SUF(const T* x, ptrdiff_t cs, const ptrdiff_t* toff, ptrdiff_t taps,    \
                             ptrdiff_t ts, ptrdiff_t C, const T* w, ptrdiff_t js, ptrdiff_t rs,  \
                             T* out, ptrdiff_t orow, const int KB, const int RT, int ct) {       \
    const int MAXCT = BK_ACC(BYTES) / (KB * RT) < BK_MAX_CT ? BK_ACC(BYTES) / (KB * RT)        \
                                                            : BK_MAX_CT;                         \
    switch (ct) {                                                                                \
    BK_CASES(bk_tile_##P##_##SUF(x, cs, toff, taps, ts, C, w, js, rs, out, orow, KB, RT, CT_))   \
    }                                                                                            \
}                                                                                                \
                                                                                                 \
/* The row(s) in tiles of balanced widths: as few tiles as the registers allow (each reads the   \
   block's weights once), their widths differing by one at most (7 columns at AVX-512 with two  \
   rows of two vectors: 7 columns are one tile, 14 two of 7, 12 two of 6). */                    \
ATTR static inline __attribute__((always_inline))                                                \
void bk_cols_##P##_##SUF(const T* x, ptrdiff_t cs, const ptrdiff_t* toff, ptrdiff_t taps,        \
                         ptrdiff_t ts, ptrdiff_t C, const T* w, const int KB, const int RT,      \
                         const ptrdiff_t js, ptrdiff_t rs, ptrdiff_t ow, T* out) {               \
    const int maxct = BK_ACC(BYTES) / (KB * RT) < BK_MAX_CT ? BK_ACC(BYTES) / (KB * RT)          \
                                                            : BK_MAX_CT;                         \
    const ptrdiff_t step = (ptrdiff_t)KB * (BYTES / sizeof(T)), orow = ow * step;               \
    const ptrdiff_t tiles = (ow + maxct - 1) / maxct, narrow = ow / (tiles ? tiles : 1);        \
    const ptrdiff_t wide = ow - narrow * tiles;     /* tiles one column wider */                 \
    ptrdiff_t j = 0;                                                                             \
    for (ptrdiff_t i = 0; i < tiles; i++) {                                                      \
        const int ct = (int)(narrow + (i < wide));                                               \
        bk_tile_any_##P##_##SUF(x + j * js, cs, toff, taps, ts, C, w, js, rs, out + j * step,   \
                                orow, KB, RT, ct);                                               \
        j += ct;                                                                                 \
    }                                                                                            \
}                                                                                                \
                                                                                                 \
/* KB vectors of channels by RT rows; a stride of 1 as a constant, so a tile's inputs sit at     \
   fixed displacements. */                                                                       \
ATTR static void bk_row_##P##_##SUF(const T* x, ptrdiff_t cs, const ptrdiff_t* toff,             \
                                    ptrdiff_t taps, ptrdiff_t ts, ptrdiff_t C, const T* w,       \
                                    int KB, int RT,                                              \
                                    ptrdiff_t js, ptrdiff_t rs, ptrdiff_t ow, T* out) {          \
    if (KB == 2 && RT == 2) {                                                                    \
        if (js == 1) bk_cols_##P##_##SUF(x, cs, toff, taps, ts, C, w, 2, 2, 1, rs, ow, out);     \
        else bk_cols_##P##_##SUF(x, cs, toff, taps, ts, C, w, 2, 2, js, rs, ow, out);            \
    } else if (KB == 2) {                                                                        \
        if (js == 1) bk_cols_##P##_##SUF(x, cs, toff, taps, ts, C, w, 2, 1, 1, rs, ow, out);     \
        else bk_cols_##P##_##SUF(x, cs, toff, taps, ts, C, w, 2, 1, js, rs, ow, out);            \
    } else if (RT == 2) {                                                                        \
        if (js == 1) bk_cols_##P##_##SUF(x, cs, toff, taps, ts, C, w, 1, 2, 1, rs, ow, out);     \
        else bk_cols_##P##_##SUF(x, cs, toff, taps, ts, C, w, 1, 2, js, rs, ow, out);            \
    } else {                                                                                     \
        if (js == 1) bk_cols_##P##_##SUF(x, cs, toff, taps, ts, C, w, 1, 1, 1, rs, ow, out);     \
        else bk_cols_##P##_##SUF(x, cs, toff, taps, ts, C, w, 1, 1, js, rs, ow, out);            \
    }                                                                                            \
}

/* case n: CALL with CT_ = n, for the widths a tile may have (those above MAXCT never come). */
#define BK_CASE(n, CALL) case n: if (n <= MAXCT) { enum { CT_ = n }; CALL; } break;
#define BK_CASES(CALL) BK_CASE(1, CALL) BK_CASE(2, CALL) BK_CASE(3, CALL) BK_CASE(4, CALL)      \
    BK_CASE(5, CALL) BK_CASE(6, CALL) BK_CASE(7, CALL) BK_CASE(8, CALL) BK_CASE(9, CALL)       \
    BK_CASE(10, CALL) BK_CASE(11, CALL) BK_CASE(12, CALL)

FASTCONV_EACH_LEVEL(BK_LEVEL)

#define BK_ENTRIES(X, LV) X(bk_row_f32, LV) X(bk_row_f64, LV) X(bk_gk_f32, LV) X(bk_gk_f64, LV)
FASTCONV_KERNEL_TABLE(bk, BK_ENTRIES, "FASTCONV_BLOCKED_LEVEL")

#endif
