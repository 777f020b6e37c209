"""The optimizer contract suite (emews.testing.optimizers) on every built-in and on user plug-ins."""

from __future__ import annotations

import numpy as np
import pytest

import emews
from emews.testing.optimizers import (
    check_optimizer,
    check_pending_not_proposed,
    check_seeded_asks_repeat,
    check_tell_accepts_failures,
    mixed_objective,
    mixed_space,
    optimizer_checks,
    run_with_driver,
)

# small, fast settings: the checks are about the contract, not about search quality
FAST_MBO = {"n_estimators": 20, "n_candidates": 500, "n_jobs": 1}


class Perturb(emews.Optimizer):
    """A user-style ask/tell plug-in (the README's example)."""

    def __init__(self, space, seed=None, scale=0.1):
        super().__init__(space, seed)
        self.scale, self.best = scale, None

    def ask(self, n):
        if self.best is None:
            return self.space.sample(n, self.rng)
        u = self.space.to_unit([self.best.params])[0]
        X = (u + self.rng.normal(0, self.scale, (n, u.size))).clip(0, 1)
        return self.space.from_unit(X)

    def tell(self, results):
        for r in results:
            if r.ok and (self.best is None or r.loss < self.best.loss):
                self.best = r


def halving(queues, space, seed=None, rounds=3):
    """A user-style resident loop (a plain function)."""
    rng = np.random.default_rng(seed)
    pts = space.sample(8, rng)
    for _ in range(rounds):
        results = queues.evaluate(pts)
        good = sorted((r for r in results if r.ok), key=lambda r: r.loss)[: len(pts) // 2]
        pts = [r.params for r in good] + space.sample(len(pts) - len(good), rng)


class Sweep(emews.ResidentOptimizer):
    """A user-style resident class using put/get (not evaluate)."""

    def __init__(self, space, seed=None, batch=5):
        super().__init__(space, seed)
        self.batch = batch

    def run(self, queues):
        while queues.remaining > 0:
            queues.put(self.space.sample(min(self.batch, queues.remaining), self.rng))
            while queues.pending:
                queues.get()


class Prunes(emews.ResidentOptimizer):
    """A user-style resident class that prunes the IoC way: once a batch's first result is in,
    it stops the batch's tasks still running (``queues.stop(task_id)``, documented)."""

    def __init__(self, space, seed=None, batch=4):
        super().__init__(space, seed)
        self.batch = batch

    def run(self, queues):
        while queues.remaining > 0:
            ids = queues.put(self.space.sample(min(self.batch, queues.remaining), self.rng))
            first = {r.task_id for r in queues.get()}
            for tid in ids:
                if tid not in first:
                    queues.stop(tid)
            while queues.pending:
                queues.get()


OPTIMIZERS = [
    pytest.param("random", {}, id="random"),
    pytest.param("grid", {"points": 3, "shuffle": True}, id="grid"),
    pytest.param("mbo", dict(FAST_MBO), id="mbo-auto"),
    pytest.param("mbo", dict(FAST_MBO, surrogate="rf"), id="mbo-rf"),
    pytest.param("mbo", dict(FAST_MBO, surrogate="et", acquisition="lcb", random_fraction=0.25), id="mbo-et-lcb"),
    pytest.param("mbo", dict(FAST_MBO, surrogate="gbrt", acquisition="pi", initial_design="sobol"), id="mbo-gbrt-pi"),
    pytest.param("mbo", dict(FAST_MBO, surrogate="gp", gp_max_points=20, initial_design="random"), id="mbo-gp"),
    pytest.param("mbo", dict(FAST_MBO, surrogate="gp", acquisition="lcb"), id="mbo-gp-lcb"),
    pytest.param("ga", {}, id="ga"),
    pytest.param("ga", {"strategy": "simple", "population": 6}, id="ga-simple"),
    pytest.param("ga-steady", {"population": 6}, id="ga-steady"),
    pytest.param("pbt", {"population": 4, "interval": 2}, id="pbt"),
    pytest.param(Perturb, {"scale": 0.05}, id="user-ask-tell"),
    pytest.param(halving, {"rounds": 2}, id="user-function"),
    pytest.param(Sweep, {"batch": 4}, id="user-resident-class"),
    pytest.param(Prunes, {"batch": 4}, id="user-resident-stops-tasks"),
]


@pytest.mark.parametrize("optimizer, settings", OPTIMIZERS)
def test_contract(optimizer, settings):
    ran = check_optimizer(optimizer, settings)
    assert ran == [c.__name__ for c in optimizer_checks(optimizer)]


NUMERIC = emews.Space.from_dict({
    "lr": {"type": "real", "low": 1e-4, "high": 1e-1, "log": True},
    "width": {"type": "int", "low": 1, "high": 64},
    "batch": {"type": "ordinal", "values": [16, 32, 64, 128]},
})


@pytest.mark.parametrize("settings", [
    pytest.param({"n_candidates": 500}, id="gp-exact"),
    pytest.param({"n_candidates": 500, "gp_max_points": 10, "gp_inducing": 10, "acquisition": "lcb",
                  "random_fraction": 0.25}, id="gp-sparse-lcb"),
])
def test_contract_mbo_default_surrogate_on_a_numeric_space(settings):
    # surrogate "auto" is the GP (on the mixed space of test_contract too, through its Hamming term)
    assert emews.optimizers.resolve("mbo")(NUMERIC, **settings).model_name == "gp"
    ran = check_optimizer("mbo", settings, space=NUMERIC)
    assert ran == [c.__name__ for c in optimizer_checks("mbo")]


def test_mbo_pending_points_keep_their_distance():
    # stronger than "no exact repeat": nothing within the exclusion radius of a pending point
    check_pending_not_proposed("mbo", dict(FAST_MBO, exclusion=0.02), min_distance=0.02)


def evaluate_past_the_budget(queues, space, seed=None):
    """Evaluates 3 points on a budget of 2, then asks for one more evaluation."""
    results = queues.evaluate(space.sample(3, seed=0))
    queues.log({"statuses": [r.status for r in results]})
    for _ in range(2):  # the stop may still be on its way behind the last result: the put then comes back cancelled
        try:
            late = queues.evaluate(space.sample(1, seed=1))
        except emews.StopSearch:
            queues.log({"raised": "StopSearch"})
            return
        queues.log({"late": [r.status for r in late]})


def test_the_driver_completes_out_of_order_and_enforces_the_budget():
    run = run_with_driver("random", mixed_space(), max_evals=20, capacity=4)
    ids = [r.task_id for r in run.results]
    assert len(ids) == 20 and ids != sorted(ids), "random durations: completions out of submission order"
    run = run_with_driver(evaluate_past_the_budget, mixed_space(), max_evals=2, capacity=1)
    assert run.logs[0] == {"statuses": ["done", "done", "cancelled"]}
    assert run.logs[-1] == {"raised": "StopSearch"}
    assert run.logs[1:-1] in ([], [{"late": ["cancelled"]}])
    assert run.stopped == "max_evals reached"


def curve(params, trial):
    """A training curve over 8 epochs (a trial objective: its reports can be answered with a stop)."""
    final = mixed_objective(params)
    for epoch in range(1, 9):
        trial.report(epoch, final + 1.0 / epoch)
    return final


def test_queues_stop_ends_running_tasks_stopped_under_the_real_driver():
    # FakeDriver raised AssertionError on the optimizer's STOP_TASK (and on WAIT)
    run = run_with_driver(Prunes, mixed_space(), curve, settings={"batch": 4}, max_evals=24, capacity=4)
    stopped = [r for r in run.results if r.status == "stopped"]
    assert stopped, [r.status for r in run.results]
    steps = [r.metrics["step"] for r in stopped]
    assert all(1 <= step <= 8 for step in steps) and min(steps) < 8, steps  # stopped at a report, most before the end
    assert len(run.done) == 6  # each batch's first result; the other three of its four tasks were stopped
    assert len(stopped) == 18
# -- the suite catches broken optimizers ------------------------------------------------------------
class RepeatsPending(emews.Optimizer):
    def ask(self, n):
        return [dict(self.space.sample(1, seed=0)[0]) for _ in range(n)]


class IgnoresSeed(emews.Optimizer):
    def ask(self, n):
        return self.space.sample(n, np.random.default_rng())


class ChokesOnFailures(emews.Optimizer):
    def ask(self, n):
        return self.space.sample(n, self.rng)

    def tell(self, results):
        for r in results:
            float(r.loss)  # TypeError on a failed result (loss None)


@pytest.mark.parametrize("bad, check, message", [
    (RepeatsPending, check_pending_not_proposed, "still pending"),
    (IgnoresSeed, check_seeded_asks_repeat, "proposals differ"),
])
def test_the_suite_catches_broken_optimizers(bad, check, message):
    with pytest.raises(AssertionError, match=message):
        check(bad)


def test_the_suite_reports_a_crash_on_failed_results():
    with pytest.raises(TypeError):
        check_tell_accepts_failures(ChokesOnFailures)
