"""Run the pool contract suite on the MPI pool: ``mpiexec -n 3 python tests/workers/mpi_pool_contract.py``.

Rank 0 runs every check of :mod:`emews.testing.pools` on fresh MPI pools of one session;
the other ranks serve. Prints ``all N pool checks passed`` on success.
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from emews.testing.pools import run_pool_checks  # noqa: E402
from emews.workers.mpi import mpi_session  # noqa: E402

session = mpi_session()
if session is not None:
    with session:
        passed = run_pool_checks(lambda spec, on_report: session.pool(spec, on_report=on_report), verbose=True)
    print(f"all {len(passed)} pool checks passed on {session.workers} MPI workers", flush=True)
