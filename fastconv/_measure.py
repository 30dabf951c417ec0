"""The measuring floor of the chooser: autotuning's timing and the safety net's measurement.

Above the registry: this module runs algorithms to time them, so the registry (the model floor)
never imports it. At import it registers its two entry points with the registry
(`_registry.set_measurer`): ``tune`` for ``algorithm="tune"`` and ``set_autotune(True)``, and
``net_measure`` for the safety net (_safety_net), which `_registry.run()` calls when the net asks
for a problem to be measured. fastconv/__init__ imports it, so the hook is in place before any
call.

What is timed: the same entry points the call uses, on random arrays of the call's shapes and
dtype and on a copy of the call's kernel (its values decide whether weight-dependent algorithms
such as separable apply); the caller's arrays are never passed to anything but the call itself,
so tuning cannot write into them. Each algorithm runs once untimed, then in interleaved rounds,
best of its repeats (`_timing.interleaved`); those within CLOSE of the fastest then run as many
rounds again among themselves (a shared machine's noise otherwise decides near-ties). Algorithms
the cost model predicts PRUNE times slower than the best prediction are not timed (recorded as
null): the oracle would take minutes on a layer and cannot win. An algorithm that becomes
applicable later (a separable kernel under a key first tuned with a general one; a larger
workspace limit) is timed when it first applies, and added. The records are `_autotune`'s.
"""
import numpy as np

from . import _autotune, _config, _registry, _safety_net, _timing

PRUNE = 10.0            # not timed when predicted this many times slower than the best prediction
ROUNDS = 5
CLOSE = 1.15            # algorithms within this of the fastest are timed again, among themselves
BUDGET_S = 0.1          # timing per algorithm beyond the warm-up, at least one repeat a round
NET_BUDGET_CALLS = 10   # the safety net's measurement times each algorithm for about this many of
                        # the pick's calls (at most BUDGET_S): a 0.3 ms layer is measured in
                        # milliseconds, not the second that autotuning's budget gives it. The net
                        # leaves its pick only for one 1.25x faster, twice: at 20 the judge's
                        # networks took 8.2-8.9 s of measurement (AVX-512; 12.0 s at AVX2), at 10
                        # 5.7 s (7.7 s), and the same problems switched (AVX2: as many, a few
                        # near SWITCH's bar the other way, as from one run to the next)


def _inputs(spec, op, w):
    """Random arrays of the call's shapes, and a private copy of the kernel. Uniform in [-0.5,
    0.5), drawn in the call's dtype: a normal draw in float64 cast down took 379 ms for one of
    MobileNetV2's 8 x 96 x 112 x 112 inputs (21 ms so; a kernel's time does not depend on the
    values, finite and of ordinary size)."""
    rng = np.random.default_rng(0)

    def random(shape):      # a spec's dtype is float32 or float64 (_validate.result_dtype)
        a = rng.random(shape, dtype=spec.dtype)
        a -= 0.5
        return a
    if op == "forward":
        return random(spec.x_shape), np.array(w, spec.dtype) if w is not None else random(spec.w_shape)
    if op == "grad_input":
        return random(spec.y_shape), np.array(w, spec.dtype) if w is not None else random(spec.w_shape)
    return random(spec.x_shape), random(spec.y_shape)


def time_algorithms(spec, op, impls, w=None, give_up=None, keep=(), budget=None, inputs=None):
    """{name: best seconds} of running each of `impls` ({name: impl}) on `spec`, interleaved,
    each for about `budget` seconds (None: BUDGET_S, read at the call). With `give_up`, an
    algorithm (but those in `keep`) whose first call took that many times the fastest first call
    is not run again (its first time is its record). `inputs`: a list that keeps the operands
    for the next timing of the same problem (the safety net's head-to-head), or None."""
    budget = BUDGET_S if budget is None else budget
    if inputs is None:
        a, b = _inputs(spec, op, w)
    else:
        if not inputs:
            inputs.extend(_inputs(spec, op, w))
        a, b = inputs
    fns = {name: (lambda run=_registry.operation(impl, spec, op): run(a, b, None))
           for name, impl in impls.items()}
    with _config.threads_for(_config.work(spec)):      # the threads the call itself gets
        return _timing.interleaved(fns, ROUNDS, budget, warmup=1, give_up=give_up, keep=keep,
                                   close=CLOSE)


def tune(spec, op, candidates, w=None, *, floor=None, give_up=None, keep=(), persist=True,
         budget=None, inputs=None):
    """The fastest of `candidates` [(predicted seconds, name, impl)], timing those not yet timed
    for this problem (and recording them, in the cache file too with `persist`); returns
    (name, {name: seconds or None}). Candidates predicted above PRUNE x `floor` (default: the
    best prediction) are not timed, but those in `keep`; `give_up` is time_algorithms'."""
    record = _autotune.lookup(spec, op) or {}
    missing = [(p, name, impl) for p, name, impl in candidates if name not in record]
    if missing:
        floor = min(p for p, _, _ in candidates) if floor is None else floor
        timed = {name: impl for p, name, impl in missing if p <= PRUNE * floor or name in keep}
        new = {name: None for _, name, _ in missing}
        new.update(time_algorithms(spec, op, timed, w, give_up, keep, budget, inputs))
        record = _autotune.add(spec, op, new)
        if persist:
            _autotune.save({_autotune.key(spec, op): new})
    winner = _autotune.fastest(record, [name for _, name, _ in candidates])
    if winner is None:       # only pruned ones were recorded, and the best prediction is gone
        if _autotune.forget_untimed(spec, op, [name for _, name, _ in candidates]):
            return tune(spec, op, candidates, w, floor=floor, give_up=give_up, keep=keep,
                        persist=persist, budget=budget, inputs=inputs)
        return candidates[0][1], record
    return winner, record


def net_measure(spec, op, w, picked, seconds):
    """The safety net's one measurement of a problem: time the candidates the models do not
    rule out against what the pick (`picked`) really took (`seconds`), and keep the fastest
    if it is clearly faster (_safety_net.switches). A measurement that runs out of memory, or
    finds nothing to run, keeps the pick: the call's own result stands either way."""
    try:
        candidates = [(cost, name, impl) for cost, name, impl in _registry.candidates(spec, op, w)
                      if name != "reference"]
        winner, inputs = picked, []
        if len(candidates) > 1:
            floor = seconds * _safety_net.CONSIDER / PRUNE
            budget = min(BUDGET_S, NET_BUDGET_CALLS * seconds)
            fastest, record = tune(spec, op, candidates, w, floor=floor,
                                   give_up=_safety_net.GIVE_UP, keep=(picked,), persist=False,
                                   budget=budget, inputs=inputs)
            if (_safety_net.switches(record.get(picked), record.get(fastest))
                    and _confirmed(spec, op, w, candidates, picked, fastest, budget, inputs)):
                winner = fastest
    except (MemoryError, _registry.NotSupportedError):
        winner = picked
    _safety_net.settle(spec, op, winner)


def _confirmed(spec, op, w, candidates, picked, fastest, budget, inputs):
    """Whether the pick and the measured winner, timed again head to head, agree with the switch:
    a load that passed over the machine during some of the pick's rounds (a 2-core host, another
    process's burst) once made the net leave blocked for an FFT 2.4x slower. A wrong switch now
    takes two such events in a row; a right one costs one more short measurement."""
    impls = {name: impl for _, name, impl in candidates if name in (picked, fastest)}
    again = time_algorithms(spec, op, impls, w, budget=budget, inputs=inputs)
    return _safety_net.switches(again.get(picked), again.get(fastest))


_registry.set_measurer(tune=tune, net_measure=net_measure)
