/* Scratch on a cache line, for the kernels' own C allocations (the FFT's per-call buffers,
   Winograd's kernel staging); fastconv/_aligned.py does the same for NumPy arrays. */
#ifndef FASTCONV_LINE_ALLOC_H
#define FASTCONV_LINE_ALLOC_H

#include <stdlib.h>

/* `bytes` of scratch, 64-byte aligned (aligned_alloc wants a multiple of the alignment); free()
   releases it. */
static inline void* fc_line_alloc(size_t bytes)
{
    return aligned_alloc(64, (bytes + 63) & ~(size_t)63);
}

#endif
