"""Objectives for the tests inside Slurm jobs: they sleep, so tasks outlast a job's end.

``sleepy`` sleeps ``EMEWS_TEST_SECONDS`` (default 1); on the worker rank named by
``EMEWS_TEST_LONG_RANK`` (Slurm's ``SLURM_PROCID``) it sleeps ``EMEWS_TEST_LONG_SECONDS``
instead, so one worker holds a task past the job's end while the others finish theirs.
"""

from __future__ import annotations

import os
import time


def sleepy(params: dict) -> float:
    seconds = float(os.environ.get("EMEWS_TEST_SECONDS", "1"))
    long_rank = os.environ.get("EMEWS_TEST_LONG_RANK")
    if long_rank is not None and os.environ.get("SLURM_PROCID") == long_rank:
        seconds = float(os.environ.get("EMEWS_TEST_LONG_SECONDS", "600"))
    time.sleep(seconds)
    return (params["x"] - 0.3) ** 2
