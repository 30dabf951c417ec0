# The kernels of src/_blocked_kernels.h (the blocked direct algorithm's rows, packing,
# transposes and kernel-gradient tiles), declared for _blocked.pyx. Calls reach the kernels of
# the process's instruction-set level through the table bk_init() fills.
cdef extern from "_blocked_kernels.h":
    int bk_level() noexcept nogil
    Py_ssize_t fastconv_vector_bytes(int level) noexcept nogil
    void bk_init() noexcept nogil
    void bk_row_f32 "bk_kernels.bk_row_f32"(const float* x, Py_ssize_t cs, const Py_ssize_t* toff,
                    Py_ssize_t taps, Py_ssize_t ts, Py_ssize_t C, const float* w, int KB, int RT,
                    Py_ssize_t js, Py_ssize_t rs, Py_ssize_t ow, float* out,
                    Py_ssize_t ek) noexcept nogil
    void bk_row_f64 "bk_kernels.bk_row_f64"(const double* x, Py_ssize_t cs, const Py_ssize_t* toff,
                    Py_ssize_t taps, Py_ssize_t ts, Py_ssize_t C, const double* w, int KB, int RT,
                    Py_ssize_t js, Py_ssize_t rs, Py_ssize_t ow, double* out,
                    Py_ssize_t ek) noexcept nogil
    void bk_unpack_f32 "bk_kernels.bk_unpack_f32"(const float* buf, Py_ssize_t V, Py_ssize_t ow,
                    Py_ssize_t rt, Py_ssize_t lanes, float* y, Py_ssize_t plane,
                    Py_ssize_t yrow) noexcept nogil
    void bk_unpack_f64 "bk_kernels.bk_unpack_f64"(const double* buf, Py_ssize_t V,
                    Py_ssize_t ow, Py_ssize_t rt, Py_ssize_t lanes, double* y, Py_ssize_t plane,
                    Py_ssize_t yrow) noexcept nogil
    int bk_pack_f32 "bk_kernels.bk_pack_f32"(const float* src, Py_ssize_t stride, float* dst,
                    Py_ssize_t V, Py_ssize_t lanes, Py_ssize_t q0, Py_ssize_t q1) noexcept nogil
    int bk_pack_f64 "bk_kernels.bk_pack_f64"(const double* src, Py_ssize_t stride, double* dst,
                    Py_ssize_t V, Py_ssize_t lanes, Py_ssize_t q0, Py_ssize_t q1) noexcept nogil
    void bk_flip_f32 "bk_kernels.bk_flip_f32"(const float* src, Py_ssize_t taps,
                    const Py_ssize_t* pos, float* dst, Py_ssize_t V,
                    Py_ssize_t lanes) noexcept nogil
    void bk_flip_f64 "bk_kernels.bk_flip_f64"(const double* src, Py_ssize_t taps,
                    const Py_ssize_t* pos, double* dst, Py_ssize_t V,
                    Py_ssize_t lanes) noexcept nogil
    int bk_nonfinite_f32 "bk_kernels.bk_nonfinite_f32"(const float* a, Py_ssize_t n) noexcept nogil
    int bk_nonfinite_f64 "bk_kernels.bk_nonfinite_f64"(const double* a, Py_ssize_t n) noexcept nogil
    void bk_gk_f32 "bk_kernels.bk_gk_f32"(const float* x, Py_ssize_t xn, const float* g,
                    Py_ssize_t gn, Py_ssize_t samples, const Py_ssize_t* roff, Py_ssize_t o0,
                    Py_ssize_t o1, Py_ssize_t o2, Py_ssize_t zs, Py_ssize_t ys, Py_ssize_t js,
                    float* out, Py_ssize_t orow, int KB, int RY, int CX, int more) noexcept nogil
    void bk_gk_f64 "bk_kernels.bk_gk_f64"(const double* x, Py_ssize_t xn, const double* g,
                    Py_ssize_t gn, Py_ssize_t samples, const Py_ssize_t* roff, Py_ssize_t o0,
                    Py_ssize_t o1, Py_ssize_t o2, Py_ssize_t zs, Py_ssize_t ys, Py_ssize_t js,
                    double* out, Py_ssize_t orow, int KB, int RY, int CX, int more) noexcept nogil
    void bk_gkp_f32 "bk_kernels.bk_gkp_f32"(const float* x, Py_ssize_t xrs, const float* g,
                    Py_ssize_t grs, Py_ssize_t gc, int M, Py_ssize_t rows, Py_ssize_t ow,
                    const Py_ssize_t* toff, Py_ssize_t taps, float* acc) noexcept nogil
    void bk_gkp_f64 "bk_kernels.bk_gkp_f64"(const double* x, Py_ssize_t xrs, const double* g,
                    Py_ssize_t grs, Py_ssize_t gc, int M, Py_ssize_t rows, Py_ssize_t ow,
                    const Py_ssize_t* toff, Py_ssize_t taps, double* acc) noexcept nogil
    void bkb_fwd_f32 "bk_kernels.bkb_fwd_f32"(const float* x, Py_ssize_t cs,
                    const Py_ssize_t* loff, Py_ssize_t lines, Py_ssize_t k2, Py_ssize_t ts,
                    Py_ssize_t C, Py_ssize_t ps, const float* w, Py_ssize_t wk, float* y,
                    Py_ssize_t yk, int KT, int PT) noexcept nogil
    void bkb_gk_f32 "bk_kernels.bkb_gk_f32"(const float* x, const float* g, Py_ssize_t gk,
                    Py_ssize_t o0, Py_ssize_t o1, Py_ssize_t o2, Py_ssize_t zs, Py_ssize_t ys,
                    Py_ssize_t js, Py_ssize_t ts, float* out, Py_ssize_t ok, int more, int KT,
                    int TT) noexcept nogil
    void bkb_fwd_f64 "bk_kernels.bkb_fwd_f64"(const double* x, Py_ssize_t cs,
                    const Py_ssize_t* loff, Py_ssize_t lines, Py_ssize_t k2, Py_ssize_t ts,
                    Py_ssize_t C, Py_ssize_t ps, const double* w, Py_ssize_t wk, double* y,
                    Py_ssize_t yk, int KT, int PT) noexcept nogil
    void bkb_gk_f64 "bk_kernels.bkb_gk_f64"(const double* x, const double* g, Py_ssize_t gk,
                    Py_ssize_t o0, Py_ssize_t o1, Py_ssize_t o2, Py_ssize_t zs, Py_ssize_t ys,
                    Py_ssize_t js, Py_ssize_t ts, double* out, Py_ssize_t ok, int more, int KT,
                    int TT) noexcept nogil
    void bpl_row_f32 "bk_kernels.bpl_row_f32"(const float* x, Py_ssize_t cs,
                    const Py_ssize_t* toff, Py_ssize_t taps, Py_ssize_t C, const float* w,
                    float* y, Py_ssize_t yr, Py_ssize_t xrs, Py_ssize_t yrs, Py_ssize_t ow,
                    int R, int RW, int NV) noexcept nogil
    void bpl_row_f64 "bk_kernels.bpl_row_f64"(const double* x, Py_ssize_t cs,
                    const Py_ssize_t* toff, Py_ssize_t taps, Py_ssize_t C, const double* w,
                    double* y, Py_ssize_t yr, Py_ssize_t xrs, Py_ssize_t yrs, Py_ssize_t ow,
                    int R, int RW, int NV) noexcept nogil
