"""``upf``: evaluate the parameter sets of an unrolled parameter file, as given, in order.

The counterpart of CANDLE Supervisor's UPF workflow (``workflows/upf``): a file of parameter
sets, one JSON object a line (see :mod:`emews.formats._upf`), is evaluated line by line
across all workers. Nothing is searched; ``max_evals`` caps the number of lines run.
"""

from __future__ import annotations

from collections import Counter, deque
from collections.abc import Sequence
from typing import Any

from ..errors import ConfigError
from ..space import Space
from ._base import Optimizer


class UPF(Optimizer):
    """The lines of a UPF file, in order; ``done`` after the last.

    Settings:
        file: the UPF file (in a config, relative to the config file). When the config has
            no ``space``/``space_file``, the space is derived from the file
            (:func:`emews.formats.upf_space`).

    Each line's ``id`` is not a parameter: it is journaled in the optimizer log as
    ``{"upf": [{"task_id": ..., "line": ..., "id": ...}, ...]}`` once its task has finished.
    A resumed experiment skips the lines already finished (a line repeated in the file is run
    as often as it appears).
    """

    multi_objective = True  # the file's lines are run as given, whatever the objectives

    def __init__(self, space: Space, seed: int | None = None, file: str | None = None):
        super().__init__(space, seed)
        if not file:
            raise ConfigError("the upf optimizer needs its file (settings: {file: runs.txt})",
                              key="optimizer.settings.file")
        from ..formats import check_upf, read_upf

        self.file = str(file)
        self.lines = read_upf(self.file)
        self.params = check_upf(self.lines, space, self.file)
        self._next = 0
        self._skipped: set[int] = set()  # resumed: line indices finished or re-running already
        self._outstanding: dict[str, deque[int]] = {}  # key -> line indices proposed, not yet told
        self._tags: list[dict[str, Any]] = []

    def ask(self, n: int) -> list[dict]:
        out = []
        while len(out) < n and self._next < len(self.params):
            i = self._next
            self._next += 1
            if i in self._skipped:
                continue
            key = self.space.key(self.params[i])
            self._outstanding.setdefault(key, deque()).append(i)
            out.append(dict(self.params[i]))
        return out

    def tell(self, results: Sequence[Any]) -> None:
        for r in results:
            q = self._outstanding.get(self.space.key(r.params))
            if not q:
                continue
            i = q.popleft()
            self._tags.append({"task_id": r.task_id, "line": self.lines[i].line, "id": self.lines[i].id})

    def restore(self, history: Sequence[Any], pending: Sequence[dict]) -> None:
        """Resumed experiment: skip the lines finished earlier (cancelled ones run again) and
        the lines of interrupted tasks, which are being re-run (their results come through
        ``tell``). Lines and results are matched in file order, as often as a line repeats."""
        done = Counter(self.space.key(r.params) for r in history if r.status != "cancelled")
        rerun = Counter(self.space.key(p) for p in pending)
        for i, p in enumerate(self.params):
            k = self.space.key(p)
            if done[k] > 0:
                done[k] -= 1
                self._skipped.add(i)
            elif rerun[k] > 0:
                rerun[k] -= 1
                self._skipped.add(i)
                self._outstanding.setdefault(k, deque()).append(i)

    def done(self) -> bool:
        return self._next >= len(self.params)

    def log(self) -> dict | None:
        if not self._tags:
            return None
        rec = {"upf": self._tags}
        self._tags = []
        return rec
