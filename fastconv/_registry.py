"""The algorithm registry and the chooser.

An algorithm is a module (or object) with a ``NAME`` and the interface of docs/STYLE.md:

    supports(spec, op) -> (bool, reason)      cost(spec, op) -> predicted seconds
    workspace(spec, op) -> bytes              forward(spec, x, w) -> y
    grad_input(spec, gy, w) -> gx             grad_kernel(spec, x, gy) -> gw

where ``op`` is one of OPERATIONS and the arrays are lifted to three spatial dimensions,
C-contiguous, of ``spec.dtype``. An algorithm whose applicability depends on the kernel's values
(separable: a rank-one kernel) also has ``supports_weights(spec, op, w) -> (bool, reason)``; where
the kernel is not known (``choose``/``explain`` on shapes, the kernel gradient) it does not apply.
An algorithm whose results can differ from the textbook sum's where values are not finite
declares ``NONFINITE`` ({op: rule}); the registry applies that policy (`_finite`) to every call
it runs, and an operation may then return None to have its call computed by summation.

Choosing, per operation (the three are chosen separately):

* ``"auto"`` picks the algorithm with the lowest predicted time among those that support the call
  within the workspace limit. A prediction is the algorithm's own cost model (operation counts and
  memory traffic weighed by constants fitted on the development machine) through its calibration
  for this machine (`_calibration`: scale * cost + overhead, (1, 0) until ``fastconv.calibrate()``
  has run). The models
  predict for the machine's cores (`_config.planning_threads()`), never the thread setting, so the
  pick -- and so the result's rounding -- does not change with ``set_num_threads``.
* ``"tune"`` (and ``"auto"`` under ``set_autotune(True)``) times the applicable algorithms on the
  first call of a problem and runs the fastest from then on (records: `_autotune`; timing:
  `_measure`).
* A name forces that algorithm; if it cannot compute the problem, NotSupportedError says why.

Memory: every algorithm reports ``workspace(spec, op)``, the bytes it will allocate for the call
*within the current limit* (``set_workspace_limit``), and the chooser never takes one above the
limit. The algorithms tile rather than refuse: im2col packs fewer output columns per chunk and
runs fewer threads, fft cuts the axes into overlap-save/add tiles and the batch into chunks,
separable processes fewer rows per block, direct needs only index tables; an algorithm refuses
(``supports`` is false) only when even its smallest tile does not fit.
"""
import contextlib
import functools
import threading

from . import _autotune, _calibration, _config, _finite, _kernel_level, _safety_net, _timing

OPERATIONS = ("forward", "grad_input", "grad_kernel")
CHOICES = ("auto", "tune")

_ALGORITHMS = {}
_NO_RULES = {}                  # NONFINITE of an algorithm that declares none
_generation = 0                 # bumped whenever what "auto" would pick may have changed
_last = threading.local()       # the algorithm the last run() of this thread used (benchmarks)


class _CheckedOnce(threading.local):
    seen = None             # the set of (algorithm, spec, op) checked inside
                            # supports_checked_once(), else None


_checked_once = _CheckedOnce()


def _unmeasured(*args, **kwargs):
    raise RuntimeError("fastconv's measuring floor (fastconv._measure) is not loaded; import "
                       "fastconv, which loads it")


_measurer = {"tune": _unmeasured, "net_measure": _unmeasured}


def set_measurer(*, tune, net_measure):
    """Where the registry's measurements go: the measuring floor (`_measure`) registers itself here
    at import, so that the registry, below it, never imports what runs algorithms to time them.

    ``tune(spec, op, candidates, w)`` -> (fastest name, {name: seconds or None}) times
    `candidates` [(predicted seconds, name, impl)] for ``"tune"``; ``net_measure(spec, op, w,
    picked, seconds)`` is the safety net's one measurement of a problem, which settles its winner
    (`_safety_net.settle`).
    """
    _measurer.update(tune=tune, net_measure=net_measure)


class NotSupportedError(ValueError):
    """A forced algorithm cannot compute the problem; the message says why."""


def register(impl):
    for op, rule in getattr(impl, "NONFINITE", _NO_RULES).items():
        if op not in OPERATIONS or rule not in _finite.RULES:
            raise ValueError(f"algorithm {impl.NAME!r}: NONFINITE maps an operation of "
                             f"{OPERATIONS} to one of {_finite.RULES}, got {op!r}: {rule!r}")
    _ALGORITHMS[impl.NAME] = impl
    clear_caches()
    return impl


def registered():
    """{name: implementation} of the registered algorithms, in registration order."""
    return dict(_ALGORITHMS)


def clear_caches():
    """Forget cached rankings (after registering an algorithm or calibrating)."""
    global _generation
    _ranking.cache_clear()
    _generation += 1


def chooser_state():
    """A token that changes whenever a choice made before may no longer be the chooser's: an
    algorithm registered, a calibration, the workspace limit, autotuning, strict choice.
    Prepared convolutions (`_prepared`) keep their choices while it holds."""
    return (_generation, _config._workspace_limit, _autotune._enabled, _safety_net._strict,
            _safety_net.changes)       # attributes, not getters: read on every prepared call


def _calibration_changed():
    clear_caches()
    _safety_net.reset()


def algorithms():
    """The names of the registered algorithms, in registration order."""
    return tuple(_ALGORITHMS)


def check_algorithm(algorithm):
    if not isinstance(algorithm, str):
        raise TypeError(f"algorithm must be a str, got {algorithm!r} ({type(algorithm).__name__})")
    if algorithm not in CHOICES and algorithm not in _ALGORITHMS:
        raise ValueError(f"algorithm must be 'auto', 'tune' or one of {algorithms()}, "
                         f"got {algorithm!r}")


def _supports(impl, spec, op, w):
    ok, reason = impl.supports(spec, op)
    return _weights_supported(impl, spec, op, w) if ok else (ok, reason)


def _weights_supported(impl, spec, op, w):
    check_weights = getattr(impl, "supports_weights", None)
    if check_weights is None:
        return True, ""
    if w is None:
        return False, "depends on the kernel's values, which only the call itself has"
    return check_weights(spec, op, w)


def predicted(name, spec, op):
    """Predicted seconds of algorithm `name` for `op` on `spec`: its model through its
    calibration (scale * cost + overhead)."""
    scale, overhead = _calibration.factor(name, op, spec.dtype.name, _calibration.kind(spec))
    return _ALGORITHMS[name].cost(spec, op) * scale + overhead


def assess(spec, op, w=None):
    """One row per algorithm: (name, applies, reason, predicted seconds, workspace bytes)."""
    limit = _config.get_workspace_limit()
    rows = []
    for name, impl in _ALGORITHMS.items():
        ok, reason = _supports(impl, spec, op, w)
        cost = workspace = None
        if ok:
            cost, workspace = predicted(name, spec, op), impl.workspace(spec, op)
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
    Cleared when an algorithm is registered or the calibration changes.
    """
    ranked = []
    for name, impl in _ALGORITHMS.items():
        ok, _ = impl.supports(spec, op)
        if ok and impl.workspace(spec, op) <= limit:
            ranked.append((predicted(name, spec, op), name, hasattr(impl, "supports_weights")))
    return tuple(sorted(ranked))


def candidates(spec, op, w):
    """[(predicted seconds, name, impl)] of the algorithms that compute this call, cheapest first."""
    return [(cost, name, _ALGORITHMS[name]) for cost, name, needs_weights
            in _ranking(spec, op, _config.get_workspace_limit())
            if not needs_weights or (w is not None and _ALGORITHMS[name].supports_weights(spec, op, w)[0])]


def _none_supports(spec, op, w):
    reasons = "; ".join(f"{name}: {reason}" for name, _, reason, _, _ in assess(spec, op, w))
    return NotSupportedError(f"no algorithm supports this problem ({op}): {reasons}")


def _model_ranked(spec, op, w=None, count=1):
    """[(predicted seconds, name)] of the `count` cheapest applicable algorithms by the models
    (at least one: else NotSupportedError)."""
    found = []
    for cost, name, needs_weights in _ranking(spec, op, _config.get_workspace_limit()):
        if not needs_weights or (w is not None and _ALGORITHMS[name].supports_weights(spec, op, w)[0]):
            found.append((cost, name))
            if len(found) == count:
                break
    if not found:
        raise _none_supports(spec, op, w)
    return found


def _model_pick(spec, op, w=None):
    """(predicted seconds, name) of the cheapest applicable algorithm by the models."""
    return _model_ranked(spec, op, w)[0]


def choose_name(spec, op, w=None):
    """The cheapest applicable algorithm for `op` on `spec` (and kernel `w`, where known)."""
    return _model_pick(spec, op, w)[1]


def shape_choice(spec, op):
    """What "auto" picks on shapes alone: the tuned winner under set_autotune(True) where this
    problem has been timed, the safety net's measured winner where it measured the problem,
    else the models' choice."""
    net = None if _safety_net.get_strict_choice() else _safety_net.winner(spec, op)
    if net is not None:
        return net
    if _autotune.get_autotune():
        record = _autotune.lookup(spec, op)
        winner = _autotune.fastest(record, [name for _, name, _ in candidates(spec, op, None)])
        if winner is not None:
            return winner
    return choose_name(spec, op)


def tuned_name(spec, op, w=None):
    """The fastest applicable algorithm by measurement (timing the untimed ones now)."""
    found = candidates(spec, op, w)
    if not found:
        raise _none_supports(spec, op, w)
    if len(found) == 1:
        return found[0][1]
    return _measurer["tune"](spec, op, found, w)[0]


def watched(algorithm):
    """Whether calls with `algorithm` are timed by the safety net: "auto", unless autotuning
    (which measures every problem itself) or strict choice is on."""
    return (algorithm == "auto" and not _autotune.get_autotune()
            and not _safety_net.get_strict_choice())


def watched_choice(spec, op, w, prepared):
    """(name, its Tally or None) of "auto" under the net: watched_pick's name, and the tally
    that counts its calls -- a prepared convolution's (`prepared`, with its own hot rule) or
    run()'s remembered pick's."""
    slow_s, name = watched_pick(spec, op, w)
    return name, (None if slow_s is None else _safety_net.Tally(spec, op, slow_s, prepared))


def watched_pick(spec, op, w):
    """(the net's bar in seconds or None, name) of "auto" with the safety net: its measured
    winner where it has one (and the winner computes this call), else the models' pick, with
    the time from which its calls count as slow (_safety_net.bar)."""
    name = _safety_net.winner(spec, op)
    if name is not None and _supports(_ALGORITHMS[name], spec, op, w)[0]:
        return None, name
    ranked = _model_ranked(spec, op, w, count=2)
    rival = ranked[1][0] if len(ranked) > 1 else float("inf")
    return _safety_net.bar(ranked[0][0], rival), ranked[0][1]


_auto = {}      # (spec, op) -> (chooser_state(), deciders, {verdicts: (name, its Tally)})


def _deciders(spec, op):
    """The kernel-dependent algorithms (separable: rank one) whose verdict on a kernel can change
    "auto"'s pick or its bar: those ranked before the second shape-only algorithm, and the
    net's measured winner if it is one."""
    names, shape_only = [], 0
    for _, name, needs_weights in _ranking(spec, op, _config.get_workspace_limit()):
        if needs_weights:
            names.append(name)
        else:
            shape_only += 1
            if shape_only == 2:
                break
    winner = _safety_net.winner(spec, op)
    if winner is not None and hasattr(_ALGORITHMS[winner], "supports_weights") \
            and winner not in names:
        names.append(winner)
    return tuple(names)


def _auto_pick(spec, op, w):
    """(name, Tally) of "auto" under the net, remembered per problem -- and per verdict of the
    kernel-dependent algorithms that decide it on this kernel -- while the chooser's state
    holds: a call then costs a lookup and those verdicts, not the ranking's walk. Where no such
    algorithm decides it, the pick is also left as the problem's lane (`_Lane`), from this
    entry itself: another Python thread may replace the entry meanwhile."""
    key = (spec, op)
    state = chooser_state()
    entry = _auto.get(key)
    if entry is None or entry[0] != state:
        if len(_auto) >= 4096:
            _auto.clear()
        entry = _auto[key] = (state, _deciders(spec, op), {})
    _, deciders, picks = entry
    verdicts = tuple(w is not None and _ALGORITHMS[name].supports_weights(spec, op, w)[0]
                     for name in deciders)
    pick = picks.get(verdicts)
    if pick is None:
        pick = picks[verdicts] = watched_choice(spec, op, w, prepared=False)
    if not deciders:        # no kernel can change the pick: the next calls take a lane
        if len(_lanes) >= 4096:
            _lanes.clear()
        _lanes[key] = _Lane(entry[0], spec, op, *pick)
    return pick


class _Lane:
    """A watched "auto" call of one problem and operation whose pick no kernel can change (no
    kernel-dependent algorithm decides it, `_deciders`): everything `run` works out before the
    arithmetic, kept while the chooser's state holds. After a large kernel has flushed the caches
    each step of that working-out costs 10-20x its warm time: the registry's and the functional
    layer's steps took 36 us a call of ResNet-18's layers at batch 1, 26-30 with lanes (2-core
    Xeon, median after a PyTorch call)."""

    __slots__ = ("state", "name", "used", "impl", "rule", "tally", "work", "key")

    def __init__(self, state, spec, op, name, tally):
        """`state`: the chooser's state of the `_auto` entry the pick (name, tally) came from (a
        pick made under an older state leaves a lane that the next call finds stale)."""
        impl = self.impl = _ALGORITHMS[name]
        self.state, self.name, self.used, self.tally = state, name, (name, spec), tally
        self.rule = getattr(impl, "NONFINITE", _NO_RULES).get(op)
        self.work, self.key = _config.work(spec), (spec, op, name)

    def run(self, spec, op, a, b, w):
        _last.used = self.used
        state = _config.enter_call(self.work, self.key)     # threads_for, without the object
        try:
            start = _timing.clock()
            result = getattr(self.impl, op)(spec, a, b)
            if self.rule is not None:
                result = _settle(self.rule, result, spec, op, a, b)
            seconds = _timing.clock() - start
        finally:
            _config.leave_call(self.key, state)
        if self.tally is not None and self.tally.add(seconds):
            measure_for_net(spec, op, w, self.name, seconds)
        return result


_lanes = {}     # (spec, op) -> _Lane


def run(spec, op, algorithm, a, b, w=None):
    """Compute `op` (forward(x, w), grad_input(gy, w) or grad_kernel(x, gy)) on `spec` with
    `algorithm`, on the call's thread budget. An "auto" call under the safety net (_safety_net)
    is timed; when the net asks, the problem is measured once and its winner kept."""
    if algorithm == "auto" and not _autotune._enabled and not _safety_net._strict:
        lane = _lanes.get((spec, op))
        if lane is not None and lane.state == chooser_state():
            return lane.run(spec, op, a, b, w)
    check_algorithm(algorithm)
    if watched(algorithm):
        name, tally = _auto_pick(spec, op, w)
    else:
        name, tally = select(spec, op, algorithm, w).NAME, None
    _last.used = name, spec
    impl = _ALGORITHMS[name]
    with _config.threads_for(_config.work(spec), key=(spec, op, name)):
        start = _timing.clock()
        result = settled(impl, spec, op, getattr(impl, op)(spec, a, b), a, b)
        seconds = _timing.clock() - start
    if tally is not None and tally.add(seconds):
        measure_for_net(spec, op, w, name, seconds)
    return result


def measure_for_net(spec, op, w, picked, seconds):
    """The safety net's one measurement of a problem whose "auto" calls looked wrong."""
    _measurer["net_measure"](spec, op, w, picked, seconds)


def note_used(name, spec):
    """Record the algorithm a call runs (`last_used`)."""
    _last.used = name, spec


def settled(impl, spec, op, result, a, b):
    """`result` of algorithm `impl`'s `op` on (a, b) under the non-finite policy (_finite): as it
    is, or -- where the algorithm gave up (None) or its rule finds a value that is not finite --
    the operation computed again by summation."""
    rule = getattr(impl, "NONFINITE", _NO_RULES).get(op)
    return result if rule is None else _settle(rule, result, spec, op, a, b)


def _settle(rule, result, spec, op, a, b):
    if result is not None and (rule == _finite.GIVES_UP or _finite.all_finite(result)):
        return result
    return _summed(spec, op, a, b)


def _summed(spec, op, a, b):
    """`op` on `spec` by summation: im2col where its workspace fits, else the reference."""
    im2col = _ALGORITHMS["im2col"]
    ok, _ = im2col.supports(spec, op)
    fits = ok and im2col.workspace(spec, op) <= _config.get_workspace_limit()
    return getattr(im2col if fits else _ALGORITHMS["reference"], op)(spec, a, b)


def operation(impl, spec, op):
    """``run(a, b, out)`` computing `op` on `spec` with algorithm `impl`, under the non-finite
    policy: the algorithm writes into `out` (the lifted result buffer, or None) where it takes
    one (``WRITES_OUT``); otherwise the caller copies its result into `out`. An algorithm without
    a rule for `op` runs with nothing added around it."""
    call = getattr(impl, op)
    if getattr(impl, "WRITES_OUT", False):
        def run(a, b, out):
            return call(spec, a, b, out)
    else:
        def run(a, b, out):
            return call(spec, a, b)
    rule = getattr(impl, "NONFINITE", _NO_RULES).get(op)
    if rule is None:
        return run

    def checked(a, b, out):
        return _settle(rule, run(a, b, out), spec, op, a, b)
    return checked


def prepared(name, spec, op):
    """`operation` of the registered algorithm `name`, for a prepared convolution."""
    return operation(_ALGORITHMS[name], spec, op)


def last_used():
    """(algorithm, spec) of the last convolution this thread ran (None before the first)."""
    return getattr(_last, "used", None)


def select(spec, op, algorithm, w=None):
    """The implementation that computes `op` on `spec`, honouring a forced `algorithm`."""
    check_algorithm(algorithm)
    if algorithm == "auto":
        algorithm = "tune" if _autotune.get_autotune() else "auto"
    if algorithm == "auto":     # strict: the models' pick (run() watches the others)
        return _ALGORITHMS[choose_name(spec, op, w)]
    if algorithm == "tune":
        return _ALGORITHMS[tuned_name(spec, op, w)]
    impl = _ALGORITHMS[algorithm]
    checked, key = _checked_once.seen, (algorithm, spec, op)
    if checked is not None and key in checked:
        ok, reason = _weights_supported(impl, spec, op, w)
    else:
        ok, reason = _supports(impl, spec, op, w)
    if not ok:
        raise NotSupportedError(f"algorithm {algorithm!r} does not support this problem ({op}): "
                                f"{reason}")
    if checked is not None:
        checked.add(key)
    return impl


@contextlib.contextmanager
def supports_checked_once():
    """Inside the block (on this thread), a forced algorithm's ``supports`` runs on its first call
    of a problem only, as "auto" checks its pick once a problem: the chooser sweep times each
    algorithm as "auto" would run it. (Outside, a forced call checks every call: 0.3-10 us of
    Python, which made the sweep rank 25-120 us near-ties by their checks.) Checks of the
    kernel's values (``supports_weights``) still run every call, as under "auto"."""
    previous, _checked_once.seen = _checked_once.seen, set()
    try:
        yield
    finally:
        _checked_once.seen = previous


class Explanation:
    """What the chooser sees for each operation.

    str() is a table: per operation, every algorithm, whether it applies (or why not), its
    predicted time (calibrated where calibrate() has run), its measured time where this problem
    has been autotuned, its workspace, and the choice. ``choice`` maps op -> the model's pick,
    ``tuned_choice`` op -> the measured winner (None if never tuned), ``rows`` op -> assess()
    rows and ``measured`` op -> {algorithm: seconds}.
    """

    def __init__(self, spec, planned=None):
        self.spec = spec
        self.planned = planned
        self.calibration = _calibration.current()
        self.rows = {op: assess(spec, op) for op in OPERATIONS}
        self.choice = {op: choose_name(spec, op) for op in OPERATIONS}
        self.measured = {op: _autotune.lookup(spec, op) or {} for op in OPERATIONS}
        self.tuned_choice = {
            op: _autotune.fastest(self.measured[op], [r[0] for r in self.rows[op] if r[1]])
            for op in OPERATIONS}
        self.autotune = _autotune.get_autotune()

    def _header(self):
        s = self.spec
        level = _kernel_level.current()
        if self.calibration is None:
            model = (f"kernel level {level}; cost models: shipped defaults for {level}, "
                     f"measured on {_calibration.shipped_module().MACHINE!r} (run "
                     f"fastconv.calibrate() to fit this machine)")
        else:
            model = (f"kernel level {level}; cost models: calibrated "
                     f"{self.calibration.get('created', '?')} at "
                     f"{self.calibration.get('threads', '?')} thread(s)")
        net = ("off (strict choice)" if _safety_net.get_strict_choice() else
               "on" + "".join(f", {op} re-ranked by measurement"
                              for op in OPERATIONS if _safety_net.winner(self.spec, op)))
        model += f"; safety net {net}"
        return [f"x {s.user_shape(s.x_shape)}  w {s.user_shape(s.w_shape)}  "
                f"y {s.user_shape(s.y_shape)}  {s.dtype.name}  stride {s.stride[3 - s.ndim:]}  "
                f"dilation {s.dilation[3 - s.ndim:]}  groups {s.groups}  "
                f"{s.flops / 1e9:.3f} GFLOP per operation",
                f"{model}; autotune {'on' if self.autotune else 'off'}; workspace limit "
                f"{_config.get_workspace_limit() / 2**20:.1f} MiB"]

    def __str__(self):
        lines = self._header()
        lines.append(f"{'operation':<12} {'algorithm':<10} {'applies':<7} {'predicted':>10} "
                     f"{'measured':>10} {'workspace':>10}  note")
        for op in OPERATIONS:
            pick = self.tuned_choice[op] if self.autotune and self.tuned_choice[op] else self.choice[op]
            if not _safety_net.get_strict_choice() and _safety_net.winner(self.spec, op):
                pick = _safety_net.winner(self.spec, op)
            for name, ok, reason, cost, workspace in self.rows[op]:
                predicted_ms = f"{cost * 1e3:.3f} ms" if cost is not None else "-"
                seconds = self.measured[op].get(name)
                measured = f"{seconds * 1e3:.3f} ms" if seconds is not None else "-"
                space = f"{workspace / 2**20:.1f} MiB" if workspace is not None else "-"
                if name == pick:
                    note = "<- chosen" + (" (tuned)" if pick != self.choice[op] else "")
                elif name == self.tuned_choice[op]:
                    note = "fastest measured"
                else:
                    note = reason
                layout = getattr(_ALGORITHMS[name], "layout", None)
                if ok and layout is not None:       # how it would run this problem
                    note = f"{note} ({layout(self.spec, op)})" if note else layout(self.spec, op)
                lines.append(f"{op:<12} {name:<10} {'yes' if ok else 'no':<7} {predicted_ms:>10} "
                             f"{measured:>10} {space:>10}  {note}")
        if self.planned is not None:
            lines.append("this plan runs: " + ", ".join(f"{op} {name}" for op, name
                                                        in self.planned.items()))
        return "\n".join(lines)

    __repr__ = __str__


_calibration.on_change(_calibration_changed)
