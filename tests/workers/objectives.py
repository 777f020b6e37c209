"""Objectives (and a probe optimizer) for the worker tests; imported by name from configs."""

from __future__ import annotations

import ctypes
import os
import subprocess
import sys
import time
from pathlib import Path

import emews


def _world_rank() -> int | None:
    mpi = sys.modules.get("mpi4py.MPI")
    if mpi is None or not mpi.Is_initialized():
        return None
    return mpi.COMM_WORLD.Get_rank()


def where(params: dict) -> dict:
    """Reports the rank, pid and CUDA_VISIBLE_DEVICES it ran with."""
    time.sleep(params.get("sleep", 0.0))
    return {"loss": float(params["i"]), "rank": _world_rank(), "pid": os.getpid(),
            "cvd": os.environ.get("CUDA_VISIBLE_DEVICES")}


def where_all(params: dict) -> dict:
    """:func:`where`, once ``params["n"]`` worker processes have checked in to ``params["dir"]``:
    every worker gets work however slow one is to start (a lone one gives up after 120 s)."""
    meeting = Path(params["dir"], "meeting")
    meeting.mkdir(parents=True, exist_ok=True)
    (meeting / str(os.getpid())).touch()
    end = time.monotonic() + 120
    while len(os.listdir(meeting)) < params["n"] and time.monotonic() < end:
        time.sleep(0.02)
    return where(params)


def crashy(params: dict) -> dict:
    """i % 4 == 1: segfault; i % 4 == 2: os._exit(7); else fine (run it isolated)."""
    i = params["i"]
    if i % 4 == 1:
        ctypes.string_at(0)
    if i % 4 == 2:
        os._exit(7)
    return {"loss": float(i), "pid": os.getpid()}


def hang(params: dict) -> float:
    """i == 0 starts a grandchild in its process group, records pids, then hangs; others return."""
    if params["i"] != 0:
        return float(params["i"])
    child = subprocess.Popen(["sleep", "300"])
    Path(params["dir"], "pids").write_text(f"{os.getpid()} {child.pid} {os.getpgrp()}")
    time.sleep(300)
    return 0.0


def flaky_once(params: dict) -> float:
    """Fails the first time it sees a parameter set (a marker file in ``dir`` counts calls)."""
    marker = Path(params["dir"], f"seen-{params['i']}")
    if not marker.exists():
        marker.write_text("1")
        raise RuntimeError(f"first attempt of i={params['i']} fails")
    return float(params["i"])


def group(params: dict, comm=None) -> dict:
    """Multi-rank: every rank of the group runs this; reports the group's size and ranks.
    With i == 3 the second rank of the group raises."""
    ranks = comm.allgather(_world_rank())
    total = comm.allreduce(params["i"])
    if params["i"] == 3 and comm.Get_rank() == 1:
        raise RuntimeError("rank 1 of the group fails")
    return {"loss": float(params["i"]), "size": comm.Get_size(), "ranks": ranks, "sum": total}


def no_comm(params: dict) -> float:
    return 0.0


class Probe(emews.Optimizer):
    """Random search that journals whether MPI was ever loaded in the optimizer process."""

    lookahead = 4

    def ask(self, n):
        return self.space.sample(n, self.rng)

    def log(self):
        return {"mpi_loaded": "mpi4py.MPI" in sys.modules, "pid": os.getpid()}


def dies(params: dict) -> float:
    """Sleeps ``sleep`` s, then with ``die`` the worker process exits (code 3); else returns ``x``."""
    time.sleep(params.get("sleep", 0.0))
    if params.get("die"):
        os._exit(3)
    return float(params.get("x", 0.0))
