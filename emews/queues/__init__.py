"""The out/in queue pair between the resident optimizer and the driver.

::

      optimizer process                              driver
  ┌──────────────────────────┐   PUT [(id, params)...]         ┌─────────────────────┐
  │ OptimizerQueues.put()    │ ──────────────────────────────▶ │ journal, schedule   │
  │ OptimizerQueues.get()    │ ◀────────────────────────────── │ on idle workers     │
  │ (ask/tell adapter, or a  │   RESULTS [Result...]           │                     │
  │  resident loop)          │   STOP reason                   │                     │
  └──────────────────────────┘                                 └─────────────────────┘

The transport is a duplex ``multiprocessing`` pipe (a ``Connection``); the message kinds and
their bodies are defined once, in :mod:`emews.queues._protocol`. Task ids are assigned on
the optimizer side (one counter, one optimizer), so ``put`` never waits for the driver.
The optimizer process that holds these queues is :mod:`emews.optimizers._host`.
"""

from __future__ import annotations

from . import _protocol as protocol
from ._queues import OptimizerQueues

__all__ = ["OptimizerQueues", "protocol"]
