"""The instruction-set level fastconv's hand-vectorised kernels run at, and its one override.

Each hand-vectorised kernel set (direct, Winograd, depthwise, blocked, im2col's packed GEMM,
and the FFT's transforms and products) is compiled for three levels on x86-64 with GCC (11 or later) or clang (12 or later):
``"avx512"`` (x86-64-v4), ``"avx2"`` (x86-64-v3: AVX2 + FMA) and ``"baseline"`` (the build's own
target);
elsewhere (ARM, older compilers) only the build's own target, reported as ``"baseline"``. One
dispatch serves every set (src/_cpu_level.h): each module fills its kernel table at import with
the best level its CPU has and keeps it.

``FASTCONV_KERNEL_LEVEL=avx2`` (or ``baseline``; also ``1``/``0``), set before fastconv is
imported, asks every kernel set for that lower level: an AVX-512 machine then runs the kernels
an AVX2 machine runs, for tests and for benchmarks that emulate one (with
``OPENBLAS_CORETYPE=Haswell`` for the BLAS). The per-set variables (``FASTCONV_DIRECT_LEVEL``,
``FASTCONV_WINOGRAD_LEVEL``, ``FASTCONV_FFT_LEVEL``, ``FASTCONV_DEPTHWISE_LEVEL``,
``FASTCONV_GEMM_LEVEL``, ``FASTCONV_BLOCKED_LEVEL``) still win
where set.

The cost models' machine constants are keyed by this level (see _calibration), because the same
code runs at half the vector width one level down.
"""
import os

NAMES = ("baseline", "avx2", "avx512")
ENV = "FASTCONV_KERNEL_LEVEL"
PER_SET_ENV = ("FASTCONV_DIRECT_LEVEL", "FASTCONV_WINOGRAD_LEVEL", "FASTCONV_FFT_LEVEL",
               "FASTCONV_DEPTHWISE_LEVEL", "FASTCONV_GEMM_LEVEL", "FASTCONV_BLOCKED_LEVEL")


def parse(value):
    """The level number (0, 1, 2) of a name or digit; ValueError naming the variable otherwise."""
    text = str(value).strip().lower()
    if text in NAMES:
        return NAMES.index(text)
    if text in ("0", "1", "2"):
        return int(text)
    raise ValueError(f"{ENV} must be one of {NAMES} (or 0, 1, 2), got {value!r}")


def apply_override(environ=os.environ):
    """Copy FASTCONV_KERNEL_LEVEL into the per-set variables the C kernels read (once, at
    import, before any kernel has run)."""
    value = environ.get(ENV)
    if not value:
        return
    level = str(parse(value))
    for name in PER_SET_ENV:
        environ.setdefault(name, level)


def levels():
    """{kernel set: level name} of the sets this build has."""
    from . import _blocked, _depthwise, _direct, _im2col, _pointwise, _winograd, _fft
    found = {"direct": _direct.kernel_level(), "winograd": _winograd.kernel_level(),
             "depthwise": _depthwise.kernel_level(), "im2col": _im2col.kernel_level(),
             "blocked": _blocked.kernel_level(), "pointwise": _pointwise.kernel_level()}
    if hasattr(_fft, "kernel_level"):
        found["fft"] = _fft.kernel_level()
    return {name: NAMES[level] for name, level in found.items()}


_current = None


def current():
    """The level the kernels of this process run at, named by the vector width of the direct
    kernels (all sets follow the same override; a per-set variable can lower one set alone,
    for tests). A build for its own target (FASTCONV_NATIVE=1, clang) is named by its width."""
    global _current
    if _current is None:
        from . import _direct
        _current = {64: "avx512", 32: "avx2"}.get(4 * _direct.lanes(4), "baseline")
    return _current
