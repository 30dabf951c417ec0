"""fastconv._aligned: the buffers fastconv hands its kernels, and the arrays it returns, start on a
cache line (64 bytes) -- NumPy's own start 16 bytes past one on glibc x86-64."""
import numpy as np
import pytest

import fastconv
from fastconv import _aligned, _scratch
from fastconv._algorithms.fft._buffers import buffers

ALGORITHMS = [a for a in fastconv.algorithms() if a != "reference"]


@pytest.mark.parametrize("dtype", [np.float32, np.float64, np.complex64, np.complex128, np.uint8])
@pytest.mark.parametrize("shape", [5000, (3, 1500), (2, 3, 4, 5, 67), (4097,)])   # > 4096 bytes
def test_empty_starts_on_a_cache_line(shape, dtype):
    a = _aligned.empty(shape, dtype)
    expected = (shape,) if isinstance(shape, int) else shape
    assert a.shape == expected and a.dtype == dtype and a.flags.c_contiguous
    assert a.flags.writeable and a.ctypes.data % 64 == 0
    a[...] = 7
    assert np.all(a == 7)


def test_small_buffers_come_from_numpy_and_zero_sizes_work():
    assert _aligned.empty(10, np.float32).shape == (10,)      # at or under ALIGN_ABOVE: np.empty
    assert _aligned.empty((0, 3), np.float64).shape == (0, 3)
    assert _aligned.empty(np.int64(2000), np.float64).ctypes.data % 64 == 0


def test_shapes_and_dtypes_numpy_takes_are_taken_alike():
    """What np.empty accepts or refuses, empty does too (src/_memory.pyx): object dtypes come
    initialised (NumPy's own array), an array of sizes is a shape, sizes must be integers, and a
    size too large for memory is NumPy's ValueError, never a wrapped-around count."""
    a = _aligned.empty(1000, object)
    assert a.dtype == object and all(v is None for v in a[:5])
    b = _aligned.empty(np.array([50, 100]), np.float32)
    assert b.shape == (50, 100) and b.ctypes.data % 64 == 0
    c = _aligned.empty((10, 200), np.dtype(">f8"))
    assert c.dtype == np.dtype(">f8") and c.ctypes.data % 64 == 0
    with pytest.raises(TypeError):
        _aligned.empty((50.5, 100), np.float32)
    with pytest.raises(ValueError):
        _aligned.empty((-1, 3000), np.float32)
    for shape in [(2**40, 2**40), (2**31, 2**31, 8)]:
        with pytest.raises((ValueError, MemoryError)):
            _aligned.empty(shape, np.float64)


def test_zeros_are_zeros():
    z = _aligned.zeros((3, 700), np.float64)
    assert z.ctypes.data % 64 == 0 and not z.any()


def test_the_view_keeps_its_memory():
    a = _aligned.empty(10000, np.float32)
    a[:] = np.arange(10000)
    base = a.base
    del base
    np.testing.assert_array_equal(a, np.arange(10000, dtype=np.float32))


def test_scratch_and_fft_buffers_are_aligned():
    assert _scratch.empty("test.aligned", 3000, np.float32).ctypes.data % 64 == 0
    assert _scratch.empty("test.aligned", 5000, np.float32).ctypes.data % 64 == 0   # grown
    _scratch.release()
    assert buffers.get("test.aligned", (70, 70), np.complex64).ctypes.data % 64 == 0
    buffers.store.pop("test.aligned")


PROBLEMS = {    # each has a result of more than ALIGN_ABOVE bytes for every operation
    "dense": ((2, 8, 20, 20), (16, 8, 3, 3), dict(padding=1)),
    "strided": ((2, 8, 21, 21), (16, 8, 3, 3), dict(stride=2, padding=1)),
    "depthwise": ((2, 32, 16, 16), (32, 1, 3, 3), dict(padding=1, groups=32)),
    "pointwise": ((2, 32, 16, 16), (32, 32, 1, 1), {}),
    "1-D": ((2, 16, 300), (32, 16, 3), dict(padding=1)),
    "large kernel": ((1, 1, 64, 64), (1, 1, 11, 11), dict(padding=5)),
}


@pytest.mark.parametrize("name", list(PROBLEMS))
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_every_algorithms_results_start_on_a_cache_line(name, dtype):
    """Each algorithm's forward and input gradient, where they apply, return aligned arrays (the
    next layer's kernels read them; a kernel gradient goes to the optimizer), and every result
    equals the reference."""
    x_shape, w_shape, geometry = PROBLEMS[name]
    rng = np.random.default_rng(1)
    x = rng.standard_normal(x_shape).astype(dtype)
    w = rng.standard_normal(w_shape).astype(dtype)
    ref = fastconv.conv(x, w, algorithm="reference", **geometry)
    gy = rng.standard_normal(ref.shape).astype(dtype)
    refs = {"forward": ref,
            "grad_input": fastconv.conv_grad_input(gy, w, x.shape, algorithm="reference",
                                                   **geometry),
            "grad_kernel": fastconv.conv_grad_kernel(x, gy, w.shape, algorithm="reference",
                                                     **geometry)}
    ran = 0
    for algorithm in ALGORITHMS:
        calls = {"forward": lambda: fastconv.conv(x, w, algorithm=algorithm, **geometry),
                 "grad_input": lambda: fastconv.conv_grad_input(gy, w, x.shape,
                                                                algorithm=algorithm, **geometry),
                 "grad_kernel": lambda: fastconv.conv_grad_kernel(x, gy, w.shape,
                                                                  algorithm=algorithm,
                                                                  **geometry)}
        for op, call in calls.items():
            try:
                result = call()
            except fastconv.NotSupportedError:
                continue
            ran += 1
            tol = 1e-4 if dtype == np.float32 else 1e-10
            np.testing.assert_allclose(result, refs[op], rtol=tol, atol=tol * 10,
                                       err_msg=f"{algorithm} {op}")
            if op != "grad_kernel" and result.nbytes > _aligned.ALIGN_ABOVE:
                assert result.ctypes.data % 64 == 0, (algorithm, op)
    assert ran >= 6


def test_an_input_copied_for_the_call_starts_on_a_cache_line():
    """A strided or other-dtype input is copied once for the kernels; the copy is aligned and
    equal to the input; a contiguous input of the call's dtype is used as it is."""
    from fastconv._validate import lifted
    x = np.arange(2 * 3 * 40 * 40, dtype=np.float64).reshape(2, 3, 40, 40)
    strided = x[:, :, :, ::2]
    copy = lifted(strided, (2, 3, 1, 40, 20), np.dtype(np.float32))
    assert copy.dtype == np.float32 and copy.flags.c_contiguous and copy.ctypes.data % 64 == 0
    np.testing.assert_array_equal(copy.reshape(strided.shape), strided.astype(np.float32))
    same = lifted(x, (2, 3, 1, 40, 40), np.dtype(np.float64))
    assert np.shares_memory(same, x)
    odd = np.zeros(8 * x.size + 1, np.uint8)[1:].view(np.float64).reshape(x.shape)
    odd[...] = x                                    # values off their 8-byte boundary
    moved = lifted(odd, (2, 3, 1, 40, 40), np.dtype(np.float64))
    assert moved.flags.aligned and not np.shares_memory(moved, odd)
    np.testing.assert_array_equal(moved.reshape(x.shape), x)
