"""emews: EMEWS-style hyperparameter optimization, from a laptop to an MPI batch job.

A resident optimizer (model-based, genetic, random, grid or your own Python class) runs in
its own process and exchanges batches of parameters and their losses with a worker pool
through an out/in queue pair. See README.md.
"""

from __future__ import annotations

from . import _childsig  # noqa: F401 - first: a spawned child asks for the parent-death signal before its imports
from .api import run_config, search
from .config import Config, load_config, parse_config
from .errors import ConfigError, EmewsError, ObjectiveError, OptimizerError, SpaceError, StopSearch
from .optimizers import Optimizer, ResidentOptimizer
from .queues import OptimizerQueues
from .results import Results
from .space import Bool, Categorical, Constant, Dimension, Int, Ordinal, Real, Space
from .task import Result, Task

__version__ = "0.1.0"

__all__ = [
    "search", "run_config", "Config", "load_config", "parse_config",
    "EmewsError", "ConfigError", "SpaceError", "ObjectiveError", "OptimizerError", "StopSearch",
    "Optimizer", "ResidentOptimizer", "OptimizerQueues", "Results",
    "Space", "Dimension", "Real", "Int", "Ordinal", "Categorical", "Bool", "Constant",
    "Task", "Result", "__version__",
]
