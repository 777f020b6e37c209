"""The ``candle`` runner: a CANDLE model run the way Supervisor's ``model.sh`` / ``model_runner.py`` run it.

::

    worker ──▶ <workdir>/<task_id>/params.json, output/         (the run directory)
           ──▶ model: MODULE  → python -m emews.workers._candle_model MODULE ...  (run(params) in a child)
               command: [...] → the command + --name value ... flags (or the proposal as one JSON argument)
               env: CANDLE_DATA_DIR, CANDLE_DEFAULT_MODEL_FILE (and CANDLE_DEFAULT_MODEL), CANDLE_OUTPUT_DIR,
                    EXPID, RUNID, MODEL_RETURN, CUDA_VISIBLE_DEVICES (emews' GPU binding)
           ◀── per epoch: log lines "epoch N ... val_loss: x" (report_pattern), or history.txt's
               new entries while the model rewrites it → reports (early stopping)
           ◀── loss: the last "IMPROVE_RESULT <value>" line of the log, else result.txt, else history.txt
               (the last value of ``return``); NaN or none of them: a failed result saying which

Config (``runner:``)::

    type: candle
    model: nt3_baseline_keras2     # a module with run(params) (and optionally initialize_parameters), or
    command: [bash, "{config_dir}/train.sh"]   # a script / container command (the command runner's template)
    params: flags                  # command: --name value flags (default) or json (one argument)
    path: [models]                 # model: directories put first on sys.path (relative: to the config file)
    default_model: nt3_default_model.txt   # else $CANDLE_DEFAULT_MODEL_FILE, else $CANDLE_DEFAULT_MODEL
    data_dir: /data/candle         # CANDLE_DATA_DIR (default: the environment's)
    return: val_loss               # Supervisor's MODEL_RETURN: the history key that is the loss
    report_pattern: ...            # per-epoch lines (default: "epoch N ... <return>: x", any case)
    timeout: 3600                  # and kill_grace, env, workdir, retries as for the command runner

Each task gets ``experiment_id`` (the experiment's name), ``run_id`` (``run_<task id>``, with
``-<attempt>`` for a retry) and ``output_dir`` (``<task dir>/output``), as parameters of the
model (``model``) or as ``--experiment_id``/``--run_id``/``--output_dir`` flags (``command``, as
Supervisor's container path passes them). Supervisor's conventions kept: a string parameter
whose first space-separated word is a number is a list (``"500 100 50"``: ``runner_utils.
format_params``; a flag gets its words as separate arguments, as Supervisor's unquoted
``$FLAGS`` did); a model that wrote ``stop.marker`` (it stopped early) still gives its loss, the
marker's text in the result's ``stop_marker`` metric; a task emews stops gets a ``stop.marker``.
"""

from __future__ import annotations

import dataclasses
import json
import math
import re
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from ..errors import ConfigError
from ..task import DONE, STOPPED, Outcome, Task
from ._command import CommandRunner, _read_tail, check_command_spec, check_report_pattern
from ._runners import RUNNERS

__all__ = ["CandleRunner", "check_candle_spec", "candle_value", "MODEL_RETURNS", "RESULT_LINE"]

#: Supervisor's model_runner.get_model_return() choices
MODEL_RETURNS = ("loss", "val_loss", "val_corr", "val_acc")
#: the line a CANDLE model prints its result on (model_runner.py; model.sh takes the last one)
RESULT_LINE = re.compile(r"IMPROVE_RESULT\s*[:=]?\s*(\S+)")
DEFAULT_MODEL_VARS = ("CANDLE_DEFAULT_MODEL_FILE", "CANDLE_DEFAULT_MODEL")


def default_report_pattern(ret: str) -> str:
    """Per-epoch log lines: ``Epoch 3/10 ... val_loss: 0.12`` or ``epoch 3: val_loss=0.12``."""
    return rf"(?i)\bepoch\s*(?P<step>\d+)(?:/\d+)?\b.*?\b{re.escape(ret)}\s*[:=]\s*(?P<loss>[-+0-9.eE]+|nan|inf)"


def candle_value(value: Any) -> Any:
    """A proposal's value as Supervisor hands it to a model: a string whose first word is a
    number becomes a list of numbers (``runner_utils.format_params``)."""
    if isinstance(value, str):
        words = value.split(" ")
        if len(words) > 1:
            try:
                float(words[0])
            except ValueError:
                return value
            try:
                return [float(w) for w in words] if "." in words[0] else [int(w) for w in words]
            except ValueError:
                return value
    return value


def check_candle_spec(spec: dict, source: str, names: Sequence[str] | None = None,
                      base_dir: str | Path | None = None) -> None:
    """Validate (and normalize, in place) a ``type: candle`` runner mapping.

    Raises:
        ConfigError: naming the key and the value at fault.
    """
    base = Path(base_dir) if base_dir is not None else Path.cwd()
    model, command = spec.get("model"), spec.get("command")
    if (model is None) == (command is None):
        raise ConfigError("give model (a module with run(params)) or command (a script or container command), "
                          f"exactly one; got model={model!r}, command={command!r}", source, "runner.model")
    ret = spec.get("return", "val_loss")
    if not isinstance(ret, str) or not ret.isidentifier():
        raise ConfigError(f"must be a history key such as {', '.join(MODEL_RETURNS)}, got {ret!r}", source,
                          "runner.return")
    spec["return"] = ret
    how = spec.get("params", "flags")
    if how not in ("flags", "json"):
        raise ConfigError(f"must be flags or json, got {how!r}", source, "runner.params")
    spec["params"] = how
    for key in ("default_model", "data_dir"):
        v = spec.get(key)
        if v is None:
            continue
        p = Path(v) if isinstance(v, str) and v else None
        if p is None:
            raise ConfigError(f"must be a path, got {v!r}", source, f"runner.{key}")
        p = p if p.is_absolute() else base / p
        if key == "default_model" and not p.is_file():
            raise ConfigError(f"no such file {v!r} (looked at {str(p)!r})", source, "runner.default_model")
        if key == "data_dir" and not p.is_dir():
            raise ConfigError(f"no such directory {v!r} (looked at {str(p)!r})", source, "runner.data_dir")
        spec[key] = str(p.resolve())
    dirs = spec.get("path") or []
    dirs = [dirs] if isinstance(dirs, str) else dirs
    if not isinstance(dirs, list) or not all(isinstance(d, str) and d for d in dirs):
        raise ConfigError(f"must be a directory or a list of directories, got {spec.get('path')!r}", source,
                          "runner.path")
    resolved = []
    for d in dirs:
        p = Path(d) if Path(d).is_absolute() else base / d
        if not p.is_dir():
            raise ConfigError(f"no such directory {d!r} (looked at {str(p)!r})", source, "runner.path")
        resolved.append(str(p.resolve()))
    spec["path"] = resolved
    if model is not None:
        if not isinstance(model, str) or not all(part.isidentifier() for part in model.split(".")):
            raise ConfigError(f"must be a module name (e.g. nt3_baseline_keras2), got {model!r}", source,
                              "runner.model")
        import importlib.machinery

        top = model.split(".")[0]
        if importlib.machinery.PathFinder.find_spec(top, resolved + [str(base)] + sys.path) is None:
            raise ConfigError(f"no module {model!r} in {resolved or [str(base)]} or on the import path", source,
                              "runner.model")
        spec["command"] = ["{python}", "-m", "emews.workers._candle_model", model]
    check_command_spec(spec, source, names, base)  # the template, env, timeout, report keys
    if spec.get("report_pattern") is None:
        spec["report_pattern"] = default_report_pattern(ret)
    else:
        check_report_pattern(spec["report_pattern"], source)


class CandleRunner(CommandRunner):
    """Runs a CANDLE model per task with Supervisor's conventions (see the module docstring)."""

    def __init__(self, spec: dict, gpu: str | None = None, comm: Any = None):
        super().__init__(spec, gpu=gpu, comm=comm)
        self.use_result_file = False  # the result comes from the log / result.txt / history.txt
        self.model = spec.get("model")
        self.params_as = spec.get("params", "flags")
        self.ret = spec.get("return", "val_loss")
        self.path = list(spec.get("path") or [])
        self.experiment_id = str(spec.get("experiment_id") or "experiment")
        default_model = spec.get("default_model") or next(
            (self.env[v] for v in DEFAULT_MODEL_VARS if self.env.get(v)), None)
        self.default_model = default_model
        self._history_seen: tuple[int, int] | None = None
        if spec.get("data_dir"):
            self.env["CANDLE_DATA_DIR"] = spec["data_dir"]

    def run_id(self, task: Task) -> str:
        return f"run_{task.id}" if task.attempt == 0 else f"run_{task.id}-{task.attempt}"

    def _ids(self, task: Task) -> dict[str, str]:
        ids = {"experiment_id": self.experiment_id, "run_id": self.run_id(task),
               "output_dir": str(self.task_dir(task) / "output")}
        ckpt = self.checkpoint_dir(task)
        if ckpt is not None:  # candle_lib's convention: ckpt_directory (with ckpt_restart_mode: auto)
            ids["ckpt_directory"] = str(ckpt)
        return ids

    def _argv(self, task: Task, values: Mapping[str, Any]) -> list[str]:
        argv = super()._argv(task, values)
        if self.model is not None:
            return argv + ["--params", str(values["params_file"]), "--return", self.ret,
                           *[a for d in [*self.path, self.config_dir] for a in ("--path", d)]]
        proposal = {**task.params, **self._ids(task)}
        if self.params_as == "json":
            return argv + [json.dumps(proposal, default=str)]
        for k, v in proposal.items():
            words = str(v).split() if isinstance(v, str) else [str(v)]  # str(True) is "True", as Python writes it
            argv += [f"--{k}", *words]
        return argv

    def _env(self, task: Task, d: Path, env: dict[str, str]) -> dict[str, str]:
        ids = self._ids(task)
        Path(ids["output_dir"]).mkdir(parents=True, exist_ok=True)
        env.update(EXPID=ids["experiment_id"], RUNID=ids["run_id"], CANDLE_OUTPUT_DIR=ids["output_dir"],
                   MODEL_RETURN=self.ret)
        if self.default_model:
            env.update({v: self.default_model for v in DEFAULT_MODEL_VARS})
        return env

    def _poll(self, d: Path, trial: Any) -> None:
        """Each new epoch in ``history.txt`` (rewritten by the model as it trains) is a report,
        unless a log line reported that epoch already."""
        p = d / "history.txt"
        try:
            st = p.stat()
        except OSError:
            return
        if (st.st_mtime_ns, st.st_size) == self._history_seen:
            return
        self._history_seen = (st.st_mtime_ns, st.st_size)
        try:
            h = json.loads(p.read_text())
        except (OSError, ValueError):  # being written: read it at the next look
            self._history_seen = None
            return
        values = h.get(self.ret) if isinstance(h, dict) else None
        if not isinstance(values, list):
            return
        last = trial.last_step or 0
        for epoch, v in enumerate(values, 1):
            if epoch <= last:
                continue
            try:
                loss = float(v)
            except (TypeError, ValueError):
                loss = math.nan
            trial.report(epoch, loss)
            if trial.stopped:
                return

    def run(self, task: Task, channel: Any = None) -> Outcome:
        self._history_seen = None
        d = self.task_dir(task)
        if (d / "stop.marker").exists():  # a stale marker of an earlier run of this directory
            (d / "stop.marker").unlink()
        o = super().run(task, channel)
        marker = d / "stop.marker"
        if o.status == STOPPED:
            try:
                marker.write_text(f"stopped by emews: {o.error or 'early stopping'}\n")
            except OSError:
                pass
        elif marker.exists():
            text = marker.read_text(errors="replace").strip()
            o = dataclasses.replace(o, metrics={**o.metrics, "stop_marker": text or "stop.marker"})
        return o

    def _from_stdout(self, path: Path) -> Outcome:
        d = path.parent
        text = _read_tail(path)
        for line in reversed(text.splitlines()):
            m = RESULT_LINE.search(line)
            if m:
                return _value(m.group(1), f"the last IMPROVE_RESULT line of {path} ({line.strip()!r})")
        result_txt = d / "result.txt"
        if result_txt.is_file():
            return _value(result_txt.read_text(errors="replace").strip(), f"{result_txt}")
        history = d / "history.txt"
        if history.is_file():
            try:
                h = json.loads(history.read_text())
                values = h[self.ret]
                return _value(values[-1] if isinstance(values, list) else values, f"{history}[{self.ret!r}]")
            except (ValueError, KeyError, IndexError, TypeError) as e:
                return Outcome.failed(f"no IMPROVE_RESULT line in {path}, no result.txt, and {history} holds no "
                                      f"{self.ret!r} values ({type(e).__name__}: {e})")
        return Outcome.failed(f"the model printed no IMPROVE_RESULT line (in {path}) and wrote neither result.txt nor "
                              f"history.txt in {d}")


def _value(text: Any, where: str) -> Outcome:
    try:
        v = float(text)
    except (TypeError, ValueError):
        return Outcome.failed(f"{where}: {text!r} is not a number")
    if math.isnan(v):
        return Outcome.failed(f"{where}: the model's result is NaN (Supervisor's failure value)")
    if math.isinf(v):
        return Outcome.failed(f"{where}: the model's result is {v!r}")
    return Outcome(DONE, loss=v)


RUNNERS["candle"] = CandleRunner
