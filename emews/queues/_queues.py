"""The optimizer's side of the queues."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

from ..errors import StopSearch
from ..resume import Handoff, Replay
from ..space import Space
from ..task import Result, Task
from . import _protocol as wire


class OptimizerQueues:
    """What a resident optimizer holds: put batches of parameters, get their results.

    Attributes:
        space: the search space (``put`` validates every parameter set against it).
        capacity: how many evaluations can run at once (the worker slots); on an elastic pool
            (Dask) it follows the workers present (the driver sends each change).
        max_evals: the evaluation budget of the whole search.
        history: on a resumed experiment, the finished results of the earlier sessions in
            completion order (empty on a fresh start).
        resumed: True when the experiment is a resumed one.

    Resuming: a ``put`` of a parameter set that already finished in an earlier session is
    answered at once from ``history`` (same task id and result, no new evaluation); each
    earlier result answers at most one ``put``. So an optimizer started again with the same
    seed (emews records it) retraces its earlier steps for free. Resident optimizers
    (``replay=True``) also get a ``put`` of an interrupted task attached to its re-run, and
    spend their budget as they did the first time; ask/tell optimizers get
    ``restore(history, pending)`` (or ``tell(history)``) first, with the interrupted tasks
    pending from the start.
    """

    def __init__(self, conn: Any, space: Space, capacity: int, max_evals: int, *,
                 handoff: Handoff | None = None, replay: bool = False, announce_waits: bool = False):
        self._conn = conn
        self.space = space
        self.capacity = capacity
        self.max_evals = max_evals
        handoff = handoff or Handoff()
        self._next_id = handoff.first_id
        self._first_new_id = handoff.first_id
        self._pending: dict[int, dict] = {}
        self._ready: dict[int, Result] = {}  # results received but not yet handed out
        self.stopped: str | None = None
        self._replay = Replay(handoff, space, resident=replay)
        self.history: list[Result] = self._replay.history
        self.resumed = bool(handoff.history) or bool(handoff.inflight)
        if not replay:  # an ask/tell optimizer is told the re-runs' results like any other
            for tid, p in handoff.inflight:
                self._pending[tid] = dict(p)
        # a replaying optimizer spends its budget as it did the first time
        self._puts = 0 if replay else len(self.history) + len(handoff.inflight)
        self._resident = replay
        self._handlers = {wire.RESULTS: self._on_results, wire.STOP: self._on_stop, wire.CAPACITY: self._on_capacity}
        self._capacity_changed = False
        self._announce_waits = announce_waits  # a simulated clock must know when we only wait
        #: earlier results (``warm_start:``) to start from: ``done`` results with negative task ids,
        #: never put, never counted against ``max_evals`` (an ask/tell optimizer is told them first)
        self.warm_start: list[Result] = []

    # -- state ---------------------------------------------------------------------------
    @property
    def submitted(self) -> int:
        """Parameter sets put so far (on a resumed experiment, counting the earlier sessions'
        tasks, or for a replaying resident optimizer the puts it made again)."""
        return self._puts

    @property
    def remaining(self) -> int:
        """Evaluations left in the budget (not counting those already put)."""
        return max(0, self.max_evals - self._puts)

    @property
    def pending(self) -> int:
        """Parameter sets put whose results have not been returned by ``get`` yet."""
        return len(self._pending)

    def earlier(self, task_id: int) -> bool:
        """True when ``task_id`` is a task of an earlier session (a put answered from the
        journal, or attached to an interrupted task's re-run), not one this session created."""
        return task_id < self._first_new_id

    def pending_params(self) -> list[dict]:
        """The parameter sets still being evaluated (for optimizers that avoid proposing them again)."""
        return list(self._pending.values())

    # -- the queue pair --------------------------------------------------------------------
    def put(self, params_list: Sequence[Mapping[str, Any]], *,
            starts: Sequence[Mapping[str, Any] | None] | None = None) -> list[int]:
        """Send parameter sets to be evaluated; returns their task ids at once.

        Args:
            params_list: the parameter sets.
            starts: one entry per parameter set (None: an ordinary task): the checkpoint it
                starts from and its step budget, ``{"from": task_id or None, "until": step,
                "release": [task ids]}``. ``from`` names a finished task whose final checkpoint
                the new task's ``trial.load()`` returns (``trial.resumed_from``: its step);
                ``until`` is ``trial.until``; ``release`` lists tasks whose checkpoints the
                optimizer will not start from again (deleted once no task starts from them).
                How ``pbt`` continues and copies its members.

        Raises:
            StopSearch: the driver has stopped the search.
            SpaceError: a parameter set does not fit the space (nothing is sent).
        """
        if self.stopped:
            raise StopSearch(self.stopped)
        checked = [self.space.validate(p) for p in params_list]
        if starts is not None and len(starts) != len(checked):
            raise ValueError(f"starts has {len(starts)} entries for {len(checked)} parameter sets")
        ids, new = [], []
        for i, p in enumerate(checked):
            start = dict(starts[i]) if starts is not None and starts[i] is not None else None
            claimed = self._replay.claim(p) if self._replay.active else None
            if claimed is None:
                tid = self._next_id
                self._next_id += 1
                new.append((tid, p) if start is None else (tid, p, start))
            else:
                tid, earlier = claimed
                if earlier is not None:
                    self._ready[tid] = earlier
            ids.append(tid)
            self._pending[tid] = p
        self._puts += len(checked) if self._resident else len(new)
        if new:
            self._conn.send(wire.put(new))
        return ids

    def _receive(self, timeout: float | None) -> bool:
        """Read one message from the driver; False on timeout."""
        if timeout is not None and not self._conn.poll(timeout):
            return False
        try:
            msg = self._conn.recv()
        except EOFError:
            self.stopped = "the driver went away"
            raise StopSearch(self.stopped) from None
        wire.dispatch(msg, self._handlers)
        return True

    def _on_results(self, results: list[Result]) -> None:
        for r in results:
            if not self._replay.withheld(r):
                self._ready[r.task_id] = r

    def _on_capacity(self, n: int) -> None:
        self._capacity_changed = n != self.capacity
        self.capacity = n

    def _on_stop(self, reason: str | None) -> None:
        self.stopped = reason or "stopped by the driver"

    def get(self, block: bool = True, timeout: float | None = None, *, wake_on_capacity: bool = False) -> list[Result]:
        """Results that have arrived, in completion order.

        With ``block`` (the default) waits until at least one result is there (or
        ``timeout`` seconds pass, returning ``[]``); with ``wake_on_capacity`` also returns
        ``[]`` when :attr:`capacity` changed meanwhile (the ask/tell adapter then asks for
        the new slots).

        Raises:
            StopSearch: the driver stopped the search and no results are pending any more.
        """
        while self._conn.poll(0):
            self._receive(0)
        deadline_left = timeout
        # after a stop, results of tasks still running keep coming: wait for them too (the
        # driver sends a final result, cancelled if need be, for every id that was put)
        while block and not self._ready and (not self.stopped or self._pending):
            if not self._pending:
                return []
            if self._announce_waits:
                self._conn.send(wire.wait())
            if not self._receive(deadline_left):
                break
            while self._conn.poll(0):
                self._receive(0)
            if wake_on_capacity and self._capacity_changed:
                break
        self._capacity_changed = False
        if not self._ready and self.stopped:
            raise StopSearch(self.stopped)
        out = list(self._ready.values())
        self._ready.clear()
        for r in out:
            self._pending.pop(r.task_id, None)
        return out

    def evaluate(self, params_list: Sequence[Mapping[str, Any]]) -> list[Result]:
        """Put a batch and wait for all of it: results in the batch's order.

        When the budget is spent part-way the remaining entries come back as ``cancelled``
        results; once the search is stopped the next call raises :class:`StopSearch`.
        """
        ids = self.put(params_list)
        want = set(ids)
        got: dict[int, Result] = {}
        held: list[Result] = []
        while want - set(got):
            try:
                batch = self.get()
            except StopSearch:
                break
            for r in batch:
                (got.__setitem__(r.task_id, r) if r.task_id in want else held.append(r))
        for r in held:  # results of other puts stay available to get()
            self._ready[r.task_id] = r
            self._pending[r.task_id] = r.params
        out = []
        for i, p in zip(ids, params_list):
            r = got.get(i)
            if r is None:
                r = Result.cancelled(Task(i, dict(p)), self.stopped or "stopped")
                self._pending.pop(i, None)
            out.append(r)
        return out

    def map_losses(self, params_list: Sequence[Mapping[str, Any]], failed: float = math.inf) -> list[float]:
        """Like :meth:`evaluate` but returns losses, ``failed`` for failed evaluations
        (the shape DEAP's ``toolbox.map`` wants)."""
        return [r.loss if r.ok else failed for r in self.evaluate(params_list)]

    def stop(self, task_id: int) -> None:
        """Stop a running task early (the IoC way to prune): the worker is told at the task's
        next intermediate report, and its result comes back with status ``stopped``, its
        last reported loss and ``metrics["step"]``. A task that never reports runs to its end."""
        if task_id in self._pending:
            self._conn.send(wire.stop_task(task_id))

    def log(self, record: Mapping[str, Any]) -> None:
        """Journal a record of the optimizer's own (e.g. a generation summary)."""
        self._conn.send(wire.log(record))
