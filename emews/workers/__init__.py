"""Worker pools and task runners.

* :class:`LocalPool` — processes on this machine (the default).
* ``MPIPool`` — ranks of an MPI job (``emews.workers.mpi``; mpi4py imported lazily).
* ``SimulatedPool`` — virtual workers with simulated durations (``emews.workers._simulated``).
* ``DaskPool`` — Dask workers that join and leave at any time (``emews.workers.dask``;
  ``distributed`` imported lazily).

Runners (``runner.type``), for every pool: ``python`` (in the worker), ``isolated`` (a child
process per task: crashes and timeouts are failed results) and ``command`` (an external
program per task); see :mod:`emews.workers._runners`.

Every pool is a :class:`Pool`, checked by :mod:`emews.testing.pools`: built with the runner
spec and the driver's ``on_report``, then ``start()``, ``submit(task)``, ``wait(timeout,
extra) -> list[Result]`` (the completions), ``stop_task(task_id)``, ``shutdown(kill=False)``,
and its capacity in ``size``, ``idle`` and ``busy`` (plus ``kind`` and ``clock``).
:class:`PoolBase` holds the idle/busy/stop bookkeeping, so a new pool is its transport; the
messages it moves are those of :mod:`emews.workers._wire`.
"""

from __future__ import annotations

from ._gpu import gpu_for
from ._local import LocalPool
from ._pool import OnReport, Pool, PoolBase
from ._runners import load_objective, make_runner

__all__ = ["LocalPool", "OnReport", "Pool", "PoolBase", "gpu_for", "load_objective", "make_runner"]
