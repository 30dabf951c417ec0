"""fastconv.nn layers: forward against plain references, backward against finite differences."""
import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

import fastconv
from fastconv import nn
from fastconv import reference as ref

F64 = np.float64

# (id, factory, input shape): every layer, with geometry that exercises stride, padding,
# dilation, groups, padding modes and bias sharing.
LAYERS = [
    ("conv1d", lambda: nn.Conv1d(3, 4, 3, stride=2, padding=1), (2, 3, 9)),
    ("conv2d-groups-dilation", lambda: nn.Conv2d(4, 6, 3, padding=(1, 2), dilation=(1, 2), groups=2),
     (2, 4, 7, 8)),
    ("conv2d-same-reflect-flip", lambda: nn.Conv2d(2, 3, (2, 3), stride=(2, 1), padding="same",
                                                   padding_mode="reflect", flip=True), (2, 2, 6, 7)),
    ("conv2d-location-bias", lambda: nn.Conv2d(2, 3, 3, bias="location", input_size=(6, 5)),
     (2, 2, 6, 5)),
    ("conv2d-no-bias-circular", lambda: nn.Conv2d(2, 3, 3, padding=1, bias=None,
                                                  padding_mode="circular"), (1, 2, 5, 4)),
    ("conv3d", lambda: nn.Conv3d(2, 3, 2, stride=(1, 2, 1), padding=1), (2, 2, 4, 5, 3)),
    ("convT1d", lambda: nn.ConvTranspose1d(3, 2, 3, stride=2, padding=1, output_padding=1), (2, 3, 5)),
    ("convT2d-groups", lambda: nn.ConvTranspose2d(4, 6, 3, stride=2, groups=2), (2, 4, 3, 4)),
    ("convT3d", lambda: nn.ConvTranspose3d(2, 2, 2, stride=2, bias=None), (1, 2, 2, 3, 2)),
    ("local1d", lambda: nn.LocallyConnected1d(2, 3, 3, input_size=7, stride=2), (2, 2, 7)),
    ("local2d", lambda: nn.LocallyConnected2d(2, 3, (2, 3), input_size=(5, 6), padding=1,
                                              bias="channel"), (2, 2, 5, 6)),
    ("local3d", lambda: nn.LocallyConnected3d(1, 2, 2, input_size=(3, 4, 3), bias=None), (2, 1, 3, 4, 3)),
    ("tiled1d", lambda: nn.TiledConv1d(2, 3, 3, tiles=2, bias="channel"), (2, 2, 9)),
    ("tiled2d", lambda: nn.TiledConv2d(2, 3, 2, tiles=(2, 3), padding=1), (2, 2, 6, 7)),
    ("tiled3d", lambda: nn.TiledConv3d(1, 2, 2, tiles=(1, 2, 2)), (1, 1, 3, 5, 4)),
    ("maxpool1d", lambda: nn.MaxPool1d(2), (2, 3, 9)),
    ("maxpool2d", lambda: nn.MaxPool2d(3, stride=2, padding=1), (2, 3, 7, 6)),
    ("maxpool3d", lambda: nn.MaxPool3d(2, ceil_mode=True), (1, 2, 5, 4, 3)),
    ("avgpool1d", lambda: nn.AvgPool1d(3, stride=2), (2, 3, 9)),
    ("avgpool2d", lambda: nn.AvgPool2d(3, 2, padding=1, count_include_pad=False), (2, 3, 7, 6)),
    ("avgpool3d", lambda: nn.AvgPool3d(2), (1, 2, 4, 4, 3)),
    ("lppool2d", lambda: nn.LPPool2d(2, 2), (2, 2, 6, 5)),
    ("weightedavg2d", lambda: nn.WeightedAvgPool2d(3, stride=1, padding=1), (2, 2, 5, 6)),
    ("adaptivemax2d", lambda: nn.AdaptiveMaxPool2d((2, 3)), (2, 3, 7, 8)),
    ("adaptiveavg1d", lambda: nn.AdaptiveAvgPool1d(4), (2, 3, 10)),
    ("adaptiveavg2d", lambda: nn.AdaptiveAvgPool2d(3), (2, 3, 7, 5)),
    ("adaptivemax3d", lambda: nn.AdaptiveMaxPool3d(2), (1, 2, 5, 4, 3)),
    ("globalavg", lambda: nn.GlobalAvgPool(), (2, 3, 4, 5)),
    ("globalmax", lambda: nn.GlobalMaxPool(), (2, 3, 4, 5)),
    ("maxout", lambda: nn.Maxout(2), (2, 6, 3, 4)),
    ("channelpool-avg", lambda: nn.ChannelPool(3, mode="avg"), (2, 6, 5)),
    ("relu", lambda: nn.ReLU(), (3, 4, 5)),
    ("leakyrelu", lambda: nn.LeakyReLU(0.1), (3, 4, 5)),
    ("tanh", lambda: nn.Tanh(), (3, 4, 5)),
    ("sigmoid", lambda: nn.Sigmoid(), (3, 4, 5)),
    ("softmax", lambda: nn.Softmax(), (3, 4, 5)),
    ("linear", lambda: nn.Linear(5, 4), (3, 5)),
    ("flatten", lambda: nn.Flatten(), (2, 3, 4)),
    ("batchnorm1d", lambda: nn.BatchNorm1d(3), (4, 3)),
    ("batchnorm1d-seq", lambda: nn.BatchNorm1d(3), (4, 3, 5)),
    ("batchnorm2d", lambda: nn.BatchNorm2d(3), (2, 3, 4, 5)),
    ("batchnorm3d-noaffine", lambda: nn.BatchNorm3d(2, affine=False), (2, 2, 3, 3, 2)),
    ("sequential", lambda: nn.Sequential(nn.Conv2d(2, 4, 3, padding=1), nn.Tanh(), nn.MaxPool2d(2),
                                         nn.Flatten(), nn.Linear(16, 3)), (2, 2, 4, 4)),
    ("parallel-concat", lambda: nn.Parallel([nn.Conv2d(2, 3, 1), nn.Conv2d(2, 2, 3, padding=1)]),
     (2, 2, 5, 4)),
    ("parallel-add", lambda: nn.Parallel([nn.Conv1d(2, 3, 3, padding=1), nn.Conv1d(2, 3, 1)],
                                         combine="add"), (2, 2, 6)),
    ("residual", lambda: nn.Residual(nn.Sequential(nn.Conv2d(3, 3, 3, padding=1), nn.Tanh())),
     (2, 3, 4, 4)),
]


@pytest.mark.parametrize("factory,shape", [(f, s) for _, f, s in LAYERS], ids=[i for i, _, _ in LAYERS])
def test_gradients_by_finite_differences(factory, shape, rng, restore_settings):
    fastconv.set_num_threads(1)      # the arithmetic is checked here; thread invariance below
    layer = factory().to(F64)
    x = rng.standard_normal(shape)
    checked = nn.gradcheck(layer, x, seed=int(rng.integers(1 << 30)))
    assert checked >= min(12, int(np.prod(shape)))


def test_gradcheck_detects_a_wrong_backward(rng):
    layer = nn.Linear(4, 3).to(F64)
    original = layer.backward
    layer.backward = lambda gy: 1.01 * original(gy)
    with pytest.raises(AssertionError, match="finite differences"):
        nn.gradcheck(layer, rng.standard_normal((2, 4)))


# --- forward and backward against the plain references ------------------------------------

def _conv_geometry(layer):
    return dict(stride=layer.stride, padding=layer.padding, dilation=layer.dilation,
                groups=layer.groups)


@pytest.mark.parametrize("dtype,tol", [(np.float32, 2e-4), (np.float64, 1e-9)])
@pytest.mark.parametrize("ndim", [1, 2, 3])
def test_conv_layer_matches_reference(ndim, dtype, tol, rng):
    cls = [nn.Conv1d, nn.Conv2d, nn.Conv3d][ndim - 1]
    layer = cls(4, 6, 3, stride=2, padding=1, dilation=1, groups=2, seed=1, dtype=dtype)
    x = rng.standard_normal((3, 4) + (7, 6, 5)[:ndim]).astype(dtype)
    y = layer(x)
    expected = ref.conv(x.astype(F64), layer.weight.astype(F64), layer.bias.astype(F64),
                        **_conv_geometry(layer))
    assert y.dtype == dtype and y.shape == expected.shape
    scale = np.abs(expected).max()
    np.testing.assert_allclose(y, expected, atol=tol * scale, rtol=0)
    gy = rng.standard_normal(y.shape).astype(dtype)
    gx = layer.backward(gy)
    gx_ref = ref.conv_grad_input(gy.astype(F64), layer.weight.astype(F64), x.shape,
                                 **_conv_geometry(layer))
    gw_ref = ref.conv_grad_kernel(x.astype(F64), gy.astype(F64), layer.weight.shape,
                                  **_conv_geometry(layer))
    np.testing.assert_allclose(gx, gx_ref, atol=tol * np.abs(gx_ref).max(), rtol=0)
    np.testing.assert_allclose(layer.grads["weight"], gw_ref, atol=tol * np.abs(gw_ref).max(), rtol=0)
    np.testing.assert_allclose(layer.grads["bias"], gy.astype(F64).sum(axis=(0,) + tuple(range(2, gy.ndim))),
                               rtol=tol * 10)


def test_location_bias_is_one_per_output_unit(rng):
    layer = nn.Conv2d(2, 3, 3, bias="location", input_size=(6, 5), dtype=F64)
    assert layer.bias.shape == (3, 4, 3)
    x = rng.standard_normal((2, 2, 6, 5))
    expected = ref.conv(x, layer.weight) + layer.bias
    np.testing.assert_allclose(layer(x), expected, rtol=1e-12, atol=1e-12)
    with pytest.raises(ValueError, match="input_size"):
        nn.Conv2d(2, 3, 3, bias="location")
    with pytest.raises(ValueError, match="spatial size"):
        layer(rng.standard_normal((2, 2, 7, 5)))


def test_conv_transpose_layer_matches_reference(rng):
    layer = nn.ConvTranspose2d(4, 6, 3, stride=2, padding=1, output_padding=1, groups=2, dtype=F64)
    x = rng.standard_normal((2, 4, 4, 5))
    y = layer(x)
    assert y.shape == (2, 6, 8, 10)           # (m - 1) * 2 - 2 + 3 + 1
    expected = ref.conv_transpose(x, layer.weight, layer.bias, stride=2, padding=1, groups=2,
                                  output_shape=(8, 10))
    np.testing.assert_allclose(y, expected, rtol=1e-10, atol=1e-10)
    # an explicit output size among the reachable ones
    assert layer(x, output_size=(7, 9)).shape == (2, 6, 7, 9)
    with pytest.raises(ValueError, match="output_padding"):
        nn.ConvTranspose2d(1, 1, 3, stride=2, output_padding=2)


def test_conv_transpose_is_the_adjoint_of_conv(rng):
    """<conv(x), z> == <x, conv_transpose(z)> with the same weight (eq. 9.14)."""
    conv = nn.Conv2d(3, 4, 3, stride=2, padding=1, bias=None, dtype=F64)
    up = nn.ConvTranspose2d(4, 3, 3, stride=2, padding=1, bias=None, dtype=F64)
    up.weight = conv.weight
    x = rng.standard_normal((2, 3, 7, 6))
    z = rng.standard_normal(conv(x).shape)
    lhs = np.sum(conv(x) * z)
    rhs = np.sum(x * up(z, output_size=(7, 6)))
    assert abs(lhs - rhs) <= 1e-10 * abs(lhs)


def test_local_layers_match_reference(rng):
    lc = nn.LocallyConnected2d(2, 3, 3, input_size=(6, 5), stride=(2, 1), dtype=F64)
    x = rng.standard_normal((2, 2, 6, 5))
    np.testing.assert_allclose(lc(x), ref.locally_connected(x, lc.weight, lc.bias, stride=(2, 1)),
                               rtol=1e-10, atol=1e-12)
    tc = nn.TiledConv2d(2, 3, 2, tiles=(2, 2), dtype=F64)
    np.testing.assert_allclose(tc(x), ref.tiled_conv(x, tc.weight, tc.bias), rtol=1e-10, atol=1e-12)
    # the tiled bias: output (i, j) gets bias[:, i % 2, j % 2]
    tc.weight[...] = 0
    y = tc(x)
    for i in range(y.shape[2]):
        for j in range(y.shape[3]):
            np.testing.assert_array_equal(y[0, :, i, j], tc.bias[:, i % 2, j % 2])


POOLS = [
    (lambda: nn.MaxPool2d(3, stride=2, padding=1), lambda x: ref.max_pool(x, 3, 2, 1)),
    (lambda: nn.AvgPool1d(3, stride=2), lambda x: ref.avg_pool(x, 3, 2)),
    (lambda: nn.LPPool2d(3, 2), lambda x: ref.lp_pool(x, 3, 2)),
    (lambda: nn.WeightedAvgPool2d(3, stride=1, padding=1), lambda x: ref.weighted_avg_pool(x, 3, 1, 1)),
    (lambda: nn.AdaptiveMaxPool2d((2, 3)), lambda x: ref.adaptive_max_pool(x, (2, 3))),
    (lambda: nn.AdaptiveAvgPool3d(2), lambda x: ref.adaptive_avg_pool(x, 2)),
    (lambda: nn.GlobalAvgPool(), ref.global_avg_pool),
    (lambda: nn.Maxout(2), lambda x: ref.channel_pool(x, 2)),
]


@pytest.mark.parametrize("index", range(len(POOLS)))
def test_pool_layers_match_reference(index, rng):
    factory, reference = POOLS[index]
    layer = factory()
    ndim = getattr(layer, "ndim", None) or 2
    x = rng.standard_normal((2, 4) + (7, 6, 5)[:ndim])
    np.testing.assert_allclose(layer(x), reference(x), rtol=1e-10, atol=1e-12)


def test_linear_and_activations_match_numpy(rng):
    lin = nn.Linear(5, 3, dtype=F64)
    x = rng.standard_normal((4, 5))
    np.testing.assert_allclose(lin(x), x @ lin.weight.T + lin.bias, rtol=1e-12)
    np.testing.assert_array_equal(nn.ReLU()(x), np.where(x > 0, x, 0))
    np.testing.assert_allclose(nn.Sigmoid()(x), 1 / (1 + np.exp(-x)), rtol=1e-12)
    s = nn.Softmax()(x)
    np.testing.assert_allclose(s, np.exp(x) / np.exp(x).sum(1, keepdims=True), rtol=1e-12)
    assert np.all(np.isfinite(nn.Sigmoid()(np.array([-1000.0, 1000.0]))))
    assert np.all(np.isfinite(nn.softmax(np.array([[1000.0, -1000.0]]))))


def test_batchnorm_train_and_eval(rng):
    bn = nn.BatchNorm2d(3, momentum=0.5, dtype=F64)
    x = rng.standard_normal((4, 3, 5, 2)) * 3 + 2
    y = bn(x)
    mean, var = x.mean(axis=(0, 2, 3)), x.var(axis=(0, 2, 3))
    np.testing.assert_allclose(y, (x - mean[:, None, None]) / np.sqrt(var[:, None, None] + 1e-5),
                               rtol=1e-10, atol=1e-10)
    n = 4 * 5 * 2
    np.testing.assert_allclose(bn.running_mean, 0.5 * mean, rtol=1e-12)
    np.testing.assert_allclose(bn.running_var, 0.5 + 0.5 * var * n / (n - 1), rtol=1e-12)
    assert int(bn.num_batches_tracked) == 1
    bn.eval()
    z = rng.standard_normal((2, 3, 5, 2))
    rm, rv = bn.running_mean[:, None, None], bn.running_var[:, None, None]
    np.testing.assert_allclose(bn(z), (z - rm) / np.sqrt(rv + 1e-5), rtol=1e-10)
    assert int(bn.num_batches_tracked) == 1          # eval does not update the statistics
    with pytest.raises(RuntimeError, match="training mode"):
        bn.backward(z)


def test_dropout_is_seeded_scaled_and_off_in_eval(rng):
    x = np.ones((200, 50))
    a, b = nn.Dropout(0.3, seed=5), nn.Dropout(0.3, seed=5)
    ya, yb = a(x), b(x)
    np.testing.assert_array_equal(ya, yb)
    assert set(np.unique(ya)) <= {0.0, 1 / 0.7}
    assert abs((ya == 0).mean() - 0.3) < 0.02
    np.testing.assert_array_equal(a.backward(np.ones_like(x)), ya)     # the same mask
    a.eval()
    np.testing.assert_array_equal(a(x), x)
    with pytest.raises(ValueError, match="p must be"):
        nn.Dropout(1.0)


def test_shared_layer_accumulates_gradients_over_its_uses(rng):
    """A layer applied twice (figure 9.17's shared weights) gets the sum of both gradients."""
    conv = nn.Conv2d(2, 2, 3, padding=1, dtype=F64)
    model = nn.Sequential(conv, nn.Tanh(), conv)
    assert len(model.parameters()) == 2
    nn.gradcheck(model, rng.standard_normal((2, 2, 5, 4)))


# --- initialisation --------------------------------------------------------------------

def test_init_is_deterministic_and_pytorch_like():
    a, b = nn.Conv2d(8, 16, 3, seed=3), nn.Conv2d(8, 16, 3, seed=3)
    np.testing.assert_array_equal(a.weight, b.weight)
    np.testing.assert_array_equal(a.bias, b.bias)
    assert not np.array_equal(a.weight, nn.Conv2d(8, 16, 3, seed=4).weight)
    bound = 1 / np.sqrt(8 * 9)
    assert np.abs(a.weight).max() <= bound and np.abs(a.weight).max() > 0.9 * bound
    assert abs(a.weight.std() - bound / np.sqrt(3)) < 0.1 * bound
    assert a.weight.dtype == np.float32
    nn.manual_seed(11)
    first = nn.Linear(4, 4).weight.copy()
    second = nn.Linear(4, 4).weight
    nn.manual_seed(11)
    np.testing.assert_array_equal(nn.Linear(4, 4).weight, first)
    assert not np.array_equal(first, second)         # consecutive layers differ


def test_he_and_glorot_init():
    he = nn.Conv2d(16, 32, 3, init="he", seed=0)
    assert abs(he.weight.std() - np.sqrt(2 / (16 * 9))) < 0.05 * np.sqrt(2 / (16 * 9))
    assert np.all(he.bias == 0)
    gl = nn.Linear(100, 50, init="glorot", seed=0)
    assert np.abs(gl.weight).max() <= np.sqrt(6 / 150)
    with pytest.raises(ValueError, match="init must be"):
        nn.Linear(2, 2, init="xavier")


# --- bad input, modes, no writes ----------------------------------------------------------

def test_bad_arguments_name_what_was_wrong(rng):
    with pytest.raises(ValueError, match="groups"):
        nn.Conv2d(3, 4, 3, groups=2)
    with pytest.raises(TypeError, match="kernel_size"):
        nn.Conv2d(3, 4, 2.5)
    with pytest.raises(ValueError, match="bias"):
        nn.Conv2d(3, 4, 3, bias="tiled")
    with pytest.raises(ValueError, match="3 channels"):
        nn.Conv2d(3, 4, 3)(rng.standard_normal((1, 2, 5, 5)))
    with pytest.raises(ValueError, match="4 dimensions"):
        nn.Conv2d(3, 4, 3)(rng.standard_normal((5, 5)))
    with pytest.raises(ValueError, match="features"):
        nn.Linear(3, 2)(rng.standard_normal((2, 4)))
    with pytest.raises(TypeError, match="dtype"):
        nn.Linear(3, 2, dtype=np.int32)
    with pytest.raises(RuntimeError, match="without a matching forward"):
        nn.ReLU().backward(np.ones(3))


def test_eval_mode_caches_nothing_and_layers_do_not_write_inputs(rng):
    model = nn.Sequential(nn.Conv2d(2, 3, 3), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(),
                          nn.Linear(3, 2))
    x = rng.standard_normal((2, 2, 4, 4)).astype(np.float32)
    x0 = x.copy()
    model.eval()
    y = model(x)
    assert all(not m._cache for m in model.modules())
    model.train()
    model(x)
    model.backward(np.ones_like(y))
    np.testing.assert_array_equal(x, x0)


def test_empty_batch_gives_empty_result():
    model = nn.Sequential(nn.Conv2d(2, 3, 3, padding=1), nn.ReLU(), nn.Flatten(), nn.Linear(48, 2))
    y = model(np.zeros((0, 2, 4, 4), np.float32))
    assert y.shape == (0, 2)
    gx = model.backward(np.zeros((0, 2), np.float32))
    assert gx.shape == (0, 2, 4, 4)


def test_thread_count_does_not_change_training(rng, restore_settings):
    x = rng.standard_normal((4, 2, 6, 6)).astype(np.float32)
    results = []
    for threads in (1, 2):
        fastconv.set_num_threads(threads)
        model = nn.Sequential(nn.Conv2d(2, 4, 3, seed=0), nn.ReLU(), nn.Flatten(),
                              nn.Linear(64, 3, seed=1))
        y = model(x)
        gx = model.backward(np.ones_like(y))
        results.append((y, gx, [g.copy() for g in model.gradients()]))
    (y1, g1, p1), (y2, g2, p2) = results
    np.testing.assert_array_equal(y1, y2)
    np.testing.assert_array_equal(g1, g2)
    for a, b in zip(p1, p2):
        np.testing.assert_array_equal(a, b)


def test_conv_layer_reports_its_algorithms():
    layer = nn.Conv2d(16, 32, 3, padding=1)
    chosen = layer.algorithms((8, 16, 12, 12))
    assert set(chosen) == {"forward", "grad_input", "grad_kernel"}
    assert all(name in fastconv.algorithms() for name in chosen.values())
    forced = nn.Conv2d(16, 32, 3, algorithm="direct")
    assert forced.algorithms((8, 16, 12, 12))["grad_kernel"] == "direct"



@settings(max_examples=25, deadline=None)
@given(ndim=st.integers(1, 3), n=st.integers(0, 3), c=st.integers(1, 3), k=st.integers(1, 3),
       kernel=st.integers(1, 3), stride=st.integers(1, 2), dilation=st.integers(1, 2),
       pad=st.integers(0, 2), extra=st.lists(st.integers(0, 4), min_size=3, max_size=3),
       seed=st.integers(0, 2**16))
def test_conv_layer_forward_and_backward_any_geometry(ndim, n, c, k, kernel, stride, dilation, pad,
                                                      extra, seed):
    """Random shapes and geometry: forward and both gradients equal the reference's."""
    cls = [nn.Conv1d, nn.Conv2d, nn.Conv3d][ndim - 1]
    eff = dilation * (kernel - 1) + 1
    size = tuple(max(eff - 2 * pad, 1) + e for e in extra[:ndim])
    layer = cls(c, k, kernel, stride=stride, padding=pad, dilation=dilation, seed=seed, dtype=F64)
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, c) + size)
    g = dict(stride=stride, padding=pad, dilation=dilation)
    y = layer(x)
    expected = ref.conv(x, layer.weight, layer.bias, **g)
    np.testing.assert_allclose(y, expected, rtol=1e-9, atol=1e-9 * (np.abs(expected).max(initial=0) + 1))
    gy = rng.standard_normal(y.shape)
    gx = layer.backward(gy)
    np.testing.assert_allclose(gx, ref.conv_grad_input(gy, layer.weight, x.shape, **g), atol=1e-9 * (
        np.abs(gx).max(initial=0) + 1))
    np.testing.assert_allclose(layer.grads["weight"], ref.conv_grad_kernel(x, gy, layer.weight.shape, **g),
                               atol=1e-9 * (np.abs(layer.grads["weight"]).max(initial=0) + 1))
