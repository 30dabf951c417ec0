"""fastconv.dask equals the NumPy call, for any chunking (issue 14, parts 1 and 2).

Threaded scheduler here; the distributed scheduler in test_dask_distributed.py. Small arrays, so
every block layout -- chunks smaller than the halo, chunks not on stride multiples, one chunk --
is met in a few milliseconds.
"""
import numpy as np
import pytest

da = pytest.importorskip("dask.array")
dask = pytest.importorskip("dask")
hypothesis = pytest.importorskip("hypothesis")
from hypothesis import given, settings, strategies as st  # noqa: E402

import fastconv  # noqa: E402
import fastconv.dask as fd  # noqa: E402
from fastconv import pooling  # noqa: E402

rng = np.random.default_rng(1234)


@pytest.fixture(autouse=True)
def threaded_scheduler():
    with dask.config.set(scheduler="threads", num_workers=2):
        yield


def close(got, want):
    assert got.shape == want.shape and got.dtype == want.dtype
    scale = max(float(np.abs(want).max()) if want.size else 0.0, 1.0)
    tol = 2e-4 if want.dtype == np.float32 else 1e-9
    np.testing.assert_allclose(got, want, rtol=0, atol=tol * scale)


def data(shape, dtype=np.float64):
    return rng.standard_normal(shape).astype(dtype)


CONV_CASES = [
    # (x spatial, kernel, kwargs)
    ((29,), (5,), dict()),
    ((29,), (4,), dict(padding="same", stride=3)),
    ((29,), (3,), dict(padding=((4, 1),), dilation=3, stride=2)),
    ((23, 19), (3, 5), dict(padding="same")),
    ((23, 19), (3, 3), dict(padding="same", padding_mode="reflect")),
    ((23, 19), (3, 4), dict(stride=(2, 3), padding=((3, 0), (1, 5)), dilation=(2, 1))),
    ((23, 19), (5, 5), dict(padding=6, padding_mode="circular", stride=2)),
    ((23, 19), (3, 3), dict(padding="full", padding_mode="replicate", dilation=2)),
    ((23, 19), (3, 3), dict(padding="valid", groups=3, flip=True)),
    ((9, 11, 10), (3, 3, 2), dict(padding="same", stride=(1, 2, 3))),
    ((9, 11, 10), (3, 2, 3), dict(padding=1, padding_mode="reflect", groups=3)),
]
CHUNKS = [2, 7, 100]      # 1-sized chunks: the hypothesis test below


@pytest.mark.parametrize("spatial,kernel,kwargs", CONV_CASES)
@pytest.mark.parametrize("chunk", CHUNKS)
def test_conv_equals_numpy(spatial, kernel, kwargs, chunk):
    groups = kwargs.get("groups", 1)
    x = data((2, 3) + spatial)
    w = data((6, 3 // groups) + kernel)
    b = data((6,))
    want = fastconv.conv(x, w, b, **kwargs)
    xd = da.from_array(x, chunks=(1, 2) + (chunk,) * len(spatial))
    close(fd.conv(xd, w, b, **kwargs).compute(), want)


def test_conv_float32_and_unbatched():
    x, w = data((3, 40, 33), np.float32), data((2, 3, 5, 5), np.float32)
    got = fd.conv(da.from_array(x, chunks=(3, 8, 8)), w, padding="same")
    assert got.dtype == np.float32 and got.ndim == 3
    close(got.compute(), fastconv.conv(x, w, padding="same"))


@settings(max_examples=12, deadline=None)
@given(n=st.integers(6, 30), k=st.integers(1, 5), s=st.integers(1, 3), d=st.integers(1, 2),
       lo=st.integers(0, 5), hi=st.integers(0, 5), cuts=st.lists(st.integers(1, 29), max_size=5),
       mode=st.sampled_from(["zeros", "reflect", "replicate", "circular"]))
def test_conv_random_geometry_and_chunking(n, k, s, d, lo, hi, cuts, mode):
    eff = d * (k - 1) + 1
    if n + lo + hi < eff or (mode == "reflect" and max(lo, hi) >= n):
        return
    x, w = data((1, 2, n, 7)), data((3, 2, k, 2))
    bounds = sorted({c for c in cuts if c < n})
    chunks = tuple(np.diff([0] + bounds + [n]).tolist())
    kw = dict(stride=(s, 1), dilation=(d, 1), padding=((lo, hi), (0, 1)), padding_mode=mode)
    close(fd.conv(da.from_array(x, chunks=((1,), (2,), chunks, (3, 4))), w, **kw).compute(),
          fastconv.conv(x, w, **kw))


def test_conv_halo_larger_than_a_single_chunk():
    """One chunk along an axis whose window reaches past it (9 wide over 6 with padding 3, found
    by the property above): no neighbour to borrow from, so no overlap (dask refused a depth
    larger than the chunk)."""
    x, w = data((1, 2, 6, 7)), data((3, 2, 5, 2))
    kw = dict(dilation=(2, 1), padding=((0, 3), (0, 1)))
    close(fd.conv(da.from_array(x, chunks=((1,), (2,), (6,), (3, 4))), w, **kw).compute(),
          fastconv.conv(x, w, **kw))


@pytest.mark.parametrize("kwargs", [dict(), dict(stride=2), dict(stride=(3, 2), padding=(1, 2),
                                                                   dilation=(2, 1)),
                                    dict(stride=2, padding=1, output_shape=(22, 20)),
                                    dict(stride=4, padding="same"), dict(stride=5, groups=2)])
@pytest.mark.parametrize("chunk", [2, 50])
def test_conv_transpose_equals_numpy(kwargs, chunk):
    groups = kwargs.get("groups", 1)
    x, w, b = data((2, 4, 11, 9)), data((4, 6 // groups, 3, 5)), data((6,))
    want = fastconv.conv_transpose(x, w, b, **kwargs)
    got = fd.conv_transpose(da.from_array(x, chunks=(1, 4, chunk, chunk)), w, b, **kwargs)
    close(got.compute(), want)


POOL_CASES = [dict(kernel_size=3), dict(kernel_size=3, stride=1, padding=1),
              dict(kernel_size=(4, 3), stride=(3, 2), padding=(2, 1), ceil_mode=True),
              dict(kernel_size=(2, 5), stride=(2, 1), padding=(1, 2))]


@pytest.mark.parametrize("kwargs", POOL_CASES)
@pytest.mark.parametrize("chunk", [3, 100])
def test_pools_equal_numpy(kwargs, chunk):
    x = data((2, 3, 23, 19))
    xd = da.from_array(x, chunks=(1, 2, chunk, chunk))
    close(fd.max_pool(xd, **kwargs).compute(), pooling.max_pool(x, **kwargs))
    close(fd.max_pool(xd, dilation=2, **kwargs).compute(), pooling.max_pool(x, dilation=2, **kwargs))
    for cip in (True, False):
        close(fd.avg_pool(xd, count_include_pad=cip, **kwargs).compute(),
              pooling.avg_pool(x, count_include_pad=cip, **kwargs))
    close(fd.lp_pool(xd, 3, **kwargs).compute(), pooling.lp_pool(x, 3, **kwargs))
    close(fd.weighted_avg_pool(xd, **kwargs).compute(), pooling.weighted_avg_pool(x, **kwargs))


def test_pools_in_1d_and_3d_and_global_and_channel():
    x1, x3 = data((2, 4, 31)), data((1, 4, 9, 10, 11), np.float32)
    close(fd.max_pool(da.from_array(x1, chunks=(1, 1, 4)), 3, 2, 1).compute(),
          pooling.max_pool(x1, (3,), 2, 1))
    x3d = da.from_array(x3, chunks=(1, 4, 3, 4, 5))
    close(fd.avg_pool(x3d, (3, 2, 3), 2, 1).compute(), pooling.avg_pool(x3, (3, 2, 3), 2, 1))
    close(fd.global_avg_pool(x3d).compute(), pooling.global_avg_pool(x3))
    close(fd.global_max_pool(x3d).compute(), pooling.global_max_pool(x3))
    for mode in ("max", "avg"):
        close(fd.channel_pool(x3d, 2, mode).compute(), pooling.channel_pool(x3, 2, mode))


def test_gabor_and_filter_bank_equal_a_depthwise_conv():
    from fastconv.features import gabor_bank
    x = data((1, 2, 40, 36), np.float32)
    bank = gabor_bank(9, orientations=4, dtype=np.float32)
    w = np.concatenate([bank, bank])
    want = fastconv.conv(x, w, padding="same", padding_mode="reflect", groups=2)
    xd = da.from_array(x, chunks=(1, 1, 7, 11))
    close(fd.filter_bank(xd, bank).compute(), want)
    close(fd.gabor(xd, 9, orientations=4).compute(), want)


def small_network(nn):
    return nn.Sequential(
        nn.Conv2d(3, 8, 3, padding=1, seed=0), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(8, 4, 5, padding=2, padding_mode="reflect", seed=1), nn.BatchNorm2d(4),
        nn.Residual(nn.Conv2d(4, 4, 3, padding="same", seed=3)),
        nn.AvgPool2d(3, stride=2, padding=1, ceil_mode=True), nn.Conv2d(4, 2, 3, seed=2))


@pytest.mark.parametrize("chunks", [(1, 3, 8, 8), (2, 3, 61, 13)])
def test_apply_network_equals_the_whole_array(chunks):
    from fastconv import nn
    model = small_network(nn)
    model.eval()
    x = data((2, 3, 61, 47), np.float32)
    assert fd.receptive_field(model, 2) == [(4, 9, 28)] * 2
    close(fd.apply_network(model, da.from_array(x, chunks=chunks)).compute(), model(x))


def test_apply_network_leaves_the_model_alone_and_refuses_nonlocal_layers():
    from fastconv import nn
    model = small_network(nn)
    assert model.training
    fd.apply_network(model, da.zeros((1, 3, 32, 32), chunks=16))
    assert model.training
    flat = nn.Sequential(nn.Conv2d(3, 2, 3), nn.Flatten(), nn.Linear(2 * 30 * 30, 3))
    with pytest.raises(ValueError, match=r"model\[1\] \(Flatten\) is not local in space"):
        fd.apply_network(flat, da.zeros((1, 3, 32, 32), chunks=16))
    strided_same = nn.Sequential(nn.Conv2d(3, 2, 3, stride=2, padding="same"))
    with pytest.raises(ValueError, match="give the padding as ints"):
        fd.apply_network(strided_same, da.zeros((1, 3, 32, 32), chunks=16))


# --- errors -------------------------------------------------------------------------------------

def test_non_dask_input_is_a_type_error_that_says_what_to_do():
    with pytest.raises(TypeError, match=r"x must be a dask array.*from_array"):
        fd.conv(np.zeros((1, 1, 8, 8)), np.ones((1, 1, 3, 3)))
    with pytest.raises(TypeError, match="x must be a dask array"):
        fd.max_pool([[1.0]], 2)


def test_bad_geometry_gives_the_numpy_message():
    xd = da.zeros((1, 3, 8, 8), chunks=4)
    with pytest.raises(ValueError, match="groups=2 must divide"):
        fd.conv(xd, np.ones((2, 1, 3, 3)), groups=2)
    with pytest.raises(ValueError, match="padding_mode must be one of"):
        fd.conv(xd, np.ones((2, 3, 3, 3)), padding=1, padding_mode="mirror")
    with pytest.raises(ValueError, match="padding must be at most kernel_size // 2"):
        fd.avg_pool(xd, 3, padding=2)
    with pytest.raises(TypeError, match="threads"):
        fd.conv(xd, np.ones((2, 3, 3, 3)), threads=1.5)


def test_channel_chunks_are_joined_and_unknown_chunks_refused():
    x = data((1, 4, 10, 10))
    xd = da.from_array(x, chunks=(1, 1, 5, 5))
    got = fd.conv(xd, data((2, 4, 3, 3)))
    assert got.chunks[1] == (2,)
    unknown = xd[xd[:, :1, :1, :1].ravel() > -np.inf]
    with pytest.raises(ValueError, match="unknown chunk sizes"):
        fd.conv(unknown, np.ones((2, 4, 3, 3)))
    with pytest.raises(ValueError, match=r"x must have 3, 4 or 5 dimensions"):
        fd.max_pool(da.zeros((4, 4), chunks=2), 2)
