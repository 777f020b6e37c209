"""Hyperband (Li et al., JMLR 2018) over asynchronous successive-halving brackets."""

from __future__ import annotations

import contextlib
import math
import zlib
from collections.abc import Hashable, Iterable
from typing import Any

from ..errors import ConfigError
from ._asha import ASHA
from ._base import Stopper
from ._common import number_setting, reject_unknown

__all__ = ["Hyperband"]

_MASK = (1 << 64) - 1


def stable_hash(task_id: Hashable) -> int:
    """A hash of a task key that is the same in every process and session.

    An ``int`` is mixed with SplitMix64's finaliser (so consecutive ids spread over the
    brackets); a tuple ``(task_id, attempt)`` hashes as its first item, so that a retry stays
    in its task's bracket; anything else hashes its ``repr`` with CRC-32.
    """
    if isinstance(task_id, tuple) and task_id:
        task_id = task_id[0]
    if isinstance(task_id, int) and not isinstance(task_id, bool):
        z = (task_id + 0x9E3779B97F4A7C15) & _MASK
        z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & _MASK
        z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & _MASK
        return z ^ (z >> 31)
    return zlib.crc32(repr(task_id).encode())


class Hyperband(Stopper):
    """Several :class:`ASHA` brackets that differ in how early they first stop a task.

    With ``eta = reduction_factor`` and ``s_max = floor(log_eta(max_resource / min_resource))``
    there are ``n_brackets`` (default ``s_max + 1``) brackets; bracket ``i`` is an ASHA whose
    first rung is ``min_resource * eta**i``. Bracket 0 stops earliest and most often; when
    ``n_brackets = s_max + 1`` the last one has no rung below ``max_resource`` when
    ``max_resource / min_resource`` is a power of ``eta``, so its tasks always run to the end.

    Each task goes to one bracket, chosen from its key alone (:func:`stable_hash` modulo the
    total weight), with weights proportional to Hyperband's number of configurations per
    bracket: bracket ``i`` with ``s = n_brackets - 1 - i`` halvings weighs
    ``ceil(n_brackets * eta**s / (s + 1))`` (Algorithm 1's ``n``, and Optuna's
    ``HyperbandPruner``). The same key always lands in the same bracket, in any session, so a
    resume rebuilds the same brackets. Losses are compared only within a bracket.

    Settings:
        min_resource: the first rung of bracket 0.
        max_resource: the step at which a task is complete (required).
        reduction_factor: ``eta`` of every bracket.
        n_brackets: how many brackets (1 is plain ASHA), at most ``s_max + 1``.

    Cost: the bracket's :class:`ASHA` cost plus O(1) to find the bracket.
    """

    def __init__(self, min_resource: float = 1, max_resource: float | None = None, reduction_factor: float = 3,
                 n_brackets: int | None = None, **unknown: Any):
        reject_unknown("Hyperband", unknown, ("min_resource", "max_resource", "reduction_factor", "n_brackets"))
        number_setting("hyperband", "min_resource", min_resource, above=0)
        if max_resource is None:
            raise ConfigError("hyperband: max_resource is required (the step at which a task is complete), "
                              "got max_resource=None", key="max_resource")
        number_setting("hyperband", "max_resource", max_resource, above=0)
        if min_resource > max_resource:
            raise ConfigError(f"hyperband: min_resource must be <= max_resource, got min_resource={min_resource!r} "
                              f"> max_resource={max_resource!r}", key="min_resource")
        eta = number_setting("hyperband", "reduction_factor", reduction_factor, above=1)
        s_max = 0
        while min_resource * eta ** (s_max + 1) <= max_resource * (1 + 1e-12):
            s_max += 1
        if n_brackets is None:
            n_brackets = s_max + 1
        number_setting("hyperband", "n_brackets", n_brackets, integer=True, minimum=1)
        if n_brackets > s_max + 1:
            raise ConfigError(f"hyperband: at most {s_max + 1} brackets fit between min_resource={min_resource!r} "
                              f"and max_resource={max_resource!r} with reduction_factor={eta!r}; "
                              f"got n_brackets={n_brackets!r}", key="n_brackets")
        self.min_resource, self.max_resource, self.reduction_factor = min_resource, max_resource, eta
        self.n_brackets = n_brackets
        self.brackets = [ASHA(min_resource=min_resource * eta ** i, max_resource=max_resource, reduction_factor=eta)
                         for i in range(n_brackets)]
        self.weights = [math.ceil(n_brackets * eta ** s / (s + 1)) for s in range(n_brackets - 1, -1, -1)]
        self._bounds = []
        total = 0
        for w in self.weights:
            total += w
            self._bounds.append(total)

    def bracket_of(self, task_id: Hashable) -> int:
        """The index of the bracket a task key belongs to."""
        h = stable_hash(task_id) % self._bounds[-1]
        for i, b in enumerate(self._bounds):  # a handful of brackets: a scan is O(1)
            if h < b:
                return i
        raise AssertionError("unreachable")  # pragma: no cover

    def report(self, task_id: Hashable, step: float, loss: float) -> bool:
        return self.brackets[self.bracket_of(task_id)].report(task_id, step, loss)

    def finished(self, task_id: Hashable, status: str, step: float | None, loss: float | None) -> None:
        self.brackets[self.bracket_of(task_id)].finished(task_id, status, step, loss)

    def restore(self, reports: Iterable[tuple[Hashable, float, float]]) -> None:
        """Replay earlier sessions' reports (see :meth:`Stopper.restore`), without warning again."""
        with contextlib.ExitStack() as quiet:
            for b in self.brackets:
                quiet.enter_context(b._checks.quietly())
            for task_id, step, loss in reports:
                self.report(task_id, step, loss)
