"""Autotuning's records: the measured time of every algorithm per problem, in memory and on disk.

``set_autotune(True)`` makes ``algorithm="auto"`` tune; ``algorithm="tune"`` does it for one call.
The first call of a problem key -- (op, shapes, dtype, stride, padding, dilation, groups, the thread
count the call runs on, CPU model, fastconv version) -- times each algorithm that applies within
the workspace limit, and the call runs the fastest. The times are kept in memory and merged into
``autotune.json`` in the cache directory (see _cachefiles: written atomically under a file lock,
so concurrent processes each add their keys; an unreadable or stale file is ignored with a
warning), where later processes find them.

This module is the data below the registry: the switch, the keys, the records and the file. The
timing itself (what is run, how often, what is pruned) is `_measure`, on the measuring floor above
the registry, which the registry reaches through the hook `_measure` registers with it.
"""
import json
import math
import os
import threading

from . import _cachefiles, _config
from ._validate import check_bool

FILE_NAME = "autotune.json"

_enabled = False
_lock = threading.RLock()
_memory = {}            # key -> {algorithm: best seconds, or None when not timed}
_disk_loaded = None     # the path whose entries _memory holds, or None


def set_autotune(enabled=True):
    """Make ``algorithm="auto"`` time the applicable algorithms on the first call of each problem
    and use the fastest from then on (results kept in memory and in the cache directory)."""
    global _enabled
    _enabled = check_bool(enabled, "enabled")


def get_autotune():
    """Whether ``algorithm="auto"`` autotunes."""
    return _enabled


def path():
    return os.path.join(_cachefiles.cache_dir(), FILE_NAME)


def clear_autotune_cache(*, disk=False):
    """Forget the timings held in memory (the next tuned call reads the cache file again); with
    ``disk=True`` also delete the cache file."""
    global _disk_loaded
    with _lock:
        _memory.clear()
        _disk_loaded = None
        if disk:
            try:
                with _cachefiles.locked(path()):
                    os.unlink(path())
            except FileNotFoundError:
                pass
            except OSError as exc:      # the directory is a file, or cannot be created
                import warnings
                warnings.warn(f"fastconv: could not delete the autotune cache {path()} ({exc})",
                              _cachefiles.CacheWarning, stacklevel=2)


def call_threads(spec):
    """The thread count the call will run on (small problems run on one; see _config)."""
    return 1 if _config.work(spec) < _config.SMALL_PROBLEM_FLOPS else _config.get_num_threads()


def key(spec, op):
    """The problem key as a string (JSON, so it is also the file's key)."""
    x, w, stride, dilation, lo, hi, groups, dtype = spec.key()
    return json.dumps([op, list(x), list(w), list(stride), list(dilation), list(lo), list(hi),
                       groups, dtype, call_threads(spec), _cachefiles.cpu_model(),
                       _cachefiles.fastconv_version()], separators=(",", ":"))


def _valid_entries(data):
    entries = data.get("entries") if data else None
    if not isinstance(entries, dict):
        return {}
    good = {}
    for k, record in entries.items():
        if isinstance(k, str) and isinstance(record, dict) and all(
                isinstance(name, str) and (v is None or _cachefiles.valid_seconds(v))
                for name, v in record.items()):
            good[k] = {name: (None if v is None else float(v)) for name, v in record.items()}
    return good


def _load_disk():
    global _disk_loaded
    p = path()
    if _disk_loaded != p:
        data = _cachefiles.read(p, "autotune cache")
        for k, record in _valid_entries(data).items():
            _memory.setdefault(k, {}).update(record)
        _disk_loaded = p


def lookup(spec, op):
    """The recorded {algorithm: seconds or None} of this problem, or None if never tuned."""
    with _lock:
        _load_disk()
        record = _memory.get(key(spec, op))
        return dict(record) if record is not None else None


def save(entries):
    """Merge {key: {algorithm: seconds}} into the cache file (atomic, under a file lock)."""
    p = path()
    try:
        with _cachefiles.locked(p):
            current = _valid_entries(_cachefiles.read(p, "autotune cache"))
            for k, record in entries.items():
                current.setdefault(k, {}).update(record)
            _cachefiles.write_atomic(p, {"format": _cachefiles.FORMAT, "entries": current})
    except OSError as exc:      # a read-only home must not break the computation
        import warnings
        warnings.warn(f"fastconv: could not write the autotune cache {p} ({exc}); the "
                      f"timings are kept in memory only", _cachefiles.CacheWarning, stacklevel=3)


def add(spec, op, times):
    """Merge {algorithm: seconds or None (not timed)} into this problem's record in memory;
    returns the record as it now is."""
    k = key(spec, op)
    with _lock:
        _load_disk()
        _memory.setdefault(k, {}).update(times)
        return dict(_memory[k])


def forget_untimed(spec, op, names):
    """Drop the null (not timed) records of `names` for this problem, so that they are timed
    next; returns whether there was any."""
    with _lock:
        record = _memory.get(key(spec, op), {})
        dropped = [name for name in names if name in record and record[name] is None]
        for name in dropped:
            del record[name]
    return bool(dropped)


def fastest(record, names):
    """The fastest timed algorithm among `names` in a record, or None."""
    timed = [(record[n], n) for n in names if record and record.get(n) is not None
             and math.isfinite(record[n])]
    return min(timed)[1] if timed else None
