"""Optimizers with PyTorch's update rules, updating the parameters in place.

``params`` is a Module (its ``param_groups()``) or a list of (parameter, gradient) pairs of
arrays; the gradients are read where backward accumulated them.
"""
import math

import numpy as np

from .module import Module


def _pairs(params):
    if isinstance(params, Module):
        return params.param_groups()
    pairs = list(params)
    for i, pair in enumerate(pairs):
        if not (isinstance(pair, tuple) and len(pair) == 2 and all(isinstance(a, np.ndarray) for a in pair)
                and pair[0].shape == pair[1].shape):
            raise TypeError(f"params must be a Module or (parameter, gradient) array pairs of equal "
                            f"shape; item {i} is {type(pair).__name__}")
    return pairs


class Optimizer:
    def __init__(self, params, lr):
        self.pairs = _pairs(params)
        if not lr > 0:
            raise ValueError(f"lr must be > 0, got {lr}")
        self.lr = float(lr)
        self.state = [{} for _ in self.pairs]

    def zero_grad(self):
        for _, g in self.pairs:
            g.fill(0)

    def step(self):
        for (p, g), state in zip(self.pairs, self.state):
            self._update(p, g, state)


class SGD(Optimizer):
    """torch.optim.SGD: g += wd p; buf = momentum buf + (1 - dampening) g (buf = g at first);
    g = g + momentum buf (Nesterov) or buf; p -= lr g."""

    def __init__(self, params, lr=0.01, momentum=0.0, dampening=0.0, weight_decay=0.0,
                 nesterov=False):
        super().__init__(params, lr)
        if momentum < 0 or weight_decay < 0:
            raise ValueError(f"momentum and weight_decay must be >= 0, got {momentum}, {weight_decay}")
        if nesterov and (momentum <= 0 or dampening != 0):
            raise ValueError("nesterov needs momentum > 0 and dampening 0")
        self.momentum, self.dampening = float(momentum), float(dampening)
        self.weight_decay, self.nesterov = float(weight_decay), bool(nesterov)

    def _update(self, p, g, state):
        """In place, in the parameter's precision, with torch's order of operations; in the
        steady state (momentum buffer made) nothing is allocated but one scratch array."""
        tmp = state.get("scratch")
        if tmp is None or tmp.shape != p.shape or tmp.dtype != p.dtype:
            tmp = state["scratch"] = np.empty_like(p)
        if self.weight_decay:
            d = np.multiply(p, self.weight_decay, out=tmp)
            d += g
        else:
            d = g
        if self.momentum:
            buf = state.get("momentum")
            if buf is None:
                buf = state["momentum"] = np.array(d, p.dtype)
            else:
                buf *= self.momentum
                if self.dampening:
                    buf += (1 - self.dampening) * d
                else:
                    buf += d
            if self.nesterov:
                d = np.add(d, self.momentum * buf, out=tmp)
            else:
                d = buf
        p -= np.multiply(d, self.lr, out=tmp)


class Adam(Optimizer):
    """torch.optim.Adam (weight decay added to the gradient; ``AdamW`` decouples it)."""

    decoupled = False

    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0):
        super().__init__(params, lr)
        b1, b2 = betas
        if not (0 <= b1 < 1 and 0 <= b2 < 1):
            raise ValueError(f"betas must be in [0, 1), got {betas}")
        self.betas, self.eps, self.weight_decay = (float(b1), float(b2)), float(eps), float(weight_decay)
        self._scratch = []

    def step(self):
        if len(self._scratch) != len(self.pairs):
            self._scratch = [None] * len(self.pairs)
        for i, ((p, g), state) in enumerate(zip(self.pairs, self.state)):
            if self._scratch[i] is None or self._scratch[i][0].shape != p.shape:
                self._scratch[i] = (np.empty_like(p), np.empty_like(p))
            self._update(p, g, state, self._scratch[i])

    def _update(self, p, g, state, scratch=None):
        """In place, in the parameter's precision (as torch.optim.Adam), with the same order of
        operations as m / (1 - b1^t) / (sqrt(v) / sqrt(1 - b2^t) + eps): no temporaries."""
        b1, b2 = self.betas
        if self.weight_decay and self.decoupled:
            p *= 1 - self.lr * self.weight_decay
            d = g
        else:
            d = g + self.weight_decay * p if self.weight_decay else g
        if not state:
            state.update(step=0, m=np.zeros_like(p), v=np.zeros_like(p))
        state["step"] += 1
        t = state["step"]
        m, v = state["m"], state["v"]
        tmp, upd = scratch if scratch is not None else (np.empty_like(p), np.empty_like(p))
        m *= b1
        m += np.multiply(d, 1 - b1, out=tmp)
        v *= b2
        np.multiply(d, 1 - b2, out=tmp)
        v += np.multiply(tmp, d, out=tmp)
        step_size = self.lr / (1 - b1 ** t)
        denom = np.sqrt(v, out=tmp)
        denom /= math.sqrt(1 - b2 ** t)
        denom += self.eps
        p -= np.divide(np.multiply(m, step_size, out=upd), denom, out=upd)


class AdamW(Adam):
    """torch.optim.AdamW: p *= 1 - lr * wd before the Adam step."""

    decoupled = True

    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.01):
        super().__init__(params, lr, betas, eps, weight_decay)
