"""CANDLE ``*_default_model.txt`` files as the base parameters of an objective.

A Benchmarks model reads its defaults from a ConfigParser file (``[Global_Params]``,
``[Monitor_Params]``, ... with Python-literal values such as ``conv = [128, 20, 1]`` or
``learning_rate = None``); Supervisor's hyperparameters then override them. The objectives
here do the same when given a file:

* the parameter ``default_model`` (a path; e.g. a constant in the space), else
* the environment variable ``CANDLE_DEFAULT_MODEL`` (e.g. ``runner: {env: {...}}``), else
  ``CANDLE_DEFAULT_MODEL_FILE`` (the name Supervisor's ``model_runner.py`` reads).

The values are parsed with :func:`ast.literal_eval` (never executed; a value that is not a
literal is kept as its text). Keys the objective implements become its base parameters; the
others are listed once per process in a warning and in each result's ``default_model_ignored``
metric. A file for a model or mode the objective does not implement is refused with a
``ValueError`` (a failed evaluation naming the file, key and value) instead of training
another model: ``model_name`` must be the objective's, and the keys in :data:`REFUSED` switch
on behaviour that is not implemented.
"""

from __future__ import annotations

import ast
import configparser
import logging
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

__all__ = ["ENV", "check_model", "read_default_model", "with_default_model"]

ENV = "CANDLE_DEFAULT_MODEL"
#: the name CANDLE Supervisor's model_runner.py reads (accepted too)
ENV_SUPERVISOR = "CANDLE_DEFAULT_MODEL_FILE"
log = logging.getLogger("benchmarks.candle")

#: the model_name each objective implements (Benchmarks' spelling)
MODEL_NAMES = {"nt3": ("nt3",), "p1b1": ("p1b1",), "combo": ("combo",)}

#: key -> the only values implemented (a file or a parameter set with another value is refused)
FIXED: dict[str, dict[str, tuple[Any, ...]]] = {
    "nt3": {"out_activation": ("softmax",), "loss": ("categorical_crossentropy",), "add_noise": (False, 0),
            "ckpt_restart_mode": ("off",)},
    "p1b1": {"scaling": ("minmax",), "ckpt_restart_mode": ("off",)},
    "combo": {"loss": ("mse",), "scaling": ("std",), "cv": (1, 0), "gen": (False, 0), "ckpt_restart_mode": ("off",)},
}

#: keys whose mere presence means another model: key -> what it belongs to
REFUSED: dict[str, dict[str, str]] = {
    "nt3": {k: "NT3's abstention model (Pilot1/NT3/nt3_abstention_keras2.py, nt3_noise_model.txt)"
            for k in ("alpha", "alpha_scale_factor", "acc_gain", "abs_gain", "min_acc", "max_abs",
                      "init_abs_epoch", "task_list", "task_names")},
    "p1b1": {},
    "combo": {},
}

#: file and bookkeeping keys that never change the result (ignored without a warning)
QUIET = {"data_url", "output_dir", "save_path", "save", "metrics", "model_name", "experiment_id", "run_id",
         "ckpt_save_interval", "ckpt_checksum", "ckpt_directory", "ckpt_keep_mode", "ckpt_keep_limit",
         "ckpt_save_best", "ckpt_save_best_metric", "ckpt_skip_epochs", "ckpt_save_weights_only", "logfile"}

_WARNED: set[tuple[str, str]] = set()
_CACHE: dict[tuple[str, int, int], dict[str, Any]] = {}


def read_default_model(path: str | os.PathLike) -> dict[str, Any]:
    """All sections of a CANDLE default model file merged into one dict (keys lower-case)."""
    path = Path(path)
    try:
        st = path.stat()
    except OSError as e:
        raise ValueError(f"default model file {str(path)!r}: cannot read it ({e.strerror})") from None
    key = (str(path.resolve()), st.st_size, st.st_mtime_ns)
    if key in _CACHE:
        return dict(_CACHE[key])
    cp = configparser.ConfigParser(interpolation=None)
    try:
        cp.read_string(path.read_text(), source=str(path))
    except configparser.Error as e:
        raise ValueError(f"default model file {str(path)!r}: not a ConfigParser file: {e}") from None
    out: dict[str, Any] = {}
    for section in cp.sections():
        for k, text in cp.items(section):
            out[k] = _literal(text)
    _CACHE[key] = out
    return dict(out)


def _literal(text: str) -> Any:
    try:
        return ast.literal_eval(text.strip())
    except (ValueError, SyntaxError, MemoryError, RecursionError):
        return text.strip()


def check_model(params: Mapping[str, Any], model: str, source: str = "the parameters") -> None:
    """Refuse a parameter set (or default model file) for a model or mode ``model`` lacks."""
    name = params.get("model_name")
    if name is not None and str(name).strip().lower() not in MODEL_NAMES[model]:
        raise ValueError(f"{source}: invalid value for parameter 'model_name': {name!r} (benchmarks.candle.{model} "
                         f"implements model_name {MODEL_NAMES[model][0]!r} only; it will not train another model)")
    for k, what in REFUSED[model].items():
        if k in params:
            raise ValueError(f"{source}: parameter {k!r} (value {params[k]!r}) belongs to {what}, which "
                             f"benchmarks.candle.{model} does not implement")
    for k, allowed in FIXED[model].items():
        if k in params and not _among(params[k], allowed):
            raise ValueError(f"{source}: invalid value for parameter {k!r}: {params[k]!r} (benchmarks.candle.{model} "
                             f"implements only {' or '.join(repr(a) for a in allowed)})")


def _among(v: Any, allowed: tuple[Any, ...]) -> bool:
    return _norm(v) in {_norm(a) for a in allowed}


def _norm(x: Any) -> str:
    if isinstance(x, bool):
        return "true" if x else "false"
    return str(x).strip().strip("'\"").lower()


def with_default_model(params: Mapping[str, Any] | None, model: str, schema: Mapping[str, Any],
                       aliases: Mapping[str, str]) -> dict[str, Any]:
    """``params`` over the default model file's base parameters (when one is given).

    Returns a new dict; adds ``default_model_ignored`` (the file's keys not implemented,
    comma-separated) for the result. Raises ``ValueError`` for a file of another model/mode.
    """
    params = dict(params or {})
    path = params.pop("default_model", None) or os.environ.get(ENV) or os.environ.get(ENV_SUPERVISOR) or None
    check_model(params, model)
    if path is None:
        return params
    path = str(path)
    base = read_default_model(path)
    check_model(base, model, f"default model file {path!r}")
    implemented = set(schema) | set(aliases) | set(FIXED[model])
    ignored = sorted(k for k in base if k not in implemented and k not in QUIET)
    if ignored and (path, model) not in _WARNED:
        _WARNED.add((path, model))
        log.warning("default model file %s: benchmarks.candle.%s ignores %d key(s) it does not implement: %s",
                    path, model, len(ignored), ", ".join(ignored))
    merged = {k: v for k, v in base.items() if k in set(schema) | set(aliases)}
    # a proposal's key overrides the file's, also when spelled by its alias (drop / dropout)
    for k in list(merged):
        canon = aliases.get(k, k)
        if any(aliases.get(q, q) == canon for q in params):
            del merged[k]
    merged.update(params)
    merged["_default_model_ignored"] = ",".join(ignored)
    return merged
