"""Dispatch throughput of the MPI pool against mpi4py.futures.MPIPoolExecutor.map.

    python benchmarks/perf/dispatch_mpi.py [--ranks 3] [--evals 5000] [--repeat 3]

Launches, back to back and ``--repeat`` times each:

* emews: ``mpiexec -n RANKS python -m emews.run`` on a no-op objective
  (``emews.examples:noop``), the random optimizer, journaling on — the whole path
  optimizer process -> driver (rank 0) -> worker rank -> driver -> journal -> optimizer;
* the baseline: ``mpiexec -n RANKS python -m mpi4py.futures THIS_SCRIPT --baseline``,
  i.e. ``MPIPoolExecutor().map(noop, params)`` on the same ranks (rank 0 the client, the
  other ranks workers; default chunksize 1: one task per message, like emews).

Prints evaluations/s for both, end to end (the whole ``mpiexec`` command: start-up,
imports, and for emews the journal and output files) and in steady state (emews: first task
start to last task end, from the journal; baseline: the ``map`` call alone), and the
ratios (goal: steady state >= 0.5).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SPACE = {"x0": {"type": "real", "low": -1.0, "high": 1.0}, "x1": {"type": "int", "low": 0, "high": 100},
         "opt": {"type": "categorical", "values": ["a", "b", "c"]}}


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), env.get("PYTHONPATH", "")])
    return env


def _mpiexec(ranks: int) -> list[str]:
    # the launcher installed beside this Python (pip install mpich) first, then PATH
    here = os.path.dirname(sys.executable)
    exe = shutil.which("mpiexec", path=here) or shutil.which("mpiexec") or shutil.which("mpirun")
    if exe is None:
        sys.exit("mpiexec not found: pip install mpi4py mpich")
    return [exe, "-n", str(ranks)]


def run_emews(ranks: int, evals: int) -> tuple[float, float]:
    """(end-to-end seconds, steady-state seconds) of one emews run."""
    import yaml

    sys.path.insert(0, str(ROOT))
    from emews.journal import read_journal

    with tempfile.TemporaryDirectory() as d:
        cfg = {"experiment": "dispatch", "objective": "emews.examples:noop", "space": SPACE, "optimizer": "random",
               "max_evals": evals, "seed": 0, "output": d, "report": False}
        path = Path(d, "dispatch.yaml")
        path.write_text(yaml.safe_dump(cfg))
        out = Path(d, "out")
        t0 = time.perf_counter()
        p = subprocess.run([*_mpiexec(ranks), sys.executable, "-m", "emews.run", str(path), "--out", str(out), "-q"],
                           env=_env(), capture_output=True, text=True)
        total = time.perf_counter() - t0
        if p.returncode:
            sys.exit(f"emews run failed:\n{p.stderr}")
        rows = read_journal(out)["evals"]
        assert len(rows) == evals and all(r["status"] == "done" for r in rows)
        return total, max(r["end"] for r in rows) - min(r["start"] for r in rows)


def run_baseline(ranks: int, evals: int) -> tuple[float, float]:
    """(end-to-end seconds, seconds in ``map``) of one MPIPoolExecutor run."""
    t0 = time.perf_counter()
    p = subprocess.run([*_mpiexec(ranks), sys.executable, "-m", "mpi4py.futures", __file__, "--baseline",
                        "--evals", str(evals)], env=_env(), capture_output=True, text=True)
    total = time.perf_counter() - t0
    if p.returncode:
        sys.exit(f"baseline run failed:\n{p.stderr}")
    return total, json.loads(p.stdout.strip().splitlines()[-1])["map"]


def baseline_client(evals: int) -> None:
    """Rank 0 under ``python -m mpi4py.futures``: time ``map`` of the no-op."""
    sys.path.insert(0, str(ROOT))
    from mpi4py.futures import MPIPoolExecutor

    from emews.examples import noop
    from emews.space import Space

    params = Space.from_dict(SPACE).sample(evals, seed=0)
    with MPIPoolExecutor() as ex:
        ex.submit(noop, params[0]).result()  # workers up: start-up is counted separately, as for emews
        t0 = time.perf_counter()
        out = list(ex.map(noop, params))
        took = time.perf_counter() - t0
    assert len(out) == evals
    print(json.dumps({"map": took}))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--ranks", type=int, default=3)
    ap.add_argument("--evals", type=int, default=5000)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--baseline", action="store_true", help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.baseline:
        baseline_client(a.evals)
        return
    e_tot, e_ss, b_tot, b_ss = [], [], [], []
    for _ in range(a.repeat):
        t, s = run_emews(a.ranks, a.evals)
        e_tot.append(t)
        e_ss.append(s)
        t, s = run_baseline(a.ranks, a.evals)
        b_tot.append(t)
        b_ss.append(s)
    et, es, bt, bs = (statistics.median(x) for x in (e_tot, e_ss, b_tot, b_ss))
    n = a.evals
    print(f"dispatch (MPI): {n} no-op evaluations, mpiexec -n {a.ranks} ({a.ranks - 1} worker ranks), "
          f"median of {a.repeat}")
    print(f"  steady state: emews {n / es:8.0f} evals/s   MPIPoolExecutor.map {n / bs:8.0f} evals/s   "
          f"ratio {bs / es:.2f}  (goal >= 0.5)")
    print(f"  end to end:   emews {n / et:8.0f} evals/s   MPIPoolExecutor     {n / bt:8.0f} evals/s   "
          f"ratio {bt / et:.2f}  (emews also starts its optimizer process and writes journal and outputs)")


if __name__ == "__main__":  # under mpi4py.futures the worker ranks import this file as __worker__
    main()
