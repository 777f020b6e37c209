"""Summaries and plots from an experiment journal (nothing else holds truth).

    python -m emews.report runs/nt3_mbo                 # text summary, utilization
    python -m emews.report runs/nt3_mbo --plot load.png # load over time + best loss (matplotlib)
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from ..journal import read_journal

__all__ = ["utilization", "load_over_time", "best_over_time", "summary", "plot"]


def _spans(rows: Iterable[Mapping[str, Any]]) -> list[tuple[float, float]]:
    return [(r["start"], r["end"]) for r in rows
            if r.get("start") is not None and r.get("end") is not None and r["status"] != "cancelled"]


def utilization(rows: Iterable[Mapping[str, Any]], workers: int) -> dict[str, float]:
    """Busy time / (workers × span from the first start to the last end).

    Returns ``{"busy": s, "span": s, "utilization": fraction}`` (every attempt counts).
    """
    spans = _spans(rows)
    if not spans or workers <= 0:
        return {"busy": 0.0, "span": 0.0, "utilization": 0.0}
    busy = sum(e - s for s, e in spans)
    span = max(e for _, e in spans) - min(s for s, _ in spans)
    return {"busy": busy, "span": span, "utilization": busy / (workers * span) if span > 0 else 1.0}


def load_over_time(rows: Iterable[Mapping[str, Any]]) -> list[tuple[float, int]]:
    """Steps ``(seconds since the first start, tasks running from then on)``."""
    spans = _spans(rows)
    if not spans:
        return []
    t0 = min(s for s, _ in spans)
    events = sorted([(s - t0, 1) for s, _ in spans] + [(e - t0, -1) for _, e in spans])
    out, running = [], 0
    for t, d in events:
        running += d
        out.append((t, running))
    return out


def best_over_time(rows: Iterable[Mapping[str, Any]]) -> list[tuple[float, float]]:
    """``(seconds since the first start, best loss so far)`` at each improvement."""
    done = sorted((r for r in rows if r["status"] == "done" and r.get("end") is not None), key=lambda r: r["end"])
    starts = [s for s, _ in _spans(rows)]
    if not done or not starts:
        return []
    t0, best, out = min(starts), float("inf"), []
    for r in done:
        if r["loss"] < best:
            best = r["loss"]
            out.append((r["end"] - t0, best))
    return out


def summary(directory: str | Path) -> str:
    """A short text report of an experiment directory."""
    j = read_journal(directory)
    rows, meta = j["evals"], j["meta"]
    last: dict[int, Mapping[str, Any]] = {}
    for r in rows:
        last[r["task_id"]] = r
    counts: dict[str, int] = {}
    for r in last.values():
        counts[r["status"]] = counts.get(r["status"], 0) + 1
    workers = int(meta.get("workers") or 1)
    u = utilization(rows, workers)
    lines = [f"experiment {meta.get('experiment')!s} ({meta.get('pool')} pool, {workers} workers): "
             f"{len(last)} tasks, {len(rows)} attempts; " + ", ".join(f"{v} {k}" for k, v in sorted(counts.items())),
             f"outcome: {meta.get('outcome', 'unfinished')}; runtime {float(meta.get('runtime') or 0):.1f} s",
             f"worker utilization {u['utilization']:.1%} (busy {u['busy']:.1f} s over {u['span']:.1f} s span)"]
    bt = best_over_time(rows)
    if bt:
        b = min((r for r in last.values() if r["status"] == "done"), key=lambda r: r["loss"])
        lines.append(f"best loss {b['loss']:.6g} (task {b['task_id']}) at {bt[-1][0]:.1f} s: {b['params']}")
    return "\n".join(lines)


def plot(directory: str | Path, path: str | Path) -> Path:
    """Load over time and best loss over time, to a PNG (needs matplotlib: ``pip install emews[plots]``)."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        raise ImportError("plots need matplotlib: pip install matplotlib") from None
    rows = read_journal(directory)["evals"]
    load = load_over_time(rows)
    best = best_over_time(rows)
    fig, (a, b) = plt.subplots(2, 1, figsize=(8, 6), sharex=True)
    if load:
        a.step([t for t, _ in load], [n for _, n in load], where="post")
    a.set_ylabel("tasks running")
    a.set_title(f"load over time: {Path(directory).name}")
    if best:
        b.step([t for t, _ in best], [v for _, v in best], where="post", color="C1")
    b.set_ylabel("best loss")
    b.set_xlabel("seconds since first task start")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return Path(path)
