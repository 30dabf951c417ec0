"""C = op(A) @ op(B) (+ C) on fastconv's own OpenMP pool, for fastconv.nn's linear layers.

NumPy's matmul runs on its BLAS's own thread pool. Beside fastconv's OpenMP kernels that is two
pools on the same cores, and each spins after its work: OpenBLAS's workers for about 2^28 cycles
(its THREAD_TIMEOUT, ~0.1 s), so the next convolution's OpenMP threads share their cores with
them. Measured on a 2-core AMD EPYC (Zen 4): a CIFAR-sized network's training step took 182 ms
on two threads against 100 ms on one, and 73 ms once its linear layers stopped waking the BLAS
pool. Here the product is cut into blocks of BLOCK rows (or columns, whichever there are more
of) of C, each one single-threaded BLAS call in an OpenMP thread: one pool for everything. The
blocks depend on the shapes only, and each element of C is one BLAS dot product over the whole
inner dimension, so the result does not change with the thread count.
"""
from cython cimport floating
from cython.parallel cimport prange

from _blas cimport gemm

cdef enum:
    BLOCK = 64


def matmul(const floating[:, ::1] a, const floating[:, ::1] b, floating[:, ::1] c,
           bint trans_a, bint trans_b, bint accumulate, int num_threads):
    """c = op(a) @ op(b), or c += op(a) @ op(b) with `accumulate`; op transposes when asked.

    a is stored (M, K), or (K, M) with trans_a; b (K, N), or (N, K) with trans_b; c (M, N)."""
    cdef Py_ssize_t M = c.shape[0], N = c.shape[1]
    cdef Py_ssize_t K = a.shape[0] if trans_a else a.shape[1]
    cdef Py_ssize_t lda = a.shape[1], ldb = b.shape[1], ldc = N
    cdef Py_ssize_t blocks, i, lo, hi
    cdef floating beta = 1 if accumulate else 0
    cdef bint by_rows = M >= N
    if M == 0 or N == 0:
        return
    if K == 0:
        if not accumulate:
            c[:, :] = 0
        return
    blocks = ((M if by_rows else N) + BLOCK - 1) // BLOCK
    with nogil:
        for i in prange(blocks, schedule="static", num_threads=num_threads):
            lo = i * BLOCK
            if by_rows:
                hi = min(lo + BLOCK, M)
                gemm(trans_a, trans_b, <int>(hi - lo), <int>N, <int>K, <floating>1,
                     &a[0, 0] + (lo if trans_a else lo * lda), <int>lda, &b[0, 0], <int>ldb,
                     beta, &c[0, 0] + lo * ldc, <int>ldc)
            else:
                hi = min(lo + BLOCK, N)
                gemm(trans_a, trans_b, <int>M, <int>(hi - lo), <int>K, <floating>1,
                     &a[0, 0], <int>lda, &b[0, 0] + (lo * ldb if trans_b else lo), <int>ldb,
                     beta, &c[0, 0] + lo, <int>ldc)
