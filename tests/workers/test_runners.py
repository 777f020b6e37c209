"""Task runners on the local pool (isolated, command), their config checks, and the pool contract."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
from helpers import STARTUP, wait_until

from emews import ConfigError, parse_config, run_config
from emews.journal import read_journal
from emews.testing.pools import CHECKS
from emews.workers import LocalPool

HERE = Path(__file__).resolve().parent


def _cfg(tmp_path: Path, **changes) -> dict:
    raw = {
        "experiment": "r",
        "objective": "objectives:where",
        "space": {"x": {"type": "real", "low": 0.0, "high": 2.0}},
        "max_evals": 4,
        "workers": 2,
        "seed": 2,
        "output": str(tmp_path / "runs"),
    }
    raw.update(changes)
    if raw.get("runner", {}).get("type") == "command":
        raw.pop("objective", None)
    return raw


def _run(tmp_path: Path, **changes) -> list[dict]:
    cfg = parse_config(_cfg(tmp_path, **changes), "test.yaml", base_dir=HERE)
    res = run_config(cfg)
    return read_journal(res.directory)["evals"]


def _command(mode: str, **runner) -> dict:
    argv = ["{python}", "{config_dir}/train.py", "{params_file}", mode]
    if mode in ("json", "number", "garbage", "nofile"):
        argv.append("{result_file}")
    return {"type": "command", "command": argv, **runner}


# -- the pool contract on the local pool ---------------------------------------------------------
@pytest.mark.parametrize("check", CHECKS, ids=lambda c: c.__name__)
def test_local_pool_contract(check):
    check(lambda spec, on_report: LocalPool(2, spec, on_report=on_report))


# -- isolated ----------------------------------------------------------------------------------
def test_isolated_crash_exit_and_timeout_on_the_local_pool(tmp_path):
    evals = _run(tmp_path, objective="objectives:crashy", runner={"type": "isolated", "timeout": 30},
                 optimizer={"name": "grid", "settings": {"points": 4}}, space={"i": {"type": "int", "low": 0, "high": 3}})
    by_i = {e["params"]["i"]: e for e in evals}
    assert by_i[0]["status"] == by_i[3]["status"] == "done"
    assert by_i[1]["status"] == "failed" and "killed by signal SIGSEGV (11)" in by_i[1]["error"]
    assert by_i[2]["status"] == "failed" and "exited with code 7 before returning a result" in by_i[2]["error"]
    assert {e["worker"] for e in evals} <= {0, 1}


def _gone(pid: int) -> bool:
    """No such process, or only a zombie."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] in ("Z", "X")
    except (FileNotFoundError, ProcessLookupError):
        return True


def test_isolated_timeout(tmp_path):
    # i == 0 hangs for ever; the timeout is long enough for a loaded machine to start both
    # children (i == 1 must finish within it), so only the hanging one can time out
    evals = _run(tmp_path, objective="objectives:hang",
                 runner={"type": "isolated", "timeout": STARTUP, "kill_grace": 0.2},
                 optimizer={"name": "grid", "settings": {"points": 2}}, max_evals=2,
                 space={"i": {"type": "int", "low": 0, "high": 1}, "dir": {"type": "constant", "value": str(tmp_path)}})
    by_i = {e["params"]["i"]: e for e in evals}
    assert by_i[0]["status"] == "timeout" and f"timed out after {STARTUP:g} s" in by_i[0]["error"]
    assert by_i[1]["status"] == "done"
    # the hanging child had started (it wrote its pids) and was killed with its process group
    child, grandchild, _ = map(int, (tmp_path / "pids").read_text().split())
    wait_until(lambda: _gone(child) and _gone(grandchild), timeout=30, message="the timed-out task's processes to end")


# -- command -----------------------------------------------------------------------------------
def test_command_loss_from_stdout_and_task_directories(tmp_path):
    evals = _run(tmp_path, runner=_command("stdout"))
    assert all(e["status"] == "done" for e in evals), evals
    for e in evals:
        assert e["loss"] == pytest.approx((e["params"]["x"] - 1) ** 2)
        d = tmp_path / "runs" / "r" / "tasks" / str(e["task_id"])
        assert json.loads((d / "params.json").read_text()) == e["params"]
        assert "epoch 1" in (d / "stdout.txt").read_text() and (d / "stderr.txt").exists()


def test_command_result_file_env_gpu_and_cwd(tmp_path):
    evals = _run(tmp_path, runner=_command("json", env={"OMP_NUM_THREADS": 3}), gpus={"gpus_per_worker": 1})
    for e in evals:
        m = e["metrics"]
        assert e["status"] == "done" and e["loss"] == pytest.approx((e["params"]["x"] - 1) ** 2)
        assert m["cvd"] == e["gpu"] == str(e["worker"])
        assert m["omp"] == "3" and m["task"] == str(e["task_id"]) and not m["pmi"]
        assert m["exe"] == sys.executable  # {python}
        assert m["cwd"] == str(tmp_path / "runs" / "r" / "tasks" / str(e["task_id"]))


def test_command_result_file_with_a_bare_number(tmp_path):
    evals = _run(tmp_path, runner=_command("number", result_file="out/loss.json"), max_evals=2)
    assert all(e["status"] == "done" for e in evals), evals


@pytest.mark.parametrize("mode, message", [
    ("nofile", "exited with code 0 but wrote no result file"),
    ("garbage", "cannot parse the result file"),
    ("fail", "command exited with code 3; last lines of"),
])
def test_command_failures_are_failed_results(tmp_path, mode, message):
    evals = _run(tmp_path, runner=_command(mode), max_evals=2)
    assert [e["status"] for e in evals] == ["failed", "failed"]
    assert all(message in e["error"] for e in evals), evals[0]["error"]
    if mode == "fail":
        assert "CUDA out of memory (pretend)" in evals[0]["error"]


def test_command_pattern_without_a_match(tmp_path):
    evals = _run(tmp_path, runner=_command("stdout", pattern=r"^val_loss: (\S+)"), max_evals=1)
    assert evals[0]["status"] == "failed" and "matches the pattern '^val_loss: (\\\\S+)'" in evals[0]["error"]


def test_command_timeout_and_retry_directories(tmp_path):
    evals = _run(tmp_path, runner={"type": "command", "command": ["sleep", "30"], "timeout": 0.3, "kill_grace": 0.1,
                                   "retries": 1}, max_evals=1)
    assert [(e["attempt"], e["status"]) for e in evals] == [(0, "timeout"), (1, "timeout")]
    assert "timed out after 0.3 s" in evals[0]["error"]
    tasks = tmp_path / "runs" / "r" / "tasks"
    assert sorted(p.name for p in tasks.iterdir()) == ["0", "0-1"]


# -- config-time checks ----------------------------------------------------------------------------
@pytest.mark.parametrize("runner, key, message", [
    ({"type": "command", "command": ["no-such-program-xyz", "{params_file}"]}, "runner.command[0]",
     "executable 'no-such-program-xyz' not found on PATH"),
    ({"type": "command", "command": ["./missing.sh"]}, "runner.command[0]", "executable './missing.sh' not found"),
    ({"type": "command", "command": ["python", "{config_dir}/train.py", "{param_file}"]}, "runner.command[2]",
     "unknown placeholder {param_file}"),
    ({"type": "command", "command": ["python", "--lr", "{params[lr]}"]}, "runner.command[2]",
     "{params[lr]} names no parameter of the space; parameters: x"),
    ({"type": "command", "command": ["python", "{}"]}, "runner.command[1]", "positional placeholder"),
    ({"type": "command", "command": ["python", "{"]}, "runner.command[1]", "literal braces"),
    ({"type": "command", "command": "python train.py {params_file}"}, "runner.command",
     "must be a list of arguments (it runs without a shell), e.g. ['python', 'train.py', '{params_file}']"),
    ({"type": "command", "command": ["python", "train.py"]}, "runner.command[1]",
     "'train.py' is a file relative to"),
    ({"type": "command", "command": ["python"], "pattern": "(a)(b)"}, "runner.pattern", "exactly one group"),
    ({"type": "command", "command": ["python"], "pattern": "("}, "runner.pattern", "invalid regular expression"),
    ({"type": "command", "command": ["python"], "result_file": "/abs/r.json"}, "runner.result_file", "inside the task"),
    ({"type": "command", "command": ["python"], "env": {"A": [1]}}, "runner.env.A", "must be a string or a number"),
    ({"type": "isolated", "timeout": 0}, "runner.timeout", "must be a number of seconds > 0, got 0"),
    ({"type": "command", "command": ["python"], "timeout": -5}, "runner.timeout", "> 0, got -5"),
    ({"type": "isolated", "kill_grace": -1}, "runner.kill_grace", ">= 0"),
    ({"type": "isolated", "command": ["python"]}, "runner.command", "only used with runner.type: command"),
    ({"type": "command"}, "runner.command", "missing required key"),
])
def test_bad_runner_config(tmp_path, runner, key, message):
    raw = _cfg(tmp_path, runner=runner)
    with pytest.raises(ConfigError) as e:
        parse_config(raw, "test.yaml", base_dir=HERE)
    assert e.value.key == key, str(e.value)
    assert message in str(e.value)
    assert str(e.value).startswith(f"test.yaml: {key}: ")


def test_command_spec_is_normalized(tmp_path):
    script = tmp_path / "conf" / "run.sh"
    script.parent.mkdir()
    script.write_text("#!/bin/sh\necho loss: 1\n")
    raw = _cfg(tmp_path, runner={"type": "command", "command": ["./run.sh", 3, "{params[x]:.2f}"], "env": {"N": 2}})
    with pytest.raises(ConfigError, match="is not executable: chmod"):
        parse_config(raw, "test.yaml", base_dir=script.parent)
    script.chmod(0o755)
    cfg = parse_config(raw, "test.yaml", base_dir=script.parent)
    assert cfg.runner["command"] == [str(script), "3", "{params[x]:.2f}"]  # resolved against the config's directory
    assert cfg.runner["env"] == {"N": "2"} and cfg.runner["config_dir"] == str(script.parent)


def test_ranks_per_task_needs_the_python_runner(tmp_path):
    with pytest.raises(ConfigError, match="ranks_per_task 2 needs runner.type: python"):
        parse_config(_cfg(tmp_path, ranks_per_task=2, runner={"type": "isolated"}), "test.yaml")


def test_make_runner_rejects_unknown_types():
    from emews.errors import ObjectiveError
    from emews.workers import make_runner

    with pytest.raises(ObjectiveError, match="unknown runner type 'gpu'; expected one of"):
        make_runner({"type": "gpu", "objective": "emews.examples:noop"})


def test_python_runner_passes_comm_only_when_accepted():
    from emews.task import Task
    from emews.workers._runners import PythonRunner, accepts_comm

    assert accepts_comm(lambda p, comm=None: 0) and accepts_comm(lambda p, **kw: 0)
    assert not accepts_comm(lambda p: 0) and not accepts_comm(lambda p, *, comm_size=1: 0)
    r = PythonRunner({"objective": lambda p, comm=None: {"loss": 1.0, "c": comm}}, comm="COMM")
    assert r.run(Task(0, {})).metrics == {"c": "COMM"}
    r = PythonRunner({"objective": lambda p: 2.0}, comm="COMM")
    assert r.run(Task(0, {})).loss == 2.0


def test_child_environment_drops_mpi_launcher_variables(monkeypatch):
    from emews.workers._procs import child_env, describe_exit

    monkeypatch.setenv("PMI_RANK", "3")
    monkeypatch.setenv("OMPI_COMM_WORLD_SIZE", "8")
    monkeypatch.setenv("OMPI_MCA_btl", "tcp,self")  # a user's MCA setting stays
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "7")
    env = child_env({"A": "1", "CUDA_VISIBLE_DEVICES": "5"}, gpu="2")
    assert "PMI_RANK" not in env and "OMPI_COMM_WORLD_SIZE" not in env and env["OMPI_MCA_btl"] == "tcp,self"
    assert env["A"] == "1" and env["CUDA_VISIBLE_DEVICES"] == "2"
    assert describe_exit(-9).startswith("killed by signal SIGKILL (9) (sent by the kernel's out-of-memory killer")
    assert describe_exit(2) == "exited with code 2"


def test_command_runner_standalone(tmp_path):
    cfg = parse_config(_cfg(tmp_path, runner=_command("stdout")), "test.yaml", base_dir=HERE)
    assert cfg.runner["command"][0] == "{python}"
    from emews.task import Task
    from emews.workers import make_runner

    r = make_runner({**cfg.runner, "workdir": str(tmp_path / "t")})
    outcome = r.run(Task(5, {"x": 0.5}))
    assert outcome.status == "done" and outcome.loss == pytest.approx(0.25)
    assert (tmp_path / "t" / "5" / "stdout.txt").read_text().endswith("done\n")
