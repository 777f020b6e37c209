"""Expected hypervolume improvement (``_ehvi.py``) and ``MBO``'s EHVI search."""

from __future__ import annotations

import math

import numpy as np
import pytest
from helpers import ask_tell

from emews._pareto import hypervolume, nondominated
from emews.optimizers._ehvi import (
    REFERENCE,
    StackedModels,
    box_decomposition,
    ehvi,
    ehvi_acquisition,
    normalization,
)
from emews.optimizers._random import RandomSearch
from emews.optimizers.mbo import MBO
from emews.space import Real, Space
from emews.task import DONE, Result


def _front(rng: np.random.Generator, m: int, n: int) -> np.ndarray:
    P = rng.random((n, m))
    return P[nondominated(P)]


@pytest.mark.parametrize("m", [2, 3])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_boxes_cover_exactly_the_region_the_front_does_not_dominate(m, seed):
    """Clipped to [0, ref], the boxes' volumes add up to the box below ref less the front's
    hypervolume; random points fall in one box exactly when no front point dominates them."""
    rng = np.random.default_rng(seed)
    front = _front(rng, m, 30)
    ref = np.full(m, REFERENCE)
    lower, upper = box_decomposition(front, ref)
    assert np.all(lower <= upper)
    volume = np.prod(upper - np.maximum(lower, 0.0), axis=1).sum()
    assert volume == pytest.approx(REFERENCE**m - hypervolume(front, ref), rel=1e-9)
    X = rng.random((4000, m)) * REFERENCE
    inside = ((X[:, None, :] >= lower[None]) & (X[:, None, :] < upper[None])).all(-1).sum(1)
    dominated = (front[None, :, :] <= X[:, None, :]).all(-1).any(1)
    assert set(inside[dominated]) <= {0}
    assert set(inside[~dominated]) == {1}, "every non-dominated point in exactly one box"


def test_an_empty_front_leaves_one_box_up_to_the_reference():
    lower, upper = box_decomposition(np.empty((0, 2)), np.array([1.1, 1.1]))
    assert lower.shape == (1, 2) and np.all(np.isneginf(lower))
    assert upper.tolist() == [[1.1, 1.1]]


@pytest.mark.parametrize("m", [2, 3])
def test_ehvi_matches_monte_carlo(m):
    """The closed form against the mean hypervolume gain of 40,000 draws per candidate."""
    rng = np.random.default_rng(7 + m)
    front = _front(rng, m, 12)
    ref = np.full(m, REFERENCE)
    boxes = box_decomposition(front, ref)
    mu = rng.random((4, m)) * 0.9 + 0.1
    sd = rng.random((4, m)) * 0.3 + 0.02
    exact = ehvi(mu, sd, *boxes)
    base = hypervolume(front, ref)
    for k in range(len(mu)):
        Y = mu[k] + sd[k] * rng.standard_normal((40_000, m))
        # the gain of a point Y: the volume of the boxes' part that Y dominates
        gain = np.prod(np.clip(boxes[1][None] - np.maximum(Y[:, None, :], boxes[0][None]), 0.0, None), axis=2).sum(1)
        se = gain.std() / math.sqrt(len(gain))
        assert exact[k] == pytest.approx(gain.mean(), abs=4 * se + 1e-6), (k, exact[k], gain.mean(), se)
        # the box sum is the hypervolume gain itself (checked on a few draws)
        for y, g in zip(Y[:3], gain[:3]):
            assert g == pytest.approx(hypervolume(np.vstack([front, y]), ref) - base, abs=1e-12)


def test_ehvi_is_zero_far_behind_the_front_and_grows_ahead_of_it():
    front = np.array([[0.2, 0.8], [0.5, 0.5], [0.8, 0.2]])
    boxes = box_decomposition(front, np.full(2, REFERENCE))
    sd = np.full((3, 2), 0.01)
    v = ehvi(np.array([[5.0, 5.0], [0.5, 0.5], [0.3, 0.3]]), sd, *boxes)
    assert v[0] < 1e-12
    assert v[2] > v[1] > 0


@pytest.mark.parametrize("constrained", [False, True])
def test_acquisition_gradient_matches_finite_differences(constrained):
    rng = np.random.default_rng(3)
    m = 3
    boxes = box_decomposition(_front(rng, m, 10), np.full(m, REFERENCE))
    acq = ehvi_acquisition(*boxes, m, constrained)
    k = m + constrained
    mu = rng.random((5, k)) * 0.8 + 0.1
    sd = rng.random((5, k)) * 0.2 + 0.05
    value, g_mu, g_sd = acq(mu, sd)
    assert np.all(np.isfinite(value))
    h = 1e-6
    for j in range(k):
        e = np.zeros_like(mu)
        e[:, j] = h
        num_mu = (acq(mu + e, sd)[0] - acq(mu - e, sd)[0]) / (2 * h)
        num_sd = (acq(mu, sd + e)[0] - acq(mu, sd - e)[0]) / (2 * h)
        np.testing.assert_allclose(g_mu[:, j], num_mu, rtol=1e-4, atol=1e-6)
        np.testing.assert_allclose(g_sd[:, j], num_sd, rtol=1e-4, atol=1e-6)


def test_normalization_ends_a_fifth_past_the_fronts_nadir():
    F = np.array([[0.0, 4.0], [1.0, 1.0], [2.0, 0.0], [12.0, 9.0]])
    lo, span = normalization(F, F[:3])
    assert lo.tolist() == [0.0, 0.0]
    # nadir (2, 4); worst (12, 9): 2 + 0.2 * 10 = 4, 4 + 0.2 * 5 = 5
    assert span.tolist() == pytest.approx([4.0, 5.0])
    lo, span = normalization(np.ones((3, 2)), np.ones((1, 2)))
    assert span.tolist() == [1.0, 1.0], "no range: unit span"


class _Linear:
    """A 'GP' whose mean is a fixed linear map and std a constant, with exact gradients."""

    def __init__(self, w: np.ndarray, s: float):
        self.w, self.s = w, s

    def predict(self, E):
        return E @ self.w, np.full(len(E), self.s)

    def predict_grad(self, E):
        n = len(E)
        return E @ self.w, np.full(n, self.s), np.tile(self.w, (n, 1)), np.zeros((n, len(self.w)))


def test_stacked_models_put_a_column_per_model():
    a, b = _Linear(np.array([1.0, 0.0]), 0.1), _Linear(np.array([0.0, 2.0]), 0.2)
    E = np.array([[1.0, 2.0], [3.0, 4.0]])
    mu, sd = StackedModels([a, b]).predict(E)
    assert mu.tolist() == [[1.0, 4.0], [3.0, 8.0]] and sd[:, 1].tolist() == [0.2, 0.2]
    mu, sd, dmu, dsd = StackedModels([a, b]).predict_grad(E)
    assert dmu.shape == (2, 2, 2) and dmu[0, 1].tolist() == [0.0, 2.0]


# -- searches -----------------------------------------------------------------------------------
SPACE6 = Space([Real(f"x{i}", 0.0, 1.0) for i in range(6)])


def _zdt1(tid: int, p: dict) -> Result:
    x = np.array([p[f"x{i}"] for i in range(6)])
    g = 1.0 + 9.0 * x[1:].sum() / 5.0
    f = (float(x[0]), float(g * (1.0 - math.sqrt(x[0] / g))))
    return Result(tid, p, DONE, loss=f[0], objectives=f)


def test_ehvi_is_the_default_for_two_objectives_and_beats_random_on_zdt1():
    ref = (1.1, 1.1)
    opt = MBO(SPACE6, seed=3, n_initial=16)
    told = ask_tell(opt, _zdt1, 48)
    assert opt._record["method"] == "ehvi", opt._record
    assert opt._record["boxes"] >= 2
    rand = ask_tell(RandomSearch(SPACE6, seed=3), _zdt1, 48)
    hv_mbo = hypervolume([r.objectives for r in told], ref)
    hv_rand = hypervolume([r.objectives for r in rand], ref)
    assert hv_mbo > hv_rand * 1.2, (hv_mbo, hv_rand)
    # the picks of a batch differ, and they spread along the front (x0), not one neighbourhood
    last = [r.params for r in told[-8:]]
    assert len({SPACE6.key(p) for p in last}) == 8
    assert np.ptp([p["x0"] for p in last]) > 0.2, [p["x0"] for p in last]


def test_ehvi_repeats_with_the_seed():
    def run() -> list[dict]:
        return [r.params for r in ask_tell(MBO(SPACE6, seed=5, n_initial=8), _zdt1, 20, batch=6)]

    assert run() == run()


def _four(tid: int, p: dict) -> Result:
    x = np.array([p[f"x{i}"] for i in range(6)])
    f = tuple(float(((x - c) ** 2).sum()) for c in (0.0, 0.3, 0.6, 1.0))
    return Result(tid, p, DONE, loss=f[0], objectives=f)


@pytest.mark.parametrize("kw, method", [({}, "parego"), ({"multi_method": "ehvi"}, "ehvi"),
                                         ({"surrogate": "rf", "n_estimators": 20}, "parego")])
def test_auto_uses_parego_for_four_objectives_or_another_surrogate(kw, method):
    opt = MBO(SPACE6, seed=1, n_initial=8, n_candidates=300, **kw)
    ask_tell(opt, _four, 16)
    assert opt._record is not None
    assert opt._record["method"] == method, opt._record


def test_ehvi_with_a_surrogate_other_than_the_gp_is_refused():
    with pytest.raises(ValueError, match=r"multi_method='ehvi' needs surrogate 'gp'.*'rf'"):
        MBO(SPACE6, multi_method="ehvi", surrogate="rf")
    with pytest.raises(ValueError, match="multi_method"):
        MBO(SPACE6, multi_method="sms-ego")


SPACE2 = Space([Real("x", 0.0, 1.0), Real("y", 0.0, 1.0)])


def _constrained(tid: int, p: dict) -> Result:
    """Two objectives; feasible only where x + y >= 1.2 (violation 1.2 - x - y)."""
    x, y = p["x"], p["y"]
    f = (x * x + y, (1 - x) ** 2 + y)
    return Result(tid, p, DONE, loss=f[0], objectives=f, violation=1.2 - x - y)


def _feasible_hv(told: list[Result]) -> float:
    return hypervolume([r.objectives for r in told if r.violation <= 0] or np.empty((0, 2)), (2.0, 2.0))


def test_ehvi_with_a_constraint_finds_a_better_feasible_front():
    """The constrained front lies on the constraint's boundary (x + y = 1.2): EHVI times the
    probability of feasibility puts its picks along it, and the feasible front's hypervolume
    beats random search's at the same budget and seed."""
    opt = MBO(SPACE2, seed=2, n_initial=8, multi_method="ehvi")
    told = ask_tell(opt, _constrained, 40)
    assert opt._record["method"] == "ehvi"
    rand = ask_tell(RandomSearch(SPACE2, seed=2), _constrained, 40)
    assert _feasible_hv(told) > _feasible_hv(rand), (_feasible_hv(told), _feasible_hv(rand))
    # near the boundary: the later picks' mean |violation| is a fraction of random's
    near = np.mean([abs(r.violation) for r in told[16:]])
    assert near < 0.5 * np.mean([abs(r.violation) for r in rand[16:]]), near


def test_auto_uses_parego_with_constraints():
    opt = MBO(SPACE2, seed=2, n_initial=8, n_candidates=300)
    ask_tell(opt, _constrained, 16)
    assert opt._record is not None and opt._record["method"] == "parego", opt._record


def _three(tid: int, p: dict) -> Result:
    x = np.array([p[f"x{i}"] for i in range(6)])
    f = tuple(float(((x - c) ** 2).sum()) for c in (0.0, 0.5, 1.0))
    return Result(tid, p, DONE, loss=f[0], objectives=f)


def test_three_objectives_with_a_front_too_large_for_the_boxes_fall_back_to_parego():
    opt = MBO(SPACE6, seed=1, n_initial=8, n_candidates=300)
    ask_tell(opt, _three, 16)
    assert opt._record["method"] == "ehvi"
    opt._ehvi_max_front = 2  # any front of 3 points or more is 'too large'
    ask_tell(opt, _three, 8)
    assert opt._record["method"] == "parego", opt._record
