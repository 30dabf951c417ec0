/* Micro-kernels of fastconv's direct convolution (src/_direct.pyx), float and double.
 *
 * Written with GCC vector types so that a tile of accumulators stays in registers whatever the
 * instruction set; following BLIS, only these kernels depend on it: GCC's target_clones compiles
 * the entry points for x86-64-v4 (AVX-512), x86-64-v3 (AVX2 + FMA) and the baseline, and the
 * loader picks one for the machine, so the portable build (no -march) still runs at the machine's
 * vector width. A build that already targets AVX2 or better (FASTCONV_NATIVE=1) compiles them
 * once for that target. One machine always runs the same clone, so results never change from
 * call to call.
 *
 * Entry points (Py_ssize_t indices; `base` offsets may be negative, every address read is not):
 *   fc_fwd_rows_T  a run of output rows of the forward pass (also grad_input at stride 1)
 *   fc_gw_rows_T   the kernel-gradient dot products of a run of rows, into V-lane accumulators
 */
#ifndef FASTCONV_DIRECT_KERNELS_H
#define FASTCONV_DIRECT_KERNELS_H

#include <stdlib.h>

/* The vectors never cross a non-inlined call, so the ABI note about 64-byte vector arguments in
   the baseline clone does not apply. */
#pragma GCC diagnostic ignored "-Wpsabi"

#include "_cpu_level.h"
#define FC_DISPATCH FASTCONV_DISPATCH
#define FC_BASE_BYTES FASTCONV_BASE_BYTES
#define FC_AI static inline __attribute__((always_inline))
/* A half or quarter vector, never less than one element. */
#define FC_PART(BYTES, N, T) ((BYTES) / (N) > sizeof(T) ? (BYTES) / (N) : sizeof(T))
#define FC_DOT_TILE 32    /* grad_kernel walks a row in tiles of this many vectors */
#define FC_ROW_GROUP 8    /* and the rows in groups of at least this many (4 tiles) */
#define FC_KW_TABLE 32    /* edge tiles tabulate the shifts of up to this many kernel columns */
#define FC_KH_REUSE 5     /* row tiles reuse input rows for kernels of 3 or 5 rows */
/* A forward sum of more taps than this (channels x kernel volume) goes in blocks of this many,
   each summed by the tiles from zero, the block sums added in order (fc_fwd_long): it then rounds
   like (block + taps / block) additions, not like `taps` in a row -- 2**21 float32 taps of
   uniform data went from 5.7e-4 of the result to 1e-6. Shorter sums (nearly every layer) run the
   tiles as they are, bit for bit. */
#define FC_TAP_BLOCK 2048
#define FC_LONG_CHUNK 128 /* fc_fwd_long's columns at a time: two 4 x 128 sums on the stack */

/* S streams x NV vectors (L lanes each) of outputs, at columns o + voff[v] of a row:
     y[m*ys + voff[v] + j] = sum_t w[widx[t] + m*wm] * x[base + xoff[t] + m*xs + voff[v] + j]
   (x and y already offset to column o; with `channels` the streams are output channels sharing
   each input vector, else output rows sharing each weight). `masked`: taps whose kernel column
   leaves the input for some lanes (clo/chi: the valid output columns of each kernel column)
   load the vector where it is inside the input and move it into place with a shuffle that fills
   zeros, so nothing outside the input is read and no padded copy is made (those lanes add the
   weight times zero, as the textbook sum does; elsewhere the padding is skipped, and the caller
   puts back the NaN of 0 * Inf there, see fastconv/_algorithms/direct.py). */
#define FC_TILE(T, VT, VU, VI, IT, P)                                                              \
FC_AI int P##_edge(Py_ssize_t lo, Py_ssize_t hi, Py_ssize_t* d) {                                  \
    enum { L = (int)(sizeof(VT) / sizeof(T)) };                                                    \
    *d = 0;                                                                                        \
    if (lo >= L || hi <= 0 || hi <= lo) return 0;     /* no lane inside: skip the tap */           \
    if (lo <= 0 && hi >= L) return 1;                 /* every lane inside */                      \
    *d = lo > 0 ? lo : hi - L;                        /* load shifted by d, move back */           \
    return 2;                                                                                      \
}                                                                                                  \
FC_AI void P(int S, int NV, int masked, int channels, const T* restrict x, Py_ssize_t base,        \
        Py_ssize_t xs, const Py_ssize_t* restrict xoff, const Py_ssize_t* restrict widx,           \
        const Py_ssize_t* restrict ecol, Py_ssize_t ntaps, const T* restrict w,                    \
        Py_ssize_t wm, T* restrict y, Py_ssize_t ys, Py_ssize_t o, const Py_ssize_t* voff,         \
        const Py_ssize_t* restrict clo, const Py_ssize_t* restrict chi, Py_ssize_t kw) {           \
    enum { L = (int)(sizeof(VT) / sizeof(T)) };                                                    \
    VT acc[4][8];                                                                                  \
    VI lane;                                                                                       \
    signed char kind[8][FC_KW_TABLE];                                                              \
    Py_ssize_t shift[8][FC_KW_TABLE];                                                              \
    const int table = masked && kw <= FC_KW_TABLE;                                                 \
    for (int j = 0; j < L; j++) lane[j] = j;                                                       \
    for (int m = 0; m < S; m++) for (int v = 0; v < NV; v++) acc[m][v] = (VT){0};                  \
    if (table)                                                                                     \
        for (int v = 0; v < NV; v++)                                                               \
            for (Py_ssize_t e = 0; e < kw; e++)                                                    \
                kind[v][e] = (signed char)P##_edge(clo[e] - (o + voff[v]),                         \
                                                   chi[e] - (o + voff[v]), &shift[v][e]);          \
    for (Py_ssize_t t = 0; t < ntaps; t++) {                                                       \
        const T* wt = w + widx[t];                                                                 \
        for (int v = 0; v < NV; v++) {                                                             \
            Py_ssize_t d = 0;                                                                      \
            int k = 1;                                                                             \
            VI idx = lane;                                                                         \
            if (masked) {                                                                          \
                const Py_ssize_t e = ecol[t];                                                      \
                if (table) { k = kind[v][e]; d = shift[v][e]; }                                    \
                else k = P##_edge(clo[e] - (o + voff[v]), chi[e] - (o + voff[v]), &d);             \
                if (k == 0) continue;                                                              \
                if (k == 2) {                                                                      \
                    idx = lane - (IT)d;   /* lanes outside 0..L-1 take a zero */                   \
                    const VI out = (idx | ((IT)(L - 1) - idx)) >> (8 * sizeof(IT) - 1);            \
                    idx = (idx & ~out) | ((IT)L & out);                                            \
                } else d = 0;                                                                      \
            }                                                                                      \
            for (int m = 0; m < S; m++) {                                                          \
                const VT xv = *(const VU*)(x + (base + xoff[t] + (channels ? 0 : m * xs)           \
                                                + voff[v] + d));                                   \
                acc[m][v] += wt[channels ? m * wm : 0]                                             \
                             * (k == 2 ? __builtin_shuffle(xv, (VT){0}, idx) : xv);                \
            }                                                                                      \
        }                                                                                          \
    }                                                                                              \
    for (int m = 0; m < S; m++) for (int v = 0; v < NV; v++)                                       \
        *(VU*)(y + m * ys + voff[v]) = acc[m][v];                                                  \
}

/* The tile of 4 consecutive output rows (row stride 1, dilation 1, every kernel row inside the
   input): an input row vector feeds each of the (up to kh) output rows it belongs to, so a
   kernel column costs 3 + kh loads instead of 4 * kh. Sums go (channel, depth, column, row). */
#define FC_RTILE(T, VT, VU, VI, IT, P, EDGE)                                                       \
FC_AI void P(int NV, int masked, const T* restrict x, Py_ssize_t base, Py_ssize_t xs,              \
        const Py_ssize_t* restrict xoff, const Py_ssize_t* restrict widx, Py_ssize_t ntaps,        \
        const T* restrict w, T* restrict y, Py_ssize_t ys, Py_ssize_t o,                           \
        const Py_ssize_t* voff, const Py_ssize_t* restrict clo,                                    \
        const Py_ssize_t* restrict chi, Py_ssize_t kw, Py_ssize_t kh) {                            \
    enum { L = (int)(sizeof(VT) / sizeof(T)) };                                                    \
    VT acc[4][2];                                                                                  \
    VI lane;                                                                                       \
    for (int j = 0; j < L; j++) lane[j] = j;                                                       \
    for (int m = 0; m < 4; m++) for (int v = 0; v < NV; v++) acc[m][v] = (VT){0};                  \
    for (Py_ssize_t g0 = 0; g0 < ntaps; g0 += kh * kw)                                             \
        for (Py_ssize_t e = 0; e < kw; e++) {                                                      \
            const Py_ssize_t t = g0 + e;                                                           \
            VT wv[FC_KH_REUSE];                                                                    \
            _Pragma("GCC unroll 8")                                                                \
            for (int b = 0; b < FC_KH_REUSE; b++)                                                  \
                wv[b] = (VT){0} + (b < kh ? w[widx[t + b * kw]] : (T)0);                           \
            _Pragma("GCC unroll 2")                                                                \
            for (int v = 0; v < NV; v++) {                                                         \
                Py_ssize_t d = 0;                                                                  \
                int k = 1;                                                                         \
                VI idx = lane;                                                                     \
                if (masked) {                                                                      \
                    k = EDGE(clo[e] - (o + voff[v]), chi[e] - (o + voff[v]), &d);                  \
                    if (k == 0) continue;                                                          \
                    if (k == 2) {                                                                  \
                        idx = lane - (IT)d;                                                        \
                        const VI out = (idx | ((IT)(L - 1) - idx)) >> (8 * sizeof(IT) - 1);        \
                        idx = (idx & ~out) | ((IT)L & out);                                        \
                    } else d = 0;                                                                  \
                }                                                                                  \
                _Pragma("GCC unroll 8")                                                            \
                for (int r = 0; r < 3 + FC_KH_REUSE; r++) {                                        \
                    if (r >= 3 + kh) break;                                                        \
                    VT xv = *(const VU*)(x + (base + xoff[t] + r * xs + voff[v] + d));             \
                    if (k == 2) xv = __builtin_shuffle(xv, (VT){0}, idx);                          \
                    _Pragma("GCC unroll 4")                                                        \
                    for (int m = 0; m < 4; m++) {                                                  \
                        const int b = r - m;                                                       \
                        if (b < 0 || b >= kh || b >= FC_KH_REUSE) continue;                        \
                        acc[m][v] += wv[b] * xv;                                                   \
                    }                                                                              \
                }                                                                                  \
            }                                                                                      \
        }                                                                                          \
    for (int m = 0; m < 4; m++) for (int v = 0; v < NV; v++)                                       \
        *(VU*)(y + m * ys + voff[v]) = acc[m][v];                                                  \
}

/* The same at a column stride sw > 1: one vector, lanes gathered (only those inside). */
#define FC_TILE_STRIDED(T, VT, P)                                                                  \
FC_AI void P(int S, int channels, const T* restrict x, Py_ssize_t base, Py_ssize_t xs,             \
        Py_ssize_t sw, const Py_ssize_t* restrict xoff, const Py_ssize_t* restrict widx,           \
        const Py_ssize_t* restrict ecol, Py_ssize_t ntaps, const T* restrict w,                    \
        Py_ssize_t wm, T* restrict y, Py_ssize_t ys, Py_ssize_t o,                                 \
        const Py_ssize_t* restrict clo, const Py_ssize_t* restrict chi) {                          \
    enum { L = (int)(sizeof(VT) / sizeof(T)) };                                                    \
    VT acc[4];                                                                                     \
    for (int m = 0; m < S; m++) acc[m] = (VT){0};                                                  \
    for (Py_ssize_t t = 0; t < ntaps; t++) {                                                       \
        const T* wt = w + widx[t];                                                                 \
        Py_ssize_t lo = clo[ecol[t]] - o, hi = chi[ecol[t]] - o;                                   \
        lo = lo > 0 ? lo : 0;                                                                      \
        hi = hi < L ? hi : L;                                                                      \
        if (hi <= lo) continue;                                                                    \
        for (int m = 0; m < S; m++) {                                                              \
            const Py_ssize_t p = base + xoff[t] + (channels ? 0 : m * xs);                         \
            VT xv = (VT){0};                                                                       \
            if (lo == 0 && hi == L) { for (int j = 0; j < L; j++) xv[j] = x[p + j * sw]; }         \
            else { for (Py_ssize_t j = lo; j < hi; j++) xv[j] = x[p + j * sw]; }                   \
            acc[m] += wt[channels ? m * wm : 0] * xv;                                              \
        }                                                                                          \
    }                                                                                              \
    for (int m = 0; m < S; m++) for (int j = 0; j < L; j++) y[m * ys + j] = acc[m][j];             \
}

/* Dot products along nrows rows of len positions, into acc (4 vectors of L lanes):
     channels: acc[m] += g[m*gs + r*grs + o] * x[r*xrs + o*sw]  (4 output channels)
     else:     acc[r mod 4] += g[r*grs + o] * x[r*xrs + o*sw]   (4 rows at a time)
   A row's last, partial vector overlaps the one before and keeps only its new lanes (a
   select, so a NaN or Inf already counted is not touched). Long rows go two (channels) or
   four vectors at a time into partial sums added at the end of the row. Every lane and
   partial sum is fixed by the positions, never by the caller's blocking or threads. */
#define FC_DOT(T, VT, VU, VI, IT, P, AL)                                                           \
FC_AI VT P##_load(int strided, const T* p, Py_ssize_t sw) {                                        \
    VT v;                                                                                          \
    if (strided) { for (int j = 0; j < (int)(sizeof(VT) / sizeof(T)); j++) v[j] = p[j * sw]; }     \
    else v = *(const VU*)p;                                                                        \
    return v;                                                                                      \
}                                                                                                  \
FC_AI VT P##_row(int strided, VT s, const T* restrict g, const T* restrict x,                      \
        Py_ssize_t sw, Py_ssize_t len, VI keep) {                                                  \
    enum { L = (int)(sizeof(VT) / sizeof(T)) };                                                    \
    Py_ssize_t o = 0;                                                                              \
    if (len >= 4 * L) {                                                                            \
        VT b0 = (VT){0}, b1 = (VT){0}, b2 = (VT){0}, b3 = (VT){0};                                 \
        for (; o + 4 * L <= len; o += 4 * L) {                                                     \
            b0 += *(const VU*)(g + o) * P##_load(strided, x + o * sw, sw);                         \
            b1 += *(const VU*)(g + o + L) * P##_load(strided, x + (o + L) * sw, sw);               \
            b2 += *(const VU*)(g + o + 2 * L) * P##_load(strided, x + (o + 2 * L) * sw, sw);       \
            b3 += *(const VU*)(g + o + 3 * L) * P##_load(strided, x + (o + 3 * L) * sw, sw);       \
        }                                                                                          \
        s += (b0 + b1) + (b2 + b3);                                                                \
    }                                                                                              \
    for (; o + L <= len; o += L) s += *(const VU*)(g + o) * P##_load(strided, x + o * sw, sw);     \
    if (o < len && len >= L)                                                                       \
        s += (VT)((VI)(*(const VU*)(g + len - L) * P##_load(strided, x + (len - L) * sw, sw))      \
                  & keep);                                                                         \
    else if (o < len) {   /* a row narrower than a vector: lanes = positions */                    \
        VT p = (VT){0};                                                                            \
        for (; o < len; o++) p[o] = g[o] * x[o * sw];                                              \
        s += p;                                                                                    \
    }                                                                                              \
    return s;                                                                                      \
}                                                                                                  \
FC_AI void P(int channels, int strided, const T* restrict g, Py_ssize_t gs, Py_ssize_t grs,        \
        const T* restrict x, Py_ssize_t xrs, Py_ssize_t sw, Py_ssize_t nrows,                      \
        Py_ssize_t len, T* restrict acc) {                                                         \
    enum { L = (int)(sizeof(VT) / sizeof(T)) };                                                    \
    VT a0 = *(const VU*)acc, a1 = *(const VU*)(acc + AL);                                          \
    VT a2 = *(const VU*)(acc + 2 * AL), a3 = *(const VU*)(acc + 3 * AL);                           \
    VI lane;                                                                                       \
    for (int j = 0; j < L; j++) lane[j] = j;                                                       \
    const Py_ssize_t o2 = len - L;                                                                 \
    const VI keep = ~((lane - (IT)(L - len % L)) >> (8 * sizeof(IT) - 1));                         \
    Py_ssize_t r = 0;                                                                              \
    if (channels) {                                                                                \
        for (; r < nrows; r++) {                                                                   \
            const T* gr = g + r * grs;                                                             \
            const T* xr = x + r * xrs;                                                             \
            VT c0 = (VT){0}, c1 = (VT){0}, c2 = (VT){0}, c3 = (VT){0};                             \
            Py_ssize_t o = 0;                                                                      \
            for (; o + 2 * L <= len; o += 2 * L) {                                                 \
                const VT xv = P##_load(strided, xr + o * sw, sw);                                  \
                const VT xw = P##_load(strided, xr + (o + L) * sw, sw);                            \
                a0 += *(const VU*)(gr + o) * xv;                                                   \
                a1 += *(const VU*)(gr + gs + o) * xv;                                              \
                a2 += *(const VU*)(gr + 2 * gs + o) * xv;                                          \
                a3 += *(const VU*)(gr + 3 * gs + o) * xv;                                          \
                c0 += *(const VU*)(gr + o + L) * xw;                                               \
                c1 += *(const VU*)(gr + gs + o + L) * xw;                                          \
                c2 += *(const VU*)(gr + 2 * gs + o + L) * xw;                                      \
                c3 += *(const VU*)(gr + 3 * gs + o + L) * xw;                                      \
            }                                                                                      \
            for (; o + L <= len; o += L) {                                                         \
                const VT xv = P##_load(strided, xr + o * sw, sw);                                  \
                c0 += *(const VU*)(gr + o) * xv;                                                   \
                c1 += *(const VU*)(gr + gs + o) * xv;                                              \
                c2 += *(const VU*)(gr + 2 * gs + o) * xv;                                          \
                c3 += *(const VU*)(gr + 3 * gs + o) * xv;                                          \
            }                                                                                      \
            if (o < len && len >= L) {                                                             \
                const VT xv = P##_load(strided, xr + o2 * sw, sw);                                 \
                c0 += (VT)((VI)(*(const VU*)(gr + o2) * xv) & keep);                               \
                c1 += (VT)((VI)(*(const VU*)(gr + gs + o2) * xv) & keep);                          \
                c2 += (VT)((VI)(*(const VU*)(gr + 2 * gs + o2) * xv) & keep);                      \
                c3 += (VT)((VI)(*(const VU*)(gr + 3 * gs + o2) * xv) & keep);                      \
            } else if (o < len) {                                                                  \
                VT p0 = (VT){0}, p1 = (VT){0}, p2 = (VT){0}, p3 = (VT){0};                         \
                for (; o < len; o++) {                                                             \
                    const T xs = xr[o * sw];                                                       \
                    p0[o] = gr[o] * xs;                                                            \
                    p1[o] = gr[gs + o] * xs;                                                       \
                    p2[o] = gr[2 * gs + o] * xs;                                                   \
                    p3[o] = gr[3 * gs + o] * xs;                                                   \
                }                                                                                  \
                c0 += p0; c1 += p1; c2 += p2; c3 += p3;                                            \
            }                                                                                      \
            a0 += c0; a1 += c1; a2 += c2; a3 += c3;                                                \
        }                                                                                          \
    } else if (len >= 4 * L && nrows < 4) {   /* a long row or three: one row a sum */             \
        if (r < nrows) a0 = P##_row(strided, a0, g, x, sw, len, keep);                             \
        if (r + 1 < nrows) a1 = P##_row(strided, a1, g + grs, x + xrs, sw, len, keep);             \
        if (r + 2 < nrows) a2 = P##_row(strided, a2, g + 2 * grs, x + 2 * xrs, sw, len, keep);     \
    } else {                                  /* rows r, r+1, r+2, r+3 into a0..a3 */              \
        for (; r + 4 <= nrows; r += 4) {                                                           \
            const T* g0 = g + r * grs;                                                             \
            const T* x0 = x + r * xrs;                                                             \
            Py_ssize_t o = 0;                                                                      \
            for (; o + L <= len; o += L) {                                                         \
                a0 += *(const VU*)(g0 + o) * P##_load(strided, x0 + o * sw, sw);                   \
                a1 += *(const VU*)(g0 + grs + o) * P##_load(strided, x0 + xrs + o * sw, sw);       \
                a2 += *(const VU*)(g0 + 2 * grs + o)                                               \
                      * P##_load(strided, x0 + 2 * xrs + o * sw, sw);                              \
                a3 += *(const VU*)(g0 + 3 * grs + o)                                               \
                      * P##_load(strided, x0 + 3 * xrs + o * sw, sw);                              \
            }                                                                                      \
            if (o < len && len >= L) {                                                             \
                a0 += (VT)((VI)(*(const VU*)(g0 + o2)                                              \
                                * P##_load(strided, x0 + o2 * sw, sw)) & keep);                    \
                a1 += (VT)((VI)(*(const VU*)(g0 + grs + o2)                                        \
                                * P##_load(strided, x0 + xrs + o2 * sw, sw)) & keep);              \
                a2 += (VT)((VI)(*(const VU*)(g0 + 2 * grs + o2)                                    \
                                * P##_load(strided, x0 + 2 * xrs + o2 * sw, sw)) & keep);          \
                a3 += (VT)((VI)(*(const VU*)(g0 + 3 * grs + o2)                                    \
                                * P##_load(strided, x0 + 3 * xrs + o2 * sw, sw)) & keep);          \
            } else if (o < len) {                                                                  \
                VT p0 = (VT){0}, p1 = (VT){0}, p2 = (VT){0}, p3 = (VT){0};                         \
                for (; o < len; o++) {                                                             \
                    p0[o] = g0[o] * x0[o * sw];                                                    \
                    p1[o] = g0[grs + o] * x0[xrs + o * sw];                                        \
                    p2[o] = g0[2 * grs + o] * x0[2 * xrs + o * sw];                                \
                    p3[o] = g0[3 * grs + o] * x0[3 * xrs + o * sw];                                \
                }                                                                                  \
                a0 += p0; a1 += p1; a2 += p2; a3 += p3;                                            \
            }                                                                                      \
        }                                                                                          \
        if (r < nrows) a0 = P##_row(strided, a0, g + r * grs, x + r * xrs, sw, len, keep);         \
        if (r + 1 < nrows)                                                                         \
            a1 = P##_row(strided, a1, g + (r + 1) * grs, x + (r + 1) * xrs, sw, len, keep);        \
        if (r + 2 < nrows)                                                                         \
            a2 = P##_row(strided, a2, g + (r + 2) * grs, x + (r + 2) * xrs, sw, len, keep);        \
    }                                                                                              \
    *(VU*)acc = a0; *(VU*)(acc + AL) = a1; *(VU*)(acc + 2 * AL) = a2; *(VU*)(acc + 3 * AL) = a3;   \
}

/* The kh taps of one kernel column at once, rows at stride 1 (row r of tap b reads input row
   r + b): per 4 rows, 4 gy vectors and 3 + kh input vectors feed 4 * kh multiply-adds. Tap b's
   sums go to accp[b] (4 vectors: row r into vector r mod 4, as in the one-tap kernel). */
#define FC_DOTB(T, VT, VU, VI, IT, P, AL)                                                          \
FC_AI void P(int KH, const T* restrict g, Py_ssize_t grs, const T* restrict x,                     \
        Py_ssize_t xrs, Py_ssize_t nrows, Py_ssize_t len, T* const* accp) {                        \
    enum { L = (int)(sizeof(VT) / sizeof(T)) };                                                    \
    VT a[FC_KH_REUSE][4];                                                                          \
    VI lane;                                                                                       \
    for (int j = 0; j < L; j++) lane[j] = j;                                                       \
    const VI keep = ~((lane - (IT)(L - len % L)) >> (8 * sizeof(IT) - 1));                         \
    const int tail = len % L != 0;                                                                 \
    _Pragma("GCC unroll 8")                                                                        \
    for (int b = 0; b < KH; b++)                                                                   \
        _Pragma("GCC unroll 4")                                                                    \
        for (int m = 0; m < 4; m++) a[b][m] = *(const VU*)(accp[b] + m * AL);                      \
    Py_ssize_t r = 0;                                                                              \
    for (; r + 4 <= nrows; r += 4) {                                                               \
        const T* g0 = g + r * grs;                                                                 \
        const T* x0 = x + r * xrs;                                                                 \
        for (Py_ssize_t o = 0; o < len; o += L) {                                                  \
            const int last = o + L > len;                                                          \
            const Py_ssize_t at = last ? len - L : o;                                              \
            VT gv[4], xv[3 + FC_KH_REUSE];                                                         \
            _Pragma("GCC unroll 4")                                                                \
            for (int m = 0; m < 4; m++) gv[m] = *(const VU*)(g0 + m * grs + at);                   \
            _Pragma("GCC unroll 8")                                                                \
            for (int q = 0; q < 3 + KH; q++) xv[q] = *(const VU*)(x0 + q * xrs + at);              \
            if (last && tail) {                                                                    \
                _Pragma("GCC unroll 8")                                                            \
                for (int b = 0; b < KH; b++)                                                       \
                    _Pragma("GCC unroll 4")                                                        \
                    for (int m = 0; m < 4; m++)                                                    \
                        a[b][m] += (VT)((VI)(gv[m] * xv[m + b]) & keep);                           \
            } else {                                                                               \
                _Pragma("GCC unroll 8")                                                            \
                for (int b = 0; b < KH; b++)                                                       \
                    _Pragma("GCC unroll 4")                                                        \
                    for (int m = 0; m < 4; m++) a[b][m] += gv[m] * xv[m + b];                      \
            }                                                                                      \
        }                                                                                          \
    }                                                                                              \
    _Pragma("GCC unroll 4")                                                                        \
    for (int m = 0; m < 3; m++) {          /* the last rows, one at a time */                      \
        if (r + m >= nrows) break;                                                                 \
        const T* gr = g + (r + m) * grs;                                                           \
        const T* xr = x + (r + m) * xrs;                                                           \
        for (Py_ssize_t o = 0; o < len; o += L) {                                                  \
            const int last = o + L > len;                                                          \
            const Py_ssize_t at = last ? len - L : o;                                              \
            const VT gv = *(const VU*)(gr + at);                                                   \
            _Pragma("GCC unroll 8")                                                                \
            for (int b = 0; b < KH; b++) {                                                         \
                const VT p = gv * *(const VU*)(xr + b * xrs + at);                                 \
                a[b][m] += last && tail ? (VT)((VI)p & keep) : p;                                  \
            }                                                                                      \
        }                                                                                          \
    }                                                                                              \
    _Pragma("GCC unroll 8")                                                                        \
    for (int b = 0; b < KH; b++)                                                                   \
        _Pragma("GCC unroll 4")                                                                    \
        for (int m = 0; m < 4; m++) *(VU*)(accp[b] + m * AL) = a[b][m];                            \
}

/* Two taps with the same columns at once, 4 output channels: each loaded gy vector feeds
   both taps (acc0 += g * x0, acc1 += g * x1). */
#define FC_DOT2(T, VT, VU, VI, IT, P, LOAD)                                                        \
FC_AI void P(int strided, const T* restrict g, Py_ssize_t gs, Py_ssize_t grs,                      \
        const T* restrict x0, const T* restrict x1, Py_ssize_t xrs, Py_ssize_t sw,                 \
        Py_ssize_t nrows, Py_ssize_t len, T* restrict acc0, T* restrict acc1) {                    \
    enum { L = (int)(sizeof(VT) / sizeof(T)) };                                                    \
    VT a[4], b[4];                                                                                 \
    for (int m = 0; m < 4; m++) {                                                                  \
        a[m] = *(const VU*)(acc0 + m * L);                                                         \
        b[m] = *(const VU*)(acc1 + m * L);                                                         \
    }                                                                                              \
    VI lane;                                                                                       \
    for (int j = 0; j < L; j++) lane[j] = j;                                                       \
    const Py_ssize_t o2 = len - L;                                                                 \
    const VI keep = ~((lane - (IT)(L - len % L)) >> (8 * sizeof(IT) - 1));                         \
    for (Py_ssize_t r = 0; r < nrows; r++) {                                                       \
        const T* gr = g + r * grs;                                                                 \
        const T* xr0 = x0 + r * xrs;                                                               \
        const T* xr1 = x1 + r * xrs;                                                               \
        Py_ssize_t o = 0;                                                                          \
        for (; o + L <= len; o += L) {                                                             \
            const VT u = LOAD(strided, xr0 + o * sw, sw), v = LOAD(strided, xr1 + o * sw, sw);     \
            for (int m = 0; m < 4; m++) {                                                          \
                const VT gv = *(const VU*)(gr + m * gs + o);                                       \
                a[m] += gv * u;                                                                    \
                b[m] += gv * v;                                                                    \
            }                                                                                      \
        }                                                                                          \
        if (o < len && len >= L) {                                                                 \
            const VT u = LOAD(strided, xr0 + o2 * sw, sw), v = LOAD(strided, xr1 + o2 * sw, sw);   \
            for (int m = 0; m < 4; m++) {                                                          \
                const VT gv = *(const VU*)(gr + m * gs + o2);                                      \
                a[m] += (VT)((VI)(gv * u) & keep);                                                 \
                b[m] += (VT)((VI)(gv * v) & keep);                                                 \
            }                                                                                      \
        } else if (o < len) {                                                                      \
            for (int m = 0; m < 4; m++) {                                                          \
                VT p = (VT){0}, q = (VT){0};                                                       \
                for (Py_ssize_t i = o; i < len; i++) {                                             \
                    p[i] = gr[m * gs + i] * xr0[i * sw];                                           \
                    q[i] = gr[m * gs + i] * xr1[i * sw];                                           \
                }                                                                                  \
                a[m] += p;                                                                         \
                b[m] += q;                                                                         \
            }                                                                                      \
        }                                                                                          \
    }                                                                                              \
    for (int m = 0; m < 4; m++) { *(VU*)(acc0 + m * L) = a[m]; *(VU*)(acc1 + m * L) = b[m]; }      \
}

#define FC_STRIDED_ARGS x, base + o * sw, xs, sw, xoff, widx, ecol, ntaps, w, wm, y + o, ys, o, \
        clo, chi
#define FC_TILE_CALL(P, S, NV, MASKED, CH) P(S, NV, MASKED, CH, x, base + o * sw, xs, xoff,        \
        widx, ecol, ntaps, w, wm, y + o, ys, o, voff, clo, chi, kw)
#define FC_TILE_NV(P, S, NV, CH) { if (masked) FC_TILE_CALL(P, S, NV, 1, CH);                      \
                                   else FC_TILE_CALL(P, S, NV, 0, CH); }
#define FC_RTILE_CALL(P, KH, NV, MASKED) P##_rows(NV, MASKED, x, base + o * sw, xs, xoff,          \
        widx, ntaps, w, y + o, ys, o, voff, clo, chi, kw, KH)
#define FC_RTILE_KH(P, KH) {                                                                       \
    if (nv == 1) { if (masked) FC_RTILE_CALL(P, KH, 1, 1); else FC_RTILE_CALL(P, KH, 1, 0); }      \
    else { if (masked) FC_RTILE_CALL(P, KH, 2, 1); else FC_RTILE_CALL(P, KH, 2, 0); }              \
}
#define FC_TILE_DISPATCH_ROWS(P) {                                                                 \
    if (S == 4 && !channels && kh == 3) FC_RTILE_KH(P, 3)                                          \
    else if (S == 4 && !channels && kh == 5) FC_RTILE_KH(P, 5)                                     \
    else FC_TILE_DISPATCH(P)                                                                       \
}
#define FC_TILE_DISPATCH(P) {                                                                      \
    if (S == 4 && channels) { if (nv == 1) FC_TILE_NV(P, 4, 1, 1) else FC_TILE_NV(P, 4, 2, 1) }    \
    else if (S == 4) { if (nv == 1) FC_TILE_NV(P, 4, 1, 0) else FC_TILE_NV(P, 4, 2, 0) }           \
    else if (nv == 1) FC_TILE_NV(P, 1, 1, 1)                                                       \
    else if (nv == 2) FC_TILE_NV(P, 1, 2, 1)                                                       \
    else if (nv == 3) FC_TILE_NV(P, 1, 3, 1)                                                       \
    else FC_TILE_NV(P, 1, 4, 1)                                                                    \
}
/* Half and quarter vectors: blocks of at most two. */
#define FC_TILE_DISPATCH_NARROW(P) {                                                               \
    if (S == 4 && channels) { if (nv == 1) FC_TILE_NV(P, 4, 1, 1) else FC_TILE_NV(P, 4, 2, 1) }    \
    else if (S == 4) { if (nv == 1) FC_TILE_NV(P, 4, 1, 0) else FC_TILE_NV(P, 4, 2, 0) }           \
    else if (nv == 1) FC_TILE_NV(P, 1, 1, 1)                                                       \
    else FC_TILE_NV(P, 1, 2, 1)                                                                    \
}

#define FC_DOT_DISPATCH(P) {                                                                       \
    if (channels && sw == 1) P(1, 0, gp, gs, grs, xp, xrs, 1, nr, hi - lo, a);                     \
    else if (channels) P(1, 1, gp, gs, grs, xp, xrs, sw, nr, hi - lo, a);                          \
    else if (sw == 1) P(0, 0, gp, gs, grs, xp, xrs, 1, nr, hi - lo, a);                            \
    else P(0, 1, gp, gs, grs, xp, xrs, sw, nr, hi - lo, a);                                        \
}

/* The vector tiles of one row at unit stride, L lanes a vector: blocks of up to 2 (4 streams,
   or narrow vectors) or 4 vectors (one stream), 8 along an interior stretch of a one-channel
   row (WIDE: full vectors); the last vector of the row overlaps the one before. One function
   per vector width keeps each one small enough for the compiler. */
#define FC_BLOCKS(T, VT, P, NAME, DISPATCH, WIDE, ATTR)                                            \
ATTR __attribute__((noinline)) static void NAME(int S, int channels,                               \
        const T* restrict x, Py_ssize_t base, Py_ssize_t xs,                                       \
        const Py_ssize_t* restrict xoff, const Py_ssize_t* restrict widx,                          \
        const Py_ssize_t* restrict ecol, Py_ssize_t ntaps, const T* restrict w,                    \
        Py_ssize_t wm, T* restrict y, Py_ssize_t ys, Py_ssize_t o0, Py_ssize_t o1,                 \
        const Py_ssize_t* restrict clo, const Py_ssize_t* restrict chi, Py_ssize_t kw,             \
        Py_ssize_t kh) {                                                                           \
    const Py_ssize_t lanes = sizeof(VT) / sizeof(T), L = lanes, sw = 1;                            \
    const Py_ssize_t ilo = clo[0], ihi = chi[kw - 1];                                              \
    const int nvmax = S == 4 || !WIDE ? 2 : 4;                                                     \
    (void)kh;                                                                                      \
    for (Py_ssize_t o = o0; o < o1; ) {                                                            \
        Py_ssize_t voff[8] = {0, L, 2 * L, 3 * L, 4 * L, 5 * L, 6 * L, 7 * L}, p = o;              \
        int nv = 0, masked = 0;                                                                    \
        if (WIDE && S == 1 && o >= ilo && o + 8 * L <= (o1 < ihi ? o1 : ihi)) {                    \
            FC_TILE_CALL(P, 1, 8, 0, 1);     /* one channel, a long row: 8 accumulators */         \
            o += 8 * L;                                                                            \
            continue;                                                                              \
        }                                                                                          \
        while (nv < nvmax && p < o1) {                                                             \
            const Py_ssize_t q = p + lanes <= o1 ? p : o1 - lanes;                                 \
            voff[nv++] = q - o;                                                                    \
            masked |= q < ilo || q + lanes > ihi;                                                  \
            p = q + lanes;                                                                         \
        }                                                                                          \
        DISPATCH(P)                                                                                \
        o = p;                                                                                     \
    }                                                                                              \
}

#define FC_DEFINE(T, NAME, IT, BYTES, ATTR)                                                        \
typedef T NAME##_v __attribute__((vector_size(BYTES)));                                            \
typedef T NAME##_vu __attribute__((vector_size(BYTES), aligned(sizeof(T)), may_alias));            \
typedef T NAME##_h __attribute__((vector_size(FC_PART(BYTES, 2, T))));                             \
typedef T NAME##_hu __attribute__((vector_size(FC_PART(BYTES, 2, T)), aligned(sizeof(T)),          \
                                    may_alias));                                                   \
typedef IT NAME##_i __attribute__((vector_size(BYTES)));                                           \
typedef IT NAME##_hi __attribute__((vector_size(FC_PART(BYTES, 2, T))));                           \
typedef T NAME##_q __attribute__((vector_size(FC_PART(BYTES, 4, T))));                             \
typedef T NAME##_qu __attribute__((vector_size(FC_PART(BYTES, 4, T)), aligned(sizeof(T)),          \
                                    may_alias));                                                   \
typedef IT NAME##_qi __attribute__((vector_size(FC_PART(BYTES, 4, T))));                           \
FC_TILE(T, NAME##_v, NAME##_vu, NAME##_i, IT, NAME##_tile)                                         \
FC_TILE(T, NAME##_h, NAME##_hu, NAME##_hi, IT, NAME##_tile_half)                                   \
FC_TILE(T, NAME##_q, NAME##_qu, NAME##_qi, IT, NAME##_tile_quarter)                                \
FC_RTILE(T, NAME##_v, NAME##_vu, NAME##_i, IT, NAME##_tile_rows, NAME##_tile_edge)                 \
FC_TILE_STRIDED(T, NAME##_v, NAME##_tile_strided)                                                  \
FC_BLOCKS(T, NAME##_v, NAME##_tile, NAME##_blocks, FC_TILE_DISPATCH_ROWS, 1, ATTR)                 \
FC_BLOCKS(T, NAME##_h, NAME##_tile_half, NAME##_blocks_half, FC_TILE_DISPATCH_NARROW, 0,           \
          ATTR)                                                                                    \
FC_BLOCKS(T, NAME##_q, NAME##_tile_quarter, NAME##_blocks_quarter,                                 \
          FC_TILE_DISPATCH_NARROW, 0, ATTR)                                                        \
FC_DOT(T, NAME##_v, NAME##_vu, NAME##_i, IT, NAME##_dot, BYTES / sizeof(T))                        \
FC_DOT(T, NAME##_h, NAME##_hu, NAME##_hi, IT, NAME##_dot_half, BYTES / sizeof(T))                  \
FC_DOT(T, NAME##_q, NAME##_qu, NAME##_qi, IT, NAME##_dot_quarter, BYTES / sizeof(T))               \
FC_DOT2(T, NAME##_v, NAME##_vu, NAME##_i, IT, NAME##_dot2, NAME##_dot_load)                        \
FC_DOTB(T, NAME##_v, NAME##_vu, NAME##_i, IT, NAME##_dotb, BYTES / sizeof(T))                      \
/* One output row (S streams), columns o0..o1: vector tiles where the row is wide enough,          \
   else one column at a time with the taps that fall inside. */                                    \
ATTR static void fc_fwd_row_##NAME(int S, int channels, const T* restrict x, Py_ssize_t base,      \
        Py_ssize_t xs, Py_ssize_t sw, const Py_ssize_t* restrict xoff,                             \
        const Py_ssize_t* restrict widx, const Py_ssize_t* restrict ecol, Py_ssize_t ntaps,        \
        const T* restrict w, Py_ssize_t wm, T* restrict y, Py_ssize_t ys,                          \
        Py_ssize_t o0, Py_ssize_t o1, const Py_ssize_t* restrict clo,                              \
        const Py_ssize_t* restrict chi, Py_ssize_t kw, Py_ssize_t kh) {                            \
    const Py_ssize_t L = BYTES / sizeof(T);                                                        \
    Py_ssize_t minr = o1 - o0, lanes = 0, o;                                                       \
    for (Py_ssize_t e = 0; e < kw; e++)                                                            \
        if (chi[e] > clo[e] && chi[e] - clo[e] < minr) minr = chi[e] - clo[e];                     \
    if (sw == 1) lanes = minr >= L ? L : minr >= L / 2 ? L / 2 : minr >= L / 4 ? L / 4 : 0;        \
    else lanes = o1 - o0 >= L ? L : 0;                                                             \
    if (lanes == 0) {                                                                              \
        for (o = o0; o < o1; o++) {                                                                \
            T acc[4] = {0, 0, 0, 0};                                                               \
            for (Py_ssize_t t = 0; t < ntaps; t++) {                                               \
                if (o < clo[ecol[t]] || o >= chi[ecol[t]]) continue;                               \
                const Py_ssize_t p = base + xoff[t] + o * sw;                                      \
                for (int m = 0; m < S; m++)                                                        \
                    acc[m] += w[widx[t] + (channels ? m * wm : 0)]                                 \
                              * x[p + (channels ? 0 : m * xs)];                                    \
            }                                                                                      \
            for (int m = 0; m < S; m++) y[m * ys + o] = acc[m];                                    \
        }                                                                                          \
        return;                                                                                    \
    }                                                                                              \
    if (sw != 1) {                                                                                 \
        for (o = o0; ; o += L) {                                                                   \
            if (o + L > o1) o = o1 - L;                                                            \
            if (S == 4 && channels) NAME##_tile_strided(4, 1, FC_STRIDED_ARGS);                    \
            else if (S == 4) NAME##_tile_strided(4, 0, FC_STRIDED_ARGS);                           \
            else NAME##_tile_strided(1, 1, FC_STRIDED_ARGS);                                       \
            if (o + L >= o1) break;                                                                \
        }                                                                                          \
        return;                                                                                    \
    }                                                                                              \
    if (lanes == L) NAME##_blocks(S, channels, x, base, xs, xoff, widx, ecol, ntaps, w, wm,        \
                                  y, ys, o0, o1, clo, chi, kw, kh);                                \
    else if (lanes == L / 2) NAME##_blocks_half(S, channels, x, base, xs, xoff, widx, ecol,        \
                                  ntaps, w, wm, y, ys, o0, o1, clo, chi, kw, kh);                  \
    else NAME##_blocks_quarter(S, channels, x, base, xs, xoff, widx, ecol, ntaps, w, wm, y,        \
                               ys, o0, o1, clo, chi, kw, kh);                                      \
}                                                                                                  \
/* The dot products of nrows rows (4 channels, or one channel), output columns o0..o1, for         \
   every tap, into acc[tap][4][L]; the rows go in groups, the columns in tiles that stay           \
   in L1. */                                                                                       \
ATTR static void fc_gw_rows_##NAME(int channels, const T* restrict g, Py_ssize_t gs,               \
        Py_ssize_t grs, const T* restrict x, Py_ssize_t base, Py_ssize_t xrs, Py_ssize_t sw,       \
        Py_ssize_t nrows, const Py_ssize_t* restrict xoff, const Py_ssize_t* restrict tap,         \
        const Py_ssize_t* restrict ecol, Py_ssize_t ntaps, const Py_ssize_t* restrict clo,         \
        const Py_ssize_t* restrict chi, Py_ssize_t o0, Py_ssize_t o1, Py_ssize_t kh,               \
        T* restrict acc) {                                                                         \
    const Py_ssize_t L = BYTES / sizeof(T), tile = FC_DOT_TILE * L, ow = o1 - o0;                  \
    const Py_ssize_t group = 4 * tile / ow > FC_ROW_GROUP ? 4 * tile / ow : FC_ROW_GROUP;          \
    const Py_ssize_t kw = ntaps > 0 ? ecol[ntaps - 1] + 1 : 1;                                     \
    const int columns = !channels && sw == 1 && kh == 3;                                           \
    for (Py_ssize_t r0 = 0; r0 < nrows; r0 += group) {                                             \
        const Py_ssize_t nr = nrows - r0 < group ? nrows - r0 : group;                             \
        for (Py_ssize_t t0 = o0; t0 < o1; t0 += tile) {                                            \
            const Py_ssize_t t1 = t0 + tile < o1 ? t0 + tile : o1;                                 \
            for (Py_ssize_t t = 0; t < ntaps; t++) {                                               \
                const Py_ssize_t e = ecol[t];                                                      \
                const Py_ssize_t lo = clo[e] > t0 ? clo[e] : t0;                                   \
                const Py_ssize_t hi = chi[e] < t1 ? chi[e] : t1;                                   \
                if (columns && t % (kh * kw) >= kw) continue;   /* done with its column */         \
                if (hi <= lo) continue;                                                            \
                if (columns && hi - lo >= L) {     /* the kh taps of kernel column e */            \
                    T* accp[FC_KH_REUSE];                                                          \
                    for (Py_ssize_t b = 0; b < kh; b++) accp[b] = acc + tap[t + b * kw] * 4 * L;   \
                    const T* gp = g + r0 * grs + lo;                                               \
                    const T* xp = x + (base + r0 * xrs + xoff[t] + lo);                            \
                    NAME##_dotb(3, gp, grs, xp, xrs, nr, hi - lo, accp);                           \
                    continue;                                                                      \
                }                                                                                  \
                if (columns) {                      /* narrow: the kh taps one by one */           \
                    for (Py_ssize_t b = 0; b < kh; b++) {                                          \
                        const T* gp = g + r0 * grs + lo;                                           \
                        const T* xp = x + (base + r0 * xrs + xoff[t + b * kw] + lo * sw);          \
                        T* a = acc + tap[t + b * kw] * 4 * L;                                      \
                        if (hi - lo >= L / 2) FC_DOT_DISPATCH(NAME##_dot_half)                     \
                        else FC_DOT_DISPATCH(NAME##_dot_quarter)                                   \
                    }                                                                              \
                    continue;                                                                      \
                }                                                                                  \
                const T* gp = g + r0 * grs + lo;                                                   \
                const T* xp = x + (base + r0 * xrs + xoff[t] + lo * sw);                           \
                T* a = acc + tap[t] * 4 * L;                                                       \
                if (channels && t + 1 < ntaps && hi - lo >= L) {   /* pair with the next tap */    \
                    const Py_ssize_t f = ecol[t + 1];                                              \
                    const Py_ssize_t lo1 = clo[f] > t0 ? clo[f] : t0;                              \
                    const Py_ssize_t hi1 = chi[f] < t1 ? chi[f] : t1;                              \
                    if (lo1 == lo && hi1 == hi) {                                                  \
                        const T* xq = x + (base + r0 * xrs + xoff[t + 1] + lo * sw);               \
                        T* b = acc + tap[t + 1] * 4 * L;                                           \
                        if (sw == 1) NAME##_dot2(0, gp, gs, grs, xp, xq, xrs, 1, nr, hi - lo, a,   \
                                                 b);                                               \
                        else NAME##_dot2(1, gp, gs, grs, xp, xq, xrs, sw, nr, hi - lo, a, b);      \
                        t++;                                                                       \
                        continue;                                                                  \
                    }                                                                              \
                }                                                                                  \
                if (hi - lo >= L) FC_DOT_DISPATCH(NAME##_dot)                                      \
                else if (hi - lo >= L / 2) FC_DOT_DISPATCH(NAME##_dot_half)                        \
                else FC_DOT_DISPATCH(NAME##_dot_quarter)                                           \
            }                                                                                      \
        }                                                                                          \
    }                                                                                              \
}                                                                                                  \
/* fc_fwd_rows for more than FC_TAP_BLOCK taps, with the same tiles (4 channels a row, or 4 rows  \
   -- the last block overlapping, kh > 0 reusing input rows -- or single rows), FC_LONG_CHUNK      \
   columns at a time: the tiles sum each block of taps into `part` (4 streams, offset so that      \
   column o lands at o - c0), the block sums are added in `sum` and stored once (an overlapping    \
   tile stores the same values, as it always does). Blocks hold whole groups of kh x kw taps for   \
   the row-reusing tiles; a kernel row longer than a block is cut within the row, each block       \
   seeing only its own kernel columns (ecol, clo, chi shifted to its first), so no call looks at   \
   all kw columns (fc_fwd_row's minr would). */                                                    \
ATTR __attribute__((noinline)) static void fc_fwd_long_##NAME(int channels, const T* x,            \
        Py_ssize_t base, Py_ssize_t xrs, Py_ssize_t sw, const Py_ssize_t* xoff,                    \
        const Py_ssize_t* widx, const Py_ssize_t* ecol, Py_ssize_t ntaps, const T* w,              \
        Py_ssize_t wm, T* y, Py_ssize_t yrs, Py_ssize_t ys, Py_ssize_t nrows, Py_ssize_t o0,       \
        Py_ssize_t o1, const Py_ssize_t* clo, const Py_ssize_t* chi, Py_ssize_t kw,               \
        Py_ssize_t kh) {                                                                           \
    enum { C = FC_LONG_CHUNK };                                                                    \
    const int rows = !channels && nrows >= 4, S = channels || rows ? 4 : 1;                        \
    const Py_ssize_t reuse = rows && kh > 0 && kh * kw <= FC_TAP_BLOCK ? kh : 0;                   \
    const Py_ssize_t block = reuse ? FC_TAP_BLOCK / (kh * kw) * (kh * kw) : FC_TAP_BLOCK;          \
    T part[4 * C], sum[4 * C];                                                                     \
    Py_ssize_t cols[FC_TAP_BLOCK];                                                                 \
    for (Py_ssize_t q = 0; ; q = rows ? (q + 8 <= nrows ? q + 4 : nrows - 4) : q + 1) {           \
        for (Py_ssize_t c0 = o0; c0 < o1; c0 += C) {                                               \
            const Py_ssize_t c1 = o1 - c0 > C ? c0 + C : o1;                                       \
            for (Py_ssize_t t0 = 0, t1; t0 < ntaps; t0 = t1) {                                     \
                t1 = ntaps - t0 > block ? t0 + block : ntaps;                                      \
                const Py_ssize_t* ec = ecol + t0;                                                  \
                Py_ssize_t e0 = 0, bw = kw;                                                        \
                if (kw > FC_TAP_BLOCK) {    /* within one kernel row, its own columns */           \
                    for (Py_ssize_t t = t0 + 1; t < t1; t++)                                       \
                        if (ecol[t] <= ecol[t - 1]) { t1 = t; break; }                             \
                    e0 = ecol[t0];                                                                 \
                    bw = ecol[t1 - 1] - e0 + 1;                                                    \
                    for (Py_ssize_t t = t0; t < t1; t++) cols[t - t0] = ecol[t] - e0;              \
                    ec = cols;                                                                     \
                }                                                                                  \
                fc_fwd_row_##NAME(S, !rows, x, base + q * xrs, rows ? xrs : 0, sw, xoff + t0,      \
                                  widx + t0, ec, t1 - t0, w, rows ? 0 : wm, part - c0, C, c0, c1,  \
                                  clo + e0, chi + e0, bw, reuse);                                  \
                for (int m = 0; m < S; m++)                                                        \
                    for (Py_ssize_t i = m * C; i < m * C + c1 - c0; i++)                           \
                        sum[i] = t0 == 0 ? part[i] : sum[i] + part[i];                             \
            }                                                                                      \
            for (int m = 0; m < S; m++)                                                            \
                for (Py_ssize_t i = 0; i < c1 - c0; i++)                                           \
                    y[(q + (rows ? m : 0)) * yrs + (rows ? 0 : m * ys) + c0 + i] = sum[m * C + i];  \
        }                                                                                          \
        if (q + (rows ? 4 : 1) >= nrows) break;                                                    \
    }                                                                                              \
}                                                                                                  \
/* A run of nrows output rows with the same valid taps: 4 channels a row, or blocks of 4           \
   rows (the last overlapping; kh > 0: row tiles that reuse input rows, see FC_RTILE), or          \
   single rows; a long sum through fc_fwd_long. */                                                 \
ATTR static void fc_fwd_rows_##NAME(int channels, const T* x, Py_ssize_t base, Py_ssize_t xrs,     \
        Py_ssize_t sw, const Py_ssize_t* xoff, const Py_ssize_t* widx,                             \
        const Py_ssize_t* ecol, Py_ssize_t ntaps, const T* w, Py_ssize_t wm, T* y,                 \
        Py_ssize_t yrs, Py_ssize_t ys, Py_ssize_t nrows, Py_ssize_t o0, Py_ssize_t o1,             \
        const Py_ssize_t* clo, const Py_ssize_t* chi, Py_ssize_t kw, Py_ssize_t kh) {              \
    if (ntaps > FC_TAP_BLOCK) {                                                                    \
        fc_fwd_long_##NAME(channels, x, base, xrs, sw, xoff, widx, ecol, ntaps, w, wm, y, yrs,     \
                           ys, nrows, o0, o1, clo, chi, kw, kh);                                   \
        return;                                                                                    \
    }                                                                                              \
    if (channels || nrows < 4) {                                                                   \
        for (Py_ssize_t r = 0; r < nrows; r++)                                                     \
            fc_fwd_row_##NAME(channels ? 4 : 1, 1, x, base + r * xrs, 0, sw, xoff, widx,           \
                              ecol, ntaps, w, wm, y + r * yrs, ys, o0, o1, clo, chi, kw, 0);       \
        return;                                                                                    \
    }                                                                                              \
    for (Py_ssize_t q = 0; ; q = q + 8 <= nrows ? q + 4 : nrows - 4) {                             \
        fc_fwd_row_##NAME(4, 0, x, base + q * xrs, xrs, sw, xoff, widx, ecol, ntaps, w, 0,         \
                          y + q * yrs, yrs, o0, o1, clo, chi, kw, kh);                             \
        if (q + 4 >= nrows) break;                                                                 \
    }                                                                                              \
}

#define FC_V4 __attribute__((target("arch=x86-64-v4")))
#define FC_V3 __attribute__((target("arch=x86-64-v3")))
#if FC_DISPATCH
FC_DEFINE(float, float_v4, int, 64, FC_V4)
FC_DEFINE(double, double_v4, long long, 64, FC_V4)
FC_DEFINE(float, float_v3, int, 32, FC_V3)
FC_DEFINE(double, double_v3, long long, 32, FC_V3)
#endif
FC_DEFINE(float, float_base, int, FC_BASE_BYTES, )
FC_DEFINE(double, double_base, long long, FC_BASE_BYTES, )

/* The kernel set this process runs (_cpu_level.h); FASTCONV_DIRECT_LEVEL=0 or 1 asks for a
   lower one. Fixed for the life of the process. */
static int fc_level(void) {
    static int level = -1;
    if (level < 0)
        level = fastconv_cpu_level("FASTCONV_DIRECT_LEVEL");
    return level;
}

/* Bytes of one accumulator vector of the kernels this machine runs. */
static Py_ssize_t fc_vector_bytes(void) {
    return fastconv_vector_bytes(fc_level());
}

#if FC_DISPATCH
#  define FC_PICK(NAME, T, ARGS) { const int level_ = fc_level();                                  \
       if (level_ == 2) NAME##_##T##_v4 ARGS; else if (level_ == 1) NAME##_##T##_v3 ARGS;          \
       else NAME##_##T##_base ARGS; }
#else
#  define FC_PICK(NAME, T, ARGS) { NAME##_##T##_base ARGS; }
#endif

#define FC_ENTRY(T)                                                                                \
static void fc_fwd_rows_##T(int channels, const T* x, Py_ssize_t base, Py_ssize_t xrs,             \
        Py_ssize_t sw, const Py_ssize_t* xoff, const Py_ssize_t* widx,                             \
        const Py_ssize_t* ecol, Py_ssize_t ntaps, const T* w, Py_ssize_t wm, T* y,                 \
        Py_ssize_t yrs, Py_ssize_t ys, Py_ssize_t nrows, Py_ssize_t o0, Py_ssize_t o1,             \
        const Py_ssize_t* clo, const Py_ssize_t* chi, Py_ssize_t kw, Py_ssize_t kh)                \
    FC_PICK(fc_fwd_rows, T, (channels, x, base, xrs, sw, xoff, widx, ecol, ntaps, w, wm, y,        \
                             yrs, ys, nrows, o0, o1, clo, chi, kw, kh))                            \
static void fc_gw_rows_##T(int channels, const T* g, Py_ssize_t gs, Py_ssize_t grs,                \
        const T* x, Py_ssize_t base, Py_ssize_t xrs, Py_ssize_t sw, Py_ssize_t nrows,              \
        const Py_ssize_t* xoff, const Py_ssize_t* tap, const Py_ssize_t* ecol,                     \
        Py_ssize_t ntaps, const Py_ssize_t* clo, const Py_ssize_t* chi, Py_ssize_t o0,             \
        Py_ssize_t o1, Py_ssize_t kh, T* acc)                                                      \
    FC_PICK(fc_gw_rows, T, (channels, g, gs, grs, x, base, xrs, sw, nrows, xoff, tap, ecol,        \
                            ntaps, clo, chi, o0, o1, kh, acc))
FC_ENTRY(float)
FC_ENTRY(double)

#endif
