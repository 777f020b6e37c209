"""Early stopping end to end: a real emews search with each stopper, against no stopping.

    nice -n 10 python benchmarks/stopping/emews_run.py [--evals 60] [--workers 2] [--epochs 27]
        [--seed 0] [--stoppers none,median,asha,hyperband]

Every search runs the same random points (same optimizer seed) on the local pool; the
objective reports the :mod:`benchmarks.stopping.curves` learning curve (``default`` shapes,
no sleeping: an epoch costs a report's round trip) for ``--epochs`` epochs through
``trial.report``, and stops when told. Printed per stopper: tasks stopped, epochs used (the
reports), the ratio to no stopping's epochs (the baseline measured in this run), the best
final loss of the tasks that ran to the end, and the wall time of the search.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

EPOCHS = int(os.environ.get("EMEWS_BENCH_EPOCHS", "27"))


def objective(params: dict, trial) -> float:
    """The curve of ``params`` (its noise seeded by the parameters), reported per epoch."""
    from benchmarks.stopping.curves import make_curve

    key = abs(hash(tuple(round(float(params[k]), 9) for k in sorted(params)))) % (1 << 30)
    c = make_curve(params, 0, key)
    loss = None
    for epoch in range(1, EPOCHS + 1):
        loss = c.loss(epoch)
        if trial.report(epoch, loss):
            break
    return loss


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--evals", type=int, default=60)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--epochs", type=int, default=27)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--stoppers", default="none,median,asha,hyperband")
    a = ap.parse_args(argv)
    os.environ["EMEWS_BENCH_EPOCHS"] = str(a.epochs)
    os.environ["PYTHONPATH"] = os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])
    import emews
    from benchmarks.stopping.curves import space

    specs = {
        "none": None,
        "median": {"name": "median", "warmup_steps": 3, "min_trials": 5},
        "asha": {"name": "asha", "min_resource": 1, "max_resource": a.epochs, "reduction_factor": 3},
        "hyperband": {"name": "hyperband", "min_resource": 1, "max_resource": a.epochs, "reduction_factor": 3},
    }
    rows = []
    with tempfile.TemporaryDirectory() as out:
        for name in a.stoppers.split(","):
            t = time.perf_counter()
            res = emews.search("benchmarks.stopping.emews_run:objective", space(), optimizer="random",
                               max_evals=a.evals, workers=a.workers, seed=a.seed, output=out, experiment=name,
                               stopper=specs[name], report=False)
            wall = time.perf_counter() - t
            done = [r["loss"] for r in res.rows if r["status"] == "done" and r["loss"] is not None]
            rows.append((name, res.count("stopped"), len(res.reports), min(done) if done else float("nan"), wall))
    base = next((r[2] for r in rows if r[0] == "none"), None)
    print(f"{a.evals} random points x {a.epochs} epochs, {a.workers} workers, seed {a.seed}")
    print(f"{'stopper':<10} {'stopped':>7} {'epochs':>7} {'vs none':>8} {'best final':>11} {'wall s':>7}")
    for name, stopped, used, best, wall in rows:
        ratio = f"{used / base:.3f}" if base else "-"
        print(f"{name:<10} {stopped:>7} {used:>7} {ratio:>8} {best:>11.4f} {wall:>7.1f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
