"""The median rule: stop a task whose best loss so far is worse than the median of the
other tasks' losses at the same step."""

from __future__ import annotations

import math
from collections.abc import Hashable, Iterable
from typing import Any

from ._base import ReportChecks, Stopper
from ._common import RankedValues, median_rank, number_setting, reject_unknown

__all__ = ["MedianStopper"]


class MedianStopper(Stopper):
    """Median stopping (Optuna's ``MedianPruner``, Google Vizier's median rule).

    At a report of loss ``v`` at step ``s``, the task is stopped when its **best** loss so far
    (over its reports up to ``s``, as Optuna's ``MedianPruner`` compares) is strictly worse than
    the median of the losses the *other* tasks reported at step ``s`` — all of them: running,
    finished and stopped ones (Optuna counts only completed trials; in an asynchronous search
    most peers are still running, and waiting for completions would delay every decision).

    Settings:
        warmup_steps: no task is stopped at a step below this (Optuna's ``n_warmup_steps``).
        min_trials: at least this many other tasks must have reported at the same step.
        interval: decide only at steps ``warmup_steps + k * interval`` (Optuna's
            ``interval_steps``); other reports are still recorded.

    Cost: one O(log n) heap insertion per report, n the reports at that step; the median is
    read in O(1). Memory: one float per report.
    """

    def __init__(self, warmup_steps: float = 0, min_trials: int = 5, interval: int = 1, **unknown: Any):
        reject_unknown("MedianStopper", unknown, ("warmup_steps", "min_trials", "interval"))
        self.warmup_steps = number_setting("median", "warmup_steps", warmup_steps, minimum=0)
        self.min_trials = number_setting("median", "min_trials", min_trials, integer=True, minimum=1)
        self.interval = number_setting("median", "interval", interval, integer=True, minimum=1)
        self._checks = ReportChecks("median")
        self._at_step: dict[float, RankedValues] = {}
        self._best: dict[Hashable, float] = {}
        self._stopped: set[Hashable] = set()

    def report(self, task_id: Hashable, step: float, loss: float) -> bool:
        if task_id in self._stopped:
            return True
        v = self._checks.accept(task_id, step, loss)
        if v is None:
            return False
        s = float(step)
        best = min(self._best.get(task_id, math.inf), v)
        self._best[task_id] = best
        values = self._at_step.get(s)
        if values is None:
            values = self._at_step[s] = RankedValues(median_rank)
        stop = (s >= self.warmup_steps and len(values) >= self.min_trials
                and (s - self.warmup_steps) % self.interval == 0 and best > values.median())
        values.add(v)
        if stop:
            self._stopped.add(task_id)
        return stop

    def finished(self, task_id: Hashable, status: str, step: float | None, loss: float | None) -> None:
        self._checks.end(task_id)
        self._best.pop(task_id, None)
        self._stopped.discard(task_id)

    def restore(self, reports: Iterable[tuple[Hashable, float, float]]) -> None:
        """Replay earlier sessions' reports (see :meth:`Stopper.restore`), without warning again."""
        with self._checks.quietly():
            super().restore(reports)
