"""The child process of the ``isolated`` runner: one evaluation, then exit.

Started by :class:`emews.workers._isolated.IsolatedRunner` as::

    python -X faulthandler -c BOOTSTRAP <result fd>

``BOOTSTRAP`` reads the payload (a pickle of plain data: the objective's path or pickled
bytes, the parameters and the worker's ``sys.path``) from stdin, extends ``sys.path`` and
calls :func:`main`, which imports the objective, calls it, and writes a length-prefixed
pickle of ``(status, loss, metrics, error)`` to the result pipe. This module never
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
    "main(payload, int(sys.argv[1]))\n"
)


def _write(fd: int, outcome: Any) -> None:
    blob = pickle.dumps(outcome)
    data = struct.pack("!Q", len(blob)) + blob
    view = memoryview(data)
    while view:
        n = os.write(fd, view)
        view = view[n:]


def main(payload: dict, fd: int) -> None:
    """Evaluate one parameter set and report the outcome on ``fd``."""
    from ..errors import ObjectiveError
    from ..task import FAILED, outcome_from_value
    from ._runners import load_objective

    try:
        fn = load_objective(payload["objective"])
    except ObjectiveError as e:
        outcome: Any = (FAILED, None, {}, f"in the isolated child process: {e}")
    else:
        try:
            outcome = outcome_from_value(fn(payload["params"]))
        except Exception as e:  # noqa: BLE001 - a failing objective is a failed result
            outcome = (FAILED, None, {}, "".join(traceback.format_exception(type(e), e, e.__traceback__)))
    try:
        _write(fd, outcome)
    except (TypeError, pickle.PicklingError) as e:  # metrics are JSON-safe; this is a last resort
        _write(fd, (FAILED, None, {}, f"cannot send the result back: {e}"))
    os.close(fd)
    sys.stdout.flush()
    sys.stderr.flush()
