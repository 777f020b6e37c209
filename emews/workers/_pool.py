"""The pool contract: what the driver holds, whichever transport moves the tasks.

::

    driver ──submit(task)──▶ Pool ──TASK──▶ workers (processes, MPI ranks, virtual ones)
    driver ◀──wait()──────── Pool ◀─RESULT─┘
           ◀──on_report(Report) -> stop?── ◀─REPORT── (answered: ANSWER)
    driver ──stop_task(id)──▶ Pool ──STOP──▶ the worker running it

A pool is a transport behind :class:`Pool`; the messages are those of
:mod:`emews.workers._wire`. :class:`PoolBase` holds the bookkeeping every transport shares
(which workers are idle or busy with which task, which attempts were told to stop, the
answer to a report), so a new pool writes only how its messages travel. The contract suite
:mod:`emews.testing.pools` checks exactly this protocol.
"""

from __future__ import annotations

import collections
from collections.abc import Callable, Sequence
from typing import Any, Protocol, runtime_checkable

from .._clock import WALL
from ..task import Report, Result, Task

__all__ = ["Pool", "PoolBase", "OnReport"]

#: the driver's judge of one intermediate report: True stops the attempt
OnReport = Callable[[Report], bool]


@runtime_checkable
class Pool(Protocol):
    """What the driver needs of a worker pool (local processes, MPI ranks, simulated workers).

    A pool is built with the runner spec and the driver's ``on_report`` (``None``: reports
    are not judged, no attempt is stopped by one), then :meth:`start`\\ ed; the driver then
    :meth:`submit`\\ s while :attr:`idle` > 0, collects completions with :meth:`wait`, and
    ends with :meth:`shutdown`. Every call is made from one thread (the driver's).

    Attributes:
        kind: the pool's name in the journal (``"local"``, ``"mpi"``, ``"simulated"``).
        size: how many tasks can run at once.
        clock: the clock the driver reads (wall time; simulated time for the simulated pool).
        on_report: the driver's judge of each :class:`~emews.task.Report`, given to the
            constructor; called during :meth:`wait`; True stops the attempt.

    Example::

        pool = LocalPool(2, {"type": "python", "objective": "emews.examples:sphere"})
        pool.start()
        while pool.idle < pool.size:   # workers load the objective
            pool.wait(0.1)
        pool.submit(Task(0, {"x": 1.0}))
        results = pool.wait(10.0)      # [Result(task_id=0, ...)]
        pool.shutdown()
    """

    kind: str
    size: int
    clock: Any
    on_report: OnReport | None

    @property
    def idle(self) -> int:
        """Workers ready for a task now."""

    @property
    def busy(self) -> int:
        """Workers running a task now."""

    def start(self) -> None:
        """Start the workers (they load the objective; each becomes idle when ready). Idempotent."""

    def submit(self, task: Task) -> Any:
        """Hand ``task`` to an idle worker; returns the worker's id, or ``None`` when that
        worker turned out to be dead (the task did not start; the caller keeps it)."""

    def wait(self, timeout: float | None, extra: Sequence[Any] = ()) -> list[Result]:
        """The completions that are ready, blocking up to ``timeout`` seconds until one is, a
        worker becomes idle, or one of the ``extra`` connections becomes readable. Reports
        that arrive meanwhile are judged by ``on_report`` and answered."""

    def stop_task(self, task_id: int) -> bool:
        """Stop the running task ``task_id`` at its next report (it ends ``stopped``); False
        when no worker runs it."""

    def shutdown(self, kill: bool = False) -> list[Result]:
        """End every worker; with ``kill`` running tasks come back as cancelled results at
        once. Idempotent (a second call returns ``[]``)."""


class PoolBase:
    """The bookkeeping every pool shares; a transport subclasses it.

    A subclass sends the messages (:meth:`_send_task`, :meth:`_send_stop`) and calls
    :meth:`_ready`, :meth:`_finished` and :meth:`_judge` as the workers' messages come in.

    Args:
        size: how many tasks can run at once.
        on_report: the driver's judge of each report (see :class:`Pool`).
        fifo: hand tasks to the longest-idle worker first (else the most recently idle).
    """

    kind = "?"
    clock: Any = WALL

    def __init__(self, size: int, on_report: OnReport | None = None, *, fifo: bool = False):
        self.size = int(size)
        self.on_report = on_report
        self.closed = False
        self._fifo = fifo
        self._idle: collections.deque[Any] = collections.deque()
        self._busy: dict[Any, Task] = {}
        self._stopping: set[tuple[int, int]] = set()  # (task id, attempt) told to stop

    @property
    def idle(self) -> int:
        """Workers ready for a task."""
        return len(self._idle)

    @property
    def busy(self) -> int:
        """Workers running a task."""
        return len(self._busy)

    def start(self) -> None:
        """Nothing to start by default (a pool whose workers need starting overrides it)."""

    # -- what the driver calls -------------------------------------------------------------
    def submit(self, task: Task) -> Any:
        """Send ``task`` to an idle worker (see :class:`Pool`)."""
        worker = self._idle.popleft() if self._fifo else self._idle.pop()
        if self._send_task(worker, task) is False:
            return None
        self._busy[worker] = task
        return worker

    def stop_task(self, task_id: int) -> bool:
        """Tell the worker running ``task_id`` to stop it at its next report; False when none runs it."""
        for worker, t in self._busy.items():
            if t.id == task_id:
                self._stopping.add((t.id, t.attempt))
                self._send_stop(worker, t)
                return True
        return False

    # -- for the transport -----------------------------------------------------------------
    def _send_task(self, worker: Any, task: Task) -> bool | None:
        """Send ``task`` to ``worker``; False when it could not (the worker is dead)."""
        raise NotImplementedError

    def _send_stop(self, worker: Any, task: Task) -> None:
        """Tell ``worker`` to stop ``task`` (unasked); by default nothing (the answer to the
        attempt's next report carries the stop)."""

    def _ready(self, worker: Any) -> None:
        """``worker`` can take a task."""
        if not self.closed:
            self._idle.append(worker)

    def _finished(self, worker: Any, result: Result) -> bool:
        """``worker`` sent ``result``; True when it was running a task (the result counts)."""
        self._stopping.discard((result.task_id, result.attempt))
        if self._busy.pop(worker, None) is None:
            return False
        self._ready(worker)
        return True

    def _judge(self, rep: Report) -> bool:
        """The answer to one report: stop when the attempt was told to, or ``on_report`` says so."""
        key = (rep.task_id, rep.attempt)
        stop = key in self._stopping
        if self.on_report is not None:
            stop = bool(self.on_report(rep)) or stop
        if stop:
            self._stopping.add(key)
        return stop

    def _running_as_cancelled(self, host: Callable[[Any], str | None], end: float | None = None) -> list[Result]:
        """The running tasks as cancelled results (``shutdown(kill=True)``); ``host(worker)`` names the host."""
        return [Result.cancelled(t, "cancelled at shutdown", worker=w, host=host(w), end=end)
                for w, t in self._busy.items()]
