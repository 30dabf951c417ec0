/* The kernel transforms of fastconv's Winograd convolutions, U = G g G^T (2-D F(4x4, 3x3)) and
 * U = G g (1-D F(6, 3)): the 2-D one in the problem's precision, in registers (it is the cost of a
 * small batch with many channels); the 1-D one and the untransforms in double, rounded once.
 *
 * Part of the per-level, per-precision body of src/_winograd_kernels.h, which includes this file
 * once for each (WG_T, FASTCONV_LV): no include guard, and WG_FN, WG_T and FASTCONV_ATTR are
 * that file's.
 */
/* Row i of G (6 x 3) times the column (v0, v1, v2): a row of G g, or of (G g) G^T. Computed row
   by row, the transform keeps 9 + 3 vectors live, which AVX2's 16 registers hold (all 18 of
   G g at once spilled there: slower than the scalar gathers it replaced). */
FASTCONV_ATTR static inline VT WG_FN(wg_g_row)(int i, VT v0, VT v1, VT v2) {
    const WG_T s6 = (WG_T)(1.0 / 6), s12 = (WG_T)(1.0 / 12), s24 = (WG_T)(1.0 / 24);
    switch (i) {
    case 0: return (WG_T)0.25 * v0;
    case 1: return -s6 * (v0 + v1 + v2);
    case 2: return -s6 * (v0 - v1 + v2);
    case 3: return s24 * v0 + s12 * v1 + s6 * v2;
    case 4: return s24 * v0 - s12 * v1 + s6 * v2;
    default: return v2;
    }
}

/* One column of the 2-D transformed kernel (src/_winograd.pyx, transform_kernels): for each of
   its `rows` kernels r, out[xi * ostride + r] = (G g G^T)[xi]; forward r = k, col = c,
   g = w[k, c]; flipped (the input gradient) r = c, col = k, g = w[k, c] rotated by 180 degrees
   (w is K x C x 9 values kstride apart: 9, or 9 x depth for one depth tap of a 3-D kernel, read
   in place). WG_L kernels at a time, in registers: a vector (or a few) read from each kernel's
   first tap and transposed, so that a vector holds one tap of WG_L kernels; G g G^T on those
   vectors, in WG_T; each of the 36 results stored through one pointer moved a position at a
   time. (The taps one value at a time, steps through arrays of 16 doubles on the stack and 36
   pointers the compiler kept on the stack took 16-25 ns a kernel on one Xeon core at AVX-512
   and AVX2, 8-17 ns now; a third of ResNet-18's 256-channel layer at batch 1. At the SSE2
   baseline, 4 lanes, 20-22 -> 24-25 ns: 3% of a 128-channel layer's forward at batch 1. In
   float32 the rounding of U stays ~1e-7 of its values, well below the transforms' ~1e-5 of the
   result, measured the same on 64-512 channels.) A vector reads up to 16 values from a
   kernel's first: past its 9 into the next kernel's, but for the array's last kernel (index
   kernels - 1), whose taps are read one at a time. Returns 1 where a value of the rows' kernels
   is NaN or infinite (v - v of each tap vector, summed: the kernel's check, with no pass of its
   own over w), else 0. */
FASTCONV_ATTR static int WG_FN(wg_kernel)(const WG_T* restrict w, Py_ssize_t kstride,
        WG_T* restrict out, Py_ssize_t ostride, Py_ssize_t col, Py_ssize_t C, Py_ssize_t rows,
        Py_ssize_t kernels, int flipped, int prefetch) {
    enum { CHUNKS = (9 + WG_L - 1) / WG_L };    /* vectors of a kernel's taps */
    const Py_ssize_t step = flipped ? 1 : C;    /* kernels between two rows r */
    VT bad = {0};       /* v - v of every value read: NaN where one was NaN or infinite */
    for (Py_ssize_t r0 = 0; r0 < rows; r0 += WG_L) {
        const int n = rows - r0 < WG_L ? (int)(rows - r0) : WG_L;
        const Py_ssize_t first = flipped ? col * C + r0 : r0 * C + col;
        VT d[9];
        if (n == WG_L && first + (WG_L - 1) * step < kernels - 1) {
            /* `prefetch`: the next column's kernels, two ahead forward (a kernel block's rows,
               src/_winograd.pyx block_columns, are 64 streams C * 9 apart, more than the
               prefetchers follow: 8 -> 4 ns a kernel on ResNet-18's 256 channels, one Xeon
               core; the whole kernel's 256-512 rows a column are too many for L1 to keep the
               lines until their column comes: 8 -> 21 ns there) */
            if (prefetch) {
                const WG_T* ahead = w + (first + (flipped ? C : 2)) * kstride;
                _Pragma("GCC unroll 16")
                for (int r = 0; r < WG_L; r++)
                    __builtin_prefetch(ahead + r * step * kstride);
            }
            _Pragma("GCC unroll 5")
            for (int q = 0; q < CHUNKS; q++) {
                VT g[WG_L];
                _Pragma("GCC unroll 16")
                for (int r = 0; r < WG_L; r++)
                    g[r] = *(const VU*)(w + (first + r * step) * kstride + q * WG_L);
                WG_FN(wg_transpose)(g);
                _Pragma("GCC unroll 16")
                for (int a = 0; a < WG_L; a++)
                    if (q * WG_L + a < 9)
                        d[flipped ? 8 - q * WG_L - a : q * WG_L + a] = g[a];
            }
        } else {
            WG_T lane[9][WG_L] __attribute__((aligned(64)));
            memset(lane, 0, sizeof lane);       /* lanes past the last kernel: zeros */
            for (int r = 0; r < n; r++) {
                const WG_T* g = w + (first + r * step) * kstride;
                for (int a = 0; a < 9; a++) lane[a][r] = flipped ? g[8 - a] : g[a];
            }
            for (int a = 0; a < 9; a++)
                memcpy(&d[a], lane[a], sizeof(VT));
        }
        _Pragma("GCC unroll 9")
        for (int a = 0; a < 9; a++)
            bad += d[a] - d[a];
        WG_T* dst = out + r0;   /* position 0's, then a position further each store (36
                                   pointers kept apart went to the stack, each moved there) */
        _Pragma("GCC unroll 6")
        for (int i = 0; i < 6; i++) {       /* row i of G g, then of (G g) G^T: position 6 i + j */
            const VT t0 = WG_FN(wg_g_row)(i, d[0], d[3], d[6]);
            const VT t1 = WG_FN(wg_g_row)(i, d[1], d[4], d[7]);
            const VT t2 = WG_FN(wg_g_row)(i, d[2], d[5], d[8]);
            _Pragma("GCC unroll 6")
            for (int j = 0; j < 6; j++) {
                const VT o = WG_FN(wg_g_row)(j, t0, t1, t2);
                if (n == WG_L)
                    memcpy(dst, &o, sizeof(VT));
                else
                    for (int l = 0; l < n; l++) dst[l] = o[l];
                dst += ostride;
            }
        }
    }
    for (int l = 0; l < WG_L; l++)
        if (bad[l] != bad[l])
            return 1;
    return 0;
}

/* The kernel gradient's untransform, gw = G^T dU G in double, for one row of dU's positions:
   by_input (dU[xi] C x KP, the register tiles'), column c = row and every k; else (dU[xi] KP x
   C, BLAS's) k = row and every c. gw[k][c] is K x C kernels gstride apart (9, or 9 x depth for
   a 3-D kernel's tap). 16 kernels at a time, each step a loop the compiler vectorises at this
   level's width (in Cython, compiled for the baseline, it ran at 2 doubles a vector: 485 us
   of one thread for C3D's 128 x 64 x 3 kernels). */
FASTCONV_ATTR static int WG_FN(wg_untransform)(const WG_T* restrict du, WG_T* restrict gw,
        Py_ssize_t gstride, Py_ssize_t row, Py_ssize_t K, Py_ssize_t C, Py_ssize_t KP,
        int by_input) {
    const double s6 = 1.0 / 6, s12 = 1.0 / 12, s24 = 1.0 / 24;
    double d[36][16], t[18][16], o[9][16];
    memset(d, 0, sizeof d);
    const Py_ssize_t count = by_input ? K : C;
    for (Py_ssize_t q0 = 0; q0 < count; q0 += 16) {
        const int n = count - q0 < 16 ? (int)(count - q0) : 16;
        for (int i = 0; i < 36; i++) {
            const WG_T* src = du + (by_input ? (i * C + row) * KP : (i * KP + row) * C) + q0;
            for (int l = 0; l < n; l++) d[i][l] = src[l];
            /* the next 16's line of this position: 36 streams, more than the prefetchers
               follow (3-D kernels' dU, 3.5 MB, comes from L3) */
            __builtin_prefetch(src + 16 + 64 / sizeof(WG_T));
        }
        for (int i = 0; i < 6; i++)          /* t[6 a + i] = (G^T d)[a][i], column i of d */
            for (int l = 0; l < 16; l++) {
                const double u0 = d[i][l], u1 = d[6 + i][l], u2 = d[12 + i][l];
                const double u3 = d[18 + i][l], u4 = d[24 + i][l], u5 = d[30 + i][l];
                t[i][l] = 0.25 * u0 - s6 * (u1 + u2) + s24 * (u3 + u4);
                t[6 + i][l] = s6 * (u2 - u1) + s12 * (u3 - u4);
                t[12 + i][l] = s6 * (u3 + u4 - u1 - u2) + u5;
            }
        for (int a = 0; a < 3; a++)          /* o[3 a + b] = (t G)[a][b] */
            for (int l = 0; l < 16; l++) {
                const double u0 = t[6 * a][l], u1 = t[6 * a + 1][l], u2 = t[6 * a + 2][l];
                const double u3 = t[6 * a + 3][l], u4 = t[6 * a + 4][l], u5 = t[6 * a + 5][l];
                o[3 * a][l] = 0.25 * u0 - s6 * (u1 + u2) + s24 * (u3 + u4);
                o[3 * a + 1][l] = s6 * (u2 - u1) + s12 * (u3 - u4);
                o[3 * a + 2][l] = s6 * (u3 + u4 - u1 - u2) + u5;
            }
        for (int l = 0; l < n; l++) {
            WG_T* g = gw + (by_input ? (q0 + l) * C + row : row * C + q0 + l) * gstride;
            for (int a = 0; a < 9; a++) g[a] = (WG_T)o[a][l];
        }
    }
    return 0;
}

/* Row i of the transformed kernel, u[xi][i][o] = (G g)[xi] in double for every o < outs (u is
   8 x ins x KP): forward i = c, o = k, g = w[k, c]; flipped (the input gradient) i = k, o = c,
   g = w[k, c] reversed; w is K x C x 3. 32 outputs o at a time: their taps gathered, then each
   row of u a loop the compiler vectorises at this level's width. */
FASTCONV_ATTR static int WG_FN(wg1_kernel)(const WG_T* restrict w, WG_T* restrict u, Py_ssize_t i,
        Py_ssize_t C, Py_ssize_t KP, Py_ssize_t ins, Py_ssize_t outs, int flipped) {
    const double n45 = 1.0 / 45, n90 = 1.0 / 90, n29 = -2.0 / 9;
    /* g = w[k, c] at ((k C + c) 3): along o, flipped (k = i) steps 3, else (c = i) 3 C */
    const Py_ssize_t at = flipped ? i * C * 3 : i * 3, step = flipped ? 3 : C * 3;
    const int first = flipped ? 2 : 0, last = flipped ? 0 : 2;
    double d0[32], d1[32], d2[32], v[8][32];
    /* lanes past the last outputs are computed and dropped: zeros, not the stack's garbage,
       whose subnormal doubles took 19 us for a 16 x 16 kernel against 12 us for 64 x 64 */
    memset(d0, 0, sizeof d0);
    memset(d1, 0, sizeof d1);
    memset(d2, 0, sizeof d2);
    for (Py_ssize_t o0 = 0; o0 < outs; o0 += 32) {
        const int n = outs - o0 < 32 ? (int)(outs - o0) : 32;
        for (int o = 0; o < n; o++) {
            d0[o] = w[at + (o0 + o) * step + first];
            d1[o] = w[at + (o0 + o) * step + 1];
            d2[o] = w[at + (o0 + o) * step + last];
        }
        for (int o = 0; o < 32; o++) {
            v[0][o] = d0[o];
            v[1][o] = n29 * (d0[o] + d1[o] + d2[o]);
            v[2][o] = n29 * (d0[o] - d1[o] + d2[o]);
            v[3][o] = d0[o] * n90 + d1[o] * n45 + d2[o] * (2 * n45);
            v[4][o] = d0[o] * n90 - d1[o] * n45 + d2[o] * (2 * n45);
            v[5][o] = (32 * d0[o] + 16 * d1[o] + 8 * d2[o]) * n45;
            v[6][o] = (32 * d0[o] - 16 * d1[o] + 8 * d2[o]) * n45;
            v[7][o] = d2[o];
        }
        for (int xi = 0; xi < 8; xi++) {
            WG_T* row = u + (xi * ins + i) * KP + o0;
            for (int o = 0; o < n; o++) row[o] = (WG_T)v[xi][o];
        }
    }
    return 0;
}
