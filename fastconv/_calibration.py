"""Machine constants for the cost models: shipped defaults, or calibrated on this machine.

Each algorithm's ``cost(spec, op)`` counts its operations and memory traffic and weighs them with
constants fitted on the development machine (a 2-core AVX-512 Xeon, see each module). On another
machine the algorithms' speeds relative to one another shift, and ``fastconv.calibrate()``
(`_calibrate`, the measuring floor) fits per (algorithm, operation, dtype) a line through which
the chooser reads each model: ``predicted = scale * cost + overhead`` (`factor`).

This module is the data only, below the registry: the calibration in use, the shipped lines, and
the kind of a problem that selects a line. It measures nothing and imports nothing that computes.

The constants are stored in ``calibration.json`` in the cache directory (see _cachefiles) and
loaded lazily at the first choice; a file from another fastconv version or CPU, or one that cannot
be parsed, is ignored with a warning and the shipped defaults apply: the lines calibrated on the
development machines, per CPU vendor (`shipped`): an Intel Xeon's for Intel processors
(`_calibration_shipped_intel.py`), an AMD EPYC's for every other (`_calibration_shipped.py`).
Their AVX-512 kernels differ the most: two 512-bit FMA units a core on the Xeon, 256-bit halves
on the EPYC (Zen 4), so blocked's register tiles run twice as fast per clock on the one and
direct's loads do not; the EPYC's lines put blocked at 1.7x its time on the Xeon, and "auto"
took direct for the TCN's layers at 1.4x blocked's time. Whoever keeps choices derived from the
calibration (the registry's rankings, the safety net's winners) registers with `on_change` and is
told when it changes (`reset`, `use`).
"""
import os
import threading

from . import _cachefiles, _calibration_shipped, _calibration_shipped_intel, _kernel_level

FILE_NAME = "calibration.json"
ONE_D = "/1d"
SINGLE = "/single"

_lock = threading.Lock()
_loaded = False
_data = None            # the calibration in use (a dict as stored), or None: shipped defaults
_listeners = []         # called with no argument when the calibration in use changes


def path():
    return os.path.join(_cachefiles.cache_dir(), FILE_NAME)


def machine():
    """What a calibration file must have been made on to be used here."""
    return {"cpu": _cachefiles.cpu_model(), "fastconv": _cachefiles.fastconv_version(),
            "kernel_level": _kernel_level.current()}


def valid_line(line):
    """A (scale, overhead) line is usable: scale finite and > 0, overhead finite and >= 0."""
    return (isinstance(line, (list, tuple)) and len(line) == 2
            and _cachefiles.valid_seconds(line[0]) and _cachefiles.valid_seconds(line[1], zero=True))


def _valid_factors(factors):
    """{algorithm: {op: {key: line}}} keeping only well-formed entries with valid lines."""
    if not isinstance(factors, dict):
        return None
    good = {}
    for name, ops in factors.items():
        for op, lines in (ops.items() if isinstance(ops, dict) else ()):
            for key, line in (lines.items() if isinstance(lines, dict) else ()):
                if isinstance(key, str) and valid_line(line):
                    good.setdefault(name, {}).setdefault(op, {})[key] = [float(v) for v in line]
    return good


def _load():
    import warnings
    data = _cachefiles.read(path(), "calibration")
    if data is None:
        return None
    here = machine()
    factors = _valid_factors(data.get("factors"))
    if any(data.get(k) != v for k, v in here.items()) or factors is None:
        warnings.warn(f"fastconv: ignoring the calibration file {path()}: it was made for "
                      f"{data.get('cpu')!r} at kernel level {data.get('kernel_level')!r}, fastconv "
                      f"{data.get('fastconv')!r} (this is {here['cpu']!r} at "
                      f"{here['kernel_level']!r}, fastconv {here['fastconv']!r}); run "
                      f"fastconv.calibrate() again", _cachefiles.CacheWarning, stacklevel=3)
        return None
    if factors != data["factors"]:
        warnings.warn(f"fastconv: the calibration file {path()} has malformed or out-of-range "
                      f"entries (a scale must be finite and > 0, an overhead finite and >= 0); "
                      f"they are ignored", _cachefiles.CacheWarning, stacklevel=3)
    return {**data, "factors": factors}


def current():
    """The calibration in use (loaded from the cache directory at the first call), or None."""
    global _loaded, _data
    if not _loaded:
        with _lock:
            if not _loaded:
                _data = _load()
                _loaded = True
    return _data


def kind(spec):
    """The calibration's kind of a problem: "/1d", "/single" (one input and one output channel
    per group) or "" (the pooled fit only)."""
    if spec.ndim == 1:
        return ONE_D
    if spec.in_channels == spec.groups and spec.out_channels == spec.groups:
        return SINGLE
    return ""


def factor(name, op, dtype_name, problem_kind=""):
    """Calibrated (scale, overhead seconds) of an algorithm's cost model: its prediction on this
    machine is scale * cost + overhead; where this machine's calibration has no (valid) line,
    the line shipped with fastconv for this kernel level (_calibration_shipped), and (1, 0) where
    neither has one. A problem of a kind (see kind()) uses that kind's line where there is one."""
    data = current()
    tables = ([] if data is None else [data["factors"]]) + [shipped()]
    keys = ([dtype_name + problem_kind] if problem_kind else []) + [dtype_name]
    for factors in tables:
        for key in keys:
            line = factors.get(name, {}).get(op, {}).get(key)
            if line is not None:
                return float(line[0]), float(line[1])
    return 1.0, 0.0


SHIPPED = {"intel": _calibration_shipped_intel, "": _calibration_shipped}
_vendor = None


def shipped_module():
    """The shipped calibration of this CPU's vendor (module; its docstring says where it was
    measured): Intel's for Intel processors, the AMD EPYC's for every other."""
    global _vendor
    if _vendor is None:
        _vendor = _cachefiles.cpu_vendor()
    return SHIPPED.get(_vendor, _calibration_shipped)


def shipped():
    """The shipped lines for this process's kernel level (those of the nearest level measured)."""
    table = shipped_module().FACTORS
    level = _kernel_level.current()
    if level not in table:
        level = next(name for name in ("avx2", "avx512", "baseline") if name in table)
    return table[level]


def on_change(callback):
    """Call `callback()` whenever the calibration in use changes (choices made from it go stale)."""
    _listeners.append(callback)


def _changed():
    for callback in _listeners:
        callback()


def reset():
    """Forget the loaded calibration: the next choice reads the cache directory again."""
    global _loaded, _data
    with _lock:
        _loaded, _data = False, None
    _changed()


def use(data):
    """Use `data` (a calibration as `fastconv.calibrate()` stores it) from now on."""
    global _loaded, _data
    with _lock:
        _data, _loaded = data, True
    _changed()
