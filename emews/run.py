"""``python -m emews.run config.yaml`` (also the ``emews`` command, and under mpiexec/srun).

Exit status: 0 on success, 2 on bad input (config, space, objective), 1 when the run failed,
143 when terminated (SIGTERM, e.g. a batch time limit),
130 when interrupted. Errors are one paragraph on stderr; results computed before an error
stay in the experiment directory.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence

from .api import launched_under_mpi, run_config
from .config import load_config
from .driver import Terminated
from .errors import ConfigError, EmewsError, ObjectiveError, OptimizerError

USAGE_EXAMPLE = """examples:
  python -m emews.run configs/quickstart.yaml
  python -m emews.run configs/quickstart.yaml --set max_evals=20 --set optimizer.name=grid
  mpiexec -n 5 python -m emews.run configs/quickstart.yaml      # 1 driver + 4 MPI workers
"""


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m emews.run", description="Run an emews hyperparameter search.",
                                epilog=USAGE_EXAMPLE, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("config", help="YAML configuration file")
    p.add_argument("--out", metavar="DIR", help="experiment directory (default: OUTPUT/EXPERIMENT[-N] from the config)")
    p.add_argument("--set", metavar="KEY=VALUE", action="append", default=[], dest="overrides",
                   help="override a config key (dotted for nested keys), e.g. --set max_evals=10; repeatable")
    p.add_argument("-q", "--quiet", action="store_true", help="print only errors")
    return p


def summary(results, quiet: bool = False) -> str:
    lines = [f"emews: {len(results)} evaluations ({results.count('done')} done, {results.count('failed')} failed, "
             f"{results.count('timeout')} timed out, {results.count('cancelled')} cancelled)"]
    best = results.best
    if best is None:
        lines.append("emews: no evaluation succeeded; see the error column of results.csv")
    else:
        lines.append(f"emews: best loss {best['loss']:.6g} (task {best['task_id']})")
        lines.append("emews: best params " + json.dumps(best["params"], default=str))
    lines.append(f"emews: results in {results.directory}")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        cfg = load_config(args.config, args.overrides)
        if args.quiet:
            cfg.progress = 0
        elif cfg.progress is None:
            cfg.progress = 30.0
        size = launched_under_mpi()
        if cfg.pool == "mpi" or (cfg.pool == "auto" and size > 1):
            from .workers.mpi import run_mpi

            results = run_mpi(cfg, args.out)
            if results is None:  # a worker rank
                return 0
        else:
            if size > 1:  # every rank would run a whole search of its own
                raise ConfigError(f"pool: local, but the launcher started {size} processes; use pool: mpi (or auto) "
                                  "under mpiexec/srun, or start a single process", cfg.source, "pool")
            results = run_config(cfg, args.out)
    except (ConfigError, ObjectiveError) as e:
        print(f"emews: error: {e}", file=sys.stderr)
        return 2
    except OptimizerError as e:
        print(f"emews: error: {e}", file=sys.stderr)
        return 1
    except EmewsError as e:
        print(f"emews: error: {e}", file=sys.stderr)
        return 1
    except Terminated as e:
        print(f"emews: {str(e) or 'terminated'}", file=sys.stderr)
        return 143
    except KeyboardInterrupt as e:
        print(f"emews: {str(e) or 'interrupted'}", file=sys.stderr)
        return 130
    if not args.quiet:
        print(summary(results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
