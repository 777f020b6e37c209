"""Task runners: how a worker turns a Task into a Result.

* ``python`` (default): call the objective in the worker process; the objective is
  imported once per worker and stays loaded.

Runner specs are plain dicts (picklable, so they travel to spawned processes and MPI ranks)::

    {"type": "python", "objective": "pkg.mod:fn" | <pickled callable bytes>}
"""

from __future__ import annotations

import socket
import time
import traceback
from typing import Any, Callable

from .. import _pickling
from ..errors import ObjectiveError
from ..task import FAILED, Result, Task, outcome_from_value

__all__ = ["load_objective", "make_runner", "PythonRunner", "RUNNERS"]


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
        from ..optimizers import import_object

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


class PythonRunner:
    """Calls the objective in this process; exceptions become failed results."""

    def __init__(self, spec: dict):
        self.fn = load_objective(spec["objective"])

    def run(self, task: Task) -> tuple[str, float | None, dict, str | None, float, float]:
        start = time.time()
        try:
            value = self.fn(dict(task.params))
        except Exception as e:  # noqa: BLE001 - a failing objective is a failed result
            end = time.time()
            return FAILED, None, {}, "".join(traceback.format_exception(type(e), e, e.__traceback__)), start, end
        end = time.time()
        status, loss, metrics, error = outcome_from_value(value)
        return status, loss, metrics, error, start, end

    def close(self) -> None:
        pass


#: runner type name -> class; the MPI and isolation runners register themselves here too
RUNNERS: dict[str, Any] = {"python": PythonRunner}


#: runners that live in their own modules, imported on first use
_LAZY = {"isolated": "emews.workers._isolated", "command": "emews.workers._command"}


def make_runner(spec: dict) -> Any:
    """Build the runner a spec names (in the worker process)."""
    kind = spec.get("type", "python")
    if kind not in RUNNERS and kind in _LAZY:
        import importlib

        importlib.import_module(_LAZY[kind])
    try:
        return RUNNERS[kind](spec)
    except KeyError:
        raise ObjectiveError(f"unknown runner type {kind!r}; expected one of {sorted(RUNNERS)}") from None


def execute(runner: Any, task: Task, worker: int, host: str, gpu: str | None) -> Result:
    """Run one task and package the outcome as a Result."""
    status, loss, metrics, error, start, end = runner.run(task)
    return Result(task.id, task.params, status, loss, metrics, error, worker, host, gpu, start, end, task.attempt)


HOST = socket.gethostname()
