"""The clock the driver reads: wall time for real pools, simulated time for the simulated pool.

The driver reads every time it needs (journal timestamps, ``max_time``, deadlines, progress)
from one clock object that the pool hands it (``pool.clock``; the wall clock when the pool
has none).

:class:`SimClock` runs with real time and jumps ahead only when nothing but a simulated
task's completion can happen next::

    simulated = start + (real seconds since start) + (sum of the jumps)

So everything real the driver, the journal, the queues and the optimizer process spend
between two completions is charged to simulated time, exactly as on a real machine; only the
dead time during which every party is waiting for a task to finish is skipped. Whether a
jump is allowed is decided by the driver (:attr:`SimClock.may_jump`), which knows whether an
idle worker has queued work and whether the optimizer has said it is blocked waiting for
results.
"""

from __future__ import annotations

import time

__all__ = ["WallClock", "SimClock", "WALL"]


class WallClock:
    """Real time: ``time()`` is epoch seconds, ``monotonic()`` never goes back."""

    simulated = False

    def time(self) -> float:
        return time.time()

    def monotonic(self) -> float:
        return time.monotonic()


WALL = WallClock()


class SimClock:
    """Simulated time that real time also moves (see the module docstring).

    Args:
        start: the epoch time it starts at (default: now).
        real_time: False for a clock that moves only by its jumps: no real cost is charged,
            so a seeded run repeats exactly whatever the machine's speed (the optimizer
            contract suite's runs). The driver then jumps only while the optimizer waits for
            results: a jump while it computes would let the machine's speed decide which
            results it has seen when it next proposes.

    Attributes:
        may_jump: set by the driver before each wait: True when nothing but the next task
            completion can make progress, so the clock may skip to it.
        jump_limit: set by the driver: a jump never goes past this time (the next time limit).
        skipped: total simulated seconds skipped by jumps.
    """

    simulated = True

    def __init__(self, start: float | None = None, *, real_time: bool = True):
        self.real_time = real_time
        self._real0 = time.monotonic()
        self._epoch0 = time.time() if start is None else float(start)
        self.skipped = 0.0
        self.may_jump = False
        self.jump_limit: float | None = None

    def begin(self, not_before: float | None = None) -> None:
        """Restart the clock now at epoch time ``max(time.time(), not_before)`` (a resumed
        simulation starts after the simulated times its journal already holds)."""
        self._real0 = time.monotonic()
        self._epoch0 = max(time.time(), not_before or 0.0)
        self.skipped = 0.0

    def monotonic(self) -> float:
        """Simulated seconds since the clock began, plus the start (monotonic)."""
        real = time.monotonic() - self._real0 if self.real_time else 0.0
        return self._epoch0 + real + self.skipped

    def time(self) -> float:
        """Simulated epoch seconds (what the journal records)."""
        return self.monotonic()

    def advance_to(self, t: float) -> None:
        """Jump ahead to simulated time ``t`` (no-op when ``t`` is not in the future)."""
        ahead = t - self.monotonic()
        if ahead > 0:
            self.skipped += ahead
