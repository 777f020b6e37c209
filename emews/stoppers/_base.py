"""The stopper contract: two methods and one optional hook.

A stopper decides, for each intermediate report of a running task (its loss after an epoch,
say), whether the task should stop now. The driver holds one stopper and calls:

* :meth:`Stopper.report` with every report, in the order the reports arrive; ``True`` means
  "stop this task now". It is answered on the driver's thread while workers wait, so it must
  be cheap: O(log n) in the number of reports seen, no I/O, no sleeping.
* :meth:`Stopper.finished` once, when the task has ended (done, failed, stopped, timed out,
  cancelled). The stopper frees what it kept for that task; it must not stop that task later.
* :meth:`Stopper.restore` (optional) on a resume, before any new report, with the journaled
  reports of the earlier sessions in their original order. The default replays them through
  :meth:`report` and ignores the decisions, which rebuilds the state of any stopper whose
  decisions depend only on the reports it has seen. After it, the driver calls
  :meth:`finished` for every task the journal shows as ended.

Keys. ``task_id`` is any hashable key of one *attempt* of a task: the driver's task id, or
``(task_id, attempt)`` when a task is retried, so that a retry (which reports from its first
step again) is judged afresh instead of looking like a step going backwards.

Loss is minimised. Steps are numbers that grow within an attempt (epochs, counted from 1 by
convention). A stopper must not raise on odd reports: a NaN (or non-numeric) loss counts as
the worst value, and a step that does not grow is ignored; both with a warning on the
``emews.stoppers`` logger (:class:`ReportChecks` does this for the built-ins).
"""

from __future__ import annotations

import abc
import contextlib
import logging
import math
from collections.abc import Hashable, Iterable, Iterator
from typing import Any

__all__ = ["Stopper", "ReportChecks"]

log = logging.getLogger("emews.stoppers")


class Stopper(abc.ABC):
    """Base class of early-stopping rules (see the module docstring for the contract).

    A plug-in subclasses it and implements the two methods; settings from the config arrive
    as keyword arguments of ``__init__`` (reject unknown ones with a ``TypeError`` naming
    them, which an ``__init__`` with explicit keyword parameters does by itself).

    Example:
        >>> class Threshold(Stopper):
        ...     def __init__(self, limit=1.0):
        ...         self.limit = limit
        ...     def report(self, task_id, step, loss):
        ...         return step >= 3 and loss > self.limit
        ...     def finished(self, task_id, status, step, loss):
        ...         pass
    """

    @abc.abstractmethod
    def report(self, task_id: Hashable, step: float, loss: float) -> bool:
        """One intermediate report; return ``True`` to stop the task now.

        Args:
            task_id: the attempt's key (see the module docstring).
            step: how far the task got (epochs, iterations); grows within an attempt.
            loss: its loss at ``step`` (lower is better); may be NaN.
        """

    @abc.abstractmethod
    def finished(self, task_id: Hashable, status: str, step: float | None, loss: float | None) -> None:
        """The task ended (``status``: ``"done"``, ``"failed"``, ``"stopped"``, ...).

        Args:
            task_id: the attempt's key.
            status: how it ended.
            step: the last step it reported (``None`` if none).
            loss: its final loss (``None`` if it has none, e.g. failed).
        """

    def restore(self, reports: Iterable[tuple[Hashable, float, float]]) -> None:
        """Rebuild the state from earlier sessions' reports ``(task_id, step, loss)``, in order.

        The default replays them through :meth:`report`, ignoring the decisions.
        """
        for task_id, step, loss in reports:
            self.report(task_id, step, loss)


class ReportChecks:
    """The bookkeeping every built-in shares: per-task last step, finished tasks, NaN warnings.

    :meth:`accept` screens a report and returns the loss to use (NaN and non-numbers become
    ``+inf``, the worst) or ``None`` when the report must be ignored (a step that does not
    grow, a task already finished, an unusable step).
    """

    def __init__(self, name: str):
        self.name = name
        self.quiet = False  # set while restoring: the earlier session warned already
        self.last_step: dict[Hashable, float] = {}
        self.warned: set[tuple[Hashable, str]] = set()  # (task, kind): each warned once
        self.ended: set[Hashable] = set()

    @contextlib.contextmanager
    def quietly(self) -> Iterator[None]:
        """No warnings inside the block (replaying reports an earlier session warned about)."""
        self.quiet = True
        try:
            yield
        finally:
            self.quiet = False

    def accept(self, task_id: Hashable, step: Any, loss: Any) -> float | None:
        if task_id in self.ended:
            self._warn(task_id, "ended", "%s: report from task %r after it finished (step %r, loss %r) ignored "
                       "(warned once per task)", self.name, task_id, step, loss)
            return None
        try:
            s = float(step)
        except (TypeError, ValueError):
            s = math.nan
        if not math.isfinite(s):
            self._warn(task_id, "step", "%s: task %r reported step %r, not a finite number: report ignored "
                       "(warned once per task)", self.name, task_id, step)
            return None
        last = self.last_step.get(task_id)
        if last is not None and s <= last:
            self._warn(task_id, "order", "%s: task %r reported step %r after step %r (steps must grow): report "
                       "ignored (warned once per task)", self.name, task_id, step, last)
            return None
        self.last_step[task_id] = s
        try:
            v = float(loss)
        except (TypeError, ValueError):
            v = math.nan
        if math.isnan(v):
            self._warn(task_id, "nan", "%s: task %r reported loss %r at step %r: counted as the worst value "
                       "(warned once per task)", self.name, task_id, loss, step)
            return math.inf
        return v

    def _warn(self, task_id: Hashable, kind: str, msg: str, *args: Any) -> None:
        """One warning per task and kind (none while restoring)."""
        if self.quiet or (task_id, kind) in self.warned:
            return
        self.warned.add((task_id, kind))
        log.warning(msg, *args)

    def end(self, task_id: Hashable) -> None:
        self.last_step.pop(task_id, None)
        self.warned -= {(task_id, k) for k in ("step", "order", "nan")}
        self.ended.add(task_id)
