"""Keep the best k models: the driver decides, as the journal's single writer; a copier
thread moves the files, so that a large model never stalls dispatch.

::

    final result ──▶ ModelKeeper.settle(result)        (driver loop: microseconds, no file copied)
                       ranks among the best k so far (kept + copies under way)?
                         yes: a copy job ─┐
                         no:  a delete job┤   (the task's checkpoint place: it is final)
                                          ▼
                     copier thread (one, FIFO): <experiment>/checkpoints/<id>/step-<n>
                                          ──copy──▶ models/.tmp-task-<id> ──rename─▶ models/task-<id>
                                          then the place is deleted
                                          │ done / failed
                                          ▼
    ModelKeeper.poll()  (driver loop) ◀───┘ the copied model joins the kept list; the models
                       that fell out of the k are queued for deletion (after the copies before
                       them: a model replaced or dropped while its copy ran is never left behind)
                     ──▶ the kept list (task, path, bytes, step, score) for the journal's meta
                         ("models"); best.json's "model" points at the first
    ModelKeeper.close(timeout) at the end of the run: waits for the jobs still queued
                       (at a deadline: within the kill margin)

A flush that fails (a read-only or full disk) is a warning: the task's result is journaled
already, and its checkpoint stays where it was. Disk used is bounded by k models, the copies
under way and the checkpoints of running tasks.
"""

from __future__ import annotations

import logging
import math
import os
import queue
import shutil
import threading
import time
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
        background: copy in a thread (the driver); False copies in :meth:`settle` itself.
    """

    def __init__(self, directory: Path, count: int = 5, by: str = "loss", mode: str = "min",
                 kept: list[dict] | None = None, background: bool = True):
        self.directory = Path(directory)
        self.models = self.directory / MODELS_DIR
        self.count, self.by, self.mode = int(count), by, mode
        self.kept: list[dict] = [dict(m) for m in (kept or []) if (self.directory / str(m.get("path"))).exists()]
        self._sort(self.kept)
        self._pending: dict[int, float] = {}  # task id -> score: copies queued or under way
        self._jobs: queue.Queue = queue.Queue()  # (kind, payload) for the copier, FIFO
        self._done: queue.Queue = queue.Queue()  # (task id, entry or None) from the copier
        self._unfinished = 0  # jobs queued and not yet done (the driver's count)
        self._thread: threading.Thread | None = None
        self._background = background
        if self.models.is_dir():  # a copy a killed session left half done
            for p in self.models.glob(".tmp-*"):
                shutil.rmtree(p, ignore_errors=True)

    def _sort(self, entries: list[dict]) -> None:
        sign = 1.0 if self.mode == "min" else -1.0
        entries.sort(key=lambda m: (sign * m["score"], m["task_id"]))

    def score(self, r: Result) -> float | None:
        """The value ``r`` is ranked by (None: it is not ranked: not done, or no such metric)."""
        if not r.ok:
            return None
        v: Any = r.loss if self.by == "loss" else (r.metrics or {}).get(self.by)
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
            return None
        return float(v)

    def _better(self, a: float, b: float) -> bool:
        return a < b if self.mode == "min" else a > b

    def _ranks(self, score: float, task_id: int) -> bool:
        """Among the best k of the kept models and the copies under way."""
        scores = [m["score"] for m in self.kept if m["task_id"] != task_id]
        scores += [s for t, s in self._pending.items() if t != task_id]
        if len(scores) < self.count:
            return True
        sign = 1.0 if self.mode == "min" else -1.0
        worst = sorted(scores, key=lambda s: sign * s)[self.count - 1]
        return self._better(score, worst)

    # -- the driver's side ------------------------------------------------------------------
    def settle(self, r: Result, keep_place: bool = False) -> bool:
        """A task's final result: queue the copy of its model when it ranks, then the deletion
        of its checkpoint place (``keep_place``: the place stays, another task starts from it).
        Returns True when the kept list changed (journal :attr:`kept`): with ``background``
        that happens in :meth:`poll`, once a copy is done."""
        place = self.directory / CHECKPOINTS_DIR / str(r.task_id)
        info = latest(place)
        score = self.score(r)
        if info is not None and score is not None and self._ranks(score, r.task_id):
            self._pending[r.task_id] = score
            self._submit(("copy", (r.task_id, r.attempt, place, info, score, keep_place)))
        elif place.exists() and not keep_place:
            self._submit(("delete", place))
        return self.poll() if not self._background else False

    def discard(self, path: Path) -> None:
        """Delete ``path`` in the copier's order (after the copies queued before)."""
        self._submit(("delete", Path(path)))

    def poll(self) -> bool:
        """Take in the copies that are done; returns True when the kept list changed."""
        changed = False
        while True:
            try:
                task_id, entry = self._done.get_nowait()
            except queue.Empty:
                return changed
            self._unfinished -= 1
            if task_id is None:
                continue  # a deletion
            self._pending.pop(task_id, None)
            if entry is None:
                continue  # failed: warned
            self.kept = [m for m in self.kept if m["task_id"] != task_id] + [entry]
            self._sort(self.kept)
            for out in self.kept[self.count:]:  # after the copy that pushed them out, in order
                if out["task_id"] not in self._pending:  # else a newer copy of it replaces that path
                    self._submit(("delete", self.directory / out["path"]))
            del self.kept[self.count:]
            changed = True

    @property
    def busy(self) -> int:
        """Copies and deletions queued or under way."""
        return self._unfinished

    def close(self, timeout: float | None = None) -> bool:
        """Wait for the queued jobs (at most ``timeout`` seconds; None: all of them); returns
        True when the kept list changed."""
        end = None if timeout is None else time.monotonic() + timeout
        changed = self.poll()
        while self._unfinished > 0:
            left = None if end is None else end - time.monotonic()
            if left is not None and left <= 0:
                log.warning("%d model copy job(s) to %s not finished in time: their checkpoints stay in %s",
                            self._unfinished, self.models, self.directory / CHECKPOINTS_DIR)
                break
            try:
                item = self._done.get(timeout=left)
            except queue.Empty:
                continue
            self._done.put(item)
            changed = self.poll() or changed
        self._jobs.put(None)  # the copier ends once the queue is empty (or at exit: a daemon)
        return changed

    def _submit(self, job: tuple) -> None:
        self._unfinished += 1
        if not self._background:
            self._run(job)
            return
        if self._thread is None:
            self._thread = threading.Thread(target=self._copier, name="emews-model-copier", daemon=True)
            self._thread.start()
        self._jobs.put(job)

    # -- the copier thread ------------------------------------------------------------------
    def _copier(self) -> None:
        while True:
            job = self._jobs.get()
            if job is None:
                return
            self._run(job)

    def _run(self, job: tuple) -> None:
        kind, payload = job
        if kind == "delete":
            shutil.rmtree(payload, ignore_errors=True)
            self._done.put((None, None))
            return
        task_id, attempt, place, info, score, keep_place = payload
        entry = self._copy(task_id, attempt, place, info, score)
        if entry is not None and not keep_place:
            shutil.rmtree(place, ignore_errors=True)
        self._done.put((task_id, entry))

    def _copy(self, task_id: int, attempt: int, place: Path, info: dict, score: float) -> dict | None:
        name = f"task-{task_id}"
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
                        "checkpoint stays in %s", task_id, self.by, score, self.models, e, place)
            return None
        return {"task_id": task_id, "attempt": attempt, "path": str(target.relative_to(self.directory)),
                "file": info.get("file"), "bytes": place_size(target), "step": info.get("step"),
                "by": self.by, "score": score}

    @property
    def best(self) -> dict | None:
        """The best kept model's entry (None: none kept)."""
        return self.kept[0] if self.kept else None
