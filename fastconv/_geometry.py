"""The one geometry of fastconv: argument normalisation, padding, output sizes, the ConvSpec.

Every public call builds one :class:`ConvSpec` here; every algorithm receives it. Problems with one
or two spatial dimensions are lifted to three (size-1 leading axes) so each kernel is written once.
"""
import dataclasses
import functools
from dataclasses import dataclass, replace
import math
import numbers

import numpy as np

PADDING_STRINGS = ("valid", "same", "full")
PADDING_MODES = ("zeros", "reflect", "replicate", "circular")
LIFTED_DIMS = 3
# The largest size, index or count the kernels can hold (Py_ssize_t, int64): every value given and
# every size derived from them (padded extents, element and byte counts) is checked against it.
INDEX_MAX = 2**63 - 1


def check_index(value, name, detail=None):
    """`value` (an int), or ValueError naming `name` when it exceeds INDEX_MAX (`detail`: what
    was derived from `name`, for the message)."""
    if value > INDEX_MAX:
        what = f"got {value}" if detail is None else detail
        raise ValueError(f"{name} must give sizes of at most 2**63 - 1 (the largest fastconv can "
                         f"index): {what}")
    return value


def _int(value, name):
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name} must be an int or a tuple of ints, got {value!r} "
                        f"({type(value).__name__})")
    return check_index(int(value), name)


def per_dim(value, ndim, name, minimum):
    """An int, or one int per spatial dimension, as a tuple of `ndim` ints >= minimum."""
    if isinstance(value, (tuple, list)):
        if len(value) != ndim:
            raise ValueError(f"{name} must be an int or {ndim} ints (one per spatial dimension), "
                             f"got {value!r}")
        out = tuple(_int(v, name) for v in value)
    else:
        out = (_int(value, name),) * ndim
    if any(v < minimum for v in out):
        raise ValueError(f"{name} must be >= {minimum} in every dimension, got {value!r}")
    return out


def effective_kernel(k, d):
    """Extent of a dilated kernel tap pattern: d * (k - 1) + 1."""
    return d * (k - 1) + 1


def output_size(n, k, stride, pad_low, pad_high, dilation):
    """floor((n + lo + hi - eff) / stride) + 1, the output length along one axis (eq. 9.8)."""
    return (n + pad_low + pad_high - effective_kernel(k, dilation)) // stride + 1


def _least_multiple_in(a, m, lo, hi):
    """The least x >= 0 with lo <= (a * x) mod m <= hi (0 <= lo <= hi < m), or None: a Euclid-like
    recursion on (a, m), O(log m) steps."""
    a %= m
    if lo == 0:
        return 0
    if a == 0:
        return None
    x = -(-lo // a)
    if a * x <= hi:             # a multiple of a lands in [lo, hi] before wrapping
        return x
    y = _least_multiple_in(m % a, a, (-hi) % a, (-lo) % a)     # wraps y times first
    return None if y is None else -(-(lo + m * y) // a)


def reads_input(n, k, stride, dilation, pad_low, out):
    """Whether some output o < out reads an input element along an axis of n (not only padding):
    0 <= o * stride + t * dilation - pad_low < n for some tap t < k. In closed form: a kernel or
    an output of 2**31 entries (shapes given to explain) is answered at once."""
    if n <= 0 or out <= 0 or k <= 0:
        return False
    s, d = stride, dilation
    t_lo = max(0, -(-(pad_low - (out - 1) * s) // d))    # taps whose outputs span [0, n)
    t_hi = min(k - 1, (pad_low + n - 1) // d)
    if t_lo > t_hi:
        return False
    if s <= n:                  # the outputs of such a tap step over no stretch of n
        return True
    # tap t reads the input iff (t*d - pad_low) mod s < n: t = t_lo + x, x <= t_hi - t_lo
    b = (d * t_lo - pad_low) % s
    first, last = (-b) % s, (n - 1 - b) % s
    pieces = [(first, last)] if first <= last else [(first, s - 1), (0, last)]
    hits = [x for x in (_least_multiple_in(d, s, a, z) for a, z in pieces) if x is not None]
    return bool(hits) and min(hits) <= t_hi - t_lo


def same_padding(n, k, stride, dilation):
    """'same': output ceil(n / stride); the odd extra padding goes on the high side."""
    out = -(-n // stride)
    total = max((out - 1) * stride + effective_kernel(k, dilation) - n, 0)
    return total // 2, total - total // 2


def resolve_padding(padding, input_size, kernel_size, stride, dilation):
    """The (low, high) zero padding of each spatial axis, from any form CONTRACT.md allows."""
    ndim = len(kernel_size)
    if isinstance(padding, str):
        if padding == "valid":
            return ((0, 0),) * ndim
        if padding == "full":
            return tuple((effective_kernel(k, d) - 1,) * 2 for k, d in zip(kernel_size, dilation))
        if padding == "same":
            return tuple(same_padding(n, k, s, d)
                         for n, k, s, d in zip(input_size, kernel_size, stride, dilation))
        raise ValueError(f"padding must be an int, a tuple, or one of {PADDING_STRINGS}, "
                         f"got {padding!r}")
    if isinstance(padding, (tuple, list)) and any(isinstance(p, (tuple, list)) for p in padding):
        if len(padding) != ndim or not all(isinstance(p, (tuple, list)) and len(p) == 2
                                           for p in padding):
            raise ValueError(f"padding as pairs must be {ndim} (low, high) pairs, got {padding!r}")
        pairs = tuple((_int(lo, "padding"), _int(hi, "padding")) for lo, hi in padding)
        if any(v < 0 for pair in pairs for v in pair):
            raise ValueError(f"padding must be >= 0 in every dimension, got {padding!r}")
        return pairs
    return tuple((p, p) for p in per_dim(padding, ndim, "padding", 0))


def _lift(values, fill):
    return (fill,) * (LIFTED_DIMS - len(values)) + tuple(values)


@dataclass(frozen=True)
class ConvSpec:
    """A validated convolution problem, lifted to three spatial dimensions.

    ``pad_low``/``pad_high`` are the implicit zero padding the algorithm applies; when a
    non-zero ``padding_mode`` was asked for, the API has already padded the input explicitly and
    these are zero.
    """
    ndim: int                     # spatial dimensions the user passed (1, 2 or 3)
    batch: int
    in_channels: int
    out_channels: int
    groups: int
    input_size: tuple
    kernel_size: tuple
    output_size: tuple
    stride: tuple
    dilation: tuple
    pad_low: tuple
    pad_high: tuple
    dtype: np.dtype

    def __hash__(self):
        """The fields' hash, computed once: a spec keys the chooser's and the algorithms' caches
        several times per call (0.6 us a hash of its thirteen fields)."""
        h = self.__dict__.get("_hash")
        if h is None:
            h = hash((self.ndim, self.batch, self.in_channels, self.out_channels, self.groups,
                      self.input_size, self.kernel_size, self.output_size, self.stride,
                      self.dilation, self.pad_low, self.pad_high, self.dtype))
            object.__setattr__(self, "_hash", h)
        return h

    def __reduce__(self):       # without the cached hash: another process may hash differently
        return (type(self), tuple(getattr(self, f.name) for f in dataclasses.fields(self)))

    @property
    def x_shape(self):
        return (self.batch, self.in_channels) + self.input_size

    @property
    def w_shape(self):
        return (self.out_channels, self.in_channels // self.groups) + self.kernel_size

    @property
    def y_shape(self):
        return (self.batch, self.out_channels) + self.output_size

    def user_shape(self, lifted_shape):
        """Drop the lifted axes: (N, C, 1, 1, L) -> (N, C, L) for a 1-D problem."""
        return tuple(lifted_shape[:2]) + tuple(lifted_shape[2 + LIFTED_DIMS - self.ndim:])

    @functools.cached_property
    def flops(self):
        """Multiply-adds x 2 of the direct sum; the same count for all three operations (counted
        once: every call of a prepared convolution reads it)."""
        return (2 * self.batch * self.out_channels * (self.in_channels // self.groups)
                * math.prod(self.kernel_size) * math.prod(self.output_size))

    @functools.cached_property
    def io_bytes(self):
        """Bytes of the input and the output (what a call reads and writes at the least)."""
        return self.dtype.itemsize * self.batch * (
            self.in_channels * math.prod(self.input_size)
            + self.out_channels * math.prod(self.output_size))

    def key(self):
        """A hashable description of the problem (for caches and tables)."""
        return (self.x_shape, self.w_shape, self.stride, self.dilation, self.pad_low,
                self.pad_high, self.groups, self.dtype.name)


def check_groups(groups):
    groups = _int(groups, "groups")
    if groups < 1:
        raise ValueError(f"groups must be >= 1, got {groups}")
    return groups


_SPEC_CACHE = {}
_SPEC_CACHE_SIZE = 512


def _plain(value):
    """`value` itself when it is an int, a str or (nested) tuples of ints -- types whose equal
    values validate alike -- else None. (True == 1 but must be refused: bools are not plain.)"""
    if type(value) is int or type(value) is str:
        return value
    if type(value) is tuple and all(type(v) is int or (type(v) is tuple and
                                                         all(type(u) is int for u in v))
                                    for v in value):
        return value
    return None


def make_spec(x_shape, w_shape, *, stride=1, padding=0, dilation=1, groups=1,
              dtype=np.float64, x_name="x", w_name="w"):
    """Validate a problem given by the shapes of x (N, C, *spatial) and w (K, C/groups, *kernel).

    Specs are immutable, so a problem seen before (same shapes, geometry and dtype, all given as
    plain ints/tuples) returns the spec built then: a training loop pays the validation once."""
    key = None
    if type(x_shape) is tuple and type(w_shape) is tuple and isinstance(dtype, np.dtype):
        parts = (_plain(stride), _plain(padding), _plain(dilation), _plain(groups))
        if None not in parts and _plain(x_shape) is not None and _plain(w_shape) is not None:
            key = (x_shape, w_shape, parts, dtype, x_name, w_name)
            spec = _SPEC_CACHE.get(key)
            if spec is not None:
                return spec
    spec = _make_spec(x_shape, w_shape, stride, padding, dilation, groups, dtype, x_name, w_name)
    if key is not None:
        if len(_SPEC_CACHE) >= _SPEC_CACHE_SIZE:
            _SPEC_CACHE.clear()
        _SPEC_CACHE[key] = spec
    return spec


def _make_spec(x_shape, w_shape, stride, padding, dilation, groups, dtype, x_name, w_name):
    x_shape, w_shape = tuple(x_shape), tuple(w_shape)
    if len(w_shape) not in (3, 4, 5):
        raise ValueError(f"{w_name} must have 3, 4 or 5 dimensions (K, C/groups, *kernel) for 1-, "
                         f"2- or 3-D convolution, got shape {w_shape}")
    ndim = len(w_shape) - 2
    if len(x_shape) != ndim + 2:
        raise ValueError(f"{x_name} must have {ndim + 2} dimensions (N, C, *spatial) to match the "
                         f"{ndim}-D kernel {w_name} of shape {w_shape}, got shape {x_shape}")
    groups = check_groups(groups)
    batch, channels, *input_size = x_shape
    out_channels, group_channels, *kernel_size = w_shape
    if channels % groups or out_channels % groups:
        raise ValueError(f"groups={groups} must divide the input channels of {x_name} ({channels}) "
                         f"and the output channels of {w_name} ({out_channels})")
    if group_channels != channels // groups:
        raise ValueError(f"{w_name} must have C/groups = {channels}/{groups} = {channels // groups} "
                         f"input channels (axis 1), got shape {w_shape}")
    if any(k < 1 for k in kernel_size):
        raise ValueError(f"{w_name} must have a kernel of size >= 1 on every axis, got {w_shape}")
    stride = per_dim(stride, ndim, "stride", 1)
    dilation = per_dim(dilation, ndim, "dilation", 1)
    pads = resolve_padding(padding, input_size, kernel_size, stride, dilation)
    out, strides, dilations = [], [], []
    for axis, (n, k, s, d, (lo, hi)) in enumerate(zip(input_size, kernel_size, stride, dilation, pads)):
        eff = effective_kernel(k, d)
        if n + lo + hi < eff:
            raise ValueError(f"the kernel ({eff} with dilation {d}) is larger than the padded input "
                             f"({n} + {lo} + {hi} = {n + lo + hi}) along spatial axis {axis} of "
                             f"{x_name}; expected padded input >= kernel")
        check_index(n + lo + hi, "padding", f"padding {(lo, hi)} along spatial axis {axis} of "
                                            f"{x_name} gives a padded input of {n + lo + hi}")
        out.append(output_size(n, k, s, lo, hi, d))
        # Normalised to the values of the same problem that keep every loop small: a stride along
        # an axis with one output only says that output 0 is the only one (the smallest stride
        # that says so, padded extent - kernel + 1, is used), a dilation of a one-tap kernel means
        # nothing. Output sizes, paddings and results are unchanged.
        strides.append(min(s, n + lo + hi - eff + 1) if out[-1] == 1 else s)
        dilations.append(1 if k == 1 else d)
    dtype = np.dtype(dtype)
    padded = [n + lo + hi for n, (lo, hi) in zip(input_size, pads)]
    for what, name, count in ((x_name, x_name, math.prod(x_shape)),
                              (w_name, w_name, math.prod(w_shape)),
                              ("the output", "padding", batch * out_channels * math.prod(out)),
                              ("the padded input", "padding",
                               batch * channels * math.prod(padded))):
        check_index(count * dtype.itemsize, name, f"{what} would hold {count} {dtype.name} values "
                                                  f"({count * dtype.itemsize} bytes)")
    return ConvSpec(
        ndim=ndim, batch=batch, in_channels=channels, out_channels=out_channels, groups=groups,
        input_size=_lift(input_size, 1), kernel_size=_lift(kernel_size, 1),
        output_size=_lift(out, 1), stride=_lift(strides, 1), dilation=_lift(dilations, 1),
        pad_low=_lift([lo for lo, _ in pads], 0), pad_high=_lift([hi for _, hi in pads], 0),
        dtype=dtype)


def transpose_input_sizes(out_sizes, w_shape, *, stride=1, padding=0, dilation=1, lowest=False):
    """For conv_transpose: per axis, the (smallest, largest) input size whose output size is m.

    The smallest is the smallest non-empty size where there is one; `lowest`: every size, an
    empty input included (where the padding exceeds the kernel, 0 may be the only one; where
    largest < smallest, none gives m)."""
    ndim = len(w_shape) - 2
    kernel_size = w_shape[2:]
    stride = per_dim(stride, ndim, "stride", 1)
    dilation = per_dim(dilation, ndim, "dilation", 1)
    if isinstance(padding, str) and padding == "same":      # ceil(n / s) == m
        return [(max((m - 1) * s + 1, 0), m * s) for m, s in zip(out_sizes, stride)]
    # every other form of padding is independent of the input size
    pads = resolve_padding(padding, [0] * ndim, kernel_size, stride, dilation)
    ranges = []
    for m, k, s, d, (lo, hi) in zip(out_sizes, kernel_size, stride, dilation, pads):
        smallest = (m - 1) * s + effective_kernel(k, d) - lo - hi
        largest = smallest + s - 1
        first = max(smallest, 0 if lowest or max(smallest, 1) > largest else 1)
        ranges.append((first, largest))
    return ranges


def with_explicit_padding(spec):
    """The spec of the same problem on an input already padded explicitly (no implicit zeros)."""
    size = tuple(n + lo + hi for n, lo, hi in zip(spec.input_size, spec.pad_low, spec.pad_high))
    return replace(spec, input_size=size, pad_low=(0,) * LIFTED_DIMS, pad_high=(0,) * LIFTED_DIMS)


def positions_as_row(spec):
    """A pointwise problem (kernel 1, stride 1, no padding along every axis) as the same problem
    on one row of its planes' positions: y[n, k, q] = sum_c w[k, c] x[n, c, q] over the
    flattened positions q, whatever the planes' shape (the arrays reshape as views). None for
    any other problem, and for one already on a single row."""
    if (spec.kernel_size != (1,) * LIFTED_DIMS or spec.stride != (1,) * LIFTED_DIMS
            or any(spec.pad_low) or any(spec.pad_high)
            or spec.input_size[0] * spec.input_size[1] == 1):
        return None
    row = (1, 1, math.prod(spec.input_size))
    return replace(spec, ndim=1, input_size=row, output_size=row, dilation=(1,) * LIFTED_DIMS)


def padding_index(n, low, high, mode):
    """For each position of an axis padded by (low, high), the input index it copies.

    reflect mirrors without repeating the edge (NumPy's 'reflect'), replicate repeats the edge,
    circular wraps around. The same map gives the padded copy (take) and its adjoint (add.at).
    """
    i = np.arange(-low, n + high)
    if mode == "replicate":
        return np.clip(i, 0, n - 1)
    if mode == "circular":
        return i % n
    period = 2 * (n - 1)            # reflect
    if period == 0:
        return np.zeros_like(i)
    i = np.abs(i) % period
    return np.where(i >= n, period - i, i)


def check_padding_mode(padding_mode, spec):
    if padding_mode not in PADDING_MODES:
        raise ValueError(f"padding_mode must be one of {PADDING_MODES}, got {padding_mode!r}")
    first = LIFTED_DIMS - spec.ndim
    for axis, (n, lo, hi) in enumerate(zip(spec.input_size[first:], spec.pad_low[first:],
                                           spec.pad_high[first:])):
        if padding_mode == "reflect" and max(lo, hi) >= n and (lo or hi):
            raise ValueError(f"padding_mode='reflect' needs padding < input size, got padding "
                             f"({lo}, {hi}) on spatial axis {axis} of size {n}")
        if padding_mode in ("replicate", "circular") and n == 0 and (lo or hi):
            raise ValueError(f"padding_mode={padding_mode!r} copies the input into the padding, "
                             f"but spatial axis {axis} is empty (size 0, padding ({lo}, {hi})); "
                             "expected a non-empty axis or padding_mode='zeros'")
