"""Import an object named ``package.module:attr`` (objectives, optimizers, plug-ins)."""

from __future__ import annotations

import importlib
from typing import Any

__all__ = ["import_object"]


def import_object(path: str, what: str = "object") -> Any:
    """Import ``package.module:attr`` (``attr`` may be dotted).

    Raises:
        ValueError: ``path`` is not written ``module:name``.
        ImportError: the module or the attribute cannot be found (the message names both).
    """
    if not isinstance(path, str) or ":" not in path:
        raise ValueError(f"{what} must be written 'package.module:name' (with a colon), got {path!r}")
    mod_name, _, attr = path.partition(":")
    if not mod_name or not attr:
        raise ValueError(f"{what} must be written 'package.module:name' (with a colon), got {path!r}")
    try:
        obj: Any = importlib.import_module(mod_name)
    except ImportError as e:
        raise ImportError(f"cannot import module {mod_name!r} for {what} {path!r}: {e}") from e
    for part in attr.split("."):
        try:
            obj = getattr(obj, part)
        except AttributeError:
            raise ImportError(f"module {mod_name!r} has no attribute {attr!r} (for {what} {path!r})") from None
    return obj
