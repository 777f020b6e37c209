"""The child process of the ``isolated`` runner: one evaluation, then exit.

Started by :class:`emews.workers._isolated.IsolatedRunner` as::

    python -X faulthandler -c BOOTSTRAP <result fd> [<control fd>]

``BOOTSTRAP`` reads the payload (a pickle of plain data: the objective's path or pickled
bytes, the parameters and the worker's ``sys.path``) from stdin, extends ``sys.path`` and
calls :func:`main`, which imports the objective, calls it, and writes a length-prefixed
pickle of its :class:`~emews.task.Outcome` to the result pipe. Before it, each
intermediate report of the objective (``trial.report`` / ``emews.report_step``) is a frame
``("report", Report)`` (:mod:`emews.workers._wire`) on the same pipe; the worker relays it to the driver
and answers it on the control pipe with one byte (``b"1"``: stop, ``b"0"``: go on), which
the child reads when the objective reports next. This module never
imports mpi4py; if the objective initializes MPI it runs as a singleton (the launcher's
variables are removed from the child's environment).
"""

from __future__ import annotations

import os
import pickle
import struct
import sys
import traceback
from typing import Any

#: run with ``python -c``: needs nothing but the standard library until sys.path is set
BOOTSTRAP = (
    "import sys, pickle\n"
    "payload = pickle.load(sys.stdin.buffer)\n"
    "sys.path[:0] = [p for p in payload['path'] if p not in sys.path]\n"
    "from emews.workers._child import main\n"
    "main(payload, int(sys.argv[1]), int(sys.argv[2]) if len(sys.argv) > 2 else None)\n"
)


def _write(fd: int, outcome: Any) -> None:
    blob = pickle.dumps(outcome)
    data = struct.pack("!Q", len(blob)) + blob
    view = memoryview(data)
    while view:
        n = os.write(fd, view)
        view = view[n:]


def _channel(task_id: int, attempt: int, fd: int, ctl: int | None) -> Any:
    """The trial's :class:`~emews.workers._wire.WorkerChannel` over the two pipes: a report is
    a REPORT frame on the result pipe; its answer one byte on the control pipe."""
    from ._wire import WorkerChannel, answer

    def receive(block: bool) -> Any:
        import select

        if not select.select([ctl], [], [], None if block else 0)[0]:
            return None
        b = os.read(ctl, 1)
        if not b:
            raise EOFError("the worker is gone")
        return answer(task_id, attempt, b == b"1")

    return WorkerChannel(task_id, attempt, post=lambda msg: _write(fd, msg),
                         receive=receive if ctl is not None else None)


def main(payload: dict, fd: int, ctl: int | None = None) -> None:
    """Evaluate one parameter set and report the outcome on ``fd`` (reports too; their
    answers come on ``ctl``)."""
    from ..errors import ObjectiveError, Stopped
    from ..task import Outcome, outcome_from_value
    from ._runners import checkpoint_place, load_objective, stopped_outcome, with_checkpoints
    from ._trial import Trial, accepts_trial, call_with_trial

    task_id, attempt = payload.get("task_id", -1), payload.get("attempt", 0)
    trial = Trial(task_id, attempt, payload["params"], _channel(task_id, attempt, fd, ctl),
                  checkpoint_place(payload, task_id, payload["params"]))
    try:
        fn = load_objective(payload["objective"])
    except ObjectiveError as e:
        outcome = Outcome.failed(f"in the isolated child process: {e}")
    else:
        try:
            value = call_with_trial(fn, payload["params"], trial, accepts_trial(fn))
            outcome = stopped_outcome(trial) if trial.stopped else outcome_from_value(value, loss_key=payload.get("loss_key"))
        except Stopped as e:
            outcome = stopped_outcome(trial, str(e) or "stopped early")
        except Exception as e:  # noqa: BLE001 - a failing objective is a failed result
            outcome = Outcome.failed("".join(traceback.format_exception(type(e), e, e.__traceback__)))
    outcome = with_checkpoints(outcome, trial)
    try:
        _write(fd, outcome)
    except (TypeError, pickle.PicklingError) as e:  # metrics are JSON-safe; this is a last resort
        _write(fd, Outcome.failed(f"cannot send the result back: {e}"))
    os.close(fd)
    sys.stdout.flush()
    sys.stderr.flush()
