"""Worker pools and task runners.

* :class:`LocalPool` — processes on this machine (the default).
* ``MPIPool`` — ranks of an MPI job (``emews.workers.mpi``; mpi4py imported lazily).

Runners (``runner.type``), for either pool: ``python`` (in the worker), ``isolated`` (a child
process per task: crashes and timeouts are failed results) and ``command`` (an external
program per task); see :mod:`emews.workers._runners`.

Every pool has the same small contract, checked by :mod:`emews.testing`:
``size``, ``idle``, ``submit(task)``, ``wait(timeout, extra) -> list[Result]`` and
``shutdown(kill=False)``.
"""

from __future__ import annotations

from ._gpu import gpu_for
from ._local import LocalPool
from ._runners import load_objective, make_runner

__all__ = ["LocalPool", "gpu_for", "load_objective", "make_runner"]
