"""The EQ/Py host: an unchanged EMEWS EQ/Py algorithm as an emews resident optimizer.

::

    optimizer process
    ┌──────────────────────────────────────────────────────────────────────────────────────┐
    │ algorithm thread              EQPy.run (this module)                 OptimizerQueues   │
    │ run() ── OUT_put("Params") ─▶ answer settings.handshake                                │
    │       ── OUT_put("p1;p2")  ─▶ decode_batch → [params] ── evaluate ─▶ PUT ─▶ driver     │
    │       ◀─ IN_get() "l1;l2"  ── encode_losses (nan: not ok) ◀── [Result] ◀─ RESULTS      │
    │       ── "DONE"/"FINAL", m1, m2 ... ─▶ LOG {"eqpy": "final", ...} (eqpy-final-N.txt)   │
    │       ── dies ─▶ EQPY_ABORT, traceback ─▶ OptimizerError (exit 1, the traceback shown) │
    └──────────────────────────────────────────────────────────────────────────────────────┘

Conventions carried over from EQ/Py workflows (EQ-Py's examples, CANDLE Supervisor's GA
``workflow.swift``): a batch is items joined by ``;``, each a JSON object (Supervisor's
``deap_ga.py``), a JSON list or comma-separated values (EQ-Py's ``x1,x2``) in the space's
order; the answer is the losses joined by ``;`` in the same order, ``nan`` for a failed,
stopped or cancelled evaluation. Every batch is evaluated whole before it is answered (batch
mode). A resumed experiment replays: the algorithm is started again, seeds ``random`` as it
did (``random`` and numpy's global generator are also seeded from the experiment's seed
before it starts), and its batches are answered from the journal until it proposes something
new (:class:`~emews.queues.OptimizerQueues`' replay, as for every resident optimizer).
"""

from __future__ import annotations

import importlib
import importlib.machinery
import json
import logging
import math
import queue
import random
import sys
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from .. import eqpy as _eqpy
from ..errors import ConfigError, OptimizerError, SpaceError
from ..space import Space
from ..task import Result
from ._base import ResidentOptimizer

if TYPE_CHECKING:  # pragma: no cover
    from ..queues import OptimizerQueues

__all__ = ["EQPy", "decode_batch", "encode_losses", "FINAL_SIGNALS", "HANDSHAKE_REQUESTS", "write_final_messages",
           "final_message_lines"]

log = logging.getLogger("emews.eqpy")

#: what an algorithm sends when it is finished (messages after it are its final outputs)
FINAL_SIGNALS = ("DONE", "FINAL")
#: what an algorithm sends to ask for its settings (answered with ``settings.handshake``)
HANDSHAKE_REQUESTS = ("Params", "Settings")
FORMATS = ("auto", "json", "csv")
#: how long the host waits for the final messages after DONE/FINAL once none arrives
_FINAL_GRACE = 30.0


# -- the batch codec ---------------------------------------------------------------------------
def _csv_value(text: str) -> Any:
    s = text.strip()
    try:
        return json.loads(s)  # numbers, true/false, "quoted strings"
    except json.JSONDecodeError:
        return s


def decode_batch(message: str, space: Space, fmt: str = "auto", batch: int | None = None) -> list[dict]:
    """The parameter sets of one batch string (items split on ``;``).

    Args:
        message: the algorithm's batch, e.g. ``'{"x": 1.5};{"x": 2}'`` or ``"1.5,2;0,1"``.
        space: the space whose names a list or CSV item is mapped onto (in order).
        fmt: ``json`` (objects or lists), ``csv`` (comma-separated values) or ``auto`` (an item
            starting with ``{`` or ``[`` is JSON, any other CSV).
        batch: the batch number, for error messages.

    Raises:
        OptimizerError: an item that is not of the format or does not fit the space, naming the
            item, its position and the reason.
    """
    items = message.split(";")
    out = []
    where = f"batch {batch}, " if batch is not None else ""
    for i, text in enumerate(items, 1):
        s = text.strip()

        def bad(why: str) -> OptimizerError:
            return OptimizerError(f"EQ/Py {where}item {i} of {len(items)} {s[:200]!r}: {why}")  # noqa: B023

        if fmt == "json" or (fmt == "auto" and s[:1] in "{["):
            try:
                value = json.loads(s)
            except json.JSONDecodeError as e:
                raise bad(f"not JSON ({e})") from None
        elif fmt in ("csv", "auto"):
            value = [_csv_value(x) for x in s.split(",")] if s else []
        else:
            raise bad(f"unknown format {fmt!r} (one of {', '.join(FORMATS)})")
        if isinstance(value, list):
            if len(value) != len(space):
                raise bad(f"{len(value)} values for the {len(space)} dimensions {space.names}")
            value = dict(zip(space.names, value))
        elif not isinstance(value, dict):
            raise bad("expected a JSON object, a JSON list or comma-separated values")
        try:
            out.append(space.validate(value))
        except SpaceError as e:
            raise bad(str(e)) from None
    return out


def encode_losses(results: Sequence[Result]) -> str:
    """The answer to a batch: losses joined by ``;`` in the batch's order, ``nan`` where a result
    is not ok (failed, timed out, stopped, cancelled) or has no finite-or-infinite float loss."""
    out = []
    for r in results:
        loss = r.loss if r.ok else None
        out.append("nan" if loss is None or (isinstance(loss, float) and math.isnan(loss)) else repr(float(loss)))
    return ";".join(out)


# -- final messages ----------------------------------------------------------------------------
def _final_records(optimizer_log: Sequence[Mapping[str, Any]]) -> list[Mapping[str, Any]]:
    return [r for r in optimizer_log or () if isinstance(r, Mapping) and r.get("eqpy") == "final"]


def write_final_messages(directory: str | Path, optimizer_log: Sequence[Mapping[str, Any]]) -> list[Path]:
    """Write the last EQ/Py end record's messages as ``eqpy-final-1.txt`` … into ``directory``
    (``eqpy-final-0.txt`` is the signal itself, ``DONE`` or ``FINAL``); returns the files written."""
    recs = _final_records(optimizer_log)
    if not recs:
        return []
    rec = recs[-1]
    directory = Path(directory)
    paths = []
    for n, text in enumerate([rec.get("signal", "DONE"), *rec.get("messages", [])]):
        p = directory / f"eqpy-final-{n}.txt"
        p.write_text(str(text) + "\n")
        paths.append(p)
    return paths


def final_message_lines(optimizer_log: Sequence[Mapping[str, Any]], width: int = 100) -> list[str]:
    """Summary lines for the EQ/Py end record (the first line of each final message)."""
    recs = _final_records(optimizer_log)
    if not recs:
        return []
    rec = recs[-1]
    msgs = rec.get("messages", [])
    signal = rec.get("signal", "DONE")
    if not msgs:
        return [f"emews: EQ/Py algorithm sent {signal} (no final messages; eqpy-final-0.txt)"]
    lines = [f"emews: EQ/Py algorithm sent {signal} and {len(msgs)} final message(s) "
             f"(eqpy-final-1.txt ... eqpy-final-{len(msgs)}.txt in the experiment directory)"]
    for n, m in enumerate(msgs, 1):
        first = " ".join(str(m).split())
        lines.append(f"emews:   {n}: {first[:width]}{' ...' if len(first) > width else ''}")
    return lines


# -- the host ----------------------------------------------------------------------------------
def _paths(path: Any) -> list[str]:
    if path is None:
        return []
    return [str(path)] if isinstance(path, (str, Path)) else [str(p) for p in path]


class EQPy(ResidentOptimizer):
    """An EQ/Py algorithm module, unchanged, as the search's optimizer.

    Config::

        optimizer: {name: eqpy, settings: {module: deap_ga, path: [python], handshake: "...", format: json}}

    Args:
        space: the search space (batch items are validated against it).
        seed: seeds ``random`` and numpy's global generator before the algorithm starts.
        module: the algorithm's module name (it defines ``run()`` and imports ``eqpy``).
        path: directories put first on ``sys.path`` (relative ones: to the config file).
        handshake: the answer to the algorithm's ``"Params"`` / ``"Settings"`` request, verbatim
            (Supervisor's GA: its tuple literal; EQ-Py's examples: a settings file path).
        format: batch item format, ``auto`` (default), ``json`` or ``csv``.
    """

    def __init__(self, space: Space, seed: int | None = None, *, module: str, path: Any = None,
                 handshake: str | None = None, format: str = "auto"):  # noqa: A002 - the config's key
        super().__init__(space, seed=seed)
        self._check_values({"module": module, "path": path, "handshake": handshake, "format": format})
        self.module, self.path, self.handshake, self.format = module, _paths(path), handshake, format

    @staticmethod
    def _check_values(settings: Mapping[str, Any], source: str | None = None) -> None:
        """The checks ``__init__`` makes (nothing is imported), so also the config-time ones
        (the declared :meth:`check_settings` builds the host once): types, the format, the
        path's directories and that a top-level module is found on them.

        Raises:
            ConfigError: naming the setting and its value.
        """
        key = "optimizer.settings."
        module = settings.get("module")
        if not isinstance(module, str) or not all(p.isidentifier() for p in module.split(".")):
            raise ConfigError(f"expected the algorithm's module name (e.g. deap_ga), got {module!r}", source,
                              key + "module")
        path = settings.get("path")
        if path is not None and not isinstance(path, (str, Path)) and not (
                isinstance(path, list) and all(isinstance(p, (str, Path)) for p in path)):
            raise ConfigError(f"expected a directory or a list of directories, got {path!r}", source, key + "path")
        dirs = _paths(path)
        for d in dirs:
            if not Path(d).is_dir():
                raise ConfigError(f"no such directory {d!r}", source, key + "path")
        hs = settings.get("handshake")
        if hs is not None and not isinstance(hs, str):
            raise ConfigError(f"expected the string the algorithm is answered with, got {hs!r}", source,
                              key + "handshake")
        fmt = settings.get("format", "auto")
        if fmt not in FORMATS:
            raise ConfigError(f"expected one of {', '.join(FORMATS)}, got {fmt!r}", source, key + "format")
        if "." not in module and importlib.machinery.PathFinder.find_spec(module, dirs + sys.path) is None:
            raise ConfigError(f"no module {module!r} in {dirs or 'the import path'}", source, key + "module")

    # -- the algorithm's side ------------------------------------------------------------------
    def _start(self) -> None:
        for d in reversed(self.path):
            if d not in sys.path:
                sys.path.insert(0, d)
        _eqpy._reset()
        sys.modules["eqpy"] = _eqpy  # `import eqpy` in the algorithm is this host's module
        if self.seed is not None:
            random.seed(self.seed)
            np.random.seed(self.seed % 2**32)
        try:
            module = importlib.import_module(self.module)
        except Exception as e:  # noqa: BLE001 - a syntax error, a missing import ...: all the algorithm's
            raise OptimizerError(f"cannot import the EQ/Py algorithm module {self.module!r} "
                                 f"(path {self.path}): {type(e).__name__}: {e}") from e
        if not callable(getattr(module, "run", None)):
            raise OptimizerError(f"the EQ/Py algorithm module {self.module!r} "
                                 f"({getattr(module, '__file__', '?')}) defines no run()")
        _eqpy.init(self.module)

    def _aborted(self) -> OptimizerError:
        why = _eqpy.output_q_get()
        if why.strip() == "Exited normally":
            why = "its run() returned without sending DONE or FINAL"
        return OptimizerError(f"the EQ/Py algorithm {self.module!r} aborted ({_eqpy.EQPY_ABORT}):\n{why}")

    def _finals(self) -> list[str]:
        """The messages after DONE/FINAL: until the thread has ended and the queue is empty (or
        no message came for ``_FINAL_GRACE`` seconds while the thread still lives)."""
        msgs: list[str] = []
        quiet_since = time.monotonic()
        thread = _eqpy.p
        while True:
            try:
                msgs.append(_eqpy.output_q.get(True, 0.2))
                quiet_since = time.monotonic()
                continue
            except queue.Empty:
                pass
            if thread is None or not thread.is_alive():
                if _eqpy.output_q.empty():
                    break
            elif time.monotonic() - quiet_since > _FINAL_GRACE:
                log.warning("the EQ/Py algorithm %r still runs %.0f s after its end signal; keeping the %d "
                            "message(s) it sent", self.module, _FINAL_GRACE, len(msgs))
                break
        if thread is not None and not thread.is_alive() and thread.exc != "Exited normally":
            log.warning("the EQ/Py algorithm %r failed after its end signal:\n%s", self.module, thread.exc)
        return msgs

    def run(self, queues: OptimizerQueues) -> None:
        """Start the algorithm and serve its messages until DONE/FINAL (or the search stops)."""
        self._start()
        answered_handshake = False
        batch = 0
        while True:
            msg = _eqpy.output_q_get()
            if msg == _eqpy.EQPY_ABORT:
                raise self._aborted()
            if msg in FINAL_SIGNALS:
                queues.log({"eqpy": "final", "signal": msg, "messages": self._finals()})
                return
            if msg in HANDSHAKE_REQUESTS and not answered_handshake:
                if self.handshake is None:
                    raise OptimizerError(f"the EQ/Py algorithm {self.module!r} asks for its settings ({msg!r}) "
                                         "but optimizer.settings.handshake is not set")
                answered_handshake = True
                _eqpy.input_q.put(self.handshake)
                continue
            batch += 1
            params = decode_batch(msg, self.space, self.format, batch)
            results = queues.evaluate(params)  # StopSearch once the search is stopped: run() ends
            _eqpy.input_q.put(encode_losses(results))
