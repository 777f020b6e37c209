"""Writing a report's files (report.json, report.txt, the PNGs) for a :class:`~emews.results.Results`.

:func:`emews.report.write_report` is the public entry (it also takes an experiment
directory or a journal dict); :meth:`emews.results.Results.report` calls this module directly.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

from ._source import Tally
from . import _data
from ._data import Results
from ._front import plot_hypervolume, plot_pareto
from ._plots import plot_learning, plot_load, plot_params, plot_pbt, plot_trajectory, require_matplotlib


__all__ = ["PLOTS", "summary_text", "write_report"]

log = logging.getLogger("emews")

#: the PNG files a report writes, and what draws each
PLOTS = {"trajectory.png": plot_trajectory, "load.png": plot_load, "params.png": plot_params}


def _fmt_params(params: dict) -> str:
    return ", ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in params.items())


def _size(n: int) -> str:
    """Bytes as people read them: ``616 B``, ``1.85 kB``, ``200 MB``."""
    for unit, scale in (("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if n >= scale:
            return f"{n / scale:.3g} {unit}"
    return f"{n} B"


def summary_text(data: dict) -> str:
    """The text summary of a :func:`report_data` dict (what ``report.txt`` holds)."""
    tally = Tally(data["status"])
    rest = "".join(f", {v} {k}" for k, v in tally.unfinished.items())
    lines = [
        f"experiment {data['experiment']} ({data['pool'] or '?'} pool, {data['workers']} workers): "
        f"{data['evaluations']} tasks, {data['attempts']} attempts; "
        + (f"{tally}{rest}" if data["status"] else "nothing evaluated"),
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
    ramp = data.get("ramp") or {}
    if ramp.get("down") is not None:
        up = f"{ramp['up']:.3g} s" if ramp.get("up") is not None else "never all busy"
        lines.append(f"ramp-up {up}, ramp-down {ramp['down']:.3g} s")
    it = data["iterations"]
    if it["count"]:
        unit = "batches of the optimizer" if it["rule"] == "batch" else f"windows of {it['size']} completions"
        lines.append(f"iterations: {it['count']} {unit}")
    b = data["best"]
    if b:
        lines.append(f"best loss {b['loss']:.6g} (task {b['task_id']}): {_fmt_params(b['params'])}")
    else:
        lines.append("best: no successful evaluation")
    front = data.get("pareto")
    if front:
        names = ", ".join(f"{n} ({d})" for n, d in front["objectives"].items())
        ref = front.get("reference_point")
        hv = (f"; hypervolume {front['hypervolume']:.6g} against the reference point "
              + ", ".join(f"{n} {v:.4g}" for n, v in ref["values"].items())) if ref else ""
        more = f"; {front['infeasible']} infeasible (constraints: {', '.join(front['constraints'])})" \
            if front.get("constraints") else ""
        lines.append(f"Pareto front of {names}: {len(front['pareto'])} points{hv}{more}")
    models = data.get("models")
    if models:
        size = sum(int(m.get("bytes") or 0) for m in models)
        lines.append(f"kept models: {len(models)} ({_size(size)}): "
                     + ", ".join(f"{m.get('path')} ({m.get('by', 'loss')} {m.get('score', float('nan')):.4g}, "
                                 f"{_size(int(m.get('bytes') or 0))})" for m in models))
    stop = data.get("stopping")
    if stop:
        saved = f", {stop['epochs_saved']:g} epochs saved" if stop.get("epochs_saved") is not None else ""
        at = ", ".join(f"{n} at step {k}" for k, n in (stop.get("stopped_at") or {}).items())
        lines.append(f"early stopping: {stop['stopped']} tasks stopped{' (' + at + ')' if at else ''}; "
                     f"{stop['epochs_used']} epochs reported{saved}")
    if data["plots"]:
        lines.append("plots: " + ", ".join(data["plots"]))
    return "\n".join(lines)


def _write_text(path: Path, text: str) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text)
    tmp.replace(path)


def write_report(src: Results, out: str | Path | None = None, plots: bool = True, top: int = 10) -> dict:
    """:func:`emews.report.write_report` for a :class:`~emews.results.Results` ``src`` (with a
    directory, unless ``out`` is given): the arguments, files and errors are the same."""
    if out is None:
        if src.directory is None:
            raise ValueError("these results have no experiment directory: give write_report an out directory")
        out = src.directory
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    data = _data.report_data(src)
    data["warnings"] = []
    if plots:
        try:
            require_matplotlib()
        except ImportError as e:
            log.info("report written without plots: %s", e)
            data["warnings"].append(str(e))
        else:
            todo = dict(PLOTS)
            if getattr(src, "reports", None):
                todo["learning.png"] = plot_learning
            if data.get("pareto") is not None:
                todo["pareto.png"] = plot_pareto
                todo["hypervolume.png"] = plot_hypervolume
            if any(x.get("optimizer") == "pbt" for x in getattr(src, "optimizer_log", ())):
                todo["pbt.png"] = plot_pbt  # population-based training's schedule (its lineage)
            for name, draw in todo.items():
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
