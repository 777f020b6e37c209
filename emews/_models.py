"""Keep the best k models: the driver decides, as the journal's single writer.

::

    final result ──▶ ModelKeeper.settle(result)
                       ranks among the best k (by loss or a metric)?
                         yes: <experiment>/checkpoints/<id>/step-<n>  ──copy──▶ models/.tmp-task-<id>
                                                                       ──rename─▶ models/task-<id>
                              the model that fell out of the k: deleted
                         the task's checkpoint place: deleted (it is final; disk stays bounded by
                         k models plus the checkpoints of running tasks)
                     ──▶ the kept list (task, path, bytes, step, score) for the journal's meta
                         ("models"); best.json's "model" points at the first

A flush that fails (a read-only or full disk) is a warning: the task's result is journaled
already, and its checkpoint stays where it was.
"""

from __future__ import annotations

import logging
import math
import os
import shutil
from pathlib import Path
from typing import Any

from ._checkpoints import latest, place_size
from .task import Result

__all__ = ["ModelKeeper", "MODELS_DIR", "CHECKPOINTS_DIR"]

log = logging.getLogger("emews")

#: the kept models' directory in the experiment
MODELS_DIR = "models"
#: the tasks' shared checkpoint places in the experiment
CHECKPOINTS_DIR = "checkpoints"


class ModelKeeper:
    """The best ``count`` final models of a search (see the module docstring).

    Args:
        directory: the experiment directory.
        count: how many models to keep.
        by: ``loss`` or the name of a metric the objective returns.
        mode: ``min`` (lower is better) or ``max``.
        kept: the list an earlier session journaled (a resumed experiment).
    """

    def __init__(self, directory: Path, count: int = 5, by: str = "loss", mode: str = "min",
                 kept: list[dict] | None = None):
        self.directory = Path(directory)
        self.models = self.directory / MODELS_DIR
        self.count, self.by, self.mode = int(count), by, mode
        self.kept: list[dict] = [dict(m) for m in (kept or []) if (self.directory / str(m.get("path"))).exists()]
        self._sort()

    def _sort(self) -> None:
        sign = 1.0 if self.mode == "min" else -1.0
        self.kept.sort(key=lambda m: (sign * m["score"], m["task_id"]))

    def score(self, r: Result) -> float | None:
        """The value ``r`` is ranked by (None: it is not ranked: not done, or no such metric)."""
        if not r.ok:
            return None
        v: Any = r.loss if self.by == "loss" else (r.metrics or {}).get(self.by)
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
            return None
        return float(v)

    def _ranks(self, score: float) -> bool:
        if len(self.kept) < self.count:
            return True
        worst = self.kept[-1]["score"]
        return score < worst if self.mode == "min" else score > worst

    def settle(self, r: Result) -> bool:
        """A task's final result: keep its model when it ranks; returns True when the kept
        list changed (journal :attr:`kept`)."""
        place = self.directory / CHECKPOINTS_DIR / str(r.task_id)
        info = latest(place)
        score = self.score(r)
        changed = False
        if info is not None and score is not None and self._ranks(score):
            changed = self._flush(r, place, info, score)
            if not changed:
                return False  # the flush failed: the checkpoint stays where it is (the warning names it)
        if place.exists():
            shutil.rmtree(place, ignore_errors=True)
        return changed

    def _flush(self, r: Result, place: Path, info: dict, score: float) -> bool:
        name = f"task-{r.task_id}"
        tmp = self.models / f".tmp-{name}"
        target = self.models / name
        try:
            self.models.mkdir(exist_ok=True)
            if tmp.exists():
                shutil.rmtree(tmp)
            shutil.copytree(place / info["name"], tmp)
            if target.exists():
                shutil.rmtree(target)
            os.rename(tmp, target)
        except OSError as e:
            shutil.rmtree(tmp, ignore_errors=True)
            log.warning("task %d: its model (%s = %g) was not kept in %s: %s; its result is kept, and its "
                        "checkpoint stays in %s", r.task_id, self.by, score, self.models, e, place)
            return False
        entry = {"task_id": r.task_id, "attempt": r.attempt, "path": str(target.relative_to(self.directory)),
                 "file": info.get("file"), "bytes": place_size(target), "step": info.get("step"),
                 "by": self.by, "score": score}
        self.kept = [m for m in self.kept if m["task_id"] != r.task_id] + [entry]
        self._sort()
        for out in self.kept[self.count:]:
            shutil.rmtree(self.directory / out["path"], ignore_errors=True)
        del self.kept[self.count:]
        return True

    @property
    def best(self) -> dict | None:
        """The best kept model's entry (None: none kept)."""
        return self.kept[0] if self.kept else None
