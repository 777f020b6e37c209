"""``mbo`` at scale: 1,000 proposals at 20,000 observations, and a 10,000-worker simulated search.

    python benchmarks/scale/mbo.py                   # both
    python benchmarks/scale/mbo.py --no-search       # the proposal timing only

* Proposal time: the default surrogate (a GP on a numeric space) told N observations, then
  ``ask(q)`` timed, cold (a fresh optimizer) and warm (the step of a running search); goal
  <= 10 s for q=1,000 at N=20,000 on the 2-core development machine.
* The search: async ``mbo`` on ``pool: simulated`` with 10,000 workers and tasks of
  N(60 s, 20 s); the optimizer is told the results that arrived while it was fitting in one
  batch, and proposes for every freed worker. Printed against the ideal scheduler of
  ``utilization.py`` on the same durations (measured in the same run).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parents[1]))
sys.path.insert(0, str(HERE.parent / "perf"))
sys.path.insert(0, str(HERE))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--observations", type=int, default=20_000)
    ap.add_argument("--batch", type=int, default=1_000)
    ap.add_argument("--workers", type=int, default=10_000)
    ap.add_argument("--evals", type=int, default=30_000)
    ap.add_argument("--no-search", action="store_true")
    a = ap.parse_args()
    from propose import time_default

    for warm in (False, True):
        t, info = time_default(a.observations, a.batch, warm)
        print(f"mbo {info['surrogate']}: {a.batch} proposals at {a.observations} observations, "
              f"{'warm' if warm else 'cold'}: {t:.2f} s (fit {info['fit_seconds']:.2f} s)", flush=True)
    if a.no_search:
        return
    import tempfile

    from utilization import ideal, run

    with tempfile.TemporaryDirectory() as tmp:
        r = run("mbo", a.workers, a.evals, None, 60.0, 20.0, 1, Path(tmp))
    base = ideal(a.workers, a.evals, None, 60.0, 20.0, 1)
    print(f"mbo on {a.workers} simulated workers, {r['evaluations']} evaluations: utilization {r['utilization']:.3f} "
          f"(ideal {base:.3f}, ratio {r['utilization'] / base:.3f}), ramp-up {r['ramp_up']}, real {r['wall']:.0f} s, "
          f"{r['rate']:.0f} completions/s")


if __name__ == "__main__":
    main()
