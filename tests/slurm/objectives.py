"""Objectives for the tests inside Slurm jobs: they sleep, so tasks outlast a job's end.

``sleepy`` sleeps ``EMEWS_TEST_SECONDS`` (default 1); on the worker rank named by
``EMEWS_TEST_LONG_RANK`` (Slurm's ``SLURM_PROCID``) it sleeps ``EMEWS_TEST_LONG_SECONDS``
instead, so one worker holds a task past the job's end while the others finish theirs. With
``EMEWS_TEST_HOLD`` (a file), every task after a worker process's first one waits while that
file exists: a job that cannot end by itself, with results already journaled.
``gated_in_job`` marks which Slurm job started which task and waits for the test's gate.
"""

from __future__ import annotations

import os
import time

_CALLS = [0]  # tasks this worker process has run


def sleepy(params: dict) -> float:
    hold = os.environ.get("EMEWS_TEST_HOLD")
    if hold and _CALLS[0] > 0:
        while os.path.exists(hold):
            time.sleep(0.1)
    _CALLS[0] += 1
    seconds = float(os.environ.get("EMEWS_TEST_SECONDS", "1"))
    long_rank = os.environ.get("EMEWS_TEST_LONG_RANK")
    if long_rank is not None and os.environ.get("SLURM_PROCID") == long_rank:
        seconds = float(os.environ.get("EMEWS_TEST_LONG_SECONDS", "600"))
    time.sleep(seconds)
    return (params["x"] - 0.3) ** 2


def gated_in_job(params: dict) -> float:
    """Writes ``started-<x>-<Slurm job id>`` in ``$EMEWS_GATE_DIR``, then waits until ``go``
    exists there (a Dask worker inside a Slurm job: the test learns which job runs which task)."""
    from pathlib import Path

    gate = Path(os.environ["EMEWS_GATE_DIR"])
    (gate / f"started-{params['x']}-{os.environ.get('SLURM_JOB_ID', 'nojob')}").touch()
    deadline = time.monotonic() + 600
    while not (gate / "go").exists():
        if time.monotonic() > deadline:
            raise TimeoutError("the test never opened the gate")
        time.sleep(0.05)
    return float(params["x"]) ** 2
