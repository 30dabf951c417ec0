"""The convex last layer: multinomial logistic (softmax) regression fitted with L-BFGS.

With the convolution kernels fixed (hand-designed, random or k-means), only the last layer is
learned, and its loss, the mean cross-entropy plus an L2 penalty, is convex in its weights: any
local minimum the optimiser finds is the global one (section 9.9).
"""
import numpy as np
from scipy.optimize import minimize

from ..nn.activation import log_softmax
from ..nn.loss import CrossEntropyLoss
from .._validate import float_array, positive_int, real_number
from ._checks import labels, one_blas_thread

__all__ = ["SoftmaxRegression", "softmax_loss"]


def softmax_loss(W, b, X, y, l2=0.0):
    """Mean cross-entropy of softmax(X W + b) against labels y (`nn.CrossEntropyLoss`), plus
    l2 / 2 * ||W||^2. Returns (loss, grad_W, grad_b, grad_X)."""
    ce = CrossEntropyLoss()
    loss = ce(X @ W + b, y) + 0.5 * l2 * float(np.sum(W * W))
    g = ce.backward()
    return loss, X.T @ g + l2 * W, g.sum(axis=0), g @ W.T


class SoftmaxRegression:
    """Multinomial logistic regression: ``fit(X, y)``, ``predict``, ``predict_proba``, ``score``.

    Features are standardised (mean 0, variance 1 per column, from the training set) when
    `standardize` is true; `l2` is the weight penalty on the standardised scale. The fit is
    deterministic (L-BFGS from zero weights).
    """

    def __init__(self, l2=1e-2, max_iter=200, standardize=True, tol=1e-6):
        self.l2 = real_number(l2, "l2", non_negative=True)
        self.max_iter = positive_int(max_iter, "max_iter")
        self.standardize = bool(standardize)
        self.tol = real_number(tol, "tol", positive=True)

    def _scaled(self, X):
        X = float_array(X, "X", ndim=2)
        if X.shape[1] != self.mean_.shape[0]:
            raise ValueError(f"X must have {self.mean_.shape[0]} features (as in fit), got {X.shape[1]}")
        return (X - self.mean_) / self.scale_

    def fit(self, X, y):
        X = float_array(X, "X", ndim=2)
        y = labels(y, X.shape[0])
        if X.shape[0] == 0:
            raise ValueError("X must hold at least one example, got 0 rows")
        self.classes_, yi = np.unique(y, return_inverse=True)
        if self.standardize:
            self.mean_ = X.mean(axis=0)
            std = X.std(axis=0)
            self.scale_ = np.where(std > 1e-12, std, 1.0)
        else:
            self.mean_ = np.zeros(X.shape[1])
            self.scale_ = np.ones(X.shape[1])
        Xs = (X - self.mean_) / self.scale_
        d, k = Xs.shape[1], len(self.classes_)

        def objective(theta):
            W, b = theta[:d * k].reshape(d, k), theta[d * k:]
            loss, gW, gb, _ = softmax_loss(W, b, Xs, yi, self.l2)
            return loss, np.concatenate([gW.ravel(), gb])

        with one_blas_thread():
            result = minimize(objective, np.zeros(d * k + k), jac=True, method="L-BFGS-B",
                              options={"maxiter": self.max_iter, "gtol": self.tol})
        self.coef_ = result.x[:d * k].reshape(d, k)
        self.intercept_ = result.x[d * k:]
        self.loss_ = float(result.fun)
        self.n_iter_ = int(result.nit)
        return self

    def decision_function(self, X):
        return self._scaled(X) @ self.coef_ + self.intercept_

    def predict_proba(self, X):
        return np.exp(log_softmax(self.decision_function(X)))

    def predict(self, X):
        return self.classes_[np.argmax(self.decision_function(X), axis=1)]

    def score(self, X, y):
        """Accuracy: the fraction of rows of X whose predicted class is y."""
        y = np.asarray(y)
        return float(np.mean(self.predict(X) == y))
