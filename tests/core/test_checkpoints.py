"""Checkpoints per task, interrupted trials that continue from them, and the best k models
kept (issue 24, items 1-3). Real runs of ``python -m emews.run`` with the ``checkpointed``
objective (tests/checkpointed.py); the kill points come from a printed seed."""

from __future__ import annotations

import collections
import json
import os
import signal
import stat

import pytest
from helpers import (
    kill_env,
    kill_rng,
    reap,
    run_cli,
    start_cli,
    wait_until,
    write_config,
)

from emews.journal import final_attempts, read_journal

EPOCHS = 6


def _config(tmp_path, **changes) -> dict:
    cfg = {"experiment": "k", "objective": "checkpointed:train", "space": {"x": {"type": "real", "low": 0, "high": 1}},
           "max_evals": 6, "workers": 2, "seed": 5, "output": str(tmp_path / "runs"), "report": False}
    cfg.update(changes)
    return cfg


def _env(tmp_path, **extra) -> dict:
    env = kill_env(tmp_path) | {"CKPT_LOG": str(tmp_path / "epochs.log"), "CKPT_EPOCHS": str(EPOCHS)}
    env.update({k: str(v) for k, v in extra.items()})
    return env


def _epochs(tmp_path) -> list[tuple[int, int, int]]:
    text = (tmp_path / "epochs.log").read_text()
    return [tuple(map(int, line.split())) for line in text.splitlines() if line.strip()]


@pytest.mark.parametrize("sig, local", [(signal.SIGKILL, False), (signal.SIGTERM, False), (signal.SIGTERM, True)],
                         ids=["sigkill", "sigterm", "sigterm-node-local"])
def test_a_run_killed_midway_resumes_each_task_from_its_last_checkpoint(tmp_path, sig, local):
    """With ``checkpoint_local``, the workers (SIGTERMed by the pool's shutdown) copy their
    node-local checkpoint to the experiment before they exit."""
    rnd = kill_rng()
    hold = rnd.randint(1, EPOCHS - 1)  # the epoch after whose checkpoint the running tasks are held
    print(f"kill point: the running tasks hold after saving epoch {hold}")
    gate = tmp_path / "gate"
    gate.mkdir()
    extra = {"checkpoint_local": str(tmp_path / "node-local")} if local else {}
    cfg = write_config(tmp_path, _config(tmp_path, keep_models={"count": 2}, **extra))
    out = tmp_path / "runs" / "k"
    proc = start_cli([str(cfg)], tmp_path, _env(tmp_path, CKPT_GATE=gate, CKPT_HOLD=hold))
    try:
        held = wait_until(lambda: (h := sorted(p.name for p in gate.glob("held-*"))) and len(h) >= 2 and h,
                          message="two tasks held at the gate", proc=proc)
        held_ids = {int(name.split("-")[1]) for name in held}

        def journaled_running() -> bool:  # the kill comes once the journal shows them running
            try:
                rows = read_journal(out)["evals"]
            except Exception:  # noqa: BLE001 - not written yet
                return False
            return held_ids <= {x["task_id"] for x in rows if x["status"] == "running"}

        wait_until(journaled_running, message="the held tasks journaled as running", proc=proc)
        pid = json.loads((out / ".lock").read_text())["pid"]
        os.kill(pid, sig)  # SIGKILL: the driver, then everything it started (a lost node); SIGTERM: an orderly stop
        proc.wait(timeout=120)
        if local:  # the workers' flush on their way out: the checkpoints reach the experiment
            wait_until(lambda: all((out / "checkpoints" / str(t) / "latest.json").exists() for t in held_ids),
                       message="the held tasks' node-local checkpoints copied to the experiment")
    finally:
        reap(proc)
    killed = [e for e in _epochs(tmp_path)]
    assert {(t, e) for t, a, e in killed if t in held_ids} == {(t, e) for t in held_ids for e in range(1, hold + 1)}
    (gate / "open").write_text("")
    r = run_cli([str(cfg)], cwd=tmp_path, env=_env(tmp_path), timeout=600)
    assert r.returncode == 0, r.stderr[-3000:]

    rows = read_journal(out)["evals"]
    finals = {x["task_id"]: x for x in final_attempts(rows)}
    assert len(finals) == 6 and all(x["status"] == "done" for x in finals.values())
    done_by_id = collections.defaultdict(list)
    for t, a, e in _epochs(tmp_path):
        done_by_id[t].append((a, e))
    for t in held_ids:
        last = finals[t]
        assert last["attempt"] >= 1, f"task {t} was held at the kill: a later attempt finished it"
        assert last["metrics"]["resumed_from"] == hold
        assert last["metrics"]["checkpoint"] == EPOCHS
        later = [e for a, e in done_by_id[t] if a == last["attempt"]]
        assert later == list(range(hold + 1, EPOCHS + 1)), f"task {t}: epochs {later} after resuming from {hold}"
        # no epoch was computed twice: the run lost none of the held tasks' work
        assert sorted(e for a, e in done_by_id[t]) == list(range(1, EPOCHS + 1))
    # the kept models are the 2 best of the whole search, the killed session's included
    best2 = [t for _, t in sorted((x["loss"], t) for t, x in finals.items())[:2]]
    assert sorted(p.name for p in (out / "models").iterdir()) == sorted(f"task-{t}" for t in best2)
    for t, x in finals.items():
        assert x["loss"] == pytest.approx((x["params"]["x"] - 0.3) ** 2 + 1.0 / EPOCHS)
        if t not in held_ids:
            assert "resumed_from" not in x["metrics"]


def test_the_best_k_models_are_kept_and_nothing_else(tmp_path):
    cfg = write_config(tmp_path, _config(tmp_path, max_evals=9, keep_models={"count": 3, "by": "loss"},
                                         report=True))
    r = run_cli([str(cfg)], cwd=tmp_path, env=_env(tmp_path), timeout=600)
    assert r.returncode == 0, r.stderr[-3000:]
    out = tmp_path / "runs" / "k"
    j = read_journal(out)
    done = sorted((x["loss"], x["task_id"]) for x in final_attempts(j["evals"]) if x["status"] == "done")
    assert len(done) == 9
    best3 = [t for _, t in done[:3]]
    assert sorted(p.name for p in (out / "models").iterdir()) == sorted(f"task-{t}" for t in best3)
    kept = j["meta"]["models"]
    assert [m["task_id"] for m in kept] == best3  # best first
    for m in kept:
        d = out / m["path"]
        assert m["bytes"] == sum(p.stat().st_size for p in d.rglob("*") if p.is_file()) > 0
        assert m["step"] == EPOCHS and (d / "state.pkl").is_file()
    best = json.loads((out / "best.json").read_text())
    assert best["task_id"] == best3[0] and best["model"]["path"] == f"models/task-{best3[0]}"
    line = next(x for x in (out / "report.txt").read_text().splitlines() if x.startswith("kept models"))
    assert line.startswith("kept models: 3 (") and f"models/task-{best3[0]} (loss " in line
    # a finished task's checkpoints are gone: disk holds the k models (and running tasks' checkpoints)
    assert not any((out / "checkpoints").iterdir())


def test_a_flush_that_fails_is_a_warning_and_the_results_are_kept(tmp_path):
    out = tmp_path / "runs" / "k"
    out.mkdir(parents=True)
    if os.geteuid() == 0:  # root writes into a read-only directory: a file where the directory goes fails alike
        (out / "models").write_text("not a directory")
    else:
        (out / "models").mkdir()
        (out / "models").chmod(stat.S_IRUSR | stat.S_IXUSR)
    cfg = write_config(tmp_path, _config(tmp_path, max_evals=4, keep_models={"count": 2}))
    try:
        r = run_cli([str(cfg)], cwd=tmp_path, env=_env(tmp_path), timeout=600)
    finally:
        if (out / "models").is_dir():
            (out / "models").chmod(0o755)
    assert r.returncode == 0, r.stderr[-3000:]
    assert "was not kept in" in r.stderr and "its result is kept" in r.stderr
    j = read_journal(out)
    finals = final_attempts(j["evals"])
    assert len(finals) == 4 and all(x["status"] == "done" for x in finals)
    assert not j["meta"].get("models")
    best = json.loads((out / "best.json").read_text())
    assert best["task_id"] is not None and "model" not in best
    # the checkpoints that could not be flushed stay where they were
    assert sorted(p.name for p in (out / "checkpoints").iterdir()) == sorted(str(x["task_id"]) for x in finals)


@pytest.mark.parametrize("value, message", [
    ({"count": 0}, "keep_models.count: must be >= 1"),
    ({"count": 2, "by": ""}, "keep_models.by"),
    ({"count": 2, "mode": "best"}, "keep_models.mode: must be one of min, max"),
    ({"cnt": 2}, "unknown key 'cnt'"),
    ("five", "keep_models: must be a mapping"),
])
def test_bad_keep_models_is_a_clear_error_before_anything_exists(tmp_path, value, message):
    cfg = write_config(tmp_path, _config(tmp_path, keep_models=value))
    r = run_cli([str(cfg)], cwd=tmp_path, env=_env(tmp_path))
    assert r.returncode == 2, r.stderr
    assert message in r.stderr and "config.yaml" in r.stderr
    assert not (tmp_path / "runs").exists()


def test_bad_checkpoint_local_is_a_clear_error(tmp_path):
    cfg = write_config(tmp_path, _config(tmp_path, checkpoint_local=7))
    r = run_cli([str(cfg)], cwd=tmp_path, env=_env(tmp_path))
    assert r.returncode == 2 and "checkpoint_local: must be a non-empty string, got 7" in r.stderr
    assert not (tmp_path / "runs").exists()


def test_node_local_checkpoints_reach_the_experiment_when_the_attempt_ends(tmp_path):
    local = tmp_path / "node-local"
    cfg = write_config(tmp_path, _config(tmp_path, max_evals=4, checkpoint_local=str(local),
                                         keep_models={"count": 1}))
    r = run_cli([str(cfg)], cwd=tmp_path, env=_env(tmp_path), timeout=600)
    assert r.returncode == 0, r.stderr[-3000:]
    out = tmp_path / "runs" / "k"
    j = read_journal(out)
    best = min((x["loss"], x["task_id"]) for x in final_attempts(j["evals"]))[1]
    assert [p.name for p in (out / "models").iterdir()] == [f"task-{best}"]
    written = sorted(p.parent.name for p in local.glob("emews-*/*/latest.json"))
    assert written == sorted(str(x["task_id"]) for x in final_attempts(j["evals"]))  # they were written there


def test_search_api_keeps_the_best_models(tmp_path, monkeypatch):
    import emews

    monkeypatch.setenv("CKPT_EPOCHS", "3")
    res = emews.search("checkpointed:train", {"x": {"type": "real", "low": 0, "high": 1}}, max_evals=5, workers=2,
                       seed=2, output=tmp_path / "runs", experiment="api", keep_models={"count": 2}, report=False)
    done = sorted((r["loss"], r["task_id"]) for r in final_attempts(read_journal(res.directory)["evals"]))
    assert sorted(p.name for p in (res.directory / "models").iterdir()) == sorted(f"task-{t}" for _, t in done[:2])


def test_model_copies_run_beside_the_driver_and_leave_exactly_the_best_k(tmp_path, monkeypatch):
    """The keeper's copies run in its copier thread: ``settle`` returns while a copy is held at
    a gate the test opens; a model pushed out of the k while copies are under way (or before
    its own copy ran) is not left behind, and the places of finished tasks are deleted."""
    import shutil
    import threading

    from emews import _models
    from emews._checkpoints import CheckpointPlace
    from emews.task import DONE, Result

    gate = threading.Event()
    real_copytree = shutil.copytree

    def gated_copytree(src, dst, *a, **kw):
        assert gate.wait(120), "the test never opened the gate"
        return real_copytree(src, dst, *a, **kw)

    monkeypatch.setattr(_models.shutil, "copytree", gated_copytree)
    keeper = _models.ModelKeeper(tmp_path, count=2)
    losses = {1: 0.5, 2: 0.4, 3: 0.9, 4: 0.1, 5: 0.3, 6: 0.2}
    for tid, loss in losses.items():
        CheckpointPlace(tid, tmp_path / "checkpoints", params={"x": tid}).save({"w": [tid] * 1000}, 3)
        assert keeper.settle(Result(tid, {"x": tid}, DONE, loss=loss)) is False  # journaled once copied
    # task 3 never ranked (0.9 behind 0.5 and 0.4): its place is queued for deletion, no copy of it
    assert keeper.busy >= 5 and keeper.kept == [] and not (tmp_path / "models" / "task-1").exists()
    gate.set()
    assert keeper.close(timeout=None) is True
    assert [m["task_id"] for m in keeper.kept] == [4, 6]
    assert sorted(p.name for p in (tmp_path / "models").iterdir()) == ["task-4", "task-6"]
    assert not any((tmp_path / "checkpoints").iterdir())
    for m in keeper.kept:
        assert m["bytes"] == sum(p.stat().st_size for p in (tmp_path / m["path"]).rglob("*") if p.is_file()) > 0
