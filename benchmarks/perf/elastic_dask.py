"""Throughput of the Dask pool while its worker count changes: 2 -> 16 -> 4 workers mid-run.

    python benchmarks/perf/elastic_dask.py [--phase 25] [--sleep 0.5] [--counts 2,16,4]

A ``LocalCluster`` (one thread per worker process) starts with the first count; a search of
tasks that each sleep ``--sleep`` s runs on it (``pool: dask``, ``max_time`` = the phases);
every ``--phase`` seconds the cluster is scaled to the next count (``cluster.scale``: new
worker processes join, surplus ones are closed; their running attempts come back
interrupted and run again). From the journal, per second of the run::

    workers (the capacity the pool reported) | completions | ideal = workers / sleep

and for each change: how long until the pool's capacity showed the new count (Dask starting
or closing worker processes: Python start-up, slow on a small loaded machine), then how long
from there until the completions of a 2-s window reached 80 % of the new ideal (growing) or
fell to 120 % of it (shrinking): the pool's part. Per phase, from 4 s after its workers were
there: completions / ideal (goal: close to 1).
"""

from __future__ import annotations

import argparse
import bisect
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--phase", type=float, default=25.0)
    ap.add_argument("--sleep", type=float, default=0.5)
    ap.add_argument("--counts", default="2,16,4")
    a = ap.parse_args()
    counts = [int(c) for c in a.counts.split(",")]
    from distributed import Client, LocalCluster

    import emews
    from emews.journal import read_journal

    changes: list[tuple[float, int]] = []  # (epoch time of cluster.scale, new count)

    with LocalCluster(n_workers=counts[0], threads_per_worker=1, processes=True, dashboard_address=None) as cluster, \
            Client(cluster) as client, tempfile.TemporaryDirectory() as d:
        client.wait_for_workers(counts[0], timeout=300)
        started = threading.Event()

        def scaler() -> None:
            started.wait()
            for n in counts[1:]:
                time.sleep(a.phase)
                changes.append((time.time(), n))
                cluster.scale(n)

        th = threading.Thread(target=scaler, daemon=True)
        th.start()
        space = {"x": {"type": "int", "low": 0, "high": 10**6}, "sleep": {"type": "constant", "value": a.sleep}}
        t_start = time.time()
        started.set()
        res = emews.search("emews.testing.pools:objective", space, max_evals=100_000, workers=counts[0], output=d,
                           report=False, seed=0, pool="dask", max_time=a.phase * len(counts),
                           dask={"address": cluster.scheduler_address})
        th.join()
        j = read_journal(res.directory)
    evals = j["evals"]
    done = sorted(e["end"] for e in evals if e["status"] == "done")
    interrupted = sum(e["status"] == "cancelled" and "interrupted" in (e["error"] or "") for e in evals)
    capacity = j["meta"]["sessions"][-1].get("capacity") or []
    cap_t = [t for t, _ in capacity]

    def workers_at(t: float) -> int:
        i = bisect.bisect_right(cap_t, t) - 1
        return capacity[i][1] if i >= 0 else 0

    def completions(t0: float, t1: float) -> int:
        return bisect.bisect_left(done, t1) - bisect.bisect_left(done, t0)

    rate = 1.0 / a.sleep
    end = t_start + a.phase * len(counts)
    print(f"tasks of {a.sleep:g} s; workers {' -> '.join(map(str, counts))} every {a.phase:g} s; "
          f"{len(done)} done, {interrupted} attempts interrupted by a closed worker (run again)")
    print("   t  workers  completions  ideal")
    t = t_start
    while t < end:
        w = workers_at(t + 1.0)
        print(f"{t - t_start:4.0f}  {w:7d}  {completions(t, t + 1.0):11d}  {w * rate:5.1f}")
        t += 1.0
    for when, n in changes:
        cap = next((t for t, c in capacity if t >= when and c == n), None)
        lag_cap = f"{cap - when:.1f} s" if cap is not None else "never"
        before = workers_at(when - 0.01)
        target = n * rate * 2.0
        follow = None
        t = cap if cap is not None else end  # from the moment the workers are there
        while t + 2.0 <= end:
            got = completions(t, t + 2.0)
            if (got >= 0.8 * target) if n > before else (got <= 1.2 * target):
                follow = t + 2.0 - when
                break
            t += 0.25
        lag = f"{follow - (cap - when):.1f} s" if follow is not None else "not within the phase"
        print(f"scale {before} -> {n} at t={when - t_start:.1f} s: the workers were there (capacity) after "
              f"{lag_cap}; then the throughput followed within {lag} (a 2-s window at 80 %/120 % of ideal)")
    there = [t_start] + [next((t for t, c in capacity if t >= when and c == n), end) for when, n in changes]
    for i, n in enumerate(counts):
        t0 = max(t_start + i * a.phase, there[i]) + 4.0
        t1 = t_start + (i + 1) * a.phase
        if t1 > t0:
            got = completions(t0, t1)
            print(f"phase {i} ({n} workers), t={t0 - t_start:.0f}-{t1 - t_start:.0f} s: completions / ideal "
                  f"{got / (n * rate * (t1 - t0)):.2f}")


if __name__ == "__main__":
    main()
