"""Objectives and a plug-in optimizer for the kill-and-resume tests (imported by the workers).

Every finished evaluation appends its parameters to the file named by ``$KILLABLE_LOG``
(one JSON line, written with O_APPEND before the result is returned), so a test can count
how often each point was really evaluated.

With ``$KILLABLE_GATE`` set (a directory, see ``helpers.Gate``), every objective first
waits at the test's gate: it writes a ``started-*`` marker, then blocks until it claims a
token or the gate is open, so a test decides when tasks finish instead of the machine's speed.
"""

from __future__ import annotations

import json
import os
import time

from emews import Optimizer


def _record(params: dict) -> None:
    path = os.environ.get("KILLABLE_LOG")
    if path:
        line = (json.dumps(params, sort_keys=True) + "\n").encode()
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            os.write(fd, line)
        finally:
            os.close(fd)


def _gate() -> None:
    """Wait at the test's gate (``$KILLABLE_GATE``), when there is one."""
    gate = os.environ.get("KILLABLE_GATE")
    if not gate:
        return
    name = f"started-{os.getpid()}-{time.monotonic_ns()}"
    with open(os.path.join(gate, "tmp-" + name), "w") as f:
        f.write(f"{time.monotonic()!r}\n")
    os.rename(os.path.join(gate, "tmp-" + name), os.path.join(gate, name))  # whole, for the test reading it
    end = time.monotonic() + 600  # a test that died leaves no task blocked for ever
    while time.monotonic() < end:
        if os.path.exists(os.path.join(gate, "open")):
            return
        for name in sorted(os.listdir(gate)):
            if name.startswith("token-"):
                try:  # a rename succeeds for one task only: the token is claimed
                    os.rename(os.path.join(gate, name), os.path.join(gate, f"used-{name[6:]}-{os.getpid()}"))
                    return
                except FileNotFoundError:
                    continue
        time.sleep(0.02)
    raise RuntimeError(f"the test's gate {gate} did not let this task through in 600 s")


def slow(params: dict) -> float:
    """A deterministic loss after ``$KILLABLE_SLEEP`` seconds (default 0.05), past the gate."""
    _gate()
    time.sleep(float(os.environ.get("KILLABLE_SLEEP", "0.05")))
    loss = sum((float(v) - 0.3) ** 2 for k, v in sorted(params.items()) if isinstance(v, (int, float)))
    _record(params)
    return loss


def sleepy(params: dict) -> float:
    """Sleeps ``params["t"]`` seconds past the gate (the deadline tests); appends its pid to
    ``$KILLABLE_PIDS`` first, when set (the worker-kill test)."""
    pids = os.environ.get("KILLABLE_PIDS")
    if pids:
        with open(pids, "a") as f:
            f.write(f"{os.getpid()}\n")
    _gate()
    time.sleep(float(params["t"]))
    _record(params)
    return float(params["t"])


class Drift(Optimizer):
    """A small ask/tell plug-in without ``restore``: random points, then steps around the best.

    On a resume it gets the history through ``tell``, and since it starts from the same seed
    its first proposals repeat the first session's: emews answers those from the journal.
    """

    def __init__(self, space, seed=None, step: float = 0.2):
        super().__init__(space, seed)
        self.step = step
        self.best_params: dict | None = None
        self.best_loss = float("inf")

    def ask(self, n):
        out = []
        for p in self.space.sample(n, self.rng):
            if self.best_params is not None and self.rng.random() < 0.5:
                p = {k: min(1.0, max(-1.0, v + self.step * float(self.rng.normal())))
                     for k, v in self.best_params.items()}
            out.append(p)
        return out

    def tell(self, results):
        for r in results:
            if r.ok and r.loss < self.best_loss:
                self.best_params, self.best_loss = dict(r.params), r.loss


def flaky(params: dict) -> float:
    """Fails the first time a point is evaluated, succeeds the second (retries); each attempt
    waits at the gate."""
    import hashlib

    _gate()

    mark = os.path.join(os.environ["KILLABLE_MARKS"], hashlib.sha1(json.dumps(params, sort_keys=True).encode()).hexdigest())
    time.sleep(float(os.environ.get("KILLABLE_SLEEP", "0.05")))
    if not os.path.exists(mark):
        open(mark, "w").close()
        raise RuntimeError("first try fails")
    _record(params)
    return sum(float(v) for v in params.values() if isinstance(v, (int, float)))


class Recorder(Optimizer):
    """Random proposals (so a resumed one repeats its first session's); every task id it is
    told, through tell or as history, goes to ``$KILLABLE_TELLS`` as ``$KILLABLE_SESSION id``."""

    def __init__(self, space, seed=None):
        super().__init__(space, seed)
        self.session = int(os.environ.get("KILLABLE_SESSION", "1"))

    def ask(self, n):
        return self.space.sample(n, self.rng)

    def tell(self, results):
        with open(os.environ["KILLABLE_TELLS"], "a") as f:
            for r in results:
                f.write(f"{self.session} {r.task_id}\n")


def two(params: dict) -> dict:
    """Two objectives and a constrained metric (no ``loss``), past the gate: ``f1``, ``f2`` to
    minimize, ``mem`` (feasible at most 1.5)."""
    _gate()
    time.sleep(float(os.environ.get("KILLABLE_SLEEP", "0.05")))
    x0, x1 = float(params["x0"]), float(params["x1"])
    _record(params)
    return {"f1": (x0 - 0.5) ** 2 + x1 ** 2, "f2": (x0 + 0.5) ** 2 + x1 ** 2, "mem": 1.0 + x1}
