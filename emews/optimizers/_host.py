"""The optimizer host: runs an optimizer of either style in its own (spawned) process.

::

    driver process                         optimizer process (spawned)
    ┌──────────────────────┐   pipe   ┌─────────────────────────────────────────────┐
    │ OptimizerProcess     │ ◀──────▶ │ run_optimizer: build the optimizer, then     │
    │  .send() (a thread:  │          │  ask/tell  → drive_ask_tell(opt, queues)     │
    │   never blocks)      │          │  resident  → opt.run(queues) / fn(queues...) │
    │  .conn (driver reads)│          │ OptimizerQueues: put/get over the pipe       │
    └──────────────────────┘          └─────────────────────────────────────────────┘

The messages are those of :mod:`emews.queues._protocol`. The process is started with the
*spawn* method, so it is safe beside an initialized MPI.
"""

from __future__ import annotations

import inspect
import multiprocessing as mp
import queue
import signal
import threading
import traceback
from typing import Any

from .. import _pickling
from .._childsig import die_with_parent, emews_children
from ..errors import OptimizerError, StopSearch
from ..queues import OptimizerQueues
from ..queues import _protocol as wire
from ..resume import Handoff
from ..space import Space
from . import style_of

__all__ = ["drive_ask_tell", "run_optimizer", "OptimizerProcess"]


def drive_ask_tell(opt: Any, q: OptimizerQueues, mode: str = "async", batch_size: int | None = None) -> None:
    """The adapter that turns an ask/tell optimizer into a resident loop.

    async: keep ``capacity + lookahead`` evaluations outstanding; each time results come in
    (or the capacity changes: workers of an elastic pool came or went), tell them and ask
    for as many new points as slots freed.
    batch: ask ``batch_size`` points, wait for all of them, tell, repeat.
    """
    done = getattr(opt, "done", lambda: False)
    log = getattr(opt, "log", lambda: None)
    tell = opt.tell
    if q.warm_start:  # earlier results (warm_start:), before the history and the first ask
        opt.tell(list(q.warm_start))
    if q.resumed:
        # the earlier sessions' results (Optimizer.restore defaults to tell(history); a
        # duck-typed ask/tell class without restore gets the same)
        restore = getattr(opt, "restore", None)
        if restore is not None:
            restore(list(q.history), q.pending_params())
        elif q.history:
            opt.tell(list(q.history))
        _log(q, log)
        told = {r.task_id for r in q.history}

        def tell(results: list) -> None:  # a point proposed again is answered from the journal: tell it once
            new = [r for r in results if r.task_id not in told]
            told.update(r.task_id for r in new)
            if new:
                opt.tell(new)

        if mode == "batch":
            while q.pending:  # the interrupted batch is finished before the next one is asked
                tell(q.get())
    if mode == "batch":
        size = batch_size or q.capacity
        while q.remaining > 0 and not done():
            params = opt.ask(min(size, q.remaining))
            if not params:
                break
            results = q.evaluate(params)
            tell(results)
            _log(q, log)
            if q.stopped:
                break
        return
    lookahead = max(0, int(getattr(opt, "lookahead", 0) or 0))
    exhausted = False
    while True:
        want = min(q.capacity + lookahead - q.pending, q.remaining)  # the capacity may change (Dask workers)
        if want > 0 and not exhausted and not q.stopped and not done():
            params = opt.ask(want)
            if params:
                q.put(params)
            else:
                exhausted = True
        if q.pending == 0:
            return
        results = q.get(wake_on_capacity=True)
        if results:
            tell(results)
            _log(q, log)


def _log(q: OptimizerQueues, log: Any) -> None:
    rec = log()
    if rec:
        q.log(rec)


def run_optimizer(conn: Any, blob: bytes, space: Space, seed: int | None, settings: dict, mode: str,
                  batch_size: int | None, capacity: int, max_evals: int, handoff: Handoff | None = None,
                  announce_waits: bool = False, warm_start: Any = None) -> None:
    """Entry point of the optimizer process: build the optimizer and run it to the end.

    ``handoff`` (a resumed experiment): the history, interrupted tasks and first free id.
    ``warm_start`` (an :class:`~emews.formats.WarmStart`): earlier results the optimizer is
    given before it proposes (journaled once, as an ``optimizer_log`` record; no budget spent).
    Sends ``DONE`` when the optimizer finishes (or is stopped) and ``ERROR`` when it raises.
    """
    die_with_parent(signal.SIGTERM)  # the driver SIGKILLed: no optimizer left running alone
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the driver's to handle
    try:
        obj = _pickling.loads(blob)
        style = style_of(obj)
        q = OptimizerQueues(conn, space, capacity, max_evals, handoff=handoff, replay=style != "ask-tell",
                            announce_waits=announce_waits)
        if warm_start is not None:
            q.warm_start = list(warm_start.results)
            if not q.resumed:
                q.log(warm_start.record())
        if style == "ask-tell":
            opt = obj(space, seed=seed, **settings)
            drive_ask_tell(opt, q, mode, batch_size)
        elif inspect.isclass(obj):
            obj(space, seed=seed, **settings).run(q)
        else:
            obj(q, space, seed=seed, **settings)
        conn.send(wire.done())
    except StopSearch:
        try:
            conn.send(wire.done())
        except OSError:  # the driver has gone already
            pass
    except BaseException as e:  # noqa: BLE001 - everything is reported to the driver
        text = "".join(traceback.format_exception(type(e), e, e.__traceback__))
        try:
            conn.send(wire.error(f"{type(e).__name__}: {e}\n{text}"))
        except (OSError, EOFError):
            pass
    finally:
        try:
            conn.close()
        except OSError:
            pass


class OptimizerProcess:
    """The resident optimizer in a spawned process, with the driver's end of the pipe."""

    def __init__(self, optimizer: Any, space: Space, seed: int | None, settings: dict, mode: str,
                 batch_size: int | None, capacity: int, max_evals: int, handoff: Handoff | None = None,
                 announce_waits: bool = False, warm_start: Any = None):
        ctx = mp.get_context("spawn")
        self.conn, child = ctx.Pipe(duplex=True)
        try:
            blob = _pickling.dumps(optimizer)
        except Exception as e:  # noqa: BLE001 - pickling can fail in many ways
            name = getattr(optimizer, "__qualname__", repr(optimizer))
            raise OptimizerError(f"cannot send the optimizer {name} to its process: {type(e).__name__}: {e}") from e
        self.process = ctx.Process(
            target=run_optimizer,
            args=(child, blob, space, seed, dict(settings), mode, batch_size, capacity, max_evals, handoff,
                  announce_waits, warm_start),
            name="emews-optimizer",
            daemon=False,  # an optimizer may start processes of its own; close() ends it
        )
        with emews_children():  # it asks for the parent-death signal before its imports
            self.process.start()
        child.close()
        # The driver never blocks on a send: a big batch of results must not wait while the
        # optimizer itself is blocked sending a big batch of parameters (both pipe buffers full).
        self._outbox: queue.SimpleQueue = queue.SimpleQueue()
        self._sender = threading.Thread(target=self._send_loop, name="emews-to-optimizer", daemon=True)
        self._sender.start()

    def _send_loop(self) -> None:
        while True:
            msg = self._outbox.get()
            if msg is None:
                return
            try:
                self.conn.send(msg)
            except (OSError, EOFError, BrokenPipeError):
                pass

    def send(self, msg: Any) -> None:
        """Queue a message for the optimizer (returns at once)."""
        self._outbox.put(msg)

    @property
    def exitcode(self) -> int | None:
        """The optimizer process's exit code (None while it runs)."""
        return self.process.exitcode

    def close(self, timeout: float = 10.0) -> None:
        """Wait for the process to finish, then make sure it is gone."""
        self._outbox.put(None)
        self._sender.join(timeout)
        self.process.join(timeout)
        if self.process.is_alive():
            self.process.terminate()
            self.process.join(5)
        try:
            self.conn.close()
        except OSError:
            pass
