"""The four small networks that bench/train_small_nets.py times (issue 13) take the same training
step in fastconv.nn as in PyTorch: from the same weights on the same batch, the same gradients
and the same updated weights. A benchmark of a wrong answer is worthless, so the networks are
imported from the benchmark's own module (bench/small_nets.py), not rebuilt here."""
import sys
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "bench"))
import small_nets  # noqa: E402

BATCH = 8


@pytest.mark.parametrize("name", list(small_nets.NETS))
def test_one_step_matches_torch(name):
    found = small_nets.one_step_differences(small_nets.NETS[name], batch=BATCH, seed=0)
    worst_weight = max(found["weights"].items(), key=lambda kv: kv[1])
    worst_gradient = max(found["gradients"].items(), key=lambda kv: kv[1])
    assert found["loss"] < small_nets.WEIGHT_TOLERANCE, found["loss"]
    assert small_nets.step_agrees(found), (
        f"{name}: worst updated weight {worst_weight}, worst gradient {worst_gradient}, "
        f"{found['switches']} ReLU/max-pool switches on near-ties")


def test_digits_is_the_demos_network():
    """The benchmark's digits network is the demo's build_model, and its PyTorch twin lines up
    with it layer by layer (copy_weights checks kinds and shapes)."""
    from fastconv.demos.digits import build_model
    net = small_nets.NETS["digits"]
    model = small_nets.build_fastconv(net, seed=3)
    demo = build_model(seed=3)
    assert repr(model) == repr(demo)
    for p, q in zip(model.parameters(), demo.parameters()):
        np.testing.assert_array_equal(p, q)
    small_nets.copy_weights(model, small_nets.build_torch(net))


@pytest.mark.parametrize("shape, size", [((2, 3, 8, 8), 2), ((2, 3, 9, 7), 2), ((2, 3, 249), 4)])
def test_window_argmax_agrees_with_torch_max_pool(shape, size):
    """The switch counter's window argmax is where PyTorch's max pool takes its maximum (the
    looser gradient tolerance after a switch rests on counting switches right)."""
    a = np.random.default_rng(0).standard_normal(shape).astype(np.float32)
    pool = torch.nn.functional.max_pool2d if len(shape) == 4 else torch.nn.functional.max_pool1d
    _, flat = pool(torch.from_numpy(a), size, return_indices=True)
    flat = flat.numpy()
    if len(shape) == 4:
        rows, cols = np.divmod(flat, shape[3])
        offset = (rows % size) * size + cols % size
    else:
        offset = flat % size
    np.testing.assert_array_equal(small_nets._window_argmax(a, size), offset)


def test_a_switch_is_counted():
    """A twin whose weights are perturbed past a near-tie is seen to route differently."""
    net = small_nets.NETS["mnist"]
    model, twin = small_nets.twins(net, seed=0)
    x, _ = small_nets.random_batch(net, batch=BATCH, seed=1)
    assert small_nets.routing_differences(model, twin, x) == 0
    with torch.no_grad():
        twin[0].bias.add_(0.05)
    assert small_nets.routing_differences(model, twin, x) > 0
