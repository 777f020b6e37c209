"""The experiment journal: one SQLite file per experiment, written only by the driver.

Every state change of every task attempt is an upsert of one row in ``evals``; changes are
held in memory and written in one transaction per flush (at most every ``flush_every``
seconds, and at the end), so journaling costs microseconds per task.

Tables:
    ``meta(key, value)``: experiment name, config (JSON), start/end time, outcome.
    ``evals(task_id, attempt, params, status, loss, metrics, worker, host, gpu, queued,
    start, end, error, batch, objectives, violation)``: one row per attempt; ``batch`` numbers
    the optimizer's ``put`` messages (tasks proposed together share it), so a report can show
    iterations; ``objectives`` (a JSON list, to minimize) and ``violation`` are set with
    several objectives and with constraints (:attr:`emews.task.Result.objectives`).
    ``optimizer_log(seq, time, record)``: records the optimizer journals (e.g. GA generations).
    ``reports(seq, task_id, attempt, step, loss, metrics, time, stop)``: every intermediate
    report of a running attempt, in arrival order; ``stop`` is 1 when the stopper (or the
    optimizer) answered it with a stop. A journal of an older emews gets the table on open.
"""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from .errors import EmewsError
from .task import Result, Task

__all__ = ["Journal", "JournalError", "read_journal", "final_attempts", "result_from_row", "JOURNAL_NAME"]

JOURNAL_NAME = "journal.sqlite"

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT);
CREATE TABLE IF NOT EXISTS evals (
    task_id INTEGER NOT NULL,
    attempt INTEGER NOT NULL,
    params TEXT NOT NULL,
    status TEXT NOT NULL,
    loss REAL,
    metrics TEXT,
    worker INTEGER,
    host TEXT,
    gpu TEXT,
    queued REAL,
    start REAL,
    "end" REAL,
    error TEXT,
    batch INTEGER,
    objectives TEXT,
    violation REAL,
    PRIMARY KEY (task_id, attempt)
);
CREATE TABLE IF NOT EXISTS optimizer_log (seq INTEGER PRIMARY KEY, time REAL, record TEXT);
CREATE TABLE IF NOT EXISTS reports (
    seq INTEGER PRIMARY KEY,
    task_id INTEGER NOT NULL,
    attempt INTEGER NOT NULL,
    step REAL,
    loss REAL,
    metrics TEXT,
    time REAL,
    stop INTEGER
);
"""

_COLS = ("task_id", "attempt", "params", "status", "loss", "metrics", "worker", "host", "gpu", "queued", "start", "end", "error",
         "batch", "objectives", "violation")
_UPSERT = (
    'INSERT OR REPLACE INTO evals (task_id, attempt, params, status, loss, metrics, worker, host, gpu, queued, start, "end", error, '
    "batch, objectives, violation) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)"
)


#: ``json.dumps(x, default=str)`` with one encoder made once (``json.dumps`` with an argument
#: builds a new encoder on every call: a few µs of every task's journaling)
_to_json = json.JSONEncoder(default=str).encode


class JournalError(EmewsError):
    """A file is not a readable emews journal (missing, corrupted, or another program's)."""


def _check_journal(db: sqlite3.Connection, path: Path, allow_empty: bool = True) -> None:
    """Raise :class:`JournalError` unless ``db`` holds the emews tables (or, with
    ``allow_empty``, no tables at all: a journal about to be created)."""
    try:
        tables = {r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    except sqlite3.DatabaseError as e:
        raise JournalError(f"{path}: not an emews journal: the file is not a readable SQLite database ({e})") from None
    missing = {"meta", "evals"} - tables
    if not tables and not allow_empty:
        raise JournalError(f"{path}: not an emews journal: the SQLite database is empty")
    if tables and missing:
        raise JournalError(f"{path}: not an emews journal: it is an SQLite database without the "
                           f"{' and '.join(sorted(missing))} table(s) (tables found: {', '.join(sorted(tables))})")


def _migrate(db: sqlite3.Connection) -> None:
    """Bring a journal written by an older emews up to the current columns."""
    cols = {r[1] for r in db.execute("PRAGMA table_info(evals)")}
    if "batch" not in cols:
        db.execute("ALTER TABLE evals ADD COLUMN batch INTEGER")
    if "objectives" not in cols:
        db.execute("ALTER TABLE evals ADD COLUMN objectives TEXT")
    if "violation" not in cols:
        db.execute("ALTER TABLE evals ADD COLUMN violation REAL")


class Journal:
    """Batched writer of the experiment journal."""

    def __init__(self, path: str | Path, flush_every: float = 1.0):
        self.path = Path(path)
        self._db = sqlite3.connect(str(self.path), isolation_level=None, check_same_thread=False)
        try:
            _check_journal(self._db, self.path)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=NORMAL")
            self._db.executescript(_SCHEMA)
            _migrate(self._db)
        except sqlite3.DatabaseError as e:
            self._db.close()
            raise JournalError(f"{self.path}: not an emews journal: {e}") from None
        except JournalError:
            self._db.close()
            raise
        self._rows: dict[tuple[int, int], list] = {}
        self._dirty: set[tuple[int, int]] = set()
        self._logs: list[tuple[float, str]] = []
        self._reports: list[tuple] = []
        self._meta: dict[str, str] = {}
        self._closings: list[tuple] = []  # attempts of an earlier session to mark as ended
        self.flush_every = flush_every
        self._last_flush = time.monotonic()
        #: seconds the last flush that wrote something took (the driver spaces flushes by it)
        self.flush_cost = 0.0

    # -- recording -----------------------------------------------------------------------
    def set_meta(self, **items: Any) -> None:
        for k, v in items.items():
            self._meta[k] = v if isinstance(v, str) else json.dumps(v, default=str)

    def queued(self, task_id: int, attempt: int, params: Mapping[str, Any], now: float, batch: int | None = None) -> None:
        self._put(task_id, attempt, [task_id, attempt, _to_json(params), "queued",
                                     None, None, None, None, None, now, None, None, None, batch, None, None])

    def running(self, task_id: int, attempt: int, worker: int | None, now: float) -> None:
        row = self._rows[(task_id, attempt)]
        row[3], row[6], row[10] = "running", worker, now
        self._dirty.add((task_id, attempt))

    def unstarted(self, task_id: int, attempt: int) -> None:
        """A task journaled ``running`` came back unstarted (a worker held it ahead and handed it
        back): queued again, with no worker and no start."""
        row = self._rows.get((task_id, attempt))
        if row is not None:
            row[3], row[6], row[10] = "queued", None, None
            self._dirty.add((task_id, attempt))

    def finished(self, r: Result) -> None:
        key = (r.task_id, r.attempt)
        row = self._rows.get(key)
        if row is None:
            row = [r.task_id, r.attempt, _to_json(r.params), None, None, None, None, None, None, None, None, None, None,
                   None, None, None]
            self._rows[key] = row
        row[3] = r.status
        row[4] = r.loss
        row[5] = _to_json(r.metrics) if r.metrics else None
        row[6] = r.worker if r.worker is not None else row[6]
        row[7] = r.host
        row[8] = r.gpu
        row[10] = r.start if r.start is not None else row[10]
        row[11] = r.end
        row[12] = r.error
        row[14] = json.dumps(list(r.objectives)) if r.objectives is not None else None
        row[15] = r.violation
        self._dirty.add(key)

    def open_tasks(self) -> list[Task]:
        """The attempts of this session recorded as queued or running and not finished since,
        as tasks (what a shutdown must still end)."""
        return [Task(row[0], json.loads(row[2]), row[1]) for row in self._rows.values() if row[3] in ("queued", "running")]

    def close_attempt(self, task_id: int, attempt: int, status: str, error: str, now: float) -> None:
        """Mark an attempt an earlier session left queued or running (it died) as ended,
        keeping what was recorded of it (params, worker, start)."""
        self._closings.append((status, error, now, task_id, attempt))

    def log(self, record: Mapping[str, Any], now: float) -> None:
        self._logs.append((now, _to_json(dict(record))))

    def report(self, rep: Any, stop: bool) -> None:
        """One intermediate report (a :class:`~emews.task.Report`) and whether it was answered with a stop."""
        loss = rep.loss if isinstance(rep.loss, float) and rep.loss == rep.loss else None  # NaN -> NULL
        self._reports.append((rep.task_id, rep.attempt, rep.step, loss,
                              _to_json(rep.metrics) if rep.metrics else None, rep.time, int(bool(stop))))

    def _put(self, task_id: int, attempt: int, row: list) -> None:
        self._rows[(task_id, attempt)] = row
        self._dirty.add((task_id, attempt))

    # -- writing -------------------------------------------------------------------------
    def since_flush_left(self, interval: float) -> float:
        """Seconds until ``interval`` has passed since the last flush (<= 0: it has)."""
        return interval - (time.monotonic() - self._last_flush)

    def maybe_flush(self) -> None:
        if time.monotonic() - self._last_flush >= self.flush_every:
            self.flush()

    def flush(self) -> None:
        """Write every pending change in one transaction."""
        if not (self._dirty or self._logs or self._meta or self._closings or self._reports):
            self._last_flush = time.monotonic()
            return
        t = time.monotonic()
        rows = [tuple(self._rows[k]) for k in self._dirty]
        with self._db:
            self._db.execute("BEGIN")
            if self._closings:
                self._db.executemany('UPDATE evals SET status=?, error=?, "end"=COALESCE("end", ?) '
                                     "WHERE task_id=? AND attempt=?", self._closings)
            if rows:
                self._db.executemany(_UPSERT, rows)
            if self._logs:
                self._db.executemany("INSERT INTO optimizer_log (time, record) VALUES (?, ?)", self._logs)
            if self._reports:
                self._db.executemany("INSERT INTO reports (task_id, attempt, step, loss, metrics, time, stop) "
                                     "VALUES (?,?,?,?,?,?,?)", self._reports)
            if self._meta:
                self._db.executemany("INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)", list(self._meta.items()))
        # finished attempts never change again: drop them from memory
        for k in self._dirty:
            if self._rows[k][3] not in ("queued", "running"):
                del self._rows[k]
        self._dirty.clear()
        self._closings.clear()
        self._logs.clear()
        self._reports.clear()
        self._meta.clear()
        self._last_flush = time.monotonic()
        self.flush_cost = self._last_flush - t

    def close(self) -> None:
        """Flush and leave a single self-contained file (no -wal/-shm beside it)."""
        self.flush()
        try:
            self._db.execute("PRAGMA journal_mode=DELETE")
        except sqlite3.OperationalError:
            pass
        self._db.close()


def read_journal(path: str | Path) -> dict[str, Any]:
    """Read a journal back: ``{"meta": {...}, "evals": [row dicts], "optimizer_log": [dicts],
    "reports": [dicts with task_id, attempt, step, loss, metrics, time, stop]}``.

    Raises:
        JournalError: no journal there, or the file is not an emews journal.
    """
    path = Path(path)
    if not path.exists():
        raise JournalError(f"{path}: does not exist")
    if path.is_dir():
        path = path / JOURNAL_NAME
    if not path.is_file():
        raise JournalError(f"{path.parent}: is not an emews experiment directory (it has no {JOURNAL_NAME})")
    try:
        db = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    except sqlite3.Error as e:
        raise JournalError(f"{path}: cannot open the journal: {e}") from None
    try:
        _check_journal(db, path, allow_empty=False)
        return _read(db)
    except sqlite3.DatabaseError as e:
        raise JournalError(f"{path}: not an emews journal, or a damaged one: {e}") from None
    finally:
        db.close()


def _read(db: sqlite3.Connection) -> dict[str, Any]:
    meta = {}
    for k, v in db.execute("SELECT key, value FROM meta"):
        try:
            meta[k] = json.loads(v)
        except (TypeError, json.JSONDecodeError):
            meta[k] = v
    evals = []
    have = {r[1] for r in db.execute("PRAGMA table_info(evals)")}
    cols = 'task_id, attempt, params, status, loss, metrics, worker, host, gpu, queued, start, "end", error'
    cols += "".join(f", {c}" if c in have else ", NULL" for c in ("batch", "objectives", "violation"))
    rows = db.execute(f"SELECT {cols} FROM evals ORDER BY task_id, attempt").fetchall()
    # one JSON parse for every row's params (and one for the metrics): a 100,000-task journal
    # reads in about a second instead of 200,000 json.loads calls
    params = _decode_column([r[2] for r in rows], "{}")
    metrics = _decode_column([r[5] for r in rows], "{}")
    objectives = _decode_column([r[14] for r in rows], "null") if any(r[14] for r in rows) else [None] * len(rows)
    for row, p, m, o in zip(rows, params, metrics, objectives):
        d = dict(zip(_COLS, row))
        d["params"], d["metrics"], d["objectives"] = p, m, o
        evals.append(d)
    tables = {r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    logs = []
    if "optimizer_log" in tables:
        logs = [json.loads(r) for (r,) in db.execute("SELECT record FROM optimizer_log ORDER BY seq")]
    reports = []
    if "reports" in tables:
        rows = db.execute("SELECT task_id, attempt, step, loss, metrics, time, stop FROM reports ORDER BY seq").fetchall()
        rmetrics = _decode_column([r[4] for r in rows], "{}")
        for r, m in zip(rows, rmetrics):
            step = r[2]
            if isinstance(step, float) and step.is_integer():
                step = int(step)
            reports.append({"task_id": r[0], "attempt": r[1], "step": step, "loss": r[3], "metrics": m, "time": r[5],
                            "stop": bool(r[6])})
    return {"meta": meta, "evals": evals, "optimizer_log": logs, "reports": reports}


def _decode_column(texts: list[str | None], empty: str) -> list[Any]:
    """Decode a column of JSON texts at once (``None`` or empty: ``empty``)."""
    try:
        return json.loads("[" + ",".join(t or empty for t in texts) + "]")
    except json.JSONDecodeError:  # a damaged cell: decode one by one, so the error names it
        return [json.loads(t or empty) for t in texts]


def final_attempts(rows: Iterable[Mapping[str, Any]]) -> list[Mapping[str, Any]]:
    """The last attempt of each task, by task id (the rows :func:`read_journal` returns)."""
    last: dict[int, Mapping[str, Any]] = {}
    for r in rows:
        t = r["task_id"]
        if t not in last or r["attempt"] >= last[t]["attempt"]:
            last[t] = r
    return [last[k] for k in sorted(last)]


def result_from_row(row: Mapping[str, Any]) -> Result:
    """The :class:`~emews.task.Result` a journal row records (the inverse of :meth:`Journal.finished`)."""
    g = row.get
    objectives = g("objectives")
    return Result(row["task_id"], row["params"], row["status"], row["loss"], g("metrics") or {}, g("error"),
                  g("worker"), g("host"), g("gpu"), g("start"), g("end"), row["attempt"],
                  tuple(objectives) if objectives is not None else None, g("violation"))
