"""Shared pieces of the built-in stoppers: a running order statistic and settings checks."""

from __future__ import annotations

import difflib
import heapq
import math
from collections.abc import Callable, Iterable
from typing import Any

from ..errors import ConfigError

__all__ = ["RankedValues", "number_setting", "reject_unknown"]


class RankedValues:
    """A growing multiset of values split at its ``k``-th smallest, ``k = kth(n)``.

    Two heaps: ``low`` holds the ``k`` smallest values (a max-heap, stored negated), ``high``
    the rest (a min-heap). ``add`` is O(log n) as long as ``kth(n + 1) - kth(n)`` is 0 or 1
    (true of the median and of ``n // eta`` for ``eta > 1``); reading the ``k``-th smallest
    is O(1).
    """

    __slots__ = ("kth", "low", "high")

    def __init__(self, kth: Callable[[int], int]):
        self.kth = kth
        self.low: list[float] = []
        self.high: list[float] = []

    def __len__(self) -> int:
        return len(self.low) + len(self.high)

    def add(self, value: float) -> None:
        if self.low and value <= -self.low[0]:
            heapq.heappush(self.low, -value)
        else:
            heapq.heappush(self.high, value)
        k = self.kth(len(self))
        while len(self.low) > k:
            heapq.heappush(self.high, -heapq.heappop(self.low))
        while len(self.low) < k and self.high:
            heapq.heappush(self.low, -heapq.heappop(self.high))

    def kth_smallest(self) -> float:
        """The ``kth(n)``-th smallest value (``+inf`` when ``k`` is 0 or the set is empty)."""
        return -self.low[0] if self.low else math.inf

    def median(self) -> float:
        """The median, when built with :func:`median_rank` (mean of the middle two if n is even)."""
        n = len(self)
        if n == 0:
            return math.nan
        if n % 2:
            return -self.low[0]
        return (-self.low[0] + self.high[0]) / 2


def median_rank(n: int) -> int:
    return (n + 1) // 2


def number_setting(owner: str, key: str, value: Any, *, integer: bool = False, minimum: float | None = None,
                   above: float | None = None) -> Any:
    """Check a numeric setting; a :class:`~emews.errors.ConfigError` (a ``ValueError``) names
    the key and the value otherwise."""
    ok_type = isinstance(value, int) if integer else isinstance(value, (int, float))
    if isinstance(value, bool) or not ok_type or (isinstance(value, float) and not math.isfinite(value)):
        kind = "an integer" if integer else "a finite number"
        raise ConfigError(f"{owner}: must be {kind}, got {key}={value!r}", key=key)
    if minimum is not None and value < minimum:
        raise ConfigError(f"{owner}: must be >= {minimum}, got {key}={value!r}", key=key)
    if above is not None and value <= above:
        raise ConfigError(f"{owner}: must be > {above}, got {key}={value!r}", key=key)
    return value


def reject_unknown(owner: str, unknown: dict[str, Any], allowed: Iterable[str]) -> None:
    """Unknown settings are a ``TypeError`` naming the first one, its value and the closest
    known name."""
    if not unknown:
        return
    key = min(unknown)
    allowed = sorted(allowed)
    close = difflib.get_close_matches(key, allowed, n=1)
    hint = f"; did you mean {close[0]!r}?" if close else f"; its settings are {', '.join(allowed)}"
    raise TypeError(f"{owner} got an unknown setting {key!r} (value {unknown[key]!r}){hint}")
