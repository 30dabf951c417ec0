/* The FFT's kernel set (src/_fft.pyx): the channel products (_fft_product.h), the column and row
   transforms (_fft_columns.h) and the passes that fuse them (_fft_fused.h), each compiled once
   per instruction set, reached through one table (_cpu_level.h) that ff_init() fills at import;
   FASTCONV_FFT_LEVEL=0 or 1 asks for a lower level. */
#ifndef FASTCONV_FFT_KERNELS_H
#define FASTCONV_FFT_KERNELS_H
#include "_fft_fused.h"

#define FF_ENTRIES(X, LV)                                                                        \
    X(fc_item_f32, LV) X(fc_item_f64, LV) X(fc_matrix_f32, LV) X(fc_matrix_f64, LV)              \
    X(fcc_columns_f32, LV) X(fcc_columns_f64, LV)                                                \
    X(fcc_columns_placed_f32, LV) X(fcc_columns_placed_f64, LV)                                  \
    X(fcc_rows_r2c_f32, LV) X(fcc_rows_r2c_f64, LV)                                              \
    X(fcc_rows_c2r_f32, LV) X(fcc_rows_c2r_f64, LV)                                              \
    X(ff_fused_f32, LV) X(ff_fused_f64, LV) X(ff_fused_sum_f32, LV) X(ff_fused_sum_f64, LV)
FASTCONV_KERNEL_TABLE(ff, FF_ENTRIES, "FASTCONV_FFT_LEVEL")

/* Each entry point under one name for both precisions, so that src/_fft.pyx writes each call
   once for its fused `floating`: the type of the array P picks the table's _f32 or _f64 copy
   (C11 _Generic; with no default, a pointer of any other type does not compile). */
#define FF_PICK(F, P) _Generic((P), float*: ff_kernels.F##_f32, const float*: ff_kernels.F##_f32, \
                               double*: ff_kernels.F##_f64, const double*: ff_kernels.F##_f64)
#define FF_ITEM(na, nb, nj, nf, a, ...) FF_PICK(fc_item, a)(na, nb, nj, nf, a, __VA_ARGS__)
#define FF_MATRIX(ni, nt, nw, m, ...) FF_PICK(fc_matrix, m)(ni, nt, nw, m, __VA_ARGS__)
#define FF_COLUMNS(data, ...) FF_PICK(fcc_columns, data)(data, __VA_ARGS__)
#define FF_COLUMNS_PLACED(src, ...) FF_PICK(fcc_columns_placed, src)(src, __VA_ARGS__)
#define FF_ROWS_R2C(src, ...) FF_PICK(fcc_rows_r2c, src)(src, __VA_ARGS__)
#define FF_ROWS_C2R(src, ...) FF_PICK(fcc_rows_c2r, src)(src, __VA_ARGS__)
#define FF_FUSED(a, ...) FF_PICK(ff_fused, a)(a, __VA_ARGS__)
#define FF_FUSED_SUM(a, ...) FF_PICK(ff_fused_sum, a)(a, __VA_ARGS__)

#endif
