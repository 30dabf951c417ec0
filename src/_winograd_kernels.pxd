# The kernels of src/_winograd_kernels.h (the 2-D F(4x4, 3x3) and the 1-D F(6, 3), their
# staging and their GEMM tiles), declared once for _winograd.pyx and _winograd1d.pyx. Calls reach
# the kernels of the process's instruction-set level through the table wg_init() fills.
cdef extern from "_winograd_kernels.h":
    Py_ssize_t wg_vector_bytes() noexcept nogil
    int wg_level() noexcept nogil
    void wg_init() noexcept nogil
    int wg_stage_float "wg_kernels.wg_stage_float"(const float* src, Py_ssize_t channels,
            Py_ssize_t cstride, Py_ssize_t H, Py_ssize_t W, Py_ssize_t row0, Py_ssize_t col0,
            Py_ssize_t nrows, Py_ssize_t ncols, float* dst, Py_ssize_t CP) noexcept nogil
    int wg_stage_double "wg_kernels.wg_stage_double"(const double* src, Py_ssize_t channels,
            Py_ssize_t cstride, Py_ssize_t H, Py_ssize_t W, Py_ssize_t row0, Py_ssize_t col0,
            Py_ssize_t nrows, Py_ssize_t ncols, double* dst, Py_ssize_t CP) noexcept nogil
    int wg_unstage_float "wg_kernels.wg_unstage_float"(const float* Y, Py_ssize_t ycols,
            Py_ssize_t KP, float* dst, Py_ssize_t channels, Py_ssize_t cstride, Py_ssize_t H,
            Py_ssize_t W, Py_ssize_t row0, Py_ssize_t col0, Py_ssize_t nrows,
            Py_ssize_t ncols) noexcept nogil
    int wg_unstage_double "wg_kernels.wg_unstage_double"(const double* Y, Py_ssize_t ycols,
            Py_ssize_t KP, double* dst, Py_ssize_t channels, Py_ssize_t cstride, Py_ssize_t H,
            Py_ssize_t W, Py_ssize_t row0, Py_ssize_t col0, Py_ssize_t nrows,
            Py_ssize_t ncols) noexcept nogil
    int wg_input_float "wg_kernels.wg_input_float"(const float* X, Py_ssize_t xcols, Py_ssize_t CP,
            Py_ssize_t R, Py_ssize_t Cw, float* V, Py_ssize_t t0, Py_ssize_t Tn) noexcept nogil
    int wg_input_double "wg_kernels.wg_input_double"(const double* X, Py_ssize_t xcols,
            Py_ssize_t CP, Py_ssize_t R, Py_ssize_t Cw, double* V, Py_ssize_t t0,
            Py_ssize_t Tn) noexcept nogil
    int wg_output_float "wg_kernels.wg_output_float"(const float* M, Py_ssize_t KP, Py_ssize_t R,
            Py_ssize_t Cw, float* Y, Py_ssize_t ycols, Py_ssize_t t0, Py_ssize_t Tn) noexcept nogil
    int wg_output_double "wg_kernels.wg_output_double"(const double* M, Py_ssize_t KP, Py_ssize_t R,
            Py_ssize_t Cw, double* Y, Py_ssize_t ycols, Py_ssize_t t0, Py_ssize_t Tn) noexcept nogil
    int wg_gy_float "wg_kernels.wg_gy_float"(const float* G, Py_ssize_t gcols, Py_ssize_t KP,
            Py_ssize_t R, Py_ssize_t Cw, float* Mg, Py_ssize_t t0, Py_ssize_t Tn) noexcept nogil
    int wg_gy_double "wg_kernels.wg_gy_double"(const double* G, Py_ssize_t gcols, Py_ssize_t KP,
            Py_ssize_t R, Py_ssize_t Cw, double* Mg, Py_ssize_t t0, Py_ssize_t Tn) noexcept nogil
    int wg1_input_float "wg_kernels.wg1_input_float"(const float* X, Py_ssize_t CP,
            Py_ssize_t dil, Py_ssize_t Tr, float* V, Py_ssize_t t0, Py_ssize_t Tn) noexcept nogil
    int wg1_input_double "wg_kernels.wg1_input_double"(const double* X, Py_ssize_t CP,
            Py_ssize_t dil, Py_ssize_t Tr, double* V, Py_ssize_t t0, Py_ssize_t Tn) noexcept nogil
    int wg1_output_float "wg_kernels.wg1_output_float"(const float* M, Py_ssize_t KP,
            Py_ssize_t dil, Py_ssize_t Tr, float* Y, Py_ssize_t t0, Py_ssize_t Tn) noexcept nogil
    int wg1_output_double "wg_kernels.wg1_output_double"(const double* M, Py_ssize_t KP,
            Py_ssize_t dil, Py_ssize_t Tr, double* Y, Py_ssize_t t0, Py_ssize_t Tn) noexcept nogil
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
