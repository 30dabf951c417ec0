"""fastconv.features: Gabor functions, hand-made and random kernels, ZCA, spherical k-means,
simple and complex cells, the convex last layer, networks built on fastconv.nn, bad input,
pictures."""
import math

import numpy as np
import pytest

import fastconv
import fastconv.features as F
from fastconv import nn
from fastconv.features.linear import softmax_loss


# --- Gabor functions, eqs. 9.16-9.18 --------------------------------------------------------

def gabor_by_loop(h, w, alpha, beta_x, beta_y, f, phi, x0, y0, tau):
    """Eq. 9.16 pixel by pixel, the rotation written as a matrix applied to (x - x0, y - y0)."""
    rot = np.array([[math.cos(tau), math.sin(tau)], [-math.sin(tau), math.cos(tau)]])
    out = np.empty((h, w))
    for i in range(h):
        for j in range(w):
            x, y = j - (w - 1) / 2, i - (h - 1) / 2
            xp, yp = rot @ np.array([x - x0, y - y0])
            out[i, j] = alpha * math.exp(-beta_x * xp ** 2 - beta_y * yp ** 2) * math.cos(f * xp + phi)
    return out


@pytest.mark.parametrize("h,w", [(7, 7), (8, 11), (1, 5)])
def test_gabor_matches_the_equation(rng, h, w):
    for _ in range(5):
        p = dict(alpha=rng.uniform(0.5, 2), beta_x=rng.uniform(0.01, 0.5),
                 beta_y=rng.uniform(0.01, 0.5), f=rng.uniform(0.1, 2.5), phi=rng.uniform(-3, 3),
                 x0=rng.uniform(-2, 2), y0=rng.uniform(-2, 2), tau=rng.uniform(-3, 3))
        got = F.gabor((h, w), **p)
        np.testing.assert_allclose(got, gabor_by_loop(h, w, **p), rtol=0, atol=1e-12)
    assert F.gabor(5, dtype=np.float32).dtype == np.float32


def test_gabor_orientation_and_phase():
    """tau = 0 oscillates along x (vertical stripes: constant down a column at beta_y = 0);
    tau = pi/2 is its transpose; phi = pi negates."""
    g = F.gabor(9, beta_x=0.05, beta_y=0.0, f=1.0, tau=0.0)
    assert np.allclose(g, g[:1])
    g2 = F.gabor(9, beta_x=0.05, beta_y=0.02, f=1.0, tau=math.pi / 2)
    np.testing.assert_allclose(g2, F.gabor(9, beta_x=0.05, beta_y=0.02, f=1.0).T, atol=1e-12)
    np.testing.assert_allclose(F.gabor(9, phi=math.pi), -F.gabor(9), atol=1e-12)


def test_gabor_bank_layout_and_normalisation():
    bank, params = F.gabor_bank(11, orientations=4, frequencies=[0.8, 1.6], phases=(0, 1.0),
                                return_params=True)
    assert bank.shape == (16, 1, 11, 11) and len(params) == 16
    flat = bank.reshape(16, -1)
    np.testing.assert_allclose(flat.mean(1), 0, atol=1e-12)
    np.testing.assert_allclose(np.linalg.norm(flat, axis=1), 1, atol=1e-12)
    assert [p["tau"] for p in params[:4]] == [0.0] * 4 and params[4]["tau"] == pytest.approx(math.pi / 4)
    raw = F.gabor_bank(11, orientations=[0.3], frequencies=[1.0], scales=[2.0], phases=[0.5],
                       normalize=False)
    np.testing.assert_allclose(raw[0, 0], gabor_by_loop(11, 11, 1, 1 / 8, 1 / 8, 1.0, 0.5, 0, 0, 0.3),
                               atol=1e-12)
    y = fastconv.conv(np.random.default_rng(0).random((2, 1, 20, 20)), bank)
    assert y.shape == (2, 16, 10, 10)


def test_figure_9_18_grids():
    banks = F.figure_9_18(15, grid=5)
    assert set(banks) == {"orientation", "scale", "phase"}
    for b in banks.values():
        assert b.shape == (25, 1, 15, 15)
    # scale grid: the envelope widens left to right (x) and top to bottom (y)
    env = np.abs(banks["scale"][:, 0]).reshape(5, 5, 15, 15)
    xs = np.arange(15) - 7
    spread_x = [(env[2, c] * xs[None] ** 2).sum() / env[2, c].sum() for c in range(5)]
    spread_y = [(env[r, 2] * xs[:, None] ** 2).sum() / env[r, 2].sum() for r in range(5)]
    assert np.all(np.diff(spread_x) > 0) and np.all(np.diff(spread_y) > 0)
    # orientation grid: the centre tile is centred, the others point away from the centre
    assert abs(banks["orientation"][12, 0]).argmax() == 7 * 15 + 7


def test_fit_gabor_recovers_a_gabor_and_rejects_noise(rng):
    p = dict(beta_x=0.08, beta_y=0.05, f=1.1, phi=0.7, tau=0.9, x0=0.5, y0=-0.3)
    target = F.gabor(9, **p)
    _, r2 = F.fit_gabor(target + 0.01 * rng.standard_normal((9, 9)))
    assert r2 > 0.98
    noise_r2 = [F.fit_gabor(rng.standard_normal((6, 6)))[1] for _ in range(8)]
    assert np.median(noise_r2) < 0.6


# --- hand-designed kernels, figure 9.6 ------------------------------------------------------

def test_edge_detector_is_right_minus_left(rng):
    x = rng.random((2, 1, 6, 9))
    y = fastconv.conv(x, F.edge_kernel())
    np.testing.assert_allclose(y, x[..., 1:] - x[..., :-1], atol=1e-12)


def test_figure_9_6_arithmetic():
    cost = F.edge_detector_cost(280, 320)
    out_w, h = 320 - 2 + 1, 280
    assert (cost.output_height, cost.output_width) == (280, 319)
    assert cost.conv_flops == out_w * h * 3 == 267960           # 2 multiplies + 1 add per pixel
    assert cost.dense_entries == 320 * 280 * 319 * 280 > 8e9     # "over eight billion"
    assert cost.dense_flops > 16e9                               # "over sixteen billion"
    assert 5.9e4 < cost.flop_ratio < 6.1e4                       # "roughly 60,000 times"
    assert 3.9e9 < cost.storage_ratio < 4.1e9                    # "four billion times"
    c = F.edge_detector_cost(10, 7, kernel_width=3)
    assert c.conv_flops == 10 * 5 * 5 and c.dense_flops == 10 * 5 * (2 * 70 - 1)
    assert "267,960" in str(cost)


def test_sobel_prewitt_dog_oriented(rng):
    ramp = np.tile(np.arange(8.0), (8, 1))[None, None]          # brighter to the right
    for bank, weight in ((F.sobel(), 4), (F.prewitt(), 3)):
        y = fastconv.conv(ramp, bank)
        np.testing.assert_allclose(y[0, 0], 2 * weight, atol=1e-12)
        np.testing.assert_allclose(y[0, 1], 0, atol=1e-12)
    np.testing.assert_allclose(F.sobel()[1, 0], F.sobel()[0, 0].T)
    dog = F.difference_of_gaussians(9, sigmas=[(1, 1.6), (1.5, 3)])
    assert dog.shape == (2, 1, 9, 9)
    np.testing.assert_allclose(dog.sum(axis=(1, 2, 3)), 0, atol=1e-12)
    assert dog[0, 0, 4, 4] > 0 > dog[0, 0, 0, 4]                 # centre on, surround off
    edges = F.oriented_edges(7, angles=4, scales=(1.0, 2.0))
    assert edges.shape == (8, 1, 7, 7)
    np.testing.assert_allclose(np.linalg.norm(edges.reshape(8, -1), axis=1), 1)
    step = (np.arange(7)[None] >= 3).astype(float)               # a vertical edge
    responses = np.abs((edges[:, 0] * step).sum(axis=(1, 2))).reshape(4, 2)   # angle x scale
    assert list(np.argmax(responses, axis=0)) == [0, 0]          # angle 0 detects it best
    assert responses[2].max() < 1e-12                            # angle pi/2 does not see it
    assert F.expand_channels(edges, 3).shape == (8, 3, 7, 7)


# --- random filters ---------------------------------------------------------------------------

@pytest.mark.parametrize("distribution", F.DISTRIBUTIONS)
def test_random_filters(distribution):
    a = F.random_filters(10, 3, (5, 4), distribution, seed=7)
    b = F.random_filters(10, 3, (5, 4), distribution, seed=7)
    c = F.random_filters(10, 3, (5, 4), distribution, seed=8)
    assert a.shape == (10, 3, 5, 4)
    np.testing.assert_array_equal(a, b)
    assert not np.allclose(a, c)
    flat = a.reshape(10, -1)
    np.testing.assert_allclose(np.linalg.norm(flat, axis=1), 1, atol=1e-12)
    if distribution != "sparse":
        np.testing.assert_allclose(flat.mean(axis=1), 0, atol=1e-12)
    raw = F.random_filters(50, 1, 3, distribution, seed=1, normalize=False, density=0.3)
    if distribution == "ternary":
        assert set(np.unique(raw)) == {-1.0, 0.0, 1.0}
    if distribution == "sparse":
        assert 0.15 < np.mean(raw != 0) < 0.45


# --- ZCA and spherical k-means --------------------------------------------------------------

def test_zca_whitens(rng):
    X = rng.standard_normal((4000, 6)) @ rng.standard_normal((6, 6)) + 3.0
    zca = F.ZCA(eps=0).fit(X)
    Z = zca.transform(X)
    np.testing.assert_allclose(np.cov(Z, rowvar=False, bias=True), np.eye(6), atol=1e-9)
    np.testing.assert_allclose(zca.matrix_, zca.matrix_.T, atol=1e-12)      # symmetric
    np.testing.assert_allclose(zca.inverse_transform(Z), X, atol=1e-9)
    with pytest.raises(ValueError, match="singular"):
        F.ZCA(eps=0).fit(np.c_[X, X[:, :1]])


def test_normalize_patches(rng):
    P = rng.random((50, 16)) * 5 + 2
    N = F.normalize_patches(P, eps=0)
    np.testing.assert_allclose(N.mean(1), 0, atol=1e-12)
    np.testing.assert_allclose(N.std(1), 1, atol=1e-12)


def test_spherical_kmeans_unit_norm_and_monotone(rng):
    centres = rng.standard_normal((5, 10))
    X = centres[rng.integers(0, 5, 600)] * rng.choice([-2, 2], (600, 1)) \
        + 0.3 * rng.standard_normal((600, 10))
    D, history = F.spherical_kmeans(X, 8, iters=15, seed=0, return_history=True)
    np.testing.assert_allclose(np.linalg.norm(D, axis=1), 1, atol=1e-12)
    assert np.all(np.diff(history) <= 1e-9 * history[0])
    assert history[-1] < 0.5 * history[0]
    # the objective, independently: each x minus its projection on its best centroid
    proj = np.max(np.abs(X @ D.T), axis=1)
    assert history[-1] == pytest.approx(float(np.sum((X * X).sum(1) - proj ** 2)))
    # each true centre is found (up to sign)
    cos = np.abs(centres @ D.T) / np.linalg.norm(centres, axis=1, keepdims=True)
    assert cos.max(axis=1).min() > 0.95


def test_kmeans_transform_is_the_patch_pipeline(rng):
    imgs = rng.random((4, 2, 9, 10)) * 255
    km = F.KMeansFeatures(6, (3, 4), 500, seed=1, iters=3).fit(imgs)
    r = km.transform(imgs)
    assert r.shape == (4, 6, 7, 7) and km.kernels.shape == km.centroids.shape == (6, 2, 3, 4)
    D = km.centroids.reshape(6, -1)
    for n, i, j in [(0, 0, 0), (3, 6, 6), (1, 2, 5)]:
        patch = imgs[n, :, i:i + 3, j:j + 4].reshape(1, -1)
        z = km.zca_.transform(F.normalize_patches(patch, km.contrast_eps_))
        np.testing.assert_allclose(r[n, :, i, j], (D @ z.T)[:, 0], rtol=1e-9, atol=1e-9)
    assert km.features(imgs).shape == (4, 6 * 2 * 4)


# --- the convex last layer; networks and autoencoders built on fastconv.nn ------------------

def test_softmax_loss_gradients(rng):
    optimize = pytest.importorskip("scipy.optimize")
    X, W, b = rng.standard_normal((7, 5)), rng.standard_normal((5, 3)), rng.standard_normal(3)
    y = rng.integers(0, 3, 7)
    _, gW, gb, gX = softmax_loss(W, b, X, y, 0.1)
    # the mean cross-entropy written from its definition, independent of nn.CrossEntropyLoss
    z = X @ W + b
    expected = np.mean(np.log(np.exp(z).sum(1)) - z[np.arange(7), y]) + 0.05 * np.sum(W * W)
    assert softmax_loss(W, b, X, y, 0.1)[0] == pytest.approx(expected, rel=1e-12)
    for i, (arr, g) in enumerate(((W, gW), (b, gb), (X, gX))):
        def f(flat):
            args = [W, b, X]
            args[i] = flat.reshape(arr.shape)
            return softmax_loss(*args, y, 0.1)[0]
        fd = optimize.approx_fprime(arr.ravel(), f, 1e-7)
        np.testing.assert_allclose(fd, g.ravel(), rtol=1e-5, atol=1e-6)


def test_softmax_regression_separable():
    X = np.r_[np.zeros((20, 2)), np.ones((20, 2)) * 3] + np.random.default_rng(0).random((40, 2))
    y = np.r_[np.zeros(20, int), np.full(20, 2)]
    clf = F.SoftmaxRegression().fit(X, y)
    assert clf.score(X, y) == 1.0 and set(clf.predict(X)) == {0, 2}
    np.testing.assert_allclose(clf.predict_proba(X).sum(1), 1)


def test_abs_gradient():
    assert nn.gradcheck(F.Abs(), np.random.default_rng(3).standard_normal((2, 3, 4, 5))) > 0


def test_convnet_layers_kernels_and_freezing(rng):
    archs = [F.Architecture(3, 4, 2, "abs"), F.Architecture(5, 6, 1, "relu")]
    bank = F.random_filters(4, 2, 3, seed=0)
    net = F.convnet(archs, 2, 5, (9, 7), kernels=[bank, None], biases=[np.ones(4), None],
                    freeze=True, dtype=np.float64)
    assert [type(m).__name__ for m in net] == ["Conv2d", "Abs", "AvgPool2d", "Conv2d", "ReLU",
                                               "Flatten", "Linear"]
    np.testing.assert_array_equal(net[0].weight, bank)
    np.testing.assert_array_equal(net[0].bias, 1)
    x = rng.standard_normal((3, 2, 9, 7))
    # the stages by hand: conv ('same'), |.|, 2x2 average pooling, conv, relu
    h = np.abs(fastconv.conv(x, bank, np.ones(4), padding=1))[:, :, :8, :6]
    h = h.reshape(3, 4, 4, 2, 3, 2).mean(axis=(3, 5))
    h = np.maximum(fastconv.conv(h, net[3].weight, net[3].bias, padding=2), 0)
    np.testing.assert_allclose(F.head_features(net, x), h.reshape(3, -1), rtol=1e-12, atol=1e-12)
    assert net[-1].in_features == 6 * 4 * 3
    # frozen convs: the optimizer sees only the head, and training leaves the kernels alone
    assert [p.shape for p, _ in F.trainable(net)] == [(5, 72), (5,)]
    before = [net[0].weight.copy(), net[3].weight.copy(), net[-1].weight.copy()]
    F.train_convnet(net, x, np.array([0, 1, 4]), epochs=2, batch_size=2)
    np.testing.assert_array_equal(net[0].weight, before[0])
    np.testing.assert_array_equal(net[3].weight, before[1])
    assert not np.allclose(net[-1].weight, before[2])


def test_fit_head_is_the_convex_solution(rng):
    x, y = rng.standard_normal((30, 1, 6, 6)), rng.integers(0, 3, 30)
    y[y == 1] = 0                                        # class 1 absent: never predicted
    net = F.convnet(F.Architecture(3, 3, 2), 1, 3, (6, 6), seed=1)
    clf = F.fit_head(net, x, y, l2=0.1)
    logits = nn.predict(net, x.astype(np.float32))
    np.testing.assert_allclose(logits[:, [0, 2]], clf.decision_function(F.head_features(net, x)),
                               rtol=1e-4, atol=1e-4)
    assert not np.any(logits.argmax(1) == 1)
    assert F.score(net, x, y) == pytest.approx(clf.score(F.head_features(net, x), y))


def test_autoencoder_is_conv_then_transpose(rng):
    ae = F.ConvAutoencoder(F.Architecture(3, 3, 1, "relu"), 2, dtype=np.float64)
    assert isinstance(ae.encoder, nn.Conv2d) and isinstance(ae.decoder, nn.ConvTranspose2d)
    x = rng.standard_normal((3, 2, 6, 5))
    h = np.maximum(fastconv.conv(x, ae.encoder.weight, ae.encoder.bias, padding=1), 0)
    np.testing.assert_allclose(ae.encode(x), h, rtol=1e-12)
    xhat = fastconv.conv_transpose(h, ae.decoder.weight, ae.decoder.bias, padding=1)
    np.testing.assert_allclose(nn.predict(ae, x), xhat, rtol=1e-12)
    assert ae.reconstruction_error(x) == pytest.approx(np.mean((xhat - x) ** 2))
    history = ae.fit(x, epochs=3, batch_size=3)
    assert len(history) == 3 and ae.reconstruction_error(x) < np.mean((xhat - x) ** 2)


def test_spearman_matches_scipy(rng):
    stats = pytest.importorskip("scipy.stats")
    from fastconv.features.search import spearman
    a, b = rng.random(9), rng.random(9)
    b[3] = b[5]
    assert spearman(a, b) == pytest.approx(stats.spearmanr(a, b).statistic)


# --- simple and complex cells, section 9.10 ------------------------------------------------

def test_complex_cell_ignores_phase_simple_cell_does_not():
    r = F.phase_response(21, n_phases=24)
    assert r["complex_variation"] < 0.02
    assert r["simple_variation"] > 0.9
    assert np.min(r["simple"]) < 0 < np.max(r["simple"])         # the sign follows the phase
    r = F.phase_response(21, n_phases=12, f=2 * math.pi / 6, beta_x=1 / 32, beta_y=1 / 32, tau=0.6)
    assert r["complex_variation"] < 0.01 and r["simple_variation"] > 0.9


def test_shift_invariance():
    r = F.shift_response(21, shifts=range(6))
    assert r["complex_variation"] < 0.02 and r["simple_variation"] > 0.5
    e = F.shift_response(21, shifts=[0, 1], stimulus="edge")
    assert e["complex_variation"] < 0.1 < e["simple_variation"]


def test_cells_compute_eq_9_15(rng):
    w0, w1 = F.quadrature_pair(9, tau=0.4)
    np.testing.assert_allclose(w1, F.gabor(9, tau=0.4, phi=math.pi / 2))
    img = rng.random((3, 9, 9))
    s0 = np.array([np.sum(w0 * i) for i in img])
    s1 = np.array([np.sum(w1 * i) for i in img])
    np.testing.assert_allclose(F.simple_cell(img, w0), s0)
    np.testing.assert_allclose(F.simple_cell(img, w0, rectify=True), np.maximum(s0, 0))
    np.testing.assert_allclose(F.complex_cell(img, w0, w1), np.sqrt(s0 ** 2 + s1 ** 2))
    big = rng.random((1, 1, 15, 15))
    cmap = F.complex_cell_map(big, w0[None, None], w1[None, None], padding=0)
    np.testing.assert_allclose(cmap[0, 0, 2, 3], F.complex_cell(big[0, 0, 2:11, 3:12], w0, w1))


# --- bad input --------------------------------------------------------------------------------

@pytest.mark.parametrize("call,error,match", [
    (lambda: F.gabor(0), ValueError, "size"),
    (lambda: F.gabor((3, 4, 5)), TypeError, "size"),
    (lambda: F.gabor(5, beta_x=-1), ValueError, "beta_x"),
    (lambda: F.gabor(5, f="fast"), TypeError, "f must"),
    (lambda: F.gabor(5, dtype=np.int32), TypeError, "dtype"),
    (lambda: F.gabor_bank(5, orientations=0), ValueError, "orientations"),
    (lambda: F.edge_detector_cost(10, 3, kernel_width=4), ValueError, "kernel_width"),
    (lambda: F.edge_detector_cost(0, 3), ValueError, "height"),
    (lambda: F.random_filters(0, 1, 3), ValueError, "n must"),
    (lambda: F.random_filters(2, 1, 3, "cauchy"), ValueError, "distribution"),
    (lambda: F.random_filters(2, 1, 3, "sparse", density=2), ValueError, "density"),
    (lambda: F.spherical_kmeans(np.ones((3, 2)), 5), ValueError, "at least k"),
    (lambda: F.extract_patches(np.ones((2, 4, 4)), 5, 3), ValueError, "fit"),
    (lambda: F.extract_patches(np.ones((4, 4)), 2, 3), ValueError, "dimensions"),
    (lambda: F.rectify(np.ones((1, 1, 2, 2)), "sigmoid"), ValueError, "rectify"),
    (lambda: F.grid_pool(np.ones((1, 1, 2, 2)), 3), ValueError, "regions"),
    (lambda: F.conv_features(np.ones((2, 3, 8, 8)), F.sobel()), ValueError, "bank"),
    (lambda: F.Architecture(4, 4), ValueError, "odd"),
    (lambda: F.Architecture(3, 4, activation="tanh"), ValueError, "activation"),
    (lambda: F.convnet([], 1, 2, (8, 8)), TypeError, "architecture"),
    (lambda: F.convnet(F.Architecture(3, 2, 4), 1, 2, (3, 8)), ValueError, "too small"),
    (lambda: F.convnet(F.Architecture(3, 2), 1, 2, (8, 8), kernels=[np.ones((2, 1, 5, 5))]),
     ValueError, "shape"),
    (lambda: F.SoftmaxRegression().fit(np.ones((3, 2)), [0.5, 1, 2]), TypeError, "labels"),
    (lambda: F.shift_response(stimulus="bar"), ValueError, "stimulus"),
    (lambda: F.simple_cell(np.ones((5, 5)), np.ones((3, 3))), ValueError, "receptive"),
    (lambda: F.fit_gabor(np.ones((4, 4))), ValueError, "constant"),
    (lambda: F.KMeansFeatures().transform(np.ones((1, 8, 8))), RuntimeError, "fit"),
])
def test_bad_input(call, error, match):
    with pytest.raises(error, match=match):
        call()


def test_inputs_not_written_and_empty_batch(rng):
    x = rng.random((3, 1, 8, 8))
    keep = x.copy()
    F.conv_features(x, F.sobel())
    F.KMeansFeatures(4, 3, 200, iters=2).fit(x).features(x)
    np.testing.assert_array_equal(x, keep)
    assert F.conv_features(x[:0], F.sobel()).shape == (0, 2 * 2 * 4)


# --- pictures ---------------------------------------------------------------------------------

def test_pictures_write_readable_pngs(tmp_path):
    pytest.importorskip("matplotlib")
    import matplotlib.image
    paths = [F.pictures.save_filter_grid(tmp_path / "g.png", F.gabor_bank(7, 4), title="bank"),
             F.pictures.save_feature_maps(tmp_path / "m.png", np.random.default_rng(0).random((3, 9, 9))),
             F.pictures.save_gabor_banks(tmp_path / "b.png", F.figure_9_18(9, grid=3)),
             F.pictures.save_image(tmp_path / "i.png", np.eye(20)),
             F.pictures.save_filter_grid(tmp_path / "c.png", F.random_filters(4, 3, 5, seed=0),
                                         channel="rgb")]
    for p in paths:
        with open(p, "rb") as fh:
            assert fh.read(8) == b"\x89PNG\r\n\x1a\n"
        img = matplotlib.image.imread(p)
        assert img.ndim == 3 and img.shape[0] > 10 and img.shape[1] > 10 and np.ptp(img) > 0
    with pytest.raises(ValueError, match="kernels"):
        F.pictures.save_filter_grid(tmp_path / "x.png", np.ones((3, 3)))
