"""Random worker SIGKILLs during a search on the Dask pool: nothing lost, nothing doubled.

    python benchmarks/perf/kills_dask.py [--tasks 200] [--kills 20] [--workers 4] [--seed N]

A ``dask scheduler`` and ``--workers`` ``dask worker`` processes (one thread, no nanny); the
search (``python -m emews.run``, pool: dask) runs ``--tasks`` tasks of 0.1-0.5 s. Meanwhile
``--kills`` times a randomly chosen worker is SIGKILLed (seeded, printed) and a new one is
started in its place. At the end, from the journal: done tasks (each exactly once), the
interrupted attempts (each with the worker it ran on) and whether each ran again.
"""

from __future__ import annotations

import argparse
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path[:0] = [str(ROOT), str(ROOT / "tests" / "workers")]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--tasks", type=int, default=200)
    ap.add_argument("--kills", type=int, default=20)
    ap.add_argument("--workers", type=int, default=4)
    ap.add_argument("--seed", type=int, default=None)
    a = ap.parse_args()
    seed = a.seed if a.seed is not None else random.randrange(10**6)
    rng = random.Random(seed)
    print(f"seed {seed}")
    import yaml
    from dask_cluster import DaskProcesses, _env

    from emews.journal import read_journal

    with tempfile.TemporaryDirectory() as d:
        d = Path(d)
        c = DaskProcesses(d)
        try:
            c.start_scheduler()
            for i in range(a.workers):
                c.start_worker(f"w{i}")
            c.wait_for_workers(a.workers)
            (d / "go").touch()  # the gated objective is not used; sleeping tasks instead
            cfg = {"experiment": "k", "objective": "emews.testing.pools:objective",
                   "space": {"x": {"type": "int", "low": 0, "high": 10**6}, "sleep": {"type": "real", "low": 0.1,
                                                                                    "high": 0.5}},
                   "max_evals": a.tasks, "seed": seed, "output": str(d / "runs"), "pool": "dask", "report": False,
                   "dask": {"scheduler_file": str(c.scheduler_file)}, "progress": 0}
            (d / "k.yaml").write_text(yaml.safe_dump(cfg))
            t0 = time.monotonic()
            p = subprocess.Popen([sys.executable, "-m", "emews.run", str(d / "k.yaml"), "-q"], env=_env(d),
                                 stdout=subprocess.DEVNULL, stderr=open(d / "search.log", "w"))
            kills, n = 0, a.workers
            time.sleep(2.0)
            while kills < a.kills and p.poll() is None:
                time.sleep(rng.uniform(0.2, 1.0))
                victim = rng.choice(sorted(c.workers))
                c.kill_worker(victim)
                kills += 1
                c.start_worker(f"w{n}")
                n += 1
            rc = p.wait(600)
            took = time.monotonic() - t0
            evals = read_journal(d / "runs" / "k")["evals"]
        finally:
            c.close()
    done = [e for e in evals if e["status"] == "done"]
    lost = [e for e in evals if e["status"] == "cancelled"]
    ids = [e["task_id"] for e in done]
    rerun = {e["task_id"] for e in done} >= {e["task_id"] for e in lost}
    print(f"exit {rc}; {kills} workers SIGKILLed in {took:.1f} s; {len(done)} done of {a.tasks} "
          f"({len(ids) - len(set(ids))} doubled, {a.tasks - len(set(ids))} lost); {len(lost)} interrupted attempts, "
          f"all with their worker: {all(e['worker'] is not None for e in lost)}, all run again: {rerun}; "
          f"failed: {sum(e['status'] == 'failed' for e in evals)}")


if __name__ == "__main__":
    main()
