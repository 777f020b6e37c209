"""Warm start: does ``mbo`` given earlier results reach a lower regret at 30 evaluations than a cold ``mbo``?

    python benchmarks/quality/warm_start.py [--problems hartmann6,branin] [--seeds 10] [--evals 30] [--earlier 20]

For each problem and seed: an *earlier* search (``--earlier`` random evaluations, another seed)
is written as an mlrMBO restart file (``y,param...``) and read back with
:func:`emews.formats.read_warm_start`, exactly as ``warm_start: FILE`` in a config does; then
``mbo`` runs ``--evals`` new evaluations in batches of 5 twice, with the same seed: cold, and
given those results (it fits on them instead of its initial design). The regret of a run is
``true_loss(best of its own new evaluations) - optimum`` (the earlier points do not count: the
optimizer has to find its incumbent itself). Prints per problem the median regret of both
and the ratio warm / cold (below 1: the warm start helps), and the median over problems.
"""

from __future__ import annotations

import argparse
import csv
import statistics
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from benchmarks.quality.problems import PROBLEMS  # noqa: E402
from emews.formats import read_warm_start  # noqa: E402
from emews.testing.optimizers import run_with_fake_driver  # noqa: E402


def _regret(problem, run) -> float:
    done = [r for r in run.results if r.ok]
    best = min(done, key=lambda r: r.loss)
    return problem.true_loss(best.params) - problem.optimum


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--problems", default="hartmann6,branin,rosenbrock5")
    ap.add_argument("--seeds", type=int, default=10)
    ap.add_argument("--evals", type=int, default=30)
    ap.add_argument("--earlier", type=int, default=20)
    args = ap.parse_args()
    ratios = []
    print(f"mbo, {args.evals} new evaluations in batches of 5, warm-started from {args.earlier} earlier random "
          f"evaluations (an mlrMBO restart CSV) vs cold; median regret over {args.seeds} seeds")
    print(f"{'problem':<12} {'cold':>12} {'warm':>12} {'warm/cold':>10}")
    with tempfile.TemporaryDirectory() as tmp:
        for name in args.problems.split(","):
            problem = PROBLEMS[name]
            cold, warm = [], []
            for seed in range(args.seeds):
                earlier = run_with_fake_driver("random", problem.space, problem.objective, max_evals=args.earlier,
                                               capacity=5, seed=10_000 + seed, mode="batch", batch_size=5)
                path = Path(tmp) / f"{name}-{seed}-restart.csv"
                with open(path, "w", newline="") as f:
                    w = csv.writer(f)
                    w.writerow(["y", *problem.space.names])
                    for r in earlier.results:
                        if r.ok:
                            w.writerow([repr(r.loss), *(r.params[n] for n in problem.space.names)])
                ws = read_warm_start(path, problem.space)
                assert len(ws.results) == args.earlier and not ws.skipped
                kw = dict(max_evals=args.evals, capacity=5, seed=seed, mode="batch", batch_size=5)
                cold.append(_regret(problem, run_with_fake_driver("mbo", problem.space, problem.objective, **kw)))
                warm.append(_regret(problem, run_with_fake_driver("mbo", problem.space, problem.objective,
                                                                  warm_start=ws.results, **kw)))
            c, w = statistics.median(cold), statistics.median(warm)
            ratio = w / c if c > 0 else float("nan")
            ratios.append(ratio)
            print(f"{name:<12} {c:>12.4g} {w:>12.4g} {ratio:>10.3f}", flush=True)
    print(f"median ratio warm/cold over problems: {statistics.median(ratios):.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
