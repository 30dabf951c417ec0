"""Training: ``fit`` (minibatch SGD/Adam with a progress bar), ``evaluate``, ``predict`` and a
per-layer timing report."""
import math
import time

import numpy as np

from .loss import CrossEntropyLoss, MSELoss
from .module import Module, make_rng
from .optim import Adam, Optimizer


def _arrays(data, name):
    if not (isinstance(data, (tuple, list)) and len(data) == 2):
        raise TypeError(f"{name} must be a pair (inputs, targets), got {type(data).__name__}")
    x, y = np.asarray(data[0]), np.asarray(data[1])
    if len(x) != len(y):
        raise ValueError(f"{name}: inputs and targets differ in length ({len(x)} vs {len(y)})")
    return x, y


def _batches(n, batch_size, order=None):
    order = np.arange(n) if order is None else order
    for start in range(0, n, batch_size):
        yield order[start:start + batch_size]


def _counts(loss, out, y):
    """How many terms a mean-reduced loss averaged over, and how many were classified right."""
    if isinstance(loss, CrossEntropyLoss):
        valid = y != loss.ignore_index
        correct = int(((out.argmax(axis=1) == y) & valid).sum())
        return int(valid.sum()), correct
    return int(np.asarray(out).size), None


def train_step(model, x, y, loss, optimizer):
    """One forward, backward and update on one batch; returns (loss value, output)."""
    optimizer.zero_grad()
    out = model(x)
    value = loss(out, y)
    gy = loss.backward()
    backward = getattr(model, "backward_parameters", None)    # the input's gradient is not needed
    (backward or model.backward)(gy)
    optimizer.step()
    return value, out


class History(dict):
    """Per-epoch lists: loss, accuracy, val_loss, val_accuracy, seconds, examples_per_second;
    ``best_epoch`` when early stopping restored the best weights."""

    def __getattr__(self, name):
        try:
            return self[name]
        except KeyError:
            raise AttributeError(name) from None


def fit(model, data, epochs=10, batch_size=32, loss=None, optimizer=None, validation=None,
        early_stopping=None, seed=0, progress=True, shuffle=True, schedule=None, callback=None):
    """Train ``model`` on ``data = (x, y)`` and return the per-epoch :class:`History`.

    ``loss``: a loss object (default CrossEntropyLoss). ``optimizer``: an Optimizer built on the
    model (default Adam, lr 1e-3). ``validation``: (x, y) scored after each epoch.
    ``early_stopping``: a patience in epochs (or a dict ``patience=, min_delta=``): stop when the
    validation loss (the training loss without validation) has not improved for that many epochs,
    and restore the best weights. ``schedule``: None (constant learning rate), ``"cosine"`` (from
    the optimizer's lr down to 0 over the epochs) or a function epoch -> learning rate.
    ``seed`` fixes the shuffling. ``progress`` shows a tqdm bar per
    epoch with the loss, accuracy and examples per second. ``callback(epoch, history)`` runs after
    each epoch; returning True stops training.
    """
    if not isinstance(model, Module):
        raise TypeError(f"model must be a fastconv.nn.Module, got {type(model).__name__}")
    x, y = _arrays(data, "data")
    if validation is not None:
        validation = _arrays(validation, "validation")
    loss = CrossEntropyLoss() if loss is None else loss
    optimizer = Adam(model) if optimizer is None else optimizer
    if not isinstance(optimizer, Optimizer):
        raise TypeError(f"optimizer must be a fastconv.nn optimizer, got {type(optimizer).__name__}")
    if int(batch_size) < 1 or int(epochs) < 0:
        raise ValueError(f"batch_size must be >= 1 and epochs >= 0, got {batch_size}, {epochs}")
    patience, min_delta = _early_stopping(early_stopping)
    rng = make_rng(seed) if seed is not None else np.random.default_rng()
    history = History(loss=[], accuracy=[], val_loss=[], val_accuracy=[], seconds=[],
                      examples_per_second=[])
    best, best_state, waited = np.inf, None, 0
    n = len(x)
    base_lr = optimizer.lr
    for epoch in range(int(epochs)):
        optimizer.lr = _learning_rate(schedule, base_lr, epoch, int(epochs))
        model.train()
        order = rng.permutation(n) if shuffle else np.arange(n)
        bar = _bar(progress, n, f"epoch {epoch + 1}/{epochs}")
        total, count, correct, seen = 0.0, 0, 0, 0
        start = time.perf_counter()
        for index in _batches(n, int(batch_size), order):
            value, out = train_step(model, x[index], y[index], loss, optimizer)
            terms, right = _counts(loss, out, y[index])
            total += value * terms
            count += terms
            correct += right or 0
            seen += len(index)
            if bar is not None:
                bar.update(len(index))
                elapsed = time.perf_counter() - start
                post = {"loss": f"{total / max(count, 1):.4f}"}
                if right is not None:
                    post["acc"] = f"{correct / max(count, 1):.3f}"
                post["ex/s"] = f"{seen / max(elapsed, 1e-9):.0f}"
                bar.set_postfix(post, refresh=False)
        seconds = time.perf_counter() - start
        history["loss"].append(total / max(count, 1))
        history["accuracy"].append(correct / max(count, 1) if isinstance(loss, CrossEntropyLoss) else None)
        history["seconds"].append(seconds)
        history["examples_per_second"].append(n / max(seconds, 1e-9))
        if validation is not None:
            scores = evaluate(model, *validation, loss=loss, batch_size=max(int(batch_size), 256))
            history["val_loss"].append(scores["loss"])
            history["val_accuracy"].append(scores.get("accuracy"))
        if bar is not None:
            if validation is not None:
                post["val_loss"] = f"{history['val_loss'][-1]:.4f}"
                if history["val_accuracy"][-1] is not None:
                    post["val_acc"] = f"{history['val_accuracy'][-1]:.3f}"
                bar.set_postfix(post, refresh=False)
            bar.close()
        if patience is not None:
            monitored = history["val_loss"][-1] if validation is not None else history["loss"][-1]
            if monitored < best - min_delta:
                best, best_state, waited = monitored, model.state_dict(), 0
                history["best_epoch"] = epoch
            else:
                waited += 1
                if waited >= patience:
                    break
        if callback is not None and callback(epoch, history):
            break
    if best_state is not None:
        model.load_state_dict(best_state)
    model.train()
    return history


def _learning_rate(schedule, base_lr, epoch, epochs):
    if schedule is None:
        return base_lr
    if schedule == "cosine":
        return base_lr * 0.5 * (1 + math.cos(math.pi * epoch / max(epochs, 1)))
    if callable(schedule):
        return float(schedule(epoch))
    raise ValueError(f"schedule must be None, 'cosine' or a function of the epoch, got {schedule!r}")


def _early_stopping(option):
    if option is None or option is False:
        return None, 0.0
    if isinstance(option, dict):
        return int(option.get("patience", 3)), float(option.get("min_delta", 0.0))
    return int(option), 0.0


def _bar(progress, total, desc):
    if not progress:
        return None
    from tqdm.auto import tqdm
    return tqdm(total=total, desc=desc, unit="ex", leave=True, dynamic_ncols=True)


def predict(model, x, batch_size=256):
    """The model's outputs on x in evaluation mode, batch by batch (the mode is restored)."""
    x = np.asarray(x)
    was_training = model.training
    model.eval()
    try:
        outs = [model(x[index]) for index in _batches(len(x), int(batch_size))]
    finally:
        model.train(was_training)
    if not outs:
        return np.zeros((0,), np.float32)
    return np.concatenate(outs)


def evaluate(model, x, y, loss=None, batch_size=256):
    """{"loss": mean loss, "accuracy": fraction right (classification losses)} in evaluation mode."""
    x, y = _arrays((x, y), "data")
    loss = CrossEntropyLoss() if loss is None else loss
    was_training = model.training
    model.eval()
    total, count, correct = 0.0, 0, 0
    try:
        for index in _batches(len(x), int(batch_size)):
            out = model(x[index])
            value = loss(out, y[index])
            loss._saved = None
            terms, right = _counts(loss, out, y[index])
            total += value * (terms if loss.reduction == "mean" else 1)
            count += terms
            correct += right or 0
    finally:
        model.train(was_training)
    scores = {"loss": total / max(count, 1)}
    if isinstance(loss, CrossEntropyLoss):
        scores["accuracy"] = correct / max(count, 1)
    return scores


def accuracy(model, x, y, batch_size=256):
    return float((predict(model, x, batch_size).argmax(axis=1) == np.asarray(y)).mean())


def layer_report(model, x, repeat=3):
    """For each layer of a Sequential: its output shape, the algorithms ``auto`` picks (conv
    layers), and the best forward and backward times over ``repeat`` runs on the batch x. The
    model's state (running statistics) and gradients are left as they were."""
    layers = list(model) if hasattr(model, "__iter__") else [model]
    saved = model.state_dict()
    grads = [g.copy() for g in model.gradients()]
    was_training = model.training
    model.train()
    rows = []
    try:
        for layer in layers:
            fwd, bwd = np.inf, np.inf
            for _ in range(repeat):
                t0 = time.perf_counter()
                y = layer(x)
                t1 = time.perf_counter()
                gy = np.ones_like(y)
                t2 = time.perf_counter()
                layer.backward(gy)
                t3 = time.perf_counter()
                fwd, bwd = min(fwd, t1 - t0), min(bwd, t3 - t2)
            chosen = layer.algorithms(x.shape) if hasattr(layer, "algorithms") else None
            rows.append({"layer": repr(layer).split("\n")[0], "name": type(layer).__name__,
                         "output": y.shape, "algorithms": chosen, "forward_s": fwd, "backward_s": bwd})
            x = y
    finally:
        model.clear_cache()
        model.load_state_dict(saved)
        for g, old in zip(model.gradients(), grads):
            g[...] = old
        model.train(was_training)
    return rows


def format_layer_report(rows):
    """The rows of :func:`layer_report` as a text table."""
    lines = [f"{'layer':<52} {'output':<18} {'algorithm (fwd/gi/gk)':<28} {'fwd ms':>7} {'bwd ms':>7}"]
    for r in rows:
        alg = "/".join(r["algorithms"][op] for op in ("forward", "grad_input", "grad_kernel")) \
            if r["algorithms"] else "-"
        layer = r["layer"] if len(r["layer"]) <= 52 else r["layer"][:49] + "..."
        lines.append(f"{layer:<52} {str(r['output']):<18} {alg:<28} "
                     f"{r['forward_s'] * 1e3:7.3f} {r['backward_s'] * 1e3:7.3f}")
    total_f = sum(r["forward_s"] for r in rows) * 1e3
    total_b = sum(r["backward_s"] for r in rows) * 1e3
    lines.append(f"{'total':<52} {'':<18} {'':<28} {total_f:7.3f} {total_b:7.3f}")
    return "\n".join(lines)


__all__ = ["fit", "evaluate", "predict", "accuracy", "train_step", "History", "layer_report",
           "format_layer_report", "MSELoss"]
