"""The numbers behind a report, computed from journal rows (no matplotlib here).

Every function takes the journal's rows (one dict per task attempt, as
:func:`emews.journal.read_journal` returns them) and returns plain Python data, so the same
numbers feed ``report.json``, the text summary, the plots and a notebook.

Times: rows carry epoch seconds; the functions here return seconds since ``t0``, the first
start of any attempt (the first time a worker picked up a task) unless told otherwise.

A run killed with SIGKILL leaves attempts ``queued`` or ``running`` without an end: where an
interval is needed they are taken to end at ``now``, the last timestamp the journal holds
(:func:`last_seen`); they are not evaluations yet, so the trajectory leaves them out.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any, NamedTuple

from ..journal import final_attempts
from ._source import JournalView

#: what a report reads: a :class:`~emews.report._source.JournalView` (an :class:`emews.results.Results`
#: is one; ``emews.results`` builds on this package, never the other way round)
Results = JournalView

#: statuses of an attempt that has not finished (yet, or ever: a killed run)
ACTIVE = ("queued", "running")
#: statuses counted as failures in a report
FAILURES = ("failed", "timeout")
UNFINISHED = "unfinished (killed?)"

Row = Mapping[str, Any]


class Interval(NamedTuple):
    """One attempt's time on a worker (epoch seconds); ``status`` is ``running`` for an
    attempt that never ended (closed at the journal's last timestamp)."""

    task_id: int
    attempt: int
    worker: int | None
    start: float
    end: float
    status: str


def finite(x: Any) -> float | None:
    """``x`` as a float when it is a finite number, else ``None``."""
    if x is None or isinstance(x, bool):
        return None
    try:
        f = float(x)
    except (TypeError, ValueError):
        return None
    return f if math.isfinite(f) else None


def last_seen(rows: Iterable[Row]) -> float | None:
    """The latest timestamp (queued, start or end) of any attempt: "now" for a killed run."""
    ts = [t for r in rows for t in (r.get("queued"), r.get("start"), r.get("end")) if t is not None]
    return max(ts) if ts else None


def first_start(rows: Iterable[Row]) -> float | None:
    """The first start of any attempt (the first queued time when nothing started)."""
    rows = list(rows)
    starts = [r["start"] for r in rows if r.get("start") is not None]
    if starts:
        return min(starts)
    queued = [r["queued"] for r in rows if r.get("queued") is not None]
    return min(queued) if queued else None


def intervals(rows: Iterable[Row], now: float | None = None) -> list[Interval]:
    """Every attempt that ran, as an :class:`Interval`, sorted by start.

    An attempt with a start and no end (still ``running``, or killed) ends at ``now``; with
    ``now=None`` it is left out. A cancelled attempt that was running when its run stopped
    (a deadline, SIGTERM: it has a start and no end) counts as ``cancelled`` work until
    ``now``; one that never started, or that a resume closed after its session died (its end
    is the resume's time, not when it stopped running), is left out.
    """
    out = []
    for r in rows:
        start, end = r.get("start"), r.get("end")
        cancelled = r.get("status") == "cancelled"
        if start is None or (cancelled and end is not None):
            continue
        status = r.get("status") or "?"
        if end is None:
            if now is None:
                continue
            end, status = max(now, start), "cancelled" if cancelled else "running"
        out.append(Interval(r["task_id"], r.get("attempt", 0), r.get("worker"), start, end, status))
    out.sort(key=lambda i: (i.start, i.task_id, i.attempt))
    return out


def _session_of(t: float, starts: Sequence[float]) -> int:
    """Index of the last session started at or before ``t`` (0 before the first)."""
    k = 0
    for i, s in enumerate(starts):
        if s <= t:
            k = i
    return k


def sessions(meta: Mapping[str, Any], rows: Sequence[Row] = ()) -> list[dict]:
    """The run's sessions: ``[{"started", "finished", "outcome"}]`` (``finished`` and
    ``outcome`` are ``None`` for a session that never finished).

    A resumed experiment's journal may list them in ``meta["sessions"]``; otherwise the whole
    journal is one session described by the meta's ``started/finished/outcome`` (a ``started``
    later than ``finished`` means the latest session has not finished).
    """
    listed = meta.get("sessions")
    if isinstance(listed, list):
        out = [{"started": finite(s.get("started")), "finished": finite(s.get("finished")), "outcome": s.get("outcome"),
                "limit": finite(s.get("limit")), "capacity": _capacity_log(s.get("capacity"))}
               for s in listed if isinstance(s, Mapping) and finite(s.get("started")) is not None]
        if out:
            out.sort(key=lambda s: s["started"])
            for s in out:
                if s["finished"] is None:
                    s["outcome"] = None
            return out
    started = finite(meta.get("started"))
    if started is None:
        started = first_start(rows)
    finished = finite(meta.get("finished"))
    outcome = meta.get("outcome")
    if finished is None or (started is not None and started > finished) or outcome is None:
        finished, outcome = None, None
    return [{"started": started, "finished": finished, "outcome": outcome}]


def _capacity_log(log: Any) -> list[tuple[float, int]] | None:
    """A session's journaled ``capacity`` (``[[time, workers], ...]``: an elastic pool's size
    each time it changed), or None."""
    if not isinstance(log, list):
        return None
    out = [(float(t), int(n)) for t, n in (x for x in log if isinstance(x, (list, tuple)) and len(x) == 2)
           if finite(t) is not None and finite(n) is not None]
    return out or None


def capacity_segments(sess: Sequence[Mapping[str, Any]]) -> list[tuple[float, float, int]]:
    """``(from, to, workers)``: the workers present over time in the sessions whose pool's size
    changed (a Dask pool's workers joined or left); each session's last segment ends at its end."""
    out = []
    for s in sess:
        log = s.get("capacity")
        if not log:
            continue
        end = s.get("finished") if s.get("finished") is not None else math.inf
        for (t, n), nxt in zip(log, [x[0] for x in log[1:]] + [end]):
            if nxt > t:
                out.append((t, nxt, n))
    return out


def _capacity_time(segments: Sequence[tuple[float, float, int]], begin: float, end: float, workers: int) -> float:
    """Worker-seconds present in ``[begin, end]``: the journaled sizes where known, else ``workers``."""
    total, covered = 0.0, 0.0
    for a, b, n in segments:
        overlap = min(b, end) - max(a, begin)
        if overlap > 0:
            total += overlap * n
            covered += overlap
    return total + max(0.0, (end - begin) - covered) * workers


def outcome(meta: Mapping[str, Any], rows: Sequence[Row] = ()) -> str:
    """The latest session's outcome (e.g. ``max_evals reached``), or ``unfinished (killed?)``."""
    last = sessions(meta, rows)[-1]
    return str(last["outcome"]) if last["finished"] is not None and last["outcome"] is not None else UNFINISHED


def _session_spans(rows: Iterable[Row], now: float | None, session_starts: Sequence[float] | None,
                  limits: Sequence[float | None] | None) -> list[tuple[list[Interval], float, float]]:
    """Per session: its intervals and its span ``(begin, end)``, the end cut at its time limit."""
    iv = intervals(rows, now)
    groups: dict[int, list[Interval]] = {}
    for i in iv:
        groups.setdefault(_session_of(i.start, session_starts or ()), []).append(i)
    out = []
    for k in sorted(groups):
        g = groups[k]
        begin, end = min(i.start for i in g), max(i.end for i in g)
        limit = limits[k] if limits is not None and k < len(limits) else None
        if limit is not None and begin < limit < end:
            end = limit
        out.append((g, begin, end))
    return out


def live_run(directory: Any) -> dict | None:
    """``{pid, host, started}`` of the live run holding ``directory``'s lock, or ``None``
    (no lock file, nobody holds it: a run without an orderly end was killed). The kernel
    drops the lock of a dead process, so a held lock means a live run."""
    import json
    import os

    if directory is None:
        return None
    path = Path(directory) / ".lock"
    try:
        import fcntl

        fd = os.open(path, os.O_RDONLY)
    except (ImportError, OSError):
        return None
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            try:
                return dict(json.loads(os.pread(fd, 4096, 0).decode() or "{}"))
            except (OSError, ValueError, TypeError):
                return {}
        except OSError:  # no flock on this file system: cannot tell
            return None
        return None
    finally:
        os.close(fd)


def utilization(rows: Iterable[Row], workers: int, now: float | None = None,
                session_starts: Sequence[float] | None = None,
                limits: Sequence[float | None] | None = None,
                segments: Sequence[tuple[float, float, int]] = ()) -> dict[str, float]:
    """Busy time / (workers × span), as DeepHyper defines it: the span runs from the first
    start to the last end, or to the time limit when one stopped the session.

    Returns ``{"busy": s, "span": s, "utilization": fraction}``. Every attempt counts (retries
    too); one with no end counts until ``now`` (left out when ``now`` is ``None``). With
    ``session_starts`` (a resumed experiment) the span is the sum of each session's span, so
    the time between sessions is not idle time. ``limits`` (one per session, epoch seconds or
    ``None``): when a ``max_time`` or deadline stopped new tasks; the span ends there and busy
    time after it does not count. ``segments`` (:func:`capacity_segments`): the workers present
    over time where an elastic pool's size changed (they replace ``workers`` there).
    """
    return _utilization_of(_session_spans(rows, now, session_starts, limits), workers, segments)


def _utilization_of(groups: list[tuple[list[Interval], float, float]], workers: int,
                    segments: Sequence[tuple[float, float, int]] = ()) -> dict[str, float]:
    """Busy time / worker time; with ``segments`` (see :func:`capacity_segments`) the worker
    time is that of the workers present (an elastic pool), else ``workers`` × span."""
    if not groups or (workers <= 0 and not segments):
        return {"busy": 0.0, "span": 0.0, "utilization": 0.0}
    busy = sum(max(0.0, min(i.end, end) - i.start) for g, _, end in groups for i in g)
    span = sum(end - begin for _, begin, end in groups)
    present = sum(_capacity_time(segments, begin, end, workers) for _, begin, end in groups)
    return {"busy": busy, "span": span, "utilization": busy / present if present > 0 else 1.0}


def ramps(rows: Iterable[Row], workers: int, now: float | None = None, session_starts: Sequence[float] | None = None,
          limits: Sequence[float | None] | None = None) -> dict[str, float | None]:
    """``{"up": s, "down": s}`` of the last session: seconds from its first start until every
    worker was busy (``None`` if that never happened), and from the first worker going idle
    for good to the end of its span (as in :func:`utilization`)."""
    return _ramps_of(_session_spans(rows, now, session_starts, limits), workers)


def _ramps_of(groups: list[tuple[list[Interval], float, float]], workers: int) -> dict[str, float | None]:
    if not groups or workers <= 0:
        return {"up": None, "down": None}
    g, begin, end = groups[-1]
    return {"up": _ramp_up(g, workers, begin), "down": _ramp_down(g, workers, begin, end)}


def _ramp_up(iv: Sequence[Interval], workers: int, begin: float) -> float | None:
    """Seconds from ``begin`` until ``workers`` attempts ran at once (None: never)."""
    events = sorted([(i.start, 1) for i in iv] + [(i.end, -1) for i in iv], key=lambda e: (e[0], e[1]))
    running = 0
    for t, d in events:
        running += d
        if running >= workers:
            return t - begin
    return None


def _ramp_down(iv: Sequence[Interval], workers: int, begin: float, end: float) -> float:
    """Seconds from the first worker going idle for good (the end of its last attempt; a
    worker that never ran was idle from ``begin``) to ``end``."""
    last: dict[Any, float] = {}
    for i in iv:
        if i.worker is not None:
            last[i.worker] = max(last.get(i.worker, i.end), i.end)
    first_idle = min(last.values()) if len(last) >= workers else begin
    return max(0.0, end - min(first_idle, end))


def load_over_time(rows: Iterable[Row], now: float | None = None, t0: float | None = None) -> list[tuple[float, int]]:
    """Steps ``(seconds since t0, attempts running from then on)``, one per distinct time.

    ``t0`` defaults to the first start; attempts without an end run until ``now`` (left out
    when ``now`` is ``None``). The last step is the time the last attempt ended (0 running).
    """
    iv = intervals(rows, now)
    if not iv:
        return []
    if t0 is None:
        t0 = iv[0].start
    delta: dict[float, int] = {}
    for i in iv:
        delta[i.start - t0] = delta.get(i.start - t0, 0) + 1
        delta[i.end - t0] = delta.get(i.end - t0, 0) - 1
    out, running = [], 0
    for t in sorted(delta):
        running += delta[t]
        out.append((t, running))
    return out


def worker_timeline(rows: Iterable[Row], now: float | None = None) -> dict[Any, list[Interval]]:
    """Each worker's attempts in start order: ``{worker id: [Interval, ...]}``, ids sorted
    (an attempt without a worker id is under ``None``, last)."""
    out: dict[Any, list[Interval]] = {}
    for i in intervals(rows, now):
        out.setdefault(i.worker, []).append(i)
    return dict(sorted(out.items(), key=lambda kv: (kv[0] is None, kv[0] if isinstance(kv[0], int) else str(kv[0]))))


def best_over_time(rows: Iterable[Row]) -> list[tuple[float, float]]:
    """``(seconds since the first start, best loss so far)`` at each improvement."""
    rows = list(rows)
    done = sorted((r for r in rows if r["status"] == "done" and r.get("end") is not None
                   and finite(r.get("loss")) is not None), key=lambda r: r["end"])
    t0 = first_start(rows)
    if not done or t0 is None:
        return []
    best, out = math.inf, []
    for r in done:
        if r["loss"] < best:
            best = r["loss"]
            out.append((r["end"] - t0, best))
    return out


def _completion_time(r: Row) -> float | None:
    for k in ("end", "start", "queued"):
        if r.get(k) is not None:
            return r[k]
    return None


def completed(rows: Iterable[Row]) -> list[Row]:
    """The last attempt of every task that has finished (done, failed, timeout: not queued,
    running or cancelled), in completion order."""
    out = [r for r in final_attempts(rows) if r["status"] not in ACTIVE and r["status"] != "cancelled"
           and _completion_time(r) is not None]
    out.sort(key=lambda r: (_completion_time(r), r["task_id"]))
    return out


def trajectory(rows: Iterable[Row], t0: float | None = None) -> list[dict]:
    """The search, one entry per completed evaluation in completion order:
    ``{"index": 1.., "task_id", "time": s since t0, "status", "loss", "best", "reported"}``.

    ``loss`` is ``None`` for a failed evaluation (or a non-finite loss); ``best`` is the lowest
    loss so far (``None`` until the first success); ``reported`` is a stopped task's last
    judged loss (``None`` for the others: a stopped task's loss is not a final one, and it
    never counts as the best).
    """
    rows = list(rows)
    if t0 is None:
        t0 = first_start(rows) or 0.0
    best: float | None = None
    out = []
    for i, r in enumerate(completed(rows), 1):
        loss = finite(r.get("loss")) if r["status"] == "done" else None
        if loss is not None and (best is None or loss < best):
            best = loss
        reported = finite(r.get("loss")) if r["status"] == "stopped" else None
        out.append({"index": i, "task_id": r["task_id"], "time": _completion_time(r) - t0, "status": r["status"],
                    "loss": loss, "best": best, "reported": reported})
    return out


def _proposal_groups(rows: Sequence[Row], session_starts: Sequence[float] = ()) -> list[list[int]]:
    """Task ids grouped by the optimizer message that proposed them, in proposal order.

    A task's group is its first attempt's ``batch`` (falling back to its ``queued`` time for a
    journal without batch numbers), and within a session; tasks are taken in id order and a new
    group starts whenever that key changes (so batch numbers restarting in a resumed session
    never merge two proposals).
    """
    first: dict[int, Row] = {}
    for r in rows:
        t = r["task_id"]
        if t not in first or r.get("attempt", 0) < first[t].get("attempt", 0):
            first[t] = r
    groups: list[list[int]] = []
    prev: object = object()
    for t in sorted(first):
        r = first[t]
        q = r.get("queued")
        sess = _session_of(q, session_starts) if q is not None and session_starts else 0
        key = (sess, "batch", r["batch"]) if r.get("batch") is not None else (sess, "queued", q)
        if key != prev:
            groups.append([])
            prev = key
        groups[-1].append(t)
    return groups


def iterations(rows: Iterable[Row], workers: int, t0: float | None = None,
               session_starts: Sequence[float] = ()) -> dict:
    """Per-iteration statistics of the completed evaluations.

    The rule: an iteration is one batch of the optimizer (the tasks one ``put`` proposed)
    when the run has at least two batches averaging at least two tasks each (batch mode, a
    GA generation). Otherwise the batches say nothing about progress (asynchronous mode
    refilling one free worker at a time, or a single batch holding the whole budget), and an
    iteration is a window of ``workers`` consecutive completions (the last one may be shorter).

    Returns ``{"rule": "batch" | "window", "size": window size or None, "items": [...]}`` where
    each item is ``{"iteration": 1.., "tasks": [ids], "count", "done", "failures", "min",
    "mean", "index", "time"}``: ``min``/``mean`` over the successful losses (``None`` when
    none), ``index``/``time`` the completion index and time of the iteration's last
    evaluation (where to draw it). Iterations with nothing completed yet are left out.
    """
    rows = list(rows)
    traj = trajectory(rows, t0)
    groups = _proposal_groups(rows, session_starts)
    tasks = sum(len(g) for g in groups)
    if len(groups) >= 2 and tasks >= 2 * len(groups):
        rule, size = "batch", None
        by_task = {e["task_id"]: e for e in traj}
        members = [[by_task[t] for t in g if t in by_task] for g in groups]
    else:
        rule, size = "window", max(1, int(workers))
        members = [traj[i:i + size] for i in range(0, len(traj), size)]
    items = []
    for m in members:
        if not m:
            continue
        losses = [e["loss"] for e in m if e["loss"] is not None]
        items.append({"iteration": len(items) + 1, "tasks": [e["task_id"] for e in m], "count": len(m),
                      "done": len(losses), "failures": sum(e["status"] in FAILURES for e in m),
                      "min": min(losses) if losses else None, "mean": sum(losses) / len(losses) if losses else None,
                      "index": max(e["index"] for e in m), "time": max(e["time"] for e in m)})
    return {"rule": rule, "size": size, "items": items}


def top_trials(rows: Iterable[Row], k: int = 10) -> list[Row]:
    """The ``k`` successful tasks (last attempts) with the lowest finite loss, best first."""
    ok = [r for r in final_attempts(rows) if r["status"] == "done" and finite(r.get("loss")) is not None]
    ok.sort(key=lambda r: (r["loss"], r["task_id"]))
    return ok[:max(0, int(k))]


def status_counts(rows: Iterable[Row]) -> dict[str, int]:
    """How many tasks (last attempts) have each status."""
    counts: dict[str, int] = {}
    for r in final_attempts(rows):
        counts[r["status"]] = counts.get(r["status"], 0) + 1
    return dict(sorted(counts.items()))


def _full_steps(meta: Mapping[str, Any], reports: Sequence[Mapping[str, Any]]) -> float | None:
    """The steps a task runs when nothing stops it: the stopper's ``max_resource`` when the
    config gives one, else the furthest step any task reported."""
    spec = (meta.get("config") or {}).get("stopper") if isinstance(meta.get("config"), Mapping) else None
    if isinstance(spec, Mapping):
        mr = spec.get("max_resource", (spec.get("settings") or {}).get("max_resource")
                      if isinstance(spec.get("settings"), Mapping) else None)
        if isinstance(mr, (int, float)) and not isinstance(mr, bool):
            return float(mr)
    steps = [finite(r.get("step")) for r in reports]
    steps = [x for x in steps if x is not None]
    return max(steps) if steps else None


def stopping(src: Results) -> dict | None:
    """Early stopping in numbers (None when no task reported): ``reports``, ``stopped``
    (tasks), ``epochs_used`` (reports, one per epoch), ``full_epochs`` (what a task runs when
    nothing stops it), ``epochs_saved`` (over the stopped tasks: ``full_epochs`` minus the step
    each reached), ``stopped_at`` ({step: tasks stopped there}: the rungs, for ASHA)."""
    reports = list(getattr(src, "reports", None) or [])
    if not reports:
        return None
    full = _full_steps(src.meta, reports)
    stopped = [r for r in src.rows if r["status"] == "stopped"]
    at: dict[str, int] = {}
    saved = 0.0
    for r in stopped:
        step = finite((r.get("metrics") or {}).get("step"))
        if step is None:
            continue
        at[f"{step:g}"] = at.get(f"{step:g}", 0) + 1
        if full is not None:
            saved += max(0.0, full - step)
    return {"reports": len(reports), "stopped": len(stopped), "epochs_used": len(reports),
            "full_epochs": full, "epochs_saved": saved if full is not None else None,
            "stopped_at": dict(sorted(at.items(), key=lambda kv: float(kv[0])))}


def learning_curves(src: Results) -> dict[tuple[int, int], dict]:
    """Each reporting attempt's curve: ``{(task_id, attempt): {"steps", "losses", "status"}}``
    (the attempt's journaled status; reports in arrival order)."""
    status = {(r["task_id"], r["attempt"]): r["status"] for r in src.all_attempts}
    out: dict[tuple[int, int], dict] = {}
    for rep in getattr(src, "reports", None) or []:
        key = (rep["task_id"], rep["attempt"])
        c = out.setdefault(key, {"steps": [], "losses": [], "status": status.get(key, "?")})
        c["steps"].append(rep["step"])
        c["losses"].append(finite(rep.get("loss")))
    return out


def report_data(src: Results, top: int = 5) -> dict:
    """Everything ``report.json`` holds, for a :class:`~emews.results.Results`
    (:func:`emews.report.report_data` also takes an experiment directory or a journal dict).

    Keys: ``experiment, directory, outcome`` (the latest session's, or ``unfinished
    (killed?)``), ``finished, pool, workers, max_evals, sessions, evaluations`` (tasks),
    ``attempts, status`` (tasks per status), ``failures`` (failed + timeout), ``unfinished``
    (tasks still queued or running), ``best`` (``{task_id, loss, params, metrics}`` or
    ``None``), ``top`` (the ``top`` best: ``{task_id, loss, params}``), ``utilization``
    (``{busy, span, utilization}``), ``ramp`` (``{up, down}`` s), ``runtime`` (s), ``first``/``last`` (epoch s: first
    start, last timestamp), ``iterations`` (``{rule, size, count}``), ``plots`` (PNG files
    written, filled by :func:`~emews.report.write_report`), and, when tasks reported
    intermediate losses, ``stopping`` (see :func:`stopping`: the epochs used and saved);
    with several objectives, ``pareto`` (see :func:`emews.report._front.front_data`: the
    front, its hypervolume, the reference point and the hypervolume after each evaluation).
    Non-finite numbers become ``None``.
    """
    rows, final, meta = src.all_attempts, src.rows, src.meta
    now = last_seen(rows)
    sess = sessions(meta, rows)
    starts = [s["started"] for s in sess if s["started"] is not None]
    limits = [s.get("limit") for s in sess if s["started"] is not None]
    spans = _session_spans(rows, now, starts, limits)  # the intervals once, for utilization and ramps
    counts = status_counts(final)
    tops = top_trials(final, max(top, 1))
    best = tops[:1]
    out_of = outcome(meta, rows)
    holder = live_run(src.directory) if out_of == UNFINISHED else None
    runtime = finite(meta.get("runtime")) if out_of != UNFINISHED and "sessions" not in meta else None
    if holder is not None:  # not killed: a live run holds the directory's lock
        out_of = f"running (pid {holder.get('pid', '?')} on {holder.get('host', '?')})"
    if runtime is None:
        runtime = _runtime(sess, rows)
    it = iterations(rows, src.workers, session_starts=starts)
    data = {
        "experiment": src.name,
        "directory": str(src.directory) if src.directory else None,
        "outcome": out_of,
        "finished": out_of != UNFINISHED and holder is None,
        "pool": meta.get("pool"),
        "workers": src.workers,
        "max_evals": meta.get("max_evals"),
        "sessions": len(sess),
        "evaluations": sum(counts.values()),
        "attempts": len(rows),
        "status": counts,
        "failures": sum(counts.get(s, 0) for s in FAILURES),
        "unfinished": sum(counts.get(s, 0) for s in ACTIVE),
        "best": ({"task_id": best[0]["task_id"], "loss": best[0]["loss"], "params": dict(best[0]["params"]),
                  "metrics": dict(best[0].get("metrics") or {})} if best else None),
        "top": [{"task_id": r["task_id"], "loss": r["loss"], "params": dict(r["params"])} for r in tops[:top]],
        "models": [dict(m) for m in (meta.get("models") or []) if isinstance(m, Mapping)],  # keep_models
        "utilization": _utilization_of(spans, src.workers, capacity_segments(sess)),
        "ramp": _ramps_of(spans, src.workers),
        "runtime": runtime,
        "first": first_start(rows),
        "last": now,
        "iterations": {"rule": it["rule"], "size": it["size"], "count": len(it["items"])},
        "plots": [],
    }
    stop = stopping(src)
    if stop is not None:
        data["stopping"] = stop
    from ._front import front_data  # several objectives: the front, its hypervolume and reference

    front = front_data(src)
    if front is not None:
        data["pareto"] = front
    return clean(data)


def _runtime(sess: Sequence[Mapping[str, Any]], rows: Sequence[Row]) -> float | None:
    """Seconds the sessions lasted; one that never finished lasts until its last timestamp."""
    stamps = [t for r in rows for t in (r.get("queued"), r.get("start"), r.get("end")) if t is not None]
    total, known = 0.0, False
    for i, s in enumerate(sess):
        if s["started"] is None:
            continue
        end = s["finished"]
        if end is None:
            nxt = sess[i + 1]["started"] if i + 1 < len(sess) and sess[i + 1]["started"] is not None else math.inf
            inside = [t for t in stamps if s["started"] <= t < nxt]
            end = max(inside) if inside else s["started"]
        total += max(0.0, end - s["started"])
        known = True
    return total if known else None


def clean(obj: Any) -> Any:
    """``obj`` with every non-finite float replaced by ``None`` and numpy scalars, tuples and
    other values made JSON-ready (unknown objects become their ``str``)."""
    if isinstance(obj, bool) or obj is None or isinstance(obj, (int, str)):
        return obj
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, Mapping):
        return {str(k): clean(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple, set)):
        return [clean(v) for v in obj]
    if hasattr(obj, "item"):  # numpy scalar
        try:
            return clean(obj.item())
        except (TypeError, ValueError):
            pass
    return str(obj)
