"""The ledger of a search session: the evaluation budget, attempts and retries, failures,
the best loss, and why the session ends.

::

    optimizer PUT ──▶ accept(task id, batch) ──▶ None: queue it | "reason": refuse it (cancelled)
    pool result   ──▶ settle(result)         ──▶ Retry(next attempt): queue it first
                                                 None: final; journal it, tell the optimizer
                      budget_stop()          ──▶ Stop("max_evals reached") once the budget is spent
    driver loop   ──▶ over(running, queued, optimizer ended?) ──▶ may the session end now

It is pure: no I/O, no clock, no journal. It counts and decides; the driver carries the
decisions out (journals, queues, tells, stops). A resumed session starts from the counts of
:func:`~emews.resume.plan_resume` (:meth:`Ledger.take_over`).

Counting rules, the same for every pool:

* ``max_evals`` bounds the tasks *accepted* from the optimizer (a put beyond it is refused)
  and ends the session once as many tasks are *finished*;
* a failed or timed-out attempt is run again (attempt k+1, ahead of every queued task) while
  its task has failed at most ``retries`` times and the session is not stopping; the last
  attempt's failure is final and counts as ``failed``;
* ``stopped`` (ended early by a stopper or the optimizer) is final, neither failed nor retried;
* ``cancelled`` is final but not counted: the task did not run to an end.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from .task import CANCELLED, DONE, STOPPED, Result, Stop, StopReason, Task

if TYPE_CHECKING:
    from .resume import ResumePlan

__all__ = ["Ledger", "Retry", "BUDGET_SPENT"]

#: the reason a put beyond the budget is refused with (while the session is not stopped)
BUDGET_SPENT = "evaluation budget spent"


@dataclass(frozen=True, slots=True)
class Retry:
    """Run a failed task again: ``task`` is its next attempt, journaled in ``batch``."""

    task: Task
    batch: int | None


class Ledger:
    """Budget, attempts and retries of one session (see the module docstring).

    Args:
        max_evals: the evaluation budget of the whole experiment (earlier sessions included).
        retries: how many times a failed or timed-out task runs again.

    Attributes:
        accepted: tasks taken from the optimizer (earlier sessions' finished ones included).
        finished: tasks with a final result (stopped ones included, cancelled ones not).
        failed: of which failed or timed out.
        stopped: tasks that ended stopped, this session.
        finished_before: finished in earlier sessions.
        best: the lowest loss of a done task.
        batches: ``put`` messages read so far (the batch each task is journaled with).
        stop: why the session ends (None while it runs).
    """

    def __init__(self, max_evals: int, retries: int = 0):
        self.max_evals = max_evals
        self.retries = retries
        self.accepted = 0
        self.finished = 0
        self.failed = 0
        self.stopped = 0
        self.finished_before = 0
        self.best: float | None = None
        self.batches = 0
        self.stop: Stop | None = None
        self._failures: dict[int, int] = {}  # task id -> failed or timed-out attempts (against retries)
        self._batch_of: dict[int, int] = {}  # task id -> its batch, while the task may be retried

    # -- the budget ------------------------------------------------------------------------
    @property
    def budget_taken(self) -> bool:
        """Every evaluation of the budget has been accepted: a new put is refused."""
        return self.accepted >= self.max_evals

    @property
    def budget_spent(self) -> bool:
        """Every evaluation of the budget has finished."""
        return self.finished >= self.max_evals

    @property
    def evaluations(self) -> int:
        """Tasks finished in this session."""
        return self.finished - self.finished_before

    def failures(self, task_id: int) -> int:
        """Failed or timed-out attempts of a task that may still be retried."""
        return self._failures.get(task_id, 0)

    # -- the session's stop ----------------------------------------------------------------
    def end(self, stop: Stop) -> Stop:
        """The session ends for ``stop`` unless it already ends for another reason; returns
        the reason it ends for."""
        if self.stop is None:
            self.stop = stop
        return self.stop

    def budget_stop(self) -> Stop | None:
        """The stop the budget calls for now: ``max_evals reached`` the first time every
        evaluation has finished while the session runs; else None."""
        if self.stop is None and self.budget_spent:
            return Stop(StopReason.MAX_EVALS, "max_evals reached")
        return None

    def already_complete(self) -> Stop:
        """The stop of a resumed session that has nothing to run: the budget was spent before."""
        return Stop(StopReason.ALREADY_COMPLETE, f"already complete ({self.finished} of {self.max_evals} evaluations)")

    def over(self, running: int, queued: int, optimizer_ended: bool, optimizer_failed: bool = False) -> bool:
        """May the session end now? Sets :attr:`stop` when it finds the reason.

        Args:
            running: tasks running on the pool.
            queued: tasks waiting for a worker.
            optimizer_ended: the optimizer finished or failed.
            optimizer_failed: it failed.
        """
        if self.stop is None and self.budget_spent:
            self.stop = Stop(StopReason.MAX_EVALS, "max_evals reached")
        if self.stop is not None:
            return running == 0
        if optimizer_ended and not queued and running == 0:
            self.stop = (Stop(StopReason.OPTIMIZER_FAILED, "optimizer failed") if optimizer_failed
                         else Stop(StopReason.OPTIMIZER_FINISHED, "optimizer finished"))
            return True
        return False

    # -- tasks -----------------------------------------------------------------------------
    def new_batch(self) -> int:
        """Number the next ``put`` message of the optimizer."""
        self.batches += 1
        return self.batches

    def accept(self, task_id: int, batch: int | None) -> str | None:
        """A task the optimizer put: None when it is accepted (it counts against the budget),
        else why it is refused (the session stops, or the budget is taken)."""
        if self.stop is not None:
            return str(self.stop)
        if self.budget_taken:
            return BUDGET_SPENT
        self.accepted += 1
        if batch is not None:
            self._batch_of[task_id] = batch
        return None

    def settle(self, r: Result) -> Retry | None:
        """An attempt ended: a :class:`Retry` when its task runs again, else None (the result
        is final: it goes to the optimizer)."""
        if r.status == STOPPED:  # neither failed nor done: not retried, not a failure
            self.stopped += 1
            self._close(r.task_id)
            self.finished += 1
            return None
        failed = r.status != DONE and r.status != CANCELLED
        failed_before = self._failures.get(r.task_id, 0)
        if failed:
            self._failures[r.task_id] = failed_before + 1
            if failed_before < self.retries and self.stop is None:
                return Retry(Task(r.task_id, r.params, r.attempt + 1), self._batch_of.get(r.task_id))
        self._close(r.task_id)
        if r.status != CANCELLED:
            self.finished += 1
            self.failed += 0 if r.ok else 1
        if r.ok and (self.best is None or r.loss < self.best):
            self.best = r.loss
        return None

    def interrupted(self, r: Result) -> tuple[Task, int | None]:
        """An attempt the pool lost while the session runs (its worker left): the task runs
        again first as the next attempt, in its batch; neither a failure (``retries``) nor
        final. Returns that attempt and its batch."""
        return Task(r.task_id, r.params, r.attempt + 1), self._batch_of.get(r.task_id)

    def _close(self, task_id: int) -> None:
        self._batch_of.pop(task_id, None)
        self._failures.pop(task_id, None)

    # -- a resumed session -----------------------------------------------------------------
    def take_over(self, plan: ResumePlan) -> None:
        """Start from an earlier session's counts: its finished results count against the
        budget, its failures against the retries; the tasks it runs again are accepted."""
        self._failures = dict(plan.failures)
        self.finished = self.finished_before = plan.finished
        self.failed = plan.failed
        self.best = plan.best
        self.batches = plan.last_batch
        for t in plan.rerun:
            b = plan.batches.get(t.id)
            if b is not None:
                self._batch_of[t.id] = b
        self.accepted = self.finished + len(plan.rerun)

    def take_over_complete(self, finished: int) -> None:
        """Start from an earlier session that spent the budget (nothing is run again)."""
        self.finished = self.finished_before = finished
