"""The blocked forward pass's orders of work (src/_blocked.pyx, forward): items sample by sample
(the default), channel block by channel block over the batch (`by_block`, where the weights
outgrow L2), and whole blocks that pack their own weights (`fuse`, forward's and grad_input's
flipped packing). Each order is forced on small problems of every kind the forward kernel runs
(groups, a part-filled last block, 1-D rows read in place with edge windows, 3-D, strided
input-gradient phases) and must give the reference's values and, bit for bit, the default
order's at 1, 2 and 3 threads: the order moves work between threads, never a sum's terms. Then
the choice itself on ResNet-18's and MobileNetV2's layers, and a non-finite weight met while a
block is packed."""
import numpy as np
import pytest

import fastconv
from fastconv import _call_memo, reference
from fastconv._algorithms import blocked, blocked_gk
from fastconv._geometry import make_spec

CASES = {
    "groups-part-block": ((3, 6, 8, 9), (42, 2, 3, 3), dict(groups=3, padding="same")),
    "two-vectors": ((2, 5, 7, 7), (40, 5, 3, 3), dict(padding=1)),
    "1d-edges": ((3, 5, 40), (36, 5, 3), dict(padding=((2, 0),))),
    "3d": ((2, 3, 4, 5, 6), (20, 3, 3, 2, 3), dict(padding=1)),
    "strided-phases": ((2, 4, 11, 9), (24, 4, 3, 3), dict(stride=2, padding=1)),
    "one-sample": ((1, 7, 6, 6), (50, 7, 3, 3), dict(padding=1)),
}


def _forget():
    for value in vars(blocked).values():
        if hasattr(value, "cache_clear"):
            value.cache_clear()
    _call_memo.clear()


PER_SAMPLE = blocked._Geometry.per_sample


@pytest.fixture
def order(monkeypatch):
    """order(name) forces one order of work on the next calls; the plans are rebuilt."""
    def force(name):
        monkeypatch.setattr(blocked._Geometry, "_by_block",
                            lambda self, spec: name != "by_sample" and spec.batch > 1)
        monkeypatch.setattr(blocked._Geometry, "fuses",
                            lambda self, spec, threads: name == "fused")
        if name == "rows":      # by sample, the batch's padded planes first (never per sample)
            monkeypatch.setattr(blocked._Geometry, "per_sample", lambda self, spec, threads: False)
        else:
            monkeypatch.setattr(blocked._Geometry, "per_sample", PER_SAMPLE)
        _forget()
    yield force
    monkeypatch.undo()
    _forget()


def _close(got, want):
    tol = 1e-4 if got.dtype == np.float32 else 1e-11
    assert got.shape == want.shape and np.abs(got - want).max() <= tol * max(np.abs(want).max(), 1)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("name", sorted(CASES))
def test_every_order_gives_the_same_bits(name, dtype, rng, order, restore_settings):
    x_shape, w_shape, geometry = CASES[name]
    x = rng.standard_normal(x_shape).astype(dtype)
    w = rng.standard_normal(w_shape).astype(dtype)
    y = reference.conv(x, w, **geometry)
    gy = rng.standard_normal(y.shape).astype(dtype)
    copies = (x.copy(), w.copy(), gy.copy())
    calls = {"forward": (lambda: fastconv.conv(x, w, algorithm="blocked", **geometry), y),
             "grad_input": (lambda: fastconv.conv_grad_input(gy, w, x_shape, algorithm="blocked",
                                                             **geometry),
                            reference.conv_grad_input(gy, w, x_shape, **geometry))}
    for op, (call, want) in calls.items():
        results = []
        for name_ in ("by_sample", "rows", "by_block", "fused"):
            order(name_)
            for threads in (1, 2, 3):
                fastconv.set_num_threads(threads)
                results.append(call())
        _close(results[0], want)
        assert all(np.array_equal(results[0], r) for r in results[1:]), op
    for a, a0 in zip((x, w, gy), copies):
        assert np.array_equal(a, a0), "an input was written"


@pytest.mark.parametrize("x_shape, w_shape, stride, by_block, fuses", [
    ((1, 512, 7, 7), (512, 512, 3, 3), 1, False, True),       # one sample: packed by blocks
    ((8, 128, 28, 28), (256, 128, 3, 3), 2, False, False),    # 1.2 MB, but larger inputs
    ((8, 64, 56, 56), (64, 64, 3, 3), 1, False, False),       # 147 KB of weights: in L2
    ((1, 320, 7, 7), (1280, 320, 1, 1), 1, False, True),      # MobileNetV2's last 1x1
])
def test_the_order_follows_the_bytes(x_shape, w_shape, stride, by_block, fuses):
    spec = make_spec(x_shape, w_shape, dtype=np.float32, stride=stride, padding=w_shape[-1] // 2)
    g = blocked._Geometry(spec)
    assert (g.by_block, g.fuses(spec, 2)) == (by_block, fuses)
    assert not g.fuses(spec, 10 ** 6)       # too few blocks to keep that many threads busy


@pytest.mark.parametrize("name, threads, per_sample", [
    ("two-vectors", 2, True), ("two-vectors", 1, True), ("two-vectors", 3, False),
    ("strided-phases", 2, True), ("groups-part-block", 3, True), ("groups-part-block", 2, False),
    ("1d-edges", 3, False), ("one-sample", 2, False)])
def test_the_samples_pad_their_own_planes(name, threads, per_sample):
    """The forward pass's items are whole samples, each padding its own planes in cache, where
    the samples share the threads evenly and the planes are padded copies (the edges of a 1-D
    row are windows instead). test_every_order_gives_the_same_bits runs both ways."""
    x_shape, w_shape, geometry = CASES[name]
    spec = make_spec(x_shape, w_shape, dtype=np.float32, **geometry)
    assert blocked._Geometry(spec).per_sample(spec, threads) == per_sample


def test_resnet_layer4_runs_by_block():
    """9.4 MB of weights and 166 KB of input a sample: with blocks of 16 or 32 channels (AVX2,
    AVX-512) re-reading the inputs once a block moves fewer bytes than re-reading the weights
    once a sample; with 8 (64 blocks, the baseline level) it does not."""
    spec = make_spec((8, 512, 7, 7), (512, 512, 3, 3), dtype=np.float32, padding=1)
    g = blocked._Geometry(spec)
    assert g.by_block == g.fuses(spec, 2) == (g.v >= 16)


@pytest.mark.parametrize("bad", [np.nan, np.inf])
def test_a_non_finite_weight_met_while_packing_a_block(bad, rng, order):
    """A fused pass learns of a non-finite weight as it packs the block, after other blocks ran:
    it gives the call up all the same, and the registry's summation gives the textbook's
    NaN and Inf."""
    order("fused")
    x = rng.standard_normal((2, 3, 6, 6)).astype(np.float32)
    w = rng.standard_normal((40, 3, 3, 3)).astype(np.float32)
    w[37, 2, 1, 2] = bad                        # in the last block
    spec = make_spec(x.shape, w.shape, dtype=np.float32, padding=1)
    assert blocked.forward(spec, x, w) is None
    assert blocked.grad_input(spec, np.ones(spec.y_shape, np.float32), w) is None
    got, want = fastconv.conv(x, w, padding=1, algorithm="blocked"), reference.conv(x, w, padding=1)
    assert np.array_equal(np.isnan(got), np.isnan(want))
    assert np.array_equal(np.isinf(got), np.isinf(want))


GK_CASES = {       # (x, w, geometry): tiles a line (or channel rows), parts, 1-D to 3-D
    "3d-three-channels": ((3, 3, 4, 7, 6), (20, 3, 3, 3, 3), dict(padding=1)),
    "2d-parts-strided": ((5, 2, 11, 9), (40, 2, 3, 5), dict(stride=(2, 1), padding=(1, 2))),
    "1d-channel-rows": ((2, 13, 50), (20, 13, 3), dict(padding=1)),
    "groups-dilated": ((2, 4, 9, 10), (6, 2, 3, 3), dict(groups=2, dilation=2, padding=2)),
}


def _gk_results(x, gy, w_shape, geometry, monkeypatch, **settings):
    """blocked's kernel gradient at 1, 2 and 3 threads with blocked_gk's `settings`, and its
    plan (the tiles path forced: chunks change its modelled cost, which may send a problem to
    the positions path, whose sums run otherwise)."""
    monkeypatch.setenv("FASTCONV_BLOCKED_GK", "tiles")
    for name, value in settings.items():
        monkeypatch.setattr(blocked_gk, name, value)
    _forget()
    plan = blocked._kernel_plan(make_spec(x.shape, w_shape, dtype=x.dtype, **geometry))
    results = []
    for threads in (1, 2, 3):
        fastconv.set_num_threads(threads)
        results.append(fastconv.conv_grad_kernel(x, gy, w_shape, algorithm="blocked",
                                                 **geometry))
    monkeypatch.undo()
    _forget()
    return results, plan


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("name", sorted(GK_CASES))
def test_the_kernel_gradient_in_chunks_gives_the_same_bits(name, dtype, rng, monkeypatch,
                                                           restore_settings):
    """The kernel gradient transposes gy a chunk at a time and carries each tile's sums from
    chunk to chunk (src/_blocked_gk_chunks.pxi). With the parts held, chunks of one unit, of a
    few and of all of them give the same bits: units of output rows (chunks of one row or
    position, and of 96 values), and units of whole samples in one part (chunks of one
    sample, two, all); the reference's values at 1, 2 and 3 threads throughout."""
    x_shape, w_shape, geometry = GK_CASES[name]
    x = rng.standard_normal(x_shape).astype(dtype)
    gy = rng.standard_normal(reference.conv(x, np.ones(w_shape, dtype), **geometry).shape)
    gy = gy.astype(dtype)
    want = reference.conv_grad_kernel(x, gy, w_shape, **geometry)
    sample = _gk_results(x, gy, w_shape, geometry, monkeypatch)[1]
    assert sample.whole             # these small maps: a sample's transposed gy fits a chunk
    sample_bytes = sample.unit * x.itemsize
    runs = {"rows": [dict(GK_CHUNK_BYTES=1), dict(GK_CHUNK_BYTES=96 * x.itemsize)],
            "whole": [dict(GK_ITEMS=1, GK_CHUNK_BYTES=sample_bytes),
                      dict(GK_ITEMS=1, GK_CHUNK_BYTES=2 * sample_bytes),
                      dict(GK_ITEMS=1, GK_CHUNK_BYTES=x.shape[0] * sample_bytes)]}
    for mode, settings in runs.items():
        results, plans = [], []
        for setting in settings:
            got, plan = _gk_results(x, gy, w_shape, geometry, monkeypatch, **setting)
            results += got
            plans.append((plan.whole, plan.parts))
        assert all(whole == (mode == "whole") for whole, _ in plans)
        assert len(set(plans)) == 1 and plans[0][1] >= 1
        _close(results[0], want)
        assert all(np.array_equal(results[0], r) for r in results[1:])
