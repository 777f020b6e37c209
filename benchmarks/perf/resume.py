"""What a resume costs: continuing an experiment of N finished evaluations by 10 more,
against a fresh run of 10 evaluations (same objective, optimizer and workers, same run).

    python benchmarks/perf/resume.py [--evals 5000] [--optimizer random] [--repeat 3]

The difference is reading the journal, handing the history to the optimizer (for ``mbo``:
one surrogate fit on all of it) and the journal's size; the ratio says how much slower the
resumed session starts and ends than a fresh one.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

import emews  # noqa: E402

SPACE = {"x": {"type": "real", "low": 0.0, "high": 1.0}, "y": {"type": "real", "low": 0.0, "high": 1.0}}


def _search(out: Path, name: str, optimizer: str, evals: int, resume: bool) -> float:
    t0 = time.perf_counter()
    emews.search("emews.examples:sphere", {"x0": SPACE["x"], "x1": SPACE["y"]}, optimizer, max_evals=evals,
                 workers=2, seed=0, output=out, experiment=name, resume=resume, report=False)
    return time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--evals", type=int, default=5000, help="finished evaluations in the journal resumed")
    ap.add_argument("--optimizer", default="random")
    ap.add_argument("--repeat", type=int, default=3)
    a = ap.parse_args()
    fresh, resumed = [], []
    with tempfile.TemporaryDirectory() as d:
        out = Path(d)
        t = _search(out, "big", a.optimizer, a.evals, resume=False)
        print(f"resume: built an experiment of {a.evals} {a.optimizer} evaluations in {t:.1f} s")
        for i in range(a.repeat):
            fresh.append(_search(out, f"fresh{i}", a.optimizer, 10, resume=False))
            resumed.append(_search(out, "big", a.optimizer, a.evals + 10 * (i + 1), resume=True))
    f, r = statistics.median(fresh), statistics.median(resumed)
    print(f"  fresh session, 10 evaluations:                  {f:.2f} s")
    print(f"  resumed session, {a.evals} earlier + 10 evaluations: {r:.2f} s")
    print(f"  ratio resumed / fresh: {r / f:.2f}  (extra {r - f:.2f} s for the history)")


if __name__ == "__main__":
    main()
