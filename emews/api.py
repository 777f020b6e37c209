"""The notebook API (:func:`search`) and the config runner shared with ``python -m emews.run``."""

from __future__ import annotations

import datetime
import logging
import math
import os
import sys
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import yaml

from . import _checks, _pickling
from .config import LATEST_DEADLINE, Config, parse_config
from .driver import Driver, SearchSettings
from .errors import ConfigError, ObjectiveError, OptimizerError
from .experiment import open_experiment
from .optimizers import resolve
from .results import Results
from .space import Space

__all__ = ["search", "run_config", "launched_under_mpi", "batch_deadline"]

log = logging.getLogger("emews")

# World-size variables set by MPI launchers: MPICH/Hydra and PMI-2 srun, Open MPI, PMIx,
# MVAPICH, IBM jsrun, and Slurm's srun step (set for srun steps only, not the batch script).
_MPI_SIZE_VARS = ("PMI_SIZE", "OMPI_COMM_WORLD_SIZE", "PMIX_SIZE", "MV2_COMM_WORLD_SIZE", "JSM_NAMESPACE_SIZE",
                  "SLURM_STEP_NUM_TASKS")


def launched_under_mpi() -> int:
    """The world size an MPI launcher announced in the environment (1 when none did)."""
    for var in _MPI_SIZE_VARS:
        v = os.environ.get(var)
        if v and v.isdigit():
            return int(v)
    return 1


def batch_deadline(environ: Mapping[str, str] | None = None) -> float | None:
    """The batch job's end time as the scheduler announces it (Slurm's ``SLURM_JOB_END_TIME``,
    epoch seconds), or None."""
    env = os.environ if environ is None else environ
    v = env.get("SLURM_JOB_END_TIME")
    if not v:
        return None
    try:
        t = float(v)
    except ValueError:
        t = math.nan
    if not (math.isfinite(t) and 0 < t <= LATEST_DEADLINE):
        log.warning("ignoring SLURM_JOB_END_TIME=%r: not epoch seconds", v)
        return None
    return t


def _settings_from_config(cfg: Config) -> SearchSettings:
    deadline, source = cfg.deadline, "deadline"
    if isinstance(deadline, float) and deadline <= time.time():  # a typo would "resume" forever, doing nothing
        when = datetime.datetime.fromtimestamp(deadline).isoformat(timespec="seconds")
        raise ConfigError(f"is in the past ({when}); give the job's end, e.g. --deadline +11h50m", cfg.source, "deadline")
    if deadline is None:
        deadline, source = batch_deadline(), "Slurm job end (SLURM_JOB_END_TIME)"
    elif deadline is False:
        deadline = None
    optimizer = resolve(cfg.optimizer)
    _checks.check_optimizer(optimizer, cfg)  # settings against its signature, before any directory exists
    return SearchSettings(
        space=cfg.space,
        optimizer=optimizer,
        optimizer_settings=cfg.optimizer_settings,
        max_evals=cfg.max_evals,
        max_time=cfg.max_time,
        mode=cfg.mode,
        batch_size=cfg.batch_size,
        seed=cfg.seed,
        retries=cfg.runner.get("retries", 0),
        experiment=cfg.experiment,
        config=cfg.raw,
        progress_every=cfg.progress or None,
        deadline=deadline,
        deadline_source=source,
        stop_margin=cfg.stop_margin,
        kill_margin=cfg.kill_margin,
        live_progress=bool(cfg.progress) and _stderr_is_terminal(),
        report=cfg.report,
    )


def _stderr_is_terminal() -> bool:
    try:
        return sys.stderr.isatty()
    except (AttributeError, ValueError):
        return False


def _runner_spec(cfg: Config, directory: Path) -> dict:
    spec = {k: v for k, v in cfg.runner.items() if k != "retries"}
    obj = spec.get("objective")
    if obj is not None and not isinstance(obj, (str, bytes)):
        try:
            spec["objective"] = _pickling.dumps(obj)
        except Exception as e:  # noqa: BLE001 - pickling can fail in many ways
            name = getattr(obj, "__qualname__", repr(obj))
            raise ObjectiveError(f"cannot send the objective {name} to the workers: {type(e).__name__}: {e}") from e
    spec.setdefault("workdir", str(directory / "tasks"))
    return spec


def write_config_copy(cfg: Config, directory: Path) -> None:
    raw = {k: v for k, v in cfg.raw.items()}
    if not isinstance(raw.get("objective"), (str, type(None))):
        raw["objective"] = repr(raw["objective"])
    if isinstance(raw.get("space"), Space):
        raw["space"] = raw["space"].to_dict()
    try:
        text = yaml.safe_dump(raw, sort_keys=False)
    except yaml.YAMLError:
        text = yaml.safe_dump({k: repr(v) for k, v in raw.items()}, sort_keys=False)
    (directory / "config.yaml").write_text(f"# effective configuration (source: {cfg.source})\n" + text)


def run_config(cfg: Config, out: str | Path | None = None, *, resume: str = "auto", force: bool = False) -> Results:
    """Run a validated config on the local pool (``python -m emews.run`` without MPI).

    Args:
        out: the experiment directory (default ``cfg.output/cfg.experiment``).
        resume: ``auto`` (continue the experiment found there, else start it), ``resume``
            (one must be there) or ``fresh`` (always a new experiment).
        force: resume even though the config describes a different search.
    """
    from .workers import LocalPool

    if cfg.pool == "mpi":
        raise ConfigError("pool: mpi needs an MPI launch: mpiexec -n N python -m emews.run CONFIG", cfg.source, "pool")
    if cfg.ranks_per_task != 1:
        raise ConfigError(f"ranks_per_task {cfg.ranks_per_task} needs the MPI pool (mpiexec)", cfg.source, "ranks_per_task")
    settings = _settings_from_config(cfg)
    with open_experiment(cfg, out, resume, force) as exp:
        directory = exp.directory
        write_config_copy(cfg, directory)
        workers = cfg.workers or os.cpu_count() or 1
        pool = LocalPool(workers, _runner_spec(cfg, directory), cfg.gpus)
        try:
            return Driver(settings, pool, directory, exp.resume).run()
        except ObjectiveError as e:
            raise ObjectiveError(f"{cfg.source}: objective: {e} (results so far, if any, are in {directory})") from None
        finally:
            pool.shutdown(kill=True)  # a no-op after the driver's own shutdown; else no worker outlives the call


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
) -> Results:
    """Run a search on the local pool and return its :class:`~emews.results.Results`.

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
    }
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
    try:
        return run_config(cfg, resume="auto" if resume else "fresh")
    except (ObjectiveError, OptimizerError) as e:  # a spawned child may have found the script unguarded
        explained = _checks.explain_unguarded(e)
        if explained is e:
            raise
        raise explained from None
