"""The whole wire protocol between the optimizer process and the driver.

Every message is a ``(kind, body)`` pair sent over one duplex pipe; bodies are small,
picklable records. This module is the only place the kinds are spelled::

    optimizer ─▶ driver   PUT      [(task_id, params), ...]  new tasks (ids assigned on the
                                                              optimizer side: one optimizer); an
                                                              item (task_id, params, start) also
                                                              names the checkpoint it starts from
                                                              (``OptimizerQueues.put(starts=)``)
                          LOG      {record}                  journaled in optimizer_log
                          WAIT     None                      blocked waiting for results (sent only
                                                              when the driver's clock is simulated)
                          DONE     None                      the optimizer finished or was stopped
                          ERROR    "Type: message\\ntraceback" the optimizer raised
                          STOP_TASK task_id                  stop that running task early (at its
                                                              next report; it ends "stopped")
    driver ─▶ optimizer   RESULTS  [Result, ...]             final results, completion order
                          STOP     "reason"                  no new task will be accepted
                          CAPACITY n                         the worker slots changed (an elastic
                                                              pool: Dask workers joined or left)

Each side reads with one :func:`dispatch` over a table of handlers, so an unknown kind is an
error on either side instead of a silently dropped message.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

from ..errors import EmewsError
from ..task import Result

__all__ = ["PUT", "LOG", "WAIT", "DONE", "ERROR", "STOP_TASK", "RESULTS", "STOP", "CAPACITY", "TO_DRIVER", "TO_OPTIMIZER", "put", "log",
           "wait", "done", "error", "stop_task", "results", "stop", "capacity", "dispatch",
           "ProtocolError"]

PUT, LOG, WAIT, DONE, ERROR, STOP_TASK = "put", "log", "wait", "done", "error", "stop_task"
RESULTS, STOP, CAPACITY = "results", "stop", "capacity"
#: the kinds each side may receive
TO_DRIVER = (PUT, LOG, WAIT, DONE, ERROR, STOP_TASK)
TO_OPTIMIZER = (RESULTS, STOP, CAPACITY)

Message = tuple[str, Any]


class ProtocolError(EmewsError):
    """A message of a kind the receiving side does not handle."""


def put(items: Sequence[tuple[int, dict]]) -> Message:
    return (PUT, list(items))


def log(record: Mapping[str, Any]) -> Message:
    return (LOG, dict(record))


def wait() -> Message:
    return (WAIT, None)


def done() -> Message:
    return (DONE, None)


def error(text: str) -> Message:
    return (ERROR, text)


def stop_task(task_id: int) -> Message:
    return (STOP_TASK, int(task_id))


def results(rs: Sequence[Result]) -> Message:
    return (RESULTS, list(rs))


def stop(reason: str) -> Message:
    return (STOP, reason)


def capacity(n: int) -> Message:
    return (CAPACITY, int(n))


def dispatch(message: Message, handlers: Mapping[str, Callable[[Any], Any]]) -> Any:
    """Call the handler of ``message``'s kind with its body; returns what the handler returns.

    Raises:
        ProtocolError: ``message`` is not a ``(kind, body)`` pair of a handled kind.
    """
    try:
        kind, body = message
    except (TypeError, ValueError):
        raise ProtocolError(f"not a (kind, body) message: {message!r:.200}") from None
    handler = handlers.get(kind)
    if handler is None:
        raise ProtocolError(f"unexpected message kind {kind!r} (this side handles {', '.join(handlers)})")
    return handler(body)
