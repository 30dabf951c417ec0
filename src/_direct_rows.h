/* The row drivers of fastconv's direct convolution, written once for every instruction-set
   level: FC_DEFINE(T, NAME, IT, BYTES, ATTR) defines the vector types of a level (BYTES-byte
   vectors, their halves and quarters), instantiates the tiles (_direct_tiles.h) and dot products
   (_direct_dots.h) for them, and the level's entry points fc_fwd_rows_NAME and fc_gw_rows_NAME,
   each with the level's target attribute ATTR (part of _direct_kernels.h). */
#ifndef FASTCONV_DIRECT_ROWS_H
#define FASTCONV_DIRECT_ROWS_H

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
        if (WIDE && sizeof(VT) == 64 && S == 4 && channels && o >= ilo                             \
                && o + 4 * L <= (o1 < ihi ? o1 : ihi)) {                                           \
            FC_TILE_CALL(P, 4, 4, 0, 1);     /* four output channels, a long row: 16 accumulators \
                                                of AVX-512's 32 registers (of AVX2's 16 they      \
                                                spilled: a TCN layer 1.13x the time) */            \
            o += 4 * L;                                                                            \
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
FC_TILE(T, NAME##_v, NAME##_vu, NAME##_i, IT, NAME##_tile, ATTR)                                   \
FC_TILE(T, NAME##_h, NAME##_hu, NAME##_hi, IT, NAME##_tile_half, ATTR)                             \
FC_TILE(T, NAME##_q, NAME##_qu, NAME##_qi, IT, NAME##_tile_quarter, ATTR)                          \
FC_RTILE(T, NAME##_v, NAME##_vu, NAME##_i, IT, NAME##_tile_rows, NAME##_tile_edge, ATTR)           \
FC_TILE_STRIDED(T, NAME##_v, NAME##_tile_strided, ATTR)                                            \
FC_BLOCKS(T, NAME##_v, NAME##_tile, NAME##_blocks, FC_TILE_DISPATCH_ROWS, 1, ATTR)                 \
FC_BLOCKS(T, NAME##_h, NAME##_tile_half, NAME##_blocks_half, FC_TILE_DISPATCH_NARROW, 0,           \
          ATTR)                                                                                    \
FC_BLOCKS(T, NAME##_q, NAME##_tile_quarter, NAME##_blocks_quarter,                                 \
          FC_TILE_DISPATCH_NARROW, 0, ATTR)                                                        \
FC_DOT(T, NAME##_v, NAME##_vu, NAME##_i, IT, NAME##_dot, BYTES / sizeof(T), ATTR)                  \
FC_DOT(T, NAME##_h, NAME##_hu, NAME##_hi, IT, NAME##_dot_half, BYTES / sizeof(T), ATTR)            \
FC_DOT(T, NAME##_q, NAME##_qu, NAME##_qi, IT, NAME##_dot_quarter, BYTES / sizeof(T), ATTR)         \
FC_DOT2(T, NAME##_v, NAME##_vu, NAME##_i, IT, NAME##_dot2, NAME##_dot_load, ATTR)                  \
FC_DOTB(T, NAME##_v, NAME##_vu, NAME##_i, IT, NAME##_dotb, BYTES / sizeof(T), ATTR)                \
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
    const Py_ssize_t kw = ntaps > 0 ? ecol[ntaps - 1] + 1 : 1;                                     \
    const int columns = !channels && sw == 1 && kh == 3;                                           \
    const Py_ssize_t set = (xrs * (Py_ssize_t)sizeof(T)) % FC_SET_BYTES;                           \
    const Py_ssize_t least = !channels && !columns                                                 \
                             && (set < FC_SET_NEAR || set > FC_SET_BYTES - FC_SET_NEAR)            \
                             ? 4 : FC_ROW_GROUP;      /* (the kh = 3 tiles read 4 + 6 rows) */     \
    const Py_ssize_t group = 4 * tile / ow > least ? 4 * tile / ow : least;                        \
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

#endif
