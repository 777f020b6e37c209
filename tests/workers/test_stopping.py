"""Early stopping wired through emews: runners report, the driver decides, the journal records."""

from __future__ import annotations

import csv
import json
import sys
from pathlib import Path

import pytest

import emews
from emews import ConfigError, parse_config, run_config
from emews.journal import read_journal
from emews.stoppers import ASHA

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import curve_objectives as co  # noqa: E402

SPACE = {"x": {"type": "categorical", "values": [0.5, 0.1, 0.9, 0.3, 0.7, 0.2, 0.8, 0.4, 0.6]}}
ASHA_SPEC = {"name": "asha", "min_resource": 1, "max_resource": 9, "reduction_factor": 3}


def _cfg(tmp_path: Path, **changes) -> dict:
    raw = {
        "experiment": "s",
        "objective": "curve_objectives:with_trial",
        "space": SPACE,
        "optimizer": {"name": "grid", "settings": {}},
        "max_evals": 9,
        "workers": 1,
        "seed": 1,
        "output": str(tmp_path / "runs"),
        "stopper": ASHA_SPEC,
    }
    raw.update(changes)
    return raw


def _run(tmp_path: Path, **changes):
    cfg = parse_config(_cfg(tmp_path, **changes), "test.yaml", base_dir=HERE)
    res = run_config(cfg)
    return res, read_journal(res.directory)


def expected_asha(order: list[float]) -> dict[float, int | None]:
    """What ASHA decides for tasks reporting co.curve in this order, one after another
    (workers: 1): {x: the step it was stopped at, None when it ran to the end}."""
    s = ASHA(**{k: v for k, v in ASHA_SPEC.items() if k != "name"})
    out = {}
    for i, x in enumerate(order):
        out[x] = None
        for step in range(1, co.EPOCHS + 1):
            if s.report(i, step, co.curve(x, step)):
                out[x] = step
                break
        s.finished(i, "stopped" if out[x] else "done", out[x] or co.EPOCHS, co.curve(x, out[x] or co.EPOCHS))
    return out


def _outcomes(journal: dict) -> dict[float, int | None]:
    return {e["params"]["x"]: (e["metrics"]["step"] if e["status"] == "stopped" else None) for e in journal["evals"]}


def _order(journal: dict) -> list[float]:
    return [e["params"]["x"] for e in sorted(journal["evals"], key=lambda e: e["start"])]


@pytest.mark.parametrize("objective, runner", [
    ("curve_objectives:with_trial", "python"), ("curve_objectives:with_raise", "python"),
    ("curve_objectives:with_trial", "isolated"), ("curve_objectives:with_raise", "isolated")])
def test_python_and_isolated_runners_asha_one_worker_exact(tmp_path, objective, runner):
    res, j = _run(tmp_path, objective=objective, runner={"type": runner})
    want = expected_asha(_order(j))
    assert _outcomes(j) == want
    assert any(v is not None for v in want.values()) and any(v is None for v in want.values())
    for e in j["evals"]:
        x = e["params"]["x"]
        reps = [r for r in j["reports"] if r["task_id"] == e["task_id"]]
        if e["status"] == "stopped":
            step = e["metrics"]["step"]
            assert e["loss"] == pytest.approx(co.curve(x, step))  # the last judged report's loss
            assert reps[-1]["step"] == step and reps[-1]["stop"] is True  # nothing reported past the decision
            assert step in (1, 3)  # ASHA stops at a rung
        else:
            assert e["status"] == "done" and [r["step"] for r in reps] == list(range(1, co.EPOCHS + 1))
            assert not any(r["stop"] for r in reps)
        assert all(r["loss"] == pytest.approx(co.curve(x, r["step"])) for r in reps)
    # results.csv carries the status and the step; report.json the epochs saved
    rows = list(csv.DictReader(open(res.directory / "results.csv")))
    stopped = [r for r in rows if r["status"] == "stopped"]
    assert stopped and all(r["step"] for r in stopped)
    rep = json.loads((res.directory / "report.json").read_text())
    used = len(j["reports"])
    assert rep["stopping"]["stopped"] == len(stopped)
    assert rep["stopping"]["epochs_used"] == used
    assert rep["stopping"]["epochs_saved"] == 9 * co.EPOCHS - used > 0
    assert res.count("stopped") == len(stopped) and res.count("failed") == 0
    assert "learning.png" in rep["plots"] and (res.directory / "learning.png").stat().st_size > 0
    assert "tasks stopped" in (res.directory / "report.txt").read_text()
    assert len(res.reports) == used


def test_no_stopper_runs_everything_and_journals_reports(tmp_path):
    res, j = _run(tmp_path, stopper=None)
    assert all(e["status"] == "done" for e in j["evals"])
    assert len(j["reports"]) == 9 * co.EPOCHS


def test_objective_without_trial_keeps_working(tmp_path):
    _, j = _run(tmp_path, objective="curve_objectives:plain")
    assert all(e["status"] == "done" for e in j["evals"]) and j["reports"] == []


def test_search_api_takes_a_stopper_and_two_workers_keep_the_invariants(tmp_path):
    res = emews.search("curve_objectives:with_trial", SPACE, optimizer="grid", max_evals=9, workers=2,
                       output=tmp_path, stopper=ASHA_SPEC, report=False)
    j = read_journal(res.directory)
    used = len(j["reports"])
    assert used < 9 * co.EPOCHS
    for e in j["evals"]:
        reps = [r for r in j["reports"] if r["task_id"] == e["task_id"]]
        decided = [r["step"] for r in reps if r["stop"]]
        if e["status"] == "stopped":
            assert e["metrics"]["step"] in (1, 3) and decided and decided[0] == e["metrics"]["step"]
            assert reps[-1]["step"] <= decided[0] + 1  # no report past a stop decision + 1 step
        else:
            assert e["status"] == "done" and not decided


def test_resident_optimizer_stops_a_task_itself(tmp_path):
    res, j = _run(tmp_path, objective="curve_objectives:stopped_by_optimizer", stopper=None, max_evals=1,
                  optimizer="curve_objectives:stop_first", space={"x": {"type": "real", "low": 0.0, "high": 1.0}})
    [e] = j["evals"]
    assert e["status"] == "stopped" and "stopped early" in e["error"]
    # the stop may reach the worker before its first report (then it has no step and no loss)
    if e["metrics"]["step"] is None:
        assert e["loss"] is None
    else:
        assert e["metrics"]["step"] >= 1 and e["loss"] == pytest.approx(1.5)


def test_bad_reports_warn_and_never_crash(tmp_path, caplog):
    res, j = _run(tmp_path, objective="curve_objectives:bad_reports", max_evals=2)
    assert all(e["status"] == "done" and e["loss"] == 0.4 for e in j["evals"])
    assert [r["step"] for r in j["reports"] if r["task_id"] == j["evals"][0]["task_id"]] == [1, 2, 1, 4]
    assert any(r["loss"] is None for r in j["reports"])  # the NaN, journaled as NULL
    text = caplog.text
    assert "counted as the worst value" in text and "steps must grow" in text


@pytest.mark.parametrize("spec, key, words", [
    ({"name": "asha", "min_resourse": 1}, "stopper.min_resourse", "did you mean 'min_resource'"),
    ({"name": "asha", "min_resource": 30, "max_resource": 27}, "stopper", "30"),
    ({"name": "ashha"}, "stopper.name", "did you mean 'asha'"),
])
def test_bad_stopper_settings_are_config_errors(tmp_path, spec, key, words):
    with pytest.raises(ConfigError) as e:
        parse_config(_cfg(tmp_path, stopper=spec), "test.yaml", base_dir=HERE)
    assert e.value.key is not None and e.value.key.startswith(key) and words in str(e.value)
    assert "test.yaml" in str(e.value)


def test_trial_handle_outside_a_task():
    assert emews.report_step(1, 0.5) is False
    assert emews.current_trial() is None


# -- resume: the stopper is rebuilt from the journal's reports ------------------------------------
def test_resume_after_sigkill_rebuilds_the_stopper(tmp_path):
    """SIGKILL the run while the fifth task is running (before its first report); the resumed
    run decides exactly what an uninterrupted run decides (workers: 1)."""
    import os
    import signal
    import time

    from helpers import kill_env, run_cli, start_cli, write_config

    def ended(out: Path) -> int:
        try:
            return sum(e["status"] in ("done", "stopped") for e in read_journal(out)["evals"])
        except Exception:  # noqa: BLE001 - not created yet
            return 0

    def config(out: str) -> Path:
        raw = _cfg(tmp_path, objective="curve_objectives:blocks_once", output=str(tmp_path / out))
        return write_config(tmp_path, raw, f"{out}.yaml")

    env = kill_env(tmp_path) | {"PYTHONPATH": os.pathsep.join([str(HERE), kill_env(tmp_path)["PYTHONPATH"]])}
    marker = tmp_path / "marker"
    # the uninterrupted run (the marker exists: nothing blocks)
    marker.write_text("")
    r = run_cli([str(config("straight"))], cwd=tmp_path, env=env | {"EMEWS_TEST_MARKER": str(marker),
                                                                    "EMEWS_TEST_BLOCK_X": "-1"})
    assert r.returncode == 0, r.stderr
    straight = read_journal(tmp_path / "straight" / "s")
    order = _order(straight)
    marker.unlink()
    env |= {"EMEWS_TEST_MARKER": str(marker), "EMEWS_TEST_BLOCK_X": repr(order[4])}
    cfg = config("killed")
    out = tmp_path / "killed" / "s"
    proc = start_cli([str(cfg)], tmp_path, env)
    try:
        end = time.monotonic() + 240
        while not (marker.exists() and marker.read_text() and ended(out) >= 4):
            assert time.monotonic() < end and proc.poll() is None, proc.communicate()
            time.sleep(0.05)
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=60)
    finally:
        proc.kill()
        proc.communicate()
    before = read_journal(out)
    assert len({r["task_id"] for r in before["reports"]}) == 4  # the reports of the first session
    r = run_cli([str(cfg)], cwd=tmp_path, env=env, timeout=300)
    assert r.returncode == 0 and "resuming" in r.stderr, r.stderr
    resumed = read_journal(out)
    assert _outcomes(resumed) == _outcomes(straight)
    assert any(v is not None for v in _outcomes(resumed).values())
    rerun = [e for e in resumed["evals"] if e["params"]["x"] == order[4]]
    assert [e["attempt"] for e in rerun] == [0, 1] and rerun[0]["status"] == "cancelled"


# -- command runner: reports from the program's output lines ---------------------------------------
@pytest.mark.parametrize("where", ["stdout", "report_file"])
def test_command_runner_reports_from_lines_and_a_stop_kills_the_group(tmp_path, where):
    order = SPACE["x"]["values"]  # the grid's order (categorical values as given)
    want = expected_asha(order)
    hang = ",".join(f"{x!r}:{s}" for x, s in want.items() if s is not None)
    argv = ["{python}", "{config_dir}/train_epochs.py", "{params_file}"]
    runner = {"type": "command", "command": argv, "timeout": 300, "kill_grace": 1, "env": {"HANG_AT": hang},
              "report_pattern": r"epoch (?P<step>\d+) train_loss: (?P<train_loss>\S+) val_loss: (?P<loss>\S+)"}
    if where == "report_file":
        runner["command"] = argv + ["progress.log"]
        runner["report_file"] = "progress.log"
    raw = _cfg(tmp_path, runner=runner)
    raw.pop("objective")
    res = run_config(parse_config(raw, "test.yaml", base_dir=HERE))
    j = read_journal(res.directory)
    assert _order(j) == order
    assert _outcomes(j) == want  # a stopped one hangs after its stop step: only the kill ends it
    for e in j["evals"]:
        if e["status"] == "stopped":
            assert "process group was killed" in e["error"]
            assert e["loss"] == pytest.approx(co.curve(e["params"]["x"], e["metrics"]["step"]))
        else:
            assert e["status"] == "done" and e["loss"] == pytest.approx(co.curve(e["params"]["x"], co.EPOCHS))
    reps = [r for r in j["reports"] if r["task_id"] == j["evals"][0]["task_id"]]
    assert [r["step"] for r in reps] == list(range(1, co.EPOCHS + 1))
    assert reps[0]["metrics"]["train_loss"] == pytest.approx(1.1 * co.curve(0.5, 1), rel=1e-5)


@pytest.mark.parametrize("pattern, words", [
    (r"epoch (\d+)", "has no group for the loss"),
    (r"epoch (?P<step>\d+) val_loss: (\S+)", "has no group for"),
    (r"epoch (\d+", "invalid regular expression"),
])
def test_command_report_pattern_errors_name_key_and_value(tmp_path, pattern, words):
    runner = {"type": "command", "command": ["{python}", "{config_dir}/train_epochs.py", "{params_file}"],
              "report_pattern": pattern}
    raw = _cfg(tmp_path, runner=runner)
    raw.pop("objective")
    with pytest.raises(ConfigError) as e:
        parse_config(raw, "test.yaml", base_dir=HERE)
    assert e.value.key == "runner.report_pattern" and words in str(e.value) and repr(pattern) in str(e.value)


def test_an_older_journal_gets_the_reports_table(tmp_path):
    import sqlite3

    from emews.journal import Journal

    path = tmp_path / "journal.sqlite"
    db = sqlite3.connect(path)
    db.executescript("CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT);"
                     "CREATE TABLE evals (task_id INTEGER, attempt INTEGER, params TEXT, status TEXT, loss REAL, "
                     "metrics TEXT, worker INTEGER, host TEXT, gpu TEXT, queued REAL, start REAL, \"end\" REAL, "
                     "error TEXT, PRIMARY KEY (task_id, attempt));")
    db.close()
    assert read_journal(path)["reports"] == []  # read-only: no table, no reports
    j = Journal(path)
    j.report(emews.Report(3, 0, 2, float("nan"), {"acc": 0.5}, 1.0), stop=True)
    j.close()
    [r] = read_journal(path)["reports"]
    assert r == {"task_id": 3, "attempt": 0, "step": 2, "loss": None, "metrics": {"acc": 0.5}, "time": 1.0,
                 "stop": True}
