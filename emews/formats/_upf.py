"""Unrolled parameter files (UPF): the parameter sets of CANDLE Supervisor's ``upf`` workflow.

A UPF file holds one JSON object per line, each a parameter set to evaluate as given, e.g.
Supervisor's ``workflows/upf/test/upf-1.txt``::

    {"id": "RUN000", "epochs": 1}
    {"id": "RUN001", "epochs": 2}

Blank lines are skipped. ``id`` (optional) names the run: it is not a parameter (the
objective does not get it); the ``upf`` optimizer journals it beside the task id.

:func:`upf_space` derives a space from the file when the config gives none: each key is a
``constant`` when every line sets it to the same value, else a ``categorical`` of the values
seen (in order of appearance), with ``null`` (``None``) among them when some line does not
set the key -- such a line reaches the objective with that key set to ``None``.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import ConfigError, SpaceError
from ..space import Categorical, Constant, Space

__all__ = ["UPFLine", "check_upf", "read_upf", "upf_from_config", "upf_space"]


@dataclass(frozen=True)
class UPFLine:
    """One parameter set of a UPF file: its line number, its ``id`` (or None) and its params."""

    line: int
    id: str | None
    params: dict


def read_upf(path: str | Path) -> list[UPFLine]:
    """The parameter sets of a UPF file, in order.

    Raises:
        SpaceError: the file cannot be read, a line is not a JSON object, or the file is empty
            (naming the file and line).
    """
    p = Path(path)
    src = str(p)
    try:
        text = p.read_text()
    except OSError as e:
        raise SpaceError(f"cannot read the UPF file: {e.strerror}", src) from None
    out = []
    for n, raw in enumerate(text.splitlines(), 1):
        if not raw.strip():
            continue
        try:
            obj = json.loads(raw)
        except json.JSONDecodeError as e:
            raise SpaceError(f"not a JSON object (column {e.colno}: {e.msg}): {raw.strip()[:80]!r}", src,
                             f"line {n}") from None
        if not isinstance(obj, dict):
            raise SpaceError(f"must be a JSON object {{\"key\": value, ...}}, got {raw.strip()[:80]!r}", src, f"line {n}")
        rid = obj.pop("id", None)
        out.append(UPFLine(n, None if rid is None else str(rid), obj))
    if not out:
        raise SpaceError("holds no parameter sets (one JSON object per line)", src)
    return out


def upf_space(lines: Sequence[UPFLine], source: str = "<upf>") -> Space:
    """The space of a UPF file's keys (see the module docstring)."""
    keys: list[str] = []
    for ln in lines:
        keys.extend(k for k in ln.params if k not in keys)
    if not keys:
        raise SpaceError("no line sets a parameter (only ids)", source)
    dims = []
    for k in keys:
        seen: dict[str, Any] = {}
        for ln in lines:
            v = ln.params.get(k)
            seen.setdefault(json.dumps(v, sort_keys=True), v)
        values = list(seen.values())
        dims.append(Constant(k, values[0]) if len(values) == 1 else Categorical(k, values))
    return Space(dims)


def check_upf(lines: Sequence[UPFLine], space: Space, source: str = "<upf>") -> list[dict]:
    """Each line's parameter set validated against ``space`` (keys it does not set: ``None``
    when the space allows it). Raises SpaceError naming the file, line, key and value."""
    out = []
    for ln in lines:
        params = {d.name: ln.params.get(d.name) for d in space.dims if d.name in ln.params or _allows_none(d)}
        params.update(ln.params)
        try:
            out.append(space.validate(params))
        except SpaceError as e:
            raise SpaceError(f"{e.key}: {_msg(e)}" if e.key else _msg(e), source, f"line {ln.line}") from None
    return out


def _allows_none(d: Any) -> bool:
    try:
        d.validate(None)
    except (SpaceError, TypeError, ValueError):
        return False
    return True


def _msg(e: SpaceError) -> str:
    s = str(e)
    return s[len(e.key) + 2:] if e.key and s.startswith(f"{e.key}: ") else s


def upf_from_config(opt_raw: Any, source: str, base_dir: Path | None) -> tuple[str, list[UPFLine]] | None:
    """The ``upf`` optimizer's file (resolved like ``space_file``) and its lines; None for
    another optimizer. Raises ConfigError when the setting is missing or the file is absent."""
    if opt_raw == "upf":
        raise ConfigError("the upf optimizer needs its file: optimizer: {name: upf, settings: {file: runs.txt}}",
                          source, "optimizer")
    if not isinstance(opt_raw, dict) or opt_raw.get("name") != "upf":
        return None
    settings = opt_raw.get("settings") or {}
    value = settings.get("file") if isinstance(settings, dict) else None
    if not isinstance(value, str) or not value:
        raise ConfigError(f"must be the path of a UPF file (one JSON object a line), got {value!r}", source,
                          "optimizer.settings.file")
    p = Path(value)
    if not p.is_absolute() and base_dir is not None:
        p = base_dir / p
    if not p.is_file():
        raise ConfigError(f"no such file {value!r} (looked at {str(p)!r})", source, "optimizer.settings.file")
    return str(p), read_upf(p)
