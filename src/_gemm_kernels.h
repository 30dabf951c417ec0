/* fastconv's own GEMM for im2col (src/_im2col.pyx): C = A B on packed operands, as BLIS does.
 *
 * A (m x k) is packed once per call into blocks of GM_KR rows: ap[block][kk][GM_KR], the rows
 * past m zero. B (k x n) arrives packed by im2col straight into panels of GM_NR columns:
 * bp[panel][kk][GM_NR], each panel k * GM_NR values, the columns past n zero. The micro-kernel
 * keeps a GM_KR x GM_NR tile of C in registers (GM_KR rows by two vectors: 12 x 32 floats on
 * AVX-512, 6 x 16 on AVX2 and 16-byte vectors), and for each kk loads two vectors of B and
 * broadcasts GM_KR values of A: 24 (or 12) independent FMAs per step, fed from L1.
 *
 * Each C value is one sum over kk = 0..k-1 in order, whatever the blocking or the thread that
 * runs the tile, so results do not depend on the thread count. The tile shape depends on the
 * level (the caller asks gm_rows/gm_cols); the order of the sums does not.
 *
 * The pointwise algorithm's variant, with A read in place (gm_inplace, gm_pack_b), is
 * _gemm_inplace.h, which this body includes with the same tile shape.
 *
 * The file is its own body, like _winograd_kernels.h: once per level (FASTCONV_LV), once per
 * precision (GM_T).
 */
#if defined(GM_T)

#define GM_CAT_(a, b) a##_##b
#define GM_CAT(a, b) GM_CAT_(a, b)
#define GM_SUF GM_CAT(GM_T, FASTCONV_LV)
#define GM_FN(name) GM_CAT(name, GM_SUF)
#define VT GM_CAT(gm_vec, GM_SUF)
#define VU GM_CAT(gm_vecu, GM_SUF)
#define GM_NV 2                                     /* vectors of B per micro-kernel step */
#define GM_NR (GM_NV * GM_L)
#define GM_KR (FASTCONV_VB >= 64 ? 12 : 6)          /* 24 accumulators of 32, 12 of 16 */
#define GM_PF 16    /* rows of B ahead that gm_rows_times's tiles prefetch (B read in place) */

typedef GM_T VT __attribute__((vector_size(FASTCONV_VB)));
typedef GM_T VU __attribute__((vector_size(FASTCONV_VB), aligned(sizeof(GM_T))));

FASTCONV_ATTR static int GM_FN(gm_rows)(void) { return GM_KR; }
FASTCONV_ATTR static int GM_FN(gm_cols)(void) { return GM_NR; }

/* Rows [0, rows) of A, element (i, kk) at a[i * rs + kk * cs], into one block ap[kk][GM_KR]
   (rows <= GM_KR; the others zero). */
FASTCONV_ATTR static int GM_FN(gm_pack_a)(const GM_T* a, Py_ssize_t rows, Py_ssize_t k,
                                          Py_ssize_t rs, Py_ssize_t cs, GM_T* restrict ap) {
    enum { STEP = 256 };            /* a STEP x GM_KR piece of ap stays in L1 while it fills */
    for (Py_ssize_t k0 = 0; k0 < k; k0 += STEP) {
        const Py_ssize_t k1 = k - k0 < STEP ? k : k0 + STEP;
        for (Py_ssize_t i = 0; i < GM_KR; i++) {
            if (i >= rows) {
                for (Py_ssize_t kk = k0; kk < k1; kk++)
                    ap[kk * GM_KR + i] = 0;
                continue;
            }
            const GM_T* src = a + i * rs;
            for (Py_ssize_t kk = k0; kk < k1; kk++)
                ap[kk * GM_KR + i] = src[kk * cs];
        }
    }
    return 0;
}

/* A tile of ROWS x NV vectors of C (row stride ldc) = ROWS rows of one block of A times NV
   vectors of one panel of B: the full tile (GM_KR x 2) and the narrower ones the edges use, so
   that a layer of 32 or 64 output channels (GM_KR 12) or a tail of a few positions computes
   hardly more than it keeps. Each comes twice: as it is, and (gm_tile_pf_*) prefetching B's row
   GM_PF ahead, for B read in place (gm_rows_times). */
#define GM_TILE(ROWS, NV) GM_TILE_PF(ROWS, NV, , 0) GM_TILE_PF(ROWS, NV, _pf, GM_PF)
#define GM_TILE_PF(ROWS, NV, NAME, PF)                                                             \
FASTCONV_ATTR static inline void GM_FN(gm_tile##NAME##_##ROWS##x##NV)(Py_ssize_t k,                \
        const GM_T* restrict a, const GM_T* restrict b, Py_ssize_t ldb, GM_T* restrict c,          \
        Py_ssize_t ldc) {                                                                          \
    VT acc[ROWS][NV];                                                                              \
    _Pragma("GCC unroll 12")                                                                       \
    for (int i = 0; i < ROWS; i++)                                                                 \
        _Pragma("GCC unroll 2")                                                                    \
        for (int v = 0; v < NV; v++)                                                               \
            acc[i][v] = (VT){0};                                                                   \
    for (Py_ssize_t kk = 0; kk < k; kk++) {                                                        \
        VT bv[NV];                                                                                 \
        if (PF) {       /* B's row PF ahead: its first and last byte (one line, or two) */       \
            __builtin_prefetch(b + (kk + PF) * ldb);                                               \
            __builtin_prefetch(b + (kk + PF) * ldb + NV * GM_L - 1);                               \
        }                                                                                          \
        _Pragma("GCC unroll 2")                                                                    \
        for (int v = 0; v < NV; v++)                                                               \
            bv[v] = *(const VU*)(b + kk * ldb + v * GM_L);                                         \
        _Pragma("GCC unroll 12")                                                                   \
        for (int i = 0; i < ROWS; i++) {                                                           \
            const GM_T ai = a[kk * GM_KR + i];                                                     \
            _Pragma("GCC unroll 2")                                                                \
            for (int v = 0; v < NV; v++)                                                           \
                acc[i][v] += bv[v] * ai;                                                           \
        }                                                                                          \
    }                                                                                              \
    _Pragma("GCC unroll 12")                                                                       \
    for (int i = 0; i < ROWS; i++)                                                                 \
        _Pragma("GCC unroll 2")                                                                    \
        for (int v = 0; v < NV; v++)                                                               \
            *(VU*)(c + i * ldc + v * GM_L) = acc[i][v];                                            \
}
#if FASTCONV_VB >= 64
GM_TILE(12, 2) GM_TILE(12, 1) GM_TILE(8, 2) GM_TILE(8, 1) GM_TILE(4, 2) GM_TILE(4, 1)
#define GM_TILE_NAMED(NAME, mr, NV, ...)                                                           \
    ((mr) > 8 ? GM_FN(gm_tile##NAME##_12x##NV)(__VA_ARGS__)                                        \
              : (mr) > 4 ? GM_FN(gm_tile##NAME##_8x##NV)(__VA_ARGS__)                              \
                         : GM_FN(gm_tile##NAME##_4x##NV)(__VA_ARGS__))
#else
GM_TILE(6, 2) GM_TILE(6, 1) GM_TILE(4, 2) GM_TILE(4, 1) GM_TILE(2, 2) GM_TILE(2, 1)
#define GM_TILE_NAMED(NAME, mr, NV, ...)                                                           \
    ((mr) > 4 ? GM_FN(gm_tile##NAME##_6x##NV)(__VA_ARGS__)                                         \
              : (mr) > 2 ? GM_FN(gm_tile##NAME##_4x##NV)(__VA_ARGS__)                              \
                         : GM_FN(gm_tile##NAME##_2x##NV)(__VA_ARGS__))
#endif
#define GM_TILE_CALL(mr, NV, ...) GM_TILE_NAMED(, mr, NV, __VA_ARGS__)

/* C = A B, m x n: ap holds ceil(m / GM_KR) blocks, bp ceil(n / GM_NR) panels, both over the
   same k. Column j of C lives at c + (j / seg) * seg_stride + j % seg, row i ldc further: the
   columns of a chunk of several samples (seg positions each, seg_stride apart) or of one
   (seg >= n). A panel stays in L1/L2 while every block of A runs against it. Tiles at the edges,
   or across two samples, run the narrowest tile that covers them, into a small buffer. */
FASTCONV_ATTR static int GM_FN(gm_panels)(Py_ssize_t m, Py_ssize_t n, Py_ssize_t k,
                                          const GM_T* ap, const GM_T* bp, GM_T* c,
                                          Py_ssize_t ldc, Py_ssize_t seg, Py_ssize_t seg_stride) {
    GM_T edge[GM_KR * GM_NR] __attribute__((aligned(64)));
    for (Py_ssize_t j = 0; j < n; j += GM_NR) {
        const GM_T* b = bp + (j / GM_NR) * k * GM_NR;
        const Py_ssize_t nr = n - j < GM_NR ? n - j : GM_NR;
        GM_T* cj = c + (j / seg) * seg_stride + j % seg;
        const int whole = nr == GM_NR && j % seg + nr <= seg;
        for (Py_ssize_t i = 0; i < m; i += GM_KR) {
            const GM_T* a = ap + (i / GM_KR) * k * GM_KR;
            const Py_ssize_t mr = m - i < GM_KR ? m - i : GM_KR;
            if (whole && mr == GM_KR) {
                GM_TILE_CALL(mr, 2, k, a, b, GM_NR, cj + i * ldc, ldc);
                continue;
            }
            if (nr > GM_L)
                GM_TILE_CALL(mr, 2, k, a, b, GM_NR, edge, GM_NR);
            else
                GM_TILE_CALL(mr, 1, k, a, b, GM_NR, edge, GM_NR);
            for (Py_ssize_t q = 0, cnt; q < nr; q += cnt) {
                const Py_ssize_t at = (j + q) % seg;
                cnt = seg - at < nr - q ? seg - at : nr - q;
                GM_T* dst = c + ((j + q) / seg) * seg_stride + at + i * ldc;
                for (Py_ssize_t r = 0; r < mr; r++)
                    memcpy(dst + r * ldc, edge + r * GM_NR + q, (size_t)cnt * sizeof(GM_T));
            }
        }
    }
    return 0;
}

/* A row block's tile in gm_rows_times: the panel's first block reads B's rows from memory, where
   they lie ldb apart (a stride the hardware does not follow), so it prefetches GM_PF rows ahead
   (wav2vec's 10-row input gradient, 256 rows of gy: 1.3x faster on one thread); the later
   blocks find them in L1 (C3D's 81 rows at AVX2 ran 12% slower prefetching in every block). */
#define GM_ROWS_TILE(NV, ...)                                                                      \
    (i == 0 && lb == ldb ? GM_TILE_NAMED(_pf, mr, NV, __VA_ARGS__)                                 \
                         : GM_TILE_NAMED(, mr, NV, __VA_ARGS__))

/* C = A B, m x n (row stride ldc), with B read where it lies: k rows of n values, ldb apart (an
   output gradient's channels, for im2col's input gradient: B is as large as the input gradient
   and A, the weights of a few input channels, one or two blocks, so packing B would copy more
   than the GEMM reads). Whole panels of GM_NR columns are read in place; the last columns are
   copied, zero-padded, into `strip` (k x GM_NR). Each C value is one sum over kk in order, as in
   gm_panels. */
FASTCONV_ATTR static int GM_FN(gm_rows_times)(Py_ssize_t m, Py_ssize_t n, Py_ssize_t k,
                                              const GM_T* ap, const GM_T* b, Py_ssize_t ldb,
                                              GM_T* c, Py_ssize_t ldc, GM_T* restrict strip) {
    GM_T edge[GM_KR * GM_NR] __attribute__((aligned(64)));
    for (Py_ssize_t j = 0; j < n; j += GM_NR) {
        const Py_ssize_t nr = n - j < GM_NR ? n - j : GM_NR;
        const GM_T* bj = b + j;
        Py_ssize_t lb = ldb;
        if (nr < GM_NR) {
            for (Py_ssize_t kk = 0; kk < k; kk++) {
                memcpy(strip + kk * GM_NR, b + kk * ldb + j, (size_t)nr * sizeof(GM_T));
                memset(strip + kk * GM_NR + nr, 0, (size_t)(GM_NR - nr) * sizeof(GM_T));
            }
            bj = strip;
            lb = GM_NR;
        }
        for (Py_ssize_t i = 0; i < m; i += GM_KR) {
            const GM_T* a = ap + (i / GM_KR) * k * GM_KR;
            const Py_ssize_t mr = m - i < GM_KR ? m - i : GM_KR;
            if (nr == GM_NR && mr == GM_KR) {
                GM_ROWS_TILE(2, k, a, bj, lb, c + i * ldc + j, ldc);
                continue;
            }
            if (nr > GM_L)
                GM_ROWS_TILE(2, k, a, bj, lb, edge, GM_NR);
            else
                GM_ROWS_TILE(1, k, a, bj, lb, edge, GM_NR);
            for (Py_ssize_t r = 0; r < mr; r++)
                memcpy(c + (i + r) * ldc + j, edge + r * GM_NR, (size_t)nr * sizeof(GM_T));
        }
    }
    return 0;
}

#include "_gemm_inplace.h"

#undef GM_TILE
#undef GM_TILE_PF
#undef GM_TILE_NAMED
#undef GM_PF
#undef GM_ROWS_TILE
#undef GM_TILE_CALL
#undef VT
#undef VU
#undef GM_NV
#undef GM_NR
#undef GM_KR
#undef GM_SUF

#elif defined(FASTCONV_LV)
/* One level: both precisions (GM_L: the lanes, a literal). */
#define GM_T float
#define GM_L FASTCONV_NF
#include "_gemm_kernels.h"
#undef GM_T
#undef GM_L
#define GM_T double
#define GM_L FASTCONV_ND
#include "_gemm_kernels.h"
#undef GM_T
#undef GM_L

#elif !defined(FASTCONV_GEMM_KERNELS_H)
#define FASTCONV_GEMM_KERNELS_H

#include <string.h>

#include "_cpu_level.h"
#include "_vectors.h"

#define FASTCONV_LEVEL_BODY "_gemm_kernels.h"
#include "_cpu_each_level.h"
#undef FASTCONV_LEVEL_BODY

#define GM_ENTRIES(X, LV)                                                                          \
    X(gm_rows_float, LV) X(gm_rows_double, LV) X(gm_cols_float, LV) X(gm_cols_double, LV)          \
    X(gm_pack_a_float, LV) X(gm_pack_a_double, LV) X(gm_panels_float, LV)                          \
    X(gm_panels_double, LV) X(gm_rows_times_float, LV) X(gm_rows_times_double, LV)                \
    X(gm_pack_b_float, LV) X(gm_pack_b_double, LV) X(gm_inplace_float, LV)                         \
    X(gm_inplace_double, LV)
FASTCONV_KERNEL_TABLE(gm, GM_ENTRIES, "FASTCONV_GEMM_LEVEL")

#endif
