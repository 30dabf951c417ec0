"""blocked's forward pass through its kept per-problem plan (_RowsForward) gives the bits of the
path that works everything out per call (`out` given), on every kind of row problem: packed
weights, blocks that pack their own (fused), a pointwise problem run as one row, a 1-D row read
in place; weights that are not finite are refused alike; an override of the path is read per
call."""
import numpy as np
import pytest

import fastconv
from fastconv import reference
from fastconv._algorithms import blocked
from fastconv._geometry import make_spec

CASES = [
    ((2, 8, 11, 10), (16, 8, 3, 3), dict(padding=1)),                   # packed weights
    ((1, 64, 14, 14), (128, 64, 3, 3), dict(stride=2, padding=1)),      # strided
    ((1, 256, 7, 7), (512, 256, 3, 3), dict(padding=1)),                # > 1 MiB: fused blocks
    ((1, 64, 7, 7), (512, 64, 1, 1), {}),                               # one row of positions
    ((1, 16, 200), (16, 16, 5), dict(padding=2)),                       # a 1-D row, edges
    ((1, 4, 5, 6, 7), (8, 4, 3, 3, 3), dict(padding=1, dilation=(1, 2, 1))),
]


def _arrays(xs, ws, dtype, seed=0):
    rng = np.random.default_rng(seed)
    return rng.standard_normal(xs).astype(dtype), rng.standard_normal(ws).astype(dtype)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("xs, ws, geometry", CASES)
def test_the_kept_plan_gives_the_worked_out_paths_bits(xs, ws, geometry, dtype,
                                                      restore_settings):
    spec = make_spec(xs, ws, dtype=dtype, **geometry)
    xu, wu = _arrays(xs, ws, dtype)
    x, w = xu.reshape(spec.x_shape), wu.reshape(spec.w_shape)     # lifted to 3-D, as called
    blocked._forward_plans.clear()
    first = blocked.forward(spec, x, w)
    assert isinstance(blocked._forward_plans[next(iter(blocked._forward_plans))],
                      blocked._RowsForward)
    again = blocked.forward(spec, x, w)                         # the kept plan
    out = np.empty(spec.y_shape, dtype)
    worked_out = blocked.forward(spec, x, w, out)               # `out`: every step per call
    assert worked_out is out
    np.testing.assert_array_equal(first, again)
    np.testing.assert_array_equal(again, out)
    for threads in (1, 3):          # a plan a thread budget, the same bits
        fastconv.set_num_threads(threads)
        np.testing.assert_array_equal(blocked.forward(spec, x, w), again)
    tol = 1e-4 if dtype == np.float32 else 1e-10
    want = reference.conv(xu.astype(np.float64), wu.astype(np.float64), **geometry)
    np.testing.assert_allclose(again.reshape(want.shape), want, rtol=tol, atol=tol)


@pytest.mark.parametrize("xs, ws, geometry", CASES[:3])
def test_weights_that_are_not_finite_are_refused_on_the_kept_plan(xs, ws, geometry):
    spec = make_spec(xs, ws, dtype=np.float32, **geometry)
    x, w = (a.reshape(shape) for a, shape in zip(_arrays(xs, ws, np.float32),
                                                  (spec.x_shape, spec.w_shape)))
    blocked.forward(spec, x, w)
    w = w.copy()
    w.reshape(-1)[w.size // 2] = np.nan
    assert blocked.forward(spec, x, w) is None


def test_an_override_of_the_path_is_read_at_each_call(monkeypatch):
    """LeNet's first layer at batch 32 runs with the batch as the lanes (blocked_batch) unless
    FASTCONV_BLOCKED_BATCH says other (and the planes are off too); the plan kept for one
    setting does not serve the other."""
    spec = make_spec((32, 1, 16, 16), (16, 1, 5, 5), dtype=np.float32, padding=2)
    xu, wu = _arrays((32, 1, 16, 16), (16, 1, 5, 5), np.float32)
    x, w = xu.reshape(spec.x_shape), wu.reshape(spec.w_shape)
    monkeypatch.setenv("FASTCONV_BLOCKED_PLANES", "other")
    monkeypatch.setenv("FASTCONV_BLOCKED_BATCH", "batch")
    by_batch = blocked.forward(spec, x, w)
    monkeypatch.setenv("FASTCONV_BLOCKED_BATCH", "other")
    by_rows = blocked.forward(spec, x, w)
    kept = {key[3]: plan for key, plan in blocked._forward_plans.items() if key[0] == spec}
    assert kept["batch"] is None and isinstance(kept["other"], blocked._RowsForward)
    want = reference.conv(xu.astype(np.float64), wu.astype(np.float64), padding=2)
    for y in (by_batch, by_rows):
        np.testing.assert_allclose(y.reshape(want.shape), want, rtol=1e-4, atol=1e-4)
