"""The launch room: one function turns a validated config into a running search on a pool.

::

    python -m emews.run CONFIG ─┐                       ┌─ local:     LocalPool(workers)
                                ├─▶ launch(cfg, ...) ──▶┼─ mpi:       mpi_session() on every rank;
    emews.search(fn, space) ────┘   pick the pool        │             rank 0 drives, the other
                                    settings, experiment │             ranks serve tasks (None)
                                                         ├─ dask:      DaskPool (a scheduler, its workers)
                                    directory, Driver.run└─ simulated: SimulatedPool(workers), a
                                                                       simulated clock

Both entry points build a :class:`~emews.config.Config` and call :func:`launch`; nothing
else starts a search. The pool is chosen here (``pool: auto`` is MPI when an MPI launcher
started more than one process), never by a pool itself: ``emews.workers`` only holds pools
and runners.
"""

from __future__ import annotations

import dataclasses
import datetime
import logging
import os
import sys
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from . import _pickling
from .config import Config
from .driver import Driver, SearchSettings
from .errors import ConfigError, ObjectiveError
from .experiment import open_experiment
from .optimizers import check_optimizer, resolve
from .results import Results
from .journal import JOURNAL_NAME, Journal, read_journal
from .scheduler import announce_no_end, chain_depth, job_end, submit_chain
from .task import StopReason
from .space import Space

if TYPE_CHECKING:
    from .workers import OnReport

__all__ = ["launch", "run_config", "launched_under_mpi", "batch_deadline", "settings_from_config", "runner_spec",
           "write_config_copy"]

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
    """The batch job's end as its scheduler gives it (epoch seconds), or None; see
    :func:`emews.scheduler.job_end` (``SLURM_JOB_END_TIME``, then Slurm, PBS, LSF, Flux)."""
    return job_end(environ).time


def settings_from_config(cfg: Config) -> SearchSettings:
    """What the driver needs from a config (the optimizer resolved, the deadline decided)."""
    deadline, source = cfg.deadline, "deadline"
    if isinstance(deadline, float) and deadline <= time.time():  # a typo would "resume" forever, doing nothing
        when = datetime.datetime.fromtimestamp(deadline).isoformat(timespec="seconds")
        raise ConfigError(f"is in the past ({when}); give the job's end, e.g. --deadline +11h50m", cfg.source, "deadline")
    if deadline is None:  # asked once per session (so again on every resume): the job may be another one
        end = job_end()
        deadline, source = end.time, end.source
        if deadline is None:
            announce_no_end(end)
    elif deadline is False:
        deadline = None
    optimizer = resolve(cfg.optimizer)
    check_optimizer(optimizer, cfg)  # settings against its signature, a grid larger than the budget: before any directory exists
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
        stopper=cfg.stopper,
        warm_start=cfg.warm_start,
        keep_models=dict(cfg.keep_models) if cfg.keep_models is not None else None,
        objectives=cfg.objectives,
    )


def _stderr_is_terminal() -> bool:
    try:
        return sys.stderr.isatty()
    except (AttributeError, ValueError):
        return False


def runner_spec(cfg: Config, directory: Path) -> dict:
    """The runner settings every worker gets (an objective object shipped by value)."""
    spec = {k: v for k, v in cfg.runner.items() if k != "retries"}
    obj = spec.get("objective")
    if obj is not None and not isinstance(obj, (str, bytes)):
        try:
            spec["objective"] = _pickling.dumps(obj)
        except Exception as e:  # noqa: BLE001 - pickling can fail in many ways
            name = getattr(obj, "__qualname__", repr(obj))
            raise ObjectiveError(f"cannot send the objective {name} to the workers: {type(e).__name__}: {e}") from e
    spec.setdefault("workdir", str(directory / "tasks"))
    spec["checkpoints"] = str(directory / "checkpoints")  # trial.checkpoint_dir's shared place
    if cfg.checkpoint_local:
        spec["checkpoint_local"] = cfg.checkpoint_local
    return spec


def write_config_copy(cfg: Config, directory: Path) -> None:
    """``config.yaml`` in the experiment directory: the effective configuration."""
    import yaml

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


def _drive(cfg: Config, out: str | Path | None, resume: str, force: bool,
           make_pool: Callable[[dict, OnReport], Any]) -> Results:
    """Open the experiment directory, start the pool ``make_pool(runner_spec, on_report)`` (the
    driver gives its judge of reports), run the driver."""
    settings = settings_from_config(cfg)
    with open_experiment(cfg, out, resume, force) as exp:
        directory = exp.directory
        write_config_copy(cfg, directory)
        spec = runner_spec(cfg, directory)
        pools: list[Any] = []

        def start_pool(on_report: OnReport) -> Any:
            pool = make_pool(spec, on_report)
            pools.append(pool)
            pool.start()
            return pool

        try:
            driver = Driver(settings, start_pool, directory, exp.resume)
            results = driver.run()
            if cfg.chain:
                _chain(cfg, directory, driver)
            return results
        except ObjectiveError as e:
            raise ObjectiveError(f"{cfg.source}: objective: {e} (results so far, if any, are in {directory})") from None
        finally:
            for pool in pools:
                pool.shutdown(kill=True)  # a no-op after the driver's own shutdown; else no worker outlives the call


def _chain(cfg: Config, directory: Path, driver: Driver) -> None:
    """``chain``: a session stopped at the job's end (or its warning signal) with budget left
    submits the same job script again, to start after this job (logged and journaled)."""
    stop = driver.ledger.stop
    if stop is None or stop.reason is not StopReason.DEADLINE or driver.ledger.finished >= cfg.max_evals:
        log.info("chain: not resubmitted (%s)", stop or "finished")
        return
    depth = chain_depth()
    argv, outcome = submit_chain(depth, cfg.chain_max)
    log.warning("chain: %s%s", outcome, f": {' '.join(argv)}" if argv else "")
    journal = Journal(directory / JOURNAL_NAME)
    try:
        before = read_journal(directory)["meta"].get("chain") or []
        journal.set_meta(chain=[*before, {"time": time.time(), "job": os.environ.get("SLURM_JOB_ID"), "depth": depth,
                                          "command": argv, "outcome": outcome}])
    finally:
        journal.close()


def launch(cfg: Config, out: str | Path | None = None, *, resume: str = "auto", force: bool = False) -> Results | None:
    """Run a validated config on the pool it asks for; the one way a search starts.

    ``pool: auto`` is the MPI pool when an MPI launcher started more than one process
    (``mpiexec``, ``srun``...), else the local pool. Under MPI every rank calls this: rank 0
    drives the search and returns its :class:`~emews.results.Results`, the other ranks
    serve tasks and return ``None``.

    Args:
        cfg: the config (:func:`~emews.config.load_config` or :func:`~emews.config.parse_config`).
        out: the experiment directory (default ``cfg.output/cfg.experiment``).
        resume: ``auto`` (continue the experiment found there, else start it), ``resume``
            (one must be there) or ``fresh`` (always a new experiment).
        force: resume even though the config describes a different search.

    Raises:
        ConfigError: bad input (naming the file, key and value), a locked or mismatched
            experiment directory.
        ObjectiveError: the objective cannot be loaded by the workers.
        OptimizerError: the optimizer failed (the results so far are written).
    """
    size = launched_under_mpi()
    if cfg.pool == "simulated":
        if size > 1:
            raise ConfigError(f"pool: simulated runs in one process (virtual workers), but the launcher started {size} "
                              "processes; run it without mpiexec/srun", cfg.source, "pool")
        return _launch_simulated(cfg, out, resume, force)
    if cfg.pool == "dask":
        if size > 1:
            raise ConfigError(f"pool: dask runs the search in one process (the workers are Dask workers), but the "
                              f"launcher started {size} processes; start it without mpiexec/srun (start the Dask "
                              "workers with `dask worker`)", cfg.source, "pool")
        return _launch_dask(cfg, out, resume, force)
    if cfg.pool == "mpi" or (cfg.pool == "auto" and size > 1):
        return _launch_mpi(cfg, out, resume, force, size)
    if size > 1:  # every rank would run a whole search of its own
        raise ConfigError(f"pool: local, but the launcher started {size} processes; use pool: mpi (or auto) "
                          "under mpiexec/srun, or start a single process", cfg.source, "pool")
    return _launch_local(cfg, out, resume, force)


#: the former name of :func:`launch` (it took the local pool only)
run_config = launch


def _launch_local(cfg: Config, out: str | Path | None, resume: str, force: bool) -> Results:
    from .workers import LocalPool

    if cfg.ranks_per_task != 1:
        raise ConfigError(f"ranks_per_task {cfg.ranks_per_task} needs the MPI pool (mpiexec)", cfg.source, "ranks_per_task")
    workers = cfg.workers or os.cpu_count() or 1
    return _drive(cfg, out, resume, force, lambda spec, on_report: LocalPool(workers, spec, cfg.gpus, on_report))


def _launch_simulated(cfg: Config, out: str | Path | None, resume: str, force: bool) -> Results:
    from .workers._simulated import SimulatedPool

    if cfg.ranks_per_task != 1:
        raise ConfigError(f"ranks_per_task {cfg.ranks_per_task} needs the MPI pool (mpiexec)", cfg.source, "ranks_per_task")
    if not cfg.workers:
        raise ConfigError("pool: simulated needs workers: N (the number of virtual workers)", cfg.source, "workers")
    return _drive(cfg, out, resume, force,
                  lambda spec, on_report: SimulatedPool(cfg.workers, spec, cfg.simulation, cfg.source, on_report))


def _singleton_message(announced: int, environ: Mapping[str, str] | None = None) -> str:
    """Why N launched processes each see a world of one, and the fix (bad input: exit 2)."""
    env = os.environ if environ is None else environ
    if "SLURM_STEP_NUM_TASKS" in env and not any(v in env for v in _MPI_SIZE_VARS[:-1]):
        return (f"srun started {announced} tasks but MPI sees a single rank in each: srun gave them no MPI "
                "wiring (the site's MpiDefault is none); run srun --mpi=pmi2 (or --mpi=pmix; srun --mpi=list "
                "shows what this Slurm offers)")
    return (f"the launcher started {announced} processes but MPI sees a single rank: mpi4py is built against a "
            "different MPI than this mpiexec (use the mpiexec of the MPI mpi4py was built with, e.g. the one of "
            "`pip install mpich`)")


def _launch_dask(cfg: Config, out: str | Path | None, resume: str, force: bool) -> Results:
    from .workers.dask import DaskPool, scheduler_problem

    if cfg.ranks_per_task != 1:
        raise ConfigError(f"ranks_per_task {cfg.ranks_per_task} needs the MPI pool (mpiexec)", cfg.source, "ranks_per_task")
    settings = dict(cfg.dask or {})
    timeout = float(settings.pop("connect_timeout", 30.0))
    problem = scheduler_problem(settings, timeout)  # before the experiment directory is created
    if problem is not None:
        raise ConfigError(problem[1], cfg.source, problem[0])
    return _drive(cfg, out, resume, force, lambda spec, on_report: DaskPool(spec, settings, cfg.workers, on_report,
                                                                            connect_timeout=timeout, start=False))


def _launch_mpi(cfg: Config, out: str | Path | None, resume: str, force: bool, announced: int) -> Results | None:
    from .workers.mpi import mpi_module, mpi_session

    MPI = mpi_module(cfg.source)
    comm = MPI.COMM_WORLD
    rank, size = comm.Get_rank(), comm.Get_size()
    if size == 1 and announced > 1:
        raise ConfigError(_singleton_message(announced))
    if size == 1:
        if cfg.ranks_per_task > 1:
            raise ConfigError(f"ranks_per_task {cfg.ranks_per_task} needs at least {1 + cfg.ranks_per_task} MPI ranks "
                              "(1 driver + a worker group); launched with 1", cfg.source, "ranks_per_task")
        workers = cfg.workers or os.cpu_count() or 1
        print(f"emews: warning: pool: mpi with a single MPI rank, so no worker ranks: running {workers} local worker "
              "processes on this node instead (launch with mpiexec -n N, N >= 2, for MPI workers)",
              file=sys.stderr, flush=True)
        return _launch_local(dataclasses.replace(cfg, pool="local"), out, resume, force)
    try:
        session = mpi_session(cfg.ranks_per_task, cfg.gpus, comm, cfg.source)
    except ConfigError:
        if rank != 0:
            return None  # the same check failed on rank 0, which reports it
        raise
    if session is None:  # a worker rank, released by rank 0 at the end of the search
        return None
    with session:
        return _drive(cfg, out, resume, force, session.pool)

