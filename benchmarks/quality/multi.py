"""Several objectives: hypervolume at 100 and 300 evaluations in batches of 8, against peers.

    python benchmarks/quality/multi.py [--seeds 5] [--evals 300] [--budgets 100,300] [--batch 8]
                                       [--problems zdt1,zdt2,dtlz2,c2dtlz2]
                                       [--methods mbo,mbo-sum,ga,ga-sum,nsga2,tpe,optuna-gp]
                                       [--cache DIR] [--fresh mbo,ga] [--slow-peer-evals N]

Problems (every objective minimized; hypervolume against the stated reference point, and as a
fraction of the true front's):

* ``zdt1``, ``zdt2``: 6 dimensions in [0, 1], 2 objectives (convex and concave fronts
  ``f2 = 1 - sqrt(f1)`` and ``1 - f1^2``); reference (1.1, 1.1);
* ``dtlz2``: 6 dimensions, 3 objectives, the unit sphere's octant as front; reference
  (1.1, 1.1, 1.1), true hypervolume ``1.1^3 - pi/6``;
* ``c2dtlz2``: DTLZ2 (6 dimensions, 3 objectives) with C2-DTLZ2's constraint (Jain & Deb 2014,
  r = 0.4): feasible within 0.4 of a corner of the front or of its centre line; the violation
  is the amount by which the nearest of those regions is missed. Reference (1.1, 1.1, 1.1);
  the true hypervolume is that of the feasible part of the front sampled on a 150 x 150
  grid of its angles (slightly below the truth).

Methods, each ``--evals`` evaluations asked in batches of ``--batch`` (asked, evaluated, told):

* ``mbo``: emews' ``MBO`` (its defaults) told results that carry ``objectives`` (and
  ``violation``): EHVI without constraints, ParEGO with them (``multi_method: auto``);
  ``mbo-ehvi``, ``mbo-parego``: one method on every problem;
* ``mbo-sum``: ``MBO`` told the summed objectives plus ``PENALTY`` x violation as its one loss
  (the naive scalarization the goal is measured against);
* ``ga``: emews' ``GA`` told results with objectives (run only when ``GA.multi_objective`` is
  True: its NSGA-II), ``ga-sum``: ``GA`` on the summed loss; both resident loops of their own
  (generations of 16, each evaluated in chunks of ``--batch``);
* ``nsga2``: Optuna's ``NSGAIISampler(seed=s)`` (population 50), ``tpe``: ``TPESampler(seed=s)``
  (multi-objective, constant liar), ``optuna-gp``: ``GPSampler(seed=s)``; with constraints,
  each gets ``constraints_func`` (the violation).

The hypervolume after ``b`` evaluations counts the feasible points among the first ``b``.
With ``--cache DIR`` each run of a method not named in ``--fresh`` (default: ``mbo,ga``, the
ones being worked on) is made once and kept in ``DIR`` (every method is seeded: a run repeats).
Prints per budget the median hypervolume fraction [25 %, 75 %], then per problem at each
budget the goals of issue 23.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import statistics
import sys
import time
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

import numpy as np  # noqa: E402

from emews._pareto import hypervolume  # noqa: E402
from emews.errors import StopSearch  # noqa: E402
from emews.space import Real, Space  # noqa: E402
from emews.task import CANCELLED, DONE, Result  # noqa: E402

#: the weight of the violation in the summed loss of ``mbo-sum`` and ``ga-sum``
PENALTY = 10.0

Evaluation = tuple[tuple[float, ...], float | None]  # objectives (to minimize), violation (None: unconstrained)


@dataclass(frozen=True)
class MultiProblem:
    """A problem with several objectives: ``evaluate(params) -> (objectives, violation)``."""

    name: str
    space: Space
    evaluate: Callable[[dict], Evaluation]
    reference: tuple[float, ...]
    true_hypervolume: float
    constrained: bool = False

    @property
    def m(self) -> int:
        return len(self.reference)


def _x(p: dict, n: int) -> np.ndarray:
    return np.array([p[f"x{i}"] for i in range(n)], dtype=float)


def _unit_space(n: int) -> Space:
    return Space([Real(f"x{i}", 0.0, 1.0) for i in range(n)])


def zdt1(p: dict) -> Evaluation:
    x = _x(p, 6)
    g = 1.0 + 9.0 * x[1:].sum() / (len(x) - 1)
    return (float(x[0]), float(g * (1.0 - math.sqrt(x[0] / g)))), None


def zdt2(p: dict) -> Evaluation:
    x = _x(p, 6)
    g = 1.0 + 9.0 * x[1:].sum() / (len(x) - 1)
    return (float(x[0]), float(g * (1.0 - (x[0] / g) ** 2))), None


def _dtlz2(x: np.ndarray, m: int = 3) -> np.ndarray:
    g = float(((x[m - 1 :] - 0.5) ** 2).sum())
    f = np.full(m, 1.0 + g)
    for i in range(m):
        f[i] *= np.prod(np.cos(x[: m - 1 - i] * math.pi / 2))
        if i > 0:
            f[i] *= math.sin(x[m - 1 - i] * math.pi / 2)
    return f


def dtlz2(p: dict) -> Evaluation:
    return tuple(float(v) for v in _dtlz2(_x(p, 6))), None


def c2_violation(f: np.ndarray, r: float = 0.4) -> float:
    """C2-DTLZ2: 0 within ``r`` of a corner of the front or of its centre line, else the margin."""
    m = len(f)
    corners = [(f[i] - 1.0) ** 2 + (f**2).sum() - f[i] ** 2 - r * r for i in range(m)]
    centre = float(((f - 1.0 / math.sqrt(m)) ** 2).sum()) - r * r
    return max(0.0, min(min(corners), centre))


def c2dtlz2(p: dict) -> Evaluation:
    f = _dtlz2(_x(p, 6))
    return tuple(float(v) for v in f), c2_violation(f)


def hypervolume3(points: np.ndarray, ref: Sequence[float]) -> float:
    """Exact 3-D hypervolume, vectorized (slices along the third objective); for the large
    sampled fronts of the true hypervolume."""
    P = np.asarray(points, dtype=float)
    P = P[np.all(P < np.asarray(ref), axis=1)]
    P = P[np.argsort(P[:, 2], kind="stable")]
    vol = 0.0
    for k in range(len(P)):
        upper = P[k + 1, 2] if k + 1 < len(P) else ref[2]
        if upper <= P[k, 2]:
            continue
        Q = P[: k + 1, :2]
        Q = Q[np.argsort(Q[:, 0], kind="stable")]
        run = np.minimum.accumulate(Q[:, 1])
        widths = np.diff(np.r_[Q[:, 0], ref[0]])
        vol += (upper - P[k, 2]) * float((widths * (ref[1] - run)).sum())
    return vol


def _c2_true(ref: Sequence[float], n: int = 150) -> float:
    a, b = np.meshgrid(np.linspace(0, 1, n), np.linspace(0, 1, n))
    X = np.c_[a.ravel(), b.ravel(), np.full((n * n, 4), 0.5)]
    F = np.array([_dtlz2(x) for x in X])
    ok = np.array([c2_violation(f) <= 0 for f in F])
    return hypervolume3(F[ok], ref)


def _problems() -> dict[str, Callable[[], MultiProblem]]:
    ref2, ref3 = (1.1, 1.1), (1.1, 1.1, 1.1)
    # the area under the reference and above the front f2 = 1 - f1^a (f1 in [0, 1]), plus f1 in [1, r1]
    def zdt_true(a: float) -> float:
        return (ref2[1] - 1.0 + 1.0 / (a + 1.0)) + (ref2[0] - 1.0) * ref2[1]

    return {
        "zdt1": lambda: MultiProblem("zdt1", _unit_space(6), zdt1, ref2, zdt_true(0.5)),
        "zdt2": lambda: MultiProblem("zdt2", _unit_space(6), zdt2, ref2, zdt_true(2.0)),
        "dtlz2": lambda: MultiProblem("dtlz2", _unit_space(6), dtlz2, ref3, 1.1**3 - math.pi / 6),
        "c2dtlz2": lambda: MultiProblem("c2dtlz2", _unit_space(6), c2dtlz2, ref3, _c2_true(ref3), constrained=True),
    }


PROBLEMS = _problems()


def summed(e: Evaluation) -> float:
    f, v = e
    return float(sum(f)) + PENALTY * float(v or 0.0)


def result(tid: int, p: dict, e: Evaluation, multi: bool) -> Result:
    """The result the driver would hand the optimizer: with objectives (multi) or the summed loss."""
    f, v = e
    if multi:
        return Result(tid, p, DONE, loss=f[0], objectives=tuple(f), violation=v)
    return Result(tid, p, DONE, loss=summed(e))


# -- the runs ------------------------------------------------------------------------------------
Trace = list[Evaluation]


def run_mbo(problem: MultiProblem, seed: int, evals: int, batch: int, multi: bool, method: str = "auto") -> Trace:
    from emews.optimizers.mbo import MBO

    opt = MBO(problem.space, seed=seed, multi_method=method)
    trace: Trace = []
    while len(trace) < evals:
        ps = opt.ask(min(batch, evals - len(trace)))
        told = []
        for p in ps:
            e = problem.evaluate(p)
            told.append(result(len(trace), p, e, multi))
            trace.append(e)
        opt.tell(told)
    return trace


class _Queues:
    """The part of :class:`~emews.queues.OptimizerQueues` a resident GA uses, in-process:
    each batch evaluated at once, in chunks of ``batch`` (the budget cancels the rest)."""

    def __init__(self, problem: MultiProblem, evals: int, batch: int, multi: bool):
        self.problem, self.max_evals, self.capacity, self.multi = problem, evals, batch, multi
        self.space = problem.space
        self.warm_start: list[Result] = []
        self.trace: Trace = []

    @property
    def remaining(self) -> int:
        return self.max_evals - len(self.trace)

    def evaluate(self, params_list: Sequence[dict]) -> list[Result]:
        if self.remaining <= 0:
            raise StopSearch("max_evals reached")
        out = []
        for p in params_list:
            tid = len(self.trace)
            if self.remaining <= 0:
                out.append(Result(tid, dict(p), CANCELLED, error="budget"))
                continue
            e = self.problem.evaluate(p)
            self.trace.append(e)
            out.append(result(tid, dict(p), e, self.multi))
        return out

    def log(self, record: dict) -> None:
        pass


def run_ga(problem: MultiProblem, seed: int, evals: int, batch: int, multi: bool) -> Trace:
    from emews.optimizers.ga import GA

    queues = _Queues(problem, evals, batch, multi)
    try:
        GA(problem.space, seed=seed).run(queues)  # type: ignore[arg-type]
    except StopSearch:
        pass
    return queues.trace


def run_optuna(name: str, problem: MultiProblem, seed: int, evals: int, batch: int) -> Trace:
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    kw: dict = {"seed": seed}
    if problem.constrained:
        kw["constraints_func"] = lambda t: [t.user_attrs["violation"]]
    trace: Trace = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # constraints_func is deprecated in Optuna 5 (still honoured)
        if name == "nsga2":
            sampler = optuna.samplers.NSGAIISampler(**kw)
        elif name == "tpe":
            sampler = optuna.samplers.TPESampler(constant_liar=True, **kw)
        else:
            sampler = optuna.samplers.GPSampler(**kw)
        dists = {d.name: optuna.distributions.FloatDistribution(d.low, d.high) for d in problem.space.dims}
        study = optuna.create_study(sampler=sampler, directions=["minimize"] * problem.m)
        while len(trace) < evals:
            trials = [study.ask(dists) for _ in range(min(batch, evals - len(trace)))]
            for t in trials:
                e = problem.evaluate(dict(t.params))
                trace.append(e)
                if problem.constrained:
                    t.set_user_attr("violation", float(e[1]))
                study.tell(t, list(e[0]))
    return trace


METHODS: dict[str, Callable[[MultiProblem, int, int, int], Trace]] = {
    "mbo": lambda pr, s, n, b: run_mbo(pr, s, n, b, True),
    "mbo-sum": lambda pr, s, n, b: run_mbo(pr, s, n, b, False),
    "mbo-parego": lambda pr, s, n, b: run_mbo(pr, s, n, b, True, "parego"),
    "mbo-ehvi": lambda pr, s, n, b: run_mbo(pr, s, n, b, True, "ehvi"),
    "ga": lambda pr, s, n, b: run_ga(pr, s, n, b, True),
    "ga-sum": lambda pr, s, n, b: run_ga(pr, s, n, b, False),
    "nsga2": lambda pr, s, n, b: run_optuna("nsga2", pr, s, n, b),
    "tpe": lambda pr, s, n, b: run_optuna("tpe", pr, s, n, b),
    "optuna-gp": lambda pr, s, n, b: run_optuna("optuna-gp", pr, s, n, b),
}
PEERS = ("nsga2", "tpe", "optuna-gp")
_SLOW = ("optuna-gp",)


def hv_at(problem: MultiProblem, trace: Trace, budget: int) -> float:
    """Hypervolume of the feasible points among the first ``budget`` evaluations."""
    pts = [f for f, v in trace[:budget] if v is None or v <= 0]
    return hypervolume(np.asarray(pts, dtype=float).reshape(-1, problem.m), problem.reference) if pts else 0.0


def run_cached(method: str, problem: MultiProblem, seed: int, evals: int, batch: int, cache: Path | None,
               fresh: set[str]) -> tuple[Trace, float]:
    path = cache / f"{problem.name}-{method}-s{seed}-n{evals}-b{batch}.json" if cache else None
    if path is not None and method not in fresh and path.exists():
        data = json.loads(path.read_text())
        return [(tuple(f), v) for f, v in data["trace"]], data["seconds"]
    t0 = time.perf_counter()
    trace = METHODS[method](problem, seed, evals, batch)
    seconds = time.perf_counter() - t0
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps({"trace": [[list(f), v] for f, v in trace], "seconds": seconds}))
    return trace, seconds


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", type=int, default=5)
    ap.add_argument("--evals", type=int, default=300)
    ap.add_argument("--budgets", default="100,300", help="report the hypervolume after this many evaluations")
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--problems", default=",".join(PROBLEMS))
    ap.add_argument("--methods", default="mbo,mbo-sum,ga,ga-sum,nsga2,tpe,optuna-gp")
    ap.add_argument("--slow-peer-evals", type=int, default=None, help="evaluations of optuna-gp (default --evals)")
    ap.add_argument("--cache", type=Path, default=None, help="directory of earlier runs (see --fresh)")
    ap.add_argument("--fresh", default="mbo,ga", help="methods always run again, even with --cache")
    args = ap.parse_args()
    os.environ.setdefault("OMP_NUM_THREADS", "1")

    from emews.optimizers.ga import GA

    methods = []
    for m in args.methods.split(","):
        if m not in METHODS:
            ap.error(f"--methods: unknown method {m!r} (known: {', '.join(METHODS)})")
        if m == "ga" and not getattr(GA, "multi_objective", False):
            print("ga: skipped: GA.multi_objective is not True here (its NSGA-II is not merged)")
            continue
        methods.append(m)
    budgets = sorted(b for b in map(int, args.budgets.split(",")) if b <= args.evals)
    problems = [PROBLEMS[p]() for p in args.problems.split(",")]
    seeds = list(range(args.seeds))
    fresh = set(filter(None, args.fresh.split(",")))
    print(f"hypervolume over {len(seeds)} seeds, {args.evals} evaluations in batches of {args.batch}"
          + (f" (optuna-gp: {args.slow_peer_evals})" if args.slow_peer_evals else ""), flush=True)
    for pr in problems:
        print(f"  {pr.name}: reference {pr.reference}, true front's hypervolume {pr.true_hypervolume:.4f}")
    hv: dict[tuple[str, str], list[list[float]]] = {}  # (problem, method) -> per seed, per budget (fraction)
    seconds: dict[tuple[str, str], list[float]] = {}
    for pr in problems:
        for m in methods:
            evals = args.slow_peer_evals if args.slow_peer_evals and m in _SLOW else args.evals
            rows, secs = [], []
            for s in seeds:
                trace, took = run_cached(m, pr, s, evals, args.batch, args.cache, fresh)
                secs.append(took)
                rows.append([hv_at(pr, trace, b) / pr.true_hypervolume if b <= len(trace) else math.nan
                             for b in budgets])
            hv[pr.name, m], seconds[pr.name, m] = rows, secs
            print(f"  {pr.name} {m}: {statistics.median(secs):.1f} s per run", flush=True)

    def med(p: str, m: str, k: int) -> float:
        col = [row[k] for row in hv[p, m]]
        return math.nan if all(math.isnan(c) for c in col) else float(np.nanmedian(col))

    w = 22
    for k, b in enumerate(budgets):
        print(f"\nhypervolume after {b} evaluations, as a fraction of the true front's: median [25 %, 75 %]")
        print(f"{'problem':<10}" + "".join(f"{m:>{w}}" for m in methods))
        for pr in problems:
            cells = []
            for m in methods:
                col = np.asarray([row[k] for row in hv[pr.name, m]])
                if np.isnan(col).all():
                    cells.append("-")
                    continue
                q1, q3 = np.nanpercentile(col, [25, 75])
                cells.append(f"{np.nanmedian(col):.3f} [{q1:.3f}, {q3:.3f}]")
            print(f"{pr.name:<10}" + "".join(f"{c:>{w}}" for c in cells))
    print(f"\n{'s per run':<10}" + "".join(
        f"{statistics.median([x for pr in problems for x in seconds[pr.name, m]]):>{w}.1f}" for m in methods))

    peers = [m for m in methods if m in PEERS]
    for k, b in enumerate(budgets):
        print(f"\ngoals at {b} evaluations (median hypervolume fractions):")
        held = 0
        for pr in problems:
            line = f"{pr.name}:"
            if "mbo" in methods and "mbo-sum" in methods:
                mb, ms = med(pr.name, "mbo", k), med(pr.name, "mbo-sum", k)
                gap = 1.0 - ms
                closed = (mb - ms) / gap if gap > 0 else math.nan
                line += f" mbo {mb:.3f}, mbo-sum {ms:.3f}, gap closed {closed:+.2f}"
                ok = closed >= 1 / 3
                if peers:
                    valid = [p for p in peers if not math.isnan(med(pr.name, p, k))]
                    best = max(valid, key=lambda p: med(pr.name, p, k)) if valid else None
                    if best is not None:
                        line += f"; best peer {best} {med(pr.name, best, k):.3f}"
                        ok = ok and mb >= med(pr.name, best, k)
                held += ok
                line += f": {'held' if ok else 'NOT held'}"
            if "ga" in methods:
                g = med(pr.name, "ga", k)
                parts = []
                if "nsga2" in methods:
                    n2 = med(pr.name, "nsga2", k)
                    parts.append(f"ga/nsga2 {g / n2 if n2 > 0 else math.inf:.2f} ({'ok' if g >= 0.95 * n2 else 'BELOW 0.95'})")
                if "ga-sum" in methods:
                    gs = med(pr.name, "ga-sum", k)
                    parts.append(f"ga {g:.3f} vs ga-sum {gs:.3f} ({'ok' if g >= gs else 'BELOW'})")
                line += ("; " if line[-1] != ":" else " ") + ", ".join(parts)
            print(line)
        if "mbo" in methods and "mbo-sum" in methods:
            print(f"mbo goal (>= best peer and closes >= 1/3 of mbo-sum's gap) held on {held}/{len(problems)} problems"
                  + (" (goal: >= 3 of 4 at 100)" if b == 100 else ""))
    return 0


if __name__ == "__main__":
    sys.exit(main())
