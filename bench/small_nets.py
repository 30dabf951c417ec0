"""The four small networks of issue 13, each built twice: in fastconv.nn and in PyTorch.

Shared by bench/train_small_nets.py (the timing and the accuracy runs) and
tests/test_small_nets_match_torch.py (one step from the same weights gives the same weights),
so that the test checks exactly the networks the benchmark times.

Each network is one list of layers written with PyTorch's names and arguments (fastconv.nn
follows them); both twins are built from that list, except that the digits network on the
fastconv side is the demo's own `fastconv.demos.digits.build_model`, so the benchmark times
what the demo trains. `copy_weights` then checks, layer by layer, that the two twins line up
(same layer kinds in the same order, parameters of the same shapes) before copying fastconv's
initial weights into PyTorch's modules: a twin that drifted from the list fails loudly.

The one translation: fastconv's `GlobalAvgPool` ((N, C, L) -> (N, C)) is PyTorch's
`AdaptiveAvgPool1d(1)` ((N, C, L) -> (N, C, 1)); the `Flatten` after it makes both (N, C).
"""
from dataclasses import dataclass

import numpy as np

from fastconv import nn

LOSS_NAME = "softmax cross-entropy (mean over the batch)"
LEARNING_RATE = 0.01
MOMENTUM = 0.9


@dataclass(frozen=True)
class SmallNet:
    """A network of the benchmark: its layers (PyTorch's names and arguments), its batch size
    and the shape of one example (C, *spatial)."""
    name: str
    about: str
    batch: int
    example_shape: tuple
    layers: tuple

    @property
    def spatial_dims(self):
        return len(self.example_shape) - 1

    def describe(self):
        """One line per layer, in PyTorch's spelling."""
        return "\n".join(f"  {name}({_arguments(args, kwargs)})" for name, args, kwargs in self.layers)


def _arguments(args, kwargs):
    return ", ".join([repr(a) for a in args] + [f"{k}={v!r}" for k, v in kwargs.items()])


def _layer(name, *args, **kwargs):
    return (name, args, kwargs)


RELU = _layer("ReLU")
FLATTEN = _layer("Flatten")

NETS = {
    "digits": SmallNet(
        "digits", "the digits demo's LeNet (fastconv.demos.digits.build_model), 16x16 scans",
        32, (1, 16, 16), (
            _layer("Conv2d", 1, 16, 5, padding=2), RELU, _layer("MaxPool2d", 2),     # 16 -> 8
            _layer("Conv2d", 16, 32, 5, padding=2), RELU, _layer("MaxPool2d", 2),    # 8 -> 4
            FLATTEN, _layer("Linear", 512, 128), RELU, _layer("Linear", 128, 10))),
    "mnist": SmallNet(
        # LeNet-5's layer sizes on 28x28 without padding (the original padded MNIST to 32x32,
        # whose flattened size would be 400): 28 -> 24 -> 12 -> 8 -> 4, so 16 * 4 * 4 = 256
        "mnist", "LeNet-5's layer sizes on MNIST-sized 28x28 images, no padding",
        128, (1, 28, 28), (
            _layer("Conv2d", 1, 6, 5), RELU, _layer("MaxPool2d", 2),                 # 28 -> 12
            _layer("Conv2d", 6, 16, 5), RELU, _layer("MaxPool2d", 2),                # 12 -> 4
            FLATTEN, _layer("Linear", 256, 120), RELU, _layer("Linear", 120, 84), RELU,
            _layer("Linear", 84, 10))),
    "cifar": SmallNet(
        "cifar", "a typical small CIFAR-10 convnet, 3x32x32 images, 'same' 3x3 convolutions",
        64, (3, 32, 32), (
            _layer("Conv2d", 3, 32, 3, padding=1), RELU,
            _layer("Conv2d", 32, 32, 3, padding=1), RELU, _layer("MaxPool2d", 2),    # 32 -> 16
            _layer("Conv2d", 32, 64, 3, padding=1), RELU,
            _layer("Conv2d", 64, 64, 3, padding=1), RELU, _layer("MaxPool2d", 2),    # 16 -> 8
            FLATTEN, _layer("Linear", 4096, 128), RELU, _layer("Linear", 128, 10))),
    "audio": SmallNet(
        "audio", "a raw-audio 1-D convnet on 4000-sample snippets (0.5 s at 8 kHz)",
        32, (1, 4000), (
            _layer("Conv1d", 1, 16, 9, stride=4), RELU, _layer("MaxPool1d", 4),      # 4000 -> 249
            _layer("Conv1d", 16, 32, 9, padding=4), RELU, _layer("MaxPool1d", 4),    # 249 -> 62
            _layer("Conv1d", 32, 32, 9, padding=4), RELU,
            _layer("GlobalAvgPool"), FLATTEN, _layer("Linear", 32, 10))),
}

# layers whose fastconv and PyTorch classes differ in name: {fastconv name: PyTorch name}
_TORCH_NAME = {"GlobalAvgPool": "AdaptiveAvgPool1d"}
_TORCH_ARGS = {"GlobalAvgPool": (1,)}
_HAS_WEIGHTS = ("Conv1d", "Conv2d", "Linear")


def build_fastconv(net, seed=0):
    """The network in fastconv.nn, float32; its weights drawn (PyTorch's default initialisation
    rule) from one generator seeded with `seed`, layer after layer, as the demos do."""
    if net.name == "digits":
        from fastconv.demos.digits import build_model
        return build_model(seed=seed)
    rng = np.random.default_rng(seed)
    layers = []
    for name, args, kwargs in net.layers:
        if name in _HAS_WEIGHTS:
            kwargs = dict(kwargs, seed=rng)
        layers.append(getattr(nn, name)(*args, **kwargs))
    return nn.Sequential(*layers)


def build_torch(net):
    """The network in PyTorch, float32, with PyTorch's own initial weights (`copy_weights`
    replaces them with fastconv's)."""
    import torch
    layers = []
    for name, args, kwargs in net.layers:
        args = _TORCH_ARGS.get(name, args)
        layers.append(getattr(torch.nn, _TORCH_NAME.get(name, name))(*args, **kwargs))
    return torch.nn.Sequential(*layers)


def copy_weights(model, twin):
    """Copy the fastconv model's parameters into the PyTorch twin, after checking that the two
    have the same layer kinds in the same order and parameters of the same shapes, one to one."""
    import torch
    ours = [type(layer).__name__ for layer in model]
    theirs = [type(layer).__name__ for layer in twin]
    translated = [_TORCH_NAME.get(name, name) for name in ours]
    if translated != theirs:
        raise ValueError(f"the twins' layers differ:\n  fastconv {ours}\n  torch    {theirs}")
    ours, theirs = model.named_parameters(), list(twin.named_parameters())
    if len(ours) != len(theirs):
        raise ValueError(f"fastconv has {len(ours)} parameter arrays, PyTorch {len(theirs)}")
    with torch.no_grad():
        for (name, p), (torch_name, q) in zip(ours, theirs):
            if tuple(p.shape) != tuple(q.shape):
                raise ValueError(f"fastconv's {name} has shape {p.shape}, PyTorch's {torch_name} "
                                 f"{tuple(q.shape)}")
            q.copy_(torch.from_numpy(np.ascontiguousarray(p)))


def random_batch(net, batch=None, seed=0):
    """A batch of standard-normal inputs (float32) and random class labels (int64)."""
    rng = np.random.default_rng(seed)
    n = net.batch if batch is None else batch
    x = rng.standard_normal((n,) + net.example_shape, dtype=np.float32)
    return x, rng.integers(0, 10, n)


def fastconv_trainer(model):
    """step(x, y) -> loss: one `fastconv.nn.train_step` (forward, cross-entropy, backward, SGD
    with momentum) on the model."""
    loss = nn.CrossEntropyLoss()
    optimizer = nn.SGD(model, lr=LEARNING_RATE, momentum=MOMENTUM)

    def step(x, y):
        value, _ = nn.train_step(model, x, y, loss, optimizer)
        return float(value)
    return step


def torch_trainer(twin):
    """step(x, y) -> loss: the usual PyTorch step (zero_grad, forward, cross-entropy, backward,
    SGD with momentum); x and y are torch tensors (converting them is not part of the step)."""
    import torch
    optimizer = torch.optim.SGD(twin.parameters(), lr=LEARNING_RATE, momentum=MOMENTUM)

    def step(x, y):
        optimizer.zero_grad()
        loss = torch.nn.functional.cross_entropy(twin(x), y)
        loss.backward()
        optimizer.step()
        return loss.item()
    return step


def twins(net, seed=0):
    """(fastconv model, PyTorch twin) holding the same initial weights."""
    model = build_fastconv(net, seed)
    twin = build_torch(net)
    copy_weights(model, twin)
    return model, twin


def relative_difference(a, b):
    """max|a - b| / max|b| (b the PyTorch side; 0 when both are zero)."""
    scale = float(np.abs(b).max())
    err = float(np.abs(a - b).max())
    return err / scale if scale > 0 else err


def routing_differences(model, twin, x):
    """How many ReLU units and max-pool windows route the gradient differently in the two twins'
    forward passes on x: units whose sign differs, windows whose largest value sits at a different
    place. A discrete switch like that, made by rounding on a near-tie (two values of a window
    within ~1e-6 of each other, or a pre-activation that close to 0), sends a whole gradient
    entry elsewhere, so the gradients then differ by far more than rounding; counting the
    switches tells that apart from a wrong gradient."""
    import torch
    switches = 0
    a, b = x, torch.from_numpy(x)
    model.eval()
    try:
        with torch.no_grad():
            for ours, theirs in zip(model, twin):
                kind = type(ours).__name__
                if kind == "ReLU":
                    switches += int(((a > 0) != (b.numpy() > 0)).sum())
                elif kind.startswith("MaxPool"):
                    switches += int((_window_argmax(a, ours.kernel_size)
                                     != _window_argmax(b.numpy(), ours.kernel_size)).sum())
                a, b = ours(a), theirs(b)
    finally:
        model.train()
    return switches


def _window_argmax(a, size):
    """Where each non-overlapping size^d window of a (N, C, *spatial) has its largest value."""
    d = a.ndim - 2
    sizes = (size,) * d if isinstance(size, int) else tuple(size)
    crop = tuple(slice(0, n - n % k) for n, k in zip(a.shape[2:], sizes))
    a = a[(slice(None), slice(None)) + crop]
    shape = list(a.shape[:2])
    for n, k in zip(a.shape[2:], sizes):
        shape += [n // k, k]
    windows = a.reshape(shape)
    inner = tuple(range(3, 2 + 2 * d, 2))
    outer = tuple(range(2, 2 + 2 * d, 2))
    windows = windows.transpose((0, 1) + outer + inner)
    return windows.reshape(windows.shape[:2 + d] + (-1,)).argmax(axis=-1)


def one_step_differences(net, batch=None, seed=0):
    """Take one training step with each twin from the same weights on the same batch.

    Returns {"loss": relative difference of the two losses, "gradients": {parameter: relative
    difference of the gradients}, "weights": {parameter: relative difference of the updated
    weights}, "switches": `routing_differences` of the forward pass}. The updated weights alone
    would hide a wrong gradient behind the weights it is added to (lr 0.01: a 1% error in a
    gradient is a 1e-4 change in the weights), so the gradients the step used are compared as
    well (each library keeps them after its step)."""
    import torch
    model, twin = twins(net, seed)
    x, y = random_batch(net, batch, seed + 1)
    switches = routing_differences(model, twin, x)
    ours = fastconv_trainer(model)(x, y)
    theirs = torch_trainer(twin)(torch.from_numpy(x), torch.from_numpy(y))
    gradients, weights = {}, {}
    for (name, p), g, q in zip(model.named_parameters(), model.gradients(), twin.parameters()):
        gradients[name] = relative_difference(g, q.grad.numpy())
        weights[name] = relative_difference(p, q.detach().numpy())
    return {"loss": abs(ours - theirs) / abs(theirs), "gradients": gradients, "weights": weights,
            "switches": switches}


# The agreement both the benchmark and the test ask of one step (relative to each parameter's
# largest magnitude). The gradients may differ by more only where `routing_differences` found a
# switch: then up to SWITCHED_GRADIENT_TOLERANCE (one max-pool switch on the cifar network at
# batch 64, seed 0, with fastconv's Winograd forward: 1.9e-3; a wrong gradient is off by O(1)).
WEIGHT_TOLERANCE = 1e-4
GRADIENT_TOLERANCE = 1e-4
SWITCHED_GRADIENT_TOLERANCE = 1e-2


def step_agrees(found):
    """Whether a `one_step_differences` result is within the tolerances above."""
    limit = SWITCHED_GRADIENT_TOLERANCE if found["switches"] else GRADIENT_TOLERANCE
    return (max(found["weights"].values()) < WEIGHT_TOLERANCE
            and max(found["gradients"].values()) < limit)
