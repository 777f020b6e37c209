"""The notebook API: :func:`search` (the same launch as ``python -m emews.run``)."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from . import _guard, _pickling
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
    warm_start: str | Path | None = None,
    keep_models: int | Mapping[str, Any] | None = None,
    checkpoint_local: str | None = None,
    objectives: Mapping[str, str] | list | None = None,
    constraints: Mapping[str, str] | None = None,
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
        seed: makes the optimizer's proposals repeatable: ``random`` and ``grid`` always,
            ``mbo``/``ga-steady`` in ``mode="batch"`` for the same ``batch_size``, ``ga`` in
            either mode; in async mode a learning optimizer follows the result arrival order,
            which timing decides (see the README's "Seeds").
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
            through ``fn(params, trial)`` or ``emews.report_step(step, loss)``.
        warm_start: earlier results to start from: an emews experiment directory, its
            ``results.csv`` or an mlrMBO restart CSV (``y,param...``), as the config's ``warm_start``.
        keep_models: keep the best final checkpoints (``trial.save``) in ``<experiment>/models``:
            a count or ``{"count": 5, "by": "loss", "mode": "min"}``, as the config's ``keep_models``.
        checkpoint_local: a node-local parent of ``trial.checkpoint_dir`` (``$TMPDIR``, ``/dev/shm``).
        objectives: several objectives, as the config's ``objectives``: ``{"val_loss": "min",
            "train_time": "min"}`` (metric names the objective's dict returns, in order; ``min``
            or ``max``). The results then carry the Pareto front (:meth:`Results.pareto`).
        constraints: bounds a feasible result meets, as the config's ``constraints``:
            ``{"gpu_mem_gb": "<= 40"}``.

    Example:
        >>> import emews
        >>> res = emews.search(lambda p: (p["x"] - 1) ** 2, {"x": {"type": "real", "low": -5, "high": 5}},
        ...                    max_evals=20, workers=2, seed=0)          # doctest: +SKIP
        >>> res.best["loss"] < 1                                         # doctest: +SKIP
        True
    """
    _guard.refuse_spawn_reimport()  # a worker re-importing an unguarded script: no second search
    _guard.refuse_unguarded_call()  # the script itself, before anything is created
    if isinstance(space, Space):
        space_obj = space
    else:
        space_obj = Space.from_dict(space, "search()", prefix="space.")
    if not isinstance(objective, str) and not callable(objective):
        raise ConfigError(f"must be a callable or 'pkg.module:function', got {objective!r}", "search()", "objective")
    # objects (objective, optimizer, stopper) are checked by parse_config like names, before anything exists
    raw: dict[str, Any] = {
        "experiment": experiment,
        "objective": objective,
        "space": space_obj.to_dict(),
        "optimizer": {"name": optimizer, "settings": dict(settings or {})},
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
    if objectives is not None:
        raw["objectives"] = dict(objectives) if isinstance(objectives, Mapping) else objectives
    if constraints is not None:
        raw["constraints"] = dict(constraints) if isinstance(constraints, Mapping) else constraints
    if keep_models is not None:
        raw["keep_models"] = dict(keep_models) if isinstance(keep_models, Mapping) else keep_models
    if checkpoint_local is not None:
        raw["checkpoint_local"] = checkpoint_local
    if simulation is not None:
        raw["simulation"] = dict(simulation)
    if dask is not None:
        raw["dask"] = dict(dask)
    if stopper is not None:
        raw["stopper"] = dict(stopper) if isinstance(stopper, Mapping) else stopper
    if warm_start is not None:
        raw["warm_start"] = str(warm_start)
    if raw["runner"].get("type") in ("command", "candle"):
        raw.pop("objective")
    cfg = parse_config(raw, "search()")
    cfg.space = space_obj
    # the journal keeps names, not objects
    if not isinstance(objective, str) and "objective" in cfg.raw:
        cfg.raw["objective"] = getattr(objective, "__qualname__", repr(objective))
        identity = _pickling.code_identity(objective)
        if identity is not None:  # shipped by value: a resume compares what it computes, not only its name
            cfg.raw["objective_code"] = identity
    if not isinstance(optimizer, str):
        cfg.raw["optimizer"] = {"name": getattr(optimizer, "__qualname__", repr(optimizer)), "settings": dict(settings or {})}
    if stopper is not None and not isinstance(stopper, (str, Mapping)):
        cfg.raw["stopper"] = getattr(stopper, "__qualname__", None) or type(stopper).__qualname__
    try:
        return launch(cfg, resume="auto" if resume else "fresh")
    except (ObjectiveError, OptimizerError) as e:  # a spawned child may have found the script unguarded
        explained = _guard.explain_unguarded(e)
        if explained is e:
            raise
        raise explained from None
