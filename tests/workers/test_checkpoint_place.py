"""trial.checkpoint_dir / save / load / resumed_from on real files, through the Python and
command runners (issue 24, item 1)."""

from __future__ import annotations

import json
import pickle
import sys

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
