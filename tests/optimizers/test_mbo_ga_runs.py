"""mbo and ga end to end on the local pool: emews.search and python -m emews.run, async and batch,
and a CANDLE Supervisor GA parameter file used unchanged."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

import emews
from emews.formats import read_supervisor_json
from emews.journal import read_journal
from emews.space import Bool, Categorical, Constant, Int, Ordinal, Real
from helpers import ROOT, run_cli, write_config

NT3 = ROOT / "tests" / "data" / "nt3_param_space_ga.json"
BRANIN = {"x": {"type": "real", "low": -5.0, "high": 10.0}, "y": {"type": "real", "low": 0.0, "high": 15.0}}
SETTINGS = {
    "mbo": {"n_estimators": 30, "n_jobs": 1},
    "ga": {"population": 6},
    "ga-steady": {"population": 6},
}


def check_results(res, n: int, optimizer: str, space_names) -> None:
    assert len(res) == n and res.count("done") == n, res
    assert res.best is not None and set(res.best["params"]) == set(space_names)
    assert res.optimizer_log, "the optimizer's records are journaled"
    if optimizer == "ga":
        gens = [rec["generation"] for rec in res.optimizer_log]
        assert gens == list(range(len(gens))) and gens[-1] >= 2
        assert {"evals", "min", "mean", "max", "best_loss", "best_params"} <= set(res.optimizer_log[-1])
    elif optimizer == "mbo":
        assert all("fit_seconds" in rec and "observations" in rec for rec in res.optimizer_log)


@pytest.mark.parametrize("mode", ["async", "batch"])
@pytest.mark.parametrize("optimizer", ["mbo", "ga", "ga-steady"])
def test_search(tmp_path, optimizer, mode):
    res = emews.search("emews.examples:branin", BRANIN, optimizer=optimizer, max_evals=24, workers=2, seed=1,
                       mode=mode, settings=SETTINGS[optimizer], output=tmp_path)
    check_results(res, 24, optimizer, ["x", "y"])
    if mode == "batch":
        starts = sorted(r["start"] for r in res.rows)
        assert len(starts) == 24
    assert res.best["loss"] < 10


@pytest.mark.slow
@pytest.mark.parametrize("mode", ["async", "batch"])
@pytest.mark.parametrize("optimizer", ["mbo", "ga"])
def test_config(tmp_path, optimizer, mode):
    cfg = {
        "experiment": f"{optimizer}-{mode}",
        "objective": "emews.examples:branin",
        "space": BRANIN,
        "optimizer": {"name": optimizer, "settings": SETTINGS[optimizer]},
        "mode": mode,
        "batch_size": 4 if mode == "batch" else None,
        "max_evals": 20,
        "workers": 2,
        "seed": 2,
        "output": str(tmp_path / "runs"),
    }
    cfg = {k: v for k, v in cfg.items() if v is not None}
    r = run_cli([str(write_config(tmp_path, cfg)), "--out", str(tmp_path / "out")], cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert "best loss" in r.stdout
    j = read_journal(tmp_path / "out")
    assert len(j["evals"]) == 20 and {e["status"] for e in j["evals"]} == {"done"}
    assert j["optimizer_log"]
    assert (tmp_path / "out" / "optimizer_log.jsonl").is_file()


# -- CANDLE Supervisor GA parameter files ------------------------------------------------------------
def test_supervisor_nt3_file_reads_every_kind():
    space = read_supervisor_json(NT3)
    kinds = {type(d) for d in space.dims}
    assert kinds == {Real, Int, Ordinal, Categorical, Bool, Constant}
    assert space["batch_size"].sigma == 1 and space["epochs"].sigma == 2 and space["dropout"].sigma == 0.045
    assert space["epsilon"].values == [1e-6, 1e-8, 1e-10]
    assert space["classes"].value == 2
    items = json.loads(NT3.read_text())
    assert [it["name"] for it in items] == space.names


def test_supervisor_logical_element_type(tmp_path):
    p = tmp_path / "s.json"
    p.write_text(json.dumps([{"name": "flag", "type": "categorical", "element_type": "logical",
                              "values": ["true", "false"]},
                             {"name": "lr", "type": "float", "lower": 1e-4, "upper": 1e-1, "use_log_scale": True}]))
    space = read_supervisor_json(p)
    assert space["flag"].values == [True, False] and space["lr"].log


def test_ga_uses_the_supervisor_sigmas():
    from emews.optimizers.ga import GA

    ga = GA(read_supervisor_json(NT3), seed=0)
    sig = dict(zip(ga.space.names, ga.genetics.sigmas))
    assert sig["dropout"] == 0.045 and sig["learning_rate"] == 0.0049995 and sig["batch_size"] == 1
    assert sig["activation"] is None and sig["classes"] is None


def test_supervisor_file_with_ga_via_search(tmp_path):
    space = read_supervisor_json(NT3)
    res = emews.search("emews.examples:quickstart", space, optimizer="ga", max_evals=40, workers=2, seed=0,
                       settings={"population": 8}, output=tmp_path)
    check_results(res, 40, "ga", space.names)
    for row in res.rows:
        space.validate(row["params"])
        assert row["params"]["classes"] == 2


@pytest.mark.slow
def test_supervisor_file_with_ga_via_config_space_file(tmp_path):
    conf_dir = tmp_path / "conf"
    conf_dir.mkdir()
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    cfg = {
        "experiment": "nt3-ga",
        "objective": "emews.examples:quickstart",
        # relative to the config file, not to the working directory
        "space_file": os.path.relpath(NT3, conf_dir),
        "optimizer": {"name": "ga", "settings": {"population": 8, "generations": 3}},
        "max_evals": 100,
        "workers": 2,
        "seed": 4,
        "output": str(tmp_path / "runs"),
    }
    r = run_cli([str(write_config(conf_dir, cfg)), "--out", str(tmp_path / "out")], cwd=elsewhere)
    assert r.returncode == 0, r.stderr
    j = read_journal(tmp_path / "out")
    assert [rec["generation"] for rec in j["optimizer_log"]] == [0, 1, 2, 3]
    assert 8 < len(j["evals"]) <= 32, "generations: 3 ends the search before max_evals"
    assert Path(tmp_path / "out" / "best.json").is_file()
