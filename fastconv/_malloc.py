"""Freed arrays' memory kept for the next ones (glibc only): a training step's arrays are the
same sizes step after step, and each fresh mapping costs a page fault per 4 KiB.

glibc serves an allocation of more than its mmap threshold (128 KiB at first) with a fresh
mapping, and gives the top of its heap back to the system once more than its trim threshold is
free there. Both adapt to a process's frees, but not reliably: in one process the same loop --
a ReLU layer's forward and backward on (32, 16, 999), 2 MB arrays -- ran at 170 us a step, in
another, started the same way, at 1.8 ms, every array faulted in afresh (2-core AMD EPYC Zen 4
VM; which of the two a process gets depends on what it freed before). Fixed thresholds end the
lottery: arrays under MMAP_THRESHOLD come from the heap and reuse freed memory, and up to
TRIM_THRESHOLD of free heap stays with the process.

Applied once, at import. ``FASTCONV_KEEP_FREED_MEMORY=0`` leaves glibc's defaults, and so do
glibc's own variables (``MALLOC_MMAP_THRESHOLD_``, ``MALLOC_TRIM_THRESHOLD_``): a process that
sets them has chosen. Elsewhere (macOS, musl, Windows) nothing is done.
"""
import ctypes
import os

MMAP_THRESHOLD = 32 << 20       # glibc's own ceiling for its adaptive threshold (64-bit)
TRIM_THRESHOLD = 128 << 20
_M_TRIM_THRESHOLD = -1          # mallopt's parameter numbers (malloc.h)
_M_MMAP_THRESHOLD = -3
ENV = "FASTCONV_KEEP_FREED_MEMORY"
_GLIBC_ENV = ("MALLOC_MMAP_THRESHOLD_", "MALLOC_TRIM_THRESHOLD_")


def keep_freed_memory():
    """Set the thresholds; True when they were set."""
    if os.environ.get(ENV, "1").strip().lower() in ("0", "false", "no", "off"):
        return False
    if any(name in os.environ for name in _GLIBC_ENV):
        return False
    try:
        libc = ctypes.CDLL(None)
        libc.gnu_get_libc_version       # glibc's: mallopt's parameters are glibc's
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes, mallopt.restype = (ctypes.c_int, ctypes.c_int), ctypes.c_int
    return bool(mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD)
                and mallopt(_M_TRIM_THRESHOLD, TRIM_THRESHOLD))


applied = keep_freed_memory()
