"""Rank 0's cancel that reaches a worker rank before its task does (a task held ahead, or
sent, as the run ends): ``mpiexec -n 2 python tests/workers/mpi_cancel_first.py``.

The objective waits at a closed gate (``$KILLABLE_GATE``): run, it would never end. Rank 0
sends the cancel, then the task; the rank must end it as cancelled without starting it.
Prints one JSON line: ``[task_id, status, error]`` of each result.
"""

import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from emews.task import Task  # noqa: E402
from emews.workers.mpi import _send_cancels, mpi_session  # noqa: E402

session = mpi_session()
if session is not None:
    with session:
        pool = session.pool({"type": "python", "objective": "killable:slow"})
        end = time.monotonic() + 120
        while pool.idle < 1 and time.monotonic() < end:
            pool.wait(0.5)
        task = Task(id=7, params={"x0": 0.1}, attempt=0)
        _send_cancels(session.comm, [(1, task)])
        # the rank's watch polls cancels every 50 ms: this lets it take the cancel before the
        # task arrives (the case under test); the outcome must not depend on it
        time.sleep(0.5)
        pool.submit(task)
        results = []
        while not results and time.monotonic() < end:
            results += pool.wait(1.0)
        print(json.dumps([[r.task_id, r.status, r.error] for r in results]), flush=True)
        pool.shutdown()
