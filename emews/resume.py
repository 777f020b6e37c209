"""Resuming an experiment, in one place: what the journal says, what to do, what the optimizer gets.

::

    journal ──load_resume_state()──▶ ResumeState     what the earlier sessions left
                                        │ plan_resume(state, space, max_evals, retries)   (pure)
                                        ▼
                                     ResumePlan       what the driver does: counts, attempts to
                                        │             close as cancelled, tasks to run again
                                        │ .handoff
                                        ▼
                                     Handoff          what the optimizer process gets: history,
                                        │             interrupted (id, params), the first free id
                                        ▼
                                     Replay           inside OptimizerQueues: answers a put of a
                                                      point that finished earlier from the journal,
                                                      attaches a put of an interrupted point to its re-run

Ask/tell optimizers receive the history through ``Optimizer.restore(history, pending)``
(default: ``tell(history)``) before their first ``ask``. Resident optimizers are started
again with the recorded seed and retrace their steps; every point they propose again is
answered by :class:`Replay` without being evaluated again.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .journal import JOURNAL_NAME, JournalError, final_attempts, read_journal, result_from_row
from .space import Space
from .task import CANCELLED, DONE, FAILED, STOPPED, TIMEOUT, Result, Task, attempt_key

__all__ = ["ResumeState", "ResumePlan", "Handoff", "Replay", "load_resume_state", "plan_resume"]


@dataclass
class ResumeState:
    """What an earlier session left in the journal.

    Attributes:
        completed: finished results (done, failed, timeout, stopped), in completion order.
        interrupted: tasks that were queued, running or cancelled when the session ended,
            as the next attempt of each (to be run again, oldest first).
        batches: {task id: batch} of every task.
        failures: {task id: failed or timed-out attempts} (what counts against retries).
        left_open: {task id: status} of interrupted tasks whose last attempt is still
            ``queued`` or ``running`` in the journal (the process died without ending it).
        first_id: the first task id free for new tasks.
        last_batch: the highest batch number used.
        meta: the journal's meta table.
        reports: the journaled intermediate reports, in arrival order (rebuild a stopper from them).
        status_of: {stopper key of an attempt: its journaled status}.
    """

    completed: list[Result]
    interrupted: list[Task]
    batches: dict[int, int | None]
    failures: dict[int, int]
    left_open: dict[int, str]
    first_id: int
    last_batch: int
    meta: dict
    reports: list = field(default_factory=list)
    status_of: dict[Any, str] = field(default_factory=dict)

    @property
    def seed(self) -> int | None:
        s = self.meta.get("seed")
        return s if isinstance(s, int) else None

    @property
    def best(self) -> float | None:
        losses = [r.loss for r in self.completed if r.ok and r.loss is not None]
        return min(losses) if losses else None


def load_resume_state(directory: Path) -> ResumeState | None:
    """Read what the earlier sessions left (see :class:`ResumeState`); None for a journal a
    run created but died before recording anything in (nothing to resume)."""
    j = read_journal(directory)
    if "space" not in j["meta"] and not j["evals"]:
        return None
    if "space" not in j["meta"]:
        raise JournalError(f"{Path(directory) / JOURNAL_NAME}: the journal has no recorded search (meta 'space' "
                           "missing): not an emews experiment, or one that never started")
    rows = j["evals"]
    completed, interrupted, batches, left_open = [], [], {}, {}
    failures: dict[int, int] = {}
    for r in rows:
        batches[r["task_id"]] = r.get("batch")
        if r["status"] in (FAILED, TIMEOUT):
            failures[r["task_id"]] = failures.get(r["task_id"], 0) + 1
    for r in final_attempts(rows):
        if r["status"] in (DONE, FAILED, TIMEOUT, STOPPED):
            completed.append(result_from_row(r))
        else:  # queued, running (the process died) or cancelled: to be run again
            interrupted.append(Task(r["task_id"], r["params"], r["attempt"] + 1))
            if r["status"] != CANCELLED:
                left_open[r["task_id"]] = r["status"]
    completed.sort(key=lambda r: (r.end if r.end is not None else 0.0, r.task_id))
    first_id = 1 + max((r["task_id"] for r in rows), default=-1)
    last_batch = max((r["batch"] for r in rows if r.get("batch") is not None), default=0)
    status_of = {attempt_key(r["task_id"], r["attempt"]): str(r["status"]) for r in rows}
    return ResumeState(completed, interrupted, batches, failures, left_open, first_id, last_batch, j["meta"],
                       list(j.get("reports") or []), status_of)


@dataclass(frozen=True)
class Handoff:
    """What a resumed optimizer process starts from.

    Attributes:
        history: the earlier sessions' finished results (that fit the space), in completion order.
        inflight: ``(task id, params)`` of the interrupted tasks being run again.
        first_id: the first task id free for new tasks.
    """

    history: list[Result] = field(default_factory=list)
    inflight: list[tuple[int, dict]] = field(default_factory=list)
    first_id: int = 0

    def __reduce__(self) -> tuple:
        # sent to the optimizer process: 100,000 results pickle fast as plain tuples
        rows = [(r.task_id, r.params, r.status.value, r.loss, r.metrics, r.error, r.worker, r.host, r.gpu, r.start,
                 r.end, r.attempt, r.objectives, r.violation) for r in self.history]
        return (_handoff, (rows, self.inflight, self.first_id))


def _handoff(rows: list[tuple], inflight: list[tuple[int, dict]], first_id: int) -> Handoff:
    return Handoff([Result(*row) for row in rows], inflight, first_id)


@dataclass(frozen=True)
class ResumePlan:
    """What the driver does to continue an experiment (made by :func:`plan_resume`).

    Attributes:
        finished: results that count against ``max_evals``; ``failed`` of them not ok.
        best: the best loss so far.
        failures: {task id: failed attempts} of tasks that may still be retried.
        rerun: tasks to queue again, in order (the next attempt of each).
        batches: {task id: batch} for the re-run tasks.
        closings: ``(task id, attempt, error)`` of attempts the dead session left queued or
            running, to be closed as cancelled.
        unfit: earlier results kept out of the optimizer's history (they do not fit a changed space).
        last_batch: the highest batch number used so far.
        handoff: what the optimizer process gets.
    """

    finished: int
    failed: int
    best: float | None
    failures: dict[int, int]
    rerun: list[Task]
    batches: dict[int, int]
    closings: list[tuple[int, int, str]]
    unfit: int
    last_batch: int
    handoff: Handoff


def plan_resume(state: ResumeState, space: Space, max_evals: int, retries: int) -> ResumePlan:
    """Decide how a session continues ``state`` (pure: reads nothing, writes nothing).

    Failed results whose task still has retries (a stop kept them from their next attempt)
    and interrupted tasks run again, oldest first, as far as the budget allows; their open
    attempts are closed as cancelled. Tasks whose parameters no longer fit ``space`` (a
    ``--force`` resume) are not run again.
    """

    unchanged = _canon(state.meta.get("space")) == _canon(space.to_dict())

    def fits(params: dict) -> bool:
        if unchanged:  # every journaled point fits the space it was drawn from
            return True
        try:
            space.validate(params)
        except (ValueError, KeyError, TypeError):
            return False
        return True

    retry = [x for x in state.completed
             if x.status not in (DONE, STOPPED) and state.failures.get(x.task_id, 0) <= retries]
    retry_ids = {x.task_id for x in retry}
    completed = [x for x in state.completed if x.task_id not in retry_ids]
    todo = sorted([Task(x.task_id, x.params, x.attempt + 1) for x in retry] + state.interrupted, key=lambda t: t.id)
    closings: list[tuple[int, int, str]] = []
    fitting = []
    for t in todo:
        if fits(t.params):
            fitting.append(t)
        elif t.id in state.left_open:
            closings.append((t.id, t.attempt - 1, "interrupted; not run again: its parameters do not fit the changed "
                                                  "space"))
    left = max(0, max_evals - len(completed))
    rerun = fitting[:left]
    for i, t in enumerate(fitting):  # the dead session's open attempts end here, cancelled
        if t.id in state.left_open:
            again = "run again" if i < left else "not run again: evaluation budget spent"
            closings.append((t.id, t.attempt - 1, f"interrupted while {state.left_open[t.id]} (the run ended without "
                                                  f"a result); {again}"))
    batches = {t.id: b for t in rerun if (b := state.batches.get(t.id)) is not None}
    history = [x for x in completed if fits(x.params)]
    return ResumePlan(
        finished=len(completed), failed=sum(1 for x in completed if not x.ok and x.status != STOPPED), best=state.best,
        failures=dict(state.failures), rerun=rerun, batches=batches, closings=closings,
        unfit=len(completed) - len(history), last_batch=state.last_batch,
        handoff=Handoff(history, [(t.id, t.params) for t in rerun], state.first_id))


def _canon(v: object) -> object:
    return json.loads(json.dumps(v, sort_keys=True, default=str))


class Replay:
    """Answers the puts of a resumed optimizer from the journal (held by its ``OptimizerQueues``).

    A put of a parameter set that finished in an earlier session is answered at once with
    that result (same task id, no new evaluation); each earlier result answers at most one
    put. A put of an interrupted task's parameters is attached to its re-run. A re-run whose
    point is not proposed again joins the history of a resident optimizer (``resident``)
    and is handed to an ask/tell optimizer like any result (it was pending from the start).
    """

    def __init__(self, handoff: Handoff, space: Space, resident: bool):
        self.space = space
        self.resident = resident
        self.history: list[Result] = list(handoff.history)
        self.inflight = list(handoff.inflight)
        self._done: dict[str, list[Result]] = {}
        self._running: dict[str, list[int]] = {}
        self._unclaimed: set[int] = set()  # re-run tasks not (yet) claimed by a put
        for r in self.history:
            self._done.setdefault(space.key(r.params), []).append(r)
        for tid, p in self.inflight:
            self._running.setdefault(space.key(p), []).append(tid)
            self._unclaimed.add(tid)

    @property
    def active(self) -> bool:
        """True while some put may still be answered from the journal."""
        return bool(self._done or self._running)

    def claim(self, params: dict) -> tuple[int, Result | None] | None:
        """The earlier task this put repeats: ``(task id, its result)`` for a finished one,
        ``(task id, None)`` for one being run again, ``None`` for a new point."""
        key = self.space.key(params)
        done = self._done.get(key)
        if done:
            r = done.pop(0)
            return r.task_id, r
        running = self._running.get(key)
        if running:
            tid = running.pop(0)
            self._unclaimed.discard(tid)
            return tid, None
        return None

    def withheld(self, r: Result) -> bool:
        """Take note of a result from the driver; True when it must not be handed to the
        optimizer (a resident optimizer's re-run nobody proposed again: it joins the history)."""
        if r.task_id not in self._unclaimed:
            return False
        self._unclaimed.remove(r.task_id)
        key = self.space.key(r.params)
        self._running[key].remove(r.task_id)
        if r.status != CANCELLED:  # a later put of the same point is answered from it
            self._done.setdefault(key, []).append(r)
        if self.resident:
            if r.status != CANCELLED:
                self.history.append(r)
            return True
        return False
