"""``fastconv demo variable-size``: one fully convolutional classifier, many input sizes.

Figure 9.11: convolution and pooling layers accept any input size, and an adaptive pooling layer
with a fixed number of output regions (2x2 here, whatever the size of the feature map) turns the
feature maps into a fixed-length vector for the classifier. The network is trained on 16x16
images of rectangles, discs and triangles, then applied without retraining to the same kind of
scenes rendered at other resolutions.
"""
import time

import numpy as np

from fastconv import nn
from . import _common

CLASSES = ("rectangle", "disc", "triangle")


def make_images(n, size, seed, noise=0.2):
    """n images (n, 1, size, size) of one shape each (same scene at any size), and the classes."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 3, n)
    x = np.zeros((n, 1, size, size), np.float32)
    for i in range(n):
        extent = rng.uniform(0.22, 0.36)
        cy, cx = rng.uniform(0.5 - (0.45 - extent), 0.5 + (0.45 - extent), size=2)
        mask = _common.shape_masks(int(y[i]), size, cy, cx, extent, angle=rng.uniform(0, np.pi))
        x[i, 0] = mask + noise * rng.standard_normal((size, size))
    return x, y


def build_model(seed=None):
    rng = np.random.default_rng(seed) if seed is not None else None
    return nn.Sequential(
        nn.Conv2d(1, 16, 3, padding=1, seed=rng), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(16, 32, 3, padding=1, seed=rng), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(32, 32, 3, padding=1, seed=rng), nn.ReLU(),
        nn.AdaptiveMaxPool2d(2),                       # any H x W -> 2 x 2 (figure 9.11)
        nn.Flatten(), nn.Linear(32 * 2 * 2, 3, seed=rng),
    )


def main(argv=None):
    p = _common.parser("variable-size", __doc__.splitlines()[0], epochs=10, batch_size=32, lr=3e-3)
    p.add_argument("--train-size", type=int, default=16, help="training image side (default 16)")
    p.add_argument("--sizes", default="12,16,20,24,32,48", help="test image sides")
    args, start = _common.start(p, argv)
    sizes = [int(s) for s in args.sizes.split(",")]
    n_train, n_test = (192, 60) if args.quick else (1500, 300)
    epochs = _common.epochs(args)
    x_train, y_train = make_images(n_train, args.train_size, args.seed)
    print(f"variable-size: {n_train} training images of {args.train_size}x{args.train_size} "
          f"({', '.join(CLASSES)}), tested on {n_test} new scenes at each of {sizes}")
    model = build_model(seed=args.seed)
    print(f"fully convolutional network + AdaptiveMaxPool2d(2) + Linear: "
          f"{model.num_parameters():,} parameters")
    _common.pick_threads(args, build_model, x_train[:args.batch_size], y_train[:args.batch_size])
    x_val, y_val = make_images(n_test, args.train_size, args.seed + 1000)
    nn.fit(model, (x_train, y_train), epochs=epochs, batch_size=args.batch_size,
           optimizer=nn.Adam(model, lr=args.lr), validation=(x_val, y_val), seed=args.seed,
           progress=args.progress, schedule="cosine", callback=_common.epoch_printer())
    print("\naccuracy by input size, same weights (trained at "
          f"{args.train_size}x{args.train_size} only):")
    for size in sizes:
        x, y = make_images(n_test, size, args.seed + 1000)       # the same scenes, re-rendered
        t0 = time.perf_counter()
        out = nn.predict(model, x)
        seconds = time.perf_counter() - t0
        acc = float((out.argmax(1) == y).mean())
        print(f"  {size:3d}x{size:<3d}  accuracy {acc:.3f}  (feature map {size // 4}x{size // 4} "
              f"-> 2x2, {n_test / seconds:,.0f} images/s)")
    print("  every size runs through the same weights; accuracy falls as the objects grow far past\n"
          "  the training scale: convolution is equivariant to translation, not to scale (section 9.4)")
    examples = [make_images(1, s, args.seed + 1000)[0][0, 0] for s in sizes]
    big = max(sizes)
    padded = [np.pad(e, ((0, big - e.shape[0]), (0, big - e.shape[1])), constant_values=e.min())
              for e in examples]
    _common.write_png(args, "variable_size_inputs.png", _common.tile_images(padded, len(sizes), scale=2))
    print(f"total {time.perf_counter() - start:.1f} s")
    return 0
