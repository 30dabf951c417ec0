"""Algorithm x operation x spatial dimension x dtype x geometry, each compared with fastconv.reference.

Every case also checks the output shape against the CONTRACT formula (computed here, not taken from
the library) and that finite inputs give a finite result. Reference results are cached per case so
that adding algorithms does not multiply the oracle's cost.
"""
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest

import fastconv
from fastconv import reference

OPERATIONS = ("forward", "grad_input", "grad_kernel", "transpose")

# --- crashes first ----------------------------------------------------------------------------------
# A crash cannot be a failure inside the test process, so edge geometries (1x1 kernels with one-sided
# padding, a single input element, padding wider than the input, strides longer than the input, a
# kernel as large as the padded input) run first in a fresh interpreter, every algorithm and operation.
# With -x, a crash or a wrong result stops the run here, with a readable message.

_EDGE_SCRIPT = textwrap.dedent("""
    import itertools, sys
    import numpy as np
    import fastconv
    from fastconv import reference
    rng = np.random.default_rng(0)
    problems = []
    for d in (1, 2, 3):
        for n, k, pad, s in [(1, 1, (0, 1), 1), (5, 1, (0, 2), 1), (5, 1, (2, 0), 1), (4, 1, (1, 3), 1),
                             (1, 1, (3, 2), 2), (2, 3, (4, 4), 1), (3, 2, (0, 0), 5), (1, 3, (1, 1), 1),
                             (3, 3, (0, 0), 1), (2, 1, (0, 1), 3)]:
            for N in (1, 3):
                problems.append((d, N, n, k, pad, s))
    failures = []
    for d, N, n, k, pad, s in problems:
        geo = dict(padding=(pad,) * d, stride=s)
        x = rng.standard_normal((N, 2) + (n,) * d)
        w = rng.standard_normal((3, 2) + (k,) * d)
        out = (n + pad[0] + pad[1] - k) // s + 1
        gy = rng.standard_normal((N, 3) + (out,) * d)
        calls = [("conv", (x, w), geo), ("conv_grad_input", (gy, w, x.shape), geo),
                 ("conv_grad_kernel", (x, gy, w.shape), geo)]
        for name, args, kw in calls:
            expected = getattr(reference, name)(*args, **kw)
            for algorithm in fastconv.algorithms() + ("auto",):
                print(f"calling {name} {algorithm} d={d} N={N} n={n} k={k} {geo}", file=sys.stderr, flush=True)
                try:
                    got = getattr(fastconv, name)(*args, algorithm=algorithm, **kw)
                except fastconv.NotSupportedError as exc:
                    if "does not support" not in str(exc) or algorithm in ("auto", "reference", "im2col"):
                        failures.append(f"{name} {algorithm} d={d} N={N} n={n} k={k} {geo}: {exc}")
                        print(failures[-1], flush=True)
                    continue
                scale = max(np.max(np.abs(expected), initial=0.0), 1e-300)
                if got.shape != expected.shape or not np.max(np.abs(got - expected), initial=0.0) <= 1e-9 * scale:
                    failures.append(f"{name} {algorithm} d={d} N={N} n={n} k={k} {geo}: wrong result")
                    print(failures[-1], flush=True)
    sys.exit(1 if failures else 0)
""")


def test_edge_geometries_neither_crash_nor_differ_in_a_fresh_interpreter():
    package_root = os.path.dirname(os.path.dirname(os.path.abspath(fastconv.__file__)))
    env = dict(os.environ, PYTHONPATH=package_root + os.pathsep + os.environ.get("PYTHONPATH", ""))
    done = subprocess.run([sys.executable, "-c", _EDGE_SCRIPT], env=env, cwd=package_root,
                          capture_output=True, text=True, timeout=300)
    last_call = done.stderr.strip().splitlines()[-2:]
    assert done.returncode >= 0, (f"the interpreter crashed (signal {-done.returncode}) after or in "
                                  f"{last_call}; wrong results before the crash:\n{done.stdout}")
    assert done.returncode == 0 and not done.stdout.strip(), (
        f"edge geometries differ from the reference:\n{done.stdout}\n{last_call}")


DIMS = (1, 2, 3)
DTYPES = (np.float32, np.float64)

# Default spatial sizes per dimension count (<= 40 in 1-D, <= 17 in 2-D, <= 9 in 3-D).
SPATIAL = {1: (29,), 2: (11, 9), 3: (7, 6, 5)}


def _pick(options, d):
    """``options`` is one value per dimension count (1, 2, 3)."""
    return options[d - 1]


# name -> function(d) returning the case: N, C, K, n, k, conv keyword arguments, bias,
# output_shape choice for conv_transpose ("min" or "max" of the reachable range).
GEOMETRIES = {
    "plain": lambda d: {},
    "stride2": lambda d: {"stride": 2},
    "stride_mixed": lambda d: {"stride": _pick([(3,), (1, 2), (2, 1, 3)], d)},
    "dilation2": lambda d: {"dilation": 2},
    "dilation_mixed_stride2_pad": lambda d: {
        "dilation": _pick([(3,), (2, 1), (1, 2, 2)], d), "stride": 2, "padding": 1},
    "groups2": lambda d: {"C": 4, "K": 6, "groups": 2},
    "depthwise": lambda d: {"C": 4, "K": 4, "groups": 4},
    "depthwise_multiplier2": lambda d: {"C": 3, "K": 6, "groups": 3, "padding": 1},
    "pad_int": lambda d: {"padding": 1},
    "pad_per_dim": lambda d: {"padding": _pick([(2,), (1, 0), (1, 0, 2)], d)},
    "pad_pairs": lambda d: {"padding": _pick([((0, 2),), ((2, 0), (1, 3)), ((0, 1), (2, 0), (1, 1))], d)},
    "pad_larger_than_kernel": lambda d: {"padding": 4},
    "valid": lambda d: {"padding": "valid"},
    "same_odd": lambda d: {"padding": "same", "k": 3},
    "same_even": lambda d: {"padding": "same", "k": 4},
    "same_odd_stride2": lambda d: {"padding": "same", "k": 3, "stride": 2},
    "same_even_stride2": lambda d: {"padding": "same", "k": 2, "stride": 2},
    "same_dilation2": lambda d: {"padding": "same", "k": 2, "dilation": 2},
    "full": lambda d: {"padding": "full"},
    "full_stride2": lambda d: {"padding": "full", "stride": 2},
    "reflect": lambda d: {"padding": _pick([((1, 2),), ((1, 2), (2, 1)), 1], d), "padding_mode": "reflect"},
    "replicate": lambda d: {"padding": 2, "padding_mode": "replicate"},
    "circular": lambda d: {"padding": _pick([((2, 1),), ((1, 2), (2, 0)), 1], d), "padding_mode": "circular"},
    "reflect_same_even_stride2": lambda d: {"padding": "same", "k": 4, "stride": 2, "padding_mode": "reflect"},
    "circular_groups2_dilation2": lambda d: {
        "C": 4, "K": 2, "groups": 2, "dilation": 2, "padding": 2, "padding_mode": "circular"},
    "flip": lambda d: {"flip": True, "k": _pick([(4,), (3, 2), (3, 2, 2)], d), "padding": 1},
    "flip_groups_stride": lambda d: {"flip": True, "C": 4, "K": 2, "groups": 2, "stride": 2},
    "bias": lambda d: {"bias": True},
    "bias_groups_stride": lambda d: {"bias": True, "C": 4, "K": 6, "groups": 2, "stride": 2, "padding": 1},
    "odd_sizes": lambda d: {"n": _pick([(7,), (7, 5), (7, 5, 3)], d), "k": _pick([(2,), (3, 2), (3, 2, 1)], d)},
    "kernel_equals_input": lambda d: {"n": _pick([(5,), (5, 4), (3, 4, 2)], d),
                                      "k": _pick([(5,), (5, 4), (3, 4, 2)], d)},
    "single_channel_N1": lambda d: {"N": 1, "C": 1, "K": 1},
    "k1": lambda d: {"k": 1},
    "k1_stride2": lambda d: {"k": 1, "stride": 2},
    "k1_pad1": lambda d: {"k": 1, "padding": 1},
    "k1_stride_mixed_pad": lambda d: {"k": 1, "stride": _pick([(3,), (2, 1), (1, 2, 3)], d), "padding": (1,) * d},
    "k1_pad_high_only": lambda d: {"k": 1,
                                   "padding": _pick([((0, 2),), ((0, 1), (0, 0)), ((0, 1), (0, 0), (0, 2))], d)},
    "k1_pad_low_only": lambda d: {"k": 1,
                                  "padding": _pick([((1, 0),), ((2, 0), (0, 0)), ((0, 0), (1, 0), (0, 0))], d)},
    "k1_groups_bias": lambda d: {"k": 1, "C": 6, "K": 4, "groups": 2, "bias": True},
    "transpose_output_max": lambda d: {"stride": _pick([(3,), (2, 3), (2, 1, 3)], d), "output_shape": "max"},
    "transpose_output_max_pad_dil": lambda d: {"stride": 2, "dilation": 2, "padding": 1, "output_shape": "max"},
    "rank1_kernel": lambda d: {"rank1": True, "k": _pick([(5,), (5, 3), (3, 4, 2)], d), "padding": "same"},
    "rank1_kernel_groups_stride": lambda d: {"rank1": True, "C": 4, "K": 2, "groups": 2, "stride": 2,
                                             "padding": 1, "bias": True},
    "rank1_dilation_stride_reflect": lambda d: {"rank1": True, "k": _pick([(3,), (3, 3), (2, 3, 2)], d),
                                                "dilation": 2, "stride": _pick([(2,), (2, 1), (1, 2, 1)], d),
                                                "padding": 2, "padding_mode": "reflect"},
    "rank1_flip_pairs_depthwise": lambda d: {
        "rank1": True, "flip": True, "C": 4, "K": 4, "groups": 4,
        "padding": _pick([((0, 2),), ((2, 0), (1, 3)), ((0, 1), (2, 0), (1, 1))], d)},
    "rank1_transpose_stride": lambda d: {"rank1": True, "stride": _pick([(3,), (2, 3), (2, 1, 3)], d),
                                         "padding": 1, "output_shape": "max"},
    "everything": lambda d: {"C": 4, "K": 6, "groups": 2, "stride": _pick([(2,), (2, 1), (1, 2, 1)], d),
                             "dilation": _pick([(2,), (1, 2), (2, 1, 1)], d),
                             "padding": _pick([((1, 0),), ((1, 0), (0, 2)), ((1, 0), (0, 2), (1, 1))], d),
                             "bias": True, "flip": True},
}


def build_case(name, d):
    spec = {"N": 2, "C": 3, "K": 4, "n": SPATIAL[d], "k": 3, "bias": False, "output_shape": "min"}
    spec.update(GEOMETRIES[name](d))
    if np.ndim(spec["k"]) == 0:
        spec["k"] = (spec["k"],) * d
    kwargs = {key: spec[key] for key in ("stride", "padding", "dilation", "groups", "flip", "padding_mode")
              if key in spec}
    return spec, kwargs


def applies(name, op):
    """Which (geometry, operation) pairs make a distinct, meaningful case."""
    spec, kwargs = build_case(name, 1)
    if op == "transpose":
        # conv_transpose takes explicit padding only, and has no flip or padding_mode.
        return not (isinstance(kwargs.get("padding"), str) or "flip" in kwargs or "padding_mode" in kwargs)
    if spec["output_shape"] != "min":
        return False  # only meaningful for conv_transpose
    if op in ("grad_input", "grad_kernel") and name in ("bias",):
        return False  # same problem as "plain" once the bias is dropped
    return True


CASES = [
    pytest.param(op, d, np.dtype(dt), name, id=f"{op}-{d}d-{np.dtype(dt).name}-{name}")
    for op in OPERATIONS
    for d in DIMS
    for dt in DTYPES
    for name in GEOMETRIES
    if applies(name, op)
]

_REFERENCE_CACHE = {}
REFERENCE = {
    "forward": reference.conv,
    "grad_input": reference.conv_grad_input,
    "grad_kernel": reference.conv_grad_kernel,
    "transpose": reference.conv_transpose,
}


def problem(op, d, dtype, name, helpers):
    """Inputs, public call, expected shape and reference result for one case (reference cached)."""
    key = (op, d, dtype.name, name)
    if key in _REFERENCE_CACHE:
        return _REFERENCE_CACHE[key]
    spec, kwargs = build_case(name, d)
    rng = np.random.default_rng([helpers.SEED, d, len(name), sum(map(ord, name + op + dtype.name))])
    N, C, K, n, k = spec["N"], spec["C"], spec["K"], spec["n"], spec["k"]
    groups = kwargs.get("groups", 1)
    geometry = {key: kwargs[key] for key in ("stride", "padding", "dilation") if key in kwargs}
    out = helpers.output_spatial(n, k, **geometry)
    x = rng.standard_normal((N, C) + n).astype(dtype)
    if spec.get("rank1"):  # a separable kernel: an outer product of 1-D kernels per (K, C) pair
        w = np.ones((K, C // groups) + k)
        for axis, size in enumerate(k):
            w = w * rng.standard_normal((K, C // groups) + tuple(size if a == axis else 1 for a in range(d)))
    else:
        w = rng.standard_normal((K, C // groups) + k)
    w = w.astype(dtype)
    gy = rng.standard_normal((N, K) + out).astype(dtype)

    if op == "forward":
        bias = rng.standard_normal(K).astype(dtype) if spec["bias"] else None
        args, kw, shape = (x, w, bias), dict(kwargs), (N, K) + out
        fn = fastconv.conv
    elif op == "grad_input":
        args, kw, shape = (gy, w, (N, C) + n), dict(kwargs), (N, C) + n
        fn = fastconv.conv_grad_input
    elif op == "grad_kernel":
        args, kw, shape = (x, gy, w.shape), dict(kwargs), w.shape
        fn = fastconv.conv_grad_kernel
    else:
        bias = rng.standard_normal(C).astype(dtype) if spec["bias"] else None
        kw = dict(kwargs)
        reachable = helpers.transpose_range(out, k, **geometry)
        if spec["output_shape"] == "max":
            target = tuple(hi for _, hi in reachable)
            kw["output_shape"] = target
        else:
            target = tuple(lo for lo, _ in reachable)  # the default: the smallest reachable size
        assert min(target) >= 1, "test construction: the transpose output must not be empty"
        args, shape = (gy, w, bias), (N, C) + target
        fn = fastconv.conv_transpose
    expected = REFERENCE[op](*args, **kw)
    result = (fn, args, kw, shape, expected)
    _REFERENCE_CACHE[key] = result
    return result


@pytest.mark.parametrize("op,d,dtype,name", CASES)
def test_matches_reference(op, d, dtype, name, algorithm_or_auto, helpers, forced, assert_close_to_reference):
    fn, args, kw, shape, expected = problem(op, d, dtype, name, helpers)
    assert expected.shape == shape, f"reference shape {expected.shape}, contract formula {shape}"
    actual = forced(fn, *args, algorithm=algorithm_or_auto, **kw)
    assert isinstance(actual, np.ndarray)
    assert actual.shape == shape
    assert np.all(np.isfinite(actual)), "finite inputs gave a non-finite result"
    assert_close_to_reference(actual, expected, dtype)


# --- NaN / Inf propagation ------------------------------------------------------------------------
# The public API takes no ``out`` buffer to poison, so instead: one NaN (or Inf) in one input element
# must reach exactly the outputs the arithmetic says it touches, i.e. the reference's pattern.

NAN_GEOMETRIES = ("plain", "stride2", "dilation_mixed_stride2_pad", "groups2", "reflect", "circular",
                  "same_even_stride2", "k1_stride2")
NAN_CASES = [
    pytest.param(op, d, name, id=f"{op}-{d}d-{name}")
    for op in OPERATIONS for d in DIMS for name in NAN_GEOMETRIES if applies(name, op)
]


def _poison(array, where, value):
    array = array.copy()
    array[where] = value
    return array


@pytest.mark.parametrize("position", ["interior", "corner"])
@pytest.mark.parametrize("op,d,name", NAN_CASES)
def test_nan_reaches_exactly_the_outputs_it_touches(op, d, name, position, algorithm_or_auto, helpers, forced,
                                                     assert_close_to_reference):
    fn, args, kw, shape, _ = problem(op, d, np.dtype(np.float64), name, helpers)
    args = list(args)
    # forward and grad_kernel: NaN in x; grad_input and transpose: NaN in gy (the first argument).
    target = args[0]
    if position == "interior":
        where = (target.shape[0] - 1, target.shape[1] - 1) + tuple(s // 2 for s in target.shape[2:])
    else:
        where = (0, 0) + (0,) * (target.ndim - 2)
    args[0] = _poison(target, where, np.nan)
    expected = REFERENCE[op](*args, **kw)
    if "stride" not in build_case(name, d)[1]:
        assert np.isnan(expected).any(), "test construction: the NaN should reach some output"
    # (with a stride, the element may be skipped: then no output may be NaN at all)
    if op != "grad_kernel":  # a NaN in one batch element leaves the other batch element clean
        assert not np.isnan(expected).all(), "test construction: expected a partial NaN pattern"
    actual = forced(fn, *args, algorithm=algorithm_or_auto, **kw)
    assert_close_to_reference(actual, expected, np.float64)


@pytest.mark.parametrize("op", ["forward", "grad_kernel"])
@pytest.mark.parametrize("d", DIMS)
def test_nan_in_second_operand(op, d, algorithm_or_auto, helpers, forced, assert_close_to_reference):
    """NaN in w (forward) reaches every output of its output channel; NaN in gy (grad_kernel)
    reaches the kernel entries of its output channel."""
    fn, args, kw, shape, _ = problem(op, d, np.dtype(np.float64), "groups2", helpers)
    args = list(args)
    args[1] = _poison(args[1], (1,) + (0,) * (args[1].ndim - 1), np.nan)
    expected = REFERENCE[op](*args, **kw)
    assert np.isnan(expected).any() and not np.isnan(expected).all()
    actual = forced(fn, *args, algorithm=algorithm_or_auto, **kw)
    assert_close_to_reference(actual, expected, np.float64)


@pytest.mark.parametrize("sign", [1.0, -1.0])
@pytest.mark.parametrize("d", DIMS)
def test_inf_propagates_like_the_reference(d, sign, algorithm_or_auto, helpers, forced, assert_close_to_reference):
    fn, args, kw, shape, _ = problem("forward", d, np.dtype(np.float64), "stride2", helpers)
    args = list(args)
    x = args[0]
    args[0] = _poison(x, (0, 1) + tuple(s // 2 for s in x.shape[2:]), sign * np.inf)
    expected = reference.conv(*args, **kw)
    assert np.isinf(expected).any()
    actual = forced(fn, *args, algorithm=algorithm_or_auto, **kw)
    assert_close_to_reference(actual, expected, np.float64)
