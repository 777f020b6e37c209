"""The two optimizer styles.

* :class:`Optimizer` — ask/tell. The driver's adapter calls ``ask(n)`` for ``n`` new
  parameter sets and ``tell(results)`` with every finished :class:`~emews.task.Result`
  (failed ones too). It is the easy style: a reference plug-in is ~20 lines
  (see :mod:`emews.optimizers._random`).
* :class:`ResidentOptimizer` (or a plain function with the same signature as ``run``) —
  the EMEWS style: the optimizer owns its loop and calls ``queues.evaluate(batch)``,
  or ``queues.put(batch)`` / ``queues.get()`` itself.

Both run in a process of their own, beside the driver.

Several objectives and constraints (the config's ``objectives`` and ``constraints``): an
optimizer learns of them only from the results it is told. Each finished result then carries
:attr:`~emews.task.Result.objectives` (the values in the config's order, each *to minimize*:
an objective to maximize arrives negated; ``loss`` is the first of them) and, with
constraints, :attr:`~emews.task.Result.violation` (0 when feasible, else by how much the
bounds are exceeded, ``inf`` for a missing metric). With one objective and no constraint both
are ``None`` and ``loss`` is all there is. An optimizer that can search with several
objectives or constraints says so with ``multi_objective = True``; a config that asks for
them with any other optimizer is refused before the search starts (exit 2).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np

from ..space import Space

if TYPE_CHECKING:  # pragma: no cover
    from ..queues import OptimizerQueues
    from ..task import Result

__all__ = ["Optimizer", "ResidentOptimizer"]


class _Seeded:
    """What both styles share: the space, the seed and a seeded generator; unknown settings
    (keywords a subclass did not take) are a ``TypeError`` naming the setting and value.

    The settings checks the launching process runs before anything is created go through
    :meth:`check_settings` and :attr:`path_settings`: the one declared interface by which an
    optimizer validates its own settings.
    """

    #: settings that name files: a relative path given in a config file is read relative to
    #: the config file's directory (as ``space_file``)
    path_settings: ClassVar[tuple[str, ...]] = ()
    #: True when the optimizer can search with several objectives or constraints: it reads
    #: ``Result.objectives`` and ``Result.violation`` of the results it is told (see the module
    #: docstring); False refuses a config with them
    multi_objective: ClassVar[bool] = False

    @classmethod
    def check_settings(cls, space: Space, settings: Mapping[str, Any], seed: int | None = None) -> None:
        """Raise for settings this optimizer refuses; called once in the launching process,
        before the experiment directory exists (the optimizer's own process builds it again).

        The default builds the optimizer once and discards it, so every check its
        ``__init__`` makes (names, values, files it reads) happens there. Raise a
        :class:`~emews.errors.ConfigError` whose ``key`` is the setting's name, or a
        ``ValueError``/``TypeError`` whose message names it (``name=value``). Override it
        when building is expensive or has side effects.
        """
        cls(space, seed=seed, **dict(settings))

    def __init__(self, space: Space, seed: int | None = None, **settings: Any):
        if settings:
            name = sorted(settings)[0]
            raise TypeError(f"{type(self).__name__} got an unknown setting {name!r} (value {settings[name]!r})")
        self.space = space
        self.seed = seed
        self.rng = np.random.default_rng(seed)


class Optimizer(_Seeded):
    """Base class of ask/tell optimizers.

    Subclasses implement :meth:`ask` and usually :meth:`tell`. Settings from the config's
    ``optimizer.settings`` arrive as keyword arguments; reject unknown ones with a
    ``TypeError`` (the default when your ``__init__`` lists its settings explicitly).

    Attributes:
        space: the :class:`~emews.space.Space` searched.
        rng: a ``numpy.random.Generator`` seeded from ``seed``: use it for every random draw
            so seeded runs repeat.
        lookahead: how many proposals the adapter may ask for beyond the free workers.
            Cheap, model-free optimizers set it > 0 so workers never wait for them.

    Example:
        >>> class Halving(Optimizer):
        ...     def ask(self, n):
        ...         return self.space.sample(n, self.rng)
    """

    lookahead: int = 0

    def ask(self, n: int) -> list[dict]:
        """Return ``n`` (or fewer, when the optimizer is done) new parameter dicts."""
        raise NotImplementedError

    def tell(self, results: Sequence[Result]) -> None:
        """Receive finished evaluations, failed ones included (``result.ok`` is False)."""

    def done(self) -> bool:
        """True when the optimizer has nothing more to propose (e.g. a grid is exhausted)."""
        return False

    def restore(self, history: Sequence[Result], pending: Sequence[dict]) -> None:
        """Pick up a resumed experiment; called once, before the first :meth:`ask`.

        Args:
            history: the earlier sessions' finished results, in completion order.
            pending: the parameters of tasks that were interrupted and are being run again
                (their results come through :meth:`tell` like any other).

        The default tells the history (``self.tell(history)``). Override it when ``tell``
        alone would not restore the state, e.g. to move a random stream past the points
        already drawn (the built-in ``random`` does), or to skip finished points (``grid``).
        """
        if history:
            self.tell(list(history))

    def log(self) -> dict | None:
        """Optional: a record (dict) to journal after each ``tell``, e.g. a generation summary."""
        return None


class ResidentOptimizer(_Seeded):
    """Base class of optimizers that own their loop (the EMEWS inversion of control).

    Implement :meth:`run`; it receives :class:`~emews.queues.OptimizerQueues` and returns
    when the search is over. ``queues.evaluate(list_of_params)`` puts a batch and blocks until
    all its results are in; when the driver has stopped the search it raises
    :class:`~emews.errors.StopSearch`, which ``run`` may simply let propagate.

    A plain function ``run(queues, space, seed=None, **settings)`` works the same way.
    """

    def run(self, queues: OptimizerQueues) -> None:
        raise NotImplementedError
