"""Optimizers: the base classes, the built-ins and the name registry.

Built-in names: ``random``, ``grid``, ``mbo`` (model-based, scikit-optimize surrogates),
``ga`` (genetic algorithm on DEAP), ``upf`` (the parameter sets of a file, as given) and ``eqpy``
(an unchanged EMEWS EQ/Py algorithm module, hosted in a thread: :mod:`._eqpy`). Any
other optimizer is named ``package.module:Name`` where
``Name`` is an :class:`Optimizer` subclass (ask/tell), a :class:`ResidentOptimizer` subclass,
or a function ``run(queues, space, seed=None, **settings)`` (resident loop).
"""

from __future__ import annotations

import inspect
from typing import Any

from .._imports import import_object
from ..errors import OptimizerError
from ._base import Optimizer, ResidentOptimizer
from ._grid import GridSearch
from ._random import RandomSearch

__all__ = ["Optimizer", "ResidentOptimizer", "RandomSearch", "GridSearch", "resolve", "BUILTIN", "style_of"]

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
