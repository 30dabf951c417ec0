"""torch.autograd.gradcheck (float64, finite differences) for every function and module of
fastconv.torch, on tiny shapes so that the whole file runs in seconds; and the unshared and
separable layers against fastconv's NumPy functions (skipped without torch)."""
import numpy as np
import pytest

import fastconv
import fastconv.local

torch = pytest.importorskip("torch")
ft = pytest.importorskip("fastconv.torch")
F64 = dict(dtype=torch.float64)


def _t(*shape, grad=True):
    return torch.randn(*shape, **F64).requires_grad_(grad)


def _check(fn, *inputs):
    assert torch.autograd.gradcheck(fn, inputs, eps=1e-6, atol=1e-7, rtol=1e-5)


FUNCTION_CASES = {
    "conv1d-stride-dilation": (lambda x, w, b: ft.conv1d(x, w, b, stride=2, dilation=2, padding=1),
                               [(2, 2, 9), (3, 2, 3), (3,)]),
    "conv2d-groups": (lambda x, w, b: ft.conv2d(x, w, b, groups=2, padding=1),
                      [(1, 4, 5, 4), (4, 2, 3, 2), (4,)]),
    "conv2d-same-stride": (lambda x, w, b: ft.conv(x, w, b, stride=2, padding="same"),
                           [(1, 2, 5, 6), (2, 2, 4, 3), (2,)]),
    "conv2d-reflect": (lambda x, w, b: ft.conv(x, w, b, padding=1, padding_mode="reflect"),
                       [(1, 2, 4, 5), (2, 2, 3, 3), (2,)]),
    "conv2d-replicate": (lambda x, w, b: ft.conv(x, w, b, padding=(1, 2),
                                                 padding_mode="replicate"),
                         [(1, 1, 4, 4), (2, 1, 3, 3), (2,)]),
    "conv2d-circular-flip": (lambda x, w, b: ft.conv(x, w, b, padding=1, padding_mode="circular",
                                                     flip=True),
                             [(1, 1, 4, 5), (2, 1, 3, 3), (2,)]),
    "conv2d-unbatched": (lambda x, w, b: ft.conv(x, w, b, padding=1),
                         [(2, 4, 4), (3, 2, 3, 3), (3,)]),
    "conv3d": (lambda x, w, b: ft.conv3d(x, w, b, stride=(1, 2, 1), padding=1),
               [(1, 1, 3, 4, 3), (2, 1, 2, 3, 2), (2,)]),
    "conv_transpose2d": (lambda x, w, b: ft.conv_transpose(x, w, b, stride=2, padding=1,
                                                           output_shape=(6, 5)),
                         [(1, 2, 3, 3), (2, 3, 3, 2), (3,)]),
    "conv_transpose1d-unbatched": (lambda x, w, b: ft.conv_transpose(x, w, b, stride=3),
                                   [(2, 3), (2, 1, 4), (1,)]),
    "locally_connected2d-location-bias": (
        lambda x, w, b: ft.locally_connected(x, w, b, stride=1),
        [(2, 2, 4, 4), (3, 3, 3, 2, 2, 2), (3, 3, 3)]),
    "locally_connected1d-channel-bias": (
        lambda x, w, b: ft.locally_connected(x, w, b, padding=1, stride=2),
        [(2, 2, 5), (3, 2, 2, 3), (2,)]),
    "tiled2d-tiled-bias": (lambda x, w, b: ft.tiled_conv(x, w, b, padding=1),
                           [(1, 2, 5, 4), (2, 2, 2, 2, 3, 3), (2, 2, 2)]),
    "tiled1d-channel-bias-per-tile-algorithm": (
        lambda x, w, b: ft.tiled_conv(x, w, b, algorithm="im2col"),
        [(2, 1, 8), (3, 2, 1, 3), (2,)]),
}


@pytest.mark.parametrize("case", list(FUNCTION_CASES))
def test_gradcheck_functions(case):
    torch.manual_seed(0)
    fn, shapes = FUNCTION_CASES[case]
    _check(fn, *(_t(*s) for s in shapes))


@pytest.mark.parametrize("dims", [1, 2, 3])
def test_gradcheck_separable_conv(dims):
    torch.manual_seed(1)
    x = _t(*((1, 2) + (4,) * dims))
    factors = [_t(2, 1, k) for k in (3, 2, 2)[:dims]]
    _check(lambda x, b, *f: ft.separable_conv(x, list(f), b, padding=1, groups=2), x, _t(2),
           *factors)


MODULES = {     # name: (layer, input shape)
    "Conv1d": (lambda: ft.Conv1d(2, 2, 3, stride=2, padding="same"), (2, 2, 5)),
    "Conv2d": (lambda: ft.Conv2d(2, 2, 3, padding=1, padding_mode="reflect"), (1, 2, 4, 3)),
    "Conv3d": (lambda: ft.Conv3d(1, 2, 2, padding=(1, 0, 1)), (1, 1, 3, 3, 3)),
    "ConvTranspose1d": (lambda: ft.ConvTranspose1d(2, 2, 3, stride=2, output_padding=1),
                        (2, 2, 3)),
    "ConvTranspose2d": (lambda: ft.ConvTranspose2d(2, 2, 3, stride=2, padding=1), (1, 2, 3, 2)),
    "ConvTranspose3d": (lambda: ft.ConvTranspose3d(1, 2, 2, stride=2), (1, 1, 2, 2, 2)),
    "LocallyConnected1d": (lambda: ft.LocallyConnected1d(2, 2, 3, input_size=5), (2, 2, 5)),
    "LocallyConnected2d": (lambda: ft.LocallyConnected2d(1, 2, 2, input_size=(4, 3)),
                           (1, 1, 4, 3)),
    "LocallyConnected3d": (lambda: ft.LocallyConnected3d(1, 1, 2, input_size=3, bias="channel"),
                           (1, 1, 3, 3, 3)),
    "TiledConv1d": (lambda: ft.TiledConv1d(2, 2, 3, tiles=2, padding=1), (2, 2, 5)),
    "TiledConv2d": (lambda: ft.TiledConv2d(1, 2, 2, tiles=(2, 1)), (2, 1, 4, 3)),
    "TiledConv3d": (lambda: ft.TiledConv3d(1, 1, 2, tiles=2, bias=None), (1, 1, 3, 3, 3)),
    "SeparableConv1d": (lambda: ft.SeparableConv1d(2, 2, 3, padding=1), (2, 2, 5)),
    "SeparableConv2d": (lambda: ft.SeparableConv2d(2, 2, (3, 2), padding="same", stride=2),
                        (1, 2, 4, 3)),
    "SeparableConv3d": (lambda: ft.SeparableConv3d(1, 2, 2, padding_mode="replicate", padding=1),
                        (1, 1, 3, 3, 3)),
}


@pytest.mark.parametrize("name", list(MODULES))
def test_gradcheck_modules(name):
    """d/dx and d/d(every parameter) of each module, the parameters as explicit inputs."""
    torch.manual_seed(2)
    make, shape = MODULES[name]
    layer = make().double()
    names = [n for n, _ in layer.named_parameters()]
    params = [p.detach().clone().requires_grad_() for p in layer.parameters()]

    def run(x, *ps):
        return torch.func.functional_call(layer, dict(zip(names, ps)), (x,))

    _check(run, _t(*shape), *params)


def test_unshared_layers_match_fastconv_numpy_functions():
    torch.manual_seed(3)
    lc = ft.LocallyConnected2d(2, 3, 3, input_size=(6, 5), stride=(1, 2), padding=1).double()
    x = torch.randn(2, 2, 6, 5, **F64)
    expected = fastconv.local.locally_connected(x.numpy(), lc.weight.detach().numpy(),
                                                lc.bias.detach().numpy(), stride=(1, 2), padding=1)
    np.testing.assert_allclose(lc(x).detach().numpy(), expected, rtol=1e-12)
    assert lc.weight.shape == lc.out_size + (3, 2, 3, 3) and lc.bias.shape == (3,) + lc.out_size
    tiled = ft.TiledConv2d(2, 3, 3, tiles=(2, 3), padding="same").double()
    expected = fastconv.local.tiled_conv(x.numpy(), tiled.weight.detach().numpy(),
                                         tiled.bias.detach().numpy(), padding="same")
    np.testing.assert_allclose(tiled(x).detach().numpy(), expected, rtol=1e-12)
    assert lc(x[0]).shape == lc(x)[0].shape                      # unbatched
    with pytest.raises(ValueError, match="built for inputs of spatial size"):
        lc(torch.randn(1, 2, 7, 5, **F64))


def test_separable_layer_is_the_convolution_with_its_full_kernel():
    torch.manual_seed(4)
    layer = ft.SeparableConv2d(4, 6, (5, 3), padding=(2, 1), groups=2).double()
    x = torch.randn(2, 4, 7, 6, **F64)
    w = layer.kernel()
    assert w.shape == (6, 2, 5, 3)
    expected = torch.nn.functional.conv2d(x, w, layer.bias, padding=(2, 1), groups=2)
    torch.testing.assert_close(layer(x), expected)
    assert 0.2 < w.std().item() * np.sqrt(3 * 2 * 15) < 5      # about torch's init spread
