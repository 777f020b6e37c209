"""Worker pools and task runners.

* :class:`LocalPool` — processes on this machine (the default).
* ``MPIPool`` — ranks of an MPI job (``emews.workers.mpi``; mpi4py imported lazily).

Every pool has the same small contract, checked by :mod:`emews.testing`:
``size``, ``idle``, ``submit(task)``, ``wait(timeout, extra) -> list[Result]`` and
``shutdown(kill=False)``.
"""

from __future__ import annotations

from ._gpu import gpu_for
from ._local import LocalPool
from ._runners import load_objective, make_runner

__all__ = ["LocalPool", "gpu_for", "load_objective", "make_runner"]
