"""Arrays whose data starts on a cache line: every buffer fastconv hands its kernels.

NumPy's arrays start where the C allocator puts them, 16 bytes past a cache line's start on
glibc x86-64 (16 or 48 mod 64, never 0, on the development Xeon). A kernel that streams a packed
or staged buffer with 64-byte vector loads then reads two cache lines for every vector, and a
32-byte one for every other vector. Measured on the 2-core Xeon at AVX-512, 2 threads: the
depthwise kernel gradient of ConvNeXt's 96-channel 7x7 at batch 8 took 2.12-2.23 ms with its
scratch at 16, 32 or 48 bytes past a line, 1.43-1.49 ms on the line; the same kernel went from
one to the other as earlier allocations moved the heap, which read as noise. Every allocation of
the process aligned (a preloaded malloc, bench/networks_vs_torch.py) took fastconv's layers 10%
less time at the median, PyTorch's (whose allocator aligns already) 2%.

Buffers of ALIGN_ABOVE bytes or less come straight from NumPy: the alignment costs more than the
split loads of a buffer that small.
"""
from . import _memory

ALIGN = 64              # bytes: a cache line, one AVX-512 vector
ALIGN_ABOVE = 4096


def empty(shape, dtype):
    """An uninitialised C-contiguous array of `shape` and `dtype` whose data starts on an
    ALIGN-byte boundary (when larger than ALIGN_ABOVE bytes). A view into a byte buffer that
    it keeps alive (``.base``). One call into C (src/_memory.pyx): after a large kernel has
    flushed the caches, the same steps in Python took 15-18 us, this 10 and np.empty 6-8."""
    return _memory.empty_on_line(shape, dtype, ALIGN, ALIGN_ABOVE)


def zeros(shape, dtype):
    """`empty`, filled with zeros."""
    out = empty(shape, dtype)
    out.fill(0)
    return out
