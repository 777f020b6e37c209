"""Random search: the reference ask/tell plug-in (copy this file to start your own)."""

from __future__ import annotations

from ._base import Optimizer


class RandomSearch(Optimizer):
    """Independent uniform samples (log-uniform on log dimensions).

    Settings: none.

    The points form one sequence, whatever the batching: point ``i`` (task ``i`` of a fresh
    experiment) is row ``i`` of a stream of unit-cube rows drawn row by row from the seeded
    generator, mapped onto the space with :meth:`~emews.space.Space.from_unit`. Asking 66
    points and then 1 gives the same points as 65 and then 2, so the worker count, the result
    arrival order and the objective's kind (plain, trial, command) do not change them.
    """

    lookahead = 64  # proposals cost nothing: keep a few queued so workers never wait
    multi_objective = True  # proposals never read the losses: any objectives do

    def __init__(self, space, seed: int | None = None):
        super().__init__(space, seed)
        self.columns = len(space.searchable)

    def ask(self, n: int) -> list[dict]:
        # rng.random((n, k)) fills row by row: n rows then m rows are the first n + m rows
        return self.space.from_unit(self.rng.random((max(0, n), self.columns)))[: max(0, n)]

    def restore(self, history, pending) -> None:
        """Resumed experiment: move the stream past the points already run or pending, so the
        first session's points are not drawn again (the next point is the one an
        uninterrupted search would have drawn next)."""
        skip = len(history) + len(pending)
        while skip > 0:  # in chunks: a long history need not be held at once
            step = min(skip, 100_000)
            self.rng.random((step, self.columns))
            skip -= step
