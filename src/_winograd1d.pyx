"""1-D Winograd convolution F(6, 3): forward (also the stride-1 input gradient) and kernel gradient.

The 1-D counterpart of src/_winograd.pyx, with its staging and its GEMM tiles: 8 transformed
values per tile of 6 outputs instead of 18 products. Dilation d is a stride inside a block: a
block is B = 6 d Tr consecutive outputs of one sample, which are d interleaved runs (the outputs
of each residue modulo d) of Tr tiles each; output o reads inputs o - off + d k, k = 0, 1, 2.

Each OpenMP thread, for a block (sample n, outputs o0 .. o0 + B), in its own scratch:
  stage      inputs o0 - off .. o0 - off + B + 2d, channel-last (wg_stage)   buf1 = X
  transform  V[xi] = B^T d for the d Tr tiles (wg1_input)                     buf2 = V
  GEMM       M[xi] = V[xi] @ U[xi], xi = 0..7 (wg1_gemm's register tiles)     buf1 = M
  transform  Y = A^T M, then back to (K, L) rows (wg1_output, wg_unstage)     buf2 = Y
The stage and the transforms go a chunk of the block at a time (jin, jn tiles a run), so X and Y
stay in L1: whole, they went through L2 (TCN's 64 channels, batch 8: 0.85-0.93x the time).
The outputs past the end of a sample are computed from zeros and not written. The kernel
gradient transforms x tiles (V) and gy tiles (Mg = A gy; zeros past the end add nothing) and sums
dU[xi] += V[xi]^T Mg[xi] (cin x KP, the same tiles) in `parts` partial sums fixed by the
problem, added in order, so nothing depends on the thread count. The kernel transform (wg1_kernel,
per level) and its inverse run in double.
"""
from cython cimport floating
from cython.parallel cimport prange
from libc.string cimport memset

from _parallel cimport any_set, part_start, sum_parts, thread_slice
from _winograd_kernels cimport (wg_vector_bytes, wg_init, wg_level, wg1_input_float,
    wg1_input_double, wg1_output_float, wg1_output_double, wg1_gy_float, wg1_gy_double,
    wg1_kernel_float, wg1_kernel_double, position_gemm, position_gemm_tn)
from _wg_staging cimport wg_stage_double, wg_stage_float, wg_unstage_double, wg_unstage_float

wg_init()      # the kernels of this process's level (src/_cpu_level.h), before any runs

cdef enum:
    POSITIONS = 8           # transformed values per tile
    TILE = 6                # outputs per tile


cdef struct Tiling:
    Py_ssize_t cin, cout, CP, KP        # channels read and written; both padded to the vector
    Py_ssize_t lin, lout                # lengths read and written
    Py_ssize_t off, dil                 # output o reads inputs o - off + dil * k
    Py_ssize_t Tr, B, blocks            # tiles per run, outputs per block, blocks per sample
    Py_ssize_t jin, jn                  # tiles a run of a chunk of inputs, of outputs
    Py_ssize_t size1, size2, size3      # per-thread scratch buffers (elements)


cdef Py_ssize_t out_chunk(Py_ssize_t dil, Py_ssize_t row_bytes) noexcept nogil:
    """Tiles a run of one chunk of a block's outputs, transformed into Y and written out before
    the next: positions a multiple of 16 (whole register transposes), at least 48, and more
    while Y stays within 16 KB (L1). Y whole (a block of the TCN's, 130 KB) went through L2."""
    cdef Py_ssize_t jn = 1
    while (TILE * dil * jn) % 16 != 0 and jn < 16:
        jn += 1
    while TILE * dil * jn < 48 or TILE * dil * 2 * jn * row_bytes <= 16384:
        jn *= 2
    return jn


cdef Tiling make_tiling(tuple t, Py_ssize_t itemsize) except *:
    cdef Tiling tl
    (tl.cin, tl.cout, tl.CP, tl.KP, tl.lin, tl.lout, tl.off, tl.dil, tl.Tr, tl.size1, tl.size2,
     tl.size3) = t
    tl.B = TILE * tl.dil * tl.Tr
    tl.blocks = (tl.lout + tl.B - 1) // tl.B
    tl.jn = out_chunk(tl.dil, tl.KP * itemsize)
    tl.jin = 1
    while TILE * tl.dil * tl.jin < 96:  # a chunk of inputs: 2 dil of them staged again
        tl.jin *= 2
    return tl


cdef inline void stage(const floating* src, Py_ssize_t channels, Py_ssize_t length,
                       Py_ssize_t start, Py_ssize_t count, floating* dst,
                       Py_ssize_t CP) noexcept nogil:
    """dst[i][c] = src[c][start + i] for i < count (zeros outside 0..length)."""
    if floating is float:
        wg_stage_float(src, channels, length, 1, length, 0, start, 1, count, dst, CP)
    else:
        wg_stage_double(src, channels, length, 1, length, 0, start, 1, count, dst, CP)


cdef void tiles_in(const Tiling* tl, const floating* x, Py_ssize_t o0, floating* V,
                   floating* buf) noexcept nogil:
    """V of the block of outputs o0 .. o0 + B of the sample x (cin rows of lin), staged and
    transformed in chunks of jin tiles a run (the 2 dil inputs they share staged twice)."""
    cdef Py_ssize_t T = tl.dil * tl.Tr, j0 = 0, jn
    while j0 < tl.Tr:
        jn = min(tl.jin, tl.Tr - j0)
        stage(x, tl.cin, tl.lin, o0 - tl.off + TILE * tl.dil * j0, TILE * tl.dil * jn + 2 * tl.dil,
              buf, tl.CP)
        if floating is float:
            wg1_input_float(buf, tl.CP, tl.dil, tl.Tr, V, 0, T, j0, jn)
        else:
            wg1_input_double(buf, tl.CP, tl.dil, tl.Tr, V, 0, T, j0, jn)
        j0 += jn


cdef int forward_block(const Tiling* tl, const floating* x, const floating* u, floating* y,
                       Py_ssize_t o0, floating* buf1, floating* buf2) noexcept nogil:
    """Outputs o0 .. o0 + B of one sample (x: its cin rows, y: its cout rows); 1 if a value
    was not finite."""
    cdef Py_ssize_t T = tl.dil * tl.Tr, xi, j0, jn
    cdef Py_ssize_t pad = 64 // sizeof(floating)     # WG_PLANE of _winograd_kernels.h
    cdef int bad
    tiles_in(tl, x, o0, buf2, buf1)
    for xi in range(POSITIONS):
        position_gemm(buf2 + xi * (T * tl.CP + pad), tl.CP, u + xi * tl.cin * tl.KP, tl.KP,
                      buf1 + xi * (T * tl.KP + pad), T, tl.cin, False)
    bad = 0
    j0 = 0
    while j0 < tl.Tr:                   # chunks of jn tiles a run: Y stays in L1
        jn = min(tl.jn, tl.Tr - j0)
        if floating is float:
            bad |= wg1_output_float(buf1, tl.KP, tl.dil, tl.Tr, buf2, 0, T, j0, jn)
            wg_unstage_float(buf2, TILE * tl.dil * jn, tl.KP, y, tl.cout, tl.lout, 1, tl.lout,
                             0, o0 + TILE * tl.dil * j0, 1, TILE * tl.dil * jn)
        else:
            bad |= wg1_output_double(buf1, tl.KP, tl.dil, tl.Tr, buf2, 0, T, j0, jn)
            wg_unstage_double(buf2, TILE * tl.dil * jn, tl.KP, y, tl.cout, tl.lout, 1, tl.lout,
                              0, o0 + TILE * tl.dil * j0, 1, TILE * tl.dil * jn)
        j0 += jn
    return bad


cdef void grad_kernel_block(const Tiling* tl, const floating* x, const floating* gy,
                            Py_ssize_t o0, floating* part, bint first, floating* buf1,
                            floating* buf2, floating* buf3) noexcept nogil:
    """part[xi] (+)= V[xi]^T Mg[xi] of the block of outputs o0 .. o0 + B (= if first)."""
    cdef Py_ssize_t T = tl.dil * tl.Tr, xi
    cdef Py_ssize_t pad = 64 // sizeof(floating)
    tiles_in(tl, x, o0, buf2, buf1)
    stage(gy, tl.cout, tl.lout, o0, tl.B, buf1, tl.KP)
    if floating is float:
        wg1_gy_float(buf1, tl.KP, tl.dil, tl.Tr, buf3, 0, T)
    else:
        wg1_gy_double(buf1, tl.KP, tl.dil, tl.Tr, buf3, 0, T)
    for xi in range(POSITIONS):     # part[xi] is cin x KP
        position_gemm_tn(buf2 + xi * (T * tl.CP + pad), tl.CP, tl.cin,
                         buf3 + xi * (T * tl.KP + pad), tl.KP, part + xi * tl.cin * tl.KP, T,
                         not first)


def forward(tuple tiling, const floating[:, ::1] x, const floating[::1] u, floating[:, ::1] y,
            floating[::1] work, unsigned char[::1] flags, int num_threads):
    """y[n] = Winograd(x[n], u) for every sample n (x: N x cin * lin, y: N x cout * lout); u is
    U[8][cin][KP]. `work` holds num_threads * (size1 + size2) values, `flags` one byte per
    block: set where the block computed a value that is not finite. Returns whether one did."""
    cdef Tiling tl = make_tiling(tiling, sizeof(floating))
    cdef Py_ssize_t item, n
    cdef floating* buf1
    with nogil:
        for item in prange(x.shape[0] * tl.blocks, schedule="static", num_threads=num_threads):
            buf1 = thread_slice(&work[0], tl.size1 + tl.size2)
            n = item // tl.blocks
            flags[item] = forward_block(&tl, &x[n, 0], &u[0], &y[n, 0],
                                        (item % tl.blocks) * tl.B, buf1, buf1 + tl.size1)
    return any_set(&flags[0], flags.shape[0])


def grad_kernel(tuple tiling, const floating[:, ::1] x, const floating[:, ::1] gy,
                floating[::1] du, floating[::1] work, floating[::1] partials, Py_ssize_t parts,
                int num_threads):
    """du[8][cin][KP] = sum over the blocks of V^T Mg, in `parts` partial sums added in order."""
    cdef Tiling tl = make_tiling(tiling, sizeof(floating))
    cdef Py_ssize_t items = x.shape[0] * tl.blocks
    cdef Py_ssize_t size = POSITIONS * tl.cin * tl.KP, q, i, i0, i1
    cdef floating* buf1
    cdef floating* part
    with nogil:
        for q in prange(parts, schedule="static", num_threads=num_threads):
            buf1 = thread_slice(&work[0], tl.size1 + tl.size2 + tl.size3)
            part = &partials[0] + q * size
            i0 = part_start(0, items, q, parts)
            i1 = part_start(0, items, q + 1, parts)
            if i0 == i1:
                memset(part, 0, size * sizeof(floating))
            for i in range(i0, i1):
                grad_kernel_block(&tl, &x[i // tl.blocks, 0], &gy[i // tl.blocks, 0],
                                  (i % tl.blocks) * tl.B, part, i == i0, buf1, buf1 + tl.size1,
                                  buf1 + tl.size1 + tl.size2)
        sum_parts(&partials[0], &du[0], size, parts, num_threads)


def kernel_transform(const floating[::1] w, floating[::1] u, Py_ssize_t K, Py_ssize_t C,
                     Py_ssize_t KP, bint flipped, int num_threads):
    """u[xi][i][o] = (G g)[xi] in double, for every (i, o) of u (8 x ins x KP; the columns o past
    the outputs are left as they are): forward i = c, o = k, g = w[k, c]; flipped (the input
    gradient) i = k, o = c, g = w[k, c] reversed. w is K x C x 3. A row of u a call of
    wg1_kernel, at this level's vector width."""
    cdef Py_ssize_t i, ins = K if flipped else C, outs = C if flipped else K
    for i in prange(ins, nogil=True, schedule="static", num_threads=num_threads):
        if floating is float:
            wg1_kernel_float(&w[0], &u[0], i, C, KP, ins, outs, flipped)
        else:
            wg1_kernel_double(&w[0], &u[0], i, C, KP, ins, outs, flipped)


def kernel_untransform(const floating[::1] du, floating[::1] gw, Py_ssize_t K, Py_ssize_t C,
                       Py_ssize_t KP):
    """gw[k][c] (3 taps) = G^T dU[:, c, k] in double, for du of 8 x C x KP."""
    cdef Py_ssize_t k, c, xi, n = C * KP
    cdef double d[8]
    with nogil:
        for c in range(C):          # along dU's rows
            for k in range(K):
                for xi in range(POSITIONS):
                    d[xi] = du[xi * n + c * KP + k]
                gw[(k * C + c) * 3] = <floating>(d[0] - 2.0 / 9 * (d[1] + d[2])
                                                 + (d[3] + d[4]) / 90 + 32.0 / 45 * (d[5] + d[6]))
                gw[(k * C + c) * 3 + 1] = <floating>(-2.0 / 9 * (d[1] - d[2]) + (d[3] - d[4]) / 45
                                                     + 16.0 / 45 * (d[5] - d[6]))
                gw[(k * C + c) * 3 + 2] = <floating>(-2.0 / 9 * (d[1] + d[2])
                                                     + 2.0 / 45 * (d[3] + d[4])
                                                     + 8.0 / 45 * (d[5] + d[6]) + d[7])


def kernel_level():
    """The kernel set this process runs: 2 x86-64-v4, 1 x86-64-v3, 0 the build's own target."""
    return wg_level()


def lanes(itemsize):
    """Values of one vector of the kernels this machine runs; channels are padded to it."""
    return wg_vector_bytes() // itemsize
