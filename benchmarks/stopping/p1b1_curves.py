"""Recorded P1B1 learning curves, for a trace-driven run of the stopping benchmark.

    OMP_NUM_THREADS=1 nice -n 10 python benchmarks/stopping/p1b1_curves.py [--trials 96] [--epochs 27]
        [--out benchmarks/stopping/p1b1_tiny_curves.json]
    python benchmarks/stopping/run.py --problem p1b1 --skip-util

Trains ``--trials`` random configurations of the CANDLE P1B1 autoencoder
(:mod:`benchmarks.candle.p1b1`, ``data_size: tiny`` — 200 synthetic genes, 300 training rows —
on one CPU thread: the development machine has two shared cores) for ``--epochs`` epochs
each, without stopping, and writes every trial's per-epoch validation loss and epoch time to
a JSON file. ``run.py --problem p1b1`` then replays those curves in its pool simulation,
drawing trials from the recorded ones with replacement (a different sequence per seed), the
way tabular benchmarks such as LCBench are used. A trial that diverged has a shorter curve:
its next report is a NaN loss and it ends as failed.

The space is the P1B1 mlrMBO space of ``configs/p1b1_mbo.yaml`` cut to the tiny data (narrower
dense layers, small latent sizes and batches).
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

import numpy as np  # noqa: E402

from emews.space import Bool, Categorical, Ordinal, Real, Space  # noqa: E402

DEFAULT_OUT = Path(__file__).with_name("p1b1_tiny_curves.json")


def space() -> Space:
    return Space([
        Real("learning_rate", 1e-5, 1e-1, log=True),
        Categorical("dense", ["64", "128 64", "256 128", "128 128 128", "512 256"]),
        Ordinal("latent_dim", [2, 4, 8, 16, 32]),
        Ordinal("batch_size", [16, 32, 64, 128]),
        Real("dropout", 0.0, 0.6),
        Categorical("activation", ["relu", "sigmoid", "tanh"]),
        Categorical("optimizer", ["adam", "sgd"]),
        Bool("residual"),
    ])


def record(trials: int, epochs: int, out: Path, seed: int = 0) -> None:
    import torch

    from benchmarks.candle.p1b1 import run

    torch.set_num_threads(1)
    pts = space().sample(trials, np.random.default_rng(seed))
    rows = []
    t0 = time.perf_counter()
    for i, p in enumerate(pts):
        params = {**p, "data_size": "tiny", "epochs": epochs, "device": "cpu", "seed": seed * 100_003 + i,
                  "verbose": False}
        try:
            res = run(params)
            hist = json.loads(res["history"])
            val = [v if v is not None and math.isfinite(v) else None for v in hist["val_loss"]]
            secs = hist["epoch_seconds"]
        except Exception as e:  # a failing configuration is a failed trial, not a failed recording
            print(f"trial {i}: {type(e).__name__}: {e}", file=sys.stderr)
            val, secs = [], []
        while val and val[-1] is None:
            val.pop()
        rows.append({"params": p, "val_loss": val, "epoch_seconds": secs[: len(val)]})
        print(f"{i + 1}/{trials} {time.perf_counter() - t0:.0f}s final {val[-1] if val else None}", flush=True)
    out.write_text(json.dumps({"epochs": epochs, "data_size": "tiny", "seed": seed, "trials": rows}, indent=0))
    print(f"wrote {out}")


def load(path: Path = DEFAULT_OUT) -> dict:
    return json.loads(Path(path).read_text())


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--trials", type=int, default=96)
    ap.add_argument("--epochs", type=int, default=27)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", type=Path, default=DEFAULT_OUT)
    a = ap.parse_args()
    record(a.trials, a.epochs, a.out, a.seed)


if __name__ == "__main__":
    main()
