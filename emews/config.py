"""YAML configuration -> validated :class:`Config`. Every error names the file, key and value.

Reference (``*`` = required)::

    experiment*: name             # experiment directory name under `output`
    objective*: pkg.module:function   # not needed with runner.type: command
    space*: {name: {type: ..., ...}}  # or space_file: path (Supervisor GA JSON, or YAML/JSON mapping)
    optimizer: random             # or {name: mbo, settings: {...}}; name may be pkg.module:Class
    mode: async                   # async | batch
    batch_size: 8                 # batch mode: points per batch (default: the worker count)
    max_evals*: 100
    max_time: 3600                # seconds (this session); no new task starts after it
    deadline: 2026-11-27T18:00    # the job's end: ISO time, epoch seconds or +2h / +90m / +600
                                  # (default: the batch job's end from its scheduler; false: none)
    stop_margin: 60               # no new task starts within this many seconds of the deadline
    kill_margin: 10               # running tasks are cancelled (re-run on resume) this close to it
    chain: false                  # Slurm: a job stopped at its end (or its warning signal) with budget
                                  # left submits its own script again (sbatch --dependency=afterany)
    chain_max: 10                 # at most this many jobs in a chain (the first one included)
    workers: 4                    # local pool processes (default: CPU count); MPI: ranks - 1
    seed: 1
    output: runs                  # parent of experiment directories
    pool: auto                    # auto | local | mpi | simulated | dask  (auto: mpi when launched with > 1 rank)
    dask: {scheduler_file: sched.json}   # pool: dask: or {address: tcp://host:8786}, or
                                  # {cluster: {type: slurm, cores: 1, ...}, adapt: {minimum: 0, maximum: 64}};
                                  # none of them: a LocalCluster of `workers` processes
    ranks_per_task: 1             # MPI: ranks per task (sub-communicator given to the objective)
    gpus: {gpus_per_worker: 1, workers_per_gpu: 1, devices: null}   # or omit for no binding
    runner:                       # how each evaluation runs
      type: python                # python | isolated | command
      timeout: null               # seconds (isolated, command)
      retries: 0                  # extra attempts for failed tasks
      command: [python, train.py, --params, "{params_file}"]
      env: {OMP_NUM_THREADS: "4"}
      result_file: result.json    # command: JSON file with the loss, in the task directory
      pattern: 'loss: (\\S+)'      # command: else the last stdout line matching this
      workdir: tasks              # command: parent of the task directories (default <experiment>/tasks)
      kill_grace: 5               # seconds between SIGTERM and SIGKILL on a timeout
    progress: 30                  # seconds between progress lines on stderr (0: quiet; CLI default 30)
    report: true                  # at the end: report.json, report.txt and PNG plots (with matplotlib)
    checkpoint_local: $TMPDIR     # node-local parent of trial.checkpoint_dir (or /dev/shm); default:
                                  # <experiment>/checkpoints/<task_id>, where a re-run resumes from
    keep_models: {count: 5, by: loss, mode: min}   # the best k final checkpoints, flushed to
                                  # <experiment>/models/ (by: loss or a metric the objective returns)
    objectives: {val_loss: min, train_time: min}   # several objectives: metrics the objective returns,
                                  # in order (the first is the loss early stopping judges); min | max
    constraints: {gpu_mem_gb: "<= 40"}   # a feasible result meets every bound (<=, <, >=, >); a missing
                                  # metric is a violation
"""

from __future__ import annotations

import copy
import difflib
import importlib.util
import logging
import math
import os
import sys
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, ClassVar

import yaml

from .errors import ConfigError, SpaceError
from .space import Space

log = logging.getLogger("emews.config")

__all__ = ["Config", "KeepModelsConfig", "RunnerConfig", "GpuConfig", "SimulationConfig", "load_config", "parse_config",
           "apply_overrides"]

_TOP_KEYS = {
    "experiment", "objective", "space", "space_file", "optimizer", "mode", "batch_size", "max_evals",
    "max_time", "workers", "seed", "output", "pool", "ranks_per_task", "gpus", "runner", "progress",
    "deadline", "stop_margin", "kill_margin", "report", "simulation", "stopper", "chain", "chain_max", "warm_start",
    "dask", "checkpoint_local", "keep_models", "objectives", "constraints",
}
_KEEP_KEYS = {"count", "by", "mode"}
_RUNNER_KEYS = {"type", "timeout", "retries", "command", "env", "result_file", "pattern", "workdir", "kill_grace",
                "report_pattern", "report_file", "model", "params", "path", "default_model", "data_dir", "return"}
#: the keys of runner.type: candle beyond the command runner's (emews.workers._candle)
_CANDLE_KEYS = {"model", "params", "path", "default_model", "data_dir", "return"}
_GPU_KEYS = {"gpus_per_worker", "workers_per_gpu", "devices"}
_OPT_KEYS = {"name", "settings"}


class _Section(Mapping):
    """A frozen, typed config section that also reads as the mapping of its given fields
    (``section["type"]``, ``section.get("timeout")``, ``{**section}``): runner specs and GPU
    settings travel to the workers as plain dicts. A field left at ``None`` is absent."""

    #: mapping keys that are Python keywords -> their field names (``return`` -> ``return_``)
    _aliases: ClassVar[dict[str, str]] = {}

    @classmethod
    def of(cls, mapping: Mapping[str, Any]) -> Any:
        """The section of a checked mapping (keys as the config spells them)."""
        return cls(**{cls._aliases.get(k, k): v for k, v in mapping.items()})

    def __getitem__(self, key: str) -> Any:
        name = self._aliases.get(key, key)
        if name in self.__dataclass_fields__:  # type: ignore[attr-defined]
            value = getattr(self, name)
            if value is not None:
                return value
        raise KeyError(key)

    def __iter__(self) -> Iterator[str]:
        keys = {v: k for k, v in self._aliases.items()}
        return (keys.get(f.name, f.name) for f in fields(self) if getattr(self, f.name) is not None)  # type: ignore[arg-type]

    def __len__(self) -> int:
        return sum(1 for _ in self)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({dict(self)!r})"


@dataclass(frozen=True, eq=False)
class RunnerConfig(_Section):
    """``runner:``, checked (see the module docstring); ``objective`` is the config's objective
    (a ``module:function`` path or, from :func:`emews.search`, a callable)."""

    type: str = "python"
    objective: Any = None
    timeout: float | None = None
    retries: int = 0
    command: list | None = None
    env: dict | None = None
    result_file: str | None = None
    pattern: str | None = None
    workdir: str | None = None
    kill_grace: float | None = None
    report_pattern: str | None = None
    report_file: str | None = None
    config_dir: str | None = None  # the config file's directory (command runner: ``{config_dir}``)
    # runner.type: candle (emews.workers._candle): Supervisor's model conventions
    model: str | None = None
    params: str | None = None
    path: list | None = None
    default_model: str | None = None
    data_dir: str | None = None
    return_: str | None = None  # the config's ``return`` (the metric that is the loss)
    experiment_id: str | None = None
    loss_key: str | None = None  # with ``objectives``: the first one's name, the returned value taken as the loss

    _aliases: ClassVar[dict[str, str]] = {"return": "return_"}


@dataclass(frozen=True, eq=False)
class GpuConfig(_Section):
    """``gpus:``, checked."""

    gpus_per_worker: int = 1
    workers_per_gpu: int = 1
    devices: list | None = None


@dataclass(frozen=True, eq=False)
class SimulationConfig(_Section):
    """``simulation:`` of ``pool: simulated``, checked (fields not given are absent)."""

    duration: Any = None
    failure_rate: float | None = None
    stragglers: dict | None = None
    seed: int | None = None


@dataclass(frozen=True, eq=False)
class KeepModelsConfig(_Section):
    """``keep_models:``, checked: keep the ``count`` best final checkpoints ranked by ``by``
    (``loss`` or a metric), lower first with ``mode: min``."""

    count: int = 5
    by: str = "loss"
    mode: str = "min"


@dataclass
class Config:
    """A validated configuration. ``raw`` is the mapping as loaded (after overrides)."""

    experiment: str
    objective: Any
    space: Space
    optimizer: Any = "random"
    optimizer_settings: dict = field(default_factory=dict)
    mode: str = "async"
    batch_size: int | None = None
    max_evals: int = 100
    max_time: float | None = None
    workers: int | None = None
    seed: int | None = None
    output: str = "runs"
    pool: str = "auto"
    ranks_per_task: int = 1
    gpus: GpuConfig | None = None
    runner: RunnerConfig = field(default_factory=RunnerConfig)
    progress: float | None = None
    deadline: float | bool | None = None  # epoch seconds; None: from the batch system; False: none
    stop_margin: float = 60.0
    kill_margin: float = 10.0
    report: bool = True
    simulation: SimulationConfig | None = None  # pool: simulated: duration model, failure rate, stragglers, seed
    dask: dict | None = None  # pool: dask: scheduler_file | address | cluster (+ adapt), checked
    stopper: Any = None  # early stopping: {name: asha, ...} as given (built once with emews.stoppers.from_config)
    chain: bool = False  # resubmit the Slurm job script when stopped at the job's end with budget left
    chain_max: int = 10  # jobs in a chain at most (the first included)
    warm_start: Any = None  # earlier results the optimizer starts from (an emews.formats.WarmStart)
    checkpoint_local: str | None = None  # node-local parent of the tasks' checkpoint directories
    keep_models: KeepModelsConfig | None = None  # the best k models kept in <experiment>/models
    objectives: Any = None  # several objectives and/or constraints (an emews._objectives.ObjectiveSpec); None: loss
    source: str = "<dict>"
    raw: dict = field(default_factory=dict)


def _unknown(key: str, value: Any, allowed: set[str], source: str, prefix: str) -> ConfigError:
    close = difflib.get_close_matches(key, sorted(allowed), n=1)
    hint = f"; did you mean {close[0]!r}?" if close else f"; allowed keys: {', '.join(sorted(allowed))}"
    return ConfigError(f"unknown key {key!r} (value {value!r}){hint}", source, f"{prefix}{key}")


def _check_keys(d: Mapping, allowed: set[str], source: str, prefix: str = "") -> None:
    for k in d:
        if k not in allowed:
            raise _unknown(str(k), d[k], allowed, source, prefix)


def _int(d: Mapping, key: str, source: str, *, default: Any = None, required: bool = False,
         minimum: int | None = None, prefix: str = "") -> Any:
    if key not in d or d[key] is None:
        if required:
            raise ConfigError("missing required key", source, prefix + key)
        return default
    v = d[key]
    if isinstance(v, bool) or not isinstance(v, int):
        raise ConfigError(f"must be an integer, got {v!r} ({type(v).__name__})", source, prefix + key)
    if minimum is not None and v < minimum:
        raise ConfigError(f"must be >= {minimum}, got {v!r}", source, prefix + key)
    return v


def _number(d: Mapping, key: str, source: str, *, default: Any = None, positive: bool = False, prefix: str = "") -> Any:
    if key not in d or d[key] is None:
        return default
    v = d[key]
    if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
        raise ConfigError(f"must be a number, got {v!r}", source, prefix + key)
    if positive and v <= 0:
        raise ConfigError(f"must be > 0, got {v!r}", source, prefix + key)
    return float(v)


def _str(d: Mapping, key: str, source: str, *, default: Any = None, required: bool = False,
         choices: tuple[str, ...] | None = None, prefix: str = "") -> Any:
    if key not in d or d[key] is None:
        if required:
            raise ConfigError("missing required key", source, prefix + key)
        return default
    v = d[key]
    if not isinstance(v, str) or not v:
        raise ConfigError(f"must be a non-empty string, got {v!r}", source, prefix + key)
    if choices and v not in choices:
        raise ConfigError(f"must be one of {', '.join(choices)}, got {v!r}", source, prefix + key)
    return v


def check_objective_path(path: Any, source: str, key: str = "objective") -> str:
    """``pkg.module:function`` with an importable module (checked without importing it)."""
    if not isinstance(path, str):
        raise ConfigError(f"must be a string 'package.module:function', got {path!r}", source, key)
    mod, sep, attr = path.partition(":")
    if not sep or not mod or not attr:
        raise ConfigError(f"must be written 'package.module:function' (with a colon), got {path!r}", source, key)
    _check_module_name(path, mod, attr, source, key)
    try:
        spec = importlib.util.find_spec(mod)
    except (ImportError, ValueError) as e:
        raise ConfigError(f"cannot import module {mod!r} of {path!r}: {e}", source, key) from None
    if spec is None:
        raise ConfigError(
            f"cannot import module {mod!r} of {path!r}: no such module (is it installed, or in the "
            "current directory or the config file's directory?)", source, key)
    return path


def _check_module_name(path: str, mod: str, attr: str, source: str, key: str) -> None:
    """A file or directory path where a module name belongs (``train.py:run``, ``src/train:run``)."""
    if not (mod.endswith(".py") or "/" in mod or "\\" in mod):
        return
    dotted = mod[:-3] if mod.endswith(".py") else mod
    dotted = dotted.replace("\\", "/").strip("/").replace("/", ".")
    last = dotted.rsplit(".", 1)[-1]
    raise ConfigError(
        f"{path!r} names a file or directory, but the part before the colon is a Python module name, as in an "
        f"import: write {f'{last}:{attr}'!r} for {last}.py in the working directory or beside the config file"
        + (f" (or {f'{dotted}:{attr}'!r} when those directories are packages)" if dotted != last else ""),
        source, key)


class _DuplicateKey(Exception):
    def __init__(self, key: Any, first: int, second: int):
        super().__init__(key, first, second)
        self.key, self.first, self.second = key, first, second


class _UniqueKeyLoader(yaml.SafeLoader):
    """``yaml.safe_load`` that refuses a key given twice in one mapping (PyYAML keeps the last)."""

    def construct_mapping(self, node: Any, deep: bool = False) -> Any:
        if isinstance(node, yaml.MappingNode):
            seen: dict[Any, int] = {}
            for key_node, _ in node.value:
                if key_node.tag == "tag:yaml.org,2002:merge":
                    continue
                k = self.construct_object(key_node, deep=True)
                try:
                    hash(k)
                except TypeError:
                    continue
                line = key_node.start_mark.line + 1
                if k in seen:
                    raise _DuplicateKey(k, seen[k], line)
                seen[k] = line
        return super().construct_mapping(node, deep)


def load_yaml(text: str, source: str) -> Any:
    """Parse YAML like ``yaml.safe_load``; a key repeated in a mapping is a ConfigError naming
    both lines (PyYAML would silently keep the last)."""
    try:
        return yaml.load(text, Loader=_UniqueKeyLoader)  # noqa: S506 - a SafeLoader subclass
    except _DuplicateKey as e:
        raise ConfigError(f"key {e.key!r} is given twice, at line {e.first} and line {e.second} (only one is kept); "
                          "remove one of them", source, str(e.key)) from None


def _read_utf8(path: Path, source: str) -> str:
    """The file's text; bytes that are not UTF-8 are a ConfigError naming the line."""
    data = path.read_bytes()
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as e:
        line = data[: e.start].count(b"\n") + 1
        raise ConfigError(f"is not UTF-8 text: byte {data[e.start]:#04x} at line {line} (offset {e.start}); save the "
                          "file as UTF-8", source) from None


def add_import_paths(config_file: str | Path | None) -> None:
    """Objectives and plug-ins are imported from the working directory and the config's directory."""
    paths = [os.getcwd()]
    if config_file:
        paths.append(str(Path(config_file).resolve().parent))
    for p in paths:
        if p not in sys.path:
            sys.path.insert(0, p)


def load_config(path: str | Path, overrides: list[str] | None = None) -> Config:
    """Read, override (``key=value`` strings) and validate a YAML config file."""
    source = str(path)
    try:
        text = _read_utf8(Path(path), source)
    except FileNotFoundError:
        raise ConfigError("no such config file", source) from None
    except IsADirectoryError:
        raise ConfigError("is a directory, not a config file", source) from None
    except OSError as e:
        raise ConfigError(f"cannot read the config file: {e.strerror}", source) from None
    try:
        raw = load_yaml(text, source)
    except yaml.YAMLError as e:
        raise ConfigError(yaml_error_text(e), source) from None
    if raw is None:
        raise ConfigError("the config file is empty", source)
    if not isinstance(raw, dict):
        raise ConfigError(f"the top level must be a mapping of keys, got {type(raw).__name__}", source)
    if overrides:
        raw = apply_overrides(raw, overrides, source)
    add_import_paths(path)
    return parse_config(raw, source, base_dir=Path(path).resolve().parent)


def yaml_error_text(error: yaml.YAMLError) -> str:
    """One line for a YAML error (the config file's and a space file's alike): where, and what."""
    mark = getattr(error, "problem_mark", None)
    if isinstance(error, yaml.MarkedYAMLError):
        where = f"line {mark.line + 1}, column {mark.column + 1}" if mark else "unknown position"
        return f"YAML syntax error at {where}: {error.problem}"
    return "YAML error: " + " ".join(str(error).split())


def apply_overrides(raw: dict, overrides: list[str], source: str = "--set") -> dict:
    """``["a.b=1", "optimizer.name=grid"]`` -> a new mapping; values parsed as YAML scalars."""
    out = copy.deepcopy(raw)
    for item in overrides:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise ConfigError(f"--set needs key=value, got {item!r}", source, "--set")
        try:
            val = yaml.safe_load(value) if value != "" else None
        except yaml.YAMLError:
            val = value
        parts = key.split(".")
        node = out
        for p in parts[:-1]:
            if isinstance(node.get(p), str) and p == "optimizer":
                node[p] = {"name": node[p]}
            node = node.setdefault(p, {})
            if not isinstance(node, dict):
                raise ConfigError(f"cannot set {key!r}: {p!r} is not a mapping", source, key)
        node[parts[-1]] = val
    return out


def parse_config(raw: Mapping[str, Any], source: str = "<dict>", base_dir: Path | None = None) -> Config:
    """Validate a config mapping (see the module docstring for the keys).

    Every check runs here, before anything is created: the optimizer is resolved and its
    settings checked by the optimizer itself (its ``check_settings``: the built-ins build it
    once and discard it), the stopper is built once, the simulation and GPU settings are read
    as the pool will read them. From :func:`emews.search` the objective, the optimizer and the
    stopper may be objects instead of names.

    Raises:
        ConfigError: naming ``source``, the key and the value.
    """
    if not isinstance(raw, Mapping):
        raise ConfigError(f"a config must be a mapping, got {raw!r}", source)
    _check_keys(raw, _TOP_KEYS, source)
    experiment = _str(raw, "experiment", source, required=True)
    if "/" in experiment or experiment in (".", ".."):
        raise ConfigError(f"must be a plain name (no '/'), got {experiment!r}", source, "experiment")

    # runner first: a command runner needs no Python objective
    runner_raw = raw.get("runner") or {}
    if not isinstance(runner_raw, Mapping):
        raise ConfigError(f"must be a mapping, got {runner_raw!r}", source, "runner")
    _check_keys(runner_raw, _RUNNER_KEYS, source, "runner.")
    from .workers._runners import runner_types

    runner = dict(runner_raw)
    runner["type"] = _str(runner_raw, "type", source, default="python", choices=runner_types(), prefix="runner.")
    timeout = runner_raw.get("timeout")
    if timeout is not None:
        if isinstance(timeout, bool) or not isinstance(timeout, (int, float)) or not (math.isfinite(timeout) and timeout > 0):
            raise ConfigError(f"must be a number of seconds > 0, got {timeout!r}", source, "runner.timeout")
        if runner["type"] == "python":
            raise ConfigError(
                f"a timeout ({timeout!r}) needs runner.type isolated or command: a task running inside "
                "the worker process cannot be killed", source, "runner.timeout")
    runner["retries"] = _int(runner_raw, "retries", source, default=0, minimum=0, prefix="runner.")
    grace = _number(runner_raw, "kill_grace", source, prefix="runner.")
    if grace is not None and grace < 0:
        raise ConfigError(f"must be a number of seconds >= 0, got {grace!r}", source, "runner.kill_grace")
    if grace is not None and runner["type"] == "python":
        raise ConfigError("kill_grace needs runner.type isolated or command", source, "runner.kill_grace")
    for key in ("command", "result_file", "pattern", "workdir", "report_pattern", "report_file"):
        if runner_raw.get(key) is not None and runner["type"] != "command" and not (
                runner["type"] == "candle" and key not in ("result_file", "pattern")):
            raise ConfigError(f"is only used with runner.type: command (type is {runner['type']!r}), got "
                              f"{runner_raw[key]!r}", source, f"runner.{key}")
    for key in _CANDLE_KEYS:
        if runner_raw.get(key) is not None and runner["type"] != "candle":
            raise ConfigError(f"is only used with runner.type: candle (type is {runner['type']!r}), got "
                              f"{runner_raw[key]!r}", source, f"runner.{key}")
    from .workers._command import check_env

    runner["env"] = check_env(runner_raw.get("env"), source)

    if runner["type"] in ("command", "candle"):
        objective = raw.get("objective")
        if objective is not None:
            raise ConfigError(f"is not used with runner.type: {runner['type']} (got {objective!r}); remove it", source, "objective")
    else:
        if "objective" not in raw or raw["objective"] is None:
            raise ConfigError("missing required key (e.g. 'mypackage.mymodule:train')", source, "objective")
        objective = raw["objective"]
        if isinstance(objective, str) or not callable(objective):  # a callable: from emews.search()
            objective = check_objective_path(objective, source)
    runner["objective"] = objective

    # space
    if "space" in raw and "space_file" in raw:
        raise ConfigError("give either space or space_file, not both", source, "space_file")
    from .formats._upf import upf_from_config

    upf = upf_from_config(raw.get("optimizer"), source, base_dir)  # (file, lines) of the `upf` optimizer
    if "space_file" in raw:
        space = _load_space_file(raw["space_file"], source, base_dir)
    elif "space" in raw:
        space = Space.from_dict(raw["space"], source)
    elif upf is not None:  # the space of the file's own keys
        from .formats import upf_space

        space = upf_space(upf[1], upf[0])
    else:
        raise ConfigError("missing required key (or give space_file)", source, "space")
    if upf is not None:
        from .formats import check_upf

        check_upf(upf[1], space, upf[0])
    if runner["type"] == "command":
        from .workers._command import check_command_spec

        check_command_spec(runner, source, space.names, base_dir)
    elif runner["type"] == "candle":  # a CANDLE model, Supervisor's model.sh conventions
        from .workers._candle import check_candle_spec

        check_candle_spec(runner, source, space.names, base_dir)
        runner["experiment_id"] = experiment

    # optimizer: the name here; its settings once the seed is known (below)
    opt_raw = raw.get("optimizer", "random")
    opt_key = "optimizer.name" if isinstance(opt_raw, Mapping) else "optimizer"
    if isinstance(opt_raw, Mapping):
        _check_keys(opt_raw, _OPT_KEYS, source, "optimizer.")
        opt_name = opt_raw.get("name")
        if opt_name is None or isinstance(opt_name, str):
            opt_name = _str(opt_raw, "name", source, required=True, prefix="optimizer.")
        settings = opt_raw.get("settings") or {}
        if not isinstance(settings, Mapping):
            raise ConfigError(f"must be a mapping, got {settings!r}", source, "optimizer.settings")
    elif isinstance(opt_raw, str) or callable(opt_raw) or hasattr(opt_raw, "ask"):  # objects: from emews.search()
        opt_name, settings = opt_raw, {}
    else:
        raise ConfigError(f"must be a name or {{name: ..., settings: {{...}}}}, got {opt_raw!r}", source, "optimizer")
    from .optimizers import BUILTIN, resolve_for_config

    if isinstance(opt_name, str):
        if opt_name not in BUILTIN and ":" not in opt_name:
            close = difflib.get_close_matches(opt_name, list(BUILTIN), n=1)
            hint = f"did you mean {close[0]!r}? " if close else ""
            raise ConfigError(f"unknown optimizer {opt_name!r}; {hint}built-in: {', '.join(BUILTIN)}, or "
                              "'package.module:Class'", source, opt_key)
        if ":" in opt_name:
            check_objective_path(opt_name, source, opt_key)
    optimizer_obj = resolve_for_config(opt_name, source, opt_key)
    for name in getattr(optimizer_obj, "path_settings", ()):  # like space_file: relative to the config file
        value = settings.get(name)
        if isinstance(value, str) and value and base_dir is not None and not Path(value).is_absolute():
            settings = {**settings, name: str(base_dir / value)}
    if opt_name == "eqpy" and base_dir is not None and isinstance(settings.get("path"), (str, list)):
        # the algorithm's directories, like space_file: relative to the config file
        dirs = [settings["path"]] if isinstance(settings["path"], str) else settings["path"]
        settings = {**settings, "path": [str(base_dir / d) if isinstance(d, str) and not Path(d).is_absolute() else d
                                         for d in dirs]}
    if opt_name == "upf" and upf is not None:
        settings = {**settings, "file": upf[0]}  # resolved like space_file

    mode = _str(raw, "mode", source, default="async", choices=("async", "batch"))
    batch_size = _int(raw, "batch_size", source, minimum=1)
    max_evals = _int(raw, "max_evals", source, required=True, minimum=1)
    max_time = _number(raw, "max_time", source, positive=True)
    workers = _int(raw, "workers", source, minimum=1)
    seed = _int(raw, "seed", source, minimum=0)  # numpy seeds are non-negative
    output = raw.get("output", "runs")
    if not isinstance(output, str) or not output:
        raise ConfigError(f"must be a directory path, got {output!r}", source, "output")
    out_path = Path(output)
    if out_path.exists() and not out_path.is_dir():
        raise ConfigError(f"output directory {output!r} is a file, not a directory", source, "output")
    pool = _str(raw, "pool", source, default="auto", choices=("auto", "local", "mpi", "simulated", "dask"))
    ranks_per_task = _int(raw, "ranks_per_task", source, default=1, minimum=1)
    if ranks_per_task > 1 and runner["type"] != "python":
        raise ConfigError(f"ranks_per_task {ranks_per_task} needs runner.type: python (the objective is called on every "
                          f"rank of the group with its communicator); got {runner['type']!r}", source, "ranks_per_task")
    gpus = _gpus(raw.get("gpus"), source)
    progress = _number(raw, "progress", source)  # None: the command line prints every 30 s
    if progress is not None and progress < 0:
        raise ConfigError(f"must be >= 0, got {progress!r}", source, "progress")
    deadline = parse_deadline(raw.get("deadline"), source, "deadline")
    stop_margin = _number(raw, "stop_margin", source, default=60.0)
    kill_margin = _number(raw, "kill_margin", source, default=10.0)
    for k, v in (("stop_margin", stop_margin), ("kill_margin", kill_margin)):
        if v < 0:
            raise ConfigError(f"must be >= 0 seconds, got {v!r}", source, k)
    report = raw.get("report", True)
    if not isinstance(report, bool):
        raise ConfigError(f"must be true or false, got {report!r}", source, "report")
    if kill_margin > stop_margin:
        raise ConfigError(f"must not exceed stop_margin ({stop_margin:g}), got {kill_margin!r}", source, "kill_margin")
    simulation = _simulation(raw.get("simulation"), pool, runner["type"], source)
    dask = _dask(raw.get("dask"), pool, source, base_dir)
    chain = raw.get("chain", False)
    if not isinstance(chain, bool):
        raise ConfigError(f"must be true or false, got {chain!r}", source, "chain")
    chain_max = _int(raw, "chain_max", source, default=10, minimum=1)
    stopper = raw.get("stopper")
    if stopper is not None:
        from .stoppers import from_config as stopper_from_config

        try:  # built once here: unknown names, settings and bad values fail before anything exists
            stopper_from_config(stopper, source, "stopper")
        except ConfigError:
            raise
        except Exception as e:  # noqa: BLE001 - a plug-in stopper's __init__ may raise anything
            raise ConfigError(f"the stopper cannot be built: {type(e).__name__}: {e} (value {stopper!r})", source,
                              "stopper") from None
    # the optimizer's settings: its signature, then its own check (built once, then discarded)
    from .optimizers import check_optimizer_settings, check_optimizer_settings_once

    label = opt_name if isinstance(opt_name, str) else None
    check_optimizer_settings(optimizer_obj, settings, source, label)
    check_optimizer_settings_once(optimizer_obj, space, settings, seed, source)
    warm_start = _warm_start(raw.get("warm_start"), space, source, base_dir)
    checkpoint_local = _str(raw, "checkpoint_local", source)
    keep_models = _keep_models(raw.get("keep_models"), source)
    objectives = _objectives(raw, optimizer_obj, opt_key, source)
    if objectives is not None:
        runner["loss_key"] = objectives.names[0]
    return Config(
        experiment=experiment, objective=objective, space=space, optimizer=opt_name, optimizer_settings=dict(settings),
        mode=mode, batch_size=batch_size, max_evals=max_evals, max_time=max_time, workers=workers, seed=seed,
        output=output, pool=pool, ranks_per_task=ranks_per_task, gpus=gpus, runner=RunnerConfig.of(runner),
        progress=progress,
        deadline=deadline, stop_margin=float(stop_margin), kill_margin=float(kill_margin), report=report,
        simulation=simulation, dask=dask, stopper=stopper, chain=chain, chain_max=chain_max, warm_start=warm_start,
        checkpoint_local=checkpoint_local, keep_models=keep_models, objectives=objectives, source=source,
        raw=dict(raw),
    )


def _objectives(raw: Mapping[str, Any], optimizer: Any, opt_key: str, source: str) -> Any:
    """``objectives`` and ``constraints`` (see :func:`emews._objectives.parse_objectives`); several
    objectives or any constraint need an optimizer that declares ``multi_objective``."""
    from ._objectives import parse_objectives

    spec = parse_objectives(raw.get("objectives"), raw.get("constraints"), source)
    if spec is not None and spec.needs_declaration and not getattr(optimizer, "multi_objective", False):
        what = f"{len(spec.names)} objectives" if spec.multi else "constraints"
        name = getattr(optimizer, "__qualname__", None) or repr(optimizer)
        raise ConfigError(f"the optimizer {name} cannot search with {what} (it does not declare multi_objective = "
                          f"True); use random, grid, ga or mbo, or one objective without constraints", source, opt_key)
    return spec


def _keep_models(value: Any, source: str) -> KeepModelsConfig | None:
    """``keep_models``: a mapping ``{count, by, mode}`` (or a bare count), checked."""
    if value is None or value is False:
        return None
    if isinstance(value, int) and not isinstance(value, bool):
        value = {"count": value}
    if not isinstance(value, Mapping):
        raise ConfigError(f"must be a mapping {{count: 5, by: loss}} or a count, got {value!r}", source, "keep_models")
    _check_keys(value, _KEEP_KEYS, source, "keep_models.")
    count = _int(value, "count", source, default=5, minimum=1, prefix="keep_models.")
    by = _str(value, "by", source, default="loss", prefix="keep_models.")
    mode = _str(value, "mode", source, default="min", choices=("min", "max"), prefix="keep_models.")
    return KeepModelsConfig(count=count, by=by, mode=mode)


def _gpus(gpus: Any, source: str) -> GpuConfig | None:
    """The ``gpus`` mapping, checked."""
    if gpus is None:
        return None
    if not isinstance(gpus, Mapping):
        raise ConfigError(f"must be a mapping like {{gpus_per_worker: 1}}, got {gpus!r}", source, "gpus")
    _check_keys(gpus, _GPU_KEYS, source, "gpus.")
    per_worker = _int(gpus, "gpus_per_worker", source, default=1, minimum=1, prefix="gpus.")
    per_gpu = _int(gpus, "workers_per_gpu", source, default=1, minimum=1, prefix="gpus.")
    if per_worker > 1 and per_gpu > 1:
        raise ConfigError(f"set gpus_per_worker or workers_per_gpu above 1, not both (got gpus_per_worker {per_worker}, "
                          f"workers_per_gpu {per_gpu})", source, "gpus")
    devices = gpus.get("devices")
    if devices is not None:
        if not isinstance(devices, list) or not devices:
            raise ConfigError(f"must be a non-empty list of device ids, got {devices!r}", source, "gpus.devices")
        for i, d in enumerate(devices):
            ok = (isinstance(d, int) and not isinstance(d, bool) and d >= 0) or (isinstance(d, str) and d.strip()
                                                                               and "," not in d)
            if not ok:
                raise ConfigError(f"must be a device index >= 0 or a device UUID string (one per item), got {d!r}",
                                  source, f"gpus.devices[{i}]")
        if len(set(map(str, devices))) != len(devices):
            raise ConfigError(f"lists a device twice: {devices!r}", source, "gpus.devices")
        if per_worker > len(devices):
            raise ConfigError(f"gpus_per_worker {per_worker} needs at least as many devices, got {devices!r}", source,
                              "gpus.gpus_per_worker")
    return GpuConfig(per_worker, per_gpu, list(devices) if devices is not None else None)


def _warm_start(value: Any, space: Space, source: str, base_dir: Path | None) -> Any:
    """``warm_start: PATH`` read into earlier results (relative to the config file); one warning
    counts the rows skipped."""
    if value is None:
        return None
    if not isinstance(value, str) or not value:
        raise ConfigError(f"must be a path (an emews experiment directory, its results.csv or an mlrMBO restart "
                          f"CSV), got {value!r}", source, "warm_start")
    from .formats import read_warm_start

    p = Path(value)
    if base_dir is not None and not p.is_absolute():
        p = base_dir / p
    warm = read_warm_start(p, space, source, "warm_start")
    if warm.skipped:
        log.warning("%s: warm_start: %d of %d row(s) of %s skipped (outside the space or unknown names), e.g. %s",
                    source, warm.skipped, warm.skipped + len(warm.results), warm.path, "; ".join(warm.reasons))
    return warm


def _simulation(sim: Any, pool: str, runner_type: str, source: str) -> SimulationConfig | None:
    """The ``simulation`` mapping of ``pool: simulated``, checked as the pool will read it."""
    if sim is None and pool != "simulated":
        return None
    if sim is not None and pool != "simulated":
        raise ConfigError(f"is only used with pool: simulated (pool is {pool!r})", source, "simulation")
    from .workers._simulated import check_simulation

    check_simulation(sim, runner_type, source)
    return SimulationConfig(**dict(sim or {}))


DASK_KEYS = ("scheduler_file", "address", "cluster", "adapt", "connect_timeout", "resources")
_ADAPT_KEYS = {"minimum", "maximum", "idle"}


def _dask(d: Any, pool: str, source: str, base_dir: Path | None) -> dict | None:
    """The ``dask`` mapping of ``pool: dask``, checked: one way to the workers, a known cluster
    type, a scheduler file that exists, and ``distributed`` (and ``dask-jobqueue``) importable.
    Whether the scheduler file appears and the scheduler answers is checked by the launch (a
    bounded wait: the scheduler may be starting in the same job), before the experiment is
    created. A relative ``scheduler_file`` is relative to the config file's directory."""
    if d is None:
        d = {} if pool == "dask" else None
    if d is None:
        return None
    if pool != "dask":
        raise ConfigError(f"is only used with pool: dask (pool is {pool!r})", source, "dask")
    if not isinstance(d, Mapping):
        raise ConfigError(f"must be a mapping like {{scheduler_file: sched.json}}, got {d!r}", source, "dask")
    _check_keys(d, set(DASK_KEYS), source, "dask.")
    if importlib.util.find_spec("distributed") is None:
        raise ConfigError('pool: dask needs Dask distributed, which is not installed; install it with: '
                          'pip install "emews[dask]"', source, "pool")
    ways = [k for k in ("scheduler_file", "address", "cluster") if d.get(k) is not None]
    if len(ways) > 1:
        raise ConfigError(f"give one of scheduler_file, address or cluster, not {' and '.join(ways)}", source, "dask")
    out: dict[str, Any] = {}
    timeout = _number(d, "connect_timeout", source, default=30.0, positive=True, prefix="dask.")
    out["connect_timeout"] = timeout
    if d.get("scheduler_file") is not None:
        f = d["scheduler_file"]
        if not isinstance(f, str) or not f:
            raise ConfigError(f"must be a file path, got {f!r}", source, "dask.scheduler_file")
        path = Path(os.path.expanduser(f))
        if not path.is_absolute() and base_dir is not None:
            path = base_dir / path
        out["scheduler_file"] = str(path)
    if d.get("address") is not None:
        a = d["address"]
        if not isinstance(a, str) or ":" not in a:
            raise ConfigError(f"must be a scheduler address like tcp://host:8786, got {a!r}", source, "dask.address")
        out["address"] = a
    if d.get("cluster") is not None:
        c = d["cluster"]
        if not isinstance(c, Mapping) or "type" not in c:
            raise ConfigError(f"must be a mapping with a type (slurm, pbs, lsf, sge, local), got {c!r}", source,
                              "dask.cluster")
        from .workers.dask import CLUSTER_TYPES

        kind = c["type"]
        if kind not in CLUSTER_TYPES:
            close = difflib.get_close_matches(str(kind), list(CLUSTER_TYPES), n=1)
            hint = f"; did you mean {close[0]!r}?" if close else ""
            raise ConfigError(f"unknown cluster type {kind!r}{hint} (one of {', '.join(CLUSTER_TYPES)})", source,
                              "dask.cluster.type")
        if kind != "local" and importlib.util.find_spec("dask_jobqueue") is None:
            raise ConfigError(f'cluster type {kind!r} needs dask-jobqueue, which is not installed; install it with: '
                              'pip install "emews[dask]"', source, "dask.cluster.type")
        out["cluster"] = dict(c)
    if d.get("resources") is not None:  # what each task asks of its worker (Dask worker resources)
        r = d["resources"]
        if (not isinstance(r, Mapping) or not r or not all(isinstance(k, str) and k for k in r)
                or not all(isinstance(v, (int, float)) and not isinstance(v, bool) and v > 0 for v in r.values())):
            raise ConfigError(f"must be a mapping of resource names to positive amounts like {{GPU: 1}}, got {r!r}",
                              source, "dask.resources")
        out["resources"] = dict(r)
    if d.get("adapt") is not None:
        a = d["adapt"]
        if not isinstance(a, Mapping):
            raise ConfigError(f"must be a mapping like {{minimum: 0, maximum: 16}}, got {a!r}", source, "dask.adapt")
        if not ways or ways == ["cluster"]:
            _check_keys(a, _ADAPT_KEYS, source, "dask.adapt.")
            lo = _int(a, "minimum", source, default=0, minimum=0, prefix="dask.adapt.")
            hi = _int(a, "maximum", source, required=True, minimum=1, prefix="dask.adapt.")
            if lo > hi:
                raise ConfigError(f"minimum {lo} exceeds maximum {hi}", source, "dask.adapt")
            idle = _number(a, "idle", source, default=30.0, positive=True, prefix="dask.adapt.")
            out["adapt"] = {"minimum": lo, "maximum": hi, "idle": idle}
        else:
            raise ConfigError(f"adapt needs a cluster emews starts (dask.cluster or none); with {ways[0]} the workers "
                              "are started by you", source, "dask.adapt")
    return out


_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}
#: the latest deadline taken seriously (year 9999); later values are typos
LATEST_DEADLINE = 253402300799.0


def parse_deadline(value: Any, source: str = "<dict>", key: str = "deadline", now: float | None = None) -> float | bool | None:
    """A deadline as epoch seconds (or None: ask the batch system; False: none).

    Accepts epoch seconds, an ISO 8601 time (``2026-11-27T18:00``, local time unless it
    has an offset), or a time from now: ``+600``, ``+90m``, ``+2h``, ``+11h50m``.
    """
    import datetime as _dt
    import re
    import time as _time

    bad = f"must be epoch seconds, an ISO time like 2026-11-27T18:00, or +DURATION like +90m or +11h50m; got {value!r}"
    if value is None or value is False:
        return value
    if isinstance(value, _dt.datetime):  # YAML parses unquoted ISO times itself
        return value.timestamp()
    if isinstance(value, _dt.date):
        return _dt.datetime(value.year, value.month, value.day).timestamp()
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        if not math.isfinite(value) or not 0 < value <= LATEST_DEADLINE:
            raise ConfigError(bad, source, key)
        return float(value)
    if isinstance(value, str):
        text = value.strip()
        if text.startswith("+"):
            parts = re.findall(r"(\d+(?:\.\d+)?)\s*([smhd]?)", text[1:])
            if parts and re.fullmatch(r"(\s*\d+(?:\.\d+)?\s*[smhd]?)+\s*", text[1:]):
                seconds = sum(float(n) * _UNITS[u or "s"] for n, u in parts)
                return (_time.time() if now is None else now) + seconds
            raise ConfigError(bad, source, key)
        try:
            return _dt.datetime.fromisoformat(text).timestamp()
        except ValueError:
            pass
        try:
            return parse_deadline(float(text), source, key)
        except ValueError:
            pass
    raise ConfigError(bad, source, key)


def _load_space_file(value: Any, source: str, base_dir: Path | None) -> Space:
    if not isinstance(value, str) or not value:
        raise ConfigError(f"must be a file path, got {value!r}", source, "space_file")
    p = Path(value)
    if not p.is_absolute() and base_dir is not None:
        p = base_dir / p
    if not p.is_file():
        raise ConfigError(f"no such file {value!r} (looked at {str(p)!r})", source, "space_file")
    if p.suffix in (".R", ".r"):  # an mlrMBO parameter set (ParamHelpers): parsed, never run
        from .formats import read_r_params

        return read_r_params(p)
    try:
        if p.suffix == ".json":
            import json

            try:
                data = json.loads(_read_utf8(p, str(p)))
            except json.JSONDecodeError as e:
                raise SpaceError(f"invalid JSON at line {e.lineno}, column {e.colno}: {e.msg}", str(p)) from None
        else:
            try:
                data = load_yaml(_read_utf8(p, str(p)), str(p))
            except yaml.YAMLError as e:
                raise SpaceError(yaml_error_text(e), str(p)) from None
    except OSError as e:
        raise ConfigError(f"cannot read {value!r}: {e.strerror}", source, "space_file") from None
    # a list is a CANDLE Supervisor GA parameter file; a mapping is the `space:` form
    if isinstance(data, list):
        from .formats import supervisor_space

        return supervisor_space(data, str(p))
    return Space.from_dict(data, str(p), prefix="")
