"""The local pool: N long-lived worker processes on this machine.

::

    driver ──Task──▶ pipe[i] ──▶ worker i (spawned; objective imported once)
    driver ◀─Result── pipe[i] ◀──┘

One duplex pipe per worker; the driver blocks in ``multiprocessing.connection.wait`` on all
pipes (and the optimizer's), so nothing spins. Each worker runs one task at a time and, while
tasks are short, holds the next one (prefetch, see :mod:`emews.workers._pool`): it starts it
right after sending the result of the current one.

Every message is one of :mod:`emews.workers._wire` (TASK, RECALL, CLOSE, STOP, ANSWER down
the pipe; READY, FATAL, REPORT, RESULT, RETURN up). Intermediate reports travel on the same pipe::

    worker ──REPORT──▶ pool ──on_report(Report) -> bool──▶ driver
    worker ◀─ANSWER───┘              (every report is answered)
    worker ◀─STOP───── pool.stop_task(task_id)  (unasked)

The worker never waits for the answer to the report it just sent: it reads it when the
objective reports next (:class:`~emews.workers._wire.WorkerChannel`).
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
from . import _wire as wire
from ._gpu import gpu_for
from ._pool import OnReport, PoolBase
from ._procs import describe_exit
from ._runners import HOST, execute, make_runner


def _exit_on_sigterm(signum: int, frame: Any) -> None:
    raise SystemExit(128 + signum)


def _pipe_receive(conn: Any) -> wire.Receive:
    """A worker channel's ``receive`` over the worker's pipe."""

    def receive(block: bool) -> Any:
        return conn.recv() if conn.poll(None if block else 0) else None

    return receive


def _worker_main(conn: Any, worker: int, runner_spec: dict, env: dict[str, str]) -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the driver's to handle
    signal.signal(signal.SIGTERM, _exit_on_sigterm)  # shutdown(kill): runners clean up their children
    die_with_parent(signal.SIGTERM)  # the driver SIGKILLed: stop, with the task's children, too
    os.environ.update(env)
    gpu = env.get("CUDA_VISIBLE_DEVICES")
    try:
        runner = make_runner(runner_spec, gpu=gpu)
    except BaseException as e:  # noqa: BLE001 - reported to the driver, which stops the run
        conn.send(wire.fatal(f"{e}"))
        return
    conn.send(wire.ready(gpu, HOST))
    receive = _pipe_receive(conn)
    send = conn.send
    inbox = wire.TaskInbox(send)
    # between tasks a late ANSWER or STOP (for a task that has ended) is passed over
    handlers = {**inbox.handlers, wire.ANSWER: wire.ignore, wire.STOP: wire.ignore}
    try:
        while True:
            task = inbox.next()
            if task is None:
                if inbox.closing:
                    break
                try:
                    msg = conn.recv()
                except EOFError:
                    break
                wire.dispatch(msg, handlers)
                continue
            channel = wire.WorkerChannel(task.id, task.attempt, send, receive, inbox=inbox)
            send(wire.result(execute(runner, task, worker, HOST, gpu, channel)))
            try:
                while conn.poll(0):  # what came meanwhile: the next task, a recall, CLOSE
                    wire.dispatch(conn.recv(), handlers)
            except EOFError:
                break
    except KeyboardInterrupt:
        pass
    finally:
        runner.close()


class LocalPool(PoolBase):
    """``workers`` spawned processes, each running one task at a time (a :class:`~emews.workers.Pool`).

    Args:
        workers: number of processes.
        runner_spec: how tasks run (see :mod:`emews.workers._runners`).
        gpus: GPU binding settings ``{"gpus_per_worker": int, "workers_per_gpu": int,
            "devices": [..] | None}``; ``None`` leaves ``CUDA_VISIBLE_DEVICES`` alone.
        on_report: the driver's judge of each intermediate report (True stops the task).
        start: start the processes now (else at :meth:`start`).
    """

    kind = "local"
    prefetch = 1

    #: a worker slot whose process dies this many times before it is ready stops the run
    MAX_START_FAILURES = 3

    def __init__(self, workers: int, runner_spec: dict, gpus: dict | None = None, on_report: OnReport | None = None,
                 *, start: bool = True):
        super().__init__(workers, on_report)
        self._ctx = mp.get_context("spawn")
        self._spec = runner_spec
        self._gpus = gpus
        self._conns: list[Any] = [None] * workers
        self._procs: list[Any] = [None] * workers
        self._by_conn: dict[Any, int] = {}
        self._started: set[int] = set()  # slots whose current process said "ready"
        self._start_failures = [0] * workers
        self.respawned = 0
        self._fatal: str | None = None
        self._from = -1  # the slot whose message wait() is handling
        self._out: list[Result] = []  # the results wait() collects
        self._lost_out: list[Result] = []  # failed results of workers found dead outside wait()
        self._handlers = {wire.RESULT: self._on_result, wire.REPORT: self._on_report, wire.READY: self._on_ready,
                          wire.FATAL: self._on_fatal, wire.RETURN: self._on_return}
        if start:
            self.start()

    def start(self) -> None:
        """Spawn every worker process (each imports the objective, then says READY). Idempotent."""
        if self._procs[0] is None and not self.closed:
            for i in range(self.size):
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

    def _send_task(self, worker: int, task: Task) -> bool:
        try:
            self._conns[worker].send(wire.task(task))
        except OSError:
            self._lost_out.extend(self._lost(worker))  # its running task's result: the next wait() returns it
            return False
        return True

    def _send_stop(self, worker: int, task: Task) -> None:
        try:
            self._conns[worker].send(wire.stop(task.id, task.attempt))
        except OSError:
            pass  # the worker died; wait() finds out

    def _send_recall(self, worker: int, task: Task) -> None:
        try:
            self._conns[worker].send(wire.recall(task.id, task.attempt))
        except OSError:
            pass  # the worker died; wait() finds out (its held task comes back)

    def wait(self, timeout: float | None, extra: Sequence[Any] = ()) -> list[Result]:
        """Results that are ready; blocks up to ``timeout`` until one is, or an ``extra``
        connection becomes readable.

        Raises:
            ObjectiveError: a worker could not load the objective.
        """
        if self._fatal:
            raise ObjectiveError(self._fatal)
        live = [] if self.closed else list(self._by_conn)
        if self._lost_out or self._returned:  # found outside wait(): handed over at once
            timeout = 0
        ready = mp_wait(live + list(extra), timeout)
        out: list[Result] = self._lost_out
        self._lost_out = []
        self._out = out
        for c in ready:
            i = self._by_conn.get(c)
            if i is None:
                continue
            try:
                msg = c.recv()
            except (EOFError, OSError):
                out.extend(self._lost(i))
                continue
            self._from = i
            wire.dispatch(msg, self._handlers)
        if self._fatal and not out:
            raise ObjectiveError(self._fatal)
        return out

    # -- the workers' messages (from worker slot ``self._from``, read in wait) --------------
    def _on_result(self, result: Result) -> None:
        self._finished(self._from, result)
        self._out.append(result)

    def _on_report(self, rep: Report) -> None:
        try:
            self._conns[self._from].send(wire.answer(rep.task_id, rep.attempt, self._judge(rep)))
        except OSError:
            pass  # the worker died; wait() finds out

    def _on_return(self, task: Task) -> None:
        self._handed_back(self._from, task)

    def _on_ready(self, ready: wire.Ready) -> None:
        self._ready(self._from)
        self._started.add(self._from)
        self._start_failures[self._from] = 0

    def _on_fatal(self, text: str) -> None:
        self._fatal = text  # raised once the results already read are handed over

    def _lost(self, i: int) -> list[Result]:
        """A worker process died (segfault, os._exit, OOM kill): its task becomes a failed
        result and a fresh process takes the slot, so the pool keeps its size."""
        conn = self._conns[i]
        self._by_conn.pop(conn, None)
        conn.close()
        self._procs[i].join(1)
        code = self._procs[i].exitcode
        self._lost_held(i)  # not started: back to the driver, no attempt spent
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
        if self.closed:
            return []
        self.closed = True
        cancelled = self._running_as_cancelled(lambda i: HOST) if kill else self._held_as_cancelled()
        for c, i in list(self._by_conn.items()):
            if not (kill and i in self._busy):
                try:
                    c.send(wire.close())
                except (OSError, BrokenPipeError):
                    pass
        for p in self._procs:
            if p is None:
                continue
            p.join(0 if kill else 10)
            if p.is_alive():
                p.terminate()
                p.join(5)
        for c in self._by_conn:
            c.close()
        self._by_conn.clear()
        return cancelled
