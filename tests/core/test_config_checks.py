"""Every malformed setting is refused before anything exists (issue 19 item 4, issue 25 items 4 and 6).

Each case is a config that ``python -m emews.run`` must refuse with exit status 2, naming the
config file, the key and the value, and without creating the experiment directory (nor the
output directory above it). Most cases run ``emews.run.main`` in this process (the same code
as the command, and fast); a representative subset runs the command in a subprocess.
"""

from __future__ import annotations

import contextlib
import io
import os
import subprocess
import sys
import textwrap

import pytest
import yaml

import emews
from emews.config import parse_config
from emews.errors import ConfigError
from emews.run import main
from helpers import ROOT, base_config, run_cli

POPULATION_COLUMNS = "learning_rate,batch_size,optimizer,dropout\n"

# (top-level key, its value, the key the error must name, a text the error must hold: the value)
CASES = [
    # optimizer.settings: mbo
    ("optimizer", {"name": "mbo", "settings": {"acquisition": "foo"}}, "optimizer.settings.acquisition", "'foo'"),
    ("optimizer", {"name": "mbo", "settings": {"surrogate": "svm"}}, "optimizer.settings.surrogate", "'svm'"),
    ("optimizer", {"name": "mbo", "settings": {"multi_method": "sms-ego"}}, "optimizer.settings.multi_method",
     "'sms-ego'"),
    ("optimizer", {"name": "mbo", "settings": {"multi_method": "ehvi", "surrogate": "rf"}},
     "optimizer.settings.multi_method", "'rf'"),
    ("optimizer", {"name": "mbo", "settings": {"kappa": -1}}, "optimizer.settings.kappa", "-1"),
    ("optimizer", {"name": "mbo", "settings": {"xi": float("nan")}}, "optimizer.settings.xi", "nan"),
    ("optimizer", {"name": "mbo", "settings": {"n_initial": 0}}, "optimizer.settings.n_initial", "=0"),
    ("optimizer", {"name": "mbo", "settings": {"n_candidates": "many"}}, "optimizer.settings.n_candidates", "'many'"),
    ("optimizer", {"name": "mbo", "settings": {"impute": "penalty"}}, "optimizer.settings.impute", "'penalty'"),
    ("optimizer", {"name": "mbo", "settings": {"initial_design": "grid"}}, "optimizer.settings.initial_design",
     "'grid'"),
    ("optimizer", {"name": "mbo", "settings": {"transform": "sqrt"}}, "optimizer.settings.transform", "'sqrt'"),
    ("optimizer", {"name": "mbo", "settings": {"local_fraction": 1.5}}, "optimizer.settings.local_fraction", "1.5"),
    ("optimizer", {"name": "mbo", "settings": {"n_jobs": 0}}, "optimizer.settings.n_jobs", "=0"),
    ("optimizer", {"name": "mbo", "settings": {"blas_threads": 0}}, "optimizer.settings.blas_threads", "=0"),
    ("optimizer", {"name": "mbo", "settings": {"kapa": 2}}, "optimizer.settings.kapa", "did you mean 'kappa'"),
    ("optimizer", {"name": "mbo", "settings": [1]}, "optimizer.settings", "[1]"),
    # optimizer.settings: ga, ga-steady
    ("optimizer", {"name": "ga", "settings": {"population": 1}}, "optimizer.settings.population", "=1"),
    ("optimizer", {"name": "ga", "settings": {"strategy": "nsga2"}}, "optimizer.settings.strategy", "'nsga2'"),
    ("optimizer", {"name": "ga", "settings": {"mutpb": 1.5}}, "optimizer.settings.mutpb", "1.5"),
    ("optimizer", {"name": "ga", "settings": {"cxpb": 0.5, "mutpb": 0.8}}, "optimizer.settings.cxpb", "cxpb=0.5"),
    ("optimizer", {"name": "ga", "settings": {"penalty": "high"}}, "optimizer.settings.penalty", "'high'"),
    ("optimizer", {"name": "ga", "settings": {"initial_population": "nope.csv"}},
     "optimizer.settings.initial_population", "nope.csv"),
    ("optimizer", {"name": "ga", "settings": {"initial_population": "bad_cell.csv"}},
     "optimizer.settings.initial_population", "value 'abc' is not a number"),
    ("optimizer", {"name": "ga", "settings": {"initial_population": "no_column.csv"}},
     "optimizer.settings.initial_population", "missing column 'learning_rate'"),
    ("optimizer", {"name": "ga", "settings": {"initial_population": 5}}, "optimizer.settings.initial_population",
     "got 5"),
    ("optimizer", {"name": "ga", "settings": {"popsize": 5}}, "optimizer.settings.popsize", "(value 5)"),
    ("optimizer", {"name": "ga-steady", "settings": {"tournament": 0}}, "optimizer.settings.tournament", "=0"),
    ("optimizer", {"name": "ga-steady", "settings": {"initial_population": "bad_cell.csv"}},
     "optimizer.settings.initial_population", "'abc'"),
    # optimizer.settings: random, grid, upf
    ("optimizer", {"name": "random", "settings": {"foo": 1}}, "optimizer.settings.foo", "(value 1)"),
    ("optimizer", {"name": "grid", "settings": {"points": 0}}, "optimizer.settings.points", "got 0"),
    ("optimizer", {"name": "grid", "settings": {"points": "many"}}, "optimizer.settings.points", "'many'"),
    ("optimizer", {"name": "grid", "settings": {"points": {"nope": 3}}}, "optimizer.settings.points.nope",
     "(value 3)"),
    ("optimizer", {"name": "grid", "settings": {"points": {"dropout": -2}}}, "optimizer.settings.points.dropout",
     "-2"),
    ("optimizer", {"name": "grid", "settings": {"shuffle": "yes"}}, "optimizer.settings.shuffle", "'yes'"),
    ("optimizer", {"name": "upf", "settings": {"file": "nope.txt"}}, "optimizer.settings.file", "'nope.txt'"),
    ("optimizer", {"name": "upf", "settings": {"file": 3}}, "optimizer.settings.file", "got 3"),
    # optimizer names (issue 25 item 4: a plug-in class typo)
    ("optimizer", {"name": "mob"}, "optimizer.name", "did you mean 'mbo'"),
    ("optimizer", {"name": "emews.optimizers:RandomSerch"}, "optimizer.name",
     "did you mean 'emews.optimizers:RandomSearch'"),
    ("optimizer", {"name": "nosuchmodule:Opt"}, "optimizer.name", "'nosuchmodule'"),
    ("optimizer", {"name": "ga", "sttings": {}}, "optimizer.sttings", "did you mean 'settings'"),
    ("optimizer", 5, "optimizer", "got 5"),
    # stopper
    ("stopper", {"name": "asha", "reduction_factor": 1}, "stopper.reduction_factor", "reduction_factor=1"),
    ("stopper", {"name": "asha", "min_resource": 0}, "stopper.min_resource", "min_resource=0"),
    ("stopper", {"name": "asha", "min_resource": 5, "max_resource": 2}, "stopper.min_resource", "max_resource=2"),
    ("stopper", {"name": "ashaa"}, "stopper.name", "did you mean 'asha'"),
    ("stopper", {"name": "median", "grace": -1}, "stopper.grace", "(value -1)"),
    ("stopper", {"name": "hyperband", "max_resource": "x"}, "stopper.max_resource", "'x'"),
    ("stopper", {"reduction_factor": 3}, "stopper", "'reduction_factor': 3"),
    ("stopper", 5, "stopper", "5 is not a stopper"),
    # simulation (pool: simulated)
    ("simulation", {"failure_rate": 2}, "simulation.failure_rate", "got 2"),
    ("simulation", {"failure_rate": -0.5}, "simulation.failure_rate", "-0.5"),
    ("simulation", {"failure_rate": "x"}, "simulation.failure_rate", "'x'"),
    ("simulation", {"duration": {"distribution": "foo"}}, "simulation.duration.distribution", "'foo'"),
    ("simulation", {"duration": {"distribution": "normal", "mean": 1}}, "simulation.duration.sd", "needs 'sd'"),
    ("simulation", {"duration": {"distribution": "normal", "mean": 1, "sd": -1}}, "simulation.duration.sd", "-1"),
    ("simulation", {"stragglers": {"share": 2}}, "simulation.stragglers.share", "got 2"),
    ("simulation", {"stragglers": {"factor": 0.5}}, "simulation.stragglers.factor", "0.5"),
    ("simulation", {"stragglers": 5}, "simulation.stragglers", "got 5"),
    ("simulation", {"stragglers": {"size": 1}}, "simulation.stragglers.size", "(value 1)"),
    ("simulation", {"seed": -1}, "simulation.seed", "-1"),
    ("simulation", {"failur_rate": 0.1}, "simulation.failur_rate", "did you mean 'failure_rate'"),
    ("simulation", 5, "simulation", "got 5"),
    # runner
    ("runner", {"type": "gpu"}, "runner.type", "'gpu'"),
    ("runner", {"type": "isolated", "timeout": -1}, "runner.timeout", "-1"),
    ("runner", {"type": "isolated", "timeout": float("inf")}, "runner.timeout", "inf"),
    ("runner", {"timeout": 5}, "runner.timeout", "(5)"),
    ("runner", {"retries": -1}, "runner.retries", "-1"),
    ("runner", {"retries": 1.5}, "runner.retries", "1.5"),
    ("runner", {"type": "isolated", "kill_grace": -1}, "runner.kill_grace", "-1"),
    ("runner", {"type": "command", "command": "python train.py"}, "runner.command", "'python train.py'"),
    ("runner", {"command": ["python"]}, "runner.command", "['python']"),
    ("runner", {"env": [1]}, "runner.env", "[1]"),
    ("runner", {"typ": "python"}, "runner.typ", "did you mean 'type'"),
    ("runner", 5, "runner", "got 5"),
    # gpus
    ("gpus", {"gpus_per_worker": 0}, "gpus.gpus_per_worker", "got 0"),
    ("gpus", {"workers_per_gpu": "a"}, "gpus.workers_per_gpu", "'a'"),
    ("gpus", {"gpus_per_worker": 2, "workers_per_gpu": 2}, "gpus", "workers_per_gpu 2"),
    ("gpus", {"devices": []}, "gpus.devices", "got []"),
    ("gpus", {"devices": [0, -1]}, "gpus.devices[1]", "got -1"),
    ("gpus", {"devices": [0, 0]}, "gpus.devices", "[0, 0]"),
    ("gpus", {"devices": "0,1"}, "gpus.devices", "'0,1'"),
    ("gpus", {"gpus_per_worker": 3, "devices": [0, 1]}, "gpus.gpus_per_worker", "[0, 1]"),
    ("gpus", {"device": [0]}, "gpus.device", "did you mean 'devices'"),
    ("gpus", 5, "gpus", "got 5"),
    # objectives and constraints (several objectives)
    ("objectives", {"loss": "min", "dropout": "minimize"}, "objectives.dropout", "'minimize'"),
    ("objectives", "loss", "objectives", "'loss'"),
    ("objectives", ["loss", "dropout", "loss"], "objectives", "'loss' twice"),
    ("constraints", {"dropout": "at most 0.5"}, "constraints.dropout", "'at most 0.5'"),
    ("constraints", "dropout <= 0.5", "constraints", "'dropout <= 0.5'"),
    ("optimizer", "ga-steady", "optimizer", "does not declare multi_objective"),  # with _MORE's objectives
]

#: what a case needs besides its key: the refused optimizer case asks for several objectives
_MORE = {("optimizer", "'ga-steady'"): {"objectives": {"loss": "min", "dropout": "max"}}}

# the ones that also run as a real `python -m emews.run` in a subprocess
_CLI_PICKS = [("optimizer.settings.acquisition", "'foo'"), ("optimizer.settings.surrogate", "'svm'"),
              ("optimizer.settings.initial_population", "value 'abc' is not a number"),
              ("optimizer.name", "did you mean 'emews.optimizers:RandomSearch'"),
              ("stopper.reduction_factor", "reduction_factor=1"), ("simulation.failure_rate", "got 2"),
              ("runner.type", "'gpu'"), ("gpus.devices[1]", "got -1"),
              ("objectives.dropout", "'minimize'"), ("optimizer", "does not declare multi_objective")]
CLI_CASES = [i for i, c in enumerate(CASES) if (c[2], c[3]) in _CLI_PICKS]


def _config(tmp_path, key, value) -> dict:
    (tmp_path / "bad_cell.csv").write_text(POPULATION_COLUMNS + "abc,16,adam,0.1\n")
    (tmp_path / "no_column.csv").write_text("x\n0.5\n")
    cfg = base_config(tmp_path, report=False)
    if key == "simulation":
        cfg["pool"] = "simulated"
    if key == "runner" and isinstance(value, dict) and value.get("type") == "command":
        cfg.pop("objective")
    cfg[key] = value
    cfg.update(_MORE.get((key, repr(value)), {}))
    return cfg


def _write(tmp_path, cfg) -> str:
    p = tmp_path / "bad.yaml"
    p.write_text(yaml.safe_dump(cfg, sort_keys=False))
    return str(p)


def _check_message(text: str, config_file: str, key: str, value_text: str) -> None:
    assert f"{config_file}: {key}: " in text, text
    assert value_text in text, text


@pytest.mark.parametrize("key,value,where,shown", CASES, ids=[f"{c[2]}-{i}" for i, c in enumerate(CASES)])
def test_bad_input_exits_2_naming_file_key_and_value_and_creates_nothing(tmp_path, monkeypatch, key, value, where,
                                                                          shown):
    monkeypatch.chdir(tmp_path)
    path = _write(tmp_path, _config(tmp_path, key, value))
    err = io.StringIO()
    with contextlib.redirect_stderr(err):
        rc = main([path, "--out", str(tmp_path / "runs" / "exp")])
    assert rc == 2, err.getvalue()
    assert "Traceback" not in err.getvalue()
    _check_message(err.getvalue(), path, where, shown)
    assert not (tmp_path / "runs").exists(), "nothing is created before the config is checked"


@pytest.mark.parametrize("i", CLI_CASES, ids=[CASES[i][2] for i in CLI_CASES])
def test_bad_input_from_the_command_line(tmp_path, i):
    key, value, where, shown = CASES[i]
    path = _write(tmp_path, _config(tmp_path, key, value))
    r = run_cli([path], cwd=tmp_path)
    assert r.returncode == 2, r.stderr
    assert "Traceback" not in r.stderr
    _check_message(r.stderr, path, where, shown)
    assert not (tmp_path / "runs").exists()


OBJECTIVE_SPACE = {"x": {"type": "real", "low": -1.0, "high": 1.0}}


def _square(p):
    return p["x"] ** 2


@pytest.mark.parametrize("kwargs,where", [
    ({"optimizer": "mbo", "settings": {"acquisition": "foo"}}, "optimizer.settings.acquisition"),
    ({"optimizer": "mbo", "settings": {"surrogate": "svm"}}, "optimizer.settings.surrogate"),
    ({"optimizer": "ga", "settings": {"population": 1}}, "optimizer.settings.population"),
    ({"optimizer": "grid", "settings": {"points": 0}}, "optimizer.settings.points"),
    ({"optimizer": "random", "settings": {"foo": 1}}, "optimizer.settings.foo"),
    ({"stopper": {"name": "asha", "reduction_factor": 1}}, "stopper.reduction_factor"),
    ({"pool": "simulated", "simulation": {"failure_rate": 2}}, "simulation.failure_rate"),
    ({"runner": {"type": "isolated", "timeout": -1}}, "runner.timeout"),
    ({"optimizer": "emews.optimizers:RandomSerch"}, "optimizer.name"),
])
def test_search_with_bad_settings_raises_config_error_before_creating_anything(tmp_path, kwargs, where):
    with pytest.raises(ConfigError) as e:
        emews.search(_square, OBJECTIVE_SPACE, max_evals=4, workers=1, output=tmp_path / "runs", report=False,
                     **kwargs)
    assert e.value.key == where and e.value.source == "search()", str(e.value)
    assert not (tmp_path / "runs").exists()


def test_search_refuses_an_optimizer_instance_before_creating_anything(tmp_path):
    """Issue 25 item 6: an instance used to fail in the optimizer process, leaving a directory
    behind (so the corrected call moved to search-2)."""
    from emews.optimizers.mbo import MBO
    from emews.space import Space

    with pytest.raises(ConfigError, match=r"optimizer instance \(MBO object\); pass the class itself") as e:
        emews.search(_square, OBJECTIVE_SPACE, optimizer=MBO(Space.from_dict(OBJECTIVE_SPACE)), max_evals=4,
                     workers=1, output=tmp_path / "runs", report=False)
    assert e.value.key == "optimizer.name"
    assert not (tmp_path / "runs").exists()


def test_a_plugin_class_typo_names_file_key_and_a_close_name(tmp_path):
    """Issue 25 item 4: ``myopt:Perturbb`` exited 1 naming neither file nor key; from Python it
    was an OptimizerError."""
    (tmp_path / "myopt.py").write_text(textwrap.dedent("""
        import emews
        class Perturb(emews.Optimizer):
            def ask(self, n):
                return self.space.sample(n, self.rng)
    """))
    cfg = base_config(tmp_path, report=False, optimizer={"name": "myopt:Perturbb"})
    path = _write(tmp_path, cfg)
    r = run_cli([path], cwd=tmp_path)
    assert r.returncode == 2, r.stderr
    assert f"{path}: optimizer.name: " in r.stderr and "did you mean 'myopt:Perturb'?" in r.stderr, r.stderr
    assert "Traceback" not in r.stderr and not (tmp_path / "runs").exists()
    sys.path.insert(0, str(tmp_path))
    try:
        with pytest.raises(ConfigError, match=r"did you mean 'myopt:Perturb'\?") as e:
            emews.search(_square, OBJECTIVE_SPACE, optimizer="myopt:Perturbb", max_evals=4, workers=1,
                         output=tmp_path / "runs", report=False)
        assert e.value.key == "optimizer.name"
    finally:
        sys.path.remove(str(tmp_path))
        sys.modules.pop("myopt", None)
    assert not (tmp_path / "runs").exists()


def test_a_guarded_script_still_runs(tmp_path):
    """The unguarded-script check (issue 25 item 6) reads the script: a guarded call runs."""
    (tmp_path / "script.py").write_text(textwrap.dedent("""
        import emews

        def f(p):
            return p["x"] ** 2

        def main():
            return emews.search(f, {"x": {"type": "real", "low": -1, "high": 1}}, max_evals=3, workers=1,
                                output="runs", report=False)

        if __name__ == "__main__":
            print("best", main().best["loss"] >= 0)
    """))
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]))
    r = subprocess.run([sys.executable, "script.py"], cwd=tmp_path, env=env, capture_output=True, text=True,
                       timeout=300)
    assert r.returncode == 0, r.stderr
    assert "best True" in r.stdout


def test_sections_are_typed_and_frozen(tmp_path):
    from emews.config import GpuConfig, RunnerConfig, SimulationConfig

    cfg = parse_config(base_config(tmp_path, runner={"type": "isolated", "timeout": 5},
                                   gpus={"workers_per_gpu": 2, "devices": [0, 1]}), "c.yaml")
    assert isinstance(cfg.runner, RunnerConfig) and cfg.runner.type == "isolated" and cfg.runner.timeout == 5
    assert cfg.runner["timeout"] == 5 and "kill_grace" not in cfg.runner  # reads as the mapping given
    assert isinstance(cfg.gpus, GpuConfig) and cfg.gpus.workers_per_gpu == 2 and cfg.gpus["devices"] == [0, 1]
    with pytest.raises(AttributeError):
        cfg.runner.timeout = 1  # type: ignore[misc]
    sim = parse_config(base_config(tmp_path, pool="simulated", simulation={"failure_rate": 0.5}), "c.yaml")
    assert isinstance(sim.simulation, SimulationConfig) and dict(sim.simulation) == {"failure_rate": 0.5}


def test_a_plugin_declares_its_checks_and_its_file_settings(tmp_path):
    """One declared interface for every optimizer: ``check_settings`` (run once in the parent)
    and ``path_settings`` (files relative to the config). config.py knows no optimizer's settings."""
    (tmp_path / "conf").mkdir()
    (tmp_path / "conf" / "start.txt").write_text("0.5\n")
    (tmp_path / "conf" / "fileopt.py").write_text(textwrap.dedent("""
        import emews
        from emews.errors import ConfigError

        class FromFile(emews.Optimizer):
            path_settings = ("start",)

            def __init__(self, space, seed=None, start=None, step=0.1):
                super().__init__(space, seed)
                self.x = float(open(start).read())
                self.step = step

            @classmethod
            def check_settings(cls, space, settings, seed=None):
                if settings.get("step", 0.1) <= 0:
                    raise ConfigError(f"must be > 0, got {settings['step']!r}", key="step")
                super().check_settings(space, settings, seed)

            def ask(self, n):
                return [{"x": min(1.0, self.x + i * self.step)} for i in range(n)]
    """))
    cfg = {"experiment": "f", "objective": "emews.examples:quickstart", "max_evals": 2,
           "space": {"x": {"type": "real", "low": 0.0, "high": 1.0}}, "output": str(tmp_path / "runs"),
           "optimizer": {"name": "fileopt:FromFile", "settings": {"start": "start.txt", "step": -1}}}
    path = tmp_path / "conf" / "c.yaml"
    path.write_text(yaml.safe_dump(cfg))
    r = run_cli([str(path)], cwd=tmp_path)  # run from elsewhere: start.txt is found beside the config
    assert r.returncode == 2 and f"{path}: optimizer.settings.step: must be > 0, got -1" in r.stderr, r.stderr
    assert not (tmp_path / "runs").exists()
    sys.path.insert(0, str(tmp_path / "conf"))
    try:
        cfg["optimizer"]["settings"]["step"] = 0.25
        parsed = parse_config(cfg, str(path), base_dir=tmp_path / "conf")
        assert parsed.optimizer_settings["start"] == str(tmp_path / "conf" / "start.txt")
        cfg["optimizer"]["settings"]["start"] = "missing.txt"
        with pytest.raises(ConfigError, match="No such file") as e:
            parse_config(cfg, str(path), base_dir=tmp_path / "conf")
        assert e.value.key == "optimizer.settings.start"
    finally:
        sys.path.remove(str(tmp_path / "conf"))
        sys.modules.pop("fileopt", None)
