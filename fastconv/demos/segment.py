"""``fastconv demo segment``: figure 9.17's recurrent convolutional network labels every pixel.

Synthetic images hold rectangles and discs of the same brightness on a noisy background; the task
is to label each pixel background / rectangle / disc. The network of section 9.6 computes
H(1) = relu(U * X), Y(1) = softmax(V * H(1)), then for t > 1 H(t) = relu(U * X + W * Y(t-1)) and
Y(t) = softmax(V * H(t)): the kernels U, V and W are shared across the refinement steps, and each
step sees its neighbours' previous labels. It is trained on the per-pixel cross-entropy of every
step, and the demo reports the per-pixel accuracy of each step on held-out images.
"""
import time

import numpy as np

from fastconv import nn
from . import _common

CLASSES = ("background", "rectangle", "disc")


def make_images(n, size, seed, shapes=(1, 3), noise=0.35):
    """n noisy images (n, 1, size, size) and their per-pixel labels (n, size, size)."""
    rng = np.random.default_rng(seed)
    x = np.zeros((n, 1, size, size), np.float32)
    labels = np.zeros((n, size, size), np.int64)
    for i in range(n):
        for _ in range(rng.integers(shapes[0], shapes[1] + 1)):
            kind = int(rng.integers(0, 2))
            extent = rng.uniform(0.14, 0.28)
            cy, cx = rng.uniform(0.15, 0.85, size=2)
            mask = _common.shape_masks(kind, size, cy, cx, extent, angle=rng.uniform(0, np.pi))
            labels[i][mask] = kind + 1
        x[i, 0] = (labels[i] > 0) + noise * rng.standard_normal((size, size))
    return x, labels


class RecurrentSegmenter(nn.Module):
    """Figure 9.17 unrolled for ``steps`` refinement steps with shared U, V, W."""

    def __init__(self, in_channels=1, hidden=16, classes=3, steps=3, kernel_size=5, seed=None):
        super().__init__()
        rng = np.random.default_rng(seed) if seed is not None else None
        pad = kernel_size // 2
        self.steps = int(steps)
        self.U = nn.Conv2d(in_channels, hidden, kernel_size, padding=pad, seed=rng)
        self.V = nn.Conv2d(hidden, classes, 3, padding=1, seed=rng)
        self.W = nn.Conv2d(classes, hidden, kernel_size, padding=pad, bias=None, seed=rng)
        self.relu = nn.ReLU()
        self.softmax = nn.Softmax(dim=1)

    def forward(self, x):
        """The logits of every step, stacked: (steps, N, classes, H, W)."""
        ux = self.U(x)
        logits, previous = [], None
        for t in range(self.steps):
            a = ux if previous is None else ux + self.W(previous)
            z = self.V(self.relu(a))
            previous = self.softmax(z)
            logits.append(z)
        return np.stack(logits)

    def backward(self, g_logits):
        g_ux, g_next = 0, None
        for t in reversed(range(self.steps)):
            g_softmax = np.zeros_like(g_logits[t]) if g_next is None else g_next
            gz = g_logits[t] + self.softmax.backward(g_softmax)
            ga = self.relu.backward(self.V.backward(gz))
            g_ux = g_ux + ga
            if t > 0:
                g_next = self.W.backward(ga)
        return self.U.backward(g_ux)


class StepwiseCrossEntropy(nn.Loss):
    """The mean over the refinement steps of the per-pixel cross-entropy: every step is supervised."""

    def __init__(self):
        self.pixel = nn.CrossEntropyLoss()
        self._saved = None

    def forward(self, logits, labels):
        steps = len(logits)
        total, grads = 0.0, []
        for z in logits:
            total += self.pixel(z, labels) / steps
            grads.append(self.pixel.backward() / steps)
        self._saved = np.stack(grads)
        return total


def step_accuracy(model, x, labels, batch_size=128):
    """Per step: (accuracy over all pixels, accuracy over the shapes' pixels)."""
    z = np.concatenate([model(x[i:i + batch_size]) for i in range(0, len(x), batch_size)], axis=1)
    predictions = z.argmax(axis=2)
    shapes = labels > 0
    return [((p == labels).mean(), (p == labels)[shapes].mean()) for p in predictions]


def main(argv=None):
    p = _common.parser("segment", __doc__.splitlines()[0], epochs=12, batch_size=16, lr=0.01)
    p.add_argument("--steps", type=int, default=3, help="refinement steps (default 3)")
    p.add_argument("--size", type=int, default=20, help="image side in pixels (default 20)")
    args, start = _common.start(p, argv)
    n_train, n_test = (96, 48) if args.quick else (640, 160)
    epochs = _common.epochs(args)
    x_train, y_train = make_images(n_train, args.size, args.seed)
    x_test, y_test = make_images(n_test, args.size, args.seed + 1)
    share = [(y_train == c).mean() for c in range(3)]
    print(f"segment: {n_train} training and {n_test} test images of {args.size}x{args.size}, "
          f"pixels " + ", ".join(f"{c} {s:.0%}" for c, s in zip(CLASSES, share)))
    model = RecurrentSegmenter(steps=args.steps, seed=args.seed)
    print(f"recurrent network (figure 9.17): U {model.U.weight.shape}, V {model.V.weight.shape}, "
          f"W {model.W.weight.shape} shared over {args.steps} steps, {model.num_parameters():,} parameters")
    loss = StepwiseCrossEntropy()
    _common.pick_threads(args, lambda: RecurrentSegmenter(steps=args.steps, seed=args.seed),
                         x_train[:args.batch_size], y_train[:args.batch_size], loss=loss)
    optimizer = nn.Adam(model, lr=args.lr)
    rng = np.random.default_rng(args.seed)
    for epoch in range(epochs):
        optimizer.lr = args.lr * 0.5 * (1 + np.cos(np.pi * epoch / epochs))     # cosine schedule
        model.train()
        order = rng.permutation(n_train)
        total, t0 = 0.0, time.perf_counter()
        for i in range(0, n_train, args.batch_size):
            index = order[i:i + args.batch_size]
            value, _ = nn.train_step(model, x_train[index], y_train[index], loss, optimizer)
            total += value * len(index)
        model.eval()
        acc = step_accuracy(model, x_test, y_test)
        print(f"  epoch {epoch + 1:3d}  loss {total / n_train:.4f}  test pixel accuracy by step: "
              + "  ".join(f"{a:.3f}" for a, _ in acc)
              + f"  ({n_train / (time.perf_counter() - t0):.0f} images/s)", flush=True)
    model.eval()
    acc = step_accuracy(model, x_test, y_test)
    print("\nper-pixel test accuracy after each refinement step (all pixels / shape pixels only):")
    for t, (a, s) in enumerate(acc, 1):
        print(f"  step {t}: {a:.4f} / {s:.4f}")
    print(f"  refinement gains {acc[-1][0] - acc[0][0]:+.4f} overall, {acc[-1][1] - acc[0][1]:+.4f} on shapes")
    z = model(x_test[:6])
    rows = []
    for i in range(6):
        image = x_test[i, 0]
        image = (image - image.min()) / max(float(np.ptp(image)), 1e-9)
        rows += [image, y_test[i] / 2.0] + [z[t, i].argmax(0) / 2.0 for t in range(args.steps)]
    _common.write_png(args, "segment_steps.png",
                      _common.tile_images(rows, columns=2 + args.steps, scale=6, normalize=False))
    print(f"  (each row: image, truth, step 1..{args.steps}; rectangles grey, discs white)")
    print(f"total {time.perf_counter() - start:.1f} s")
    return 0
