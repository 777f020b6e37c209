"""Reports of an experiment, from its journal (nothing else holds truth).

    python -m emews.report runs/quickstart                # summary + report.json/.txt + 3 PNGs
    python -m emews.report runs/quickstart --out figs     # the files go to figs/
    python -m emews.report runs/quickstart --no-plots --json

In Python, :func:`write_report` writes the same files and returns the report's data;
:func:`report_data` computes it without writing anything; :func:`plot_trajectory`,
:func:`plot_load` and :func:`plot_params` return matplotlib figures (also as methods of
:class:`~emews.results.Results`). The numbers come from pure functions (:func:`trajectory`,
:func:`iterations`, :func:`load_over_time`, :func:`worker_timeline`, :func:`utilization`,
:func:`top_trials`, ...) that take the journal's rows. The plots need matplotlib, an optional
extra (``pip install "emews[plots]"``); everything else works without it.

Written files (in the experiment directory, or ``out``):

* ``report.json``: the data of :func:`report_data` (valid JSON: non-finite numbers are null)
  with ``plots``, the PNG files written;
* ``report.txt``: the text summary;
* ``trajectory.png``, ``load.png``, ``params.png``.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

from ._data import (
    UNFINISHED,
    Interval,
    Source,
    best_over_time,
    completed,
    intervals,
    iterations,
    last_seen,
    load_over_time,
    load_source,
    report_data,
    sessions,
    status_counts,
    top_trials,
    trajectory,
    utilization,
    worker_timeline,
)
from ._plots import plot_load, plot_params, plot_trajectory, require_matplotlib

__all__ = [
    "PLOTS",
    "UNFINISHED",
    "Interval",
    "Source",
    "best_over_time",
    "completed",
    "intervals",
    "iterations",
    "last_seen",
    "load_over_time",
    "load_source",
    "plot_load",
    "plot_params",
    "plot_trajectory",
    "report_data",
    "sessions",
    "status_counts",
    "summary",
    "summary_text",
    "top_trials",
    "trajectory",
    "utilization",
    "worker_timeline",
    "write_report",
]

log = logging.getLogger("emews")

#: the PNG files a report writes, and what draws each
PLOTS = {"trajectory.png": plot_trajectory, "load.png": plot_load, "params.png": plot_params}


def _fmt_params(params: dict) -> str:
    return ", ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in params.items())


def summary_text(data: dict) -> str:
    """The text summary of a :func:`report_data` dict (what ``report.txt`` holds)."""
    st = data["status"]
    lines = [
        f"experiment {data['experiment']} ({data['pool'] or '?'} pool, {data['workers']} workers): "
        f"{data['evaluations']} tasks, {data['attempts']} attempts; "
        + (", ".join(f"{v} {k}" for k, v in st.items()) or "nothing evaluated"),
    ]
    runtime = f"{data['runtime']:.1f} s" if data["runtime"] is not None else "unknown"
    sess = f" over {data['sessions']} sessions" if data["sessions"] > 1 else ""
    lines.append(f"outcome: {data['outcome']}; runtime {runtime}{sess}")
    if data["unfinished"]:
        lines.append(f"{data['unfinished']} tasks never finished (queued or running when the journal was last written)")
    lines.append(f"failures: {data['failures']} (failed + timeout)")
    u = data["utilization"]
    lines.append(f"worker utilization {(u['utilization'] or 0):.1%} (busy {u['busy'] or 0:.3g} s over "
                 f"{u['span'] or 0:.3g} s span × {data['workers']} workers)")
    it = data["iterations"]
    if it["count"]:
        unit = "batches of the optimizer" if it["rule"] == "batch" else f"windows of {it['size']} completions"
        lines.append(f"iterations: {it['count']} {unit}")
    b = data["best"]
    if b:
        lines.append(f"best loss {b['loss']:.6g} (task {b['task_id']}): {_fmt_params(b['params'])}")
    else:
        lines.append("best: no successful evaluation")
    if data["plots"]:
        lines.append("plots: " + ", ".join(data["plots"]))
    return "\n".join(lines)


def summary(source: Any) -> str:
    """A short text report of an experiment directory (or journal dict, or Results)."""
    return summary_text(report_data(source))


def _write_text(path: Path, text: str) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text)
    tmp.replace(path)


def write_report(directory: Any, out: str | Path | None = None, plots: bool = True, top: int = 10) -> dict:
    """Write ``report.json``, ``report.txt`` and (with ``plots`` and matplotlib installed)
    ``trajectory.png``, ``load.png`` and ``params.png``; return the report's data.

    Args:
        directory: an experiment directory (or a journal dict or Results with a directory).
        out: where the files go (created if needed); default the experiment directory.
        plots: draw the PNGs. A plot that cannot be drawn (matplotlib missing, any error) is
            a warning on the ``emews`` logger and a line in the data's ``warnings``, never an
            exception.
        top: how many of the best trials ``params.png`` highlights.

    Raises:
        JournalError: ``directory`` is not an experiment directory, or its journal is not
            readable (the message names the path).
        OSError: the files cannot be written.
    """
    src = load_source(directory)
    if out is None:
        if src.directory is None:
            raise ValueError("these results have no experiment directory: give write_report an out directory")
        out = src.directory
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    data = report_data(src)
    data["warnings"] = []
    if plots:
        try:
            require_matplotlib()
        except ImportError as e:
            log.info("report written without plots: %s", e)
            data["warnings"].append(str(e))
        else:
            for name, draw in PLOTS.items():
                try:
                    kw = {"top": top} if draw is plot_params else {}
                    draw(src, out / name, **kw)
                    data["plots"].append(name)
                except Exception as e:  # noqa: BLE001 - a plot never breaks a report
                    log.warning("could not draw %s: %s: %s", out / name, type(e).__name__, e)
                    data["warnings"].append(f"{name}: {type(e).__name__}: {e}")
    _write_text(out / "report.json", json.dumps(data, indent=2, allow_nan=False) + "\n")
    _write_text(out / "report.txt", summary_text(data) + "\n")
    return data
