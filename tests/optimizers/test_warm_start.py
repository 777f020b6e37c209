"""``warm_start: PATH``: earlier results (an emews experiment, its results.csv, an mlrMBO restart
CSV such as Supervisor's own restart-combo.csv) given to the optimizer before it proposes."""

from __future__ import annotations

import csv
import json

import pytest
from helpers import ROOT, run_cli, write_config

from emews.errors import ConfigError
from emews.formats import read_r_params, read_warm_start
from emews.journal import read_journal
from emews.space import Space
from emews.testing.optimizers import run_with_fake_driver

MLRMBO = ROOT / "tests" / "data" / "supervisor" / "workflows" / "mlrMBO"
RESTART = MLRMBO / "test" / "restart-combo.csv"
SPACE = Space.from_dict({"x0": {"type": "real", "low": -1, "high": 1}, "x1": {"type": "real", "low": -1, "high": 1}})


def _restart_csv(path, rows, header=("y", "x0", "x1")):
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(header)
        w.writerows(rows)
    return path


def test_supervisors_restart_file_loads_onto_its_param_set():
    space = read_r_params(MLRMBO / "data" / "p1b1_restart_params.R")
    ws = read_warm_start(RESTART, space)
    expected = [tuple(line.split(",")) for line in RESTART.read_text().split()[1:]]  # y,batch_size,epochs
    assert [(r.loss, r.params["batch_size"], r.params["epochs"]) for r in ws.results] == \
        [(float(y), int(b), int(e)) for y, b, e in expected]
    assert ws.skipped == 0 and all(r.ok and r.task_id < 0 for r in ws.results)


def test_rows_outside_the_space_or_with_unknown_names_are_skipped_and_counted(tmp_path):
    p = _restart_csv(tmp_path / "r.csv", [[0.5, 0.1, 0.2], [0.4, 3.0, 0.0], ["nan", 0.1, 0.1], [0.3, 0.2, 0.2, 7]],
                     header=("y", "x0", "x1", "lr"))
    ws = read_warm_start(p, SPACE)
    assert [r.params for r in ws.results] == [{"x0": 0.1, "x1": 0.2}] and ws.skipped == 3
    assert any("outside" in why for why in ws.reasons) and any("'lr'" in why for why in ws.reasons)


def test_a_file_without_a_y_column_is_a_config_error_naming_it(tmp_path):
    _restart_csv(tmp_path / "nolabel.csv", [[0.1, 0.2]], header=("x0", "x1"))
    cfg = {"experiment": "w", "objective": "emews.examples:sphere", "space": SPACE.to_dict(), "max_evals": 4,
           "warm_start": "nolabel.csv", "output": str(tmp_path / "runs")}
    r = run_cli([str(write_config(tmp_path, cfg))], cwd=tmp_path)
    assert r.returncode == 2 and "warm_start" in r.stderr and "nolabel.csv" in r.stderr and "no y column" in r.stderr
    assert not (tmp_path / "runs").exists()
    with pytest.raises(ConfigError, match="no such file"):
        read_warm_start(tmp_path / "missing.csv", SPACE)


def test_an_earlier_experiment_warm_starts_a_cli_run_outside_its_budget(tmp_path):
    base = {"objective": "emews.examples:sphere", "space": SPACE.to_dict(), "workers": 2, "seed": 1,
            "output": str(tmp_path / "runs"), "report": False}
    earlier = write_config(tmp_path, {**base, "experiment": "earlier", "max_evals": 8}, "a.yaml")
    r = run_cli([str(earlier)], cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    (tmp_path / "bad.csv").write_text((tmp_path / "runs" / "earlier" / "results.csv").read_text())
    for source in ("runs/earlier", "runs/earlier/results.csv"):
        cfg = {**base, "experiment": "later", "max_evals": 5, "warm_start": source,
               "optimizer": {"name": "mbo", "settings": {"n_initial": 4}}}
        r = run_cli([str(write_config(tmp_path, cfg, "b.yaml")), "--fresh", "--force"], cwd=tmp_path)
        assert r.returncode == 0, r.stderr
        j = read_journal(tmp_path / "runs" / "later")
        assert len(j["evals"]) == 5  # the 8 earlier results spend none of the budget
        warm = [x for x in j["optimizer_log"] if "warm_start" in x]
        assert len(warm) == 1 and warm[0]["results"] == 8 and warm[0]["skipped"] == 0
        fits = [x for x in j["optimizer_log"] if x.get("optimizer") == "mbo"]
        assert fits and fits[0]["observations"] >= 8  # fitted on them: no initial design first


def test_a_warning_counts_the_skipped_rows(tmp_path):
    _restart_csv(tmp_path / "r.csv", [[0.5, 0.1, 0.2], [0.4, 3.0, 0.0], [0.2, -5, 0]])
    cfg = {"experiment": "w", "objective": "emews.examples:sphere", "space": SPACE.to_dict(), "max_evals": 2,
           "warm_start": "r.csv", "output": str(tmp_path / "runs"), "report": False}
    r = run_cli([str(write_config(tmp_path, cfg))], cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    lines = [ln for ln in r.stderr.splitlines() if "warm_start" in ln and "skipped" in ln]
    assert len(lines) == 1 and "2 of 3 row(s)" in lines[0], r.stderr


def _warm(n: int):
    return [r for r in run_with_fake_driver("random", SPACE, lambda p: (p["x0"] - 0.5) ** 2 + p["x1"] ** 2,
                                            max_evals=n, seed=99).results]


def test_ga_seeds_its_first_population_with_the_best_earlier_results():
    warm = _warm(12)
    f = lambda p: (p["x0"] - 0.5) ** 2 + p["x1"] ** 2  # noqa: E731 - the same objective as the warm results'
    kw = dict(settings={"population": 4, "generations": 1}, max_evals=20, seed=3)
    run = run_with_fake_driver("ga", SPACE, f, warm_start=warm, **kw)
    gens = [rec for rec in run.logs if "generation" in rec]  # the real driver also journals the warm start's record
    gen0 = gens[0]
    assert gen0["generation"] == 0 and gen0["evals"] == 0  # the first population: the warm results, not evaluated
    assert gen0["best_loss"] == min(r.loss for r in warm)
    assert gen0["min"] == min(r.loss for r in warm) and gen0["max"] == sorted(r.loss for r in warm)[3]  # the best 4
    assert len(run.results) == gens[1]["evals"] > 0  # only generation 1's children ran
    cold = run_with_fake_driver("ga", SPACE, f, **kw)
    cold_gens = [rec for rec in cold.logs if "generation" in rec]
    assert cold_gens[0]["evals"] == 4 and len(cold.results) == 4 + cold_gens[1]["evals"]


def test_random_search_skips_nothing():
    kw = dict(max_evals=10, seed=4)
    cold = [r.params for r in run_with_fake_driver("random", SPACE, lambda p: 0.0, **kw).results]
    warm = [r.params for r in run_with_fake_driver("random", SPACE, lambda p: 0.0, warm_start=_warm(6), **kw).results]
    assert sorted(map(json.dumps, cold)) == sorted(map(json.dumps, warm))


def test_search_api_takes_a_warm_start(tmp_path):
    import emews

    p = _restart_csv(tmp_path / "r.csv", [[0.5, 0.1, 0.2], [0.4, 0.3, 0.0], [0.2, -0.5, 0.5]])
    res = emews.search("emews.examples:sphere", SPACE, optimizer="mbo", settings={"n_initial": 2}, max_evals=3,
                       workers=1, seed=0, warm_start=p, output=tmp_path / "runs", report=False)
    j = read_journal(res.directory)
    assert len(j["evals"]) == 3
    assert [x["results"] for x in j["optimizer_log"] if "warm_start" in x] == [3]


@pytest.mark.parametrize("optimizer", [{"name": "mbo", "settings": {"n_initial": 6}},
                                       {"name": "ga", "settings": {"population": 6, "offspring": 6}}])
def test_a_warm_started_search_killed_and_resumed_loses_nothing(tmp_path, optimizer):
    from helpers import kill_and_resume, kill_rng

    _restart_csv(tmp_path / "r.csv", [[(x - 0.3) ** 2 + (y - 0.3) ** 2, x, y]
                                      for x, y in [(0.1, 0.2), (-0.5, 0.9), (0.8, -0.2), (0.3, 0.35), (-0.9, -0.9),
                                                   (0.0, 0.6), (0.45, 0.1), (0.6, 0.6)]])
    cfg = {"experiment": "k", "objective": "killable:slow", "space": SPACE.to_dict(), "optimizer": optimizer,
           "max_evals": 30, "workers": 2, "seed": 5, "output": str(tmp_path / "runs"), "warm_start": "r.csv",
           "report": False}
    kill_and_resume(tmp_path, write_config(tmp_path, cfg), 30, 2, kill_rng())
    j = read_journal(tmp_path / "runs" / "k")
    assert [x["results"] for x in j["optimizer_log"] if "warm_start" in x] == [8]  # journaled once, both sessions
