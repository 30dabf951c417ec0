# The kernels of src/_winograd_kernels.h (the 2-D F(4x4, 3x3) and the 1-D F(6, 3) and their
# GEMM tiles; their staging is in _wg_staging.pxd, shared with _depthwise.pyx), declared once for
# _winograd.pyx and _winograd1d.pyx, with the position GEMMs both modules run on the tiles. Calls reach the kernels of the process's
# instruction-set level through the table wg_init() fills.
from cython cimport floating

cdef extern from "_winograd_kernels.h":
    Py_ssize_t wg_vector_bytes() noexcept nogil
    int wg_level() noexcept nogil
    void wg_init() noexcept nogil
    int wg_input_float "wg_kernels.wg_input_float"(const float* X, Py_ssize_t xcols, Py_ssize_t CP,
            Py_ssize_t cw, Py_ssize_t R, Py_ssize_t Cw, float* V, Py_ssize_t t0,
            Py_ssize_t Tn) noexcept nogil
    int wg_input_double "wg_kernels.wg_input_double"(const double* X, Py_ssize_t xcols,
            Py_ssize_t CP, Py_ssize_t cw, Py_ssize_t R, Py_ssize_t Cw, double* V, Py_ssize_t t0,
            Py_ssize_t Tn) noexcept nogil
    int wg_output_float "wg_kernels.wg_output_float"(const float* M, Py_ssize_t KP, Py_ssize_t kw,
            Py_ssize_t R, Py_ssize_t Cw, float* Y, Py_ssize_t ycols, Py_ssize_t t0,
            Py_ssize_t Tn) noexcept nogil
    int wg_output_double "wg_kernels.wg_output_double"(const double* M, Py_ssize_t KP,
            Py_ssize_t kw, Py_ssize_t R, Py_ssize_t Cw, double* Y, Py_ssize_t ycols,
            Py_ssize_t t0, Py_ssize_t Tn) noexcept nogil
    int wg_gy_float "wg_kernels.wg_gy_float"(const float* G, Py_ssize_t gcols, Py_ssize_t KP,
            Py_ssize_t R, Py_ssize_t Cw, float* Mg, Py_ssize_t t0, Py_ssize_t Tn) noexcept nogil
    int wg_gy_double "wg_kernels.wg_gy_double"(const double* G, Py_ssize_t gcols, Py_ssize_t KP,
            Py_ssize_t R, Py_ssize_t Cw, double* Mg, Py_ssize_t t0, Py_ssize_t Tn) noexcept nogil
    int wg1_input_float "wg_kernels.wg1_input_float"(const float* X, Py_ssize_t CP,
            Py_ssize_t dil, Py_ssize_t Tr, float* V, Py_ssize_t t0, Py_ssize_t Tn,
            Py_ssize_t j0, Py_ssize_t jn) noexcept nogil
    int wg1_input_double "wg_kernels.wg1_input_double"(const double* X, Py_ssize_t CP,
            Py_ssize_t dil, Py_ssize_t Tr, double* V, Py_ssize_t t0, Py_ssize_t Tn,
            Py_ssize_t j0, Py_ssize_t jn) noexcept nogil
    int wg1_output_float "wg_kernels.wg1_output_float"(const float* M, Py_ssize_t KP,
            Py_ssize_t dil, Py_ssize_t Tr, float* Y, Py_ssize_t t0, Py_ssize_t Tn, Py_ssize_t j0,
            Py_ssize_t jn) noexcept nogil
    int wg1_output_double "wg_kernels.wg1_output_double"(const double* M, Py_ssize_t KP,
            Py_ssize_t dil, Py_ssize_t Tr, double* Y, Py_ssize_t t0, Py_ssize_t Tn, Py_ssize_t j0,
            Py_ssize_t jn) noexcept nogil
    int wg1_gy_float "wg_kernels.wg1_gy_float"(const float* G, Py_ssize_t KP, Py_ssize_t dil,
            Py_ssize_t Tr, float* Mg, Py_ssize_t t0, Py_ssize_t Tn) noexcept nogil
    int wg1_gy_double "wg_kernels.wg1_gy_double"(const double* G, Py_ssize_t KP, Py_ssize_t dil,
            Py_ssize_t Tr, double* Mg, Py_ssize_t t0, Py_ssize_t Tn) noexcept nogil
    int wg1_gemm_float "wg_kernels.wg1_gemm_float"(const float* A, Py_ssize_t ars,
            Py_ssize_t ais, const float* B, Py_ssize_t ldb, float* C, Py_ssize_t ldc,
            Py_ssize_t rows, Py_ssize_t cols, Py_ssize_t n, int load) noexcept nogil
    int wg1_gemm_double "wg_kernels.wg1_gemm_double"(const double* A, Py_ssize_t ars,
            Py_ssize_t ais, const double* B, Py_ssize_t ldb, double* C, Py_ssize_t ldc,
            Py_ssize_t rows, Py_ssize_t cols, Py_ssize_t n, int load) noexcept nogil
    int wg1_kernel_float "wg_kernels.wg1_kernel_float"(const float* w, float* u, Py_ssize_t i,
            Py_ssize_t C, Py_ssize_t KP, Py_ssize_t ins, Py_ssize_t outs,
            int flipped) noexcept nogil
    int wg1_kernel_double "wg_kernels.wg1_kernel_double"(const double* w, double* u,
            Py_ssize_t i, Py_ssize_t C, Py_ssize_t KP, Py_ssize_t ins, Py_ssize_t outs,
            int flipped) noexcept nogil
    int wg_kernel_float "wg_kernels.wg_kernel_float"(const float* w, Py_ssize_t kstride,
            float* out, Py_ssize_t ostride, Py_ssize_t col, Py_ssize_t C, Py_ssize_t rows,
            Py_ssize_t kernels, int flipped, int prefetch) noexcept nogil
    int wg_kernel_double "wg_kernels.wg_kernel_double"(const double* w, Py_ssize_t kstride,
            double* out, Py_ssize_t ostride, Py_ssize_t col, Py_ssize_t C, Py_ssize_t rows,
            Py_ssize_t kernels, int flipped, int prefetch) noexcept nogil
    int wg_untransform_float "wg_kernels.wg_untransform_float"(const float* du, float* gw,
            Py_ssize_t gstride, Py_ssize_t row, Py_ssize_t K, Py_ssize_t C, Py_ssize_t KP,
            int by_input) noexcept nogil
    int wg_untransform_double "wg_kernels.wg_untransform_double"(const double* du, double* gw,
            Py_ssize_t gstride, Py_ssize_t row, Py_ssize_t K, Py_ssize_t C, Py_ssize_t KP,
            int by_input) noexcept nogil


cdef inline void block_gemm(const floating* V, Py_ssize_t ldv, const floating* U,
                            Py_ssize_t width, floating* M, Py_ssize_t ldm, Py_ssize_t T,
                            Py_ssize_t n, bint add) noexcept nogil:
    """M[:, :width] (+)= V @ U: T x n (rows ldv apart) by n x width, M's rows ldm apart (a
    block of output channels of Winograd's kernel blocks, _winograd.pyx)."""
    if floating is float:
        wg1_gemm_float(V, ldv, 1, U, width, M, ldm, T, width, n, add)
    else:
        wg1_gemm_double(V, ldv, 1, U, width, M, ldm, T, width, n, add)


cdef inline void position_gemm(const floating* V, Py_ssize_t CP, const floating* U,
                               Py_ssize_t KP, floating* M, Py_ssize_t T, Py_ssize_t cin,
                               bint add) noexcept nogil:
    """M (+)= V @ U for one position, T x cin (rows CP apart) by cin x KP, on fastconv's own
    register tiles (wg1_gemm): 1.0-1.4x OpenBLAS's small-matrix kernel on the 2-D layers of
    the sweep's networks (ResNet-18's layer3 at batch 8 1.3x, a U-Net's 128-channel layer
    1.4x; float32 and float64, 2-core Xeon AVX-512). The forward pass of both modules."""
    block_gemm(V, CP, U, KP, M, KP, T, cin, add)


cdef inline void position_gemm_tn(const floating* V, Py_ssize_t CP, Py_ssize_t cin,
                                  const floating* Mg, Py_ssize_t KP, floating* dU, Py_ssize_t T,
                                  bint add) noexcept nogil:
    """dU (+)= V^T Mg for one position of the kernel gradient (2-D blocks, 1-D): V is T x CP,
    Mg T x KP, dU cin x KP (wg1_gemm; rows the input channels, so a 3-channel first layer
    computes 3 rows, not a padded vector)."""
    if floating is float:
        wg1_gemm_float(V, 1, CP, Mg, KP, dU, KP, cin, KP, T, add)
    else:
        wg1_gemm_double(V, 1, CP, Mg, KP, dU, KP, cin, KP, T, add)
