"""Autotuning: time every applicable algorithm once per problem, keep the winner, on disk too.

``set_autotune(True)`` makes ``algorithm="auto"`` tune; ``algorithm="tune"`` does it for one call.
The first call of a problem key -- (op, shapes, dtype, stride, padding, dilation, groups, the thread
count the call runs on, CPU model, fastconv version) -- times each algorithm that applies within
the workspace limit, and the call runs the fastest. The times are kept in memory and merged into
``autotune.json`` in the cache directory (see _cachefiles: written atomically under a file lock,
so concurrent processes each add their keys; an unreadable or stale file is ignored with a
warning), where later processes find them.

What is timed: the same entry points the call uses, on random arrays of the call's shapes and
dtype and on a copy of the call's kernel (its values decide whether weight-dependent algorithms
such as separable apply); the caller's arrays are never passed to anything but the call itself,
so tuning cannot write into them. Each algorithm runs once untimed, then in interleaved rounds,
best of its repeats; those within CLOSE of the fastest then run as many rounds again among
themselves (a shared machine's noise otherwise decides near-ties). Algorithms the cost model
predicts PRUNE times slower than the best prediction are not timed (recorded as null): the
oracle would take minutes on a layer and cannot win. An algorithm that becomes applicable later (a separable kernel under a key first tuned with
a general one; a larger workspace limit) is timed when it first applies, and added.
"""
import json
import math
import os
import threading
import time

import numpy as np

from . import _cachefiles, _config

FILE_NAME = "autotune.json"
PRUNE = 10.0            # not timed when predicted this many times slower than the best prediction
ROUNDS = 5
CLOSE = 1.15            # algorithms within this of the fastest are timed again, among themselves
BUDGET_S = 0.1          # timing per algorithm beyond the warm-up, at least one repeat a round

_enabled = False
_lock = threading.RLock()
_memory = {}            # key -> {algorithm: best seconds, or None when not timed}
_disk_loaded = None     # the path whose entries _memory holds, or None


def set_autotune(enabled=True):
    """Make ``algorithm="auto"`` time the applicable algorithms on the first call of each problem
    and use the fastest from then on (results kept in memory and in the cache directory)."""
    global _enabled
    if not isinstance(enabled, (bool, np.bool_)):
        raise TypeError(f"enabled must be a bool, got {enabled!r} ({type(enabled).__name__})")
    _enabled = bool(enabled)


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
    return 1 if spec.flops < _config.SMALL_PROBLEM_FLOPS else _config.get_num_threads()


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


def _inputs(spec, op, w):
    """Random arrays of the call's shapes, and a private copy of the kernel."""
    rng = np.random.default_rng(0)

    def random(shape):
        return rng.standard_normal(shape).astype(spec.dtype)
    if op == "forward":
        return random(spec.x_shape), np.array(w, spec.dtype) if w is not None else random(spec.w_shape)
    if op == "grad_input":
        return random(spec.y_shape), np.array(w, spec.dtype) if w is not None else random(spec.w_shape)
    return random(spec.x_shape), random(spec.y_shape)


def time_algorithms(spec, op, impls, w=None, give_up=None, keep=()):
    """{name: best seconds} of running each of `impls` ({name: impl}) on `spec`, interleaved.
    With `give_up`, an algorithm (but those in `keep`) whose first call took that many times the
    fastest first call is not run again (its first time is its record)."""
    a, b = _inputs(spec, op, w)
    fns = {name: (lambda impl=impl: getattr(impl, op)(spec, a, b)) for name, impl in impls.items()}
    best, reps = {}, {}

    def rounds(names, count):
        for _ in range(count):
            for name in names:
                for _ in range(reps[name]):
                    start = time.perf_counter()
                    fns[name]()
                    best[name] = min(best[name], time.perf_counter() - start)
    with _config.threads_for(spec.flops):
        for name, fn in fns.items():
            start = time.perf_counter()
            fn()
            best[name] = time.perf_counter() - start
            reps[name] = max(1, min(10, int(BUDGET_S / ROUNDS / max(best[name], 1e-6))))
        first = min(best.values(), default=0.0)
        rounds([n for n in fns if give_up is None or n in keep or best[n] <= give_up * first],
               ROUNDS)
        if best:        # near-ties get more rounds among themselves: noise decides them otherwise
            floor = min(best.values())
            rounds([n for n, t in best.items() if t <= CLOSE * floor], ROUNDS if len(best) > 1 else 0)
    return best


def tune(spec, op, candidates, w=None, *, floor=None, give_up=None, keep=(), persist=True):
    """The fastest of `candidates` [(predicted seconds, name, impl)], timing those not yet timed
    for this problem (and recording them, in the cache file too with `persist`); returns
    (name, {name: seconds or None}). Candidates predicted above PRUNE x `floor` (default: the
    best prediction) are not timed, but those in `keep`; `give_up` is time_algorithms'."""
    k = key(spec, op)
    with _lock:
        _load_disk()
        record = dict(_memory.get(k, {}))
    missing = [(p, name, impl) for p, name, impl in candidates if name not in record]
    if missing:
        floor = min(p for p, _, _ in candidates) if floor is None else floor
        timed = {name: impl for p, name, impl in missing if p <= PRUNE * floor or name in keep}
        new = {name: None for _, name, _ in missing}
        new.update(time_algorithms(spec, op, timed, w, give_up, keep))
        with _lock:
            _memory.setdefault(k, {}).update(new)
            record = dict(_memory[k])
        if persist:
            save({k: new})
    winner = fastest(record, [name for _, name, _ in candidates])
    if winner is None:       # only pruned ones were recorded, and the best prediction is gone
        if _forget(k, candidates):
            return tune(spec, op, candidates, w, floor=floor, give_up=give_up, keep=keep,
                        persist=persist)
        return candidates[0][1], record
    return winner, record


def _forget(k, candidates):
    """Drop the null records of `candidates` so that they are timed (returns whether any was)."""
    with _lock:
        record = _memory.get(k, {})
        names = [name for _, name, _ in candidates if name in record and record[name] is None]
        for name in names:
            del record[name]
    return bool(names)


def fastest(record, names):
    """The fastest timed algorithm among `names` in a record, or None."""
    timed = [(record[n], n) for n in names if record and record.get(n) is not None
             and math.isfinite(record[n])]
    return min(timed)[1] if timed else None
