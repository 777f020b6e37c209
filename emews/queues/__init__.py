"""The out/in queue pair between the resident optimizer and the driver.

::

      optimizer process                              driver
  ┌──────────────────────────┐   ("put", [(id, params)...])   ┌─────────────────────┐
  │ OptimizerQueues.put()    │ ──────────────────────────────▶ │ journal, schedule   │
  │ OptimizerQueues.get()    │ ◀────────────────────────────── │ on idle workers     │
  │ (ask/tell adapter, or a  │   ("results", [Result...])      │                     │
  │  resident loop)          │   ("stop", reason)              │                     │
  └──────────────────────────┘                                 └─────────────────────┘

The transport is a duplex ``multiprocessing`` pipe (a ``Connection``); the optimizer
process is started with the *spawn* method, so it is safe beside an initialized MPI.
Task ids are assigned on the optimizer side (one counter, one optimizer), so ``put`` never
waits for the driver.
"""

from __future__ import annotations

from ._process import OptimizerProcess, run_optimizer
from ._queues import OptimizerQueues

__all__ = ["OptimizerQueues", "OptimizerProcess", "run_optimizer"]
