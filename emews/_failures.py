"""What a finished run's failures say: the most frequent error messages and the exit status.

* :func:`error_summary`: ``(count, message)`` of the commonest errors of the failed evaluations;
* :func:`failure_lines`: the same as console lines (the CLI's summary);
* :func:`exit_status`: 0, or :data:`NO_SUCCESS_EXIT` when evaluations finished and none succeeded.
"""

from __future__ import annotations

import collections
from collections.abc import Iterable, Mapping
from typing import Any

__all__ = ["error_summary", "failure_lines", "exit_status", "NO_SUCCESS_EXIT"]

#: exit status of ``python -m emews.run`` when evaluations finished but none succeeded
NO_SUCCESS_EXIT = 3


def _message(error: str | None) -> str:
    lines = (error or "").strip().splitlines()
    return lines[-1].strip() if lines else "(no error text)"


def error_summary(rows: Iterable[Mapping[str, Any]], top: int = 3) -> list[tuple[int, str]]:
    """``(count, message)`` of the most frequent error messages (the last line of each error
    text) of failed and timed-out evaluations, most frequent first."""
    counts = collections.Counter(_message(r.get("error")) for r in rows if r.get("status") in ("failed", "timeout"))
    return [(count, msg) for msg, count in counts.most_common(top or None)]


def failure_lines(rows: Iterable[Mapping[str, Any]], top: int = 3, width: int = 200) -> list[str]:
    """Console lines naming the most frequent error messages of the failed evaluations."""
    common = error_summary(rows, top=0)
    out = []
    for count, msg in common[:top]:
        msg = msg if len(msg) <= width else msg[: width - 3] + "..."
        out.append(f"emews:   {count} x {msg}")
    if len(common) > top:
        rest = sum(c for c, _ in common[top:])
        out.append(f"emews:   {rest} more with {len(common) - top} other message(s)")
    return (["emews: most frequent errors:"] + out) if out else []


def exit_status(results: Any) -> int:
    """0, or :data:`NO_SUCCESS_EXIT` when evaluations finished and none of them succeeded."""
    failures = results.count("failed") + results.count("timeout")
    return NO_SUCCESS_EXIT if failures and results.best is None else 0
