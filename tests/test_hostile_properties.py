"""Issue 17: property-based hostile inputs through every public entry point.

Random geometries mixing small values with extreme integers (0, 1, 2**31, 2**62, 2**63 - 1, 2**64,
negative) and data from four regimes (ordinary, near the dtype's largest value, near its smallest
normal value, and ordinary with Inf/NaN planted) go through conv, conv_grad_input,
conv_grad_kernel and conv_transpose (forced algorithms and "auto"), choose and explain, the
pooling functions and separable_conv. Each call must give a correct result or raise ValueError /
TypeError, leave its inputs untouched, and return (a watchdog ends the run if a call hangs; an
address-space limit turns a runaway allocation into a MemoryError, a failure, instead of taking
the machine down).

What "correct" means is decided here, from the contract alone:
* a problem is invalid (must raise) when a value is out of its range (stride, dilation, groups
  < 1, padding < 0, any value above 2**63 - 1), channels do not match groups, the dilated kernel
  is larger than the padded input, or a derived size (padded extent, output or padded-input
  bytes) exceeds 2**63 - 1; valid (must compute) when every derived count is far below that;
  between the two either answer is accepted;
* a valid problem with small geometry values is compared with fastconv.reference (float64
  sums): the same NaN/Inf pattern where Inf/NaN were planted; elsewhere every output whose sum of
  |terms| stays below half the dtype's largest value must be finite, and all of them within the
  contract's tolerance (2e-4 / 1e-9 of the largest magnitude, plus a few subnormal spacings: a
  result near the underflow threshold is quantised at that spacing);
* a valid problem with huge geometry values (ordinary data) is compared with a textbook sum over
  the taps written here with Python integers (forward), and with the adjoint identities
  <conv(x, w), gy> = <x, grad_input(gy, w)> = <w, grad_kernel(x, gy)> (gradients).

The examples are fixed (derandomized) so that a run is reproducible. To explore new ones:
FASTCONV_HOSTILE_RANDOM=1 FASTCONV_HOSTILE_SCALE=10 (ten times as many), and
FASTCONV_HOSTILE_TRACE=1 with pytest -s to print each convolution example before it runs (a
segmentation fault found this way: im2col packed zeros past a row's end for a tap whose first
valid output lay beyond the last, see _geometry.pxd's valid_range).
"""
import contextlib
import faulthandler
import math
import os
import resource
import sys

import numpy as np
import pytest
from hypothesis import HealthCheck, assume, event, given, settings
from hypothesis import strategies as st

import fastconv
from fastconv import reference

INT64_MAX = 2**63 - 1
EXTREME = (0, 1, 2, 3, 2**31 - 1, 2**31, 2**62, 2**63 - 1, 2**63, 2**64, -1, -2**63)
SMALL_GEOMETRY = 64         # geometry values up to this are checked against fastconv.reference
MAX_OUTPUT = 4096           # results larger than this many values are not computed
TOLERANCE = {np.dtype(np.float32): 2e-4, np.dtype(np.float64): 1e-9}
DERANDOMIZE = os.environ.get("FASTCONV_HOSTILE_RANDOM") != "1"     # 1: explore new examples
SCALE = float(os.environ.get("FASTCONV_HOSTILE_SCALE", "1"))        # more examples when exploring
TRACE = os.environ.get("FASTCONV_HOSTILE_TRACE") == "1"             # print each conv example
SETTINGS = dict(deadline=None, derandomize=DERANDOMIZE,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much,
                                       HealthCheck.data_too_large])


# --- guards ---------------------------------------------------------------------------------

@contextlib.contextmanager
def guarded(seconds=120, headroom=6 * 2**30):
    """A watchdog (the process ends with every thread's traceback if the body runs longer than
    `seconds`: a hang is a failure, not a stuck suite) and an address-space limit `headroom`
    above the current use (an allocation beyond it raises MemoryError)."""
    with open("/proc/self/statm") as f:
        used = int(f.read().split()[0]) * resource.getpagesize()
    soft, hard = resource.getrlimit(resource.RLIMIT_AS)
    limit = used + headroom
    if hard != resource.RLIM_INFINITY:
        limit = min(limit, hard)
    resource.setrlimit(resource.RLIMIT_AS, (limit, hard))
    faulthandler.dump_traceback_later(seconds, exit=True)
    try:
        yield
    finally:
        faulthandler.cancel_dump_traceback_later()
        resource.setrlimit(resource.RLIMIT_AS, (soft, hard))


def call_untouched(fn, *args, **kwargs):
    """fn(*args, **kwargs), asserting that no array argument changed; returns (result, error)
    where error is the ValueError/TypeError raised (anything else propagates)."""
    arrays = [a for a in list(args) + list(kwargs.values()) if isinstance(a, np.ndarray)]
    arrays += [a for v in list(args) + list(kwargs.values()) if isinstance(v, list)
               for a in v if isinstance(a, np.ndarray)]
    copies = [a.copy() for a in arrays]
    try:
        result, error = fn(*args, **kwargs), None
    except (ValueError, TypeError) as exc:
        result, error = None, exc
        assert str(exc), f"{type(exc).__name__} without a message"
    for a, c in zip(arrays, copies):
        assert np.array_equal(a, c, equal_nan=True), f"{fn.__name__} changed an input"
    return result, error


# --- strategies -----------------------------------------------------------------------------

def geometry_int(low):
    """Mostly small values, an extreme one a quarter of the time."""
    small = st.integers(low, 3)
    return st.one_of(small, small, small, st.sampled_from(EXTREME))


@st.composite
def conv_problems(draw):
    nd = draw(st.integers(1, 2))
    groups = draw(st.sampled_from((1, 1, 2)))
    cg, kg = draw(st.integers(0, 2)), draw(st.integers(1, 2))
    batch = draw(st.sampled_from((0, 1, 1, 2)))
    n = tuple(draw(st.integers(0, 7)) for _ in range(nd))
    k = tuple(draw(st.integers(1, 4)) for _ in range(nd))
    xs, ws = (batch, cg * groups) + n, (kg * groups, cg) + k
    if draw(st.integers(0, 9)) == 0:                    # channels that do not match groups
        ws = (ws[0], ws[1] + 1) + k
    per_axis = draw(st.booleans())
    stride = tuple(draw(geometry_int(1)) for _ in range(nd)) if per_axis else draw(geometry_int(1))
    dilation = draw(geometry_int(1))
    padding = draw(st.one_of(
        geometry_int(0), st.sampled_from(("valid", "same", "full")),
        st.tuples(*[st.tuples(geometry_int(0), geometry_int(0)) for _ in range(nd)])))
    geometry = dict(stride=stride, padding=padding, dilation=dilation, groups=groups)
    return xs, ws, geometry


REGIMES = ("ordinary", "big", "tiny", "special")


def values(rng, shape, dtype, regime, role):
    """Data of a regime: `role` "w" gets ordinary weights in the big and tiny regimes, and no
    Inf/NaN in the special one. (Inf times the padding's zeros is NaN by arithmetic, but BLAS
    gemv, and so the reference's tensordot, skips a zero operand: 0 * Inf came out 0 there. So
    Inf/NaN go only where they never meet the padding: into x, and into gy for grad_input.)"""
    a = rng.standard_normal(shape)
    if regime == "big" and role != "w":
        a = rng.uniform(-1, 1, shape) * np.finfo(dtype).max * 0.9
    elif regime == "big":
        a = rng.uniform(-1, 1, shape) * rng.choice([1.0, 1e-3])
    elif regime == "tiny" and role != "w":
        a = rng.uniform(-16, 16, shape) * np.finfo(dtype).tiny
    elif regime == "special" and a.size and role != "w":
        for value in rng.choice([np.inf, -np.inf, np.nan], size=rng.integers(1, 3)):
            a.flat[rng.integers(a.size)] = value
    return a.astype(dtype)


# --- what the contract says about a problem -----------------------------------------------

def _per_dim(value, nd):
    return tuple(value) if isinstance(value, tuple) else (value,) * nd


def _pads(padding, n, k, s, d):
    nd = len(n)
    if isinstance(padding, str):
        eff = [dd * (kk - 1) + 1 for kk, dd in zip(k, d)]
        if padding == "valid":
            return [(0, 0)] * nd
        if padding == "full":
            return [(e - 1, e - 1) for e in eff]
        pairs = []
        for nn, ss, e in zip(n, s, eff):
            total = max((-(-nn // ss) - 1) * ss + e - nn, 0)
            pairs.append((total // 2, total - total // 2))
        return pairs
    if isinstance(padding, tuple):
        return [tuple(p) for p in padding]
    return [(padding, padding)] * nd


def judge(xs, ws, geometry, itemsize):
    """("invalid", None), ("valid", output shape) or ("either", output shape) for a forward
    problem (("channels", None): invalid, as x's channels do not match w and groups)."""
    nd = len(xs) - 2
    s, d = _per_dim(geometry["stride"], nd), _per_dim(geometry["dilation"], nd)
    g = geometry["groups"]
    padding = geometry["padding"]
    raw = list(s) + list(d) + [g] + ([] if isinstance(padding, str) else
                                    [v for p in _pads(padding, xs[2:], ws[2:], s, d) for v in p])
    if any(v > INT64_MAX for v in raw) or min(s + d) < 1 or g < 1 or min(raw) < 0:
        return "invalid", None
    if xs[1] % g or ws[0] % g or ws[1] != xs[1] // g:
        return "channels", None
    pads = _pads(padding, xs[2:], ws[2:], s, d)
    out, padded = [], []
    for n, k, ss, dd, (lo, hi) in zip(xs[2:], ws[2:], s, d, pads):
        eff = dd * (k - 1) + 1
        if n + lo + hi < eff or max(lo, hi) > INT64_MAX:
            return "invalid", None
        padded.append(n + lo + hi)
        out.append((n + lo + hi - eff) // ss + 1)
    counts = [max(padded), xs[0] * ws[0] * math.prod(out) * itemsize,
              xs[0] * xs[1] * math.prod(padded) * itemsize]
    if max(counts) > INT64_MAX:
        return "invalid", None
    y_shape = (xs[0], ws[0]) + tuple(out)
    return ("either" if max(counts) > 2**50 else "valid"), y_shape


def geometry_invalid(geometry):
    s, d, g, p = (geometry[name] for name in ("stride", "dilation", "groups", "padding"))
    flat = list(_per_dim(s, 1)) + [d, g] + ([] if isinstance(p, str) else
                                            [v for q in _per_dim(p, 1)
                                             for v in (q if isinstance(q, tuple) else (q,))])
    return max(flat) > INT64_MAX or min(list(_per_dim(s, 1)) + [d, g]) < 1 or min(flat + [0]) < 0


def is_small(geometry):
    s, d, p = geometry["stride"], geometry["dilation"], geometry["padding"]
    flat = list(_per_dim(s, 1)) + [d] + ([] if isinstance(p, str) else
                                         [v for q in _per_dim(p, 1)
                                          for v in (q if isinstance(q, tuple) else (q,))])
    return max(abs(v) for v in flat) <= SMALL_GEOMETRY


# --- comparisons ----------------------------------------------------------------------------

def assert_matches(got, want, bound, regime, label):
    """got against the float64 reference `want` (already in the result dtype) as the module
    docstring says; `bound` is the sum of |terms| of each output (float64)."""
    assert got.shape == want.shape and got.dtype == want.dtype, (label, got.shape, want.shape)
    dtype = want.dtype
    if regime == "special":
        for test in (np.isnan, np.isinf):
            assert np.array_equal(test(got), test(want)), (label, "NaN/Inf pattern")
        assert np.array_equal(got[np.isinf(want)], want[np.isinf(want)]), (label, "Inf signs")
        mask = np.isfinite(want)
    else:
        mask = np.isfinite(want) & (bound <= np.finfo(dtype).max / 2)
        assert np.isfinite(got[mask]).all(), (label, "not finite where the sum stays in range")
    if mask.any():
        a, e = got[mask].astype(np.float64), want[mask].astype(np.float64)
        err = float(np.abs(a - e).max())
        scale = float(np.abs(e).max())
        allowed = TOLERANCE[dtype] * scale + 1e4 * float(np.finfo(dtype).smallest_subnormal)
        assert err <= allowed, (label, err, scale)


def textbook_forward(x, w, stride, pads, dilation, groups):
    """y[n, k, o] = sum_{c, t} x[n, c, o*s - lo + t*d] w[k, c, t] over the taps inside the input,
    with Python-int index arithmetic (any geometry value), in float64."""
    nd = x.ndim - 2
    s, d = _per_dim(stride, nd), _per_dim(dilation, nd)
    n, k = x.shape[2:], w.shape[2:]
    out = [(nn + lo + hi - dd * (kk - 1) - 1) // ss + 1
           for nn, kk, ss, dd, (lo, hi) in zip(n, k, s, d, pads)]
    K, Cg = w.shape[:2]
    y = np.zeros((x.shape[0], K) + tuple(out))
    x8, w8 = x.astype(np.float64), w.astype(np.float64)
    for o in np.ndindex(*out):
        for t in np.ndindex(*k):
            pos = [oo * ss - lo + tt * dd for oo, tt, ss, dd, (lo, _) in zip(o, t, s, d, pads)]
            if all(0 <= p < nn for p, nn in zip(pos, n)):
                for gi in range(groups):
                    xs = x8[(slice(None), slice(gi * Cg, (gi + 1) * Cg)) + tuple(pos)]
                    ws = w8[(slice(gi * K // groups, (gi + 1) * K // groups), slice(None)) + t]
                    y[(slice(None), slice(gi * K // groups, (gi + 1) * K // groups)) + o] += \
                        xs @ ws.T
    return y


# --- the convolution family -------------------------------------------------------------------

OPS = ("forward", "grad_input", "grad_kernel", "transpose")


@settings(max_examples=int(800 * SCALE), **SETTINGS)
@given(problem=conv_problems(), algorithm=st.sampled_from(fastconv.algorithms() + ("auto",) * 3),
       dtype=st.sampled_from((np.float32, np.float64)), regime=st.sampled_from(REGIMES),
       seed=st.integers(0, 2**32 - 1))
def test_conv_family(problem, algorithm, dtype, regime, seed):
    xs, ws, geometry = problem
    dtype = np.dtype(dtype)
    verdict, y_shape = judge(xs, ws, geometry, dtype.itemsize)
    event(verdict + ("" if y_shape is None else ", " + ("small" if is_small(geometry) else "huge")
                     + " geometry" + (", not computed" if math.prod(y_shape[1:]) > MAX_OUTPUT
                                      else "")))
    if verdict == "channels":
        verdict = "invalid"
    small = is_small(geometry)
    if not small:
        regime = "ordinary"
        # fastconv.reference (forced "reference" too) pads the input explicitly: a padding of
        # 2**40 is a 2**40-element copy. It is the oracle for small geometry only.
        assume(algorithm != "reference")
    rng = np.random.default_rng(seed)
    x, w = values(rng, xs, dtype, regime, "x"), values(rng, ws, dtype, regime, "w")
    gy_shape = y_shape if y_shape is not None else (xs[0], ws[0]) + (1,) * (len(xs) - 2)
    if y_shape is not None and math.prod(y_shape[1:]) > MAX_OUTPUT:
        return                                   # a correct answer would need a large array
    gy = values(rng, gy_shape, dtype, regime, "gy")
    gy_finite = values(rng, gy_shape, dtype, "ordinary" if regime == "special" else regime, "gy")
    if TRACE:                                    # (with -s: a crash's example is the last)
        print("EXAMPLE", xs, ws, geometry, algorithm, dtype, regime, seed, file=sys.stderr,
              flush=True)
    with guarded():
        for op in OPS:
            run_op(op, x, w, gy_finite if op == "grad_kernel" else gy, xs, ws, geometry,
                   algorithm, verdict, small, regime)


def run_op(op, x, w, gy, xs, ws, geometry, algorithm, verdict, small, regime):
    label = (op, algorithm, xs, ws, geometry, regime)
    if op == "forward":
        fn, args = fastconv.conv, (x, w)
    elif op == "grad_input":
        fn, args = fastconv.conv_grad_input, (gy, w, xs)
    elif op == "grad_kernel":
        fn, args = fastconv.conv_grad_kernel, (x, gy, ws)
    else:
        if isinstance(geometry["padding"], str) and geometry["padding"] == "same":
            return             # conv_transpose resolves "same" per candidate size: not here
        fn, args = fastconv.conv_transpose, (gy, w)
        kw = dict(output_shape=xs[2:], **geometry)
        if verdict == "invalid" and not geometry_invalid(geometry):
            verdict = "either"                   # x's channels play no part: gy's shape decides
    if op != "transpose":
        kw = dict(geometry)
    got, error = call_untouched(fn, *args, algorithm=algorithm, **kw)
    if isinstance(error, fastconv.NotSupportedError) and "does not support" in str(error):
        assert algorithm not in ("auto", "reference", "im2col"), (label, error)
        return                                   # a forced algorithm that does not apply
    if verdict == "invalid":
        assert error is not None, (label, "an invalid problem was computed")
        return
    if verdict == "either" or error is not None:
        assert verdict != "valid", (label, f"a valid problem raised {error!r}")
        return
    if small:
        want, bound = reference_of(op, x, w, gy, xs, ws, geometry)
        assert_matches(got, want, bound, regime, label)
        return
    if op == "forward":
        nd = len(xs) - 2
        s, d = _per_dim(geometry["stride"], nd), _per_dim(geometry["dilation"], nd)
        pads = _pads(geometry["padding"], xs[2:], ws[2:], s, d)
        want = textbook_forward(x, w, s, pads, d, geometry["groups"])
        assert_matches(got, want.astype(got.dtype), np.zeros(want.shape), "ordinary", label)
    else:                                        # the adjoint identity with the forward pass
        y = fastconv.conv(x, w, **geometry).astype(np.float64)
        left = float(np.vdot(y, gy.astype(np.float64)))
        other = x if op in ("grad_input", "transpose") else w
        right = float(np.vdot(other.astype(np.float64), got.astype(np.float64)))
        scale = float(np.abs(y).sum() * np.abs(gy).max(initial=0)) + 1e-300
        assert abs(left - right) <= 50 * TOLERANCE[got.dtype] * scale, (label, left, right)


def reference_of(op, x, w, gy, xs, ws, geometry):
    """The reference's result (in the result dtype) and each output's sum of |terms|."""
    ax, aw, agy = (np.abs(a).astype(np.float64) for a in (x, w, gy))
    with np.errstate(all="ignore"):
        if op == "forward":
            return reference.conv(x, w, **geometry), reference.conv(ax, aw, **geometry)
        if op == "grad_kernel":
            return (reference.conv_grad_kernel(x, gy, ws, **geometry),
                    reference.conv_grad_kernel(ax, agy, ws, **geometry))
        return (reference.conv_grad_input(gy, w, xs, **geometry),
                reference.conv_grad_input(agy, aw, xs, **geometry))


# --- the chooser -----------------------------------------------------------------------------

@settings(max_examples=int(400 * SCALE), **SETTINGS)
@given(problem=conv_problems(), dtype=st.sampled_from(("float32", "float64")),
       grow=st.tuples(st.sampled_from((1, 2**20, 2**31, 2**40, 2**62, 2**63, 2**64, -1)),
                      st.integers(0, 5)))
def test_choose_and_explain(problem, dtype, grow):
    xs, ws, geometry = problem
    factor, axis = grow                      # one shape entry made extreme
    shapes = [list(xs), list(ws)]
    which = shapes[axis % 2]
    which[axis % len(which)] = which[axis % len(which)] * factor if factor > 0 else factor
    xs, ws = tuple(shapes[0]), tuple(shapes[1])
    verdict, _ = judge(xs, ws, geometry, np.dtype(dtype).itemsize)
    verdict = "invalid" if verdict == "channels" else verdict
    huge_shape = max(xs + ws) > INT64_MAX or min(xs + ws) < 0
    elements = max(math.prod(xs), math.prod(ws)) * np.dtype(dtype).itemsize
    with guarded():
        name, error = call_untouched(fastconv.choose, xs, ws, dtype=dtype, **geometry)
        table, error2 = call_untouched(fastconv.explain, xs, ws, dtype=dtype, **geometry)
    if error is None and isinstance(error2, fastconv.NotSupportedError):
        error2 = None               # explain also asks the gradients, which may fit nothing
    assert (error is None) == (error2 is None), (error, error2)
    if huge_shape or verdict == "invalid" or elements > INT64_MAX:
        assert error is not None, (xs, ws, geometry, "invalid, but chosen")
    elif verdict == "valid":        # or no algorithm fits the workspace limit, which it says
        assert error is None or isinstance(error, fastconv.NotSupportedError), (xs, ws, error)
    if error is None:
        assert name in fastconv.algorithms()
        assert table is None or name in str(table)


# --- pooling and separable convolution --------------------------------------------------------

@st.composite
def pool_problems(draw):
    nd = draw(st.integers(1, 2))
    xs = (draw(st.integers(0, 2)), draw(st.integers(1, 2))) + tuple(
        draw(st.integers(0, 7)) for _ in range(nd))
    kernel = draw(geometry_int(1))
    stride = draw(st.one_of(st.none(), geometry_int(1)))
    padding = draw(st.one_of(st.integers(0, 2), st.sampled_from(EXTREME)))
    ceil_mode = draw(st.booleans())
    return xs, kernel, stride, padding, ceil_mode


def _pool_valid(xs, kernel, stride, padding, dilation=1):
    values_ = [kernel, padding, dilation] + ([] if stride is None else [stride])
    if max(values_) > INT64_MAX or min(kernel, dilation, kernel if stride is None else stride) < 1 \
            or padding < 0:
        return False
    if padding > kernel // 2:
        return False
    eff = dilation * (kernel - 1) + 1
    return all(n + 2 * padding >= eff for n in xs[2:])


@settings(max_examples=int(500 * SCALE), **SETTINGS)
@given(problem=pool_problems(), kind=st.sampled_from(("max", "avg", "lp")),
       dilation=st.one_of(st.just(1), geometry_int(1)),
       regime=st.sampled_from(("ordinary", "big", "tiny")), seed=st.integers(0, 2**32 - 1))
def test_pooling(problem, kind, dilation, regime, seed):
    xs, kernel, stride, padding, ceil_mode = problem
    if kind != "max":
        dilation = 1
    x = values(np.random.default_rng(seed), xs, np.float64, regime, "x")
    kw = dict(stride=stride, padding=padding, ceil_mode=ceil_mode)
    if kind == "max":
        kw["dilation"] = dilation
    fn, ref = {"max": (fastconv.pooling.max_pool, reference.max_pool),
               "avg": (fastconv.pooling.avg_pool, reference.avg_pool),
               "lp": (lambda a, *r, **k: fastconv.pooling.lp_pool(a, 2, *r, **k),
                      lambda a, *r, **k: reference.lp_pool(a, 2, *r, **k))}[kind]
    valid = _pool_valid(xs, kernel, stride, padding, dilation)
    small = max(kernel, stride or 0, padding, dilation) <= SMALL_GEOMETRY
    with guarded():
        got, error = call_untouched(fn, x, (kernel,) * (len(xs) - 2), **kw)     # an int: ambiguous at 3-D
    if not valid:
        assert error is not None, (kind, xs, kernel, kw, "invalid, but computed")
        return
    if not small:
        return                                   # valid but huge: an answer or a ValueError
    assert error is None, (kind, xs, kernel, kw, error)
    with np.errstate(all="ignore"):
        want = ref(x, kernel, **kw)
    if regime != "ordinary" and kind == "lp":    # |x|^2 over- or underflows: the shape only
        assert got.shape == want.shape
        return
    assert_matches(got, want, np.zeros(want.shape), "ordinary", (kind, xs, kernel, kw))


@settings(max_examples=int(250 * SCALE), **SETTINGS)
@given(problem=conv_problems(), regime=st.sampled_from(REGIMES), seed=st.integers(0, 2**32 - 1))
def test_separable_conv(problem, regime, seed):
    xs, ws, geometry = problem
    verdict, y_shape = judge(xs, ws, geometry, 8)
    verdict = "invalid" if verdict == "channels" else verdict
    small = is_small(geometry)
    assume(y_shape is None or math.prod(y_shape[1:]) <= MAX_OUTPUT)
    if not small:
        regime = "ordinary"
    rng = np.random.default_rng(seed)
    x = values(rng, xs, np.float64, regime, "x")
    factors = [values(rng, ws[:2] + (k,), np.float64, regime, "w") for k in ws[2:]]
    with guarded():
        got, error = call_untouched(fastconv.separable_conv, x, factors, **geometry)
    if verdict == "invalid":
        assert error is not None
        return
    if verdict == "either" or not small:
        return
    assert error is None, (xs, ws, geometry, error)
    w = factors[0]
    for f in factors[1:]:
        w = w[..., None] * f.reshape(f.shape[:2] + (1,) * (w.ndim - 2) + f.shape[2:])
    with np.errstate(all="ignore"):
        want = reference.conv(x, w, **geometry)
        bound = reference.conv(np.abs(x), np.abs(w), **geometry)
    assert_matches(got, want, bound, regime, (xs, ws, geometry))


def test_guard_turns_a_runaway_allocation_into_memory_error():
    with pytest.raises(MemoryError), guarded():
        np.empty(8 * 2**30, np.uint8)           # untouched pages: nothing used if it succeeds
