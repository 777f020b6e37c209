"""Tasks that start from another task's checkpoint: the driver's bookkeeping.

::

    optimizer: queues.put([params], starts=[{"from": P, "until": n, "release": [...]}])
        ──PUT (task_id, params, start)──▶ CheckpointStarts.seed(task_id, start)
                                            <experiment>/checkpoints/<task_id>/start.json
                                            source P counted as in use by task_id
    worker: trial.load() reads P's final checkpoint in place (see emews._checkpoints)
    the task's final result ──▶ CheckpointStarts.finished(task_id): P no longer in use by it
    released by the optimizer and in use by no open task ──▶ P's place deleted

While starts are in use, a finished task's place is kept (:meth:`holds`) until the optimizer
releases it: ``keep_models`` copies the model but leaves the place; without a release it stays
(the final population's checkpoints, for instance).
"""

from __future__ import annotations

import collections
import shutil
import threading
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from ._checkpoints import write_start

__all__ = ["CheckpointStarts"]


class CheckpointStarts:
    """Which tasks start from which, and which places may go (see the module docstring).

    Args:
        root: the experiment's checkpoint directory (``<experiment>/checkpoints``).
        delete: how a place is deleted (the model keeper's copier, so that a deletion comes
            after a copy of the same place; default: in a thread of its own, so that a large
            checkpoint never holds up the driver's loop).
    """

    def __init__(self, root: Path, delete: Callable[[Path], None] | None = None):
        self.root = Path(root)
        self._delete = delete or self._delete_beside
        self._threads: list[threading.Thread] = []
        self.active = False  # a start was ever seeded: finished places are kept until released
        self._source: dict[int, int] = {}  # open task -> the task it starts from
        self._users: collections.Counter[int] = collections.Counter()  # source -> open tasks using it
        self._released: set[int] = set()

    def seed(self, task_id: int, start: Mapping[str, Any]) -> None:
        """A new task that starts from ``start["from"]`` (or from scratch) with budget ``start["until"]``."""
        self.active = True
        source = start.get("from")
        until = start.get("until")
        if until is not None:
            until = int(until) if float(until).is_integer() else float(until)
        write_start(self.root / str(task_id), int(source) if source is not None else None, until)
        if source is not None:
            self._source[task_id] = int(source)
            self._users[int(source)] += 1
        self.release(start.get("release") or ())

    def _delete_beside(self, place: Path) -> None:
        t = threading.Thread(target=shutil.rmtree, args=(place, True), name="emews-delete", daemon=True)
        t.start()
        self._threads = [x for x in self._threads if x.is_alive()] + [t]

    def close(self, timeout: float | None = None) -> None:
        """Wait for the deletions under way (at most ``timeout`` seconds in all)."""
        import time

        end = None if timeout is None else time.monotonic() + timeout
        for t in self._threads:
            t.join(None if end is None else max(0.0, end - time.monotonic()))

    def holds(self, task_id: int) -> bool:
        """True while the place of finished task ``task_id`` must stay (not released, or in use)."""
        return self.active and (task_id not in self._released or self._users[task_id] > 0)

    def release(self, task_ids: Any) -> None:
        """The optimizer will not start from these tasks again."""
        for t in task_ids:
            self._released.add(int(t))
            self._maybe_delete(int(t))

    def finished(self, task_id: int) -> None:
        """Task ``task_id`` ended for good: its source is no longer in use by it."""
        source = self._source.pop(task_id, None)
        if source is not None:
            self._users[source] -= 1
            self._maybe_delete(source)
        self._maybe_delete(task_id)

    def _maybe_delete(self, task_id: int) -> None:
        if task_id in self._released and self._users[task_id] <= 0 and task_id not in self._source:
            self._users.pop(task_id, None)
            place = self.root / str(task_id)
            if place.exists():
                self._delete(place)
