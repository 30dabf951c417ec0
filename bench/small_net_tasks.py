"""Learnable ten-class tasks of each small network's input size, for the accuracy check of
bench/train_small_nets.py: both twins train on the same batches and should end equally good.

Three image tasks are scikit-learn's 1797 real 8x8 digit scans (split 75/25, stratified, as the
digits demo does) enlarged by repeating pixels: 16x16 (the demo's own input), 24x24 framed by 2
blank pixels to 28x28 (MNIST draws its 20x20 digits in a 28x28 frame) and 32x32 in colour, each
scan with its own random foreground and background colour and a little noise. The audio task is
synthetic: a tone whose period (5 to 30 samples, ten of them, evenly spaced in log) is the class,
with random phase, amplitude, start and length, in white noise.
"""
import numpy as np

PERIODS = 5.0 * 6.0 ** (np.arange(10) / 9.0)


def _digit_scans(seed):
    """scikit-learn's scans in [0, 1] as (n, 1, 8, 8), split like the digits demo's."""
    from fastconv.demos._common import load_digits
    return load_digits(seed)


def _enlarge(x, factor, frame=0):
    big = x.repeat(factor, axis=2).repeat(factor, axis=3)
    if frame:
        big = np.pad(big, ((0, 0), (0, 0), (frame, frame), (frame, frame)))
    return np.ascontiguousarray(big, dtype=np.float32)


def _coloured(x, rng):
    """(n, 1, h, w) in [0, 1] -> (n, 3, h, w): per scan a random foreground and background
    colour, plus noise, centred on zero."""
    n = len(x)
    foreground = rng.uniform(0.5, 1.0, (n, 3, 1, 1))
    background = rng.uniform(0.0, 0.5, (n, 3, 1, 1))
    image = background + (foreground - background) * x + 0.05 * rng.standard_normal((n, 3) + x.shape[2:])
    return (image - 0.5).astype(np.float32)


def tones(n, seed, length=4000, noise=0.5):
    """n snippets (n, 1, length) and their classes: a tone of period PERIODS[class]."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, len(PERIODS), n)
    t = np.arange(length)
    x = noise * rng.standard_normal((n, 1, length))
    for i in range(n):
        start = rng.integers(0, length // 2)
        stop = min(length, start + rng.integers(length // 4, length))
        phase = rng.uniform(0, 2 * np.pi)
        x[i, 0, start:stop] += rng.uniform(0.5, 1.5) * np.sin(2 * np.pi * t[start:stop] / PERIODS[y[i]] + phase)
    return x.astype(np.float32), y


def task(name, seed=0):
    """(x_train, y_train, x_test, y_test) for the network `name`."""
    if name == "audio":
        x_train, y_train = tones(2000, seed)
        x_test, y_test = tones(500, seed + 1)
        return x_train, y_train, x_test, y_test
    x_train, x_test, y_train, y_test = _digit_scans(seed)
    if name == "digits":
        x_train, x_test = _enlarge(x_train, 2), _enlarge(x_test, 2)
    elif name == "mnist":
        x_train, x_test = _enlarge(x_train, 3, frame=2), _enlarge(x_test, 3, frame=2)
    elif name == "cifar":
        rng = np.random.default_rng(seed)
        x_train, x_test = _coloured(_enlarge(x_train, 4), rng), _coloured(_enlarge(x_test, 4), rng)
    else:
        raise ValueError(f"no task for the network {name!r}")
    return x_train, y_train, x_test, y_test
