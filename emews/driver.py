"""The driver: the loop between the optimizer's queues and the worker pool.

::

    optimizer process ◀─pipe─▶ DriverEnd ─PUT─▶ ┌────────── driver loop ───────────┐ ─Task──▶ pool
    (emews.queues._driver_end)           ◀─results │ Ledger: budget, attempts, retries│ ◀Result─
                                                   │ waiting deque → idle workers     │
                                                   │ stopper, max_time, deadline      │
                                                   │ journal (only writer)            │
                                                   └──────────────────────────────────┘
                                                      session meta, outputs: _session

The loop blocks in ``pool.wait`` on every worker and the optimizer pipe at once; it never
spins. Every state change goes to the journal (batched; finished results within
``RESULT_FLUSH`` seconds). At the end — normal, deadline, error, SIGTERM or Ctrl-C — the
journal is flushed and ``results.csv``, ``best.json`` and the report are written, so nothing
already computed is lost. A resumed experiment (:mod:`emews.resume`) starts from what
the journal holds: finished results count and go to the optimizer, open tasks run again.
"""

from __future__ import annotations

import collections
import logging
import signal
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ._ledger import Ledger
from ._models import CHECKPOINTS_DIR, ModelKeeper
from ._starts import CheckpointStarts
from ._progress import Progress
from ._session import Outputs, end_session, start_session
from .errors import OptimizerError
from .journal import JOURNAL_NAME, Journal
from .optimizers._host import OptimizerProcess
from .queues import _protocol as wire
from .queues._driver_end import DriverEnd
from .results import Results
from .resume import Handoff, ResumePlan, ResumeState, plan_resume
from .space import Space
from .task import CANCELLED, Report, Result, Stop, StopReason, Task, attempt_key

__all__ = ["Driver", "SearchSettings", "Terminated", "WarningSignal"]

log = logging.getLogger("emews")


@dataclass
class SearchSettings:
    """What the driver needs besides the pool: resolved, validated values."""

    space: Space
    optimizer: Any  # class or function (already resolved)
    optimizer_settings: dict = field(default_factory=dict)
    max_evals: int = 100
    max_time: float | None = None
    mode: str = "async"
    batch_size: int | None = None
    seed: int | None = None
    retries: int = 0
    experiment: str = "experiment"
    config: dict | None = None  # the config as loaded, journaled in meta
    progress_every: float | None = None  # seconds between progress lines (None: quiet)
    deadline: float | None = None  # epoch seconds: the job's end (a batch system's wall time)
    deadline_source: str = "deadline"  # where it came from, for messages
    stop_margin: float = 60.0  # no new task starts within this many seconds of the deadline
    kill_margin: float = 10.0  # running tasks are cancelled this many seconds before it
    live_progress: bool = False  # a redrawn status line (a terminal) instead of log lines
    report: bool = True  # write report.json/.txt and the plots (when matplotlib is there) at the end
    stopper: Any = None  # early stopping: a spec for emews.stoppers.from_config (None: none)
    warm_start: Any = None  # earlier results the optimizer is given first (emews.formats.WarmStart)
    keep_models: dict | None = None  # {count, by, mode}: the best final checkpoints kept in <experiment>/models
    objectives: Any = None  # several objectives / constraints (emews._objectives.ObjectiveSpec); None: the loss


class Terminated(KeyboardInterrupt):
    """SIGTERM (a batch system's time limit, ``scancel``, ``kill``) during a run: handled like
    Ctrl-C, so the journal is closed and the outputs are written."""


class WarningSignal(Terminated):
    """SIGUSR1, the batch job's warning that its end is near (``#SBATCH --signal=B:USR1@120``):
    a stop at the deadline (running tasks cancelled and journaled, outputs written), not an
    interruption: the run returns its results, and a chained job resubmits itself."""


#: the signals that stop a run in order, and the exception each raises in the driver
STOP_SIGNALS = {signal.SIGTERM: Terminated, signal.SIGUSR1: WarningSignal}


def _raise_terminated(signum: int, frame: Any) -> None:
    if signum == signal.SIGUSR1:
        raise WarningSignal("SIGUSR1 (the batch job's warning signal)")
    raise Terminated("terminated (SIGTERM)")


def _catch_sigterm() -> Any:
    """Route SIGTERM and SIGUSR1 to :func:`_raise_terminated`; the previous handlers (to restore)."""
    if threading.current_thread() is not threading.main_thread():
        return None
    return {sig: signal.signal(sig, _raise_terminated) for sig in STOP_SIGNALS}


def _restore_sigterm(previous: Any) -> None:
    for sig, handler in (previous or {}).items():
        signal.signal(sig, handler)


#: the longest a finished result waits in memory before it is written to the journal...
RESULT_FLUSH = 0.05
#: ...unless flushes are slow (thousands of results a second, a slow disk): then they are
#: spaced by this many times the last flush's cost, so journaling stays ~10% of the driver's time
FLUSH_SPACING = 10.0


class Driver:
    """Runs one search: starts the optimizer process, feeds the pool, journals everything.

    The loop holds a :class:`~emews._ledger.Ledger` (budget, attempts, retries: what to do
    with a put or a result), the driver's end of the optimizer pipe
    (:class:`~emews.queues._driver_end.DriverEnd`), the pool, the journal, the stopper and
    the clock; the session's meta and outputs are :mod:`emews._session`'s.

    With ``resume`` (an earlier session's state, see :mod:`emews.resume`) the finished
    results count against the budget and go to the optimizer as history, and the tasks
    that were queued or running when that session ended run again first.
    """

    def __init__(self, settings: SearchSettings, make_pool: Callable[[Callable[[Report], bool]], Any], directory: Path,
                 resume: ResumeState | None = None):
        self.s = settings
        #: an :class:`emews.workers.Pool`, built first (a bad pool setting leaves no journal behind)
        #: with this driver's judge of reports (:meth:`_on_report`, called during ``pool.wait``)
        self.pool = make_pool(self._on_report)
        #: every time the driver reads: the pool's clock (simulated for the simulated pool, else wall time)
        self.clock = self.pool.clock
        # a pool that holds tasks ahead (prefetch) has these; looked up once, used per task
        self._pool_started = getattr(self.pool, "take_started", None)
        self._pool_returned = getattr(self.pool, "take_returned", None)
        self._pool_prefetches = hasattr(self.pool, "prefetched")
        self.directory = Path(directory)
        self.resume = resume
        self.journal = Journal(self.directory / JOURNAL_NAME)
        #: budget, attempts, retries, counts and why the session ends
        self.ledger = Ledger(settings.max_evals, settings.retries)
        #: the driver's end of the optimizer pipe (None until the optimizer process starts)
        self.queues: DriverEnd | None = None
        self.outputs = Outputs(self.directory, settings.space)
        self._limit: float | None = None  # when a time limit stopped new tasks
        self.waiting: collections.deque[Task] = collections.deque()
        self.interrupted = False
        self._cancel_running = False  # the deadline is too close for running tasks to finish
        self._results_due = False  # finished results not yet flushed
        self._sessions: list[dict] = []  # the journal's sessions, this one last
        from .stoppers import from_config  # light: the built-in rules import nothing heavy

        #: the early-stopping rule (None: reports are journaled, nothing is stopped)
        self.stopper = from_config(settings.stopper)
        self.reports = 0  # intermediate reports received this session
        self._stop_asked: set[tuple[int, int]] = set()  # attempts told to stop (stopper or optimizer)
        self._stop_ids: set[int] = set()  # tasks the optimizer asked to stop (queued or running)
        self._capacity_told = max(1, self.pool.size)  # the worker slots the optimizer plans for
        self._size_logged = self.pool.size  # the pool's size last journaled (sessions[-1]["capacity"])
        #: keep_models: the best final checkpoints, flushed to <experiment>/models (None: not asked)
        self.models: ModelKeeper | None = None
        if settings.keep_models:
            kept = (resume.meta.get("models") if resume is not None else None) or []
            self.models = ModelKeeper(self.directory, kept=kept, **settings.keep_models)
        #: tasks that start from another task's checkpoint (pbt): start.json written, sources kept while used
        self.starts = CheckpointStarts(self.directory / CHECKPOINTS_DIR,
                                       self.models.discard if self.models is not None else None)

    # -- start ---------------------------------------------------------------------------
    def _take_over(self, plan: ResumePlan | None, now: float) -> Handoff | None:
        """Resume: count the earlier results, queue the interrupted tasks again; returns what
        the optimizer process needs to pick up where the last one stopped."""
        r = self.resume
        if r is None or plan is None:
            return None
        for tid, attempt, error in plan.closings:
            self.journal.close_attempt(tid, attempt, CANCELLED, error, now)
        self.ledger.take_over(plan)
        for t in plan.rerun:
            self.journal.queued(t.id, t.attempt, t.params, now, plan.batches.get(t.id))
            self.waiting.append(t)
        self._restore_stopper(r)
        if plan.unfit:
            log.warning("%d earlier result(s) do not fit the changed space: they count against max_evals but are not "
                        "given to the optimizer", plan.unfit)
        led = self.ledger
        log.info("resuming %s: %d of %d evaluations finished earlier (best loss %s), %d interrupted task(s) to run "
                 "again", self.directory, led.finished, self.s.max_evals,
                 "-" if led.best is None else f"{led.best:.6g}", len(plan.rerun))
        return plan.handoff

    def _restore_stopper(self, r: ResumeState) -> None:
        """Rebuild the stopper from the journaled reports, then end every attempt the journal
        shows as ended or interrupted (an interrupted one runs again under a new key)."""
        if self.stopper is None or not r.reports:
            return
        reports = [(attempt_key(x["task_id"], x["attempt"]), x["step"],
                    x["loss"] if x["loss"] is not None else float("nan")) for x in r.reports]
        seen: dict[Any, tuple] = {}
        for key, step, loss in reports:
            seen[key] = (step, loss)
        try:
            self.stopper.restore(reports)
            for key, (step, loss) in seen.items():
                status = r.status_of.get(key, "cancelled")
                if status in ("queued", "running"):  # the killed session's open attempt: it runs again
                    status = "cancelled"
                self.stopper.finished(key, status, step, loss)
        except Exception as e:  # noqa: BLE001 - a plug-in's bug costs its decisions, not the run
            log.warning("the stopper could not be rebuilt from the journal (%s: %s); it starts afresh",
                        type(e).__name__, e)

    def _on_report(self, rep: Report) -> bool:
        """One intermediate report: journal it, ask the stopper; True: stop the task now."""
        self.reports += 1
        key = (rep.task_id, rep.attempt)
        stop = key in self._stop_asked or rep.task_id in self._stop_ids
        if self.stopper is not None and not stop:
            try:
                stop = bool(self.stopper.report(attempt_key(rep.task_id, rep.attempt), rep.step, rep.loss))
            except Exception as e:  # noqa: BLE001 - a stopper's bug never crashes the run
                log.warning("the stopper failed on a report of task %d (step %r, loss %r): %s: %s; not stopped",
                            rep.task_id, rep.step, rep.loss, type(e).__name__, e)
                stop = False
        if stop:
            self._stop_asked.add(key)
        self.journal.report(rep, stop)
        return stop

    def stop_task(self, task_id: int) -> bool:
        """Stop a task at its next report (what ``queues.stop(task_id)`` asks for); True when
        a worker runs it now (a queued one is stopped at its first report)."""
        self._stop_ids.add(task_id)
        return self.pool.stop_task(task_id)  # running: told now; queued: its first report is answered with the stop

    def _time_limits(self) -> tuple[float | None, float | None]:
        """Monotonic times at which new tasks stop and running ones are cancelled."""
        s, now_m, now = self.s, self.clock.monotonic(), self.clock.time()
        stop = (now_m + s.max_time) if s.max_time else None
        kill = None
        if s.deadline is not None:
            left = s.deadline - now
            stop_dl = now_m + left - s.stop_margin
            stop = stop_dl if stop is None else min(stop, stop_dl)
            kill = now_m + left - s.kill_margin
            when = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(s.deadline))
            if left - s.stop_margin <= 0:
                log.warning("the %s (%s) is %s: no new task will start", s.deadline_source, when,
                            "past" if left <= 0 else f"only {left:.0f} s away (stop_margin {s.stop_margin:g} s)")
            else:
                log.info("%s at %s: new tasks stop %g s before it, running ones are cancelled %g s before it",
                         s.deadline_source, when, s.stop_margin, s.kill_margin)
        return stop, kill

    # -- main loop -----------------------------------------------------------------------
    def run(self) -> Results:
        s, led = self.s, self.ledger
        if self.clock.simulated:  # a resumed simulation starts after the times its journal holds
            r = self.resume
            before = [x.end for x in r.completed if x.end is not None] + [r.meta.get("finished") or 0.0] if r else []
            self.clock.begin(not_before=max(before, default=0.0) + 1.0 if before else None)
        t0 = self.clock.time()
        opt: OptimizerProcess | None = None
        fatal: BaseException | None = None
        previous_sigterm = _catch_sigterm()
        progress = Progress(s.progress_every, s.max_evals, self.pool.size, live=s.live_progress)
        try:
            plan = plan_resume(self.resume, s.space, s.max_evals, s.retries) if self.resume is not None else None
            if self._nothing_to_resume(plan):  # no session, no redrawn report, the outcome kept
                led.take_over_complete(len(self.resume.completed))
                return self._already_complete(progress)
            seed, self._sessions = start_session(self.journal, s, self.pool, self.resume, t0)
            if s.report:  # matplotlib's import and first draw overlap the search, not follow it
                self.outputs.preload()
            handoff = self._take_over(plan, self.clock.time())
            stop_at, kill_at = self._time_limits()
            if led.budget_spent and not self.waiting:
                return self._already_complete(progress, t0)
            opt = OptimizerProcess(s.optimizer, s.space, seed, s.optimizer_settings, s.mode,
                                   s.batch_size, self._capacity_told, s.max_evals, handoff,
                                   announce_waits=self.clock.simulated, warm_start=s.warm_start)
            self.queues = q = DriverEnd(opt, self.clock, {wire.PUT: self._on_put, wire.LOG: self._on_log,
                                                          wire.STOP_TASK: self.stop_task}, self._on_optimizer_failure)
            progress.start(led.finished)
            while True:
                if led.stop is None and not q.error:
                    if self._pool_prefetches:  # how much work is still to come (see PoolBase.backlog)
                        self.pool.backlog = len(self.waiting) + max(0, led.max_evals - led.accepted)
                    while self.waiting and self.pool.idle:
                        task = self.waiting.popleft()
                        held = self._held()
                        worker = self.pool.submit(task)
                        if worker is None:  # that worker had died; a new one is starting
                            self.waiting.appendleft(task)
                            break
                        if self._held() == held:  # it starts now (else: held ahead, journaled when it starts)
                            self.journal.running(task.id, task.attempt, worker, self.clock.time())
                if q.untold:
                    self._tell([])
                if self._over():
                    break
                timeout = 1.0
                now_m = self.clock.monotonic()
                if stop_at is not None and led.stop is None:
                    timeout = max(0.0, min(timeout, stop_at - now_m))
                if kill_at is not None:
                    timeout = max(0.0, min(timeout, kill_at - now_m))
                if self._results_due:
                    timeout = max(0.0, min(timeout, self.journal.since_flush_left(self._flush_interval())))
                tell_due = q.tell_due()
                if tell_due is not None:
                    timeout = max(0.0, min(timeout, tell_due - now_m))
                extra = [] if q.over else [q.connection]
                if self.clock.simulated:  # may it skip to the next completion, and how far at most
                    self.clock.may_jump = self._only_completions_can_come(extra)
                    limits = [t for t in (stop_at if led.stop is None else None, kill_at) if t is not None]
                    self.clock.jump_limit = min(limits) if limits else None
                results = self.pool.wait(timeout, extra)
                self._held_moves()
                if extra:
                    q.read()
                if results:
                    self._on_results(results)
                if self.models is not None and self.models.poll():  # model copies done (copier thread)
                    self.journal.set_meta(models=self.models.kept)
                now_m = self.clock.monotonic()
                if stop_at is not None and led.stop is None and now_m >= stop_at:
                    self._limit = self.clock.time()  # the report's utilization span ends here
                    self._stop(self._time_stop())
                if kill_at is not None and now_m >= kill_at and self.pool.busy:
                    led.end(self._time_stop())
                    self._cancel_running = True
                    log.warning("%d running task(s) cancelled %g s before the %s; a resume runs them again",
                                self.pool.busy, s.kill_margin, s.deadline_source)
                    break
                self._flush_results()
                self.journal.maybe_flush()
                progress.workers = self.pool.size  # an elastic pool's (Dask) capacity changes as workers come and go
                self._tell_capacity()
                progress.update(led.finished, led.failed, led.best, self.pool.busy)
        except WarningSignal as e:  # the job's end is near: a deadline stop, running tasks cancelled
            self._warned(e)
        except Terminated:
            self.interrupted = True
            led.stop = Stop(StopReason.TERMINATED, "terminated (SIGTERM)")
        except KeyboardInterrupt:
            self.interrupted = True
            led.stop = Stop(StopReason.INTERRUPTED, "interrupted (Ctrl-C)")
        except BaseException as e:  # noqa: BLE001 - keep what was computed, then re-raise
            fatal = e
            led.stop = Stop(StopReason.ERROR, f"error: {e}")
        finally:
            try:
                if not self.outputs.read:
                    self._end(opt, progress, t0, kill=self.interrupted or fatal is not None or self._cancel_running)
            finally:
                _restore_sigterm(previous_sigterm)
                self.outputs.join()  # the plot preload is never left importing while the interpreter exits
        if fatal is not None:
            raise fatal
        if self.interrupted:
            exc = Terminated if led.stop.reason is StopReason.TERMINATED else KeyboardInterrupt
            stopped = exc(f"{led.stop}; results so far are kept in {self.directory}; run the same command "
                          "again to resume")
            stopped.results = self.outputs.results(led.stop)  # type: ignore[attr-defined]  # the CLI prints their summary
            raise stopped
        if self.queues is not None and self.queues.error:
            raise OptimizerError(f"the optimizer failed; results so far are kept in {self.directory}.\n"
                                 f"{self.queues.error}")
        return self.outputs.results(led.stop)

    def _warned(self, e: WarningSignal) -> None:
        """The batch job's warning signal came: stop as at the deadline's kill_margin."""
        led = self.ledger
        self._limit = self._limit or self.clock.time()
        if led.stop is None or led.stop.reason is not StopReason.DEADLINE:
            led.stop = Stop(StopReason.DEADLINE, f"{e}: stopped before the job's end")
        self._cancel_running = True
        log.warning("%s: no new task starts; %d running task(s) cancelled (a resume runs them again)", e,
                    self.pool.busy)

    def _tell_capacity(self) -> None:
        """The optimizer plans for the worker slots present (at least one: with none, a task
        waits for a worker to join); an elastic pool's changes are sent as they happen, and
        journaled as the session's ``capacity`` (``[[time, workers], ...]``)."""
        size = self.pool.size
        if size != self._size_logged:  # the workers present over time, for the report (load.png, utilization)
            session = self._sessions[-1]
            session.setdefault("capacity", [[session["started"], self._size_logged]]).append([self.clock.time(), size])
            self._size_logged = size
            self.journal.set_meta(sessions=self._sessions)
        n = max(1, size)
        q = self.queues
        if n != self._capacity_told and self.ledger.stop is None and q is not None and not q.over:
            self._capacity_told = n
            q.capacity(n)

    def _only_completions_can_come(self, extra: list) -> bool:
        """True when nothing but a task completion can happen next: no idle worker with work
        queued, and the optimizer either cannot add work that would run (every worker busy,
        the budget taken, the search stopped or over) or has said it is blocked waiting for
        results, with nothing of its unread. A simulated clock may then skip ahead (one that
        charges no real time only while the optimizer waits or is over: see :class:`~emews._clock.SimClock`)."""
        if self.waiting and self.pool.idle:
            return False
        q = self.queues
        if extra and q.readable():
            return False
        if q.waiting or q.over:
            return True
        return self.clock.real_time and (self.pool.idle == 0 or self.ledger.stop is not None
                                         or self.ledger.budget_taken)

    def _tell(self, results: list[Result]) -> None:
        """Results for the optimizer, held back while proposals beyond one per worker are
        queued here or held ahead by workers (see :meth:`DriverEnd.tell <emews.queues._driver_end.DriverEnd.tell>`)."""
        self.queues.tell(results, len(self.waiting) + self._held() - self.pool.size, self.ledger.stop is not None)

    # -- tasks held ahead by workers (a pool with prefetch, see emews.workers._pool) ----------
    def _held(self) -> int:
        """Tasks the pool's workers hold ahead, not started."""
        return self.pool.prefetched if self._pool_prefetches else 0

    def _held_moves(self) -> None:
        """Journal the held tasks that started (``running`` from their real start); queue the
        ones handed back unstarted again, first (a stop cancels them with the queue)."""
        if self._pool_started is not None:
            for t, worker, when in self._pool_started():
                self.journal.running(t.id, t.attempt, worker, when)
        back = self._pool_returned() if self._pool_returned is not None else []
        if back:
            for t in back:
                self.journal.unstarted(t.id, t.attempt)
            self.waiting.extendleft(reversed(back))
            if self.queues is not None and self.queues.error:  # nothing more starts: no stop will cancel them
                self._cancel_waiting("the optimizer failed")

    def _recall(self) -> None:
        """No new task may start: ask the workers for the tasks they hold ahead back."""
        recall = getattr(self.pool, "recall", None)
        if recall is not None:
            recall()

    # -- a resume with nothing to do -------------------------------------------------------
    def _nothing_to_resume(self, plan: ResumePlan | None) -> bool:
        """A resumed experiment whose budget is spent, with no interrupted task and no failed
        one left to retry (what :func:`~emews.resume.plan_resume` would run again: nothing)."""
        if plan is None or len(self.resume.completed) < self.s.max_evals:
            return False
        return not plan.rerun and not plan.closings

    def _already_complete(self, progress: Progress, t0: float | None = None) -> Results:
        """The budget was spent in earlier sessions: nothing runs. Without a session
        (``t0`` None) the journal, results.csv and the report stay as the last session wrote
        them; in a session (it closed attempts a killed session left open) it ends as usual."""
        stop = self.ledger.end(self.ledger.already_complete())
        log.info("%s: nothing to do; raise max_evals (--set max_evals=N) to continue, or use --fresh for a new "
                 "experiment", stop)
        if t0 is not None:
            return self._end(None, progress, t0)
        progress.close(self.ledger.finished, 0, self.resume.best, 0)
        self.journal.close()
        return self.outputs.results(stop)

    def _time_stop(self) -> Stop:
        s = self.s
        if s.deadline is not None and (not s.max_time or self.clock.time() >= s.deadline - s.stop_margin - 0.5):
            return Stop(StopReason.DEADLINE, f"{s.deadline_source} near: stopped {s.stop_margin:g} s before it")
        return Stop(StopReason.MAX_TIME, f"max_time of {s.max_time:g} s reached")

    def _end(self, opt: OptimizerProcess | None, progress: Progress, t0: float, kill: bool = False) -> Results:
        led = self.ledger
        progress.close(led.finished, led.failed, led.best, 0)
        self._finish(opt, kill=kill, t0=t0)
        res = self.outputs.results(led.stop)
        if self.s.report:
            self.outputs.report(res)
        return res

    def _over(self) -> bool:
        q = self.queues
        return self.ledger.over(self.pool.busy, len(self.waiting), q.over, q.error is not None)

    # -- the optimizer's messages (handlers of the driver's end of the pipe) -----------------
    def _on_put(self, items: list[tuple]) -> list[Result]:
        """New tasks: journaled and queued, or refused (their cancelled results are returned);
        an item ``(tid, params, start)`` starts from another task's checkpoint (:mod:`emews._starts`)."""
        now = self.clock.time()
        batch = self.ledger.new_batch()
        refused = []
        for tid, params, *start in items:
            why = self.ledger.accept(tid, batch)  # after a stop nothing more runs
            if why is not None:
                refused.append(Result.cancelled(Task(tid, params), why))
                continue
            if start and start[0] is not None:
                self.starts.seed(tid, start[0])
            self.journal.queued(tid, 0, params, now, batch)
            self.waiting.append(Task(tid, params, 0))
        return refused

    def _on_log(self, record: dict) -> None:
        self.journal.log(record, self.clock.time())

    def _on_optimizer_failure(self, text: str, reported: bool) -> None:
        """The optimizer raised (``reported``) or its process died: queued tasks are cancelled."""
        if not reported:
            self._cancel_waiting("the optimizer failed")
            self._recall()
        elif self.waiting or self.pool.busy:
            self._cancel_waiting("the optimizer failed")
            self._recall()
            log.error("the optimizer failed; letting running tasks finish, cancelling queued ones")

    # -- results ---------------------------------------------------------------------------
    def _on_results(self, results: list[Result]) -> None:
        to_optimizer = []
        judge = self.s.objectives.judge if self.s.objectives is not None else None
        for r in results:
            if judge is not None:  # objective vector and violation: once, before it is journaled and told
                r = judge(r)
            self._stop_asked.discard((r.task_id, r.attempt))
            self._stop_ids.discard(r.task_id)
            if self.stopper is not None:
                try:
                    self.stopper.finished(attempt_key(r.task_id, r.attempt), str(r.status), r.step, r.loss)
                except Exception as e:  # noqa: BLE001
                    log.warning("the stopper failed on the end of task %d: %s: %s", r.task_id, type(e).__name__, e)
            if r.status == CANCELLED and self.ledger.stop is None:
                # an attempt the pool lost while the search runs (its Dask worker left): an ended attempt,
                # journaled with its worker, and run again first, as a resume runs an interrupted one;
                # neither a failure (retries) nor a result for the optimizer
                self.journal.finished(r)
                t, batch = self.ledger.interrupted(r)
                self.journal.queued(t.id, t.attempt, t.params, self.clock.time(), batch)
                self.waiting.appendleft(t)
                continue
            self.journal.finished(r)
            retry = self.ledger.settle(r)
            if retry is not None:  # ahead of every queued task
                t = retry.task
                self.journal.queued(t.id, t.attempt, t.params, self.clock.time(), retry.batch)
                self.waiting.appendleft(t)
                continue
            if self.models is not None and r.status != CANCELLED and \
                    self.models.settle(r, keep_place=self.starts.holds(r.task_id)):
                self.journal.set_meta(models=self.models.kept)  # where each kept model lives, its size
            if self.starts.active:
                self.starts.finished(r.task_id)
            to_optimizer.append(r)
        # finished results reach the disk within RESULT_FLUSH seconds (at once when results are
        # rare, as with real training runs; in batches when thousands arrive per second)
        self._results_due = True
        self._flush_results()
        if to_optimizer and not self.queues.over:
            self._tell(to_optimizer)
        stop = self.ledger.budget_stop()
        if stop is not None:
            self._stop(stop)

    def _flush_interval(self) -> float:
        return min(1.0, max(RESULT_FLUSH, FLUSH_SPACING * self.journal.flush_cost))

    def _flush_results(self) -> None:
        if self._results_due and self.journal.since_flush_left(self._flush_interval()) <= 0:
            self.journal.flush()
            self._results_due = False

    def _cancel_waiting(self, reason: str) -> list[Result]:
        """Journal every queued (not started) task as cancelled; returns their results."""
        now = self.clock.time()
        cancelled = []
        while self.waiting:
            t = self.waiting.popleft()
            r = Result.cancelled(t, reason, end=now)
            self.journal.finished(r)
            cancelled.append(r)
        return cancelled

    def _stop(self, stop: Stop) -> None:
        """No new tasks start; queued ones are cancelled; running ones finish."""
        self.ledger.end(stop)
        cancelled = self._cancel_waiting(str(stop))
        self._recall()  # held ahead by workers: they come back unstarted and are cancelled at the end
        self.queues.stop(str(stop), cancelled)

    def _close_models(self, kill: bool) -> None:
        """keep_models: wait for the model copies (and pbt's deletions) under way (all of them at a
        normal end; after a kill, half the kill margin, and no later than half the time left to
        the deadline)."""
        timeout = None
        if kill:
            timeout = self.s.kill_margin / 2
            if self.s.deadline is not None:
                timeout = max(0.0, min(timeout, (self.s.deadline - self.clock.time()) / 2))
        self.starts.close(timeout)  # pbt: superseded checkpoints being deleted
        if self.models is None:
            return
        try:
            if self.models.close(timeout):
                self.journal.set_meta(models=self.models.kept)
        except Exception as e:  # noqa: BLE001 - the journal and outputs come first
            log.warning("keep_models: the model copies could not be waited for: %s", e)

    def _finish(self, opt: OptimizerProcess | None, kill: bool, t0: float) -> None:
        """Stop the pool and the optimizer, then always flush the journal and write the outputs."""
        led = self.ledger
        try:
            self.journal.flush()  # first: an MPI job may be torn down while the pool stops
            cancelled = self._cancel_waiting(str(led.stop or "finished"))
            try:
                leftovers = self.pool.shutdown(kill=kill)
            except Exception:  # noqa: BLE001 - the journal and outputs come first
                leftovers = []
            for r in leftovers:
                self.journal.finished(r)
            # a Ctrl-C or SIGTERM can land between journaling a task and handing it on (queued
            # but not yet waiting, taken from waiting but not yet submitted): end those too
            now = self.clock.time()
            strays = [Result.cancelled(t, str(led.stop or "finished"), end=now) for t in self.journal.open_tasks()]
            for r in strays:
                self.journal.finished(r)
            cancelled += strays
            if opt is not None:
                if self.queues is not None:
                    # every id the optimizer put gets a final result, so it never waits for one;
                    # then it may take in its last results and send its last log records
                    self.queues.stop(str(led.stop or "finished"), cancelled + leftovers)
                    self.queues.read(1.0 if kill else 10.0, closing=True)
                opt.close(timeout=1.0 if kill else 5.0)
        except KeyboardInterrupt:  # a second Ctrl-C: stop waiting, but still write what we have
            if opt is not None:
                opt.process.terminate()
        finally:
            self._close_models(kill)
            end_session(self.journal, self._sessions, self.resume, t0=t0, now=self.clock.time(),
                        outcome=str(led.stop or "finished"), evaluations=led.evaluations, limit=self._limit)
            self.journal.close()
            self.outputs.write(led.stop)
