"""Optimizers: the base classes, the built-ins and the name registry.

Built-in names: ``random``, ``grid``, ``mbo`` (model-based, scikit-optimize surrogates),
``ga`` (genetic algorithm on DEAP) and ``upf`` (the parameter sets of a file, as given). Any
other optimizer is named ``package.module:Name`` where
``Name`` is an :class:`Optimizer` subclass (ask/tell), a :class:`ResidentOptimizer` subclass,
or a function ``run(queues, space, seed=None, **settings)`` (resident loop).
"""

from __future__ import annotations

import difflib
import importlib
import inspect
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from .._imports import import_object
from ..errors import ConfigError, OptimizerError
from ._base import Optimizer, ResidentOptimizer
from ._grid import GridSearch
from ._random import RandomSearch

__all__ = ["Optimizer", "ResidentOptimizer", "RandomSearch", "GridSearch", "resolve", "BUILTIN", "style_of",
           "resolve_for_config", "check_optimizer_settings_once"]

#: built-in optimizer names -> "module:attribute" (imported lazily: DEAP and scikit-optimize
#: are only loaded when used)
BUILTIN = {
    "random": "emews.optimizers._random:RandomSearch",
    "grid": "emews.optimizers._grid:GridSearch",
    "mbo": "emews.optimizers.mbo:MBO",
    "ga": "emews.optimizers.ga:GA",
    "ga-steady": "emews.optimizers.ga:SteadyStateGA",
    "upf": "emews.optimizers._upf:UPF",
}


def resolve(name_or_obj: Any) -> Any:
    """Turn an optimizer name, ``module:Class`` path or object into the optimizer object."""
    if not isinstance(name_or_obj, str):
        return name_or_obj
    target = BUILTIN.get(name_or_obj)
    if target is None and ":" not in name_or_obj:
        raise OptimizerError(
            f"unknown optimizer {name_or_obj!r}; built-in ones are {', '.join(BUILTIN)}, "
            "or name your own as 'package.module:Class'"
        )
    try:
        return import_object(target or name_or_obj, "optimizer")
    except (ImportError, ValueError) as e:
        raise OptimizerError(str(e)) from None


def style_of(obj: Any) -> str:
    """``"ask-tell"`` or ``"resident"`` for an optimizer object (class or function)."""
    if inspect.isclass(obj):
        if issubclass(obj, ResidentOptimizer):
            return "resident"
        if issubclass(obj, Optimizer) or (hasattr(obj, "ask") and hasattr(obj, "tell")):
            return "ask-tell"
        if hasattr(obj, "run"):
            return "resident"
    elif callable(obj):
        return "resident"
    raise OptimizerError(
        f"{obj!r} is not an optimizer: expected an emews.Optimizer subclass (ask/tell), an "
        "emews.ResidentOptimizer subclass, or a function run(queues, space, seed=None, **settings)"
    )


def _missing_attribute_hint(path: str) -> str:
    """``; did you mean 'mod:Name'?`` for ``mod:Nmae`` when the module imports and has a close name."""
    mod_name, _, attr = path.partition(":")
    try:
        mod = importlib.import_module(mod_name)
    except Exception:  # noqa: BLE001 - the hint is optional
        return ""
    head, _, last = attr.rpartition(".")
    owner: Any = mod
    for part in filter(None, head.split(".")):
        owner = getattr(owner, part, None)
        if owner is None:
            return ""
    names = [n for n in dir(owner) if not n.startswith("_")]
    close = difflib.get_close_matches(last, names, n=1, cutoff=0.6)
    if not close:
        return f"; {mod_name!r} defines: {', '.join(sorted(n for n in names if inspect.isclass(getattr(owner, n, None)) or inspect.isfunction(getattr(owner, n, None)))[:12]) or 'nothing usable'}"
    fixed = f"{mod_name}:{head + '.' if head else ''}{close[0]}"
    return f"; did you mean {fixed!r}?"


def resolve_for_config(name_or_obj: Any, source: str | None, key: str) -> Any:
    """:func:`resolve` for a config: an unknown name, a module or class that cannot be found,
    or an object that is no optimizer is a :class:`~emews.errors.ConfigError` naming the file,
    the key and the value (with a did-you-mean), raised before anything is created."""
    try:
        obj = resolve(name_or_obj)
    except OptimizerError as e:
        hint = _missing_attribute_hint(name_or_obj) if isinstance(name_or_obj, str) and ":" in name_or_obj else ""
        raise ConfigError(f"{e}{hint}", source, key) from None
    if not inspect.isclass(obj) and not inspect.isfunction(obj) and not inspect.ismethod(obj) \
            and (hasattr(obj, "ask") or hasattr(obj, "run")):
        cls = type(obj).__qualname__
        raise ConfigError(f"got an optimizer instance ({cls} object); pass the class itself ({cls}) and its settings "
                          "separately (emews.search(..., optimizer=" + cls + ", settings={...})): emews builds it in "
                          "the optimizer's own process with the search's space and seed", source, key)
    try:
        style_of(obj)
    except OptimizerError as e:
        raise ConfigError(str(e), source, key) from None
    return obj


_NAMED = re.compile(r"\b([A-Za-z_]\w*)\s*=")


def _setting_named(message: str, settings: Mapping[str, Any]) -> str | None:
    """The setting a message is about: the first ``name=`` in it that is a setting given."""
    for m in _NAMED.finditer(message):
        if m.group(1) in settings:
            return m.group(1)
    for k in settings:  # else any setting named in quotes
        if f"{k!r}" in message:
            return str(k)
    return None


def check_optimizer_settings_once(optimizer: Any, space: Any, settings: Mapping[str, Any], seed: int | None,
                                  source: str | None, prefix: str = "optimizer.settings") -> None:
    """Run the optimizer's declared check (``check_settings``, see
    :class:`~emews.optimizers.Optimizer`) in this process, turning what it raises into a
    :class:`~emews.errors.ConfigError` naming ``source``, ``optimizer.settings.<name>`` and
    the value. An optimizer without ``check_settings`` (a plain function) has only its
    signature checked, elsewhere."""
    check = getattr(optimizer, "check_settings", None)
    if check is None or not callable(check):
        return
    try:
        check(space, dict(settings), seed)
    except ConfigError as e:
        key = e.key or ""
        if e.source is not None and e.source != source:  # a file a setting names (an initial population)
            name = key.rpartition(".")[2] if key.startswith(prefix + ".") else None
            if name not in settings:
                name = next((k for k, v in settings.items() if isinstance(v, str) and Path(v) == Path(e.source)), None)
            text = str(e)
            if key.startswith(prefix + "."):  # the file's own error already names the setting: once is enough
                text = f"{e.source}: " + text.removeprefix(f"{e.source}: ").removeprefix(f"{key}: ")
            raise ConfigError(text, source, f"{prefix}.{name}" if name else prefix) from None
        text = str(e)
        if key and text.startswith(f"{key}: "):
            text = text[len(key) + 2:]
        if not key.startswith(prefix):
            key = f"{prefix}.{key}" if key else (f"{prefix}.{_setting_named(text, settings)}"
                                                  if _setting_named(text, settings) else prefix)
        raise ConfigError(text, source, key) from None
    except Exception as e:  # noqa: BLE001 - a plug-in's __init__ may raise anything
        text = str(e.args[0]) if isinstance(e, KeyError) and e.args else str(e)
        if not isinstance(e, (ValueError, TypeError, KeyError)):
            text = f"the optimizer cannot be built with these settings: {type(e).__name__}: {text}"
        name = _setting_named(text, settings)
        if name is not None and repr(settings[name]) not in text:
            text += f" (value {settings[name]!r})"
        raise ConfigError(text, source, f"{prefix}.{name}" if name else prefix) from None
