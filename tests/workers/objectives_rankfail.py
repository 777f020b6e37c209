"""Imports on every worker rank but rank 2, which fails once rank 1 is busy with a task (or
after 30 s); the objective sleeps 60 s (``stubborn``: and will not be interrupted, not even by
rank 0's cancel). The marker file lives in the run's working directory."""

import os
import time

from mpi4py import MPI

MARKER = "rank1-busy.marker"

if MPI.COMM_WORLD.Get_rank() == 2:
    end = time.monotonic() + 30
    while not os.path.exists(MARKER) and time.monotonic() < end:  # a loaded machine starts slowly
        time.sleep(0.05)
    time.sleep(0.2)
    raise ImportError("no GPU on this rank (pretend)")


def slow(params: dict) -> float:
    open(MARKER, "w").close()
    time.sleep(60)
    return 0.0


def stubborn(params: dict) -> float:
    open(MARKER, "w").close()
    end = time.monotonic() + 60
    while time.monotonic() < end:
        try:
            time.sleep(max(0.0, end - time.monotonic()))
        except BaseException:  # noqa: BLE001 - a task that cannot be cancelled (a C extension's loop)
            pass
    return 0.0
