"""The local pool: N long-lived worker processes on this machine.

::

    driver ──Task──▶ pipe[i] ──▶ worker i (spawned; objective imported once)
    driver ◀─Result── pipe[i] ◀──┘

One duplex pipe per worker; the driver blocks in ``multiprocessing.connection.wait`` on all
pipes (and the optimizer's), so nothing spins. Each worker holds at most one task.
"""

from __future__ import annotations

import multiprocessing as mp
import os
import signal
from collections.abc import Sequence
from multiprocessing.connection import wait as mp_wait
from typing import Any

from ..errors import ObjectiveError
from ..task import CANCELLED, Result, Task
from ._gpu import gpu_for
from ._runners import HOST, execute, make_runner


def _worker_main(conn: Any, worker: int, runner_spec: dict, env: dict[str, str]) -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the driver's to handle
    os.environ.update(env)
    gpu = env.get("CUDA_VISIBLE_DEVICES")
    try:
        runner = make_runner(runner_spec)
    except BaseException as e:  # noqa: BLE001 - reported to the driver, which stops the run
        conn.send(("fatal", f"{e}"))
        return
    conn.send(("ready", worker))
    try:
        while True:
            try:
                task = conn.recv()
            except EOFError:
                break
            if task is None:
                break
            conn.send(execute(runner, task, worker, HOST, gpu))
    except KeyboardInterrupt:
        pass
    finally:
        runner.close()


class LocalPool:
    """``workers`` spawned processes, each running one task at a time.

    Args:
        workers: number of processes.
        runner_spec: how tasks run (see :mod:`emews.workers._runners`).
        gpus: GPU binding settings ``{"gpus_per_worker": int, "workers_per_gpu": int,
            "devices": [..] | None}``; ``None`` leaves ``CUDA_VISIBLE_DEVICES`` alone.
    """

    kind = "local"

    def __init__(self, workers: int, runner_spec: dict, gpus: dict | None = None):
        self.size = workers
        self._ctx = mp.get_context("spawn")
        self._conns: list[Any] = []
        self._procs: list[Any] = []
        self._busy: dict[int, Task] = {}
        self._idle: list[int] = []
        self._ready = 0
        for i in range(workers):
            parent, child = self._ctx.Pipe(duplex=True)
            env = {}
            if gpus:
                env["CUDA_VISIBLE_DEVICES"] = gpu_for(i, **gpus)
            p = self._ctx.Process(target=_worker_main, args=(child, i, runner_spec, env),
                                  name=f"emews-worker-{i}", daemon=True)
            p.start()
            child.close()
            self._conns.append(parent)
            self._procs.append(p)
        self._by_conn = {c: i for i, c in enumerate(self._conns)}
        self._closed = False

    @property
    def idle(self) -> int:
        return len(self._idle)

    @property
    def busy(self) -> int:
        return len(self._busy)

    def submit(self, task: Task) -> int:
        i = self._idle.pop()
        self._busy[i] = task
        self._conns[i].send(task)
        return i

    def wait(self, timeout: float | None, extra: Sequence[Any] = ()) -> list[Result]:
        """Results that are ready; blocks up to ``timeout`` until one is, or an ``extra``
        connection becomes readable.

        Raises:
            ObjectiveError: a worker could not load the objective.
        """
        live = [c for i, c in enumerate(self._conns) if not self._closed]
        ready = mp_wait(live + list(extra), timeout)
        out: list[Result] = []
        for c in ready:
            i = self._by_conn.get(c)
            if i is None:
                continue
            try:
                msg = c.recv()
            except (EOFError, OSError):
                out.extend(self._lost(i))
                continue
            if isinstance(msg, Result):
                self._busy.pop(i, None)
                self._idle.append(i)
                out.append(msg)
            elif msg[0] == "ready":
                self._idle.append(i)
                self._ready += 1
            elif msg[0] == "fatal":
                raise ObjectiveError(msg[1])
        return out

    def _lost(self, i: int) -> list[Result]:
        """A worker process died (killed, segfault): its task fails, the worker is gone."""
        self._by_conn.pop(self._conns[i], None)
        self._procs[i].join(1)
        code = self._procs[i].exitcode
        task = self._busy.pop(i, None)
        if i in self._idle:
            self._idle.remove(i)
        if not self._by_conn and task is None:
            raise ObjectiveError(f"every worker process died (last exit code {code})")
        if task is None:
            return []
        why = f"worker {i} died (exit code {code}) while running the task; use runner: isolated to keep workers alive"
        return [Result(task.id, task.params, "failed", error=why, worker=i, host=HOST, attempt=task.attempt)]

    def running(self) -> list[Task]:
        return list(self._busy.values())

    def shutdown(self, kill: bool = False) -> list[Result]:
        """Stop every worker; with ``kill`` running tasks are abandoned (returned as cancelled)."""
        if self._closed:
            return []
        self._closed = True
        cancelled = [Result(t.id, t.params, CANCELLED, error="cancelled at shutdown", worker=i, host=HOST, attempt=t.attempt)
                     for i, t in self._busy.items()] if kill else []
        for i, c in enumerate(self._conns):
            if i in self._by_conn.values() and (kill is False or i not in self._busy):
                try:
                    c.send(None)
                except (OSError, BrokenPipeError):
                    pass
        for p in self._procs:
            p.join(0 if kill else 10)
            if p.is_alive():
                p.terminate()
                p.join(5)
        for c in self._conns:
            c.close()
        return cancelled
