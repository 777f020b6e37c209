"""The MPI pool: rank 0 drives, every other rank is a worker (mpi4py, imported lazily).

``mpiexec -n N python -m emews.run config.yaml`` (or ``srun``, ``jsrun``, Open MPI's
``mpirun``: nothing here is specific to one MPI) starts N copies of the same program.
:func:`mpi_session` (called by :func:`emews.launch.launch` on every rank) splits them::

    rank 0                                                 ranks 1 .. N-1
    ┌──────────────────────────────────────────┐           ┌───────────────────────────────┐
    │ optimizer process (spawned; never        │           │ GPU binding from the node-    │
    │ initializes MPI) ⇅ pipe                  │           │ local rank (CUDA_VISIBLE_...) │
    │ Driver: journal, retries, budget         │ TAG_SETUP │ serve(): wait for a pool      │
    │ MPIPool ───────── ("pool", spec) ───────────────────▶│ make the runner (import the   │
    │   idle deque of group leaders  ◀── ("ready"|"fatal") │ objective once)               │
    │   submit(task) ─── Task ─────────── TAG_TASK ───────▶│ leader ─▶ group: task         │
    │   wait(): iprobe + capped back-off   ◀── Result ─────│ every rank of the group runs  │
    │           and the optimizer pipe      TAG_RESULT     │ fn(params, comm=group_comm)   │
    │   shutdown() ─── None ──────────────────────────────▶│ leader: the group's Result    │
    │ session.close() ── ("exit") ─────── TAG_SETUP ──────▶│ return; MPI_Finalize at exit  │
    └──────────────────────────────────────────┘           └───────────────────────────────┘

Wire protocol (pickled, lowercase ``send``/``recv`` of small records):

* ``TAG_SETUP`` rank 0 → every worker rank: ``("pool", runner_spec)`` starts a pool,
  ``("exit", None)`` ends the worker loop.
* ``TAG_TASK`` rank 0 → group leader: a :class:`~emews.task.Task`, or ``None`` (pool over).
* ``TAG_RESULT`` leader → rank 0: a :class:`~emews.task.Result`; ``("ready", gpus, host)`` once
  the group has loaded the objective; ``("fatal", text)`` when a rank could not; ``("bye", None)``
  after ``None``.
* ``TAG_GROUP`` inside a task group: the leader forwards tasks (or ``None``); members answer
  ``(status, error)``.
* Early stopping: the leader sends each intermediate report as ``("report", Report)`` on
  ``TAG_RESULT``; rank 0 answers every one with ``("answer", task_id, attempt, stop)`` on
  ``TAG_STOP`` (and sends ``("stop", task_id, attempt)`` unasked when the optimizer stops the
  task). The leader reads the answer to report *k* at report *k + 1* (``iprobe``; it blocks
  only if that answer has not come yet), so no rank waits on another's report. When a stop
  comes, the leader tells the other ranks of its group (``("stop", task_id, attempt)`` on
  ``TAG_GROUP_STOP``), which see it at their next report: the task stops on all its ranks.

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

import collections
import dataclasses
import os
import select
import sys
import time
import traceback
from collections.abc import Sequence
from typing import Any

from ..errors import ConfigError, EmewsError, ObjectiveError
from ..task import DONE, FAILED, STOPPED, Report, Result, Task
from ._gpu import gpu_for
from ._runners import HOST, accepts_comm, execute, make_runner

__all__ = ["MPIPool", "MPISession", "mpi_session", "mpi_module", "Backoff"]

TAG_SETUP, TAG_TASK, TAG_RESULT, TAG_GROUP, TAG_STOP, TAG_GROUP_STOP = 71, 72, 73, 74, 75, 76

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
        self._unreleased: set[int] = set()  # leaders that have not said "bye" to their last pool
        self._pool: MPIPool | None = None
        self._closed = False

    @property
    def workers(self) -> int:
        """How many tasks can run at once (worker groups)."""
        return len(self.leaders)

    def pool(self, runner_spec: dict) -> MPIPool:
        """Start a pool on every worker rank with this runner (each rank builds it once)."""
        if self._closed:
            raise EmewsError("the MPI session is closed")
        if self._pool is not None and not self._pool.closed:
            raise EmewsError("shut the previous MPI pool down before starting another")
        if self._unreleased:
            self._await_byes(_stop_grace())
        for r in range(1, self._layout.size):
            self.comm.send(("pool", runner_spec), dest=r, tag=TAG_SETUP)
        self._pool = MPIPool(self, runner_spec)
        return self._pool

    def _await_byes(self, grace: float) -> None:
        """Drain rank 0's inbox until every leader has left its pool (or ``grace`` passes)."""
        deadline = time.monotonic() + grace
        backoff = Backoff()
        MPI = mpi_module()
        status = MPI.Status()
        while self._unreleased and time.monotonic() < deadline:
            if not self.comm.iprobe(MPI.ANY_SOURCE, TAG_RESULT, status):
                backoff.sleep()
                continue
            src = status.Get_source()
            obj = self.comm.recv(source=src, tag=TAG_RESULT)
            if isinstance(obj, tuple) and obj and obj[0] == "bye":
                self._unreleased.discard(src)
            backoff.reset()

    def close(self, grace: float | None = None, error: BaseException | None = None) -> None:
        """Release every worker rank; ``comm.Abort(1)`` if some are still busy after ``grace``
        seconds (default ``EMEWS_MPI_STOP_GRACE`` or 10). ``error``, the exception that ended
        the run, is printed first when the job must be aborted."""
        if self._closed:
            return
        self._closed = True
        grace = _stop_grace() if grace is None else grace
        self._await_byes(grace)
        if self._unreleased:
            busy = sorted(self._unreleased)
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


class MPIPool:
    """The pool contract over MPI ranks (rank 0 side). Worker ids are leader world ranks.

    Create it with :meth:`MPISession.pool`. ``wait`` polls rank 0's inbox with ``iprobe``
    and a capped back-off, sleeping in ``select`` on the ``extra`` connections.
    """

    kind = "mpi"

    def __init__(self, session: MPISession, runner_spec: dict):
        MPI = mpi_module()
        self._session = session
        self._comm = session.comm
        self._any = MPI.ANY_SOURCE
        self._status = MPI.Status()
        self.size = session.workers
        self._idle: collections.deque[int] = collections.deque()
        self._busy: dict[int, Task] = {}
        self._gpus: dict[int, str | None] = {}
        self._hosts: dict[int, str] = {}  # leader rank -> its host name
        self._backoff = _driver_backoff()
        self._fatal: str | None = None
        self.runner_spec = runner_spec
        self.closed = False
        #: called with every Report; True stops the task (the driver sets it)
        self.on_report: Any = None
        self._stopping: set[tuple[int, int]] = set()
        session._unreleased |= set(session.leaders)

    @property
    def idle(self) -> int:
        """Worker groups ready for a task."""
        return len(self._idle)

    @property
    def busy(self) -> int:
        """Worker groups running a task."""
        return len(self._busy)

    def submit(self, task: Task) -> int:
        """Send ``task`` to the longest-idle worker group; returns its leader's world rank."""
        leader = self._idle.popleft()
        self._busy[leader] = task
        self._comm.send(task, dest=leader, tag=TAG_TASK)
        self._backoff.reset()  # a result may come soon
        return leader

    def _drain(self) -> tuple[list[Result], bool]:
        """Everything in rank 0's inbox: (results, whether any worker became idle)."""
        out: list[Result] = []
        changed = False
        comm, st = self._comm, self._status
        while comm.iprobe(self._any, TAG_RESULT, st):
            src = st.Get_source()
            obj = comm.recv(source=src, tag=TAG_RESULT)
            if isinstance(obj, Result):
                self._stopping.discard((obj.task_id, obj.attempt))
                if self._busy.pop(src, None) is not None and not self.closed:
                    self._idle.append(src)
                    changed = True
                    out.append(obj)
            elif obj[0] == "ready":
                self._gpus[src], self._hosts[src] = obj[1], obj[2]
                if not self.closed:
                    self._idle.append(src)
                    changed = True
            elif obj[0] == "fatal":
                self._fatal = self._fatal or obj[1]  # raised by wait() once these results are handed over
            elif obj[0] == "bye":
                self._session._unreleased.discard(src)
            elif obj[0] == "report":
                self._answer(src, obj[1])
        return out, changed

    def _answer(self, src: int, rep: Report) -> None:
        key = (rep.task_id, rep.attempt)
        stop = key in self._stopping
        if self.on_report is not None:
            stop = bool(self.on_report(rep)) or stop
        if stop:
            self._stopping.add(key)
        self._comm.send(("answer", rep.task_id, rep.attempt, stop), dest=src, tag=TAG_STOP)

    def stop_task(self, task_id: int) -> bool:
        """Tell the group running ``task_id`` to stop it (seen at its next report)."""
        for leader, t in self._busy.items():
            if t.id == task_id:
                self._stopping.add((t.id, t.attempt))
                self._comm.send(("stop", t.id, t.attempt), dest=leader, tag=TAG_STOP)
                return True
        return False

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

    def shutdown(self, kill: bool = False) -> list[Result]:
        """End the pool on every worker rank. Idempotent.

        Without ``kill`` waits (up to a grace period) for the workers to finish what they
        run; with ``kill`` running tasks are returned as cancelled at once (their ranks stop
        after the task; :meth:`MPISession.close` aborts the job if that takes too long).
        """
        if self.closed:
            return []
        self.closed = True
        cancelled = [Result.cancelled(t, "cancelled at shutdown", worker=w, host=self._hosts.get(w))
                     for w, t in self._busy.items()] if kill else []
        self._idle.clear()
        for leader in self._session.leaders:
            self._comm.send(None, dest=leader, tag=TAG_TASK)
        if not kill:
            self._session._await_byes(_stop_grace())
        else:
            self._session._await_byes(0.2)
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


def _serve(layout: _Layout) -> None:
    """A worker rank's life: pools come and go until rank 0 says exit."""
    backoff = _worker_backoff()
    while True:
        try:
            kind, spec = _recv(layout.comm, 0, TAG_SETUP, backoff)
        except KeyboardInterrupt:  # Ctrl-C reaches every rank; rank 0 decides what happens
            continue
        if kind == "exit":
            return
        if layout.is_leader:
            _lead(layout, spec, backoff)
        else:
            _follow(layout, spec, backoff)


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


class _LeaderChannel:
    """A task's reports to rank 0; the answers (and unasked stops) read back with ``iprobe``.
    A stop is passed on to the other ranks of the group."""

    def __init__(self, comm: Any, group: Any, task: Task, backoff: Backoff):
        self.comm, self.group, self.task, self.backoff = comm, group, task, backoff
        self.outstanding = 0
        self.stop = False
        self._told = False

    def _take(self, msg: Any) -> None:
        kind, tid, attempt = msg[0], msg[1], msg[2]
        if (tid, attempt) != (self.task.id, self.task.attempt):
            return  # late, for an earlier task
        if kind == "answer":
            self.outstanding -= 1
            self.stop = self.stop or bool(msg[3])
        else:
            self.stop = True
        if self.stop and not self._told:
            self._told = True
            for member in range(1, self.group.Get_size()):
                self.group.send(("stop", tid, attempt), dest=member, tag=TAG_GROUP_STOP)

    def _read(self) -> None:
        while self.comm.iprobe(0, TAG_STOP):
            self._take(self.comm.recv(source=0, tag=TAG_STOP))

    def send(self, step: float, loss: float, metrics: dict) -> bool:
        self._read()
        while self.outstanding > 0 and not self.stop:  # the answer to the previous report
            self._take(_recv(self.comm, 0, TAG_STOP, self.backoff))
        if self.stop:
            return True
        self.comm.send(("report", Report(self.task.id, self.task.attempt, step, loss, metrics, time.time())),
                       dest=0, tag=TAG_RESULT)
        self.outstanding += 1
        return False

    def stop_requested(self) -> bool:
        self._read()
        return self.stop

    def settle(self) -> None:
        """After the task: take the answers still due, so none is left for the next task."""
        while self.outstanding > 0:
            self._take(_recv(self.comm, 0, TAG_STOP, self.backoff))


class _MemberChannel:
    """A non-leader rank of a task group: its reports go nowhere; the leader's stop comes in."""

    def __init__(self, group: Any, task: Task):
        self.group, self.task = group, task
        self.stop = False

    def send(self, step: float, loss: float, metrics: dict) -> bool:
        return self.stop_requested()

    def stop_requested(self) -> bool:
        while self.group.iprobe(0, TAG_GROUP_STOP):
            msg = self.group.recv(source=0, tag=TAG_GROUP_STOP)
            if (msg[1], msg[2]) == (self.task.id, self.task.attempt):
                self.stop = True
        return self.stop


def _lead(layout: _Layout, spec: dict, backoff: Backoff) -> None:
    comm, group = layout.comm, layout.group
    runner, error = _make(layout, spec)
    gpus = [layout.gpu]
    for member in range(1, group.Get_size()):
        m_error, m_gpu = _recv(group, member, TAG_GROUP, backoff)
        error = error or m_error
        gpus.append(m_gpu)
    if error:
        comm.send(("fatal", error), dest=0, tag=TAG_RESULT)
    else:
        comm.send(("ready", _join_gpus(gpus), HOST), dest=0, tag=TAG_RESULT)
    gpu = _join_gpus(gpus)
    while True:
        try:
            task = _recv(comm, 0, TAG_TASK, backoff)
        except KeyboardInterrupt:
            continue
        for member in range(1, group.Get_size()):
            group.send(task, dest=member, tag=TAG_GROUP)
        if task is None:
            break
        channel = _LeaderChannel(comm, group, task, backoff)
        try:
            result = execute(runner, task, layout.rank, HOST, gpu, channel)
        except KeyboardInterrupt:
            result = Result.failed(task, "interrupted (Ctrl-C)", worker=layout.rank, host=HOST, gpu=gpu)
        channel.settle()
        for member in range(1, group.Get_size()):
            m_status, m_error = _recv(group, member, TAG_GROUP, backoff)
            if m_status not in (DONE, STOPPED) and result.status in (DONE, STOPPED):
                result.status, result.loss = m_status, None
                result.error = f"rank {layout.rank + member} of the task group: {m_error}"
        comm.send(result, dest=0, tag=TAG_RESULT)
    if runner is not None:
        runner.close()
    comm.send(("bye", None), dest=0, tag=TAG_RESULT)


def _follow(layout: _Layout, spec: dict, backoff: Backoff) -> None:
    group = layout.group
    runner, error = _make(layout, spec)
    group.send((error, layout.gpu), dest=0, tag=TAG_GROUP)
    while True:
        try:
            task = _recv(group, 0, TAG_GROUP, backoff)
        except KeyboardInterrupt:
            continue
        if task is None:
            break
        try:
            status, _loss, _metrics, err, _s, _e = runner.run(task, _MemberChannel(group, task))
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
