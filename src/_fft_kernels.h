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

#endif
