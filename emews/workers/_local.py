"""The local pool: N long-lived worker processes on this machine.

::

    driver ──Task──▶ pipe[i] ──▶ worker i (spawned; objective imported once)
    driver ◀─Result── pipe[i] ◀──┘

One duplex pipe per worker; the driver blocks in ``multiprocessing.connection.wait`` on all
pipes (and the optimizer's), so nothing spins. Each worker holds at most one task.

Intermediate reports travel on the same pipe::

    worker ──("report", Report)──────────────▶ pool ──on_report(Report) -> bool──▶ driver
    worker ◀─("answer", task_id, attempt, stop)─┘          (every report is answered)
    worker ◀─("stop", task_id, attempt)──────── pool.stop_task(task_id)  (unasked)

The worker never waits for the answer to the report it just sent: it reads it when the
objective reports next (see :mod:`emews.workers._trial`).
"""

from __future__ import annotations

import multiprocessing as mp
import os
import signal
import time
from collections.abc import Sequence
from multiprocessing.connection import wait as mp_wait
from typing import Any

from .._childsig import die_with_parent, emews_children
from ..errors import ObjectiveError
from ..task import Report, Result, Task
from ._gpu import gpu_for
from ._procs import describe_exit
from ._runners import HOST, execute, make_runner


def _exit_on_sigterm(signum: int, frame: Any) -> None:
    raise SystemExit(128 + signum)


class PipeChannel:
    """A task's reports down the worker's pipe; the answers and stops read back from it."""

    def __init__(self, conn: Any, task: Task):
        self.conn = conn
        self.task = task
        self.outstanding = 0  # reports sent whose answer has not been read
        self.stop = False
        self.shutdown = False  # the pool said "no more tasks" meanwhile (handled after this one)

    def _take(self, msg: Any) -> None:
        if msg is None:
            self.shutdown = True
        elif isinstance(msg, tuple) and msg and msg[0] in ("answer", "stop"):
            if msg[1] != self.task.id or msg[2] != self.task.attempt:
                return  # a late answer for an earlier task
            if msg[0] == "answer":
                self.outstanding -= 1
                self.stop = self.stop or bool(msg[3])
            else:
                self.stop = True

    def _read(self, block: bool) -> None:
        while self.conn.poll(None if block else 0):
            self._take(self.conn.recv())
            block = False

    def send(self, step: float, loss: float, metrics: dict) -> bool:
        try:
            self._read(block=False)
            while self.outstanding > 0 and not self.stop:  # the answer to the previous report
                self._read(block=True)
        except (EOFError, OSError):
            return False  # the driver is gone; the parent-death signal ends this worker
        if self.stop:
            return True
        self.conn.send(("report", Report(self.task.id, self.task.attempt, step, loss, metrics, time.time())))
        self.outstanding += 1
        return False

    def send_wait(self, step: float, loss: float, metrics: dict) -> bool:
        """Send a report and wait for its own answer (a relay: the isolated runner's worker,
        whose child goes on training meanwhile); True: stop."""
        if self.send(step, loss, metrics):
            return True
        try:
            while self.outstanding > 0 and not self.stop:
                self._read(block=True)
        except (EOFError, OSError):
            return False
        return self.stop

    def fileno(self) -> int:
        """The pipe's descriptor: readable when an answer or a stop has come."""
        return self.conn.fileno()

    def stop_requested(self) -> bool:
        try:
            self._read(block=False)
        except (EOFError, OSError):
            pass
        return self.stop


def _worker_main(conn: Any, worker: int, runner_spec: dict, env: dict[str, str]) -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the driver's to handle
    signal.signal(signal.SIGTERM, _exit_on_sigterm)  # shutdown(kill): runners clean up their children
    die_with_parent(signal.SIGTERM)  # the driver SIGKILLed: stop, with the task's children, too
    os.environ.update(env)
    gpu = env.get("CUDA_VISIBLE_DEVICES")
    try:
        runner = make_runner(runner_spec, gpu=gpu)
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
            if not isinstance(task, Task):  # a late answer or stop for a task that has ended
                continue
            channel = PipeChannel(conn, task)
            conn.send(execute(runner, task, worker, HOST, gpu, channel))
            if channel.shutdown:
                break
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

    #: a worker slot whose process dies this many times before it is ready stops the run
    MAX_START_FAILURES = 3

    def __init__(self, workers: int, runner_spec: dict, gpus: dict | None = None):
        self.size = workers
        self._ctx = mp.get_context("spawn")
        self._spec = runner_spec
        self._gpus = gpus
        self._conns: list[Any] = [None] * workers
        self._procs: list[Any] = [None] * workers
        self._by_conn: dict[Any, int] = {}
        self._busy: dict[int, Task] = {}
        self._idle: list[int] = []
        self._started: set[int] = set()  # slots whose current process said "ready"
        self._start_failures = [0] * workers
        self.respawned = 0
        self._fatal: str | None = None
        self._closed = False
        #: called with every Report; True stops the task (the driver sets it)
        self.on_report: Any = None
        self._stopping: set[tuple[int, int]] = set()  # (task id, attempt) told to stop
        for i in range(workers):
            self._start(i)

    def _start(self, i: int) -> None:
        """Start (or restart) the process of worker slot ``i``."""
        parent, child = self._ctx.Pipe(duplex=True)
        env = {}
        if self._gpus:
            env["CUDA_VISIBLE_DEVICES"] = gpu_for(i, **self._gpus)
        p = self._ctx.Process(target=_worker_main, args=(child, i, self._spec, env),
                              name=f"emews-worker-{i}", daemon=False)  # objectives may start processes
        with emews_children():  # the worker asks for the parent-death signal before its imports
            p.start()
        child.close()
        self._conns[i] = parent
        self._procs[i] = p
        self._by_conn[parent] = i

    @property
    def idle(self) -> int:
        return len(self._idle)

    @property
    def busy(self) -> int:
        return len(self._busy)

    def submit(self, task: Task) -> int | None:
        """Send ``task`` to an idle worker; ``None`` when that worker turned out to be dead
        (the task did not start: the caller keeps it, and a new process takes the slot)."""
        i = self._idle.pop()
        try:
            self._conns[i].send(task)
        except OSError:
            self._lost(i)
            return None
        self._busy[i] = task
        return i

    def wait(self, timeout: float | None, extra: Sequence[Any] = ()) -> list[Result]:
        """Results that are ready; blocks up to ``timeout`` until one is, or an ``extra``
        connection becomes readable.

        Raises:
            ObjectiveError: a worker could not load the objective.
        """
        if self._fatal:
            raise ObjectiveError(self._fatal)
        live = [] if self._closed else list(self._by_conn)
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
                self._stopping.discard((msg.task_id, msg.attempt))
                out.append(msg)
            elif msg[0] == "report":
                self._answer(c, msg[1])
            elif msg[0] == "ready":
                self._idle.append(i)
                self._started.add(i)
                self._start_failures[i] = 0
            elif msg[0] == "fatal":
                self._fatal = msg[1]  # raised once the results already read are handed over
        if self._fatal and not out:
            raise ObjectiveError(self._fatal)
        return out

    def _answer(self, conn: Any, rep: Report) -> None:
        key = (rep.task_id, rep.attempt)
        stop = key in self._stopping
        if self.on_report is not None:
            stop = bool(self.on_report(rep)) or stop
        if stop:
            self._stopping.add(key)
        try:
            conn.send(("answer", rep.task_id, rep.attempt, stop))
        except OSError:
            pass  # the worker died; wait() finds out

    def stop_task(self, task_id: int) -> bool:
        """Ask the worker running ``task_id`` to stop it (at its next report); False when no
        worker runs it."""
        for i, t in self._busy.items():
            if t.id == task_id:
                self._stopping.add((t.id, t.attempt))
                try:
                    self._conns[i].send(("stop", t.id, t.attempt))
                except OSError:
                    pass
                return True
        return False

    def _lost(self, i: int) -> list[Result]:
        """A worker process died (segfault, os._exit, OOM kill): its task becomes a failed
        result and a fresh process takes the slot, so the pool keeps its size."""
        conn = self._conns[i]
        self._by_conn.pop(conn, None)
        conn.close()
        self._procs[i].join(1)
        code = self._procs[i].exitcode
        task = self._busy.pop(i, None)
        if i in self._idle:
            self._idle.remove(i)
        if i not in self._started:
            self._start_failures[i] += 1
            if self._start_failures[i] >= self.MAX_START_FAILURES:
                raise ObjectiveError(f"worker {i} died {self._start_failures[i]} times while loading the objective "
                                     f"(last exit code {code})")
        self._started.discard(i)
        self._start(i)
        self.respawned += 1
        if task is None:
            return []
        how = describe_exit(code) if code is not None else "ended"
        why = (f"worker {i} died while running the task ({how}); a new worker process took its place "
               "(runner: isolated runs each task in a child process instead)")
        return [Result.failed(task, why, worker=i, host=HOST, end=time.time())]

    def shutdown(self, kill: bool = False) -> list[Result]:
        """Stop every worker; with ``kill`` running tasks are abandoned (returned as cancelled)."""
        if self._closed:
            return []
        self._closed = True
        cancelled = [Result.cancelled(t, "cancelled at shutdown", worker=i, host=HOST)
                     for i, t in self._busy.items()] if kill else []
        for c, i in list(self._by_conn.items()):
            if not (kill and i in self._busy):
                try:
                    c.send(None)
                except (OSError, BrokenPipeError):
                    pass
        for p in self._procs:
            p.join(0 if kill else 10)
            if p.is_alive():
                p.terminate()
                p.join(5)
        for c in self._by_conn:
            c.close()
        self._by_conn.clear()
        return cancelled
