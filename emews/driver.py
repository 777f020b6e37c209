"""The driver: the loop between the optimizer's queues and the worker pool.

::

    OptimizerProcess ──("put")──▶ ┌─────────── driver loop ───────────┐ ──Task──▶ pool
                     ◀─results─── │ waiting deque → idle workers      │ ◀─Result─
                                  │ retries, budget, max_time, Ctrl-C │
                                  │ journal (only writer), outputs    │
                                  └───────────────────────────────────┘

The loop blocks in ``pool.wait`` on every worker and the optimizer pipe at once; it never
spins. Every state change goes to the journal (batched; finished results within
``RESULT_FLUSH`` seconds). At the end — normal, deadline, error, SIGTERM or Ctrl-C — the
journal is flushed and ``results.csv``, ``best.json`` and the report are written, so nothing
already computed is lost. A resumed experiment (:mod:`emews.experiment`) starts from what
the journal holds: finished results count and go to the optimizer, open tasks run again.
"""

from __future__ import annotations

import collections
import json
import logging
import secrets
import signal
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ._progress import Progress
from .errors import OptimizerError
from .experiment import ResumeState
from .journal import JOURNAL_NAME, Journal, read_journal, write_best_json, write_results_csv
from .queues import OptimizerProcess
from .results import Results
from .space import Space
from .task import CANCELLED, DONE, Result, Task

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


#: the longest a finished result waits in memory before it is written to the journal
RESULT_FLUSH = 0.05


class Driver:
    """Runs one search: starts the optimizer process, feeds the pool, journals everything.

    With ``resume`` (an earlier session's state, see :mod:`emews.experiment`) the finished
    results count against the budget and go to the optimizer as history, and the tasks
    that were queued or running when that session ended run again first.
    """

    def __init__(self, settings: SearchSettings, pool: Any, directory: Path, resume: ResumeState | None = None):
        self.s = settings
        self.pool = pool
        self.directory = Path(directory)
        self.resume = resume
        self.journal = Journal(self.directory / JOURNAL_NAME)
        self.waiting: collections.deque[Task] = collections.deque()
        self.accepted = 0  # tasks taken from the optimizer (counted against max_evals)
        self.finished = 0  # tasks with a final result
        self.failed = 0  # of which failed or timed out
        self.finished_before = 0  # finished in earlier sessions (resume)
        self.batches = 0  # "put" messages read so far (journaled as each task's batch)
        self._batch_of: dict[int, int] = {}  # task id -> its batch, while the task may be retried
        self.best: float | None = None
        self.stop_reason: str | None = None
        self.optimizer_error: str | None = None
        self.optimizer_done = False
        self.interrupted = False
        self._cancel_running = False  # the deadline is too close for running tasks to finish
        self._results_due = False  # finished results not yet flushed
        self._failures: dict[int, int] = {}  # task id -> failed or timed-out attempts (against retries)
        self._sessions: list[dict] = []  # the journal's sessions, this one last
        self._results: Results | None = None  # the journal as read back once the run is over

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
        sessions.append({"started": t0, "pool": getattr(self.pool, "kind", "?"), "workers": self.pool.size,
                         "finished_before": len(r.completed) if r is not None else 0})
        self._sessions = sessions
        meta = dict(experiment=s.experiment, space=s.space.to_dict(), config=s.config or {}, max_evals=s.max_evals,
                    pool=getattr(self.pool, "kind", "?"), workers=self.pool.size, seed=seed, sessions=sessions,
                    outcome="running")
        if r is None:
            meta["started"] = t0
        self.journal.set_meta(**meta)
        self.journal.flush()
        return seed

    def _take_over(self, now: float) -> dict | None:
        """Resume: count the earlier results, queue the interrupted tasks again; returns what
        the optimizer process needs to pick up where the last one stopped."""
        r = self.resume
        if r is None:
            return None
        s = self.s
        self._failures = dict(r.failures)
        # failed after a stop, with retries left: the stop kept them from their next attempt
        retry = [x for x in r.completed if x.status != DONE and r.failures.get(x.task_id, 0) <= s.retries]
        retry_ids = {x.task_id for x in retry}
        completed = [x for x in r.completed if x.task_id not in retry_ids]
        todo = sorted([Task(x.task_id, x.params, x.attempt + 1) for x in retry] + r.interrupted, key=lambda t: t.id)
        fits = []
        for t in todo:
            if self._fits(t.params):
                fits.append(t)
            elif t.id in r.left_open:
                self.journal.close_attempt(t.id, t.attempt - 1, CANCELLED, "interrupted; not run again: its "
                                           "parameters do not fit the changed space", now)
        self.finished = self.finished_before = len(completed)
        self.failed = sum(1 for x in completed if not x.ok)
        self.best = r.best
        self.batches = r.last_batch
        left = max(0, s.max_evals - self.finished)
        rerun = fits[:left]
        for i, t in enumerate(fits):  # the dead session's open attempts end here, cancelled
            if t.id in r.left_open:
                again = "run again" if i < left else "not run again: evaluation budget spent"
                self.journal.close_attempt(t.id, t.attempt - 1, CANCELLED, f"interrupted while {r.left_open[t.id]} "
                                           f"(the run ended without a result); {again}", now)
        for t in rerun:
            b = r.batches.get(t.id)
            self.journal.queued(t.id, t.attempt, t.params, now, b)
            if b is not None:
                self._batch_of[t.id] = b
            self.waiting.append(t)
        self.accepted = self.finished + len(rerun)
        history = [x for x in completed if self._fits(x.params)]
        if len(history) < len(completed):
            log.warning("%d earlier result(s) do not fit the changed space: they count against max_evals but are not "
                        "given to the optimizer", len(completed) - len(history))
        log.info("resuming %s: %d of %d evaluations finished earlier (best loss %s), %d interrupted task(s) to run "
                 "again", self.directory, self.finished, s.max_evals,
                 "-" if self.best is None else f"{self.best:.6g}", len(rerun))
        return {"history": history, "inflight": [(t.id, t.params) for t in rerun], "first_id": r.first_id}

    def _fits(self, params: dict) -> bool:
        try:
            self.s.space.validate(params)
        except (ValueError, KeyError, TypeError):
            return False
        return True

    def _time_limits(self) -> tuple[float | None, float | None]:
        """Monotonic times at which new tasks stop and running ones are cancelled."""
        s, now_m, now = self.s, time.monotonic(), time.time()
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
        t0 = time.time()
        opt: OptimizerProcess | None = None
        fatal: BaseException | None = None
        previous_sigterm = _catch_sigterm()
        progress = Progress(s.progress_every, s.max_evals, self.pool.size, live=s.live_progress)
        try:
            if self._nothing_to_resume():  # no session, no redrawn report, the outcome kept
                return self._already_complete(progress)
            seed = self._start_meta(t0)
            resume = self._take_over(time.time())
            stop_at, kill_at = self._time_limits()
            if self.finished >= s.max_evals and not self.waiting:
                self.stop_reason = f"already complete ({self.finished} of {s.max_evals} evaluations)"
                log.info("%s: nothing to do; raise max_evals (--set max_evals=N) to continue, or use --fresh for "
                         "a new experiment", self.stop_reason)
                return self._end(None, progress, t0)
            opt = OptimizerProcess(s.optimizer, s.space, seed, s.optimizer_settings, s.mode,
                                   s.batch_size, self.pool.size, s.max_evals, resume)
            progress.start(self.finished)
            while True:
                if self.stop_reason is None and not self.optimizer_error:
                    while self.waiting and self.pool.idle:
                        task = self.waiting.popleft()
                        worker = self.pool.submit(task)
                        if worker is None:  # that worker had died; a new one is starting
                            self.waiting.appendleft(task)
                            break
                        self.journal.running(task.id, task.attempt, worker, time.time())
                if self._over():
                    break
                timeout = 1.0
                now_m = time.monotonic()
                if stop_at is not None and self.stop_reason is None:
                    timeout = max(0.0, min(timeout, stop_at - now_m))
                if kill_at is not None:
                    timeout = max(0.0, min(timeout, kill_at - now_m))
                if self._results_due:
                    timeout = max(0.0, min(timeout, self.journal.since_flush_left(RESULT_FLUSH)))
                extra = [] if self.optimizer_done or self.optimizer_error else [opt.conn]
                results = self.pool.wait(timeout, extra)
                if extra:
                    self._read_optimizer(opt)
                if results:
                    self._on_results(results, opt)
                now_m = time.monotonic()
                if stop_at is not None and self.stop_reason is None and now_m >= stop_at:
                    self._stop(self._time_reason(), opt)
                if kill_at is not None and now_m >= kill_at and self.pool.busy:
                    self.stop_reason = self.stop_reason or self._time_reason()
                    self._cancel_running = True
                    log.warning("%d running task(s) cancelled %g s before the %s; a resume runs them again",
                                self.pool.busy, s.kill_margin, s.deadline_source)
                    break
                self._flush_results()
                self.journal.maybe_flush()
                progress.update(self.finished, self.failed, self.best, self.pool.busy)
        except Terminated:
            self.interrupted = True
            self.stop_reason = "terminated (SIGTERM)"
        except KeyboardInterrupt:
            self.interrupted = True
            self.stop_reason = "interrupted (Ctrl-C)"
        except BaseException as e:  # noqa: BLE001 - keep what was computed, then re-raise
            fatal = e
            self.stop_reason = f"error: {e}"
        finally:
            try:
                if self._results is None:
                    self._end(opt, progress, t0, kill=self.interrupted or fatal is not None or self._cancel_running)
            finally:
                _restore_sigterm(previous_sigterm)
        if fatal is not None:
            raise fatal
        if self.interrupted:
            exc = Terminated if self.stop_reason.startswith("terminated") else KeyboardInterrupt
            raise exc(f"{self.stop_reason}; results so far are kept in {self.directory}; run the same command again "
                      "to resume")
        if self.optimizer_error:
            raise OptimizerError(f"the optimizer failed; results so far are kept in {self.directory}.\n{self.optimizer_error}")
        return self.results()

    # -- a resume with nothing to do (issue 12: it used to count as a session and redraw the report)
    def _nothing_to_resume(self) -> bool:
        """A resumed experiment whose budget is spent, with no interrupted task and no failed
        one left to retry."""
        r, s = self.resume, self.s
        if r is None or r.interrupted or r.left_open or len(r.completed) < s.max_evals:
            return False
        return not any(x.status != DONE and r.failures.get(x.task_id, 0) <= s.retries for x in r.completed)

    def _already_complete(self, progress: Progress) -> Results:
        """Leave the journal, results.csv and the report as the last session wrote them."""
        self.finished = self.finished_before = len(self.resume.completed)
        self.stop_reason = f"already complete ({self.finished} of {self.s.max_evals} evaluations)"
        log.info("%s: nothing to do; raise max_evals (--set max_evals=N) to continue, or use --fresh for a new "
                 "experiment", self.stop_reason)
        progress.close(self.finished, 0, self.resume.best, 0)
        self.journal.close()
        return self.results()

    def _time_reason(self) -> str:
        s = self.s
        if s.deadline is not None and (not s.max_time or time.time() >= s.deadline - s.stop_margin - 0.5):
            return f"{s.deadline_source} near: stopped {s.stop_margin:g} s before it"
        return f"max_time of {s.max_time:g} s reached"

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
        if self.stop_reason is not None:
            return running == 0
        if self.finished >= self.s.max_evals:
            self.stop_reason = "max_evals reached"
            return running == 0
        if (self.optimizer_done or self.optimizer_error) and not self.waiting and running == 0:
            self.stop_reason = self.stop_reason or ("optimizer failed" if self.optimizer_error else "optimizer finished")
            return True
        return False

    def _read_optimizer(self, opt: OptimizerProcess) -> None:
        now = time.time()
        while not (self.optimizer_done or self.optimizer_error):
            try:
                if not opt.conn.poll(0):
                    return
                kind, body = opt.conn.recv()
            except (EOFError, OSError):
                if not self.optimizer_done:
                    code = opt.process.exitcode
                    self.optimizer_error = f"the optimizer process ended unexpectedly (exit code {code})"
                    self._cancel_waiting("the optimizer failed")
                return
            if kind == "put":
                self.batches += 1
                refused = []
                for tid, params in body:
                    if self.stop_reason is not None or self.accepted >= self.s.max_evals:
                        refused.append(Result(tid, params, CANCELLED, error=self.stop_reason or "evaluation budget spent"))
                        continue
                    self.accepted += 1
                    self.journal.queued(tid, 0, params, now, self.batches)
                    self._batch_of[tid] = self.batches
                    self.waiting.append(Task(tid, params, 0))
                if refused:
                    opt.send(("results", refused))
            elif kind == "log":
                self.journal.log(body, now)
            elif kind == "done":
                self.optimizer_done = True
            elif kind == "error":
                self.optimizer_error = body
                self._cancel_waiting("the optimizer failed")
                log.error("the optimizer failed; letting running tasks finish, cancelling queued ones")

    def _on_results(self, results: list[Result], opt: OptimizerProcess) -> None:
        to_optimizer = []
        for r in results:
            failed_before = self._failures.get(r.task_id, 0)
            if r.status != DONE and r.status != CANCELLED:
                self._failures[r.task_id] = failed_before + 1
            if r.status != DONE and r.status != CANCELLED and failed_before < self.s.retries and self.stop_reason is None:
                self.journal.finished(r)
                retry = Task(r.task_id, r.params, r.attempt + 1)
                self.journal.queued(retry.id, retry.attempt, retry.params, time.time(), self._batch_of.get(r.task_id))
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
            opt.send(("results", to_optimizer))
        if self.finished >= self.s.max_evals and self.stop_reason is None:
            self._stop("max_evals reached", opt)

    def _flush_results(self) -> None:
        if self._results_due and self.journal.since_flush_left(RESULT_FLUSH) <= 0:
            self.journal.flush()
            self._results_due = False

    def _cancel_waiting(self, reason: str) -> list[Result]:
        """Journal every queued (not started) task as cancelled; returns their results."""
        now = time.time()
        cancelled = []
        while self.waiting:
            t = self.waiting.popleft()
            r = Result(t.id, t.params, CANCELLED, error=reason, end=now, attempt=t.attempt)
            self.journal.finished(r)
            cancelled.append(r)
        return cancelled

    def _stop(self, reason: str, opt: OptimizerProcess) -> None:
        """No new tasks start; queued ones are cancelled; running ones finish."""
        self.stop_reason = reason
        cancelled = self._cancel_waiting(reason)
        if cancelled:
            opt.send(("results", cancelled))
        opt.send(("stop", reason))

    def _finish(self, opt: OptimizerProcess | None, kill: bool, t0: float) -> None:
        """Stop the pool and the optimizer, then always flush the journal and write the outputs."""
        try:
            self.journal.flush()  # first: an MPI job may be torn down while the pool stops
            cancelled = self._cancel_waiting(self.stop_reason or "finished")
            try:
                leftovers = self.pool.shutdown(kill=kill)
            except Exception:  # noqa: BLE001 - the journal and outputs come first
                leftovers = []
            for r in leftovers:
                self.journal.finished(r)
            if opt is not None:
                # every id the optimizer put gets a final result, so it never waits for one
                if cancelled or leftovers:
                    opt.send(("results", cancelled + leftovers))
                opt.send(("stop", self.stop_reason or "finished"))
                self._drain_optimizer(opt, timeout=1.0 if kill else 10.0)
                opt.close(timeout=1.0 if kill else 5.0)
        except KeyboardInterrupt:  # a second Ctrl-C: stop waiting, but still write what we have
            if opt is not None:
                opt.process.terminate()
        finally:
            now = time.time()
            outcome = self.stop_reason or "finished"
            sessions = self._sessions
            if sessions:
                sessions[-1].update(finished=now, outcome=outcome, evaluations=self.finished - self.finished_before)
            before = float((self.resume.meta.get("runtime") or 0) if self.resume is not None else 0)
            self.journal.set_meta(finished=now, runtime=before + now - t0, outcome=outcome, sessions=sessions)
            self.journal.close()
            self.write_outputs()

    def _drain_optimizer(self, opt: OptimizerProcess, timeout: float) -> None:
        """Let the optimizer take in its last results and journal its last log records."""
        end = time.monotonic() + timeout
        while not (self.optimizer_done or self.optimizer_error):
            left = end - time.monotonic()
            if left <= 0:
                return
            try:
                if not opt.conn.poll(min(left, 0.5)):
                    continue
                kind, body = opt.conn.recv()
            except (EOFError, OSError):
                return
            if kind == "log":
                self.journal.log(body, time.time())
            elif kind == "put":  # after the stop nothing more is evaluated
                opt.send(("results", [Result(tid, p, CANCELLED, error=self.stop_reason) for tid, p in body]))
            elif kind == "done":
                self.optimizer_done = True
            elif kind == "error":
                self.optimizer_error = body

    # -- outputs -------------------------------------------------------------------------
    def results(self) -> Results:
        if self._results is None:
            j = read_journal(self.directory)
            self._results = Results(j["evals"], self.s.space.names, self.directory, j["optimizer_log"], meta=j["meta"])
            self._results.outcome = self.stop_reason or "finished"
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
