"""Results of a search, read from its journal or held in memory."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from .journal import _FIXED_COLUMNS, JournalError, _final_attempts, best_of, read_journal, write_results_csv

__all__ = ["Results"]


class Results:
    """Every evaluation of a search (the last attempt of each task).

    Attributes:
        rows: list of dicts with ``task_id, attempt, params, status, loss, metrics, worker,
            host, gpu, queued, start, end, error``.
        directory: the experiment directory (``None`` for a search without one).
        param_names: the space's dimension names, in order.
        meta: the journal's meta (experiment, space, pool, workers, outcome, ...); read from
            the directory's journal on first use when not given (``{}`` without one).
    """

    def __init__(self, rows: Sequence[Mapping[str, Any]], param_names: Sequence[str],
                 directory: Path | None = None, optimizer_log: Sequence[Mapping[str, Any]] = (),
                 meta: Mapping[str, Any] | None = None):
        self.all_attempts = list(rows)
        self.rows = list(_final_attempts(self.all_attempts))
        self.param_names = list(param_names)
        self.directory = Path(directory) if directory else None
        self.optimizer_log = list(optimizer_log)
        self._meta = dict(meta) if meta is not None else None

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
    def load(cls, directory: str | Path) -> Results:
        """Read the results of an experiment directory (its ``journal.sqlite``)."""
        j = read_journal(directory)
        names = list((j["meta"].get("space") or {}).keys())
        if not names and j["evals"]:
            names = list(j["evals"][0]["params"])
        return cls(j["evals"], names, Path(directory), j["optimizer_log"], meta=j["meta"])

    @property
    def best(self) -> dict | None:
        """``{"params", "loss", "task_id", "metrics"}`` of the lowest loss, or ``None``."""
        b = best_of(self.rows)
        if b is None:
            return None
        return {"params": dict(b["params"]), "loss": b["loss"], "task_id": b["task_id"], "metrics": dict(b.get("metrics") or {})}

    @property
    def losses(self) -> list[float | None]:
        return [r["loss"] for r in self.rows]

    def count(self, status: str) -> int:
        return sum(1 for r in self.rows if r["status"] == status)

    def __len__(self) -> int:
        return len(self.rows)

    def __repr__(self) -> str:
        b = self.best
        best = f"best loss {b['loss']:.6g}" if b else "no successful evaluation"
        return f"<Results: {len(self)} evaluations, {self.count('done')} done, {best}>"

    def to_records(self) -> list[dict]:
        """Flat dicts: ids, status, loss, one key per parameter and per metric."""
        out = []
        for r in self.rows:
            d: dict[str, Any] = {"task_id": r["task_id"], "attempt": r["attempt"], "status": r["status"], "loss": r["loss"]}
            d.update(r["params"])
            for k, v in (r.get("metrics") or {}).items():
                d[k if k not in d and k not in _FIXED_COLUMNS else f"metric_{k}"] = v
            for k in ("worker", "host", "gpu", "start", "end", "error"):
                d[k] = r.get(k)
            out.append(d)
        return out

    def to_dataframe(self):
        """A pandas DataFrame of :meth:`to_records` (needs pandas installed)."""
        try:
            import pandas as pd
        except ImportError:
            raise ImportError("Results.to_dataframe needs pandas: pip install pandas (or use to_records())") from None
        return pd.DataFrame(self.to_records())

    def to_csv(self, path: str | Path) -> Path:
        """Write the same CSV as the experiment's ``results.csv``."""
        write_results_csv(path, self.rows, self.param_names)
        return Path(path)

    # -- reports (need matplotlib for the plots: pip install "emews[plots]") ---------------
    def report(self, plots: bool = True, out: str | Path | None = None, top: int = 10) -> dict:
        """Write ``report.json``, ``report.txt`` and the plots into the experiment directory
        (or ``out``) and return the report's data; see :func:`emews.report.write_report`."""
        from .report import write_report

        if out is None and self.directory is None:
            raise ValueError("these results have no experiment directory: give report() an out directory")
        return write_report(self, out, plots=plots, top=top)

    def report_data(self) -> dict:
        """The report's numbers (what ``report.json`` holds) without writing anything."""
        from .report import report_data

        return report_data(self)

    def plot_trajectory(self, ax=None, x: str = "evaluation"):
        """The search trajectory as a matplotlib Figure: each loss, the best so far and the
        per-iteration min/mean, against the evaluation index and time (or, on a given ``ax``,
        one panel against ``x``: ``"evaluation"`` or ``"time"``, and the Axes is returned)."""
        from .report import plot_trajectory

        return plot_trajectory(self, ax=ax, x=x)

    def plot_load(self, ax=None):
        """Busy workers over time and each worker's tasks, as a matplotlib Figure (on a given
        ``ax``: the busy-workers panel only, and the Axes is returned)."""
        from .report import plot_load

        return plot_load(self, ax=ax)

    def plot_params(self, top: int = 10, fig=None):
        """Loss against each parameter with the ``top`` best trials highlighted, and their
        parallel coordinates, as a matplotlib Figure (drawn into ``fig`` when given)."""
        from .report import plot_params

        return plot_params(self, top=top, fig=fig)
