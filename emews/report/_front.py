"""The report of a search with several objectives: the Pareto front's numbers and plots.

::

    journal meta "objectives" ──▶ ObjectiveSpec ──▶ front_data(): report.json "pareto"
    rows (objectives, violation) ─┘                    (front, hypervolume, reference,
                                                        hypervolume over evaluations)
                                                  ──▶ plot_pareto():      pareto.png
                                                  ──▶ plot_hypervolume(): hypervolume.png

Two objectives: the front (a step line) over the dominated points, infeasible points as red
crosses; three or more: parallel coordinates of the front. The hypervolume is measured in
the space to minimize (objectives to maximize negated) against one reference point, the one
best.json states (the worst feasible value of each objective plus a tenth of its range).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from .._objectives import ObjectiveSpec, feasible, front_summary, pareto_rows, scored_rows
from .._pareto import hypervolume, nondominated
from . import _data
from ._data import Results

__all__ = ["front_data", "hypervolume_trace", "objective_spec", "plot_hypervolume", "plot_pareto"]


def objective_spec(src: Results) -> ObjectiveSpec | None:
    """The search's objectives as journaled, when there are several (else None)."""
    spec = ObjectiveSpec.from_meta((src.meta or {}).get("objectives"))
    return spec if spec is not None and spec.multi else None


def hypervolume_trace(src: Results, reference: Any) -> list[list[float]]:
    """``[[evaluation, hypervolume], ...]``: the hypervolume of the feasible points finished so
    far, after each finished evaluation (completion order), against ``reference``."""
    out, pts = [], []
    front: list = []
    for i, r in enumerate(_data.completed(src.all_attempts), 1):
        if r["status"] == "done" and r.get("objectives") is not None and feasible(r):
            pts.append(r["objectives"])
            mask = nondominated(pts)
            front = [p for p, m in zip(pts, mask) if m]
            pts = list(front)
        out.append([i, hypervolume(front, reference) if front else 0.0])
    return out


def front_data(src: Results) -> dict | None:
    """report.json's ``pareto``: :func:`emews._objectives.front_summary` of the tasks' last
    attempts, plus ``infeasible`` (finished but outside the constraints) and ``trace`` (the
    hypervolume after each finished evaluation); None without several objectives."""
    spec = objective_spec(src)
    if spec is None:
        return None
    body = front_summary(src.rows, spec)
    body["infeasible"] = sum(1 for r in scored_rows(src.rows) if not feasible(r))
    ref = body["reference_point"]
    body["trace"] = hypervolume_trace(src, ref["objectives"]) if ref else []
    return body


def plot_pareto(source: Results, path: str | Path | None = None) -> Any:
    """``pareto.png``: two objectives: every feasible point (grey), the front (blue, joined by
    a step line), infeasible points (red crosses), as the objective returned them; three or
    more: the front's parallel coordinates (each axis from its best to its worst value)."""
    from ._plots import _empty, _figure, _margins, _save, _title

    src = source
    spec = objective_spec(src)
    if spec is None:
        raise ValueError("the search has one objective: no Pareto front to draw")
    scored = scored_rows(src.rows)
    front = pareto_rows(src.rows)
    bad = [r for r in scored if not feasible(r)]
    label = [f"{n} ({d})" for n, d in zip(spec.names, spec.directions)]
    if len(spec.names) == 2:
        fig = _figure(6.5, 5)
        ax = fig.subplots(gridspec_kw=_margins(fig, 0.9, 0.2, 0.4, 0.7))
        raw = lambda rows: [[spec.raw(r["objectives"])[n] for r in rows] for n in spec.names]  # noqa: E731
        ids = {r["task_id"] for r in front}
        rest = [r for r in scored if feasible(r) and r["task_id"] not in ids]
        if rest:
            xs, ys = raw(rest)
            ax.scatter(xs, ys, s=14, color="0.65", label=f"dominated ({len(rest)})", zorder=2)
        if front:
            xs, ys = raw(front)
            ax.step(xs, ys, where="post", color="tab:blue", lw=1, alpha=0.6, zorder=3)
            ax.scatter(xs, ys, s=26, color="tab:blue", label=f"Pareto front ({len(front)})", zorder=4)
        if bad:
            xs, ys = raw(bad)
            ax.scatter(xs, ys, marker="x", s=24, color="tab:red", linewidths=1.2, label=f"infeasible ({len(bad)})",
                       zorder=3)
        if not scored:
            _empty(ax, "no finished evaluation")
        else:
            ax.legend(fontsize=8, loc="best")
        ax.set_xlabel(label[0])
        ax.set_ylabel(label[1])
        ax.set_title(_title(src, "Pareto front"), fontsize=10)
    else:
        m = len(spec.names)
        fig = _figure(max(6.0, 1.6 * m), 4.5)
        ax = fig.subplots(gridspec_kw=_margins(fig, 0.6, 0.6, 0.4, 0.9))
        if front:
            import numpy as np

            y = np.array([r["objectives"] for r in front], dtype=float)
            lo, hi = y.min(axis=0), y.max(axis=0)
            span = np.where(hi > lo, hi - lo, 1.0)
            for row in (y - lo) / span:
                ax.plot(range(m), row, color="tab:blue", lw=1, alpha=0.7)
            ticks = [f"{label[j]}\n{spec.signs[j] * lo[j]:.4g} .. {spec.signs[j] * hi[j]:.4g}" for j in range(m)]
        else:
            _empty(ax, "no feasible finished evaluation")
            ticks = label
        ax.set_xticks(range(m), ticks, fontsize=8)
        ax.set_yticks([0, 1], ["best", "worst"])
        for j in range(m):
            ax.axvline(j, color="0.5", lw=0.8)
        ax.set_title(_title(src, f"Pareto front: {len(front)} points, {len(bad)} infeasible"), fontsize=10)
    _save(fig, path)
    return fig


def plot_hypervolume(source: Results, path: str | Path | None = None) -> Any:
    """``hypervolume.png``: the hypervolume of the feasible points after each finished
    evaluation, against the reference point best.json states."""
    from ._plots import _empty, _figure, _margins, _save, _title

    src = source
    data = front_data(src)
    if data is None:
        raise ValueError("the search has one objective: no hypervolume to draw")
    fig = _figure(7, 4)
    ax = fig.subplots(gridspec_kw=_margins(fig, 0.9, 0.2, 0.4, 0.7))
    if data["trace"] and data["reference_point"]:
        xs, ys = zip(*data["trace"])
        ax.step(xs, ys, where="post", color="tab:blue")
        ref = ", ".join(f"{n} {v:.4g}" for n, v in data["reference_point"]["values"].items())
        ax.set_title(_title(src, f"hypervolume (reference: {ref})"), fontsize=10)
    else:
        _empty(ax, "no feasible finished evaluation")
        ax.set_title(_title(src, "hypervolume"), fontsize=10)
    ax.set_xlabel("evaluation (completion order)")
    ax.set_ylabel("hypervolume")
    _save(fig, path)
    return fig
