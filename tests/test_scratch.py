"""fastconv._scratch: per-thread buffers reused from call to call."""
import threading

import numpy as np

import fastconv
from fastconv import _scratch


def test_sizes_dtypes_and_reuse():
    a = _scratch.empty("test.a", 100, np.float32)
    assert a.shape == (100,) and a.dtype == np.float32
    b = _scratch.empty("test.a", 50, np.float32)
    assert b.shape == (50,) and b.dtype == np.float32
    assert np.shares_memory(a, b)                     # the same buffer, handed out again
    assert not np.shares_memory(a, _scratch.empty("test.a", 10, np.float64))   # another dtype
    c = _scratch.empty("test.b", 10, np.float32)
    assert not np.shares_memory(a, c)                 # another slot, another buffer
    assert _scratch.empty("test.a", 0, np.float32).shape == (0,)
    z = _scratch.empty("test.a", 1000, np.float32)    # grows
    assert z.shape == (1000,) and not np.shares_memory(a, z)
    _scratch.release()


def test_threads_have_their_own_buffers():
    mine = _scratch.empty("test.t", 64, np.float64)
    theirs = []
    thread = threading.Thread(target=lambda: theirs.append(_scratch.empty("test.t", 64,
                                                                           np.float64)))
    thread.start()
    thread.join()
    assert not np.shares_memory(mine, theirs[0])
    _scratch.release()


def test_a_buffer_above_the_workspace_limit_is_not_kept(restore_settings):
    fastconv.set_workspace_limit(2**12)
    big = _scratch.empty("test.limit", 2**10, np.float64)      # 8 KiB
    assert not np.shares_memory(big, _scratch.empty("test.limit", 2**10, np.float64))
    _scratch.release()


def test_a_buffer_above_the_retained_size_is_not_kept(monkeypatch):
    monkeypatch.setattr(_scratch, "RETAIN_BYTES", 1024)
    big = _scratch.empty("test.big", 1024, np.float64)
    assert big.shape == (1024,)
    assert not np.shares_memory(big, _scratch.empty("test.big", 1024, np.float64))
    small = _scratch.empty("test.big", 16, np.float64)
    assert np.shares_memory(small, _scratch.empty("test.big", 16, np.float64))
    _scratch.release()
