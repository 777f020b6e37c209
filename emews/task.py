"""Task and Result: the only records that cross the queues, processes and MPI ranks.

::

    optimizer --[params dicts]--> driver --Task(id, params, attempt)--> worker
    optimizer <--[Result ...]---- driver <--Result(status, loss, ...)-- worker
                                                    ▲ Outcome.result(task, worker, host, gpu)
                                              runner.run(task) -> Outcome

Both are small, picklable and keyed by the task id the driver assigns. An :class:`Outcome`
is what a runner made of a task, before the pool adds where it ran.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from enum import Enum
from typing import Any

__all__ = ["Task", "Result", "Report", "Status", "StopReason", "Stop", "QUEUED", "RUNNING", "DONE", "FAILED",
           "TIMEOUT", "CANCELLED", "STOPPED", "STATUSES", "FINAL", "Outcome",
           "outcome_from_value"]


class Status(str, Enum):
    """The state of a task attempt, as the journal records it.

    A ``str`` enum: ``Status.DONE == "done"``, and it is written to the journal, JSON and
    CSV as its value, so journals and plain-string comparisons keep working.
    """

    QUEUED = "queued"
    RUNNING = "running"
    DONE = "done"
    FAILED = "failed"
    TIMEOUT = "timeout"
    CANCELLED = "cancelled"
    #: an early-stopping rule (or the optimizer) stopped it while it reported: neither failed
    #: nor done; its Result carries the last reported loss and ``metrics["step"]``
    STOPPED = "stopped"

    def __str__(self) -> str:
        return self.value

    @property
    def final(self) -> bool:
        """True for an attempt that has ended (done, failed, timeout, cancelled, stopped)."""
        return self not in (Status.QUEUED, Status.RUNNING)


_STATUS_OF = {s.value: s for s in Status}
QUEUED, RUNNING, DONE, FAILED, TIMEOUT, CANCELLED = (Status.QUEUED, Status.RUNNING, Status.DONE, Status.FAILED,
                                                     Status.TIMEOUT, Status.CANCELLED)
STOPPED = Status.STOPPED
#: every state a task has in the journal
STATUSES = tuple(Status)
FINAL = (DONE, FAILED, TIMEOUT, CANCELLED, STOPPED)


class StopReason(str, Enum):
    """Why a search session ended (the kind; :class:`Stop` adds the details)."""

    MAX_EVALS = "max_evals"
    MAX_TIME = "max_time"
    DEADLINE = "deadline"
    OPTIMIZER_FINISHED = "optimizer_finished"
    OPTIMIZER_FAILED = "optimizer_failed"
    ALREADY_COMPLETE = "already_complete"
    TERMINATED = "terminated"
    INTERRUPTED = "interrupted"
    ERROR = "error"

    def __str__(self) -> str:
        return self.value

    @property
    def early(self) -> bool:
        """A time limit stopped the session with budget left: running the same command again continues."""
        return self in (StopReason.MAX_TIME, StopReason.DEADLINE)


@dataclass(frozen=True, slots=True)
class Stop:
    """A session's stop: its :class:`StopReason` and the sentence journaled as the outcome.

    Code decides on ``reason``; people read ``text`` (``str(stop)``), e.g.
    ``max_evals reached`` or ``max_time of 60 s reached``.
    """

    reason: StopReason
    text: str

    def __str__(self) -> str:
        return self.text


@dataclass(frozen=True, slots=True)
class Task:
    """One evaluation to run: the driver's id, the parameters and the attempt number (0, 1, ...)."""

    id: int
    params: dict
    attempt: int = 0

    def __reduce__(self) -> tuple:
        # pickled once per task on its way to a worker: a plain constructor call is ~3x faster
        # than the slots dataclass's __getstate__ (dataclasses.fields() on every pickle)
        return (Task, (self.id, self.params, self.attempt))


@dataclass(slots=True)
class Result:
    """What became of a task.

    Attributes:
        task_id: the driver's id of the task.
        params: the parameters evaluated.
        status: ``done``, ``failed``, ``timeout``, ``cancelled`` or ``stopped``.
        loss: the loss (``None`` unless ``status`` is ``"done"``, or ``"stopped"``: then the
            last reported loss, and ``metrics["step"]`` the step it reached; ``ok`` is False
            for a stopped result, so optimizers never take a partial loss for a final one).
        metrics: extra values the objective returned beside ``loss``.
        error: error text (traceback) for failed tasks.
        worker, host, gpu: where it ran.
        start, end: wall-clock times (seconds since the epoch) on the worker.
        attempt: 0 for the first try, then 1, 2... for retries.
        objectives: with several objectives (the config's ``objectives``), their values in
            the config's order, each *to minimize* (an objective to maximize is negated);
            ``loss`` is then the first of them. ``None`` with one objective, or when the
            attempt did not finish.
        violation: with ``constraints``, how far the result lies outside them (0: feasible;
            the sum of the amounts by which each bound is exceeded, ``inf`` for a missing
            metric). ``None`` without constraints.
    """

    task_id: int
    params: dict
    status: Status
    loss: float | None = None
    metrics: dict = field(default_factory=dict)
    error: str | None = None
    worker: int | None = None
    host: str | None = None
    gpu: str | None = None
    start: float | None = None
    end: float | None = None
    attempt: int = 0
    objectives: tuple[float, ...] | None = None
    violation: float | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.status, Status):
            self.status = _STATUS_OF.get(self.status) or Status(self.status)  # Status() raises on a bad one

    def __reduce__(self) -> tuple:
        # compact and fast across processes and ranks: the fields as a tuple, the status as its text
        return (Result, (self.task_id, self.params, self.status.value, self.loss, self.metrics, self.error, self.worker,
                         self.host, self.gpu, self.start, self.end, self.attempt, self.objectives, self.violation))

    @classmethod
    def failed(cls, task: Task, error: str, *, status: Status = FAILED, worker: int | None = None,
               host: str | None = None, gpu: str | None = None, start: float | None = None,
               end: float | None = None) -> Result:
        """A failed (or, with ``status=TIMEOUT``, timed-out) attempt of ``task``."""
        return cls(task.id, task.params, status, error=error, worker=worker, host=host, gpu=gpu, start=start,
                   end=end, attempt=task.attempt)

    @classmethod
    def cancelled(cls, task: Task, reason: str, *, worker: int | None = None, host: str | None = None,
                  end: float | None = None) -> Result:
        """An attempt of ``task`` that ended without running to completion (a stop, a shutdown)."""
        return cls(task.id, task.params, CANCELLED, error=reason, worker=worker, host=host, end=end,
                   attempt=task.attempt)

    @classmethod
    def stopped(cls, task: Task, step: float, loss: float | None, metrics: dict | None = None, *,
                reason: str = "stopped early", worker: int | None = None, host: str | None = None,
                gpu: str | None = None, start: float | None = None, end: float | None = None) -> Result:
        """An attempt of ``task`` stopped early at ``step`` with its last reported ``loss``."""
        m = {str(k): _jsonable(v) for k, v in (metrics or {}).items()}
        m["step"] = _jsonable(step)
        return cls(task.id, task.params, STOPPED, loss, m, reason, worker, host, gpu, start, end, task.attempt)

    @property
    def step(self) -> float | None:
        """The step a stopped (or reporting) attempt reached: ``metrics["step"]``, else None."""
        v = self.metrics.get("step") if self.metrics else None
        return v if isinstance(v, (int, float)) and not isinstance(v, bool) else None

    @property
    def ok(self) -> bool:
        """True when the evaluation finished with a finite loss."""
        return self.status == DONE

    @property
    def runtime(self) -> float | None:
        if self.start is None or self.end is None:
            return None
        return self.end - self.start


@dataclass(frozen=True, slots=True)
class Report:
    """One intermediate report of a running attempt (an epoch's loss, say).

    Attributes:
        task_id, attempt: the attempt that reported.
        step: how far it got (epochs, iterations; grows within an attempt).
        loss: its loss at ``step`` (lower is better; may be NaN).
        metrics: extra values (JSON-safe).
        time: wall-clock time of the report on the worker.
    """

    task_id: int
    attempt: int
    step: float
    loss: float
    metrics: dict = field(default_factory=dict)
    time: float = 0.0

    @property
    def key(self) -> Any:
        """The stopper's key of this attempt: the task id, ``(task_id, attempt)`` for a re-run."""
        return attempt_key(self.task_id, self.attempt)


def attempt_key(task_id: int, attempt: int) -> Any:
    """How stoppers name an attempt: its task id for the first, ``(task_id, attempt)`` after,
    so that a retry or a resumed re-run (reporting from its first step again) is judged afresh."""
    return task_id if attempt == 0 else (task_id, attempt)


def _jsonable(v: Any) -> Any:
    """Metrics must survive JSON: numpy/torch scalars become Python numbers, others a repr."""
    if v is None or isinstance(v, (bool, int, str)):
        return v
    if isinstance(v, float):
        return v if math.isfinite(v) else repr(v)
    item = getattr(v, "item", None)
    if callable(item):
        try:
            return _jsonable(item())
        except (TypeError, ValueError, RuntimeError):
            pass
    if isinstance(v, (list, tuple)):
        return [_jsonable(x) for x in v]
    if isinstance(v, dict):
        return {str(k): _jsonable(x) for k, x in v.items()}
    return repr(v)


@dataclass(frozen=True, slots=True)
class Outcome:
    """What a runner made of one task: the record from runner to pool (the pool adds where it
    ran, see :meth:`result`).

    Attributes:
        status: ``done``, ``failed``, ``timeout`` or ``stopped``.
        loss: the loss (``None`` when failed; the last reported one when stopped).
        metrics: extra values (``step`` for a stopped attempt).
        error: error text, or ``None``.
        start, end: wall-clock times of the evaluation (``None`` until the runner sets them).
    """

    status: Status | str
    loss: float | None = None
    metrics: dict = field(default_factory=dict)
    error: str | None = None
    start: float | None = None
    end: float | None = None

    @classmethod
    def failed(cls, error: str, status: Status | str = FAILED, metrics: dict | None = None) -> Outcome:
        """A failed (or, with ``status="timeout"``, timed-out) evaluation."""
        return cls(status, None, dict(metrics or {}), error)

    def timed(self, start: float, end: float) -> Outcome:
        """This outcome with the evaluation's start and end times."""
        return Outcome(self.status, self.loss, self.metrics, self.error, start, end)

    def result(self, task: Task, *, worker: int | None = None, host: str | None = None,
               gpu: str | None = None) -> Result:
        """The :class:`Result` of ``task`` with this outcome, run on ``worker`` at ``host``."""
        return Result(task.id, task.params, self.status, loss=self.loss, metrics=self.metrics, error=self.error,
                      worker=worker, host=host, gpu=gpu, start=self.start, end=self.end, attempt=task.attempt)


def outcome_from_value(value: Any, text: bool = False, loss_key: str | None = None) -> Outcome:
    """Interpret what an objective returned as an :class:`Outcome` (no times yet).

    A number is the loss; a dict carries ``loss`` plus extra metrics. NaN, infinity, a
    missing ``loss`` or a non-number make a failed result (with the reason as error text).
    With ``loss_key`` (a search with ``objectives``: the first objective's name) the dict's
    value under that name is the loss instead, and every other key is a metric.
    A string (``"0.5"``) is a failed result naming its type, as a Python objective that
    returns one more likely has a bug than a loss; ``text=True`` parses it instead (what a
    command's output or result file holds).
    """
    metrics: dict = {}
    raw = value
    if isinstance(value, dict):
        key = loss_key or "loss"
        metrics = {str(k): _jsonable(v) for k, v in value.items() if k != key}
        if key not in value:
            return Outcome.failed(f"objective returned a dict without {key!r} (keys: {sorted(map(str, value))})",
                                  metrics=metrics)
        raw = value[key]
    if isinstance(raw, bool) or raw is None:
        return Outcome.failed(f"objective returned a non-number loss: {raw!r}", metrics=metrics)
    if isinstance(raw, (str, bytes)) and not text:
        return Outcome.failed(f"objective returned a non-number loss: {raw!r:.200} (a {type(raw).__name__}; "
                              "return float(...) if it is the loss)", metrics=metrics)
    try:
        loss = float(raw)
    except (TypeError, ValueError):
        return Outcome.failed(f"objective returned a non-number loss: {raw!r:.200}", metrics=metrics)
    if not math.isfinite(loss):
        return Outcome.failed(f"objective returned loss={loss!r}", metrics=metrics)
    return Outcome(DONE, loss, metrics, None)
