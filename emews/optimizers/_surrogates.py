"""Surrogate models for :mod:`emews.optimizers.mbo`: ``fit(X, y)`` and ``predict(X) -> (mean, std)``
(the interface MBO relies on is declared in :mod:`emews.optimizers._model`).

Built on scikit-optimize's regressors where they hold up, with three repairs:

* random forest / extra trees: the predictive spread is the law of total variance over the
  trees (mean leaf variance + variance of the tree means, as scikit-optimize defines it),
  computed from one ``apply`` per forest (leaf ids) instead of two tree passes per tree;
* gradient boosting: scikit-optimize's ``GradientBoostingQuantileRegressor`` is refused by its
  own ``Optimizer`` under scikit-learn >= 1.6 ("has to be a regressor") and calls ``np.in1d``,
  gone from numpy 2.4; :class:`QuantileGBRT` fits the 16/50/84 % quantiles with
  scikit-learn's ``GradientBoostingRegressor(loss="quantile")`` directly;
* Gaussian process: the exact GP costs O(n^3) per likelihood evaluation, times dozens of
  evaluations per hyperparameter search (and scikit-optimize refits one per proposed point);
  :class:`~emews.optimizers._gp.GPSurrogate` (numpy/scipy, module ``_gp``) fits its kernel
  hyperparameters on a subsample, warm-started and rarely refitted at scale, and conditions on
  every observation (exactly, or through inducing points beyond ``max_points``).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ._gp import GPSurrogate
from ._model import BelieverSurrogate, GradientSurrogate, Surrogate

__all__ = ["Surrogate", "GradientSurrogate", "BelieverSurrogate", "ForestSurrogate", "QuantileGBRT", "GPSurrogate",
           "make_surrogate", "SURROGATES"]

#: surrogate names accepted by :func:`make_surrogate`
SURROGATES = ("rf", "et", "gp", "gbrt")

_MIN_STD = 1e-9


class ForestSurrogate(Surrogate):
    """Random forest (``kind="rf"``, mlrMBO's default) or extra trees (``kind="et"``).

    Args:
        kind: ``"rf"`` or ``"et"``.
        n_estimators: trees in the forest.
        min_samples_leaf: smallest leaf (1: trees grown out; the spread then comes from the
            disagreement between trees).
        max_features: share of the features tried per split (default: 1/3 for a random
            forest, as R's randomForest that mlrMBO uses; 1/2 for extra trees). Tuned with
            ``benchmarks/quality/run.py``.
        n_jobs: threads for fitting and ``apply`` (-1: every core).
        random_state: seed of the forest.
        min_variance: floor of a leaf's variance (a leaf of identical values is not certain).
    """

    def __init__(self, kind: str = "rf", n_estimators: int = 100, min_samples_leaf: int = 1,
                 max_features: float | str | None = None, n_jobs: int = -1, random_state: int | None = None,
                 min_variance: float = 0.0, **options: Any):
        from skopt.learning import ExtraTreesRegressor, RandomForestRegressor

        cls = RandomForestRegressor if kind == "rf" else ExtraTreesRegressor
        if max_features is None:
            max_features = 1 / 3 if kind == "rf" else 0.5
        self.model = cls(n_estimators=n_estimators, min_samples_leaf=min_samples_leaf, max_features=max_features,
                         n_jobs=n_jobs, random_state=random_state, **options)
        self.min_variance = min_variance

    def fit(self, X: np.ndarray, y: np.ndarray) -> ForestSurrogate:
        self.model.fit(X, y)
        trees = [t.tree_ for t in self.model.estimators_]
        # per tree: leaf means and leaf variances, looked up by leaf id at predict time
        self._means = [t.value[:, 0, 0].copy() for t in trees]
        self._vars = [np.maximum(t.impurity, self.min_variance) for t in trees]
        return self

    def predict(self, X: np.ndarray, chunk: int = 50_000) -> tuple[np.ndarray, np.ndarray]:
        n = len(X)
        mean = np.empty(n)
        std = np.empty(n)
        for s in range(0, n, chunk):
            leaves = self.model.apply(X[s : s + chunk])  # (rows, trees), threaded
            m1 = np.zeros(leaves.shape[0])
            m2 = np.zeros(leaves.shape[0])
            for t, (means, var) in enumerate(zip(self._means, self._vars)):
                leaf = leaves[:, t]
                mu = means[leaf]
                m1 += mu
                m2 += var[leaf] + mu * mu
            k = len(self._means)
            m1 /= k
            m2 /= k
            mean[s : s + chunk] = m1
            std[s : s + chunk] = np.sqrt(np.maximum(m2 - m1 * m1, 0.0))
        return mean, np.maximum(std, _MIN_STD)


class QuantileGBRT(Surrogate):
    """Gradient-boosted trees for the 16, 50 and 84 % quantiles.

    The mean is the median model, the std half the 16-84 % spread (a normal's +-1 sigma).
    Works under any scikit-learn >= 1.3 (scikit-optimize's own wrapper does not).

    Args:
        n_estimators: boosting stages per quantile.
        max_depth: depth of each tree.
        learning_rate: shrinkage.
        random_state: seed (the same for the three models so their splits agree).
    """

    quantiles = (0.16, 0.5, 0.84)

    def __init__(self, n_estimators: int = 100, max_depth: int = 3, learning_rate: float = 0.1,
                 random_state: int | None = None):
        self.params = dict(n_estimators=n_estimators, max_depth=max_depth, learning_rate=learning_rate,
                           random_state=random_state, subsample=0.9)

    def fit(self, X: np.ndarray, y: np.ndarray) -> QuantileGBRT:
        from sklearn.ensemble import GradientBoostingRegressor

        self.models = [GradientBoostingRegressor(loss="quantile", alpha=q, **self.params).fit(X, y)
                       for q in self.quantiles]
        return self

    def predict(self, X: np.ndarray, return_std: bool = True) -> tuple[np.ndarray, np.ndarray]:
        lo, mid, hi = (m.predict(X) for m in self.models)
        return mid, np.maximum((hi - lo) / 2.0, _MIN_STD)


def make_surrogate(name: str, *, random_state: int, n_estimators: int = 100, n_jobs: int = -1,
                   gp_max_points: int = 500, gp_inducing: int = 300,
                   previous: Surrogate | None = None, gp_columns: tuple[np.ndarray, np.ndarray] | None = None,
                   gp_always_refit: int = 50) -> Surrogate:
    """A fresh, unfitted surrogate by name (one of :data:`SURROGATES`).

    ``previous`` (the last fitted model) warm-starts a GP's kernel hyperparameters (or lends
    them, when the data has grown little since they were fitted). ``gp_columns``: the GP's
    length-scale group and weight of each column (see :class:`GPSurrogate`);
    ``gp_always_refit``: observations up to which a GP searches its hyperparameters at every fit.
    """
    if name in ("rf", "et"):
        return ForestSurrogate(name, n_estimators=n_estimators, n_jobs=n_jobs, random_state=random_state)
    if name == "gbrt":
        return QuantileGBRT(n_estimators=n_estimators, random_state=random_state)
    if name == "gp":
        groups, weights = gp_columns if gp_columns is not None else (None, None)
        return GPSurrogate(max_points=gp_max_points, inducing=gp_inducing, random_state=random_state,
                           start=previous if isinstance(previous, GPSurrogate) else None, groups=groups,
                           column_scale=weights, always_refit=gp_always_refit)
    raise ValueError(f"unknown surrogate {name!r}; expected one of {', '.join(SURROGATES)}")
