"""``python -m emews.run config.yaml`` (also the ``emews`` command, and under mpiexec/srun).

Running the same command again continues the experiment in its directory (a resume:
finished results are kept and given to the optimizer, interrupted tasks run again);
``--fresh`` starts a new experiment instead.

Exit status: 0 on success (also when stopped at a deadline: run again to resume), 2 on bad
input (config, space, objective, a locked or mismatched experiment), 1 when the run failed,
3 when evaluations finished but none succeeded (the most frequent errors are printed),
143 when terminated (SIGTERM, e.g. a batch time limit; SIGUSR1, the batch job's warning, is
a stop at the deadline: 0), 130 when interrupted. Errors are one
paragraph on stderr; results computed before an error stay in the experiment directory.
"""

from __future__ import annotations

import argparse
import datetime
import json
import logging
import os
import sys
import time
from collections.abc import Sequence

from . import _failures
from ._progress import LiveAwareHandler
from .config import load_config, parse_deadline
from .driver import Terminated
from .errors import ConfigError, EmewsError, ObjectiveError, OptimizerError
from .journal import JournalError
from .launch import launch
from .optimizers._eqpy import final_message_lines
from .results import Tally
from .task import StopReason

USAGE_EXAMPLE = """examples:
  python -m emews.run configs/quickstart.yaml
  python -m emews.run configs/quickstart.yaml --set max_evals=20 --set optimizer.name=grid
  mpiexec -n 5 python -m emews.run configs/quickstart.yaml      # 1 driver + 4 MPI workers
  python -m emews.run configs/nt3_mbo.yaml --deadline +11h50m   # stop before the job's end
  srun --mpi=pmi2 python -m emews.run configs/nt3_mbo.yaml --chain  # Slurm: resubmit until done
  python -m emews.run configs/quickstart.yaml                   # again: resumes runs/quickstart
  python -m emews.run configs/quickstart.yaml --fresh           # a new runs/quickstart-2
"""


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m emews.run", description="Run an emews hyperparameter search.",
                                epilog=USAGE_EXAMPLE, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("config", help="YAML configuration file")
    p.add_argument("--out", metavar="DIR", help="experiment directory (default: OUTPUT/EXPERIMENT from the config)")
    p.add_argument("--set", metavar="KEY=VALUE", action="append", default=[], dest="overrides",
                   help="override a config key (dotted for nested keys), e.g. --set max_evals=10; repeatable")
    how = p.add_mutually_exclusive_group()
    how.add_argument("--resume", action="store_const", const="resume", dest="how", default="auto",
                     help="continue the experiment in the directory (an error if there is none); without a flag an "
                          "existing experiment is resumed and a missing one started")
    how.add_argument("--fresh", action="store_const", const="fresh", dest="how",
                     help="start a new experiment even if one exists (in OUTPUT/EXPERIMENT-N; with --out, DIR must "
                          "hold none)")
    p.add_argument("--force", action="store_true",
                   help="resume even though the space, objective or optimizer changed")
    p.add_argument("--deadline", metavar="WHEN",
                   help="the job's end: ISO time, epoch seconds or +DURATION (+90m, +2h); new tasks stop "
                        "stop_margin seconds before it (default: the batch job's end, asked of its scheduler: "
                        "Slurm, PBS, LSF, Flux)")
    p.add_argument("--chain", action="store_true",
                   help="Slurm: when the job stops at its end (or its warning signal, SIGUSR1) with budget left, "
                        "submit the same job script again after it (sbatch --dependency=afterany:JOBID); at most "
                        "chain_max jobs (config, default 10)")
    p.add_argument("-q", "--quiet", action="store_true", help="print only warnings and errors")
    p.add_argument("-v", "--verbose", action="store_true", help="also print debugging messages")
    return p


def setup_logging(quiet: bool = False, verbose: bool = False) -> None:
    """``emews: message`` lines on stderr, at INFO (WARNING with -q, DEBUG with -v)."""
    logger = logging.getLogger("emews")
    for h in list(logger.handlers):
        if getattr(h, "_emews_cli", False):
            logger.removeHandler(h)
    handler = LiveAwareHandler(sys.stderr)
    handler._emews_cli = True  # type: ignore[attr-defined]
    handler.setFormatter(logging.Formatter("emews: %(levelname)s: %(message)s" if verbose else "emews: %(message)s"))
    logger.addHandler(handler)
    logger.setLevel(logging.WARNING if quiet else logging.DEBUG if verbose else logging.INFO)
    logger.propagate = False


def summary(results, quiet: bool = False) -> str:
    """The lines printed on stdout at the end of a run (also after Ctrl-C or SIGTERM): the
    :class:`~emews.results.Tally` of the evaluations, the most frequent errors, the best loss
    and parameters (or why there are none), the directory, and how to continue a stopped run."""
    tally = Tally.of(results.rows)
    line = f"emews: {tally}"
    cancelled = tally["cancelled"]
    if cancelled:
        line += f"; {cancelled} cancelled task(s) never finished"
    lines = [line, *_failures.failure_lines(results.rows)]
    best = results.best
    stop = getattr(results, "stop", None)
    if not tally.evaluations:
        lines.append(f"emews: nothing was evaluated ({stop or 'no task finished'})")
    elif best is None:
        lines.append("emews: no evaluation succeeded; see the error column of results.csv")
    else:
        lines.append(f"emews: best loss {best['loss']:.6g} (task {best['task_id']})")
        lines.append("emews: best params " + json.dumps(best["params"], default=str))
    lines += final_message_lines(getattr(results, "optimizer_log", None) or [])
    lines.append(f"emews: results in {results.directory}")
    if stop is not None and (stop.reason.early or stop.reason in (StopReason.TERMINATED, StopReason.INTERRUPTED)):
        lines.append(f"emews: stopped early ({stop}); run the same command again to resume")
    return "\n".join(lines)


#: the environment variables in which MPI launchers and Slurm give a process its rank
_RANK_VARS = ("PMI_RANK", "OMPI_COMM_WORLD_RANK", "PMIX_RANK", "MV2_COMM_WORLD_RANK", "PALS_RANKID", "SLURM_PROCID")


def _launcher_rank() -> int:
    """This process's rank as the launcher announced it (0 without one), read without MPI."""
    for var in _RANK_VARS:
        v = os.environ.get(var, "")
        if v.isdigit():
            return int(v)
    return 0


def _blame_override(error: ConfigError, config: str, overrides: Sequence[str]) -> ConfigError:
    """``error`` blamed on the ``--set KEY=VALUE`` that gave the bad value, not on the file."""
    if error.source != str(config) or not error.key:
        return error
    for item in reversed(overrides):  # the last --set of a key wins
        key = item.partition("=")[0]
        if error.key == key or error.key.startswith(key + ".") or key.startswith(error.key + "."):
            body = str(error).removeprefix(f"{error.source}: {error.key}: ")
            return ConfigError(body, f"--set {item}", error.key)
    return error


def _refuse_past(deadline: object, source: str, key: str) -> None:
    """A deadline already past is a typo (a run would stop at once, every time it is resumed)."""
    if isinstance(deadline, float) and deadline <= time.time():
        when = datetime.datetime.fromtimestamp(deadline).isoformat(timespec="seconds")
        raise ConfigError(f"is in the past ({when}); give the job's end, e.g. --deadline +11h50m", source, key)


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    setup_logging(args.quiet, args.verbose)
    try:
        cfg = load_config(args.config, args.overrides)
        if args.deadline is not None:
            cfg.deadline = parse_deadline(args.deadline, "command line", "--deadline")
            _refuse_past(cfg.deadline, "command line", "--deadline")
            cfg.raw["deadline"] = args.deadline
        if args.chain:
            cfg.chain = cfg.raw["chain"] = True
        if args.quiet:
            cfg.progress = 0
        elif cfg.progress is None:
            cfg.progress = 30.0
        results = launch(cfg, args.out, resume=args.how, force=args.force)
        if results is None:  # an MPI worker rank: the search is over
            return 0
    except (ConfigError, ObjectiveError, JournalError) as e:
        if isinstance(e, ConfigError):
            e = _blame_override(e, args.config, args.overrides)
        if not (isinstance(e, ConfigError) and _launcher_rank() > 0):  # every rank read the same input: one says so
            print(f"emews: error: {e}", file=sys.stderr)
        return 2
    except OptimizerError as e:
        print(f"emews: error: {e}", file=sys.stderr)
        return 1
    except EmewsError as e:
        print(f"emews: error: {e}", file=sys.stderr)
        return 1
    except KeyboardInterrupt as e:  # Ctrl-C, or Terminated (SIGTERM): the summary of what was kept comes too
        print(f"emews: {str(e) or ('terminated' if isinstance(e, Terminated) else 'interrupted')}", file=sys.stderr)
        if getattr(e, "results", None) is not None:
            print(summary(e.results))
        return 143 if isinstance(e, Terminated) else 130
    print(summary(results))  # -q quiets the messages on stderr, not this summary on stdout
    return _failures.exit_status(results)  # 3: evaluations finished, none succeeded


if __name__ == "__main__":
    sys.exit(main())
