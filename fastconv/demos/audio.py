"""``fastconv demo audio``: the same layers in one and three dimensions.

1-D: a small data set in the spirit of MNIST-1D, generated here with a seed: ten fixed templates
(smooth random patterns), each example one template stretched in time, scaled, shifted, with
white and correlated noise and a slow trend; a 1-D conv net classifies them. 3-D: synthetic
volumes of a ball or a cube (random size, position and contrast, noise); a 3-D conv net tells
them apart. The layers are the same classes as for images, with 1 or 3 spatial axes.
"""
import time

import numpy as np

import fastconv
from fastconv import nn
from . import _common


def templates(seed, classes=10, length=12):
    """Ten smooth random patterns of `length` samples, normalised to unit peak."""
    rng = np.random.default_rng(seed)
    raw = rng.standard_normal((classes, length + 4))
    smooth = np.stack([np.convolve(r, np.ones(5) / 5, mode="valid") for r in raw])
    return smooth / np.abs(smooth).max(axis=1, keepdims=True)


def make_signals(n, seed, length=64, template_seed=1234):
    """n signals (n, 1, length) and their classes: stretched, scaled, shifted, noisy templates."""
    rng = np.random.default_rng(seed)
    bank = templates(template_seed)
    y = rng.integers(0, len(bank), n)
    x = np.zeros((n, 1, length), np.float32)
    for i in range(n):
        t = bank[y[i]]
        stretch = rng.uniform(0.8, 1.5)
        m = int(round(len(t) * stretch))
        pattern = np.interp(np.linspace(0, len(t) - 1, m), np.arange(len(t)), t)
        pattern *= rng.uniform(0.7, 1.3) * rng.choice([1.0, 1.0, 1.0, 0.8])
        start = rng.integers(0, length - m + 1)
        signal = np.zeros(length)
        signal[start:start + m] = pattern
        correlated = np.convolve(rng.standard_normal(length + 8), np.ones(9) / 3, mode="valid")
        trend = rng.uniform(-0.3, 0.3) * np.linspace(-1, 1, length)
        x[i, 0] = signal + 0.1 * rng.standard_normal(length) + 0.08 * correlated + trend
    return x, y


def make_volumes(n, seed, size=12, noise=0.3):
    """n volumes (n, 1, size, size, size), class 0 a ball and 1 a cube of similar volume."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 2, n)
    c = np.arange(size) + 0.5
    zz, yy, xx = np.meshgrid(c, c, c, indexing="ij")
    x = np.zeros((n, 1, size, size, size), np.float32)
    for i in range(n):
        r = rng.uniform(2.5, 4.0)
        center = rng.uniform(r + 0.5, size - r - 0.5, size=3)
        d = (zz - center[0], yy - center[1], xx - center[2])
        if y[i] == 0:
            mask = d[0] ** 2 + d[1] ** 2 + d[2] ** 2 <= r * r
        else:
            h = r * 0.806                          # a cube of the ball's volume: (4/3 pi)^(1/3) / 2
            mask = (np.abs(d[0]) <= h) & (np.abs(d[1]) <= h) & (np.abs(d[2]) <= h)
        x[i, 0] = rng.uniform(0.6, 1.4) * mask + noise * rng.standard_normal(mask.shape)
    return x, y


def net_1d(seed=None):
    rng = np.random.default_rng(seed) if seed is not None else None
    return nn.Sequential(
        nn.Conv1d(1, 32, 5, padding=2, seed=rng), nn.ReLU(), nn.MaxPool1d(2),
        nn.Conv1d(32, 32, 5, padding=2, seed=rng), nn.ReLU(), nn.MaxPool1d(2),
        nn.Conv1d(32, 32, 3, padding=1, seed=rng), nn.ReLU(),
        nn.AdaptiveMaxPool1d(4), nn.Flatten(), nn.Linear(128, 10, seed=rng))


def net_3d(seed=None):
    rng = np.random.default_rng(seed) if seed is not None else None
    return nn.Sequential(
        nn.Conv3d(1, 8, 3, padding=1, seed=rng), nn.ReLU(), nn.MaxPool3d(2),
        nn.Conv3d(8, 16, 3, padding=1, seed=rng), nn.ReLU(),
        nn.GlobalMaxPool(), nn.Linear(16, 2, seed=rng))


def _data(args, make, quick, full):
    """The (n_train, n_test) sizes (`quick` under --quick, else `full`), and the training and
    test sets `make` draws with seeds --seed and --seed + 1."""
    n_train, n_test = quick if args.quick else full
    return n_train, n_test, make(n_train, args.seed), make(n_test, args.seed + 1)


def _train(model, train, test, args, epochs):
    history = nn.fit(model, train, epochs=epochs, batch_size=args.batch_size,
                     optimizer=nn.Adam(model, lr=args.lr), validation=test, seed=args.seed,
                     progress=args.progress, schedule="cosine", callback=_common.epoch_printer())
    return history["val_accuracy"][-1], sum(history["seconds"])


def main(argv=None):
    p = _common.parser("audio", __doc__.splitlines()[0], epochs=12, batch_size=32, lr=3e-3)
    p.add_argument("--only", choices=("1d", "3d"), help="run one half only")
    args, start = _common.start(p, argv)
    budget = fastconv.get_num_threads()
    epochs = _common.epochs(args)
    if args.only != "3d":
        n_train, n_test, train, test = _data(args, make_signals, (256, 128), (4000, 1000))
        model = net_1d(seed=args.seed)
        print(f"1-D: {n_train} training and {n_test} test signals of 64 samples, 10 classes "
              f"(templates stretched, scaled, shifted, noised); {model.num_parameters():,} parameters")
        _common.pick_threads(args, net_1d, train[0][:args.batch_size], train[1][:args.batch_size])
        print(f"  conv layers: {model[0]!r}, ... chosen algorithms "
              f"{model[0].algorithms((args.batch_size, 1, 64))['forward']}/"
              f"{model[3].algorithms((args.batch_size, 32, 32))['forward']}")
        acc, seconds = _train(model, train, test, args, epochs)
        print(f"1-D test accuracy {acc:.3f} (chance 0.100), {seconds:.1f} s of training\n")
        _common.write_png(args, "audio_signals.png", _signals_image(train[0][:10, 0]))
    if args.only != "1d":
        n_train, n_test, train, test = _data(args, make_volumes, (96, 64), (400, 200))
        model = net_3d(seed=args.seed)
        print(f"3-D: {n_train} training and {n_test} test volumes of 12x12x12, ball vs cube of "
              f"equal volume; {model.num_parameters():,} parameters")
        if args.threads is None:
            fastconv.set_num_threads(budget)         # measure again for this network
        _common.pick_threads(args, net_3d, train[0][:args.batch_size], train[1][:args.batch_size])
        print(f"  conv layers: {model[0]!r}, ... chosen algorithm "
              f"{model[0].algorithms((args.batch_size, 1, 12, 12, 12))['forward']}")
        acc, seconds = _train(model, train, test, args, epochs)
        print(f"3-D test accuracy {acc:.3f} (chance 0.500), {seconds:.1f} s of training")
    print(f"total {time.perf_counter() - start:.1f} s")
    return 0


def _signals_image(signals, height=24):
    """Each signal drawn as a line plot in a small grey image."""
    images = []
    for s in signals:
        im = np.zeros((height, len(s)))
        rows = ((s - s.min()) / max(np.ptp(s), 1e-9) * (height - 1)).round().astype(int)
        im[height - 1 - rows, np.arange(len(s))] = 1
        images.append(im)
    return _common.tile_images(images, columns=2, scale=3)
