"""Pareto fronts and hypervolume, for searches with several objectives.

Every function here takes objective vectors *to minimize* (an objective to maximize is
negated first, as :attr:`emews.task.Result.objectives` already is): an ``(n, m)`` array of
``n`` points and ``m`` objectives.

* :func:`nondominated` — which points no other point dominates (weakly better in every
  objective, strictly better in one). Duplicates of a front point are all kept.
* :func:`hypervolume` — the volume dominated by the points and bounded by a reference
  point (exact: a sweep for 2 objectives, slicing along the last objective for more).
* :func:`reference_point` — the reference a report states when the user gave none: the
  worst value of each objective among the points, plus a tenth of its range (or 1 where
  the range is 0), so the extreme points of the front count.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

__all__ = ["hypervolume", "nondominated", "pareto_front", "reference_point"]


def _as_points(points: Sequence[Sequence[float]] | np.ndarray) -> np.ndarray:
    y = np.asarray(points, dtype=float)
    if y.ndim == 1:
        y = y.reshape(-1, 1) if y.size else y.reshape(0, 1)
    if y.ndim != 2:
        raise ValueError(f"objective vectors must be an (n, m) array, got shape {y.shape}")
    return y


def nondominated(points: Sequence[Sequence[float]] | np.ndarray) -> np.ndarray:
    """A boolean mask of the points that no other point dominates (minimization)."""
    y = _as_points(points)
    n = len(y)
    keep = np.ones(n, dtype=bool)
    if n == 0:
        return keep
    # sorting by the first objective (then the rest) means a point can only be dominated
    # by one before it: each point is compared with the front found so far
    order = np.lexsort(y.T[::-1])
    front: list[int] = []
    for i in order:
        p = y[i]
        dominated = False
        for j in front:
            q = y[j]
            if np.all(q <= p) and np.any(q < p):
                dominated = True
                break
        if dominated:
            keep[i] = False
        else:
            front.append(i)
    return keep


def pareto_front(points: Sequence[Sequence[float]] | np.ndarray) -> np.ndarray:
    """The non-dominated points, sorted by the first objective."""
    y = _as_points(points)
    f = y[nondominated(y)]
    return f[np.lexsort(f.T[::-1])] if len(f) else f


def reference_point(points: Sequence[Sequence[float]] | np.ndarray) -> np.ndarray:
    """The worst value of each objective plus a tenth of its range (1 where the range is 0)."""
    y = _as_points(points)
    if len(y) == 0:
        raise ValueError("a reference point needs at least one point")
    lo, hi = y.min(axis=0), y.max(axis=0)
    span = hi - lo
    return hi + np.where(span > 0, 0.1 * span, 1.0)


def hypervolume(points: Sequence[Sequence[float]] | np.ndarray, reference: Sequence[float] | np.ndarray) -> float:
    """The volume the points dominate, up to ``reference`` (minimization; exact).

    Points that do not lie strictly below the reference in every objective add nothing.
    """
    y = _as_points(points)
    ref = np.asarray(reference, dtype=float).reshape(-1)
    if y.shape[1] != ref.size and len(y):
        raise ValueError(f"points have {y.shape[1]} objectives, the reference point {ref.size}")
    if not np.all(np.isfinite(ref)):
        raise ValueError(f"the reference point must be finite, got {ref.tolist()}")
    y = y[np.all(np.isfinite(y), axis=1)]
    y = y[np.all(y < ref, axis=1)]
    if len(y) == 0:
        return 0.0
    return float(_hv(pareto_front(y), ref))


def _hv(front: np.ndarray, ref: np.ndarray) -> float:
    """Hypervolume of a non-dominated set strictly inside ``ref``."""
    m = front.shape[1]
    if m == 1:
        return float(ref[0] - front[:, 0].min())
    if m == 2:
        f = front[np.argsort(front[:, 0])]
        vol, prev_y = 0.0, ref[1]
        for x, y in f:
            if y < prev_y:
                vol += (ref[0] - x) * (prev_y - y)
                prev_y = y
        return vol
    # slice along the last objective: between consecutive levels, the points at or below
    # the level dominate an (m-1)-dimensional region whose volume is their front's
    f = front[np.argsort(front[:, -1])]
    vol = 0.0
    for k in range(len(f)):
        upper = f[k + 1, -1] if k + 1 < len(f) else ref[-1]
        depth = upper - f[k, -1]
        if depth <= 0:
            continue
        sub = pareto_front(f[: k + 1, :-1])
        vol += depth * _hv(sub, ref[:-1])
    return vol
