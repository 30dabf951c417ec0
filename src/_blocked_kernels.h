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
#include "_vectors.h"
#include "_blocked_gk.h"
#include "_blocked_gkp.h"
#include "_blocked_batch.h"
#include "_blocked_planes.h"

#pragma GCC diagnostic ignored "-Wpsabi"

/* Input planes a whole number of 4 KiB pages apart (x read in place: the U-Net's 64x64 maps)
   put every channel's row in the same L1 sets, and the hardware prefetcher, which stays within
   a page, fetches none of them: bk_tile then prefetches, for the channel BK_PF ahead, the lines
   of its first, middle and last taps (the 2x2/2 layer at batch 4: 1.76-1.85 -> 1.67-1.72 ms
   at AVX2, 1.03 -> 0.93-0.99 at AVX-512, 2 threads; a 1-D layer's three taps on one row,
   prefetched at every stride, ran 15% slower: hence only where the planes alias) */
#define BK_PF 2
#define BK_MAX_CT 12        /* columns of a tile (2 x 12 accumulators fill AVX-512's 32 registers) */
#define BK_ACC(BYTES) ((BYTES) == 64 ? 28 : 12)    /* accumulators a tile keeps in registers */
/* Tiles of at most this many accumulators skip padding's products at a row's ends (bk_cols' EK;
   AVX-512 and AVX2, not the baseline): with more, the kernel row's taps unrolled spilled the
   tile -- at AVX-512 ResNet-18's 7x7 rows of 28 accumulators ran 0.64-0.72x (0.75-0.84x with a
   compiler barrier between the taps); at AVX2 (16 registers) LeNet's 5x5 on 8x8 maps gained
   1.01-1.03x with tiles of up to 12, 1.05-1.07x with up to 8 */
#define BK_EK_ACC(BYTES) ((BYTES) == 64 ? 20 : 8)
#define BK_CHUNK_BYTES 16384    /* a chunk of input channels' weights, read by every tile of a row */
#define BK_CHUNK_TILES 3        /* ... where a row has at least this many tiles */
#define BK_CHUNK_ABOVE 32768    /* ... and a block's weights are more than this (ResNet's 7x7 stem, \
                                   3 channels of 19 KB, ran 7% slower in chunks of 2 and 1) */
/* the widest tile of KB vectors by RT rows: as many columns as the accumulators allow */
#define BK_MAXCT(BYTES, KB, RT) (BK_ACC(BYTES) / ((KB) * (RT)) < BK_MAX_CT                       \
                                 ? BK_ACC(BYTES) / ((KB) * (RT)) : BK_MAX_CT)

#define BK_LEVEL(SUF, ATTR, BYTES, NF, ND)                                                       \
BK_TYPE(SUF, ATTR, BYTES, float, f32, NF, int)                                                   \
BK_TYPE(SUF, ATTR, BYTES, double, f64, ND, long long)                                            \
BK_GK_TYPE(SUF, ATTR, BYTES, float, f32)                                                         \
BK_GK_TYPE(SUF, ATTR, BYTES, double, f64)                                                        \
BK_GKP_TYPE(SUF, ATTR, BYTES, float, f32, int)                                                   \
BK_GKP_TYPE(SUF, ATTR, BYTES, double, f64, long long)                                            \
BKB_TYPE(SUF, ATTR, BYTES, float, f32)                                                           \
BKB_TYPE(SUF, ATTR, BYTES, double, f64)                                                          \
BPL_TYPE(SUF, ATTR, BYTES, float, f32)                                                           \
BPL_TYPE(SUF, ATTR, BYTES, double, f64)

#define BK_TYPE(SUF, ATTR, BYTES, T, P, NL, IT)                                                  \
typedef T bk_vec_##P##_##SUF __attribute__((vector_size(BYTES)));                                \
                                                                                                 \
/* A tile of CT columns of RT rows (rs apart in x, orow apart in out) x KB vectors of channels:  \
   KB x RT x CT accumulators. Each weight vector loaded serves the RT x CT positions, each input \
   value broadcast serves the KB vectors. */                                                     \
ATTR static inline __attribute__((always_inline))                                                \
void bk_tile_##P##_##SUF(const T* x, ptrdiff_t cs, const ptrdiff_t* toff, ptrdiff_t taps,        \
                         ptrdiff_t ts, ptrdiff_t C, const T* w, ptrdiff_t js, ptrdiff_t rs,      \
                         T* out, ptrdiff_t orow, const int KB, const int RT, const int CT,       \
                         int more, const int ONE, const int EK, int left, int right) {           \
    typedef bk_vec_##P##_##SUF V;                                                                \
    enum { N = BYTES / sizeof(T) };                                                              \
    V acc[4][BK_MAX_CT];                                                                         \
    _Pragma("GCC unroll 12")                                                                     \
    for (int j = 0; j < CT; j++)                                                                 \
        for (int r = 0; r < RT; r++)                                                             \
            for (int b = 0; b < KB; b++) {                                                       \
                if (more)       /* the sums so far, of the channels before these */             \
                    memcpy(&acc[r * KB + b][j], out + r * orow + (j * KB + b) * N, sizeof(V));   \
                else                                                                             \
                    acc[r * KB + b][j] = (V){0};                                                 \
            }                                                                                    \
    if (ONE) {  /* one tap a channel (1x1, a phase's, an edge row's; a constant, so that the     \
        other tiles' code is as it was): one loop, unrolled by two; in the loops below each   \
        channel's pass cost a 1x1 layer a fifth of its time (bk_row on 320-512 channels of  \
        7-14 columns: 114 -> 151 GFLOP/s, one Xeon core) */                                  \
        const T* xt = x + toff[0];                                                               \
        const T* wc = w;                                                                         \
        _Pragma("GCC unroll 2")                                                                  \
        for (ptrdiff_t c = 0; c < C; c++, xt += cs, wc += ts * KB * N) {                         \
            BK_TAP(xt, wc)                                                                       \
        }                                                                                        \
    } else if (EK && KB * RT * CT <= BK_EK_ACC(BYTES)) {    /* a row's end: see bk_cols */     \
        const int PAD = EK / 2;                                                                  \
        for (ptrdiff_t c = 0; c < C; c++) {                                                      \
            const T* xc = x + c * cs;                                                            \
            const T* wc = w + c * ts * KB * N;                                                   \
            for (ptrdiff_t t = 0; t < taps; t += EK) {                                           \
                const T* xr = xc + toff[t];                                                      \
                const T* wr = wc + t * KB * N;                                                   \
                _Pragma("GCC unroll 5")                                                          \
                for (int kc = 0; kc < EK; kc++) {                                                \
                    if (kc < PAD && left) {                                                      \
                        BK_TAP_R(xr + kc, wr + kc * KB * N, PAD - kc, CT)                        \
                    } else if (kc > PAD && right) {                                              \
                        BK_TAP_R(xr + kc, wr + kc * KB * N, 0, CT - (kc - PAD))                  \
                    } else {                                                                     \
                        BK_TAP(xr + kc, wr + kc * KB * N)                                        \
                    }                                                                            \
                }                                                                                \
            }                                                                                    \
        }                                                                                        \
    } else {                                                                                     \
    const int aliased = ((cs * (ptrdiff_t)sizeof(T)) & 4095) == 0;      /* see BK_PF */          \
    for (ptrdiff_t c = 0; c < C; c++) {                                                          \
        const T* xc = x + c * cs;                                                                \
        const T* wc = w + c * ts * KB * N;                                                       \
        if (aliased && c + BK_PF < C) {                                                          \
            const T* xn = xc + BK_PF * cs;                                                       \
            __builtin_prefetch(xn + toff[0]);                                                    \
            __builtin_prefetch(xn + toff[0] + CT * js);                                          \
            __builtin_prefetch(xn + toff[taps / 2]);                                             \
            __builtin_prefetch(xn + toff[taps / 2] + CT * js);                                   \
            __builtin_prefetch(xn + toff[taps - 1]);                                             \
            __builtin_prefetch(xn + toff[taps - 1] + CT * js);                                   \
        }                                                                                        \
        for (ptrdiff_t t = 0; t < taps; t++) {                                                   \
            BK_TAP(xc + toff[t], wc + t * KB * N)                                                \
        }                                                                                        \
    }                                                                                            \
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
                             T* out, ptrdiff_t orow, const int KB, const int RT, int ct,         \
                             int more, const int ONE, const int EK, int left, int right) {       \
    const int MAXCT = BK_MAXCT(BYTES, KB, RT);                                                   \
    switch (ct) {                                                                                \
    BK_CASES(bk_tile_##P##_##SUF(x, cs, toff, taps, ts, C, w, js, rs, out, orow, KB, RT, CT_,    \
                                 more, ONE, EK, left, right))                                    \
    }                                                                                            \
}                                                                                                \
                                                                                                 \
/* bk_tile_any at a stride of 1 with KB and RT as arguments, not inlined: the tiles of a row of    \
   bk_cols with EK that are not at its ends (one copy of their code, not one per EK) */         \
ATTR static __attribute__((noinline))                                                            \
void bk_tile_s1_##P##_##SUF(const T* x, ptrdiff_t cs, const ptrdiff_t* toff, ptrdiff_t taps,     \
                            ptrdiff_t ts, ptrdiff_t C, const T* w, ptrdiff_t rs, T* out,         \
                            ptrdiff_t orow, int KB, int RT, int ct, int more) {                  \
    if (KB == 2 && RT == 2)                                                                      \
        bk_tile_any_##P##_##SUF(x, cs, toff, taps, ts, C, w, 1, rs, out, orow, 2, 2, ct, more,   \
                                0, 0, 0, 0);                                                     \
    else if (KB == 2)                                                                            \
        bk_tile_any_##P##_##SUF(x, cs, toff, taps, ts, C, w, 1, rs, out, orow, 2, 1, ct, more,   \
                                0, 0, 0, 0);                                                     \
    else if (RT == 2)                                                                            \
        bk_tile_any_##P##_##SUF(x, cs, toff, taps, ts, C, w, 1, rs, out, orow, 1, 2, ct, more,   \
                                0, 0, 0, 0);                                                     \
    else                                                                                         \
        bk_tile_any_##P##_##SUF(x, cs, toff, taps, ts, C, w, 1, rs, out, orow, 1, 1, ct, more,   \
                                0, 0, 0, 0);                                                     \
}                                                                                                \
                                                                                                 \
/* The row(s) in tiles of balanced widths: as few tiles as the registers allow (each reads the   \
   block's weights once), their widths differing by one at most (7 columns at AVX-512 with two  \
   rows of two vectors: 7 columns are one tile, 14 two of 7, 12 two of 6). */                    \
ATTR static inline __attribute__((always_inline))                                                \
void bk_cols_##P##_##SUF(const T* x, ptrdiff_t cs, const ptrdiff_t* toff, ptrdiff_t taps,        \
                         ptrdiff_t ts, ptrdiff_t C, const T* w, const int KB, const int RT,      \
                         const ptrdiff_t js, ptrdiff_t rs, ptrdiff_t ow, T* out,                 \
                         const int ONE, const int EK) {                                          \
    const int maxct = BK_MAXCT(BYTES, KB, RT);                                                   \
    const ptrdiff_t step = (ptrdiff_t)KB * (BYTES / sizeof(T)), orow = ow * step;               \
    const ptrdiff_t tiles = (ow + maxct - 1) / maxct, narrow = ow / (tiles ? tiles : 1);        \
    const ptrdiff_t wide = ow - narrow * tiles;     /* tiles one column wider */                 \
    /* Where the row takes several tiles, its channels go in chunks whose weights stay in L1    \
       across the tiles (wav2vec's 256 channels x 3 taps: 98 KB a block, read from L2 by each  \
       tile); a tile's sums carry from chunk to chunk through `out`, exactly (the same bits). */ \
    const ptrdiff_t per_channel = taps * step * (ptrdiff_t)sizeof(T);                            \
    ptrdiff_t chunk = tiles >= BK_CHUNK_TILES && C * per_channel > BK_CHUNK_ABOVE                \
                      ? BK_CHUNK_BYTES / per_channel : C;                                        \
    if (chunk < 1) chunk = 1;                                                                    \
    for (ptrdiff_t c0 = 0; c0 < C; c0 += chunk) {                                                \
        const ptrdiff_t cc = C - c0 < chunk ? C - c0 : chunk;                                    \
        ptrdiff_t j = 0;                                                                         \
        for (ptrdiff_t i = 0; i < tiles; i++) {                                                  \
            const int ct = (int)(narrow + (i < wide));                                           \
            /* EK: a kernel row of EK taps over a "same" padding of EK / 2 along the row; the    \
               tiles at its ends skip the products of padding zeros, kernel column by kernel   \
               column (oneDNN's JIT leaves them out too: 15% of LeNet's 5x5 on 8x8 maps) */    \
            if (EK && KB * RT * ct <= BK_EK_ACC(BYTES) && (j == 0 || j + ct == ow))              \
                bk_tile_any_##P##_##SUF(x + j * js + c0 * cs, cs, toff, taps, ts, cc,            \
                                        w + c0 * ts * step, js, rs, out + j * step, orow, KB,    \
                                        RT, ct, c0 > 0, 0, EK, j == 0, j + ct == ow);            \
            else if (EK)                                                                         \
                bk_tile_s1_##P##_##SUF(x + j + c0 * cs, cs, toff, taps, ts, cc,                  \
                                       w + c0 * ts * step, rs, out + j * step, orow, KB, RT, ct, \
                                       c0 > 0);                                                  \
            else                                                                                 \
                bk_tile_any_##P##_##SUF(x + j * js + c0 * cs, cs, toff, taps, ts, cc,            \
                                        w + c0 * ts * step, js, rs, out + j * step, orow, KB,    \
                                        RT, ct, c0 > 0, ONE, 0, 0, 0);                           \
            j += ct;                                                                             \
        }                                                                                        \
    }                                                                                            \
}                                                                                                \
                                                                                                 \
/* KB vectors of channels by RT rows; a stride of 1 as a constant, so a tile's inputs sit at     \
   fixed displacements. */                                                                       \
ATTR static void bk_row_##P##_##SUF(const T* x, ptrdiff_t cs, const ptrdiff_t* toff,             \
                                    ptrdiff_t taps, ptrdiff_t ts, ptrdiff_t C, const T* w,       \
                                    int KB, int RT, ptrdiff_t js, ptrdiff_t rs, ptrdiff_t ow,    \
                                    T* out, ptrdiff_t ek) {                                      \
    if (KB == 2 && RT == 2) {                                                                    \
        BK_COLS(P, SUF, 2, 2)                                                                    \
    } else if (KB == 2) {                                                                        \
        BK_COLS(P, SUF, 2, 1)                                                                    \
    } else if (RT == 2) {                                                                        \
        BK_COLS(P, SUF, 1, 2)                                                                    \
    } else {                                                                                     \
        BK_COLS(P, SUF, 1, 1)                                                                    \
    }                                                                                            \
}                                                                                                \
                                                                                                 \
/* Whether a value of a[0..n) is NaN or infinite (v - v is NaN for those, 0 otherwise), in      \
   vectors of this level: the packed weights' check, which in the module's own (baseline) code  \
   took 10% of ResNet-18's 512-channel input gradient at batch 1. */                            \
ATTR static int bk_nonfinite_##P##_##SUF(const T* a, ptrdiff_t n) {                              \
    typedef bk_vec_##P##_##SUF VT;                                                               \
    enum { N = BYTES / sizeof(T) };                                                              \
    VT bad[4] = {{0}};  /* four sums, each vector loaded alone (one copy of four vectors went  \
                           through the stack: 17% of a 512-channel forward at AVX2) */           \
    ptrdiff_t i = 0;                                                                             \
    for (; i + 4 * N <= n; i += 4 * N) {                                                         \
        _Pragma("GCC unroll 4")                                                                  \
        for (int k = 0; k < 4; k++) {                                                            \
            VT v;                                                                                \
            memcpy(&v, a + i + k * N, sizeof v);                                                 \
            bad[k] += v - v;                                                                     \
        }                                                                                        \
    }                                                                                            \
    T rest = 0;                                                                                  \
    for (; i < n; i++)                                                                           \
        rest += a[i] - a[i];                                                                     \
    for (int l = 0; l < N; l++)                                                                  \
        rest += bad[0][l] + bad[1][l] + bad[2][l] + bad[3][l];                                   \
    return rest != rest;                                                                         \
}                                                                                                \
                                                                                                 \
/* One N x N block transposed in registers: dst[c * ds + i] = src[i * ss + c] for i, c < N (N   \
   the level's lanes), through the two-source shuffles of BK_TRANSPOSE. With `bad` (bk_pack's),  \
   v - v of each loaded vector is summed into it, in a tree: NaN wherever a value was NaN or     \
   infinite (the weights' check, on values in registers: a pass of its own over a packed block  \
   took 4% of ResNet-18's 512-channel 3x3 at batch 1). */                                      \
ATTR static inline void bk_tblock_##P##_##SUF(const T* src, ptrdiff_t ss, T* dst, ptrdiff_t ds, \
                                              bk_vec_##P##_##SUF* bad) {                         \
    typedef bk_vec_##P##_##SUF VT;                                                               \
    enum { N = BYTES / sizeof(T) };                                                              \
    VT v[N];                                                                                     \
    _Pragma("GCC unroll 16")                                                                     \
    for (int i = 0; i < N; i++)                                                                  \
        memcpy(&v[i], src + i * ss, sizeof(VT));                                                 \
    if (bad) {                                                                                   \
        VT d[N];                                                                                 \
        _Pragma("GCC unroll 16")                                                                 \
        for (int i = 0; i < N; i++)                                                              \
            d[i] = v[i] - v[i];                                                                  \
        _Pragma("GCC unroll 16")                                                                 \
        for (int h = N / 2; h >= 1; h /= 2)                                                      \
            for (int i = 0; i < h; i++)                                                          \
                d[i] += d[i + h];                                                                \
        *bad += d[0];                                                                            \
    }                                                                                            \
    BK_TRANSPOSE(NL, VT, IT, v)                                                                  \
    _Pragma("GCC unroll 16")                                                                     \
    for (int c = 0; c < N; c++)                                                                  \
        memcpy(dst + c * ds, &v[c], sizeof(VT));                                                 \
}                                                                                                \
                                                                                                 \
/* The row buffer (rt rows of ow positions x V channel lanes) into the output's planes: lane l   \
   of row r, position j at y[l * plane + r * yrow + j], for the first `lanes` lanes. N x N      \
   blocks (positions x lanes) are transposed in registers and stored a vector a channel; the    \
   scalar copy this replaced took more of a 3-channel stem's forward than its FMAs. */          \
ATTR static void bk_unpack_##P##_##SUF(const T* buf, ptrdiff_t V, ptrdiff_t ow, ptrdiff_t rt,   \
                                       ptrdiff_t lanes, T* y, ptrdiff_t plane, ptrdiff_t yrow) { \
    enum { N = BYTES / sizeof(T) };                                                              \
    if (yrow == ow) {   /* whole rows of the plane: one run (LeNet's 8 columns) */               \
        ow *= rt;                                                                                \
        rt = 1;                                                                                  \
    }                                                                                            \
    for (ptrdiff_t r = 0; r < rt; r++) {                                                         \
        const T* b = buf + r * ow * V;                                                           \
        T* yr = y + r * yrow;                                                                    \
        ptrdiff_t j = 0;                                                                         \
        if (ow >= N)                                                                             \
            for (;; j += N) {                                                                    \
                /* the last block overlaps the one before (the same values stored again): a     \
                   row of 56 left 8 columns to a scalar copy that took 2/3 of the store */     \
                if (j > ow - N) j = ow - N;                                                      \
                ptrdiff_t c0 = 0;                                                                \
                for (; c0 + N <= lanes; c0 += N)                                                 \
                    bk_tblock_##P##_##SUF(b + j * V + c0, V, yr + c0 * plane + j, plane, 0);     \
                if (c0 < lanes && lanes >= N)      /* the same for the last lanes */             \
                    bk_tblock_##P##_##SUF(b + j * V + lanes - N, V, yr + (lanes - N) * plane + j, \
                                          plane, 0);                                             \
                else                                                                             \
                    for (ptrdiff_t l = c0; l < lanes; l++)                                       \
                        for (int i = 0; i < N; i++)                                              \
                            yr[l * plane + j + i] = b[(j + i) * V + l];                          \
                if (j + N >= ow) {                                                               \
                    j = ow;                                                                      \
                    break;                                                                       \
                }                                                                                \
            }                                                                                    \
        for (; j < ow; j++)                                                                      \
            for (ptrdiff_t l = 0; l < lanes; l++)                                                \
                yr[l * plane + j] = b[j * V + l];                                                \
    }                                                                                            \
}                                                                                                \
                                                                                                 \
/* The inverse: dst[q * V + l] = src[l * stride + q] for q in [q0, q1), l < lanes, and zeros in  \
   the lanes past them (the weights packed for bk_row, gy transposed for bk_gk), by the same     \
   N x N register transposes: the scalar copy took 39-46% of ResNet-18's 512-channel 3x3 at      \
   batch 1 (9.4 MB of weights packed per call). Returns whether a copied value is NaN or         \
   infinite (the packed weights' check). */                                                      \
ATTR static int bk_pack_##P##_##SUF(const T* src, ptrdiff_t stride, T* dst, ptrdiff_t V,         \
                                    ptrdiff_t lanes, ptrdiff_t q0, ptrdiff_t q1) {               \
    typedef bk_vec_##P##_##SUF VT;                                                               \
    enum { N = BYTES / sizeof(T) };                                                              \
    VT bad = {0};                                                                                \
    T rest = 0;                                                                                  \
    ptrdiff_t q = q0;                                                                            \
    for (; q + N <= q1; q += N) {                                                                \
        ptrdiff_t l0 = 0;                                                                        \
        for (; l0 + N <= lanes; l0 += N)                                                         \
            bk_tblock_##P##_##SUF(src + l0 * stride + q, stride, dst + q * V + l0, V, &bad);     \
        for (int i = 0; i < N; i++) {                                                            \
            for (ptrdiff_t l = l0; l < lanes; l++) {                                             \
                const T s = src[l * stride + q + i];                                             \
                rest += s - s;                                                                   \
                dst[(q + i) * V + l] = s;                                                        \
            }                                                                                    \
            for (ptrdiff_t l = lanes; l < V; l++)                                                \
                dst[(q + i) * V + l] = 0;                                                        \
        }                                                                                        \
    }                                                                                            \
    for (; q < q1; q++) {                                                                        \
        for (ptrdiff_t l = 0; l < lanes; l++) {                                                  \
            const T s = src[l * stride + q];                                                     \
            rest += s - s;                                                                       \
            dst[q * V + l] = s;                                                                  \
        }                                                                                        \
        for (ptrdiff_t l = lanes; l < V; l++)                                                    \
            dst[q * V + l] = 0;                                                                  \
    }                                                                                            \
    for (int l = 0; l < N; l++)                                                                  \
        rest += bad[l];                                                                          \
    return rest != rest;                                                                         \
}                                                                                                \
                                                                                                 \
/* grad_input's packing: dst[pos[q] * V + l] = src[l * taps + q] (lanes' kernels, tap q at     \
   packed position pos[q]; pos NULL: taps - 1 - q, the taps reversed: the adjoint; a strided    \
   input gradient's phases put each phase's reversed taps together), zeros past `lanes`; N      \
   lanes at a time by register transposes of N x N blocks of (lane, tap). A row's last block    \
   of taps is read whole where that stays within the lanes' values (the next lane's taps ride   \
   along in columns never stored), else value by value; one tap a lane is a copy. */           \
ATTR static void bk_flip_##P##_##SUF(const T* src, ptrdiff_t taps, const ptrdiff_t* pos,        \
                                     T* dst, ptrdiff_t V, ptrdiff_t lanes) {                     \
    typedef bk_vec_##P##_##SUF VT;                                                               \
    enum { N = BYTES / sizeof(T) };                                                              \
    ptrdiff_t l0 = 0;                                                                            \
    if (taps == 1) {                                                                             \
        memcpy(dst, src, (size_t)lanes * sizeof(T));                                             \
        memset(dst + lanes, 0, (size_t)(V - lanes) * sizeof(T));                                 \
        return;                                                                                  \
    }                                                                                            \
    for (; l0 + N <= lanes; l0 += N)                                                             \
        for (ptrdiff_t t0 = 0; t0 < taps; t0 += N) {                                             \
            const ptrdiff_t nt = taps - t0 < N ? taps - t0 : N;                                  \
            if (N >= 8 && nt * 4 <= N) {  /* a few taps past the last whole block (a 3x3's   \
                ninth at AVX2): copied, not a transpose of N rows for them (4.5% of ResNet-18's   \
                512-channel input gradient at batch 1; at 4 lanes the transpose was faster) */   \
                for (ptrdiff_t j = 0; j < nt; j++) {                                             \
                    const ptrdiff_t q = t0 + j, at = pos ? pos[q] : taps - 1 - q;                \
                    for (int i = 0; i < N; i++)                                                  \
                        dst[at * V + l0 + i] = src[(l0 + i) * taps + q];                         \
                }                                                                                \
                continue;                                                                        \
            }                                                                                    \
            VT v[N];                                                                             \
            for (int i = 0; i < N; i++) {                                                        \
                const ptrdiff_t at = (l0 + i) * taps + t0;                                       \
                if (at + N <= lanes * taps) {                                                    \
                    memcpy(&v[i], src + at, sizeof(VT));                                         \
                } else {                                                                         \
                    T row[N] = {0};                                                              \
                    for (ptrdiff_t k = 0; k < nt; k++)                                           \
                        row[k] = src[at + k];                                                    \
                    memcpy(&v[i], row, sizeof(VT));                                              \
                }                                                                                \
            }                                                                                    \
            BK_TRANSPOSE(NL, VT, IT, v)                                                          \
            for (ptrdiff_t j = 0; j < nt; j++) {                                                 \
                const ptrdiff_t q = t0 + j, at = pos ? pos[q] : taps - 1 - q;                    \
                memcpy(dst + at * V + l0, &v[j], sizeof(VT));                                    \
            }                                                                                    \
        }                                                                                        \
    for (ptrdiff_t q = 0; q < taps; q++) {                                                       \
        T* d = dst + (pos ? pos[q] : taps - 1 - q) * V;                                          \
        for (ptrdiff_t l = l0; l < lanes; l++)                                                   \
            d[l] = src[l * taps + q];                                                            \
        for (ptrdiff_t l = lanes; l < V; l++)                                                    \
            d[l] = 0;                                                                            \
    }                                                                                            \
}

/* An N x N transpose of v[N] in registers: each stage w swaps the off-diagonal w x w blocks of
   the row pairs (i, i + w), a two-source shuffle per row (BK_TLO/BK_THI: lane p's source in
   the pair's 2N lanes; FASTCONV_SHUFFLE, for GCC and clang alike). */
#define BK_TLO_2_1 0, 2
#define BK_THI_2_1 1, 3
#define BK_TLO_4_1 0, 4, 2, 6
#define BK_THI_4_1 1, 5, 3, 7
#define BK_TLO_4_2 0, 1, 4, 5
#define BK_THI_4_2 2, 3, 6, 7
#define BK_TLO_8_1 0, 8, 2, 10, 4, 12, 6, 14
#define BK_THI_8_1 1, 9, 3, 11, 5, 13, 7, 15
#define BK_TLO_8_2 0, 1, 8, 9, 4, 5, 12, 13
#define BK_THI_8_2 2, 3, 10, 11, 6, 7, 14, 15
#define BK_TLO_8_4 0, 1, 2, 3, 8, 9, 10, 11
#define BK_THI_8_4 4, 5, 6, 7, 12, 13, 14, 15
#define BK_TLO_16_1 0, 16, 2, 18, 4, 20, 6, 22, 8, 24, 10, 26, 12, 28, 14, 30
#define BK_THI_16_1 1, 17, 3, 19, 5, 21, 7, 23, 9, 25, 11, 27, 13, 29, 15, 31
#define BK_TLO_16_2 0, 1, 16, 17, 4, 5, 20, 21, 8, 9, 24, 25, 12, 13, 28, 29
#define BK_THI_16_2 2, 3, 18, 19, 6, 7, 22, 23, 10, 11, 26, 27, 14, 15, 30, 31
#define BK_TLO_16_4 0, 1, 2, 3, 16, 17, 18, 19, 8, 9, 10, 11, 24, 25, 26, 27
#define BK_THI_16_4 4, 5, 6, 7, 20, 21, 22, 23, 12, 13, 14, 15, 28, 29, 30, 31
#define BK_TLO_16_8 0, 1, 2, 3, 4, 5, 6, 7, 16, 17, 18, 19, 20, 21, 22, 23
#define BK_THI_16_8 8, 9, 10, 11, 12, 13, 14, 15, 24, 25, 26, 27, 28, 29, 30, 31
#define BK_TSTAGE(V, IT, N, W, v)                                                                \
    _Pragma("GCC unroll 16")                                                                     \
    for (int i_ = 0; i_ < N; i_++)                                                               \
        if (!(i_ & W)) {                                                                         \
            const V a_ = v[i_], b_ = v[i_ + W];                                                  \
            v[i_] = FASTCONV_SHUFFLE(IT, a_, b_, BK_TLO_##N##_##W);                              \
            v[i_ + W] = FASTCONV_SHUFFLE(IT, a_, b_, BK_THI_##N##_##W);                          \
        }
#define BK_T2(V, IT, v) BK_TSTAGE(V, IT, 2, 1, v)
#define BK_T4(V, IT, v) BK_TSTAGE(V, IT, 4, 2, v) BK_TSTAGE(V, IT, 4, 1, v)
#define BK_T8(V, IT, v) BK_TSTAGE(V, IT, 8, 4, v) BK_TSTAGE(V, IT, 8, 2, v) BK_TSTAGE(V, IT, 8, 1, v)
#define BK_T16(V, IT, v) BK_TSTAGE(V, IT, 16, 8, v) BK_TSTAGE(V, IT, 16, 4, v)                   \
    BK_TSTAGE(V, IT, 16, 2, v) BK_TSTAGE(V, IT, 16, 1, v)
#define BK_TRANSPOSE_(N, V, IT, v) BK_T##N(V, IT, v)
#define BK_TRANSPOSE(N, V, IT, v) BK_TRANSPOSE_(N, V, IT, v)

/* case n: CALL with CT_ = n, for the widths a tile may have (those above MAXCT never come). */
#define BK_CASE(n, CALL) case n: if (n <= MAXCT) { enum { CT_ = n }; CALL; } break;
/* One tap of a tile (in bk_tile, whose acc, CT, KB, RT, js, rs, N and V it reads): the KB weight
   vectors at WP times the inputs broadcast from XP along the tile's columns and rows. */
#define BK_TAP(XP, WP) BK_TAP_R(XP, WP, 0, CT)
/* ... for the tile's columns [LO, HI) only (constants: the others' code is left out) */
#define BK_TAP_R(XP, WP, LO, HI)                                                                \
    {                                                                                           \
        __typeof__((XP) + 0) xt_ = (XP);                                                        \
        V wv[2];                                                                                \
        for (int b = 0; b < KB; b++)                                                            \
            memcpy(&wv[b], (WP) + b * N, sizeof(V));                                            \
        _Pragma("GCC unroll 12")                                                                \
        for (int j = 0; j < CT; j++) {                                                          \
            if (j < (LO) || j >= (HI))                                                          \
                continue;                                                                       \
            __typeof__(xt_[0]) x0 = xt_[j * js];  /* vector x scalar: one broadcast, no 0 + x */  \
            acc[0][j] += wv[0] * x0;                                                            \
            if (KB == 2)                                                                        \
                acc[1][j] += wv[1] * x0;                                                        \
            if (RT == 2) {                                                                      \
                __typeof__(xt_[0]) x1 = xt_[rs + j * js];                                       \
                acc[KB][j] += wv[0] * x1;                                                       \
                if (KB == 2)                                                                    \
                    acc[3][j] += wv[1] * x1;                                                    \
            }                                                                                   \
        }                                                                                       \
    }

/* bk_row's call of the columns of KB_ vectors by RT_ rows: a stride of 1 and one tap a channel
   as constants, each its own code; and a stride of 2 on one row (a tile's inputs at fixed
   displacements: with js a variable the broadcasts' addresses were a chain of adds, one a
   column, and wav2vec's k3/2 and ResNet's 3x3/2 rows ran at 71% of a core against 75% (AVX-512)
   and 83% against 92% (AVX2) with it a constant; with two rows the chain was not the limit) */
#define BK_COLS(P, SUF, KB_, RT_)                                                               \
    if (taps == 1 && js == 1) bk_cols_##P##_##SUF(x, cs, toff, 1, ts, C, w, KB_, RT_, 1, rs, ow,  \
                                                  out, 1, 0);                                   \
    else if (taps == 1) bk_cols_##P##_##SUF(x, cs, toff, 1, ts, C, w, KB_, RT_, js, rs, ow, out, \
                                            1, 0);                                              \
    else if (sizeof(bk_vec_##P##_##SUF) >= 32 && js == 1 && ek == 3)                           \
        bk_cols_##P##_##SUF(x, cs, toff, taps, ts, C, w, KB_, RT_, 1, rs, ow, out, 0, 3);       \
    else if (sizeof(bk_vec_##P##_##SUF) >= 32 && js == 1 && ek == 5)                           \
        bk_cols_##P##_##SUF(x, cs, toff, taps, ts, C, w, KB_, RT_, 1, rs, ow, out, 0, 5);       \
    else if (js == 1) bk_cols_##P##_##SUF(x, cs, toff, taps, ts, C, w, KB_, RT_, 1, rs, ow, out, \
                                          0, 0);                                                \
    else if (RT_ == 1 && js == 2) bk_cols_##P##_##SUF(x, cs, toff, taps, ts, C, w, KB_, RT_, 2,  \
                                                      rs, ow, out, 0, 0);                       \
    else bk_cols_##P##_##SUF(x, cs, toff, taps, ts, C, w, KB_, RT_, js, rs, ow, out, 0, 0);

#define BK_CASES(CALL) BK_CASE(1, CALL) BK_CASE(2, CALL) BK_CASE(3, CALL) BK_CASE(4, CALL)      \
    BK_CASE(5, CALL) BK_CASE(6, CALL) BK_CASE(7, CALL) BK_CASE(8, CALL) BK_CASE(9, CALL)       \
    BK_CASE(10, CALL) BK_CASE(11, CALL) BK_CASE(12, CALL)

FASTCONV_EACH_LEVEL(BK_LEVEL)

#define BK_ENTRIES(X, LV) X(bk_row_f32, LV) X(bk_row_f64, LV) X(bk_gk_f32, LV) X(bk_gk_f64, LV) \
    X(bk_gkp_f32, LV) X(bk_gkp_f64, LV)                                                      \
    X(bk_unpack_f32, LV) X(bk_unpack_f64, LV) X(bk_pack_f32, LV) X(bk_pack_f64, LV)          \
    X(bk_flip_f32, LV) X(bk_flip_f64, LV) X(bk_nonfinite_f32, LV) X(bk_nonfinite_f64, LV)    \
    X(bkb_fwd_f32, LV) X(bkb_fwd_f64, LV) X(bkb_gk_f32, LV) X(bkb_gk_f64, LV)              \
    X(bpl_row_f32, LV) X(bpl_row_f64, LV)
FASTCONV_KERNEL_TABLE(bk, BK_ENTRIES, "FASTCONV_BLOCKED_LEVEL")

#endif
