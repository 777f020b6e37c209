"""Early stopping at scale: ASHA on 1,000 simulated workers, utilization against no stopping.

    python benchmarks/stopping/simulated.py [--workers 1000] [--hours 2] [--evals 200000] [--epoch-seconds 60]

A real emews search (driver, optimizer process, journal, the driver's stopper) on ``pool:
simulated``: each task trains the :mod:`benchmarks.stopping.curves` learning curve of its
parameters for 27 epochs, one epoch = ``--epoch-seconds`` simulated seconds, and reports every
epoch. The same search runs with ASHA (min_resource 1, max_resource 27, reduction factor 3)
and without stopping (the baseline, measured in the same run). Printed: utilization
(DeepHyper's: busy / (workers x span)), epochs used, their ratio to no stopping's, the best
final loss of the tasks that ran to the end, and the real seconds.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from benchmarks.stopping.emews_run import EPOCHS, objective  # noqa: E402 - the same curve objective


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--workers", type=int, default=1000)
    ap.add_argument("--evals", type=int, default=200000)
    ap.add_argument("--epoch-seconds", type=float, default=60.0)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--hours", type=float, default=2.0,
                    help="a simulated time limit (the span ends there; 0: none, the budget's drain counts)")
    a = ap.parse_args()
    import emews
    from benchmarks.stopping.curves import space
    from emews.report import report_data

    asha = {"name": "asha", "min_resource": 1, "max_resource": EPOCHS, "reduction_factor": 3}
    limit = a.hours * 3600 if a.hours else None
    print(f"{a.workers} simulated workers, up to {a.evals} tasks of {EPOCHS} epochs x {a.epoch_seconds:g} s"
          f"{f' or {a.hours:g} simulated h' if limit else ''}, random search")
    print(f"{'stopper':<8} {'util':>6} {'epochs':>8} {'ratio':>6} {'stopped':>8} {'best final':>10} {'real s':>7}")
    base = None
    with tempfile.TemporaryDirectory() as tmp:
        for name, stopper in (("none", None), ("asha", asha)):
            t0 = time.perf_counter()
            res = emews.search(objective, space(), "random", max_evals=a.evals, workers=a.workers, seed=a.seed,
                               max_time=limit, output=tmp, experiment=name, report=False, pool="simulated",
                               stopper=stopper,
                               simulation={"duration": {"distribution": "constant",
                                                        "value": EPOCHS * a.epoch_seconds}, "seed": a.seed})
            wall = time.perf_counter() - t0
            d = report_data(res)
            epochs = len(res.reports) if hasattr(res, "reports") else None
            base = base or epochs
            full = [r["loss"] for r in res.rows if r["status"] == "done"]
            print(f"{name:<8} {d['utilization']['utilization']:>6.3f} {epochs:>8} {epochs / base:>6.3f} "
                  f"{res.count('stopped'):>8} {min(full):>10.4g} {wall:>7.1f}", flush=True)


if __name__ == "__main__":
    main()
