"""Random search: the reference ask/tell plug-in (copy this file to start your own)."""

from __future__ import annotations

from ._base import Optimizer


class RandomSearch(Optimizer):
    """Independent uniform samples (log-uniform on log dimensions).

    Settings: none.
    """

    lookahead = 64  # proposals cost nothing: keep a few queued so workers never wait

    def ask(self, n: int) -> list[dict]:
        return self.space.sample(n, self.rng)
