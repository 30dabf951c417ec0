"""Winograd's staged pass by kernel blocks (src/_winograd.pyx, forward_kernel_blocks).

Where the transformed kernel U is large and the tiles few (ResNet-18's 256- and 512-channel
layers at small batches), the forward pass and the input gradient run the 36 GEMMs by blocks of
output channels, each block transforming its part of U a chunk of input channels at a time in
cache. Every output is the same sum in the same order as in the position GEMMs, so the two give
the same bits; test_winograd.py's `staged` fixture runs all its cases through both, and these
tests add what is particular: the bits, the default plan of real layers, the workspace without
U, non-finite kernels (no check of the kernel up front: the output transform reports them) and
the cost model.
"""
import numpy as np
import pytest

import fastconv
from fastconv import reference
from fastconv._algorithms import winograd
from fastconv._geometry import make_spec

OPS = ("forward", "grad_input")


def _run(op, x, w, gy, **kw):
    if op == "forward":
        return fastconv.conv(x, w, algorithm="winograd", **kw)
    return fastconv.conv_grad_input(gy, w, x.shape, algorithm="winograd", **kw)


def _reference(op, x, w, gy, **kw):
    if op == "forward":
        return reference.conv(x, w, **kw)
    return reference.conv_grad_input(gy, w, x.shape, **kw)


def _force(monkeypatch, on, width=None, chunk=None):
    monkeypatch.setattr(winograd, "STAGED_ABOVE_U_BYTES", 0)
    monkeypatch.setattr(winograd, "_staged_wins", lambda staged, blocks: True)
    monkeypatch.setattr(winograd, "_kernel_blocks_win", lambda blocks, positions: on)
    if width is not None:
        monkeypatch.setattr(winograd, "KERNEL_BLOCK_CHANNELS", width)
        monkeypatch.setattr(winograd, "KERNEL_CHUNK_CHANNELS", chunk)


def _arrays(xs, ws, dtype, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal(xs).astype(dtype)
    w = (rng.standard_normal(ws) / np.sqrt(9 * ws[1])).astype(dtype)
    gy = rng.standard_normal(reference.conv(x, w, padding=1).shape).astype(dtype)
    return x, w, gy


@pytest.mark.parametrize("blocks", [(64, 64), (40, 40), (1, 1)], ids=["default", "mid", "narrow"])
@pytest.mark.parametrize("dtype", (np.float32, np.float64), ids=["float32", "float64"])
@pytest.mark.parametrize("op", OPS)
def test_same_bits_as_the_position_gemms(op, dtype, blocks, monkeypatch):
    """70 input and 45 output channels: blocks and chunks that end part-filled, on 11 x 9 maps
    (tiles past the edge) of two samples."""
    x, w, gy = _arrays((2, 70, 11, 9), (45, 70, 3, 3), dtype)
    spec = make_spec(x.shape, w.shape, padding=1, dtype=dtype)
    _force(monkeypatch, True, *blocks)
    assert winograd.plan_of(spec, op).kernel_blocks is not None
    got = _run(op, x, w, gy, padding=1)
    _force(monkeypatch, False)
    assert winograd.plan_of(spec, op).kernel_blocks is None
    assert np.array_equal(got, _run(op, x, w, gy, padding=1))


@pytest.mark.parametrize("op", OPS)
def test_resnet18_512_channel_layer_runs_kernel_blocks_without_u(op, assert_close_to_reference):
    """ResNet-18's layer4 3x3 at batch 1: 37.7 MB of U, which the kernel blocks never hold (the
    workspace is V, M and the threads' chunks), within the float32 contract."""
    x, w, gy = _arrays((1, 512, 7, 7), (512, 512, 3, 3), np.float32, seed=3)
    spec = make_spec(x.shape, w.shape, padding=1, dtype=np.float32)
    plan = winograd.plan_of(spec, op)
    assert plan.kernel_blocks is not None and plan.fixed < plan.u_elements
    assert "blocks of" in winograd.layout(spec, op)
    assert_close_to_reference(_run(op, x, w, gy, padding=1),
                              _reference(op, x, w, gy, padding=1), np.float32)


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
@pytest.mark.parametrize("op", OPS)
def test_a_non_finite_kernel_gives_the_references_non_finite_values(op, bad, monkeypatch):
    """No kernel check up front: the transformed value spreads to every tile's outputs, the
    output transform reports it, and the registry's fallback sums the textbook way."""
    x, w, gy = _arrays((1, 40, 9, 10), (36, 40, 3, 3), np.float64)
    w[5, 7, 1, 2] = bad
    _force(monkeypatch, True, 1, 1)
    assert winograd.plan_of(make_spec(x.shape, w.shape, padding=1, dtype=np.float64),
                            op).kernel_blocks is not None
    with np.errstate(invalid="ignore", over="ignore"):
        got, want = _run(op, x, w, gy, padding=1), _reference(op, x, w, gy, padding=1)
    assert np.array_equal(np.isnan(got), np.isnan(want))
    assert np.array_equal(np.isinf(got), np.isinf(want))
    finite = np.isfinite(want)
    assert finite.any()
    np.testing.assert_allclose(got[finite], want[finite], rtol=1e-9, atol=1e-9)


@pytest.mark.parametrize("op", OPS)
def test_the_position_gemms_stay_where_they_move_fewer_bytes(op):
    """At AVX-512 ResNet-18's 256-channel layer at batch 8 (128 tiles: V and M read again by
    every block and chunk, twice the position GEMMs' bytes) keeps the position GEMMs; at the
    narrower levels it runs kernel blocks. Batch 1 and the 512-channel layer at batch 8 run
    kernel blocks at every level."""
    def plan(xs, ws):
        return winograd.plan_of(make_spec(xs, ws, padding=1, dtype=np.float32), op)
    wide = winograd._winograd.lanes(1) == 64
    assert (plan((8, 256, 14, 14), (256, 256, 3, 3)).kernel_blocks is None) == wide
    assert plan((1, 256, 14, 14), (256, 256, 3, 3)).kernel_blocks is not None
    assert plan((8, 512, 7, 7), (512, 512, 3, 3)).kernel_blocks is not None


def test_the_byte_rule_is_kept_per_vector_width():
    """The cut moves with the level in use: 2 times the bytes is blocks below AVX-512 only."""
    ratio = winograd.KERNEL_BLOCKS_BYTE_RATIO[winograd._winograd.lanes(1)]
    assert winograd._kernel_blocks_win(ratio, 1.0)
    assert not winograd._kernel_blocks_win(ratio * 1.01, 1.0)
    assert winograd._kernel_blocks_win(2.0, 1.0) == (winograd._winograd.lanes(1) < 64)


@pytest.mark.parametrize("op", OPS)
def test_kernel_blocks_pay_no_passes_over_u_in_memory(op, monkeypatch):
    deep = make_spec((8, 512, 7, 7), (512, 512, 3, 3), padding=1, dtype=np.float32)
    assert winograd.plan_of(deep, op).kernel_blocks is not None
    cost = winograd.cost(deep, op)
    monkeypatch.setattr(winograd, "U_MEMORY_PASSES", (0, 0))
    monkeypatch.setattr(winograd, "_kernel_blocks_win", lambda blocks, positions: True)
    assert winograd.cost(deep, op) == cost


def test_blocks_narrow_to_keep_every_core_busy(monkeypatch):
    """Two blocks a core of the machine (never the thread setting: the sums are the same for any
    width): ResNet-18's 512-channel layer at batch 1 in blocks of 64 on 2 cores, of 16 on 16."""
    from fastconv import _config
    spec = make_spec((1, 512, 7, 7), (512, 512, 3, 3), padding=1, dtype=np.float32)
    lanes = winograd._winograd.lanes(4)
    monkeypatch.setattr(_config, "planning_threads", lambda: 2)
    assert winograd._Plan(spec, "forward").kernel_blocks[0] == 64
    monkeypatch.setattr(_config, "planning_threads", lambda: 16)
    width = winograd._Plan(spec, "forward").kernel_blocks[0]
    assert 512 // width >= 32 or width == lanes


@pytest.mark.parametrize("dtype", (np.float32, np.float64), ids=["float32", "float64"])
@pytest.mark.parametrize("op", OPS)
def test_tile_parts_give_the_same_bits_at_any_thread_count(op, dtype, monkeypatch,
                                                           restore_settings):
    """ResNet-18's 128-channel 28x28 layer at batch 1 runs its kernel blocks as two parts of the
    tiles on a 2-core machine (each part every block: no core reads V or M another wrote). The
    parts move tiles between threads, never a sum's terms: the same bits as the blocks split by
    output channels, at 1, 2 and 3 threads, and the reference's values (float64, whose U is
    twice the bytes, takes the parts only when forced)."""
    from fastconv import _config
    monkeypatch.setattr(_config, "planning_threads", lambda: 2)
    x, w, gy = _arrays((1, 128, 28, 28), (128, 128, 3, 3), dtype)
    spec = make_spec(x.shape, w.shape, padding=1, dtype=dtype)
    if dtype == np.float64:     # U twice the bytes: not chosen by default, forced here
        monkeypatch.setattr(winograd._Plan, "_tile_parts", lambda self, itemsize, vm: (2, 0.0))
    plan = winograd.plan_of(spec, op)
    assert plan.kernel_blocks is not None and plan.tile_parts == 2
    assert "2 parts of the tiles" in winograd.layout(spec, op)
    results = []
    for threads in (1, 2, 3):
        fastconv.set_num_threads(threads)
        results.append(_run(op, x, w, gy, padding=1))
    monkeypatch.setattr(winograd._Plan, "_tile_parts", lambda self, itemsize, vm: (1, 0.0))
    winograd.plan_of.cache_clear()
    assert winograd.plan_of(spec, op).tile_parts == 1
    fastconv.set_num_threads(2)
    by_blocks = _run(op, x, w, gy, padding=1)
    assert all(np.array_equal(by_blocks, r) for r in results)
    want = _reference(op, x, w, gy, padding=1)
    tol = 2e-4 if dtype == np.float32 else 1e-12
    assert np.abs(by_blocks - want).max() <= tol * np.abs(want).max()


def test_tile_parts_only_where_they_save(monkeypatch):
    """The 256-channel 14x14 layer (U's copies cost more than the shared V and M), a layer whose
    items split its tiles 2 + 3 rows, and a one-core machine keep the blocks by output
    channels; the modelled saving is what the cost leaves out."""
    from fastconv import _config
    monkeypatch.setattr(_config, "planning_threads", lambda: 2)
    f32 = dict(padding=1, dtype=np.float32)
    wide = make_spec((1, 256, 14, 14), (256, 256, 3, 3), **f32)
    uneven = make_spec((1, 192, 20, 20), (192, 192, 3, 3), **f32)
    layer2 = make_spec((1, 128, 28, 28), (128, 128, 3, 3), **f32)
    assert winograd._Plan(wide, "forward").tile_parts == 1
    assert winograd._Plan(uneven, "forward").tile_parts == 1
    plan = winograd._Plan(layer2, "forward")
    assert plan.tile_parts == 2 and plan.tile_parts_saving > 0
    monkeypatch.setattr(_config, "planning_threads", lambda: 1)
    assert winograd._Plan(layer2, "forward").tile_parts == 1


def test_few_blocks_split_evenly_among_the_cores(monkeypatch):
    """ResNet-18's 64-channel 56x56 layer at batch 1: 14 tile rows in items of 3 made 5 items
    (one core idle a fifth of the call on two); rows of 2 make 7. Many items, or one core,
    keep the rows the block size gives."""
    from fastconv import _config
    monkeypatch.setattr(_config, "planning_threads", lambda: 2)
    assert winograd._balanced_rows(3, 14, 1) == 2
    assert winograd._balanced_rows(3, 14, 8) == 3        # 40 items
    monkeypatch.setattr(_config, "planning_threads", lambda: 1)
    assert winograd._balanced_rows(3, 14, 1) == 3
    monkeypatch.setattr(_config, "planning_threads", lambda: 2)
    spec = make_spec((1, 64, 56, 56), (64, 64, 3, 3), padding=1, dtype=np.float32)
    assert winograd.layout(spec, "forward") == "blocks: 7 of 196 tiles"
