"""CANDLE Supervisor's GA parameter-space files (``workflows/GA/data/*_param_space_ga.json``)
into a :class:`~emews.space.Space`, at the edge (config loading)::

    [{"name": "lr", "type": "float", "lower": 1e-4, "upper": 1e-1, "sigma": 0.01}, ...]
        -> read_supervisor_json(path) / supervisor_space(items) -> Space([Real("lr", ...), ...])
"""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from ..errors import SpaceError
from ..space import Bool, Categorical, Constant, Int, Ordinal, Real, Space, _strip_key

__all__ = ["read_supervisor_json", "supervisor_space"]


def _logical(v: Any) -> bool:
    """A Supervisor ``element_type: logical`` value: a JSON boolean or "true"/"false"."""
    if isinstance(v, bool):
        return v
    if isinstance(v, str) and v.strip().lower() in ("true", "false"):
        return v.strip().lower() == "true"
    raise ValueError(f"not a logical value: {v!r}")


def _supervisor_numbers(it: Mapping[str, Any], kind: Any, source: str, key: str) -> Mapping[str, Any]:
    """Numeric strings where Supervisor's ``ga_utils.create_parameters`` converts them.

    It reads ``lower``/``upper``/``sigma`` of an ``int`` parameter through ``int()`` and of a
    ``float`` parameter through ``float()``, so ``"0.000495"`` is a valid float sigma and
    ``"20"`` a valid int bound; everything else (ordered sigmas, values) it takes as written.
    """
    if kind not in ("int", "float"):
        return it
    out = dict(it)
    for k in ("lower", "upper", "sigma"):
        v = out.get(k)
        if not isinstance(v, str):
            continue
        try:
            num: float = int(v.strip()) if kind == "int" else float(v.strip())
        except ValueError:
            raise SpaceError(f"{v!r} is not {'an integer' if kind == 'int' else 'a number'}", source,
                             f"{key}.{k}") from None
        if not math.isfinite(num):
            raise SpaceError(f"{v!r} is not a finite number", source, f"{key}.{k}")
        out[k] = num
    return out


def read_supervisor_json(path: str | Path) -> Space:
    """Read a CANDLE Supervisor GA parameter-space file.

    The file is a JSON list of ``{"name", "type", ...}`` with ``type`` one of ``int``,
    ``float``, ``categorical``, ``ordered``, ``logical``, ``constant`` and the keys
    ``lower``, ``upper``, ``sigma`` (numeric), ``values`` and ``element_type``
    (``int``, ``float``, ``string`` or ``logical``; categorical/ordered), ``value``
    (constant), as in Supervisor's ``workflows/GA/data/*_param_space_ga.json`` files.
    ``log`` (also spelled ``log_scale`` or ``use_log_scale``) makes a numeric dimension
    log-uniform. Sigmas are kept for the GA. As Supervisor's ``ga_utils`` does, other
    keys (``comment``, ``debug_value``, ...) are ignored (listed once at INFO on the
    ``emews`` logger) and ``lower``/``upper``/``sigma`` of int and float parameters may be
    numeric strings (``"0.000495"``).
    """
    path = Path(path)
    src = str(path)
    try:
        text = path.read_text()
    except OSError as e:
        raise SpaceError(f"cannot read the parameter file: {e.strerror}", src) from None
    try:
        items = json.loads(text)
    except json.JSONDecodeError as e:
        raise SpaceError(f"invalid JSON at line {e.lineno}, column {e.colno}: {e.msg}", src) from None
    return supervisor_space(items, src)


def supervisor_space(items: Any, source: str = "<supervisor>") -> Space:
    """The :class:`~emews.space.Space` of a Supervisor GA parameter list (the JSON file's content)."""
    if not isinstance(items, list) or not items:
        raise SpaceError("must be a non-empty JSON list of parameter objects", source)
    dims = []
    known = {"name", "type", "lower", "upper", "sigma", "values", "element_type", "value", "log", "log_scale",
             "use_log_scale"}
    ignored: dict[str, list[str]] = {}
    for i, it in enumerate(items):
        key = f"[{i}]"
        if not isinstance(it, Mapping) or "name" not in it or "type" not in it:
            raise SpaceError(f"each entry needs 'name' and 'type', got {it!r}", source, key)
        name, kind = it["name"], it["type"]
        key = f"[{i}] ({name})"
        for u in sorted(set(it) - known):  # Supervisor ignores extra keys ("comment", ...)
            ignored.setdefault(u, []).append(str(name))
        it = _supervisor_numbers(it, kind, source, key)
        etype = it.get("element_type")
        values = it.get("values")
        if values is not None and etype is not None:
            conv = {"int": int, "float": float, "string": str, "str": str, "logical": _logical}.get(etype)
            if conv is None:
                raise SpaceError(
                    f"unknown element_type {etype!r}; expected int, float, string or logical", source,
                    f"{key}.element_type"
                )
            try:
                values = [conv(v) for v in values]
            except (TypeError, ValueError):
                raise SpaceError(f"values {values!r} are not all {etype}", source, f"{key}.values") from None
        log = bool(it.get("log", it.get("log_scale", it.get("use_log_scale", False))))
        try:
            if kind in ("int", "float"):
                for k in ("lower", "upper"):
                    if k not in it:
                        raise SpaceError(f"missing required key {k!r} for type {kind!r}", source, key)
                c = Int if kind == "int" else Real
                dims.append(c(name, it["lower"], it["upper"], log=log, sigma=it.get("sigma")))
            elif kind == "categorical":
                dims.append(Categorical(name, values if values is not None else []))
            elif kind == "ordered":
                dims.append(Ordinal(name, values if values is not None else [], sigma=it.get("sigma")))
            elif kind == "logical":
                dims.append(Bool(name))
            elif kind == "constant":
                if "value" not in it:
                    raise SpaceError("missing required key 'value' for type 'constant'", source, key)
                dims.append(Constant(name, it["value"]))
            else:
                raise SpaceError(
                    f"unknown type {kind!r}; expected int, float, categorical, ordered, logical or constant",
                    source,
                    f"{key}.type",
                )
        except SpaceError as e:
            if e.source:
                raise
            sub = e.key.split(".", 1)[1] if e.key and "." in e.key else None  # e.g. "sigma"
            raise SpaceError(_strip_key(str(e), e.key), source, f"{key}.{sub}" if sub else key) from None
    if ignored:
        logging.getLogger("emews").info(
            "%s: ignoring keys emews does not use (as Supervisor does): %s", source,
            "; ".join(f"{k!r} (in {', '.join(v)})" for k, v in sorted(ignored.items())))
    return Space(dims)
