"""Several objectives and constraints for :mod:`emews.optimizers.mbo`: ParEGO and a feasibility model.

::

    told results ──▶ objective vectors (n, m) ──▶ normalized to [0, 1] by the observed range
                                                        │  one weight vector w per proposal
                                                        ▼  (a simplex lattice, drawn at random)
                     augmented Chebyshev:  max_i(w_i f_i) + rho * sum_i(w_i f_i)
                                                        │
                                                        ▼
                     the usual single-objective machinery (surrogate, EI, batch picks)

    violations (n,) ──▶ labels (-1 feasible, 1 + log(1 + v / scale) infeasible, capped)
                        ──▶ a GP ──▶ log P(label <= 0): added to log EI (EI x probability)

ParEGO is Knowles' (2006) method and mlrMBO's default for several objectives
(``setMBOControlMultiObj(method = "parego")``, ``parego.rho = 0.05``); a batch of ``q``
proposals takes ``q`` different weight vectors, as mlrMBO's multi-point ParEGO. The
feasibility model follows the constrained expected improvement of Gardner et al. (2014):
the acquisition times the probability that the point satisfies the constraints.
"""

from __future__ import annotations

import math
from itertools import combinations

import numpy as np

from ..task import Result

__all__ = ["FeasibilityModel", "WeightLattice", "chebyshev", "normalized", "objective_vector"]

#: the weight of the sum in the augmented Chebyshev scalarization (ParEGO's and mlrMBO's)
RHO = 0.05


def objective_vector(r: Result) -> np.ndarray | None:
    """The objective vector of a finished result with several objectives (None otherwise:
    failed, one objective, or a value that is not finite)."""
    if not r.ok or r.objectives is None or len(r.objectives) < 2:
        return None
    v = np.asarray(r.objectives, dtype=float)
    return v if np.isfinite(v).all() else None


def normalized(F: np.ndarray) -> np.ndarray:
    """Each column of ``F`` mapped to [0, 1] by its observed range (a constant column: 0)."""
    lo, hi = F.min(axis=0), F.max(axis=0)
    span = np.where(hi > lo, hi - lo, 1.0)
    return (F - lo) / span


def chebyshev(F: np.ndarray, w: np.ndarray, rho: float = RHO) -> np.ndarray:
    """Augmented Chebyshev scalarization ``max_i(w_i f_i) + rho * sum_i(w_i f_i)`` of each row."""
    wf = F * np.asarray(w, dtype=float)
    return wf.max(axis=1) + rho * wf.sum(axis=1)


class WeightLattice:
    """ParEGO's weight vectors: every ``w`` with components in ``{0, 1/s, ..., 1}`` summing to 1.

    ``s`` is the smallest giving at least ``size`` vectors (ParEGO took s = 10 for 2 objectives
    and 4 for 3; a finer lattice lets a longer search spread over the front).

    Args:
        m: the number of objectives.
        size: the least number of vectors.
    """

    def __init__(self, m: int, size: int = 100):
        if m < 2:
            raise ValueError(f"a weight lattice needs at least 2 objectives, got m={m}")
        s = 1
        while math.comb(s + m - 1, m - 1) < size:
            s += 1
        self.m, self.s = m, s
        # stars and bars: the positions of m - 1 bars among s + m - 1 slots
        rows = []
        for bars in combinations(range(s + m - 1), m - 1):
            edges = (-1, *bars, s + m - 1)
            rows.append([edges[i + 1] - edges[i] - 1 for i in range(m)])
        self.vectors = np.asarray(rows, dtype=float) / s

    def __len__(self) -> int:
        return len(self.vectors)

    def draw(self, q: int, rng: np.random.Generator) -> np.ndarray:
        """``q`` weight vectors drawn at random, all different while the lattice has enough."""
        n = len(self.vectors)
        idx = rng.choice(n, size=min(q, n), replace=False)
        if q > n:
            idx = np.r_[idx, rng.integers(0, n, size=q - n)]
        return self.vectors[idx]


class FeasibilityModel:
    """A GP on feasibility labels; :meth:`log_probability` is ``log P(label <= 0)``.

    A feasible point is labelled -1, an infeasible one ``1 + log(1 + v / scale)`` (``scale``:
    the median finite violation; capped at 3, the value of a missing metric's infinite
    violation), so the model also learns how far outside the bounds a region lies.

    Args:
        surrogate: a fresh GP (``fit(E, y)``, ``predict(E) -> (mean, std)``).
    """

    _CAP = 3.0

    def __init__(self, surrogate):
        self.model = surrogate

    @classmethod
    def labels(cls, violation: np.ndarray) -> np.ndarray:
        """The label of each violation (0 or less: feasible)."""
        v = np.asarray(violation, dtype=float)
        positive = v[(v > 0) & np.isfinite(v)]
        scale = float(np.median(positive)) if len(positive) else 1.0
        with np.errstate(invalid="ignore", over="ignore"):
            bad = np.minimum(1.0 + np.log1p(np.where(np.isfinite(v), v, 0.0) / scale), cls._CAP)
        return np.where(v <= 0, -1.0, np.where(np.isfinite(v), bad, cls._CAP))

    def fit(self, E: np.ndarray, violation: np.ndarray) -> FeasibilityModel:
        self.model.fit(E, self.labels(violation))
        return self

    def log_probability(self, E: np.ndarray) -> np.ndarray:
        from scipy.special import log_ndtr

        mu, sd = self.model.predict(E)
        return log_ndtr(-mu / sd)
