/* The kernel-gradient micro-kernels of fastconv's direct convolution: dot products of output-
   gradient rows with input rows into vector accumulators (part of _direct_kernels.h, which
   instantiates them once per vector type of each instruction-set level, as _direct_tiles.h). */
#ifndef FASTCONV_DIRECT_DOTS_H
#define FASTCONV_DIRECT_DOTS_H

/* Dot products along nrows rows of len positions, into acc (4 vectors of L lanes):
     channels: acc[m] += g[m*gs + r*grs + o] * x[r*xrs + o*sw]  (4 output channels)
     else:     acc[r mod 4] += g[r*grs + o] * x[r*xrs + o*sw]   (4 rows at a time)
   A row's last, partial vector overlaps the one before and keeps only its new lanes (a
   select, so a NaN or Inf already counted is not touched). Long rows go two (channels) or
   four vectors at a time into partial sums added at the end of the row. Every lane and
   partial sum is fixed by the positions, never by the caller's blocking or threads. */
#define FC_DOT(T, VT, VU, VI, IT, P, AL, ATTR)                                                     \
FC_AI ATTR VT P##_load(int strided, const T* p, Py_ssize_t sw) {                                   \
    VT v;                                                                                          \
    if (strided) { for (int j = 0; j < (int)(sizeof(VT) / sizeof(T)); j++) v[j] = p[j * sw]; }     \
    else v = *(const VU*)p;                                                                        \
    return v;                                                                                      \
}                                                                                                  \
FC_AI ATTR VT P##_row(int strided, VT s, const T* restrict g, const T* restrict x,                 \
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
FC_AI ATTR void P(int channels, int strided, const T* restrict g, Py_ssize_t gs, Py_ssize_t grs,   \
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
#define FC_DOTB(T, VT, VU, VI, IT, P, AL, ATTR)                                                    \
FC_AI ATTR void P(int KH, const T* restrict g, Py_ssize_t grs, const T* restrict x,                \
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
#define FC_DOT2(T, VT, VU, VI, IT, P, LOAD, ATTR)                                                  \
FC_AI ATTR void P(int strided, const T* restrict g, Py_ssize_t gs, Py_ssize_t grs,                 \
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

#endif
