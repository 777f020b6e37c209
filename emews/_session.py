"""A search session's record in the journal, and the outputs written when it ends.

::

    Driver.run ──start_session()──▶ journal meta: experiment, space, config, seed, the
                                    sessions list (this one last), outcome "running"
               ──end_session()────▶ journal meta: finished, runtime, outcome, this session's
                                    evaluations (and when a time limit stopped new tasks)
               ──Outputs.write()──▶ results.csv, best.json (with the best kept model, if any),
                                    optimizer_log.jsonl (from the closed journal, read once)
               ──Outputs.report()─▶ report.json, report.txt and the plots (matplotlib's import
                                    overlaps the search: Outputs.preload)

Nothing here decides anything about the search; a problem with the report never costs the
results (the journal and ``results.csv`` are written first).
"""

from __future__ import annotations

import json
import logging
import secrets
import sys
import threading
from pathlib import Path
from typing import Any

from .journal import Journal, read_journal
from .optimizers._eqpy import write_final_messages
from .results import Results, write_best_json, write_results_csv
from .resume import ResumeState
from .space import Space
from .task import Stop

__all__ = ["start_session", "end_session", "Outputs"]

log = logging.getLogger("emews")


def start_session(journal: Journal, settings: Any, pool: Any, resume: ResumeState | None,
                  t0: float) -> tuple[int, list[dict]]:
    """Journal a session's start; returns the seed the optimizer gets and the sessions list
    (this one last, to be completed by :func:`end_session`).

    An unseeded search still gets a seed (recorded, so a resume can replay it); a resumed one
    keeps the seed of the experiment, so a resident optimizer retraces its steps.
    """
    s, r = settings, resume
    seed = s.seed
    if seed is None and r is not None:
        seed = r.seed  # a resident optimizer retraces its steps only with the same seed
    if seed is None:
        seed = secrets.randbits(31)  # unseeded search: still recorded, so a resume can replay it
    sessions = list(r.meta.get("sessions") or []) if r is not None else []
    if r is not None and not sessions:  # a journal from before sessions were recorded
        sessions = [{k: r.meta.get(k) for k in ("started", "finished", "outcome", "pool", "workers")}]
    if sessions and sessions[-1].get("finished") is None:
        sessions[-1]["outcome"] = sessions[-1].get("outcome") or "killed (no orderly end was journaled)"
    sessions.append({"started": t0, "pool": pool.kind, "workers": pool.size,
                     "finished_before": len(r.completed) if r is not None else 0})
    meta = dict(experiment=s.experiment, space=s.space.to_dict(), config=s.config or {}, max_evals=s.max_evals,
                pool=pool.kind, workers=pool.size, seed=seed, sessions=sessions,
                outcome="running")
    if r is None:
        meta["started"] = t0
    objectives = getattr(s, "objectives", None)
    meta["objectives"] = objectives.to_meta() if objectives is not None else None
    journal.set_meta(**meta)
    journal.flush()
    return seed, sessions


def end_session(journal: Journal, sessions: list[dict], resume: ResumeState | None, *, t0: float, now: float,
                outcome: str, evaluations: int, limit: float | None) -> None:
    """Journal a session's end: its outcome, its evaluations, when a time limit stopped new
    tasks (``limit``: the report's utilization span ends there) and the experiment's runtime."""
    if sessions:
        sessions[-1].update(finished=now, outcome=outcome, evaluations=evaluations)
        if limit is not None:
            sessions[-1]["limit"] = limit
    before = float((resume.meta.get("runtime") or 0) if resume is not None else 0)
    journal.set_meta(finished=now, runtime=before + now - t0, outcome=outcome, sessions=sessions)


class Outputs:
    """The files an experiment directory gets at the end of a session, from its journal."""

    def __init__(self, directory: Path, space: Space):
        self.directory = Path(directory)
        self.space = space
        self._results: Results | None = None  # the journal as read back once the run is over
        self._preload: threading.Thread | None = None  # matplotlib imported ahead of the report

    @property
    def read(self) -> bool:
        """The closed journal has been read back (:meth:`results`)."""
        return self._results is not None

    def results(self, stop: Stop | None) -> Results:
        """The journal as :class:`~emews.results.Results` (read once; ``stop`` is the outcome)."""
        if self._results is None:
            j = read_journal(self.directory)
            self._results = Results(j["evals"], self.space.names, self.directory, j["optimizer_log"], meta=j["meta"],
                                    reports=j.get("reports") or [])
            self._results.outcome = str(stop or "finished")
            self._results.stop = stop
        return self._results

    def write(self, stop: Stop | None) -> None:
        """results.csv, best.json and optimizer_log.jsonl from the closed journal (read once,
        kept as :meth:`results`, which the report also uses)."""
        res = self.results(stop)
        spec = res.objectives
        write_results_csv(self.directory / "results.csv", res.all_attempts, self.space.names, spec)
        kept = (res.meta or {}).get("models") or []  # keep_models: the best first
        write_best_json(self.directory / "best.json", res.all_attempts, kept[0] if kept else None, spec)
        write_final_messages(self.directory, res.optimizer_log)  # an EQ/Py algorithm's DONE/FINAL outputs
        if res.optimizer_log:
            with open(self.directory / "optimizer_log.jsonl", "w") as f:
                for rec in res.optimizer_log:
                    f.write(json.dumps(rec, default=str) + "\n")

    def report(self, res: Results) -> None:
        """report.json, report.txt and the PNGs; a problem here never costs the results."""
        from .report import write_report

        try:
            data = write_report(res)
        except KeyboardInterrupt:
            log.warning("report skipped (interrupted); make it with: python -m emews.report %s", self.directory)
        except Exception as e:  # noqa: BLE001 - the journal and results.csv are already written
            log.warning("no report written (%s); try: python -m emews.report %s", e, self.directory)
        else:
            log.debug("report written: %s", ", ".join(["report.json", "report.txt", *data.get("plots", [])]))

    def preload(self) -> None:
        """Import matplotlib and draw once in a thread, so that it overlaps the search."""
        from .report import preload_plots

        self._preload = threading.Thread(target=_preload_politely, args=(preload_plots,), name="emews-plots-preload",
                                         daemon=True)
        self._preload.start()

    def join(self) -> None:
        """Wait for the preload: it is never left importing while the interpreter exits."""
        if self._preload is not None:
            self._preload.join()


#: the GIL switch interval while the plots preload (seconds; Python's default is 0.005)
PRELOAD_SWITCH_INTERVAL = 0.0005


def _preload_politely(preload: Any) -> None:
    """Run ``preload`` (a second of imports and drawing) with a short GIL switch interval, so the
    driver's thread, woken by a result, gets the interpreter within 0.5 ms instead of 5 ms: with
    short tasks each wake-up of the driver is a gap between a worker's tasks."""
    before = sys.getswitchinterval()
    sys.setswitchinterval(min(before, PRELOAD_SWITCH_INTERVAL))
    try:
        preload()
    finally:
        sys.setswitchinterval(before)
