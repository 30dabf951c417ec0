"""The layer base class: explicit forward and backward, no autograd graph.

A :class:`Module` computes ``forward(x)`` on NumPy arrays and, given the gradient of the loss with
respect to its output, ``backward(gy)`` returns the gradient with respect to its input and *adds*
the gradients of its parameters into ``grads`` (so a layer applied several times, as in the
recurrent network of figure 9.17, accumulates the sum over its uses).

What backward needs is pushed on a small stack by each forward call in training mode and popped by
each backward call, so a layer used k times is backpropagated by k backward calls in the reverse
order. In evaluation mode (``eval()``) forward caches nothing.

Every subclass's constructor arguments are recorded automatically (``config()``), which is what
``fastconv.nn.save`` writes as the architecture.
"""
import functools
import inspect
import numbers

import numpy as np

from .._validate import float_dtype  # noqa: F401  (the layers' dtype check, imported from here)

_REGISTRY = {}

_default_rng = np.random.default_rng(0)


def manual_seed(seed):
    """Reseed the generator that layers built with ``seed=None`` draw their initial weights from.

    It is seeded with 0 at import, so a script that builds the same model gets the same weights on
    every run; layers built one after another still get different weights.
    """
    global _default_rng
    _default_rng = np.random.default_rng(seed)


def make_rng(seed):
    """A Generator from ``seed``: None (the module-level generator), an int, or a Generator."""
    if seed is None:
        return _default_rng
    if isinstance(seed, np.random.Generator):
        return seed
    if isinstance(seed, (bool, np.bool_)) or not isinstance(seed, numbers.Integral):
        raise TypeError(f"seed must be None, an int or a numpy.random.Generator, got {seed!r}")
    return np.random.default_rng(int(seed))


def registered(name):
    """The Module class registered under ``name`` (for load)."""
    try:
        return _REGISTRY[name]
    except KeyError:
        raise ValueError(f"unknown layer type {name!r} in the architecture; known: "
                         f"{sorted(_REGISTRY)} (import the module that defines it first)") from None


def _record_init(init):
    signature = inspect.signature(init)

    @functools.wraps(init)
    def wrapped(self, *args, **kwargs):
        if "_init_args" not in self.__dict__:          # outermost constructor only
            bound = signature.bind(self, *args, **kwargs)
            bound.apply_defaults()
            recorded = {}
            for name, param in list(signature.parameters.items())[1:]:
                value = bound.arguments.get(name)
                if param.kind is inspect.Parameter.VAR_KEYWORD:
                    recorded.update(value or {})
                else:
                    recorded[name] = value
            object.__setattr__(self, "_init_args", recorded)
            object.__setattr__(self, "_init_varargs", [
                n for n, p in signature.parameters.items() if p.kind is inspect.Parameter.VAR_POSITIONAL])
        init(self, *args, **kwargs)

    return wrapped


class Module:
    """Base class of every layer and container (see the module docstring)."""

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        if "__init__" in cls.__dict__:
            cls.__init__ = _record_init(cls.__dict__["__init__"])
        _REGISTRY[cls.__name__] = cls

    def __init__(self):
        d = self.__dict__
        d.setdefault("_params", {})
        d.setdefault("grads", {})
        d.setdefault("_buffers", {})
        d.setdefault("_children", {})
        d.setdefault("_cache", [])
        d.setdefault("training", True)

    # --- registration ------------------------------------------------------------------
    def add_parameter(self, name, value):
        """Register a trainable array; its gradient lives in ``self.grads[name]``."""
        value = np.asarray(value, order="C")
        self._params[name] = value
        self.grads[name] = np.zeros_like(value)
        object.__setattr__(self, name, value)
        return value

    def add_buffer(self, name, value):
        """Register a saved, non-trainable array (running statistics)."""
        value = np.asarray(value, order="C")
        self._buffers[name] = value
        object.__setattr__(self, name, value)
        return value

    def add_module(self, name, module):
        if not isinstance(module, Module):
            raise TypeError(f"{name} must be a fastconv.nn.Module, got {type(module).__name__}")
        self._children[name] = module
        object.__setattr__(self, name, module)
        return module

    def __setattr__(self, name, value):
        d = self.__dict__
        if name in d.get("_params", ()):
            value = np.asarray(value)
            old = d["_params"][name]
            if value.shape != old.shape:
                raise ValueError(f"{type(self).__name__}.{name} must have shape {old.shape}, got "
                                 f"{value.shape}")
            old[...] = value           # in place: optimizers hold this very array
        elif name in d.get("_buffers", ()):
            self.add_buffer(name, value)
        elif isinstance(value, Module) and "_children" in d:
            self.add_module(name, value)
        else:
            object.__setattr__(self, name, value)

    # --- what subclasses implement -------------------------------------------------------
    def forward(self, x):
        raise NotImplementedError

    def backward(self, gy):
        raise NotImplementedError

    def backward_parameters(self, gy):
        """`backward` for when the gradient with respect to the input is not wanted (the first
        layer of a network): the parameter gradients are accumulated alike, and layers that can
        skip computing the input gradient (a convolution's eq. 9.13) do. Returns None."""
        self.backward(gy)

    def __call__(self, *args, **kwargs):
        return self.forward(*args, **kwargs)

    PLANS_KEPT = 8      # prepared operations a layer keeps (one per input shape and dtype)

    def _kept_plan(self, key, make=None):
        """The prepared operation (fastconv.plan, fastconv.pooling.plan) this layer keeps under
        `key`, or None; with `make` (a callable) it is made and kept when missing. A layer fed
        inputs of many shapes keeps the PLANS_KEPT most recently made: the oldest goes."""
        plans = self.__dict__.setdefault("_plans", {})
        plan = plans.get(key)
        if plan is None and make is not None:
            if len(plans) >= self.PLANS_KEPT:
                del plans[next(iter(plans))]
            plan = plans[key] = make()
        return plan

    def _push(self, *items):
        if self.training:
            self._cache.append(items)

    def _pop(self):
        if not self._cache:
            raise RuntimeError(f"{type(self).__name__}.backward called without a matching forward "
                               "in training mode (call model.train() and forward first)")
        return self._cache.pop()

    def clear_cache(self):
        """Forget what forward calls cached for backward (in this module and its children)."""
        for m in self.modules():
            m._cache.clear()

    # --- traversal ---------------------------------------------------------------------
    def children(self):
        return list(self._children.values())

    def named_children(self):
        return list(self._children.items())

    def modules(self):
        """This module and every module inside it, depth first, each once (a layer shared by
        several places, as in a recurrent network, is listed once)."""
        out, seen = [], set()

        def visit(m):
            if id(m) in seen:
                return
            seen.add(id(m))
            out.append(m)
            for child in m._children.values():
                visit(child)
        visit(self)
        return out

    def _named(self, table, prefix="", seen=None):
        seen = set() if seen is None else seen
        if id(self) in seen:
            return []
        seen.add(id(self))
        out = [(prefix + name, value) for name, value in table(self).items()]
        for cname, child in self._children.items():
            out.extend(child._named(table, f"{prefix}{cname}.", seen))
        return out

    def named_parameters(self):
        """(dotted name, array) for every parameter, each once."""
        return self._named(lambda m: m._params)

    def parameters(self):
        return [p for _, p in self.named_parameters()]

    def named_gradients(self):
        return self._named(lambda m: {name: m.grads[name] for name in m._params})

    def gradients(self):
        """The gradient arrays, in the order of ``parameters()``."""
        return [g for _, g in self.named_gradients()]

    def param_groups(self):
        """(parameter, gradient) pairs: what the optimizers update in place."""
        return list(zip(self.parameters(), self.gradients()))

    def named_buffers(self):
        return self._named(lambda m: m._buffers)

    def num_parameters(self):
        return int(sum(p.size for p in self.parameters()))

    def zero_grad(self):
        for g in self.gradients():
            g.fill(0)

    def train(self, mode=True):
        for m in self.modules():
            m.training = bool(mode)
            m._cache.clear()
        return self

    def eval(self):
        return self.train(False)

    def to(self, dtype):
        """Convert parameters, gradients and buffers to float32 or float64 (build optimizers after)."""
        dt = float_dtype(dtype)
        for m in self.modules():
            for name, p in list(m._params.items()):
                m.add_parameter(name, p.astype(dt))
            for name, b in list(m._buffers.items()):
                if b.dtype.kind == "f":
                    m.add_buffer(name, b.astype(dt))
            if "dtype" in m.__dict__:
                object.__setattr__(m, "dtype", dt)
            m._cache.clear()
        return self

    # --- state ---------------------------------------------------------------------------
    def state_dict(self):
        """Copies of every parameter and buffer, by dotted name."""
        state = {name: p.copy() for name, p in self.named_parameters()}
        state.update((name, b.copy()) for name, b in self.named_buffers())
        return state

    def load_state_dict(self, state, strict=True):
        """Copy arrays into the parameters and buffers in place (shapes and names must match)."""
        own = dict(self.named_parameters())
        own.update(self.named_buffers())
        missing = sorted(set(own) - set(state))
        unexpected = sorted(set(state) - set(own))
        if strict and (missing or unexpected):
            raise ValueError(f"state does not match the model: missing {missing}, unexpected "
                             f"{unexpected}")
        for name, target in own.items():
            if name not in state:
                continue
            value = np.asarray(state[name])
            if value.shape != target.shape:
                raise ValueError(f"state entry {name!r} has shape {value.shape}, the model's "
                                 f"has {target.shape}")
            target[...] = value
        return self

    def config(self):
        """The architecture: this class's registered name and its constructor arguments."""
        args = dict(self.__dict__.get("_init_args", {}))
        if "dtype" in args and "dtype" in self.__dict__:
            args["dtype"] = np.dtype(self.dtype).name
        return {"type": type(self).__name__, "args": args,
                "varargs": list(self.__dict__.get("_init_varargs", []))}

    # --- display ---------------------------------------------------------------------------
    def extra_repr(self):
        return ""

    def __repr__(self):
        head = f"{type(self).__name__}({self.extra_repr()})"
        if not self._children:
            return head
        lines = [f"{type(self).__name__}("]
        for name, child in self._children.items():
            body = repr(child).replace("\n", "\n  ")
            lines.append(f"  ({name}): {body}")
        lines.append(")")
        return "\n".join(lines)
