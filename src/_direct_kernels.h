/* Micro-kernels of fastconv's direct convolution (src/_direct.pyx), float and double.
 *
 * Written with GCC vector types (_vectors.h) so that a tile of accumulators stays in registers
 * whatever the instruction set; following BLIS, only these kernels depend on it: they are
 * compiled once per level of src/_cpu_level.h (x86-64-v4 AVX-512, x86-64-v3 AVX2 + FMA, the
 * build's own target: NEON on aarch64, SSE2 on plain x86-64) and reached through the table
 * fc_init() fills at import, so the portable build (no -march) still runs at the machine's
 * vector width. One process always runs the same level, so results never change from call to
 * call; FASTCONV_DIRECT_LEVEL=0 or 1 asks for a lower one.
 *
 * The parts: _direct_tiles.h (forward tiles), _direct_dots.h (kernel-gradient dot products),
 * _direct_rows.h (the row drivers of one level); this file instantiates them per level.
 *
 * Entry points, through fc_kernels (Py_ssize_t indices; `base` offsets may be negative, every
 * address read is not):
 *   fc_fwd_rows_T  a run of output rows of the forward pass (also grad_input at stride 1)
 *   fc_gw_rows_T   the kernel-gradient dot products of a run of rows, into V-lane accumulators
 */
#ifndef FASTCONV_DIRECT_KERNELS_H
#define FASTCONV_DIRECT_KERNELS_H

#include <stdlib.h>

#include "_cpu_level.h"
#include "_vectors.h"

#define FC_AI static inline __attribute__((always_inline))
/* A half or quarter vector, never less than one element. */
#define FC_PART(BYTES, N, T) ((BYTES) / (N) > sizeof(T) ? (BYTES) / (N) : sizeof(T))
#define FC_DOT_TILE 32    /* grad_kernel walks a row in tiles of this many vectors */
#define FC_ROW_GROUP 8    /* and the rows in groups of at least this many (4 tiles), but 4 where */
#define FC_SET_BYTES 4096 /* one channel's input rows lie within FC_SET_NEAR bytes of a multiple */
#define FC_SET_NEAR 256   /* of this: rows then share the L1's sets (4 KiB a way), and a group's
   8 output-gradient and 8+ input rows of a tile fall in one set's ways and evict each other
   before the next tap re-reads them (a 1024 x 1024 11x11 single-channel kernel gradient: 3.9
   ms in groups of 8, 2.8 in groups of 4; 768 x 768, whose rows take two sets: 1.55 and 1.65) */
#define FC_KW_TABLE 32    /* edge tiles tabulate the shifts of up to this many kernel columns */
#define FC_KH_REUSE 5     /* row tiles reuse input rows for kernels of 3 or 5 rows */
/* A forward sum of more taps than this (channels x kernel volume) goes in blocks of this many,
   each summed by the tiles from zero, the block sums added in order (fc_fwd_long): it then rounds
   like (block + taps / block) additions, not like `taps` in a row -- 2**21 float32 taps of
   uniform data went from 5.7e-4 of the result to 1e-6. Shorter sums (nearly every layer) run the
   tiles as they are, bit for bit. */
#define FC_TAP_BLOCK 2048
#define FC_LONG_CHUNK 128 /* fc_fwd_long's columns at a time: two 4 x 128 sums on the stack */

#include "_direct_tiles.h"
#include "_direct_dots.h"
#include "_direct_rows.h"

/* Both precisions at each level (fc_fwd_rows_float_v4, ...). */
#define FC_LEVEL(LV, ATTR, BYTES, NF, ND)                                                          \
FC_DEFINE(float, float_##LV, int, BYTES, ATTR)                                                     \
FC_DEFINE(double, double_##LV, long long, BYTES, ATTR)
FASTCONV_EACH_LEVEL(FC_LEVEL)

#define FC_ENTRIES(X, LV)                                                                          \
    X(fc_fwd_rows_float, LV) X(fc_fwd_rows_double, LV) X(fc_gw_rows_float, LV)                     \
    X(fc_gw_rows_double, LV)
FASTCONV_KERNEL_TABLE(fc, FC_ENTRIES, "FASTCONV_DIRECT_LEVEL")

/* Bytes of one accumulator vector of the kernels this process runs. */
static Py_ssize_t fc_vector_bytes(void) {
    return fastconv_vector_bytes(fc_level());
}

#endif
