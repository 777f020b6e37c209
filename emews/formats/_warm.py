"""Earlier evaluations read at the edge into results an optimizer is given before it proposes.

::

    warm_start: PATH ──▶ read_warm_start(path, space) ──▶ WarmStart(results=[Result ...], skipped=n)
      an emews experiment directory     (its results.csv: rows with status done, loss column)
      an emews results.csv              (the same)
      an mlrMBO restart.file CSV        (``y,param...``, e.g. Supervisor's workflows/mlrMBO/test/restart-combo.csv)

The loss is the first column named ``y`` (any case; an emews file: ``loss``), so a space may
have a dimension named ``y`` too (a later column). Each row becomes a
:class:`~emews.task.Result` with status ``done``, a negative task id (``-1, -2, ...``: never a
task of this experiment) and its loss; a row whose values do not fit the
space, or that has a value in a column the space does not name, is skipped and counted.
"""

from __future__ import annotations

import csv
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import ConfigError, SpaceError
from ..space import Dimension, Space
from ..task import DONE, Result
from ._cells import parse_cell

__all__ = ["WarmStart", "read_warm_start"]

#: emews results.csv's own columns (not parameters)
_EMEWS_COLUMNS = {"task_id", "attempt", "status", "loss", "worker", "host", "gpu", "start", "end", "runtime", "error"}


@dataclass(frozen=True)
class WarmStart:
    """Earlier results for an optimizer to start from.

    Attributes:
        path: the file read.
        results: one ``done`` :class:`~emews.task.Result` per usable row (task ids ``-1, -2, ...``).
        skipped: rows left out (outside the space, unknown names, no finite loss).
        reasons: the first few skip reasons (for the warning).
    """

    path: str
    results: tuple[Result, ...] = ()
    skipped: int = 0
    reasons: tuple[str, ...] = field(default_factory=tuple)

    def record(self) -> dict:
        """The journal's record of this warm start (``optimizer_log``)."""
        return {"warm_start": self.path, "results": len(self.results), "skipped": self.skipped,
                "points": [{"params": r.params, "loss": r.loss} for r in self.results]}


def _cell(d: Dimension, text: str) -> Any:
    """The cell as a value of ``d``, else its text (the row is then skipped as outside the space)."""
    try:
        return parse_cell(d, text)
    except ValueError:
        return text.strip()


def read_warm_start(path: str | Path, space: Space, source: str = "<dict>", key: str = "warm_start") -> WarmStart:
    """Read earlier evaluations for ``space`` (see the module docstring for the formats).

    Raises:
        ConfigError: no such file or directory, an unreadable file, or no ``y``/``loss`` column,
            naming the file.
    """
    p = Path(path)
    if p.is_dir():
        p = p / "results.csv"
        if not p.is_file():
            raise ConfigError(f"{str(path)!r} is a directory without results.csv (not an emews experiment)",
                              source, key)
    elif not p.is_file():
        raise ConfigError(f"no such file or directory {str(path)!r}", source, key)
    try:
        with open(p, newline="", encoding="utf-8") as f:
            rows = list(csv.reader(f))
    except (OSError, UnicodeDecodeError, csv.Error) as e:
        raise ConfigError(f"cannot read {str(p)!r}: {e}", source, key) from None
    if not rows:
        raise ConfigError(f"{str(p)!r} is empty: expected a header with a y (or loss) column", source, key)
    header = [h.strip() for h in rows[0]]
    emews = "loss" in header and "status" in header
    lower = [h.lower() for h in header]
    y_col = header.index("loss") if emews else (lower.index("y") if "y" in lower else None)
    if y_col is None:
        raise ConfigError(f"{str(p)!r} has no y column (an mlrMBO restart file is y,param...; an emews results.csv "
                          f"has loss); its columns: {header}", source, key)
    ignore = _EMEWS_COLUMNS if emews else set()
    status_col = header.index("status") if emews else None
    results: list[Result] = []
    skipped, reasons = 0, []
    for n, row in enumerate(rows[1:], 2):
        if not any(c.strip() for c in row):
            continue
        if status_col is not None and (len(row) <= status_col or row[status_col] != DONE):
            continue  # failed, cancelled or an earlier attempt: not an evaluation to learn from
        why = None
        params: dict[str, Any] = {}
        try:
            y = float(row[y_col])
            if not math.isfinite(y):
                why = f"loss {row[y_col]!r} is not finite"
        except (ValueError, IndexError):
            why = f"loss {row[y_col] if y_col < len(row) else ''!r} is not a number"
        for i, (h, cell) in enumerate(zip(header, row)):
            if why or i == y_col or h in ignore:
                continue
            if h not in space:
                if cell.strip():
                    why = f"column {h!r} is not a dimension of the space"
                continue
            params[h] = _cell(space[h], cell)
        if why is None:
            try:
                params = space.validate(params)
            except SpaceError as e:
                why = str(e)
        if why is not None:
            skipped += 1
            if len(reasons) < 3:
                reasons.append(f"line {n}: {why}")
            continue
        results.append(Result(task_id=-(len(results) + 1), params=params, status=DONE, loss=y))
    return WarmStart(str(p), tuple(results), skipped, tuple(reasons))
