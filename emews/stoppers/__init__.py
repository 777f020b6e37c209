"""Early stopping: rules that stop running tasks whose intermediate losses look bad.

Built-in names: ``median`` (:class:`MedianStopper`), ``asha`` (:class:`ASHA`) and
``hyperband`` (:class:`Hyperband`). Any other stopper is named ``package.module:Class``, a
subclass of :class:`Stopper` (or any class with the same two methods); check it with
:func:`emews.testing.stoppers.check_stopper`.

In a config::

    stopper: {name: asha, min_resource: 1, max_resource: 27, reduction_factor: 3}

The contract (see :mod:`emews.stoppers._base`): ``report(task_id, step, loss) -> bool``
(True: stop the task now; O(log n), no I/O), ``finished(task_id, status, step, loss)``, and
the optional ``restore(reports)``.

Wiring into the driver (for whoever connects runners and driver; these modules do no I/O
and import nothing above :mod:`emews.errors` and :func:`emews.optimizers.import_object`)::

    runner ──report(task_id, step, loss, metrics)──▶ driver ──report(key, step, loss)──▶ stopper
                                                       │ journal the report (and a stop)  ◀── True?
    worker ◀──────────── stop(task_id) ────────────────┘ when True
    result(task_id, status) ──▶ driver ──finished(key, status, step, loss)──▶ stopper

* The driver holds one stopper, built with :func:`from_config` (``None`` when the config has
  no ``stopper``), and calls it on its own thread: decisions take microseconds, so they never
  wait for the optimizer process.
* ``key`` is the task id, or ``(task_id, attempt)`` when retries are enabled, so a retry
  (which reports from its first step again) is judged afresh.
* A task stopped this way ends with status ``"stopped"`` and its last reported loss; the
  driver calls ``finished(key, "stopped", step, loss)`` when its result arrives. Reports that
  arrive between the decision and the stop keep answering True.
* A resident optimizer may stop a task itself through the queues (``queues.stop(task_id)``);
  the driver then sends the stop and calls ``finished`` the same way.
* Resume: build a fresh stopper, call ``restore(reports)`` with the journaled reports of the
  earlier sessions in their original order, then ``finished`` for every attempt the journal
  shows as ended (and for interrupted attempts, which run again under a new key).
"""

from __future__ import annotations

import difflib
import inspect
from collections.abc import Mapping
from typing import Any

from ..errors import ConfigError
from ._asha import ASHA
from ._base import Stopper
from ._hyperband import Hyperband, stable_hash
from ._median import MedianStopper

__all__ = ["Stopper", "MedianStopper", "ASHA", "Hyperband", "BUILTIN", "resolve", "from_config", "stable_hash"]

#: built-in stopper names -> classes (they import nothing heavy)
BUILTIN: dict[str, type[Stopper]] = {"median": MedianStopper, "asha": ASHA, "hyperband": Hyperband}


def resolve(name_or_obj: Any) -> Any:
    """Turn a stopper name, a ``package.module:Class`` path, a class or an instance into the
    class or instance.

    Raises:
        ConfigError: an unknown name (with the closest built-in one), or a path that cannot
            be imported.
    """
    if not isinstance(name_or_obj, str):
        return name_or_obj
    target = BUILTIN.get(name_or_obj)
    if target is not None:
        return target
    if ":" not in name_or_obj:
        close = difflib.get_close_matches(name_or_obj, list(BUILTIN), n=1)
        hint = f"did you mean {close[0]!r}? " if close else ""
        raise ConfigError(f"unknown stopper {name_or_obj!r}; {hint}built-in: {', '.join(BUILTIN)}, "
                          "or 'package.module:Class'")
    from ..optimizers import import_object  # the optimizers package is light; imported on use

    try:
        return import_object(name_or_obj, "stopper")
    except (ImportError, ValueError) as e:
        raise ConfigError(str(e)) from None


def from_config(spec: Any, source: str | None = None, key: str = "stopper") -> Stopper | None:
    """Build the stopper a config asks for.

    Args:
        spec: ``None`` (no early stopping), a name (``"asha"``, ``"pkg.mod:Class"``), a mapping
            ``{name: ..., <setting>: ...}`` (settings may also sit under ``settings:``), a
            class, or a ready instance (returned as is).
        source: the config file, for messages.
        key: the config key, for messages.

    Raises:
        ConfigError: an unknown stopper or setting (with a did-you-mean), or a bad value;
            the message names the file, the key and the value.
    """
    if spec is None:
        return None
    if isinstance(spec, Mapping):
        if "name" not in spec:
            raise ConfigError(f"needs a 'name' (one of {', '.join(BUILTIN)} or 'package.module:Class'), "
                              f"got {dict(spec)!r}", source, key)
        settings = {k: v for k, v in spec.items() if k not in ("name", "settings")}
        nested = spec.get("settings") or {}
        if not isinstance(nested, Mapping):
            raise ConfigError(f"must be a mapping, got {nested!r}", source, f"{key}.settings")
        settings.update(nested)
        name = spec["name"]
        name_key = f"{key}.name"
    else:
        name, settings, name_key = spec, {}, key
    try:
        target = resolve(name)
    except ConfigError as e:
        raise ConfigError(str(e), source, name_key) from None
    if not inspect.isclass(target):
        if settings:
            raise ConfigError(f"settings {sorted(settings)} given for a ready stopper object", source, key)
        _check_has_contract(target, source, name_key)
        return target
    _check_has_contract(target, source, name_key)
    _check_setting_names(target, settings, source, key)
    try:
        return target(**settings)
    except ConfigError as e:
        sub = f"{key}.{e.key}" if e.key else key
        raise ConfigError(str(e).removeprefix(f"{e.key}: ") if e.key else str(e), source, sub) from None
    except TypeError as e:
        raise ConfigError(str(e), source, key) from None


def _check_has_contract(target: Any, source: str | None, key: str) -> None:
    missing = [m for m in ("report", "finished") if not callable(getattr(target, m, None))]
    if missing:
        raise ConfigError(f"{target!r} is not a stopper: it has no {' and no '.join(missing)} method", source, key)


def _check_setting_names(cls: type, settings: Mapping[str, Any], source: str | None, key: str) -> None:
    """Unknown setting names, checked against the signature (with a did-you-mean) before the
    class is built, so that a plug-in with a plain signature gets the same message."""
    try:
        params = inspect.signature(cls).parameters
    except (TypeError, ValueError):  # pragma: no cover - builtins without a signature
        return
    allowed = [n for n, p in params.items() if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)]
    if any(p.kind is p.VAR_KEYWORD for p in params.values()) and cls not in BUILTIN.values():
        return
    for name, value in settings.items():
        if name not in allowed:
            close = difflib.get_close_matches(str(name), allowed, n=1)
            hint = f"; did you mean {close[0]!r}?" if close else (
                f"; its settings are {', '.join(allowed)}" if allowed else "; it takes no settings")
            raise ConfigError(f"unknown setting {name!r} (value {value!r}) for stopper {cls.__name__}{hint}",
                              source, f"{key}.{name}")
