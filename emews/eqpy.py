"""EMEWS's EQ/Py queue module, for model-exploration algorithms written against it.

An EQ/Py algorithm is a module with a ``run()`` that talks to its workflow only through this
module's two string queues::

    algorithm thread (run())                 the host (emews.optimizers._eqpy)
    ┌──────────────────────────┐  output_q   ┌───────────────────────────────────────────┐
    │ eqpy.OUT_put("Params")   │ ──────────▶ │ output_q_get(): a handshake request,       │
    │ eqpy.OUT_put("p1;p2;…")  │   strings   │  a batch, "DONE"/"FINAL" (+ final messages)│
    │ eqpy.IN_get() (blocks)   │ ◀────────── │  or EQPY_ABORT then the traceback          │
    └──────────────────────────┘  input_q    └───────────────────────────────────────────┘

The names are those of EQ-Py's ``src/eqpy.py`` (also shipped by CANDLE Supervisor as
``workflows/common/ext/EQ-Py/eqpy.py``), so ``import eqpy`` in an unchanged algorithm finds
this module: the host registers it as ``sys.modules["eqpy"]`` before it imports the algorithm,
so a copy of EQ/Py's own file on the algorithm's path is never the one used (the top-level
``eqpy`` module shipped beside ``emews`` is this same module object too).

* :func:`init` imports the algorithm's module and starts its ``run()`` in a thread
  (:class:`ThreadRunner`; a daemon here, so a search stopped by its budget never waits for an
  algorithm blocked in :func:`IN_get`);
* :func:`OUT_put` / :func:`IN_get` are the algorithm's side, :func:`output_q_get` the host's:
  once the thread has ended and ``output_q`` is empty it returns :data:`EQPY_ABORT`, and on the
  next call the thread's traceback (``"Exited normally"`` when ``run()`` returned).
"""

from __future__ import annotations

import importlib
import queue
import threading
import traceback
from typing import Any

__all__ = ["EQPY_ABORT", "input_q", "output_q", "p", "aborted", "wait_info", "WaitInfo", "ThreadRunner", "init",
           "output_q_get", "OUT_put", "IN_get"]

#: what :func:`output_q_get` returns once the algorithm's thread is gone with nothing queued
EQPY_ABORT = "EQPY_ABORT"

#: host → algorithm (answers: the handshake's settings, a batch's losses)
input_q: queue.Queue = queue.Queue()
#: algorithm → host (requests: a handshake, batches, the end and its final messages)
output_q: queue.Queue = queue.Queue()

#: the running algorithm (a :class:`ThreadRunner`), set by :func:`init`
p: ThreadRunner | None = None
#: True once :func:`output_q_get` has returned :data:`EQPY_ABORT`
aborted = False
#: EQ/Py's growing polling interval (kept for its name; :func:`output_q_get` polls every ``_POLL`` s)
wait_info: WaitInfo | None = None
_POLL = 0.2


class WaitInfo:
    """EQ/Py's poll interval in seconds: 5, 6, ... up to 60 (here only counted: a thread that dies
    while the host waits is noticed within ``_POLL`` seconds, not after up to a minute)."""

    def __init__(self) -> None:
        self.wait = 4

    def getWait(self) -> int:  # noqa: N802 - EQ/Py's name
        """The next interval (one second longer each call, at most 60)."""
        self.wait = min(self.wait + 1, 60)
        return self.wait


class ThreadRunner(threading.Thread):
    """Runs ``runnable.run()``; ``exc`` is its traceback text, or ``"Exited normally"``."""

    def __init__(self, runnable: Any) -> None:
        super().__init__(name="eqpy-algorithm", daemon=True)
        self.runnable = runnable
        self.exc = "Exited normally"

    def run(self) -> None:
        try:
            self.runnable.run()
        except BaseException:  # noqa: BLE001 - the host reports whatever ended the algorithm
            self.exc = traceback.format_exc()


def init(pkg: str) -> None:
    """Import the algorithm module ``pkg`` and start its ``run()`` in a :class:`ThreadRunner`."""
    global p, wait_info
    wait_info = WaitInfo()
    module = importlib.import_module(pkg)
    p = ThreadRunner(module)
    p.start()


def output_q_get() -> str:
    """The algorithm's next message (blocks while its thread lives and has said nothing).

    Returns:
        The message; :data:`EQPY_ABORT` the first time the thread is found gone with nothing
        queued, the thread's traceback text on later calls.
    """
    global aborted
    if wait_info is not None:
        wait_info.getWait()  # kept for code that reads it; the poll below is short, so a dead thread is seen at once
    while (p is not None and p.is_alive()) or not output_q.empty():
        try:
            return output_q.get(True, _POLL)
        except queue.Empty:
            continue
    if aborted:
        return p.exc if p is not None else "the algorithm was never started (eqpy.init)"
    aborted = True
    return EQPY_ABORT


def OUT_put(string_params: str) -> None:  # noqa: N802 - EQ/Py's name
    """Algorithm side: send a message (a request for settings, a batch, the end, a result)."""
    output_q.put(string_params)


def IN_get() -> str:  # noqa: N802 - EQ/Py's name
    """Algorithm side: wait for the host's answer."""
    return input_q.get()


def _reset() -> None:
    """Fresh queues and state (the host calls it before :func:`init`)."""
    global input_q, output_q, p, aborted, wait_info
    input_q, output_q = queue.Queue(), queue.Queue()
    p, aborted, wait_info = None, False, None
