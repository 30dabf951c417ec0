"""Scratch arrays reused from one call to the next, one set per Python thread.

A large NumPy allocation is a fresh memory mapping: the operating system faults in and zeroes
every page on first touch, which for the 10-40 MB that Winograd's transformed kernel and tiles
take costs as much as the convolution's own arithmetic. Each thread keeps one buffer per named
slot and dtype, grown to the largest size asked for, and hands out views of it. A buffer is kept
only up to the workspace limit (and RETAIN_BYTES).

A buffer larger than RETAIN_BYTES is not kept: it is mapped for the call and freed after it (its
page faults then cost little next to the work it serves), so that a process which ran one large
convolution does not hold that memory for good. At most about RETAIN_BYTES per slot stays
mapped per thread.

A view is valid until the same thread asks for the same slot again. Algorithms take their slots
once per call, never hand them to the caller, and never run another algorithm while they hold
one; threads (Python's, Dask's) each have their own.
"""
import threading

from . import _aligned, _config

RETAIN_BYTES = 64 * 2**20
_local = threading.local()


def empty(slot, n, dtype):
    """An uninitialised 1-D array of `n` values of `dtype` from this thread's buffer `slot`."""
    try:
        buffers = _local.buffers
    except AttributeError:
        buffers = _local.buffers = {}
    key = (slot, dtype)
    buffer = buffers.get(key)
    if buffer is not None and n <= buffer.size:
        return buffer[:n]
    buffers.pop(key, None)                  # free the old one before the new one is mapped
    buffer = _aligned.empty(max(int(n), 1), dtype)
    if buffer.nbytes <= min(RETAIN_BYTES, _config.get_workspace_limit()):
        buffers[key] = buffer
    return buffer[:n]


def release():
    """Drop this thread's buffers."""
    _local.buffers = {}


class PlanWorkspace:
    """For a plan whose workspace is `fixed` values plus `per_thread` values for each of its
    `threads` threads (winograd's 2-D and 1-D plans), the per-thread part in this module's slot
    `SCRATCH`."""

    SCRATCH = None

    @property
    def workspace_elements(self):
        return self.fixed + self.threads * self.per_thread

    def fits_one_thread(self, spec):
        return (self.fixed + self.per_thread) * spec.dtype.itemsize <= _config.get_workspace_limit()

    def work(self, dtype):
        return empty(self.SCRATCH, self.threads * self.per_thread, dtype)
