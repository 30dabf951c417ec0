"""``fastconv demo autoencoder``: a convolutional autoencoder whose decoder is the transpose
convolution of eq. 9.14, on scikit-learn's 8x8 digit scans.

The encoder is two strided convolutions (8x8 -> 4x4 -> 2x2, a code of 8 x 2 x 2 = 32 numbers for
64 pixels); the decoder is two transpose convolutions (eq. 9.14: multiplication by the transpose
of a convolution's matrix) back to 8x8, then a sigmoid. The demo reports the reconstruction error
on the training and the test scans against the trivial baseline of predicting the mean image.
"""
import time

import numpy as np

from fastconv import nn
from . import _common


def build_model(code_channels=8, seed=None):
    rng = np.random.default_rng(seed) if seed is not None else None
    return nn.Sequential(
        nn.Conv2d(1, 16, 3, stride=2, padding=1, seed=rng), nn.ReLU(),                   # 8 -> 4
        nn.Conv2d(16, code_channels, 3, stride=2, padding=1, seed=rng), nn.ReLU(),       # 4 -> 2
        nn.ConvTranspose2d(code_channels, 16, 3, stride=2, padding=1, output_padding=1,
                           seed=rng), nn.ReLU(),                                         # 2 -> 4
        nn.ConvTranspose2d(16, 1, 3, stride=2, padding=1, output_padding=1, seed=rng),   # 4 -> 8
        nn.Sigmoid(),
    )


def main(argv=None):
    p = _common.parser("autoencoder", __doc__.splitlines()[0], epochs=30, batch_size=32, lr=5e-3)
    args, start = _common.start(p, argv, sklearn_demo="autoencoder")
    x_train, x_test, _, _ = _common.digits_split(args, 256, 128)
    epochs = _common.epochs(args)
    model = build_model(seed=args.seed)
    print(f"autoencoder: {len(x_train)} training and {len(x_test)} test digit scans (8x8, in [0, 1]); "
          f"code 8x2x2 = 32 numbers per 64-pixel image; {model.num_parameters():,} parameters")
    print(f"decoder: {model[4]!r} and {model[6]!r} (eq. 9.14)")
    mse = nn.MSELoss()
    _common.pick_threads(args, build_model, x_train[:args.batch_size], x_train[:args.batch_size],
                         loss=mse)
    history = nn.fit(model, (x_train, x_train), epochs=epochs, batch_size=args.batch_size, loss=mse,
                     optimizer=nn.Adam(model, lr=args.lr), validation=(x_test, x_test),
                     seed=args.seed, progress=args.progress, schedule="cosine",
                     callback=_common.epoch_printer() if epochs <= 12 else _every(5, epochs))
    train_err = nn.evaluate(model, x_train, x_train, loss=mse)["loss"]
    test_err = nn.evaluate(model, x_test, x_test, loss=mse)["loss"]
    mean_image = x_train.mean(axis=0, keepdims=True)
    base_train = float(np.mean((x_train - mean_image) ** 2))
    base_test = float(np.mean((x_test - mean_image) ** 2))
    print("\nmean squared reconstruction error per pixel:")
    print(f"  {'':24s} {'train':>8s} {'test':>8s}")
    print(f"  {'autoencoder':24s} {train_err:8.4f} {test_err:8.4f}")
    print(f"  {'mean image (baseline)':24s} {base_train:8.4f} {base_test:8.4f}")
    print(f"  the autoencoder removes {1 - test_err / base_test:.0%} of the baseline's test error "
          f"({sum(history['seconds']):.1f} s of training)")
    recon = nn.predict(model, x_test[:16])
    images = [im for pair in zip(x_test[:16, 0], recon[:, 0]) for im in pair]
    _common.write_png(args, "autoencoder_reconstructions.png",
                      _common.tile_images(images, columns=8, scale=6))
    print("  (pairs: test scan, its reconstruction)")
    print(f"total {time.perf_counter() - start:.1f} s")
    return 0


def _every(k, epochs):
    printer = _common.epoch_printer()

    def callback(epoch, history):
        if epoch == 0 or (epoch + 1) % k == 0 or epoch + 1 == epochs:
            printer(epoch, history)
        return False
    return callback
