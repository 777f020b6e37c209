"""Test problems for the optimizer quality benchmark: a space, an objective and its optimum."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from emews.space import Bool, Categorical, Int, Ordinal, Real, Space

__all__ = ["Problem", "PROBLEMS"]


@dataclass(frozen=True)
class Problem:
    """A benchmark problem (minimize ``objective`` over ``space``)."""

    name: str
    space: Space
    objective: Callable[[dict], float]
    optimum: float


def branin(p: dict) -> float:
    """Branin-Hoo, x in [-5, 10], y in [0, 15]; minimum 0.397887 (three minimizers)."""
    x, y = p["x"], p["y"]
    b, c, t = 5.1 / (4 * math.pi**2), 5 / math.pi, 1 / (8 * math.pi)
    return (y - b * x**2 + c * x - 6) ** 2 + 10 * (1 - t) * math.cos(x) + 10


_H6_A = np.array([[10, 3, 17, 3.5, 1.7, 8], [0.05, 10, 17, 0.1, 8, 14],
                  [3, 3.5, 1.7, 10, 17, 8], [17, 8, 0.05, 10, 0.1, 14]])
_H6_P = 1e-4 * np.array([[1312, 1696, 5569, 124, 8283, 5886], [2329, 4135, 8307, 3736, 1004, 9991],
                         [2348, 1451, 3522, 2883, 3047, 6650], [4047, 8828, 8732, 5743, 1091, 381]])
_H6_ALPHA = np.array([1.0, 1.2, 3.0, 3.2])


def hartmann6(p: dict) -> float:
    """Hartmann 6-D on [0, 1]^6; minimum -3.32237."""
    x = np.array([p[f"x{i}"] for i in range(6)])
    return float(-(_H6_ALPHA * np.exp(-(_H6_A * (x - _H6_P) ** 2).sum(axis=1))).sum())


def rosenbrock5(p: dict) -> float:
    """Rosenbrock 5-D on [-5, 10]^5; minimum 0 at (1, ..., 1)."""
    x = [p[f"x{i}"] for i in range(5)]
    return float(sum(100 * (x[i + 1] - x[i] ** 2) ** 2 + (1 - x[i]) ** 2 for i in range(4)))


def mixed(p: dict) -> float:
    """A synthetic training run over a mixed space; minimum 0.

    The best learning rate depends on the activation (an interaction a model must learn),
    the batch size is ordinal, the width an integer, residual a flag.
    """
    shift = {"relu": 0.0, "tanh": 0.7, "elu": 0.3, "sigmoid": 1.0}[p["activation"]]
    offset = {"relu": 0.0, "tanh": 0.25, "elu": 0.1, "sigmoid": 0.6}[p["activation"]]
    loss = (math.log10(p["learning_rate"]) + 3.0 - shift) ** 2
    loss += ((p["units"] - 40) / 20) ** 2
    loss += 0.25 * (math.log2(p["batch_size"]) - 6) ** 2
    loss += (p["dropout"] - 0.3) ** 2 * 4
    loss += offset + (0.0 if p["residual"] else 0.3)
    return float(loss)


PROBLEMS: dict[str, Problem] = {
    "branin": Problem("branin", Space([Real("x", -5.0, 10.0), Real("y", 0.0, 15.0)]), branin, 0.397887),
    "hartmann6": Problem("hartmann6", Space([Real(f"x{i}", 0.0, 1.0) for i in range(6)]), hartmann6, -3.32237),
    "rosenbrock5": Problem("rosenbrock5", Space([Real(f"x{i}", -5.0, 10.0) for i in range(5)]), rosenbrock5, 0.0),
    "mixed": Problem("mixed", Space([
        Real("learning_rate", 1e-5, 1e-1, log=True),
        Real("dropout", 0.0, 0.9),
        Int("units", 1, 128),
        Ordinal("batch_size", [16, 32, 64, 128, 256, 512]),
        Categorical("activation", ["relu", "tanh", "elu", "sigmoid"]),
        Bool("residual"),
    ]), mixed, 0.0),
}
