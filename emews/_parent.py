"""Tie a spawned child's life to its parent's (used by local workers and the optimizer process)."""

from __future__ import annotations

import os
import signal
import sys

__all__ = ["die_with_parent"]


def die_with_parent(sig: int = signal.SIGTERM) -> None:
    """Have the kernel send ``sig`` to this process when its parent dies (Linux
    ``PR_SET_PDEATHSIG``; elsewhere a no-op).

    Called first thing in spawned workers and the optimizer process: when the driver is
    SIGKILLed (OOM killer, ``kill -9``), they stop instead of running on beside the next
    job's resume. A worker's SIGTERM handler then stops its task's process group too.
    """
    if not sys.platform.startswith("linux"):
        return
    try:
        import ctypes
        import multiprocessing

        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, int(sig), 0, 0, 0)  # PR_SET_PDEATHSIG = 1
        parent = multiprocessing.parent_process()
        if parent is not None and os.getppid() != parent.pid:  # it died before we asked
            os.kill(os.getpid(), sig)
    except (OSError, AttributeError):  # pragma: no cover - no libc prctl: nothing to do
        pass
