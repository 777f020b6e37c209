"""Small objectives for the quickstart, tests and benchmarks (importable by name)."""

from __future__ import annotations

import math
import time


def sphere(params: dict) -> float:
    """Sum of squares of the numeric parameters ``x0..xN`` (minimum 0 at the origin)."""
    return float(sum(v * v for k, v in params.items() if k.startswith("x")))


def branin(params: dict) -> float:
    """Branin-Hoo on x in [-5, 10], y in [0, 15]; minimum 0.397887."""
    x, y = params["x"], params["y"]
    a, b, c, r, s, t = 1.0, 5.1 / (4 * math.pi**2), 5 / math.pi, 6.0, 10.0, 1 / (8 * math.pi)
    return a * (y - b * x**2 + c * x - r) ** 2 + s * (1 - t) * math.cos(x) + s


def quickstart(params: dict) -> dict:
    """A toy 'training run': a loss surface over learning rate, batch size, optimizer and
    dropout, with a few milliseconds of pretend work. Returns the loss and extra metrics."""
    lr, batch, opt, dropout = params["learning_rate"], params["batch_size"], params["optimizer"], params["dropout"]
    time.sleep(params.get("sleep", 0.01))
    loss = (math.log10(lr) + 2.5) ** 2 + 0.3 * (math.log2(batch) - 6) ** 2 / 4 + 2 * (dropout - 0.2) ** 2
    loss += {"adam": 0.0, "sgd": 0.4, "rmsprop": 0.2}.get(opt, 1.0)
    return {"loss": loss, "accuracy": 1 / (1 + loss)}


def noop(params: dict) -> float:
    """Does nothing; for dispatch benchmarks."""
    return 0.0
