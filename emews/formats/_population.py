"""Parameter sets from a CSV file with one column per dimension (a GA's initial population,
a ``results.csv`` of an earlier search), read at the edge::

    lr,batch,act            ->  read_population_csv(path, space)
    0.001,64,relu               -> [{"lr": 0.001, "batch": 64, "act": "relu"}, ...]  (validated)
"""

from __future__ import annotations

import csv
from pathlib import Path

from ..errors import ConfigError, SpaceError
from ..space import Space
from ._cells import parse_cell

__all__ = ["read_population_csv"]

def read_population_csv(path: str | Path, space: Space) -> list[dict]:
    """Parameter sets from a CSV file with one column per dimension name.

    Columns of constants may be left out; columns that are not dimensions (``loss``,
    ``task_id``... of a ``results.csv``) are ignored.

    Raises:
        ConfigError: the file cannot be read, a dimension's column is missing, or a cell
            is not a value of its dimension (the message names file, row and column).
    """
    if isinstance(path, bool) or not isinstance(path, (str, Path)) or not str(path):
        raise ConfigError(f"must be the path of a CSV file, got {path!r}", None, "optimizer.settings.initial_population")
    src = str(path)
    try:
        with open(path, newline="") as f:
            reader = csv.DictReader(f)
            columns = reader.fieldnames or []
            rows = list(reader)
    except OSError as e:
        raise ConfigError(f"cannot read the initial population: {e.strerror or e}", src,
                          "optimizer.settings.initial_population") from None
    missing = [d.name for d in space.searchable if d.name not in columns]
    if missing:
        raise ConfigError(f"missing column {missing[0]!r} (columns needed: {[d.name for d in space.searchable]}, "
                          f"found: {columns})", src)
    if not rows:
        raise ConfigError("has a header but no rows", src)
    out = []
    for i, row in enumerate(rows, start=2):  # row 1 is the header
        params = {}
        for d in space.dims:
            cell = row.get(d.name)
            if cell is None:  # a constant without a column
                params[d.name] = d.value  # type: ignore[attr-defined]
                continue
            try:
                params[d.name] = parse_cell(d, cell)
            except ValueError as e:
                raise ConfigError(str(e), src, f"row {i}, column {d.name!r}") from None
        try:
            out.append(space.validate(params))
        except SpaceError as e:
            raise ConfigError(str(e).split(": ", 1)[-1], src, f"row {i}, column {e.key!r}") from None
    return out


# -- operators -------------------------------------------------------------------------------------
