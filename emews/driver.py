"""The driver: the loop between the optimizer's queues and the worker pool.

::

    OptimizerProcess ──PUT────▶ ┌─────────── driver loop ───────────┐ ──Task──▶ pool
                     ◀─results─── │ waiting deque → idle workers      │ ◀─Result─
                                  │ retries, budget, max_time, Ctrl-C │
                                  │ journal (only writer), outputs    │
                                  └───────────────────────────────────┘

The loop blocks in ``pool.wait`` on every worker and the optimizer pipe at once; it never
spins. Every state change goes to the journal (batched; finished results within
``RESULT_FLUSH`` seconds). At the end — normal, deadline, error, SIGTERM or Ctrl-C — the
journal is flushed and ``results.csv``, ``best.json`` and the report are written, so nothing
already computed is lost. A resumed experiment (:mod:`emews.resume`) starts from what
the journal holds: finished results count and go to the optimizer, open tasks run again.
"""

from __future__ import annotations

import collections
import json
import logging
import secrets
import select
import signal
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ._progress import Progress
from .errors import OptimizerError
from .journal import JOURNAL_NAME, Journal, read_journal
from .optimizers._host import OptimizerProcess
from .queues import _protocol as wire
from .results import Results, write_best_json, write_results_csv
from .resume import Handoff, ResumeState, plan_resume
from .space import Space
from .task import CANCELLED, DONE, STOPPED, Report, Result, Stop, StopReason, Task, attempt_key

__all__ = ["Driver", "SearchSettings", "Terminated"]

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


class Terminated(KeyboardInterrupt):
    """SIGTERM (a batch system's time limit, ``scancel``, ``kill``) during a run: handled like
    Ctrl-C, so the journal is closed and the outputs are written."""


def _raise_terminated(signum: int, frame: Any) -> None:
    raise Terminated("terminated (SIGTERM)")


def _catch_sigterm() -> Any:
    if threading.current_thread() is not threading.main_thread():
        return None
    return signal.signal(signal.SIGTERM, _raise_terminated)


def _restore_sigterm(previous: Any) -> None:
    if previous is not None:
        signal.signal(signal.SIGTERM, previous)


#: the longest a finished result waits in memory before it is written to the journal...
RESULT_FLUSH = 0.05
#: ...unless flushes are slow (thousands of results a second, a slow disk): then they are
#: spaced by this many times the last flush's cost, so journaling stays ~10% of the driver's time
FLUSH_SPACING = 10.0
#: the longest finished results are held back from an optimizer that still has proposals
#: queued (see :meth:`Driver._tell`)
TELL_WAIT = 0.05


class Driver:
    """Runs one search: starts the optimizer process, feeds the pool, journals everything.

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
        self.directory = Path(directory)
        self.resume = resume
        self.journal = Journal(self.directory / JOURNAL_NAME)
        self._opt_waiting = False  # the optimizer said it is blocked waiting for results
        self._limit: float | None = None  # when a time limit stopped new tasks
        self._poller: Any = None  # readiness of the optimizer pipe (select.poll)
        self.waiting: collections.deque[Task] = collections.deque()
        self.accepted = 0  # tasks taken from the optimizer (counted against max_evals)
        self.finished = 0  # tasks with a final result
        self.failed = 0  # of which failed or timed out
        self.finished_before = 0  # finished in earlier sessions (resume)
        self.batches = 0  # "put" messages read so far (journaled as each task's batch)
        self._batch_of: dict[int, int] = {}  # task id -> its batch, while the task may be retried
        self.best: float | None = None
        self.stop: Stop | None = None  # why the session ends (set once)
        self.optimizer_error: str | None = None
        self.optimizer_done = False
        self.interrupted = False
        self._cancel_running = False  # the deadline is too close for running tasks to finish
        self._results_due = False  # finished results not yet flushed
        self._untold: list[Result] = []  # finished results held back from the optimizer (_tell)
        self._untold_since = 0.0  # when the oldest of them came (clock.monotonic)
        self._failures: dict[int, int] = {}  # task id -> failed or timed-out attempts (against retries)
        self._sessions: list[dict] = []  # the journal's sessions, this one last
        self._results: Results | None = None  # the journal as read back once the run is over
        self._preload: threading.Thread | None = None  # matplotlib imported ahead of the report
        from .stoppers import from_config  # light: the built-in rules import nothing heavy

        #: the early-stopping rule (None: reports are journaled, nothing is stopped)
        self.stopper = from_config(settings.stopper)
        self.reports = 0  # intermediate reports received this session
        self.stopped = 0  # tasks that ended stopped, this session
        self._stop_asked: set[tuple[int, int]] = set()  # attempts told to stop (stopper or optimizer)
        self._stop_ids: set[int] = set()  # tasks the optimizer asked to stop (queued or running)
        self._capacity_told = max(1, self.pool.size)  # the worker slots the optimizer plans for
        self._size_logged = self.pool.size  # the pool's size last journaled (sessions[-1]["capacity"])

    # -- start ---------------------------------------------------------------------------
    def _start_meta(self, t0: float) -> int:
        """Journal the session's start; returns the seed the optimizer gets."""
        s, r = self.s, self.resume
        seed = s.seed
        if seed is None and r is not None:
            seed = r.seed  # a resident optimizer retraces its steps only with the same seed
        if seed is None:
            seed = secrets.randbits(31)  # unseeded search: still recorded, so a resume can replay it
        sessions = list(r.meta.get("sessions") or []) if r is not None else []
        if r is not None and not sessions:  # a journal from before sessions were recorded
            sessions = [{k: r.meta.get(k) for k in ("started", "finished", "outcome", "pool", "workers")}]
        if sessions and sessions[-1].get("finished") is None:
            sessions[-1]["outcome"] = sessions[-1].get("outcome") or "killed (no orderly end was journaled)"
        sessions.append({"started": t0, "pool": self.pool.kind, "workers": self.pool.size,
                         "finished_before": len(r.completed) if r is not None else 0})
        self._sessions = sessions
        meta = dict(experiment=s.experiment, space=s.space.to_dict(), config=s.config or {}, max_evals=s.max_evals,
                    pool=self.pool.kind, workers=self.pool.size, seed=seed, sessions=sessions,
                    outcome="running")
        if r is None:
            meta["started"] = t0
        self.journal.set_meta(**meta)
        self.journal.flush()
        return seed

    def _take_over(self, now: float) -> Handoff | None:
        """Resume: count the earlier results, queue the interrupted tasks again; returns what
        the optimizer process needs to pick up where the last one stopped."""
        r = self.resume
        if r is None:
            return None
        s = self.s
        plan = plan_resume(r, s.space, s.max_evals, s.retries)
        self._failures = dict(plan.failures)
        for tid, attempt, error in plan.closings:
            self.journal.close_attempt(tid, attempt, CANCELLED, error, now)
        self.finished = self.finished_before = plan.finished
        self.failed = plan.failed
        self.best = plan.best
        self.batches = plan.last_batch
        for t in plan.rerun:
            b = plan.batches.get(t.id)
            self.journal.queued(t.id, t.attempt, t.params, now, b)
            if b is not None:
                self._batch_of[t.id] = b
            self.waiting.append(t)
        self.accepted = self.finished + len(plan.rerun)
        self._restore_stopper(r)
        if plan.unfit:
            log.warning("%d earlier result(s) do not fit the changed space: they count against max_evals but are not "
                        "given to the optimizer", plan.unfit)
        log.info("resuming %s: %d of %d evaluations finished earlier (best loss %s), %d interrupted task(s) to run "
                 "again", self.directory, self.finished, s.max_evals,
                 "-" if self.best is None else f"{self.best:.6g}", len(plan.rerun))
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
        s = self.s
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
            if self._nothing_to_resume():  # no session, no redrawn report, the outcome kept
                return self._already_complete(progress)
            seed = self._start_meta(t0)
            if s.report:  # matplotlib's import and first draw overlap the search, not follow it
                from .report import preload_plots

                self._preload = threading.Thread(target=preload_plots, name="emews-plots-preload", daemon=True)
                self._preload.start()
            handoff = self._take_over(self.clock.time())
            stop_at, kill_at = self._time_limits()
            if self.finished >= s.max_evals and not self.waiting:
                self.stop = Stop(StopReason.ALREADY_COMPLETE,
                                 f"already complete ({self.finished} of {s.max_evals} evaluations)")
                log.info("%s: nothing to do; raise max_evals (--set max_evals=N) to continue, or use --fresh for "
                         "a new experiment", self.stop)
                return self._end(None, progress, t0)
            opt = OptimizerProcess(s.optimizer, s.space, seed, s.optimizer_settings, s.mode,
                                   s.batch_size, self._capacity_told, s.max_evals, handoff,
                                   announce_waits=self.clock.simulated)
            self._poller = select.poll()  # a readiness check in a microsecond (Connection.poll takes ~50)
            self._poller.register(opt.conn.fileno(), select.POLLIN)
            progress.start(self.finished)
            while True:
                if self.stop is None and not self.optimizer_error:
                    while self.waiting and self.pool.idle:
                        task = self.waiting.popleft()
                        worker = self.pool.submit(task)
                        if worker is None:  # that worker had died; a new one is starting
                            self.waiting.appendleft(task)
                            break
                        self.journal.running(task.id, task.attempt, worker, self.clock.time())
                if self._untold:
                    self._tell(opt, [])
                if self._over():
                    break
                timeout = 1.0
                now_m = self.clock.monotonic()
                if stop_at is not None and self.stop is None:
                    timeout = max(0.0, min(timeout, stop_at - now_m))
                if kill_at is not None:
                    timeout = max(0.0, min(timeout, kill_at - now_m))
                if self._results_due:
                    timeout = max(0.0, min(timeout, self.journal.since_flush_left(self._flush_interval())))
                if self._untold:
                    timeout = max(0.0, min(timeout, self._untold_since + TELL_WAIT - now_m))
                extra = [] if self.optimizer_done or self.optimizer_error else [opt.conn]
                if self.clock.simulated:  # may it skip to the next completion, and how far at most
                    self.clock.may_jump = self._only_completions_can_come(opt, extra)
                    limits = [t for t in (stop_at if self.stop is None else None, kill_at) if t is not None]
                    self.clock.jump_limit = min(limits) if limits else None
                results = self.pool.wait(timeout, extra)
                if extra:
                    self._read_optimizer(opt)
                if results:
                    self._on_results(results, opt)
                now_m = self.clock.monotonic()
                if stop_at is not None and self.stop is None and now_m >= stop_at:
                    self._limit = self.clock.time()  # the report's utilization span ends here
                    self._stop(self._time_stop(), opt)
                if kill_at is not None and now_m >= kill_at and self.pool.busy:
                    self.stop = self.stop or self._time_stop()
                    self._cancel_running = True
                    log.warning("%d running task(s) cancelled %g s before the %s; a resume runs them again",
                                self.pool.busy, s.kill_margin, s.deadline_source)
                    break
                self._flush_results()
                self.journal.maybe_flush()
                progress.workers = self.pool.size  # an elastic pool's (Dask) capacity changes as workers come and go
                self._tell_capacity(opt)
                progress.update(self.finished, self.failed, self.best, self.pool.busy)
        except Terminated:
            self.interrupted = True
            self.stop = Stop(StopReason.TERMINATED, "terminated (SIGTERM)")
        except KeyboardInterrupt:
            self.interrupted = True
            self.stop = Stop(StopReason.INTERRUPTED, "interrupted (Ctrl-C)")
        except BaseException as e:  # noqa: BLE001 - keep what was computed, then re-raise
            fatal = e
            self.stop = Stop(StopReason.ERROR, f"error: {e}")
        finally:
            try:
                if self._results is None:
                    self._end(opt, progress, t0, kill=self.interrupted or fatal is not None or self._cancel_running)
            finally:
                _restore_sigterm(previous_sigterm)
                if self._preload is not None:  # never left importing while the interpreter exits
                    self._preload.join()
        if fatal is not None:
            raise fatal
        if self.interrupted:
            exc = Terminated if self.stop.reason is StopReason.TERMINATED else KeyboardInterrupt
            raise exc(f"{self.stop}; results so far are kept in {self.directory}; run the same command again "
                      "to resume")
        if self.optimizer_error:
            raise OptimizerError(f"the optimizer failed; results so far are kept in {self.directory}.\n{self.optimizer_error}")
        return self.results()

    def _tell_capacity(self, opt: OptimizerProcess) -> None:
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
        if n != self._capacity_told and self.stop is None and not (self.optimizer_done or self.optimizer_error):
            self._capacity_told = n
            opt.send(wire.capacity(n))

    def _opt_readable(self) -> bool:
        """The optimizer has sent something (or closed its end)."""
        return bool(self._poller.poll(0))

    def _only_completions_can_come(self, opt: OptimizerProcess, extra: list) -> bool:
        """True when nothing but a task completion can happen next: no idle worker with work
        queued, and the optimizer either cannot add work that would run (every worker busy,
        the budget taken, the search stopped or over) or has said it is blocked waiting for
        results, with nothing of its unread. A simulated clock may then skip ahead."""
        if self.waiting and self.pool.idle:
            return False
        if extra and self._opt_readable():
            return False
        return (self.pool.idle == 0 or self._opt_waiting or self.stop is not None or self.optimizer_done
                or bool(self.optimizer_error) or self.accepted >= self.s.max_evals)

    def _send_results(self, opt: OptimizerProcess, results: list[Result]) -> None:
        if self._untold:  # results held back by _tell go first, in the order they came
            results, self._untold = self._untold + list(results), []
        self._opt_waiting = False  # it has something to think about now
        opt.send(wire.results(results))

    def _tell(self, opt: OptimizerProcess, results: list[Result]) -> None:
        """Give finished results to the optimizer, or hold them back for a moment while it
        has enough proposals queued here that the workers do not need it yet.

        Each message wakes the optimizer process, which then sends its next proposals and
        wakes the driver: two process switches and the optimizer's own work per message.
        On a busy machine, one message per result cost more than half the dispatch rate
        (``benchmarks/perf/dispatch_mpi.py`` under load). So results are held while the
        queued proposals outnumber, beyond one per worker, the results held; for at most
        ``TELL_WAIT`` seconds; never after a stop nor on a simulated clock (whose jumps
        assume the optimizer has been told everything). An optimizer that proposes only
        for free workers (``lookahead = 0``, e.g. ``mbo``) has nothing queued here: its
        results go at once.
        """
        if results and not self._untold:
            self._untold_since = self.clock.monotonic()
        self._untold.extend(results)
        if not self._untold:
            return
        if self.optimizer_done or self.optimizer_error:
            self._untold.clear()
            return
        hold = (not self.clock.simulated and self.stop is None
                and len(self._untold) < len(self.waiting) - self.pool.size
                and self.clock.monotonic() - self._untold_since < TELL_WAIT)
        if not hold:
            self._send_results(opt, [])

    # -- a resume with nothing to do (it must not count as a session nor redraw the report)
    def _nothing_to_resume(self) -> bool:
        """A resumed experiment whose budget is spent, with no interrupted task and no failed
        one left to retry (what :func:`~emews.resume.plan_resume` would run again: nothing)."""
        r, s = self.resume, self.s
        if r is None or len(r.completed) < s.max_evals:
            return False
        plan = plan_resume(r, s.space, s.max_evals, s.retries)
        return not plan.rerun and not plan.closings

    def _already_complete(self, progress: Progress) -> Results:
        """Leave the journal, results.csv and the report as the last session wrote them."""
        self.finished = self.finished_before = len(self.resume.completed)
        self.stop = Stop(StopReason.ALREADY_COMPLETE, f"already complete ({self.finished} of {self.s.max_evals} "
                                                      "evaluations)")
        log.info("%s: nothing to do; raise max_evals (--set max_evals=N) to continue, or use --fresh for a new "
                 "experiment", self.stop)
        progress.close(self.finished, 0, self.resume.best, 0)
        self.journal.close()
        return self.results()

    def _time_stop(self) -> Stop:
        s = self.s
        if s.deadline is not None and (not s.max_time or self.clock.time() >= s.deadline - s.stop_margin - 0.5):
            return Stop(StopReason.DEADLINE, f"{s.deadline_source} near: stopped {s.stop_margin:g} s before it")
        return Stop(StopReason.MAX_TIME, f"max_time of {s.max_time:g} s reached")

    def _end(self, opt: OptimizerProcess | None, progress: Progress, t0: float, kill: bool = False) -> Results:
        progress.close(self.finished, self.failed, self.best, 0)
        self._finish(opt, kill=kill, t0=t0)
        res = self.results()
        if self.s.report:
            self._report(res)
        return res

    def _report(self, res: Results) -> None:
        """report.json, report.txt and the PNGs; a problem here never costs the results."""
        from .report import write_report

        try:
            data = write_report(res)
        except KeyboardInterrupt:
            log.warning("report skipped (interrupted); make it with: python -m emews.report %s", self.directory)
        except Exception as e:  # noqa: BLE001 - the journal and results.csv are already written
            log.warning("no report written (%s); try: python -m emews.report %s", e, self.directory)
        else:
            log.debug("report written: %s", ", ".join(["report.json", "report.txt", *data.get("plots", [])]))

    def _over(self) -> bool:
        running = self.pool.busy
        if self.stop is not None:
            return running == 0
        if self.finished >= self.s.max_evals:
            self.stop = Stop(StopReason.MAX_EVALS, "max_evals reached")
            return running == 0
        if (self.optimizer_done or self.optimizer_error) and not self.waiting and running == 0:
            self.stop = self.stop or (Stop(StopReason.OPTIMIZER_FAILED, "optimizer failed") if self.optimizer_error
                                      else Stop(StopReason.OPTIMIZER_FINISHED, "optimizer finished"))
            return True
        return False

    def _read_optimizer(self, opt: OptimizerProcess) -> None:
        """Handle every message the optimizer has sent (the driver's side of the protocol)."""
        while not (self.optimizer_done or self.optimizer_error):
            try:
                if not self._opt_readable():
                    return
                msg = opt.conn.recv()
            except (EOFError, OSError):
                if not self.optimizer_done:
                    code = opt.process.exitcode
                    self.optimizer_error = f"the optimizer process ended unexpectedly (exit code {code})"
                    self._cancel_waiting("the optimizer failed")
                return
            wire.dispatch(msg, self._handlers(opt))

    def _handlers(self, opt: OptimizerProcess) -> dict:
        def on_put(items: list[tuple[int, dict]]) -> None:
            now = self.clock.time()
            self.batches += 1
            refused = []
            for tid, params in items:
                if self.stop is not None or self.accepted >= self.s.max_evals:  # after a stop nothing more runs
                    refused.append(Result.cancelled(Task(tid, params), str(self.stop or "evaluation budget spent")))
                    continue
                self.accepted += 1
                self.journal.queued(tid, 0, params, now, self.batches)
                self._batch_of[tid] = self.batches
                self.waiting.append(Task(tid, params, 0))
            if refused:
                self._send_results(opt, refused)

        def on_log(record: dict) -> None:
            self.journal.log(record, self.clock.time())

        def on_wait(_: None) -> None:
            self._opt_waiting = True

        def on_done(_: None) -> None:
            self.optimizer_done = True

        def on_stop_task(task_id: int) -> None:
            self.stop_task(task_id)

        def on_error(text: str) -> None:
            self.optimizer_error = text
            if self.waiting or self.pool.busy:
                self._cancel_waiting("the optimizer failed")
                log.error("the optimizer failed; letting running tasks finish, cancelling queued ones")

        return {wire.PUT: on_put, wire.LOG: on_log, wire.WAIT: on_wait, wire.DONE: on_done, wire.ERROR: on_error,
                wire.STOP_TASK: on_stop_task}

    def _on_results(self, results: list[Result], opt: OptimizerProcess) -> None:
        to_optimizer = []
        for r in results:
            self._stop_asked.discard((r.task_id, r.attempt))
            self._stop_ids.discard(r.task_id)
            if self.stopper is not None:
                try:
                    self.stopper.finished(attempt_key(r.task_id, r.attempt), str(r.status), r.step, r.loss)
                except Exception as e:  # noqa: BLE001
                    log.warning("the stopper failed on the end of task %d: %s: %s", r.task_id, type(e).__name__, e)
            if r.status == CANCELLED and self.stop is None:
                # an attempt the pool lost while the search runs (its Dask worker left): an ended attempt,
                # journaled with its worker, and run again first, as a resume runs an interrupted one;
                # neither a failure (retries) nor a result for the optimizer
                self.journal.finished(r)
                retry = Task(r.task_id, r.params, r.attempt + 1)
                self.journal.queued(retry.id, retry.attempt, retry.params, self.clock.time(), self._batch_of.get(r.task_id))
                self.waiting.appendleft(retry)
                continue
            if r.status == STOPPED:  # neither failed nor done: not retried, not a failure
                self.stopped += 1
                self.journal.finished(r)
                self._batch_of.pop(r.task_id, None)
                self._failures.pop(r.task_id, None)
                self.finished += 1
                to_optimizer.append(r)
                continue
            failed_before = self._failures.get(r.task_id, 0)
            if r.status != DONE and r.status != CANCELLED:
                self._failures[r.task_id] = failed_before + 1
            if r.status != DONE and r.status != CANCELLED and failed_before < self.s.retries and self.stop is None:
                self.journal.finished(r)
                retry = Task(r.task_id, r.params, r.attempt + 1)
                self.journal.queued(retry.id, retry.attempt, retry.params, self.clock.time(), self._batch_of.get(r.task_id))
                self.waiting.appendleft(retry)
                continue
            self.journal.finished(r)
            self._batch_of.pop(r.task_id, None)
            self._failures.pop(r.task_id, None)
            if r.status != CANCELLED:
                self.finished += 1
                self.failed += 0 if r.ok else 1
            if r.ok and (self.best is None or r.loss < self.best):
                self.best = r.loss
            to_optimizer.append(r)
        # finished results reach the disk within RESULT_FLUSH seconds (at once when results are
        # rare, as with real training runs; in batches when thousands arrive per second)
        self._results_due = True
        self._flush_results()
        if to_optimizer and not (self.optimizer_done or self.optimizer_error):
            self._tell(opt, to_optimizer)
        if self.finished >= self.s.max_evals and self.stop is None:
            self._stop(Stop(StopReason.MAX_EVALS, "max_evals reached"), opt)

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

    def _stop(self, stop: Stop, opt: OptimizerProcess) -> None:
        """No new tasks start; queued ones are cancelled; running ones finish."""
        self.stop = stop
        cancelled = self._cancel_waiting(str(stop))
        if cancelled or self._untold:
            self._send_results(opt, cancelled)
        opt.send(wire.stop(str(stop)))

    def _finish(self, opt: OptimizerProcess | None, kill: bool, t0: float) -> None:
        """Stop the pool and the optimizer, then always flush the journal and write the outputs."""
        try:
            self.journal.flush()  # first: an MPI job may be torn down while the pool stops
            cancelled = self._cancel_waiting(str(self.stop or "finished"))
            try:
                leftovers = self.pool.shutdown(kill=kill)
            except Exception:  # noqa: BLE001 - the journal and outputs come first
                leftovers = []
            for r in leftovers:
                self.journal.finished(r)
            # a Ctrl-C or SIGTERM can land between journaling a task and handing it on (queued
            # but not yet waiting, taken from waiting but not yet submitted): end those too
            now = self.clock.time()
            strays = [Result.cancelled(t, str(self.stop or "finished"), end=now) for t in self.journal.open_tasks()]
            for r in strays:
                self.journal.finished(r)
            cancelled += strays
            if opt is not None:
                # every id the optimizer put gets a final result, so it never waits for one
                if cancelled or leftovers or self._untold:
                    self._send_results(opt, cancelled + leftovers)
                opt.send(wire.stop(str(self.stop or "finished")))
                self._drain_optimizer(opt, timeout=1.0 if kill else 10.0)
                opt.close(timeout=1.0 if kill else 5.0)
        except KeyboardInterrupt:  # a second Ctrl-C: stop waiting, but still write what we have
            if opt is not None:
                opt.process.terminate()
        finally:
            now = self.clock.time()
            outcome = str(self.stop or "finished")
            sessions = self._sessions
            if sessions:
                sessions[-1].update(finished=now, outcome=outcome, evaluations=self.finished - self.finished_before)
                if self._limit is not None:
                    sessions[-1]["limit"] = self._limit
            before = float((self.resume.meta.get("runtime") or 0) if self.resume is not None else 0)
            self.journal.set_meta(finished=now, runtime=before + now - t0, outcome=outcome, sessions=sessions)
            self.journal.close()
            self.write_outputs()

    def _drain_optimizer(self, opt: OptimizerProcess, timeout: float) -> None:
        """Let the optimizer take in its last results and journal its last log records."""
        end = time.monotonic() + timeout
        handlers = self._handlers(opt)
        while not (self.optimizer_done or self.optimizer_error):
            left = end - time.monotonic()
            if left <= 0:
                return
            try:
                if not opt.conn.poll(min(left, 0.5)):
                    continue
                msg = opt.conn.recv()
            except (EOFError, OSError):
                return
            wire.dispatch(msg, handlers)

    # -- outputs -------------------------------------------------------------------------
    def results(self) -> Results:
        if self._results is None:
            j = read_journal(self.directory)
            self._results = Results(j["evals"], self.s.space.names, self.directory, j["optimizer_log"], meta=j["meta"],
                                    reports=j.get("reports") or [])
            self._results.outcome = str(self.stop or "finished")
            self._results.stop = self.stop
        return self._results

    def write_outputs(self) -> None:
        """results.csv, best.json and optimizer_log.jsonl from the closed journal (read once,
        kept as :meth:`results`, which the report also uses)."""
        res = self.results()
        write_results_csv(self.directory / "results.csv", res.all_attempts, self.s.space.names)
        write_best_json(self.directory / "best.json", res.all_attempts)
        if res.optimizer_log:
            with open(self.directory / "optimizer_log.jsonl", "w") as f:
                for rec in res.optimizer_log:
                    f.write(json.dumps(rec, default=str) + "\n")
