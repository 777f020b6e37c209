"""Intermediate reports from a running objective, and the stop that may come back.

An objective that takes a second argument gets a :class:`Trial`::

    def train(params, trial):
        for epoch in range(1, 11):
            loss = fit_one_epoch(params)
            if trial.report(epoch, loss, acc=acc):   # True: the driver said stop
                break                                 # (or: raise emews.Stopped)
        return loss

An objective with one argument may call :func:`report_step` (``emews.report_step``; the
name ``emews.report`` is the report package), which reaches the same handle through a
context variable the runner sets; outside a task it does nothing and returns False.

The handle sends each report down the runner's *channel* and never waits for the decision
on it: the answer to report *k* is read when report *k + 1* is made (it has had a whole
step to arrive), so a stop decided at step *k* is seen at step *k + 1* at the latest, and a
stopped attempt ends with the step and loss of the report that was judged. Bad reports never
crash a task: a NaN loss or a step that does not grow is sent as is (the stopper counts a
NaN as the worst value and ignores a step that does not grow, warning once per task and kind).

The channel is a :class:`~emews.workers._wire.WorkerChannel` (one class for every pool and
runner; each gives it its transport). A trial uses two of its methods: ``send(step, loss,
metrics) -> bool`` (sends the report; True when a stop has arrived, for this or an earlier
report) and ``stop_requested() -> bool`` (has a stop arrived? never blocks).

Checkpoints: ``trial.save(state_or_path, step)`` writes to the task's place
(``trial.checkpoint_dir``, see :mod:`emews._checkpoints`), ``trial.load()`` reads the
latest back; an attempt that follows an interrupted one starts with ``trial.resumed_from``
(the step of the checkpoint it found, else None)::

    def train(params, trial):
        model = trial.load() or new_model(params)
        for epoch in range((trial.resumed_from or 0) + 1, 28):
            loss = fit_one_epoch(model)
            trial.save(model, epoch)
            if trial.report(epoch, loss):
                break
        return loss

A task started from another task's checkpoint (population-based training, ``optimizer: pbt``)
finds that checkpoint through the same calls: ``trial.load()`` returns it, ``trial.resumed_from``
is its step, ``trial.started_from`` the task it came from, and ``trial.until`` the step to
train to (the step budget: ``resumed_from + interval``)::

    def train(params, trial):
        model = trial.load() or new_model()
        set_learning_rate(model, params["lr"])    # the (perturbed) hyperparameters of this step
        for epoch in range((trial.resumed_from or 0) + 1, (trial.until or 27) + 1):
            loss = fit_one_epoch(model)
            trial.save(model, epoch)
        return loss

Reports made after a save carry its step (``metrics["checkpoint"]``); so does the outcome,
with ``resumed_from`` when the attempt continued an earlier one.
"""

from __future__ import annotations

import contextvars
import inspect
import logging
import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ..errors import Stopped
from ..task import _jsonable
from .._checkpoints import CheckpointPlace
from ._wire import NullChannel

__all__ = ["NullChannel", "Trial", "accepts_trial", "current_trial", "report_step"]

log = logging.getLogger("emews")

_CURRENT: contextvars.ContextVar[Trial | None] = contextvars.ContextVar("emews_trial", default=None)


class Trial:
    """The running attempt's handle: :meth:`report` intermediate losses, learn about a stop.

    Attributes:
        task_id, attempt: the attempt.
        params: its parameters.
        last_step, last_loss: the last report sent (``None`` before the first).
        stopped: True once a stop has been seen.
        reports: how many reports were sent.
        resumed_from: the step of the checkpoint an earlier attempt left (None: from the start).
        checkpoint_step: the step of the last checkpoint saved or found (None: none).
        started_from: the task whose checkpoint this attempt started from (None: its own, or none).
        until: the step to train to, when the optimizer gave a budget (``pbt``); else None.
    """

    def __init__(self, task_id: int, attempt: int, params: dict, channel: Any = None,
                 checkpoints: CheckpointPlace | None = None):
        self.task_id = task_id
        self.attempt = attempt
        self.params = params
        self._channel = channel if channel is not None else NullChannel()
        self.last_step: float | None = None
        self.last_loss: float | None = None
        self.last_metrics: dict = {}
        self.stopped = False
        self.reports = 0
        self._warned: set[str] = set()
        self._place = checkpoints
        found = checkpoints.latest() if checkpoints is not None else None
        self.resumed_from: float | None = found["step"] if found is not None else None
        self.started_from: int | None = found.get("source") if found is not None else None
        until = checkpoints.start().get("until") if checkpoints is not None else None
        self.until: float | None = until if isinstance(until, (int, float)) else None
        self.checkpoint_step: float | None = self.resumed_from

    # -- checkpoints -----------------------------------------------------------------------
    @property
    def checkpoints(self) -> CheckpointPlace:
        """The task's checkpoint place (a temporary one outside an experiment)."""
        if self._place is None:
            self._place = CheckpointPlace(self.task_id)
        return self._place

    @property
    def checkpoint_dir(self) -> Path:
        """The directory checkpoints are written to (node-local with ``checkpoint_local``);
        created on first use. The objective may write its own files here too."""
        d = self.checkpoints.dir
        d.mkdir(parents=True, exist_ok=True)
        return d

    def save(self, state_or_path: Any, step: float) -> Path:
        """Save a checkpoint at ``step``: a path (a file or a directory) is copied, any other
        object pickled; written atomically, and only the latest is kept. Returns its directory.

        Args:
            state_or_path: the state to pickle, or the path of a file the objective wrote.
            step: the step it was made at (the epoch); the next attempt resumes after it.
        """
        where = self.checkpoints.save(state_or_path, step)
        self.checkpoint_step = int(step) if float(step).is_integer() else float(step)
        return where

    def load(self) -> Any:
        """The latest checkpoint of this task (the state, or the saved file's path); None when
        there is none."""
        if self._place is None:
            return None
        return self._place.load()

    def checkpoint_metrics(self) -> dict:
        """What an attempt's outcome says about its checkpoints: ``checkpoint`` (the last
        step saved) and ``resumed_from``, when there are."""
        m: dict = {}
        if self.checkpoint_step is not None:
            m["checkpoint"] = self.checkpoint_step
        if self.resumed_from is not None:
            m["resumed_from"] = self.resumed_from
        if self.started_from is not None:
            m["started_from"] = self.started_from
        return m

    def report(self, step: float, loss: float, **metrics: Any) -> bool:
        """Report the loss at ``step``; returns True when the task should stop now.

        Args:
            step: how far the training got (epochs from 1, iterations); must grow.
            loss: the loss at ``step`` (lower is better).
            **metrics: extra JSON-safe values journaled with the report.
        """
        if self.stopped:
            return True
        try:
            s = float(step)
        except (TypeError, ValueError):
            s = math.nan
        try:
            v = float(loss)
        except (TypeError, ValueError):
            v = math.nan
        if math.isnan(v):
            self._warn("nan", "task %d reported loss %r at step %r: counted as the worst value by the stopper",
                       self.task_id, loss, step)
        if not math.isfinite(s) or (self.last_step is not None and s <= self.last_step):
            self._warn("step", "task %d reported step %r after step %r (steps must grow): the stopper ignores it",
                       self.task_id, step, self.last_step)
        m = {str(k): _jsonable(x) for k, x in metrics.items()}
        if self.checkpoint_step is not None:
            m.setdefault("checkpoint", self.checkpoint_step)
        stop = bool(self._channel.send(s, v, m))
        self.reports += 0 if stop else 1
        if stop:  # the decision concerns an earlier report (or the optimizer asked): this one was not sent
            self.stopped = True
            return True
        self._keep(s, v, m)
        return False

    def _keep(self, s: float, v: float, m: dict) -> None:
        if self.last_step is None or (math.isfinite(s) and s > self.last_step):
            self.last_step = s
        self.last_loss, self.last_metrics = v, m

    @property
    def should_stop(self) -> bool:
        """True when a stop has arrived (checked without blocking)."""
        if not self.stopped and self._channel.stop_requested():
            self.stopped = True
        return self.stopped

    def _warn(self, kind: str, msg: str, *args: Any) -> None:
        if kind in self._warned:
            return
        self._warned.add(kind)
        # a debug line only: the driver's stopper judges the reports and warns, once per task
        # and kind, where the user reads the run's messages (a warning here too doubled each)
        log.debug(msg, *args)

    def stopped_outcome(self) -> tuple[float | None, float | None, dict]:
        """``(step, loss, metrics)`` a stopped attempt ends with (the last judged report)."""
        step = self.last_step
        if step is not None and float(step).is_integer():
            step = int(step)
        loss = self.last_loss if self.last_loss is not None and math.isfinite(self.last_loss) else None
        return step, loss, dict(self.last_metrics)


def report_step(step: float, loss: float, *, raise_on_stop: bool = False, **metrics: Any) -> bool:
    """Report an intermediate loss of the running task (see :meth:`Trial.report`).

    Args:
        step: how far the training got (grows within a task).
        loss: the loss at ``step``.
        raise_on_stop: raise :class:`emews.Stopped` instead of returning True.
        **metrics: extra values journaled with the report.

    Returns:
        True when the task should stop now; False outside an emews task.
    """
    trial = _CURRENT.get()
    if trial is None:
        return False
    stop = trial.report(step, loss, **metrics)
    if stop and raise_on_stop:
        raise Stopped(f"task {trial.task_id} stopped early at step {trial.last_step}")
    return stop


def current_trial() -> Trial | None:
    """The running task's :class:`Trial` (None outside a task)."""
    return _CURRENT.get()


def accepts_trial(fn: Callable[..., Any]) -> bool:
    """True when ``fn(params, trial)`` is a valid call: a second positional parameter (not
    named ``comm``) or one named ``trial``."""
    try:
        sig = inspect.signature(fn)
    except (TypeError, ValueError):
        return False
    positional = [p for p in sig.parameters.values() if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    if any(p.name == "trial" for p in positional):
        return True
    return len(positional) >= 2 and positional[1].name != "comm"


def call_with_trial(fn: Callable[..., Any], params: dict, trial: Trial, with_trial: bool, **kwargs: Any) -> Any:
    """Call the objective with the trial set as the current one (and passed when it takes it)."""
    token = _CURRENT.set(trial)
    try:
        return fn(params, trial, **kwargs) if with_trial else fn(params, **kwargs)
    finally:
        _CURRENT.reset(token)
