"""The chooser: choose() names a registered fast algorithm, explain() shows every algorithm and the
choice, the choice computes the problem, and "auto" runs exactly the chosen algorithm (bitwise
equal to forcing it), so nothing falls back silently."""
import numpy as np
import pytest

import fastconv
from fastconv import reference

# Ordinary problems (x shape, w shape, geometry), 1-D to 3-D; random (not separable) kernels.
PROBLEMS = {
    "1d": ((4, 8, 64), (16, 8, 5), dict(padding=2)),
    "2d-3x3": ((2, 8, 24, 20), (16, 8, 3, 3), dict(padding=1)),
    "2d-strided": ((2, 6, 23, 19), (12, 6, 3, 3), dict(stride=2, padding="same")),
    "2d-grouped-dilated": ((2, 8, 20, 18), (8, 2, 3, 3), dict(groups=4, dilation=2, padding=2)),
    "2d-1x1": ((2, 16, 12, 12), (8, 16, 1, 1), {}),
    "2d-large-kernel": ((1, 4, 32, 32), (4, 4, 9, 9), dict(padding="valid")),
    "3d": ((1, 4, 9, 8, 7), (6, 4, 3, 3, 3), dict(padding=1)),
}
DTYPES = ("float32", "float64")


def _arrays(name, dtype):
    xs, ws, kw = PROBLEMS[name]
    rng = np.random.default_rng(len(name))
    return rng.standard_normal(xs).astype(dtype), rng.standard_normal(ws).astype(dtype), kw


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("name", list(PROBLEMS))
def test_choose_names_a_fast_registered_algorithm(name, dtype, algorithm_names):
    xs, ws, kw = PROBLEMS[name]
    chosen = fastconv.choose(xs, ws, dtype=dtype, **kw)
    assert isinstance(chosen, str)
    assert chosen in algorithm_names
    assert chosen != "reference", "the oracle must not be the choice for an ordinary problem"
    assert fastconv.choose(xs, ws, dtype=dtype, **kw) == chosen, "choose is not deterministic"
    assert fastconv.choose(xs, ws, dtype=np.dtype(dtype), **kw) == chosen, "dtype object vs string"


@pytest.mark.parametrize("name", list(PROBLEMS))
def test_explain_lists_every_algorithm_and_the_choice(name, algorithm_names):
    xs, ws, kw = PROBLEMS[name]
    table = str(fastconv.explain(xs, ws, **kw))
    for algorithm in algorithm_names:
        assert algorithm in table, f"explain() does not mention {algorithm!r}:\n{table}"
    chosen = fastconv.choose(xs, ws, **kw)
    assert chosen in table
    assert table.count("\n") >= len(algorithm_names), f"not a table with a row per algorithm:\n{table}"


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("name", list(PROBLEMS))
def test_the_choice_computes_the_problem(name, dtype, assert_close_to_reference):
    x, w, kw = _arrays(name, dtype)
    chosen = fastconv.choose(x.shape, w.shape, dtype=dtype, **kw)
    got = fastconv.conv(x, w, algorithm=chosen, **kw)  # must not raise NotSupportedError
    assert_close_to_reference(got, reference.conv(x, w, **kw), dtype)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("name", list(PROBLEMS))
def test_auto_runs_exactly_the_chosen_algorithm(name, dtype, restore_settings):
    """Bitwise equality with the forced choice, at 1 and at 2 threads: "auto" neither picks another
    algorithm nor falls back to one silently."""
    x, w, kw = _arrays(name, dtype)
    chosen = fastconv.choose(x.shape, w.shape, dtype=dtype, **kw)
    for threads in (1, 2):
        fastconv.set_num_threads(threads)
        auto = fastconv.conv(x, w, algorithm="auto", **kw)
        forced = fastconv.conv(x, w, algorithm=chosen, **kw)
        assert np.array_equal(auto, forced), f"auto differs from the chosen {chosen!r}"


# Problems tailored to what each kind of algorithm is for; every registered algorithm must compute
# at least one of them, so no algorithm is only ever "not applicable".
def _separable(rng, K, C, k):
    w = np.ones((K, C) + k)
    for axis, size in enumerate(k):
        w = w * rng.standard_normal((K, C) + tuple(size if a == axis else 1 for a in range(len(k))))
    return w


def _showcase(rng):
    yield "3x3", rng.standard_normal((2, 4, 16, 16)), rng.standard_normal((4, 4, 3, 3)), dict(padding=1)
    yield "large", rng.standard_normal((1, 2, 40, 40)), rng.standard_normal((2, 2, 15, 15)), dict(padding="same")
    yield "separable", rng.standard_normal((2, 3, 20, 20)), _separable(rng, 3, 3, (7, 7)), dict(padding=3)
    yield "1d-long", rng.standard_normal((1, 2, 200)), rng.standard_normal((2, 2, 31)), {}
    yield "depthwise", rng.standard_normal((2, 6, 16, 16)), rng.standard_normal((6, 1, 3, 3)), dict(groups=6)
    yield "strided", rng.standard_normal((2, 4, 17, 17)), rng.standard_normal((4, 4, 3, 3)), dict(stride=2)
    yield "3d", rng.standard_normal((1, 2, 8, 8, 8)), rng.standard_normal((2, 2, 3, 3, 3)), dict(padding=1)
    yield "1x1", rng.standard_normal((2, 8, 7, 7)), rng.standard_normal((16, 8, 1, 1)), {}


def test_every_algorithm_computes_some_problem(algorithm_names, assert_close_to_reference):
    computed = {a: [] for a in algorithm_names}
    for name, x, w, kw in _showcase(np.random.default_rng(1)):
        expected = reference.conv(x, w, **kw)
        for algorithm in algorithm_names:
            try:
                got = fastconv.conv(x, w, algorithm=algorithm, **kw)
            except fastconv.NotSupportedError as exc:
                assert "does not support" in str(exc)
                continue
            try:
                assert_close_to_reference(got, expected, np.float64)
            except AssertionError as exc:
                raise AssertionError(f"algorithm {algorithm!r} on {name}: {exc}") from None
            computed[algorithm].append(name)
    never = [a for a, names in computed.items() if not names]
    assert not never, f"algorithms that computed none of the showcase problems: {never}"


# --- every operation: the pick computes the call, alone -------------------------------------

OPS = ("forward", "grad_input", "grad_kernel")


def _op_call(op, x, w, kw, algorithm):
    gy = np.random.default_rng(3).standard_normal(fastconv.conv(x, w, **kw).shape).astype(x.dtype)
    if op == "forward":
        return lambda: fastconv.conv(x, w, algorithm=algorithm, **kw)
    if op == "grad_input":
        return lambda: fastconv.conv_grad_input(gy, w, x.shape, algorithm=algorithm, **kw)
    return lambda: fastconv.conv_grad_kernel(x, gy, w.shape, algorithm=algorithm, **kw)


@pytest.mark.parametrize("op", OPS)
@pytest.mark.parametrize("name", list(PROBLEMS))
def test_the_choice_supports_the_call_and_nothing_falls_back(name, op, monkeypatch):
    """Every algorithm but the chosen one raises: "auto" must still compute the call, and give
    exactly the forced choice's result."""
    x, w, kw = _arrays(name, "float32")
    chosen = fastconv.choose(x.shape, w.shape, op=op, **kw)
    expected = _op_call(op, x, w, kw, chosen)()

    def refuse(*args, **kwargs):
        raise AssertionError("an algorithm other than the chosen one ran")
    for other, impl in fastconv._registry.registered().items():
        if other != chosen:
            monkeypatch.setattr(impl, op, refuse)
    assert np.array_equal(_op_call(op, x, w, kw, "auto")(), expected)


def test_explain_reports_the_choice_of_each_operation():
    """explain's per-operation choice is choose(op=...)'s (the three are chosen separately)."""
    for xs, ws, kw in [((1, 1, 512, 512), (1, 1, 15, 15), {}), ((16, 1, 16000), (32, 1, 64), {}),
                       ((8, 3, 224, 224), (64, 3, 3, 3), dict(padding=1))]:
        picks = {op: fastconv.choose(xs, ws, op=op, **kw) for op in OPS}
        table = fastconv.explain(xs, ws, **kw)
        assert table.choice == picks


@pytest.mark.parametrize("name", list(PROBLEMS))
def test_explain_covers_the_three_operations(name):
    xs, ws, kw = PROBLEMS[name]
    explanation = fastconv.explain(xs, ws, **kw)
    table = str(explanation)
    for op in OPS:
        rows = [line for line in table.splitlines() if line.startswith(op)]
        assert len(rows) == len(fastconv.algorithms()), f"{op}: {rows}"
        chosen = [line for line in rows if "<- chosen" in line]
        assert len(chosen) == 1 and explanation.choice[op] in chosen[0]
        assert explanation.choice[op] == fastconv.choose(xs, ws, op=op, **kw)
    assert "predicted" in table and "measured" in table and "workspace" in table


def test_the_choice_does_not_depend_on_the_thread_setting(restore_settings):
    picks = {}
    for threads in (1, 2):
        fastconv.set_num_threads(threads)
        fastconv._registry.clear_caches()
        picks[threads] = [fastconv.choose(xs, ws, op=op, **kw)
                          for xs, ws, kw in PROBLEMS.values() for op in OPS]
    assert picks[1] == picks[2]


@pytest.mark.parametrize("op", OPS)
def test_every_model_predicts_a_small_problem_on_one_thread(op, monkeypatch):
    """A call below SMALL_PROBLEM_FLOPS of work runs on one thread (_config.threads_for), so no
    model may share its work among the machine's cores: a 1.9 MFLOP kernel gradient was once
    predicted 2x too fast by the one model that did. Above it, at least one model does share;
    a problem of few flops but many bytes (a 1-D first layer's 789 KB) is above it."""
    from fastconv import _config, _registry
    from fastconv._functional import spec_from_shapes
    small = spec_from_shapes((1, 16, 16, 16), (16, 16, 3, 3), 1, 1, 1, 1, "float32")
    large = spec_from_shapes((8, 64, 56, 56), (64, 64, 3, 3), 1, 1, 1, 1, "float32")
    few_flops = spec_from_shapes((8, 1, 1490), (32, 1, 5), 2, 0, 1, 1, "float32")
    monkeypatch.setattr(_config, "SMALL_PROBLEM_FLOPS", 2e6)     # the library's (conftest: 0)
    assert _config.work(small) < _config.SMALL_PROBLEM_FLOPS < _config.work(large)
    assert few_flops.flops < _config.SMALL_PROBLEM_FLOPS < _config.work(few_flops)

    def costs(spec, cores):
        monkeypatch.setattr(_config, "planning_threads", lambda: cores)
        _registry.clear_caches()
        return {name: impl.cost(spec, op) for name, impl in _registry._ALGORITHMS.items()
                if name != "reference" and impl.supports(spec, op)[0]}
    one, four = costs(small, 1), costs(small, 4)
    assert len(one) >= 4 and one == four
    assert costs(large, 1) != costs(large, 4)
    assert costs(few_flops, 1) != costs(few_flops, 4)


@pytest.mark.parametrize("op", OPS)
def test_the_workspace_limit_is_honoured_by_tiling(op, restore_settings, assert_close_to_reference):
    """Under a small limit nothing above it is chosen, and the problem is still computed (the
    algorithms tile rather than refuse)."""
    x, w, kw = _arrays("2d-large-kernel", "float64")
    kw = dict(kw)
    full_columns = x.shape[0] * w.shape[1] * 81 * 24 * 24 * 8     # im2col without chunks: 1.3 MiB
    limit = 64 * 2**10
    assert full_columns > limit
    fastconv.set_workspace_limit(limit)
    explanation = fastconv.explain(x.shape, w.shape, dtype="float64", **kw)
    for row_op, rows in explanation.rows.items():
        for algorithm, ok, reason, cost, workspace in rows:
            if ok:
                assert workspace <= limit, (algorithm, workspace)
            elif workspace is not None:
                assert "limit" in reason
        chosen = explanation.choice[row_op]
        assert dict((r[0], r[4]) for r in rows)[chosen] <= limit
    expected = _op_call(op, x, w, kw, "reference")()
    for algorithm in ("auto", "im2col"):
        assert_close_to_reference(_op_call(op, x, w, kw, algorithm)(), expected, np.float64)


def test_fastconv_bench_prints_a_table(monkeypatch, capsys):
    from fastconv import benchmark
    monkeypatch.setattr(benchmark, "torch_runner", lambda *args: None)     # keep it fast
    monkeypatch.setattr(benchmark, "sgemm_peak", lambda: 100e9)
    assert benchmark.main(["--quick", "--cases", "image512_k7", "--ops", "forward,grad_kernel",
                           "--rounds", "1"]) == 0
    out = capsys.readouterr().out
    rows = [line for line in out.splitlines() if line.startswith("| image512_k7")]
    assert len(rows) == 2 and "sgemm peak" in out and "scipy/auto" in out
    cells = rows[0].strip("|").split("|")
    assert cells[-1].strip() != "-", "scipy.signal's ratio is missing on a single-channel case"
    with pytest.raises(SystemExit):
        benchmark.main(["--cases", "nonexistent"])
