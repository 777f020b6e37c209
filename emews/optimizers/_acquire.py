"""Acquisition functions with gradients, and their local optimization over a mixed space.

::

    best candidates (unit rows) ──▶ L-BFGS-B on the ordered columns (the GP's analytic gradient)
                                          │  snap to representable values
                                          ▼
                                    coordinate moves: each discrete column one cell up or down,
                                    each categorical column to each other value (best move kept)
                                          │  repeated while a move improves (a few rounds)
                                          ▼
                                    refined rows, never worse than their start

Optuna's GPSampler optimizes its acquisition the same way (random candidates, then gradient
steps on the continuous parameters and local search over the discrete ones from the best few);
log-EI keeps the gradient informative far from the incumbent, where EI underflows.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
from scipy.special import erfcx, ndtr

from ._unit import UnitGrid

__all__ = ["AcquisitionOptimizer", "lcb", "log_ei"]

_LOG_SQRT_2PI = 0.5 * math.log(2 * math.pi)
_SQRT_HALF_PI = math.sqrt(math.pi / 2)

#: acquisition(mean, std) -> (value, d value / d mean, d value / d std); higher is better
Acquisition = Callable[[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray, np.ndarray]]


def log_ei(mu: np.ndarray, sd: np.ndarray, best: float, xi: float = 0.0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Log of the expected improvement below ``best - xi``, and its derivatives in ``mu`` and ``sd``.

    ``EI = sd * h(z)`` with ``z = (best - xi - mu) / sd`` and ``h(z) = phi(z) + z Phi(z)``;
    for ``z < 0``, ``h(z) = phi(z) (1 + z m(z))`` with the Mills ratio ``m = Phi / phi``
    (``erfcx``), finite however far ``z`` is below 0.
    """
    mu = np.asarray(mu, dtype=float)
    sd = np.asarray(sd, dtype=float)
    z = (best - xi - mu) / sd
    log_phi = -0.5 * z * z - _LOG_SQRT_2PI
    neg = z < 0
    zn = np.where(neg, z, -1.0)
    m = _SQRT_HALF_PI * erfcx(-zn / math.sqrt(2.0))  # Phi(z) / phi(z)
    r = 1.0 + zn * m  # h / phi, for z < 0
    far = zn < -30.0  # cancellation: the asymptotic series of 1 + z m(z)
    inv = 1.0 / (zn * zn)
    r = np.where(far, inv * (1.0 - 3.0 * inv + 15.0 * inv * inv), r)
    r = np.maximum(r, 1e-300)
    zp = np.where(neg, 0.0, z)
    phi_p = np.exp(-0.5 * zp * zp) / math.sqrt(2 * math.pi)
    h_pos = phi_p + zp * ndtr(zp)
    log_h = np.where(neg, log_phi + np.log(r), np.log(np.where(neg, 1.0, h_pos)))
    # d log EI / d mu = -Phi / (sd h), d log EI / d sd = phi / (sd h)
    phi_over_h = np.where(neg, 1.0 / r, phi_p / np.where(neg, 1.0, h_pos))
    cdf_over_h = np.where(neg, m / r, ndtr(zp) / np.where(neg, 1.0, h_pos))
    return np.log(sd) + log_h, -cdf_over_h / sd, phi_over_h / sd


def lcb(mu: np.ndarray, sd: np.ndarray, kappa: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Negated lower confidence bound ``-(mu - kappa sd)`` and its derivatives (higher is better)."""
    mu = np.asarray(mu, dtype=float)
    return -(mu - kappa * np.asarray(sd, dtype=float)), np.full(mu.shape, -1.0), np.full(mu.shape, float(kappa))


class AcquisitionOptimizer:
    """Local optimization of an acquisition over unit rows of a space, from given starts.

    Args:
        grid: the space's unit-cube view.
        model: a fitted :class:`~emews.optimizers._model.GradientSurrogate` (``predict(E)`` and
            ``predict_grad(E)`` on encoded rows).
        acquisition: ``(mean, std) -> (value, d/d mean, d/d std)``, higher is better.
        maxiter: L-BFGS-B iterations per round.
        rounds: rounds of gradient steps and coordinate moves at most.
    """

    def __init__(self, grid: UnitGrid, model, acquisition: Acquisition, maxiter: int = 50, rounds: int = 3):
        self.grid, self.model, self.acquisition = grid, model, acquisition
        self.maxiter, self.rounds = maxiter, rounds
        offsets = np.cumsum([0] + [d.width for d in grid.dims])[:-1]
        single = np.array([d.width == 1 for d in grid.dims], dtype=bool)
        # ordered columns (real, int, ordinal) moved by gradient steps: encoded column = unit column
        self.ordered = np.flatnonzero(single & ~grid.categorical & (self._spans() > 0))
        self.ordered_enc = offsets[self.ordered]
        self.discrete = np.flatnonzero((grid.levels > 0) & ~grid.categorical)
        self.choice = np.flatnonzero(grid.categorical)

    def _spans(self) -> np.ndarray:
        from ..space import Real

        return np.array([0.0 if isinstance(d, Real) and d.low == d.high else 1.0 for d in self.grid.dims])

    def value(self, U: np.ndarray) -> np.ndarray:
        """Acquisition at (snapped) unit rows."""
        mu, sd = self.model.predict(self.grid.encode(U))
        return self.acquisition(mu, sd)[0]

    def _gradient_steps(self, U: np.ndarray) -> np.ndarray:
        """L-BFGS-B on the ordered columns of every row at once (the sum of separable terms)."""
        from scipy.optimize import minimize

        if not len(self.ordered):
            return U
        base = self.grid.encode(U)
        cols, enc = self.ordered, self.ordered_enc
        k, c = len(U), len(cols)

        def f(x: np.ndarray) -> tuple[float, np.ndarray]:
            E = base.copy()
            E[:, enc] = x.reshape(k, c)
            mu, sd, dmu, dsd = self.model.predict_grad(E)
            a, da_mu, da_sd = self.acquisition(mu, sd)
            g = da_mu[..., None] * dmu[..., enc] + da_sd[..., None] * dsd[..., enc]
            if g.ndim == 3:  # a stacked model (a prediction column per GP): the sum over them
                g = g.sum(axis=1)
            return -float(a.sum()), -g.ravel()

        x0 = U[:, cols].ravel()
        with np.errstate(all="ignore"):
            res = minimize(f, x0, jac=True, method="L-BFGS-B", bounds=[(0.0, 1.0 - 1e-12)] * len(x0),
                           options={"maxiter": self.maxiter})
        x = res.x if np.isfinite(res.x).all() else x0
        out = U.copy()
        out[:, cols] = x.reshape(k, c)
        return self.grid.snap(out)

    def _coordinate_moves(self, U: np.ndarray, acq: np.ndarray) -> tuple[np.ndarray, np.ndarray, bool]:
        """The best single-column move of each row (discrete: one cell; categorical: any value)."""
        moves, owner = [], []
        levels = self.grid.levels
        for j in self.discrete:
            step = 1.0 / levels[j]
            for sign in (-1.0, 1.0):
                V = U.copy()
                V[:, j] = np.clip(V[:, j] + sign * step, 0.0, 1.0 - 1e-12)
                moves.append(V)
                owner.append(np.arange(len(U)))
        for j in self.choice:
            for v in range(levels[j]):
                V = U.copy()
                V[:, j] = (v + 0.5) / levels[j]
                moves.append(V)
                owner.append(np.arange(len(U)))
        if not moves:
            return U, acq, False
        M = self.grid.snap(np.vstack(moves))
        rows = np.concatenate(owner)
        val = self.value(M)
        improved = False
        U, acq = U.copy(), acq.copy()
        for i in range(len(U)):
            mine = np.flatnonzero(rows == i)
            b = mine[int(np.argmax(val[mine]))]
            if val[b] > acq[i] + 1e-12:
                U[i], acq[i], improved = M[b], val[b], True
        return U, acq, improved

    def optimize(self, U0: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Refined rows of ``U0`` (snapped) and their acquisition; none worse than its start."""
        from threadpoolctl import threadpool_limits

        # small matrices: BLAS threads only spin (badly so on a loaded machine)
        with threadpool_limits(1):
            return self._optimize(U0)

    def _optimize(self, U0: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        U = self.grid.snap(np.atleast_2d(U0))
        acq = self.value(U)
        for _ in range(self.rounds):
            V = self._gradient_steps(U)
            val = self.value(V)
            better = val > acq
            U = np.where(better[:, None], V, U)
            acq = np.where(better, val, acq)
            U, acq, moved = self._coordinate_moves(U, acq)
            if not moved:
                break
        return U, acq
