"""Prepared convolutions: decide once per shape, then run many times with nothing but arithmetic.

The anchors are FFTW's ``fftw_plan``, oneDNN's primitives and cuDNN's descriptors: a training
loop convolves the same shapes every step, so the geometry's validation and the choice of
algorithm per operation are made once, in `plan(...)`, and a call then checks only what can
change between calls -- each array's shape, dtype and layout -- and runs. (The algorithms keep
their own per-problem tables in caches keyed by the problem: fft's transform plans and
depthwise's tap tables are built once; im2col's and direct's chunking is recomputed per call,
a few microseconds.) ``out=`` lets the loop reuse its result buffers: the
result is written into it, which is never read.

What a plan keeps and when it looks again:

* The choice of each operation is made at its first call (a plan used only forward never costs
  the gradients' choice) and kept while the chooser's state holds: registering an algorithm,
  calibrating, the workspace limit, autotuning and the strict-choice switch are read as one
  token per call (`_registry.chooser_state`); a change makes the next call choose again.
* "auto" stays under the safety net (`_safety_net`): a plan's calls are timed like `conv`'s,
  and a problem the net re-ranks by measurement switches algorithm at the next call.
* Nothing derived from the kernel's *values* is kept between calls (the kernel is an argument
  of every call): a stale transformed kernel is impossible by construction. Algorithms that
  apply only to some kernels (separable: rank one) are left out of "auto" -- as in `choose` --
  and, forced, are checked against each call's kernel.

Results are those of `conv`, `conv_grad_input` and `conv_grad_kernel` with the same arguments
and algorithm, bit for bit (tests/test_prepared.py).
"""
import numpy as np

from . import _config, _registry, _timing
from ._functional import add_bias, fold_padding, pad
from ._geometry import check_padding_mode, make_spec, with_explicit_padding
from ._validate import check_bool, float_dtype, shape_tuple

OPERATIONS = _registry.OPERATIONS


def plan(x_shape, w_shape, *, stride=1, padding=0, dilation=1, groups=1, dtype="float32",
         flip=False, padding_mode="zeros", algorithm="auto"):
    """A prepared convolution of inputs of shape `x_shape` (N, C, *spatial) with kernels of shape
    `w_shape` (K, C/groups, *kernel): the arguments mean what they mean for `fastconv.conv`.

    ``p.forward(x, w, bias=None, out=None)``, ``p.grad_input(gy, w, out=None)`` and
    ``p.grad_kernel(x, gy, out=None)`` compute what `conv`, `conv_grad_input` and
    `conv_grad_kernel` compute, in `dtype` (float32 or float64); ``fastconv.explain(p)`` shows
    the chooser's table and what the plan runs.
    """
    return ConvPlan(x_shape, w_shape, stride=stride, padding=padding, dilation=dilation,
                    groups=groups, dtype=dtype, flip=flip, padding_mode=padding_mode,
                    algorithm=algorithm)


def _written(result, out):
    """`result` (made C-contiguous), or `out` holding it when given."""
    if out is None:
        return np.ascontiguousarray(result)
    out[...] = result
    return out


class _Choice:
    """One operation's algorithm and how to run it, valid while the chooser's state is `state`."""

    __slots__ = ("name", "run", "tally", "state", "key", "weights")

    def __init__(self, name, run, tally, state, key, weights):
        self.name, self.run, self.tally, self.state = name, run, tally, state
        self.key, self.weights = key, weights


class ConvPlan:
    """A convolution prepared for one problem (see the module docstring and `plan`)."""

    def __init__(self, x_shape, w_shape, *, stride=1, padding=0, dilation=1, groups=1,
                 dtype="float32", flip=False, padding_mode="zeros", algorithm="auto"):
        dtype = float_dtype(dtype)
        self.flip = check_bool(flip, "flip")
        _registry.check_algorithm(algorithm)
        x_shape, w_shape = shape_tuple(x_shape, "x_shape"), shape_tuple(w_shape, "w_shape")
        if len(w_shape) in (3, 4, 5) and len(x_shape) == len(w_shape) - 1:
            raise ValueError(f"x_shape must be batched, (N, C, *spatial) with {len(w_shape)} "
                             f"entries for the kernel shape {w_shape}; got {x_shape}: plan an "
                             f"unbatched example as (1, *x_shape)")
        spec = make_spec(x_shape, w_shape, stride=stride, padding=padding, dilation=dilation,
                         groups=groups, dtype=dtype, x_name="x_shape", w_name="w_shape")
        check_padding_mode(padding_mode, spec)
        self.spec, self.padding_mode, self.algorithm = spec, padding_mode, algorithm
        self.dtype = dtype
        self._run_spec = spec if padding_mode == "zeros" else with_explicit_padding(spec)
        self.x_shape = spec.user_shape(spec.x_shape)
        self.w_shape = spec.user_shape(spec.w_shape)
        self.y_shape = spec.user_shape(spec.y_shape)
        self._empty = 0 in (spec.batch, spec.out_channels, spec.in_channels)
        self._choices = {}

    def __getstate__(self):         # pickled (a model sent to another process): choose again there
        return {k: v for k, v in self.__dict__.items() if k != "_choices"}

    def __setstate__(self, state):
        self.__dict__.update(state, _choices={})

    def __repr__(self):
        s, lift = self.spec, 3 - self.spec.ndim
        return (f"ConvPlan(x_shape={self.x_shape}, w_shape={self.w_shape}, "
                f"stride={s.stride[lift:]}, padding={(s.pad_low[lift:], s.pad_high[lift:])}, "
                f"dilation={s.dilation[lift:]}, groups={s.groups}, dtype={self.dtype.name}, "
                f"algorithm={self.algorithm!r})")

    # --- the choice -------------------------------------------------------------------------
    def _choose(self, op, w):
        spec, algorithm = self._run_spec, self.algorithm
        state = _registry.chooser_state()
        if _registry.watched(algorithm):
            name, tally = _registry.watched_choice(spec, op, None, prepared=True)
        else:
            name, tally = _registry.select(spec, op, algorithm, w).NAME, None
        impl = _registry.registered()[name]
        choice = _Choice(name, _registry.prepared(name, spec, op), tally, state,
                         (spec, op, name), hasattr(impl, "supports_weights"))
        self._choices[op] = choice
        return choice

    def algorithm_for(self, op):
        """The algorithm this plan runs for `op` (choosing it now if no call has yet)."""
        if op not in OPERATIONS:
            raise ValueError(f"op must be one of {OPERATIONS}, got {op!r}")
        if self.algorithm not in _registry.CHOICES:     # forced: checked against each call's kernel
            return self.algorithm
        choice = self._choices.get(op)
        if choice is None or choice.state != _registry.chooser_state():
            choice = self._choose(op, None)
        return choice.name

    def _run(self, op, a, b, w, out5):
        choice = self._choices.get(op)
        if choice is None or choice.state != _registry.chooser_state():
            choice = self._choose(op, w)
        if choice.weights:          # a forced kernel-dependent algorithm: this kernel must fit
            _registry.select(self._run_spec, op, choice.name, w)
        spec = self._run_spec
        _registry.note_used(choice.name, spec)
        with _config.threads_for(_config.work(spec), choice.key):
            start = _timing.clock()
            result = choice.run(a, b, out5)
            seconds = _timing.clock() - start
        if choice.tally is not None and choice.tally.add(seconds):
            _registry.measure_for_net(spec, op, w, choice.name, seconds)
            self._choices.pop(op, None)     # the net's winner (or the pick) from the next call
        if out5 is not None and result is not out5:
            out5[...] = result
            return out5
        return result

    # --- the arrays of a call ------------------------------------------------------------------
    def _array(self, a, name, shape):
        """`a` as a C-contiguous array of the plan's dtype and `shape`; converted (copied) from
        another layout or a dtype that casts safely, else a clear error."""
        if type(a) is np.ndarray and a.dtype == self.dtype and a.shape == shape \
                and a.flags.c_contiguous:
            return a
        if not isinstance(a, np.ndarray):
            a = np.asarray(a)
        if a.shape != shape:
            raise ValueError(f"{name} must have shape {shape} (this plan's), got {a.shape}")
        if a.dtype.kind not in "biuf" or not np.can_cast(a.dtype, self.dtype, "safe"):
            raise TypeError(f"{name} has dtype {a.dtype}, which this {self.dtype.name} plan does "
                            f"not convert to without loss; pass {self.dtype.name} arrays or "
                            f"make the plan with dtype={a.dtype.name!r}" if a.dtype.kind == "f"
                            else f"{name} must be a real numeric array, got dtype {a.dtype}")
        return np.ascontiguousarray(a, dtype=self.dtype)

    def _out(self, out, shape, inputs):
        """`out` checked as the result's buffer; None when not given."""
        if out is None:
            return None
        if type(out) is not np.ndarray:
            raise TypeError(f"out must be a numpy.ndarray, got {type(out).__name__}")
        if out.shape != shape or out.dtype != self.dtype:
            raise ValueError(f"out must have shape {shape} and dtype {self.dtype.name}, got "
                             f"shape {out.shape} and dtype {out.dtype}")
        if not (out.flags.c_contiguous and out.flags.writeable):
            raise ValueError("out must be C-contiguous and writeable")
        for a, name in inputs:
            if a is not None and np.may_share_memory(out, a):
                raise ValueError(f"out must not overlap {name} (the result would overwrite "
                                 f"what it is computed from)")
        return out

    def _kernel5(self, w):
        w5 = w.reshape(self.spec.w_shape)
        return np.ascontiguousarray(w5[..., ::-1, ::-1, ::-1]) if self.flip else w5

    def _zeros(self, out, shape):
        if out is None:
            return np.zeros(shape, self.dtype)
        out.fill(0)
        return out

    # --- the three operations -------------------------------------------------------------
    def forward(self, x, w, bias=None, *, out=None):
        """`conv(x, w, bias, ...)` of the planned problem, written into `out` if given."""
        x = self._array(x, "x", self.x_shape)
        w = self._array(w, "w", self.w_shape)
        if bias is not None:
            bias = self._array(bias, "bias", (self.spec.out_channels,))
        out = self._out(out, self.y_shape, ((x, "x"), (w, "w"), (bias, "bias")))
        if self._empty:
            return add_bias(self._zeros(out, self.y_shape), bias)
        spec = self.spec
        x5 = x.reshape(spec.x_shape)
        if self.padding_mode != "zeros":
            x5 = pad(x5, spec, self.padding_mode)
        w5 = self._kernel5(w)
        out5 = None if out is None else out.reshape(spec.y_shape)
        y5 = self._run("forward", x5, w5, w5, out5)
        y = out if out is not None else y5.reshape(self.y_shape)
        return y if bias is None else add_bias(y, bias)

    def grad_input(self, gy, w, *, out=None):
        """`conv_grad_input(gy, w, x_shape, ...)` of the planned problem (into `out` if given)."""
        gy = self._array(gy, "gy", self.y_shape)
        w = self._array(w, "w", self.w_shape)
        out = self._out(out, self.x_shape, ((gy, "gy"), (w, "w")))
        if self._empty:
            return self._zeros(out, self.x_shape)
        spec = self.spec
        w5 = self._kernel5(w)
        if self.padding_mode != "zeros":    # the padded input's gradient, folded back
            gx5 = fold_padding(self._run("grad_input", gy.reshape(spec.y_shape), w5, w5, None),
                               spec, self.padding_mode)
            return _written(gx5.reshape(self.x_shape), out)
        out5 = None if out is None else out.reshape(spec.x_shape)
        gx5 = self._run("grad_input", gy.reshape(spec.y_shape), w5, w5, out5)
        return out if out is not None else gx5.reshape(self.x_shape)

    def grad_kernel(self, x, gy, *, out=None):
        """`conv_grad_kernel(x, gy, w_shape, ...)` of the planned problem (into `out` if given)."""
        x = self._array(x, "x", self.x_shape)
        gy = self._array(gy, "gy", self.y_shape)
        out = self._out(out, self.w_shape, ((x, "x"), (gy, "gy")))
        if self._empty:
            return self._zeros(out, self.w_shape)
        spec = self.spec
        x5 = x.reshape(spec.x_shape)
        if self.padding_mode != "zeros":
            x5 = pad(x5, spec, self.padding_mode)
        gy5 = gy.reshape(spec.y_shape)
        if self.flip:               # d/dw of conv with flip(w) is the flip of d/dw'
            gw5 = self._run("grad_kernel", x5, gy5, None, None)
            return _written(gw5[..., ::-1, ::-1, ::-1].reshape(self.w_shape), out)
        out5 = None if out is None else out.reshape(spec.w_shape)
        gw5 = self._run("grad_kernel", x5, gy5, None, out5)
        return out if out is not None else gw5.reshape(self.w_shape)

    @property
    def flops(self):
        """Multiply-adds x 2 of one operation (the three count alike)."""
        return self.spec.flops

    def workspace(self, op):
        """Bytes of scratch the algorithm chosen for `op` allocates per call."""
        name = self.algorithm_for(op)
        return _registry.registered()[name].workspace(self._run_spec, op)
