"""What :class:`~emews.optimizers.mbo.MBO` may ask of a surrogate model: the declared interface.

::

    Surrogate                 fit(X, y), predict(X) -> (mean, std)          every model
      └─ GradientSurrogate    + predict_grad(X)                             the acquisition's
                                                                            gradient steps
          └─ BelieverSurrogate + conditioning_points, exact, conditioned(),  the kriging believer
                                 predict_factors(), covariance(),            (rank-one updates and
                                 noise_variance                              sequential picks)

MBO decides what it can do with a model by which of these classes it is (``isinstance``),
never by probing attributes or reading a model's private state. The random forest, extra
trees and boosting surrogates are plain :class:`Surrogate`; the GP is a
:class:`BelieverSurrogate`.
"""

from __future__ import annotations

import numpy as np

__all__ = ["Surrogate", "GradientSurrogate", "BelieverSurrogate"]


class Surrogate:
    """A regression model with a predictive spread: the least MBO needs."""

    def fit(self, X: np.ndarray, y: np.ndarray) -> Surrogate:  # pragma: no cover - interface
        """Fit the encoded rows ``X`` (one per observation) to the losses ``y``; returns self."""
        raise NotImplementedError

    def predict(self, X: np.ndarray) -> tuple[np.ndarray, np.ndarray]:  # pragma: no cover - interface
        """Predictive mean and standard deviation at the rows of ``X``."""
        raise NotImplementedError


class GradientSurrogate(Surrogate):
    """A surrogate whose prediction is differentiable in its inputs."""

    def predict_grad(self, X: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:  # pragma: no cover
        """``(mean, std, d mean / d X, d std / d X)`` at the rows of ``X`` (gradients row-wise)."""
        raise NotImplementedError


class BelieverSurrogate(GradientSurrogate):
    """A surrogate that can be told a fantasy observation (a kriging believer's)."""

    @property
    def conditioning_points(self) -> int:  # pragma: no cover - interface
        """Rows the prediction is conditioned on (observations, or inducing points)."""
        raise NotImplementedError

    @property
    def exact(self) -> bool:  # pragma: no cover - interface
        """True when :meth:`conditioned` is available (an exact, not an approximate, model)."""
        raise NotImplementedError

    @property
    def noise_variance(self) -> float:  # pragma: no cover - interface
        """The observation noise, in the units of the ``y`` fitted."""
        raise NotImplementedError

    def conditioned(self, X: np.ndarray, y: np.ndarray) -> BelieverSurrogate:  # pragma: no cover - interface
        """A copy also conditioned on the rows ``X`` observed at ``y`` (needs :attr:`exact`)."""
        raise NotImplementedError

    def predict_factors(self, X: np.ndarray) -> tuple[np.ndarray, np.ndarray, tuple]:  # pragma: no cover
        """Mean, std and the factors :meth:`covariance` needs, at the rows of ``X``."""
        raise NotImplementedError

    def covariance(self, X: np.ndarray, factors: tuple, i: int) -> np.ndarray:  # pragma: no cover - interface
        """Posterior covariance between row ``i`` of ``X`` and every row, from :meth:`predict_factors`."""
        raise NotImplementedError
