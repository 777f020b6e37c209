"""Where the time per task goes: cProfile of the driver (rank 0's role) and of the optimizer process.

    python benchmarks/perf/dispatch_profile.py [--evals 5000] [--workers 2] [--top 12]

Runs the dispatch benchmark's search (a no-op objective, the random optimizer, journaling on,
the local pool) once with the driver under cProfile in this process and the optimizer
process under its own cProfile, then prints, for each, the CPU seconds per task and the
functions that cost the most per task (own CPU time, µs/task). The workers run a no-op: their time
is the wire's (unpickling a TASK, pickling a RESULT). On MPI rank 0 runs the same driver code.
"""

from __future__ import annotations

import argparse
import cProfile
import os
import pstats
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

import emews  # noqa: E402
from emews.optimizers import _host  # noqa: E402

SPACE = {"x0": {"type": "real", "low": -1.0, "high": 1.0}, "x1": {"type": "int", "low": 0, "high": 100},
         "opt": {"type": "categorical", "values": ["a", "b", "c"]}}


def _profiled_run_optimizer(*args, **kwargs):  # the optimizer process's entry, under cProfile
    prof = cProfile.Profile(time.process_time)  # CPU time: waiting on the pipe is not the optimizer's cost
    prof.enable()
    try:
        _host.run_optimizer(*args, **kwargs)
    finally:
        prof.disable()
        prof.dump_stats(os.environ["EMEWS_PROFILE_OPTIMIZER"])


def _top(stats: pstats.Stats, n: int, evals: int, title: str) -> None:
    total = stats.total_tt  # type: ignore[attr-defined]
    print(f"{title}: {total:.3f} s of CPU, {1e6 * total / evals:.0f} µs per task")
    rows = sorted(stats.stats.items(), key=lambda kv: kv[1][2], reverse=True)[:n]  # type: ignore[attr-defined]
    for (file, line, name), (_cc, calls, tt, _ct, _callers) in rows:
        where = f"{Path(file).name}:{line}" if line else file
        print(f"  {1e6 * tt / evals:8.1f} µs/task  {calls / evals:6.2f} calls/task  {name}  ({where})")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--evals", type=int, default=5000)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--top", type=int, default=12)
    a = ap.parse_args()
    with tempfile.TemporaryDirectory() as d:
        opt_stats = os.path.join(d, "optimizer.prof")
        os.environ["EMEWS_PROFILE_OPTIMIZER"] = opt_stats
        _host.run_optimizer = _profiled_run_optimizer  # what OptimizerProcess starts (spawned: by name)
        prof = cProfile.Profile(time.process_time)  # CPU time (all of this process's threads)
        t0 = time.perf_counter()
        prof.enable()
        res = emews.search("emews.examples:noop", SPACE, "random", max_evals=a.evals, workers=a.workers, seed=0,
                           output=os.path.join(d, "out"), report=False)
        prof.disable()
        took = time.perf_counter() - t0
        assert res.count("done") == a.evals, res
        starts = [r["start"] for r in res.rows]
        ends = [r["end"] for r in res.rows]
        span = max(ends) - min(starts)
        print(f"{a.evals} no-op tasks on {a.workers} local workers: {took:.2f} s in all, steady state "
              f"{a.evals / span:.0f} tasks/s ({1e6 * span / a.evals:.0f} µs per task of wall time)")
        _top(pstats.Stats(prof), a.top, a.evals, "driver (rank 0's role)")
        _top(pstats.Stats(opt_stats), a.top, a.evals, "optimizer process")


if __name__ == "__main__":
    main()
