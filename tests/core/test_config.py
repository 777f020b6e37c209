"""Every bad input of the core issue gets a clear error naming the file, key and value."""

from pathlib import Path

import pytest

from emews import ConfigError, load_config

from helpers import base_config, write_config


def load(tmp_path: Path, **changes):
    return load_config(write_config(tmp_path, base_config(tmp_path, **changes)))


def test_valid_config_loads(tmp_path):
    cfg = load(tmp_path)
    assert cfg.max_evals == 12 and cfg.workers == 2 and cfg.optimizer == "random" and cfg.mode == "async"
    assert cfg.space.names == ["learning_rate", "batch_size", "optimizer", "dropout", "sleep"]


@pytest.mark.parametrize(
    "changes, message",
    [
        ({"max_evlas": 5}, r"config.yaml: max_evlas: unknown key 'max_evlas' \(value 5\); did you mean 'max_evals'\?"),
        ({"max_evals": None}, r"config.yaml: max_evals: missing required key"),
        ({"experiment": None}, r"config.yaml: experiment: missing required key"),
        ({"objective": None}, r"config.yaml: objective: missing required key"),
        ({"max_evals": "ten"}, r"config.yaml: max_evals: must be an integer, got 'ten' \(str\)"),
        ({"workers": 2.5}, r"config.yaml: workers: must be an integer, got 2.5"),
        ({"max_evals": 0}, r"config.yaml: max_evals: must be >= 1, got 0"),
        ({"max_evals": -3}, r"config.yaml: max_evals: must be >= 1, got -3"),
        ({"workers": 0}, r"config.yaml: workers: must be >= 1, got 0"),
        ({"max_time": -1}, r"config.yaml: max_time: must be > 0, got -1"),
        ({"mode": "sync"}, r"config.yaml: mode: must be one of async, batch, got 'sync'"),
        ({"space": {"x": {"type": "real", "low": 1, "high": 0}}}, r"config.yaml: space.x: low must not exceed high, got low=1, high=0"),
        ({"space": {"x": {"type": "real", "low": 0, "high": 1, "log": True}}}, r"config.yaml: space.x.low: a log-scale dimension needs low > 0, got low=0"),
        ({"space": {"c": {"type": "categorical", "values": []}}}, r"config.yaml: space.c.values: must list at least one value, got \[\]"),
        ({"optimizer": "randon"}, r"config.yaml: optimizer: unknown optimizer 'randon'; did you mean 'random'\?"),
        ({"optimizer": {"name": "bayes"}}, r"config.yaml: optimizer.name: unknown optimizer 'bayes'"),
        ({"optimizer": {"name": "random", "setings": {}}}, r"config.yaml: optimizer.setings: unknown key 'setings'.*did you mean 'settings'"),
        ({"objective": "emews.examples.quickstart"}, r"config.yaml: objective: must be written 'package.module:function' \(with a colon\), got 'emews.examples.quickstart'"),
        ({"objective": "no_such_module_xyz:run"}, r"config.yaml: objective: cannot import module 'no_such_module_xyz' of 'no_such_module_xyz:run'"),
        ({"runner": {"type": "python", "timeout": 10}}, r"config.yaml: runner.timeout: a timeout \(10\) needs runner.type isolated or command"),
        ({"runner": {"type": "isolated", "timeout": 0}}, r"config.yaml: runner.timeout: must be a number of seconds > 0, got 0"),
        ({"gpus": {"gpus_per_worker": 2, "workers_per_gpu": 2}}, r"config.yaml: gpus: set gpus_per_worker or workers_per_gpu above 1, not both"),
    ],
)
def test_bad_config_values(tmp_path, changes, message):
    with pytest.raises(ConfigError, match=message):
        load(tmp_path, **changes)


def test_output_directory_that_is_a_file(tmp_path):
    f = tmp_path / "afile"
    f.write_text("x")
    with pytest.raises(ConfigError, match=r"config.yaml: output: output directory '.*afile' is a file, not a directory"):
        load(tmp_path, output=str(f))


def test_yaml_syntax_error_names_the_line(tmp_path):
    p = tmp_path / "broken.yaml"
    p.write_text("experiment: x\nobjective: emews.examples:noop\nspace: {x: {type: real, low: 0, high: 1}\nmax_evals: 3\n")
    with pytest.raises(ConfigError, match=r"broken.yaml: YAML syntax error at line 4"):
        load_config(p)


def test_missing_and_empty_files(tmp_path):
    with pytest.raises(ConfigError, match=r"nope.yaml: no such config file"):
        load_config(tmp_path / "nope.yaml")
    (tmp_path / "empty.yaml").write_text("")
    with pytest.raises(ConfigError, match=r"empty.yaml: the config file is empty"):
        load_config(tmp_path / "empty.yaml")


def test_overrides(tmp_path):
    p = write_config(tmp_path, base_config(tmp_path))
    cfg = load_config(p, ["max_evals=5", "optimizer.name=grid", "optimizer.settings.points=2", "space.dropout.high=0.5"])
    assert cfg.max_evals == 5 and cfg.optimizer == "grid" and cfg.optimizer_settings == {"points": 2}
    assert cfg.space["dropout"].high == 0.5
    with pytest.raises(ConfigError, match=r"--set needs key=value, got 'max_evals'"):
        load_config(p, ["max_evals"])
    with pytest.raises(ConfigError, match=r"max_evals: must be >= 1, got 0"):
        load_config(p, ["max_evals=0"])
