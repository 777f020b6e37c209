"""The GP path of ``mbo``: the categorical kernel term, MAP hyperparameters, gradients,
log-EI, the acquisition optimizer and the sequential kriging believer."""

from __future__ import annotations

import math

import numpy as np
import pytest

from emews.optimizers._acquire import AcquisitionOptimizer, lcb, log_ei
from emews.optimizers._gp import GPSurrogate, _matern, _neg_log_prior, _nll
from emews.optimizers._unit import UnitGrid
from emews.optimizers.mbo import MBO
from emews.space import Bool, Categorical, Int, Ordinal, Real, Space
from emews.task import Result

SPACE = Space([
    Real("x", 0.0, 1.0),
    Real("lr", 1e-4, 1e-1, log=True),
    Int("n", 1, 20),
    Ordinal("bs", [16, 32, 64, 128]),
    Categorical("act", ["relu", "tanh", "elu", "sigmoid"]),
    Bool("flag"),
])


def loss(p: dict) -> float:
    shift = {"relu": 0.0, "tanh": 0.3, "elu": 0.1, "sigmoid": 0.8}[p["act"]]
    return ((p["x"] - 0.3) ** 2 + (math.log10(p["lr"]) + 2.5) ** 2 / 4 + ((p["n"] - 7) / 10) ** 2
            + shift + (0.0 if p["flag"] else 0.2) + 0.05 * abs(math.log2(p["bs"]) - 5))


def fitted(n: int = 40, seed: int = 0) -> MBO:
    opt = MBO(SPACE, seed=seed, n_initial=8)
    pts = SPACE.sample(n, seed=seed)
    opt.tell([Result(i, p, "done", loss=loss(p)) for i, p in enumerate(pts)])
    assert opt._fit()
    return opt


def test_categorical_term_is_one_on_equal_rows_and_decays_with_each_differing_category():
    opt = fitted()
    model = opt._model
    grid = opt.grid
    base = {"x": 0.5, "lr": 1e-2, "n": 5, "bs": 32, "act": "relu", "flag": True}

    def k(a: dict, b: dict) -> float:
        A, B = (model._scaled(grid.encode(grid.unit([p]))) for p in (a, b))
        return float(_matern(A, B, model.ls, model.amp)[0, 0]) / model.amp

    assert k(base, base) == pytest.approx(1.0)
    one = [k(base, dict(base, act=v)) for v in ("tanh", "elu", "sigmoid")]
    # Hamming: every other category is as far as any other (one shared length scale)
    assert max(one) - min(one) < 1e-12 and one[0] < 1.0
    two = k(base, dict(base, act="tanh", flag=False))
    assert two < min(one[0], k(base, dict(base, flag=False))) < 1.0
    # a differing category adds 1 / length scale^2 to the squared distance
    group = opt._gp_columns()[0]
    act = int(group[grid.space.encoded_width - 5])  # the first one-hot column of "act"
    r = 1.0 / model.ls[group == act][0]
    s5 = math.sqrt(5.0)
    assert one[0] == pytest.approx((1 + s5 * r + 5 / 3 * r * r) * math.exp(-s5 * r))


@pytest.mark.parametrize("prior", [False, True])
def test_likelihood_gradient_with_shared_length_scales_and_priors(prior):
    from scipy.optimize import approx_fprime

    rng = np.random.default_rng(1)
    X = rng.random((30, 5))
    y = np.sin(5 * X[:, 0]) + X[:, 2]
    y = (y - y.mean()) / y.std()
    groups = np.array([0, 1, 2, 2, 3])
    theta = np.r_[np.log([0.3, 0.7, 1.5, 1.0]), 0.1, math.log(1e-2)]
    _, grad = _nll(theta, X, y, groups, prior)
    numeric = approx_fprime(theta, lambda t: _nll(t, X, y, groups, prior)[0], 1e-6)
    np.testing.assert_allclose(grad, numeric, rtol=1e-3, atol=1e-3)
    _, g = _neg_log_prior(theta)
    np.testing.assert_allclose(g, approx_fprime(theta, lambda t: _neg_log_prior(t)[0], 1e-7), rtol=1e-4, atol=1e-5)


def test_priors_keep_length_scales_of_irrelevant_columns_finite():
    rng = np.random.default_rng(0)
    X = rng.random((25, 3))
    y = np.sin(6 * X[:, 0])
    mapfit = GPSurrogate(prior=True, random_state=0).fit(X, y)
    # the prior holds the unused columns' length scales off the upper bound (20), still
    # longer than the used column's
    assert mapfit.ls[1:].max() < 19.0 and mapfit.ls[0] < mapfit.ls[1:].min()


@pytest.mark.parametrize("max_points", [1000, 30])
def test_predict_grad_matches_finite_differences(max_points):
    rng = np.random.default_rng(2)
    X = rng.random((60, 4))
    y = np.sin(4 * X[:, 0]) + X[:, 1] ** 2 - X[:, 3]
    model = GPSurrogate(max_points=max_points, inducing=20, random_state=0,
                        groups=np.array([0, 1, 2, 2]), column_scale=np.array([1.0, 1.0, 0.7, 0.7])).fit(X, y)
    assert model.sparse == (max_points < 60)
    Z = rng.random((5, 4))
    mu, sd, dmu, dsd = model.predict_grad(Z)
    m0, s0 = model.predict(Z)
    np.testing.assert_allclose(mu, m0, rtol=1e-9, atol=1e-9)
    np.testing.assert_allclose(sd, s0, rtol=1e-5, atol=1e-7)  # the sparse one through a precomputed matrix
    eps = 1e-6
    for j in range(4):
        Zp = Z.copy()
        Zp[:, j] += eps
        m1, s1 = model.predict(Zp)
        np.testing.assert_allclose(dmu[:, j], (m1 - m0) / eps, rtol=1e-3, atol=1e-4)
        np.testing.assert_allclose(dsd[:, j], (s1 - s0) / eps, rtol=1e-3, atol=1e-4)


def test_log_ei_is_the_log_of_ei_and_stays_finite_far_below_the_incumbent():
    from scipy.stats import norm

    mu = np.array([-1.0, 0.0, 0.5, 2.0, 40.0, 1e4])
    sd = np.array([0.5, 1.0, 0.2, 0.3, 1.0, 1.0])
    value, dmu, dsd = log_ei(mu, sd, best=0.0)
    z = (0.0 - mu) / sd
    ei = sd * (z * norm.cdf(z) + norm.pdf(z))
    near = ei > 1e-200
    np.testing.assert_allclose(value[near], np.log(ei[near]), rtol=1e-8)
    assert np.isfinite(value).all() and np.all(np.diff(value[3:]) < 0)  # monotone however far
    eps = 1e-6
    v1 = log_ei(mu + eps, sd, 0.0)[0]
    v2 = log_ei(mu, sd + eps, 0.0)[0]
    np.testing.assert_allclose(dmu[:5], ((v1 - value) / eps)[:5], rtol=1e-3, atol=1e-5)
    np.testing.assert_allclose(dsd[:5], ((v2 - value) / eps)[:5], rtol=1e-3, atol=1e-5)
    v, a, b = lcb(np.array([1.0]), np.array([2.0]), 0.5)
    assert v[0] == -0.0 and a[0] == -1.0 and b[0] == 0.5


def test_acquisition_optimizer_never_loses_and_returns_valid_points():
    opt = fitted(60)
    grid: UnitGrid = opt.grid
    fn = opt._acquisition_fn(opt.kappa, opt._best_z)
    aopt = AcquisitionOptimizer(grid, opt._model, fn)
    starts = grid.snap(np.random.default_rng(5).random((12, grid.n)))
    before = aopt.value(starts)
    U, acq = aopt.optimize(starts)
    assert U.shape == starts.shape
    assert np.all(acq >= before - 1e-12) and acq.mean() > before.mean()
    np.testing.assert_array_equal(U, grid.snap(U))  # representable values only
    np.testing.assert_allclose(acq, aopt.value(U))
    for p in grid.params(U):
        assert p["act"] in ("relu", "tanh", "elu", "sigmoid") and isinstance(p["flag"], bool)
        assert 0.0 <= p["x"] <= 1.0 and 1e-4 <= p["lr"] <= 1e-1 and 1 <= p["n"] <= 20
        assert p["bs"] in (16, 32, 64, 128)


def test_conditioned_gp_keeps_the_mean_and_shrinks_the_std_at_the_believed_point():
    opt = fitted(30)
    model = opt._model
    E = opt.grid.encode(opt.grid.snap(np.random.default_rng(3).random((50, opt.grid.n))))
    mu, sd = model.predict(E)
    believed = model.conditioned(E[:1], mu[:1])
    mu2, sd2 = believed.predict(E)
    np.testing.assert_allclose(mu2, mu, atol=1e-6 * (1 + np.abs(mu).max()))
    assert np.all(sd2 <= sd + 1e-9) and sd2[0] <= 1.01 * math.sqrt(model.noise_variance) + 1e-9
    assert len(believed._X) == len(model._X) + 1 and len(model._X) == 30  # the original is untouched


def test_sequential_batch_is_distinct_valid_and_from_one_fit():
    opt = fitted(40)
    calls = []
    real = opt._sequential

    def spy(*args):
        out = real(*args)
        calls.append(out is not None)
        return out

    opt._sequential = spy
    batch = opt.ask(8)
    assert calls == [True] and opt._fits == 1
    keys = {SPACE.key(p) for p in batch}
    assert len(keys) == 8
    seen = {SPACE.key(p) for p in SPACE.sample(40, seed=0)}
    assert not keys & seen
    for p in batch:
        assert p["act"] in ("relu", "tanh", "elu", "sigmoid") and p["bs"] in (16, 32, 64, 128)
    # an asynchronous ask while those 8 are pending avoids them as well
    more = opt.ask(4)
    assert not {SPACE.key(p) for p in more} & keys


def test_hyperparameters_are_searched_at_every_fit_up_to_300_observations():
    opt = fitted(100)
    first = opt._model
    assert first.refitted
    more = SPACE.sample(10, seed=9)
    opt.tell([Result(200 + i, p, "done", loss=loss(p)) for i, p in enumerate(more)])
    assert opt._fit() and opt._model is not first
    assert opt._model.refitted and opt._model.hyper_n == 110  # 110 < 1.2 * 100, refitted all the same


def test_mbo_uses_only_the_declared_surrogate_interface():
    """Issue 19 item 5: mbo reads no private state of its model and probes for nothing: what it
    may ask of a surrogate is declared in ``emews.optimizers._model``, chosen by class."""
    import ast
    import inspect

    from emews.optimizers import _model, mbo
    from emews.optimizers._surrogates import ForestSurrogate, GPSurrogate, QuantileGBRT

    tree = ast.parse(inspect.getsource(mbo))
    private = [n.attr for n in ast.walk(tree) if isinstance(n, ast.Attribute) and n.attr.startswith("_")
               and isinstance(n.value, ast.Attribute) and n.value.attr == "_model"]
    probes = [n.func.id for n in ast.walk(tree) if isinstance(n, ast.Call) and isinstance(n.func, ast.Name)
              and n.func.id in ("hasattr", "getattr")]
    assert not private and not probes, (private, probes)
    assert issubclass(GPSurrogate, _model.BelieverSurrogate)
    assert issubclass(ForestSurrogate, _model.Surrogate) and not issubclass(ForestSurrogate, _model.GradientSurrogate)
    assert issubclass(QuantileGBRT, _model.Surrogate) and not issubclass(QuantileGBRT, _model.GradientSurrogate)
    gp = GPSurrogate(max_points=20, inducing=10, random_state=0)
    rng = np.random.default_rng(0)
    X, y = rng.random((30, 2)), rng.random(30)
    gp.fit(X, y)
    assert not gp.exact and gp.conditioning_points == 10  # sparse beyond max_points: through inducing points
    gp = GPSurrogate(max_points=50, random_state=0).fit(X, y)
    assert gp.exact and gp.conditioning_points == 30 and gp.conditioned(X[:1], y[:1]).conditioning_points == 31
