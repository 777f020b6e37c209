"""Shipping user code (objectives, optimizers) to spawned processes.

Objects importable by reference (``module:function``) are pickled by reference. Objects
defined in ``__main__`` (a script, a notebook) or closures are pickled by value with
cloudpickle, so ``emews.search(lambda p: ..., workers=4)`` works with spawn-style process
starts, which MPI and macOS require.
"""

from __future__ import annotations

import pickle
import sys
from typing import Any


def _by_value_needed(obj: Any) -> bool:
    mod = getattr(obj, "__module__", None)
    qual = getattr(obj, "__qualname__", "")
    return mod in (None, "__main__", "__mp_main__") or "<locals>" in qual or "<lambda>" in qual


def dumps(obj: Any) -> bytes:
    """Pickle ``obj``; by value (cloudpickle) when it lives in ``__main__`` or is a closure."""
    if not _by_value_needed(obj):
        try:
            return pickle.dumps(obj)
        except (pickle.PicklingError, AttributeError, TypeError):
            pass
    import cloudpickle

    return cloudpickle.dumps(obj)


def loads(blob: bytes) -> Any:
    return pickle.loads(blob)


def code_identity(fn: Any) -> dict | None:
    """What an objective shipped by value computes, to tell an edited one on a resume.

    ``{"code": digest, "closure": {name: value}, "python": "3.11"}``: a digest of the function's bytecode,
    constants (nested functions included), names and defaults, but not of its file name or
    line numbers (a notebook cell run again, or moved, is the same function); and each
    closure variable's value, as ``repr`` for a short plain value, else a digest of its
    pickle (a value that does not pickle is left out). ``None`` for an object that is not a
    Python function (a callable instance, a builtin).

    Example:
        >>> code_identity(lambda p: p["x"]) == code_identity(lambda p: p["x"])
        True
        >>> code_identity(lambda p: p["x"]) == code_identity(lambda p: -p["x"])
        False
    """
    import hashlib

    code = getattr(fn, "__code__", None)
    if code is None:
        return None
    h = hashlib.sha256()
    _hash_code(code, h)
    for d in (getattr(fn, "__defaults__", None) or (), *sorted((getattr(fn, "__kwdefaults__", None) or {}).items())):
        h.update(_value_text(d).encode())
    closure = {}
    for name, cell in zip(code.co_freevars, getattr(fn, "__closure__", None) or ()):
        try:
            value = cell.cell_contents
        except ValueError:  # an empty cell
            continue
        text = _value_text(value)
        if text:
            closure[name] = text
    python = "%d.%d" % sys.version_info[:2]  # bytecode differs between Python versions
    return {"code": h.hexdigest()[:16], "closure": closure, "python": python}


def _hash_code(code: Any, h: Any) -> None:
    h.update(code.co_code)
    h.update(repr((code.co_names, code.co_varnames, code.co_freevars, code.co_argcount, code.co_kwonlyargcount)).encode())
    for c in code.co_consts:
        if hasattr(c, "co_code"):
            _hash_code(c, h)
        else:
            h.update(_const_text(c).encode())


def _const_text(c: Any) -> str:
    """A constant's repr, the same in every process (a frozenset's order follows string
    hashing, which differs between processes)."""
    if isinstance(c, frozenset):
        return "frozenset(" + repr(sorted(_const_text(x) for x in c)) + ")"
    if isinstance(c, tuple):
        return "(" + ", ".join(_const_text(x) for x in c) + ")"
    return repr(c)


def _value_text(value: Any) -> str:
    """A short, stable text of a value: its repr when plain and short, else a digest of its
    pickle (of its code, for a function); '' when it does not pickle."""
    import hashlib

    if value is None or isinstance(value, (bool, int, float, complex, str, bytes)):
        text = repr(value)
        if len(text) <= 80:
            return text
    ident = code_identity(value) if callable(value) and hasattr(value, "__code__") else None
    if ident is not None:
        return "function " + json_text(ident)
    try:
        blob = dumps(value)
    except Exception:  # noqa: BLE001 - a value that does not pickle is left out
        return ""
    return f"{type(value).__name__} (pickle sha256 {hashlib.sha256(blob).hexdigest()[:12]})"


def json_text(v: Any) -> str:
    import json

    return json.dumps(v, sort_keys=True, default=str)
