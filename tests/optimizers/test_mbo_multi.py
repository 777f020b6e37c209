"""mbo with several objectives (ParEGO) and constraints (a feasibility model): the pieces, and
short searches told Results that carry ``objectives`` and ``violation``, compared with random
search on the same budget and seed."""

from __future__ import annotations

import math

import numpy as np
import pytest
from helpers import ask_tell

from emews._pareto import hypervolume
from emews.optimizers._multi import (
    RHO,
    FeasibilityModel,
    WeightLattice,
    chebyshev,
    normalized,
    objective_vector,
)
from emews.optimizers._random import RandomSearch
from emews.optimizers._surrogates import make_surrogate
from emews.optimizers.mbo import MBO
from emews.space import Real, Space
from emews.task import DONE, FAILED, Result


# -- the pieces ----------------------------------------------------------------------------------
@pytest.mark.parametrize("m, least", [(2, 100), (3, 100), (4, 30)])
def test_weight_lattice_is_the_simplex_lattice(m, least):
    lattice = WeightLattice(m, size=least)
    W = lattice.vectors
    assert len(W) >= least and W.shape[1] == m
    assert np.allclose(W.sum(axis=1), 1.0)
    assert (W >= 0).all()
    assert np.allclose(W * lattice.s, np.round(W * lattice.s)), "components are multiples of 1/s"
    assert len({tuple(np.round(w, 9)) for w in W}) == len(W) == math.comb(lattice.s + m - 1, m - 1)
    assert math.comb(lattice.s - 1 + m - 1, m - 1) < least, "s is the smallest that gives enough vectors"


def test_weights_of_a_batch_differ_and_follow_the_seed():
    lattice = WeightLattice(2)
    a = lattice.draw(8, np.random.default_rng(5))
    b = lattice.draw(8, np.random.default_rng(5))
    assert np.array_equal(a, b)
    assert len({tuple(w) for w in a}) == 8
    small = WeightLattice(2, size=3)  # 3 vectors: a batch of 5 repeats some, the first 3 differ
    c = small.draw(5, np.random.default_rng(0))
    assert len(c) == 5 and len({tuple(w) for w in c[:3]}) == 3


def test_chebyshev_and_normalization_by_hand():
    F = np.array([[2.0, 10.0], [4.0, 30.0], [3.0, 20.0]])
    N = normalized(F)
    assert np.allclose(N, [[0.0, 0.0], [1.0, 1.0], [0.5, 0.5]])
    assert np.allclose(normalized(np.array([[1.0, 5.0], [2.0, 5.0]]))[:, 1], 0.0), "a constant column is 0"
    w = np.array([0.25, 0.75])
    P = np.array([[0.2, 0.8], [1.0, 0.0]])
    # max(0.05, 0.6) + 0.05 * 0.65 ; max(0.25, 0) + 0.05 * 0.25
    assert np.allclose(chebyshev(P, w), [0.6 + RHO * 0.65, 0.25 + RHO * 0.25])
    assert RHO == 0.05


def test_objective_vector_of_results():
    p = {"x": 0.1}
    assert np.array_equal(objective_vector(Result(0, p, DONE, loss=1.0, objectives=(1.0, 2.0))), [1.0, 2.0])
    assert objective_vector(Result(0, p, DONE, loss=1.0)) is None
    assert objective_vector(Result(0, p, DONE, loss=1.0, objectives=(1.0,))) is None, "one objective: the loss"
    assert objective_vector(Result(0, p, FAILED, error="x")) is None
    assert objective_vector(Result(0, p, DONE, loss=1.0, objectives=(1.0, math.nan))) is None


def test_feasibility_labels_and_model():
    labels = FeasibilityModel.labels(np.array([0.0, 0.5, 1.0, 100.0, math.inf]))
    assert labels[0] == -1.0
    assert 1.0 < labels[1] < labels[2] < labels[3] <= 3.0 and labels[4] == 3.0
    # x in [0, 1]: feasible where x <= 0.4 (violation x - 0.4 beyond)
    X = np.linspace(0, 1, 21)[:, None]
    viol = np.maximum(0.0, X[:, 0] - 0.4)
    model = FeasibilityModel(make_surrogate("gp", random_state=0)).fit(X, viol)
    p = np.exp(model.log_probability(np.array([[0.1], [0.2], [0.8], [0.95]])))
    assert p[0] > 0.9 and p[1] > 0.9, p
    assert p[2] < 0.1 and p[3] < 0.1, p


# -- searches --------------------------------------------------------------------------------------
SPACE6 = Space([Real(f"x{i}", 0.0, 1.0) for i in range(6)])


def zdt1(p: dict) -> tuple[float, float]:
    x = np.array([p[f"x{i}"] for i in range(6)])
    g = 1.0 + 9.0 * x[1:].sum() / 5.0
    return float(x[0]), float(g * (1.0 - math.sqrt(x[0] / g)))


def _zdt1_result(tid: int, p: dict) -> Result:
    f = zdt1(p)
    return Result(tid, p, DONE, loss=f[0], objectives=f)


def test_parego_front_beats_random_on_zdt1():
    """ParEGO's front after 48 evaluations (16 initial, then batches of 8) holds more
    hypervolume than random search's with the same budget and seed."""
    ref = (1.1, 1.1)
    hv = {}
    for name, opt in (("mbo", MBO(SPACE6, seed=3, n_initial=16, n_candidates=1000, multi_method="parego")),
                      ("random", RandomSearch(SPACE6, seed=3))):
        told = ask_tell(opt, _zdt1_result, 48)
        hv[name] = hypervolume([r.objectives for r in told], ref)
    assert hv["mbo"] > hv["random"] * 1.2, hv
    assert MBO.multi_objective is True


def test_parego_batch_is_spread_and_repeats_with_the_seed():
    def run() -> list[list[dict]]:
        opt = MBO(SPACE6, seed=11, n_initial=10, n_candidates=500, multi_method="parego")
        asks = []
        tid = 0
        for _ in range(3):
            ps = opt.ask(6)
            asks.append(ps)
            opt.tell([_zdt1_result(tid + i, p) for i, p in enumerate(ps)])
            tid += len(ps)
        return asks

    a, b = run(), run()
    assert a == b, "a seeded multi-objective search repeats"
    last = a[-1]
    assert len({SPACE6.key(p) for p in last}) == 6
    # different weights: the batch spreads along the first objective (x0), not one point's neighbourhood
    assert np.ptp([p["x0"] for p in last]) > 0.2, [p["x0"] for p in last]


def test_failed_results_with_several_objectives_are_imputed():
    opt = MBO(SPACE6, seed=0, n_initial=8, n_candidates=300, multi_method="parego")
    ps = opt.ask(8)
    rs = [_zdt1_result(i, p) if i % 2 else Result(i, p, FAILED, error="boom") for i, p in enumerate(ps)]
    opt.tell(rs)
    more = opt.ask(4)
    assert len(more) == 4
    for p in more:
        SPACE6.validate(p)
    assert opt._scalar is not None and np.isnan(opt._scalar[0::2]).all(), "failures: no objectives, imputed at fit"


SPACE2 = Space([Real("x", -1.0, 2.0), Real("y", -1.0, 2.0)])


def _constrained(tid: int, p: dict) -> Result:
    """min x^2 + y^2 subject to x + y >= 1 (optimum 0.5 at x = y = 0.5)."""
    loss = p["x"] ** 2 + p["y"] ** 2
    return Result(tid, p, DONE, loss=loss, violation=max(0.0, 1.0 - p["x"] - p["y"]))


def _best_feasible(told: list[Result]) -> float:
    return min((r.loss for r in told if r.violation == 0.0), default=math.inf)


def test_constrained_single_objective_beats_random():
    results = {}
    for name, opt in (("mbo", MBO(SPACE2, seed=2, n_initial=8, n_candidates=1000)),
                      ("random", RandomSearch(SPACE2, seed=2))):
        results[name] = ask_tell(opt, _constrained, 32, batch=4)
    mbo, rnd = _best_feasible(results["mbo"]), _best_feasible(results["random"])
    assert mbo < rnd and mbo < 0.55, (mbo, rnd)
    # the feasibility model steers proposals to the feasible side and along the boundary
    # (where the optimum lies): their violations are smaller than random's
    def mean_violation(told: list[Result]) -> float:
        return float(np.mean([r.violation for r in told[8:]]))

    assert mean_violation(results["mbo"]) < mean_violation(results["random"]), results


def test_no_feasible_point_yet_minimizes_the_violation():
    opt = MBO(SPACE2, seed=4, n_initial=6, n_candidates=500)
    ps = opt.ask(6)
    # everything infeasible, one metric missing (inf): the model learns the violation
    rs = [Result(i, p, DONE, loss=1.0, violation=math.inf if i == 0 else 10.0 + p["x"] + p["y"])
          for i, p in enumerate(ps)]
    opt.tell(rs)
    nxt = opt.ask(2)
    assert len(nxt) == 2
    assert opt._feasible is None and opt._scalar is not None
    assert np.allclose(opt._scalar[1:], [r.violation for r in rs[1:]])
    assert opt._scalar[0] > max(r.violation for r in rs[1:]), "an infinite violation is imputed as the worst"
