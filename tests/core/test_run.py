"""End-to-end runs of `python -m emews.run` and the driver on the local pool."""

import csv
import json
import sqlite3
import textwrap
import time

import pytest
import yaml

from emews.journal import read_journal
from helpers import STARTUP, WAIT, ROOT, Gate, base_config, kill_env, reap, run_cli, start_cli, wait_until, write_config

USER_MODULE = textwrap.dedent('''
    import math, os, time
    import emews

    def flaky(params):
        """Fails in several ways depending on the parameters."""
        x = params["x"]
        if x < 0.2:
            raise RuntimeError(f"boom at x={x:.3f}")
        if x < 0.3:
            return float("nan")
        if x < 0.4:
            return "not a number"
        if x < 0.5:
            return {"accuracy": 1.0}
        return {"loss": (x - 0.7) ** 2, "accuracy": 1 - x, "note": "ok"}

    def slow(params):
        time.sleep(params["x"] * 0.2)
        return params["x"]

    class Lowest(emews.Optimizer):
        """ask/tell plug-in: random points, remembers what it was told."""
        def __init__(self, space, seed=None, scale=1.0):
            super().__init__(space, seed)
            self.told = 0
        def ask(self, n):
            return self.space.sample(n, self.rng)
        def tell(self, results):
            self.told += len(results)
        def log(self):
            return {"told": self.told}

    def halving(queues, space, seed=None, rounds=3):
        """resident-loop plug-in: owns its loop, calls the queues itself."""
        import numpy as np
        rng = np.random.default_rng(seed)
        pts = space.sample(8, rng)
        for r in range(rounds):
            results = queues.evaluate(pts)
            queues.log({"round": r, "best": min(x.loss for x in results if x.ok)})
            best = sorted((x for x in results if x.ok), key=lambda x: x.loss)[:4]
            pts = [b.params for b in best] + space.sample(4, rng)

    class Broken(emews.Optimizer):
        def ask(self, n):
            if getattr(self, "asked", 0) >= 4:
                raise ValueError("optimizer bug")
            self.asked = getattr(self, "asked", 0) + n
            return self.space.sample(n, self.rng)
''')

X_SPACE = {"x": {"type": "real", "low": 0.0, "high": 1.0}}


@pytest.fixture
def user_dir(tmp_path):
    (tmp_path / "usermod.py").write_text(USER_MODULE)
    return tmp_path


def test_quickstart_config_runs_and_writes_outputs(tmp_path):
    r = run_cli([str(ROOT / "configs" / "quickstart.yaml"), "--out", str(tmp_path / "qs")], cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert "best loss" in r.stdout and "best params" in r.stdout
    out = tmp_path / "qs"
    for name in ("journal.sqlite", "results.csv", "best.json", "config.yaml"):
        assert (out / name).is_file(), name
    j = read_journal(out)
    assert len(j["evals"]) == 60 and {e["status"] for e in j["evals"]} == {"done"}
    e = j["evals"][0]
    assert e["worker"] in (0, 1) and e["host"] and e["start"] <= e["end"] and e["queued"] <= e["start"] + 1
    assert "accuracy" in e["metrics"]
    rows = list(csv.DictReader(open(out / "results.csv")))
    assert len(rows) == 60 and "learning_rate" in rows[0] and "accuracy" in rows[0]
    best = json.loads((out / "best.json").read_text())
    assert best["loss"] == min(float(r["loss"]) for r in rows)
    assert set(best["params"]) == {"learning_rate", "batch_size", "optimizer", "dropout"}


def test_failing_objectives_are_failed_results(user_dir):
    cfg = base_config(user_dir, objective="usermod:flaky", space=X_SPACE, max_evals=40)
    r = run_cli([str(write_config(user_dir, cfg))], cwd=user_dir)
    assert r.returncode == 0, r.stderr
    j = read_journal(user_dir / "runs" / "t")
    by = {}
    for e in j["evals"]:
        by.setdefault(e["status"], []).append(e)
    assert len(j["evals"]) == 40
    assert by.get("failed") and by.get("done")
    errors = [e["error"] for e in by["failed"]]
    x_of = {id(e): e["params"]["x"] for e in by["failed"]}
    for e in by["failed"]:
        x = e["params"]["x"]
        if x < 0.2:
            assert "RuntimeError: boom" in e["error"]
        elif x < 0.3:
            assert "loss=nan" in e["error"]
        elif x < 0.4:
            assert "non-number loss: 'not a number'" in e["error"]
        else:
            assert "without 'loss'" in e["error"]
    assert errors and x_of
    assert all(e["metrics"]["note"] == "ok" for e in by["done"])
    # the same command again resumes (nothing left to do here); --fresh never overwrites the old directory
    r2 = run_cli([str(user_dir / "config.yaml"), "--set", "max_evals=2"], cwd=user_dir)
    assert r2.returncode == 0 and "already complete" in r2.stderr and not (user_dir / "runs" / "t-2").exists()
    r3 = run_cli([str(user_dir / "config.yaml"), "--set", "max_evals=2", "--fresh"], cwd=user_dir)
    assert (user_dir / "runs" / "t-2" / "journal.sqlite").is_file()
    done = [e for e in read_journal(user_dir / "runs" / "t-2")["evals"] if e["status"] == "done"]
    assert r3.returncode == (0 if done else 3), r3.stderr  # 3: evaluations finished, none succeeded


def test_fresh_out_refuses_an_existing_experiment(tmp_path):
    p = write_config(tmp_path, base_config(tmp_path, max_evals=2))
    assert run_cli([str(p), "--out", str(tmp_path / "e")], cwd=tmp_path).returncode == 0
    r = run_cli([str(p), "--out", str(tmp_path / "e"), "--fresh"], cwd=tmp_path)
    assert r.returncode == 2 and f"{tmp_path / 'e'} already holds an experiment; --fresh needs a new directory" in r.stderr
    r = run_cli([str(p), "--out", str(tmp_path / "new"), "--resume"], cwd=tmp_path)
    assert r.returncode == 2 and "nothing to resume" in r.stderr and str(tmp_path / "new") in r.stderr


def test_cli_bad_input_exits_2_with_one_paragraph(tmp_path):
    p = write_config(tmp_path, base_config(tmp_path, max_evals=0))
    r = run_cli([str(p)], cwd=tmp_path)
    assert r.returncode == 2
    assert r.stderr.strip() == f"emews: error: {p}: max_evals: must be >= 1, got 0"
    assert "Traceback" not in r.stderr


def test_objective_attribute_missing_is_reported(tmp_path):
    p = write_config(tmp_path, base_config(tmp_path, objective="emews.examples:no_such_function"))
    r = run_cli([str(p)], cwd=tmp_path)
    assert r.returncode == 2, r.stderr
    assert "objective" in r.stderr and "no_such_function" in r.stderr and "Traceback" not in r.stderr


def test_batch_mode_waits_for_each_batch(user_dir):
    cfg = base_config(user_dir, objective="usermod:slow", space=X_SPACE, max_evals=12, mode="batch", batch_size=4)
    r = run_cli([str(write_config(user_dir, cfg))], cwd=user_dir)
    assert r.returncode == 0, r.stderr
    ev = read_journal(user_dir / "runs" / "t")["evals"]
    assert len(ev) == 12
    for b in range(1, 3):
        prev_end = max(e["end"] for e in ev[(b - 1) * 4 : b * 4])
        assert min(e["queued"] for e in ev[b * 4 : (b + 1) * 4]) >= prev_end


def test_async_mode_refills_workers_without_waiting(user_dir):
    cfg = base_config(user_dir, objective="usermod:slow", space=X_SPACE, max_evals=10)
    r = run_cli([str(write_config(user_dir, cfg))], cwd=user_dir)
    assert r.returncode == 0, r.stderr
    ev = read_journal(user_dir / "runs" / "t")["evals"]
    # some task started while another was still running on the other worker
    overlaps = sum(1 for a in ev for b in ev if a is not b and a["start"] < b["start"] < a["end"])
    assert overlaps >= 3


def test_max_time_stops_new_tasks(user_dir):
    # max_time leaves STARTUP s for the first tasks; the gate lets 4 through and holds the next
    # one on each worker until max_time has passed, so nothing depends on the machine's speed
    gate = Gate(user_dir / "gate")
    gate.allow(4)
    cfg = base_config(user_dir, objective="killable:slow", space={"x": {"type": "constant", "value": 1.0}},
                      max_evals=1000, max_time=STARTUP)
    proc = start_cli([str(write_config(user_dir, cfg))], user_dir, kill_env(user_dir) | gate.env)
    try:
        started = gate.wait_started(6, proc, before_limit=True)
        # the run's clock started before its first task did: max_time has passed by then
        wait_until(lambda: time.monotonic() > started[0] + STARTUP + 0.2, message="max_time to pass")
        gate.open()
        _, err = proc.communicate(timeout=WAIT)
    finally:
        reap(proc)
    assert proc.returncode == 0, err
    j = read_journal(user_dir / "runs" / "t")
    done = [e for e in j["evals"] if e["status"] == "done"]
    assert 4 <= len(done) <= 20
    assert len(done) == 6 and len(gate.started()) == 6  # no task started after max_time
    assert "max_time" in j["meta"]["outcome"]


def test_grid_finishes_when_exhausted(tmp_path):
    cfg = base_config(tmp_path, objective="emews.examples:branin",
                      space={"x": {"type": "real", "low": -5, "high": 10}, "y": {"type": "real", "low": 0, "high": 15}},
                      optimizer={"name": "grid", "settings": {"points": 3}}, max_evals=100)
    r = run_cli([str(write_config(tmp_path, cfg))], cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    ev = read_journal(tmp_path / "runs" / "t")["evals"]
    assert sorted((e["params"]["x"], e["params"]["y"]) for e in ev) == sorted(
        (x, y) for x in (-5.0, 2.5, 10.0) for y in (0.0, 7.5, 15.0))


@pytest.mark.parametrize("name", ["usermod:Lowest", "usermod:halving"])
def test_plugin_optimizers_from_users_module(user_dir, name):
    settings = {"scale": 2.0} if name.endswith("Lowest") else {"rounds": 3}
    cfg = base_config(user_dir, objective="emews.examples:branin",
                      space={"x": {"type": "real", "low": -5, "high": 10}, "y": {"type": "real", "low": 0, "high": 15}},
                      optimizer={"name": name, "settings": settings}, max_evals=24)
    r = run_cli([str(write_config(user_dir, cfg))], cwd=user_dir)
    assert r.returncode == 0, r.stderr
    j = read_journal(user_dir / "runs" / "t")
    assert len(j["evals"]) == 24 and all(e["status"] == "done" for e in j["evals"])
    assert j["optimizer_log"], "the plug-in's log records are journaled"
    if name.endswith("halving"):
        assert [rec["round"] for rec in j["optimizer_log"]] == [0, 1, 2]
    else:
        assert j["optimizer_log"][-1]["told"] == 24


def test_plugin_with_unknown_setting_fails_clearly(user_dir):
    cfg = base_config(user_dir, optimizer={"name": "usermod:Lowest", "settings": {"scael": 1}})
    r = run_cli([str(write_config(user_dir, cfg))], cwd=user_dir)
    assert r.returncode == 2  # a config error, found before the experiment directory is created
    assert "optimizer.settings.scael" in r.stderr and "did you mean 'scale'" in r.stderr
    assert not (user_dir / "runs").exists()


def test_optimizer_error_keeps_results(user_dir):
    # one worker: the optimizer asks for one point per finished one, so when its ask raises no
    # task is queued or running (with two, a point put just before the error could still be
    # queued and be cancelled, as the driver does with queued tasks when the optimizer fails)
    cfg = base_config(user_dir, optimizer="usermod:Broken", max_evals=50, workers=1)
    r = run_cli([str(write_config(user_dir, cfg))], cwd=user_dir)
    assert r.returncode == 1
    assert "the optimizer failed" in r.stderr and "optimizer bug" in r.stderr
    d = user_dir / "runs" / "t"
    assert (d / "results.csv").is_file() and (d / "best.json").is_file()
    ev = read_journal(d)["evals"]
    assert len(ev) >= 4 and all(e["status"] == "done" for e in ev)


def test_retries_are_journaled_per_attempt(tmp_path):
    (tmp_path / "failonce.py").write_text(textwrap.dedent(f'''
        import os
        def run(params):
            marker = os.path.join({str(tmp_path)!r}, "seen-" + str(params["x"]))
            if not os.path.exists(marker):
                open(marker, "w").close()
                raise RuntimeError("first attempt fails")
            return params["x"]
    '''))
    cfg = base_config(tmp_path, objective="failonce:run", space=X_SPACE, max_evals=6, runner={"retries": 2})
    r = run_cli([str(write_config(tmp_path, cfg))], cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    ev = read_journal(tmp_path / "runs" / "t")["evals"]
    assert len(ev) == 12
    assert {(e["attempt"], e["status"]) for e in ev} == {(0, "failed"), (1, "done")}
    rows = list(csv.DictReader(open(tmp_path / "runs" / "t" / "results.csv")))
    assert len(rows) == 6 and {r["attempt"] for r in rows} == {"1"}


def test_journal_is_one_plain_sqlite_file(tmp_path):
    p = write_config(tmp_path, base_config(tmp_path, max_evals=3))
    assert run_cli([str(p), "--out", str(tmp_path / "e")], cwd=tmp_path).returncode == 0
    db = sqlite3.connect(tmp_path / "e" / "journal.sqlite")
    cols = [r[1] for r in db.execute("PRAGMA table_info(evals)")]
    assert cols == ["task_id", "attempt", "params", "status", "loss", "metrics", "worker", "host", "gpu", "queued", "start", "end", "error", "batch",
                    "objectives", "violation"]
    meta = dict(db.execute("SELECT key, value FROM meta"))
    assert json.loads(meta["config"])["max_evals"] == 3
    assert yaml.safe_load((tmp_path / "e" / "config.yaml").read_text())["max_evals"] == 3
    assert not (tmp_path / "e" / "journal.sqlite-wal").exists()


def test_worker_crash_is_a_failed_result_and_the_worker_is_replaced(tmp_path):
    (tmp_path / "crashy.py").write_text(textwrap.dedent('''
        import os
        def run(params):
            if params["x"] < 0.3:
                os._exit(7)          # the whole worker process dies
            return params["x"]
    '''))
    cfg = base_config(tmp_path, objective="crashy:run", space=X_SPACE, max_evals=20)
    r = run_cli([str(write_config(tmp_path, cfg))], cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    ev = read_journal(tmp_path / "runs" / "t")["evals"]
    assert len(ev) == 20
    failed = [e for e in ev if e["status"] == "failed"]
    assert failed and all(e["params"]["x"] < 0.3 and "exited with code 7" in e["error"] for e in failed)
    assert all(e["status"] == "done" for e in ev if e["params"]["x"] >= 0.3)
