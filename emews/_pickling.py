"""Shipping user code (objectives, optimizers) to spawned processes.

Objects importable by reference (``module:function``) are pickled by reference. Objects
defined in ``__main__`` (a script, a notebook) or closures are pickled by value with
cloudpickle, so ``emews.search(lambda p: ..., workers=4)`` works with spawn-style process
starts, which MPI and macOS require.
"""

from __future__ import annotations

import pickle
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
