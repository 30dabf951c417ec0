"""fastconv.nn layers against the same PyTorch modules with the same weights (skipped without torch)."""
import numpy as np
import pytest

from fastconv import nn

torch = pytest.importorskip("torch")
tnn = torch.nn

CASES = [
    ("conv1d", lambda: nn.Conv1d(3, 4, 5, stride=2, padding=2, dilation=1),
     lambda: tnn.Conv1d(3, 4, 5, stride=2, padding=2), (2, 3, 11)),
    ("conv2d", lambda: nn.Conv2d(4, 6, 3, padding=1, dilation=2, groups=2),
     lambda: tnn.Conv2d(4, 6, 3, padding=1, dilation=2, groups=2), (2, 4, 7, 8)),
    ("conv2d-reflect", lambda: nn.Conv2d(2, 3, 3, padding=1, padding_mode="reflect"),
     lambda: tnn.Conv2d(2, 3, 3, padding=1, padding_mode="reflect"), (2, 2, 5, 6)),
    ("conv3d", lambda: nn.Conv3d(2, 3, 3, stride=2, padding=1, bias=None),
     lambda: tnn.Conv3d(2, 3, 3, stride=2, padding=1, bias=False), (2, 2, 5, 6, 4)),
    ("convT2d", lambda: nn.ConvTranspose2d(4, 6, 3, stride=2, padding=1, output_padding=1, groups=2),
     lambda: tnn.ConvTranspose2d(4, 6, 3, stride=2, padding=1, output_padding=1, groups=2),
     (2, 4, 4, 5)),
    ("convT1d", lambda: nn.ConvTranspose1d(3, 2, 4, stride=3),
     lambda: tnn.ConvTranspose1d(3, 2, 4, stride=3), (2, 3, 5)),
    ("linear", lambda: nn.Linear(6, 4), lambda: tnn.Linear(6, 4), (5, 6)),
    ("maxpool2d", lambda: nn.MaxPool2d(3, stride=2, padding=1),
     lambda: tnn.MaxPool2d(3, stride=2, padding=1), (2, 3, 7, 6)),
    ("avgpool2d", lambda: nn.AvgPool2d(3, stride=2, padding=1, count_include_pad=False),
     lambda: tnn.AvgPool2d(3, stride=2, padding=1, count_include_pad=False), (2, 3, 7, 6)),
    ("lppool2d", lambda: nn.LPPool2d(2, 2), lambda: tnn.LPPool2d(2, 2), (2, 3, 6, 4)),
    ("adaptiveavg2d", lambda: nn.AdaptiveAvgPool2d((3, 2)), lambda: tnn.AdaptiveAvgPool2d((3, 2)),
     (2, 3, 7, 5)),
    ("adaptivemax1d", lambda: nn.AdaptiveMaxPool1d(4), lambda: tnn.AdaptiveMaxPool1d(4), (2, 3, 10)),
    ("batchnorm2d", lambda: nn.BatchNorm2d(3), lambda: tnn.BatchNorm2d(3), (4, 3, 5, 2)),
    ("batchnorm1d", lambda: nn.BatchNorm1d(3), lambda: tnn.BatchNorm1d(3), (6, 3)),
    ("softmax", lambda: nn.Softmax(), lambda: tnn.Softmax(dim=1), (3, 4, 2)),
    ("tanh", lambda: nn.Tanh(), lambda: tnn.Tanh(), (3, 4)),
    ("sigmoid", lambda: nn.Sigmoid(), lambda: tnn.Sigmoid(), (3, 4)),
]


@pytest.mark.parametrize("ours,theirs,shape", [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_forward_and_backward_match_torch(ours, theirs, shape, rng):
    layer = ours().to(np.float64)
    module = theirs().double()
    with torch.no_grad():
        for name, p in layer.named_parameters():
            getattr(module, name).copy_(torch.from_numpy(p))
    x = rng.standard_normal(shape)
    tx = torch.tensor(x, requires_grad=True)
    ty = module(tx)
    y = layer(x)
    np.testing.assert_allclose(y, ty.detach().numpy(), rtol=1e-10, atol=1e-12)
    gy = rng.standard_normal(y.shape)
    ty.backward(torch.from_numpy(gy))
    np.testing.assert_allclose(layer.backward(gy), tx.grad.numpy(), rtol=1e-10, atol=1e-12)
    for name, _ in layer.named_parameters():
        np.testing.assert_allclose(layer.grads[name], getattr(module, name).grad.numpy(),
                                   rtol=1e-10, atol=1e-12, err_msg=name)
    for name, b in layer.named_buffers():
        if name != "num_batches_tracked":
            np.testing.assert_allclose(b, getattr(module, name).numpy(), rtol=1e-10, err_msg=name)


def test_a_small_network_trains_like_torch(rng):
    """Three SGD steps of the same conv net, same weights and batches, agree with PyTorch."""
    ours = nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(),
                         nn.Linear(16, 3)).to(np.float64)
    theirs = tnn.Sequential(tnn.Conv2d(1, 4, 3, padding=1), tnn.ReLU(), tnn.MaxPool2d(2),
                            tnn.Flatten(), tnn.Linear(16, 3)).double()
    with torch.no_grad():
        for (_, p), tp in zip(ours.named_parameters(), theirs.parameters()):
            tp.copy_(torch.from_numpy(p))
    opt = nn.SGD(ours, lr=0.1, momentum=0.9)
    t_opt = torch.optim.SGD(theirs.parameters(), lr=0.1, momentum=0.9)
    loss = nn.CrossEntropyLoss()
    for _ in range(3):
        x = rng.standard_normal((5, 1, 4, 4))
        y = rng.integers(0, 3, 5)
        nn.train_step(ours, x, y, loss, opt)
        t_opt.zero_grad()
        torch.nn.functional.cross_entropy(theirs(torch.from_numpy(x)), torch.from_numpy(y)).backward()
        t_opt.step()
    for p, tp in zip(ours.parameters(), theirs.parameters()):
        np.testing.assert_allclose(p, tp.detach().numpy(), rtol=1e-9, atol=1e-12)
