/* The two inner loops of the depthwise algorithm (src/_depthwise.pyx), vectorised along a
   flattened plane.

   The caller lays one channel's (padded, phase-split) input plane out flat, so that every tap of
   the kernel is one constant offset into it and the outputs are one run of positions q (see
   fastconv/_algorithms/depthwise.py). Then
     dw_taps:  y[q] (+)= sum_t w[t] * src[off[t] + q]           forward, and grad_input per phase
     dw_dots:  g[t]   = sum_q gy[q] * src[off[t] + q]            grad_kernel
   A 7x7 plane is one run of 63 positions (its rows with the padding columns between them), not
   seven rows of 7, so short rows waste no vector lanes.

   dw_taps computes whole blocks of TAPS_BLOCK vectors of q (TAPS_SMALL where the run is short),
   reading and writing past `nq` up to a block: callers keep DW_SLACK elements of slack after
   src's and y's runs. dw_dots reads exactly nq values of each. Each sum runs in an order fixed by
   the problem and the instruction set (lanes, then the lanes added in order), never by threads.

   Each is compiled per level of _cpu_level.h (x86-64-v4, x86-64-v3 and the build's own target),
   with vectors of that level's width, and reached through the table dw_init() fills at import
   (FASTCONV_DEPTHWISE_LEVEL = 0 or 1 asks for a lower level). */
#ifndef FASTCONV_DEPTHWISE_KERNELS_H
#define FASTCONV_DEPTHWISE_KERNELS_H
#include <stddef.h>
#include <string.h>

#include "_cpu_level.h"

#pragma GCC diagnostic ignored "-Wpsabi"

#define DW_TAPS_BLOCK 8     /* vectors of q per block: 8 accumulators hide the FMA latency */
#define DW_TAPS_SMALL 4     /* ... or 4 for a run of 4 vectors or fewer */
#define DW_DOTS_TAPS 4      /* taps per pass of dw_dots: gy is loaded once for 4 products */
/* Elements of slack after a run: a block of the widest vectors (16 floats x 8). */
#define DW_SLACK (DW_TAPS_BLOCK * 16)
#define DW_ROW_TAPS 7       /* the widest kernel row dwb_rows keeps in registers */
#define DWR_MAX_BLOCK 14    /* dwb_rows's widest block of outputs (at AVX-512; DWR_BLOCK) */
#define DWR_BLOCK(BYTES) ((BYTES) == 64 ? DWR_MAX_BLOCK : DW_TAPS_BLOCK)
/* A block of the last 1-7 vectors of a run, B_ a constant in each case (unrolled loops). */
#define DW_REST_CASE(b, CALL) case b: { enum { B_ = b }; CALL; } break;
#define DW_REST_CASES(CALL) DW_REST_CASE(7, CALL) DW_REST_CASE(6, CALL) DW_REST_CASE(5, CALL)    \
    DW_REST_CASE(4, CALL) DW_REST_CASE(3, CALL) DW_REST_CASE(2, CALL) DW_REST_CASE(1, CALL)
#define DWR_CASES(CALL) DW_REST_CASE(14, CALL) DW_REST_CASE(13, CALL) DW_REST_CASE(12, CALL)      \
    DW_REST_CASE(11, CALL) DW_REST_CASE(10, CALL) DW_REST_CASE(9, CALL) DW_REST_CASE(8, CALL)    \
    DW_REST_CASES(CALL)

#define DW_LEVEL(SUF, ATTR, BYTES, NF, ND)                                                       \
DW_TYPE(SUF, ATTR, BYTES, float, f32)                                                            \
DW_TYPE(SUF, ATTR, BYTES, double, f64)

#define DW_TYPE(SUF, ATTR, BYTES, T, P)                                                          \
typedef T dw_vec_##P##_##SUF __attribute__((vector_size(BYTES)));                                \
                                                                                                 \
ATTR static inline dw_vec_##P##_##SUF dw_load_##P##_##SUF(const T* p) {                          \
    dw_vec_##P##_##SUF v;                                                                        \
    memcpy(&v, p, sizeof v);                                                                     \
    return v;                                                                                    \
}                                                                                                \
                                                                                                 \
ATTR static inline void dw_store_##P##_##SUF(T* p, dw_vec_##P##_##SUF v) {                       \
    memcpy(p, &v, sizeof v);                                                                     \
}                                                                                                \
                                                                                                 \
/* One block of B vectors at q0 over every tap. */                                               \
ATTR static inline __attribute__((always_inline))                                               \
void dw_block_##P##_##SUF(const T* src, const ptrdiff_t* off, const T* w, ptrdiff_t taps, T* y,  \
                          ptrdiff_t q0, int B, int accumulate) {                                   \
    enum { N = BYTES / sizeof(T) };                                                              \
    dw_vec_##P##_##SUF acc[DW_TAPS_BLOCK];                                                       \
    for (int j = 0; j < B; j++)                                                                  \
        acc[j] = accumulate ? dw_load_##P##_##SUF(y + q0 + j * N) : (dw_vec_##P##_##SUF){0};    \
    for (ptrdiff_t t = 0; t < taps; t++) {                                                       \
        const T* s = src + off[t] + q0;                                                          \
        dw_vec_##P##_##SUF wv = (dw_vec_##P##_##SUF){0} + w[t];                                  \
        for (int j = 0; j < B; j++)                                                              \
            acc[j] += dw_load_##P##_##SUF(s + j * N) * wv;                                       \
    }                                                                                            \
    for (int j = 0; j < B; j++)                                                                  \
        dw_store_##P##_##SUF(y + q0 + j * N, acc[j]);                                            \
}                                                                                                \
                                                                                                 \
ATTR static void dw_taps_##P##_##SUF(const T* src, const ptrdiff_t* off, const T* w,             \
                                     ptrdiff_t taps, T* y, ptrdiff_t nq, int accumulate) {       \
    enum { N = BYTES / sizeof(T) };                                                              \
    ptrdiff_t q = 0;                                                                             \
    for (; q + (DW_TAPS_BLOCK - DW_TAPS_SMALL) * N < nq; q += DW_TAPS_BLOCK * N) {              \
        if (accumulate)                                                                          \
            dw_block_##P##_##SUF(src, off, w, taps, y, q, DW_TAPS_BLOCK, 1);                     \
        else                                                                                     \
            dw_block_##P##_##SUF(src, off, w, taps, y, q, DW_TAPS_BLOCK, 0);                     \
    }                                                                                            \
    if (q < nq)                                                                                  \
        dw_block_##P##_##SUF(src, off, w, taps, y, q, DW_TAPS_SMALL, accumulate);                \
}                                                                                                \
                                                                                                 \
ATTR static void dw_dots_##P##_##SUF(const T* gy, const T* src, const ptrdiff_t* off,            \
                                     ptrdiff_t taps, ptrdiff_t nq, T* g) {                       \
    enum { N = BYTES / sizeof(T) };                                                              \
    ptrdiff_t body = nq - nq % N;                                                                \
    for (ptrdiff_t t0 = 0; t0 < taps; t0 += DW_DOTS_TAPS) {                                      \
        int nt = taps - t0 < DW_DOTS_TAPS ? (int)(taps - t0) : DW_DOTS_TAPS;                     \
        dw_vec_##P##_##SUF acc[DW_DOTS_TAPS] = {{0}};                                            \
        const T* s[DW_DOTS_TAPS];                                                                \
        for (int j = 0; j < DW_DOTS_TAPS; j++)                                                   \
            s[j] = src + off[t0 + (j < nt ? j : 0)];                                             \
        for (ptrdiff_t q = 0; q < body; q += N) {                                                \
            dw_vec_##P##_##SUF v = dw_load_##P##_##SUF(gy + q);                                  \
            for (int j = 0; j < DW_DOTS_TAPS; j++)                                               \
                acc[j] += v * dw_load_##P##_##SUF(s[j] + q);                                     \
        }                                                                                        \
        for (int j = 0; j < nt; j++) {                                                           \
            T sum = 0;                                                                           \
            for (int l = 0; l < N; l++)                                                          \
                sum += acc[j][l];                                                                \
            for (ptrdiff_t q = body; q < nq; q++)                                                \
                sum += gy[q] * s[j][q];                                                          \
            g[t0 + j] = sum;                                                                     \
        }                                                                                        \
    }                                                                                            \
}                                                                                                \
                                                                                                 \
/* Channel-blocked (src/_depthwise.pyx): one vector holds the N channels of a position,        \
   src[p * N + lane]; w[t * N + lane] holds tap t's weights of the N channels. Along one output  \
   row of n positions q, input position q * step + off[t]: no horizontal sums, no lane wasted   \
   on a short row.                                                                              \
     dwb_taps:  y[q] = sum_t w[t] * src[q * step + off[t]]          (y: n vectors)             \
     dwb_dots:  g[t] += sum_q gy[q] * src[q * step + off[t]]        (each lane in the order of q) */ \
/* B positions from q at once, B independent sums (a constant where it is inlined). */          \
ATTR static inline __attribute__((always_inline))                                               \
void dwb_block_##P##_##SUF(const T* src, const ptrdiff_t* off, const T* w, ptrdiff_t taps, T* y, \
                           ptrdiff_t q, ptrdiff_t step, int B) {                                 \
    enum { N = BYTES / sizeof(T) };                                                              \
    dw_vec_##P##_##SUF acc[DW_TAPS_BLOCK] = {{0}};                                               \
    for (ptrdiff_t t = 0; t < taps; t++) {                                                       \
        const T* s = src + (q * step + off[t]) * N;                                              \
        const dw_vec_##P##_##SUF wv = dw_load_##P##_##SUF(w + t * N);                            \
        for (int j = 0; j < B; j++)                                                              \
            acc[j] += dw_load_##P##_##SUF(s + j * step * N) * wv;                                \
    }                                                                                            \
    for (int j = 0; j < B; j++)                                                                  \
        dw_store_##P##_##SUF(y + (q + j) * N, acc[j]);                                           \
}                                                                                                \
                                                                                                 \
ATTR static void dwb_taps_##P##_##SUF(const T* src, const ptrdiff_t* off, const T* w,            \
                                      ptrdiff_t taps, T* y, ptrdiff_t n, ptrdiff_t step) {        \
    ptrdiff_t q = 0;                                                                             \
    for (; q + DW_TAPS_BLOCK <= n; q += DW_TAPS_BLOCK)                                           \
        dwb_block_##P##_##SUF(src, off, w, taps, y, q, step, DW_TAPS_BLOCK);                     \
    switch (n - q) {    /* the rest in one block too: one sum alone waits on every FMA */        \
        DW_REST_CASES(dwb_block_##P##_##SUF(src, off, w, taps, y, q, step, B_))                  \
        default: break;                                                                          \
    }                                                                                            \
}                                                                                                \
                                                                                                 \
/* Stride 1, taps in rows of KW one position apart (a kernel row at unit dilation; kernel row   \
   r's first tap at off[r * KW]): each input vector, loaded once per kernel row, serves the KW      \
   outputs it reaches from the KW weight vectors held in registers (oneDNN's depthwise kernels  \
   keep a row of weights the same way), where dwb_block loads one input per multiply-add. Each  \
   output's sum runs over r, then k: dwb_taps's order, the same bits. Kernel row r starts at    \
   off[r * KW] (off: dwb_taps's offsets). */                                                    \
ATTR static inline __attribute__((always_inline))                                               \
void dwr_block_##P##_##SUF(const T* src, const ptrdiff_t* off, ptrdiff_t rows, const T* w,      \
                           T* y, ptrdiff_t q, const int KW, const int B) {                       \
    enum { N = BYTES / sizeof(T) };                                                              \
    dw_vec_##P##_##SUF acc[DWR_MAX_BLOCK] = {{0}};                                               \
    for (ptrdiff_t r = 0; r < rows; r++) {                                                       \
        const T* s = src + (q + off[r * KW]) * N;                                                \
        dw_vec_##P##_##SUF wv[DW_ROW_TAPS];                                                      \
        _Pragma("GCC unroll 7")                                                                  \
        for (int k = 0; k < KW; k++)                                                             \
            wv[k] = dw_load_##P##_##SUF(w + (r * KW + k) * N);                                   \
        _Pragma("GCC unroll 24")                                                                 \
        for (int i = 0; i < B + KW - 1; i++) {                                                   \
            const dw_vec_##P##_##SUF xv = dw_load_##P##_##SUF(s + i * N);                        \
            _Pragma("GCC unroll 7")                                                              \
            for (int k = 0; k < KW; k++)                                                         \
                if (i - k >= 0 && i - k < B)                                                     \
                    acc[i - k] += xv * wv[k];                                                    \
        }                                                                                        \
    }                                                                                            \
    for (int j = 0; j < B; j++)                                                                  \
        dw_store_##P##_##SUF(y + (q + j) * N, acc[j]);                                           \
}                                                                                                \
                                                                                                 \
/* The row in blocks of balanced widths, as wide as the registers allow (DWR_BLOCK: 14 at       \
   AVX-512, 22 of its 32 registers with the weights; 8 below): each sum is a chain of rows x KW   \
   multiply-adds, so a block of B outputs waits on the FMA latency below ~8 of them (a 14-wide   \
   row went as 8 + 6, 12% slower on ConvNeXt's 384-channel 14x14 plane than as one block). */  \
ATTR static inline __attribute__((always_inline))                                               \
void dwr_cols_##P##_##SUF(const T* src, const ptrdiff_t* off, ptrdiff_t rows, const T* w,       \
                          T* y, ptrdiff_t n, const int KW) {                                     \
    const ptrdiff_t most = DWR_BLOCK(BYTES), blocks = (n + most - 1) / most;                    \
    ptrdiff_t q = 0;                                                                             \
    for (ptrdiff_t i = 0; i < blocks; i++) {                                                     \
        const int b = (int)(n / blocks + (i < n % blocks));                                      \
        switch (b) {                                                                             \
            DWR_CASES(dwr_block_##P##_##SUF(src, off, rows, w, y, q, KW, B_))                    \
            default: break;                                                                      \
        }                                                                                        \
        q += b;                                                                                  \
    }                                                                                            \
}                                                                                                \
                                                                                                 \
/* dwb_taps at stride 1 for taps in rows of kw = 3, 5 or 7 (dw_row_taps finds them). */          \
ATTR static void dwb_rows_##P##_##SUF(const T* src, const ptrdiff_t* off, ptrdiff_t rows,       \
                                      int kw, const T* w, T* y, ptrdiff_t n) {                   \
    switch (kw) {                                                                                \
        case 3: dwr_cols_##P##_##SUF(src, off, rows, w, y, n, 3); break;                        \
        case 5: dwr_cols_##P##_##SUF(src, off, rows, w, y, n, 5); break;                        \
        default: dwr_cols_##P##_##SUF(src, off, rows, w, y, n, 7); break;                       \
    }                                                                                            \
}                                                                                                \
                                                                                                 \
/* The adjoint of dwb_taps: grid[q * step + off[t]] += w[t] * gy[q], q in order, t in order. */  \
ATTR static void dwb_scatter_##P##_##SUF(const T* gy, const ptrdiff_t* off, const T* w,          \
                                         ptrdiff_t taps, T* grid, ptrdiff_t n, ptrdiff_t step) { \
    enum { N = BYTES / sizeof(T) };                                                              \
    for (ptrdiff_t q = 0; q < n; q++) {                                                          \
        const dw_vec_##P##_##SUF g = dw_load_##P##_##SUF(gy + q * N);                            \
        T* d = grid + q * step * N;                                                              \
        for (ptrdiff_t t = 0; t < taps; t++)                                                     \
            dw_store_##P##_##SUF(d + off[t] * N, dw_load_##P##_##SUF(d + off[t] * N)             \
                                 + g * dw_load_##P##_##SUF(w + t * N));                          \
    }                                                                                            \
}                                                                                                \
                                                                                                 \
ATTR static void dwb_dots_##P##_##SUF(const T* gy, const T* src, const ptrdiff_t* off,           \
                                      ptrdiff_t taps, ptrdiff_t n, ptrdiff_t step, T* g) {        \
    enum { N = BYTES / sizeof(T) };                                                              \
    for (ptrdiff_t t0 = 0; t0 < taps; t0 += DW_DOTS_TAPS) {                                      \
        int nt = taps - t0 < DW_DOTS_TAPS ? (int)(taps - t0) : DW_DOTS_TAPS;                     \
        dw_vec_##P##_##SUF acc[DW_DOTS_TAPS];                                                    \
        const T* s[DW_DOTS_TAPS];                                                                \
        for (int j = 0; j < DW_DOTS_TAPS; j++) {                                                 \
            acc[j] = dw_load_##P##_##SUF(g + (t0 + (j < nt ? j : 0)) * N);                      \
            s[j] = src + off[t0 + (j < nt ? j : 0)] * N;                                         \
        }                                                                                        \
        for (ptrdiff_t q = 0; q < n; q++) {                                                      \
            dw_vec_##P##_##SUF v = dw_load_##P##_##SUF(gy + q * N);                              \
            for (int j = 0; j < DW_DOTS_TAPS; j++)                                               \
                acc[j] += v * dw_load_##P##_##SUF(s[j] + q * step * N);                          \
        }                                                                                        \
        for (int j = 0; j < nt; j++)                                                             \
            dw_store_##P##_##SUF(g + (t0 + j) * N, acc[j]);                                      \
    }                                                                                            \
}

FASTCONV_EACH_LEVEL(DW_LEVEL)

#define DW_ENTRIES(X, LV)                                                                        \
    X(dw_taps_f32, LV) X(dw_taps_f64, LV) X(dw_dots_f32, LV) X(dw_dots_f64, LV)                 \
    X(dwb_taps_f32, LV) X(dwb_taps_f64, LV) X(dwb_dots_f32, LV) X(dwb_dots_f64, LV)                 \
    X(dwb_scatter_f32, LV) X(dwb_scatter_f64, LV) X(dwb_rows_f32, LV) X(dwb_rows_f64, LV)
FASTCONV_KERNEL_TABLE(dw, DW_ENTRIES, "FASTCONV_DEPTHWISE_LEVEL")

#endif

