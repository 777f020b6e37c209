"""The driver: the loop between the optimizer's queues and the worker pool.

::

    OptimizerProcess ──("put")──▶ ┌─────────── driver loop ───────────┐ ──Task──▶ pool
                     ◀─results─── │ waiting deque → idle workers      │ ◀─Result─
                                  │ retries, budget, max_time, Ctrl-C │
                                  │ journal (only writer), outputs    │
                                  └───────────────────────────────────┘

The loop blocks in ``pool.wait`` on every worker and the optimizer pipe at once; it never
spins. Every state change goes to the journal (batched). At the end — normal, error or
Ctrl-C — the journal is flushed and ``results.csv`` and ``best.json`` are written, so
nothing already computed is lost.
"""

from __future__ import annotations

import collections
import json
import signal
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .errors import ConfigError, OptimizerError
from .journal import JOURNAL_NAME, Journal, read_journal, write_best_json, write_results_csv
from .queues import OptimizerProcess
from .results import Results
from .space import Space
from .task import CANCELLED, DONE, Result, Task

__all__ = ["Driver", "SearchSettings", "Terminated", "prepare_experiment_dir"]


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


def prepare_experiment_dir(output: str | Path, name: str, exact: str | Path | None = None) -> Path:
    """Create the experiment directory.

    With ``exact`` that directory is used and must not already hold a journal. Otherwise
    ``output/name``, or ``output/name-2``, ``-3``... when that one is taken: a new run never
    overwrites an old one.

    Raises:
        ConfigError: the path (or a parent) is a file, or ``exact`` already holds a journal.
    """
    if exact is not None:
        d = Path(exact)
        if d.exists() and not d.is_dir():
            raise ConfigError(f"output directory {str(d)!r} is a file, not a directory", key="--out")
        if (d / JOURNAL_NAME).exists():
            raise ConfigError(f"{str(d)!r} already holds an experiment journal; choose a new directory", key="--out")
        try:
            d.mkdir(parents=True, exist_ok=True)
        except (FileExistsError, NotADirectoryError):
            raise ConfigError(f"cannot create output directory {str(d)!r}: a parent is a file", key="--out") from None
        return d
    base = Path(output)
    if base.exists() and not base.is_dir():
        raise ConfigError(f"output directory {str(base)!r} is a file, not a directory", key="output")
    try:
        base.mkdir(parents=True, exist_ok=True)
    except (FileExistsError, NotADirectoryError):
        raise ConfigError(f"cannot create output directory {str(base)!r}: a parent is a file", key="output") from None
    n = 1
    while True:
        d = base / (name if n == 1 else f"{name}-{n}")
        try:
            d.mkdir()
            return d
        except FileExistsError:
            n += 1


class Driver:
    """Runs one search: starts the optimizer process, feeds the pool, journals everything."""

    def __init__(self, settings: SearchSettings, pool: Any, directory: Path):
        self.s = settings
        self.pool = pool
        self.directory = Path(directory)
        self.journal = Journal(self.directory / JOURNAL_NAME)
        self.waiting: collections.deque[Task] = collections.deque()
        self.accepted = 0  # tasks taken from the optimizer (counted against max_evals)
        self.batches = 0  # "put" messages read so far (journaled as each task's batch)
        self._batch_of: dict[int, int] = {}  # task id -> its batch, while the task may be retried
        self.finished = 0  # tasks with a final result
        self.best: float | None = None
        self.stop_reason: str | None = None
        self.optimizer_error: str | None = None
        self.optimizer_done = False
        self.interrupted = False
        self._final: dict | None = None  # the journal as read back once the run is over

    # -- main loop -----------------------------------------------------------------------
    def run(self) -> Results:
        s = self.s
        t0 = time.time()
        self.journal.set_meta(experiment=s.experiment, started=t0, space=s.space.to_dict(),
                              config=s.config or {}, max_evals=s.max_evals, pool=getattr(self.pool, "kind", "?"),
                              workers=self.pool.size)
        self.journal.flush()
        opt: OptimizerProcess | None = None
        deadline = (time.monotonic() + s.max_time) if s.max_time else None
        last_progress = time.monotonic()
        fatal: BaseException | None = None
        previous_sigterm = _catch_sigterm()
        try:
            opt = OptimizerProcess(s.optimizer, s.space, s.seed, s.optimizer_settings, s.mode,
                                   s.batch_size, self.pool.size, s.max_evals)
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
                if deadline is not None and self.stop_reason is None:
                    timeout = max(0.0, min(timeout, deadline - time.monotonic()))
                extra = [] if self.optimizer_done or self.optimizer_error else [opt.conn]
                results = self.pool.wait(timeout, extra)
                if extra:
                    self._read_optimizer(opt)
                if results:
                    self._on_results(results, opt)
                if deadline is not None and self.stop_reason is None and time.monotonic() >= deadline:
                    self._stop(f"max_time of {s.max_time:g} s reached", opt)
                self.journal.maybe_flush()
                if s.progress_every and time.monotonic() - last_progress >= s.progress_every:
                    last_progress = time.monotonic()
                    self._progress(t0)
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
                self._finish(opt, kill=self.interrupted or fatal is not None, t0=t0)
            finally:
                _restore_sigterm(previous_sigterm)
        if fatal is not None:
            raise fatal
        if self.interrupted:
            exc = Terminated if self.stop_reason.startswith("terminated") else KeyboardInterrupt
            raise exc(f"{self.stop_reason}; results so far are kept in {self.directory}")
        if self.optimizer_error:
            raise OptimizerError(f"the optimizer failed; results so far are kept in {self.directory}.\n{self.optimizer_error}")
        return self.results()

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
                print("emews: the optimizer failed; letting running tasks finish, cancelling queued ones",
                      file=sys.stderr)

    def _on_results(self, results: list[Result], opt: OptimizerProcess) -> None:
        to_optimizer = []
        for r in results:
            if r.status != DONE and r.status != CANCELLED and r.attempt < self.s.retries and self.stop_reason is None:
                self.journal.finished(r)
                retry = Task(r.task_id, r.params, r.attempt + 1)
                self.journal.queued(retry.id, retry.attempt, retry.params, time.time(), self._batch_of.get(r.task_id))
                self.waiting.appendleft(retry)
                continue
            self.journal.finished(r)
            self._batch_of.pop(r.task_id, None)
            self.finished += 1
            if r.ok and (self.best is None or r.loss < self.best):
                self.best = r.loss
            to_optimizer.append(r)
        if to_optimizer and not (self.optimizer_done or self.optimizer_error):
            opt.send(("results", to_optimizer))
        if self.finished >= self.s.max_evals and self.stop_reason is None:
            self._stop("max_evals reached", opt)

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
            self.journal.set_meta(finished=time.time(), runtime=time.time() - t0, outcome=self.stop_reason or "finished")
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
        j = self._final or read_journal(self.directory)
        return Results(j["evals"], self.s.space.names, self.directory, j["optimizer_log"])

    def write_outputs(self) -> None:
        """results.csv, best.json and optimizer_log.jsonl from the closed journal (read once,
        kept for :meth:`results`)."""
        j = self._final = read_journal(self.directory)
        write_results_csv(self.directory / "results.csv", j["evals"], self.s.space.names)
        write_best_json(self.directory / "best.json", j["evals"])
        if j["optimizer_log"]:
            with open(self.directory / "optimizer_log.jsonl", "w") as f:
                for rec in j["optimizer_log"]:
                    f.write(json.dumps(rec, default=str) + "\n")

    def _progress(self, t0: float) -> None:
        best = "-" if self.best is None else f"{self.best:.6g}"
        print(f"emews: {self.finished}/{self.s.max_evals} done, {self.pool.busy} running, "
              f"best loss {best}, {time.time() - t0:.0f} s", file=sys.stderr, flush=True)


