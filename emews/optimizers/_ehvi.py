"""Expected hypervolume improvement (EHVI) for :mod:`emews.optimizers.mbo` with 2 or 3 objectives.

::

    told results ──▶ objective vectors (n, m) ──▶ normalized: 0 at the best seen, 1 a fifth of
                                                  the way from the front's nadir to the worst
                                                  seen; reference point 1.1 in each
                                  │                              │
                   one GP per objective              the region the front does not dominate,
                                  │                   cut into boxes (box_decomposition)
                                  │                              │
                                  ▼                          ▼
                 mean, std per objective ──▶ EHVI = sum over boxes of prod_i E[(u_i - max(Y_i, l_i))+]
                                                  (exact for independent Gaussians, closed form)
                                  │  x probability of feasibility (constraints)
                                  ▼
          a batch: pick, believe the pick observed at its mean (the GPs conditioned on it, its
          mean vector joins the front), pick again: q points from one fit (a kriging believer)

Why the exact form: for a box ``[l, u]`` of the non-dominated region, the part a new point
``Y`` dominates is the product of the intervals ``[max(Y_i, l_i), u_i]``; with the objectives'
predictions independent, its expectation is the product of one-dimensional expectations,
each ``psi(u_i) - psi(l_i)`` with ``psi(c) = E[(c - Y_i)+] = (c - mu) Phi(z) + sd phi(z)``,
``z = (c - mu) / sd`` (Emmerich et al. 2006; Yang et al. 2019 for the box form). It costs
candidates x boxes x objectives; the boxes number ``front + 1`` for 2 objectives and at most
``(front + 1)^2`` for 3 (cells of a grid on the first two objectives, merged along the second).

Optuna's GPSampler uses the same acquisition (as log EHVI) for several objectives; mlrMBO
offers it as SMS-EGO/DIB's relative. ParEGO (``_multi.py``) remains for 4+ objectives and
surrogates other than the GP (``MBO(multi_method="parego")`` forces it).
"""

from __future__ import annotations

import math

import numpy as np
from scipy.special import log_ndtr, ndtr

from .._pareto import nondominated

__all__ = ["StackedModels", "box_decomposition", "ehvi", "ehvi_acquisition", "normalization"]

_SQRT_2PI = math.sqrt(2.0 * math.pi)

#: the reference point in normalized objectives (the front's nadir is 1)
REFERENCE = 1.1
#: where the unit scale ends: the front's nadir plus this share of the way on to the worst seen
MARGIN = 0.2


def normalization(F: np.ndarray, front: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``(low, span)`` mapping the objectives to a unit scale: 0 at the best value seen, 1 at
    the ``front``'s nadir plus ``MARGIN`` of the way on to the worst value seen (span 1 where
    that is 0). The reference point is then ``REFERENCE`` (1.1) in each objective.

    Where the scale ends decides what EHVI is paid for. On the whole observed range (the worst
    value seen plus a tenth, as Optuna's GPSampler places the reference) the few wild early
    points set the scale and the hypervolume gained at the front's extremes is small: DTLZ2
    reached 0.67 of the true front's hypervolume at 100 evaluations. At the front's own nadir
    the extremes starve (ZDT1 0.85). A fifth of the way on from the nadir: ZDT1 0.99, DTLZ2
    0.74 (median of 5 seeds, 8 in flight; benchmarks/quality/multi.py).
    """
    F = np.asarray(F, dtype=float)
    lo = F.min(axis=0)
    nadir = np.asarray(front, dtype=float).reshape(-1, F.shape[1]).max(axis=0)
    hi = nadir + MARGIN * (F.max(axis=0) - nadir)
    span = hi - lo
    return lo, np.where(span > 0, span, 1.0)


def box_decomposition(front: np.ndarray, ref: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The region below ``ref`` that no point of ``front`` dominates, as disjoint boxes.

    Returns ``(lower, upper)``, each ``(boxes, m)``; lower bounds may be ``-inf``. A grid on
    the first ``m - 1`` objectives (cut at the front's values) has cells that a front point
    either dominates in those objectives entirely or not at all; the cell's box reaches, in
    the last objective, up to the least last value among the front points dominating its
    lower corner (``ref`` if none). Adjacent cells along objective ``m - 2`` with the same
    upper bound merge into one box.
    """
    ref = np.asarray(ref, dtype=float)
    m = len(ref)
    P = np.asarray(front, dtype=float).reshape(-1, m)
    P = P[np.all(P < ref, axis=1)]
    if len(P) == 0:
        return np.full((1, m), -np.inf), ref[None, :].copy()
    P = P[nondominated(P)]
    edges = [np.r_[-np.inf, np.unique(P[:, a]), ref[a]] for a in range(m - 1)]
    shape = tuple(len(e) - 1 for e in edges)
    idx = np.indices(shape).reshape(m - 1, -1).T  # every cell, the last grid axis fastest
    low = np.stack([edges[a][idx[:, a]] for a in range(m - 1)], axis=1)
    high = np.stack([edges[a][idx[:, a] + 1] for a in range(m - 1)], axis=1)
    # front points dominating each cell's lower corner in the first m - 1 objectives
    dom = np.all(P[None, :, : m - 1] <= low[:, None, :], axis=2)
    top = np.where(dom, P[None, :, m - 1], ref[m - 1]).min(axis=1)
    # merge runs along the last grid axis that share their upper bound (cells are in C order)
    start = np.ones(len(top), dtype=bool)
    start[1:] = (top[1:] != top[:-1]) | (idx[1:, -1] == 0)
    first = np.flatnonzero(start)
    last = np.r_[first[1:], len(top)] - 1
    lower = np.empty((len(first), m))
    upper = np.empty((len(first), m))
    lower[:, : m - 1] = low[first]
    upper[:, : m - 1] = high[first]
    upper[:, m - 2] = high[last, m - 2]
    lower[:, m - 1] = -np.inf
    upper[:, m - 1] = top[first]
    return lower, upper


def _psi(c: np.ndarray, mu: np.ndarray, sd: np.ndarray, grad: bool = False):
    """``E[(c - Y)+]`` for ``Y ~ N(mu, sd)``: ``(c - mu) Phi(z) + sd phi(z)``, 0 at ``c = -inf``;
    with ``grad`` also its derivatives in ``mu`` (``-Phi(z)``) and ``sd`` (``phi(z)``)."""
    inf = np.isneginf(c)
    with np.errstate(invalid="ignore"):
        z = (c - mu) / sd
        cdf = ndtr(z)
        if not grad:
            return np.where(inf, 0.0, (c - mu) * cdf + sd * np.exp(-0.5 * z * z) / _SQRT_2PI)
        pdf = np.exp(-0.5 * z * z) / _SQRT_2PI
        psi = (c - mu) * cdf + sd * pdf
    return np.where(inf, 0.0, psi), np.where(inf, 0.0, -cdf), np.where(inf, 0.0, pdf)


def ehvi(mu: np.ndarray, sd: np.ndarray, lower: np.ndarray, upper: np.ndarray, chunk: int = 256) -> np.ndarray:
    """Expected hypervolume improvement of each row over the boxes ``(lower, upper)``.

    Args:
        mu, sd: ``(n, m)`` predicted means and standard deviations (independent objectives).
        lower, upper: the boxes of :func:`box_decomposition`.
    """
    mu = np.asarray(mu, dtype=float)
    sd = np.maximum(np.asarray(sd, dtype=float), 1e-12)
    n, m = mu.shape
    out = np.empty(n)
    # psi at each distinct bound of each objective, gathered per box
    cuts, lo_i, up_i = [], [], []
    for i in range(m):
        values, inverse = np.unique(np.r_[lower[:, i], upper[:, i]], return_inverse=True)
        cuts.append(values)
        lo_i.append(inverse[: len(lower)])
        up_i.append(inverse[len(lower) :])
    for s in range(0, n, chunk):
        prod = None
        for i in range(m):
            psi = _psi(cuts[i][None, :], mu[s : s + chunk, i : i + 1], sd[s : s + chunk, i : i + 1])
            d = np.maximum(psi[:, up_i[i]] - psi[:, lo_i[i]], 0.0)
            prod = d if prod is None else prod * d
        out[s : s + chunk] = prod.sum(axis=1)
    return out


def _ehvi_grad(mu: np.ndarray, sd: np.ndarray, lower: np.ndarray,
               upper: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """EHVI of a few rows and its derivatives in each mean and standard deviation:
    ``d psi(c) / d mu = -Phi(z)`` and ``d psi(c) / d sd = phi(z)``, through the product over
    objectives of each box's term."""
    sd = np.maximum(sd, 1e-12)
    m = mu.shape[1]
    d, dd_mu, dd_sd = [], [], []
    for i in range(m):
        mi, si = mu[:, i : i + 1], sd[:, i : i + 1]
        pu, gu_mu, gu_sd = _psi(upper[None, :, i], mi, si, grad=True)
        pl, gl_mu, gl_sd = _psi(lower[None, :, i], mi, si, grad=True)
        d.append(np.maximum(pu - pl, 0.0))
        dd_mu.append(gu_mu - gl_mu)
        dd_sd.append(gu_sd - gl_sd)
    value = np.prod(d, axis=0).sum(axis=1)
    g_mu = np.empty_like(mu)
    g_sd = np.empty_like(mu)
    for i in range(m):
        others = np.prod([d[k] for k in range(m) if k != i], axis=0)
        g_mu[:, i] = (dd_mu[i] * others).sum(axis=1)
        g_sd[:, i] = (dd_sd[i] * others).sum(axis=1)
    return value, g_mu, g_sd


def ehvi_acquisition(lower: np.ndarray, upper: np.ndarray, m: int, constrained: bool):
    """``(mean, std) -> (log EHVI [+ log PoF], d/d mean, d/d std)`` over stacked predictions:
    columns ``0..m-1`` the objectives, column ``m`` (``constrained``) the feasibility label,
    whose probability of being <= 0 multiplies the EHVI. For :class:`AcquisitionOptimizer`
    with :class:`StackedModels`. Where the EHVI underflows, the value is -745 - distance
    and the gradient only that of the feasibility."""

    def acquisition(mu: np.ndarray, sd: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        v, g_mu, g_sd = _ehvi_grad(mu[:, :m], sd[:, :m], lower, upper)
        ok = v > 1e-300
        safe = np.where(ok, v, 1.0)
        value = np.where(ok, np.log(safe), -745.0)
        da_mu = np.zeros_like(mu)
        da_sd = np.zeros_like(mu)
        da_mu[:, :m] = np.where(ok[:, None], g_mu / safe[:, None], 0.0)
        da_sd[:, :m] = np.where(ok[:, None], g_sd / safe[:, None], 0.0)
        if constrained:
            s = np.maximum(sd[:, m], 1e-12)
            z = -mu[:, m] / s
            lp = log_ndtr(z)
            # d log Phi(z) / dz = phi(z) / Phi(z) = exp(log phi - log Phi)
            ratio = np.exp(-0.5 * z * z - 0.5 * math.log(2 * math.pi) - lp)
            value = value + lp
            da_mu[:, m] = -ratio / s
            da_sd[:, m] = -ratio * z / s
        return value, da_mu, da_sd

    return acquisition


class StackedModels:
    """Several fitted GPs seen as one model whose predictions have a column per GP:
    ``predict(E) -> (n, k), (n, k)`` and ``predict_grad(E) -> mean, std (n, k), and their
    gradients (n, k, columns)`` (what :class:`~._acquire.AcquisitionOptimizer` needs)."""

    def __init__(self, models: list):
        self.models = models

    def predict(self, E: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        out = [mdl.predict(E) for mdl in self.models]
        return np.stack([o[0] for o in out], axis=1), np.stack([o[1] for o in out], axis=1)

    def predict_grad(self, E: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        out = [mdl.predict_grad(E) for mdl in self.models]
        return tuple(np.stack([o[j] for o in out], axis=1) for j in range(4))  # type: ignore[return-value]
