/* The column FFT for one instruction set. _fft_columns.h includes this file once per level
   (_cpu_each_level.h: FASTCONV_LV the level's suffix, FASTCONV_ATTR its target attribute, on
   every function that is not inlined, FASTCONV_VB its vector bytes, FASTCONV_NF and FASTCONV_ND
   its float and double lanes); the file includes itself once per precision with FCC_T (the
   scalar), FCC_IT (the integer of its size), FCC_P (f32, f64) and FCC_N (lanes), so that
   every name is name_P_LV (fcc_columns_f32_v4) and the vector types are fcc_v_P_LV
   (aligned) and fcc_vu_P_LV. */
#ifndef FCC_T
#define FCC_T float
#define FCC_IT int
#define FCC_P f32
#define FCC_N FASTCONV_NF
#include "_fft_columns_impl.h"
#undef FCC_T
#undef FCC_IT
#undef FCC_P
#undef FCC_N

#define FCC_T double
#define FCC_IT long long
#define FCC_P f64
#define FCC_N FASTCONV_ND
#include "_fft_columns_impl.h"
#undef FCC_T
#undef FCC_IT
#undef FCC_P
#undef FCC_N
#else

#define FCC_CAT2(a, b, c) a##_##b##_##c
#define FCC_CAT(a, b, c) FCC_CAT2(a, b, c)
#define FCC_NAME(name) FCC_CAT(name, FCC_P, FASTCONV_LV)
#define FCC_V FCC_NAME(fcc_v)
#define FCC_VU FCC_NAME(fcc_vu)
typedef FCC_T FCC_V __attribute__((vector_size(FASTCONV_VB)));
typedef FCC_T FCC_VU __attribute__((vector_size(FASTCONV_VB), aligned(sizeof(FCC_T))));
#define FCC_SWAP(v) FF_SWAP(FCC_IT, FCC_N, v)
#define FCC_SIGN ((FCC_V){FF_SIGN(FCC_N)})

/* In-register transpose of a square of units of u lanes (u = 1: scalars, u = 2: complex) in
   n = FCC_N / u vectors: stages that exchange the off-diagonal blocks of d lanes, d = FCC_N / 2
   down to u, each two two-source shuffles per pair of vectors (lanes in 128-bit groups move
   as one from d = 4 floats up). Row r of the result holds unit r of every input vector. The
   index lists wrap modulo 2 FCC_N so that those of the stages a width has not stay valid. */
#define FCC_LO(d, j) (((j) & (d)) ? FCC_N + (j) - (d) : (j))
#define FCC_HI(d, j) (((j) & (d)) ? FCC_N + (j) : ((j) + (d)) % (2 * FCC_N))
#define FCC_PASS(v, d, u)                                                                  \
    if ((d) >= (u) && (d) < FCC_N)                                                         \
        for (int r_ = 0; r_ < FCC_N / (u); r_++)                                           \
            if (!(r_ & ((d) / (u)))) {                                                     \
                const FCC_V a_ = v[r_], b_ = v[r_ + (d) / (u)];                            \
                v[r_] = FASTCONV_SHUFFLE(FCC_IT, a_, b_, FASTCONV_SEQ(FCC_N, FCC_LO, d));  \
                v[r_ + (d) / (u)] =                                                        \
                    FASTCONV_SHUFFLE(FCC_IT, a_, b_, FASTCONV_SEQ(FCC_N, FCC_HI, d));      \
            }
FCC_INLINE void FCC_NAME(fcc_transpose)(FCC_V* v, const int u)
{
    FCC_PASS(v, 8, u)
    FCC_PASS(v, 4, u)
    FCC_PASS(v, 2, u)
    FCC_PASS(v, 1, u)
}
#undef FCC_PASS
#undef FCC_LO
#undef FCC_HI
#define FCC_TRANSPOSE FCC_NAME(fcc_transpose)

/* v * (cr + i ci) in every lane pair; i v is swap(v) * sign. */
FCC_INLINE FCC_V FCC_NAME(fcc_cmul)(FCC_V v, FCC_T cr, FCC_T ci)
{
    return v * cr + FCC_SWAP(v) * (FCC_SIGN * ci);
}

FCC_INLINE FCC_V FCC_NAME(fcc_times_i)(FCC_V v, FCC_T s)     /* i s v */
{
    return FCC_SWAP(v) * (FCC_SIGN * s);
}

/* out[t * Lp] = sum_s root^(s t) z[s]; roots holds root^m (cos, sin pairs) for m < p. */
FCC_INLINE void FCC_NAME(fcc_butterfly)(const int p, FCC_V* z, FCC_V* out, ptrdiff_t Lp,
                                        const FCC_T* roots)
{
    if (p == 2) {
        out[0] = z[0] + z[1];
        out[Lp] = z[0] - z[1];
    } else if (p == 3) {
        FCC_V t1 = z[1] + z[2], t2 = FCC_NAME(fcc_times_i)(z[1] - z[2], roots[3]);
        FCC_V m = z[0] + t1 * roots[2];
        out[0] = z[0] + t1;
        out[Lp] = m + t2;
        out[2 * Lp] = m - t2;
    } else if (p == 4) {
        FCC_V a = z[0] + z[2], b = z[0] - z[2], c = z[1] + z[3];
        FCC_V d = FCC_NAME(fcc_times_i)(z[1] - z[3], roots[3]);
        out[0] = a + c;
        out[Lp] = b + d;
        out[2 * Lp] = a - c;
        out[3 * Lp] = b - d;
    } else if (p == 5) {
        FCC_V a1 = z[1] + z[4], b1 = z[1] - z[4], a2 = z[2] + z[3], b2 = z[2] - z[3];
        FCC_V m1 = z[0] + a1 * roots[2] + a2 * roots[4];
        FCC_V m2 = z[0] + a1 * roots[4] + a2 * roots[2];
        FCC_V n1 = FCC_NAME(fcc_times_i)(b1, roots[3]) + FCC_NAME(fcc_times_i)(b2, roots[5]);
        FCC_V n2 = FCC_NAME(fcc_times_i)(b1, roots[5]) - FCC_NAME(fcc_times_i)(b2, roots[3]);
        out[0] = z[0] + a1 + a2;
        out[Lp] = m1 + n1;
        out[2 * Lp] = m2 + n2;
        out[3 * Lp] = m2 - n2;
        out[4 * Lp] = m1 - n1;
    } else {
        for (int t = 0; t < p; t++) {
            FCC_V acc = z[0];
            for (int s = 1; s < p; s++) {
                int m = (s * t) % p;
                acc += FCC_NAME(fcc_cmul)(z[s], roots[2 * m], roots[2 * m + 1]);
            }
            out[t * Lp] = acc;
        }
    }
}

/* One Stockham stage of radix p (see _fft_columns.h): in (r p, Lp) to out (r, p Lp). */
FCC_INLINE void FCC_NAME(fcc_stage)(const int p, ptrdiff_t Lp, ptrdiff_t r, const FCC_V* in,
                                    FCC_V* out, const FCC_T* tw, const FCC_T* roots)
{
    FCC_V z[FCC_MAXP];
    for (ptrdiff_t k = 0; k < r; k++) {
        for (ptrdiff_t j = 0; j < Lp; j++) {
            z[0] = in[k * Lp + j];
            if (j == 0) {
                for (int s = 1; s < p; s++) z[s] = in[(k + r * s) * Lp];
            } else {
                for (int s = 1; s < p; s++) {
                    const FCC_T* w = tw + 2 * ((s - 1) * Lp + j);
                    z[s] = FCC_NAME(fcc_cmul)(in[(k + r * s) * Lp + j], w[0], w[1]);
                }
            }
            FCC_NAME(fcc_butterfly)(p, z, out + k * Lp * p + j, Lp, roots);
        }
    }
}

/* The FFT of the L vectors at a, with b as scratch: the buffer holding the result. */
FCC_INLINE FCC_V* FCC_NAME(fcc_fft)(FCC_V* a, FCC_V* b, ptrdiff_t L, int nstages,
                                    const int* radix, const FCC_T* tw, const FCC_T* roots)
{
    ptrdiff_t Lp = 1, t_off = 0, r_off = 0;
    for (int q = 0; q < nstages; q++) {
        const int p = radix[q];
        const ptrdiff_t r = L / (Lp * p);
        const FCC_T* t = tw + 2 * t_off;
        const FCC_T* o = roots + 2 * r_off;
        switch (p) {
        case 2: FCC_NAME(fcc_stage)(2, Lp, r, a, b, t, o); break;
        case 3: FCC_NAME(fcc_stage)(3, Lp, r, a, b, t, o); break;
        case 4: FCC_NAME(fcc_stage)(4, Lp, r, a, b, t, o); break;
        case 5: FCC_NAME(fcc_stage)(5, Lp, r, a, b, t, o); break;
        default: FCC_NAME(fcc_stage)(p, Lp, r, a, b, t, o); break;
        }
        t_off += (p - 1) * Lp;
        r_off += p;
        Lp *= p;
        FCC_V* swap = a;
        a = b;
        b = swap;
    }
    return a;
}

/* The nc (<= VL) complex values at p as one vector, zeros in the lanes past them. */
FCC_INLINE FCC_V FCC_NAME(fcc_load)(const FCC_T* p, ptrdiff_t nc)
{
    enum { VL = FCC_N / 2 };
    FCC_V v = (FCC_V){0};
    if (nc == VL) return *(const FCC_VU*)p;
    memcpy(&v, p, 2 * (size_t)nc * sizeof(FCC_T));
    return v;
}

/* a[i] * scale into the first nc (<= VL) complex values of rows i < L of out, `row` scalars
   apart. */
FCC_INLINE void FCC_NAME(fcc_store)(FCC_T* out, ptrdiff_t row, const FCC_V* a, ptrdiff_t L,
                                    ptrdiff_t nc, FCC_T scale)
{
    enum { VL = FCC_N / 2 };
    if (nc == VL) {
        for (ptrdiff_t i = 0; i < L; i++) *(FCC_VU*)(out + i * row) = a[i] * scale;
    } else {
        for (ptrdiff_t i = 0; i < L; i++) {
            FCC_V v = a[i] * scale;
            memcpy(out + i * row, &v, 2 * (size_t)nc * sizeof(FCC_T));
        }
    }
}

/* The columns c0..c0+nc-1 (nc <= VL) of one (L, ncols) complex plane, in place, times scale;
   buf is scratch of 2 L vectors. */
FCC_INLINE void FCC_NAME(fcc_block)(FCC_T* plane, ptrdiff_t L, ptrdiff_t ncols, ptrdiff_t c0,
                                    ptrdiff_t nc, FCC_V* buf, int nstages, const int* radix,
                                    const FCC_T* tw, const FCC_T* roots, FCC_T scale)
{
    const ptrdiff_t row = 2 * ncols;
    FCC_T* base = plane + 2 * c0;
    FCC_V* a = buf;
    for (ptrdiff_t i = 0; i < L; i++) a[i] = FCC_NAME(fcc_load)(base + i * row, nc);
    a = FCC_NAME(fcc_fft)(a, buf + L, L, nstages, radix, tw, roots);
    FCC_NAME(fcc_store)(base, row, a, L, nc, scale);
}

/* The columns c0..c0+width-1 of each of `planes` (L, ncols) planes `stride` scalars apart, in
   place (one block of VL columns after another); buf as above. */
FASTCONV_ATTR static void
FCC_NAME(fcc_column_blocks)(FCC_T* data, ptrdiff_t planes, ptrdiff_t stride, ptrdiff_t L,
                            ptrdiff_t ncols, ptrdiff_t c0, ptrdiff_t width, FCC_V* buf,
                            int nstages, const int* radix, const FCC_T* tw, const FCC_T* roots,
                            FCC_T scale)
{
    enum { VL = FCC_N / 2 };
    for (ptrdiff_t p = 0; p < planes; p++)
        for (ptrdiff_t c = c0; c < c0 + width; c += VL)
            FCC_NAME(fcc_block)(data + p * stride, L, ncols, c,
                                c0 + width - c < VL ? c0 + width - c : VL, buf, nstages, radix,
                                tw, roots, scale);
}

/* Items first..last-1 of the (batch, L, ncols) complex array `data`, in place: item i is batch
   entry i / blocks and the columns of block i % blocks. `radix` (nstages entries, product L),
   `tw` and `roots` are the stages' twiddles and roots of unity, one stage after the other
   (tw: (p - 1) Lp pairs, roots: p pairs); a block is IL columns (64 bytes), run VL at a time.
   Returns -1 if the scratch cannot be allocated. */
FASTCONV_ATTR static int
FCC_NAME(fcc_columns)(FCC_T* data, ptrdiff_t L, ptrdiff_t ncols, int nstages, const int* radix,
                      const FCC_T* tw, const FCC_T* roots, FCC_T scale, ptrdiff_t first,
                      ptrdiff_t last)
{
    enum { VL = FCC_N / 2, IL = 64 / (2 * (int)sizeof(FCC_T)) };
    const ptrdiff_t blocks = (ncols + IL - 1) / IL;
    FCC_V* buf = (FCC_V*)fc_line_alloc(2 * (size_t)L * sizeof(FCC_V));
    if (buf == NULL) return -1;
    for (ptrdiff_t item = first; item < last; item++) {
        const ptrdiff_t c0 = (item % blocks) * IL;
        for (ptrdiff_t c = c0; c < c0 + IL && c < ncols; c += VL)
            FCC_NAME(fcc_block)(data + (item / blocks) * L * 2 * ncols, L, ncols, c,
                                ncols - c < VL ? ncols - c : VL, buf, nstages, radix, tw,
                                roots, scale);
    }
    free(buf);
    return 0;
}

/* The column FFTs of planes whose only nonzero rows are given: plane b's nsrc rows at src +
   b * nsrc * 2 ncols sit at rows pos[r] of the L rows of plane b of dst (the others zero), which
   get the transform times scale; items as fcc_columns'. Nothing is read or written for the
   zero rows but their transforms' output. */
FASTCONV_ATTR static int
FCC_NAME(fcc_columns_placed)(const FCC_T* src, FCC_T* dst, ptrdiff_t L, ptrdiff_t ncols,
                             ptrdiff_t nsrc, const ptrdiff_t* pos, int nstages,
                             const int* radix, const FCC_T* tw, const FCC_T* roots,
                             FCC_T scale, ptrdiff_t first, ptrdiff_t last)
{
    enum { VL = FCC_N / 2, IL = 64 / (2 * (int)sizeof(FCC_T)) };
    const ptrdiff_t blocks = (ncols + IL - 1) / IL, row = 2 * ncols;
    FCC_V* buf = (FCC_V*)fc_line_alloc(2 * (size_t)L * sizeof(FCC_V));
    if (buf == NULL) return -1;
    for (ptrdiff_t item = first; item < last; item++) {
        const ptrdiff_t b = item / blocks, c1 = (item % blocks) * IL;
        for (ptrdiff_t c0 = c1; c0 < c1 + IL && c0 < ncols; c0 += VL) {
            const ptrdiff_t nc = ncols - c0 < VL ? ncols - c0 : VL;
            const FCC_T* in = src + b * nsrc * row + 2 * c0;
            FCC_T* out = dst + b * L * row + 2 * c0;
            FCC_V* a = buf;
            for (ptrdiff_t i = 0; i < L; i++) a[i] = (FCC_V){0};
            for (ptrdiff_t r = 0; r < nsrc; r++) a[pos[r]] = FCC_NAME(fcc_load)(in + r * row, nc);
            a = FCC_NAME(fcc_fft)(a, buf + L, L, nstages, radix, tw, roots);
            FCC_NAME(fcc_store)(out, row, a, L, nc, scale);
        }
    }
    free(buf);
    return 0;
}

/* Real-to-complex transforms of lines, IL (64 bytes' worth) per item, run 2 VL at a time:
   lines 2m and 2m + 1 of a run are the real and imaginary lanes m of one complex FFT of
   length L, separated afterwards into their half spectra (F = L / 2 + 1 values):
       X_2m[k] = (Z[k] + conj Z[L - k]) / 2,   X_2m+1[k] = (Z[k] - conj Z[L - k]) / 2i.
   Line l's count values src[src_off[l] + i * src_step] sit at positions (start + i step) mod L,
   zeros elsewhere; its spectrum goes to dst + dst_off[l] (contiguous). Lines go in and out of
   the lanes by in-register transposes of blocks of 2 VL values (VL complex on the way out). */
FASTCONV_ATTR static int
FCC_NAME(fcc_rows_r2c)(const FCC_T* src, const ptrdiff_t* src_off, ptrdiff_t src_step,
                       ptrdiff_t count, ptrdiff_t start, ptrdiff_t step, FCC_T* dst,
                       const ptrdiff_t* dst_off, ptrdiff_t bstride, ptrdiff_t nlines,
                       ptrdiff_t L, int nstages,
                       const int* radix, const FCC_T* tw, const FCC_T* roots, ptrdiff_t first,
                       ptrdiff_t last)
{
    enum { VL = FCC_N / 2, NL = FCC_N, IL = 64 / (int)sizeof(FCC_T) };
    const ptrdiff_t F = L / 2 + 1;
    const FCC_V half = (FCC_V){0} + (FCC_T)0.5, conj = -FCC_SIGN;
    FCC_V* buf = (FCC_V*)fc_line_alloc((2 * (size_t)L + NL) * sizeof(FCC_V));
    if (buf == NULL) return -1;
    FCC_V* tv = buf + 2 * L;
    const ptrdiff_t end = last * IL < nlines ? last * IL : nlines;
    for (ptrdiff_t l0 = first * IL; l0 < end; l0 += NL) {     /* IL lines per item, NL a time */
        const ptrdiff_t nl = end - l0 < NL ? end - l0 : NL;
        FCC_V* a = buf;
        for (ptrdiff_t i = 0; i < L; i++) a[i] = (FCC_V){0};
        if (src_step == 1 && step == 1) {
            for (ptrdiff_t i = 0; i < count;) {
                const ptrdiff_t pos = (start + i) % L;
                const ptrdiff_t seg = count - i < L - pos ? count - i : L - pos;
                ptrdiff_t j = 0;
                for (; j + NL <= seg; j += NL) {
                    for (ptrdiff_t l = 0; l < NL; l++)
                        tv[l] = l < nl ? *(const FCC_VU*)(src + src_off[l0 + l] + i + j)
                                       : (FCC_V){0};
                    FCC_TRANSPOSE(tv, 1);
                    for (ptrdiff_t q = 0; q < NL; q++) a[pos + j + q] = tv[q];
                }
                for (; j < seg; j++)
                    for (ptrdiff_t l = 0; l < nl; l++)
                        ((FCC_T*)(a + pos + j))[l] = src[src_off[l0 + l] + i + j];
                i += seg;
            }
        } else {
            for (ptrdiff_t l = 0; l < nl; l++) {
                const FCC_T* s = src + src_off[l0 + l];
                FCC_T* lane = (FCC_T*)a + l;
                ptrdiff_t pos = start;
                for (ptrdiff_t i = 0; i < count; i++) {
                    lane[2 * VL * pos] = s[i * src_step];
                    pos += step;
                    while (pos >= L) pos -= L;
                }
            }
        }
        a = FCC_NAME(fcc_fft)(a, buf + L, L, nstages, radix, tw, roots);
        ptrdiff_t k = 0;
        for (; k + VL <= F; k += VL) {
            FCC_V x0[VL], x1[VL];
            for (ptrdiff_t q = 0; q < VL; q++) {
                FCC_V z = a[k + q], zc = a[k + q == 0 ? 0 : L - k - q] * conj;
                x0[q] = (z + zc) * half;
                x1[q] = FCC_SWAP(z - zc) * (-FCC_SIGN * half);
            }
            FCC_TRANSPOSE(x0, 2);
            FCC_TRANSPOSE(x1, 2);
            const ptrdiff_t at = (k / FCC_FB) * bstride + 2 * (k % FCC_FB);
            for (ptrdiff_t m = 0; 2 * m < nl; m++) {
                *(FCC_VU*)(dst + dst_off[l0 + 2 * m] + at) = x0[m];
                if (2 * m + 1 < nl) *(FCC_VU*)(dst + dst_off[l0 + 2 * m + 1] + at) = x1[m];
            }
        }
        for (; k < F; k++) {
            FCC_V z = a[k], zc = a[k == 0 ? 0 : L - k] * conj;
            FCC_V x0 = (z + zc) * half, x1 = FCC_SWAP(z - zc) * (-FCC_SIGN * half);
            FCC_T t0[2 * VL], t1[2 * VL];
            memcpy(t0, &x0, sizeof(t0));
            memcpy(t1, &x1, sizeof(t1));
            for (ptrdiff_t l = 0; l < nl; l++) {
                const FCC_T* t = (l & 1) ? t1 : t0;
                FCC_T* d = dst + dst_off[l0 + l] + (k / FCC_FB) * bstride + 2 * (k % FCC_FB);
                d[0] = t[l & ~(ptrdiff_t)1];
                d[1] = t[(l & ~(ptrdiff_t)1) + 1];
            }
        }
        for (; k % FCC_FB; k++)             /* the last block's padding: zeros */
            for (ptrdiff_t l = 0; l < nl; l++) {
                FCC_T* d = dst + dst_off[l0 + l] + (k / FCC_FB) * bstride + 2 * (k % FCC_FB);
                d[0] = d[1] = 0;
            }
    }
    free(buf);
    return 0;
}

/* Z[k] and Z[L - k] of the inverse below from the half spectra x0 (lines 2m) and x1 (2m + 1). */
FCC_INLINE void FCC_NAME(fcc_hermitian)(FCC_V* a, ptrdiff_t L, ptrdiff_t k, FCC_V x0, FCC_V x1)
{
    const FCC_V conj = -FCC_SIGN, real = (FCC_V){0} + (1 - FCC_SIGN) * (FCC_T)0.5;
    if (k == 0 || 2 * k == L) {
        x0 *= real;
        x1 *= real;
    }
    a[k] = x0 + FCC_NAME(fcc_times_i)(x1, 1);
    if (k > 0 && 2 * k != L)
        a[L - k] = x0 * conj + FCC_NAME(fcc_times_i)(x1 * conj, 1);
}

/* The inverse: complex-to-real transforms of half spectra (F = L / 2 + 1 contiguous values at
   src + src_off[l]), two lines per complex FFT (Z = X_2m + i X_2m+1 extended by Hermitian
   symmetry; the imaginary parts at frequency 0 and L / 2 are ignored, as a real transform
   does), times `scale`; line l's values at positions (start + i step) mod L, i < count, go to
   dst[dst_off[l] + i * dst_step]. */
FASTCONV_ATTR static int
FCC_NAME(fcc_rows_c2r)(const FCC_T* src, const ptrdiff_t* src_off, ptrdiff_t bstride, FCC_T* dst,
                       const ptrdiff_t* dst_off, ptrdiff_t dst_step, ptrdiff_t count,
                       ptrdiff_t start, ptrdiff_t step, ptrdiff_t nlines, ptrdiff_t L,
                       int nstages, const int* radix, const FCC_T* tw, const FCC_T* roots,
                       FCC_T scale, ptrdiff_t first, ptrdiff_t last)
{
    enum { VL = FCC_N / 2, NL = FCC_N, IL = 64 / (int)sizeof(FCC_T) };
    const ptrdiff_t F = L / 2 + 1;
    FCC_V* buf = (FCC_V*)fc_line_alloc((2 * (size_t)L + NL) * sizeof(FCC_V));
    if (buf == NULL) return -1;
    FCC_V* tv = buf + 2 * L;
    const ptrdiff_t end = last * IL < nlines ? last * IL : nlines;
    for (ptrdiff_t l0 = first * IL; l0 < end; l0 += NL) {     /* IL lines per item, NL a time */
        const ptrdiff_t nl = end - l0 < NL ? end - l0 : NL;
        FCC_V* a = buf;
        ptrdiff_t k = 0;
        for (; k + VL <= F; k += VL) {
            FCC_V x0[VL], x1[VL];
            const ptrdiff_t at = (k / FCC_FB) * bstride + 2 * (k % FCC_FB);
            for (ptrdiff_t m = 0; m < VL; m++) {
                x0[m] = 2 * m < nl ? *(const FCC_VU*)(src + src_off[l0 + 2 * m] + at)
                                   : (FCC_V){0};
                x1[m] = 2 * m + 1 < nl ? *(const FCC_VU*)(src + src_off[l0 + 2 * m + 1] + at)
                                       : (FCC_V){0};
            }
            FCC_TRANSPOSE(x0, 2);
            FCC_TRANSPOSE(x1, 2);
            for (ptrdiff_t q = 0; q < VL; q++)
                FCC_NAME(fcc_hermitian)(a, L, k + q, x0[q], x1[q]);
        }
        for (; k < F; k++) {
            FCC_T t0[2 * VL] = {0}, t1[2 * VL] = {0};
            for (ptrdiff_t l = 0; l < nl; l++) {
                FCC_T* t = (l & 1) ? t1 : t0;
                const FCC_T* s = src + src_off[l0 + l] + (k / FCC_FB) * bstride
                                 + 2 * (k % FCC_FB);
                t[l & ~(ptrdiff_t)1] = s[0];
                t[(l & ~(ptrdiff_t)1) + 1] = s[1];
            }
            FCC_V x0, x1;
            memcpy(&x0, t0, sizeof(t0));
            memcpy(&x1, t1, sizeof(t1));
            FCC_NAME(fcc_hermitian)(a, L, k, x0, x1);
        }
        a = FCC_NAME(fcc_fft)(a, buf + L, L, nstages, radix, tw, roots);
        if (dst_step == 1 && step == 1) {
            for (ptrdiff_t i = 0; i < count;) {
                const ptrdiff_t pos = (start + i) % L;
                const ptrdiff_t seg = count - i < L - pos ? count - i : L - pos;
                ptrdiff_t j = 0;
                for (; j + NL <= seg; j += NL) {
                    for (ptrdiff_t q = 0; q < NL; q++) tv[q] = a[pos + j + q] * scale;
                    FCC_TRANSPOSE(tv, 1);
                    for (ptrdiff_t l = 0; l < nl; l++)
                        *(FCC_VU*)(dst + dst_off[l0 + l] + i + j) = tv[l];
                }
                for (; j < seg; j++)
                    for (ptrdiff_t l = 0; l < nl; l++)
                        dst[dst_off[l0 + l] + i + j] = ((const FCC_T*)(a + pos + j))[l] * scale;
                i += seg;
            }
        } else {
            for (ptrdiff_t l = 0; l < nl; l++) {
                const FCC_T* lane = (const FCC_T*)a + l;
                FCC_T* d = dst + dst_off[l0 + l];
                ptrdiff_t pos = start;
                for (ptrdiff_t i = 0; i < count; i++) {
                    d[i * dst_step] = lane[2 * VL * pos] * scale;
                    pos += step;
                    while (pos >= L) pos -= L;
                }
            }
        }
    }
    free(buf);
    return 0;
}

#undef FCC_TRANSPOSE
#undef FCC_SWAP
#undef FCC_SIGN
#undef FCC_V
#undef FCC_VU
#undef FCC_NAME
#undef FCC_CAT
#undef FCC_CAT2
#endif
