"""Progress of a running search: a live status line in a terminal, log lines elsewhere.

In a terminal (``live``) one line on stderr is redrawn about twice a second::

    emews: 37/100 done (2 failed) · best 0.1234 · 4/4 busy · 1m23s elapsed · ETA 2m10s

Elsewhere (a batch job's log file) the same text is logged at INFO every ``every`` seconds.
Other log records clear the live line first (see :class:`LiveAwareHandler`), so the two
never garble each other.
"""

from __future__ import annotations

import logging
import sys
import time
from typing import TextIO

__all__ = ["Progress", "LiveAwareHandler", "format_duration"]

log = logging.getLogger("emews")

_live_line: list[TextIO] = []  # the stream holding a live line right now (at most one)


def format_duration(seconds: float) -> str:
    """``42s``, ``3m05s``, ``2h07m``."""
    s = int(round(max(0.0, seconds)))
    if s < 60:
        return f"{s}s"
    if s < 3600:
        return f"{s // 60}m{s % 60:02d}s"
    return f"{s // 3600}h{(s % 3600) // 60:02d}m"


def _clear_live() -> None:
    if _live_line:
        stream = _live_line[0]
        stream.write("\r\x1b[K")
        stream.flush()


class LiveAwareHandler(logging.StreamHandler):
    """A stream handler that clears the live progress line before writing a record."""

    def emit(self, record: logging.LogRecord) -> None:
        _clear_live()
        super().emit(record)


class Progress:
    """Reports the state of a search.

    Args:
        every: seconds between reports (None or 0: no reports).
        total: the evaluation budget.
        workers: the pool's size (the driver updates it each round: an elastic pool's changes).
        live: redraw one line in place (a terminal) instead of logging lines.
        stream: where the live line goes (default stderr).
    """

    def __init__(self, every: float | None, total: int, workers: int, live: bool = False,
                 stream: TextIO | None = None):
        self.every = every or 0.0
        self.total = total
        self.workers = workers
        self.live = bool(live) and self.every > 0
        self.stream = stream or sys.stderr
        self.t0 = time.monotonic()
        self._last = self.t0
        self._start_done = 0
        self._shown = False

    def start(self, done_before: int) -> None:
        """The clock for the ETA starts now; ``done_before`` evaluations came from earlier sessions."""
        self.t0 = self._last = time.monotonic()
        self._start_done = done_before

    def text(self, done: int, failed: int, best: float | None, busy: int, now: float | None = None) -> str:
        now = time.monotonic() if now is None else now
        elapsed = now - self.t0
        parts = [f"{done}/{self.total} done" + (f" ({failed} failed)" if failed else ""),
                 f"best {best:.6g}" if best is not None else "best -",
                 f"{busy}/{self.workers} busy" if self.workers else "no worker: waiting for one to join",
                 f"{format_duration(elapsed)} elapsed"]
        new = done - self._start_done
        if 0 < new and done < self.total:
            parts.append("ETA " + format_duration(elapsed / new * (self.total - done)))
        return "emews: " + " · ".join(parts)

    def update(self, done: int, failed: int, best: float | None, busy: int) -> None:
        """Report if it is time to (cheap to call on every loop turn)."""
        if not self.every:
            return
        now = time.monotonic()
        if now - self._last < (0.5 if self.live else self.every):
            return
        self._last = now
        line = self.text(done, failed, best, busy, now)
        if self.live:
            self.stream.write("\r\x1b[K" + line)
            self.stream.flush()
            if not _live_line:
                _live_line.append(self.stream)
            self._shown = True
        elif log.hasHandlers():
            log.info("%s", line[len("emews: "):])
        else:  # a notebook or script that configured no logging: still show it
            print(line, file=self.stream, flush=True)

    def close(self, done: int, failed: int, best: float | None, busy: int) -> None:
        """Leave the final state on its own line (live mode) and stop drawing."""
        if self.live and self._shown:
            self.stream.write("\r\x1b[K" + self.text(done, failed, best, busy) + "\n")
            self.stream.flush()
        _live_line.clear()
        self._shown = False
