"""Worker utilization of the Dask pool on many worker processes, against an ideal scheduler.

    python benchmarks/perf/utilization_dask.py [--workers 64] [--tasks 640] [--mean 1.0] [--dask-defaults]

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

Before the clock starts every worker imports emews' task function and the objective's module
(client.map's function, pickled by value, needs no import; 64 imports at once on 2 cores spread
the first tasks' starts over a second). The scheduler and workers start with Dask's statistical
profiler (a sample every 10 ms in each process) and GIL monitor off and slower system and memory
monitors (``--dask-defaults``: as Dask starts them): with the defaults, 64 workers alone keep 2
cores busy (load average 30-45) and starve the scheduler and the driver. Both baselines run on the same workers. Also printed: how the first tasks'
starts spread (the start-up wave) and the gaps between a worker's tasks (the dispatch cost).
"""

from __future__ import annotations

import argparse
import heapq
import importlib
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path[:0] = [str(ROOT), str(ROOT / "tests" / "workers")]

SPACE_U = {"type": "real", "low": 0.0, "high": 1.0}

#: Dask's background work in the scheduler and each worker process reduced (environment variables
#: read by Dask's config there), unless --dask-defaults
QUIET = {"DASK_DISTRIBUTED__WORKER__PROFILE__ENABLED": "False",
         "DASK_DISTRIBUTED__ADMIN__SYSTEM_MONITOR__GIL__ENABLED": "False",
         "DASK_DISTRIBUTED__ADMIN__SYSTEM_MONITOR__INTERVAL": "2s",
         "DASK_DISTRIBUTED__WORKER__MEMORY__MONITOR_INTERVAL": "1s"}


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
    ap.add_argument("--dask-defaults", action="store_true",
                    help="start the scheduler and workers with Dask's default config (a statistical profiler "
                         "sampling every 10 ms and a GIL monitor in each, 0.5 s system and 0.1 s memory monitors); "
                         "by default these are off or slower (QUIET), which 64 workers on a few cores need")
    ap.add_argument("--nworkers", type=int, default=1,
                    help="worker processes per `dask worker` command (its --nworkers: one nanny starts them)")
    ap.add_argument("--keep", type=Path, help="copy the search's journal directory here (for a closer look)")
    a = ap.parse_args()
    from dask_cluster import DaskProcesses

    import emews
    from emews.journal import read_journal

    t0 = time.monotonic()
    with tempfile.TemporaryDirectory() as d:
        c = DaskProcesses(Path(d))
        try:
            c.start_scheduler(env=None if a.dask_defaults else QUIET)
            env = None if a.dask_defaults else QUIET
            started = 0
            for i in range(0, a.workers, a.nworkers):
                n = min(a.nworkers, a.workers - i)
                if n == 1:
                    c.start_worker(f"w{i}", env=env)
                else:
                    c.start_worker(f"w{i}", "--nworkers", str(n), "--nanny", env=env)
                started += n
                if started % 8 == 0 or started == a.workers or n >= 8:
                    c.wait_for_workers(started, timeout=600)
            print(f"{a.workers} Dask workers up in {time.monotonic() - t0:.1f} s", flush=True)
            from distributed import Client

            with Client(scheduler_file=str(c.scheduler_file), set_as_default=False) as client:
                # every worker imports emews' task function and the objective before the clock starts,
                # as client.map's function (pickled by value) needs no import: the measured makespan
                # is dispatch, not 64 imports at once on a small machine
                for module in ("emews.workers.dask", "benchmarks.perf.utilization_mpi"):
                    client.run(importlib.import_module, module)
            space = {"u": SPACE_U, "mean": {"type": "constant", "value": a.mean}}
            res = emews.search("benchmarks.perf.utilization_mpi:sleep_lognormal", space, max_evals=a.tasks,
                               workers=a.workers, output=Path(d, "runs"), report=False, seed=0, pool="dask",
                               dask={"scheduler_file": str(c.scheduler_file)})
            j = read_journal(res.directory)
            if a.keep is not None:
                import shutil

                shutil.copytree(res.directory, a.keep, dirs_exist_ok=True)
            # Dask alone on the same workers and the same durations, in the same order
            evals = sorted((e for e in j["evals"] if e["status"] == "done"), key=lambda e: e["task_id"])

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
    t0 = min(e["start"] for e in evals)
    by_worker: dict = {}
    for e in evals:
        by_worker.setdefault(e["worker"], []).append(e)
    firsts = sorted(min(x["start"] for x in es) - t0 for es in by_worker.values())
    gaps = [b["start"] - x["end"] for es in by_worker.values()
            for x, b in zip(sorted(es, key=lambda e: e["start"]), sorted(es, key=lambda e: e["start"])[1:])]
    gaps.sort()
    print(f"  workers used {len(by_worker)}; first start of each worker after the first task's: median "
          f"{firsts[len(firsts) // 2]:.2f} s, last {firsts[-1]:.2f} s (the start-up wave)")
    if gaps:
        print(f"  gap between a worker's tasks: median {gaps[len(gaps) // 2] * 1000:.0f} ms, 90% "
              f"{gaps[int(len(gaps) * 0.9)] * 1000:.0f} ms, mean {sum(gaps) / len(gaps) * 1000:.0f} ms")
    print(f"ratio ideal / measured makespan: {ideal / measured:.3f}  (goal >= 0.95)")
    print(f"ratio client.map / measured makespan: {dask_alone / measured:.3f}  (Dask's own scheduling on this machine "
          f"reaches {ideal / dask_alone:.3f} of ideal)")


if __name__ == "__main__":
    main()
