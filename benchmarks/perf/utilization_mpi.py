"""Worker utilization of the MPI pool, asynchronous vs batch-synchronous.

    python benchmarks/perf/utilization_mpi.py [--ranks 8] [--tasks 200] [--mean 0.2]

Runs ``mpiexec -n RANKS python -m emews.run`` twice (``mode: async``, then ``mode: batch``
with batches of one task per worker) on tasks that sleep log-normal times (mean ``--mean``
seconds, sigma 0.5 in log space; the duration is a function of the sampled parameter, so
both modes draw from the same distribution). From each journal::

    utilization = sum(end - start) / (workers * (last end - first start))

Goal: async >= 0.95. Batch mode pays for its stragglers: every batch waits for its slowest
task while the other workers idle. More ranks than cores is fine (the tasks sleep).
"""

from __future__ import annotations

import argparse
import math
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SIGMA = 0.5


def sleep_lognormal(params: dict) -> dict:
    """Sleeps exp(mu + SIGMA * z(u)) seconds, mean ``params["mean"]``; u ~ U(0, 1) from the optimizer."""
    mu = math.log(params["mean"]) - SIGMA**2 / 2
    u = min(max(params["u"], 1e-9), 1 - 1e-9)
    seconds = math.exp(mu + SIGMA * statistics.NormalDist().inv_cdf(u))
    time.sleep(seconds)
    return {"loss": seconds, "slept": seconds}


def run(ranks: int, tasks: int, mean: float, mode: str) -> dict:
    import yaml

    sys.path.insert(0, str(ROOT))
    from emews.journal import read_journal

    # the launcher installed beside this Python (pip install mpich) first, then PATH
    here = os.path.dirname(sys.executable)
    exe = shutil.which("mpiexec", path=here) or shutil.which("mpiexec") or shutil.which("mpirun")
    if exe is None:
        sys.exit("mpiexec not found: pip install mpi4py mpich")
    with tempfile.TemporaryDirectory() as d:
        cfg = {"experiment": f"util-{mode}", "objective": "benchmarks.perf.utilization_mpi:sleep_lognormal",
               "space": {"u": {"type": "real", "low": 0.0, "high": 1.0}, "mean": {"type": "constant", "value": mean}},
               "optimizer": "random", "mode": mode, "max_evals": tasks, "seed": 0, "output": d, "report": False}
        path = Path(d, "util.yaml")
        path.write_text(yaml.safe_dump(cfg))
        out = Path(d, "out")
        env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]))
        p = subprocess.run([exe, "-n", str(ranks), sys.executable, "-m", "emews.run", str(path), "--out", str(out), "-q"],
                           env=env, cwd=ROOT, capture_output=True, text=True)
        if p.returncode:
            sys.exit(f"{mode} run failed:\n{p.stderr}")
        j = read_journal(out)
    rows = j["evals"]
    assert len(rows) == tasks and all(r["status"] == "done" for r in rows)
    workers = j["meta"]["workers"]
    span = max(r["end"] for r in rows) - min(r["start"] for r in rows)
    busy = sum(r["end"] - r["start"] for r in rows)
    return {"workers": workers, "span": span, "busy": busy, "utilization": busy / (workers * span),
            "mean_task": busy / len(rows)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--ranks", type=int, default=8)
    ap.add_argument("--tasks", type=int, default=200)
    ap.add_argument("--mean", type=float, default=0.2)
    a = ap.parse_args()
    res = {mode: run(a.ranks, a.tasks, a.mean, mode) for mode in ("async", "batch")}
    w = res["async"]["workers"]
    print(f"utilization (MPI): {a.tasks} tasks sleeping log-normal times (mean {a.mean:g} s, sigma {SIGMA}), "
          f"mpiexec -n {a.ranks} ({w} worker ranks)")
    for mode, r in res.items():
        print(f"  {mode:5s}: utilization {r['utilization']:.3f}  span {r['span']:.2f} s  busy {r['busy']:.1f} s  "
              f"mean task {r['mean_task']:.3f} s" + ("  (goal >= 0.95)" if mode == "async" else ""))
    print(f"  ratio async / batch: {res['async']['utilization'] / res['batch']['utilization']:.2f}")


if __name__ == "__main__":
    main()
