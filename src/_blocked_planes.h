/* The blocked direct algorithm along planes (src/_blocked_planes.pxi): vectors along the output
   rows, each weight broadcast.

     bpl_fwd:  y[r * yr + j * yrs + q] = sum_c sum_t w[(c * taps + t) * BPL_ROWS + r]
                                                  * x[c * cs + toff[t] + j * xrs + q]

   for the R rows r of a tile (output channels), its RW output rows j and NV vectors of
   positions q along each (the last vector at `last` instead of (NV - 1) * N: a row's last
   vector ends at its last output, overlapping the one before). x is the tile's first position
   in the first input channel's planes, which the caller lays out so that every tap is one
   constant offset toff[t] from any position (zero-padded planes, one a phase of the stride:
   src/_blocked_planes.pxi); w the tile's weights interleaved as (input channel, tap, BPL_ROWS
   rows), one pointer for the R broadcasts of a tap (six row pointers spilled to the stack:
   C3D's first layer ran at a third of the peak). The outputs land in the caller's planes
   (NCHW), with no transpose: bk_row's rows of channel vectors are transposed into the planes
   after each row (a fifth of CIFAR's 3 -> 32 first layer at batch 32, AVX-512).

   A tile keeps R x RW x NV accumulators (6 x 4 vectors at AVX-512, 6 x 2 below: 24 of 32 and
   12 of 16 registers); per tap its RW x NV input vectors and R broadcasts feed R x RW x NV
   multiply-adds. Every output's sum runs over c, then t, in order: fixed by the problem, never
   by threads. */
#ifndef FASTCONV_BLOCKED_PLANES_H
#define FASTCONV_BLOCKED_PLANES_H

#define BPL_ROWS 6                                  /* rows (output channels) of a tile */
#define BPL_VECTORS(BYTES) ((BYTES) == 64 ? 4 : 2)  /* vectors of positions of a tile */

#define BPL_TYPE(SUF, ATTR, BYTES, T, P)                                                         \
ATTR static inline __attribute__((always_inline))                                               \
void bpl_tile_##P##_##SUF(const T* x, ptrdiff_t cs, const ptrdiff_t* toff, ptrdiff_t taps,      \
                          ptrdiff_t C, const T* w, T* y, ptrdiff_t yr, ptrdiff_t xrs,           \
                          ptrdiff_t yrs, ptrdiff_t last, const int R, const int RW,             \
                          const int NV) {                                                        \
    typedef T V __attribute__((vector_size(BYTES)));                                             \
    enum { N = BYTES / sizeof(T) };                                                              \
    V acc[BPL_ROWS][4];                                                                          \
    _Pragma("GCC unroll 6")                                                                      \
    for (int r = 0; r < R; r++) {                                                                \
        _Pragma("GCC unroll 4")                                                                  \
        for (int p = 0; p < RW * NV; p++)                                                        \
            acc[r][p] = (V){0};                                                                  \
    }                                                                                            \
    for (ptrdiff_t c = 0; c < C; c++) {                                                          \
        const T* xc = x + c * cs;                                                                \
        for (ptrdiff_t t = 0; t < taps; t++) {                                                   \
            const T* xt = xc + toff[t];                                                          \
            V xv[4];                                                                             \
            _Pragma("GCC unroll 4")                                                              \
            for (int j = 0; j < RW; j++)                                                         \
                _Pragma("GCC unroll 4")                                                          \
                for (int v = 0; v < NV; v++)                                                     \
                    memcpy(&xv[j * NV + v], xt + j * xrs + (v < NV - 1 ? v * N : last),          \
                           sizeof(V));                                                           \
            _Pragma("GCC unroll 6")                                                              \
            for (int r = 0; r < R; r++) {                                                        \
                const T b = w[(c * taps + t) * BPL_ROWS + r];   /* one broadcast */            \
                _Pragma("GCC unroll 4")                                                          \
                for (int p = 0; p < RW * NV; p++)                                                \
                    acc[r][p] += xv[p] * b;                                                      \
            }                                                                                    \
        }                                                                                        \
    }                                                                                            \
    _Pragma("GCC unroll 6")                                                                      \
    for (int r = 0; r < R; r++)                                                                  \
        _Pragma("GCC unroll 4")                                                                  \
        for (int j = 0; j < RW; j++)                                                             \
            _Pragma("GCC unroll 4")                                                              \
            for (int v = 0; v < NV; v++)                                                         \
                memcpy(y + r * yr + j * yrs + (v < NV - 1 ? v * N : last), &acc[r][j * NV + v], \
                       sizeof(V));                                                               \
}                                                                                                \
                                                                                                 \
/* A tile of R rows (1..BPL_ROWS) by RW x NV vectors (at most BPL_VECTORS), each shape its own  \
   code. */                                                                                      \
ATTR static void bpl_fwd_##P##_##SUF(const T* x, ptrdiff_t cs, const ptrdiff_t* toff,            \
                                     ptrdiff_t taps, ptrdiff_t C, const T* w, T* y,             \
                                     ptrdiff_t yr, ptrdiff_t xrs, ptrdiff_t yrs,                \
                                     ptrdiff_t last, int R, int RW, int NV) {                   \
    enum { MOST = BPL_VECTORS(BYTES) };                                                          \
    switch (R) {                                                                                 \
    BPL_ROW_CASES(bpl_tile_##P##_##SUF(x, cs, toff, taps, C, w, y, yr, xrs, yrs, last, R_, RW_, \
                                       NV_))                                                     \
    }                                                                                            \
}                                                                                                \
                                                                                                 \
/* The tiles of RW whole output rows of ow positions: those of NV vectors that end inside the    \
   row in one loop of the shape's own code, then the rest through bpl_fwd (the last tile's last \
   vector ending at the row's last output). The loop was the caller's, one call a tile: on      \
   wav2vec's one-channel k10/5 layer (10 products an output) the calls cost as much as the      \
   tiles' multiply-adds. */                                                                     \
ATTR static void bpl_row_##P##_##SUF(const T* x, ptrdiff_t cs, const ptrdiff_t* toff,            \
                                     ptrdiff_t taps, ptrdiff_t C, const T* w, T* y,             \
                                     ptrdiff_t yr, ptrdiff_t xrs, ptrdiff_t yrs, ptrdiff_t ow,  \
                                     int R, int RW, int NV) {                                   \
    enum { MOST = BPL_VECTORS(BYTES), N = BYTES / sizeof(T) };                                   \
    const ptrdiff_t vrow = (ow + N - 1) / N;                                                     \
    const ptrdiff_t full = ow / (NV * N);                                                        \
    ptrdiff_t v0;                                                                                \
    switch (R) {                                                                                 \
    BPL_ROW_CASES(for (ptrdiff_t i_ = 0; i_ < full; i_++)                                        \
                      bpl_tile_##P##_##SUF(x + i_ * NV_ * N, cs, toff, taps, C, w,               \
                                           y + i_ * NV_ * N, yr, xrs, yrs, (NV_ - 1) * N, R_,    \
                                           RW_, NV_))                                            \
    }                                                                                            \
    for (v0 = full * NV; v0 < vrow; ) {                                                          \
        const ptrdiff_t nv = vrow - v0 < NV ? vrow - v0 : NV;                                    \
        const ptrdiff_t last = (v0 + nv) * N <= ow ? (nv - 1) * N : ow - N - v0 * N;            \
        bpl_fwd_##P##_##SUF(x + v0 * N, cs, toff, taps, C, w, y + v0 * N, yr, xrs, yrs, last,   \
                            R, RW, (int)nv);                                                     \
        v0 += nv;                                                                                \
    }                                                                                            \
}

/* case r (rows), then the tile's shape: CALL with R_, RW_ (position rows) and NV_ (vectors a
   row) for the shapes a level has */
#define BPL_SHAPE(rw, nv, CALL)                                                                  \
    if (RW == rw && NV == nv) {                                                                  \
        if (rw * nv <= MOST) { enum { RW_ = rw, NV_ = nv }; CALL; }                              \
        break;                                                                                   \
    }
#define BPL_ROW_CASE(r, CALL)                                                                    \
    case r: {                                                                                    \
        enum { R_ = r };                                                                         \
        BPL_SHAPE(1, 1, CALL) BPL_SHAPE(1, 2, CALL) BPL_SHAPE(1, 3, CALL) BPL_SHAPE(1, 4, CALL)  \
        BPL_SHAPE(2, 1, CALL) BPL_SHAPE(2, 2, CALL) BPL_SHAPE(3, 1, CALL) BPL_SHAPE(4, 1, CALL)  \
        break;                                                                                   \
    }
#define BPL_ROW_CASES(CALL) BPL_ROW_CASE(1, CALL) BPL_ROW_CASE(2, CALL) BPL_ROW_CASE(3, CALL)    \
    BPL_ROW_CASE(4, CALL) BPL_ROW_CASE(5, CALL) BPL_ROW_CASE(6, CALL)

#endif
