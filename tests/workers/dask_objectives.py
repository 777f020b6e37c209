"""Objectives for the Dask pool tests: each attempt marks its start, then waits for the test's gate."""

from __future__ import annotations

import os
import time
from pathlib import Path


def gated(params: dict) -> float:
    """Writes ``started-<x>-<pid>`` in ``$EMEWS_GATE_DIR``, then waits until ``go`` exists there."""
    _wait_at_gate(params["x"], "go")
    return float(params["x"]) ** 2


def _wait_at_gate(x: object, name: str) -> None:
    """Write ``started-<x>-<pid>`` in ``$EMEWS_GATE_DIR``, then wait until the file ``name`` exists there."""
    gate = Path(os.environ["EMEWS_GATE_DIR"])
    (gate / f"started-{x}-{os.getpid()}").touch()
    deadline = time.monotonic() + 300
    while not (gate / name).exists():
        if time.monotonic() > deadline:
            raise TimeoutError("the test never opened the gate")
        time.sleep(0.02)


class OneSlotEach:
    """An ask/tell optimizer that asks only for free worker slots (``lookahead = 0``, like
    ``mbo``): x = 0, 1, 2... So it proposes a point for a new worker only when emews tells it
    the capacity grew."""

    lookahead = 0

    def __init__(self, space, seed=None):
        self.next = 0

    def ask(self, n: int) -> list[dict]:
        out = [{"x": self.next + i} for i in range(n)]
        self.next += n
        return out

    def tell(self, results: list) -> None:
        pass


def bound(params: dict) -> dict:
    """Sleeps a little and says where it ran: the worker's ``CUDA_VISIBLE_DEVICES``, its pid and
    its own start and end times (``time.time()``)."""
    t0 = time.time()
    time.sleep(0.2)
    return {"loss": float(params["x"]), "cuda": os.environ.get("CUDA_VISIBLE_DEVICES"), "pid": os.getpid(),
            "t0": t0, "t1": time.time()}


def gate_first(params: dict) -> float:
    """x = 0 waits for the test's gate (as :func:`gated`); every other x returns at once."""
    if params["x"] == 0:
        return gated(params)
    return float(params["x"]) ** 2


def gate_three(params: dict) -> float:
    """x = 0 waits for the test's gate ``go`` (as :func:`gated`); x = 1 and 2 mark their start
    and wait for ``go-rest``; every other x returns at once."""
    x = params["x"]
    if x == 0:
        return gated(params)
    if x in (1, 2):
        _wait_at_gate(x, "go-rest")
    return float(x) ** 2


def numpy_loss(params: dict) -> dict:
    """A loss of numpy's float type (msgpack cannot carry it as it is) and the pid it ran in."""
    import numpy as np

    return {"loss": np.float64(params["x"]) ** 2, "pid": os.getpid()}
