"""The user cache directory and its small JSON files: read leniently, written atomically.

Location (platformdirs' user cache directory, without the dependency): ``FASTCONV_CACHE_DIR`` if
set; else ``%LOCALAPPDATA%\\fastconv\\Cache`` on Windows, ``~/Library/Caches/fastconv`` on macOS,
``$XDG_CACHE_HOME/fastconv`` or ``~/.cache/fastconv`` elsewhere.

A file is rewritten by merging under an exclusive lock on a sibling ``.lock`` file (``fcntl.flock``
where it exists, ``msvcrt.locking`` on Windows, no lock elsewhere), writing a temporary file in the
same directory and ``os.replace``-ing it over the old one: readers see the old or the new file,
never half of one, and concurrent writers each add their entries. A file that cannot be read or
parsed, or that was written by another format or machine, is ignored with a warning.
"""
import contextlib
import json
import os
import platform
import sys
import tempfile
import warnings

FORMAT = 1
# the files fastconv keeps in the cache directory (_calibration.FILE_NAME, _autotune.FILE_NAME);
# each may have a ".lock" sibling and, after an interrupted write, "<name>.<random>.tmp" leftovers
FILE_NAMES = ("calibration.json", "autotune.json")


class CacheWarning(UserWarning):
    """A cache file of fastconv was unreadable or stale and has been ignored."""


def cache_dir():
    """The directory fastconv keeps its calibration and autotuning results in."""
    env = os.environ.get("FASTCONV_CACHE_DIR")
    if env:
        return os.path.abspath(os.path.expanduser(env))
    if sys.platform == "win32":
        base = os.environ.get("LOCALAPPDATA") or os.path.expanduser("~\\AppData\\Local")
        return os.path.join(base, "fastconv", "Cache")
    if sys.platform == "darwin":
        return os.path.expanduser("~/Library/Caches/fastconv")
    base = os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache")
    return os.path.join(base, "fastconv")


def _own(name):
    return any(name in (own, own + ".lock") or (name.startswith(own + ".") and name.endswith(".tmp"))
               for own in FILE_NAMES)


def files():
    """[(path, bytes)] of fastconv's own files in the cache directory, sorted by name ([] when
    the directory does not exist); anything else in it is not fastconv's and is left out."""
    directory = cache_dir()
    try:
        names = sorted(n for n in os.listdir(directory) if _own(n))
    except (FileNotFoundError, NotADirectoryError):
        return []
    found = []
    for name in names:
        path = os.path.join(directory, name)
        with contextlib.suppress(OSError):
            if os.path.isfile(path):
                found.append((path, os.path.getsize(path)))
    return found


def clear():
    """Delete fastconv's own files in the cache directory (`files`), nothing else; the directory
    itself goes too when that leaves it empty. Returns the paths deleted. A process that has
    already loaded a calibration or autotuning results keeps using them."""
    removed = []
    for path, _ in files():
        with contextlib.suppress(FileNotFoundError):
            os.unlink(path)
            removed.append(path)
    with contextlib.suppress(OSError):
        os.rmdir(cache_dir())       # only succeeds when empty
    return removed


def cpu_model():
    """A name for this processor (part of every cache key: results do not travel)."""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown"


def cpu_vendor():
    """"intel", "amd", or "" where the processor's vendor is not known (not Linux, or ARM): the
    shipped calibration has lines per vendor (_calibration.shipped)."""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("vendor_id"):
                    vendor = line.split(":", 1)[1].strip()
                    return {"GenuineIntel": "intel", "AuthenticAMD": "amd"}.get(vendor, "")
    except OSError:
        pass
    return ""


def fastconv_version():
    module = sys.modules.get("fastconv")
    return getattr(module, "__version__", "unknown")


def read(path, what):
    """The JSON object in `path` if it is one of ours in the current format, else None (with a
    warning when the file exists but is corrupt or stale)."""
    try:
        with open(path, encoding="utf-8") as f:
            data = json.load(f)
    except FileNotFoundError:
        return None
    except (OSError, ValueError, UnicodeDecodeError) as exc:
        warnings.warn(f"fastconv: ignoring the unreadable {what} file {path} ({exc})",
                      CacheWarning, stacklevel=3)
        return None
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        warnings.warn(f"fastconv: ignoring the {what} file {path}: not format {FORMAT} "
                      f"(written by another fastconv version?)", CacheWarning, stacklevel=3)
        return None
    return data


def valid_seconds(value, *, zero=False):
    """A time read from a cache file is usable: a real number, finite, positive (or zero where
    `zero`). The one check every reader applies: a forged or corrupt value (negative, zero, NaN,
    infinite, a string, a bool) must never steer the chooser."""
    import math
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return False
    return math.isfinite(value) and (value >= 0 if zero else value > 0)


@contextlib.contextmanager
def locked(path):
    """An exclusive lock on `path` + ".lock" between processes (best effort without fcntl)."""
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path + ".lock", "a+b") as f:
        try:
            import fcntl
        except ImportError:
            fcntl = None
        if fcntl is not None:
            fcntl.flock(f.fileno(), fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(f.fileno(), fcntl.LOCK_UN)
            return
        try:
            import msvcrt
        except ImportError:
            yield
            return
        f.seek(0)
        msvcrt.locking(f.fileno(), msvcrt.LK_LOCK, 1)
        try:
            yield
        finally:
            f.seek(0)
            msvcrt.locking(f.fileno(), msvcrt.LK_UNLCK, 1)


def write_atomic(path, data):
    """Write the JSON object `data` to `path` through a temporary file and os.replace."""
    directory = os.path.dirname(path)
    os.makedirs(directory, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=os.path.basename(path) + ".", suffix=".tmp", dir=directory)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            json.dump(data, f, indent=1, sort_keys=True)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
