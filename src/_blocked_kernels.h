/* The inner loop of the blocked direct algorithm (src/_blocked.pyx): one output row of a block of
   output channels, vectorised across the channels (oneDNN's layout for small maps and few
   channels, where a row is too short for vectors along it).

     bk_row:  out[j * V + l] = sum_c sum_t w[(c * ts + t) * V + l] * x[c * cs + toff[t] + j * js]

   for the ow columns j of the row and the V = KB vectors of lanes l of one channel block, over
   taps t < taps. x is the row's first input (every tap a constant offset toff[t] from it,
   channel c at c * cs), w the block's weights packed as (input channel, tap, V lanes), ts taps a
   channel, with zeros past the block's channels; toff and w may start at a later tap (a run of
   the kernel's rows that skips those reading only padding).
   Tiles of CT columns keep KB x CT accumulators in registers; each input value is broadcast once
   and multiplied with the KB weight vectors of its tap. The sums run over c, then t, in order:
   fixed by the problem and the instruction set, never by threads.

   Compiled per level of _cpu_level.h, with vectors of that level's width, and reached through
   the table bk_init() fills at import (FASTCONV_BLOCKED_LEVEL = 0 or 1 asks for a lower one). */
#ifndef FASTCONV_BLOCKED_KERNELS_H
#define FASTCONV_BLOCKED_KERNELS_H
#include <stddef.h>
#include <string.h>

#include "_cpu_level.h"
#include "_blocked_gk.h"

#pragma GCC diagnostic ignored "-Wpsabi"

#define BK_MAX_CT 12        /* columns of a tile: 2 x 12 accumulators fill AVX-512's 32 registers */

#define BK_LEVEL(SUF, ATTR, BYTES, NF, ND)                                                       \
BK_TYPE(SUF, ATTR, BYTES, float, f32)                                                            \
BK_TYPE(SUF, ATTR, BYTES, double, f64)                                                           \
BK_GK_TYPE(SUF, ATTR, BYTES, float, f32)                                                         \
BK_GK_TYPE(SUF, ATTR, BYTES, double, f64)

#define BK_TYPE(SUF, ATTR, BYTES, T, P)                                                          \
typedef T bk_vec_##P##_##SUF __attribute__((vector_size(BYTES)));                                \
                                                                                                 \
/* A tile of CT columns: KB vectors of channels of one row, or (KB 1, RT 2) one vector of two    \
   rows rs apart (their outputs orow apart in out); two accumulator sets either way. */          \
ATTR static inline __attribute__((always_inline))                                                \
void bk_tile_##P##_##SUF(const T* x, ptrdiff_t cs, const ptrdiff_t* toff, ptrdiff_t taps,        \
                         ptrdiff_t ts, ptrdiff_t C, const T* w, ptrdiff_t js, ptrdiff_t rs,      \
                         T* out,                                                                 \
                         ptrdiff_t orow, const int KB, const int RT, const int CT) {             \
    typedef bk_vec_##P##_##SUF V;                                                                \
    enum { N = BYTES / sizeof(T) };                                                              \
    const int M = KB * RT;                                                                       \
    V acc[2][BK_MAX_CT];                                                                         \
    _Pragma("GCC unroll 12")                                                                     \
    for (int j = 0; j < CT; j++)                                                                 \
        for (int m = 0; m < M; m++)                                                              \
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
                else if (RT == 2)                                                                \
                    acc[1][j] += wv[0] * xt[rs + j * js];                                        \
            }                                                                                    \
        }                                                                                        \
    }                                                                                            \
    _Pragma("GCC unroll 12")                                                                     \
    for (int j = 0; j < CT; j++) {                                                               \
        memcpy(out + j * KB * N, &acc[0][j], sizeof(V));                                         \
        if (KB == 2)                                                                             \
            memcpy(out + j * KB * N + N, &acc[1][j], sizeof(V));                                 \
        else if (RT == 2)                                                                        \
            memcpy(out + orow + j * N, &acc[1][j], sizeof(V));                                   \
    }                                                                                            \
}                                                                                                \
                                                                                                 \
/* The row(s) in tiles: the widest first (WIDE columns: fewer registers below AVX-512), then     \
   8, 4, 2, 1 for what is left. */                                                               \
ATTR static inline __attribute__((always_inline))                                                \
void bk_cols_##P##_##SUF(const T* x, ptrdiff_t cs, const ptrdiff_t* toff, ptrdiff_t taps,        \
                         ptrdiff_t ts, ptrdiff_t C, const T* w, const int KB, const int RT,      \
                         const ptrdiff_t js, ptrdiff_t rs, ptrdiff_t ow, T* out) {               \
    enum { N = BYTES / sizeof(T), WIDE = BYTES == 64 ? 12 : 6 };                                 \
    const ptrdiff_t step = (ptrdiff_t)KB * N, orow = ow * step;                                  \
    ptrdiff_t j = 0;                                                                             \
    for (; ow - j >= WIDE; j += WIDE)                                                            \
        bk_tile_##P##_##SUF(x + j * js, cs, toff, taps, ts, C, w, js, rs, out + j * step, orow,  \
                            KB, RT, WIDE);                                                       \
    if (WIDE > 8 && ow - j >= 8) {                                                               \
        bk_tile_##P##_##SUF(x + j * js, cs, toff, taps, ts, C, w, js, rs, out + j * step, orow,  \
                            KB, RT, 8);                                                          \
        j += 8;                                                                                  \
    }                                                                                            \
    if (ow - j >= 4) {                                                                           \
        bk_tile_##P##_##SUF(x + j * js, cs, toff, taps, ts, C, w, js, rs, out + j * step, orow,  \
                            KB, RT, 4);                                                          \
        j += 4;                                                                                  \
    }                                                                                            \
    if (ow - j >= 2) {                                                                           \
        bk_tile_##P##_##SUF(x + j * js, cs, toff, taps, ts, C, w, js, rs, out + j * step, orow,  \
                            KB, RT, 2);                                                          \
        j += 2;                                                                                  \
    }                                                                                            \
    if (ow - j >= 1)                                                                             \
        bk_tile_##P##_##SUF(x + j * js, cs, toff, taps, ts, C, w, js, rs, out + j * step, orow,  \
                            KB, RT, 1);                                                          \
}                                                                                                \
                                                                                                 \
/* KB vectors of channels (KB 2: one row) or RT rows (KB 1); a stride of 1 as a constant, so     \
   a tile's inputs sit at fixed displacements. */                                                \
ATTR static void bk_row_##P##_##SUF(const T* x, ptrdiff_t cs, const ptrdiff_t* toff,             \
                                    ptrdiff_t taps, ptrdiff_t ts, ptrdiff_t C, const T* w,       \
                                    int KB, int RT,                                              \
                                    ptrdiff_t js, ptrdiff_t rs, ptrdiff_t ow, T* out) {          \
    if (KB == 2) {                                                                               \
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

FASTCONV_EACH_LEVEL(BK_LEVEL)

#define BK_ENTRIES(X, LV) X(bk_row_f32, LV) X(bk_row_f64, LV) X(bk_gk_f32, LV) X(bk_gk_f64, LV)
FASTCONV_KERNEL_TABLE(bk, BK_ENTRIES, "FASTCONV_BLOCKED_LEVEL")

#endif
