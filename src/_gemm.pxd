# fastconv's own packed GEMM (src/_gemm_kernels.h), fused over float/double, as _blas.pxd wraps
# the BLAS: A packed into blocks of the register tile's rows (pack_a), B arriving in panels of
# its columns, C = A B (panels_gemm); or A read in place and B packed by pack_b (inplace_gemm,
# the pointwise algorithm's). A module that cimports it calls gm_init() once at import.
from cython cimport floating

cdef extern from "_gemm_kernels.h":
    void gm_init() noexcept nogil
    int gm_level() noexcept nogil
    int gm_rows_float "gm_kernels.gm_rows_float"() noexcept nogil
    int gm_rows_double "gm_kernels.gm_rows_double"() noexcept nogil
    int gm_cols_float "gm_kernels.gm_cols_float"() noexcept nogil
    int gm_cols_double "gm_kernels.gm_cols_double"() noexcept nogil
    int gm_pack_a_float "gm_kernels.gm_pack_a_float"(const float* a, Py_ssize_t rows,
            Py_ssize_t k, Py_ssize_t rs, Py_ssize_t cs, float* ap) noexcept nogil
    int gm_pack_a_double "gm_kernels.gm_pack_a_double"(const double* a, Py_ssize_t rows,
            Py_ssize_t k, Py_ssize_t rs, Py_ssize_t cs, double* ap) noexcept nogil
    int gm_panels_float "gm_kernels.gm_panels_float"(Py_ssize_t m, Py_ssize_t n, Py_ssize_t k,
            const float* ap, const float* bp, float* c, Py_ssize_t ldc, Py_ssize_t seg,
            Py_ssize_t seg_stride) noexcept nogil
    int gm_panels_double "gm_kernels.gm_panels_double"(Py_ssize_t m, Py_ssize_t n, Py_ssize_t k,
            const double* ap, const double* bp, double* c, Py_ssize_t ldc, Py_ssize_t seg,
            Py_ssize_t seg_stride) noexcept nogil
    int gm_rows_times_float "gm_kernels.gm_rows_times_float"(Py_ssize_t m, Py_ssize_t n,
            Py_ssize_t k, const float* ap, const float* b, Py_ssize_t ldb, float* c,
            Py_ssize_t ldc, float* strip) noexcept nogil
    int gm_rows_times_double "gm_kernels.gm_rows_times_double"(Py_ssize_t m, Py_ssize_t n,
            Py_ssize_t k, const double* ap, const double* b, Py_ssize_t ldb, double* c,
            Py_ssize_t ldc, double* strip) noexcept nogil


cdef inline int tile_rows(const floating* like) noexcept nogil:
    """Rows of the packed GEMM's register tile (its blocks of A) for this precision."""
    if floating is float:
        return gm_rows_float()
    else:
        return gm_rows_double()


cdef inline int tile_cols(const floating* like) noexcept nogil:
    """Columns of the packed GEMM's register tile (its panels of B) for this precision."""
    if floating is float:
        return gm_cols_float()
    else:
        return gm_cols_double()


cdef inline void pack_a(const floating* a, Py_ssize_t rows, Py_ssize_t k, Py_ssize_t rs,
                        Py_ssize_t cs, floating* ap) noexcept nogil:
    if floating is float:
        gm_pack_a_float(a, rows, k, rs, cs, ap)
    else:
        gm_pack_a_double(a, rows, k, rs, cs, ap)


cdef inline void panels_gemm(Py_ssize_t m, Py_ssize_t n, Py_ssize_t k, const floating* ap,
                             const floating* bp, floating* c, Py_ssize_t ldc, Py_ssize_t seg,
                             Py_ssize_t seg_stride) noexcept nogil:
    """C = A B, column j at c + (j / seg) * seg_stride + j % seg (see gm_panels)."""
    if floating is float:
        gm_panels_float(m, n, k, ap, bp, c, ldc, seg, seg_stride)
    else:
        gm_panels_double(m, n, k, ap, bp, c, ldc, seg, seg_stride)


cdef inline void rows_gemm(Py_ssize_t m, Py_ssize_t n, Py_ssize_t k, const floating* ap,
                           const floating* b, Py_ssize_t ldb, floating* c, Py_ssize_t ldc,
                           floating* strip) noexcept nogil:
    """C = A B with A packed (pack_a) and B read in place, rows ldb apart (see gm_rows_times);
    `strip` holds k x tile_cols values."""
    if floating is float:
        gm_rows_times_float(m, n, k, ap, b, ldb, c, ldc, strip)
    else:
        gm_rows_times_double(m, n, k, ap, b, ldb, c, ldc, strip)


cdef extern from "_gemm_kernels.h":
    int gm_pack_b_float "gm_kernels.gm_pack_b_float"(const float* b, Py_ssize_t samples,
            Py_ssize_t k, Py_ssize_t n, Py_ssize_t rs, Py_ssize_t cs, Py_ssize_t ss,
            float* bp) noexcept nogil
    int gm_pack_b_double "gm_kernels.gm_pack_b_double"(const double* b, Py_ssize_t samples,
            Py_ssize_t k, Py_ssize_t n, Py_ssize_t rs, Py_ssize_t cs, Py_ssize_t ss,
            double* bp) noexcept nogil
    int gm_inplace_float "gm_kernels.gm_inplace_float"(Py_ssize_t i0, Py_ssize_t i1,
            Py_ssize_t panel, Py_ssize_t n, Py_ssize_t samples, Py_ssize_t k, const float* a,
            Py_ssize_t lda, Py_ssize_t sa, int acols, const float* bp, Py_ssize_t ldb, float* c,
            Py_ssize_t ldc, float* part) noexcept nogil
    int gm_inplace_double "gm_kernels.gm_inplace_double"(Py_ssize_t i0, Py_ssize_t i1,
            Py_ssize_t panel, Py_ssize_t n, Py_ssize_t samples, Py_ssize_t k, const double* a,
            Py_ssize_t lda, Py_ssize_t sa, int acols, const double* bp, Py_ssize_t ldb,
            double* c, Py_ssize_t ldc, double* part) noexcept nogil


cdef inline void pack_b(const floating* b, Py_ssize_t samples, Py_ssize_t k, Py_ssize_t n,
                        Py_ssize_t rs, Py_ssize_t cs, Py_ssize_t ss, floating* bp) noexcept nogil:
    """Panels of B for inplace_gemm: B_s(kk, j) at b[s * ss + kk * rs + j * cs] (gm_pack_b)."""
    if floating is float:
        gm_pack_b_float(b, samples, k, n, rs, cs, ss, bp)
    else:
        gm_pack_b_double(b, samples, k, n, rs, cs, ss, bp)


cdef inline void inplace_gemm(Py_ssize_t i0, Py_ssize_t i1, Py_ssize_t panel, Py_ssize_t n,
                              Py_ssize_t samples, Py_ssize_t k, const floating* a, Py_ssize_t lda,
                              Py_ssize_t sa, int acols, const floating* bp, Py_ssize_t ldb,
                              floating* c, Py_ssize_t ldc, floating* part) noexcept nogil:
    """Rows [i0, i1) of C = sum_s A_s B_s on one panel, A read in place (see gm_inplace); the
    panel's rows ldb apart (tile_cols: packed; B's row length: a whole panel read in place);
    `part` holds (i1 - i0) x tile_cols values."""
    if floating is float:
        gm_inplace_float(i0, i1, panel, n, samples, k, a, lda, sa, acols, bp, ldb, c, ldc, part)
    else:
        gm_inplace_double(i0, i1, panel, n, samples, k, a, lda, sa, acols, bp, ldb, c, ldc, part)
