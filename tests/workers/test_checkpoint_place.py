"""trial.checkpoint_dir / save / load / resumed_from on real files, through the Python and
command runners (issue 24, item 1)."""

from __future__ import annotations

import json
import pickle
import sys
from pathlib import Path

import pytest

from emews._checkpoints import CheckpointPlace, latest
from emews.task import Task
from emews.workers._runners import make_runner
from emews.workers._trial import Trial
from emews.workers._wire import WorkerChannel


def test_save_keeps_the_latest_state_and_a_new_attempt_resumes_from_it(tmp_path):
    place = CheckpointPlace(3, tmp_path / "checkpoints")
    t = Trial(3, 0, {}, checkpoints=place)
    assert t.resumed_from is None and t.load() is None
    for epoch in (1, 2, 3):
        t.save({"epoch": epoch}, epoch)
    assert sorted(p.name for p in t.checkpoint_dir.iterdir()) == ["latest.json", "step-3"]
    assert t.checkpoint_dir == tmp_path / "checkpoints" / "3"
    again = Trial(3, 1, {}, checkpoints=CheckpointPlace(3, tmp_path / "checkpoints"))
    assert again.resumed_from == 3 and again.load() == {"epoch": 3}
    assert again.checkpoint_metrics() == {"checkpoint": 3, "resumed_from": 3}
    other = Trial(4, 0, {}, checkpoints=CheckpointPlace(4, tmp_path / "checkpoints"))
    assert other.resumed_from is None and other.load() is None


def test_a_checkpoint_of_other_parameters_is_not_resumed_from(tmp_path):
    CheckpointPlace(3, tmp_path / "ck", params={"x": 0.1}).save({"epoch": 5}, 5)
    same = Trial(3, 0, {"x": 0.1}, checkpoints=CheckpointPlace(3, tmp_path / "ck", params={"x": 0.1}))
    other = Trial(3, 0, {"x": 0.2}, checkpoints=CheckpointPlace(3, tmp_path / "ck", params={"x": 0.2}))
    assert (same.resumed_from, other.resumed_from, other.load()) == (5, None, None)


def test_a_saved_file_is_copied_and_load_returns_its_path(tmp_path):
    t = Trial(1, 0, {}, checkpoints=CheckpointPlace(1, tmp_path / "ck"))
    model = tmp_path / "model.bin"
    model.write_bytes(b"weights-1")
    t.save(model, 1)
    model.write_bytes(b"weights-2")  # the objective goes on writing its file: the checkpoint is a copy
    loaded = t.load()
    assert loaded.read_bytes() == b"weights-1" and loaded.name == "model.bin"
    assert latest(tmp_path / "ck" / "1") == {"step": 1, "name": "step-1", "kind": "path", "file": "model.bin"}


def test_reports_after_a_save_carry_its_step(tmp_path):
    sent = []
    channel = WorkerChannel(1, 0, post=sent.append)
    t = Trial(1, 0, {}, channel, CheckpointPlace(1, tmp_path / "ck"))
    t.report(1, 0.5)
    t.save({"w": 1}, 1)
    t.report(2, 0.4)
    metrics = [msg[1].metrics for msg in sent if msg[0] == "report"]
    assert metrics == [{}, {"checkpoint": 1}], sent


def test_node_local_place_is_flushed_to_the_shared_one(tmp_path):
    place = CheckpointPlace(2, tmp_path / "exp" / "checkpoints", str(tmp_path / "local"))
    assert place.node_local and str(place.dir).startswith(str(tmp_path / "local"))
    place.save({"epoch": 4}, 4)
    assert latest(place.shared) is None
    assert place.flush()["step"] == 4
    with open(place.shared / "step-4" / "state.pkl", "rb") as f:
        assert pickle.load(f) == {"epoch": 4}
    # another node (its own empty local directory) resumes from the shared copy
    there = CheckpointPlace(2, tmp_path / "exp" / "checkpoints", str(tmp_path / "other-node"))
    assert there.latest()["step"] == 4 and there.load() == {"epoch": 4}


def test_the_python_runner_resumes_from_the_experiment_s_checkpoint(tmp_path):
    spec = {"type": "python", "objective": "checkpointed:train", "checkpoints": str(tmp_path / "checkpoints")}
    CheckpointPlace(7, tmp_path / "checkpoints").save({"epoch": 2, "weights": [0.5] * 64}, 2)
    out = make_runner(spec).run(Task(7, {"x": 0.5}, attempt=1))
    assert out.status == "done", out.error
    assert out.metrics["resumed_from"] == 2 and out.metrics["checkpoint"] == 6


def test_the_command_runner_gets_its_checkpoint_dir(tmp_path):
    script = tmp_path / "train.py"
    script.write_text("import json, os, pathlib\n"
                      "d = pathlib.Path(os.environ['EMEWS_CHECKPOINT_DIR'])\n"
                      "n = len(list(d.glob('epoch-*')))\n"
                      "(d / f'epoch-{n}').write_text('w')\n"
                      "print(f'loss: {n}')\n")
    spec = {"type": "command", "command": [sys.executable, str(script)], "workdir": str(tmp_path / "tasks"),
            "checkpoints": str(tmp_path / "checkpoints")}
    runner = make_runner(spec)
    first = runner.run(Task(5, {}, 0))
    second = runner.run(Task(5, {}, 1))  # the next attempt finds what the first left
    assert (first.status, first.loss, second.loss) == ("done", 0.0, 1.0), (first, second)
    assert sorted(p.name for p in (tmp_path / "checkpoints" / "5").iterdir()) == [".emews-params", "epoch-0",
                                                                                   "epoch-1"]
    assert json.loads((tmp_path / "tasks" / "5" / "params.json").read_text()) == {}
    # the same id given again for other parameters (a journal that lost it) starts afresh
    assert runner.run(Task(5, {"x": 1}, 0)).loss == 0.0


@pytest.mark.mpi
def test_a_checkpointing_task_on_the_mpi_pool_resumes_after_a_sigkill_of_the_driver(tmp_path):
    """``mpiexec -n 3`` (rank 0 the driver, ranks 1-2 workers): the driver is SIGKILLed while
    both worker ranks hold a task after saving epoch ``hold`` (a seeded random point); Hydra then
    tears the job down. The run resumed under mpiexec continues each held task from that epoch."""
    import collections
    import os
    import subprocess

    from helpers import kill_driver, kill_rng, reap, start_cli, wait_until, write_config
    from mpirun import mpiexec_argv

    from emews.journal import final_attempts, read_journal

    epochs = 5
    hold = kill_rng().randint(1, epochs - 1)
    print(f"kill point: the running tasks hold after saving epoch {hold}")
    gate = tmp_path / "gate"
    gate.mkdir()
    tests = Path(__file__).resolve().parents[1]
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(tests.parent), str(tests), os.environ.get("PYTHONPATH", "")]),
               CKPT_LOG=str(tmp_path / "epochs.log"), CKPT_EPOCHS=str(epochs), CKPT_GATE=str(gate), CKPT_HOLD=str(hold))
    env.pop("SLURM_JOB_END_TIME", None)
    cfg = write_config(tmp_path, {"experiment": "k", "objective": "checkpointed:train", "pool": "mpi", "max_evals": 4,
                                  "space": {"x": {"type": "real", "low": 0, "high": 1}}, "seed": 5,
                                  "output": str(tmp_path / "runs"), "report": False})
    out = tmp_path / "runs" / "k"
    launcher = (*mpiexec_argv(), "-n", "3")
    proc = start_cli([str(cfg)], tmp_path, env, launcher)
    try:
        held = wait_until(lambda: (h := sorted(p.name for p in gate.glob("held-*"))) and len(h) >= 2 and h,
                          message="two tasks held at the gate", proc=proc)
        held_ids = {int(name.split("-")[1]) for name in held}

        def journaled_running() -> bool:
            try:
                rows = read_journal(out)["evals"]
            except Exception:  # noqa: BLE001 - not written yet
                return False
            return held_ids <= {x["task_id"] for x in rows if x["status"] == "running"}

        wait_until(journaled_running, message="the held tasks journaled as running", proc=proc)
        kill_driver(out, proc)
    finally:
        reap(proc)
    (gate / "open").write_text("")
    r = subprocess.run([*launcher, sys.executable, "-m", "emews.run", str(cfg)], cwd=tmp_path, env=env,
                       capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr[-3000:]
    finals = {x["task_id"]: x for x in final_attempts(read_journal(out)["evals"])}
    assert len(finals) == 4 and all(x["status"] == "done" for x in finals.values())
    done = collections.defaultdict(list)
    for line in (tmp_path / "epochs.log").read_text().splitlines():
        t, a, e = map(int, line.split())
        done[t].append((a, e))
    for t in held_ids:
        last = finals[t]
        assert last["attempt"] >= 1 and last["metrics"]["resumed_from"] == hold
        assert [e for a, e in done[t] if a == last["attempt"]] == list(range(hold + 1, epochs + 1))
        assert sorted(e for _, e in done[t]) == list(range(1, epochs + 1))  # no epoch computed twice


def test_a_task_started_from_another_s_checkpoint(tmp_path):
    """pbt's start (emews._starts writes start.json): the Python runner's trial.load() returns
    the source task's final checkpoint, read in place; a command gets the source's directory and
    the step budget in its environment."""
    from emews._checkpoints import write_start

    root = tmp_path / "checkpoints"
    CheckpointPlace(3, root, params={"x": 0.1}).save({"epoch": 4, "weights": [0.1] * 64}, 4)
    write_start(root / "9", 3, 6)  # task 9, other parameters, starts from task 3's epoch 4 and trains to 6
    t = Trial(9, 0, {"x": 0.7}, checkpoints=CheckpointPlace(9, root, params={"x": 0.7}))
    assert (t.resumed_from, t.started_from, t.until) == (4, 3, 6) and t.load()["epoch"] == 4
    t.save({"epoch": 6}, 6)  # its own checkpoint: a retry resumes from it, not from the source
    again = Trial(9, 1, {"x": 0.7}, checkpoints=CheckpointPlace(9, root, params={"x": 0.7}))
    assert (again.resumed_from, again.started_from, again.until) == (6, None, 6)
    assert latest(root / "3")["step"] == 4  # the source is untouched

    script = tmp_path / "train.py"
    script.write_text("import os\nprint('loss:', os.environ['EMEWS_CHECKPOINT_UNTIL'])\n"
                      "open(os.environ['EMEWS_RESULT_FILE'] + '.from', 'w').write(os.environ['EMEWS_CHECKPOINT_FROM'])\n")
    write_start(root / "10", 3, 8)
    spec = {"type": "command", "command": [sys.executable, str(script)], "workdir": str(tmp_path / "tasks"),
            "checkpoints": str(root)}
    out = make_runner(spec).run(Task(10, {}, 0))
    assert (out.status, out.loss) == ("done", 8.0), out
    assert next((tmp_path / "tasks" / "10").glob("*.from")).read_text() == str(root / "3")


def test_a_runner_started_before_any_checkpoint_still_resumes_a_retry_from_the_first_attempt_s(tmp_path, monkeypatch):
    # no checkpoint anywhere when the worker starts: first attempts are not probed, but what they
    # save is found by the task's next attempt (a retry), and by the attempt itself after a save
    spec = {"type": "python", "objective": "checkpointed:train", "checkpoints": str(tmp_path / "checkpoints")}
    runner = make_runner(spec)
    monkeypatch.setenv("CKPT_EPOCHS", "3")  # the first attempt gets as far as epoch 3
    first = runner.run(Task(7, {"x": 0.5}, attempt=0))
    assert first.status == "done" and "resumed_from" not in first.metrics and first.metrics["checkpoint"] == 3
    monkeypatch.setenv("CKPT_EPOCHS", "6")
    retry = runner.run(Task(7, {"x": 0.5}, attempt=1))
    assert retry.status == "done", retry.error
    assert retry.metrics["resumed_from"] == 3 and retry.metrics["checkpoint"] == 6, retry.metrics
    place = CheckpointPlace(8, tmp_path / "checkpoints", empty=True)
    t = Trial(8, 0, {}, checkpoints=place)
    assert t.resumed_from is None and t.load() is None
    t.save({"epoch": 1}, 1)
    assert t.load() == {"epoch": 1} and place.latest()["step"] == 1
