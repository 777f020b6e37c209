"""Dispatch throughput of the Dask pool against Dask's own ``client.map``, and against the local pool.

    python benchmarks/perf/dispatch_dask.py [--workers 2] [--evals 1000] [--repeat 3]

On one ``LocalCluster`` (``--workers`` processes, one thread each), back to back and
``--repeat`` times each:

* baseline: ``client.map(noop, params, pure=False)`` then ``client.gather`` — Dask alone;
* one/worker: Dask alone keeping one task in flight per worker (as emews does, so that every
  attempt has one worker and a lost worker loses exactly its attempt);
* emews on the Dask pool: ``emews.search(noop, pool="dask", dask={"address": ...})`` — the
  whole path optimizer process -> driver -> Dask future pinned to a worker -> driver ->
  journal -> optimizer; each worker runs one task and, as the tasks are short, holds up to 8
  more (queued on it by Dask), and the tasks the driver hands a worker in one round travel as one
  future, all the round's futures in one graph;
* emews on the local pool with as many worker processes.

Prints evaluations/s in steady state (emews: first task start to last task end, from the
journal; baseline: the ``map`` and ``gather`` alone) and the ratios (goal: Dask pool /
client.map >= 0.8).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

SPACE = {"x0": {"type": "real", "low": -1.0, "high": 1.0}, "x1": {"type": "int", "low": 0, "high": 100}}


def steady(directory: Path) -> float:
    """Seconds from the first task's start to the last task's end, from the journal."""
    from emews.journal import read_journal

    evals = read_journal(directory)["evals"]
    return max(e["end"] for e in evals) - min(e["start"] for e in evals)


def run_baseline(client, evals: int) -> float:
    from emews.examples import noop

    params = [{"x0": i / evals, "x1": i % 100} for i in range(evals)]
    t0 = time.perf_counter()
    futures = client.map(noop, params, pure=False)
    client.gather(futures)
    return time.perf_counter() - t0


def run_one_per_worker(client, evals: int) -> float:
    """Dask alone, one task in flight per worker (emews' scheduling): as each ends, the next goes
    to the same worker — Dask's own round trip is the floor of this way of dispatching."""
    from distributed import as_completed

    from emews.examples import noop

    workers = list(client.scheduler_info(n_workers=-1)["workers"])
    t0 = time.perf_counter()
    sent = 0
    where = {}
    ac = as_completed()
    for w in workers:
        f = client.submit(noop, {"x0": 0.0, "x1": sent}, pure=False, workers=[w], allow_other_workers=False)
        where[f.key] = w
        ac.add(f)
        sent += 1
    for f in ac:
        f.result()
        if sent < evals:
            g = client.submit(noop, {"x0": 0.0, "x1": sent}, pure=False, workers=[where[f.key]],
                              allow_other_workers=False)
            where[g.key] = where[f.key]
            ac.add(g)
            sent += 1
    return time.perf_counter() - t0


def run_emews(pool: str, evals: int, workers: int, address: str | None) -> float:
    import emews

    with tempfile.TemporaryDirectory() as d:
        kw = {"dask": {"address": address}} if pool == "dask" else {}
        res = emews.search("emews.examples:noop", SPACE, max_evals=evals, workers=workers, output=d, report=False,
                           pool=pool, seed=1, **kw)
        assert res.count("done") == evals, res
        return steady(res.directory)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--evals", type=int, default=1000)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--scheduler", choices=("inline", "process"), default="inline",
                    help="inline: a LocalCluster whose scheduler runs in this process (beside the client and the "
                         "emews driver); process: a `dask scheduler` process and `dask worker` processes, as a "
                         "cluster deployment has them")
    a = ap.parse_args()
    import contextlib

    from distributed import Client, LocalCluster

    with contextlib.ExitStack() as stack:
        if a.scheduler == "inline":
            cluster = stack.enter_context(LocalCluster(n_workers=a.workers, threads_per_worker=1, processes=True,
                                                       dashboard_address=None))
            address = cluster.scheduler_address
        else:
            sys.path.insert(0, str(ROOT / "tests" / "workers"))
            from dask_cluster import DaskProcesses

            procs = DaskProcesses(Path(stack.enter_context(tempfile.TemporaryDirectory())))
            stack.callback(procs.close)
            address = procs.start_scheduler()
            for i in range(a.workers):
                procs.start_worker(f"w{i}")
        client = stack.enter_context(Client(address))
        client.wait_for_workers(a.workers)
        run_baseline(client, 50)  # warm: the workers import the function once
        base, one, dask, local = [], [], [], []
        for _ in range(a.repeat):
            base.append(run_baseline(client, a.evals))
            one.append(run_one_per_worker(client, a.evals))
            dask.append(run_emews("dask", a.evals, a.workers, address))
            local.append(run_emews("local", a.evals, a.workers, None))
    print(f"scheduler: {a.scheduler}")
    rate = {k: a.evals / statistics.median(v) for k, v in (("client.map", base), ("one/worker", one),
                                                            ("dask pool", dask), ("local pool", local))}
    print(f"{a.evals} no-op tasks on {a.workers} workers, median of {a.repeat} (evaluations/s, steady state):")
    for k, v in rate.items():
        print(f"  {k:<11} {v:9.1f}")
    print(f"ratio dask pool / client.map: {rate['dask pool'] / rate['client.map']:.2f}  (goal >= 0.8)")
    print(f"ratio dask pool / one/worker: {rate['dask pool'] / rate['one/worker']:.2f}  (Dask alone with one task "
          "per worker in flight: the round trip the held task saves)")
    print("dask pool / client.map per run: " + ", ".join(f"{b / e:.2f}" for b, e in zip(base, dask)))
    print(f"ratio dask pool / local pool: {rate['dask pool'] / rate['local pool']:.2f}")


if __name__ == "__main__":
    main()
