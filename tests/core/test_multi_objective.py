"""Several objectives and constraints (issue 23): the config, what each result carries, the
records (journal, results.csv, best.json, Results), ``ga``'s NSGA-II and a killed-and-resumed run."""

from __future__ import annotations

import contextlib
import csv
import io
import json
import math

import numpy as np
import pytest
from helpers import base_config, finished_rows, kill_and_resume, kill_env, kill_rng, run_cli, write_config

import emews
from emews._objectives import Constraint, ObjectiveSpec, parse_objectives
from emews._pareto import hypervolume, nondominated, reference_point
from emews.errors import ConfigError
from emews.journal import read_journal
from emews.run import main
from emews.task import DONE, FAILED, Result, outcome_from_value

SPACE = {"x0": {"type": "real", "low": -1, "high": 1}, "x1": {"type": "real", "low": -1, "high": 1}}


# -- the config ----------------------------------------------------------------------------------
def test_objectives_in_order_with_directions_and_constraints():
    spec = parse_objectives({"val_loss": "min", "accuracy": "max"}, {"gpu_mem_gb": "<= 40", "latency": "> 0.5"})
    assert spec.names == ("val_loss", "accuracy") and spec.directions == ("min", "max")
    assert spec.constraints == (Constraint("gpu_mem_gb", "<=", 40.0), Constraint("latency", ">", 0.5))
    assert spec.multi and spec.needs_declaration
    # a list of names (each minimized) or of one-key mappings is the same order
    assert parse_objectives(["a", {"b": "max"}], None).directions == ("min", "max")
    # the default (one objective, loss) is no spec at all; one named objective to maximize is one
    assert parse_objectives(None, None) is None and parse_objectives({"loss": "min"}, None) is None
    single = parse_objectives({"accuracy": "max"}, None)
    assert not single.multi and not single.needs_declaration
    assert parse_objectives(None, {"mem": ">=1e-3"}).constraints == (Constraint("mem", ">=", 1e-3),)


@pytest.mark.parametrize("objectives,constraints,key,shown", [
    ({"val_loss": "minimize"}, None, "objectives.val_loss", "'minimize'"),
    ("val_loss", None, "objectives", "'val_loss'"),
    (["a", "b", "a"], None, "objectives", "'a' twice"),
    ({}, None, "objectives", "{}"),
    ([3], None, "objectives[0]", "3"),
    (None, {"mem": "at most 40"}, "constraints.mem", "'at most 40'"),
    (None, {"mem": "<= forty"}, "constraints.mem", "'<= forty'"),
    (None, {"mem": 40}, "constraints.mem", "40"),
    (None, ["mem <= 40"], "constraints", "['mem <= 40']"),
])
def test_bad_objectives_and_constraints_name_the_key_and_value(objectives, constraints, key, shown):
    with pytest.raises(ConfigError) as e:
        parse_objectives(objectives, constraints, "c.yaml")
    assert e.value.key == key and shown in str(e.value)


@pytest.mark.parametrize("optimizer", ["ga-steady", "killable:Drift"])
def test_an_optimizer_that_does_not_declare_it_is_refused_before_anything_exists(tmp_path, monkeypatch, optimizer):
    monkeypatch.chdir(tmp_path)
    cfg = base_config(tmp_path, optimizer=optimizer, objectives={"loss": "min", "dropout": "max"}, report=False)
    path = write_config(tmp_path, cfg)
    err = io.StringIO()
    with contextlib.redirect_stderr(err):
        rc = main([str(path)])
    assert rc == 2, err.getvalue()
    assert f"{path}: optimizer: " in err.getvalue() and "multi_objective" in err.getvalue()
    assert not (tmp_path / "runs").exists()
    # the same with constraints alone, from the command line
    cfg = base_config(tmp_path, optimizer=optimizer, constraints={"x": "<= 1"})
    r = run_cli([str(write_config(tmp_path, cfg, "c2.yaml"))], cwd=tmp_path, env=kill_env(tmp_path))
    assert r.returncode == 2 and "optimizer: " in r.stderr and "constraints" in r.stderr, r.stderr
    assert not (tmp_path / "runs").exists()


# -- what each result carries -----------------------------------------------------------------------
def test_the_first_objective_is_the_workers_loss_and_the_rest_are_metrics():
    o = outcome_from_value({"val_loss": 0.3, "time": 12}, loss_key="val_loss")
    assert o.status == DONE and o.loss == 0.3 and o.metrics == {"time": 12}
    o = outcome_from_value({"time": 12}, loss_key="val_loss")
    assert o.status == FAILED and "'val_loss'" in o.error
    assert outcome_from_value({"val_loss": 0.3}).status == FAILED  # without objectives: 'loss' as ever


def test_judge_sets_the_vector_to_minimize_the_violation_and_keeps_the_values_as_returned():
    spec = parse_objectives({"err": "min", "acc": "max"}, {"mem": "<= 40", "gpus": "< 2"})
    r = spec.judge(Result(1, {}, DONE, 0.2, {"acc": 0.9, "mem": 42.5, "gpus": 2}))
    assert r.objectives == (0.2, -0.9) and r.loss == 0.2
    assert r.violation > 2.5 and r.violation == pytest.approx(2.5)  # strict bound met with equality counts a hair
    assert r.metrics["err"] == 0.2 and r.metrics["acc"] == 0.9  # the values as returned, by name
    missing = spec.judge(Result(2, {}, DONE, 0.2, {"mem": 1, "gpus": 1}))
    assert missing.status == FAILED and missing.loss is None and "'acc'" in missing.error
    no_mem = spec.judge(Result(3, {}, DONE, 0.2, {"acc": 0.5, "gpus": 1}))
    assert no_mem.ok and no_mem.violation == math.inf
    failed = Result(4, {}, FAILED, error="boom")
    assert spec.judge(failed) is failed
    # one objective to maximize: the loss is its negation, no vector
    one = parse_objectives({"acc": "max"}, None).judge(Result(5, {}, DONE, 0.75, {}))
    assert one.loss == -0.75 and one.objectives is None and one.metrics == {"acc": 0.75}


def test_a_journal_of_an_older_emews_gets_the_columns(tmp_path):
    import sqlite3

    from emews.journal import Journal

    db = sqlite3.connect(tmp_path / "journal.sqlite")
    db.execute("CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT)")
    db.execute('CREATE TABLE evals (task_id INTEGER, attempt INTEGER, params TEXT, status TEXT, loss REAL, metrics TEXT, '
               'worker INTEGER, host TEXT, gpu TEXT, queued REAL, start REAL, "end" REAL, error TEXT, '
               'PRIMARY KEY (task_id, attempt))')
    db.execute("INSERT INTO evals VALUES (0, 0, '{}', 'done', 0.5, NULL, 0, 'h', NULL, 1, 2, 3, NULL)")
    db.commit()
    db.close()
    assert read_journal(tmp_path)["evals"][0]["objectives"] is None  # read as it is
    j = Journal(tmp_path / "journal.sqlite")
    j.finished(Result(1, {}, DONE, 0.1, {}, objectives=(0.1, 2.0), violation=math.inf))
    j.close()
    rows = read_journal(tmp_path)["evals"]
    assert rows[0]["objectives"] is None and rows[1]["objectives"] == [0.1, 2.0] and rows[1]["violation"] == math.inf


def test_the_spec_round_trips_through_the_journal_meta():
    spec = parse_objectives({"a": "min", "b": "max"}, {"m": ">= 1"})
    assert ObjectiveSpec.from_meta(json.loads(json.dumps(spec.to_meta()))) == spec


# -- whole runs ----------------------------------------------------------------------------------------
def two_objectives(p):
    if p["x0"] > 0.9:
        return {"f1": 1.0, "mem": 0.0}  # no f2: a failed result naming it
    return {"f1": (p["x0"] - 0.5) ** 2 + p["x1"] ** 2, "f2": -((p["x0"] + 0.5) ** 2 + p["x1"] ** 2),
            "mem": 1.0 + p["x1"]}


def test_a_search_records_the_front_everywhere(tmp_path):
    res = emews.search(two_objectives, SPACE, "random", max_evals=24, workers=2, seed=4, output=tmp_path,
                       experiment="mo", objectives={"f1": "min", "f2": "max"}, constraints={"mem": "<= 1.5"})
    out = tmp_path / "mo"
    rows = res.rows
    done = [r for r in rows if r["status"] == "done"]
    failed = [r for r in rows if r["status"] == "failed"]
    assert done and all(r["objectives"] == [r["metrics"]["f1"], -r["metrics"]["f2"]] for r in done)
    assert all(r["loss"] == r["objectives"][0] for r in done)
    assert all(r["violation"] == max(0.0, r["metrics"]["mem"] - 1.5) for r in done)
    assert all("'f2'" in r["error"] for r in failed) and len(failed) == sum(r["params"]["x0"] > 0.9 for r in rows)
    # the Pareto set: feasible, non-dominated
    ok = [r for r in done if r["violation"] == 0]
    mask = nondominated([r["objectives"] for r in ok])
    expect = sorted(r["task_id"] for r, m in zip(ok, mask) if m)
    assert sorted(r["task_id"] for r in res.pareto()) == expect and expect
    ref = reference_point([r["objectives"] for r in ok])
    hv = hypervolume([r["objectives"] for r in ok], ref)
    assert res.hypervolume() == pytest.approx(hv) and hv > 0
    best = json.loads((out / "best.json").read_text())
    assert sorted(m["task_id"] for m in best["pareto"]) == expect
    assert best["hypervolume"] == pytest.approx(hv)
    assert best["reference_point"]["objectives"] == pytest.approx(ref.tolist())
    assert best["reference_point"]["values"]["f2"] == pytest.approx(-ref[1])  # stated as returned
    assert best["objectives"] == {"f1": "min", "f2": "max"} and best["constraints"] == ["mem <= 1.5"]
    assert all(m["values"]["f2"] == next(r for r in done if r["task_id"] == m["task_id"])["metrics"]["f2"]
               for m in best["pareto"])
    with open(out / "results.csv") as f:
        table = list(csv.DictReader(f))
    head = list(table[0])
    assert head.index("f1") < head.index("f2") < head.index("violation") < head.index("feasible")
    by_id = {int(t["task_id"]): t for t in table}
    for r in done:
        t = by_id[r["task_id"]]
        assert float(t["f2"]) == pytest.approx(r["metrics"]["f2"])
        assert t["feasible"] == str(r["violation"] == 0)
    assert all(by_id[r["task_id"]]["feasible"] == "" for r in failed)
    meta = read_journal(out)["meta"]
    assert meta["objectives"]["names"] == ["f1", "f2"]


def test_ga_searches_with_nsga2_and_constraint_domination(tmp_path):
    res = emews.search(two_objectives, SPACE, "ga", max_evals=36, workers=2, seed=2, output=tmp_path,
                       experiment="ga", settings={"population": 8}, objectives={"f1": "min", "f2": "max"},
                       constraints={"mem": "<= 1.5"}, mode="batch", batch_size=8)
    logs = [r for r in res.optimizer_log if r.get("optimizer") == "ga"]
    assert logs and all(r["selection"] == "nsga2" for r in logs[1:])
    assert logs[-1]["feasible"] == logs[-1]["population"]  # infeasible points leave the population
    assert res.pareto() and all(r["violation"] == 0 for r in res.pareto())


def test_ga_selection_puts_feasible_points_first_then_smaller_violations():
    from deap import tools

    from emews.optimizers.ga import Individual, _fitness_class

    cls = _fitness_class(2)

    def ind(values, violation):
        i = Individual([0], cls)
        i.fitness.values = values
        i.fitness.violation = violation
        return i

    feasible = [ind((3.0, 3.0), 0.0), ind((1.0, 4.0), 0.0)]
    infeasible = [ind((0.0, 0.0), 0.5), ind((0.0, 0.0), 2.0), ind((5.0, 5.0), 0.1)]
    chosen = tools.selNSGA2(infeasible + feasible, 3)
    assert [c.fitness.violation for c in chosen] == [0.0, 0.0, 0.1]
    assert ind((9.0, 9.0), 0.0).fitness.dominates(ind((0.0, 0.0), 1e-9).fitness)
    assert ind((1.0, 1.0), 0.0).fitness.dominates(ind((1.0, 2.0), 0.0).fitness)
    assert not ind((1.0, 3.0), 0.0).fitness.dominates(ind((2.0, 2.0), 0.0).fitness)


def test_killed_and_resumed_multi_objective_run_keeps_everything(tmp_path):
    cfg = write_config(tmp_path, {
        "experiment": "k", "objective": "killable:two", "space": SPACE, "max_evals": 24, "workers": 2, "seed": 5,
        "optimizer": {"name": "ga", "settings": {"population": 6, "offspring": 6}},
        "objectives": {"f1": "min", "f2": "min"}, "constraints": {"mem": "<= 1.5"},
        "output": str(tmp_path / "runs")})
    before, finals = kill_and_resume(tmp_path, cfg, 24, 2, kill_rng())
    out = tmp_path / "runs" / "k"
    rows = finished_rows(out)
    for tid, r in before.items():  # the first session's records come through the resume unchanged
        assert rows[tid]["objectives"] == r["objectives"] and rows[tid]["violation"] == r["violation"]
    done = [r for r in rows.values() if r["status"] == "done"]
    assert len(done) == 24 and all(r["objectives"] == [r["metrics"]["f1"], r["metrics"]["f2"]] for r in done)
    best = json.loads((out / "best.json").read_text())
    ok = [r for r in done if r["violation"] == 0]
    mask = nondominated([r["objectives"] for r in ok])
    assert sorted(m["task_id"] for m in best["pareto"]) == sorted(r["task_id"] for r, m in zip(ok, mask) if m)
    # the resumed GA (told the journaled objectives) proposes what an uninterrupted run does
    ref_dir = tmp_path / "ref"
    r = run_cli([str(cfg), "--out", str(ref_dir)], cwd=tmp_path, env=kill_env(tmp_path, sleep=0.0))
    assert r.returncode == 0, r.stderr
    key = lambda rows: {json.dumps(x["params"], sort_keys=True) for x in rows}  # noqa: E731
    assert key(finished_rows(out).values()) == key(finished_rows(ref_dir).values())
    assert np.isfinite(json.loads((ref_dir / "best.json").read_text())["hypervolume"])


# -- the report -------------------------------------------------------------------------------------
def three(p):
    return {"a": p["x0"] ** 2, "b": (p["x0"] - 1) ** 2 + p["x1"] ** 2, "c": p["x1"] + 1, "mem": p["x0"]}


def test_the_report_holds_the_front_and_draws_it(tmp_path):
    pytest.importorskip("matplotlib")
    from emews.report import report_data

    res = emews.search(two_objectives, SPACE, "random", max_evals=16, workers=2, seed=1, output=tmp_path,
                       experiment="two", objectives={"f1": "min", "f2": "max"}, constraints={"mem": "<= 1.5"})
    out = tmp_path / "two"
    data = json.loads((out / "report.json").read_text())
    best = json.loads((out / "best.json").read_text())
    assert [m["task_id"] for m in data["pareto"]["pareto"]] == [m["task_id"] for m in best["pareto"]]
    assert data["pareto"]["hypervolume"] == pytest.approx(best["hypervolume"])
    trace = data["pareto"]["trace"]
    assert trace[-1][1] == pytest.approx(best["hypervolume"])  # the last point is the front's
    assert all(b[1] >= a[1] - 1e-12 for a, b in zip(trace, trace[1:]))  # it never shrinks
    assert data["pareto"]["infeasible"] == sum(1 for r in res.rows if r["status"] == "done" and r["violation"] > 0)
    assert {"pareto.png", "hypervolume.png"} <= set(data["plots"])
    assert (out / "pareto.png").stat().st_size > 0 and (out / "hypervolume.png").stat().st_size > 0
    assert "Pareto front of f1 (min), f2 (max)" in (out / "report.txt").read_text()
    # three objectives: parallel coordinates of the front
    # (in a child process per task: the isolated runner takes the first objective as the loss too)
    res3 = emews.search(three, SPACE, "random", max_evals=12, workers=2, seed=1, output=tmp_path, experiment="three",
                        objectives={"a": "min", "b": "min", "c": "max"}, constraints={"mem": "< 0.5"},
                        runner={"type": "isolated"})
    assert all(r["status"] == "done" and len(r["objectives"]) == 3 for r in res3.rows)
    data3 = report_data(res3)
    assert len(data3["pareto"]["pareto"]) == len(res3.pareto()) and "pareto.png" in json.loads(
        (tmp_path / "three" / "report.json").read_text())["plots"]
    fig = res3.plot_pareto()
    assert len(fig.axes[0].lines) >= len(res3.pareto())  # one line per front member, plus the axes
    # one objective: no pareto section, no such plots
    one = emews.search(lambda p: p["x0"] ** 2, SPACE, "random", max_evals=4, workers=1, output=tmp_path,
                       experiment="one")
    assert "pareto" not in report_data(one) and one.hypervolume() is None


def test_a_resume_with_other_objectives_is_a_different_search(tmp_path):
    kw = dict(max_evals=4, workers=1, seed=1, output=tmp_path, experiment="r", report=False)
    emews.search(two_objectives, SPACE, "random", objectives={"f1": "min", "f2": "max"}, **kw)
    with pytest.raises(ConfigError) as e:
        emews.search(two_objectives, SPACE, "random", objectives={"f1": "min", "f2": "min"}, resume=True,
                     **{**kw, "max_evals": 6})
    assert 'objectives: {"f1": "min", "f2": "max"} -> {"f1": "min", "f2": "min"}' in str(e.value), str(e.value)
