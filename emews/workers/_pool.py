"""The pool contract: what the driver holds, whichever transport moves the tasks.

::

    driver ──submit(task)──▶ Pool ──TASK──▶ workers (processes, MPI ranks, virtual ones)
    driver ◀──wait()──────── Pool ◀─RESULT─┘
           ◀──on_report(Report) -> stop?── ◀─REPORT── (answered: ANSWER)
    driver ──stop_task(id)──▶ Pool ──STOP──▶ the worker running it

A pool is a transport behind :class:`Pool`; the messages are those of
:mod:`emews.workers._wire`. :class:`PoolBase` holds the bookkeeping every transport shares
(which workers are idle or busy with which task, which attempts were told to stop, the
answer to a report, the tasks held ahead), so a new pool writes only how its messages
travel. The contract suite :mod:`emews.testing.pools` checks exactly this protocol.

Prefetch (a pool with ``prefetch = 1``: local, MPI): once tasks are seen to be short (their
recent mean run time under :attr:`PoolBase.PREFETCH_BELOW`), each busy worker also offers a
slot for its next task, so the driver's ``submit`` sends it ahead and the worker starts it the
moment the current one ends (no round trip through the driver between two tasks)::

    worker w:  ──── task A runs ────┤RESULT A├── task B runs ──── ...
    pool:      submit(A)  submit(B: held by w)   (B counted running from here)
                          recall() ─RECALL B─▶ w hands B back unstarted (RETURN), or has started it

:attr:`~PoolBase.idle` counts those slots too, :attr:`~PoolBase.busy` only the running tasks,
:attr:`~PoolBase.size` stays the worker count (the optimizer's capacity does not double).
When the run stops the driver calls :meth:`~PoolBase.recall`; the tasks that come back
(:meth:`~PoolBase.take_returned`) never started. ``shutdown`` returns held tasks as
cancelled; a worker that dies hands its held task back (it did not start: no attempt is spent).
A worker that goes idle while another holds a task, once tasks no longer look short, recalls
that task, so it runs on the idle worker unless its holder starts it first (a worker reads a
recall between tasks or at a report). Long tasks get no prefetch: the round trip it saves is a negligible share of them,
and a held task could wait a whole task's time behind its worker. (The Dask pool, whose round
trip through its scheduler is not negligible, holds tasks up to 10 s too while the driver's
:attr:`PoolBase.backlog` of work to come exceeds half its workers: see :mod:`emews.workers.dask`.)

Deep prefetch (a pool with ``prefetch_deep`` > ``prefetch``: local, Dask): once many tasks have
ended (:attr:`PoolBase.DEEP_AFTER`) and their recent mean run time is far below a round trip
through the driver (:attr:`PoolBase.DEEP_BELOW`), a busy worker holds up to ``prefetch_deep``
tasks, started in the order sent. With one held task such a worker runs it and then waits
for the driver anyway; with several it keeps running while the driver reads a batch of
results, and a held task waits at most ``prefetch_deep`` such short tasks.
"""

from __future__ import annotations

import collections
import time
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

    A pool that sends tasks ahead (prefetch, as :class:`PoolBase` does) also has, and the
    driver then calls: ``prefetched`` (tasks held ahead, not started), ``recall()`` (ask for
    them back: the run stops), ``take_returned() -> list[Task]`` (those handed back
    unstarted since the last call) and ``take_started() -> list[(task, worker, when)]`` (held
    tasks that started, journaled ``running`` then). A pool without them never holds a task.

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
    #: tasks a busy worker may hold beyond the one it runs (0: none; the local and MPI pools: 1)
    prefetch = 0
    #: prefetch only while the recent mean run time of tasks is below this (seconds)
    PREFETCH_BELOW = 0.5
    #: tasks a busy worker may hold while tasks are far shorter than a round trip (0: no more
    #: than ``prefetch``; the local pool: 8)
    prefetch_deep = 0
    #: deep prefetch while the recent mean run time is below this (seconds)...
    DEEP_BELOW = 0.001
    #: ...once this many tasks have ended (a few instant ones, failures say, are not enough)
    DEEP_AFTER = 32
    #: tasks the driver has yet to hand out (queued, and the budget's not yet proposed), set by
    #: the driver each round; None: unknown. A pool may hold tasks ahead only while it is large
    backlog: int | None = None

    def __init__(self, size: int, on_report: OnReport | None = None, *, fifo: bool = False):
        self.size = int(size)
        self.on_report = on_report
        self.closed = False
        self._fifo = fifo
        self._idle: collections.deque[Any] = collections.deque()
        self._busy: dict[Any, Task] = {}  # worker -> the task it runs
        self._next: dict[Any, list[Task]] = {}  # worker -> the tasks it holds, started in this order when its own ends
        self._held_n = 0  # tasks held, all workers (sum of the lists' lengths)
        self._ended = 0  # tasks that ended (results counted)
        self._stopping: set[tuple[int, int]] = set()  # (task id, attempt) told to stop
        self._returned: list[Task] = []  # handed back unstarted, for take_returned()
        self._held_started: list[tuple[Task, Any, float]] = []  # held tasks started, for take_started()
        self._run_time: float | None = None  # recent mean run time of a task (None: none ended yet)
        self._recalled: set[tuple[int, int]] = set()  # held tasks asked back, not yet ended or back

    @property
    def idle(self) -> int:
        """Slots ready for a task: idle workers, and busy ones that may hold their next task."""
        depth = self._depth()
        if depth == 1:
            return len(self._idle) + len(self._busy) - len(self._next)
        if depth > 1:
            nxt = self._next
            return len(self._idle) + sum(max(0, depth - len(nxt.get(w, ()))) for w in self._busy)
        return len(self._idle)

    @property
    def busy(self) -> int:
        """Workers running a task (a held task counts once its worker has started it)."""
        return len(self._busy)

    @property
    def prefetched(self) -> int:
        """Tasks held ahead by workers, not started."""
        return self._held_n

    def _depth(self) -> int:
        """How many tasks a busy worker may hold now (0: none)."""
        if not self._prefetching():
            return 0
        if self.prefetch_deep > self.prefetch and self._ended >= self.DEEP_AFTER and self._run_time < self.DEEP_BELOW:
            return self.prefetch_deep
        return self.prefetch

    def _prefetching(self) -> bool:
        """Offer the busy workers' slots: a pool with prefetch, open, its tasks seen to be short.

        Not before a task has ended: a worker reads a recall only between tasks (or at a
        report), so a task held behind a long one could not be taken back for a worker that
        became ready meanwhile."""
        return (self.prefetch > 0 and not self.closed and self._run_time is not None
                and self._run_time < self.PREFETCH_BELOW)

    def start(self) -> None:
        """Nothing to start by default (a pool whose workers need starting overrides it)."""

    # -- what the driver calls -------------------------------------------------------------
    def submit(self, task: Task) -> Any:
        """Send ``task`` to an idle worker, or ahead to a busy one (see :class:`Pool`)."""
        if self._idle:
            worker = self._idle.popleft() if self._fifo else self._idle.pop()
            if self._send_task(worker, task) is False:
                return None
            self._busy[worker] = task
            return worker
        # prefetch: the busy worker free to hold a task that runs first (insertion order); deep:
        # the one that holds the fewest
        if self._depth() > 1:
            nxt = self._next
            worker = min(self._busy, key=lambda w: len(nxt.get(w, ())))
        else:
            worker = next(w for w in self._busy if w not in self._next)
        if self._send_task(worker, task) is False:
            return None
        self._next.setdefault(worker, []).append(task)
        self._held_n += 1
        return worker

    def stop_task(self, task_id: int) -> bool:
        """Tell the worker running ``task_id`` to stop it at its next report; False when none runs it."""
        for worker, t in self._busy.items():
            if t.id == task_id:
                self._stopping.add((t.id, t.attempt))
                self._send_stop(worker, t)
                return True
        return False

    def recall(self) -> None:
        """Ask every worker for its held tasks back (see :class:`Pool`)."""
        for worker, t in self._held_items():
            self._recall(worker, t)

    def _held_items(self) -> list[tuple[Any, Task]]:
        """Every held task with its worker: ``(worker, task)``."""
        return [(w, t) for w, ts in self._next.items() for t in ts]

    def _take_held(self, worker: Any, key: tuple[int, int] | None = None) -> Task | None:
        """Take from ``worker``'s held tasks the first one (``key`` None) or the one of ``key``;
        None when it holds none (or not that one)."""
        ts = self._next.get(worker)
        if not ts:
            return None
        if key is None:
            t = ts.pop(0)
        else:
            i = next((i for i, t in enumerate(ts) if (t.id, t.attempt) == key), None)
            if i is None:
                return None
            t = ts.pop(i)
        if not ts:
            del self._next[worker]
        self._held_n -= 1
        return t

    def _recall(self, worker: Any, t: Task) -> None:
        key = (t.id, t.attempt)
        if key not in self._recalled:
            self._recalled.add(key)
            self._send_recall(worker, t)

    def take_returned(self) -> list[Task]:
        """The tasks handed back unstarted since the last call."""
        out, self._returned = self._returned, []
        return out

    def take_started(self) -> list[tuple[Task, Any, float]]:
        """The held tasks that started since the last call: (task, worker, when), ``when``
        the end of the task before it (its worker started it then)."""
        out, self._held_started = self._held_started, []
        return out

    # -- for the transport -----------------------------------------------------------------
    def _send_task(self, worker: Any, task: Task) -> bool | None:
        """Send ``task`` to ``worker``; False when it could not (the worker is dead)."""
        raise NotImplementedError

    def _send_stop(self, worker: Any, task: Task) -> None:
        """Tell ``worker`` to stop ``task`` (unasked); by default nothing (the answer to the
        attempt's next report carries the stop)."""

    def _send_recall(self, worker: Any, task: Task) -> None:
        """Ask ``worker`` to hand ``task`` back unstarted (a pool with prefetch implements it)."""
        raise NotImplementedError

    def _ready(self, worker: Any) -> None:
        """``worker`` can take a task."""
        if not self.closed:
            self._idle.append(worker)
            # idle while another worker holds a task, and tasks no longer look short (a held
            # task may wait long): take it back for this one. While they are short it waits at
            # most one short task, and a recall per idle moment would add work to a busy driver
            if self._next and not self._prefetching():
                other, t = next(((w, t) for w, t in self._held_items()
                                 if w != worker and (t.id, t.attempt) not in self._recalled), (None, None))
                if t is not None:
                    self._recall(other, t)

    def _finished(self, worker: Any, result: Result) -> bool:
        """``worker`` sent ``result``; True when it was running that task (the result counts).
        The task it held, if any, is its running task from now on."""
        key = (result.task_id, result.attempt)
        self._stopping.discard(key)
        self._recalled.discard(key)
        t = self._busy.get(worker)
        if t is None or (t.id, t.attempt) != key:
            return False
        self._ended += 1
        held = self._take_held(worker)
        if held is not None:
            self._busy[worker] = held
            self._held_started.append((held, worker, result.end if result.end is not None else time.time()))
        else:
            del self._busy[worker]
            self._ready(worker)
        if result.start is not None and result.end is not None:
            took = max(0.0, result.end - result.start)
            self._run_time = took if self._run_time is None else 0.8 * self._run_time + 0.2 * took
        return True

    def _handed_back(self, worker: Any, task: Task) -> None:
        """``worker`` handed ``task`` back unstarted (RETURN)."""
        key = (task.id, task.attempt)
        self._recalled.discard(key)
        if self._take_held(worker, key) is None:
            t = self._busy.get(worker)
            if t is None or (t.id, t.attempt) != key:
                return  # not held here (the pool was shut down meanwhile)
            # it had counted as started when the task before it ended; the worker starts the
            # task it was sent after it (held since) instead, or is idle
            held = self._take_held(worker)
            if held is not None:
                self._busy[worker] = held
                self._held_started.append((held, worker, time.time()))
            else:
                del self._busy[worker]
                self._ready(worker)
        self._returned.append(task)

    def _lost_held(self, worker: Any) -> None:
        """``worker`` died: its held tasks did not start; they go back to the driver."""
        while (held := self._take_held(worker)) is not None:
            self._returned.append(held)

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
        """The running and held tasks as cancelled results (``shutdown(kill=True)``); ``host(worker)`` names the host."""
        return [Result.cancelled(t, "cancelled at shutdown", worker=w, host=host(w), end=end)
                for w, t in self._busy.items()] + self._held_as_cancelled()

    def _held_as_cancelled(self) -> list[Result]:
        """The held (not started) tasks as cancelled results, taken from the pool (``shutdown``)."""
        out = [Result.cancelled(t, "cancelled at shutdown (held by a worker, not started)")
               for _, t in self._held_items()] + [Result.cancelled(t, "cancelled at shutdown (handed back, not started)")
                                                  for t in self._returned]
        self._next.clear()
        self._held_n = 0
        self._returned.clear()
        return out
