"""Grid search over a space."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from ..errors import ConfigError
from ..space import Bool, Categorical, Constant, Int, Ordinal, Real, Space
from ._base import Optimizer


class GridSearch(Optimizer):
    """Every combination of a grid, in order (or shuffled).

    Settings:
        points: points per real/int dimension, one number for all or ``{name: count}``
            (default 5). Int dimensions never get more points than they have integers;
            log dimensions are spaced geometrically. Ordinal, categorical and bool dimensions
            take all their values.
        shuffle: visit the grid in a seeded random order (default False).

    The order is fixed when the optimizer is built (grid order, or one seeded permutation), so
    the points repeat by task id whatever the batching, the worker count and the objective.
    """

    lookahead = 64
    multi_objective = True  # proposals never read the losses: any objectives do

    def __init__(self, space: Space, seed: int | None = None, points: int | Mapping[str, int] = 5, shuffle: bool = False):
        super().__init__(space, seed)
        if not isinstance(shuffle, bool):
            raise ConfigError(f"must be true or false, got {shuffle!r}", key="optimizer.settings.shuffle")
        if not isinstance(points, (int, Mapping)) or isinstance(points, bool):
            raise ConfigError(f"must be a positive integer or {{dimension: count}}, got {points!r}",
                              key="optimizer.settings.points")
        axes = []
        for d in space.dims:
            count = points.get(d.name, 5) if isinstance(points, Mapping) else points
            if isinstance(count, bool) or not isinstance(count, int) or count < 1:
                raise ConfigError(f"must be a positive integer, got {count!r}", key=f"optimizer.settings.points.{d.name}" if isinstance(points, Mapping) else "optimizer.settings.points")
            axes.append(self._axis(d, count))
        if isinstance(points, Mapping):
            unknown = set(points) - set(space.names)
            if unknown:
                u = sorted(unknown)[0]
                raise ConfigError(f"not a dimension of the space (value {points[u]!r})", key=f"optimizer.settings.points.{u}")
        self.size = int(np.prod([len(a) for a in axes]))
        self._order = None
        if shuffle:
            self._order = self.rng.permutation(self.size)
        self._axes = axes
        self._next = 0
        self._skip: set[str] = set()  # points a resumed experiment has already evaluated

    @staticmethod
    def _axis(d, count: int) -> list[Any]:
        if isinstance(d, Constant):
            return [d.value]
        if isinstance(d, (Ordinal, Categorical)):
            return list(d.values)
        if isinstance(d, Bool):
            return [False, True]
        if isinstance(d, Real):
            if count == 1:
                return [d.from_unit(0.5)]
            return [d.from_unit(u) for u in np.linspace(0.0, 1.0, count)]
        if isinstance(d, Int):
            if not d.log and d.high - d.low + 1 <= count:
                return list(range(d.low, d.high + 1))
            if count == 1:
                return [d.from_unit(0.5)]
            if d.log:
                vals = np.geomspace(d.low, d.high, count)
            else:
                vals = np.linspace(d.low, d.high, count)
            return sorted({int(round(v)) for v in vals})
        raise TypeError(f"grid search does not know dimension {d!r}")  # pragma: no cover

    def _point(self, flat: int) -> dict:
        idx = []
        for a in reversed(self._axes):
            flat, r = divmod(flat, len(a))
            idx.append(r)
        vals = [a[i] for a, i in zip(self._axes, reversed(idx))]
        return dict(zip(self.space.names, vals))

    def ask(self, n: int) -> list[dict]:
        out = []
        while len(out) < n and self._next < self.size:
            flat = int(self._order[self._next]) if self._order is not None else self._next
            self._next += 1
            p = self._point(flat)
            if self._skip and self.space.key(p) in self._skip:
                continue
            out.append(p)
        return out

    def restore(self, history, pending) -> None:
        """Resumed experiment: skip the grid points finished or still pending from before
        (cancelled ones are visited again)."""
        self._skip = {self.space.key(r.params) for r in history if r.status != "cancelled"}
        self._skip |= {self.space.key(p) for p in pending}

    def done(self) -> bool:
        return self._next >= self.size
