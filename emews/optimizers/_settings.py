"""Optimizer settings against the optimizer's signature, before anything is created.

* :func:`check_optimizer_settings`: a setting the optimizer does not take (built-ins and
  plug-ins alike) is a :class:`~emews.errors.ConfigError` with a "did you mean";
* :func:`warn_partial_grid`: a grid search in grid order larger than the budget.

The values are checked by the optimizer itself (:meth:`Optimizer.check_settings`, run by
:func:`emews.optimizers.check_optimizer_settings_once`).
"""

from __future__ import annotations

import difflib
import inspect
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from ..errors import ConfigError

__all__ = ["accepted_settings", "check_optimizer_settings", "check_optimizer_settings_once", "warn_partial_grid",
           "check_optimizer"]

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
    from ._base import _Seeded

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


def warn_partial_grid(optimizer: Any, space: Any, settings: Mapping[str, Any], max_evals: int,
                      seed: int | None = None) -> int | None:
    """Warn when a grid search in grid order has more points than ``max_evals``: only the
    first points would run (all at the lowest values of the first dimensions). Returns the
    grid's size (``None`` for another optimizer)."""
    import logging

    from ._grid import GridSearch

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
    warn_partial_grid(optimizer, cfg.space, settings, cfg.max_evals, cfg.seed)


_NAMED = re.compile(r"\b([A-Za-z_]\w*)\s*=")


def _setting_named(message: str, settings: Mapping[str, Any]) -> str | None:
    """The setting a message is about: the first ``name=`` in it that is a setting given."""
    for m in _NAMED.finditer(message):
        if m.group(1) in settings:
            return m.group(1)
    for k in settings:  # else any setting named in quotes
        if f"{k!r}" in message:
            return str(k)
    for k, v in settings.items():  # else a setting whose (file name) value the message quotes
        if isinstance(v, str) and len(v) > 2 and v in message:
            return str(k)
    return None


def check_optimizer_settings_once(optimizer: Any, space: Any, settings: Mapping[str, Any], seed: int | None,
                                  source: str | None, prefix: str = "optimizer.settings") -> None:
    """Run the optimizer's declared check (``check_settings``, see
    :class:`~emews.optimizers.Optimizer`) in this process, turning what it raises into a
    :class:`~emews.errors.ConfigError` naming ``source``, ``optimizer.settings.<name>`` and
    the value. An optimizer without ``check_settings`` (a plain function) has only its
    signature checked, elsewhere."""
    check = getattr(optimizer, "check_settings", None)
    if check is None or not callable(check):
        return
    try:
        check(space, dict(settings), seed)
    except ConfigError as e:
        key = e.key or ""
        if e.source is not None and e.source != source:  # a file a setting names (an initial population)
            name = key.rpartition(".")[2] if key.startswith(prefix + ".") else None
            if name not in settings:
                name = next((k for k, v in settings.items() if isinstance(v, str) and Path(v) == Path(e.source)), None)
            text = str(e)
            if key.startswith(prefix + "."):  # the file's own error already names the setting: once is enough
                text = f"{e.source}: " + text.removeprefix(f"{e.source}: ").removeprefix(f"{key}: ")
            raise ConfigError(text, source, f"{prefix}.{name}" if name else prefix) from None
        text = str(e)
        if key and text.startswith(f"{key}: "):
            text = text[len(key) + 2:]
        if not key.startswith(prefix):
            key = f"{prefix}.{key}" if key else (f"{prefix}.{_setting_named(text, settings)}"
                                                  if _setting_named(text, settings) else prefix)
        raise ConfigError(text, source, key) from None
    except Exception as e:  # noqa: BLE001 - a plug-in's __init__ may raise anything
        text = str(e.args[0]) if isinstance(e, KeyError) and e.args else str(e)
        if not isinstance(e, (ValueError, TypeError, KeyError)):
            text = f"the optimizer cannot be built with these settings: {type(e).__name__}: {text}"
        name = _setting_named(text, settings)
        if name is not None and repr(settings[name]) not in text:
            text += f" (value {settings[name]!r})"
        raise ConfigError(text, source, f"{prefix}.{name}" if name else prefix) from None
