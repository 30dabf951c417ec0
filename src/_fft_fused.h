/* The fused 2-D passes of the FFT algorithm: _fft_columns.h's column FFTs and
   _fft_product.h's channel product per block of columns (src/_fft.pyx). */
#ifndef FASTCONV_FFT_FUSED_H
#define FASTCONV_FFT_FUSED_H
#include "_fft_product.h"
#include "_fft_columns.h"

/* Samples per item of ff_fused: the kernel spectra of a block of columns are read once per
   item, so the more samples share them the less they are read from beyond L2. */
#define FF_GROUP 4

/* A channel product operand: its spectrum-index strides (per group, per row -- a or b, or
   out's a --, per j -- out's b) and whether it is conjugated (never for out). */
typedef struct { ptrdiff_t g, r, j; int conj; } ff_operand;

/* The column transforms, channel product and inverse column transforms of a 2-D pass fused
   per item: one block of FCC_FB spectrum columns of FF_GROUP samples (their a spectra
   transformed along the columns, the product for their a rows over those frequencies,
   their out spectra transformed back), so that the blocks stay in cache between the three
   steps, and the product takes two a rows at a time (fc_rows2).
   Operands as channel_product's; a and out are blocked spectra (planes, blocks, L, FCC_FB):
   a block of a plane is L * FCC_FB contiguous values. Returns -1 if the scratch cannot be
   allocated. */
#define FF_DEFINE(T, SUF, V, ATTR)                                                         \
ATTR static int ff_fused_##SUF(T* a, const T* b, T* out, ptrdiff_t L, ptrdiff_t blocks,    \
        ptrdiff_t nsamples, ptrdiff_t a_planes, ptrdiff_t o_planes,                       \
        int ns_f, const int* rad_f, const T* tw_f, const T* ro_f,                         \
        int ns_i, const int* rad_i, const T* tw_i, const T* ro_i, T scale,                \
        ptrdiff_t G, ptrdiff_t nb, ptrdiff_t nj, ff_operand oa, ff_operand ob,            \
        ff_operand oo, ptrdiff_t first, ptrdiff_t last)                                   \
{                                                                                          \
    const ptrdiff_t nf = L * FCC_FB, F2 = 2 * nf * blocks;                               \
    V* buf = (V*)fc_line_alloc(2 * (size_t)L * sizeof(V));                               \
    if (buf == NULL) return -1;                                                          \
    const ptrdiff_t groups = (nsamples + FF_GROUP - 1) / FF_GROUP;                      \
    for (ptrdiff_t item = first; item < last; item++) {                                  \
        const ptrdiff_t off = (item / groups) * 2 * nf, n = (item % groups) * FF_GROUP;  \
        const ptrdiff_t cnt = nsamples - n < FF_GROUP ? nsamples - n : FF_GROUP;         \
        fcc_column_blocks_##SUF(a + n * a_planes * F2 + off, cnt * a_planes, F2, L,      \
                                FCC_FB, 0, FCC_FB, buf, ns_f, rad_f, tw_f, ro_f, 1);     \
        for (ptrdiff_t g = 0; g < G; g++)                                                \
            fc_item_##SUF(cnt, nb, nj, nf, a + (g * oa.g + n * oa.r) * F2 + off,         \
                          oa.r * F2, oa.j * F2, b + g * ob.g * F2 + off, ob.r * F2,      \
                          ob.j * F2, out + (g * oo.g + n * oo.r) * F2 + off, oo.r * F2,  \
                          oo.j * F2, oa.conj, ob.conj, 0);                               \
        fcc_column_blocks_##SUF(out + n * o_planes * F2 + off, cnt * o_planes, F2, L,    \
                                FCC_FB, 0, FCC_FB, buf, ns_i, rad_i, tw_i, ro_i, scale); \
    }                                                                                    \
    free(buf);                                                                           \
    return 0;                                                                            \
}

/* The kernel gradient's 2-D pass fused per block of columns: the column transforms of
   that block of every a and b spectrum (na_planes and nb_planes of them), then the channel
   product accumulated into out over it (all rows: every a, b and j). */
#define FG_DEFINE(T, SUF, V, ATTR)                                                         \
ATTR static int ff_fused_sum_##SUF(T* a, T* b, T* out, ptrdiff_t L, ptrdiff_t blocks,      \
        ptrdiff_t na_planes, ptrdiff_t nb_planes, int ns_f, const int* rad_f,             \
        const T* tw_f, const T* ro_f, ptrdiff_t G, ptrdiff_t na, ptrdiff_t nb,            \
        ptrdiff_t nj, ff_operand oa, ff_operand ob, ff_operand oo, ptrdiff_t first,       \
        ptrdiff_t last)                                                                   \
{                                                                                          \
    const ptrdiff_t nf = L * FCC_FB, F2 = 2 * nf * blocks;                               \
    V* buf = (V*)fc_line_alloc(2 * (size_t)L * sizeof(V));                               \
    if (buf == NULL) return -1;                                                          \
    for (ptrdiff_t item = first; item < last; item++) {                                  \
        const ptrdiff_t off = item * 2 * nf;                                             \
        fcc_column_blocks_##SUF(a + off, na_planes, F2, L, FCC_FB, 0, FCC_FB, buf, ns_f, \
                                rad_f, tw_f, ro_f, 1);                                   \
        fcc_column_blocks_##SUF(b + off, nb_planes, F2, L, FCC_FB, 0, FCC_FB, buf, ns_f, \
                                rad_f, tw_f, ro_f, 1);                                   \
        for (ptrdiff_t g = 0; g < G; g++)                                                \
            fc_item_##SUF(na, nb, nj, nf, a + g * oa.g * F2 + off, oa.r * F2, oa.j * F2, \
                          b + g * ob.g * F2 + off, ob.r * F2, ob.j * F2,                 \
                          out + g * oo.g * F2 + off, oo.r * F2, oo.j * F2,               \
                          oa.conj, ob.conj, 1);                                          \
    }                                                                                    \
    free(buf);                                                                           \
    return 0;                                                                            \
}

/* Both passes in both precisions for each instruction set (_cpu_level.h), each calling that
   set's column FFTs and product (suffixes as theirs: ff_fused_f32_v4, ...). */
#define FF_LEVEL(LV, ATTR, VB, NF, ND)                                                     \
FF_DEFINE(float, f32_##LV, fcc_v_f32_##LV, ATTR)                                           \
FF_DEFINE(double, f64_##LV, fcc_v_f64_##LV, ATTR)                                          \
FG_DEFINE(float, f32_##LV, fcc_v_f32_##LV, ATTR)                                           \
FG_DEFINE(double, f64_##LV, fcc_v_f64_##LV, ATTR)
FASTCONV_EACH_LEVEL(FF_LEVEL)

#endif
