/* The commonest max pool, 2x2 windows at stride 2 with no padding, on the build's own vectors
   (src/_pooling.pyx's max_rows_2x2 calls fc_max_2x2_*_rows for a run of a plane's output rows:
   each row's whole vectors of outputs here, the rest of the row one output at a time).

   Each output is the first maximum of its window (a, b / c, d) in row-major order -- a later
   value replaces only when strictly greater -- or NaN where the window holds one, indexed at the
   first NaN: the same values and indices as the scalar code, bit for bit. A row of outputs is
   read as pairs of input vectors, split into even and odd lanes by two shuffles; compares give
   lane masks, and every choice is a select (no branch on the data, which cost a misprediction
   per output in the scalar loop: 220 us on a LeNet's (32, 16, 16, 16) pool in a training step). */
#ifndef FASTCONV_POOLING_2X2_H
#define FASTCONV_POOLING_2X2_H
#include <stddef.h>
#include <string.h>

#include "_vectors.h"

#if defined(__AVX512F__)
#  define FC_P2_BYTES 64
#elif defined(__AVX__)
#  define FC_P2_BYTES 32
#else
#  define FC_P2_BYTES 16
#endif

/* T: the value type, IT its same-size integer, L lanes; FC_P2_EVEN / FC_P2_ODD list the even
   and odd lanes of a pair of vectors. */
#define FC_P2_EVEN(b, j) (2 * (j))
#define FC_P2_ODD(b, j) (2 * (j) + 1)
#define FC_P2_DEFINE(NAME, T, IT, L)                                                             \
typedef T NAME##_v __attribute__((vector_size(FC_P2_BYTES)));                                    \
typedef IT NAME##_m __attribute__((vector_size(FC_P2_BYTES)));                                   \
typedef long long NAME##_q __attribute__((vector_size(8 * L)));                                  \
static inline NAME##_m NAME##_pick(NAME##_m t, NAME##_m a, NAME##_m b) {                        \
    return (a & t) | (b & ~t);                                                                   \
}                                                                                                \
/* Outputs [0, count) of the row, count a multiple of L; returns count. r0, r1: the window     \
   rows; base: r0's flat index in its plane; W the rows' length. */                              \
static inline ptrdiff_t NAME(const T* r0, ptrdiff_t W, long long base, T* y, long long* idx,   \
                             int with_idx, ptrdiff_t count) {                                    \
    typedef NAME##_v V;                                                                          \
    typedef NAME##_m M;                                                                          \
    const T* r1 = r0 + W;                                                                        \
    const M zero = {0}, one = zero + 1, w = zero + (IT)W, w1 = zero + (IT)(W + 1);               \
    V nan;                                                                                       \
    NAME##_q step;                  /* 2 j: lane j's window starts 2 j after the vector's */     \
    for (int j = 0; j < L; j++) {                                                                \
        nan[j] = (T)__builtin_nan("");                                                           \
        step[j] = 2 * j;                                                                         \
    }                                                                                            \
    for (ptrdiff_t o = 0; o < count; o += L) {                                                   \
        V p0, p1, q0, q1;                                                                        \
        memcpy(&p0, r0 + 2 * o, sizeof(V));                                                      \
        memcpy(&p1, r0 + 2 * o + L, sizeof(V));                                                  \
        memcpy(&q0, r1 + 2 * o, sizeof(V));                                                      \
        memcpy(&q1, r1 + 2 * o + L, sizeof(V));                                                  \
        const V a = FASTCONV_SHUFFLE(IT, p0, p1, FASTCONV_SEQ(L, FC_P2_EVEN, 0));                \
        const V b = FASTCONV_SHUFFLE(IT, p0, p1, FASTCONV_SEQ(L, FC_P2_ODD, 0));                 \
        const V c = FASTCONV_SHUFFLE(IT, q0, q1, FASTCONV_SEQ(L, FC_P2_EVEN, 0));                \
        const V d = FASTCONV_SHUFFLE(IT, q0, q1, FASTCONV_SEQ(L, FC_P2_ODD, 0));                 \
        M best = (M)a, bi = zero, t;                                                             \
        t = (M)(b > (V)best); best = NAME##_pick(t, (M)b, best); bi = NAME##_pick(t, one, bi);   \
        t = (M)(c > (V)best); best = NAME##_pick(t, (M)c, best); bi = NAME##_pick(t, w, bi);     \
        t = (M)(d > (V)best); best = NAME##_pick(t, (M)d, best); bi = NAME##_pick(t, w1, bi);    \
        /* NaN: the first in row-major order wins (picked last to first) */                      \
        const M na = (M)(a != a), nb = (M)(b != b), nc = (M)(c != c), nd = (M)(d != d);          \
        bi = NAME##_pick(nd, w1, bi);                                                            \
        bi = NAME##_pick(nc, w, bi);                                                             \
        bi = NAME##_pick(nb, one, bi);                                                           \
        bi = NAME##_pick(na, zero, bi);                                                          \
        best = NAME##_pick(na | nb | nc | nd, (M)nan, best);                                     \
        memcpy(y + o, &best, sizeof(V));                                                         \
        if (with_idx) {                                                                          \
            const NAME##_q at = __builtin_convertvector(bi, NAME##_q) + step + (base + 2 * o);   \
            memcpy(idx + o, &at, sizeof(at));                                                    \
        }                                                                                        \
    }                                                                                            \
    return count;                                                                                \
}

/* rows output rows of a plane (W input columns, OW = W / 2 outputs a row, rounded down):
   whole vectors by the selects above, the rest of each row one output at a time. */
#define FC_P2_PLANE(NAME, T)                                                                     \
static inline void NAME##_rows(const T* x, ptrdiff_t W, ptrdiff_t rows, ptrdiff_t OW,           \
                               long long base, T* y, long long* idx, int with_idx) {            \
    enum { L = FC_P2_BYTES / sizeof(T) };                                                        \
    for (ptrdiff_t r = 0; r < rows; r++) {                                                       \
        const T* r0 = x + 2 * r * W;                                                             \
        const T* r1 = r0 + W;                                                                    \
        const long long b0 = base + 2 * r * W;                                                   \
        /* the vectors' in-window offsets have the lanes' size: 32 bits for float */             \
        const ptrdiff_t whole = sizeof(T) == 4 && W >= (1 << 30) ? 0 : OW - OW % L;              \
        ptrdiff_t o = NAME(r0, W, b0, y + r * OW, idx + (with_idx ? r * OW : 0), with_idx,      \
                           whole);                                                               \
        for (; o < OW; o++) {                                                                    \
            const T a = r0[2 * o], b = r0[2 * o + 1], c = r1[2 * o], d = r1[2 * o + 1];         \
            T best = a;                                                                          \
            long long bi = 0;                                                                    \
            int t = b > best; best = t ? b : best; bi = t ? 1 : bi;                              \
            t = c > best; best = t ? c : best; bi = t ? W : bi;                                  \
            t = d > best; best = t ? d : best; bi = t ? W + 1 : bi;                              \
            if ((a != a) | (b != b) | (c != c) | (d != d)) {    /* rare: the first NaN wins */   \
                best = (T)__builtin_nan("");                                                     \
                bi = a != a ? 0 : b != b ? 1 : c != c ? W : W + 1;                               \
            }                                                                                    \
            y[r * OW + o] = best;                                                                \
            if (with_idx)                                                                        \
                idx[r * OW + o] = b0 + 2 * o + bi;                                               \
        }                                                                                        \
    }                                                                                            \
}

#if FC_P2_BYTES == 64
FC_P2_DEFINE(fc_max_2x2_f32, float, int, 16)
FC_P2_DEFINE(fc_max_2x2_f64, double, long long, 8)
#elif FC_P2_BYTES == 32
FC_P2_DEFINE(fc_max_2x2_f32, float, int, 8)
FC_P2_DEFINE(fc_max_2x2_f64, double, long long, 4)
#else
FC_P2_DEFINE(fc_max_2x2_f32, float, int, 4)
FC_P2_DEFINE(fc_max_2x2_f64, double, long long, 2)
#endif
FC_P2_PLANE(fc_max_2x2_f32, float)
FC_P2_PLANE(fc_max_2x2_f64, double)

#endif
