"""The report's figures (matplotlib, an optional extra: ``pip install "emews[plots]"``).

Figures are built as bare :class:`matplotlib.figure.Figure` objects (a subclass with a
``_repr_png_``), not through pyplot: no global backend is chosen or switched (saving a PNG
uses Agg; a notebook shows a returned figure as the cell's value, as one PNG, in any kernel)
and nothing stays registered in pyplot after a figure is saved. Drawn on a given ``ax``, a
plot returns that Axes, not its figure (which pyplot's inline backend shows anyway).
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from . import _data
from ._data import FAILURES, Results


#: dots per inch of the written PNGs (small files: about 900 × 400 pixels each)
DPI = 90
STATUS_COLORS = {"done": "tab:blue", "failed": "tab:red", "timeout": "tab:orange", "running": "0.6",
                 "cancelled": "tab:brown"}
INSTALL_HINT = 'pip install "emews[plots]"'


def require_matplotlib() -> Any:
    """Import matplotlib, or raise ImportError saying how to install it."""
    try:
        import matplotlib
        import matplotlib.figure
    except ImportError:
        raise ImportError(f"emews plots need matplotlib, which is not installed: {INSTALL_HINT}") from None
    return matplotlib


def preload() -> None:
    """Import matplotlib and draw a tiny figure (fonts loaded, Agg ready), silently; a search
    calls it in a thread when it starts, so that the report at its end does not wait for the
    half second this takes. Without matplotlib it does nothing."""
    try:
        require_matplotlib()
        import io

        from ._figure import ReportFigure

        fig = ReportFigure(figsize=(1, 1), dpi=DPI)
        fig.text(0.5, 0.5, "emews 10\u207b\u00b3", fontsize=7)
        fig.savefig(io.BytesIO(), format="png", dpi=DPI)
    except Exception:  # noqa: BLE001, S110 - only a head start: the report says what is wrong itself
        pass


def _figure(width: float, height: float) -> Any:
    """A new figure of ``width`` x ``height`` inches with no layout engine: each plot places
    its panels itself (:func:`_margins`). Matplotlib's constrained layout measured every tick
    label twice and cost about half of the drawing time."""
    require_matplotlib()
    from ._figure import ReportFigure  # shown as a PNG in a notebook, with or without pyplot

    return ReportFigure(figsize=(width, height), dpi=DPI)


def _margins(fig: Any, left: float, right: float, top: float, bottom: float, wspace: float = 0.0,
             hspace: float = 0.0) -> dict:
    """Figure fractions for margins given in inches (``wspace``/``hspace``: the gaps between
    panels, in inches), as keywords of ``subplots_adjust``/``add_gridspec``: the same room
    for labels whatever the figure's size."""
    w, h = fig.get_size_inches()
    return {"left": left / w, "right": 1.0 - right / w, "top": 1.0 - top / h, "bottom": bottom / h,
            "wspace": wspace, "hspace": hspace}


def _gaps(box: dict, fig: Any, ncols: int, nrows: int, wgap: float, hgap: float) -> dict:
    """``box`` with its gaps set from ``wgap``/``hgap`` inches (matplotlib takes them as a
    share of the mean panel width/height)."""
    w, h = fig.get_size_inches()
    pw = (box["right"] - box["left"]) * w
    ph = (box["top"] - box["bottom"]) * h
    cw = (pw - wgap * (ncols - 1)) / ncols if ncols > 1 else pw
    ch = (ph - hgap * (nrows - 1)) / nrows if nrows > 1 else ph
    return {**box, "wspace": wgap / max(cw, 1e-3), "hspace": hgap / max(ch, 1e-3)}


_SUPERSCRIPT = str.maketrans("-0123456789", "\u207b\u2070\u00b9\u00b2\u00b3\u2074\u2075\u2076\u2077\u2078\u2079")


def _log_axis(ax: Any, which: str = "y") -> None:
    """A log scale on ``which`` ("x" or "y") of ``ax``, ticked at the decades with plain-text
    labels (``10⁻³``: matplotlib's default parses mathtext for each, a third of a second per
    figure) and no minor ticks (dozens of tick artists per panel)."""
    from matplotlib.ticker import FuncFormatter, LogLocator, NullLocator

    (ax.set_xscale if which == "x" else ax.set_yscale)("log")
    axis = ax.xaxis if which == "x" else ax.yaxis
    axis.set_major_locator(LogLocator(base=10.0, numticks=6))
    axis.set_minor_locator(NullLocator())
    axis.set_major_formatter(FuncFormatter(_decade))


def _decade(v: float, _pos: Any = None) -> str:
    """``10ⁿ`` for a power of ten (``1``, ``10`` for n = 0, 1), else the value in ``%.3g``."""
    if v <= 0:
        return ""
    k = math.log10(v)
    if abs(k - round(k)) > 1e-9:
        return f"{v:.3g}"
    k = int(round(k))
    if k == 0:
        return "1"
    if k == 1:
        return "10"
    return "10" + str(k).translate(_SUPERSCRIPT)


def _save(fig: Any, path: str | Path | None) -> None:
    """Write ``fig`` as a PNG at ``path``, through a temporary file so a reader never sees half
    a file: rendered once by Agg and, when Pillow (which matplotlib requires) is there, saved
    as a 256-colour palette image (plots have few colours: the file is about three times
    smaller, and encoding it is quicker than encoding the full-colour one)."""
    if path is None:
        return
    import io

    from matplotlib.backends.backend_agg import FigureCanvasAgg

    path = Path(path)
    body = None
    try:
        from PIL import Image
    except ImportError:
        Image = None  # noqa: N806
    if Image is not None:
        try:
            canvas = FigureCanvasAgg(fig)
            canvas.draw()
            img = Image.frombuffer("RGBA", canvas.get_width_height(), canvas.buffer_rgba(), "raw", "RGBA", 0, 1)
            small = io.BytesIO()
            img.convert("RGB").quantize(colors=256, method=Image.Quantize.FASTOCTREE, dither=Image.Dither.NONE).save(
                small, format="PNG")
            body = small.getvalue()
        except Exception as e:  # noqa: BLE001 - the full-colour PNG is fine too
            logging.getLogger("emews").debug("emews: %s kept in full colour: %s", path, e)
    if body is None:
        buf = io.BytesIO()
        fig.savefig(buf, format="png", dpi=DPI)
        body = buf.getvalue()
    tmp = path.with_name(path.name + ".tmp")
    try:
        tmp.write_bytes(body)
        tmp.replace(path)
    finally:
        tmp.unlink(missing_ok=True)


def _time_scale(span: float) -> tuple[float, str]:
    """(divisor, unit) for a time axis covering ``span`` seconds."""
    if span > 2 * 3600:
        return 3600.0, "h"
    if span > 120:
        return 60.0, "min"
    return 1.0, "s"


def _use_log(losses: Sequence[float]) -> bool:
    """A log loss axis when every loss is positive and they span more than three decades."""
    return bool(losses) and min(losses) > 0 and max(losses) / min(losses) > 1e3


def _mark_failures(ax: Any, xs: Sequence[float], label: str | None = "failed") -> None:
    """Failed evaluations as red crosses along the top edge of ``ax``, above the data (call
    it once the y scale is set)."""
    if not xs:
        return
    lo, hi = ax.get_ylim()
    if ax.get_yscale() == "log" and lo > 0:
        ax.set_ylim(lo, hi * (hi / lo) ** 0.12)
    else:
        ax.set_ylim(lo, hi + 0.12 * (hi - lo))
    ax.scatter(xs, [0.96] * len(xs), transform=ax.get_xaxis_transform(), marker="x", s=22, color="tab:red",
               linewidths=1.2, label=label, zorder=4, clip_on=False)
    # drawn in axes coordinates vertically, so autoscaling ignores them: widen x by hand
    ax.update_datalim([(x, lo) for x in xs], updatey=False)
    ax.autoscale_view(scaley=False)


def _session_lines(ax: Any, src: Results, t0: float, scale: float) -> None:
    """Dotted vertical lines where a resumed experiment's later sessions started."""
    for s in _data.sessions(src.meta, src.all_attempts)[1:]:
        if s["started"] is not None:
            ax.axvline((s["started"] - t0) / scale, color="0.4", ls=":", lw=1)


def _title(src: Results, what: str) -> str:
    """``experiment: what``, flagged when the run did not finish."""
    flag = f" [{_data.UNFINISHED}]" if _data.outcome(src.meta, src.all_attempts) == _data.UNFINISHED else ""
    return f"{src.name}: {what}{flag}"


def _empty(ax: Any, text: str) -> None:
    ax.text(0.5, 0.5, text, transform=ax.transAxes, ha="center", va="center", color="0.4")


# -- trajectory --------------------------------------------------------------------------------

def draw_trajectory(ax: Any, src: Results, x: str = "evaluation") -> None:
    """One trajectory panel on ``ax``: each evaluation's loss, the best so far (a step line),
    the per-iteration min and mean, failures as crosses at the top; against the evaluation
    index (``x="evaluation"``) or the time since the first start (``x="time"``)."""
    if x not in ("evaluation", "time"):
        raise ValueError(f"x must be 'evaluation' or 'time', not {x!r}")
    t0 = _data.first_start(src.all_attempts) or 0.0
    traj = _data.trajectory(src.all_attempts, t0)
    its = _data.iterations(src.all_attempts, src.workers, t0, [s["started"] for s in _data.sessions(src.meta, src.all_attempts)
                                                        if s["started"] is not None])
    span = max((e["time"] for e in traj), default=0.0)
    scale, unit = _time_scale(span) if x == "time" else (1.0, "")
    key = "index" if x == "evaluation" else "time"

    def pos(e: Mapping[str, Any]) -> float:
        return e[key] / scale

    ok = [e for e in traj if e["loss"] is not None]
    stopped = [e for e in traj if e["reported"] is not None]
    if ok:
        ax.scatter([pos(e) for e in ok], [e["loss"] for e in ok], s=12, color="tab:blue", alpha=0.45, lw=0,
                   label="evaluation", zorder=2)
    if stopped:  # at the last loss they reported: not a final loss, never the best
        ax.scatter([pos(e) for e in stopped], [e["reported"] for e in stopped], s=14, facecolors="none",
                   edgecolors="tab:orange", lw=0.9, alpha=0.8, label="stopped early (last report)", zorder=2)
    if ok:
        steps = [e for e in traj if e["best"] is not None]
        ax.step([pos(e) for e in steps], [e["best"] for e in steps], where="post", color="tab:red", lw=1.8,
                label="best so far", zorder=3)
        # each iteration's min and mean as a level across the evaluations it holds: a line
        # joining one iteration to the next would read as data between them
        where = {e["task_id"]: pos(e) for e in traj}
        items = [i for i in its["items"] if i["min"] is not None]
        what = "batch" if its["rule"] == "batch" else f"window of {its['size']}"
        for stat, style in (("min", {"color": "tab:green", "lw": 1.6}), ("mean", {"color": "tab:purple", "lw": 1,
                                                                                   "linestyles": "--"})):
            spans = [(min(xs), max(xs), i[stat]) for i in items if (xs := [where[t] for t in i["tasks"] if t in where])]
            pad = 0.3 if x == "evaluation" else 0.006 * span / scale  # a one-evaluation iteration: still a dash
            ax.hlines([y for _, _, y in spans], [a - pad for a, _, _ in spans], [b + pad for _, b, _ in spans],
                      label=f"{stat} per {what}", zorder=3, **style)
    if ok or stopped:
        if _use_log([e["loss"] for e in ok] + [e["reported"] for e in stopped]):
            _log_axis(ax, "y")
    if not ok:
        _empty(ax, "no successful evaluation yet")
    _mark_failures(ax, [pos(e) for e in traj if e["status"] in FAILURES])
    if x == "time":
        _session_lines(ax, src, t0, scale)
        ax.set_xlabel(f"time since the first start ({unit})")
    else:
        ax.set_xlabel("evaluation (completion order)")
    ax.set_ylabel("loss")
    ax.grid(alpha=0.3)


def plot_trajectory(source: Results, path: str | Path | None = None, *, ax: Any = None, x: str = "evaluation") -> Any:
    """The search trajectory; returns the figure (and writes a PNG when ``path`` is given).

    Without ``ax``: a new figure of two panels, against the evaluation index and against time.
    With ``ax``: one panel on it, against ``x`` (``"evaluation"`` or ``"time"``); returns ``ax``.
    """
    src = source
    if ax is not None:
        require_matplotlib()
        draw_trajectory(ax, src, x)
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize=7, loc="best", framealpha=0.8)
        _save(ax.figure, path)
        return ax  # not the figure: a pyplot figure returned as a cell's value would show twice
    else:
        fig = _figure(10, 4.2)
        a, b = fig.subplots(1, 2, sharey=True, gridspec_kw=_margins(fig, 0.8, 0.15, 0.42, 0.85, wspace=0.04))
        draw_trajectory(a, src, "evaluation")
        draw_trajectory(b, src, "time")
        b.set_ylabel("")
        handles, labels = a.get_legend_handles_labels()
        if handles:  # one row under the panels, never on the data
            a.legend(handles, labels, fontsize=7, loc="lower center", bbox_to_anchor=(0.5, 0.01),
                     bbox_transform=fig.transFigure, ncols=len(handles), frameon=False)
        n = len(_data.completed(src.all_attempts))
        best = _data.top_trials(src.all_attempts, 1)
        tail = f", best {best[0]['loss']:.4g}" if best else ""
        fig.suptitle(_title(src, f"search trajectory ({n} evaluations{tail})"), fontsize=10)
    _save(fig, path)
    return fig


# -- learning curves -----------------------------------------------------------------------------
def plot_learning(source: Results, path: str | Path | None = None, *, ax: Any = None) -> Any:
    """Loss against step for every attempt that reported (``learning.png``): runs that went
    to the end in blue, stopped ones in orange ending in a cross at the step they were
    stopped at (for ASHA the crosses line up on the rungs, drawn as dotted lines), others grey."""
    src = source
    if ax is None:
        fig = _figure(7, 4.5)
        a = fig.subplots(gridspec_kw=_margins(fig, 0.8, 0.15, 0.35, 0.8))
    else:
        require_matplotlib()
        fig, a = ax.figure, ax
    curves = _data.learning_curves(src)
    if not curves:
        _empty(a, "no intermediate reports")
    colours = {"done": "tab:blue", "stopped": "tab:orange"}
    losses = [v for c in curves.values() for v in c["losses"] if v is not None]
    stop_steps: dict[float, int] = {}
    for c in curves.values():
        pts = [(s_, v) for s_, v in zip(c["steps"], c["losses"]) if v is not None]
        if not pts:
            continue
        xs, ys = zip(*pts)
        st = str(c["status"])
        a.plot(xs, ys, color=colours.get(st, "0.6"), lw=0.9, alpha=0.75 if st == "stopped" else 0.9)
        if st == "stopped":
            a.plot([xs[-1]], [ys[-1]], "x", color="tab:red", ms=5)
            stop_steps[xs[-1]] = stop_steps.get(xs[-1], 0) + 1
    for step, n in stop_steps.items():
        if n > 1:  # a rung: several tasks stopped at the same step
            a.axvline(step, color="0.5", ls=":", lw=0.8)
    from matplotlib.lines import Line2D

    handles = [Line2D([], [], color="tab:blue", label="ran to the end"),
               Line2D([], [], color="tab:orange", marker="x", mec="tab:red", label="stopped early")]
    if curves and ax is None:  # under the panel, never on the curves
        a.legend(handles=handles, fontsize=7, loc="lower center", bbox_to_anchor=(0.5, 0.01),
                 bbox_transform=fig.transFigure, ncols=2, frameon=False)
    elif curves:
        a.legend(handles=handles, fontsize=7, loc="best")
    if losses and _use_log(losses):
        _log_axis(a, "y")
    a.set_xlabel("step (epoch)")
    a.set_ylabel("loss")
    stopped = sum(1 for c in curves.values() if c["status"] == "stopped")
    a.set_title(_title(src, f"learning curves ({len(curves)} tasks, {stopped} stopped)"), fontsize=10)
    _save(fig, path)
    return fig if ax is None else ax


def pbt_steps(src: Results) -> list[dict]:
    """The ``pbt`` optimizer's lineage records (one per step task), each with the loss its task
    ended with (``loss``) and the loss of the task it started from (``from_loss``)."""
    loss = {r["task_id"]: r["loss"] for r in src.rows if r.get("status") == "done"}
    out = []
    for x in src.optimizer_log:
        if x.get("optimizer") == "pbt" and "task" in x:
            out.append(dict(x, loss=loss.get(x["task"]), from_loss=loss.get(x.get("from_task"))))
    return out


def plot_pbt(source: Results, path: str | Path | None = None, *, ax: Any = None) -> Any:
    """Population-based training's schedule (``pbt.png``): each step task a segment from the
    step (and loss) it started from to the step it reached, one colour per member; a step that
    copied another member's checkpoint (exploit) is dashed and starts with a triangle at the
    donor's point, so a line of descent reads from left to right."""
    src = source
    if ax is None:
        fig = _figure(7, 4.5)
        a = fig.subplots(gridspec_kw=_margins(fig, 0.8, 0.15, 0.35, 0.6))
    else:
        require_matplotlib()
        fig, a = ax.figure, ax
    steps = pbt_steps(src)
    if not steps:
        _empty(a, "no pbt steps")
    members = sorted({x["member"] for x in steps})
    cmap = require_matplotlib().colormaps["tab20" if len(members) > 10 else "tab10"]
    colour = {m: cmap(i % cmap.N) for i, m in enumerate(members)}
    losses = [x["loss"] for x in steps if x["loss"] is not None]
    for x in steps:
        if x["loss"] is None:
            continue
        c = colour[x["member"]]
        if x["from_loss"] is None:  # a first step: a point at the step it reached
            a.plot([x["until"]], [x["loss"]], "o", color=c, ms=3)
            continue
        a.plot([x["step"], x["until"]], [x["from_loss"], x["loss"]], color=c, lw=1.0,
               ls="--" if x["exploit"] else "-", alpha=0.9)
        a.plot([x["until"]], [x["loss"]], "o", color=c, ms=2.5)
        if x["exploit"]:
            a.plot([x["step"]], [x["from_loss"]], "^", color=c, ms=5, mec="k", mew=0.4)
    if losses and _use_log(losses):
        _log_axis(a, "y")
    a.set_xlabel("step (epoch)")
    a.set_ylabel("loss")
    exploits = sum(1 for x in steps if x["exploit"])
    a.set_title(_title(src, f"pbt schedule ({len(members)} members, {len(steps)} steps, {exploits} copied "
                            "a better member: dashed, from the triangle)"), fontsize=9)
    _save(fig, path)
    return fig if ax is None else ax


# -- load ----------------------------------------------------------------------------------------

def draw_load(ax: Any, src: Results) -> None:
    """Busy workers against time (a step line) with the pool size dashed (the workers present
    over time, for an elastic pool), on ``ax``."""
    now = _data.last_seen(src.all_attempts)
    t0 = _data.first_start(src.all_attempts) or 0.0
    steps = _data.load_over_time(src.all_attempts, now=now, t0=t0)
    workers = src.workers
    scale, unit = _time_scale(steps[-1][0] if steps else 0.0)
    if steps:
        ts, ns = [t / scale for t, _ in steps], [n for _, n in steps]
        ax.step(ts, ns, where="post", color="tab:blue", lw=1.2, label="busy workers")
        ax.fill_between(ts, ns, step="post", color="tab:blue", alpha=0.25, lw=0)
        top = max(max(ns), workers)
    else:
        _empty(ax, "no task started yet")
        top = workers
    segments = _data.capacity_segments(_data.sessions(src.meta, src.all_attempts))
    if segments:  # an elastic pool (Dask): the workers present over time, not one size
        end = max(now or 0.0, t0)
        xs = [(max(a, t0) - t0) / scale for a, _, _ in segments] + [(min(segments[-1][1], end) - t0) / scale]
        ys = [n for _, _, n in segments] + [segments[-1][2]]
        ax.step(xs, ys, where="post", color="0.3", ls="--", lw=1, label="workers present")
        top = max(top, max(ys))
    else:
        ax.axhline(workers, color="0.3", ls="--", lw=1, label=f"{workers} workers")
    ax.set_ylim(0, top + max(0.9, 0.3 * top))  # room for the legend above the pool size
    ax.yaxis.get_major_locator().set_params(integer=True)
    _session_lines(ax, src, t0, scale)
    ax.set_ylabel("busy workers")
    ax.set_xlabel(f"time since the first start ({unit})")
    ax.grid(alpha=0.3)


def draw_gantt(ax: Any, src: Results) -> None:
    """One row per worker with a bar per attempt, coloured by status, on ``ax``."""
    from matplotlib.patches import Patch

    now = _data.last_seen(src.all_attempts)
    t0 = _data.first_start(src.all_attempts) or 0.0
    timeline = _data.worker_timeline(src.all_attempts, now=now)
    end = max((i.end for iv in timeline.values() for i in iv), default=t0)
    scale, unit = _time_scale(end - t0)
    seen: list[str] = []
    for y, (worker, iv) in enumerate(timeline.items()):
        by_status: dict[str, list[tuple[float, float]]] = {}
        for i in iv:
            by_status.setdefault(i.status, []).append(((i.start - t0) / scale, (i.end - i.start) / scale))
        for status, bars in by_status.items():
            ax.broken_barh(bars, (y - 0.38, 0.76), facecolors=STATUS_COLORS.get(status, "tab:purple"),
                           edgecolor="white", linewidth=0.3)
            if status not in seen:
                seen.append(status)
    labels = ["?" if w is None else str(w) for w in timeline]
    step = max(1, math.ceil(len(labels) / 16))
    ax.set_yticks(range(0, len(labels), step), labels[::step])
    ax.set_ylim(max(1, len(labels)) - 0.5, -0.5)
    ax.set_ylabel("worker")
    ax.set_xlabel(f"time since the first start ({unit})")
    _session_lines(ax, src, t0, scale)
    if seen:
        ax.legend(handles=[Patch(color=STATUS_COLORS.get(s, "tab:purple"), label=s) for s in seen], fontsize=7,
                  loc="lower right", bbox_to_anchor=(1.0, 1.0), ncols=len(seen), frameon=False, borderaxespad=0.1)
    else:
        _empty(ax, "no task started yet")
    ax.grid(axis="x", alpha=0.3)


#: above this many workers the load plot aggregates: a worker x time heat map instead of one
#: bar per attempt per worker (10,000 rows of bars are neither readable nor quick to draw)
GANTT_MAX_WORKERS = 64


def draw_heatmap(ax: Any, src: Results, rows: int = 100, bins: int = 200, cax: Any = None) -> None:
    """Busy share of each group of workers over time (workers in ``rows`` groups, time in
    ``bins`` bins), on ``ax``: the load plot of a large pool. The colour bar goes on ``cax``
    when given, else it takes room from ``ax``."""
    import numpy as np

    now = _data.last_seen(src.all_attempts)
    t0 = _data.first_start(src.all_attempts) or 0.0
    iv = _data.intervals(src.all_attempts, now=now)
    if not iv:
        _empty(ax, "no task started yet")
        return
    workers = sorted({i.worker for i in iv}, key=lambda w: (w is None, w if isinstance(w, int) else str(w)))
    index = {w: k for k, w in enumerate(workers)}
    rows = min(rows, len(workers))
    per_row = len(workers) / rows
    end = max(i.end for i in iv)
    span = max(end - t0, 1e-9)
    dt = span / bins
    busy = np.zeros((rows, bins))
    for i in iv:
        g = min(rows - 1, int(index[i.worker] / per_row))
        s, e = (i.start - t0) / dt, (i.end - t0) / dt
        b0, b1 = min(bins - 1, int(s)), min(bins - 1, int(e))
        if b0 == b1:
            busy[g, b0] += e - s
        else:
            busy[g, b0] += b0 + 1 - s
            busy[g, b0 + 1:b1] += 1.0
            busy[g, b1] += e - b1
    share = busy / per_row  # busy bins / (workers in the row x 1 bin)
    scale, unit = _time_scale(span)
    im = ax.imshow(share, aspect="auto", origin="upper", cmap="viridis", vmin=0.0, vmax=1.0, interpolation="nearest",
                   extent=(0.0, span / scale, len(workers) - 0.5, -0.5))
    cb = ax.figure.colorbar(im, cax=cax) if cax is not None else ax.figure.colorbar(im, ax=ax, pad=0.01, aspect=15)
    cb.set_label("busy share", fontsize=7)
    cb.ax.tick_params(labelsize=6)
    ax.set_ylabel(f"workers ({len(workers)}, {rows} rows)")
    ax.set_xlabel(f"time since the first start ({unit})")
    _session_lines(ax, src, t0, scale)


def plot_load(source: Results, path: str | Path | None = None, *, ax: Any = None) -> Any:
    """Load over time; returns the figure (and writes a PNG when ``path`` is given).

    Without ``ax``: a new figure with busy workers against time on top and, below, one bar
    per attempt per worker (up to ``GANTT_MAX_WORKERS`` workers) or a worker x time heat map
    of the busy share (above it). With ``ax``: the busy-workers panel only, on it; returns ``ax``.
    """
    src = source
    if ax is not None:
        require_matplotlib()
        draw_load(ax, src)
        _save(ax.figure, path)
        return ax  # not the figure: a pyplot figure returned as a cell's value would show twice
    else:
        n = len(_data.worker_timeline(src.all_attempts, now=_data.last_seen(src.all_attempts)))
        aggregate = n > GANTT_MAX_WORKERS
        lower = 3.2 if aggregate else max(1.6, min(6.0, 0.22 * n + 0.8))
        fig = _figure(10, 2.4 + lower)
        box = _margins(fig, 0.85, 0.75 if aggregate else 0.15, 0.35, 0.55)  # the colour bar in the margin
        a, b = fig.subplots(2, 1, sharex=not aggregate, height_ratios=[2.4, lower],
                            gridspec_kw=_gaps(box, fig, 1, 2, 0.0, 0.55 if aggregate else 0.3))
        draw_load(a, src)
        a.set_xlabel("")
        a.legend(fontsize=7, loc="upper left", ncols=2, framealpha=0.8)
        if aggregate:  # the colour bar beside the map, so both panels keep the same width
            pos = b.get_position()
            w = fig.get_size_inches()[0]
            draw_heatmap(b, src, cax=fig.add_axes((pos.x1 + 0.1 / w, pos.y0, 0.12 / w, pos.height)))
        else:
            draw_gantt(b, src)
        sess = _data.sessions(src.meta, src.all_attempts)
        segments = _data.capacity_segments(sess)
        u = _data.utilization(src.all_attempts, src.workers, now=_data.last_seen(src.all_attempts),
                              session_starts=[s["started"] for s in sess if s["started"] is not None],
                              segments=segments)
        of = "the workers present" if segments else f"{src.workers} workers"
        fig.suptitle(_title(src, f"load over time (utilization {u['utilization']:.0%} of {of})"), fontsize=10)
    _save(fig, path)
    return fig


# -- parameters ----------------------------------------------------------------------------------

class _Axis:
    """How one parameter is placed on a plot: numbers on their (log) scale, choices on integer
    positions with their values as tick labels."""

    def __init__(self, name: str, spec: Mapping[str, Any] | None, values: Sequence[Any]):
        self.name = name
        kind = (spec or {}).get("type")
        self.log = bool((spec or {}).get("log"))
        self.choices: list | None = None
        self.low = self.high = None
        if kind in ("real", "int"):
            self.low, self.high = float(spec["low"]), float(spec["high"])
        elif kind in ("ordinal", "categorical"):
            self.choices = list(spec.get("values") or [])
        elif kind == "bool":
            self.choices = [False, True]
        else:  # no spec (results held in memory, an old journal): go by the values seen
            nums = [v for v in values if isinstance(v, (int, float)) and not isinstance(v, bool)]
            if values and len(nums) == len(values):
                self.low, self.high = float(min(nums)), float(max(nums))
                self.log = False
            elif values and all(isinstance(v, bool) for v in values):
                self.choices = [False, True]
            else:
                self.choices = sorted({_hashable(v) for v in values}, key=str)
        if self.choices is not None:  # values seen outside the spec's list still get a place
            for v in values:
                if _hashable(v) not in [_hashable(c) for c in self.choices]:
                    self.choices.append(v)
        if self.log and self.low is not None and self.low <= 0:
            self.log = False

    def position(self, v: Any) -> float | None:
        """Where ``v`` goes on a scatter axis (``None``: not placeable)."""
        if self.choices is not None:
            h = _hashable(v)
            for i, c in enumerate(self.choices):
                if _hashable(c) == h:
                    return float(i)
            return None
        f = _data.finite(v)
        if f is None or (self.log and f <= 0):
            return None
        return f

    def unit(self, v: Any) -> float | None:
        """``v`` scaled to [0, 1] for the parallel coordinates."""
        p = self.position(v)
        if p is None:
            return None
        if self.choices is not None:
            return p / (len(self.choices) - 1) if len(self.choices) > 1 else 0.5
        lo, hi, f = self.low, self.high, (lambda t: t)
        if self.log:
            f = math.log
        if hi is None or lo is None or f(hi) == f(lo):
            return 0.5
        return min(1.0, max(0.0, (f(p) - f(lo)) / (f(hi) - f(lo))))

    def ends(self) -> tuple[str, str]:
        """Labels for the bottom and top of a parallel-coordinates axis."""
        if self.choices is not None:
            return (str(self.choices[0]), str(self.choices[-1])) if self.choices else ("", "")
        return (f"{self.low:.3g}", f"{self.high:.3g}")


#: the longest parameter name drawn under the parallel coordinates (longer ones end in "…")
_NAME_WIDTH = 24
#: the same with more than six parameters, where the names are drawn at 30°
_ROTATED_WIDTH = 18

#: a light box behind the labels of the parallel coordinates, so lines and axes do not cross them
_LABEL_BOX = {"boxstyle": "round,pad=0.1", "fc": "white", "ec": "none", "alpha": 0.7}


def _label(v: Any, width: int = 12) -> str:
    """A tick label of at most ``width`` characters (long list values such as NT3's ``conv``
    would overlap their neighbours)."""
    text = str(v)
    return text if len(text) <= width else text[: width - 1] + "…"


def _choice_labels(axis: _Axis) -> list[str]:
    return [_label(c) for c in axis.choices or []]


def _tilted(labels: Sequence[str]) -> bool:
    """Whether a panel's choice labels are drawn at 30° (too long to stand side by side)."""
    return sum(map(len, labels)) > 24


def _hashable(v: Any) -> Any:
    try:
        hash(v)
    except TypeError:
        return repr(v)
    return (type(v) is bool, v)  # True is not 1 here


def _param_axes(src: Results) -> list[_Axis]:
    """The parameters worth a panel: not constants, present in the rows."""
    space = src.space
    out = []
    for name in src.param_names:
        spec = space.get(name) if isinstance(space.get(name), Mapping) else None
        if spec and spec.get("type") == "constant":
            continue
        values = [r["params"][name] for r in src.all_attempts if name in (r.get("params") or {})]
        if not values:
            continue
        if spec is None and len({_hashable(v) for v in values}) == 1 and len(values) > 1:
            continue  # the same value everywhere: a constant
        out.append(_Axis(name, spec, values))
    return out


def plot_params(source: Results, path: str | Path | None = None, *, top: int = 10, fig: Any = None) -> Any:
    """Loss against each parameter (every successful trial; the ``top`` best highlighted,
    failures as crosses at the top) and parallel coordinates of the ``top`` best trials in
    unit-scaled coordinates (categorical, ordinal and bool values on evenly spaced positions;
    log dimensions on log axes). Returns the figure; writes a PNG when ``path`` is given;
    draws into ``fig`` (an empty matplotlib Figure) when given.
    """
    import numpy as np

    src = source
    axes = _param_axes(src)
    n = len(axes)
    ncols = min(4 if n <= 12 else 5, max(1, n))
    nrows = max(1, math.ceil(n / ncols))
    m_rotated = n > 6  # the parallel coordinates' names, rotated when there are many
    names = max((len(_label(a.name, _ROTATED_WIDTH)) for a in axes), default=4)
    tilted = max((max(map(len, t)) for t in (_choice_labels(a) for a in axes if a.choices is not None)
                  if _tilted(t)), default=0)
    hgap = 0.55 + 0.03 * tilted  # inches between rows: a panel title, and 30° choice labels
    bottom = 0.3 + 0.03 * names if m_rotated else 0.45  # 30° names hang below the axis
    if fig is None:
        fig = _figure(10, (2.1 if nrows <= 2 else 1.7) * nrows + 2.9 + (0.5 if m_rotated else 0.0)
                      + (hgap - 0.55) * nrows)
    else:
        require_matplotlib()
    place: dict = {}
    if fig.get_layout_engine() is None:  # ours, or a caller's figure without a layout engine
        place = _gaps(_margins(fig, 0.75, 0.2, 0.62, bottom), fig, ncols, nrows + 1, 0.5, hgap)
    gs = fig.add_gridspec(nrows + 1, ncols, height_ratios=[1.0] * nrows + [1.35], **place)
    final = src.rows
    ok = [r for r in final if r["status"] == "done" and _data.finite(r.get("loss")) is not None]
    failed = [r for r in final if r["status"] in FAILURES]
    best = _data.top_trials(src.all_attempts, top)
    best_ids = {r["task_id"] for r in best}
    log_loss = _use_log([r["loss"] for r in ok])
    rng = np.random.default_rng(0)
    fig.suptitle(_title(src, f"parameters ({len(ok)} successful trials; top {len(best)} highlighted)"), fontsize=10)
    if n == 0:
        _empty(fig.add_subplot(gs[:, :]), "no varying parameter")
        _save(fig, path)
        return fig
    for k, axis in enumerate(axes):
        ax = fig.add_subplot(gs[k // ncols, k % ncols])
        jitter = 0.12 if axis.choices is not None else 0.0

        def xy(rows: Sequence[Mapping[str, Any]], axis: _Axis = axis, jitter: float = jitter) -> tuple[list, list]:
            pts = [(axis.position(r["params"].get(axis.name)), r["loss"]) for r in rows if axis.name in r["params"]]
            pts = [(x + (rng.uniform(-jitter, jitter) if jitter else 0.0), y) for x, y in pts if x is not None]
            return [x for x, _ in pts], [y for _, y in pts]

        xs, ys = xy([r for r in ok if r["task_id"] not in best_ids])
        ax.scatter(xs, ys, s=9, color="0.55", alpha=0.6, lw=0, label="trials")
        xs, ys = xy(best)
        ax.scatter(xs, ys, s=18, color="tab:red", lw=0, label=f"top {len(best)}", zorder=3)
        if axis.choices is not None:
            labels = _choice_labels(axis)
            if _tilted(labels):  # rotated, each label ending at its tick
                ax.set_xticks(range(len(labels)), labels, fontsize=7, rotation=30, ha="right", rotation_mode="anchor")
            else:
                ax.set_xticks(range(len(labels)), labels, fontsize=7)
            ax.set_xlim(-0.5, len(labels) - 0.5)
        else:
            if axis.log:
                _log_axis(ax, "x")
            if axis.low is not None and axis.high is not None and axis.high > axis.low:
                pad = (axis.high / axis.low) ** 0.03 if axis.log else 0.03 * (axis.high - axis.low)
                ax.set_xlim(*((axis.low / pad, axis.high * pad) if axis.log else (axis.low - pad, axis.high + pad)))
            else:
                ax.locator_params(axis="x", nbins=4)  # a small panel: few ticks (each costs a handful of artists)
            ax.tick_params(axis="x", labelsize=7)
        if log_loss:
            _log_axis(ax, "y")
        else:
            ax.locator_params(axis="y", nbins=4)
        xs, _ = xy([{**r, "loss": 0.0} for r in failed])
        _mark_failures(ax, xs, label="failed")
        ax.tick_params(axis="y", labelsize=7)
        ax.set_title(_label(axis.name, 30 if ncols < 4 else 24), fontsize=9)
        if k % ncols == 0:
            ax.set_ylabel("loss", fontsize=8)
        if k == 0:  # below the band of failure crosses at the top
            ax.legend(fontsize=6, loc="upper right", bbox_to_anchor=(1.0, 0.88), framealpha=0.8)
        ax.grid(alpha=0.3)
    _parallel(fig.add_subplot(gs[nrows, :]), axes, best)
    _save(fig, path)
    return fig


def _parallel(ax: Any, axes: Sequence[_Axis], best: Sequence[Mapping[str, Any]]) -> None:
    """Parallel coordinates of the best trials: one vertical axis per parameter and one for
    the loss, each line a trial coloured by its loss (dark: best)."""
    from matplotlib import colormaps
    from matplotlib.cm import ScalarMappable
    from matplotlib.colors import Normalize

    m = len(axes)
    ax.set_xlim(-0.6 if m > 6 else -0.3, m + 0.3)  # room on the left for the first rotated name
    ax.set_ylim(-0.12, 1.12)
    ax.set_yticks([])
    for side in ("left", "right", "top"):
        ax.spines[side].set_visible(False)
    if m > 6:  # rotated, each name ending at its axis
        names = [_label(a.name, _ROTATED_WIDTH) for a in axes] + ["loss"]
        ax.set_xticks(range(m + 1), names, fontsize=7, rotation=30, ha="right", rotation_mode="anchor")
    else:
        ax.set_xticks(range(m + 1), [_label(a.name, _NAME_WIDTH) for a in axes] + ["loss"], fontsize=7)
    ax.set_title(f"top {len(best)} trials, parallel coordinates (each axis scaled to its range)", fontsize=9)
    for k, a in enumerate(axes):
        ax.axvline(k, color="0.7", lw=0.8, zorder=1)
        if a.choices is not None and 2 < len(a.choices) <= 12:  # every choice at its place, not only the ends
            for i, c in enumerate(a.choices):
                ax.text(k + 0.04, a.unit(c), _label(c), ha="left", va="center", fontsize=7, color="0.25",
                        zorder=3, bbox=_LABEL_BOX)
            continue
        lo, hi = a.ends()
        ax.text(k, -0.05, _label(lo), ha="center", va="top", fontsize=7, color="0.3", zorder=3, bbox=_LABEL_BOX)
        ax.text(k, 1.05, _label(hi), ha="center", va="bottom", fontsize=7, color="0.3", zorder=3, bbox=_LABEL_BOX)
    ax.axvline(m, color="0.7", lw=0.8, zorder=1)
    if not best:
        _empty(ax, "no successful trial")
        return
    losses = [r["loss"] for r in best]
    lo, hi = min(losses), max(losses)
    ax.text(m, -0.05, f"{lo:.4g}", ha="center", va="top", fontsize=6, color="0.3")
    ax.text(m, 1.05, f"{hi:.4g}", ha="center", va="bottom", fontsize=6, color="0.3")
    norm = Normalize(lo, hi if hi > lo else lo + 1)
    cmap = colormaps["viridis"]
    for r in reversed(best):  # the best drawn last, on top
        ys = [a.unit(r["params"].get(a.name)) for a in axes] + [(r["loss"] - lo) / (hi - lo) if hi > lo else 0.5]
        xs = [k for k, y in enumerate(ys) if y is not None]
        ax.plot(xs, [y for y in ys if y is not None], color=cmap(norm(r["loss"])), lw=1.4, alpha=0.85,
                marker="o", ms=3, zorder=2)
    cb = ax.figure.colorbar(ScalarMappable(norm=norm, cmap=cmap), ax=ax, pad=0.01, aspect=15)
    cb.set_label("loss", fontsize=7)
    cb.ax.tick_params(labelsize=6)
