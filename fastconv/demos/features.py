"""``fastconv demo features``: kernels without back-propagation (sections 9.9-9.10).

Figure 9.6's edge detector on a photograph, Gabor functions and complex cells, k-means kernels
learned from photographs (figure 9.19), and digits classified with random, k-means and fully
trained first layers, plus the cheap architecture search and layer-wise pretraining.
"""
import argparse
import os
import time

import numpy as np

import fastconv
import fastconv.features as F


def _need_sklearn():
    try:
        from sklearn import datasets
    except ImportError as exc:
        raise SystemExit(f"this demo needs the demo extra: pip install \"fastconv[demo]\" ({exc})")
    return datasets


def _grey(datasets, name):
    return datasets.load_sample_image(name).astype(np.float64) @ [0.299, 0.587, 0.114] / 255


def _save(out, name, fn, *args, **kwargs):
    if out is None:
        return
    try:
        path = fn(os.path.join(out, name), *args, **kwargs)
        print(f"  wrote {path}")
    except ImportError as exc:
        print(f"  (no picture: {exc})")


def edges(datasets, out):
    photo = _grey(datasets, "china.jpg")
    h, w = photo.shape
    x = photo[None, None].astype(np.float32)
    y = fastconv.conv(x, F.edge_kernel(np.float32))
    start = time.perf_counter()
    fastconv.conv(x, F.edge_kernel(np.float32))
    ms = (time.perf_counter() - start) * 1e3
    print(f"figure 9.6: the kernel [-1, 1] on a {h}x{w} photograph -> {y.shape[2]}x{y.shape[3]} "
          f"in {ms:.2f} ms")
    print(f"  the caption's image: {F.edge_detector_cost(280, 320)}")
    print(f"  this photograph:     {F.edge_detector_cost(h, w)}")
    _save(out, "edges.png", F.pictures.save_image, np.abs(y[0, 0]))
    sobel = fastconv.conv(x, F.sobel(np.float32), padding=1)
    _save(out, "sobel.png", F.pictures.save_image, np.hypot(sobel[0, 0], sobel[0, 1]))


def gabors_and_cells(out):
    bank = F.gabor_bank(11, orientations=8, phases=(0, np.pi / 2))
    print(f"\nGabor functions (eq. 9.16): a bank of {bank.shape[0]} kernels {bank.shape[2:]}, "
          "8 orientations x 2 phases")
    _save(out, "gabor_grids.png", F.pictures.save_gabor_banks, F.figure_9_18(15, grid=5))
    _save(out, "gabor_bank.png", F.pictures.save_filter_grid, bank, cols=8)
    p = F.phase_response(21, n_phases=16)
    s = F.shift_response(21, shifts=range(6))
    print("section 9.10, a grating matched to the cell, 16 phases / shifts of 0-5 pixels:")
    print(f"  simple cell  s = sum w I:         response varies by {p['simple_variation']:.0%} "
          f"over phases, {s['simple_variation']:.0%} over shifts")
    print(f"  complex cell sqrt(s0^2 + s1^2):   response varies by {p['complex_variation']:.2%} "
          f"over phases, {s['complex_variation']:.2%} over shifts")


def kmeans_kernels(datasets, out, quick):
    photos = np.stack([_grey(datasets, n) for n in ("china.jpg", "flower.jpg")])
    k = 16 if quick else 32
    start = time.perf_counter()
    km = F.KMeansFeatures(k, 8, 10000 if quick else 30000, iters=10, seed=0).fit(photos)
    seconds = time.perf_counter() - start
    r2 = np.array([F.fit_gabor(c[0])[1] for c in km.centroids])
    r2_random = np.array([F.fit_gabor(c[0])[1] for c in F.random_filters(k, 1, 8, seed=0)])
    print(f"\nk-means (figure 9.19): {k} centroids of 8x8 patches of two photographs in "
          f"{seconds:.1f} s (objective {km.history_[0]:.4g} -> {km.history_[-1]:.4g})")
    print(f"  fit by a Gabor function with R^2 > 0.7: {np.mean(r2 > 0.7):.0%} of the centroids "
          f"(median R^2 {np.median(r2):.2f}); random kernels: {np.mean(r2_random > 0.7):.0%} "
          f"(median {np.median(r2_random):.2f})")
    _save(out, "kmeans_kernels.png", F.pictures.save_filter_grid, km.centroids, cols=8)
    maps = km.transform(photos[:1, None, ::2, ::2])[0, :8]
    _save(out, "kmeans_feature_maps.png", F.pictures.save_feature_maps, maps, cols=4)


def digits(datasets, out, quick):
    d = datasets.load_digits()
    order = np.random.default_rng(0).permutation(len(d.target))
    x, y = d.images[order] / 16.0, d.target[order]
    n_train = 1200
    xtr, ytr, xte, yte = x[:n_train], y[:n_train], x[n_train:], y[n_train:]
    print(f"\ndigits (8x8, {n_train} training / {len(yte)} test images, chance 10%), one stage of "
          "16 3x3 kernels, then a softmax layer:")
    rows = []
    for dist in ("gaussian", "ternary", "gabor"):
        start = time.perf_counter()
        bank = F.random_filters(16, 1, 3, dist, seed=0)
        clf = F.SoftmaxRegression().fit(F.conv_features(xtr, bank, padding=1), ytr)
        rows.append((f"random {dist} kernels, last layer only",
                     clf.score(F.conv_features(xte, bank, padding=1), yte),
                     time.perf_counter() - start))
    start = time.perf_counter()
    km = F.KMeansFeatures(16, 3, 10000, seed=0).fit(xtr)
    clf = F.SoftmaxRegression().fit(km.features(xtr), ytr)
    rows.append(("k-means kernels, last layer only", clf.score(km.features(xte), yte),
                 time.perf_counter() - start))
    start = time.perf_counter()
    net = F.convnet(F.Architecture(3, 16, 2, "abs"), 1, 10, xtr.shape[1:], seed=0)
    F.train_convnet(net, xtr, ytr, epochs=5 if quick else 15, seed=0)
    rows.append(("every layer trained (back-propagation)", F.score(net, xte, yte),
                 time.perf_counter() - start))
    rows.append(("raw pixels, softmax only",
                 F.SoftmaxRegression().fit(xtr.reshape(n_train, -1), ytr)
                 .score(xte.reshape(len(yte), -1), yte), float("nan")))
    for name, acc, seconds in rows:
        timing = "" if np.isnan(seconds) else f"   {seconds:5.1f} s"
        print(f"  {name:<42} test accuracy {acc:6.1%}{timing}")
    _save(out, "digits_kmeans_kernels.png", F.pictures.save_filter_grid, km.centroids, cols=8)
    return xtr, ytr, xte, yte


def search_and_pretraining(data, quick):
    xtr, ytr, xte, yte = data
    archs = F.architecture_grid(kernel_sizes=(3, 5), n_filters=(2, 8), pools=(2, 4))
    start = time.perf_counter()
    result = F.architecture_search(archs, xtr, ytr, xte, yte, train_all=True,
                                   epochs=2 if quick else 4)
    print(f"\nsection 9.9, Saxe et al.: {len(archs)} architectures scored with random kernels "
          f"(last layer only), then every one trained fully ({time.perf_counter() - start:.1f} s):")
    print("  " + result.table().replace("\n", "\n  "))
    print(f"  Spearman correlation, random-kernel score vs fully trained score: "
          f"{result.correlation():.2f}")
    stages = [F.Architecture(3, 8, 2, "relu"), F.Architecture(3, 16, 2, "relu")]
    start = time.perf_counter()
    net, _, _ = F.pretrained_convnet(stages, xtr, ytr, 10, epochs=2, fine_tune_epochs=2, seed=0)
    scratch = F.convnet(stages, 1, 10, xtr.shape[1:], seed=0)
    F.train_convnet(scratch, xtr, ytr, epochs=2, seed=0)
    print(f"greedy layer-wise pretraining (two conv autoencoders, then 2 epochs of fine-tuning): "
          f"test accuracy {F.score(net, xte, yte):.1%}; the same 2 epochs from a random start: "
          f"{F.score(scratch, xte, yte):.1%} ({time.perf_counter() - start:.1f} s)")


def main(argv=None):
    from . import DEFAULT_OUT, out_dir, plain
    parser = argparse.ArgumentParser(prog="fastconv demo features", description=plain(__doc__))
    parser.add_argument("--out", help=f"folder for the PNG pictures, created if needed (default: "
                        f"{DEFAULT_OUT} in the current directory)")
    parser.add_argument("--no-png", action="store_true", help="do not write PNG files")
    parser.add_argument("--quick", action="store_true", help="smaller problems, a few seconds")
    args = parser.parse_args(argv)
    datasets = _need_sklearn()
    out = None if args.no_png else out_dir(args.out)
    if out:
        os.makedirs(out, exist_ok=True)
    start = time.perf_counter()
    edges(datasets, out)
    gabors_and_cells(out)
    kmeans_kernels(datasets, out, args.quick)
    data = digits(datasets, out, args.quick)
    search_and_pretraining(data, args.quick)
    print(f"\ntotal {time.perf_counter() - start:.1f} s")
    return 0
