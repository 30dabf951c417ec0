"""The element-wise passes of fastconv.nn's training step, one pass each, on fastconv's pool.

NumPy spends two passes and two temporaries on a ReLU with its mask (np.maximum, then x > 0),
two more on its gradient, and sums a bias gradient over (batch, space) at a few hundred MB/s
(axes that are not the last one). On a LeNet's (32, 16, 16, 16) activations that was 96 us for a
ReLU's forward and backward and 30 us for the bias gradient, against PyTorch's 21 and 8 (2-core
AMD EPYC Zen 4, 2 threads). Here each is one loop over the data.

Every value is computed by the same operations whatever the thread count: the element-wise
passes trivially, the channel sums each by one thread, in an order fixed by the shape, in double
precision.
"""
from cython cimport floating
from cython.parallel cimport prange

cdef extern from *:
    """
    /* The sum of n values in double precision: eight running sums (value i goes to sum i % 8,
       an order fixed by n alone), added in order at the end. One running sum would wait on
       each add's latency; eight independent ones vectorise. */
    #define FC_SUM_BODY                                                                     \
        double acc[8] = {0, 0, 0, 0, 0, 0, 0, 0}, total = 0;                                \
        ptrdiff_t i = 0;                                                                    \
        for (; i + 8 <= n; i += 8)                                                          \
            for (int j = 0; j < 8; j++) acc[j] += (double)a[i + j];                         \
        for (int j = 0; i + j < n; j++) acc[j] += (double)a[i + j];                         \
        for (int j = 0; j < 8; j++) total += acc[j];                                        \
        return total;
    static double fc_sum_f32(const float* a, ptrdiff_t n) { FC_SUM_BODY }
    static double fc_sum_f64(const double* a, ptrdiff_t n) { FC_SUM_BODY }

    /* The ReLU's passes as C conditional expressions, which compile to selects and vectorise
       (Cython's `a if c else b` is an if/else: a branch per value, mispredicted on activations,
       ~10 ns a value). */
    #define FC_RELU(NAME, T)                                                                \
        static void NAME##_forward(const T* x, T* y, unsigned char* m, ptrdiff_t n) {       \
            for (ptrdiff_t i = 0; i < n; i++) {                                             \
                const T v = x[i];                                                           \
                m[i] = v > 0;                                                               \
                y[i] = ((v > 0) | (v != v)) ? v : (T)0;                                     \
            }                                                                               \
        }                                                                                   \
        static void NAME##_backward(const T* g, const unsigned char* m, T* gx, ptrdiff_t n) { \
            for (ptrdiff_t i = 0; i < n; i++) {  /* g[i] read always: a select, no branch */ \
                const T v = g[i];                                                           \
                gx[i] = m[i] ? v : (T)0;                                                    \
            }                                                                               \
        }
    FC_RELU(fc_relu_f32, float)
    FC_RELU(fc_relu_f64, double)
    """
    double fc_sum_f32(const float* a, Py_ssize_t n) noexcept nogil
    double fc_sum_f64(const double* a, Py_ssize_t n) noexcept nogil
    void fc_relu_f32_forward(const float* x, float* y, unsigned char* m, Py_ssize_t n) noexcept nogil
    void fc_relu_f64_forward(const double* x, double* y, unsigned char* m,
                             Py_ssize_t n) noexcept nogil
    void fc_relu_f32_backward(const float* g, const unsigned char* m, float* gx,
                              Py_ssize_t n) noexcept nogil
    void fc_relu_f64_backward(const double* g, const unsigned char* m, double* gx,
                              Py_ssize_t n) noexcept nogil

cdef enum:
    CHUNK = 1 << 14         # values a work item of the element-wise passes takes


cdef inline double run_sum(const floating* a, Py_ssize_t n) noexcept nogil:
    if floating is float:
        return fc_sum_f32(a, n)
    else:
        return fc_sum_f64(a, n)


def relu_forward(const floating[::1] x, floating[::1] y, unsigned char[::1] mask,
                 int num_threads):
    """y = max(x, 0) as np.maximum gives it (NaN kept, -0.0 made +0.0), mask = x > 0."""
    cdef Py_ssize_t c, lo, n = x.shape[0]
    with nogil:
        for c in prange((n + CHUNK - 1) // CHUNK, schedule="static", num_threads=num_threads):
            lo = c * CHUNK
            if floating is float:
                fc_relu_f32_forward(&x[lo], &y[lo], &mask[lo], min(CHUNK, n - lo))
            else:
                fc_relu_f64_forward(&x[lo], &y[lo], &mask[lo], min(CHUNK, n - lo))


def relu_backward(const floating[::1] gy, const unsigned char[::1] mask, floating[::1] gx,
                  int num_threads):
    """gx = gy where mask, else +0.0 (a NaN or Inf of gy where the input was not positive is
    dropped, as np.where(mask, gy, 0) drops it)."""
    cdef Py_ssize_t c, lo, n = gy.shape[0]
    with nogil:
        for c in prange((n + CHUNK - 1) // CHUNK, schedule="static", num_threads=num_threads):
            lo = c * CHUNK
            if floating is float:
                fc_relu_f32_backward(&gy[lo], &mask[lo], &gx[lo], min(CHUNK, n - lo))
            else:
                fc_relu_f64_backward(&gy[lo], &mask[lo], &gx[lo], min(CHUNK, n - lo))


def channel_sums(const floating[::1] a, floating[::1] out, Py_ssize_t N, Py_ssize_t C,
                 Py_ssize_t S, bint accumulate, int num_threads):
    """out[c] (+)= sum over n < N and s < S of a[(n * C + c) * S + s]: a bias's gradient, from
    the output gradient (N, C, spatial...) or (N, C) with S = 1."""
    cdef Py_ssize_t c, n
    cdef double total
    with nogil:
        for c in prange(C, schedule="static", num_threads=num_threads):
            total = 0
            for n in range(N):
                total = total + run_sum(&a[0] + (n * C + c) * S, S)
            if accumulate:
                out[c] = <floating>(out[c] + total)
            else:
                out[c] = <floating>total
