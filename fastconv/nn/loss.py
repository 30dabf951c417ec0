"""Losses: each call returns the loss (a float) and remembers what ``backward()`` needs to give
d loss / d input."""
import numpy as np

from .activation import log_softmax


class Loss:
    reduction = "mean"

    def __call__(self, output, target):
        return self.forward(output, target)

    def backward(self):
        if getattr(self, "_saved", None) is None:
            raise RuntimeError(f"{type(self).__name__}.backward() needs a forward call first")
        g, self._saved = self._saved, None
        return g


def _reduction(reduction):
    if reduction not in ("mean", "sum"):
        raise ValueError(f"reduction must be 'mean' or 'sum', got {reduction!r}")
    return reduction


class CrossEntropyLoss(Loss):
    """Softmax cross-entropy from logits.

    ``logits`` (N, classes) with integer ``target`` (N,), or per pixel: logits
    (N, classes, *spatial) with target (N, *spatial) for structured outputs (section 9.6). Targets
    equal to ``ignore_index`` count for nothing; ``mean`` divides by the number of the others.
    """

    def __init__(self, ignore_index=-100, reduction="mean"):
        self.ignore_index = int(ignore_index)
        self.reduction = _reduction(reduction)
        self._saved = None

    def forward(self, logits, target):
        logits = np.asarray(logits)
        target = np.asarray(target)
        if logits.ndim < 2:
            raise ValueError(f"CrossEntropyLoss: logits must be (N, classes, *spatial), got shape "
                             f"{logits.shape}")
        expected = (logits.shape[0],) + logits.shape[2:]
        if target.shape != expected:
            raise ValueError(f"CrossEntropyLoss: target must have shape {expected} for logits of "
                             f"shape {logits.shape}, got {target.shape}")
        if target.dtype.kind not in "iub":
            raise TypeError(f"CrossEntropyLoss: target must hold integer class indices, got dtype "
                            f"{target.dtype}")
        classes = logits.shape[1]
        valid = target != self.ignore_index
        t = np.where(valid, target, 0).astype(np.intp)
        if t.size and (t.min() < 0 or t.max() >= classes):
            raise ValueError(f"CrossEntropyLoss: target values must be in [0, {classes}) or "
                             f"ignore_index ({self.ignore_index}), got range [{target.min()}, "
                             f"{target.max()}]")
        logp = log_softmax(logits, axis=1)
        picked = np.take_along_axis(logp, t[:, None], axis=1)[:, 0]
        count = int(valid.sum())
        total = -float(np.where(valid, picked, 0).sum(dtype=np.float64))
        scale = 1.0 / max(count, 1) if self.reduction == "mean" else 1.0
        grad = np.exp(logp)
        np.put_along_axis(grad, t[:, None], np.take_along_axis(grad, t[:, None], axis=1) - 1, axis=1)
        grad *= (valid[:, None] * scale).astype(grad.dtype)
        self._saved = grad
        return total * scale


class MSELoss(Loss):
    """Mean (or sum) of squared differences."""

    def __init__(self, reduction="mean"):
        self.reduction = _reduction(reduction)
        self._saved = None

    def forward(self, output, target):
        output = np.asarray(output)
        target = np.asarray(target)
        if output.shape != target.shape:
            raise ValueError(f"MSELoss: target must have the output's shape {output.shape}, got "
                             f"{target.shape}")
        diff = output - target.astype(output.dtype, copy=False)
        scale = 1.0 / max(diff.size, 1) if self.reduction == "mean" else 1.0
        self._saved = (2 * scale * diff).astype(output.dtype, copy=False)
        return float(np.square(diff, dtype=np.float64).sum()) * scale
