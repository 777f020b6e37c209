"""The notebook API: :func:`search` (the same launch as ``python -m emews.run``)."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from . import _checks
from .config import parse_config
from .errors import ConfigError, ObjectiveError, OptimizerError
from .launch import launch
from .results import Results
from .space import Space

__all__ = ["search"]


def search(
    objective: Callable[[dict], Any] | str,
    space: Space | Mapping[str, Any],
    optimizer: str | Any = "random",
    max_evals: int = 50,
    workers: int | None = None,
    seed: int | None = None,
    *,
    settings: Mapping[str, Any] | None = None,
    mode: str = "async",
    batch_size: int | None = None,
    max_time: float | None = None,
    retries: int = 0,
    output: str | Path = "runs",
    experiment: str = "search",
    runner: Mapping[str, Any] | None = None,
    progress: float = 0,
    resume: bool = False,
    report: bool = True,
    pool: str = "auto",
    simulation: Mapping[str, Any] | None = None,
    dask: Mapping[str, Any] | None = None,
    stopper: str | Mapping[str, Any] | Any | None = None,
) -> Results | None:
    """Run a search and return its :class:`~emews.results.Results`.

    It goes through the same launch as ``python -m emews.run`` (:func:`emews.launch.launch`):
    on the local pool, or, in a script started by ``mpiexec``/``srun`` with several ranks,
    on the MPI pool; there rank 0 gets the Results and every other rank gets ``None`` once
    the search is over (guard what follows with ``if res is not None``).

    Args:
        objective: ``fn(params) -> float | dict`` (may be defined in a notebook or be a
            closure: it is shipped to the workers by value), or ``"pkg.module:function"``.
        space: a :class:`~emews.space.Space` or its dict form.
        optimizer: a built-in name (``random``, ``grid``, ``mbo``, ``ga``), a
            ``"pkg.module:Class"`` path, or an optimizer class/function object.
        max_evals: evaluation budget.
        workers: worker processes (default: CPU count).
        seed: makes the optimizer's proposals repeatable.
        settings: the optimizer's settings.
        mode: ``"async"`` (refill each free worker at once) or ``"batch"``.
        batch_size: points per batch in batch mode (default: ``workers``).
        max_time: seconds after which no new evaluation starts.
        retries: extra attempts for a failed evaluation.
        output: parent directory of the experiment directory (journal, results.csv, best.json).
        experiment: experiment directory name (``search``, ``search-2``, ...).
        runner: runner settings, e.g. ``{"type": "isolated", "timeout": 60}``.
        progress: seconds between progress log lines (0: none).
        resume: continue ``output/experiment`` if it holds an experiment of the same search
            (else start it there); by default every call starts a new directory.
        report: write report.json, report.txt and the PNG plots (when matplotlib is
            installed) into the experiment directory at the end.
        pool: ``auto`` (MPI when launched with several ranks, else local), ``local``, ``mpi``,
            ``simulated`` (``workers`` virtual workers; see :mod:`emews.workers._simulated`) or
            ``dask`` (Dask workers that join and leave; see :mod:`emews.workers.dask`).
        simulation: with ``pool="simulated"``: the duration model, failure rate, stragglers
            and seed, e.g. ``{"duration": {"distribution": "normal", "mean": 60, "sd": 20}}``.
        dask: with ``pool="dask"``: ``{"scheduler_file": path}``, ``{"address": "tcp://host:8786"}``
            or ``{"cluster": {"type": "slurm", ...}, "adapt": {"minimum": 0, "maximum": 64}}``;
            none of them: a ``LocalCluster`` of ``workers`` processes.
        stopper: early stopping of tasks whose intermediate reports look bad: a name
            (``"asha"``), a mapping like the config's ``{"name": "asha", "max_resource": 27}``,
            or a :class:`~emews.stoppers.Stopper` class or instance. The objective reports
            through ``fn(params, trial)`` or ``emews.report(step, loss)``.

    Example:
        >>> import emews
        >>> res = emews.search(lambda p: (p["x"] - 1) ** 2, {"x": {"type": "real", "low": -5, "high": 5}},
        ...                    max_evals=20, workers=2, seed=0)          # doctest: +SKIP
        >>> res.best["loss"] < 1                                         # doctest: +SKIP
        True
    """
    _checks.refuse_spawn_reimport()  # a worker re-importing an unguarded script: no second search
    if isinstance(space, Space):
        space_obj = space
    else:
        space_obj = Space.from_dict(space, "search()", prefix="space.")
    raw: dict[str, Any] = {
        "experiment": experiment,
        "objective": "emews:search" if not isinstance(objective, str) else objective,
        "space": space_obj.to_dict(),
        "optimizer": {"name": optimizer if isinstance(optimizer, str) else "emews:search", "settings": dict(settings or {})},
        "mode": mode,
        "batch_size": batch_size,
        "max_evals": max_evals,
        "max_time": max_time,
        "workers": workers,
        "seed": seed,
        "output": str(output),
        "runner": {**dict(runner or {}), "retries": retries},
        "progress": progress,
        "report": report,
        "pool": pool,
    }
    if simulation is not None:
        raw["simulation"] = dict(simulation)
    if dask is not None:
        raw["dask"] = dict(dask)
    if isinstance(stopper, (str, Mapping)):
        raw["stopper"] = stopper if isinstance(stopper, str) else dict(stopper)
    if raw["runner"].get("type") == "command":
        raw.pop("objective")
    cfg = parse_config(raw, "search()")
    cfg.space = space_obj
    if not isinstance(objective, str):
        if not callable(objective):
            raise ConfigError(f"must be a callable or 'pkg.module:function', got {objective!r}", "search()", "objective")
        cfg.runner["objective"] = objective
        cfg.raw["objective"] = getattr(objective, "__qualname__", repr(objective))
    if not isinstance(optimizer, str):
        cfg.optimizer = optimizer
        cfg.raw["optimizer"] = {"name": getattr(optimizer, "__qualname__", repr(optimizer)), "settings": dict(settings or {})}
    if stopper is not None and not isinstance(stopper, (str, Mapping)):
        from .stoppers import from_config as stopper_from_config

        stopper_from_config(stopper, "search()", "stopper")
        cfg.stopper = stopper
        cfg.raw["stopper"] = getattr(stopper, "__qualname__", None) or type(stopper).__qualname__
    try:
        return launch(cfg, resume="auto" if resume else "fresh")
    except (ObjectiveError, OptimizerError) as e:  # a spawned child may have found the script unguarded
        explained = _checks.explain_unguarded(e)
        if explained is e:
            raise
        raise explained from None
