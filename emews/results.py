"""Results of a search, read from its journal or held in memory."""

from __future__ import annotations

import csv
import json
import math
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from ._objectives import ObjectiveSpec, front_summary, pareto_rows
from .journal import final_attempts
from .report._source import JournalView, Tally
from .task import Stop

__all__ = ["Results", "Tally", "write_results_csv", "write_best_json", "best_of"]

#: the finished statuses, in the order a count names them, and the words it uses
class Results(JournalView):
    """Every evaluation of a search (the last attempt of each task): the journal's view that
    reports read (:class:`~emews.report._source.JournalView`: rows, meta, names, workers),
    with the best result, the exports and the report's plots as methods.

    Attributes:
        rows: list of dicts with ``task_id, attempt, params, status, loss, metrics, worker,
            host, gpu, queued, start, end, error``.
        directory: the experiment directory (``None`` for a search without one).
        param_names: the space's dimension names, in order.
        meta: the journal's meta (experiment, space, pool, workers, outcome, ...); read from
            the directory's journal on first use when not given (``{}`` without one).
        reports: the intermediate reports (early stopping), in arrival order: dicts with
            ``task_id, attempt, step, loss, metrics, time, stop``. A stopped task's row has
            status ``stopped``, its last reported loss and ``metrics["step"]`` (the ``step``
            column of results.csv).
    """

    def __init__(self, rows: Sequence[Mapping[str, Any]], param_names: Sequence[str],
                 directory: Path | None = None, optimizer_log: Sequence[Mapping[str, Any]] = (),
                 meta: Mapping[str, Any] | None = None, reports: Sequence[Mapping[str, Any]] = ()):
        super().__init__(rows, param_names, directory, optimizer_log, meta, reports)
        #: how the session that made these results ended (set by the driver; None when loaded)
        self.outcome: str | None = None
        self.stop: Stop | None = None

    @property
    def best(self) -> dict | None:
        """``{"params", "loss", "task_id", "metrics"}`` of the lowest loss, or ``None``."""
        b = best_of(self.rows)
        if b is None:
            return None
        return {"params": dict(b["params"]), "loss": b["loss"], "task_id": b["task_id"], "metrics": dict(b.get("metrics") or {})}

    @property
    def objectives(self) -> ObjectiveSpec | None:
        """The search's objectives and constraints as journaled (None: one objective, ``loss``)."""
        return ObjectiveSpec.from_meta(self.meta.get("objectives"))

    def pareto(self) -> list[dict]:
        """The Pareto set: the feasible finished evaluations no other one dominates, sorted by
        the first objective (rows as :attr:`rows`, with ``objectives``: the values to
        minimize, and ``violation``). With one objective: the best evaluation(s)."""
        spec = self.objectives
        if spec is None or not spec.multi:
            b = best_of(r for r in self.rows if r.get("violation") is None or r["violation"] <= 0)
            return [dict(r) for r in self.rows if b is not None and r["status"] == "done" and r["loss"] == b["loss"]]
        return [dict(r) for r in pareto_rows(self.rows)]

    def hypervolume(self, reference: Sequence[float] | None = None) -> float | None:
        """The hypervolume of the Pareto set (objectives to maximize negated) against
        ``reference`` (default: the worst feasible value of each objective plus a tenth of its
        range, as best.json states it); None without several objectives or a feasible result."""
        spec = self.objectives
        if spec is None or not spec.multi:
            return None
        return front_summary(self.rows, spec, reference)["hypervolume"]

    @property
    def losses(self) -> list[float | None]:
        return [r["loss"] for r in self.rows]

    def count(self, status: str) -> int:
        return sum(1 for r in self.rows if r["status"] == status)

    @property
    def tally(self) -> Tally:
        """How many tasks have each status (see :class:`Tally`)."""
        return Tally.of(self.rows)

    def __len__(self) -> int:
        return len(self.rows)

    def __repr__(self) -> str:
        b = self.best
        best = f"best loss {b['loss']:.6g}" if b else "no successful evaluation"
        spec = self.objectives
        if spec is not None and spec.multi:
            best = f"{len(self.pareto())} on the Pareto front of {', '.join(spec.names)}"
        t = self.tally
        rest = "".join(f", {n} {s}" for s, n in t.unfinished.items())
        return f"<Results: {t}{rest}, {best}>"

    def to_records(self) -> list[dict]:
        """Flat dicts: ids, status, loss, one key per parameter and per metric, then the
        placement and times (``worker, host, gpu, start, end, runtime``) and ``error``: the
        columns of ``results.csv``."""
        out = []
        spec = self.objectives
        constrained = spec is not None and bool(spec.constraints)
        for r in self.rows:
            d: dict[str, Any] = {"task_id": r["task_id"], "attempt": r["attempt"], "status": r["status"], "loss": r["loss"]}
            d.update(r["params"])
            for k, v in (r.get("metrics") or {}).items():
                d[k if k not in d and k not in _FIXED_COLUMNS else f"metric_{k}"] = v
            if constrained:
                d["violation"], d["feasible"] = r.get("violation"), _feasible_cell(r)
            for k in ("worker", "host", "gpu", "start", "end"):
                d[k] = r.get(k)
            d["runtime"] = _runtime(r)
            d["error"] = r.get("error")
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
        write_results_csv(path, self.rows, self.param_names, self.objectives)
        return Path(path)

    # -- reports (need matplotlib for the plots: pip install "emews[plots]") ---------------
    def report(self, plots: bool = True, out: str | Path | None = None, top: int = 10) -> dict:
        """Write ``report.json``, ``report.txt`` and the plots into the experiment directory
        (or ``out``) and return the report's data; see :func:`emews.report.write_report`."""
        from .report._write import write_report

        if out is None and self.directory is None:
            raise ValueError("these results have no experiment directory: give report() an out directory")
        return write_report(self, out, plots=plots, top=top)

    def report_data(self) -> dict:
        """The report's numbers (what ``report.json`` holds) without writing anything."""
        from .report._data import report_data

        return report_data(self)

    def plot_trajectory(self, ax=None, x: str = "evaluation"):
        """The search trajectory as a matplotlib Figure: each loss, the best so far and the
        per-iteration min/mean, against the evaluation index and time (or, on a given ``ax``,
        one panel against ``x``: ``"evaluation"`` or ``"time"``, and the Axes is returned)."""
        from .report._plots import plot_trajectory

        return plot_trajectory(self, ax=ax, x=x)

    def plot_load(self, ax=None):
        """Busy workers over time and each worker's tasks, as a matplotlib Figure (on a given
        ``ax``: the busy-workers panel only, and the Axes is returned)."""
        from .report._plots import plot_load

        return plot_load(self, ax=ax)

    def plot_pareto(self):
        """With several objectives: the Pareto front over the dominated and infeasible points
        (two objectives) or its parallel coordinates (three or more), as a matplotlib Figure."""
        from .report._front import plot_pareto

        return plot_pareto(self)

    def plot_hypervolume(self):
        """With several objectives: the hypervolume after each finished evaluation, as a Figure."""
        from .report._front import plot_hypervolume

        return plot_hypervolume(self)

    def plot_params(self, top: int = 10, fig=None):
        """Loss against each parameter with the ``top`` best trials highlighted, and their
        parallel coordinates, as a matplotlib Figure (drawn into ``fig`` when given)."""
        from .report._plots import plot_params

        return plot_params(self, top=top, fig=fig)


#: columns of results.csv besides parameters and metrics (a metric of the same name is
#: written as ``metric_<name>``)
_FIXED_COLUMNS = ("task_id", "attempt", "status", "loss", "worker", "host", "gpu", "start", "end", "runtime", "error",
                  "violation", "feasible")


def _feasible_cell(row: Mapping[str, Any]) -> bool | None:
    """results.csv's ``feasible``: True/False for a finished row, empty for the others."""
    v = row.get("violation")
    return None if v is None else bool(v <= 0)


def write_results_csv(path: str | Path, rows: Iterable[Mapping[str, Any]], param_names: list[str],
                      objectives: ObjectiveSpec | None = None) -> None:
    """One line per task (its last attempt): ids, status, loss, parameters, metrics, placement.

    With ``objectives`` (several, or named ones) the metric columns start with one column per
    objective, the value as returned (an objective named ``loss`` is the ``loss`` column, or
    ``metric_loss`` when that holds another objective); with constraints, ``violation`` and
    ``feasible`` follow the metrics.
    """
    final = final_attempts(rows)
    metric_names: list[str] = [n for n in (objectives.names if objectives is not None else ())
                               if any(n in (r.get("metrics") or {}) for r in final)]
    constrained = objectives is not None and bool(objectives.constraints)
    for r in final:
        for k in r.get("metrics") or {}:
            if k not in metric_names:
                metric_names.append(k)
    taken = set(param_names) | set(_FIXED_COLUMNS)
    head = ["task_id", "attempt", "status", "loss", *param_names,
            *[m if m not in taken else f"metric_{m}" for m in metric_names],
            *(["violation", "feasible"] if constrained else []),
            "worker", "host", "gpu", "start", "end", "runtime", "error"]
    tmp = Path(path).with_suffix(".csv.tmp")
    with open(tmp, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(head)
        for r in final:
            p, m = r["params"], r.get("metrics") or {}
            runtime = _runtime(r)
            w.writerow([r["task_id"], r["attempt"], r["status"], r["loss"], *[_cell(p.get(n)) for n in param_names],
                        *[_cell(m.get(k)) for k in metric_names],
                        *([r.get("violation"), _feasible_cell(r)] if constrained else []), r.get("worker"), r.get("host"), r.get("gpu"),
                        r.get("start"), r.get("end"), runtime, _last_line(r.get("error"))])
    tmp.replace(path)


def _runtime(row: Mapping[str, Any]) -> float | None:
    """Seconds from the attempt's start to its end (None when either is unknown)."""
    return (row["end"] - row["start"]) if row.get("end") is not None and row.get("start") is not None else None


def _last_line(text: str | None) -> str:
    """The error's last line (the exception message); the full text stays in the journal."""
    lines = (text or "").strip().splitlines()
    return lines[-1] if lines else ""


def _cell(v: Any) -> Any:
    if isinstance(v, (list, dict)):
        return json.dumps(v)
    return v


def best_of(rows: Iterable[Mapping[str, Any]]) -> Mapping[str, Any] | None:
    """The finished row of the lowest loss (with constraints: of the feasible ones)."""
    best = None
    for r in rows:
        if r["status"] == "done" and r["loss"] is not None and math.isfinite(r["loss"]) \
                and (r.get("violation") is None or r["violation"] <= 0):
            if best is None or r["loss"] < best["loss"]:
                best = r
    return best


def write_best_json(path: str | Path, rows: Iterable[Mapping[str, Any]],
                    model: Mapping[str, Any] | None = None,
                    objectives: ObjectiveSpec | None = None) -> Mapping[str, Any] | None:
    """``best.json``: the best result (and, with ``keep_models``, ``model``: the best kept
    model's entry, its path relative to the experiment); returns the best row.

    With several ``objectives`` it also holds the Pareto set (``pareto``: each member's
    ``task_id``, ``params``, ``values`` as returned by name, ``objectives`` to minimize,
    ``metrics``, ``violation``), its ``hypervolume`` and the ``reference_point`` it is measured
    against (see :func:`emews._objectives.front_summary`); ``loss``/``params`` stay those of
    the best first objective. With constraints, only feasible results count.
    """
    rows = list(rows)
    best = best_of(rows)
    done = sum(1 for r in final_attempts(rows) if r["status"] == "done")
    body: dict[str, Any] = {"evaluations": len(final_attempts(rows)), "succeeded": done}
    if best is not None:
        body.update(task_id=best["task_id"], loss=best["loss"], params=best["params"], metrics=best.get("metrics") or {})
    else:
        body.update(task_id=None, loss=None, params=None, metrics={})
    if objectives is not None and objectives.multi:
        body.update(front_summary(final_attempts(rows), objectives))
    elif objectives is not None and objectives.constraints:
        body["constraints"] = [str(c) for c in objectives.constraints]
    if model is not None:
        body["model"] = dict(model)
    tmp = Path(path).with_suffix(".json.tmp")
    tmp.write_text(json.dumps(body, indent=2, default=str) + "\n")
    tmp.replace(path)
    return best
