"""The driver's end of the optimizer pipe: the other half of :mod:`emews.queues._protocol`.

::

    optimizer process ──PUT/LOG/STOP_TASK──▶ DriverEnd.read() ──▶ the driver's handlers
                      ──WAIT/DONE/ERROR────▶   (kept here: waiting, done, error)
                      ◀──RESULTS───────────── DriverEnd.tell(): held back while the optimizer
                      ◀──STOP────────────────   has proposals queued, then sent in one message

:meth:`DriverEnd.read` is the one reader of the pipe: the driver's loop calls it after every
wait (``timeout=0``: what has come), and the end of a session calls it with a timeout to let
the optimizer take in its last results and send its last log records (``closing``). Sends
never block: they go through the optimizer host's sender thread (``link.send``).
"""

from __future__ import annotations

import select
import time
from collections.abc import Callable, Mapping
from typing import Any, Protocol

from ..task import Result
from . import _protocol as wire

__all__ = ["DriverEnd", "OptimizerLink", "TELL_WAIT"]

#: the longest finished results are held back from an optimizer that still has proposals
#: queued (see :meth:`DriverEnd.tell`)
TELL_WAIT = 0.05


class OptimizerLink(Protocol):
    """What the driver's end needs of the optimizer host (:class:`~emews.optimizers._host.OptimizerProcess`)."""

    conn: Any  # the driver's end of the duplex pipe (read here)

    def send(self, msg: Any) -> None: ...  # queue a message for the optimizer; returns at once

    @property
    def exitcode(self) -> int | None: ...  # the optimizer process's exit code (None: running)


class DriverEnd:
    """The driver's side of the optimizer protocol.

    Args:
        link: the optimizer host (its pipe, a non-blocking send, its exit code).
        clock: the driver's clock (``monotonic()``, ``simulated``).
        handlers: the driver's handlers of ``PUT`` (returns the refused tasks' cancelled
            results, sent back at once), ``LOG`` and ``STOP_TASK``.
        on_failure: called with the error text when the optimizer fails: ``reported`` is True
            for an ``ERROR`` message, False when its process ended without a word.

    Attributes:
        done: the optimizer said it finished (or was stopped).
        error: why the optimizer failed (None: it did not).
        waiting: the optimizer said it is blocked waiting for results (a simulated clock's hint).
    """

    def __init__(self, link: OptimizerLink, clock: Any, handlers: Mapping[str, Callable[[Any], Any]],
                 on_failure: Callable[[str, bool], None]):
        self._link = link
        self._clock = clock
        self._on_failure = on_failure
        on_put = handlers[wire.PUT]

        def put(items: list[tuple[int, dict]]) -> None:
            refused = on_put(items)
            if refused:
                self.send_results(refused)

        self._handlers = {**handlers, wire.PUT: put, wire.WAIT: self._on_wait, wire.DONE: self._on_done,
                          wire.ERROR: self._on_error}
        self.done = False
        self.error: str | None = None
        self.waiting = False
        self._untold: list[Result] = []  # finished results held back from the optimizer (tell)
        self._untold_since = 0.0  # when the oldest of them came (clock.monotonic)
        self._poller = select.poll()  # a readiness check in a microsecond (Connection.poll takes ~50)
        self._poller.register(link.conn.fileno(), select.POLLIN)

    # -- state -------------------------------------------------------------------------------
    @property
    def over(self) -> bool:
        """The optimizer finished or failed: nothing more comes from it."""
        return self.done or self.error is not None

    @property
    def connection(self) -> Any:
        """The pipe to wait on beside the pool's workers (None once the optimizer is over)."""
        return None if self.over else self._link.conn

    @property
    def untold(self) -> bool:
        """Finished results are held back from the optimizer."""
        return bool(self._untold)

    def tell_due(self) -> float | None:
        """When the held-back results must go (``clock.monotonic`` time), or None."""
        return self._untold_since + TELL_WAIT if self._untold else None

    def readable(self) -> bool:
        """The optimizer has sent something (or closed its end)."""
        return bool(self._poller.poll(0))

    # -- reading -----------------------------------------------------------------------------
    def read(self, timeout: float = 0.0, *, closing: bool = False) -> None:
        """Handle every message the optimizer sends within ``timeout`` seconds (0: those
        already there), until it is over.

        With ``closing`` (the session ends) a pipe closed by the optimizer is the end of the
        conversation; otherwise it means the optimizer process died: :attr:`error` is set.
        """
        end = time.monotonic() + timeout
        while not self.over:
            left = end - time.monotonic()
            try:
                ready = bool(self._poller.poll(int(min(max(left, 0.0), 0.5) * 1000)))
                if not ready:
                    if time.monotonic() >= end:
                        return
                    continue
                msg = self._link.conn.recv()
            except (EOFError, OSError):
                if not closing:
                    self.error = f"the optimizer process ended unexpectedly (exit code {self._link.exitcode})"
                    self._on_failure(self.error, False)
                return
            wire.dispatch(msg, self._handlers)

    def _on_wait(self, _: None) -> None:
        self.waiting = True

    def _on_done(self, _: None) -> None:
        self.done = True

    def _on_error(self, text: str) -> None:
        self.error = text
        self._on_failure(text, True)

    # -- sending -----------------------------------------------------------------------------
    def send_results(self, results: list[Result]) -> None:
        """Send final results now, after those held back (in the order they came)."""
        if self._untold:
            results, self._untold = self._untold + list(results), []
        self.waiting = False  # it has something to think about now
        self._link.send(wire.results(results))

    def tell(self, results: list[Result], ahead: int, stopping: bool) -> None:
        """Give finished results to the optimizer, or hold them back for a moment while it
        has enough proposals queued that the workers do not need it yet.

        Each message wakes the optimizer process, which then sends its next proposals and
        wakes the driver: two process switches and the optimizer's own work per message.
        On a busy machine, one message per result cost more than half the dispatch rate
        (``benchmarks/perf/dispatch_mpi.py`` under load). So results are held while the
        queued proposals outnumber, beyond one per worker (``ahead``), the results held; for
        at most ``TELL_WAIT`` seconds; never while the session stops nor on a simulated clock
        (whose jumps assume the optimizer has been told everything). An optimizer that
        proposes only for free workers (``lookahead = 0``, e.g. ``mbo``) has nothing queued
        here: its results go at once.

        Args:
            results: newly finished results (may be empty: only see whether held ones are due).
            ahead: proposals queued for the workers beyond one per worker.
            stopping: the session stops (nothing is held any more).
        """
        if results and not self._untold:
            self._untold_since = self._clock.monotonic()
        self._untold.extend(results)
        if not self._untold:
            return
        if self.over:
            self._untold.clear()
            return
        hold = (not self._clock.simulated and not stopping and len(self._untold) < ahead
                and self._clock.monotonic() - self._untold_since < TELL_WAIT)
        if not hold:
            self.send_results([])

    def capacity(self, n: int) -> None:
        """Tell the optimizer how many worker slots it may plan for (an elastic pool's workers
        joined or left)."""
        self._link.send(wire.capacity(n))

    def stop(self, reason: str, results: list[Result] | tuple = ()) -> None:
        """No new task will be accepted: send the last final results (and any held back),
        then ``STOP``."""
        if results or self._untold:
            self.send_results(list(results))
        self._link.send(wire.stop(reason))
