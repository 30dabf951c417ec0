"""Losses (values and gradients) and optimizers (update rules written out, and torch.optim)."""
import numpy as np
import pytest

from fastconv import nn


def _ce_reference(logits, target, ignore_index=-100):
    """-log softmax at the target, averaged over the non-ignored positions (float64)."""
    z = np.moveaxis(logits, 1, -1).reshape(-1, logits.shape[1]).astype(np.float64)
    t = target.reshape(-1)
    keep = t != ignore_index
    logp = z - np.log(np.exp(z - z.max(1, keepdims=True)).sum(1, keepdims=True)) - z.max(1, keepdims=True)
    return -logp[keep, t[keep]].mean()


def _numeric_grad(f, x, eps=1e-6):
    g = np.zeros_like(x)
    flat, gflat = x.reshape(-1), g.reshape(-1)
    for i in range(flat.size):
        old = flat[i]
        flat[i] = old + eps
        plus = f()
        flat[i] = old - eps
        minus = f()
        flat[i] = old
        gflat[i] = (plus - minus) / (2 * eps)
    return g


@pytest.mark.parametrize("shape", [(5, 4), (2, 3, 4, 3), (2, 3, 5)])
def test_cross_entropy_value_and_gradient(shape, rng):
    logits = rng.standard_normal(shape) * 3
    target = rng.integers(0, shape[1], (shape[0],) + shape[2:])
    target.reshape(-1)[::4] = -100                       # some ignored positions
    loss = nn.CrossEntropyLoss()
    value = loss(logits, target)
    assert abs(value - _ce_reference(logits, target)) < 1e-12
    grad = loss.backward()
    numeric = _numeric_grad(lambda: nn.CrossEntropyLoss()(logits, target), logits)
    np.testing.assert_allclose(grad, numeric, atol=1e-8)
    with pytest.raises(RuntimeError):
        loss.backward()                                  # consumed


def test_cross_entropy_sum_and_stability(rng):
    logits = np.array([[1000.0, 0.0], [0.0, -1000.0]])
    target = np.array([1, 0])
    value = nn.CrossEntropyLoss(reduction="sum")(logits, target)
    assert np.isfinite(value) and abs(value - 1000.0) < 1e-9


def test_cross_entropy_rejects_bad_targets(rng):
    loss = nn.CrossEntropyLoss()
    with pytest.raises(ValueError, match="target must have shape"):
        loss(rng.standard_normal((4, 3)), np.zeros(5, int))
    with pytest.raises(ValueError, match=r"\[0, 3\)"):
        loss(rng.standard_normal((4, 3)), np.array([0, 1, 2, 3]))
    with pytest.raises(TypeError, match="integer"):
        loss(rng.standard_normal((4, 3)), np.zeros(4))


def test_mse_value_and_gradient(rng):
    out, target = rng.standard_normal((3, 2, 4)), rng.standard_normal((3, 2, 4))
    loss = nn.MSELoss()
    assert abs(loss(out, target) - np.mean((out - target) ** 2)) < 1e-12
    grad = loss.backward()
    np.testing.assert_allclose(grad, _numeric_grad(lambda: nn.MSELoss()(out, target), out), atol=1e-8)
    with pytest.raises(ValueError, match="shape"):
        loss(out, target[:1])


def test_losses_against_torch(rng):
    torch = pytest.importorskip("torch")
    logits = rng.standard_normal((4, 5, 3, 2))
    target = rng.integers(0, 5, (4, 3, 2))
    target[0, 0, 0] = 2
    target[1, 1, 1] = -100
    t_logits = torch.tensor(logits, requires_grad=True)
    t_loss = torch.nn.functional.cross_entropy(t_logits, torch.tensor(target), ignore_index=-100)
    t_loss.backward()
    loss = nn.CrossEntropyLoss()
    assert abs(loss(logits, target) - t_loss.item()) < 1e-12
    np.testing.assert_allclose(loss.backward(), t_logits.grad.numpy(), atol=1e-14)


# --- optimizers ------------------------------------------------------------------------

def _pairs(rng, dtype=np.float64):
    params = [rng.standard_normal((3, 4)).astype(dtype), rng.standard_normal(5).astype(dtype)]
    grads = [np.zeros_like(p) for p in params]
    return params, grads


def _run(opt_factory, params, grads, grad_seq):
    opt = opt_factory(list(zip(params, grads)))
    for step_grads in grad_seq:
        for g, new in zip(grads, step_grads):
            g[...] = new
        opt.step()
    return params


def test_sgd_momentum_nesterov_written_out(rng):
    params, grads = _pairs(rng)
    start = [p.copy() for p in params]
    seq = [[rng.standard_normal(p.shape) for p in params] for _ in range(3)]
    _run(lambda pg: nn.SGD(pg, lr=0.1, momentum=0.9, weight_decay=0.01, nesterov=True),
         params, grads, seq)
    for i, p0 in enumerate(start):
        p, buf = p0.copy(), None
        for step in seq:
            d = step[i] + 0.01 * p
            buf = d.copy() if buf is None else 0.9 * buf + d
            p = p - 0.1 * (d + 0.9 * buf)
        np.testing.assert_allclose(params[i], p, rtol=1e-12)


def test_adam_written_out(rng):
    params, grads = _pairs(rng)
    start = [p.copy() for p in params]
    seq = [[rng.standard_normal(p.shape) for p in params] for _ in range(4)]
    _run(lambda pg: nn.Adam(pg, lr=0.01), params, grads, seq)
    for i, p0 in enumerate(start):
        p, m, v = p0.copy(), 0, 0
        for t, step in enumerate(seq, 1):
            m = 0.9 * m + 0.1 * step[i]
            v = 0.999 * v + 0.001 * step[i] ** 2
            p = p - 0.01 * (m / (1 - 0.9 ** t)) / (np.sqrt(v / (1 - 0.999 ** t)) + 1e-8)
        np.testing.assert_allclose(params[i], p, rtol=1e-12)


OPTIMIZERS = [
    ("SGD", dict(lr=0.1)),
    ("SGD", dict(lr=0.05, momentum=0.9)),
    ("SGD", dict(lr=0.05, momentum=0.8, dampening=0.1, weight_decay=0.01)),
    ("SGD", dict(lr=0.05, momentum=0.9, nesterov=True, weight_decay=0.001)),
    ("Adam", dict(lr=0.01)),
    ("Adam", dict(lr=0.01, betas=(0.8, 0.99), weight_decay=0.01)),
    ("AdamW", dict(lr=0.01, weight_decay=0.1)),
]


@pytest.mark.parametrize("name,kwargs", OPTIMIZERS, ids=[f"{n}-{i}" for i, (n, _) in enumerate(OPTIMIZERS)])
def test_optimizers_match_torch_optim(name, kwargs, rng):
    torch = pytest.importorskip("torch")
    params, grads = _pairs(rng)
    t_params = [torch.tensor(p.copy(), requires_grad=True) for p in params]
    t_opt = getattr(torch.optim, name)(t_params, **kwargs)
    opt = getattr(nn, name)(list(zip(params, grads)), **kwargs)
    for _ in range(5):
        for g, tp in zip(grads, t_params):
            g[...] = rng.standard_normal(g.shape)
            tp.grad = torch.tensor(g.copy())
        opt.step()
        t_opt.step()
    for p, tp in zip(params, t_params):
        np.testing.assert_allclose(p, tp.detach().numpy(), rtol=1e-10, atol=1e-12)


def test_optimizer_on_a_module_and_bad_arguments(rng):
    model = nn.Linear(3, 2)
    opt = nn.SGD(model, lr=0.5)
    before = model.weight.copy()
    model.grads["weight"][...] = 1
    opt.step()
    np.testing.assert_allclose(model.weight, before - 0.5)
    opt.zero_grad()
    assert not model.grads["weight"].any()
    with pytest.raises(ValueError, match="lr"):
        nn.SGD(model, lr=0)
    with pytest.raises(ValueError, match="nesterov"):
        nn.SGD(model, lr=0.1, nesterov=True)
    with pytest.raises(TypeError, match="params"):
        nn.Adam([model.weight])
