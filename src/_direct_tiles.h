/* The forward tiles of fastconv's direct convolution: a block of output vectors summed over the
   taps in registers (part of _direct_kernels.h, which instantiates them once per vector type of
   each instruction-set level; T the scalar, VT/VU its aligned/unaligned vector, VI/IT the
   integer vector and scalar of its size, P the name). */
#ifndef FASTCONV_DIRECT_TILES_H
#define FASTCONV_DIRECT_TILES_H

/* S streams x NV vectors (L lanes each) of outputs, at columns o + voff[v] of a row:
     y[m*ys + voff[v] + j] = sum_t w[widx[t] + m*wm] * x[base + xoff[t] + m*xs + voff[v] + j]
   (x and y already offset to column o; with `channels` the streams are output channels sharing
   each input vector, else output rows sharing each weight). `masked`: taps whose kernel column
   leaves the input for some lanes (clo/chi: the valid output columns of each kernel column)
   load the vector where it is inside the input and move it into place with a shuffle that fills
   zeros, so nothing outside the input is read and no padded copy is made (those lanes add the
   weight times zero, as the textbook sum does; elsewhere the padding is skipped, and the caller
   puts back the NaN of 0 * Inf there, see fastconv/_algorithms/direct.py). */
#define FC_TILE(T, VT, VU, VI, IT, P, ATTR)                                                        \
FC_AI ATTR int P##_edge(Py_ssize_t lo, Py_ssize_t hi, Py_ssize_t* d) {                             \
    enum { L = (int)(sizeof(VT) / sizeof(T)) };                                                    \
    *d = 0;                                                                                        \
    if (lo >= L || hi <= 0 || hi <= lo) return 0;     /* no lane inside: skip the tap */           \
    if (lo <= 0 && hi >= L) return 1;                 /* every lane inside */                      \
    *d = lo > 0 ? lo : hi - L;                        /* load shifted by d, move back */           \
    return 2;                                                                                      \
}                                                                                                  \
FC_AI ATTR void P(int S, int NV, int masked, int channels, const T* restrict x, Py_ssize_t base,   \
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
                             * (k == 2 ? FASTCONV_PERMUTE(VT, xv, (VT){0}, idx) : xv);          \
            }                                                                                      \
        }                                                                                          \
    }                                                                                              \
    for (int m = 0; m < S; m++) for (int v = 0; v < NV; v++)                                       \
        *(VU*)(y + m * ys + voff[v]) = acc[m][v];                                                  \
}

/* The tile of 4 consecutive output rows (row stride 1, dilation 1, every kernel row inside the
   input): an input row vector feeds each of the (up to kh) output rows it belongs to, so a
   kernel column costs 3 + kh loads instead of 4 * kh. Sums go (channel, depth, column, row). */
#define FC_RTILE(T, VT, VU, VI, IT, P, EDGE, ATTR)                                                 \
FC_AI ATTR void P(int NV, int masked, const T* restrict x, Py_ssize_t base, Py_ssize_t xs,         \
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
                    if (k == 2) xv = FASTCONV_PERMUTE(VT, xv, (VT){0}, idx);                    \
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
#define FC_TILE_STRIDED(T, VT, P, ATTR)                                                            \
FC_AI ATTR void P(int S, int channels, const T* restrict x, Py_ssize_t base, Py_ssize_t xs,        \
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

#endif
