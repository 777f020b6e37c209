"""Optimizer quality: median best loss after 100 evaluations in batches of 8.

    python benchmarks/quality/run.py [--seeds 10] [--evals 100] [--batch 8]
                                     [--problems branin,hartmann6,rosenbrock5,mixed]
                                     [--optimizers mbo,ga,random,tpe]

Each optimizer runs in this process against emews' fake driver (``emews.testing.optimizers``:
the real queue protocol and the real ask/tell adapter in batch mode, ``batch`` workers, no
worker processes), so the figures measure proposals, not dispatch. The GA runs its own
resident loop (generations of 16). The baseline is Optuna's TPE
(``TPESampler(constant_liar=True, seed=s)``), batches of ``batch`` asked and told
through Optuna's ask/tell API; it is skipped when optuna is not installed.

Prints the median (and interquartile range) of the best loss per optimizer and problem, and per
problem whether mbo beats random and how it compares with TPE.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
import warnings
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

import numpy as np  # noqa: E402

from benchmarks.quality.problems import PROBLEMS, Problem  # noqa: E402
from emews.space import Bool, Categorical, Constant, Int, Ordinal, Real  # noqa: E402
from emews.testing.optimizers import run_with_fake_driver  # noqa: E402


def run_emews(name: str, problem: Problem, seed: int, evals: int, batch: int, settings: dict | None = None) -> float:
    run = run_with_fake_driver(name, problem.space, problem.objective, settings=settings, max_evals=evals,
                               capacity=batch, seed=seed, mode="batch", batch_size=batch)
    return run.best


def run_tpe(problem: Problem, seed: int, evals: int, batch: int) -> float:
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    dists = {}
    for d in problem.space.dims:
        if isinstance(d, Real):
            dists[d.name] = optuna.distributions.FloatDistribution(d.low, d.high, log=d.log)
        elif isinstance(d, Int):
            dists[d.name] = optuna.distributions.IntDistribution(d.low, d.high, log=d.log)
        elif isinstance(d, Ordinal):  # ordered: the index, as an integer
            dists[d.name] = optuna.distributions.IntDistribution(0, len(d.values) - 1)
        elif isinstance(d, (Categorical, Bool)):
            dists[d.name] = optuna.distributions.CategoricalDistribution(
                d.values if isinstance(d, Categorical) else [False, True])
    sampler = optuna.samplers.TPESampler(constant_liar=True, seed=seed)
    study = optuna.create_study(sampler=sampler, direction="minimize")
    best, done = float("inf"), 0
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        while done < evals:
            trials = [study.ask(dists) for _ in range(min(batch, evals - done))]
            for t in trials:
                p = {}
                for d in problem.space.dims:
                    if isinstance(d, Constant):
                        p[d.name] = d.value
                    elif isinstance(d, Ordinal):
                        p[d.name] = d.values[t.params[d.name]]
                    else:
                        p[d.name] = t.params[d.name]
                loss = problem.objective(p)
                best = min(best, loss)
                study.tell(t, loss)
            done += len(trials)
    return best


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", type=int, default=10)
    ap.add_argument("--evals", type=int, default=100)
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--problems", default=",".join(PROBLEMS))
    ap.add_argument("--optimizers", default="mbo,ga,random,tpe")
    ap.add_argument("--mbo-settings", default="", help="extra mbo settings, e.g. acquisition=lcb,kappa=2")
    args = ap.parse_args()

    mbo_settings: dict = {}
    for item in filter(None, args.mbo_settings.split(",")):
        k, _, v = item.partition("=")
        try:
            mbo_settings[k] = int(v)
        except ValueError:
            try:
                mbo_settings[k] = float(v)
            except ValueError:
                mbo_settings[k] = v

    optimizers = args.optimizers.split(",")
    if "tpe" in optimizers:
        try:
            import optuna  # noqa: F401
        except ImportError:
            print("tpe: skipped: optuna not installed")
            optimizers.remove("tpe")
    problems = [PROBLEMS[p] for p in args.problems.split(",")]
    seeds = list(range(args.seeds))
    print(f"median best loss over {len(seeds)} seeds, {args.evals} evaluations in batches of {args.batch}"
          + (f"; mbo settings {mbo_settings}" if mbo_settings else ""))
    table: dict[tuple[str, str], list[float]] = {}
    seconds: dict[str, float] = {o: 0.0 for o in optimizers}
    for prob in problems:
        for opt in optimizers:
            t0 = time.perf_counter()
            bests = []
            for s in seeds:
                if opt == "tpe":
                    bests.append(run_tpe(prob, s, args.evals, args.batch))
                else:
                    bests.append(run_emews(opt, prob, s, args.evals, args.batch,
                                           mbo_settings if opt == "mbo" else None))
            table[prob.name, opt] = bests
            seconds[opt] += time.perf_counter() - t0

    w = 26
    print(f"{'problem (optimum)':<24}" + "".join(f"{o:>{w}}" for o in optimizers))
    for prob in problems:
        cells = []
        for opt in optimizers:
            b = np.asarray(table[prob.name, opt])
            q1, q3 = np.percentile(b, [25, 75])
            cells.append(f"{statistics.median(b):.4g} [{q1:.3g}, {q3:.3g}]")
        print(f"{prob.name + f' ({prob.optimum:g})':<24}" + "".join(f"{c:>{w}}" for c in cells))
    print("seconds".ljust(24) + "".join(f"{seconds[o]:>{w}.1f}" for o in optimizers))
    if "mbo" in optimizers:
        print()
        wins_random = wins_tpe = 0
        for prob in problems:
            m = statistics.median(table[prob.name, "mbo"])
            line = f"{prob.name}: mbo {m:.4g}"
            if "random" in optimizers:
                r = statistics.median(table[prob.name, "random"])
                beat = m < r
                wins_random += beat
                line += f"; vs random {r:.4g}: {'beats' if beat else 'DOES NOT beat'} random"
            if "tpe" in optimizers:
                t = statistics.median(table[prob.name, "tpe"])
                gap = (m - prob.optimum) / max(t - prob.optimum, 1e-12)
                verdict = "beats" if m < t else "matches" if gap <= 1.05 else "trails"
                wins_tpe += verdict != "trails"
                line += f"; vs TPE {t:.4g}: {verdict} TPE (regret ratio mbo/TPE {gap:.2f})"
            print(line)
        if "random" in optimizers:
            print(f"mbo beats random on {wins_random}/{len(problems)} problems")
        if "tpe" in optimizers:
            print(f"mbo matches or beats TPE on {wins_tpe}/{len(problems)} problems")
    return 0


if __name__ == "__main__":
    sys.exit(main())
