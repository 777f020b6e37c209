"""Asynchronous successive halving (ASHA; Li et al., "A System for Massively Parallel
Hyperparameter Tuning", MLSys 2020), as a stopping rule."""

from __future__ import annotations

import functools
import math
from collections.abc import Hashable, Iterable
from typing import Any

from ..errors import ConfigError
from ._base import ReportChecks, Stopper
from ._common import RankedValues, number_setting, reject_unknown

__all__ = ["ASHA"]


def _top_count(eta: float, n: int) -> int:
    """How many of ``n`` losses at a rung go on (a module function: an ASHA pickles)."""
    return max(int(n // eta), 1)


class ASHA(Stopper):
    """Asynchronous successive halving.

    Rungs sit at ``min_resource * reduction_factor**k`` (k = 0, 1, ...) below
    ``max_resource``. When a task first reports a step at or past a rung, its loss at that
    report is recorded at the rung and the task goes on only if that loss is among the best
    ``max(n // reduction_factor, 1)`` of the ``n`` losses recorded at the rung so far (its own
    included; ties go on). The decision is made on arrival, never waiting for a rung to fill:
    Li et al.'s asynchronous promotion, in the stopping form Optuna's
    ``SuccessiveHalvingPruner`` and Ray Tune's ASHA use. (With fewer than
    ``reduction_factor`` losses at a rung, only a task that is the best so far goes on.)
    A report that jumps over several rungs is judged at each of them.

    Settings:
        min_resource: the first rung (Ray Tune's ``grace_period``): no task is stopped
            before this step.
        max_resource: the step at which a task is complete (no rung at or above it);
            ``None``: rungs without end.
        reduction_factor: ``eta``; about 1 in ``eta`` tasks goes on at each rung.
        grace_trials: the first ``grace_trials`` tasks to reach each rung go on whatever
            their loss (their losses are recorded); 0 (the default) is the rule above.

    Cost: per rung reached, one O(log n) heap insertion (n the losses at that rung) and an
    O(1) read of the cut-off; at most ``log_eta(max/min) + 1`` rungs per task.
    """

    def __init__(self, min_resource: float = 1, max_resource: float | None = None, reduction_factor: float = 3,
                 grace_trials: int = 0, **unknown: Any):
        reject_unknown("ASHA", unknown, ("min_resource", "max_resource", "reduction_factor", "grace_trials"))
        self.min_resource = number_setting("asha", "min_resource", min_resource, above=0)
        if max_resource is not None:
            number_setting("asha", "max_resource", max_resource, above=0)
            if min_resource > max_resource:
                raise ConfigError(f"asha: min_resource must be <= max_resource, got min_resource={min_resource!r} "
                                  f"> max_resource={max_resource!r}", key="min_resource")
        self.max_resource = max_resource
        self.reduction_factor = number_setting("asha", "reduction_factor", reduction_factor, above=1)
        self.grace_trials = number_setting("asha", "grace_trials", grace_trials, integer=True, minimum=0)
        self._kth = functools.partial(_top_count, self.reduction_factor)
        self._rungs: list[float] = []  # resource of each rung, grown lazily when max_resource is None
        self._values: list[RankedValues] = []
        self._next: dict[Hashable, int] = {}  # index of the next rung each task will reach
        self._stopped: set[Hashable] = set()
        self._checks = ReportChecks("asha")

    @property
    def rungs(self) -> list[float]:
        """The rungs' resources created so far (all of them when ``max_resource`` is set)."""
        if self.max_resource is not None:
            self._rung(math.inf)
        return list(self._rungs)

    def _rung(self, k: float) -> float | None:
        """The resource of rung ``k`` (None when there is no such rung); creates rungs up to k."""
        while len(self._rungs) <= k:
            r = self.min_resource * self.reduction_factor ** len(self._rungs)
            if self.max_resource is not None and r >= self.max_resource:
                return None
            self._rungs.append(r)
            self._values.append(RankedValues(self._kth))
        return self._rungs[int(k)]

    def report(self, task_id: Hashable, step: float, loss: float) -> bool:
        if task_id in self._stopped:
            return True
        v = self._checks.accept(task_id, step, loss)
        if v is None:
            return False
        s = float(step)
        k = self._next.get(task_id, 0)
        stop = False
        while True:
            r = self._rung(k)
            if r is None or s < r:
                break
            values = self._values[k]
            values.add(v)
            k += 1
            if len(values) > self.grace_trials and v > values.kth_smallest():
                stop = True
                break
        self._next[task_id] = k
        if stop:
            self._stopped.add(task_id)
        return stop

    def finished(self, task_id: Hashable, status: str, step: float | None, loss: float | None) -> None:
        self._checks.end(task_id)
        self._next.pop(task_id, None)
        self._stopped.discard(task_id)

    def restore(self, reports: Iterable[tuple[Hashable, float, float]]) -> None:
        """Replay earlier sessions' reports (see :meth:`Stopper.restore`), without warning again."""
        with self._checks.quietly():
            super().restore(reports)
