"""The DEAP genetic algorithms: operators, generations, logs, initial populations, steady state."""

from __future__ import annotations

import math
import random

import pytest

from emews.errors import ConfigError
from emews.optimizers import resolve
from emews.optimizers.ga import GA, SteadyStateGA, _Genetics, read_population_csv
from emews.space import Bool, Categorical, Constant, Int, Ordinal, Real, Space
from emews.task import Result
from emews.testing.optimizers import mixed_objective, mixed_space, run_with_fake_driver

SPACE = Space([Real("lr", 1e-4, 1e-1, log=True), Real("drop", 0.0, 0.9, sigma=0.05), Int("units", 1, 100),
               Ordinal("batch", [16, 32, 64, 128, 256], sigma=1), Categorical("act", ["relu", "tanh", "elu"]),
               Bool("res"), Constant("epochs", 5)])


def test_registered_names():
    assert resolve("ga") is GA and resolve("ga-steady") is SteadyStateGA


@pytest.mark.parametrize("setting, value, message", [
    ("strategy", "nsga2", r"GA setting strategy='nsga2': expected one of 'mu\+lambda', 'simple'"),
    ("population", 1, r"population=1: expected an integer >= 2"),
    ("mutpb", 1.5, r"mutpb=1.5: expected a probability"),
    ("impute", "zero", r"impute='zero'"),
    ("penalty", "high", r"penalty='high'"),
])
def test_bad_settings_name_the_setting_and_value(setting, value, message):
    with pytest.raises(ValueError, match=message):
        GA(SPACE, **{setting: value})


def test_mu_plus_lambda_needs_cxpb_plus_mutpb_at_most_one():
    with pytest.raises(ValueError, match=r"cxpb=0.5 and mutpb=0.8"):
        GA(SPACE, cxpb=0.5, mutpb=0.8)
    GA(SPACE, cxpb=0.5, mutpb=0.8, strategy="simple")  # eaSimple has no such limit


def test_candle_defaults():
    ga = GA(SPACE)
    assert (ga.population, ga.mutpb, ga.cxpb, ga.indpb, ga.tournament) == (16, 0.8, 0.2, 0.5, 4)
    assert ga.strategy == "mu+lambda" and ga.offspring == 16


def test_mutation_is_type_aware_and_uses_the_space_sigmas():
    g = _Genetics(SPACE, random.Random(0), indpb=1.0, tournament=4)
    assert g.sigmas[1] == 0.05, "sigma from the space (Supervisor JSON) is used"
    assert g.sigmas[2] == pytest.approx(9.9), "default: (high - low) / 10"
    assert g.sigmas[0] == pytest.approx((math.log(0.1) - math.log(1e-4)) / 10), "log dimension: in log space"
    parent = g.individual({"lr": 0.01, "drop": 0.5, "units": 50, "batch": 64, "act": "relu", "res": True,
                           "epochs": 5})
    steps = []
    for _ in range(300):
        child = g.mutate(g.clone(parent))
        p = SPACE.validate(g.params(child))  # always inside the space
        assert p["epochs"] == 5, "constants are never mutated"
        assert p["act"] != "relu", "categorical: resampled to another value"
        assert p["res"] is False, "bool: flipped"
        assert isinstance(p["units"], int)
        steps.append(abs(p["drop"] - 0.5))
        assert abs([16, 32, 64, 128, 256].index(p["batch"]) - 2) <= 2
    sd = (sum(s * s for s in steps) / len(steps)) ** 0.5
    assert 0.03 < sd < 0.07, f"real mutation width follows sigma=0.05, got {sd:.3f}"


def test_uniform_crossover_swaps_genes_between_parents():
    g = _Genetics(SPACE, random.Random(1), indpb=0.5, tournament=4)
    a = g.individual({"lr": 0.01, "drop": 0.1, "units": 1, "batch": 16, "act": "relu", "res": True, "epochs": 5})
    b = g.individual({"lr": 0.05, "drop": 0.8, "units": 99, "batch": 256, "act": "elu", "res": False, "epochs": 5})
    c, d = g.crossover(g.clone(a), g.clone(b))
    for i in range(len(a)):
        assert {c[i], d[i]} == {a[i], b[i]}
    assert list(c) != list(a) and list(c) != list(b)


def test_tournament_selection_prefers_lower_losses():
    g = _Genetics(SPACE, random.Random(2), indpb=0.5, tournament=4)
    pop = []
    for i, p in enumerate(SPACE.sample(10, seed=0)):
        ind = g.individual(p)
        ind.fitness.values = (float(i),)
        pop.append(ind)
    picks = [g.select_one(pop).fitness.values[0] for _ in range(500)]
    assert sum(picks) / len(picks) < 2.5  # the mean of 10 uniform picks would be 4.5


@pytest.mark.parametrize("strategy", ["mu+lambda", "simple"])
def test_generations_are_logged_until_the_budget_is_spent(strategy):
    run = run_with_fake_driver("ga", SPACE, mixed_objective, settings={"strategy": strategy, "population": 8},
                               max_evals=40, capacity=4)
    done = [r for r in run.results if r.status == "done"]
    assert len(done) == 40
    gens = [rec["generation"] for rec in run.logs]
    assert gens == list(range(len(gens))) and len(gens) >= 5
    for rec in run.logs:
        for key in ("evals", "total_evals", "min", "mean", "max", "best_loss", "best_params"):
            assert key in rec, key
        assert rec["min"] <= rec["mean"] <= rec["max"]
        SPACE.validate(rec["best_params"])
    assert run.logs[-1]["total_evals"] == 40
    assert run.logs[-1]["best_loss"] == pytest.approx(run.best)


def test_generation_limit_ends_the_search_early():
    run = run_with_fake_driver("ga", SPACE, mixed_objective, settings={"generations": 2, "population": 6},
                               max_evals=1000, capacity=3)
    assert [rec["generation"] for rec in run.logs] == [0, 1, 2]
    assert len(run.results) <= 18


def test_failures_are_imputed_with_the_worst_loss_or_a_penalty():
    def flaky(p):
        if p["act"] == "tanh":
            raise RuntimeError("diverged")
        return mixed_objective(p)

    run = run_with_fake_driver("ga", SPACE, flaky, settings={"population": 8}, max_evals=24, capacity=4)
    assert any(r.status == "failed" for r in run.results)
    first = run.logs[0]
    assert first["failed"] > 0 and math.isfinite(first["max"]), "failures got the worst loss seen"
    run = run_with_fake_driver("ga", SPACE, flaky, settings={"population": 8, "impute": "penalty", "penalty": 1e6},
                               max_evals=24, capacity=4)
    assert run.logs[0]["max"] == 1e6


def test_all_failed_first_generation_does_not_crash():
    run = run_with_fake_driver("ga", SPACE, lambda p: float("nan"), settings={"population": 4}, max_evals=12,
                               capacity=2)
    assert len(run.results) == 12 and run.logs[0]["min"] is None


def test_initial_population_from_csv(tmp_path):
    p = tmp_path / "init.csv"
    p.write_text("lr,drop,units,batch,act,res,loss\n"
                 "0.001,0.2,10,64,relu,true,0.5\n"
                 "1e-2,0.5,20,128,elu,False,0.7\n")
    rows = read_population_csv(p, SPACE)
    assert rows[0] == {"lr": 0.001, "drop": 0.2, "units": 10, "batch": 64, "act": "relu", "res": True, "epochs": 5}
    assert rows[1]["res"] is False and rows[1]["batch"] == 128
    run = run_with_fake_driver("ga", SPACE, mixed_objective, settings={"population": 4, "initial_population": str(p)},
                               max_evals=8, capacity=2)
    assert [SPACE.key(x) for x in run.puts[:2]] == [SPACE.key(r) for r in rows]


@pytest.mark.parametrize("text, message", [
    ("lr,drop,units,batch,act\n0.01,0.1,5,64,relu\n", r"init.csv: missing column 'res'"),
    ("lr,drop,units,batch,act,res\n0.01,0.1,5,48,relu,1\n",
     r"init.csv: row 2, column 'batch': value '48' is not one of \[16, 32, 64, 128, 256\]"),
    ("lr,drop,units,batch,act,res\n0.01,0.1,5,64,relu,1\n0.01,2.0,5,64,relu,1\n",
     r"init.csv: row 3, column 'drop': value 2.0 is outside \[0.0, 0.9\]"),
    ("lr,drop,units,batch,act,res\n0.01,0.1,5.5,64,relu,1\n", r"row 2, column 'units': value '5.5' is not an integer"),
    ("lr,drop,units,batch,act,res\n0.01,0.1,5,64,relu,maybe\n", r"row 2, column 'res': value 'maybe' is not true"),
    ("lr,drop,units,batch,act,res,epochs\n0.01,0.1,5,64,relu,1,7\n", r"row 2, column 'epochs'"),
    ("lr,drop,units,batch,act,res\n", r"has a header but no rows"),
])
def test_initial_population_errors_name_file_row_and_column(tmp_path, text, message):
    p = tmp_path / "init.csv"
    p.write_text(text)
    with pytest.raises(ConfigError, match=message):
        GA(SPACE, initial_population=str(p))


def test_missing_initial_population_file(tmp_path):
    with pytest.raises(ConfigError, match=r"nope.csv: optimizer.settings.initial_population: cannot read"):
        GA(SPACE, initial_population=str(tmp_path / "nope.csv"))


def test_repeats_are_not_evaluated_twice():
    tiny = Space([Ordinal("a", [1, 2, 3]), Bool("b")])  # 6 points in all
    run = run_with_fake_driver("ga", tiny, lambda p: p["a"] + p["b"], settings={"population": 4},
                               max_evals=50, capacity=2)
    keys = [tiny.key(p) for p in run.puts]
    assert len(keys) == len(set(keys)) <= 6, "each point evaluated once; the GA stops when nothing is new"


def test_seeded_runs_repeat():
    a = run_with_fake_driver("ga", SPACE, mixed_objective, max_evals=40, seed=11)
    b = run_with_fake_driver("ga", SPACE, mixed_objective, max_evals=40, seed=11)
    c = run_with_fake_driver("ga", SPACE, mixed_objective, max_evals=40, seed=12)
    assert a.puts == b.puts and a.puts != c.puts


def test_ga_improves_over_its_first_generation():
    run = run_with_fake_driver("ga", mixed_space(), mixed_objective, max_evals=160, capacity=8, seed=0)
    assert run.logs[-1]["mean"] < run.logs[0]["mean"]
    assert run.logs[-1]["best_loss"] < run.logs[0]["best_loss"]


# -- steady state -------------------------------------------------------------------------------
def test_steady_state_replaces_the_worst_member():
    ga = SteadyStateGA(SPACE, seed=0, population=3)
    pts = ga.ask(3)
    ga.tell([Result(i, p, "done", loss=float(i)) for i, p in enumerate(pts)])
    assert sorted(m.fitness.values[0] for m in ga.members) == [0.0, 1.0, 2.0]
    child = ga.ask(1)[0]  # bred from the population
    ga.tell([Result(3, child, "done", loss=0.5)])
    assert sorted(m.fitness.values[0] for m in ga.members) == [0.0, 0.5, 1.0]
    worse = ga.ask(1)[0]
    ga.tell([Result(4, worse, "done", loss=9.0)])
    assert sorted(m.fitness.values[0] for m in ga.members) == [0.0, 0.5, 1.0]
    ga.tell([Result(5, ga.ask(1)[0], "failed", error="x")])  # imputed: the worst seen (9.0), not inserted
    assert sorted(m.fitness.values[0] for m in ga.members) == [0.0, 0.5, 1.0]


def test_steady_state_keeps_every_worker_busy_and_logs():
    run = run_with_fake_driver("ga-steady", SPACE, mixed_objective, settings={"population": 8}, max_evals=48,
                               capacity=4)
    assert len([r for r in run.results if r.status == "done"]) == 48
    assert [rec["generation"] for rec in run.logs] == [1, 2, 3, 4, 5, 6]
    assert run.logs[-1]["best_loss"] == pytest.approx(run.best)


def test_initial_population_path_is_relative_to_the_config_file(tmp_path):
    from emews.journal import read_journal
    from helpers import base_config, run_cli, write_config

    cfg_dir = tmp_path / "exp"
    cfg_dir.mkdir()
    (cfg_dir / "pop.csv").write_text("x,y\n1.0,2.0\n3.0,4.0\n-1.0,5.0\n2.5,2.5\n")
    cfg = base_config(tmp_path, objective="emews.examples:branin",
                      space={"x": {"type": "real", "low": -5, "high": 10}, "y": {"type": "real", "low": 0, "high": 15}},
                      optimizer={"name": "ga", "settings": {"population": 4, "initial_population": "pop.csv"}},
                      mode="batch", batch_size=4, max_evals=8)
    r = run_cli([str(write_config(cfg_dir, cfg)), "--out", str(tmp_path / "out")], cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    first = [(e["params"]["x"], e["params"]["y"]) for e in read_journal(tmp_path / "out")["evals"][:4]]
    assert sorted(first) == sorted([(1.0, 2.0), (3.0, 4.0), (-1.0, 5.0), (2.5, 2.5)])
