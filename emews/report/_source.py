"""What a report reads: an experiment's journal as rows, meta and names.

::

    journal.sqlite ──read_journal──▶ {"meta", "evals", "optimizer_log", "reports"}
                                          │ JournalView.from_journal
                                          ▼
    JournalView (rows, all_attempts, meta, param_names, space, workers, name, directory)
        ├── the report's functions (report/_data, _plots, _write) read it
        └── emews.results.Results extends it (best, exports, plot methods)

The report depends on this view only, never on :mod:`emews.results`, so the two do not
import each other: ``Results`` builds on the report's view, the report knows no ``Results``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any, TypeVar

from ..journal import JournalError, final_attempts, read_journal

__all__ = ["JournalView", "Tally"]

_V = TypeVar("_V", bound="JournalView")


_FINISHED_WORDS = {"done": "done", "stopped": "stopped early", "failed": "failed", "timeout": "timed out"}


class Tally:
    """How many tasks (last attempts) have each status: the one count that the CLI's
    summary, ``report.txt`` and ``repr(Results)`` all print.

    An *evaluation* is a finished task: done, stopped early, failed or timed out (what counts
    against ``max_evals``). Cancelled, queued and running tasks are counted apart.

    Example:
        >>> str(Tally({"done": 2, "stopped": 38}))
        '40 evaluations (2 done, 38 stopped early, 0 failed, 0 timed out)'
    """

    def __init__(self, counts: Mapping[str, int]):
        self.counts = {k: int(v) for k, v in counts.items() if v}

    @classmethod
    def of(cls, rows: Iterable[Mapping[str, Any]]) -> Tally:
        """The tally of a journal's rows (each task's last attempt counts)."""
        counts: dict[str, int] = {}
        for r in final_attempts(rows):
            counts[r["status"]] = counts.get(r["status"], 0) + 1
        return cls(counts)

    def __getitem__(self, status: str) -> int:
        return self.counts.get(status, 0)

    @property
    def evaluations(self) -> int:
        """Finished tasks: done, stopped early, failed, timed out."""
        return sum(self[s] for s in _FINISHED_WORDS)

    @property
    def unfinished(self) -> dict[str, int]:
        """The other statuses (cancelled, queued, running) with their counts."""
        return {k: v for k, v in sorted(self.counts.items()) if k not in _FINISHED_WORDS}

    def __str__(self) -> str:
        parts = [f"{self[s]} {w}" for s, w in _FINISHED_WORDS.items() if s != "stopped" or self[s]]
        return f"{self.evaluations} evaluations ({', '.join(parts)})"

    def __repr__(self) -> str:
        return f"Tally({self.counts!r})"


class JournalView:
    """An experiment's evaluations as its journal holds them.

    Attributes:
        all_attempts: every attempt's row (dicts with ``task_id, attempt, params, status, loss,
            metrics, worker, host, gpu, queued, start, end, error``).
        rows: the last attempt of each task.
        directory: the experiment directory (``None`` for a search without one).
        param_names: the space's dimension names, in order.
        optimizer_log: the optimizer's own records, in order.
        reports: the intermediate reports (early stopping), in arrival order.
    """

    def __init__(self, rows: Sequence[Mapping[str, Any]], param_names: Sequence[str],
                 directory: Path | None = None, optimizer_log: Sequence[Mapping[str, Any]] = (),
                 meta: Mapping[str, Any] | None = None, reports: Sequence[Mapping[str, Any]] = ()):
        self.all_attempts = list(rows)
        self.rows = list(final_attempts(self.all_attempts))
        self.param_names = list(param_names)
        self.directory = Path(directory) if directory else None
        self.optimizer_log = list(optimizer_log)
        self._meta = dict(meta) if meta is not None else None
        self.reports = list(reports)

    @property
    def meta(self) -> dict:
        """The journal's meta; read from the experiment directory when it was not given."""
        if self._meta is None:
            self._meta = {}
            if self.directory is not None:
                try:
                    self._meta = dict(read_journal(self.directory)["meta"])
                except JournalError:
                    pass
        return self._meta

    @classmethod
    def load(cls: type[_V], directory: str | Path) -> _V:
        """Read the results of an experiment directory (its ``journal.sqlite``)."""
        return cls.from_journal(read_journal(directory), Path(directory))

    @classmethod
    def from_journal(cls: type[_V], journal: Mapping[str, Any], directory: Path | None = None) -> _V:
        """The view of a journal as :func:`~emews.journal.read_journal` returns it."""
        meta = dict(journal.get("meta") or {})
        rows = list(journal.get("evals") or [])
        space = meta.get("space")
        names = list(space) if isinstance(space, Mapping) else []
        if not names:
            for r in rows:
                for k in r.get("params") or {}:
                    if k not in names:
                        names.append(k)
        return cls(rows, names, directory, list(journal.get("optimizer_log") or []), meta=meta,
                   reports=list(journal.get("reports") or []))

    @property
    def space(self) -> dict:
        """The search space as journaled (``name -> spec dict``), or ``{}``."""
        s = self.meta.get("space")
        return dict(s) if isinstance(s, Mapping) else {}

    @property
    def workers(self) -> int:
        """The pool's worker count (from the meta; else the distinct workers seen; at least 1)."""
        w = self.meta.get("workers")
        if isinstance(w, int) and not isinstance(w, bool) and w > 0:
            return w
        seen = {r.get("worker") for r in self.all_attempts if r.get("worker") is not None}
        return max(1, len(seen))

    @property
    def name(self) -> str:
        """The experiment's name (from the meta, else the directory's)."""
        return str(self.meta.get("experiment") or (self.directory.name if self.directory else "experiment"))
