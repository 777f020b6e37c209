"""Task runners: how a worker turns a Task into a Result.

* ``python`` (default): call the objective in the worker process; the objective is
  imported once per worker and stays loaded.
* ``isolated`` (:mod:`emews.workers._isolated`): each evaluation in a child process, so
  a crash or a timeout costs one failed result, not the worker.
* ``command`` (:mod:`emews.workers._command`): an external program per evaluation.

Runner specs are plain dicts (picklable, so they travel to spawned processes and MPI ranks)::

    {"type": "python", "objective": "pkg.mod:fn" | <pickled callable bytes>,
     "env": {"OMP_NUM_THREADS": "4"}, "timeout": 60, "kill_grace": 5, ...}

A runner is built in the worker with :func:`make_runner` and has two methods:
``run(task, channel=None) -> Outcome`` (:class:`~emews.task.Outcome`: status, loss, metrics,
error, start, end) and ``close()``.
``channel`` carries the task's intermediate reports to the driver and its stop back (see
:mod:`emews.workers._trial`); a runner that ends a task early returns status ``stopped``
with the last reported loss and ``metrics["step"]``.

Reports from a Python objective: ``fn(params, trial)`` (a second positional parameter, or
one named ``trial``) gets a :class:`~emews.workers._trial.Trial`; ``fn(params)`` may call
``emews.report(step, loss)``. After ``trial.report`` returned True the objective may return
anything or raise :class:`emews.Stopped`: the attempt is ``stopped`` either way.

The MPI communicator convention: an objective whose signature accepts a ``comm`` keyword
(or ``**kwargs``) is called ``fn(params, comm=group_comm)`` on the MPI pool, where
``group_comm`` holds the ``ranks_per_task`` ranks evaluating the task together (one rank
when ``ranks_per_task`` is 1). On the local pool it is called ``fn(params)``, so give
``comm`` a default (``comm=None``) to run on both.
"""

from __future__ import annotations

import inspect
import os
import socket
import time
import traceback
from typing import Any, Callable

from .. import _pickling
from ..errors import ObjectiveError, Stopped
from ..task import STOPPED, Outcome, Result, Task, outcome_from_value
from .._checkpoints import CheckpointPlace
from ._trial import Trial, accepts_trial, call_with_trial

__all__ = ["load_objective", "make_runner", "accepts_comm", "PythonRunner", "RUNNERS", "runner_types"]


def load_objective(objective: Any) -> Callable[[dict], Any]:
    """Import ``"pkg.mod:fn"`` or unpickle a shipped callable.

    Raises:
        ObjectiveError: the objective cannot be imported or is not callable.
    """
    if isinstance(objective, bytes):
        try:
            fn = _pickling.loads(objective)
        except Exception as e:  # noqa: BLE001
            raise ObjectiveError(f"cannot unpickle the objective in the worker: {type(e).__name__}: {e}") from e
    elif isinstance(objective, str):
        from .._imports import import_object

        try:
            fn = import_object(objective, "objective")
        except ValueError as e:
            raise ObjectiveError(str(e)) from None
        except Exception as e:  # noqa: BLE001 - an import may raise anything
            raise ObjectiveError(f"cannot import objective {objective!r}: {type(e).__name__}: {e}") from e
    else:
        fn = objective
    if not callable(fn):
        raise ObjectiveError(f"objective {objective!r} is not callable")
    return fn


def accepts_comm(fn: Callable[..., Any]) -> bool:
    """True when ``fn`` can be called with a ``comm=`` keyword argument."""
    try:
        sig = inspect.signature(fn)
    except (TypeError, ValueError):
        return False
    for p in sig.parameters.values():
        if p.kind == p.VAR_KEYWORD:
            return True
        if p.name == "comm" and p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY):
            return True
    return False


class PythonRunner:
    """Calls the objective in this process; exceptions become failed results.

    Args:
        spec: the runner spec (``objective``; ``env`` is applied to this process before the
            objective is imported).
        gpu: the worker's ``CUDA_VISIBLE_DEVICES`` binding (already in the environment).
        comm: the MPI communicator of the task's rank group; passed to an objective that
            accepts ``comm`` (see the module docstring).
    """

    def __init__(self, spec: dict, gpu: str | None = None, comm: Any = None):
        if spec.get("env"):
            os.environ.update({str(k): str(v) for k, v in spec["env"].items()})
            if gpu is not None:
                os.environ["CUDA_VISIBLE_DEVICES"] = gpu
        self.spec = spec
        self.fn = load_objective(spec["objective"])
        self.kwargs = {"comm": comm} if comm is not None and accepts_comm(self.fn) else {}
        self.with_trial = accepts_trial(self.fn)
        # No task of the experiment had saved a checkpoint when this worker started (the shared
        # place is made by the first save): a first attempt then has none to resume from (its
        # task id is new), so its place is not probed on every task. Retries, interrupted
        # tasks run again and resumed experiments with checkpoints are probed as always.
        root = spec.get("checkpoints")
        self._none_saved = bool(root) and not spec.get("checkpoint_local") and not os.path.exists(root)

    def run(self, task: Task, channel: Any = None) -> Outcome:
        place = checkpoint_place(self.spec, task.id, task.params, empty=self._none_saved and task.attempt == 0)
        trial = Trial(task.id, task.attempt, dict(task.params), channel, place)
        try:
            outcome = self._run(task, trial)
        except BaseException:  # SystemExit from SIGTERM: the pool's shutdown (deadline, SIGTERM of the run)
            flush_node_local(trial)  # the latest checkpoint reaches the experiment: the next attempt resumes from it
            raise
        return with_checkpoints(outcome, trial)

    def _run(self, task: Task, trial: Trial) -> Outcome:
        start = time.time()
        try:
            value = call_with_trial(self.fn, dict(task.params), trial, self.with_trial, **self.kwargs)
        except Stopped as e:
            return stopped_outcome(trial, str(e) or "stopped early").timed(start, time.time())
        except Exception as e:  # noqa: BLE001 - a failing objective is a failed result
            end = time.time()
            return Outcome.failed("".join(traceback.format_exception(type(e), e, e.__traceback__))).timed(start, end)
        end = time.time()
        if trial.stopped:  # told to stop: whatever it returned, its loss is the last judged report's
            return stopped_outcome(trial).timed(start, end)
        return outcome_from_value(value, loss_key=self.spec.get("loss_key")).timed(start, end)

    def close(self) -> None:
        pass


def checkpoint_place(spec: dict, task_id: int, params: dict | None = None, empty: bool = False) -> CheckpointPlace | None:
    """The task's checkpoint place from the runner spec (``checkpoints``: the experiment's
    shared directory; ``checkpoint_local``: a node-local parent); None outside an experiment.
    ``empty``: known to hold no checkpoint yet (see :class:`~emews._checkpoints.CheckpointPlace`)."""
    root = spec.get("checkpoints")
    if not root:
        return None
    return CheckpointPlace(task_id, root, spec.get("checkpoint_local"), params, empty)


def flush_node_local(trial: Trial) -> None:
    """Copy the attempt's node-local checkpoint to the experiment's place (nothing to do when
    it writes there directly, or saved nothing); a failure is a warning."""
    place = trial._place
    if place is None or not place.node_local or trial.checkpoint_step is None:
        return
    try:
        place.flush()
    except OSError as e:
        import logging

        logging.getLogger("emews").warning("task %d: its checkpoint could not be copied from %s to %s: %s",
                                           trial.task_id, place.dir, place.shared, e)


def with_checkpoints(outcome: Outcome, trial: Trial) -> Outcome:
    """The outcome with the attempt's checkpoint step and ``resumed_from`` in its metrics (the
    objective's own metrics of those names win); a node-local checkpoint is flushed to the
    shared place first (a failed flush is a warning: the outcome stays)."""
    flush_node_local(trial)
    m = trial.checkpoint_metrics()
    if not m:
        return outcome
    return Outcome(outcome.status, outcome.loss, {**m, **outcome.metrics}, outcome.error, outcome.start, outcome.end)


def stopped_outcome(trial: Trial, reason: str = "stopped early") -> Outcome:
    """The outcome of an attempt that a stop ended."""
    step, loss, metrics = trial.stopped_outcome()
    metrics["step"] = step
    return Outcome(STOPPED, loss, metrics,
                   f"{reason} at step {step}" if step is not None else f"{reason} before its first report")


#: runner type name -> class; the MPI and isolation runners register themselves here too
RUNNERS: dict[str, Any] = {"python": PythonRunner}


#: runners that live in their own modules, imported on first use
_LAZY = {"isolated": "emews.workers._isolated", "command": "emews.workers._command", "candle": "emews.workers._candle"}


def runner_types() -> tuple[str, ...]:
    """The runner type names a config may give (``runner.type``): the registry's."""
    return tuple(dict.fromkeys(["python", *_LAZY, *RUNNERS]))


def make_runner(spec: dict, *, gpu: str | None = None, comm: Any = None) -> Any:
    """Build the runner a spec names (in the worker process).

    Args:
        spec: the runner spec.
        gpu: the worker's ``CUDA_VISIBLE_DEVICES`` binding, or ``None``.
        comm: the task group's MPI communicator (MPI pool only), or ``None``.

    Raises:
        ObjectiveError: unknown runner type, or the objective cannot be loaded.
    """
    kind = spec.get("type", "python")
    if kind not in RUNNERS and kind in _LAZY:
        import importlib

        importlib.import_module(_LAZY[kind])
    try:
        cls = RUNNERS[kind]
    except KeyError:
        raise ObjectiveError(f"unknown runner type {kind!r}; expected one of {sorted(set(RUNNERS) | set(_LAZY))}") from None
    return cls(spec, gpu=gpu, comm=comm)


def execute(runner: Any, task: Task, worker: int, host: str, gpu: str | None, channel: Any = None) -> Result:
    """Run one task and package the outcome as a Result (``channel``: its reports' way out)."""
    outcome = runner.run(task) if channel is None else runner.run(task, channel)
    return outcome.result(task, worker=worker, host=host, gpu=gpu)


HOST = socket.gethostname()
