"""``runner: {type: candle}``: CANDLE models run with Supervisor's model.sh / model_runner.py
conventions (a module's run(params) or a script with flags; default model file; per-task
experiment_id, run_id, output_dir; CANDLE_DATA_DIR; GPU binding; IMPROVE_RESULT, result.txt,
history.txt; per-epoch reports for early stopping; stop.marker)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from emews import ConfigError, parse_config, run_config
from emews.journal import read_journal

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import curve_objectives as co  # noqa: E402
from test_stopping import ASHA_SPEC, SPACE, _outcomes, expected_asha  # noqa: E402

TOY_DEFAULTS = HERE / "candle_toy_default_model.txt"


def _raw(tmp_path: Path, runner: dict, **changes) -> dict:
    raw = {"experiment": "c", "space": SPACE, "optimizer": {"name": "grid", "settings": {}}, "max_evals": 9,
           "workers": 1, "seed": 1, "output": str(tmp_path / "runs"), "report": False, "runner": runner}
    raw.update(changes)
    return raw


def _run(tmp_path: Path, runner: dict, **changes):
    res = run_config(parse_config(_raw(tmp_path, runner, **changes), "test.yaml", base_dir=HERE))
    return res, read_journal(res.directory)


@pytest.mark.parametrize("epochs_in", ["log", "history.txt"])
def test_a_protocol_script_with_flags_is_stopped_per_epoch_by_asha(tmp_path, epochs_in):
    """A script that prints an epoch line per epoch (or rewrites history.txt each epoch) and
    IMPROVE_RESULT, under ASHA: the same decisions as the python runner's (one worker: they
    depend only on the order)."""
    want = expected_asha(SPACE["x"]["values"])
    hang = ",".join(f"{x!r}:{s}" for x, s in want.items() if s is not None)
    (tmp_path / "data").mkdir()
    env = {"HANG_AT": hang, **({"CANDLE_TEST_HISTORY": "1"} if epochs_in == "history.txt" else {})}
    runner = {"type": "candle", "command": ["{python}", "{config_dir}/candle_epochs.py"], "timeout": 300,
              "kill_grace": 1, "env": env, "data_dir": str(tmp_path / "data")}
    res, j = _run(tmp_path, runner, stopper=ASHA_SPEC)
    assert _outcomes(j) == want and any(v is not None for v in want.values())
    tasks = res.directory / "tasks"
    for e in j["evals"]:
        d = tasks / str(e["task_id"])
        if e["status"] == "stopped":
            assert (d / "stop.marker").read_text().startswith("stopped by emews")
            assert e["loss"] == pytest.approx(co.curve(e["params"]["x"], e["metrics"]["step"]))
        else:
            assert e["status"] == "done" and e["loss"] == pytest.approx(co.curve(e["params"]["x"], co.EPOCHS))
        seen = json.loads((d / "output" / "seen.json").read_text())
        assert seen["args"]["experiment_id"] == "c" and seen["args"]["run_id"] == f"run_{e['task_id']}"
        assert seen["args"]["output_dir"] == str(d / "output") and seen["args"]["x"] == e["params"]["x"]
        assert seen["CANDLE_DATA_DIR"] == str((tmp_path / "data").resolve())
    reps = [r for r in j["reports"] if r["task_id"] == j["evals"][0]["task_id"]]
    assert [r["step"] for r in reps] == list(range(1, co.EPOCHS + 1))  # one report per epoch line


def test_flags_split_space_separated_values_and_json_passes_one_argument(tmp_path):
    space = {"x": {"type": "categorical", "values": [0.5]}, "dense": {"type": "constant", "value": "500 100 50"}}
    for how in ("flags", "json"):
        runner = {"type": "candle", "command": ["{python}", "{config_dir}/candle_epochs.py"], "params": how}
        if how == "json":  # the script takes flags; a JSON argument shows as one unknown argument
            runner["command"] += ["--x", "0.5", "--output_dir", "{task_dir}/output"]
        res, j = _run(tmp_path / how, runner, space=space, max_evals=1)
        seen = json.loads((res.directory / "tasks" / "0" / "output" / "seen.json").read_text())
        if how == "flags":
            assert seen["args"]["dense"] == [500, 100, 50] and j["evals"][0]["status"] == "done"
        else:
            got = json.loads(seen["unknown"][0])
            assert got == {"x": 0.5, "dense": "500 100 50", "experiment_id": "c", "run_id": "run_0",
                           "output_dir": str(res.directory / "tasks" / "0" / "output"),
                           "ckpt_directory": str(res.directory / "checkpoints" / "0")}  # candle_lib's checkpoints


def test_a_module_runs_with_its_default_model_file_under_either_variable(tmp_path):
    space = {"learning_rate": {"type": "categorical", "values": [0.01, 0.05]},
             "early_stop_at": {"type": "categorical", "values": [2, 9]}}
    for var in ("CANDLE_DEFAULT_MODEL_FILE", "CANDLE_DEFAULT_MODEL"):
        runner = {"type": "candle", "model": "candle_toy_model", "env": {var: str(TOY_DEFAULTS)}}
        res, j = _run(tmp_path / var, runner, space=space, max_evals=4)
        by = {(e["params"]["learning_rate"], e["params"]["early_stop_at"]): e for e in j["evals"]}
        assert len(by) == 4 and all(e["status"] == "done" for e in by.values())
        for (lr, stop), e in by.items():
            epochs = min(3, stop)
            assert e["loss"] == pytest.approx((lr - 0.01) ** 2 + 1.0 / epochs)
            d = res.directory / "tasks" / str(e["task_id"])
            seen = json.loads((d / "output" / "params_seen.json").read_text())
            assert seen["dense"] == [10, 5] and seen["activation"] == "relu"  # from the default model file
            assert seen["learning_rate"] == lr and seen["run_id"] == f"run_{e['task_id']}"
            assert float((d / "result.txt").read_text()) == pytest.approx(e["loss"])
            assert json.loads((d / "history.txt").read_text())["val_loss"][-1] == pytest.approx(e["loss"])
            if stop < 3:  # it stopped before the epochs asked: Supervisor's stop.marker
                assert e["metrics"]["stop_marker"] == "early stopping: 2/3"
            else:
                assert "stop_marker" not in e["metrics"]


@pytest.mark.parametrize("value, words", [("nan", "NaN"), ("none", "no IMPROVE_RESULT line")])
def test_a_nan_or_missing_result_is_a_failed_result_naming_why(tmp_path, value, words):
    runner = {"type": "candle", "command": ["{python}", "{config_dir}/candle_epochs.py"],
              "env": {"CANDLE_TEST_RESULT": value}}
    res, j = _run(tmp_path, runner, max_evals=1)
    e = j["evals"][0]
    assert e["status"] == "failed" and words in e["error"]


def test_result_txt_is_read_when_the_log_has_no_result_line(tmp_path):
    script = tmp_path / "writes_result_txt.py"
    script.write_text("import sys\nopen('result.txt', 'w').write('0.25\\n')\n")
    runner = {"type": "candle", "command": ["{python}", str(script)]}
    _res, j = _run(tmp_path, runner, max_evals=1)
    assert j["evals"][0]["status"] == "done" and j["evals"][0]["loss"] == 0.25


def test_gpu_binding_reaches_the_model(tmp_path):
    runner = {"type": "candle", "command": ["{python}", "{config_dir}/candle_epochs.py"]}
    res, j = _run(tmp_path, runner, max_evals=2, workers=2, gpus={"gpus_per_worker": 1, "devices": [3, 5]})
    seen = {json.loads((res.directory / "tasks" / str(e["task_id"]) / "output" / "seen.json").read_text())
            ["CUDA_VISIBLE_DEVICES"] for e in j["evals"]}
    assert seen <= {"3", "5"} and seen


@pytest.mark.parametrize("runner, key, words", [
    ({"type": "candle"}, "runner.model", "exactly one"),
    ({"type": "candle", "model": "candle_toy_model", "command": ["python"]}, "runner.model", "exactly one"),
    ({"type": "candle", "model": "no_such_model_module"}, "runner.model", "no module 'no_such_model_module'"),
    ({"type": "candle", "model": "candle_toy_model", "default_model": "missing.txt"}, "runner.default_model",
     "missing.txt"),
    ({"type": "candle", "model": "candle_toy_model", "params": "yaml"}, "runner.params", "'yaml'"),
    ({"type": "python", "model": "candle_toy_model"}, "runner.model", "only used with runner.type: candle"),
])
def test_bad_candle_runner_settings_are_config_errors(tmp_path, runner, key, words):
    raw = _raw(tmp_path, runner)
    if runner["type"] == "python":
        raw["objective"] = "curve_objectives:plain"
    with pytest.raises(ConfigError) as e:
        parse_config(raw, "test.yaml", base_dir=HERE)
    assert e.value.key == key and words in str(e.value), str(e.value)


def test_a_model_module_without_run_is_a_failed_result_naming_it(tmp_path):
    (tmp_path / "models").mkdir()
    (tmp_path / "models" / "no_run_model.py").write_text("def initialize_parameters(default_model=None):\n    return {}\n")
    runner = {"type": "candle", "model": "no_run_model", "path": [str(tmp_path / "models")]}
    _res, j = _run(tmp_path, runner, max_evals=1)
    e = j["evals"][0]
    assert e["status"] == "failed" and "'no_run_model'" in e["error"] and "defines no run(params)" in e["error"]
