"""Optimizers: the base classes, the built-ins and the name registry.

Built-in names: ``random``, ``grid``, ``mbo`` (model-based, scikit-optimize surrogates),
``ga`` (genetic algorithm on DEAP), ``pbt`` (population-based training: members continue or
copy each other's checkpoints, :mod:`._pbt`), ``upf`` (the parameter sets of a file, as given) and ``eqpy``
(an unchanged EMEWS EQ/Py algorithm module, hosted in a thread: :mod:`._eqpy`). Any
other optimizer is named ``package.module:Name`` where
``Name`` is an :class:`Optimizer` subclass (ask/tell), a :class:`ResidentOptimizer` subclass,
or a function ``run(queues, space, seed=None, **settings)`` (resident loop).
"""

from __future__ import annotations

import difflib
import importlib
import inspect
from typing import Any

from .._imports import import_object
from ..errors import ConfigError, OptimizerError
from ._base import Optimizer, ResidentOptimizer
from ._grid import GridSearch
from ._random import RandomSearch
from ._settings import accepted_settings, check_optimizer, check_optimizer_settings, check_optimizer_settings_once

__all__ = ["Optimizer", "ResidentOptimizer", "RandomSearch", "GridSearch", "resolve", "BUILTIN", "style_of",
           "resolve_for_config", "accepted_settings", "check_optimizer_settings", "check_optimizer_settings_once",
           "check_optimizer"]

#: built-in optimizer names -> "module:attribute" (imported lazily: DEAP and scikit-optimize
#: are only loaded when used)
BUILTIN = {
    "random": "emews.optimizers._random:RandomSearch",
    "grid": "emews.optimizers._grid:GridSearch",
    "mbo": "emews.optimizers.mbo:MBO",
    "ga": "emews.optimizers.ga:GA",
    "ga-steady": "emews.optimizers.ga:SteadyStateGA",
    "upf": "emews.optimizers._upf:UPF",
    "eqpy": "emews.optimizers._eqpy:EQPy",
    "pbt": "emews.optimizers._pbt:PBT",
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
