"""Test problems for the optimizer quality benchmark: a space, an objective and its optimum."""

from __future__ import annotations

import math
import zlib
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from emews.space import Bool, Categorical, Int, Ordinal, Real, Space

__all__ = ["Problem", "PROBLEMS"]


@dataclass(frozen=True)
class Problem:
    """A benchmark problem (minimize ``objective`` over ``space``).

    ``truth`` is the noise-free objective of a noisy problem (regret is measured on it, at the
    point whose observed loss was best); ``None`` when ``objective`` is noise-free.
    """

    name: str
    space: Space
    objective: Callable[[dict], float]
    optimum: float
    truth: Callable[[dict], float] | None = None

    def true_loss(self, params: dict) -> float:
        return (self.truth or self.objective)(params)


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


def levy8(p: dict) -> float:
    """Levy 8-D on [-10, 10]^8; minimum 0 at (1, ..., 1)."""
    w = 1 + (np.array([p[f"x{i}"] for i in range(8)]) - 1) / 4
    mid = ((w[:-1] - 1) ** 2 * (1 + 10 * np.sin(np.pi * w[:-1] + 1) ** 2)).sum()
    return float(np.sin(np.pi * w[0]) ** 2 + mid + (w[-1] - 1) ** 2 * (1 + np.sin(2 * np.pi * w[-1]) ** 2))


def train8(p: dict) -> float:
    """A synthetic 8-D numeric training run (log-scale reals, integers, an ordinal); minimum 0.

    Interactions: the best learning rate moves with the batch size and the best dropout with
    the width, as in real networks.
    """
    lr = math.log10(p["learning_rate"])
    bs = math.log2(p["batch_size"])
    loss = (lr + 3.0 - 0.3 * (bs - 6)) ** 2
    loss += 2.0 * (p["dropout"] - 0.1 - 0.002 * p["units"]) ** 2
    loss += ((p["units"] - 300) / 200) ** 2
    loss += 0.15 * (p["layers"] - 4) ** 2
    loss += 0.05 * (bs - 6) ** 2
    loss += 0.5 * (math.log10(p["weight_decay"]) + 4) ** 2 / 4
    loss += 3.0 * (p["momentum"] - 0.9) ** 2
    loss += 0.2 * (p["warmup"] - 3) ** 2 / 9
    return float(loss)


_ARCH = {"cnn": 0.0, "rnn": 0.6, "mlp": 0.9, "transformer": 0.2}
_OPT = {"adam": 0.0, "sgd": 0.35, "rmsprop": 0.15}
_ACT = {"relu": 0.1, "gelu": 0.0, "tanh": 0.4, "elu": 0.15, "sigmoid": 0.8}
_NORM = {"batch": 0.0, "layer": 0.05, "none": 0.5}
#: best log10 learning rate per (architecture, optimizer): an interaction across categories
_LR = {("cnn", "adam"): -3.0, ("cnn", "sgd"): -1.5, ("cnn", "rmsprop"): -3.5,
       ("rnn", "adam"): -3.5, ("rnn", "sgd"): -2.0, ("rnn", "rmsprop"): -4.0,
       ("mlp", "adam"): -2.5, ("mlp", "sgd"): -1.0, ("mlp", "rmsprop"): -3.0,
       ("transformer", "adam"): -4.0, ("transformer", "sgd"): -2.5, ("transformer", "rmsprop"): -4.5}


def categorical4(p: dict) -> float:
    """Four categorical dimensions and two reals; minimum 0 (cnn, adam, gelu, batch norm).

    The best learning rate depends on the architecture and the optimizer together, the best
    dropout on the normalization.
    """
    arch, opt, act, norm = p["architecture"], p["optimizer"], p["activation"], p["norm"]
    loss = _ARCH[arch] * 0.5 + _OPT[opt] + _ACT[act] + _NORM[norm]
    if arch == "transformer" and norm == "batch":
        loss += 0.3  # transformers prefer layer norm ...
    if arch == "transformer" and norm == "layer":
        loss -= 0.05  # ... which makes (transformer, layer norm) a close second (0.1)
    loss += 0.5 * (math.log10(p["learning_rate"]) - _LR[arch, opt]) ** 2
    loss += 3.0 * (p["dropout"] - (0.1 if norm == "batch" else 0.3)) ** 2
    return float(loss)


def _noise(p: dict, sd: float) -> float:
    """Deterministic Gaussian noise from the parameters (a repeated point sees the same draw)."""
    seed = zlib.crc32(repr(sorted((k, round(v, 12) if isinstance(v, float) else v) for k, v in p.items())).encode())
    return float(np.random.default_rng(seed).normal(0.0, sd))


def hartmann6_noisy(p: dict) -> float:
    """Hartmann 6-D with Gaussian noise of sd 0.1 (3 % of its range)."""
    return hartmann6(p) + _noise(p, 0.1)


_CAT4_SPACE = Space([
    Categorical("architecture", ["cnn", "rnn", "mlp", "transformer"]),
    Categorical("optimizer", ["adam", "sgd", "rmsprop"]),
    Categorical("activation", ["relu", "gelu", "tanh", "elu", "sigmoid"]),
    Categorical("norm", ["batch", "layer", "none"]),
    Real("learning_rate", 1e-6, 1e-1, log=True),
    Real("dropout", 0.0, 0.8),
])
_TRAIN8_SPACE = Space([
    Real("learning_rate", 1e-6, 1e-0, log=True),
    Real("dropout", 0.0, 0.9),
    Real("momentum", 0.0, 0.99),
    Real("weight_decay", 1e-7, 1e-1, log=True),
    Int("units", 16, 1024, log=True),
    Int("layers", 1, 12),
    Int("warmup", 0, 10),
    Ordinal("batch_size", [8, 16, 32, 64, 128, 256, 512, 1024]),
])

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
    "levy8": Problem("levy8", Space([Real(f"x{i}", -10.0, 10.0) for i in range(8)]), levy8, 0.0),
    "train8": Problem("train8", _TRAIN8_SPACE, train8, 0.0),
    "categorical4": Problem("categorical4", _CAT4_SPACE, categorical4, 0.0),
    "hartmann6_noisy": Problem("hartmann6_noisy", Space([Real(f"x{i}", 0.0, 1.0) for i in range(6)]),
                               hartmann6_noisy, -3.32237, truth=hartmann6),
}
