"""The whole wire protocol between a pool and its workers, and the worker's report channel.

The twin of :mod:`emews.queues._protocol` on the other side of the driver. Every message is a
``(kind, body)`` pair; bodies are small, picklable records. This module is the only place
the kinds are spelled, for every pool (local pipes, MPI ranks, the simulated pool's
recorder) and for the isolated runner's child::

    pool ─▶ worker     TASK    Task                        run it (now, or when the one it runs ends)
                       RECALL  (task_id, attempt)          hand that task back unless it has started
                       STOP    (task_id, attempt)          stop that attempt at its next report
                       ANSWER  (task_id, attempt, stop)    the decision on one report
                       CLOSE   None                        no more tasks: leave the pool
                       CANCEL  (task_id, attempt)          the run ends: end that attempt now, or as it
                                                           starts (MPI only: read by the rank's watch thread)
    worker ─▶ pool     READY   Ready(gpu, host)            the objective is loaded; idle
                       FATAL   "text"                      the objective cannot be loaded
                       REPORT  Report                      an intermediate loss (answered)
                       RESULT  Result                      the task is over; the next one starts
                       RETURN  Task                        a recalled task, handed back unstarted
                       BYE     None                        left the pool (after CLOSE)

Each side reads with one :func:`dispatch` over a table of handlers, so an unknown kind is an
error instead of a silently dropped message.

Prefetch: a worker may hold one TASK beyond the one it runs (:class:`~emews.workers._pool.PoolBase`
decides when); it starts it the moment it has sent the RESULT of the current one, so a
finishing worker never waits for the pool's round trip. A task held but not started is
RECALLed when the run stops; the worker hands it back (RETURN) or, when it has started it
meanwhile, runs it to its RESULT. A worker whose task was cancelled (a signal, rank 0's
cancel) hands back every task it holds; after CLOSE it starts none.

The report/answer pipeline (:class:`WorkerChannel`, one class for every pool and runner)::

    objective ─trial.report(k)─▶ WorkerChannel ──REPORT k──▶ pool ──on_report──▶ driver
                                      ▲ reads ANSWER k-1 first  │
                                      └─────── ANSWER k ────────┘ (read at report k+1)

The worker never waits for the answer to the report it just sent: the answer to report *k*
is read when the objective reports *k + 1* (it has had a whole step to arrive), so no worker
waits on the driver, and a stop decided at step *k* is seen at step *k + 1* at the latest.
"""

from __future__ import annotations

import collections
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from ..errors import EmewsError
from ..task import Report, Result, Task

__all__ = ["TASK", "STOP", "ANSWER", "CLOSE", "RECALL", "CANCEL", "READY", "FATAL", "REPORT", "RESULT", "BYE", "RETURN",
           "TO_WORKER", "TO_POOL", "Ready", "task", "stop", "answer", "close", "recall", "cancel", "ready", "fatal", "report",
           "result", "bye", "returned", "dispatch",
           "ignore", "WireError", "WorkerChannel", "NullChannel", "Receive", "TaskInbox"]

TASK, STOP, ANSWER, CLOSE, RECALL, CANCEL = "task", "stop", "answer", "close", "recall", "cancel"
READY, FATAL, REPORT, RESULT, BYE, RETURN = "ready", "fatal", "report", "result", "bye", "return"
#: the kinds each side may receive
TO_WORKER = (TASK, STOP, ANSWER, CLOSE, RECALL, CANCEL)
TO_POOL = (READY, FATAL, REPORT, RESULT, BYE, RETURN)

Message = tuple[str, Any]


class WireError(EmewsError):
    """A message of a kind the receiving side does not handle."""


@dataclass(frozen=True, slots=True)
class Ready:
    """A worker (or an MPI task group) that has loaded the objective.

    Attributes:
        gpu: the devices it sees (``CUDA_VISIBLE_DEVICES``), or ``None``.
        host: its host name.
    """

    gpu: str | None
    host: str


def task(t: Task) -> Message:
    return (TASK, t)


def stop(task_id: int, attempt: int) -> Message:
    return (STOP, (task_id, attempt))


def answer(task_id: int, attempt: int, stop_it: bool) -> Message:
    return (ANSWER, (task_id, attempt, bool(stop_it)))


def close() -> Message:
    return (CLOSE, None)


def recall(task_id: int, attempt: int) -> Message:
    return (RECALL, (task_id, attempt))


def cancel(task_id: int, attempt: int) -> Message:
    return (CANCEL, (task_id, attempt))


def returned(t: Task) -> Message:
    return (RETURN, t)


def ready(gpu: str | None, host: str) -> Message:
    return (READY, Ready(gpu, host))


def fatal(text: str) -> Message:
    return (FATAL, str(text))


def report(rep: Report) -> Message:
    return (REPORT, rep)


def result(r: Result) -> Message:
    return (RESULT, r)


def bye() -> Message:
    return (BYE, None)


def dispatch(message: Message, handlers: Mapping[str, Callable[[Any], Any]]) -> Any:
    """Call the handler of ``message``'s kind with its body; returns what the handler returns.

    Raises:
        WireError: ``message`` is not a ``(kind, body)`` pair of a handled kind.
    """
    try:
        kind, body = message
    except (TypeError, ValueError):
        raise WireError(f"not a (kind, body) message: {message!r:.200}") from None
    handler = handlers.get(kind)
    if handler is None:
        raise WireError(f"unexpected message kind {kind!r} (this side handles {', '.join(handlers)})")
    return handler(body)


def ignore(body: Any) -> None:
    """A handler for a kind that needs no action here (a late answer for an ended task)."""


#: ``receive(block) -> message or None``: the next message for this worker (``None``: nothing
#: yet, only when not blocking); raises ``EOFError``/``OSError`` when the pool is gone
Receive = Callable[[bool], "Message | None"]


class WorkerChannel:
    """One running attempt's way to the pool: its reports out, the answers and stops in.

    The one report channel of every pool and runner; they differ only in the transport they
    give it:

    Args:
        task_id, attempt: the attempt.
        post: sends a message to the pool (a REPORT); ``None``: reports go nowhere (an MPI
            group member, whose leader reports).
        receive: the next message for this attempt (see :data:`Receive`); ``None``: no
            answer ever comes (reports are not answered, nothing can stop the attempt).
        on_stop: called once when the attempt learns it must stop (an MPI leader tells the
            other ranks of its group).

    Attributes:
        stop: a stop has arrived (for this attempt).
        gone: the pool went away (reports are no longer sent; the worker's end comes elsewhere).
        closing: the pool said CLOSE meanwhile (the worker leaves after this task).
        outstanding: reports sent whose answer has not been read.
        inbox: the worker's held tasks, where a TASK or RECALL read meanwhile goes (a worker
            whose pool prefetches and whose task messages share the channel's transport).
    """

    def __init__(self, task_id: int, attempt: int, post: Callable[[Message], Any] | None = None,
                 receive: Receive | None = None, on_stop: Callable[[], Any] | None = None,
                 inbox: TaskInbox | None = None):
        self.key = (task_id, attempt)
        self._inbox = inbox
        self._post = post
        self._receive = receive
        self._on_stop = on_stop
        self.outstanding = 0
        self.stop = False
        self.closing = False
        self.gone = False  # the pool went away (its end is seen elsewhere)
        self._handlers: dict[str, Callable[[Any], None]] | None = None  # built at the first message

    # -- what comes in ---------------------------------------------------------------------
    def _on_answer(self, body: tuple[int, int, bool]) -> None:
        if (body[0], body[1]) == self.key:  # else late, for an earlier task
            self.outstanding -= 1
            if body[2]:
                self._stopped()

    def _on_stop_msg(self, body: tuple[int, int]) -> None:
        if tuple(body) == self.key:
            self._stopped()

    def _on_close(self, body: None) -> None:
        self.closing = True
        if self._inbox is not None:
            self._inbox.closing = True

    def _stopped(self) -> None:
        if not self.stop:
            self.stop = True
            if self._on_stop is not None:
                self._on_stop()

    def _read(self, block: bool) -> None:
        """Take every message that has come (with ``block``: wait for at least one)."""
        receive = self._receive
        if receive is None:
            return
        try:
            while True:
                msg = receive(block)
                if msg is None:
                    return
                if self._handlers is None:
                    self._handlers = {ANSWER: self._on_answer, STOP: self._on_stop_msg, CLOSE: self._on_close}
                    if self._inbox is not None:  # the next task, a recall: for the worker's inbox
                        self._handlers[TASK] = self._inbox.on_task
                        self._handlers[RECALL] = self._inbox.on_recall
                dispatch(msg, self._handlers)
                block = False
        except (EOFError, OSError):  # the pool is gone: no answer will come
            self._receive = None
            self.outstanding = 0
            self.gone = True

    def _settle_previous(self) -> None:
        """The answers still due (the previous report's), reading without blocking first."""
        self._read(block=False)
        while self.outstanding > 0 and not self.stop and self._receive is not None:
            self._read(block=True)

    # -- the trial's side ------------------------------------------------------------------
    def send(self, step: float, loss: float, metrics: dict) -> bool:
        """Send a report (after reading the answer to the previous one); True: stop now (the
        report is then not sent)."""
        self._settle_previous()
        if self.stop:
            return True
        if self._post is not None and not self.gone:
            self._post(report(Report(self.key[0], self.key[1], step, loss, metrics, time.time())))
            if self._receive is not None:
                self.outstanding += 1
        return False

    def send_wait(self, step: float, loss: float, metrics: dict) -> bool:
        """Send a report and wait for its own answer (a relay: the isolated runner's worker,
        whose child goes on training meanwhile); True: stop."""
        if self.send(step, loss, metrics):
            return True
        self._settle_previous()
        return self.stop

    def stop_requested(self) -> bool:
        """Has a stop arrived? Never blocks."""
        self._read(block=False)
        return self.stop

    def settle(self) -> None:
        """After the task: take the answers still due, so none is left for the next task."""
        while self.outstanding > 0 and self._receive is not None:
            self._read(block=True)


class TaskInbox:
    """A worker's held tasks (prefetch): those sent ahead, started in order, one at a time.

    Args:
        hand_back: sends a message to the pool (a RETURN).

    Attributes:
        held: the tasks received and not started, oldest first.
        closing: the pool said CLOSE (no held task starts).
        handlers: the handlers of TASK, RECALL and CLOSE, for the worker's own dispatch.
    """

    def __init__(self, hand_back: Callable[[Message], Any]):
        self._hand_back = hand_back
        self.held: collections.deque[Task] = collections.deque()
        self.closing = False
        self.handlers: dict[str, Callable[[Any], Any]] = {TASK: self.on_task, RECALL: self.on_recall,
                                                          CLOSE: self.on_close}

    def on_task(self, t: Task) -> None:
        self.held.append(t)

    def on_recall(self, key: tuple[int, int]) -> None:
        """Hand back the held task ``key`` (no answer when it has started: its RESULT comes)."""
        for t in self.held:
            if (t.id, t.attempt) == tuple(key):
                self.held.remove(t)
                self._hand_back(returned(t))
                return

    def on_close(self, body: None) -> None:
        self.closing = True  # the pool ended: what it had sent ahead it took back itself

    def next(self) -> Task | None:
        """The task to start now (None: none held, or the pool closed)."""
        if self.closing or not self.held:
            return None
        return self.held.popleft()

    def hand_back_all(self) -> None:
        """Hand back every held task (the worker's task was cancelled: the run is ending)."""
        while self.held and not self.closing:
            self._hand_back(returned(self.held.popleft()))


def NullChannel() -> WorkerChannel:  # noqa: N802 - reads as the class it stands for
    """Reports go nowhere and no stop ever comes (a runner without a pool)."""
    return WorkerChannel(-1, -1)
