"""The local pool: N long-lived worker processes on this machine.

::

    driver ──Task──▶ pipe[i] ──▶ worker i (spawned; objective imported once)
    driver ◀─Result── pipe[i] ◀──┘

One duplex pipe per worker; the driver blocks in ``multiprocessing.connection.wait`` on all
pipes (and the optimizer's), so nothing spins. Each worker runs one task at a time and, while
tasks are short, holds the next one (prefetch, see :mod:`emews.workers._pool`): it starts it
right after sending the result of the current one. While tasks are far shorter than a round
trip through the driver (no-op and sub-millisecond tasks), it holds up to ``prefetch_deep``
(8), so it keeps running while the driver reads a batch of results.

Every message is one of :mod:`emews.workers._wire` (TASK, RECALL, CLOSE, STOP, ANSWER down
the pipe; READY, FATAL, REPORT, RESULT, RETURN up). Intermediate reports travel on the same pipe::

    worker ──REPORT──▶ pool ──on_report(Report) -> bool──▶ driver
    worker ◀─ANSWER───┘              (every report is answered)
    worker ◀─STOP───── pool.stop_task(task_id)  (unasked)

The worker never waits for the answer to the report it just sent: it reads it when the
objective reports next (:class:`~emews.workers._wire.WorkerChannel`).
"""

from __future__ import annotations

import math
import multiprocessing as mp
import os
import pickle
import select
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


#: messages on the pipes are pickled with plain :func:`pickle.dumps` (what ``Connection.send``
#: does, without building a ``ForkingPickler`` and its dispatch table per message: a few µs
#: of every task, twice); ``Connection.recv`` reads them as before
_PROTOCOL = pickle.HIGHEST_PROTOCOL


def _pipe_sender(conn: Any) -> Any:
    """``send(message)`` over a pipe end (see :data:`_PROTOCOL`)."""
    send_bytes, dumps = conn.send_bytes, pickle.dumps

    def send(message: Any) -> None:
        send_bytes(dumps(message, _PROTOCOL))

    return send


def _readable(conn: Any) -> Any:
    """``readable() -> bool``: has something come on ``conn`` (or has its other end closed)?
    One ``poll`` registered once (``Connection.poll`` builds a selector on every call)."""
    poller = select.poll()
    poller.register(conn.fileno(), select.POLLIN)
    poll = poller.poll

    def readable() -> bool:
        return bool(poll(0))

    return readable


def _pipe_receive(conn: Any, readable: Any) -> wire.Receive:
    """A worker channel's ``receive`` over the worker's pipe (``readable``: see :func:`_readable`)."""

    def receive(block: bool) -> Any:
        return conn.recv() if block or readable() else None

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
    send = _pipe_sender(conn)
    send(wire.ready(gpu, HOST))
    readable = _readable(conn)
    receive = _pipe_receive(conn, readable)
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
                # what came meanwhile, before anything held starts: the next tasks, a recall, CLOSE
                # (read even with nothing held yet: a task held while this one ran may be in the
                # pipe with its RECALL behind it)
                while readable():
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
    prefetch_deep = 8

    #: a worker slot whose process dies this many times before it is ready stops the run
    MAX_START_FAILURES = 3

    def __init__(self, workers: int, runner_spec: dict, gpus: dict | None = None, on_report: OnReport | None = None,
                 *, start: bool = True):
        super().__init__(workers, on_report)
        self._ctx = mp.get_context("spawn")
        self._spec = runner_spec
        self._gpus = gpus
        self._conns: list[Any] = [None] * workers
        self._sends: list[Any] = [None] * workers  # each pipe's send (see _pipe_sender)
        # every worker's pipe end stays registered in one poll (wait() on it costs one system call;
        # multiprocessing's wait() builds and fills a selector on every call); the extra
        # connections wait() is given (the optimizer's pipe) are registered while they are given
        self._poller = select.poll()
        self._by_fd: dict[int, Any] = {}  # fd -> the worker's pipe end, or an extra connection
        self._extra_fds: set[int] = set()
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
        self._sends[i] = _pipe_sender(parent)
        self._procs[i] = p
        self._by_conn[parent] = i
        fd = parent.fileno()
        self._by_fd[fd] = parent
        self._extra_fds.discard(fd)  # a closed extra's number, now this pipe's
        self._poller.register(fd, select.POLLIN)

    def _send_task(self, worker: int, task: Task) -> bool:
        try:
            self._sends[worker](wire.task(task))
        except OSError:
            self._lost_out.extend(self._lost(worker))  # its running task's result: the next wait() returns it
            return False
        return True

    def _send_stop(self, worker: int, task: Task) -> None:
        try:
            self._sends[worker](wire.stop(task.id, task.attempt))
        except OSError:
            pass  # the worker died; wait() finds out

    def _send_recall(self, worker: int, task: Task) -> None:
        try:
            self._sends[worker](wire.recall(task.id, task.attempt))
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
        if self._lost_out or self._returned:  # found outside wait(): handed over at once
            timeout = 0
        ready = mp_wait(list(extra), timeout) if self.closed else self._poll(timeout, extra)
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

    def _poll(self, timeout: float | None, extra: Sequence[Any]) -> list[Any]:
        """The worker pipes and ``extra`` connections that are readable (or closed), waiting
        up to ``timeout`` seconds (None: until one is), as ``multiprocessing.connection.wait``."""
        fds = {c.fileno(): c for c in extra}
        if fds.keys() != self._extra_fds:
            for fd in self._extra_fds - fds.keys():
                if self._by_fd.get(fd) not in self._by_conn:  # (its number may be a worker's pipe now)
                    self._by_fd.pop(fd, None)
                    self._poller.unregister(fd)
            for fd, c in fds.items():
                self._by_fd[fd] = c
                self._poller.register(fd, select.POLLIN)
            self._extra_fds = set(fds)
        ms = -1 if timeout is None else max(0, math.ceil(timeout * 1e3))
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            ready = self._poller.poll(ms)
            if ready:
                by_fd = self._by_fd
                return [by_fd[fd] for fd, _ in ready if fd in by_fd]
            if deadline is None:
                continue
            left = deadline - time.monotonic()
            if left <= 0:
                return []
            ms = math.ceil(left * 1e3)

    # -- the workers' messages (from worker slot ``self._from``, read in wait) --------------
    def _on_result(self, result: Result) -> None:
        self._finished(self._from, result)
        self._out.append(result)

    def _on_report(self, rep: Report) -> None:
        try:
            self._sends[self._from](wire.answer(rep.task_id, rep.attempt, self._judge(rep)))
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
        self._forget(conn)
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
            self._forget(c)
            c.close()
        self._by_conn.clear()
        return cancelled

    def _forget(self, conn: Any) -> None:
        """Take a worker's pipe end out of the poll (before it is closed: its number is reused)."""
        try:
            fd = conn.fileno()
        except OSError:
            return
        if self._by_fd.get(fd) is conn:
            del self._by_fd[fd]
            self._poller.unregister(fd)
