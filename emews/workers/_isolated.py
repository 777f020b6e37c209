"""The ``isolated`` runner: every evaluation in a fresh child process of the worker.

::

    worker (MPI rank or local process)            child (python -X faulthandler, own session)
    ────────────────────────────────────          ───────────────────────────────────────────
    Popen(start_new_session=True) ──stdin──▶ payload: objective, params, sys.path (a temp file)
                                   ◀─pipe─── Outcome(status, loss, metrics, error)   [length-prefixed pickle]
    select(pidfd, pipe, timeout)              stderr → temp file → worker's stderr afterwards
    on timeout: killpg SIGTERM, SIGKILL after kill_grace
                                   ◀─pipe─── ("report", Report)  [same framing; emews.workers._wire]
    relays it to the driver, ─ctl pipe─▶ one byte per report: b"1" stop, b"0" go on

A segfault, ``os._exit``, an out-of-memory kill or a hang costs one failed (or ``timeout``)
result; the worker and its MPI rank go on. The child is started with fork + exec
(``subprocess``), never a bare fork, so it is safe after ``MPI_Init``.

The price of isolation: the child imports the objective afresh for every evaluation
(a CANDLE model that takes a minute to import pays that minute per task); the worker itself
never imports it. Use the ``python`` runner when the objective is trusted and fast to load.

Spec keys: ``objective``, ``timeout`` (seconds, optional), ``kill_grace`` (seconds between
SIGTERM and SIGKILL, default 5), ``env`` (extra environment variables for the child).
"""

from __future__ import annotations

import dataclasses
import os
import pickle
import struct
import subprocess
import sys
import tempfile
import time
from typing import Any

from ..errors import ObjectiveError
from ..task import TIMEOUT, Outcome, Task
from . import _procs
from . import _wire as wire
from ._child import BOOTSTRAP
from ._runners import RUNNERS

__all__ = ["IsolatedRunner", "DEFAULT_KILL_GRACE"]

DEFAULT_KILL_GRACE = 5.0


def _check_importable(objective: Any) -> None:
    """Fail at worker start when the objective's module cannot be found (without importing it)."""
    if not isinstance(objective, str):
        return
    import importlib.util

    mod = objective.partition(":")[0]
    try:
        found = importlib.util.find_spec(mod)
    except (ImportError, ValueError) as e:
        raise ObjectiveError(f"cannot import module {mod!r} of {objective!r}: {e}") from None
    if found is None:
        raise ObjectiveError(f"cannot import module {mod!r} of {objective!r}: no such module")


class IsolatedRunner:
    """Runs each task in a child process; crashes and timeouts become failed results.

    Args:
        spec: the runner spec (see the module docstring).
        gpu: the worker's ``CUDA_VISIBLE_DEVICES`` binding, passed on to the child.
        comm: unused (a child process cannot share the worker's MPI communicator).
    """

    def __init__(self, spec: dict, gpu: str | None = None, comm: Any = None):
        self.objective = spec["objective"]
        _check_importable(self.objective)
        self.timeout: float | None = spec.get("timeout")
        self.kill_grace = float(spec.get("kill_grace") if spec.get("kill_grace") is not None else DEFAULT_KILL_GRACE)
        self.env = _procs.child_env(spec.get("env"), gpu)
        self.checkpoints = {k: spec[k] for k in ("checkpoints", "checkpoint_local", "loss_key") if spec.get(k)}

    def run(self, task: Task, channel: Any = None) -> Outcome:
        start = time.time()
        payload = pickle.dumps({"objective": self.objective, "params": dict(task.params), "path": list(sys.path),
                                "task_id": task.id, "attempt": task.attempt, **self.checkpoints})
        read_fd, write_fd = os.pipe()
        ctl_read, ctl_write = os.pipe() if channel is not None else (None, None)  # the answers to reports
        ctl_args = [str(ctl_read)] if ctl_read is not None else []
        pass_fds = (write_fd,) if ctl_read is None else (write_fd, ctl_read)
        with tempfile.TemporaryFile() as err, tempfile.TemporaryFile() as stdin:
            stdin.write(payload)  # a file, not a pipe: writing it can never block
            stdin.seek(0)
            try:
                proc = subprocess.Popen(
                    [sys.executable, "-X", "faulthandler", "-c", BOOTSTRAP, str(write_fd), *ctl_args],
                    stdin=stdin, stderr=err, pass_fds=pass_fds, env=self.env, start_new_session=True)
            except OSError as e:
                for fd in (read_fd, write_fd, ctl_read, ctl_write):
                    if fd is not None:
                        os.close(fd)
                return Outcome.failed(f"cannot start the isolated child process: {e}").timed(start, time.time())
            os.close(write_fd)
            if ctl_read is not None:
                os.close(ctl_read)
            try:
                if channel is None:
                    outcome = self._supervise(proc, read_fd)
                else:
                    outcome = self._supervise_reports(proc, read_fd, ctl_write, channel)
            except BaseException:  # the worker is being stopped: take the task's processes with it
                _procs.kill_group(proc, 0)
                raise
            finally:
                os.close(read_fd)
                if ctl_write is not None:
                    os.close(ctl_write)
            end = time.time()
            err.seek(0)
            stderr = err.read()
        if stderr:  # the child's stderr reaches the worker's, after the fact
            try:
                sys.stderr.buffer.write(stderr)
                sys.stderr.flush()
            except (AttributeError, OSError, ValueError):
                pass
        if (outcome.status == TIMEOUT or (outcome.error or "").startswith("child process")) and stderr.strip():
            # what happened stays the last line (the one results.csv and the summary show)
            error = "last lines of the child's stderr:\n" + _procs.tail(stderr) + "\n" + (outcome.error or "")
            outcome = dataclasses.replace(outcome, error=error)
        return outcome.timed(start, end)

    def _supervise(self, proc: subprocess.Popen, read_fd: int) -> Outcome:
        data = bytearray()
        exited = _procs.wait_exit(proc, self.timeout, read_fd, data)
        if not exited:
            how = _procs.kill_group(proc, self.kill_grace)
            return Outcome.failed(f"timed out after {self.timeout:g} s; the task's process group was killed ({how})",
                                  TIMEOUT)
        _drain(read_fd, data)
        _procs.reap(proc)
        outcome = _decode(data)
        if outcome is not None:
            return outcome
        return Outcome.failed(f"child process {_procs.describe_exit(proc.returncode)} before returning a result")

    def _supervise_reports(self, proc: subprocess.Popen, read_fd: int, ctl: int,
                           channel: Any) -> Outcome:
        """Like :meth:`_supervise`, relaying the child's report frames to ``channel`` and its
        answers back on ``ctl`` (the worker waits for each answer; the child does not)."""
        data = bytearray()
        deadline = None if self.timeout is None else time.monotonic() + self.timeout
        outcome = None
        while True:
            left = None if deadline is None else deadline - time.monotonic()
            if left is not None and left <= 0:
                how = _procs.kill_group(proc, self.kill_grace)
                return Outcome.failed(f"timed out after {self.timeout:g} s; the task's process group was killed "
                                      f"({how})", TIMEOUT)
            exited = _procs.wait_exit(proc, left, read_fd, data, until_data=True)
            for frame in _frames(data):
                if _is_report(frame):
                    rep = frame[1]
                    stop = channel.send_wait(rep.step, rep.loss, rep.metrics)
                    try:
                        os.write(ctl, b"1" if stop else b"0")
                    except OSError:
                        pass  # the child has gone; its exit is seen next
                elif isinstance(frame, Outcome):
                    outcome = frame
            if exited:
                break
        _drain(read_fd, data)
        for frame in _frames(data):
            if isinstance(frame, Outcome):
                outcome = frame
        _procs.reap(proc)
        if outcome is not None:
            return outcome
        return Outcome.failed(f"child process {_procs.describe_exit(proc.returncode)} before returning a result")

    def close(self) -> None:
        pass


def _frames(data: bytearray) -> list:
    """The complete frames at the front of ``data`` (removed from it), unpickled."""
    out = []
    while len(data) >= 8:
        (n,) = struct.unpack("!Q", bytes(data[:8]))
        if len(data) < 8 + n:
            break
        blob = bytes(data[8:8 + n])
        del data[:8 + n]
        try:
            out.append(pickle.loads(blob))
        except Exception:  # noqa: BLE001 - a garbled frame is no frame
            pass
    return out


def _drain(fd: int, data: bytearray) -> None:
    """Read what is left in the result pipe without blocking (a grandchild may hold it open)."""
    os.set_blocking(fd, False)
    while True:
        try:
            chunk = os.read(fd, 1 << 16)
        except BlockingIOError:
            return
        if not chunk:
            return
        data.extend(chunk)


def _is_report(frame: Any) -> bool:
    """A REPORT message of the child (the other frame is its :class:`~emews.task.Outcome`)."""
    return isinstance(frame, tuple) and len(frame) == 2 and frame[0] == wire.REPORT


def _decode(data: bytes) -> Outcome | None:
    """The outcome frame (the last one; report frames before it are skipped)."""
    outcomes = [f for f in _frames(bytearray(data)) if isinstance(f, Outcome)]
    return outcomes[-1] if outcomes else None


RUNNERS["isolated"] = IsolatedRunner
