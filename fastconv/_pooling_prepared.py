"""Prepared pooling (issue 13): ``fastconv.pooling.plan(kind, x_shape, ...)``.

A training loop pools arrays of one shape thousands of times, and on a small network the Python
around each call (argument checks, window geometry, the window tables or banded matrices, the
output shape, the thread decision) cost about as much as the pooling itself: a digits-sized 2x2
max pool's backward spent some 40 us of its 65 outside the kernel. A plan does that work once
per shape; each call then checks only what can differ between calls -- the arrays' shape, dtype
and contiguity -- and runs the same compiled kernels (``src/_pooling.pyx``) on the same tables
as ``fastconv.pooling.max_pool`` / ``avg_pool`` and their gradients, so the results are
bitwise the same.

Per call, an array of another shape raises ValueError naming the argument and both shapes;
another dtype is converted when it casts safely to the plan's dtype (``numpy.can_cast``), else
TypeError; a non-contiguous array is copied. ``out=`` (and ``indices_out=``) take a buffer to
write the result into: a numpy.ndarray of exactly the result's shape and dtype, C-contiguous,
writeable and sharing no memory with the inputs; it is written, never read. A plan keeps no
scratch between calls (each call allocates what it writes, unless given ``out``), so one plan
may serve several Python threads at once.
"""
import numpy as np

from . import _aligned, _config, _pooling
from . import _pooling_plan as compute
from ._validate import check_bool, shape_tuple

KINDS = ("max", "avg")
_INDEX_DTYPE = np.dtype(np.int64)
_CTYPE = {np.dtype(np.float32): "float", np.dtype(np.float64): "double"}


def plan(kind, x_shape, kernel_size, stride=None, padding=0, dilation=1, ceil_mode=False, *,
         count_include_pad=True, dtype="float32"):
    """A prepared pool of ``kind`` ("max" or "avg") for inputs of shape ``x_shape`` --
    ``(N, C, *spatial)``, or one unbatched example ``(C, *spatial)``, read as the pooling
    functions read an array of that shape -- and of ``dtype`` (float32 or float64). The other
    arguments are those of :func:`fastconv.pooling.max_pool` / :func:`avg_pool` (average
    pooling takes no dilation, and ``count_include_pad`` only matters to it).

    Returns an object with ``forward(x, *, out=None)`` (max pooling also takes
    ``return_indices=True`` and ``indices_out=``) and ``grad_input(gy, *, x=None, indices=None,
    out=None)`` (max pooling needs ``indices`` from forward, or ``x`` to find them; average
    pooling needs neither), and the attributes ``x_shape``, ``y_shape`` and ``dtype``.
    """
    if not isinstance(kind, str):
        raise TypeError(f"kind must be a string, one of {KINDS}, got {kind!r}")
    if kind not in KINDS:
        raise ValueError(f"kind must be one of {KINDS}, got {kind!r}")
    dtype = _plan_dtype(dtype)
    x_shape = shape_tuple(x_shape, "x_shape")
    count_include_pad = check_bool(count_include_pad, "count_include_pad")
    batched = _batched_shape(x_shape, (kernel_size, stride, padding, dilation))
    k, s, p, d, out = compute.window(batched[2:], kernel_size, stride, padding, dilation,
                                     ceil_mode)
    geometry = dict(kernel_size=k, stride=s, padding=p, dilation=d, ceil_mode=bool(ceil_mode))
    if kind == "max":
        return MaxPoolPlan(x_shape, batched, out, dtype, geometry)
    if any(v != 1 for v in d):
        raise ValueError(f"dilation: average pooling takes no dilation, got {dilation!r}")
    del geometry["dilation"]
    return AvgPoolPlan(x_shape, batched, out, dtype, geometry, count_include_pad)


def _rebuild(kind, x_shape, geometry, dtype):
    return plan(kind, x_shape, dtype=dtype, **geometry)


def _plan_dtype(dtype):
    try:
        dt = np.dtype(dtype)
    except TypeError:
        raise TypeError(f"dtype must be float32 or float64, got {dtype!r}") from None
    if dt not in _CTYPE:
        raise TypeError(f"dtype must be float32 or float64, got {dt}")
    return dt


def _batched_shape(x_shape, spatial_args):
    """``x_shape`` as (N, C, *spatial), by the rule of the pooling functions: a tuple among
    kernel_size, stride, padding, dilation gives the number of spatial axes; with ints only, a
    4-D or 5-D shape is batched, a 2-D one an unbatched 1-D example and a 3-D one ambiguous."""
    nd = compute.spatial_count(*spatial_args)
    n = len(x_shape)
    if nd is None:
        if n == 3:
            raise ValueError(
                f"x_shape {x_shape} with int pooling arguments is ambiguous: a batch of 1-D "
                f"signals (N, C, L) or one unbatched 2-D example (C, H, W); give kernel_size as "
                f"a tuple, (k,) for 1-D or (k, k) for 2-D")
        nd = n - 1 if n == 2 else n - 2
    if not 1 <= nd <= 3 or n not in (nd + 1, nd + 2):
        raise ValueError(f"x_shape must be (N, C, *spatial) or, unbatched, (C, *spatial) with 1 "
                         f"to 3 spatial sizes (as many as the tuples among kernel_size, stride, "
                         f"padding and dilation have), got {x_shape}")
    return x_shape if n == nd + 2 else (1,) + x_shape


def _array_like(a):
    try:
        np.asarray(a)
    except Exception:           # ragged lists and the like
        return False
    return True


def _describe(a):
    return f"dtype {a.dtype}" if isinstance(a, np.ndarray) else type(a).__name__


class _PreparedPool:
    """What both kinds share: the per-call checks of inputs and output buffers."""

    kind = None

    def __init__(self, x_shape, batched, out, dtype, geometry):
        self.dtype = dtype
        self.x_shape = x_shape
        self.y_shape = x_shape[:len(x_shape) - len(out)] + tuple(out)
        self.geometry = geometry
        self._planes = batched[0] * batched[1]
        self._in_vol = int(np.prod(batched[2:], dtype=np.int64))
        self._out_vol = int(np.prod(out, dtype=np.int64))
        self._ctype = _CTYPE[dtype]

    def __reduce__(self):
        """Pickled (a model sent to dask workers holds its layers' plans) as the arguments
        that rebuild it: its compiled kernels cannot be pickled themselves."""
        return (_rebuild, (self.kind, self.x_shape, dict(self.geometry), self.dtype.name))

    def __repr__(self):
        args = ", ".join(f"{k}={v!r}" for k, v in self.geometry.items())
        return (f"fastconv.pooling.plan({self.kind!r}, {self.x_shape}, {args}, "
                f"dtype={self.dtype.name!r}) -> y_shape {self.y_shape}")

    def _input(self, a, name, shape, dtype=None):
        """`a` as a C-contiguous array of `shape` in `dtype` (the plan's by default)."""
        dtype = self.dtype if dtype is None else dtype
        if type(a) is np.ndarray and a.dtype == dtype and a.shape == shape and a.flags.c_contiguous:
            return a
        if not isinstance(a, np.ndarray):
            try:
                a = np.asarray(a)
            except Exception as exc:     # ragged lists and the like
                raise TypeError(f"{name} must be array-like of numbers, got "
                                f"{type(a).__name__}: {exc}") from None
        if a.shape != shape:
            raise ValueError(f"{name} must have shape {shape} (this plan's), got {a.shape}")
        if a.dtype != dtype and not np.can_cast(a.dtype, dtype):
            raise TypeError(f"{name} has dtype {a.dtype}, which does not convert safely to this "
                            f"plan's {dtype}; convert it, or make a plan for its dtype")
        return np.ascontiguousarray(a, dtype=dtype)

    def _output(self, out, name, shape, dtype, inputs):
        """`out` checked as a buffer for a result of `shape` and `dtype` that must not share
        memory with the arrays in `inputs` (name, array), or a new array when it is None."""
        if out is None:
            return _aligned.empty(shape, dtype)
        if not isinstance(out, np.ndarray):
            raise TypeError(f"{name} must be a numpy.ndarray, got {type(out).__name__}")
        if out.dtype != dtype:
            raise TypeError(f"{name} must have dtype {dtype}, got {out.dtype}")
        if out.shape != shape:
            raise ValueError(f"{name} must have shape {shape}, got {out.shape}")
        if not out.flags.c_contiguous:
            raise ValueError(f"{name} must be C-contiguous")
        if not out.flags.writeable:
            raise ValueError(f"{name} must be writeable")
        for what, a in inputs:
            if isinstance(a, np.ndarray) and np.may_share_memory(out, a):
                raise ValueError(f"{name} shares memory with {what}; give a separate buffer")
        return out

    def _threads(self, work):
        """Thread count of a call of `work` multiply-adds: as the pooling functions decide, but
        without the bookkeeping for a problem too small to split (one thread whatever the
        load; about 5 us saved per call)."""
        return 1 if work < _config.SMALL_PROBLEM_FLOPS else compute._threads(work)


class MaxPoolPlan(_PreparedPool):
    """Prepared max pooling (see :func:`plan`); the window tables are built once."""

    kind = "max"

    def __init__(self, x_shape, batched, out, dtype, geometry):
        super().__init__(x_shape, batched, out, dtype, geometry)
        g = geometry
        self._tables, steps = compute.max_tables(batched[2:], g["kernel_size"], g["stride"],
                                                 g["padding"], g["dilation"], out)
        self._steps = np.asarray(steps, dtype=compute.INDEX)
        self._in_size = np.array([compute.lift(batched[2:])], dtype=compute.INDEX)
        self._work = int(np.prod(batched, dtype=np.int64)) * int(np.prod(g["kernel_size"]))
        self._no_indices = np.empty(1, dtype=_INDEX_DTYPE)      # never written
        self._forward = _pooling.max_forward[self._ctype]
        self._scatter = _pooling.max_grad_input[self._ctype]

    def forward(self, x, *, out=None, return_indices=False, indices_out=None):
        """y (written into ``out`` if given), and with ``return_indices`` also the int64 index
        of each maximum in its input plane (into ``indices_out`` if given), as max_pool."""
        return_indices = check_bool(return_indices, "return_indices")
        x_in = x
        x = self._input(x, "x", self.x_shape)
        y = self._output(out, "out", self.y_shape, self.dtype, (("x", x_in), ("x", x)))
        if return_indices:
            idx = self._output(indices_out, "indices_out", self.y_shape, _INDEX_DTYPE,
                               (("x", x_in), ("x", x), ("out", y)))
        elif indices_out is not None:
            raise ValueError("indices_out is written only with return_indices=True")
        else:
            idx = self._no_indices
        if self._planes * self._out_vol:
            self._forward(x.reshape(-1), y.reshape(-1), idx.reshape(-1), return_indices,
                          self._planes, self._in_size, self._tables, self._steps,
                          self._threads(self._work))
        return (y, idx) if return_indices else y

    __call__ = forward

    def grad_input(self, gy, *, x=None, indices=None, out=None):
        """gx: each gy element added to its window's maximum, at ``indices`` (from forward with
        return_indices=True; their range is checked as they are used) or, without them, at the
        maxima of ``x``. Overlapping windows add up in a fixed order."""
        gy_in = gy
        gy = self._input(gy, "gy", self.y_shape)
        if indices is None:
            if x is None:
                raise ValueError("grad_input of max pooling needs indices= (from forward with "
                                 "return_indices=True) or x= (to find the maxima)")
            indices = self.forward(x, return_indices=True)[1]
        else:
            indices = self._indices(indices)
        gx = self._output(out, "out", self.x_shape, self.dtype,
                          (("gy", gy_in), ("gy", gy), ("indices", indices)))
        if not self._scatter(gy.reshape(-1), indices.reshape(-1), gx.reshape(-1), self._planes,
                             self._out_vol, self._in_vol, self._threads(gx.size)):
            raise compute.indices_range_error(indices, self._in_vol)
        return gx

    def _indices(self, indices):
        if not (type(indices) is np.ndarray and indices.dtype == _INDEX_DTYPE):
            kind = np.asarray(indices).dtype.kind if _array_like(indices) else "O"
            if kind not in "iu":
                raise TypeError(f"indices must be an integer array (as forward returns with "
                                f"return_indices=True), got {_describe(indices)}")
        return self._input(indices, "indices", self.y_shape, _INDEX_DTYPE)


class AvgPoolPlan(_PreparedPool):
    """Prepared average pooling (see :func:`plan`): the per-axis banded matrices, their
    transposes and the sequence of 1-D passes are fixed once, as fastconv.pooling's
    ``separable`` would run them."""

    kind = "avg"

    def __init__(self, x_shape, batched, out, dtype, geometry, count_include_pad):
        super().__init__(x_shape, batched, out, dtype, geometry)
        self.geometry["count_include_pad"] = count_include_pad
        g = geometry
        mats = [(compute.avg_matrix(n, k, s, p, o, count_include_pad), n)
                for n, k, s, p, o in zip(batched[2:], g["kernel_size"], g["stride"],
                                         g["padding"], out)]
        lifted = [None] * (compute.LIFTED - len(mats)) + mats
        x4 = (self._planes,) + compute.lift(batched[2:])
        self._forward_passes = self._passes(lifted, x4, (0, 1, 2), transpose=False)
        y4 = (self._planes,) + compute.lift(out)
        self._grad_passes = self._passes(lifted, y4, (2, 1, 0), transpose=True)
        taps = sum(g["kernel_size"])
        self._forward_work = int(np.prod(batched, dtype=np.int64)) * taps
        self._grad_work = self._forward_work
        self._apply = _pooling.axis_apply[self._ctype]

    def _passes(self, lifted, shape, axes, transpose):
        """The 1-D passes (outer, n, inner, CSR in the plan's dtype, size of the result) that
        fastconv.pooling's ``separable`` makes on an array of ``shape``, in its order."""
        passes = []
        for axis in axes:
            if lifted[axis] is None:
                continue
            mat, n = lifted[axis]
            if transpose:
                mat = compute._transpose(mat, n)
            if compute._is_identity(mat, shape[axis + 1]):
                continue
            m_rows = len(mat[0]) - 1
            outer = int(np.prod(shape[:axis + 1]))
            inner = int(np.prod(shape[axis + 2:]))
            values = np.ascontiguousarray(mat[2], dtype=self.dtype)
            passes.append((outer, shape[axis + 1], inner, mat[0], mat[1], values,
                           outer * m_rows * inner))
            shape = shape[:axis + 1] + (m_rows,) + shape[axis + 2:]
        return passes

    def _run(self, passes, a, out, work):
        """`out` = the passes applied to `a` (flat views); intermediate results are new arrays."""
        if not passes:
            out[...] = a
            return
        threads = self._threads(work)
        src = a.reshape(-1)
        last = len(passes) - 1
        for i, (outer, n, inner, indptr, indices, values, size) in enumerate(passes):
            dst = out.reshape(-1) if i == last else _aligned.empty(size, self.dtype)
            self._apply(src, dst, outer, n, inner, indptr, indices, values, threads)
            src = dst

    def forward(self, x, *, out=None):
        """y (written into ``out`` if given), as avg_pool."""
        x_in = x
        x = self._input(x, "x", self.x_shape)
        y = self._output(out, "out", self.y_shape, self.dtype, (("x", x_in), ("x", x)))
        self._run(self._forward_passes, x, y, self._forward_work)
        return y

    __call__ = forward

    def grad_input(self, gy, *, x=None, indices=None, out=None):
        """gx, the transpose of forward applied to gy, as avg_pool_grad_input; ``x`` is not
        needed (its shape is checked if given) and average pooling has no ``indices``."""
        if indices is not None:
            raise ValueError("indices: average pooling has none (they belong to max pooling)")
        if x is not None and np.shape(x) != self.x_shape:
            raise ValueError(f"x must have shape {self.x_shape} (this plan's), got "
                             f"{np.shape(x)}")
        gy_in = gy
        gy = self._input(gy, "gy", self.y_shape)
        gx = self._output(out, "out", self.x_shape, self.dtype, (("gy", gy_in), ("gy", gy)))
        self._run(self._grad_passes, gy, gx, self._grad_work)
        return gx


__all__ = ["plan", "KINDS", "MaxPoolPlan", "AvgPoolPlan"]
