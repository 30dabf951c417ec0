"""The algorithm registry and the chooser.

An algorithm is a module (or object) with a ``NAME`` and the interface of STYLE.md:

    supports(spec, op) -> (bool, reason)      cost(spec, op) -> predicted seconds
    workspace(spec, op) -> bytes              forward(spec, x, w) -> y
    grad_input(spec, gy, w) -> gx             grad_kernel(spec, x, gy) -> gw

where ``op`` is one of OPERATIONS and the arrays are lifted to three spatial dimensions,
C-contiguous, of ``spec.dtype``. An algorithm whose applicability depends on the kernel's values
(separable: a rank-one kernel) also has ``supports_weights(spec, op, w) -> (bool, reason)``; where
the kernel is not known (``choose``/``explain`` on shapes, the kernel gradient) it does not apply.
``"auto"`` picks the cheapest algorithm that supports the call within the workspace limit; naming
one that does not support it raises NotSupportedError.
"""
import functools

from . import _config

OPERATIONS = ("forward", "grad_input", "grad_kernel")

_ALGORITHMS = {}


class NotSupportedError(ValueError):
    """A forced algorithm cannot compute the problem; the message says why."""


def register(impl):
    _ALGORITHMS[impl.NAME] = impl
    _ranking.cache_clear()
    return impl


def algorithms():
    """The names of the registered algorithms, in registration order."""
    return tuple(_ALGORITHMS)


def check_algorithm(algorithm):
    if not isinstance(algorithm, str):
        raise TypeError(f"algorithm must be a str, got {algorithm!r} ({type(algorithm).__name__})")
    if algorithm != "auto" and algorithm not in _ALGORITHMS:
        raise ValueError(f"algorithm must be 'auto' or one of {algorithms()}, got {algorithm!r}")


def _supports(impl, spec, op, w):
    ok, reason = impl.supports(spec, op)
    check_weights = getattr(impl, "supports_weights", None)
    if ok and check_weights is not None:
        if w is None:
            return False, "depends on the kernel's values, which only the call itself has"
        ok, reason = check_weights(spec, op, w)
    return ok, reason


def assess(spec, op, w=None):
    """One row per algorithm: (name, applies, reason, predicted seconds, workspace bytes)."""
    limit = _config.get_workspace_limit()
    rows = []
    for name, impl in _ALGORITHMS.items():
        ok, reason = _supports(impl, spec, op, w)
        cost = workspace = None
        if ok:
            cost, workspace = impl.cost(spec, op), impl.workspace(spec, op)
            if workspace > limit:
                ok, reason = False, (f"needs {workspace / 2**20:.1f} MiB of workspace, above the "
                                     f"limit of {limit / 2**20:.1f} MiB")
        rows.append((name, ok, reason, cost, workspace))
    return rows


@functools.lru_cache(maxsize=4096)
def _ranking(spec, op, limit):
    """Shape-only candidates by predicted time: (cost, name, needs the kernel's values).

    Cached per (problem, operation, workspace limit): the cost models see nothing else (not the
    thread count), so "auto" costs a lookup, not an evaluation of every model, on each call.
    """
    ranked = []
    for name, impl in _ALGORITHMS.items():
        ok, _ = impl.supports(spec, op)
        if ok and impl.workspace(spec, op) <= limit:
            ranked.append((impl.cost(spec, op), name, hasattr(impl, "supports_weights")))
    return tuple(sorted(ranked))


def choose_name(spec, op, w=None):
    """The cheapest applicable algorithm for `op` on `spec` (and kernel `w`, where known)."""
    for _, name, needs_weights in _ranking(spec, op, _config.get_workspace_limit()):
        if not needs_weights or (w is not None and _ALGORITHMS[name].supports_weights(spec, op, w)[0]):
            return name
    reasons = "; ".join(f"{name}: {reason}" for name, _, reason, _, _ in assess(spec, op, w))
    raise NotSupportedError(f"no algorithm supports this problem ({op}): {reasons}")


def select(spec, op, algorithm, w=None):
    """The implementation that computes `op` on `spec`, honouring a forced `algorithm`."""
    check_algorithm(algorithm)
    if algorithm == "auto":
        return _ALGORITHMS[choose_name(spec, op, w)]
    impl = _ALGORITHMS[algorithm]
    ok, reason = _supports(impl, spec, op, w)
    if not ok:
        raise NotSupportedError(f"algorithm {algorithm!r} does not support this problem ({op}): "
                                f"{reason}")
    return impl


class Explanation:
    """What the chooser sees for each operation: str() is a table, `choice` maps op -> name."""

    def __init__(self, spec):
        self.spec = spec
        self.rows = {op: assess(spec, op) for op in OPERATIONS}
        self.choice = {op: choose_name(spec, op) for op in OPERATIONS}

    def __str__(self):
        s = self.spec
        lines = [f"x {s.user_shape(s.x_shape)}  w {s.user_shape(s.w_shape)}  "
                 f"y {s.user_shape(s.y_shape)}  {s.dtype.name}  stride {s.stride[3 - s.ndim:]}  "
                 f"dilation {s.dilation[3 - s.ndim:]}  groups {s.groups}  "
                 f"{s.flops / 1e9:.3f} GFLOP per operation",
                 f"{'operation':<12} {'algorithm':<10} {'applies':<7} {'predicted':>10} "
                 f"{'workspace':>10}  note"]
        for op in OPERATIONS:
            for name, ok, reason, cost, workspace in self.rows[op]:
                predicted = f"{cost * 1e3:.3f} ms" if cost is not None else "-"
                space = f"{workspace / 2**20:.1f} MiB" if workspace is not None else "-"
                note = "<- chosen" if name == self.choice[op] else reason
                lines.append(f"{op:<12} {name:<10} {'yes' if ok else 'no':<7} {predicted:>10} "
                             f"{space:>10}  {note}")
        return "\n".join(lines)

    __repr__ = __str__
