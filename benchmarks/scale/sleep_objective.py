"""The objective of ``benchmarks/scale/mpi_ranks.py``: sleep, and report this rank's memory.

Kept tiny on purpose: what a worker rank costs in memory is emews + mpi4py + this module,
which is what the benchmark measures (``rss_kb``: VmRSS when the task starts; ``maxrss_kb``:
the peak so far, ``getrusage``).
"""

from __future__ import annotations

import os
import resource
import time


def _vmrss_kb() -> int:
    """This process's resident set (kB) from ``/proc/self/status``; -1 where there is none."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return -1


def sleep_task(params: dict) -> dict:
    """Sleeps ``low + u * (high - low)`` seconds (``low == high``: a fixed duration)."""
    rss = _vmrss_kb()
    seconds = params["low"] + params["u"] * (params["high"] - params["low"])
    time.sleep(seconds)
    return {"loss": seconds, "seconds": seconds, "rss_kb": rss, "pid": os.getpid(),
            "maxrss_kb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss}
