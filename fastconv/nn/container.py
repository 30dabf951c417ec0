"""Composition without a graph: a chain, parallel branches, a residual connection."""
import numpy as np

from .module import Module


class Sequential(Module):
    """Layers applied one after another; backward runs them in reverse."""

    def __init__(self, *layers):
        super().__init__()
        if len(layers) == 1 and isinstance(layers[0], (list, tuple)):
            layers = tuple(layers[0])
        for i, layer in enumerate(layers):
            self.add_module(str(i), layer)

    def __len__(self):
        return len(self._children)

    def __getitem__(self, i):
        return list(self._children.values())[i]

    def __iter__(self):
        return iter(self._children.values())

    def forward(self, x):
        for layer in self._children.values():
            x = layer(x)
        return x

    def backward(self, gy):
        for layer in reversed(list(self._children.values())):
            gy = layer.backward(gy)
        return gy

    def backward_parameters(self, gy):
        layers = list(self._children.values())
        for layer in reversed(layers[1:]):
            gy = layer.backward(gy)
        if layers:
            layers[0].backward_parameters(gy)


class Parallel(Module):
    """The same input through several branches, then concatenated on the channel axis
    (``combine="concat"``, Inception style) or summed (``combine="add"``)."""

    def __init__(self, branches, combine="concat"):
        super().__init__()
        if combine not in ("concat", "add"):
            raise ValueError(f"combine must be 'concat' or 'add', got {combine!r}")
        branches = list(branches)
        if not branches:
            raise ValueError("Parallel needs at least one branch")
        self.combine = combine
        for i, branch in enumerate(branches):
            self.add_module(str(i), branch)

    def forward(self, x):
        outs = [branch(x) for branch in self._children.values()]
        if self.combine == "add":
            shapes = {o.shape for o in outs}
            if len(shapes) != 1:
                raise ValueError(f"Parallel(combine='add'): the branches' outputs differ in shape: "
                                 f"{[o.shape for o in outs]}")
            y = outs[0].copy()
            for o in outs[1:]:
                y = y + o
            self._push(None)
            return y
        self._push([o.shape[1] for o in outs])
        try:
            return np.concatenate(outs, axis=1)
        except ValueError:
            raise ValueError(f"Parallel(combine='concat'): the branches' outputs must agree on all "
                             f"but the channel axis, got {[o.shape for o in outs]}") from None

    def backward(self, gy):
        (sizes,) = self._pop()
        branches = list(self._children.values())
        if sizes is None:
            pieces = [gy] * len(branches)
        else:
            pieces = np.split(np.asarray(gy), np.cumsum(sizes)[:-1], axis=1)
        gx = None
        for branch, piece in reversed(list(zip(branches, pieces))):
            g = branch.backward(piece)
            gx = g if gx is None else gx + g
        return gx

    def extra_repr(self):
        return f"combine={self.combine!r}"


class Residual(Module):
    """x + module(x) (the module must keep the shape)."""

    def __init__(self, module):
        super().__init__()
        self.add_module("module", module)

    def forward(self, x):
        x = np.asarray(x)
        y = self.module(x)
        if y.shape != x.shape:
            raise ValueError(f"Residual: the inner module changed the shape from {x.shape} to "
                             f"{y.shape}; a residual connection needs them equal")
        return x + y

    def backward(self, gy):
        return gy + self.module.backward(gy)
