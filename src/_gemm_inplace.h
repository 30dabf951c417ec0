/* fastconv's own GEMM with A read where it lies (src/_gemm_kernels.h's body includes this once
 * per level and precision, with its GM_T, GM_L, GM_KR, GM_NR, VT, VU and GM_FN): the pointwise
 * algorithm's (src/_pointwise.pyx) C = sum over samples s of A_s B_s.
 *
 * A 1x1 layer is a GEMM whose A, the weights (forward, grad_input) or the output gradient
 * (grad_kernel), is as large as the work on a small map: MobileNetV2's 320 -> 1280 layer on 7x7
 * packs 1.6 MB of weights for 49 positions. Here A is never packed: a tile broadcasts each of its
 * GM_KR rows' values straight from A, whose element (i, kk) lies at a[i * lda + kk] (ACOLS 0:
 * rows of A along kk, the weights as given) or a[i + kk * lda] (ACOLS 1: the weights transposed,
 * grad_input's); the hardware follows the GM_KR streams. B, small there (the positions of one
 * sample), is packed into panels of GM_NR columns, kk running over the samples' k rows in turn:
 * gm_pack_b reads it in rows (x, gy) or transposed (grad_kernel's input). Where few rows of C
 * read a panel, the tiles read B's rows where they lie instead (gm_inplace's ldb).
 *
 * Each C value is one sum over (s, kk) in order, whatever tile computes it, so results do not
 * depend on the blocking or the thread count.
 */

/* Panels of B: bp[panel][s * k + kk][GM_NR] = B_s(kk, j) = b[s * ss + kk * rs + j * cs] for the
   panel's columns j < n, zero past n (the last panel's). Rows of B (cs 1) are read a row at a
   time across the panels (a panel at a time read each row's piece from another page: memcpy
   took a third of a 56x56 layer); columns of B (grad_kernel's x) a panel at a time, a value of
   each of its columns a row (GM_NR streams the hardware follows; reading a column at a time
   wrote one line of the panel a value). */
FASTCONV_ATTR static int GM_FN(gm_pack_b)(const GM_T* b, Py_ssize_t samples, Py_ssize_t k,
                                          Py_ssize_t n, Py_ssize_t rs, Py_ssize_t cs,
                                          Py_ssize_t ss, GM_T* restrict bp) {
    const Py_ssize_t depth = samples * k, panels = (n + GM_NR - 1) / GM_NR;
    if (cs != 1) {
        for (Py_ssize_t t = 0; t < panels; t++) {
            const Py_ssize_t j0 = t * GM_NR, nr = n - j0 < GM_NR ? n - j0 : GM_NR;
            for (Py_ssize_t g = 0; g < depth; g++) {
                const GM_T* src = b + (g / k) * ss + (g % k) * rs + j0 * cs;
                GM_T* dst = bp + (t * depth + g) * GM_NR;
                for (Py_ssize_t j = 0; j < nr; j++)
                    dst[j] = src[j * cs];
                for (Py_ssize_t j = nr; j < GM_NR; j++)
                    dst[j] = 0;
            }
        }
        return 0;
    }
    for (Py_ssize_t g = 0; g < depth; g++) {
        const GM_T* src = b + (g / k) * ss + (g % k) * rs;
        GM_T* dst = bp + g * GM_NR;
        for (Py_ssize_t t = 0; t < panels; t++, dst += depth * GM_NR) {
            const Py_ssize_t j0 = t * GM_NR, nr = n - j0 < GM_NR ? n - j0 : GM_NR;
            if (nr == GM_NR) {
                _Pragma("GCC unroll 2")
                for (int v = 0; v < GM_NR / GM_L; v++)
                    *(VU*)(dst + v * GM_L) = *(const VU*)(src + j0 + v * GM_L);
                continue;
            }
            memcpy(dst, src + j0, (size_t)nr * sizeof(GM_T));
            memset(dst + nr, 0, (size_t)(GM_NR - nr) * sizeof(GM_T));
        }
    }
    return 0;
}

#define GM_IP_AHEAD 8       /* rows of A (kk) a transposed tile prefetches ahead */

/* A tile of ROWS x NV vectors of C (row stride ldc): A's rows i < ROWS, in place, times NV
   vectors of one panel of B, summed over the samples (A_s sa apart) and their k rows each. The
   panel's rows are GM_NR apart (packed; BIP 0: a constant, as a variable the kernel gradient's
   tiles ran 1.2-1.4x slower) or ldb apart (BIP 1: B read in place). */
#define GM_IP_TILE(ROWS, NV, ACOLS, BIP)                                                           \
FASTCONV_ATTR static inline void GM_FN(gm_ip_##ROWS##x##NV##_##ACOLS##_##BIP)(Py_ssize_t samples,  \
        Py_ssize_t k, const GM_T* restrict a, Py_ssize_t lda, Py_ssize_t sa,                      \
        const GM_T* restrict bp, Py_ssize_t ldb_in, GM_T* restrict c, Py_ssize_t ldc) {           \
    const Py_ssize_t ldb = BIP ? ldb_in : GM_NR;                                                   \
    VT acc[ROWS][NV];                                                                              \
    _Pragma("GCC unroll 12")                                                                       \
    for (int i = 0; i < ROWS; i++)                                                                 \
        _Pragma("GCC unroll 2")                                                                    \
        for (int v = 0; v < NV; v++)                                                               \
            acc[i][v] = (VT){0};                                                                   \
    for (Py_ssize_t s = 0; s < samples; s++) {                                                     \
        const GM_T* as = a + s * sa;                                                               \
        const GM_T* b = bp + s * k * ldb;                                                          \
        for (Py_ssize_t kk = 0; kk < k; kk++) {                                                    \
            VT bv[NV];                                                                             \
            _Pragma("GCC unroll 2")                                                                \
            for (int v = 0; v < NV; v++)                                                           \
                bv[v] = *(const VU*)(b + kk * ldb + v * GM_L);                                     \
            if (ACOLS) {    /* rows of A lda apart, too far for the hardware to follow          \
                               (grad_input of a 2048-channel layer ran at half the speed) */     \
                __builtin_prefetch(as + (kk + GM_IP_AHEAD) * lda);                                 \
                __builtin_prefetch(as + (kk + GM_IP_AHEAD) * lda + ROWS - 1);                      \
            }                                                                                      \
            _Pragma("GCC unroll 12")                                                               \
            for (int i = 0; i < ROWS; i++) {                                                       \
                const GM_T ai = ACOLS ? as[i + kk * lda] : as[i * lda + kk];                       \
                _Pragma("GCC unroll 2")                                                            \
                for (int v = 0; v < NV; v++)                                                       \
                    acc[i][v] += bv[v] * ai;                                                       \
            }                                                                                      \
        }                                                                                          \
    }                                                                                              \
    _Pragma("GCC unroll 12")                                                                       \
    for (int i = 0; i < ROWS; i++)                                                                 \
        _Pragma("GCC unroll 2")                                                                    \
        for (int v = 0; v < NV; v++)                                                               \
            *(VU*)(c + i * ldc + v * GM_L) = acc[i][v];                                            \
}
#define GM_IP_TILES(ROWS) GM_IP_TILE(ROWS, 2, 0, 0) GM_IP_TILE(ROWS, 1, 0, 0)                     \
    GM_IP_TILE(ROWS, 2, 1, 0) GM_IP_TILE(ROWS, 1, 1, 0) GM_IP_TILE(ROWS, 2, 0, 1)                 \
    GM_IP_TILE(ROWS, 2, 1, 1)
#if FASTCONV_VB >= 64
GM_IP_TILES(12) GM_IP_TILES(8)
#else
GM_IP_TILES(6)
#endif
GM_IP_TILES(4) GM_IP_TILES(2) GM_IP_TILES(1)

/* One tile of `rows` (GM_KR, or a power of two below it) by NV vectors. */
#if FASTCONV_VB >= 64
#  define GM_IP_WIDE(NV, ACOLS, BIP, ...)                                                          \
    case 12: GM_FN(gm_ip_12x##NV##_##ACOLS##_##BIP)(__VA_ARGS__); break;                           \
    case 8: GM_FN(gm_ip_8x##NV##_##ACOLS##_##BIP)(__VA_ARGS__); break;
#else
#  define GM_IP_WIDE(NV, ACOLS, BIP, ...)                                                          \
    case 6: GM_FN(gm_ip_6x##NV##_##ACOLS##_##BIP)(__VA_ARGS__); break;
#endif
#define GM_IP_CALL(rows, NV, ACOLS, BIP, ...)                                                      \
    switch (rows) {                                                                                \
    GM_IP_WIDE(NV, ACOLS, BIP, __VA_ARGS__)                                                        \
    case 4: GM_FN(gm_ip_4x##NV##_##ACOLS##_##BIP)(__VA_ARGS__); break;                             \
    case 2: GM_FN(gm_ip_2x##NV##_##ACOLS##_##BIP)(__VA_ARGS__); break;                             \
    default: GM_FN(gm_ip_1x##NV##_##ACOLS##_##BIP)(__VA_ARGS__); break;                            \
    }

/* The last panel's columns past its whole vectors, where there are few (at most GM_TAIL_MAX):
   rows [0, rows) of those `rem` columns (offset `off` in the panel) of C, without a vector of
   lanes for them. MobileNetV2's 320 -> 1280 layer on 7x7 has 49 positions a sample, 3 vectors
   and one column at AVX-512: a vector for that column made it 4 vectors of work for 3 1/16.
   A's rows along kk (acols 0): each value one dot product in vectors along kk, of A's row and
   the column, which `bt` (rem x samples * k values) holds gathered from the panel; its lanes
   are added in order at the end, then the kk past the last whole vector. A's columns along the
   rows (acols 1): vectors along the rows, the column's value broadcast, summed over (s, kk) in
   order. Either is one sum in a fixed order, whatever the blocking or the thread count. */
#define GM_TAIL_MAX (GM_L / 4)
#define GM_TAIL_ROWS 8        /* rows (acols 0) or vectors of rows (1) summed at once */
FASTCONV_ATTR static void GM_FN(gm_ip_tail)(Py_ssize_t rows, Py_ssize_t samples, Py_ssize_t k,
                                            const GM_T* a, Py_ssize_t lda, Py_ssize_t sa,
                                            int acols, const GM_T* bp, Py_ssize_t off,
                                            Py_ssize_t rem, GM_T* c, Py_ssize_t ldc,
                                            GM_T* restrict bt) {
    const Py_ssize_t depth = samples * k, kv = k / GM_L * GM_L;
    if (acols) {
        Py_ssize_t i = 0;
        for (; i < rows; i += GM_TAIL_ROWS * GM_L)
            for (Py_ssize_t q = 0; q < rem; q++) {
                /* GM_TAIL_ROWS vectors of rows: that many independent sums (one waited on the
                   multiply-add's latency), rows past the last whole vector one at a time */
                const int nvec = (int)((rows - i) / GM_L < GM_TAIL_ROWS ? (rows - i) / GM_L
                                                                          : GM_TAIL_ROWS);
                const int nrow = (int)(rows - i < GM_TAIL_ROWS * GM_L ? rows - i
                                                                        : GM_TAIL_ROWS * GM_L);
                VT acc[GM_TAIL_ROWS] = {{0}};
                GM_T rest[GM_L] = {0};
                for (Py_ssize_t s = 0; s < samples; s++)
                    for (Py_ssize_t kk = 0; kk < k; kk++) {
                        const GM_T* ak = a + s * sa + i + kk * lda;
                        const GM_T bq = bp[(s * k + kk) * GM_NR + off + q];
                        __builtin_prefetch(ak + GM_IP_AHEAD * lda);
                        _Pragma("GCC unroll 8")
                        for (int v = 0; v < GM_TAIL_ROWS; v++)
                            if (v < nvec)
                                acc[v] += *(const VU*)(ak + v * GM_L) * bq;
                        for (int r = nvec * GM_L; r < nrow; r++)
                            rest[r - nvec * GM_L] += ak[r] * bq;
                    }
                for (int r = 0; r < nrow; r++)
                    c[(i + r) * ldc + q] = r < nvec * GM_L ? acc[r / GM_L][r % GM_L]
                                                           : rest[r - nvec * GM_L];
            }
        return;
    }
    for (Py_ssize_t q = 0; q < rem; q++)
        for (Py_ssize_t g = 0; g < depth; g++)
            bt[q * depth + g] = bp[g * GM_NR + off + q];
    for (Py_ssize_t i = 0; i < rows; i += GM_TAIL_ROWS) {
        const int nrow = rows - i < GM_TAIL_ROWS ? (int)(rows - i) : GM_TAIL_ROWS;
        for (Py_ssize_t q = 0; q < rem; q++) {
            VT acc[GM_TAIL_ROWS] = {{0}};
            GM_T rest[GM_TAIL_ROWS] = {0};
            const GM_T* col = bt + q * depth;
            for (Py_ssize_t s = 0; s < samples; s++) {
                const GM_T* as = a + s * sa + i * lda;
                const GM_T* b = col + s * k;
                for (Py_ssize_t kk = 0; kk < kv; kk += GM_L) {
                    const VT bv = *(const VU*)(b + kk);
                    _Pragma("GCC unroll 8")
                    for (int r = 0; r < GM_TAIL_ROWS; r++)
                        if (r < nrow)
                            acc[r] += *(const VU*)(as + r * lda + kk) * bv;
                }
                for (Py_ssize_t kk = kv; kk < k; kk++)
                    for (int r = 0; r < nrow; r++)
                        rest[r] += as[r * lda + kk] * b[kk];
            }
            for (int r = 0; r < nrow; r++) {
                GM_T sum = 0;
                for (int l = 0; l < GM_L; l++)
                    sum += acc[r][l];
                c[(i + r) * ldc + q] = sum + rest[r];
            }
        }
    }
}

/* C's rows [i0, i1) on one panel (panel `panel` of n columns) = sum_s A_s B_s, A's element
   (i, kk) of sample s at a[s * sa + i * lda + kk] (acols 0) or a[s * sa + i + kk * lda]
   (acols 1). bp holds the panel's samples * k rows, ldb apart: packed (ldb GM_NR), or, for a
   whole panel of one sample, B's own rows from the panel's first column (ldb their length: B
   read in place, where packing it cost more than the few tiles of rows that read it). Blocks
   of GM_KR rows, then the powers of two that add up to the rest, but for a rest of two
   GM_KR_SMALL tiles (16 rows at AVX-512: 12 + 4 left a 4-row tile waiting on the FMA's
   latency). A panel of fewer than GM_NR columns is computed into `part` (at least
   (i1 - i0) x GM_NR values) and its columns copied out. (Chunks of the panel's rows that stay
   in L1, run against every block in turn, measured no faster: 0.93-1.25x the time.) */
#define GM_KR_SMALL (GM_KR > 8 ? 8 : 4)
FASTCONV_ATTR static int GM_FN(gm_inplace)(Py_ssize_t i0, Py_ssize_t i1, Py_ssize_t panel,
                                           Py_ssize_t n, Py_ssize_t samples, Py_ssize_t k,
                                           const GM_T* a, Py_ssize_t lda, Py_ssize_t sa,
                                           int acols, const GM_T* bp, Py_ssize_t ldb, GM_T* c,
                                           Py_ssize_t ldc, GM_T* part) {
    const Py_ssize_t j0 = panel * GM_NR, nr = n - j0 < GM_NR ? n - j0 : GM_NR;
    /* a few columns past the whole vectors: gm_ip_tail (its gathered columns in `part`) */
    const Py_ssize_t rem = nr % GM_L;
    const int tail = nr < GM_NR && rem <= GM_TAIL_MAX && rem * samples * k <= (i1 - i0) * GM_NR;
    const int whole = nr == GM_NR || tail, nv = tail ? (int)(nr / GM_L) : nr > GM_L ? 2 : 1;
    GM_T* out = whole ? c + i0 * ldc + j0 : part;
    const Py_ssize_t ldo = whole ? ldc : GM_NR;
    if (tail && rem)
        GM_FN(gm_ip_tail)(i1 - i0, samples, k, a + (acols ? i0 : i0 * lda), lda, sa, acols,
                          bp, nv * GM_L, rem, c + i0 * ldc + j0 + nv * GM_L, ldc, part);
    for (Py_ssize_t r0 = i0; r0 < i1 && nv > 0; ) {
        Py_ssize_t rows = i1 - r0 == 2 * GM_KR_SMALL ? GM_KR_SMALL : GM_KR;
        while (rows > i1 - r0)
            rows = rows == GM_KR ? GM_KR_SMALL : rows / 2;
        const GM_T* at = a + (acols ? r0 : r0 * lda);
        GM_T* ct = out + (r0 - i0) * ldo;
        if (ldb != GM_NR && acols) {     /* in place: whole panels, two vectors */
            GM_IP_CALL(rows, 2, 1, 1, samples, k, at, lda, sa, bp, ldb, ct, ldo)
        } else if (ldb != GM_NR) {
            GM_IP_CALL(rows, 2, 0, 1, samples, k, at, lda, sa, bp, ldb, ct, ldo)
        } else if (acols && nv == 2) {
            GM_IP_CALL(rows, 2, 1, 0, samples, k, at, lda, sa, bp, ldb, ct, ldo)
        } else if (acols) {
            GM_IP_CALL(rows, 1, 1, 0, samples, k, at, lda, sa, bp, ldb, ct, ldo)
        } else if (nv == 2) {
            GM_IP_CALL(rows, 2, 0, 0, samples, k, at, lda, sa, bp, ldb, ct, ldo)
        } else {
            GM_IP_CALL(rows, 1, 0, 0, samples, k, at, lda, sa, bp, ldb, ct, ldo)
        }
        r0 += rows;
    }
    if (!whole)
        for (Py_ssize_t r = 0; r < i1 - i0; r++)
            memcpy(c + (i0 + r) * ldc + j0, part + r * GM_NR, (size_t)nr * sizeof(GM_T));
    return 0;
}

#undef GM_IP_TILE
#undef GM_IP_TILES
#undef GM_IP_CALL
#undef GM_IP_WIDE
#undef GM_IP_AHEAD
#undef GM_TAIL_MAX
#undef GM_TAIL_ROWS
#undef GM_KR_SMALL
