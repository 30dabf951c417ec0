"""fastconv.features on real data: k-means kernels of photographs look like Gabor functions
(figure 9.19); random and k-means features classify digits far above chance; the cheap search
ranks architectures; pretraining helps a short training run."""
import numpy as np
import pytest

import fastconv.features as F
from fastconv import nn

datasets = pytest.importorskip("sklearn.datasets")


@pytest.fixture(scope="module")
def digits():
    d = datasets.load_digits()
    order = np.random.default_rng(0).permutation(len(d.target))
    x, y = d.images[order] / 16.0, d.target[order]
    return x[:900], y[:900], x[900:1500], y[900:1500]


@pytest.fixture(scope="module")
def photo_kmeans():
    grey = [datasets.load_sample_image(name).astype(np.float64) @ [0.299, 0.587, 0.114]
            for name in ("china.jpg", "flower.jpg")]
    return F.KMeansFeatures(24, 6, 10000, iters=10, seed=0).fit(np.stack(grey))


def test_kmeans_centroids_of_photographs_are_gabor_like(photo_kmeans):
    r2 = np.array([F.fit_gabor(c[0])[1] for c in photo_kmeans.centroids])
    assert np.mean(r2 > 0.7) >= 0.75, np.round(np.sort(r2), 2)
    # the same fit on random kernels of the same size: most are not Gabor-like
    random = F.random_filters(24, 1, 6, "gaussian", seed=0)
    r2_random = np.array([F.fit_gabor(k[0])[1] for k in random])
    assert np.mean(r2_random > 0.7) <= 0.25, np.round(np.sort(r2_random), 2)
    assert np.median(r2) > np.median(r2_random) + 0.3
    history = photo_kmeans.history_
    assert np.all(np.diff(history) <= 1e-9 * history[0])


CHANCE = 0.1


def test_random_and_kmeans_features_classify_digits(digits):
    xtr, ytr, xte, yte = digits
    for distribution in ("gaussian", "gabor"):
        bank = F.random_filters(16, 1, 3, distribution, seed=0)
        ftr, fte = F.conv_features(xtr, bank, padding=1), F.conv_features(xte, bank, padding=1)
        acc = F.SoftmaxRegression(l2=0.05, max_iter=100).fit(ftr, ytr).score(fte, yte)
        assert acc > 0.9 > 8 * CHANCE, (distribution, acc)
    km = F.KMeansFeatures(16, 3, 5000, seed=0).fit(xtr)
    acc = F.SoftmaxRegression(l2=0.05, max_iter=100).fit(km.features(xtr), ytr).score(km.features(xte), yte)
    assert acc > 0.9, acc


def test_architecture_search_ranks_and_trains_the_best(digits):
    xtr, ytr, xte, yte = digits
    archs = F.architecture_grid(kernel_sizes=(3,), n_filters=(2, 8), pools=(2, 4))
    result = F.architecture_search(archs, xtr[:500], ytr[:500], xte, yte, train_all=True, epochs=2)
    assert len(result.random_scores) == 4 and set(result.trained_scores) == {0, 1, 2, 3}
    assert result.best == int(np.argmax(result.random_scores))
    assert result.architectures[result.best].n_filters == 8      # more random filters help
    assert result.correlation() > 0                               # the cheap score predicts
    assert "<- best" in result.table()


def test_pretraining_beats_random_initialisation_on_a_short_run(digits):
    xtr, ytr, xte, yte = digits
    stages = [F.Architecture(3, 8, 2, "relu")]
    net, layers, acc = F.pretrained_convnet(stages, xtr[:400], ytr[:400], 10, epochs=2,
                                            fine_tune_epochs=1, seed=0)
    pretrained = F.score(net, xte, yte)
    scratch = F.convnet(stages, 1, 10, (8, 8), seed=0)
    F.train_convnet(scratch, xtr[:400], ytr[:400], epochs=1, seed=0)
    assert pretrained > 0.85 and pretrained > F.score(scratch, xte, yte) + 0.05
    assert isinstance(net[0], nn.Conv2d)
    np.testing.assert_array_equal(layers[0].encoder.weight.shape, net[0].weight.shape)
    untrained = F.ConvAutoencoder(stages[0], 1, seed=0)
    assert layers[0].reconstruction_error(xtr[:100]) < untrained.reconstruction_error(xtr[:100])
