"""The Dask pool: an elastic pool of Dask worker processes that join and leave at any time.

::

    driver ──submit(task)──▶ DaskPool ──client.submit(_attempts, pinned to worker w)──▶ scheduler ──▶ worker w
    driver ◀──wait()──────── DaskPool ◀── subscribe_topic(reports) ◀── worker.log_event(RESULT) ◀──┘
                                      ◀── future ended (without a result: the worker died) ◀──┘
           ◀─on_report───── ◀── subscribe_topic(reports) ◀── worker.log_event(REPORT) ◀─ WorkerChannel
                            ──── Queue(inbox of w).put(ANSWER / STOP) ──────────────────▶ WorkerChannel
    joins, leaves ◀──────── subscribe_topic("all"): add-worker / remove-worker (and a periodic check)

Dask distributed moves everything (no networking of ours): the tasks the driver hands to one
worker in one round travel as one future pinned to that worker (``workers=[w]``, no other worker
allowed, ``retries=0``, never pure) that runs them one after the other, so the scheduler never
moves or reruns an attempt behind the journal's back; each result travels as an event the moment
it is ready. A worker that leaves
(SIGKILL, node failure, the end of its batch job) takes its running attempt with it: the pool
returns that attempt as *cancelled* with the worker it ran on, and the driver runs the task again
first under a new attempt number (the same mechanism as a task left open by a killed job, on
resume). Its late result, if one ever comes, is dropped: results are never doubled.

Capacity is the workers present: :attr:`DaskPool.size` and :attr:`DaskPool.idle` follow every
join and leave; each worker runs one task at a time (start them with ``--nthreads 1``). With no
worker the search waits; it goes on as soon as one joins.

Each busy worker also holds its next task, queued by Dask on the worker (a later future pinned
to it, or a later place in the same one), which starts it the moment the one before ends (no
round trip through the driver and the scheduler between two tasks): while tasks are short (see
:mod:`emews.workers._pool`), and unlike the other pools for tasks up to
:attr:`DaskPool.PREFETCH_BELOW` too while the driver has more work to come than half the workers
(that round trip is tens to hundreds of ms on a loaded machine). Once tasks are far shorter than
it (:attr:`DaskPool.DEEP_BELOW`) a worker holds up to :attr:`DaskPool.prefetch_deep` tasks, and
the driver's round hands each worker a batch. Futures carry decreasing priorities, so a worker
starts them in the order sent. A held task is never taken back (its cancel could race its start:
a stop lets it run, and a worker idle at the end of a search does not take it over); a worker lost
while running the task before it
hands it back unstarted. ``dask.resources`` (e.g. ``{GPU: 1}``) is asked by every task; only
workers that offer it are used. With ``adapt``, the pool's demand steers Dask's ``Adaptive``:
grow while every worker is busy, retire workers idle for ``adapt.idle`` s down to ``minimum``.

Intermediate reports travel as Dask events (``Worker.log_event`` on a topic this pool subscribes
to), the answers and stops as messages on a Dask ``Queue`` per worker (its *inbox*), both read by
the same :class:`~emews.workers._wire.WorkerChannel` as on every other pool.

``distributed`` is imported when a pool is built, so ``emews`` imports without it.
"""

from __future__ import annotations

import collections
import functools
import logging
import os
import time
import uuid
from collections.abc import Mapping, Sequence
from multiprocessing.connection import wait as mp_wait
from typing import Any

from ..errors import EmewsError, ObjectiveError
from ..task import Report, Result, Task
from . import _wire as wire
from ._pool import OnReport, PoolBase
from ._runners import HOST, execute, make_runner

__all__ = ["DaskPool", "DaskPoolError", "distributed_module", "INSTALL_HINT", "CLUSTER_TYPES"]

log = logging.getLogger("emews")

INSTALL_HINT = 'pip install "emews[dask]"'

#: ``dask.cluster.type`` -> the dask-jobqueue class that submits worker jobs (``local``: distributed's own)
CLUSTER_TYPES = {"slurm": "SLURMCluster", "pbs": "PBSCluster", "lsf": "LSFCluster", "sge": "SGECluster",
                 "local": "LocalCluster"}

#: how often (seconds) the pool checks the scheduler's worker list besides its join/leave events
RECONCILE_EVERY = 2.0
#: how long (seconds) the scheduler may be unreachable before the pool gives up on it
SCHEDULER_GRACE = 10.0
#: tasks shorter than this (seconds, recent mean) are held ahead by busy workers however much work
#: is to come (one of them waits at most one short task); longer ones only while there is more
#: work to come than half the workers (see DaskPool.PREFETCH_BELOW)
SHORT = 0.5
#: how long (seconds) after its future ended an attempt's result may take to come
RESULT_GRACE = 30.0


class DaskPoolError(EmewsError):
    """The Dask scheduler is gone, or cannot be reached."""


def distributed_module() -> Any:
    """``distributed``, or an error that says how to install it."""
    try:
        import distributed
    except ImportError as e:
        raise EmewsError(f"pool: dask needs Dask distributed ({e}); install it with: {INSTALL_HINT}") from None
    return distributed


def scheduler_problem(settings: Mapping[str, Any], timeout: float) -> tuple[str, str] | None:
    """Wait up to ``timeout`` seconds for the scheduler the settings name (its file written, its
    port open); ``None`` when it answers, else ``(key, why)`` (``dask.scheduler_file`` or
    ``dask.address``). Settings without a running scheduler (a cluster emews starts) pass."""
    import json
    import socket

    deadline = time.monotonic() + timeout
    key, value = ("dask.scheduler_file", settings.get("scheduler_file")) if settings.get("scheduler_file") else \
        ("dask.address", settings.get("address"))
    if not value:
        return None
    address = value
    while True:
        why = None
        if key == "dask.scheduler_file":
            try:
                address = json.loads(open(value).read())["address"]
            except FileNotFoundError:
                why = f"scheduler file {value!r} does not exist (start the scheduler first: dask scheduler " \
                      f"--scheduler-file {value})"
            except (OSError, ValueError, KeyError, TypeError) as e:
                why = f"scheduler file {value!r} is not a Dask scheduler file ({type(e).__name__}: {e})"
        if why is None:
            rest = str(address).split("://", 1)[-1]
            host, _, port = rest.rpartition(":")
            try:
                with socket.create_connection((host.strip("[]") or "127.0.0.1", int(port)),
                                              timeout=max(0.1, min(2.0, deadline - time.monotonic()))):
                    return None
            except (OSError, ValueError) as e:
                why = f"no Dask scheduler answers at {address!r} ({type(e).__name__}: {e})"
        if time.monotonic() >= deadline:
            return key, f"{why}; waited {timeout:g} s (dask.connect_timeout)"
        time.sleep(0.2)


# -- the worker's side (runs inside a Dask worker process) ----------------------------------
_RUNNER: dict[str, Any] = {}  # the runner of the pool this worker process serves (one at a time)
_INBOX: dict[str, Any] = {}  # inbox name -> its Queue
#: stops read from the inbox by the attempt before the one they are for (a task held ahead, told
#: to stop at the pool's shutdown before it started): kept for that attempt's channel
_STOPS_AHEAD: dict[tuple[int, int], list] = {}


def _runner_for(pool_id: str, spec: dict) -> Any:
    """This worker process's runner for ``pool_id`` (built once: the objective is imported once)."""
    if _RUNNER.get("pool") != pool_id:
        old = _RUNNER.pop("runner", None)
        _RUNNER.clear()
        if old is not None:
            old.close()
        _RUNNER["runner"] = make_runner(spec, gpu=os.environ.get("CUDA_VISIBLE_DEVICES"))
        _RUNNER["pool"] = pool_id
    return _RUNNER["runner"]


def _inbox_receive(name: str, key: tuple[int, int]) -> wire.Receive:
    """A worker channel's ``receive`` over the worker's inbox (a Dask Queue, reached on the first
    read: an objective that never reports costs no queue, nor the worker's client to reach one)."""
    from distributed import Queue

    def inbox() -> Any:
        queue = _INBOX.get(name)
        if queue is None:
            queue = _INBOX[name] = Queue(name)
        return queue

    buffered: collections.deque[Any] = collections.deque(_STOPS_AHEAD.pop(key, ()))

    def keep(messages: list) -> None:
        for kind, body in messages:
            other = (body[0], body[1]) if body and len(body) >= 2 else key
            if other == key:
                buffered.append((kind, body))
            elif kind == wire.STOP:  # for an attempt this worker holds, not started yet
                _STOPS_AHEAD.setdefault(other, []).append((kind, body))
            # else: a late answer for an earlier attempt

    def receive(block: bool) -> Any:
        try:
            while not buffered:
                if not block:
                    keep(inbox().get(batch=True))  # whatever has come, at once
                    if not buffered:
                        return None
                    break
                try:
                    keep([inbox().get(timeout=10.0)])
                except TimeoutError:
                    continue
        except Exception as e:  # noqa: BLE001 - the scheduler is gone: no answer will come
            raise OSError(f"the Dask scheduler is gone: {e}") from e
        kind, body = buffered.popleft()
        return kind, tuple(body)

    return receive


def _attempts(pool_id: str, spec: dict, tasks: list[Task], worker: int, topic: str) -> None:
    """Run attempts one after the other in a Dask worker: the task function every submitted future calls.

    A future carries the attempts sent to one worker in one round of the driver (one, or a few
    while tasks are short: see :class:`DaskPool`). Each result goes to the pool as an event on
    ``topic`` the moment it is ready (on the worker's stream to the scheduler, ahead of the next
    attempt's start; the pool gathers nothing); a result that msgpack cannot carry as a list
    (a numpy float, say) travels pickled in its event."""
    from distributed import get_worker
    from distributed.protocol import pickle

    me = get_worker()
    runner = _runner_for(pool_id, spec)  # ObjectiveError: the future errs with it, the pool stops the run

    def post(message: Any) -> None:
        rep = message[1]
        me.log_event(topic, [wire.REPORT, [rep.task_id, rep.attempt, rep.step, rep.loss, rep.metrics, rep.time]])

    receive_of = functools.partial(_inbox_receive, _inbox_name(pool_id, me.address))
    gpu = os.environ.get("CUDA_VISIBLE_DEVICES")
    for task in tasks:
        channel = wire.WorkerChannel(task.id, task.attempt, post, receive_of((task.id, task.attempt)))
        result = execute(runner, task, worker, HOST, gpu, channel)
        try:
            me.log_event(topic, [wire.RESULT, list(result.__reduce__()[1])])
        except TypeError:  # not msgpack-serializable as it is (a numpy float, a parameter of an exotic type)
            me.log_event(topic, [PICKLED, pickle.dumps(result)])


#: an event kind of this pool: a result that travels pickled (see :func:`_attempts`)
PICKLED = "result-pickled"


def _inbox_name(pool_id: str, address: str) -> str:
    return f"emews-{pool_id}-inbox-{address}"


# -- the driver's side ---------------------------------------------------------------------
class DaskPool(PoolBase):
    """Tasks on the workers of a Dask cluster, each worker one task at a time (a :class:`~emews.workers.Pool`).

    Args:
        runner_spec: how tasks run (see :mod:`emews.workers._runners`).
        settings: the config's ``dask`` mapping: ``scheduler_file`` or ``address`` (a running
            scheduler), or ``cluster`` (``{type: slurm|pbs|lsf|sge|local, ...}``: the rest are
            the cluster class's arguments) with ``adapt`` (``{minimum, maximum}``); with none
            of them a ``LocalCluster`` of ``workers`` processes.
        workers: the local cluster's processes, or the number of worker jobs a ``cluster``
            without ``adapt`` asks for.
        on_report: the driver's judge of each intermediate report (True stops the task).
        connect_timeout: seconds to reach the scheduler.
        start: connect now (else at :meth:`start`).

    Attributes:
        joined, left: workers that joined and left since the start.
        interrupted: attempts returned because their worker left.
    """

    kind = "dask"
    #: a worker holds one task ahead while tasks are short (see :mod:`emews.workers._pool`): Dask
    #: queues it on the worker, which starts it the moment the one before it ends
    prefetch = 1
    #: ...and up to 8 while tasks are far shorter than a round trip through the driver and Dask
    #: (a few ms on an idle machine, tens on a loaded one): no-op tasks ran at 0.4 of
    #: ``client.map`` with one held, at 1 or more with 8 (benchmarks/perf/dispatch_dask.py)
    prefetch_deep = 8
    DEEP_BELOW = 0.01
    #: ...and one for tasks up to 10 s too, unlike the local pool: a round trip through the driver
    #: and the Dask scheduler is tens of ms on a loaded machine (a 1 s task lost 0.2-0.3 of its
    #: worker's time to it with 64 workers), not a negligible share. A task held behind a long
    #: one cannot be taken back (see :meth:`_send_recall`), so tasks of :data:`SHORT` s or more are
    #: held only while the driver has more work to come than half the workers: the last tasks of
    #: a search go to the workers that free up first, as a list scheduler would. (64 workers, 1 s
    #: tasks, benchmarks/perf/utilization_dask.py: 0.91 of the ideal holding to the end, 0.945
    #: stopping at a backlog of 64, 0.96 at 32, medians of 2-4 runs)
    PREFETCH_BELOW = 10.0

    def __init__(self, runner_spec: dict, settings: Mapping[str, Any] | None = None, workers: int | None = None,
                 on_report: OnReport | None = None, *, connect_timeout: float = 30.0, start: bool = True):
        super().__init__(0, on_report, fifo=True)
        self._spec = runner_spec
        self._settings = dict(settings or {})
        self._workers_wanted = workers
        self._connect_timeout = connect_timeout
        self._id = uuid.uuid4().hex[:12]
        self._topic = f"emews-{self._id}-reports"
        self._client: Any = None
        self._cluster: Any = None  # a cluster this pool made (closed at shutdown)
        self._address_of: dict[int, str] = {}  # worker id -> its Dask address
        self._id_of: dict[str, int] = {}  # Dask address -> worker id (a worker that comes back gets a new one)
        self._gone: set[str] = set()  # addresses that left (never taken back)
        #: what each task asks of its worker (``dask.resources``, e.g. ``{GPU: 1}``): Dask runs at most
        #: as many at once on a worker as it offers; workers that offer less are not used
        self._resources: dict[str, float] = {k: float(v) for k, v in (self._settings.get("resources") or {}).items()}
        self._unfit: set[str] = set()  # addresses of workers present without those resources (not used)
        # an attempt is (task id, attempt number); a worker has one running and may hold one ahead
        self._futures: dict[tuple[int, int], Any] = {}  # attempt -> its future
        self._running: dict[tuple[int, int], int] = {}  # attempt (running or held) -> its worker
        self._by_key: dict[Any, list[tuple[int, int]]] = {}  # a future's Dask key -> its attempts, in order
        self._pending: dict[int, list[Task]] = {}  # worker -> tasks handed out, not yet submitted to Dask
        self._seq = 0  # futures submitted (each one's priority is minus its number: FIFO on a worker)
        self._unreported: dict[tuple[int, int], float] = {}  # attempt -> when its future ended with no result yet
        #: worker -> results of tasks it holds, come before the result of the task before them
        self._early: dict[int, dict[tuple[int, int], Result]] = {}
        self._inboxes: dict[int, Any] = {}  # worker id -> its inbox Queue
        self._events: collections.deque[tuple[str, Any]] = collections.deque()  # from Dask's threads
        self._wake_r, self._wake_w = os.pipe()
        os.set_blocking(self._wake_r, False)
        os.set_blocking(self._wake_w, False)
        self._next_check = 0.0
        self._unreachable_since: float | None = None
        self._fatal: str | None = None
        self._waiting_logged = False
        self._adapt: dict[str, Any] | None = None  # adapt settings of a cluster this pool made
        self._adapt_target = 0  # workers wanted (read by Dask's Adaptive in its own thread)
        self._retiring: dict[str, Any] = {}  # address -> Dask name of a surplus worker being retired
        self._idle_since: dict[int, float] = {}  # worker id -> when it last became idle
        self._demand = True  # tasks handed out since the last worker was retired as surplus
        self.joined = 0
        self.left = 0
        self.interrupted = 0
        if start:
            self.start()

    # -- start -----------------------------------------------------------------------------
    def start(self) -> None:
        """Connect to the scheduler (or start the cluster), learn the workers present. Idempotent."""
        if self._client is not None or self.closed:
            return
        distributed = distributed_module()
        s = self._settings
        target: Any
        if s.get("scheduler_file"):
            target = None
            kwargs: dict[str, Any] = {"scheduler_file": str(s["scheduler_file"])}
        elif s.get("address"):
            target, kwargs = str(s["address"]), {}
        else:
            self._cluster = self._make_cluster(distributed)
            target, kwargs = self._cluster, {}
        try:
            self._client = distributed.Client(target, timeout=self._connect_timeout, set_as_default=False, **kwargs)
        except (OSError, TimeoutError) as e:
            if self._cluster is not None:
                self._cluster.close()
                self._cluster = None
            where = s.get("scheduler_file") or s.get("address") or "of the cluster emews started"
            raise DaskPoolError(f"cannot reach the Dask scheduler {where!r} within {self._connect_timeout:g} s: "
                                f"{e}") from None
        self._client.subscribe_topic("all", self._on_scheduler_event)
        self._client.subscribe_topic(self._topic, self._on_worker_event)
        self._check_workers(force=True)
        log.info("dask pool: scheduler %s, %d worker(s) present", self._client.scheduler.address, self.size)

    def _make_cluster(self, distributed: Any) -> Any:
        """The cluster the settings ask for: a ``LocalCluster`` of ``workers`` processes by default."""
        spec = dict(self._settings.get("cluster") or {"type": "local"})
        kind = spec.pop("type", "local")
        adapt = self._settings.get("adapt")
        if kind == "local":
            spec.setdefault("n_workers", 0 if adapt else (self._workers_wanted or os.cpu_count() or 1))
            spec.setdefault("threads_per_worker", 1)
            spec.setdefault("processes", True)
            spec.setdefault("dashboard_address", None)
            if self._resources:  # its workers offer what the tasks ask for
                spec.setdefault("resources", dict(self._resources))
            cluster = distributed.LocalCluster(**spec)
        else:
            import dask_jobqueue

            cluster = getattr(dask_jobqueue, CLUSTER_TYPES[kind])(**spec)
            if not adapt:
                cluster.scale(jobs=self._workers_wanted or 1)
        if adapt:
            # Dask's own adaptive target follows the tasks queued on its scheduler, but emews keeps
            # its queue on its side (one task per worker), so Dask would see no reason to grow and
            # would retire busy workers: emews' demand drives Dask's Adaptive instead (see _adapt_plan)
            self._adapt = dict(adapt)
            self._adapt_target = int(adapt["maximum"])
            cluster.adapt(Adaptive=_emews_adaptive(self), minimum=adapt.get("minimum", 0), maximum=adapt["maximum"])
        return cluster

    def _adapt_plan(self, present: Mapping[str, Any]) -> None:
        """The demand an adaptive cluster follows (driver's thread; read by Dask's Adaptive).

        A worker idle for ``adapt.idle`` seconds while more than ``adapt.minimum`` are in use is
        surplus: it is taken out of use here first (no task can reach it), then retired by the
        Adaptive; the target holds at the workers in use. It grows to ``adapt.maximum`` again
        once tasks were handed out since and every worker in use is busy (from the start too:
        no worker, no surplus)."""
        a = self._adapt
        now = time.monotonic()
        idle_for = float(a.get("idle", 30.0))
        for wid in list(self._idle):
            if self.size <= a.get("minimum", 0):
                break
            address = self._address_of.get(wid)
            name = (present.get(address) or {}).get("name")
            if address is None or name is None or now - self._idle_since.get(wid, now) < idle_for:
                continue
            self._idle.remove(wid)
            self._retiring = {**self._retiring, address: name}  # replaced, never changed: read by Dask's thread
            self.size -= 1
            self._demand = False
            log.info("dask pool: worker %d (%s) idle for %g s: retired (adapt.minimum %d)", wid, address, idle_for,
                     a.get("minimum", 0))
        grow = self._demand and not self._idle
        self._adapt_target = int(a["maximum"]) if grow else max(int(a.get("minimum", 0)), self.size)

    # -- joins and leaves ------------------------------------------------------------------
    def _on_scheduler_event(self, event: tuple[float, Any]) -> None:
        """Dask's thread: a scheduler event; joins and leaves are noted for :meth:`wait`."""
        msg = event[1] if isinstance(event, (tuple, list)) and len(event) == 2 else event
        if isinstance(msg, dict) and msg.get("action") in ("add-worker", "remove-worker") and msg.get("worker"):
            self._post(("join" if msg["action"] == "add-worker" else "leave", msg["worker"]))

    def _on_worker_event(self, event: tuple[float, Any]) -> None:
        """Dask's thread: a report or a result from a running attempt."""
        kind, body = event[1]
        self._post((kind, body))

    def _on_done(self, future: Any) -> None:
        """Dask's thread: a future ended (done, erred or cancelled)."""
        self._post(("done", future))

    def _post(self, item: tuple[str, Any]) -> None:
        self._events.append(item)
        try:
            os.write(self._wake_w, b"x")
        except (BlockingIOError, OSError):
            pass  # the pipe is full: wait() is woken anyway

    def _join(self, address: str, info: Mapping[str, Any] | None = None) -> None:
        if address in self._id_of or address in self._gone or address in self._unfit or self.closed:
            return
        if self._resources and not self._fits(address, info):
            return
        wid = self.joined
        self.joined += 1
        self._id_of[address] = wid
        self._address_of[wid] = address
        self.size += 1
        self._ready(wid)
        if self._waiting_logged:
            log.info("dask pool: worker %d joined (%s); the search goes on", wid, address)
            self._waiting_logged = False

    def _fits(self, address: str, info: Mapping[str, Any] | None) -> bool:
        """Whether the worker at ``address`` offers the resources every task asks for (``info``:
        its entry in the scheduler's worker list; asked for when not given). One that does not
        is never used (a task pinned to it would wait for good)."""
        if info is None:
            try:
                info = self._workers_info().get(address)
            except Exception:  # noqa: BLE001 - the scheduler is unreachable: the periodic check retries
                return False
            if info is None:
                return False  # gone already (or not yet listed: the periodic check sees it)
        offered = info.get("resources") or {}
        if all(float(offered.get(k, 0)) >= v for k, v in self._resources.items()):
            return True
        self._unfit.add(address)
        log.warning("dask pool: worker %s offers resources %s, not %s: not used (start it with dask worker "
                    "--resources %s)", address, dict(offered) or "none", self._resources,
                    ",".join(f"{k}={v:g}" for k, v in self._resources.items()))
        return False

    def _leave(self, address: str, out: list[Result]) -> None:
        self._unfit.discard(address)
        wid = self._id_of.pop(address, None)
        self._gone.add(address)
        if wid is None:
            return
        self._early.pop(wid, None)
        self._pending.pop(wid, None)  # handed out in this round, never submitted: back below, unstarted
        self.left += 1
        if address in self._retiring:  # counted out already
            self._retiring = {a: n for a, n in self._retiring.items() if a != address}
        else:
            self.size -= 1
        self._idle_since.pop(wid, None)
        if wid in self._idle:
            self._idle.remove(wid)
        self._inboxes.pop(wid, None)
        for held in self._next.get(wid, ()):  # sent ahead, not started (its worker was running the task before it)
            self._forget((held.id, held.attempt), cancel=True)
        self._lost_held(wid)  # back to the driver unstarted: no attempt spent
        task = self._busy.pop(wid, None)
        if task is not None:
            self._forget((task.id, task.attempt), cancel=True)
            self._stopping.discard((task.id, task.attempt))
            self.interrupted += 1
            out.append(Result.cancelled(task, f"interrupted: Dask worker {wid} ({address}) left while running it; "
                                              "the task runs again", worker=wid, host=_host_of(address),
                                        end=time.time()))
        if self.size == 0 and not self._waiting_logged and not self.closed:
            log.warning("dask pool: no worker left; the search waits until one joins the scheduler %s",
                        self._client.scheduler.address)
            self._waiting_logged = True

    def _check_workers(self, force: bool = False, out: list[Result] | None = None) -> None:
        """Compare with the scheduler's worker list (a safety net under the events; at most every
        :data:`RECONCILE_EVERY` seconds); a scheduler gone for :data:`SCHEDULER_GRACE` seconds is an error."""
        now = time.monotonic()
        if not force and now < self._next_check:
            return
        self._next_check = now + RECONCILE_EVERY
        status = getattr(self._client, "status", "closed")
        if status != "running":  # reconnecting to a scheduler that went away: its workers did not leave
            self._scheduler_trouble(now, f"the connection to it is {status}")
            return
        try:
            present = self._workers_info()
        except Exception as e:  # noqa: BLE001 - an unreachable scheduler, whatever the comm raises
            self._scheduler_trouble(now, e)
            return
        self._unreachable_since = None
        self._unfit &= set(present)
        for address in sorted(present):
            self._join(address, present[address])
        for address in [a for a in self._id_of if a not in present]:
            self._leave(address, out if out is not None else [])
        if self._adapt is not None and not self.closed:
            self._adapt_plan(present)

    def _workers_info(self) -> dict[str, Any]:
        """Every worker the scheduler has now, asked of it (``Client.scheduler_info`` returns a
        cache that Dask's own periodic refresh overwrites with a few workers, or none, at any
        moment: beyond 5 workers it would make present workers look gone)."""
        return dict(self._client.sync(self._client.scheduler.identity, n_workers=-1)["workers"])

    def _scheduler_trouble(self, now: float, error: Any) -> None:
        if self._unreachable_since is None:
            self._unreachable_since = now
            log.warning("dask pool: the scheduler does not answer (%s); giving it %g s", error, SCHEDULER_GRACE)
        elif now - self._unreachable_since >= SCHEDULER_GRACE:
            raise DaskPoolError(f"lost the Dask scheduler {self._client.scheduler.address} ({error}); the search "
                                "stops, its journal is kept: run it again (on any pool) to resume")

    # -- what the driver calls -------------------------------------------------------------
    def _ready(self, worker: int) -> None:
        self._idle_since[worker] = time.monotonic()
        super()._ready(worker)

    def _send_task(self, worker: int, task: Task) -> bool:
        """Queue ``task`` for ``worker``: the tasks the driver hands out in one round go to Dask
        together at the next :meth:`wait` (:meth:`_flush`), one future per worker."""
        if worker not in self._address_of:
            return False
        self._demand = True
        self._pending.setdefault(worker, []).append(task)
        self._running[(task.id, task.attempt)] = worker
        return True

    def _flush(self) -> None:
        """Submit the queued tasks: per worker one future pinned to it that runs them in the
        order given (:func:`_attempts`), all of them in one graph (one message to the scheduler,
        which handles each graph at some cost: 64 workers' first tasks one graph each took it
        seconds on a loaded machine). Each future's priority is below every earlier one's, so a
        worker starts the futures it holds in the order they were sent (the order
        :class:`PoolBase` counts them started in)."""
        pending, self._pending = self._pending, {}
        args = {}
        for worker, tasks in pending.items():
            first = tasks[0]
            key = f"emews-{self._id}-{first.id}-{first.attempt}-{worker}-{len(tasks)}-{self._seq}"  # unique
            args[key] = (worker, tasks, {"workers": [self._address_of[worker]], "allow_other_workers": False,
                                         "retries": 0, "priority": -self._seq})
            if self._resources:
                args[key][2]["resources"] = self._resources
            self._seq += 1
        graph = None
        if len(args) > 1:
            try:
                graph = _graph(args, self._id, self._spec, self._topic)
            except ImportError:  # a Dask without the task classes client.submit itself uses: one graph each
                pass
        if graph is not None:
            futures = self._client.get(graph, list(args), sync=False)
        else:
            futures = [self._client.submit(_attempts, self._id, self._spec, tasks, worker, self._topic, key=key,
                                           pure=False, workers=how["workers"], allow_other_workers=False, retries=0,
                                           resources=how.get("resources"), priority=how["priority"])
                       for key, (worker, tasks, how) in args.items()]
        for future, (worker, tasks, _) in zip(futures, args.values()):
            keys = [(t.id, t.attempt) for t in tasks]
            for key in keys:
                self._futures[key] = future
            self._by_key[future.key] = keys
            future.add_done_callback(self._on_done)

    def _forget(self, key: tuple[int, int], cancel: bool = False) -> None:
        """Drop an attempt's bookkeeping (its late result, if one comes, is dropped too); with
        ``cancel`` its future is cancelled (its worker left: every attempt the future carries
        is forgotten with it)."""
        self._running.pop(key, None)
        self._unreported.pop(key, None)
        future = self._futures.pop(key, None)
        if cancel and future is not None:
            future.cancel()

    def _prefetching(self) -> bool:
        if not super()._prefetching():
            return False
        return self._run_time < SHORT or self.backlog is None or 2 * self.backlog > self.size

    def _send_recall(self, worker: int, task: Task) -> None:
        """Nothing: a task held ahead on a Dask worker is never taken back. A cancelled future
        may already be running there (its worker ends the task before it and starts it at once,
        before the driver hears of that end), so taking it back could start it twice. It runs
        after the task before it (prefetch happens only while tasks are short)."""

    def _inbox(self, worker: int) -> Any:
        q = self._inboxes.get(worker)
        if q is None:
            from distributed import Queue

            q = self._inboxes[worker] = Queue(_inbox_name(self._id, self._address_of[worker]), client=self._client)
        return q

    def _tell(self, worker: int, message: tuple[str, Any]) -> None:
        if worker not in self._address_of:
            return
        try:
            self._inbox(worker).put([message[0], list(message[1])])
        except Exception as e:  # noqa: BLE001 - the worker or the scheduler went; wait() finds out
            log.debug("dask pool: could not reach worker %d's inbox: %s", worker, e)

    def _send_stop(self, worker: int, task: Task) -> None:
        self._tell(worker, wire.stop(task.id, task.attempt))

    def wait(self, timeout: float | None, extra: Sequence[Any] = ()) -> list[Result]:
        """Results that are ready (and attempts whose worker left, as cancelled); blocks up to
        ``timeout`` until one is, a worker joins, or an ``extra`` connection becomes readable.

        Raises:
            ObjectiveError: a worker could not load the objective.
            DaskPoolError: the scheduler is gone.
        """
        if self._fatal:
            raise ObjectiveError(self._fatal)
        if self.closed:
            return []
        if self._pending:
            self._flush()
        out: list[Result] = []
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            idle_before = self.idle
            self._handle_events(out)
            if not self.closed:
                self._check_workers(out=out)
                if self._unreported:
                    self._overdue(out)
            if out or self.idle > idle_before or self._fatal:
                break
            left = None if deadline is None else deadline - time.monotonic()
            if left is not None and left <= 0:
                break
            step = RECONCILE_EVERY if left is None else min(left, RECONCILE_EVERY)
            ready = mp_wait([self._wake_r, *extra], step)
            if any(r != self._wake_r for r in ready):
                self._handle_events(out)
                break
        if self._fatal and not out:
            raise ObjectiveError(self._fatal)
        return out

    def _handle_events(self, out: list[Result]) -> None:
        try:
            while os.read(self._wake_r, 65536):
                pass
        except (BlockingIOError, OSError):
            pass
        done = []
        while self._events:
            kind, body = self._events.popleft()
            if kind == "done":
                done.append(body)
            elif kind == wire.RESULT:
                self._on_result(Result(*body), out)
            elif kind == PICKLED:
                self._on_result(_unpickle(body), out)
            elif kind == wire.REPORT:
                self._on_report(body)
            elif kind == "join":
                self._join(body)
            else:
                self._leave(body, out)
        for future in done:
            self._collect(future, out)

    def _on_result(self, result: Result, out: list[Result]) -> None:
        """An attempt's result (from its event); a late one is dropped."""
        key = (result.task_id, result.attempt)
        worker = self._running.get(key)
        if worker is None:
            return  # its worker was declared gone and the attempt returned as interrupted: never doubled
        if any((held.id, held.attempt) == key for held in self._next.get(worker, ())):
            # the result of a task held ahead came before the one of the task before it (a worker
            # starts its futures in the order sent, and sends their results in order, so this
            # is a safety net): kept until that one comes
            self._early.setdefault(worker, {})[key] = result
            return
        self._forget(key)  # its future is released with its last attempt: Dask forgets the task
        if self._finished(worker, result):
            out.append(result)
            early = self._early.get(worker)
            task = self._busy.get(worker)
            if early and task is not None and (task.id, task.attempt) in early:
                self._on_result(early.pop((task.id, task.attempt)), out)

    def _collect(self, future: Any, out: list[Result]) -> None:
        """One ended future: the events of its attempts' results have come (nothing to do), will
        come, or an attempt ended without one (its worker died, or the task function itself failed)."""
        keys = self._by_key.pop(future.key, None)
        left = [k for k in keys or () if self._futures.get(k) is future]
        if not left:
            return  # their results came, or it was cancelled because its worker left
        worker = self._running[left[0]]
        if future.status == "finished":
            now = time.monotonic()
            for key in left:
                self._unreported[key] = now  # the results' events are on their way
            return
        task = self._busy.get(worker)
        if task is None:
            return
        error = future.exception(timeout=30) if future.status == "error" else None
        if isinstance(error, ObjectiveError):
            self._fatal = str(error)
            self._drop(worker, task)
            return
        key = (task.id, task.attempt)
        if error is None or type(error).__name__ == "KilledWorker" or key not in left:
            # the worker died with it (Dask gave up on it); or a future held ahead ended without a
            # result before the task before it reported: its worker is gone with both
            self._interrupted(worker, task, error, out)
            return
        # the task function itself failed (not the objective, whose errors are results): the attempt
        # it ran fails, the ones after it in the same future never start (back to the driver)
        failed = Result.failed(task, f"the Dask task failed: {type(error).__name__}: {error}", worker=worker,
                               host=_host_of(self._address_of.get(worker, "")), end=time.time())
        for later in left[left.index(key) + 1:]:
            held = self._take_held(worker, later)
            self._forget(later)
            if held is not None:
                self._returned.append(held)
        self._forget(key)
        self._finished(worker, failed)  # the worker goes on with the next future it holds, or is idle
        out.append(failed)

    def _drop(self, worker: int, task: Task) -> None:
        self._busy.pop(worker, None)
        self._forget((task.id, task.attempt))

    def _interrupted(self, worker: int, task: Task, why: Any, out: list[Result]) -> None:
        """An attempt that ended without a result: returned as cancelled (the driver runs it again)."""
        self._drop(worker, task)
        self.interrupted += 1
        out.append(Result.cancelled(task, f"interrupted: Dask lost the attempt on worker {worker} ({why}); the task "
                                          "runs again", worker=worker,
                                    host=_host_of(self._address_of.get(worker, "")), end=time.time()))
        address = self._address_of.get(worker)
        if address is not None:
            self._leave(address, out)

    def _overdue(self, out: list[Result]) -> None:
        """Futures that ended :data:`RESULT_GRACE` seconds ago whose result never came."""
        now = time.monotonic()
        for key, since in list(self._unreported.items()):
            worker = self._running.get(key)
            if now - since >= RESULT_GRACE and worker in self._busy:
                self._interrupted(worker, self._busy[worker], f"no result {RESULT_GRACE:g} s after it ended", out)

    def _on_report(self, body: list) -> None:
        rep = Report(int(body[0]), int(body[1]), body[2], body[3], dict(body[4] or {}), body[5])
        worker = self._running.get((rep.task_id, rep.attempt))
        stop = self._judge(rep)
        if worker is not None:
            self._tell(worker, wire.answer(rep.task_id, rep.attempt, stop))

    def shutdown(self, kill: bool = False) -> list[Result]:
        """Leave the cluster; with ``kill`` running tasks are abandoned (returned as cancelled)."""
        if self.closed:
            return []
        self.closed = True
        self._pending.clear()  # handed out, never submitted: counted running or held below
        held = self._held_items()  # (a kill returns them as cancelled, and forgets them)
        cancelled = self._running_as_cancelled(lambda w: _host_of(self._address_of.get(w, ""))) if kill else []
        client, self._client = self._client, None
        if client is not None and client.status != "running":
            # the scheduler is gone: Dask's own tracebacks of the reconnection it abandons say nothing more
            for name in ("distributed.client", "distributed.utils"):
                logging.getLogger(name).setLevel(logging.CRITICAL)
        if client is not None:
            if not kill:
                deadline = time.monotonic() + 10
                pending = [f for f in set(self._futures.values()) if not f.done()]
                while pending and time.monotonic() < deadline:
                    time.sleep(0.05)
                    pending = [f for f in pending if not f.done()]
            try:
                # a task cannot be killed in a Dask worker's thread: one waiting for the answer to a
                # report would wait for good and keep its worker; told to stop, it ends at once
                for worker, t in [*self._busy.items(), *held]:  # held ones too: one
                    self._send_stop(worker, t)  # may start as the cancel of its future travels
                for topic in ("all", self._topic):  # else the scheduler tells a closing client of its own leaving
                    client.unsubscribe_topic(topic)
                client.cancel(list(set(self._futures.values())), force=True)
                for q in self._inboxes.values():
                    q.close()
            except Exception:  # noqa: BLE001 - the scheduler may be gone already
                pass
            try:
                client.close(timeout=5)
            except Exception:  # noqa: BLE001
                pass
        self._futures.clear()
        self._inboxes.clear()
        if self._cluster is not None:
            try:
                self._cluster.close(timeout=10)
            except Exception:  # noqa: BLE001
                pass
            self._cluster = None
        for fd in (self._wake_r, self._wake_w):
            try:
                os.close(fd)
            except OSError:
                pass
        return cancelled


def _emews_adaptive(pool: DaskPool) -> type:
    """Dask's ``Adaptive`` steered by the pool's demand (:meth:`DaskPool._adapt_plan`): its target
    is the pool's, and the workers it closes are the ones the pool took out of use."""
    import weakref

    from distributed.deploy.adaptive import Adaptive

    ref = weakref.ref(pool)

    class EmewsAdaptive(Adaptive):
        async def target(self) -> int:
            p = ref()
            return p._adapt_target if p is not None else 0

        async def workers_to_close(self, target: int) -> list:
            p = ref()
            return list(p._retiring.values()) if p is not None else []

    return EmewsAdaptive


def _graph(futures: Mapping[str, tuple[int, list[Task], dict]], pool_id: str, spec: dict, topic: str) -> Any:
    """A Dask graph of independent tasks, ``key -> (worker, tasks, annotations)``: one
    :func:`_attempts` call each, with its own annotations (its worker, its priority), as
    ``client.submit`` would make them one graph at a time."""
    from dask._task_spec import Task as DaskTask, parse_input
    from dask.highlevelgraph import HighLevelGraph, MaterializedLayer

    layers = {key: MaterializedLayer({key: DaskTask(key, _attempts, parse_input(pool_id), parse_input(spec),
                                                    parse_input(tasks), parse_input(worker), parse_input(topic))},
                                     annotations=how)
              for key, (worker, tasks, how) in futures.items()}
    return HighLevelGraph(layers, {key: set() for key in layers})


def _unpickle(data: bytes) -> Result:
    from distributed.protocol import pickle

    return pickle.loads(data)


def _host_of(address: str) -> str | None:
    """The host of a Dask address (``tcp://10.0.0.5:40123`` -> ``10.0.0.5``)."""
    if not address:
        return None
    rest = address.split("://", 1)[-1]
    return rest.rsplit(":", 1)[0] or None
