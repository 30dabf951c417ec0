# Winograd's channel-last staging (wg_stage, wg_unstage: register transposes between planes and
# vectors of channels), declared once for the modules that compile it: _winograd.pyx and
# _winograd1d.pyx through _winograd_kernels.h (_winograd_kernels.pxd), _depthwise.pyx through
# _depthwise_stage.h at its own set's level (_depthwise_grid.pxd). `extern from *`: the module's
# own header, which those declare, defines them.
cdef extern from *:
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
