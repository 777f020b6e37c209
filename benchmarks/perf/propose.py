"""Batch-proposal speed of ``mbo``: its default GP on a numeric space, and its forest against
scikit-optimize's own batch ask (same surrogate, RF) on a mixed space.

    python benchmarks/perf/propose.py [--quick] [--cap 120] [--no-baseline] [--multi]

An 8-dimensional mixed space (3 real, one of them log-scale; 2 int; 1 ordinal; 1 categorical;
1 bool), N random observations with a synthetic loss, then a batch of q proposals:

* ``mbo``: ``MBO(space, surrogate="rf")``, all N observations told, then ``ask(q)`` timed
  (it includes the one surrogate fit and the whole batch selection);
* baseline: ``skopt.Optimizer(dims, base_estimator="RF", acq_optimizer="sampling")``, the
  same observations told with ``tell(X, y)`` (one fit) and ``ask(q, strategy="cl_min")``
  (constant liar: one refit per proposed point); tell + ask timed, in a subprocess killed
  after ``--cap`` seconds (reported as "> cap").

Sizes: N=1,000 / q=100 and N=5,000 / q=1,000 (``--quick``: N=300 / q=20 and N=1,000 / q=100).
Goals on a 2-core machine: mbo <= 5 s for q=100 at N=1,000 and <= 60 s for q=1,000 at N=5,000.

The default surrogate on an 8-dimensional numeric space (``NUMERIC``: reals, log-scale reals,
integers, an ordinal; ``surrogate="auto"`` picks the GP) is timed twice per size:

* ``cold``: the first proposal of a fresh optimizer told all N observations (its kernel
  hyperparameters are searched once);
* ``warm``: the step of a running search: the optimizer fitted at N / 1.1 observations, then
  told the rest (the hyperparameters are kept until the data has grown by 20 %).

Goals for the default surrogate: <= 2 s for q=100 at N=1,000 and <= 10 s for q=1,000 at N=5,000.
The default surrogate (the GP, with its Hamming term) is timed the same way on the mixed space.

``--multi``: results with 2 or 3 objectives (the loss, a training-time-like cost, a size-like
cost), with and without a constraint, by EHVI (one GP per objective; its cost grows with the
boxes of the non-dominated region, front + 1 for 2 objectives, up to (front + 1)^2 for 3) and by
ParEGO (one model per proposal); batches of 1 and 8 (8 in flight) are timed.
Goal: <= 2 s at 1,000 observations (warm).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402

from emews.space import Bool, Categorical, Int, Ordinal, Real, Space  # noqa: E402
from emews.task import Result  # noqa: E402

SPACE = Space([
    Real("learning_rate", 1e-5, 1e-1, log=True),
    Real("dropout", 0.0, 0.9),
    Real("momentum", 0.0, 1.0),
    Int("units", 8, 512),
    Int("layers", 1, 8),
    Ordinal("batch_size", [16, 32, 64, 128, 256, 512, 1024]),
    Categorical("optimizer", ["adam", "sgd", "rmsprop", "adagrad"]),
    Bool("residual"),
])


NUMERIC = Space([
    Real("learning_rate", 1e-5, 1e-1, log=True),
    Real("dropout", 0.0, 0.9),
    Real("momentum", 0.0, 1.0),
    Real("weight_decay", 1e-6, 1e-2, log=True),
    Int("units", 8, 512),
    Int("layers", 1, 8),
    Int("warmup", 0, 10),
    Ordinal("batch_size", [16, 32, 64, 128, 256, 512, 1024]),
])


def numeric_loss(p: dict) -> float:
    return float((math.log10(p["learning_rate"]) + 3) ** 2 + (p["dropout"] - 0.3) ** 2 + (p["momentum"] - 0.9) ** 2
                 + 0.1 * (math.log10(p["weight_decay"]) + 4) ** 2 + ((p["units"] - 200) / 100) ** 2
                 + 0.1 * abs(p["layers"] - 4) + 0.02 * (p["warmup"] - 3) ** 2
                 + 0.2 * abs(math.log2(p["batch_size"]) - 7))


def time_default(n_obs: int, q: int, warm: bool, space: Space | None = None,
                 objective=None) -> tuple[float, dict]:
    """Seconds of ask(q) with the default settings on ``space`` (NUMERIC) after n_obs observations."""
    from emews.optimizers.mbo import MBO

    space = space or NUMERIC
    objective = objective or numeric_loss
    params = space.sample(n_obs, seed=0)
    noise = np.random.default_rng(1).normal(0, 0.05, n_obs)
    results = [Result(i, p, "done", loss=objective(p) + float(e)) for i, (p, e) in enumerate(zip(params, noise))]
    opt = MBO(space, seed=0)
    if warm:
        first = int(n_obs / 1.1)
        opt.tell(results[:first])
        opt._fit()  # the previous step's fit
        opt.log()
        opt.tell(results[first:])
    else:
        opt.tell(results)
    t0 = time.perf_counter()
    out = opt.ask(q)
    seconds = time.perf_counter() - t0
    assert len(out) == q and len({space.key(p) for p in out}) == q, "mbo proposed repeats"
    return seconds, opt.log() or {}


def numeric_cost(p: dict) -> float:
    """A second objective for ``--multi``: a training-time-like cost, in conflict with the loss."""
    return float(p["units"] * p["layers"] / p["batch_size"] + 0.1 * p["warmup"])


def numeric_memory(p: dict) -> float:
    """A third objective for ``--multi``: a model-size-like cost (units, layers), against the cost."""
    return float(p["units"] * p["layers"] / 1000 + 5 * p["dropout"])


def time_multi(n_obs: int, q: int, warm: bool, constrained: bool = False, m: int = 2,
               method: str = "auto") -> tuple[float, dict]:
    """Seconds of ask(q) after n_obs results with ``m`` objectives (2 or 3), with or without a
    constraint, by ``multi_method`` (auto: EHVI for these), and the optimizer's last log."""
    from emews.optimizers.mbo import MBO

    params = NUMERIC.sample(n_obs, seed=0)
    noise = np.random.default_rng(1).normal(0, 0.05, n_obs)
    results = []
    for i, (p, e) in enumerate(zip(params, noise)):
        f = (numeric_loss(p) + float(e), numeric_cost(p), numeric_memory(p))[:m]
        v = max(0.0, p["units"] * p["layers"] / 1000 - 1.5) if constrained else None
        results.append(Result(i, p, "done", loss=f[0], objectives=f, violation=v))
    opt = MBO(NUMERIC, seed=0, multi_method=method)
    if warm:
        first = int(n_obs / 1.1)
        opt.tell(results[:first])
        opt.ask(1)  # the previous step's fits
        opt.tell(results[first:])
    else:
        opt.tell(results)
    t0 = time.perf_counter()
    out = opt.ask(q)
    seconds = time.perf_counter() - t0
    assert len(out) == q and len({NUMERIC.key(p) for p in out}) == q, "mbo proposed repeats"
    return seconds, opt.log() or {}


def loss(p: dict) -> float:
    return float((math.log10(p["learning_rate"]) + 3) ** 2 + (p["dropout"] - 0.3) ** 2 + (p["momentum"] - 0.9) ** 2
                 + ((p["units"] - 200) / 100) ** 2 + 0.1 * abs(p["layers"] - 4)
                 + 0.2 * abs(math.log2(p["batch_size"]) - 7)
                 + {"adam": 0.0, "sgd": 0.3, "rmsprop": 0.1, "adagrad": 0.5}[p["optimizer"]]
                 + (0.0 if p["residual"] else 0.2))


def observations(n: int, seed: int = 0) -> tuple[list[dict], list[float]]:
    params = SPACE.sample(n, seed=seed)
    noise = np.random.default_rng(seed + 1).normal(0, 0.05, n)
    return params, [loss(p) + float(e) for p, e in zip(params, noise)]


def time_mbo(n_obs: int, q: int) -> tuple[float, dict]:
    from emews.optimizers.mbo import MBO

    params, losses = observations(n_obs)
    opt = MBO(SPACE, seed=0, surrogate="rf")
    opt.tell([Result(i, p, "done", loss=y) for i, (p, y) in enumerate(zip(params, losses))])
    t0 = time.perf_counter()
    out = opt.ask(q)
    seconds = time.perf_counter() - t0
    assert len(out) == q and len({SPACE.key(p) for p in out}) == q, "mbo proposed repeats"
    for p in out:
        SPACE.validate(p)
    return seconds, opt.log() or {}


def _skopt_child(n_obs: int, q: int) -> None:
    """Runs in the subprocess: prints the seconds of tell + ask(q, "cl_min")."""
    import warnings

    warnings.simplefilter("ignore")
    from skopt import Optimizer
    from skopt.space import Categorical as SkCat
    from skopt.space import Integer, Real as SkReal

    dims = [SkReal(1e-5, 1e-1, prior="log-uniform"), SkReal(0.0, 0.9), SkReal(0.0, 1.0), Integer(8, 512),
            Integer(1, 8), SkCat([16, 32, 64, 128, 256, 512, 1024]), SkCat(["adam", "sgd", "rmsprop", "adagrad"]),
            SkCat([False, True])]
    params, losses = observations(n_obs)
    X = [[p[d.name] for d in SPACE.dims] for p in params]
    opt = Optimizer(dims, base_estimator="RF", acq_optimizer="sampling", n_initial_points=1, random_state=0)
    t0 = time.perf_counter()
    opt.tell(X, losses)
    opt.ask(q, strategy="cl_min")
    print(json.dumps({"seconds": time.perf_counter() - t0}))


def time_skopt(n_obs: int, q: int, cap: float) -> float | None:
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]))
    cmd = [sys.executable, __file__, "--skopt-child", str(n_obs), str(q)]
    try:
        out = subprocess.run(cmd, capture_output=True, text=True, timeout=cap, env=env)
    except subprocess.TimeoutExpired:
        return None
    if out.returncode != 0:
        raise RuntimeError(f"the scikit-optimize run failed:\n{out.stderr[-2000:]}")
    return float(json.loads(out.stdout.strip().splitlines()[-1])["seconds"])


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="smaller sizes (N=300/q=20, N=1000/q=100)")
    ap.add_argument("--cap", type=float, default=120.0, help="seconds allowed to the scikit-optimize run")
    ap.add_argument("--no-baseline", action="store_true", help="time mbo only")
    ap.add_argument("--multi", action="store_true",
                    help="time mbo with 2 and 3 objectives (EHVI, ParEGO), with and without a constraint, only")
    ap.add_argument("--skopt-child", nargs=2, type=int, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.skopt_child:
        _skopt_child(*args.skopt_child)
        return 0

    if args.multi:
        time_multi(50, 2, warm=False)  # warm-up
        print(f"mbo, several objectives, numeric space of {len(NUMERIC)} dimensions; load average "
              f"{os.getloadavg()[0]:.1f} on {os.cpu_count()} cpus; goal: <= 2 s at 1,000 observations (warm)")
        print(f"{'method':>7} {'m':>2} {'constraint':>10} {'observations':>12} {'batch':>6} {'cold s':>8} "
              f"{'warm s':>8} {'front':>6} {'boxes':>6}  goal (warm)")
        for method, m in (("ehvi", 2), ("ehvi", 3), ("parego", 2), ("parego", 3)):
            for constrained in (False, True):
                for n_obs, q in ((300, 8), (1000, 1), (1000, 8)):
                    cold, _ = time_multi(n_obs, q, False, constrained, m, method)
                    warm, log = time_multi(n_obs, q, True, constrained, m, method)
                    goal = "" if n_obs != 1000 else f"<= 2 s: {'met' if warm <= 2.0 else 'MISSED'}"
                    print(f"{method:>7} {m:>2} {'yes' if constrained else 'no':>10} {n_obs:>12} {q:>6} {cold:>8.2f} "
                          f"{warm:>8.2f} {log.get('front', ''):>6} {log.get('boxes', ''):>6}  {goal}", flush=True)
        return 0

    time_mbo(50, 5)  # warm-up: imports of scikit-learn / scikit-optimize are not timed
    time_default(50, 5, warm=False)
    sizes = [(300, 20), (1000, 100)] if args.quick else [(1000, 100), (5000, 1000)]
    goals = {(1000, 100): 2.0, (5000, 1000): 10.0}
    print(f"default surrogate (auto: gp) on a numeric space of {len(NUMERIC)} dimensions (goals) and on the "
          f"mixed space below; load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cpus")
    print(f"{'space':>8} {'observations':>12} {'batch':>6} {'cold s':>8} {'warm s':>8} {'fit s (warm)':>13}  goal (warm)")
    for name, space, objective in (("numeric", NUMERIC, numeric_loss), ("mixed", SPACE, loss)):
        for n_obs, q in sizes:
            cold, _ = time_default(n_obs, q, False, space, objective)
            warm, rec = time_default(n_obs, q, True, space, objective)
            goal = goals.get((n_obs, q)) if name == "numeric" else None
            goal_txt = "" if goal is None else f"<= {goal:g} s: {'met' if warm <= goal else 'MISSED'}"
            print(f"{name:>8} {n_obs:>12} {q:>6} {cold:>8.2f} {warm:>8.2f} "
                  f"{rec.get('fit_seconds', float('nan')):>13.2f}  {goal_txt}", flush=True)
    print()
    print("forest (surrogate='rf') on the mixed space against scikit-optimize")
    cases = [(300, 20, None), (1000, 100, None)] if args.quick else [(1000, 100, 5.0), (5000, 1000, 60.0)]
    print(f"space: {len(SPACE)} dimensions (encoded width {SPACE.encoded_width}); cpus: {os.cpu_count()}")
    print(f"{'observations':>12} {'batch':>6} {'mbo s':>8} {'fit s':>7} {'skopt cl_min s':>15} {'ratio':>9}  goal")
    for n_obs, q, goal in cases:
        mbo_s, rec = time_mbo(n_obs, q)
        base = None if args.no_baseline else time_skopt(n_obs, q, args.cap)
        if args.no_baseline:
            base_txt, ratio = "-", "-"
        elif base is None:
            base_txt, ratio = f"> {args.cap:g}", f"> {args.cap / mbo_s:.0f}x"
        else:
            base_txt, ratio = f"{base:.2f}", f"{base / mbo_s:.1f}x"
        goal_txt = "" if goal is None else f"<= {goal:g} s: {'met' if mbo_s <= goal else 'MISSED'}"
        print(f"{n_obs:>12} {q:>6} {mbo_s:>8.2f} {rec.get('fit_seconds', float('nan')):>7.2f} {base_txt:>15} "
              f"{ratio:>9}  {goal_txt}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
