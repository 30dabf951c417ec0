"""Scratch arrays kept between calls, per Python thread (fresh arrays cost a page fault per 4 KiB,
which measured as a third of an fft call's time), and the kernel spectra last computed."""
import math
import threading

import numpy as np

from ... import _aligned

RETAIN_BYTES = 64 * 2**20         # buffers kept between calls, per thread (Plan.retain_bytes)


class Buffers(threading.local):
    """Named scratch arrays of this thread, reused by the next call (no page faults)."""

    def __init__(self):
        self.store = {}
        self.kernel = None      # (key, kernel, spectra) of _kernel.spectra

    def get(self, name, shape, dtype):
        nbytes = math.prod(shape) * np.dtype(dtype).itemsize
        raw = self.store.get(name)
        if raw is None or raw.nbytes < nbytes:
            raw = self.store[name] = _aligned.empty(max(nbytes, 1), np.uint8)
        return raw[:nbytes].view(dtype).reshape(shape)

    def trim(self, retain_bytes=RETAIN_BYTES):
        """Drop every buffer (and the kept kernel spectra) when they exceed `retain_bytes`."""
        if sum(raw.nbytes for raw in self.store.values()) > retain_bytes:
            self.store.clear()
            self.kernel = None


buffers = Buffers()
