"""Checks that turn a new user's first mistakes into one clear message, before anything runs.

* :func:`check_optimizer_settings`: ``optimizer.settings`` against the optimizer's signature
  (built-ins and plug-ins alike), with a "did you mean", before an experiment directory is
  created;
* :func:`error_summary`: the most frequent error messages of a run's failed evaluations;
* :func:`refuse_spawn_reimport`: a script that calls :func:`emews.search` without the
  ``if __name__ == "__main__":`` guard is re-imported by every spawned worker; say so once.
"""

from __future__ import annotations

import collections
import difflib
import inspect
import os
import sys
import tempfile
from collections.abc import Iterable, Mapping
from typing import Any

from .errors import ConfigError

__all__ = ["check_optimizer_settings", "accepted_settings", "error_summary", "refuse_spawn_reimport",
           "explain_unguarded", "NO_SUCCESS_EXIT"]

#: exit status of ``python -m emews.run`` when evaluations finished but none succeeded
NO_SUCCESS_EXIT = 3

#: positional parameters every optimizer gets from emews, not from ``optimizer.settings``
_GIVEN = {"self", "space", "seed", "queues"}


def _own_params(fn: Any) -> tuple[list[str], bool]:
    """(keyword names a callable takes, whether it also takes ``**kwargs``)."""
    try:
        sig = inspect.signature(fn)
    except (TypeError, ValueError):  # a builtin or C callable: cannot tell
        return [], True
    names, var_kw = [], False
    for p in sig.parameters.values():
        if p.kind is p.VAR_KEYWORD:
            var_kw = True
        elif p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY) and p.name not in _GIVEN:
            names.append(p.name)
    return names, var_kw


def accepted_settings(optimizer: Any) -> tuple[list[str], bool]:
    """The settings an optimizer accepts as keywords: (names, open), ``open`` when it takes
    any keyword (a ``**kwargs`` that does not end in emews's base class, which rejects
    unknown settings).

    A class is read along its MRO: an ``__init__(..., **kw)`` that passes ``kw`` on adds the
    next class's settings; the chain ends at emews's base class (unknown settings rejected)
    or at a class whose ``__init__`` takes no ``**kwargs``.
    """
    from .optimizers._base import _Seeded

    if not inspect.isclass(optimizer):
        return _own_params(optimizer)
    names: list[str] = []
    for cls in optimizer.__mro__:
        if cls is _Seeded or cls is object:
            return names, False
        init = cls.__dict__.get("__init__")
        if init is None:
            continue
        own, var_kw = _own_params(init)
        names += [n for n in own if n not in names]
        if not var_kw:
            return names, False
    return names, True


def check_optimizer_settings(optimizer: Any, settings: Mapping[str, Any], source: str | None = None,
                             name: str | None = None) -> None:
    """Raise :class:`~emews.errors.ConfigError` for a setting the optimizer does not take.

    Args:
        optimizer: the resolved optimizer (class or function).
        settings: ``optimizer.settings``.
        source: the config file, for the message.
        name: the optimizer's name in the config, for the message.
    """
    if not settings:
        return
    allowed, open_ = accepted_settings(optimizer)
    if open_:
        return
    label = name or getattr(optimizer, "__qualname__", repr(optimizer))
    for key, value in settings.items():
        if key in allowed:
            continue
        close = difflib.get_close_matches(str(key), allowed, n=1, cutoff=0.5)
        if not close:  # a prefix ("n_init" of "n_initial") is the commonest typo
            close = [a for a in allowed if a.startswith(str(key)) or str(key).startswith(a)][:1]
        hint = f"did you mean {close[0]!r}? " if close else ""
        known = ", ".join(sorted(allowed)) or "none"
        raise ConfigError(f"optimizer {label!r} has no setting {key!r} (value {value!r}); {hint}its settings: {known}",
                          source, f"optimizer.settings.{key}")


def _message(error: str | None) -> str:
    lines = (error or "").strip().splitlines()
    return lines[-1].strip() if lines else "(no error text)"


def error_summary(rows: Iterable[Mapping[str, Any]], top: int = 3) -> list[tuple[int, str]]:
    """``(count, message)`` of the most frequent error messages (the last line of each error
    text) of failed and timed-out evaluations, most frequent first."""
    counts = collections.Counter(_message(r.get("error")) for r in rows if r.get("status") in ("failed", "timeout"))
    return [(count, msg) for msg, count in counts.most_common(top or None)]


GUARD_HELP = (
    "this script calls emews.search() at import time, without the guard "
    "`if __name__ == \"__main__\":`. emews starts its workers and optimizer with the 'spawn' "
    "method, which imports the script again in every new process, so each of them would start "
    "a search of its own. Put the call under the guard, as with any multiprocessing code:\n\n"
    "    if __name__ == \"__main__\":\n"
    "        res = emews.search(...)\n\n"
    "(In a notebook nothing needs to change: objectives defined there are shipped to the "
    "workers by value.)"
)


def in_spawn_bootstrap() -> bool:
    """True while a process started with 'spawn' re-imports its parent's main module."""
    mp = sys.modules.get("multiprocessing.process")
    return bool(mp is not None and getattr(mp.current_process(), "_inheriting", False))


def _marker(parent_pid: int) -> str:
    return os.path.join(tempfile.gettempdir(), f"emews-unguarded-{parent_pid}")


def refuse_spawn_reimport() -> None:
    """In a spawned child re-importing a script that calls :func:`emews.search` unguarded:
    leave a marker for the parent (see :func:`explain_unguarded`) and end the child at once,
    before it creates an experiment directory or starts a search of its own."""
    if not in_spawn_bootstrap():
        try:  # a stale one, from an earlier process of the same pid
            os.unlink(_marker(os.getpid()))
        except OSError:
            pass
        return
    try:
        os.close(os.open(_marker(os.getppid()), os.O_CREAT | os.O_WRONLY, 0o600))
    except OSError:
        pass
    os._exit(1)


def explain_unguarded(error: BaseException) -> BaseException:
    """In the parent: ``error`` (the pool's "worker died while loading") replaced by one
    paragraph saying what to do, when a child left the unguarded-script marker."""
    marker = _marker(os.getpid())
    if not os.path.exists(marker):
        return error
    try:
        os.unlink(marker)
    except OSError:
        pass
    from .errors import ObjectiveError

    return ObjectiveError(GUARD_HELP)


def failure_lines(rows: Iterable[Mapping[str, Any]], top: int = 3, width: int = 200) -> list[str]:
    """Console lines naming the most frequent error messages of the failed evaluations."""
    common = error_summary(rows, top=0)
    out = []
    for count, msg in common[:top]:
        msg = msg if len(msg) <= width else msg[: width - 3] + "..."
        out.append(f"emews:   {count} x {msg}")
    if len(common) > top:
        rest = sum(c for c, _ in common[top:])
        out.append(f"emews:   {rest} more with {len(common) - top} other message(s)")
    return (["emews: most frequent errors:"] + out) if out else []


def exit_status(results: Any) -> int:
    """0, or :data:`NO_SUCCESS_EXIT` when evaluations finished and none of them succeeded."""
    failures = results.count("failed") + results.count("timeout")
    return NO_SUCCESS_EXIT if failures and results.best is None else 0


def warn_partial_grid(optimizer: Any, space: Any, settings: Mapping[str, Any], max_evals: int,
                      seed: int | None = None) -> int | None:
    """Warn when a grid search in grid order has more points than ``max_evals``: only the
    first points would run (all at the lowest values of the first dimensions). Returns the
    grid's size (``None`` for another optimizer)."""
    import logging

    from .optimizers import GridSearch

    if not (inspect.isclass(optimizer) and issubclass(optimizer, GridSearch)):
        return None
    try:
        size = optimizer(space, seed, **settings).size
    except Exception:  # noqa: BLE001 - the optimizer process reports bad grid settings itself
        return None
    if max_evals < size and not settings.get("shuffle"):
        first = space.names[0] if space.names else "?"
        logging.getLogger("emews").warning(
            "the grid has %d points but max_evals is %d: only the first %d, in grid order, will run (the first "
            "dimensions, such as %s, barely vary); set optimizer.settings.shuffle: true for a random subset of the "
            "grid, max_evals: %d for all of it, or fewer points", size, max_evals, max_evals, first, size)
    return size


def check_optimizer(optimizer: Any, cfg: Any) -> None:
    """Config-time checks of the resolved optimizer, before any directory is created:
    its settings (:func:`check_optimizer_settings`) and a grid larger than the budget
    (:func:`warn_partial_grid`)."""
    settings = dict(cfg.optimizer_settings or {})
    check_optimizer_settings(optimizer, settings, cfg.source, cfg.optimizer if isinstance(cfg.optimizer, str) else None)
    declared = getattr(optimizer, "check_settings", None)  # an optimizer's own checks of its values
    if callable(declared):
        declared(settings, cfg.source)
    warn_partial_grid(optimizer, cfg.space, settings, cfg.max_evals, cfg.seed)
