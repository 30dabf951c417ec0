"""The cheap architecture search of section 9.9 (Saxe et al. 2011).

Score each candidate architecture with frozen random kernels, training only the convex last
layer; rank them; train the best (or several, to measure how well the cheap score predicts the
expensive one) with every layer learned. Saxe et al. found the two rankings strongly correlated.
"""
import itertools
from dataclasses import dataclass, field

import numpy as np

from .._validate import positive_int
from ._checks import images as as_images, labels
from .convnet import Architecture, convnet, fit_head, score, train_convnet
from .random import random_filters

__all__ = ["Architecture", "SearchResult", "architecture_grid", "random_feature_score",
           "architecture_search", "spearman"]


def architecture_grid(kernel_sizes=(3, 5), n_filters=(4, 16), pools=(1, 2, 4), activation="abs"):
    """Every combination, as a list of Architecture."""
    return [Architecture(k, f, p, activation)
            for k, f, p in itertools.product(kernel_sizes, n_filters, pools)]


def random_feature_score(arch, x_train, y_train, x_val, y_val, *, seed=0, distribution="gaussian"):
    """Validation accuracy with random kernels (zero mean, unit norm) and a trained (convex)
    softmax head; returns (accuracy, the `nn.Sequential`)."""
    x_train = as_images(x_train)
    kernels = [random_filters(arch.n_filters, x_train.shape[1], arch.kernel_size, distribution,
                              seed=seed)]
    net = convnet(arch, x_train.shape[1], int(np.max(y_train)) + 1, x_train.shape[2:],
                  kernels=kernels, seed=seed)
    fit_head(net, x_train, y_train, l2=1e-2)
    return score(net, x_val, y_val), net


@dataclass
class SearchResult:
    architectures: list
    random_scores: list                 # validation accuracy, random kernels + trained last layer
    trained_scores: dict = field(default_factory=dict)   # index -> accuracy after full training
    best: int = 0                       # index of the best random-feature score
    best_net: object = None             # the fully trained best network

    def ranking(self):
        return sorted(range(len(self.architectures)), key=lambda i: -self.random_scores[i])

    def correlation(self):
        """Spearman rank correlation between random-feature and fully trained scores over the
        architectures trained fully (NaN with fewer than 3)."""
        idx = sorted(self.trained_scores)
        if len(idx) < 3:
            return float("nan")
        return spearman([self.random_scores[i] for i in idx], [self.trained_scores[i] for i in idx])

    def table(self):
        lines = ["architecture                     random  trained"]
        for i in self.ranking():
            trained = self.trained_scores.get(i)
            lines.append(f"{str(self.architectures[i]):<32} {self.random_scores[i]:6.3f}  "
                         + ("   -" if trained is None else f"{trained:6.3f}")
                         + ("  <- best" if i == self.best else ""))
        return "\n".join(lines)


def _ranks(v):
    v = np.asarray(v, dtype=np.float64)
    order = np.argsort(v, kind="stable")
    ranks = np.empty(len(v))
    ranks[order] = np.arange(len(v))
    for value in np.unique(v):                     # ties share their mean rank
        tied = v == value
        ranks[tied] = ranks[tied].mean()
    return ranks


def spearman(a, b):
    """Spearman's rank correlation (Pearson's on the ranks, ties averaged)."""
    ra, rb = _ranks(a), _ranks(b)
    ra -= ra.mean()
    rb -= rb.mean()
    denom = np.sqrt((ra * ra).sum() * (rb * rb).sum())
    return float("nan") if denom == 0 else float((ra * rb).sum() / denom)


def architecture_search(architectures, x_train, y_train, x_val, y_val, *, train_all=False,
                        epochs=8, seed=0, distribution="gaussian"):
    """Rank `architectures` by random-feature score, then fully train the best one (every
    architecture when `train_all`, which gives `SearchResult.correlation`). Full training starts
    from the same random kernels and the fitted last layer, then learns every layer with Adam (`train_convnet`)."""
    architectures = list(architectures)
    if not architectures:
        raise ValueError("architectures must not be empty")
    x_train, x_val = as_images(x_train), as_images(x_val)
    y_train = labels(y_train, x_train.shape[0], "y_train")
    y_val = labels(y_val, x_val.shape[0], "y_val")
    epochs = positive_int(epochs, "epochs")
    scores, nets = [], []
    for arch in architectures:
        accuracy, net = random_feature_score(arch, x_train, y_train, x_val, y_val, seed=seed,
                                          distribution=distribution)
        scores.append(accuracy)
        nets.append(net)
    result = SearchResult(architectures, scores, best=int(np.argmax(scores)))
    for i in (range(len(architectures)) if train_all else [result.best]):
        train_convnet(nets[i], x_train, y_train, epochs=epochs, seed=seed)
        result.trained_scores[i] = score(nets[i], x_val, y_val)
    result.best_net = nets[result.best]
    return result
