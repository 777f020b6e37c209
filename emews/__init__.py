"""emews: EMEWS-style hyperparameter optimization, from a laptop to an MPI batch job.

A resident optimizer (model-based, genetic, random, grid or your own Python class) runs in
its own process and exchanges batches of parameters and their losses with a worker pool
through an out/in queue pair. See README.md.

``import emews`` is cheap: the public names below are imported on first use (PEP 562), so
a spawned worker or the optimizer process pays only for the modules it really runs, and
nothing here pulls in matplotlib, torch, mpi4py, scikit-optimize or DEAP.
"""

from __future__ import annotations

from . import _childsig  # noqa: F401, I001 - first: a spawned child asks for the parent-death signal before its imports

import importlib
from typing import TYPE_CHECKING, Any

from .errors import ConfigError, EmewsError, ObjectiveError, OptimizerError, SpaceError, Stopped, StopSearch

__version__ = "0.1.0"

#: public name -> the module that defines it (imported on first access)
_LAZY = {
    "search": "api",
    "run_config": "launch",
    "launch": "launch",
    "Config": "config", "load_config": "config", "parse_config": "config",
    "Optimizer": "optimizers", "ResidentOptimizer": "optimizers",
    "OptimizerQueues": "queues",
    "Results": "results",
    "Space": "space", "Dimension": "space", "Real": "space", "Int": "space", "Ordinal": "space",
    "Categorical": "space", "Bool": "space", "Constant": "space",
    "Task": "task", "Result": "task", "Status": "task", "Report": "task",
    "Trial": "workers._trial", "report_step": "workers._trial", "current_trial": "workers._trial",
    "Stopper": "stoppers",
}

__all__ = [
    "search", "launch", "run_config", "Config", "load_config", "parse_config",
    "EmewsError", "ConfigError", "SpaceError", "ObjectiveError", "OptimizerError", "StopSearch", "Stopped",
    "Optimizer", "ResidentOptimizer", "OptimizerQueues", "Results",
    "Space", "Dimension", "Real", "Int", "Ordinal", "Categorical", "Bool", "Constant",
    "Task", "Result", "Status", "Report", "Trial", "report_step", "current_trial", "Stopper", "__version__",
]


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'emews' has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{module}", __name__), name)
    globals()[name] = value  # the next access is a plain attribute
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))


if TYPE_CHECKING:  # pragma: no cover - for type checkers and IDEs
    from .api import search
    from .config import Config, load_config, parse_config
    from .launch import launch, run_config
    from .optimizers import Optimizer, ResidentOptimizer
    from .queues import OptimizerQueues
    from .results import Results
    from .space import Bool, Categorical, Constant, Dimension, Int, Ordinal, Real, Space
    from .stoppers import Stopper
    from .task import Report, Result, Status, Task
    from .workers._trial import Trial, current_trial, report_step
