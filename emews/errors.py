"""Exceptions raised by emews.

Every user-facing error derives from :class:`EmewsError`, and from the builtin type a user
would expect (``ValueError`` for bad values, ``ImportError``-like problems are reported as
:class:`ObjectiveError`). Messages name the file, key and value where there is one.
"""

from __future__ import annotations

__all__ = [
    "EmewsError",
    "ConfigError",
    "SpaceError",
    "ObjectiveError",
    "OptimizerError",
    "StopSearch",
    "Stopped",
]


class EmewsError(Exception):
    """Base class of every emews error."""


class ConfigError(EmewsError, ValueError):
    """A configuration value is missing, unknown or invalid.

    Args:
        message: what is wrong and what would be right.
        source: the file (or ``"<dict>"``) the value came from.
        key: dotted path of the key, e.g. ``space.learning_rate.low``.
    """

    def __init__(self, message: str, source: str | None = None, key: str | None = None):
        self.source = source
        self.key = key
        where = ""
        if source and key:
            where = f"{source}: {key}: "
        elif source:
            where = f"{source}: "
        elif key:
            where = f"{key}: "
        super().__init__(where + message)


class SpaceError(ConfigError):
    """A search-space definition or a parameter set does not fit the space."""


class ObjectiveError(EmewsError):
    """The objective cannot be imported or started."""


class OptimizerError(EmewsError):
    """The optimizer cannot be found, built, or it failed while running."""


class StopSearch(EmewsError):
    """Raised inside a resident optimizer loop when the driver has stopped the search
    (budget or time spent, or an error elsewhere). A loop may let it propagate: it is the
    normal way for a resident loop to end."""


class Stopped(EmewsError):
    """Raised inside an objective to end its attempt early (what ``trial.report`` returning
    True asks for): the attempt ends with status ``stopped`` and its last reported loss.
    :func:`emews.report_step` raises it when the driver has stopped the task (``raise_on_stop``)."""
