"""Halo and stride geometry for windowed operations on chunked arrays.

One spatial axis at a time. A windowed operation (convolution, pooling, a network) makes output
``o`` from the input window ``[o * stride - low, o * stride - low + extent)``; positions outside
``[0, n)`` are the operation's padding. An output block is the run of outputs whose *anchor*
``o * stride + phase`` falls in one input chunk, so every input chunk boundary is moved to the
nearest ``t * stride + phase`` (rechunked: each chunk's first output starts on a stride multiple).
A block then reads its chunk plus a halo of ``left`` elements from the chunk before and
``right`` from the chunk after, with ``left + right >= extent - 1``: the halo is split by the
padding, as for ``padding="same"``. Chunks are merged until none is smaller than its halo, so
any chunking works. The padding itself applies only at the true ends of the axis: a block knows
where it lies and pads (or is given padding) only where it touches position 0 or n.

The transposed operation (``conv_transpose``) scatters instead: input ``i`` adds into outputs
``[i * stride - low, i * stride - low + extent)``. Its output blocks start at ``a * stride - low``
for the input chunk boundaries ``a``, and a block needs ``(extent - 1) // stride`` inputs
before its chunk and none after.
"""
from dataclasses import dataclass
import threading

import numpy as np

import dask.array as da


@dataclass(frozen=True)
class AxisPlan:
    """How one spatial axis is cut: input chunks, halo, and per block its outputs and inputs.

    ``blocks[j]`` is ``(out_start, out_stop, in_start, in_stop)``: the outputs block j makes
    and the input positions (halo included) it holds, in global coordinates."""
    in_chunks: tuple
    left: int
    right: int
    blocks: tuple

    @property
    def out_chunks(self):
        return tuple(b - a for a, b, _, _ in self.blocks)


def _boundaries(chunks):
    return np.cumsum(chunks)[:-1].tolist()


def gather_plan(n, chunks, *, stride, low, extent, outputs, left=None, right=None, phase=None):
    """The AxisPlan of a windowed operation (output o reads [o * stride - low, ... + extent)).

    By default the halo is split as the padding splits the window: ``left = min(low, extent -
    1)``, ``right = extent - 1 - left``, and output o is anchored at ``o * stride - low + left``
    (the first input its block holds is the start of its first window). `left`, `right` and
    `phase` override that (the network helper anchors blocks on stride multiples)."""
    if left is None:
        left = min(low, extent - 1)
        right = extent - 1 - left
        phase = left - low
    smallest = max(left, right, 1)
    starts, cuts = [0], [0]          # input boundaries and the first output of each block
    for b in _boundaries(chunks):
        t = int(np.floor((b - phase) / stride + 0.5))
        start = t * stride + phase
        if (cuts[-1] < t < outputs and start - starts[-1] >= smallest and n - start >= smallest):
            starts.append(start)
            cuts.append(t)
    starts.append(n)
    cuts.append(outputs)
    blocks = []
    last = len(starts) - 2
    for j in range(last + 1):
        in_start = 0 if j == 0 else starts[j] - left
        in_stop = n if j == last else starts[j + 1] + right
        blocks.append((cuts[j], cuts[j + 1], in_start, in_stop))
    return AxisPlan(tuple(np.diff(starts).tolist()), left, right, tuple(blocks))


def scatter_plan(n_in, chunks, *, stride, low, extent, n_out):
    """The AxisPlan of a transposed operation: input i adds into outputs [i * stride - low, ...
    + extent). Output blocks start at ``a * stride - low`` for the kept input boundaries a;
    each block holds ``(extent - 1) // stride`` inputs of the chunk before it."""
    left = (extent - 1) // stride
    smallest = max(left, 1)
    starts, cuts = [0], [0]
    for a in _boundaries(chunks):
        out = a * stride - low
        if (cuts[-1] < out < n_out and a - starts[-1] >= smallest and n_in - a >= smallest):
            starts.append(a)
            cuts.append(out)
    starts.append(n_in)
    cuts.append(n_out)
    blocks = []
    for j in range(len(starts) - 1):
        in_start = 0 if j == 0 else starts[j] - left
        blocks.append((cuts[j], cuts[j + 1], in_start, starts[j + 1]))
    return AxisPlan(tuple(np.diff(starts).tolist()), left, 0, tuple(blocks))


def window_crop(block, stride, low, extent, n):
    """For one axis of a gather block: (data_start, data_stop, pad_low, pad_high), the slice of
    the block (block-local indices) that its windows read, and the zeros each side beyond it.
    Non-zero padding only where the block touches a true end of the axis."""
    o0, o1, in_start, in_stop = block
    first = o0 * stride - low
    last = (o1 - 1) * stride - low + extent
    lo, hi = min(max(first, in_start), in_stop), max(min(last, in_stop), in_start)
    lo = min(lo, hi)
    if (first < lo and in_start != 0) or (last > hi and in_stop != n):
        raise AssertionError(f"block {block} lacks data its windows read")      # a plan bug
    return lo - in_start, hi - in_start, lo - first, last - hi


# --- arrays ------------------------------------------------------------------------------------

def as_dask(x, name="x"):
    """x itself when it is a dask array; else a TypeError saying what to pass."""
    if not isinstance(x, da.Array):
        raise TypeError(f"{name} must be a dask array (dask.array.Array), got "
                        f"{type(x).__module__}.{type(x).__name__}; wrap a NumPy array with "
                        f"dask.array.from_array({name}, chunks=...), or call the NumPy function "
                        "in fastconv for an array that fits in memory")
    return x


def check_numeric(x, name="x"):
    if x.dtype.kind not in "biuf":
        raise TypeError(f"{name} must hold real numbers (bool, int or float), got dtype "
                        f"{x.dtype}")


def halo_array(x, plans, first_spatial=2):
    """x rechunked to the plans' input chunks (channels whole) and overlapped by their halos.

    Block (n, 0, j1, j2, ...) of the result holds the inputs of block j1, j2, ... of the plans."""
    chunks = {1: -1}
    depth = {}
    for i, plan in enumerate(plans):
        axis = first_spatial + i
        chunks[axis] = plan.in_chunks
        if (plan.left or plan.right) and len(plan.in_chunks) > 1:   # one chunk: no neighbours
            depth[axis] = (plan.left, plan.right)
    x = x.rechunk(chunks)
    if not depth:
        return x
    return da.overlap.overlap(x, depth=depth, boundary="none", allow_rechunk=False)


# --- threads inside a task ---------------------------------------------------------------------

def task_threads(threads=None):
    """The threads one task's fastconv call may use.

    `threads` given: that. Otherwise, on the main thread (dask's synchronous scheduler, or a
    plain call) fastconv's own setting; on any other thread -- a pool thread of the threaded
    scheduler, or a distributed worker's thread -- one. Dask runs one task per pool thread and
    sizes its pools to the cores (threads per worker x workers), so one fastconv thread per task
    keeps the total at the pool's size; a worker given several cores per thread says so with
    ``threads=``."""
    import fastconv
    if threads is not None:
        return threads
    if threading.current_thread() is threading.main_thread():
        return fastconv.get_num_threads()
    return 1


def limited(threads):
    """The context that holds this task's fastconv calls to `threads` (this thread only)."""
    from fastconv import _config
    return _config.thread_limit(task_threads(threads))


def check_threads(threads):
    if threads is None:
        return None
    from fastconv._validate import positive_int
    return positive_int(threads, "threads")
