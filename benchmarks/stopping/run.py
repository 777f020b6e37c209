"""Early stopping: quality at equal epochs, and pool utilization at 1,000 workers.

    nice -n 10 python benchmarks/stopping/run.py [--seeds 10] [--workers 16] [--budget 200]
        [--shapes default|crossing] [--problem curves|p1b1 [--traces FILE]]
        [--methods none,median,asha,hyperband,optuna-sha,optuna-hyperband,optuna-median]
        [--util-workers 1000] [--util-time 8000] [--driver-overhead-us 100] [--skip-util]

An asynchronous simulation of a worker pool in simulated time (an event queue: each epoch of a
trial takes its own duration; a free worker starts the next trial at once). Trials are random
points of :mod:`benchmarks.stopping.curves` (the same points, curves and noise for every
method at a given seed); after every epoch the method's rule is asked whether to stop.

Quality: every method gets the same total budget of epochs (``--budget`` full trials of
``curves.MAX_EPOCHS`` = 81 epochs each) on ``--workers`` workers. A trial that reaches epoch
81 is complete; the search's result is the lowest final (epoch-81) loss of its complete
trials, as a user would read it (the noise there is 3 % of the loss or less). The
table gives, over the seeds, the median result at 1/9, 1/3 and all of the budget, trials
started and completed, and the epochs each method needed to reach the *no-stopping* search's
median result at the full budget (the baseline measured in this run), as a ratio of the
budget. Optuna's pruners (``SuccessiveHalvingPruner``, ``HyperbandPruner``,
``MedianPruner``) are driven with ``study.ask()`` / ``trial.report`` / ``trial.should_prune``
on the same trials; emews' stoppers through their ``report``/``finished`` contract.

Utilization: ``--util-workers`` workers, new trials until ``--util-time`` simulated seconds,
then the running ones finish (the drain). The driver is one server: every report holds its
worker for the real, measured time of the rule's calls (``report``, ``finished``, and the
next trial's ``start``) plus ``--driver-overhead-us`` for the rest of the driver's work, and
reports queue behind each other, so a slow stopper shows up as idle workers.
Utilization = busy worker-time / (workers x span), over the whole run and up to the last
trial start (before the drain), with the no-stopping pool as the baseline.
"""

from __future__ import annotations

import argparse
import heapq
import math
import statistics
import sys
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

import numpy as np  # noqa: E402

from benchmarks.stopping.curves import MAX_EPOCHS, make_curve, rank_correlations, space  # noqa: E402
from emews.stoppers import ASHA, Hyperband, MedianStopper  # noqa: E402


# -- the rules, behind one small interface ---------------------------------------------------
class NoStop:
    def start(self, i):
        return i

    def report(self, h, step, loss):
        return False

    def end(self, h, status, step, loss):
        pass


class Emews:
    """An emews stopper through its two-method contract."""

    def __init__(self, stopper):
        self.stopper = stopper

    def start(self, i):
        return i

    def report(self, h, step, loss):
        return self.stopper.report(h, step, loss)

    def end(self, h, status, step, loss):
        self.stopper.finished(h, status, step, loss)


class Optuna:
    """An Optuna pruner through ``study.ask()`` / ``trial.report`` / ``trial.should_prune``."""

    def __init__(self, pruner):
        import optuna

        optuna.logging.set_verbosity(optuna.logging.WARNING)
        warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)
        self.optuna = optuna
        self.study = optuna.create_study(direction="minimize", sampler=optuna.samplers.RandomSampler(seed=0),
                                         pruner=pruner)

    def start(self, i):
        return self.study.ask()

    def report(self, trial, step, loss):
        trial.report(loss, step)
        return trial.should_prune()

    def end(self, trial, status, step, loss):
        if status == "done":
            self.study.tell(trial, loss)
        else:
            self.study.tell(trial, state=self.optuna.trial.TrialState.PRUNED)


def make_rule(method: str, R: int = MAX_EPOCHS):
    """``none``, an emews stopper (``median``, ``asha``, ``hyperband``, optionally with
    settings: ``asha:min_resource=3,reduction_factor=4``) or an Optuna pruner."""
    name, _, extra = method.partition(":")
    settings = {k: float(v) if "." in v else int(v) for k, v in (kv.split("=") for kv in extra.split(",") if kv)}
    if name == "none":
        return NoStop()
    if name == "median":
        return Emews(MedianStopper(**settings))
    if name == "asha":
        return Emews(ASHA(**{"min_resource": 1, "max_resource": R, "reduction_factor": 3, **settings}))
    if name == "hyperband":
        return Emews(Hyperband(**{"min_resource": 1, "max_resource": R, "reduction_factor": 3, **settings}))
    import optuna

    if name == "optuna-sha":
        return Optuna(optuna.pruners.SuccessiveHalvingPruner(min_resource=1, reduction_factor=3))
    if name == "optuna-hyperband":
        return Optuna(optuna.pruners.HyperbandPruner(min_resource=1, max_resource=R, reduction_factor=3))
    if name == "optuna-median":
        return Optuna(optuna.pruners.MedianPruner())
    raise SystemExit(f"unknown method {name!r}")


# -- the simulated pool ------------------------------------------------------------------------
class Trials:
    """The seed's stream of trials: the same points (and curves) for every method."""

    max_epochs = MAX_EPOCHS

    def __init__(self, seed: int, shapes: str):
        self.seed, self.shapes, self.rng, self.space = seed, shapes, np.random.default_rng(seed), space()
        self.points: list[dict] = []

    def curve(self, i: int):
        while len(self.points) <= i:
            self.points.extend(self.space.sample(256, self.rng))
        return make_curve(self.points[i], self.seed, i, self.shapes)


class TraceCurve:
    """A recorded curve (``p1b1_curves.py``): the losses as measured; past its end (a diverged
    run) the loss is NaN."""

    def __init__(self, row: dict):
        self.val = row["val_loss"]
        self.length = len(self.val)
        secs = sorted(row["epoch_seconds"][1:] or row["epoch_seconds"] or [1.0])
        self.epoch_time = secs[len(secs) // 2]

    def loss(self, epoch: int) -> float:
        return self.val[epoch - 1] if epoch <= self.length else math.nan

    true = loss


class TraceTrials:
    """Trials drawn with replacement from recorded curves, in a sequence fixed by the seed."""

    def __init__(self, seed: int, data: dict):
        self.rows, self.max_epochs = data["trials"], int(data["epochs"])
        self.rng = np.random.default_rng(seed)
        self.drawn: list[TraceCurve] = []

    def curve(self, i: int) -> TraceCurve:
        while len(self.drawn) <= i:
            self.drawn.append(TraceCurve(self.rows[int(self.rng.integers(len(self.rows)))]))
        return self.drawn[i]


@dataclass
class Run:
    trajectory: list[tuple[int, float]] = field(default_factory=list)  # (epochs used, result so far)
    epochs: int = 0
    started: int = 0
    completed: int = 0
    stopped: int = 0
    busy: float = 0.0
    span: float = 0.0
    busy_before_end: float = 0.0
    last_start: float = 0.0
    driver_s: float = 0.0

    def result_at(self, epochs: float) -> float:
        best = math.inf
        for e, v in self.trajectory:
            if e > epochs:
                break
            best = v
        return best

    def epochs_to(self, target: float) -> float:
        return next((e for e, v in self.trajectory if v <= target), math.inf)


def simulate(rule, seed: int, workers: int, budget: int | None = None, until: float | None = None,
             charge_driver: bool = False, overhead: float = 0.0, shapes: str = "default",
             traces: dict | None = None) -> Run:
    """Run one search; ends after ``budget`` epochs (quality), or starts no trial after
    ``until`` simulated seconds and lets the running ones finish (utilization). With
    ``charge_driver``, each report holds its worker for the measured time of the rule's calls
    plus ``overhead`` seconds (the rest of the driver's work per report: journal, messages)."""
    trials = Trials(seed, shapes) if traces is None else TraceTrials(seed, traces)
    R = trials.max_epochs
    run = Run()
    heap: list = []
    best_obs = math.inf
    driver_free = 0.0
    clock = time.perf_counter

    def draw() -> tuple:
        nonlocal took
        i = run.started
        run.started += 1
        c = trials.curve(i)
        t0 = clock()
        h = rule.start(i)
        took += clock() - t0
        return i, c, h

    took = 0.0
    for w in range(workers):
        i, c, h = draw()
        heapq.heappush(heap, (c.epoch_time, i, w, c, h, 1))
    t = 0.0
    while heap:
        t, i, w, c, h, epoch = heapq.heappop(heap)
        run.epochs += 1
        run.busy += c.epoch_time
        if until is not None and t <= until:
            run.busy_before_end += c.epoch_time
        loss = c.loss(epoch)
        # driver time: the rule's calls only (the curves and the event queue are the simulation)
        t0 = clock()
        stop = rule.report(h, epoch, loss)
        failed = epoch > getattr(c, "length", R)  # a recorded run that diverged before
        if failed:
            rule.end(h, "failed", epoch, None)
        elif epoch >= R:
            rule.end(h, "done", epoch, loss)
        elif stop:
            rule.end(h, "stopped", epoch, loss)
        took = clock() - t0
        if failed:
            pass
        elif epoch >= R:
            run.completed += 1
            if loss < best_obs:
                best_obs = loss
                run.trajectory.append((run.epochs, loss))
        elif stop:
            run.stopped += 1
        if budget is not None and run.epochs >= budget:
            run.span = t
            break
        more = epoch < R and not stop and not failed
        new = None
        if not more and (until is None or t < until):
            new = draw()  # adds the rule's start() to took
            run.last_start = t
        resume = t
        if charge_driver:  # one driver: the worker waits for its report to be answered
            driver_free = max(driver_free, t) + took + overhead
            run.driver_s += took + overhead
            resume = driver_free
        if more:
            heapq.heappush(heap, (resume + c.epoch_time, i, w, c, h, epoch + 1))
        elif new is not None:
            heapq.heappush(heap, (resume + new[1].epoch_time, new[0], w, new[1], new[2], 1))
        run.span = max(run.span, resume)
    if budget is None:
        run.span = max(run.span, t)
    return run


# -- the two experiments -----------------------------------------------------------------------
def trace_correlations(data: dict, epochs: tuple[int, ...] = (1, 3, 9)) -> dict[int, float]:
    """Spearman correlation of the recorded loss at each epoch with the final one (complete runs)."""
    rows = [r["val_loss"] for r in data["trials"] if len(r["val_loss"]) == data["epochs"]]

    def ranks(x) -> np.ndarray:
        out = np.empty(len(x))
        out[np.argsort(x)] = np.arange(len(x))
        return out

    final = ranks([r[-1] for r in rows])
    return {e: float(np.corrcoef(ranks([r[e - 1] for r in rows]), final)[0, 1]) for e in epochs}


def quality(methods: list[str], seeds: int, workers: int, budget_trials: int, shapes: str,
            traces: dict | None = None) -> None:
    R = MAX_EPOCHS if traces is None else int(traces["epochs"])
    budget = budget_trials * R
    what = f"{shapes!r} curves" if traces is None else (
        f"recorded P1B1 ({traces['data_size']}) curves, {len(traces['trials'])} trials drawn with replacement")
    print(f"== quality ({what}): {seeds} seeds, {workers} workers, budget {budget} epochs "
          f"(= {budget_trials} full trials of {R} epochs) ==")
    corr = rank_correlations(shapes) if traces is None else trace_correlations(traces)
    print("difficulty: Spearman rank correlation of the loss at epoch e with the final loss: "
          + ", ".join(f"e={e}: {r:.2f}" for e, r in corr.items()))
    runs: dict[str, list[Run]] = {}
    wall: dict[str, float] = {}
    for m in methods:
        t0 = time.process_time()
        runs[m] = [simulate(make_rule(m, R), s, workers, budget=budget, shapes=shapes, traces=traces)
                   for s in range(seeds)]
        wall[m] = time.process_time() - t0
    base = "none" if "none" in runs else methods[0]
    # the lower median: a result one of the baseline's runs reached
    target = statistics.median_low(r.result_at(budget) for r in runs[base])
    print(f"target: the {base!r} (lower) median result at the full budget, {target:.4f}\n")
    head = (f"{'method':22} {'@1/9':>7} {'@1/3':>7} {'@all':>7} {'IQR@all':>15} {'trials':>7} {'done':>5} "
            f"{'epochs to target':>17} {'reached':>8} {'cpu s/run':>9}")
    print(head)
    print("-" * len(head))
    for m in methods:
        rs = runs[m]
        at = [statistics.median(r.result_at(budget * f) for r in rs) for f in (1 / 9, 1 / 3, 1)]
        q = np.percentile([r.result_at(budget) for r in rs], [25, 75])
        need = sorted(r.epochs_to(target) for r in rs)
        med_need = statistics.median_low(need)
        reached = sum(1 for n in need if n < math.inf)
        need_s = f"{med_need / budget:.3f} x B" if med_need < math.inf else "not reached"
        print(f"{m:22} {at[0]:7.4f} {at[1]:7.4f} {at[2]:7.4f} {q[0]:7.4f}-{q[1]:.4f} "
              f"{statistics.median(r.started for r in rs):7.0f} {statistics.median(r.completed for r in rs):5.0f} "
              f"{need_s:>17} {reached:>4}/{len(rs):<3} {wall[m] / seeds:9.2f}")
    print()
    for m in methods:
        if m == base:
            continue
        need = statistics.median_low(r.epochs_to(target) for r in runs[m])
        verdict = "meets" if need <= budget / 3 else "misses"
        print(f"{m}: reaches the no-stopping median with {need / budget:.3f} of its epochs "
              f"({verdict} the <= 1/3 goal)" if need < math.inf else f"{m}: does not reach the no-stopping median")
    for ours, theirs in (("asha", "optuna-sha"), ("asha", "optuna-hyperband"), ("asha", "optuna-median"),
                         ("hyperband", "optuna-hyperband"), ("median", "optuna-median")):
        if ours in runs and theirs in runs:
            for frac, label in ((1 / 3, "1/3 of the budget"), (1, "the full budget")):
                a = [r.result_at(budget * frac) for r in runs[ours]]
                b = [r.result_at(budget * frac) for r in runs[theirs]]
                wins = sum(x < y for x, y in zip(a, b))
                ties = sum(x == y for x, y in zip(a, b))
                print(f"{ours} vs {theirs} at {label}: median {statistics.median(a):.4f} vs "
                      f"{statistics.median(b):.4f} (ratio {statistics.median(a) / statistics.median(b):.3f}); "
                      f"per seed {wins} better, {ties} equal, {len(a) - wins - ties} worse")


def utilization(workers: int, until: float, methods: list[str], overhead_us: float) -> None:
    print(f"\n== utilization: {workers} workers, new trials for {until:g} simulated s, then the drain; "
          f"each report holds its worker for the rule's measured time + {overhead_us:g} us of other driver work ==")
    head = (f"{'method':10} {'utilization':>11} {'before drain':>12} {'trials':>7} {'reports':>9} "
            f"{'driver us/report':>16} {'driver load':>11} {'span s':>8}")
    print(head)
    print("-" * len(head))
    res = {}
    for m in methods:
        r = simulate(make_rule(m), 0, workers, until=until, charge_driver=True, overhead=overhead_us * 1e-6)
        res[m] = r
        u = r.busy / (workers * r.span)
        u_before = r.busy_before_end / (workers * until)
        print(f"{m:10} {u:11.3f} {u_before:12.3f} {r.started:7d} {r.epochs:9d} "
              f"{1e6 * r.driver_s / r.epochs:16.1f} {r.driver_s / r.span:11.4f} {r.span:8.0f}")
    if "none" in res:
        b = res["none"]
        ub = b.busy / (workers * b.span)
        for m, r in res.items():
            if m != "none":
                u = r.busy / (workers * r.span)
                print(f"{m}: utilization {u:.3f} ({'meets' if u >= 0.9 else 'misses'} the >= 0.90 goal), "
                      f"{u / ub:.3f} x the no-stopping pool's {ub:.3f}")


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--seeds", type=int, default=10)
    ap.add_argument("--workers", type=int, default=16)
    ap.add_argument("--budget", type=int, default=200, help="budget in full trials (of 81 epochs, or the traces')")
    ap.add_argument("--shapes", default="default", choices=("default", "crossing"))
    ap.add_argument("--problem", default="curves", choices=("curves", "p1b1"),
                    help="p1b1: replay the curves p1b1_curves.py recorded (see --traces)")
    ap.add_argument("--traces", default=str(Path(__file__).with_name("p1b1_tiny_curves.json")))
    ap.add_argument("--methods", default="none,median,asha,asha:min_resource=3,hyperband,optuna-sha,optuna-hyperband,"
                                         "optuna-median")
    ap.add_argument("--util-workers", type=int, default=1000)
    ap.add_argument("--util-time", type=float, default=8000.0, help="simulated seconds of new trials")
    ap.add_argument("--driver-overhead-us", type=float, default=100.0,
                    help="driver time per report besides the rule (messages, journal), charged in the simulation")
    ap.add_argument("--util-methods", default="none,asha")
    ap.add_argument("--skip-util", action="store_true")
    ap.add_argument("--skip-quality", action="store_true")
    a = ap.parse_args(argv)
    if not a.skip_quality:
        traces = None
        if a.problem == "p1b1":
            from benchmarks.stopping.p1b1_curves import load

            traces = load(Path(a.traces))
        quality(a.methods.split(","), a.seeds, a.workers, a.budget, a.shapes, traces)
    if not a.skip_util:
        utilization(a.util_workers, a.util_time, a.util_methods.split(","), a.driver_overhead_us)


if __name__ == "__main__":
    main()
