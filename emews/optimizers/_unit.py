"""Vectorized unit-cube view of a :class:`~emews.space.Space`, for optimizers that search
over many candidate points at once.

A candidate is a row of ``U`` (one column per searchable dimension, in ``[0, 1]``, as
:meth:`Space.to_unit`). :meth:`UnitGrid.snap` moves each column onto a value the dimension
can take (the centre of an integer's or a choice's cell) so that ``snap(U)`` equals
``space.to_unit(space.from_unit(U))``; :meth:`UnitGrid.encode` turns snapped rows into
:meth:`Space.encode` rows (categorical dimensions one-hot) without a Python loop per point.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from ..space import Bool, Categorical, Dimension, Int, Ordinal, Real, Space

__all__ = ["UnitGrid"]


class UnitGrid:
    """Snapping and encoding of unit-cube rows for one space.

    Attributes:
        space: the space.
        dims: its searchable dimensions (the columns of ``U``).
        categorical: mask over the columns of ``U``: True for categorical and bool columns
            (no order between their values: local moves resample them).
        levels: number of values per column (0 for continuous columns).
        width: columns of the encoded rows.
    """

    def __init__(self, space: Space):
        self.space = space
        self.dims: list[Dimension] = list(space.searchable)
        self.categorical = np.array([isinstance(d, (Categorical, Bool)) for d in self.dims], dtype=bool)
        self.levels = np.array([self._levels(d) for d in self.dims], dtype=int)
        self.width = space.encoded_width

    @staticmethod
    def _levels(d: Dimension) -> int:
        if isinstance(d, (Ordinal, Categorical)):
            return len(d.values)
        if isinstance(d, Bool):
            return 2
        if isinstance(d, Int):
            return d.high - d.low + 1
        return 0

    @property
    def n(self) -> int:
        """Columns of ``U``."""
        return len(self.dims)

    # -- conversions -------------------------------------------------------------------------
    def unit(self, params_list: Sequence[Mapping[str, Any]]) -> np.ndarray:
        """Rows of ``U`` for parameter dicts (already valid)."""
        return self.space.to_unit(params_list) if params_list else np.empty((0, self.n))

    def params(self, U: np.ndarray) -> list[dict]:
        """Parameter dicts for rows of ``U`` (plain Python values)."""
        return self.space.from_unit(U)

    def snap(self, U: np.ndarray) -> np.ndarray:
        """``U`` with each column moved onto a representable value (returns a new array)."""
        U = np.clip(np.asarray(U, dtype=float), 0.0, 1.0 - 1e-12)
        out = np.empty_like(U)
        for j, d in enumerate(self.dims):
            col = U[:, j]
            if isinstance(d, Real):
                out[:, j] = 0.5 if d.low == d.high else col
            elif isinstance(d, Int) and d.log:
                lo = math.log(d.low - 0.5 if d.low > 0.5 else d.low)
                hi = math.log(d.high + 0.5)
                x = np.clip(np.round(np.exp(lo + col * (hi - lo))), d.low, d.high)
                out[:, j] = np.clip((np.log(x) - lo) / (hi - lo), 0.0, 1.0)
            elif isinstance(d, (Int, Ordinal, Categorical, Bool)):
                k = self.levels[j]
                out[:, j] = (np.minimum(np.floor(col * k), k - 1) + 0.5) / k
            else:  # a user's Dimension subclass: its own methods, one value at a time
                out[:, j] = [d.to_unit(d.from_unit(u)) for u in col]
        return out

    def index(self, U: np.ndarray, j: int) -> np.ndarray:
        """Value indices of a choice column ``j`` of snapped rows."""
        k = self.levels[j]
        return np.minimum(np.floor(U[:, j] * k), k - 1).astype(int)

    def encode(self, U: np.ndarray) -> np.ndarray:
        """Encoded rows (as :meth:`Space.encode`) of *snapped* rows of ``U``."""
        U = np.atleast_2d(U)
        out = np.zeros((len(U), self.width))
        c = 0
        for j, d in enumerate(self.dims):
            if isinstance(d, Categorical):
                k = len(d.values)
                out[np.arange(len(U)), c + self.index(U, j)] = 1.0
                c += k
            elif d.width == 1:
                out[:, c] = U[:, j]
                c += 1
            else:  # a user's multi-column Dimension
                out[:, c : c + d.width] = [d.encode(d.from_unit(u)) for u in U[:, j]]
                c += d.width
        return out
