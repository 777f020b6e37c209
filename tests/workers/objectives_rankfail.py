"""Imports on every worker rank but rank 2 (which fails after a short delay); its objective sleeps."""

import time

from mpi4py import MPI

if MPI.COMM_WORLD.Get_rank() == 2:
    time.sleep(1.0)
    raise ImportError("no GPU on this rank (pretend)")


def slow(params: dict) -> float:
    time.sleep(60)
    return 0.0
