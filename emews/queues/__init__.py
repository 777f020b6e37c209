"""The out/in queue pair between the resident optimizer and the driver.

::

      optimizer process                              driver process
  ┌──────────────────────────┐   PUT [(id, params)...]         ┌─────────────────────────┐
  │ OptimizerQueues.put()    │ ──────────────────────────────▶ │ DriverEnd.read(): PUT,  │
  │ OptimizerQueues.get()    │ ◀────────────────────────────── │ LOG, STOP_TASK to the   │
  │ (ask/tell adapter, or a  │   RESULTS [Result...]           │ driver; tell() batching │
  │  resident loop)          │   STOP reason                   │ stop()                  │
  └──────────────────────────┘                                 └─────────────────────────┘

The transport is a duplex ``multiprocessing`` pipe (a ``Connection``); the message kinds and
their bodies are defined once, in :mod:`emews.queues._protocol`. Task ids are assigned on
the optimizer side (one counter, one optimizer), so ``put`` never waits for the driver.
The optimizer process that holds these queues is :mod:`emews.optimizers._host`; the
driver's side is :class:`~emews.queues._driver_end.DriverEnd`.
"""

from __future__ import annotations

from . import _protocol as protocol
from ._queues import OptimizerQueues

__all__ = ["OptimizerQueues", "protocol"]
