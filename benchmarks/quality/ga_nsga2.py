"""``ga`` with NSGA-II selection against Optuna's NSGA-II on ZDT1, and against ``ga`` on the summed loss.

    python benchmarks/quality/ga_nsga2.py [SEEDS] [DIMS]

For 100 and 300 evaluations and each seed: emews ``ga`` through ``emews.search`` (the simulated
pool: the whole pipeline, objective in-process, 8 virtual workers) with ``objectives: {f1: min,
f2: min}``; the same ``ga`` on ``f1 + f2`` (one objective); Optuna's ``NSGAIISampler`` (its
defaults) in the same run. Prints the mean hypervolume of each method's evaluated points
(reference point (11, 11), ZDT1 minimized) and the ratios the issue's goal names:
ga / Optuna NSGA-II (goal >= 0.95) and ga / ga-summed (goal >= 1).
"""

from __future__ import annotations

import logging
import sys
import tempfile
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

import emews  # noqa: E402
from emews._pareto import hypervolume  # noqa: E402

REFERENCE = (11.0, 11.0)


def zdt1(x: np.ndarray) -> tuple[float, float]:
    f1 = float(x[0])
    g = 1.0 + 9.0 * float(np.mean(x[1:]))
    return f1, g * (1.0 - np.sqrt(f1 / g))


def space(d: int) -> dict:
    return {f"x{i}": {"type": "real", "low": 0.0, "high": 1.0} for i in range(d)}


def vector(p: dict, d: int) -> np.ndarray:
    return np.array([p[f"x{i}"] for i in range(d)])


def make_objective(d: int, summed: bool):
    def objective(p):
        f1, f2 = zdt1(vector(p, d))
        return f1 + f2 if summed else {"f1": f1, "f2": f2}
    return objective


def emews_ga(d: int, n: int, seed: int, summed: bool, out: str) -> float:
    res = emews.search(make_objective(d, summed), space(d), optimizer="ga", max_evals=n, workers=8, seed=seed,
                       pool="simulated", output=out, experiment=f"ga{int(summed)}_{n}_{seed}", report=False,
                       objectives=None if summed else {"f1": "min", "f2": "min"})
    pts = [zdt1(vector(r["params"], d)) for r in res.rows if r["status"] == "done"]
    return hypervolume(pts, REFERENCE)


def optuna_nsga2(d: int, n: int, seed: int) -> float:
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(directions=["minimize", "minimize"], sampler=optuna.samplers.NSGAIISampler(seed=seed))
    study.optimize(lambda t: zdt1(np.array([t.suggest_float(f"x{i}", 0.0, 1.0) for i in range(d)])), n_trials=n)
    return hypervolume([t.values for t in study.trials if t.values is not None], REFERENCE)


if __name__ == "__main__":
    logging.getLogger("emews").setLevel(logging.WARNING)
    seeds = int(sys.argv[1]) if len(sys.argv) > 1 else 5
    d = int(sys.argv[2]) if len(sys.argv) > 2 else 30
    out = tempfile.mkdtemp(prefix="ga_nsga2_")
    print(f"ZDT1, {d} dimensions, reference {REFERENCE}, {seeds} seeds: mean hypervolume of the evaluated points")
    for n in (100, 300):
        ga = np.mean([emews_ga(d, n, s, False, out) for s in range(seeds)])
        ga_sum = np.mean([emews_ga(d, n, s, True, out) for s in range(seeds)])
        opt = np.mean([optuna_nsga2(d, n, s) for s in range(seeds)])
        print(f"{n:4d} evals: ga (NSGA-II) {ga:.3f}  ga (summed loss) {ga_sum:.3f}  Optuna NSGA-II {opt:.3f}  "
              f"ga/Optuna {ga / opt:.3f} (goal >= 0.95)  ga/summed {ga / ga_sum:.3f} (goal >= 1)", flush=True)
