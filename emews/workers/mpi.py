"""The MPI pool: rank 0 drives, every other rank is a worker (mpi4py, imported lazily).

``mpiexec -n N python -m emews.run config.yaml`` (or ``srun``, ``jsrun``, Open MPI's
``mpirun``: nothing here is specific to one MPI) starts N copies of the same program.
:func:`mpi_session` (called by :func:`emews.launch.launch` on every rank) splits them::

    rank 0                                                 ranks 1 .. N-1
    ┌──────────────────────────────────────────┐           ┌───────────────────────────────┐
    │ optimizer process (spawned; never        │           │ GPU binding from the node-    │
    │ initializes MPI) ⇅ pipe                  │           │ local rank (CUDA_VISIBLE_...) │
    │ Driver: journal, retries, budget         │ TAG_SETUP │ serve(): wait for a pool      │
    │ session.pool() ── ("pool", spec) ───────────────────▶│ make the runner (import the   │
    │ MPIPool: idle deque of leaders ◀──── READY | FATAL ──│ objective once)               │
    │   submit(task) ─── TASK ─────────── TAG_TASK ───────▶│ leader ─▶ group: task         │
    │   wait(): iprobe + capped back-off   ◀── RESULT ─────│ every rank of the group runs  │
    │           and the optimizer pipe      TAG_RESULT     │ fn(params, comm=group_comm)   │
    │   shutdown() ─── CLOSE ─────────────────────────────▶│ leader: the group's RESULT,   │
    │   release() ◀── BYE ─────────────────────────────────│ BYE after CLOSE               │
    │ session.close() ── ("exit") ─────── TAG_SETUP ──────▶│ return; MPI_Finalize at exit  │
    └──────────────────────────────────────────┘           └───────────────────────────────┘

Wire protocol: the messages of :mod:`emews.workers._wire` (pickled, lowercase ``send``/``recv``);
the tags only route them:

* ``TAG_SETUP`` rank 0 → every worker rank: ``("pool", runner_spec)`` starts a pool,
  ``("exit", None)`` ends the worker loop (the session's own two messages).
* ``TAG_TASK`` rank 0 → group leader: TASK (run it now, or right after the running one: held
  ahead, see :mod:`emews.workers._pool`), RECALL (hand a held task back), or CLOSE (pool over).
  The leader reads them between tasks: after sending a RESULT it takes every one that came
  and starts the held task at once.
* ``TAG_RESULT`` leader → rank 0: RESULT; READY once the group has loaded the objective
  (the same body as the local pool's); FATAL when a rank could not; RETURN (a held task,
  unstarted); BYE after CLOSE.
* ``TAG_CANCEL`` rank 0 → a busy leader: ``wire.cancel(task_id, attempt)`` when the run ends
  with the task still running (the deadline's kill_margin, a signal, an error); the leader's
  watch thread interrupts the task, which ends as cancelled, and the rank says BYE in time.
* ``TAG_GROUP`` inside a task group: the leader forwards TASK or CLOSE; members answer
  ``(status, error)``.
* Early stopping: the leader sends each intermediate report as REPORT on ``TAG_RESULT``;
  rank 0 answers every one with ANSWER on ``TAG_STOP`` (and sends STOP unasked when the
  optimizer stops the task). The leader reads the answer to report *k* at report *k + 1*
  (``iprobe``; it blocks only if that answer has not come yet: the one
  :class:`~emews.workers._wire.WorkerChannel`), so no rank waits on another's report. When a
  stop comes, the leader tells the other ranks of its group (STOP on ``TAG_GROUP_STOP``),
  which see it at their next report: the task stops on all its ranks.

Nobody spins: rank 0 and idle workers poll with ``iprobe`` and a capped back-off (the
scheme of ``mpi4py.futures``): rank 0 every ~0.25 ms for 20 ms after a message, a worker
every ~0.1 ms for 20 ms after it returned a result, then both every 1 ms, and 10-20 ms after
5 s without messages. Rank 0 sleeps in ``select`` on the optimizer's pipe, so a message from the
optimizer wakes it at once.

Multi-rank tasks (``ranks_per_task: k``): the N-1 worker ranks form (N-1)/k groups of k
consecutive ranks (``comm.Split``); the group's first rank is its leader. Every rank of the
group calls the objective as ``fn(params, comm=group_comm)`` (the objective must accept
``comm``); the leader's return value is the result, and an exception on any rank fails it.

GPU binding: with ``gpus:`` in the config each worker rank sets ``CUDA_VISIBLE_DEVICES``
from its rank among the worker ranks of its node (``Split_type(COMM_TYPE_SHARED)``), before
the objective is imported; the journal's ``gpu`` column shows the devices of each task.

Errors: a worker rank that cannot load the objective reports it and rank 0 stops the run
with that message. When rank 0 fails, it tells every worker to stop; workers still busy
after a grace period (a task cannot be interrupted from outside) make rank 0 call
``comm.Abort(1)`` with a message rather than leave the job hanging. An unexpected error in
a worker's own loop aborts the job the same way.

This module holds the pool and the worker loop only; which pool a search gets, and the
single-rank fallback to the local pool, are decided by :mod:`emews.launch`.
"""

from __future__ import annotations

import dataclasses
import os
import select
import signal
import socket
import sys
import threading
import time
import traceback
from collections.abc import Sequence
from typing import Any

from ..errors import ConfigError, EmewsError, ObjectiveError
from ..task import CANCELLED, DONE, FAILED, STOPPED, Report, Result, Task
from . import _wire as wire
from ._gpu import gpu_for
from ._pool import OnReport, PoolBase
from ._runners import HOST, accepts_comm, execute, make_runner

__all__ = ["MPIPool", "MPISession", "mpi_session", "mpi_module", "Backoff"]

TAG_SETUP, TAG_TASK, TAG_RESULT, TAG_GROUP, TAG_STOP, TAG_GROUP_STOP = 71, 72, 73, 74, 75, 76
#: rank 0 → a busy leader, when the run ends with the task still running (the job's
#: kill_margin, its warning signal): ``wire.cancel(task_id, attempt)``, read by :class:`_TaskWatch`
TAG_CANCEL = 77

#: seconds rank 0 waits for busy workers to stop after the run ended, before MPI_Abort
#: (environment variable ``EMEWS_MPI_STOP_GRACE`` overrides it)
STOP_GRACE = 10.0


def _stop_grace() -> float:
    try:
        return float(os.environ.get("EMEWS_MPI_STOP_GRACE", STOP_GRACE))
    except ValueError:
        return STOP_GRACE


def mpi_module(source: str | None = None) -> Any:
    """``mpi4py.MPI`` (importing it initializes MPI); a clear error when mpi4py is missing."""
    try:
        from mpi4py import MPI
    except ImportError as e:
        raise ConfigError(f"the MPI pool needs mpi4py ({e}): pip install \"emews[mpi]\" (and \"emews[mpich]\" for an "
                          "MPI library on a laptop or CI machine), or on a cluster build mpi4py against the site MPI "
                          "(MPICC=... pip install --no-binary mpi4py mpi4py); or set pool: local", source, "pool") from None
    return MPI


class Backoff:
    """Sleep times for a polling loop: 0 at first, then doubling from ``tmax/1024`` up to a cap.

    The cap is ``fast_max`` for the first ``fast_for`` seconds after :meth:`reset` (an answer
    is usually due soon after a message went out), then ``tmax``, then ``idle_max`` after
    ``idle_after`` seconds without activity (an idle worker in a long batch job should not
    wake up 1000 times a second).
    """

    def __init__(self, tmax: float = 0.001, fast_max: float = 0.001, fast_for: float = 0.0,
                 idle_after: float = 5.0, idle_max: float = 0.02):
        self.tmax, self.fast_max, self.fast_for = tmax, fast_max, fast_for
        self.idle_after, self.idle_max = idle_after, idle_max
        self.tmin = min(tmax, fast_max) / 1024
        self.reset()

    def reset(self) -> None:
        self.tval = 0.0
        self.since = time.monotonic()

    def next(self) -> float:
        """The next sleep time (and advance)."""
        t = self.tval
        idle = time.monotonic() - self.since
        cap = self.fast_max if idle < self.fast_for else self.tmax if idle < self.idle_after else self.idle_max
        self.tval = min(cap, max(self.tmin, self.tval * 2))
        return t

    def sleep(self) -> None:
        t = self.next()
        if t:
            time.sleep(t)


def _driver_backoff() -> Backoff:
    """Rank 0 answers within ~0.25 ms for 20 ms after a message (short tasks: the next
    result is due), then within 1 ms; after 5 s without any message it settles to 10 ms
    (results of long tasks can wait that long). Polling every 0.25 ms between the bursts of
    results of 1-s tasks was most of rank 0's CPU at 64 ranks (4,000 wake-ups a second)."""
    return Backoff(tmax=0.001, fast_max=0.00025, fast_for=0.02, idle_after=5.0, idle_max=0.01)


def _worker_backoff() -> Backoff:
    """A worker polls every ~0.1 ms for 20 ms after it sent a result (the next task is
    usually on its way), then every 1 ms, and every 20 ms after 5 s without work."""
    return Backoff(tmax=0.001, fast_max=0.0001, fast_for=0.02, idle_after=5.0, idle_max=0.02)


def _recv(comm: Any, source: int, tag: int, backoff: Backoff | None = None) -> Any:
    """Receive from ``source`` without spinning: ``iprobe`` with a back-off, then ``recv``.

    (Plain probes, not matched ones: ``MPI_Mprobe`` is slow or missing on some transports,
    and each communicator here has a single receiving thread.)
    """
    backoff = backoff or Backoff()
    backoff.reset()
    while not comm.iprobe(source, tag):
        backoff.sleep()
    return comm.recv(source=source, tag=tag)


# -- layout: who is who, which GPU (collective over the world) -------------------------------
@dataclasses.dataclass
class _Layout:
    comm: Any  # the world
    rank: int
    size: int
    ranks_per_task: int
    group: Any  # the task group's communicator (None on rank 0)
    leaders: list[int]  # world ranks of the group leaders
    gpu: str | None  # this rank's CUDA_VISIBLE_DEVICES binding

    @property
    def is_leader(self) -> bool:
        return self.rank in self.leaders


def _layout(comm: Any, ranks_per_task: int, gpus: dict | None, source: str | None) -> _Layout:
    MPI = mpi_module()
    rank, size = comm.Get_rank(), comm.Get_size()
    workers = size - 1
    if workers < 1:
        raise ConfigError(f"the MPI pool needs at least 2 ranks (1 driver + workers), got {size}", source, "pool")
    if workers % ranks_per_task:
        fits = [1 + ranks_per_task * g for g in (workers // ranks_per_task, workers // ranks_per_task + 1) if g]
        raise ConfigError(f"ranks_per_task {ranks_per_task} does not divide the {workers} worker ranks "
                          f"({size} ranks: 1 driver + {workers} workers); launch 1 + a multiple of "
                          f"{ranks_per_task} ranks, e.g. " + " or ".join(f"-n {n}" for n in fits),
                          source, "ranks_per_task")
    node = comm.Split_type(MPI.COMM_TYPE_SHARED, key=rank)
    node_workers = node.Split(MPI.UNDEFINED if rank == 0 else 0, key=rank)
    gpu = None
    if rank != 0:
        local = node_workers.Get_rank()
        node_workers.Free()
        if gpus:
            gpu = gpu_for(local, gpus.get("gpus_per_worker", 1), gpus.get("workers_per_gpu", 1), gpus.get("devices"))
            os.environ["CUDA_VISIBLE_DEVICES"] = gpu
    node.Free()
    group = comm.Split(MPI.UNDEFINED if rank == 0 else (rank - 1) // ranks_per_task, key=rank)
    if group == MPI.COMM_NULL:
        group = None
    leaders = list(range(1, size, ranks_per_task))
    return _Layout(comm, rank, size, ranks_per_task, group, leaders, gpu)


# -- rank 0 ------------------------------------------------------------------------------------
class MPISession:
    """Rank 0's handle on the worker ranks: opens pools, and releases the workers at the end.

    Made by :func:`mpi_session` (collective). Use it as a context manager: leaving it
    releases every worker rank, or aborts the job when some cannot be released.
    """

    def __init__(self, layout: _Layout):
        self._layout = layout
        self.comm = layout.comm
        self.leaders = list(layout.leaders)
        self.ranks_per_task = layout.ranks_per_task
        self._pool: MPIPool | None = None
        self._closed = False

    @property
    def workers(self) -> int:
        """How many tasks can run at once (worker groups)."""
        return len(self.leaders)

    def pool(self, runner_spec: dict, on_report: OnReport | None = None) -> MPIPool:
        """Start a pool on every worker rank with this runner (each rank builds it once).

        Args:
            runner_spec: how tasks run (see :mod:`emews.workers._runners`).
            on_report: the driver's judge of each intermediate report (True stops the task).
        """
        if self._closed:
            raise EmewsError("the MPI session is closed")
        if self._pool is not None and not self._pool.closed:
            raise EmewsError("shut the previous MPI pool down before starting another")
        if self._pool is not None:
            self._pool.release(_stop_grace())
        for r in range(1, self._layout.size):
            self.comm.send(("pool", runner_spec), dest=r, tag=TAG_SETUP)
        self._pool = MPIPool(self, runner_spec, on_report)
        return self._pool

    def close(self, grace: float | None = None, error: BaseException | None = None) -> None:
        """Release every worker rank; ``comm.Abort(1)`` if some are still busy after ``grace``
        seconds (default ``EMEWS_MPI_STOP_GRACE`` or 10). ``error``, the exception that ended
        the run, is printed first when the job must be aborted."""
        if self._closed:
            return
        self._closed = True
        grace = _stop_grace() if grace is None else grace
        busy = sorted(self._pool.release(grace)) if self._pool is not None else []
        if busy:
            why = f"emews: error: {error}\n" if error is not None else ""
            self.abort(f"{why}emews: worker rank(s) {busy} still running a task {grace:g} s after the run ended")
        for r in range(1, self._layout.size):
            self.comm.send(("exit", None), dest=r, tag=TAG_SETUP)

    def abort(self, message: str, code: int = 1) -> None:
        """Print ``message`` and abort the whole MPI job (this process never returns)."""
        _abort(self.comm, message, code)

    def __enter__(self) -> MPISession:
        return self

    def __exit__(self, exc_type: Any, exc: BaseException | None, tb: Any) -> None:
        try:
            self.close(error=exc)
        except BaseException:  # noqa: BLE001 - the workers must not be left waiting
            traceback.print_exc()
            self.abort("emews: could not release the worker ranks")


class MPIPool(PoolBase):
    """The :class:`~emews.workers.Pool` over MPI ranks (rank 0 side). Worker ids are leader world ranks.

    Create it with :meth:`MPISession.pool` (which starts it on the worker ranks). ``wait``
    polls rank 0's inbox with ``iprobe`` and a capped back-off, sleeping in ``select`` on
    the ``extra`` connections.
    """

    kind = "mpi"
    prefetch = 1

    def __init__(self, session: MPISession, runner_spec: dict, on_report: OnReport | None = None):
        super().__init__(session.workers, on_report, fifo=True)  # the longest-idle group first
        MPI = mpi_module()
        self._comm = session.comm
        self._leaders = list(session.leaders)
        self._any = MPI.ANY_SOURCE
        self._status = MPI.Status()
        self._gpus: dict[int, str | None] = {}
        self._hosts: dict[int, str] = {}  # leader rank -> its host name
        self._backoff = _driver_backoff()
        self._fatal: str | None = None
        self.runner_spec = runner_spec
        self._unreleased = set(self._leaders)  # leaders that have not said BYE
        self._src = -1  # the sender of the message _drain is handling
        self._out: list[Result] = []
        self._changed = False
        self._handlers = {wire.RESULT: self._on_result, wire.READY: self._on_ready, wire.FATAL: self._on_fatal,
                          wire.BYE: self._on_bye, wire.REPORT: self._on_report, wire.RETURN: self._on_return}

    def _send_task(self, leader: int, task: Task) -> bool:
        self._comm.send(wire.task(task), dest=leader, tag=TAG_TASK)
        self._backoff.reset()  # a result may come soon
        return True

    def _send_stop(self, leader: int, task: Task) -> None:
        self._comm.send(wire.stop(task.id, task.attempt), dest=leader, tag=TAG_STOP)

    def _send_recall(self, leader: int, task: Task) -> None:
        self._comm.send(wire.recall(task.id, task.attempt), dest=leader, tag=TAG_TASK)

    # -- the leaders' messages (from rank ``self._src``, read in _drain) ---------------------
    def _on_result(self, result: Result) -> None:
        if self._finished(self._src, result) and not self.closed:
            self._changed = True
            self._out.append(result)

    def _on_ready(self, ready: wire.Ready) -> None:
        self._gpus[self._src], self._hosts[self._src] = ready.gpu, ready.host
        if not self.closed:
            self._ready(self._src)
            self._changed = True

    def _on_return(self, task: Task) -> None:
        if not self.closed:
            self._handed_back(self._src, task)
            self._changed = True

    def _on_fatal(self, text: str) -> None:
        self._fatal = self._fatal or text  # raised by wait() once these results are handed over

    def _on_bye(self, body: None) -> None:
        self._unreleased.discard(self._src)

    def _on_report(self, rep: Report) -> None:
        self._comm.send(wire.answer(rep.task_id, rep.attempt, self._judge(rep)), dest=self._src, tag=TAG_STOP)

    def _drain(self) -> tuple[list[Result], bool]:
        """Everything in rank 0's inbox: (results, whether any worker became idle)."""
        self._out, self._changed = [], False
        comm, st, handlers = self._comm, self._status, self._handlers
        while comm.iprobe(self._any, TAG_RESULT, st):
            self._src = src = st.Get_source()
            wire.dispatch(comm.recv(source=src, tag=TAG_RESULT), handlers)
        return self._out, self._changed

    def wait(self, timeout: float | None, extra: Sequence[Any] = ()) -> list[Result]:
        """Results that are ready; blocks up to ``timeout`` until one is, a worker becomes
        idle, or an ``extra`` connection becomes readable.

        Raises:
            ObjectiveError: a worker rank could not load the objective.
        """
        deadline = None if timeout is None else time.monotonic() + timeout
        backoff = self._backoff  # reset on activity only: a quiet pool settles to slower polling
        while True:
            out, changed = self._drain()
            if self._fatal and not out:
                raise ObjectiveError(self._fatal)
            if out or changed:
                backoff.reset()
                return out
            if deadline is not None:
                left = deadline - time.monotonic()
                if left <= 0:
                    return out
            else:
                left = 1.0
            delay = min(backoff.next(), left)
            if extra:
                # select() takes microseconds; multiprocessing's wait() rounds up to 1 ms
                if select.select(extra, [], [], delay)[0]:
                    return out
            elif delay > 0:
                time.sleep(delay)

    def release(self, grace: float) -> set[int]:
        """Drain rank 0's inbox until every leader has left this pool (said BYE after CLOSE)
        or ``grace`` seconds pass; returns the leaders still in it (busy with a task)."""
        deadline = time.monotonic() + grace
        backoff = Backoff()
        comm, st = self._comm, self._status
        while self._unreleased and time.monotonic() < deadline:
            if not comm.iprobe(self._any, TAG_RESULT, st):
                backoff.sleep()
                continue
            src = st.Get_source()
            msg = comm.recv(source=src, tag=TAG_RESULT)
            if msg[0] == wire.BYE:  # the rest is late: the pool is over
                self._unreleased.discard(src)
            elif msg[0] == wire.REPORT:  # answered (stop): a cancelled task settles its reports before it ends
                rep = msg[1]
                comm.send(wire.answer(rep.task_id, rep.attempt, True), dest=src, tag=TAG_STOP)
            backoff.reset()
        return set(self._unreleased)

    def shutdown(self, kill: bool = False) -> list[Result]:
        """End the pool on every worker rank. Idempotent.

        Without ``kill`` waits (up to a grace period) for the workers to finish what they
        run; with ``kill`` running tasks are returned as cancelled at once (their ranks stop
        after the task; :meth:`MPISession.close` aborts the job if that takes too long).
        """
        if self.closed:
            return []
        self.closed = True
        if kill:  # the held tasks too: one may start after its worker's running task ended
            _send_cancels(self._comm, [*self._busy.items(), *self._held_items()])
        cancelled = self._running_as_cancelled(self._hosts.get) if kill else self._held_as_cancelled()
        self._idle.clear()
        for leader in self._leaders:
            self._comm.send(wire.close(), dest=leader, tag=TAG_TASK)
        self.release(0.2 if kill else _stop_grace())
        return cancelled

    def gpus(self) -> dict[int, str | None]:
        """The devices each worker group sees (leader rank -> ``CUDA_VISIBLE_DEVICES``)."""
        return dict(self._gpus)


def mpi_session(ranks_per_task: int = 1, gpus: dict | None = None, comm: Any = None,
                source: str | None = None) -> MPISession | None:
    """Collective over ``comm`` (default ``COMM_WORLD``): rank 0 gets an :class:`MPISession`,
    every other rank serves tasks until rank 0 closes the session, then gets ``None``.

    Args:
        ranks_per_task: ranks per task group (must divide ``size - 1``).
        gpus: GPU binding settings (``gpus_per_worker``, ``workers_per_gpu``, ``devices``),
            or ``None`` to leave ``CUDA_VISIBLE_DEVICES`` alone.
        comm: the communicator to use.
        source: the config file, named in errors.

    Raises:
        ConfigError: fewer than 2 ranks, or ``ranks_per_task`` does not divide the workers
            (raised on every rank).

    Example (``mpiexec -n 3 python script.py``)::

        session = mpi_session()
        if session is not None:          # rank 0
            with session:
                pool = session.pool({"type": "python", "objective": "emews.examples:sphere"})
                ...                       # pool.submit(task), pool.wait(1.0), pool.shutdown()
    """
    comm = comm if comm is not None else mpi_module().COMM_WORLD
    layout = _layout(comm, ranks_per_task, gpus, source)
    if layout.rank == 0:
        return MPISession(layout)
    _serve_or_abort(layout)
    return None


# -- worker ranks ------------------------------------------------------------------------------
def _abort(comm: Any, message: str, code: int = 1) -> None:
    """Print ``message``, then ``MPI_Abort``; exit for sure (some MPIs return from Abort while
    the launcher tears the job down)."""
    print(f"{message}; aborting the MPI job (MPI_Abort)", file=sys.stderr, flush=True)
    try:
        comm.Abort(code)
    finally:
        os._exit(code)


def _serve_or_abort(layout: _Layout) -> None:
    try:
        _serve(layout)
    except BaseException:  # noqa: BLE001 - a broken worker loop must not hang the job
        _abort(layout.comm, f"emews: internal error on worker rank {layout.rank} ({HOST}):\n{traceback.format_exc()}")


class _RankSignalled(KeyboardInterrupt):
    """SIGTERM or SIGUSR1 on a worker rank during a task (``scancel``, a time limit, a batch
    system's warning: they reach every rank), or rank 0's cancel: the task ends as
    cancelled, and the rank goes on serving until rank 0 ends the pool."""


def _send_cancels(comm: Any, tasks: list[tuple[int, Task]]) -> None:
    """Rank 0, ending the run with tasks still running or held: tell their leaders to cancel them."""
    for leader, t in tasks:
        comm.send(wire.cancel(t.id, t.attempt), dest=leader, tag=TAG_CANCEL)


class _TaskWatch:
    """How a worker rank's running task is ended from outside, in order.

    * SIGTERM and SIGUSR1 raise :class:`_RankSignalled` in the task (once per task) and are
      ignored between tasks: the rank is not killed, so it can report the task cancelled
      and say ``bye``; rank 0, which got the signal too, journals it and ends the pool.
    * One thread per rank relays such a signal to the main thread when the kernel gave it to
      another thread (MPI's progress thread, say): else a main thread asleep in the
      objective would not wake. On a group leader it also polls ``TAG_CANCEL`` (every 50 ms:
      nothing on the task path); rank 0's cancel for the armed task sends SIGUSR1 to the main
      thread (a real signal, so a ``time.sleep`` or a wait on a child process ends too), and
      a cancel for a task not started yet (held, or still on its way) ends it as it starts. The
      MPI job then ends in order at the deadline's kill_margin instead of by ``MPI_Abort``.
      This needs MPI_THREAD_MULTIPLE (mpi4py's default); without it, busy ranks are aborted
      after the grace, as before. Members of a multi-rank group are ended by the signal only.
    """

    def __init__(self, comm: Any, leader: bool):
        self.comm = comm
        self._lock = threading.Lock()
        self._armed: tuple[int, int] | None = None
        self._raised = False
        self._cancelled: set[tuple[int, int]] = set()  # rank 0's cancels for tasks not (yet) armed
        self._on_cancel = {wire.CANCEL: lambda key: key}
        self.fired = False  # rank 0's cancel ended the armed task
        self._done = threading.Event()
        self._thread: threading.Thread | None = None
        self._wakeup: Any = None
        if threading.current_thread() is not threading.main_thread():
            return
        self._main = threading.main_thread().ident
        for sig in (signal.SIGTERM, signal.SIGUSR1):
            signal.signal(sig, self._on_signal)
        # a signal the kernel hands to another thread (MPI's progress thread, this watch)
        # does not wake a main thread asleep in the objective: Python writes its number to
        # the wakeup fd, and the watch passes it on to the main thread
        self._wakeup, theirs = socket.socketpair()
        theirs.setblocking(False)
        self._theirs = theirs
        try:
            signal.set_wakeup_fd(theirs.fileno(), warn_on_full_buffer=False)
        except ValueError:  # pragma: no cover - not the main thread of the main interpreter
            pass
        self._mpi = leader and _thread_multiple()
        self._thread = threading.Thread(target=self._watch, name="emews-task-watch", daemon=True)
        self._thread.start()

    def _on_signal(self, signum: int, frame: Any) -> None:  # no locks here: it runs in the main thread
        if self._armed is not None and not self._raised:
            self._raised = True
            raise _RankSignalled(f"{signal.Signals(signum).name} on worker rank")

    def arm(self, task: Task) -> None:
        """``task`` starts now. Raises :class:`_RankSignalled` when rank 0 cancelled it already
        (its cancel came before the task: one held, or sent, as the run ended)."""
        key = (task.id, task.attempt)
        with self._lock:
            self.fired = key in self._cancelled
            if not self.fired:
                self._armed, self._raised = key, False
        if self.fired:
            raise _RankSignalled("cancelled by rank 0 before it started")

    def new_pool(self) -> None:
        """A pool starts: cancels of the one before are forgotten (task ids start again)."""
        with self._lock:
            self._cancelled.clear()

    def disarm(self) -> None:
        with self._lock:
            self._armed = None

    def _watch(self) -> None:
        while not self._done.is_set():
            if select.select([self._wakeup], [], [], 0.05)[0]:
                for signum in self._wakeup.recv(64):
                    if signum in (signal.SIGTERM, signal.SIGUSR1):
                        self._interrupt(signum)
            while self._mpi and self.comm.iprobe(0, TAG_CANCEL):
                tid, attempt = wire.dispatch(self.comm.recv(source=0, tag=TAG_CANCEL), self._on_cancel)
                with self._lock:
                    if self._armed == (tid, attempt) and not self._raised:
                        self.fired = True
                    elif self._armed != (tid, attempt):  # still to come (held, in transit) or ended
                        self._cancelled.add((tid, attempt))
                self._interrupt(signal.SIGUSR1, (tid, attempt))

    def _interrupt(self, signum: int, task: tuple[int, int] | None = None) -> None:
        """Signal the main thread, if it runs a task (``task``: that one) not yet interrupted."""
        with self._lock:
            if self._armed is not None and not self._raised and (task is None or task == self._armed):
                signal.pthread_kill(self._main, signum)

    def close(self) -> None:
        self._done.set()
        if self._thread is not None:
            self._thread.join()
            signal.set_wakeup_fd(-1)
            self._wakeup.close()
            self._theirs.close()


def _thread_multiple() -> bool:
    try:
        MPI = mpi_module()
        return MPI.Query_thread() == MPI.THREAD_MULTIPLE
    except Exception:  # noqa: BLE001 - no watch: the grace and MPI_Abort remain
        return False


def _serve(layout: _Layout) -> None:
    """A worker rank's life: pools come and go until rank 0 says exit."""
    watch = _TaskWatch(layout.comm, layout.is_leader)
    try:
        _serve_pools(layout, watch)
    finally:
        watch.close()


def _serve_pools(layout: _Layout, watch: _TaskWatch) -> None:
    backoff = _worker_backoff()
    while True:
        try:
            kind, spec = _recv(layout.comm, 0, TAG_SETUP, backoff)
        except KeyboardInterrupt:  # Ctrl-C reaches every rank; rank 0 decides what happens
            continue
        if kind == "exit":
            return
        if layout.is_leader:
            _lead(layout, spec, backoff, watch)
        else:
            _follow(layout, spec, backoff, watch)


def _make(layout: _Layout, spec: dict) -> tuple[Any, str | None]:
    """This rank's runner, or the reason it cannot have one."""
    try:
        runner = make_runner(spec, gpu=layout.gpu, comm=layout.group)
    except BaseException as e:  # noqa: BLE001 - reported to rank 0
        return None, f"rank {layout.rank} on {HOST}: {e}"
    fn = getattr(runner, "fn", None)
    if layout.ranks_per_task > 1 and (fn is None or not accepts_comm(fn)):
        runner.close()
        return None, (f"ranks_per_task is {layout.ranks_per_task}, so the objective must accept the group's "
                      "communicator: def objective(params, comm=None): ...")
    return runner, None


def _leader_channel(comm: Any, group: Any, task: Task, backoff: Backoff) -> wire.WorkerChannel:
    """A task's reports to rank 0, the answers (and unasked stops) read back with ``iprobe``;
    a stop is passed on to the other ranks of the group."""

    def receive(block: bool) -> Any:
        if block:
            return _recv(comm, 0, TAG_STOP, backoff)
        return comm.recv(source=0, tag=TAG_STOP) if comm.iprobe(0, TAG_STOP) else None

    def tell_group() -> None:
        for member in range(1, group.Get_size()):
            group.send(wire.stop(task.id, task.attempt), dest=member, tag=TAG_GROUP_STOP)

    return wire.WorkerChannel(task.id, task.attempt, post=lambda msg: comm.send(msg, dest=0, tag=TAG_RESULT),
                              receive=receive, on_stop=tell_group)


def _member_channel(group: Any, task: Task) -> wire.WorkerChannel:
    """A non-leader rank of a task group: its reports go nowhere; the leader's stop comes in."""

    def receive(block: bool) -> Any:
        if block:
            return _recv(group, 0, TAG_GROUP_STOP)
        return group.recv(source=0, tag=TAG_GROUP_STOP) if group.iprobe(0, TAG_GROUP_STOP) else None

    return wire.WorkerChannel(task.id, task.attempt, receive=receive)


def _lead(layout: _Layout, spec: dict, backoff: Backoff, watch: _TaskWatch) -> None:
    comm, group = layout.comm, layout.group
    watch.new_pool()
    runner, error = _make(layout, spec)
    gpus = [layout.gpu]
    for member in range(1, group.Get_size()):
        m_error, m_gpu = _recv(group, member, TAG_GROUP, backoff)
        error = error or m_error
        gpus.append(m_gpu)
    gpu = _join_gpus(gpus)
    comm.send(wire.fatal(error) if error else wire.ready(gpu, HOST), dest=0, tag=TAG_RESULT)
    inbox = wire.TaskInbox(lambda msg: comm.send(msg, dest=0, tag=TAG_RESULT))
    handlers = inbox.handlers
    while True:
        task = inbox.next()
        if task is None:
            if inbox.closing:
                break
            try:
                msg = _recv(comm, 0, TAG_TASK, backoff)
            except KeyboardInterrupt:
                continue
            wire.dispatch(msg, handlers)
            continue
        for member in range(1, group.Get_size()):
            group.send(wire.task(task), dest=member, tag=TAG_GROUP)
        channel = _leader_channel(comm, group, task, backoff)
        signalled = False
        try:
            watch.arm(task)
            try:
                result = execute(runner, task, layout.rank, HOST, gpu, channel)
            finally:
                watch.disarm()
        except _RankSignalled as e:
            why = "cancelled by rank 0 (the run ended)" if watch.fired else f"{e} {layout.rank}"
            result = Result.cancelled(task, why, worker=layout.rank, host=HOST)
            signalled = True
        except KeyboardInterrupt:
            result = Result.failed(task, "interrupted (Ctrl-C)", worker=layout.rank, host=HOST, gpu=gpu)
        channel.settle()
        for member in range(1, group.Get_size()):
            m_status, m_error = _recv(group, member, TAG_GROUP, backoff)
            if m_status not in (DONE, STOPPED) and result.status in (DONE, STOPPED):
                result.status, result.loss = m_status, None
                result.error = f"rank {layout.rank + member} of the task group: {m_error}"
        comm.send(wire.result(result), dest=0, tag=TAG_RESULT)
        while comm.iprobe(0, TAG_TASK):  # what came meanwhile: the next task (held ahead), a recall, CLOSE
            wire.dispatch(comm.recv(source=0, tag=TAG_TASK), handlers)
        if signalled:  # the run is ending (a signal, rank 0's cancel): start nothing held, hand it back
            inbox.hand_back_all()
    for member in range(1, group.Get_size()):
        group.send(wire.close(), dest=member, tag=TAG_GROUP)
    if runner is not None:
        runner.close()
    comm.send(wire.bye(), dest=0, tag=TAG_RESULT)


def _follow(layout: _Layout, spec: dict, backoff: Backoff, watch: _TaskWatch) -> None:
    group = layout.group
    runner, error = _make(layout, spec)
    group.send((error, layout.gpu), dest=0, tag=TAG_GROUP)
    handlers = {wire.TASK: lambda task: task, wire.CLOSE: lambda body: None}
    while True:
        try:
            task = wire.dispatch(_recv(group, 0, TAG_GROUP, backoff), handlers)
        except KeyboardInterrupt:
            continue
        if task is None:
            break
        try:
            watch.arm(task)
            try:
                outcome = runner.run(task, _member_channel(group, task))
            finally:
                watch.disarm()
            status, err = outcome.status, outcome.error
        except _RankSignalled as e:
            status, err = CANCELLED, f"{e} {layout.rank}"
        except KeyboardInterrupt:
            status, err = FAILED, "interrupted (Ctrl-C)"
        group.send((status, err), dest=0, tag=TAG_GROUP)
    if runner is not None:
        runner.close()


def _join_gpus(gpus: list[str | None]) -> str | None:
    seen: list[str] = []
    for g in gpus:
        for d in (g or "").split(","):
            if d and d not in seen:
                seen.append(d)
    return ",".join(seen) if seen else None
