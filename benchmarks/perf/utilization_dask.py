"""Worker utilization of the Dask pool on many worker processes, against an ideal scheduler.

    python benchmarks/perf/utilization_dask.py [--workers 64] [--tasks 640] [--mean 1.0]

A ``dask scheduler`` process and ``--workers`` ``dask worker`` processes (one thread each, no
nanny; started in waves of 8, so a small machine is not swamped by 64 Python start-ups at once)
run a search of ``--tasks``
tasks that sleep log-normal times (mean ``--mean`` s, sigma 0.5 in log space). From the
journal, with d_i the measured run time of task i (end - start)::

    measured makespan = last end - first start
    ideal makespan    = the same d_i, in task-id order, each to the worker free first, no
                        time between tasks (a scheduler with zero dispatch cost)
    ratio             = ideal makespan / measured makespan      (goal >= 0.95)

and the utilization ``sum(d_i) / (workers * makespan)`` of both; and Dask alone: ``client.map``
of the same durations on the same workers (every task queued at once), whose makespan shows
what Dask itself achieves on this machine (on a small loaded one, 64 worker processes'
own heartbeats and monitors compete with the scheduler and the driver for the CPU). More workers than cores is
fine (the tasks sleep); on a loaded machine the driver's share of the CPU shows in the ratio.
"""

from __future__ import annotations

import argparse
import heapq
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path[:0] = [str(ROOT), str(ROOT / "tests" / "workers")]

SPACE_U = {"type": "real", "low": 0.0, "high": 1.0}


def ideal_makespan(durations: list[float], workers: int) -> float:
    """List scheduling with no dispatch cost: each task, in order, to the worker that is free first."""
    free = [0.0] * workers
    for d in durations:
        heapq.heapreplace(free, free[0] + d)
    return max(free)


def sleep_span(seconds: float) -> tuple[float, float]:
    """Sleeps ``seconds``; its own start and end (for the client.map baseline)."""
    t0 = time.time()
    time.sleep(seconds)
    return t0, time.time()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--workers", type=int, default=64)
    ap.add_argument("--tasks", type=int, default=640)
    ap.add_argument("--mean", type=float, default=1.0)
    a = ap.parse_args()
    from dask_cluster import DaskProcesses

    import emews
    from emews.journal import read_journal

    t0 = time.monotonic()
    with tempfile.TemporaryDirectory() as d:
        c = DaskProcesses(Path(d))
        try:
            c.start_scheduler()
            for i in range(a.workers):
                c.start_worker(f"w{i}")
                if (i + 1) % 8 == 0 or i + 1 == a.workers:
                    c.wait_for_workers(i + 1, timeout=600)
            print(f"{a.workers} Dask workers up in {time.monotonic() - t0:.1f} s", flush=True)
            space = {"u": SPACE_U, "mean": {"type": "constant", "value": a.mean}}
            res = emews.search("benchmarks.perf.utilization_mpi:sleep_lognormal", space, max_evals=a.tasks,
                               workers=a.workers, output=Path(d, "runs"), report=False, seed=0, pool="dask",
                               dask={"scheduler_file": str(c.scheduler_file)})
            j = read_journal(res.directory)
            # Dask alone on the same workers and the same durations, in the same order
            evals = sorted((e for e in j["evals"] if e["status"] == "done"), key=lambda e: e["task_id"])
            from distributed import Client

            with Client(scheduler_file=str(c.scheduler_file), set_as_default=False) as client:
                spans = client.gather(client.map(sleep_span, [e["end"] - e["start"] for e in evals], pure=False))
        finally:
            c.close()
    assert len(evals) == a.tasks, f"{len(evals)} of {a.tasks} done"
    durations = [e["end"] - e["start"] for e in evals]
    measured = max(e["end"] for e in evals) - min(e["start"] for e in evals)
    ideal = ideal_makespan(durations, a.workers)
    busy = sum(durations)
    print(f"{a.tasks} sleeping tasks (mean {a.mean:g} s) on {a.workers} Dask workers:")
    print(f"  measured makespan {measured:7.2f} s   utilization {busy / (a.workers * measured):.3f}")
    print(f"  ideal    makespan {ideal:7.2f} s   utilization {busy / (a.workers * ideal):.3f}")
    dask_alone = max(b for _, b in spans) - min(a for a, _ in spans)
    print(f"  client.map makespan {dask_alone:5.2f} s   utilization {busy / (a.workers * dask_alone):.3f}  (Dask alone, "
          "every task queued at once)")
    print(f"ratio ideal / measured makespan: {ideal / measured:.3f}  (goal >= 0.95)")
    print(f"ratio client.map / measured makespan: {dask_alone / measured:.3f}  (Dask's own scheduling on this machine "
          f"reaches {ideal / dask_alone:.3f} of ideal)")


if __name__ == "__main__":
    main()
