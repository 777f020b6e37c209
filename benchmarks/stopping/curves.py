"""A learning-curve problem for the early-stopping benchmark.

Four hyperparameters of a made-up network (``lr`` log-uniform 1e-4..1e-1, ``width``
log-uniform 16..1024, ``dropout`` 0..0.7, ``batch`` in 16..256) set a validation-loss curve
over epochs ``e = 1 .. MAX_EPOCHS`` (81)::

    true(e) = floor + (1 - floor) * exp(-e / tau) + overfit * max(0, e - 2 tau) / MAX_EPOCHS
    loss(e) = true(e) * (1 + noise)

How the shapes were chosen — to look like the validation curves of tabular benchmarks
(LCBench, NAS-Bench-201) and of the CANDLE models, and so that stopping early has a real cost:

* ``floor``, the loss a long run approaches (0.10 at best), has its optimum inside the box:
  a learning rate near 10^-2.35 (higher for bigger batches), a wide network, a dropout that
  grows with the width — the usual one-dimensional slices of a tuning surface. Random points
  mostly land far from it (median final loss about 0.5, 1 % below 0.12).
* ``tau`` (epochs to cover 63 % of the way down) falls with the learning rate and grows with
  the batch size and the dropout: low learning rates learn slowly, and the best points are
  not the fastest, so an early rung misranks some of them.
* ``overfit``: a wide network with little dropout and a high learning rate reaches its best
  loss early and then climbs (up to +0.45 by the last epoch): crossing curves that start well
  and end badly, which a stopping rule keeps by mistake (a quarter of the points lose more
  than 0.05 between their best epoch and the last).
* noise: multiplicative Gaussian, standard deviation 3 % at batch 16 falling as
  sqrt(16 / batch), independent across epochs, seeded by (seed, trial, epoch) — every method
  sees the same noise for the same trial.

Two settings of the shapes: ``default`` (Spearman correlation of the loss at epoch 1, 3, 9,
27 with the final loss about 0.80, 0.86, 0.93, 0.98: early epochs are informative but
fallible, as in LCBench) and ``crossing`` (slower, more varied learners and flatter floors:
0.55, 0.62, 0.71, 0.90 — early epochs mislead often; a stress test where aggressive
stopping loses). ``run.py`` prints the correlations it ran with.

An epoch takes ``(width / 64) ** 0.5 * (64 / batch) ** 0.3`` simulated seconds times a
log-normal jitter fixed per trial (sd 0.3): trials differ in speed, as real ones do.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass

import numpy as np

from emews.space import Int, Ordinal, Real, Space

__all__ = ["MAX_EPOCHS", "SHAPES", "space", "Curve", "make_curve", "rank_correlations"]

MAX_EPOCHS = 81

#: the coefficients of the two problems (see the module docstring)
SHAPES = {
    "default": {"lr": 3.0, "width": 0.4, "dropout": 0.8, "tau0": 1.5, "tau1": 10.0, "tau_lr": 1.0,
                "overfit": 0.45, "noise": 0.03},
    "crossing": {"lr": 1.5, "width": 0.25, "dropout": 0.4, "tau0": 2.0, "tau1": 60.0, "tau_lr": 2.0,
                 "overfit": 0.45, "noise": 0.03},
}


def space() -> Space:
    return Space([
        Real("lr", 1e-4, 1e-1, log=True),
        Int("width", 16, 1024, log=True),
        Real("dropout", 0.0, 0.7),
        Ordinal("batch", [16, 32, 64, 128, 256]),
    ])


@dataclass(frozen=True)
class Curve:
    """One trial's curve: ``loss(epoch)`` with noise, ``true(epoch)`` without, and the time
    one epoch takes."""

    floor: float
    tau: float
    overfit: float
    sigma: float
    epoch_time: float
    seed: tuple

    def true(self, epoch: int) -> float:
        return (self.floor + (1.0 - self.floor) * math.exp(-epoch / self.tau)
                + self.overfit * max(0.0, epoch - 2.0 * self.tau) / MAX_EPOCHS)

    def loss(self, epoch: int) -> float:
        rng = random.Random(hash(self.seed + (epoch,)))  # a tuple of ints: the same in every process
        return self.true(epoch) * (1.0 + rng.gauss(0.0, self.sigma))


def make_curve(params: dict, seed: int, trial: int, shapes: str = "default") -> Curve:
    k = SHAPES[shapes]
    u = (math.log10(params["lr"]) + 4.0) / 3.0           # 0 .. 1
    c = (math.log2(params["width"]) - 4.0) / 6.0         # 0 .. 1
    d = params["dropout"]                                # 0 .. 0.7
    b = (math.log2(params["batch"]) - 4.0) / 4.0         # 0 .. 1
    floor = (0.10 + k["lr"] * (u - 0.55 - 0.15 * b) ** 2 + k["width"] * (1.0 - c) ** 2
             + k["dropout"] * (d - 0.5 * c) ** 2)
    tau = (k["tau0"] + k["tau1"] * 10.0 ** (-k["tau_lr"] * u)) * (1.0 + 0.5 * b) * (1.0 + d)
    overfit = k["overfit"] * c * max(0.0, 1.0 - d / 0.35) * u
    sigma = k["noise"] * math.sqrt(16.0 / params["batch"])
    jitter = math.exp(random.Random(hash((seed, trial, -1))).gauss(0.0, 0.3))
    epoch_time = (params["width"] / 64.0) ** 0.5 * (64.0 / params["batch"]) ** 0.3 * jitter
    return Curve(floor, tau, overfit, sigma, epoch_time, (seed, trial))


def rank_correlations(shapes: str = "default", n: int = 2000, epochs: tuple[int, ...] = (1, 3, 9, 27),
                      seed: int = 0) -> dict[int, float]:
    """Spearman correlation between the noisy loss at each epoch and the true final loss."""
    rng = np.random.default_rng(seed)
    curves = [make_curve(p, seed, i, shapes) for i, p in enumerate(space().sample(n, rng))]

    def ranks(x) -> np.ndarray:
        r = np.empty(len(x))
        r[np.argsort(x)] = np.arange(len(x))
        return r

    final = ranks([c.true(MAX_EPOCHS) for c in curves])
    return {e: float(np.corrcoef(ranks([c.loss(e) for c in curves]), final)[0, 1]) for e in epochs}
