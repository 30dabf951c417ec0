/* Micro-kernels of fastconv's Winograd convolution F(4x4, 3x3) (src/_winograd.pyx), its 1-D
 * F(6, 3) (src/_winograd1d.pyx, the wg1_ kernels below) and the register-tiled GEMM both run
 * their position products on (wg1_gemm).
 *
 * Every kernel works on channel-last scratch: a tile position holds the values of all channels
 * (padded to CP, a multiple of the vector length) contiguously, so the transforms run on whole
 * vectors of channels and never gather. `wg_stage` copies a window of an NCHW plane into that
 * layout (zeros outside the plane: the implicit padding), `wg_unstage` copies it back.
 *
 * Transforms (Lavin & Gray 2015), on 6x6 input tiles d, 3x3 kernels g and 4x4 output tiles:
 *   input   V = B^T d B           output  y = A^T M A
 *   kernel  U = G g G^T (NumPy)   gy      Mg = A gy A^T  (the kernel gradient's transform)
 * Transformed tiles are stored position-major: X[xi][t][c] for the 36 positions xi, so that
 * for each position the (tiles x channels) matrix is one GEMM operand; the planes are WG_PLANE
 * elements apart (see there).
 *
 * Following BLIS (and src/_direct_kernels.h), only these kernels depend on the instruction set:
 * each is compiled once per level of src/_cpu_level.h (x86-64-v4, x86-64-v3, the build's own
 * target) and reached through the table wg_init() fills at import (fixed for the life of the
 * process; FASTCONV_WINOGRAD_LEVEL=0 or 1 asks for a lower one, to test every set). The vector
 * length decides only the channel padding, never the order of any sum, so results are the same
 * on every level up to the FMA contraction the compiler chooses for it.
 *
 * The file is its own body: _cpu_each_level.h includes it once per level (FASTCONV_LV defined),
 * and that includes it once per precision (WG_T defined).
 */
#if defined(WG_T)

#define WG_CAT_(a, b) a##_##b
#define WG_CAT(a, b) WG_CAT_(a, b)
#define WG_SUF WG_CAT(WG_T, FASTCONV_LV)
#define WG_FN(name) WG_CAT(name, WG_SUF)
#define VT WG_CAT(wg_vec, WG_SUF)
#define VU WG_CAT(wg_vecu, WG_SUF)
/* Elements between two of the 36 position planes of a block: n and one cache line more, so that
   the planes, a multiple of 4 KiB apart otherwise, do not all fall into the same L1 sets. */
#define WG_PLANE(n) ((n) + 64 / (Py_ssize_t)sizeof(WG_T))

typedef WG_T VT __attribute__((vector_size(FASTCONV_VB)));
typedef WG_T VU __attribute__((vector_size(FASTCONV_VB), aligned(sizeof(WG_T))));

/* Transpose the L x L block v (row i = v[i]) in place: log2(L) rounds that swap the off-diagonal
   halves of every 2b x 2b block, two two-source shuffles (constant indices) per pair of rows. */
#define WG_LO(b, j) (((j) & (b)) ? WG_L + (j) - (b) : (j))
#define WG_HI(b, j) (((j) & (b)) ? WG_L + (j) : ((j) + (b)) % (2 * WG_L))   /* in range when dead */
#define WG_ROUND(b)                                                                                \
    if (WG_L > (b)) {                                                                              \
        _Pragma("GCC unroll 16")                                                                   \
        for (int i = 0; i < WG_L; i++) {                                                           \
            if (i & (b)) continue;                                                                 \
            const VT a = v[i], c = v[i + (b)];                                                     \
            v[i] = FASTCONV_SHUFFLE(WG_IT, a, c, FASTCONV_SEQ(WG_L, WG_LO, b));                    \
            v[i + (b)] = FASTCONV_SHUFFLE(WG_IT, a, c, FASTCONV_SEQ(WG_L, WG_HI, b));              \
        }                                                                                          \
    }
FASTCONV_ATTR static inline void WG_FN(wg_transpose)(VT* v) {
    WG_ROUND(8)
    WG_ROUND(4)
    WG_ROUND(2)
    WG_ROUND(1)
}
#undef WG_LO
#undef WG_HI
#undef WG_ROUND

/* Copy rows [row0, row0 + nrows) x columns [col0, col0 + ncols) of a C-channel plane (channel
   stride cstride, H x W) into dst[r][q][c] (CP channels, the padded ones zero); zeros outside.
   Blocks of L channels x L columns go through a register transpose; a row shorter than L goes
   one value at a time, and the last block of a longer one overlaps the one before. */
FASTCONV_ATTR static int WG_FN(wg_stage)(const WG_T* src, Py_ssize_t channels, Py_ssize_t cstride,
        Py_ssize_t H, Py_ssize_t W, Py_ssize_t row0, Py_ssize_t col0, Py_ssize_t nrows,
        Py_ssize_t ncols, WG_T* restrict dst, Py_ssize_t CP) {
    enum { L = FASTCONV_VB / sizeof(WG_T) };
    Py_ssize_t qlo = col0 < 0 ? -col0 : 0;
    Py_ssize_t qhi = W - col0 < ncols ? W - col0 : ncols;
    if (qhi < qlo) qhi = qlo;
    for (Py_ssize_t r = 0; r < nrows; r++) {
        WG_T* restrict drow = dst + r * ncols * CP;
        const Py_ssize_t ih = row0 + r;
        if (ih < 0 || ih >= H || qhi == qlo) {
            memset(drow, 0, (size_t)(ncols * CP) * sizeof(WG_T));
            continue;
        }
        memset(drow, 0, (size_t)(qlo * CP) * sizeof(WG_T));
        memset(drow + qhi * CP, 0, (size_t)((ncols - qhi) * CP) * sizeof(WG_T));
        const WG_T* srow = src + ih * W + col0;
        for (Py_ssize_t c0 = 0; c0 < CP; c0 += L) {
            const Py_ssize_t nch = channels - c0 < L ? channels - c0 : L;
            if (qhi - qlo < L) {
                for (Py_ssize_t q = qlo; q < qhi; q++)
                    for (Py_ssize_t c = 0; c < L; c++)
                        drow[q * CP + c0 + c] = c < nch ? srow[(c0 + c) * cstride + q] : 0;
                continue;
            }
            for (Py_ssize_t q = qlo; ; q += L) {
                if (q > qhi - L) q = qhi - L;
                VT v[L];
                for (int i = 0; i < L; i++)
                    v[i] = i < nch ? *(const VU*)(srow + (c0 + i) * cstride + q) : (VT){0};
                WG_FN(wg_transpose)(v);
                for (int j = 0; j < L; j++) *(VU*)(drow + (q + j) * CP + c0) = v[j];
                if (q + L >= qhi) break;
            }
        }
    }
    return 0;
}

/* dst[k][row0 + r][col0 + q] = Y[r][q][k] for the rows and columns inside the H x W plane, by
   L x L register transposes as wg_stage. */
FASTCONV_ATTR static int WG_FN(wg_unstage)(const WG_T* restrict Y, Py_ssize_t ycols, Py_ssize_t KP,
        WG_T* dst, Py_ssize_t channels, Py_ssize_t cstride, Py_ssize_t H, Py_ssize_t W,
        Py_ssize_t row0, Py_ssize_t col0, Py_ssize_t nrows, Py_ssize_t ncols) {
    enum { L = FASTCONV_VB / sizeof(WG_T) };
    const Py_ssize_t r1 = H - row0 < nrows ? H - row0 : nrows;
    const Py_ssize_t q1 = W - col0 < ncols ? W - col0 : ncols;
    if (col0 == 0 && ycols == W && r1 * W >= L) {
        /* whole rows: each channel's block is one contiguous run of r1 * W values */
        const Py_ssize_t n = r1 * W;
        WG_T* base = dst + row0 * W;
        for (Py_ssize_t k0 = 0; k0 < channels; k0 += L) {
            const Py_ssize_t nch = channels - k0 < L ? channels - k0 : L;
            for (Py_ssize_t p = 0; ; p += L) {
                if (p > n - L) p = n - L;
                VT v[L];
                for (int j = 0; j < L; j++) v[j] = *(const VU*)(Y + (p + j) * KP + k0);
                WG_FN(wg_transpose)(v);
                for (int i = 0; i < nch; i++) *(VU*)(base + (k0 + i) * cstride + p) = v[i];
                if (p + L >= n) break;
            }
        }
        return 0;
    }
    for (Py_ssize_t r = 0; r < r1; r++) {
        const WG_T* restrict yrow = Y + r * ycols * KP;
        WG_T* drow = dst + (row0 + r) * W + col0;
        for (Py_ssize_t k0 = 0; k0 < channels; k0 += L) {
            const Py_ssize_t nch = channels - k0 < L ? channels - k0 : L;
            if (q1 < L) {
                for (Py_ssize_t k = 0; k < nch; k++)
                    for (Py_ssize_t q = 0; q < q1; q++)
                        drow[(k0 + k) * cstride + q] = yrow[q * KP + k0 + k];
                continue;
            }
            for (Py_ssize_t q = 0; ; q += L) {
                if (q > q1 - L) q = q1 - L;
                VT v[L];
                for (int j = 0; j < L; j++) v[j] = *(const VU*)(yrow + (q + j) * KP + k0);
                WG_FN(wg_transpose)(v);
                for (int i = 0; i < nch; i++) *(VU*)(drow + (k0 + i) * cstride + q) = v[i];
                if (q + L >= q1) break;
            }
        }
    }
    return 0;
}

/* B^T applied to 6 values (in place order: out[i] from in[0..5]). */
#define WG_BT(d0, d1, d2, d3, d4, d5, o0, o1, o2, o3, o4, o5) do {                                \
        const VT a_ = d4 - 4 * d2, b_ = d3 - 4 * d1, c_ = d4 - d2, e_ = 2 * (d3 - d1);             \
        o0 = 4 * d0 - 5 * d2 + d4;                                                                 \
        o1 = a_ + b_;                                                                              \
        o2 = a_ - b_;                                                                              \
        o3 = c_ + e_;                                                                              \
        o4 = c_ - e_;                                                                              \
        o5 = 4 * d1 - 5 * d3 + d5;                                                                 \
    } while (0)

/* A^T applied to 6 values, giving 4. */
#define WG_AT(m0, m1, m2, m3, m4, m5, o0, o1, o2, o3) do {                                        \
        const VT p_ = m1 + m2, q_ = m1 - m2, r_ = m3 + m4, s_ = m3 - m4;                           \
        o0 = m0 + p_ + r_;                                                                         \
        o1 = q_ + 2 * s_;                                                                          \
        o2 = p_ + 4 * r_;                                                                          \
        o3 = q_ + 8 * s_ + m5;                                                                     \
    } while (0)

/* A applied to 4 values, giving 6 (the transform of an output-gradient tile). */
#define WG_A(g0, g1, g2, g3, o0, o1, o2, o3, o4, o5) do {                                         \
        const VT p_ = g0 + g2, q_ = g1 + g3, r_ = g0 + 4 * g2, s_ = 2 * g1 + 8 * g3;               \
        o0 = g0;                                                                                   \
        o1 = p_ + q_;                                                                              \
        o2 = p_ - q_;                                                                              \
        o3 = r_ + s_;                                                                              \
        o4 = r_ - s_;                                                                              \
        o5 = g3;                                                                                   \
    } while (0)

/* Row i of a transformed 6x6 tile, o[0..5], into its positions 6i..6i+5 (planes `plane` apart). */
#define WG_PUT6(out, plane, i, o) do {                                                             \
        _Pragma("GCC unroll 6")                                                                    \
        for (int k_ = 0; k_ < 6; k_++) *(VU*)((out) + (6 * (i) + k_) * (plane)) = (o)[k_];         \
    } while (0)

/* V[xi][t][c] = (B^T d B)[xi] for the R x Cw tiles of X (tile (tr, tc) reads rows 4tr..4tr+5
   and columns 4tc..4tc+5 of X, which has xcols columns); t = t0 + tr * Cw + tc of a block of
   Tn tiles. Channels go in chunks of cw (a multiple of the vector; CP: one chunk), each chunk
   the Tn tiles' rows of cw values (c at (c / cw) Tn cw + t cw + c % cw), so that a GEMM over a
   chunk reads one run (the staged pass's kernel blocks); the planes of V are WG_PLANE(Tn x CP
   rounded up to cw) apart. */
FASTCONV_ATTR static int WG_FN(wg_input)(const WG_T* restrict X, Py_ssize_t xcols, Py_ssize_t CP,
        Py_ssize_t cw, Py_ssize_t R, Py_ssize_t Cw, WG_T* restrict V, Py_ssize_t t0,
        Py_ssize_t Tn) {
    enum { L = FASTCONV_VB / sizeof(WG_T) };
    const Py_ssize_t plane = WG_PLANE(Tn * ((CP + cw - 1) / cw * cw));
    for (Py_ssize_t tr = 0; tr < R; tr++)
        for (Py_ssize_t tc = 0; tc < Cw; tc++) {
            const Py_ssize_t t = t0 + tr * Cw + tc;
            WG_T* chunk = V + t * cw;       /* c's chunk's row of tile t, c - `in` its first */
            Py_ssize_t in = 0;
            for (Py_ssize_t c = 0; c < CP; c += L, in += L) {
                if (in == cw) {
                    chunk += Tn * cw;
                    in = 0;
                }
                const WG_T* base = X + (4 * tr * xcols + 4 * tc) * CP + c;
                VT u[6][6];
                for (int j = 0; j < 6; j++) {
#define LD(i) (*(const VU*)(base + ((i) * xcols + j) * CP))
                    WG_BT(LD(0), LD(1), LD(2), LD(3), LD(4), LD(5),
                          u[0][j], u[1][j], u[2][j], u[3][j], u[4][j], u[5][j]);
#undef LD
                }
                WG_T* out = chunk + in;
                for (int i = 0; i < 6; i++) {
                    VT o[6];
                    WG_BT(u[i][0], u[i][1], u[i][2], u[i][3], u[i][4], u[i][5],
                          o[0], o[1], o[2], o[3], o[4], o[5]);
                    WG_PUT6(out, plane, i, o);
                }
            }
        }
    return 0;
}

/* Y[4tr + i][4tc + j][k] = (A^T M A)[i][j] of tile t = t0 + tr * Cw + tc, from M[xi][t][k] (KP
   channels in blocks of kw, as wg_input's chunks: KP, one block; a block of Tn tiles); Y has
   ycols columns. Returns 1 if a value is not finite. */
FASTCONV_ATTR static int WG_FN(wg_output)(const WG_T* restrict M, Py_ssize_t KP, Py_ssize_t kw,
        Py_ssize_t R, Py_ssize_t Cw, WG_T* restrict Y, Py_ssize_t ycols, Py_ssize_t t0,
        Py_ssize_t Tn) {
    enum { L = FASTCONV_VB / sizeof(WG_T) };
    const Py_ssize_t plane = WG_PLANE(Tn * ((KP + kw - 1) / kw * kw));
    VT bad = (VT){0};
    for (Py_ssize_t tr = 0; tr < R; tr++)
        for (Py_ssize_t tc = 0; tc < Cw; tc++) {
            const Py_ssize_t t = t0 + tr * Cw + tc;
            const WG_T* block = M + t * kw;     /* k's block's row of tile t */
            Py_ssize_t in = 0;
            for (Py_ssize_t k = 0; k < KP; k += L, in += L) {
                if (in == kw) {
                    block += Tn * kw;
                    in = 0;
                }
                const WG_T* base = block + in;
                VT s[4][6];
                for (int j = 0; j < 6; j++) {
#define LD(i) (*(const VU*)(base + (6 * (i) + j) * plane))
                    WG_AT(LD(0), LD(1), LD(2), LD(3), LD(4), LD(5),
                          s[0][j], s[1][j], s[2][j], s[3][j]);
#undef LD
                }
                WG_T* out = Y + (4 * tr * ycols + 4 * tc) * KP + k;
                for (int i = 0; i < 4; i++) {
                    VT o0, o1, o2, o3;
                    WG_AT(s[i][0], s[i][1], s[i][2], s[i][3], s[i][4], s[i][5], o0, o1, o2, o3);
                    bad += o0 * 0 + o1 * 0 + o2 * 0 + o3 * 0;
                    *(VU*)(out + (i * ycols + 0) * KP) = o0;
                    *(VU*)(out + (i * ycols + 1) * KP) = o1;
                    *(VU*)(out + (i * ycols + 2) * KP) = o2;
                    *(VU*)(out + (i * ycols + 3) * KP) = o3;
                }
            }
        }
    for (int l = 0; l < L; l++)
        if (bad[l] != 0 || bad[l] != bad[l]) return 1;
    return 0;
}

/* Mg[xi][t][k] = (A g A^T)[xi] of the 4x4 output-gradient tile of G at (4tr, 4tc), t as in
   wg_input. */
FASTCONV_ATTR static int WG_FN(wg_gy)(const WG_T* restrict G, Py_ssize_t gcols, Py_ssize_t KP,
        Py_ssize_t R, Py_ssize_t Cw, WG_T* restrict Mg, Py_ssize_t t0, Py_ssize_t Tn) {
    enum { L = FASTCONV_VB / sizeof(WG_T) };
    const Py_ssize_t plane = WG_PLANE(Tn * KP);
    for (Py_ssize_t tr = 0; tr < R; tr++)
        for (Py_ssize_t tc = 0; tc < Cw; tc++) {
            const Py_ssize_t t = t0 + tr * Cw + tc;
            for (Py_ssize_t k = 0; k < KP; k += L) {
                const WG_T* base = G + (4 * tr * gcols + 4 * tc) * KP + k;
                VT u[6][4];
                for (int j = 0; j < 4; j++) {
#define LD(i) (*(const VU*)(base + ((i) * gcols + j) * KP))
                    WG_A(LD(0), LD(1), LD(2), LD(3),
                         u[0][j], u[1][j], u[2][j], u[3][j], u[4][j], u[5][j]);
#undef LD
                }
                WG_T* out = Mg + t * KP + k;
                for (int i = 0; i < 6; i++) {
                    VT o[6];
                    WG_A(u[i][0], u[i][1], u[i][2], u[i][3], o[0], o[1], o[2], o[3], o[4], o[5]);
                    WG_PUT6(out, plane, i, o);
                }
            }
        }
    return 0;
}

/* The 1-D F(6, 3) (src/_winograd1d.pyx), on the points 0, +-1, +-2, +-1/2 and infinity (as
   NNPACK's): V = B^T d for 8 inputs, y = A^T M for 6 outputs, Mg = A g. X (or G) is a
   channel-last window of consecutive positions, CP (KP) channels each; a block is `dil`
   interleaved runs of Tr tiles (dilation dil: the runs are the residues of the positions modulo
   dil). Tile t = t0 + r * Tr + j reads positions r + dil * (6j + i), i = 0..7, and owns positions
   r + dil * (6j + m), m = 0..5; its 8 transformed values go to planes WG_PLANE(Tn * CP) (or KP)
   apart, as the 2-D kernels'. */
#define WG1_TILE 6
#define WG1_POSITIONS 8
/* (wg1_input and wg1_output take the tiles j0 .. j0 + jn of each run, X and Y holding the
   positions from 6 dil j0 on: a chunk of the block, which stays in L1.) */
FASTCONV_ATTR static int WG_FN(wg1_input)(const WG_T* restrict X, Py_ssize_t CP, Py_ssize_t dil,
        Py_ssize_t Tr, WG_T* restrict V, Py_ssize_t t0, Py_ssize_t Tn, Py_ssize_t j0,
        Py_ssize_t jn) {
    enum { L = FASTCONV_VB / sizeof(WG_T) };
    const Py_ssize_t plane = WG_PLANE(Tn * CP), step = dil * CP;
    for (Py_ssize_t r = 0; r < dil; r++)
        for (Py_ssize_t j = j0; j < j0 + jn; j++) {
            const WG_T* base = X + (r + WG1_TILE * (j - j0) * dil) * CP;
            WG_T* out = V + (t0 + r * Tr + j) * CP;
            for (Py_ssize_t c = 0; c < CP; c += L) {
#define LD(i) (*(const VU*)(base + (i) * step + c))
                const VT d0 = LD(0), d1 = LD(1), d2 = LD(2), d3 = LD(3);
                const VT d4 = LD(4), d5 = LD(5), d6 = LD(6), d7 = LD(7);
#undef LD
                const VT e1 = d2 + d6 - (WG_T)4.25 * d4, o1 = d1 + d5 - (WG_T)4.25 * d3;
                const VT e2 = d6 + (WG_T)0.25 * d2 - (WG_T)1.25 * d4;
                const VT o2 = (WG_T)0.5 * d1 - (WG_T)2.5 * d3 + 2 * d5;
                const VT e3 = d6 + 4 * d2 - 5 * d4, o3 = 2 * d1 - (WG_T)2.5 * d3 + (WG_T)0.5 * d5;
                VT v[8];
                v[0] = d0 - d6 + (WG_T)5.25 * (d4 - d2);
                v[1] = e1 + o1;
                v[2] = e1 - o1;
                v[3] = e2 + o2;
                v[4] = e2 - o2;
                v[5] = e3 + o3;
                v[6] = e3 - o3;
                v[7] = d7 - d1 + (WG_T)5.25 * (d3 - d5);
                _Pragma("GCC unroll 8")
                for (int i = 0; i < 8; i++) *(VU*)(out + i * plane + c) = v[i];
            }
        }
    return 0;
}

/* Y's positions of every tile (as wg1_input) = A^T M[xi][t]; 1 if a value is not finite. */
FASTCONV_ATTR static int WG_FN(wg1_output)(const WG_T* restrict M, Py_ssize_t KP, Py_ssize_t dil,
        Py_ssize_t Tr, WG_T* restrict Y, Py_ssize_t t0, Py_ssize_t Tn, Py_ssize_t j0,
        Py_ssize_t jn) {
    enum { L = FASTCONV_VB / sizeof(WG_T) };
    const Py_ssize_t plane = WG_PLANE(Tn * KP), step = dil * KP;
    VT bad = (VT){0};
    for (Py_ssize_t r = 0; r < dil; r++)
        for (Py_ssize_t j = j0; j < j0 + jn; j++) {
            const WG_T* base = M + (t0 + r * Tr + j) * KP;
            WG_T* out = Y + (r + WG1_TILE * (j - j0) * dil) * KP;
            for (Py_ssize_t k = 0; k < KP; k += L) {
#define LD(i) (*(const VU*)(base + (i) * plane + k))
                const VT m0 = LD(0), m1 = LD(1), m2 = LD(2), m3 = LD(3);
                const VT m4 = LD(4), m5 = LD(5), m6 = LD(6), m7 = LD(7);
#undef LD
                const VT a = m1 + m2, b = m1 - m2, c = m3 + m4, e = m3 - m4;
                const VT f = m5 + m6, h = m5 - m6;
                VT o[6];
                o[0] = m0 + a + c + f;
                o[1] = b + 2 * e + (WG_T)0.5 * h;
                o[2] = a + 4 * c + (WG_T)0.25 * f;
                o[3] = b + 8 * e + (WG_T)0.125 * h;
                o[4] = a + 16 * c + (WG_T)0.0625 * f;
                o[5] = b + 32 * e + (WG_T)0.03125 * h + m7;
                _Pragma("GCC unroll 6")
                for (int m = 0; m < 6; m++) {
                    bad += o[m] * 0;
                    *(VU*)(out + m * step + k) = o[m];
                }
            }
        }
    for (int l = 0; l < L; l++)
        if (bad[l] != 0 || bad[l] != bad[l]) return 1;
    return 0;
}

/* Mg[xi][t] = (A g)[xi] of the output-gradient values g a tile owns in G (as wg1_input). */
FASTCONV_ATTR static int WG_FN(wg1_gy)(const WG_T* restrict G, Py_ssize_t KP, Py_ssize_t dil,
        Py_ssize_t Tr, WG_T* restrict Mg, Py_ssize_t t0, Py_ssize_t Tn) {
    enum { L = FASTCONV_VB / sizeof(WG_T) };
    const Py_ssize_t plane = WG_PLANE(Tn * KP), step = dil * KP;
    for (Py_ssize_t r = 0; r < dil; r++)
        for (Py_ssize_t j = 0; j < Tr; j++) {
            const WG_T* base = G + (r + WG1_TILE * j * dil) * KP;
            WG_T* out = Mg + (t0 + r * Tr + j) * KP;
            for (Py_ssize_t k = 0; k < KP; k += L) {
#define LD(i) (*(const VU*)(base + (i) * step + k))
                const VT g0 = LD(0), g1 = LD(1), g2 = LD(2), g3 = LD(3), g4 = LD(4), g5 = LD(5);
#undef LD
                const VT e1 = g0 + g2 + g4, o1 = g1 + g3 + g5;
                const VT e2 = g0 + 4 * g2 + 16 * g4, o2 = 2 * g1 + 8 * g3 + 32 * g5;
                const VT e3 = g0 + (WG_T)0.25 * g2 + (WG_T)0.0625 * g4;
                const VT o3 = (WG_T)0.5 * g1 + (WG_T)0.125 * g3 + (WG_T)0.03125 * g5;
                VT v[8];
                v[0] = g0;
                v[1] = e1 + o1;
                v[2] = e1 - o1;
                v[3] = e2 + o2;
                v[4] = e2 - o2;
                v[5] = e3 + o3;
                v[6] = e3 - o3;
                v[7] = g5;
                _Pragma("GCC unroll 8")
                for (int i = 0; i < 8; i++) *(VU*)(out + i * plane + k) = v[i];
            }
        }
    return 0;
}

/* The GEMMs of one transformed position of a block, on fastconv's own register tiles:
     C[r][q] (+)= sum_i A[r * ars + i * ais] * B[i * ldb + q],  r < rows, q < cols, i < n
   forward: M = V @ U (A = V, rows the tiles, B = U, cols KP, the sum over input channels);
   kernel gradient: dU^T += V^T Mg (A = V read down its columns, rows the input channels, B = Mg,
   cols KP, the sum over the tiles). Tiles of RT rows by KV vectors of columns: each B vector
   loaded serves RT rows, each A value broadcast serves KV vectors (as the blocked algorithm's
   tiles, src/_blocked_kernels.h); B's slice of KV vectors stays in L1 while the rows pass. Every
   sum runs over i in order, whatever the tile: the same bits on any thread count. `load`: add to
   C (else C is overwritten). cols is a multiple of the vector. */
#define WG1_ACC (FASTCONV_VB == 64 ? 24 : 12)  /* accumulators in registers (with 4 of B and x) */
FASTCONV_ATTR static inline __attribute__((always_inline)) void WG_FN(wg1_tile)(
        const WG_T* restrict A, Py_ssize_t ars, Py_ssize_t ais, const WG_T* restrict B,
        Py_ssize_t ldb, WG_T* restrict Cm, Py_ssize_t ldc, Py_ssize_t n, int load, const int RT,
        const int KV) {
    enum { L = FASTCONV_VB / sizeof(WG_T) };
    VT acc[7][4];
    _Pragma("GCC unroll 7")
    for (int r = 0; r < RT; r++)
        _Pragma("GCC unroll 4")
        for (int v = 0; v < KV; v++)
            acc[r][v] = load ? *(const VU*)(Cm + r * ldc + v * L) : (VT){0};
    for (Py_ssize_t i = 0; i < n; i++) {
        VT b[4];
        _Pragma("GCC unroll 4")
        for (int v = 0; v < KV; v++) b[v] = *(const VU*)(B + i * ldb + v * L);
        _Pragma("GCC unroll 7")
        for (int r = 0; r < RT; r++) {
            const WG_T x = A[r * ars + i * ais];    /* vector x scalar: one broadcast, no 0 + x */
            _Pragma("GCC unroll 4")
            for (int v = 0; v < KV; v++) acc[r][v] += b[v] * x;
        }
    }
    _Pragma("GCC unroll 7")
    for (int r = 0; r < RT; r++)
        _Pragma("GCC unroll 4")
        for (int v = 0; v < KV; v++) *(VU*)(Cm + r * ldc + v * L) = acc[r][v];
}

#define WG1_TILE_CALL(R, KV) WG_FN(wg1_tile)(A + r0 * ars, ars, ais, B + q0, ldb,                  \
        Cm + r0 * ldc + q0, ldc, n, load, (WG1_ACC / (KV) >= (R) ? (R) : 1), KV)
#define WG1_TILE_ROWS(KV) do {                                                                     \
        switch (rt) {                                                                              \
        case 1: WG1_TILE_CALL(1, KV); break;                                                       \
        case 2: WG1_TILE_CALL(2, KV); break;                                                       \
        case 3: WG1_TILE_CALL(3, KV); break;                                                       \
        case 4: WG1_TILE_CALL(4, KV); break;                                                       \
        case 5: WG1_TILE_CALL(5, KV); break;                                                       \
        case 6: WG1_TILE_CALL(6, KV); break;                                                       \
        default: WG1_TILE_CALL(7, KV); break;                                                      \
        }                                                                                          \
    } while (0)

FASTCONV_ATTR static int WG_FN(wg1_gemm)(const WG_T* restrict A, Py_ssize_t ars, Py_ssize_t ais,
        const WG_T* restrict B, Py_ssize_t ldb, WG_T* restrict Cm, Py_ssize_t ldc,
        Py_ssize_t rows, Py_ssize_t cols, Py_ssize_t n, int load) {
    enum { L = FASTCONV_VB / sizeof(WG_T) };
    for (Py_ssize_t q0 = 0; q0 < cols; ) {
        const int kv = (cols - q0) / L >= 4 ? 4 : (cols - q0) / L >= 2 ? 2 : 1;
        const int most = WG1_ACC / kv > 7 ? 7 : WG1_ACC / kv;     /* 6 x 4 at AVX-512, 3 x 4 */
        for (Py_ssize_t r0 = 0; r0 < rows; r0 += most) {
            const int rt = rows - r0 < most ? (int)(rows - r0) : most;
            if (kv == 4) WG1_TILE_ROWS(4);
            else if (kv == 2) WG1_TILE_ROWS(2);
            else WG1_TILE_ROWS(1);
        }
        q0 += kv * L;
    }
    return 0;
}
#undef WG1_TILE_CALL
#undef WG1_TILE_ROWS
#undef WG1_ACC
#include "_winograd_kernel_transforms.h"

#undef WG1_TILE
#undef WG1_POSITIONS

#undef WG_PUT6
#undef VT
#undef VU
#undef WG_SUF
#undef WG_PLANE

#elif defined(FASTCONV_LV)
/* One level: both precisions (WG_L: the lanes, a literal). */
#define WG_T float
#define WG_IT int
#define WG_L FASTCONV_NF
#include "_winograd_kernels.h"
#undef WG_T
#undef WG_IT
#undef WG_L
#define WG_T double
#define WG_IT long long
#define WG_L FASTCONV_ND
#include "_winograd_kernels.h"
#undef WG_T
#undef WG_IT
#undef WG_L

#elif !defined(FASTCONV_WINOGRAD_KERNELS_H)
#define FASTCONV_WINOGRAD_KERNELS_H

#include <stdlib.h>
#include <string.h>

#include "_cpu_level.h"
#include "_vectors.h"

#define FASTCONV_LEVEL_BODY "_winograd_kernels.h"
#include "_cpu_each_level.h"
#undef FASTCONV_LEVEL_BODY

#define WG_ENTRIES(X, LV)                                                                          \
    X(wg_stage_float, LV) X(wg_stage_double, LV) X(wg_unstage_float, LV)                           \
    X(wg_unstage_double, LV) X(wg_input_float, LV) X(wg_input_double, LV)                          \
    X(wg_output_float, LV) X(wg_output_double, LV) X(wg_gy_float, LV) X(wg_gy_double, LV)       \
    X(wg1_input_float, LV) X(wg1_input_double, LV) X(wg1_output_float, LV)                         \
    X(wg1_output_double, LV) X(wg1_gy_float, LV) X(wg1_gy_double, LV) X(wg1_gemm_float, LV)       \
    X(wg1_gemm_double, LV) X(wg1_kernel_float, LV) X(wg1_kernel_double, LV)                       \
    X(wg_kernel_float, LV) X(wg_kernel_double, LV) X(wg_untransform_float, LV)                   \
    X(wg_untransform_double, LV)
/* The variable that asks for a lower level: the depthwise module compiles its own copy of these
   kernels for their channel-last staging, at its own set's level (src/_depthwise_stage.h). */
#ifndef WG_LEVEL_ENV
#define WG_LEVEL_ENV "FASTCONV_WINOGRAD_LEVEL"
#endif
FASTCONV_KERNEL_TABLE(wg, WG_ENTRIES, WG_LEVEL_ENV)

/* Bytes of one vector of the kernels this process runs: channels are padded to it. */
static inline Py_ssize_t wg_vector_bytes(void) {
    return fastconv_vector_bytes(wg_level());
}

#endif
