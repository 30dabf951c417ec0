/* The kernel transforms of fastconv's Winograd convolutions, U = G g G^T (2-D F(4x4, 3x3)) and
 * U = G g (1-D F(6, 3)), in double whatever the problem's precision, rounded once into it.
 *
 * Part of the per-level, per-precision body of src/_winograd_kernels.h, which includes this file
 * once for each (WG_T, FASTCONV_LV): no include guard, and WG_FN, WG_T and FASTCONV_ATTR are
 * that file's.
 */
/* One column of the 2-D transformed kernel (src/_winograd.pyx, transform_kernels): for each of
   its `rows` kernels r, out[xi * ostride + r] = (G g G^T)[xi] in double; forward r = k, col = c,
   g = w[k, c]; flipped (the input gradient) r = c, col = k, g = w[k, c] rotated by 180 degrees
   (w is K x C x 9 values kstride apart: 9, or 9 x depth for one depth tap of a 3-D kernel, read
   in place). 16 kernels at a time: their taps gathered, then each step a loop the compiler
   vectorises at this level's width (in Cython, compiled once for the baseline, it took 2-4x as
   long). */
FASTCONV_ATTR static int WG_FN(wg_kernel)(const WG_T* restrict w, Py_ssize_t kstride,
        WG_T* restrict out, Py_ssize_t ostride, Py_ssize_t col, Py_ssize_t C, Py_ssize_t rows,
        int flipped) {
    const double s6 = 1.0 / 6, s12 = 1.0 / 12, s24 = 1.0 / 24;
    double d[9][16], t[18][16], v[36][16];
    memset(d, 0, sizeof d);
    for (Py_ssize_t r0 = 0; r0 < rows; r0 += 16) {
        const int n = rows - r0 < 16 ? (int)(rows - r0) : 16;
        for (int r = 0; r < n; r++) {
            const WG_T* g = w + (flipped ? col * C + r0 + r : (r0 + r) * C + col) * kstride;
            for (int a = 0; a < 9; a++) d[a][r] = flipped ? g[8 - a] : g[a];
        }
        for (int b = 0; b < 3; b++)          /* t[3 i + b] = (G g)[i][b], column b of g */
            for (int r = 0; r < 16; r++) {
                const double v0 = d[b][r], v1 = d[3 + b][r], v2 = d[6 + b][r];
                t[b][r] = 0.25 * v0;
                t[3 + b][r] = -s6 * (v0 + v1 + v2);
                t[6 + b][r] = -s6 * (v0 - v1 + v2);
                t[9 + b][r] = s24 * v0 + s12 * v1 + s6 * v2;
                t[12 + b][r] = s24 * v0 - s12 * v1 + s6 * v2;
                t[15 + b][r] = v2;
            }
        for (int i = 0; i < 6; i++)          /* v[6 i + j] = (t G^T)[i][j] */
            for (int r = 0; r < 16; r++) {
                const double v0 = t[3 * i][r], v1 = t[3 * i + 1][r], v2 = t[3 * i + 2][r];
                v[6 * i][r] = 0.25 * v0;
                v[6 * i + 1][r] = -s6 * (v0 + v1 + v2);
                v[6 * i + 2][r] = -s6 * (v0 - v1 + v2);
                v[6 * i + 3][r] = s24 * v0 + s12 * v1 + s6 * v2;
                v[6 * i + 4][r] = s24 * v0 - s12 * v1 + s6 * v2;
                v[6 * i + 5][r] = v2;
            }
        for (int i = 0; i < 36; i++)
            for (int r = 0; r < n; r++) out[i * ostride + r0 + r] = (WG_T)v[i][r];
    }
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
