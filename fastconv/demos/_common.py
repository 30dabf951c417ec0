"""What the demos share: argument parsing, output folders, PNG writing, per-epoch lines."""
import argparse
import os
import time

import numpy as np

import fastconv


def parser(prog, description, epochs, batch_size, lr):
    from . import DEFAULT_OUT, plain
    p = argparse.ArgumentParser(prog=f"fastconv demo {prog}",
                                description=plain(description.split(": ", 1)[-1]))
    p.add_argument("--epochs", type=int, default=epochs, help=f"training epochs (default {epochs})")
    p.add_argument("--batch-size", type=int, default=batch_size, help=f"default {batch_size}")
    p.add_argument("--lr", type=float, default=lr, help=f"Adam's learning rate (default {lr})")
    p.add_argument("--seed", type=int, default=0, help="seed of the data, weights and shuffling")
    p.add_argument("--quick", action="store_true", help="a few-second run (smaller, fewer epochs)")
    p.add_argument("--out", default=None, help=f"folder for the PNG files, created if needed "
                   f"(default: {DEFAULT_OUT} in the current directory)")
    p.add_argument("--no-png", action="store_true", help="do not write PNG files")
    p.add_argument("--threads", type=int, default=None, help="fastconv's thread count")
    p.add_argument("--progress", action="store_true", help="show a tqdm bar per epoch")
    p.add_argument("--tune", action="store_true",
                   help="time the algorithms on each layer's first call and keep the fastest "
                        "(fastconv.set_autotune) instead of the cost model's pick")
    return p


def start(p, argv, sklearn_demo=None):
    """Parse argv with p, check for scikit-learn when `sklearn_demo` (its name) needs it, apply
    the settings (`setup`); returns the arguments and the start time."""
    args = p.parse_args(argv)
    if sklearn_demo is not None:
        need_sklearn(sklearn_demo)
    setup(args)
    return args, time.perf_counter()


def epochs(args):
    """--epochs, at most 2 under --quick."""
    return min(args.epochs, 2) if args.quick else args.epochs


def setup(args):
    if args.threads is not None:
        fastconv.set_num_threads(args.threads)
    if getattr(args, "tune", False):
        fastconv.set_autotune(True)
    fastconv.nn.manual_seed(args.seed)


def epoch_printer(extra=None):
    """A fit callback printing one line per epoch (the bars of progress=True go to stderr)."""
    def callback(epoch, history):
        line = f"  epoch {epoch + 1:3d}  loss {history['loss'][-1]:.4f}"
        if history["accuracy"][-1] is not None:
            line += f"  train acc {history['accuracy'][-1]:.3f}"
        if history["val_loss"]:
            line += f"  test loss {history['val_loss'][-1]:.4f}"
            if history["val_accuracy"][-1] is not None:
                line += f"  test acc {history['val_accuracy'][-1]:.3f}"
        line += f"  {history['examples_per_second'][-1]:7.0f} ex/s"
        if extra is not None:
            line += extra(epoch)
        print(line, flush=True)
        return False
    return callback


def tile_images(images, columns, scale=8, pad=1, normalize=True):
    """A grid of 2-D arrays, each enlarged `scale` times, as uint8: each normalised to [0, 1]
    (``normalize=True``), or taken as already in [0, 1] (label maps, which must not be)."""
    images = [np.asarray(im, np.float64) for im in images]
    h, w = images[0].shape
    rows = -(-len(images) // columns)
    cell_h, cell_w = h * scale + pad, w * scale + pad
    grid = np.ones((rows * cell_h + pad, columns * cell_w + pad))
    for i, im in enumerate(images):
        if normalize:
            lo, hi = im.min(), im.max()
            im = (im - lo) / (hi - lo) if hi > lo else np.zeros_like(im)
        im = np.clip(im, 0, 1)
        big = np.kron(im, np.ones((scale, scale)))
        r, c = divmod(i, columns)
        grid[pad + r * cell_h: pad + r * cell_h + h * scale, pad + c * cell_w: pad + c * cell_w + w * scale] = big
    return (grid * 255).round().astype(np.uint8)


def write_png(args, name, image):
    """Write a uint8 grey image to --out/name; say so (with the absolute path), or say why not."""
    if args.no_png:
        return None
    from . import out_dir
    folder = out_dir(args.out)
    path = os.path.join(folder, name)
    try:
        from PIL import Image
    except ImportError:
        try:
            import matplotlib
            matplotlib.use("Agg")
            import matplotlib.pyplot as plt
        except ImportError:
            print(f"  (not writing {path}: needs Pillow or matplotlib, pip install \"fastconv[demo]\")")
            return None
        os.makedirs(folder, exist_ok=True)
        plt.imsave(path, image, cmap="gray", vmin=0, vmax=255)
    else:
        os.makedirs(folder, exist_ok=True)
        Image.fromarray(image).save(path)
    print(f"  wrote {path}")
    return path


def need_sklearn(demo):
    try:
        import sklearn  # noqa: F401
    except ImportError:
        raise SystemExit(f"the {demo} demo needs scikit-learn (its bundled digits data set): "
                         "pip install \"fastconv[demo]\"")


def load_digits(seed, test_size=0.25):
    """scikit-learn's 1797 real 8x8 scans in [0, 1], split stratified with `seed`."""
    from sklearn.datasets import load_digits as load
    from sklearn.model_selection import train_test_split
    digits = load()
    x = (digits.images / 16.0).astype(np.float32)[:, None]
    return train_test_split(x, digits.target, test_size=test_size, stratify=digits.target,
                            random_state=seed)


def digits_split(args, quick_train, quick_test, transform=None):
    """`load_digits` with --seed, the images through `transform`, cut to the first quick_train
    training and quick_test test scans under --quick: (x_train, x_test, y_train, y_test)."""
    x_train, x_test, y_train, y_test = load_digits(args.seed)
    if transform is not None:
        x_train, x_test = transform(x_train), transform(x_test)
    if args.quick:
        x_train, y_train = x_train[:quick_train], y_train[:quick_train]
        x_test, y_test = x_test[:quick_test], y_test[:quick_test]
    return x_train, x_test, y_train, y_test


class Timer:
    def __enter__(self):
        self.start = time.perf_counter()
        return self

    def __exit__(self, *exc):
        self.seconds = time.perf_counter() - self.start


def shape_masks(kind, size, cy, cx, extent, angle=0.0):
    """A boolean mask of one shape on a size x size grid, in coordinates relative to the image
    (centre cy, cx and half-extent in [0, 1]), so the same scene renders at any resolution.
    kind 0: an axis-aligned rectangle (aspect 0.6-1), 1: a disc, 2: a triangle."""
    c = (np.arange(size) + 0.5) / size
    yy, xx = np.meshgrid(c, c, indexing="ij")
    dy, dx = yy - cy, xx - cx
    if kind == 0:
        return (np.abs(dy) <= extent) & (np.abs(dx) <= extent * (0.6 + 0.4 * abs(np.cos(angle))))
    if kind == 1:
        return dy * dy + dx * dx <= extent * extent
    # an upward triangle: below the top vertex, inside both slanted edges
    top, bottom = cy - extent, cy + extent
    half_width = (yy - top) / (bottom - top) * extent
    return (yy >= top) & (yy <= bottom) & (np.abs(dx) <= half_width)


def pick_threads(args, model_factory, x, y, loss=None, repeats=5):
    """Unless --threads was given: time a few training steps of a scratch copy of the network at
    one thread and at fastconv's full budget (interleaved, median), and keep the faster.

    A demo's layers are small; on a machine whose other core is busy, every parallel region
    waits for a second thread the scheduler has not run yet, and one thread can be many times
    faster. Measuring is cheaper than guessing."""
    full = fastconv.get_num_threads()
    if args.threads is not None or full == 1:
        return full
    from fastconv import nn
    loss = nn.CrossEntropyLoss() if loss is None else loss
    model = model_factory()
    optimizer = nn.SGD(model, lr=1e-3)
    times = {1: [], full: []}
    nn.train_step(model, x, y, loss, optimizer)                 # warm up
    for _ in range(repeats):
        for n in (1, full):
            fastconv.set_num_threads(n)
            t0 = time.perf_counter()
            nn.train_step(model, x, y, loss, optimizer)
            times[n].append(time.perf_counter() - t0)
    median = {n: float(np.median(t)) for n, t in times.items()}
    chosen = min(median, key=median.get)
    fastconv.set_num_threads(chosen)
    print(f"threads: a training step takes {median[1] * 1e3:.1f} ms on 1 thread, "
          f"{median[full] * 1e3:.1f} ms on {full} (median of {repeats}); using {chosen} "
          f"(--threads N to force)")
    return chosen
