"""Random search: the reference ask/tell plug-in (copy this file to start your own)."""

from __future__ import annotations

import numpy as np

from ._base import Optimizer


class RandomSearch(Optimizer):
    """Independent uniform samples (log-uniform on log dimensions).

    Settings: none.
    """

    lookahead = 64  # proposals cost nothing: keep a few queued so workers never wait

    def ask(self, n: int) -> list[dict]:
        return self.space.sample(n, self.rng)

    def restore(self, history, pending) -> None:
        """Resumed experiment: continue on a fresh stream, so the first session's points are
        not drawn again (the stream still depends only on the seed and the history size)."""
        self.rng = np.random.default_rng(None if self.seed is None else [self.seed, len(history) + len(pending)])
