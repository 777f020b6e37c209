"""Optimizer quality: median regret at 50, 100 and 300 evaluations in batches of 8, against peers.

    python benchmarks/quality/run.py [--seeds 5] [--evals 300] [--batch 8] [--budgets 50,100,300]
                                     [--problems branin,hartmann6,...]
                                     [--optimizers mbo,random,tpe,optuna-gp,cbo,ga]
                                     [--mbo-settings surrogate=rf,acquisition=lcb]

Every optimizer runs ``--evals`` evaluations in batches of ``--batch`` (each batch asked, then
evaluated, then told) on the same problems and seeds; the regret after the first ``b``
evaluations, for each budget ``b`` of ``--budgets``, is ``true_loss(incumbent) - optimum``
with the incumbent the point of best *observed* loss so far (the same thing for noise-free
problems), evaluations counted in the order they were asked. Optimizers:

* ``mbo``, ``ga``, ``random``: emews' own, run against emews' fake driver
  (``emews.testing.optimizers``: the real queue protocol and ask/tell adapter in batch mode,
  no worker processes), so the figures measure proposals, not dispatch; the GA runs its own
  resident loop (generations of 16);
* ``tpe``: Optuna's ``TPESampler(constant_liar=True, seed=s)``;
* ``optuna-gp``: Optuna's ``GPSampler(seed=s)`` (needs torch and scipy; it conditions on the
  running trials of a batch itself);
* ``cbo``: DeepHyper's ``CBO(problem, random_state=s, acq_optimizer="sampling")``, otherwise
  its defaults (extra-trees surrogate, UCBd, ``cl_max`` batches), driven by ``ask(batch)`` /
  ``tell``; its default acquisition optimizer (``"mixedga"``) took 90 s per 48 evaluations
  on the 2-core development machine, 7 times as long.

With ``--cache DIR`` each peer run is made once and its regret curve and seconds kept in
``DIR`` (the peers are seeded: a run repeats), so ``mbo`` can be compared again in seconds.
A peer whose package is missing is skipped with a printed note (``pip install "emews[bench]"``
installs them). Prints one table per budget (median regret and interquartile range), the
seconds per run of each optimizer, and per problem at the goal budget (``--goal``, default
100) whether ``mbo`` beats random and matches the best peer.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
import warnings
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

import numpy as np  # noqa: E402

from benchmarks.quality.problems import PROBLEMS, Problem  # noqa: E402
from emews.space import Bool, Categorical, Constant, Int, Ordinal, Real  # noqa: E402
from emews.testing.optimizers import run_with_fake_driver  # noqa: E402

PEERS = ("tpe", "optuna-gp", "cbo")
_SLOW = ("optuna-gp", "cbo")
#: the package each peer needs
_NEEDS = {"tpe": ("optuna",), "optuna-gp": ("optuna", "torch", "scipy"), "cbo": ("deephyper",)}
#: relative tolerance of "matches": a regret within 5 % of the other's (or both below 1e-6)
_TOL = 1.05

Trace = list[tuple[float, dict]]  # (observed loss, params) in evaluation order


def run_emews(name: str, problem: Problem, seed: int, evals: int, batch: int, settings: dict | None = None) -> Trace:
    run = run_with_fake_driver(name, problem.space, problem.objective, settings=settings, max_evals=evals,
                               capacity=batch, seed=seed, mode="batch", batch_size=batch)
    # in the order asked (the peers' order), not of completion: the first b evaluations are then
    # the same whatever --evals is (a batch cut at the budget holds the first points it picked)
    done = sorted((r for r in run.results if r.status != "cancelled"), key=lambda r: r.task_id)
    return [(float(r.loss) if r.ok else float("inf"), r.params) for r in done]


def _full_params(problem: Problem, values: dict) -> dict:
    """Params of the space from a peer's values (ordinals arrive as their index)."""
    p = {}
    for d in problem.space.dims:
        if isinstance(d, Constant):
            p[d.name] = d.value
        elif isinstance(d, Ordinal):
            p[d.name] = d.values[int(values[d.name])]
        elif isinstance(d, Int):
            p[d.name] = int(values[d.name])
        elif isinstance(d, Real):
            p[d.name] = float(values[d.name])
        else:
            p[d.name] = values[d.name]
    return p


def run_optuna(make_sampler: Callable[[int], object], problem: Problem, seed: int, evals: int, batch: int) -> Trace:
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
    study = optuna.create_study(sampler=make_sampler(seed), direction="minimize")
    trace: Trace = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        while len(trace) < evals:
            trials = [study.ask(dists) for _ in range(min(batch, evals - len(trace)))]
            for t in trials:
                p = _full_params(problem, t.params)
                loss = problem.objective(p)
                trace.append((loss, p))
                study.tell(t, loss)
    return trace


def run_tpe(problem: Problem, seed: int, evals: int, batch: int) -> Trace:
    import optuna

    return run_optuna(lambda s: optuna.samplers.TPESampler(constant_liar=True, seed=s), problem, seed, evals, batch)


def run_optuna_gp(problem: Problem, seed: int, evals: int, batch: int) -> Trace:
    import optuna

    return run_optuna(lambda s: optuna.samplers.GPSampler(seed=s), problem, seed, evals, batch)


def run_cbo(problem: Problem, seed: int, evals: int, batch: int) -> Trace:
    import logging

    from deephyper.hpo import CBO, HpProblem

    logging.getLogger("deephyper").setLevel(logging.WARNING)
    hp = HpProblem()
    for d in problem.space.dims:
        if isinstance(d, Real):
            hp.add_hyperparameter((d.low, d.high, "log-uniform") if d.log else (d.low, d.high), d.name)
        elif isinstance(d, Int):
            hp.add_hyperparameter((d.low, d.high, "log-uniform") if d.log else (d.low, d.high), d.name)
        elif isinstance(d, Ordinal):  # ordered: the index, as an integer
            hp.add_hyperparameter((0, len(d.values) - 1), d.name)
        elif isinstance(d, Categorical):
            hp.add_hyperparameter(list(d.values), d.name)
        elif isinstance(d, Bool):
            hp.add_hyperparameter([False, True], d.name)
    trace: Trace = []
    with tempfile.TemporaryDirectory() as log_dir, warnings.catch_warnings():
        warnings.simplefilter("ignore")
        # acq_optimizer="sampling": the default "mixedga" took 90 s per 48 evaluations here
        search = CBO(hp, random_state=seed, log_dir=log_dir, checkpoint_history_to_csv=False, verbose=0,
                     acq_optimizer="sampling")
        while len(trace) < evals:
            configs = search.ask(min(batch, evals - len(trace)))
            told = []
            for c in configs:
                p = _full_params(problem, c)
                loss = problem.objective(p)
                trace.append((loss, p))
                told.append((c, -loss))  # DeepHyper maximizes
            search.tell(told)
    return trace


RUNNERS = {"tpe": run_tpe, "optuna-gp": run_optuna_gp, "cbo": run_cbo}


def curve(problem: Problem, trace: Trace) -> list[float]:
    """Regret of the incumbent (the point of best observed loss) after each evaluation."""
    out, best, regret = [], float("inf"), float("inf")
    for loss, params in trace:
        if loss < best:
            best, regret = loss, max(problem.true_loss(params) - problem.optimum, 0.0)
        out.append(regret)
    return out


def run_cached(opt: str, problem: Problem, seed: int, evals: int, batch: int, cache: Path | None) -> list[float]:
    """A peer's regret curve, from ``cache`` when this run was made before (peers are seeded)."""
    path = cache / f"{problem.name}-{opt}-s{seed}-n{evals}-b{batch}.json" if cache else None
    if path is not None and path.exists():
        return json.loads(path.read_text())["curve"]
    t0 = time.perf_counter()
    c = curve(problem, RUNNERS[opt](problem, seed, evals, batch))
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps({"curve": c, "seconds": time.perf_counter() - t0}))
    return c


def _settings(text: str) -> dict:
    settings: dict = {}
    for item in filter(None, text.split(",")):
        k, _, v = item.partition("=")
        for cast in (int, float):
            try:
                settings[k] = cast(v)
                break
            except ValueError:
                continue
        else:
            settings[k] = v
    return settings


def _available(opt: str) -> str | None:
    """Why a peer cannot run here (None: it can)."""
    import importlib.util

    missing = [m for m in _NEEDS.get(opt, ()) if importlib.util.find_spec(m) is None]
    return f"{opt}: skipped: {', '.join(missing)} not installed (pip install \"emews[bench]\")" if missing else None


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", type=int, default=5)
    ap.add_argument("--evals", type=int, default=300)
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--budgets", default="50,100,300", help="report the regret after this many evaluations")
    ap.add_argument("--goal", type=int, default=100, help="the budget the verdicts are given at")
    ap.add_argument("--problems", default=",".join(PROBLEMS))
    ap.add_argument("--optimizers", default="mbo,random,tpe,optuna-gp,cbo")
    ap.add_argument("--slow-peer-evals", type=int, default=None,
                    help="evaluations of optuna-gp and cbo (default --evals; seconds per run grow fast)")
    ap.add_argument("--cache", type=Path, default=None,
                    help="directory of the peers' results (each run made once; delete it after changing a problem)")
    ap.add_argument("--mbo-settings", default="", help="extra mbo settings, e.g. surrogate=rf,acquisition=lcb")
    args = ap.parse_args()
    os.environ.setdefault("OMP_NUM_THREADS", "1")  # GPSampler's advice; the machine is shared

    mbo_settings = _settings(args.mbo_settings)
    optimizers = []
    for opt in args.optimizers.split(","):
        why = _available(opt)
        if why:
            print(why)
        else:
            optimizers.append(opt)
    budgets = sorted(b for b in map(int, args.budgets.split(",")) if b <= args.evals)
    goal = args.goal if args.goal in budgets else budgets[-1]
    problems = [PROBLEMS[p] for p in args.problems.split(",")]
    seeds = list(range(args.seeds))
    print(f"median regret over {len(seeds)} seeds, {args.evals} evaluations in batches of {args.batch}"
          + (f" ({', '.join(_SLOW)}: {args.slow_peer_evals})" if args.slow_peer_evals else "")
          + (f"; mbo settings {mbo_settings}" if mbo_settings else ""), flush=True)
    table: dict[tuple[str, str], list[list[float]]] = {}  # (problem, optimizer) -> per seed, per budget
    seconds: dict[str, list[float]] = {o: [] for o in optimizers}
    for prob in problems:
        for opt in optimizers:
            evals = args.slow_peer_evals if args.slow_peer_evals and opt in _SLOW else args.evals
            rows = []
            for s in seeds:
                t0 = time.perf_counter()
                if opt in RUNNERS:
                    c = run_cached(opt, prob, s, evals, args.batch, args.cache)
                    path = args.cache / f"{prob.name}-{opt}-s{s}-n{evals}-b{args.batch}.json" if args.cache else None
                    took = json.loads(path.read_text())["seconds"] if path else time.perf_counter() - t0
                else:
                    c = curve(prob, run_emews(opt, prob, s, evals, args.batch, mbo_settings if opt == "mbo" else None))
                    took = time.perf_counter() - t0
                seconds[opt].append(took)
                rows.append([c[b - 1] if b <= len(c) else float("nan") for b in budgets])
            table[prob.name, opt] = rows
            print(f"  {prob.name} {opt}: {statistics.median(seconds[opt][-len(seeds):]):.1f} s per run", flush=True)

    def median(prob: Problem, opt: str, k: int) -> float:
        return float(np.median([row[k] for row in table[prob.name, opt]]))

    w = 22
    for k, b in enumerate(budgets):
        print(f"\nregret after {b} evaluations: median [25 %, 75 %]")
        print(f"{'problem':<18}" + "".join(f"{o:>{w}}" for o in optimizers))
        for prob in problems:
            cells = []
            for opt in optimizers:
                col = np.asarray([row[k] for row in table[prob.name, opt]])
                if np.isnan(col).all():
                    cells.append("-")
                    continue
                q1, q3 = np.percentile(col, [25, 75])
                cells.append(f"{np.median(col):.3g} [{q1:.2g}, {q3:.2g}]")
            print(f"{prob.name:<18}" + "".join(f"{c:>{w}}" for c in cells))
    print("\nseconds per run (median)".ljust(18) + "".join(f"{statistics.median(seconds[o]):>{w}.2f}" for o in optimizers))

    if "mbo" in optimizers:
        k = budgets.index(goal)
        peers = [o for o in optimizers if o in PEERS]
        print(f"\nat {goal} evaluations (matches: within {100 * (_TOL - 1):.0f} % of the regret, or both < 1e-6):")
        n_peer = n_random = 0
        for prob in problems:
            m = median(prob, "mbo", k)
            line = f"{prob.name}: mbo {m:.3g}"
            if "random" in optimizers:
                r = median(prob, "random", k)
                ok = m <= r
                n_random += ok
                line += f"; random {r:.3g}: {'not worse' if ok else 'WORSE than random'}"
            if peers:
                best_peer = min(peers, key=lambda o: median(prob, o, k))
                p = median(prob, best_peer, k)
                ok = m <= p * _TOL or max(m, p) < 1e-6
                n_peer += ok
                verdict = "beats" if m < p else "matches" if ok else "TRAILS"
                line += f"; best peer {best_peer} {p:.3g}: {verdict}"
            print(line)
        if "random" in optimizers:
            print(f"mbo not worse than random on {n_random}/{len(problems)} problems")
        if peers:
            print(f"mbo <= the best of {{{', '.join(peers)}}} on {n_peer}/{len(problems)} problems")
    return 0


if __name__ == "__main__":
    sys.exit(main())
