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

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from ..journal import read_journal
from . import _data, _plots, _write
from ._data import (
    UNFINISHED,
    Interval,
    best_over_time,
    completed,
    intervals,
    iterations,
    last_seen,
    load_over_time,
    ramps,
    sessions,
    status_counts,
    top_trials,
    trajectory,
    utilization,
    worker_timeline,
)
from ._plots import preload as preload_plots
from ._plots import require_matplotlib
from ._source import JournalView
from ._write import PLOTS, summary_text

__all__ = [
    "PLOTS",
    "UNFINISHED",
    "Interval",
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
    "preload_plots",
    "JournalView",
    "ramps",
    "report_data",
    "require_matplotlib",
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


def load_source(source: Any) -> JournalView:
    """The :class:`~emews.report._source.JournalView` to report on: read from an experiment
    directory (or its ``journal.sqlite``), made from a journal dict as
    :func:`~emews.journal.read_journal` returns it, or ``source`` itself when it is one (a
    :class:`~emews.results.Results` is one).

    Raises:
        JournalError: the path is not an experiment directory or its journal is unreadable.
        TypeError: ``source`` is none of these.
    """
    if isinstance(source, JournalView):
        return source
    if isinstance(source, (str, Path)):
        p = Path(source)
        return JournalView.from_journal(read_journal(p), p if p.is_dir() else p.parent)
    if isinstance(source, Mapping) and "evals" in source:
        return JournalView.from_journal(source, None)
    raise TypeError(f"cannot report on {type(source).__name__}: give an experiment directory, a journal "
                    "(emews.journal.read_journal) or a Results")


def report_data(source: Any, top: int = 5) -> dict:
    """Everything ``report.json`` holds, for an experiment directory, journal dict or Results
    (the keys are listed at :func:`emews.report._data.report_data`)."""
    return _data.report_data(load_source(source), top)


def summary(source: Any) -> str:
    """A short text report of an experiment directory (or journal dict, or Results)."""
    return summary_text(report_data(source))


def plot_trajectory(source: Any, path: str | Path | None = None, *, ax: Any = None, x: str = "evaluation") -> Any:
    """The search trajectory of an experiment directory, journal dict or Results; see
    :func:`emews.report._plots.plot_trajectory`."""
    return _plots.plot_trajectory(load_source(source), path, ax=ax, x=x)


def plot_load(source: Any, path: str | Path | None = None, *, ax: Any = None) -> Any:
    """Load over time of an experiment directory, journal dict or Results; see
    :func:`emews.report._plots.plot_load`."""
    return _plots.plot_load(load_source(source), path, ax=ax)


def plot_params(source: Any, path: str | Path | None = None, *, top: int = 10, fig: Any = None) -> Any:
    """The parameters of the best trials of an experiment directory, journal dict or Results;
    see :func:`emews.report._plots.plot_params`."""
    return _plots.plot_params(load_source(source), path, top=top, fig=fig)


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
    return _write.write_report(load_source(directory), out, plots=plots, top=top)
