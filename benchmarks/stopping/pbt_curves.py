"""Population-based training against random search on the learning-curve problem, at equal epochs.

    python benchmarks/stopping/pbt_curves.py [--members 16] [--interval 3] [--workers 2] [--seeds 5]

The :mod:`benchmarks.stopping.curves` problem (``default`` shapes), trained step by step so
that hyperparameters may change mid-training: the state is the noise-free loss ``L``, and an
epoch under parameters ``p`` moves it towards ``p``'s floor at ``p``'s rate, plus ``p``'s
overfitting drift once past ``2 tau``::

    L(e) = floor + (L(e-1) - floor) * exp(-1 / tau) + overfit / MAX_EPOCHS * [e > 2 tau]
    loss(e) = L(e) * (1 + noise)                    (with fixed p and L(0) = 1: the curve of p)

Random search trains ``--members`` random points for 81 epochs each; ``pbt`` trains a
population of ``--members`` to step 81, ``--interval`` epochs per task (so the same epochs in
all: members x 81), each step starting from a checkpoint (``trial.load``, ``trial.until``).
The model each search would keep is its lowest observed loss (a random trial's at epoch 81, a
pbt step's at the step it reached: members that copy a member behind them lose epochs, so not
all reach 81 within the budget). Printed per seed and on average: that model's observed and
noise-free (``true_loss``) loss, its step, the epochs each search used, pbt's exploit steps, and
how often pbt wins.
"""

from __future__ import annotations

import argparse
import math
import os
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from benchmarks.stopping.curves import MAX_EPOCHS, make_curve  # noqa: E402


def train(params: dict, trial) -> dict:
    """Train from the checkpoint ``trial.load()`` gives (else from scratch) to ``trial.until``
    (else to epoch 81), one report per epoch; save the state at the end."""
    state = trial.load() or {"epoch": 0, "true": 1.0}
    start = int(trial.resumed_from or 0)
    if state["epoch"] != start:
        raise RuntimeError(f"checkpoint of epoch {state['epoch']} found for resumed_from={start}")
    until = int(trial.until or MAX_EPOCHS)
    c = make_curve(params, 0, trial.task_id)
    true, loss = state["true"], float("nan")
    for epoch in range(start + 1, until + 1):
        true = c.floor + (true - c.floor) * math.exp(-1.0 / c.tau)
        if epoch > 2.0 * c.tau:
            true += c.overfit / MAX_EPOCHS
        loss = true * (1.0 + random.Random(hash((trial.task_id, epoch))).gauss(0.0, c.sigma))
        trial.report(epoch, loss)
    trial.save({"epoch": until, "true": true}, until)
    return {"loss": loss, "true_loss": true, "epochs": until - start}


def _one(kind: str, seed: int, a: argparse.Namespace, out: str) -> dict:
    import emews
    from benchmarks.stopping.curves import space

    if kind == "random":
        res = emews.search("benchmarks.stopping.pbt_curves:train", space(), optimizer="random",
                           max_evals=a.members, workers=a.workers, seed=seed, output=out,
                           experiment=f"random-{seed}", report=False)
    else:
        steps = math.ceil(MAX_EPOCHS / a.interval)
        res = emews.search("benchmarks.stopping.pbt_curves:train", space(), optimizer="pbt",
                           settings={"population": a.members, "interval": a.interval, "max_step": MAX_EPOCHS},
                           max_evals=a.members * steps, workers=a.workers, seed=seed, output=out,
                           experiment=f"pbt-{seed}", report=a.report)
    done = [dict(r["metrics"] or {}, loss=r["loss"]) for r in res.rows if r["status"] == "done"]
    best = min(done, key=lambda r: r["loss"])  # the model keep_models would keep: the lowest loss seen
    exploits = sum(1 for x in res.optimizer_log if x.get("exploit"))
    return {"best_loss": best["loss"], "best_true": best["true_loss"], "best_step": best["checkpoint"], "epochs":
            sum(r["epochs"] for r in done), "exploits": exploits, "tasks": len(done), "dir": res.directory}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--members", type=int, default=16)
    ap.add_argument("--interval", type=int, default=3)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--seeds", type=int, default=5)
    ap.add_argument("--report", action="store_true", help="write pbt's report (pbt.png) and print where")
    a = ap.parse_args(argv)
    os.environ["PYTHONPATH"] = os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])
    rows = []
    with tempfile.TemporaryDirectory() as out:
        for seed in range(a.seeds):
            t = time.perf_counter()
            r, p = _one("random", seed, a, out), _one("pbt", seed, a, out)
            rows.append((seed, r, p, time.perf_counter() - t))
            if a.report:
                import shutil

                keep = Path(tempfile.gettempdir()) / f"emews-pbt-report-{seed}.png"
                shutil.copy(p["dir"] / "pbt.png", keep)
                print(f"  pbt schedule of seed {seed}: {keep}")
    print(f"curves (default shapes): {a.members} random points x {MAX_EPOCHS} epochs against pbt, population "
          f"{a.members}, {a.interval} epochs per step, to epoch {MAX_EPOCHS}; {a.workers} workers")
    print(f"{'seed':>4} {'random best':>12} {'pbt best':>9} {'random true':>12} {'pbt true':>9} {'pbt step':>8} "
          f"{'epochs r/p':>11} {'exploits':>8}")
    for seed, r, p, _ in rows:
        print(f"{seed:>4} {r['best_loss']:>12.4f} {p['best_loss']:>9.4f} {r['best_true']:>12.4f} "
              f"{p['best_true']:>9.4f} {p['best_step']:>8} {r['epochs']:>5}/{p['epochs']:<5} {p['exploits']:>8}")
    mr = statistics.mean(r["best_true"] for _, r, _, _ in rows)
    mp = statistics.mean(p["best_true"] for _, _, p, _ in rows)
    wins = sum(1 for _, r, p, _ in rows if p["best_true"] < r["best_true"])
    print(f"mean true loss of the best model: random {mr:.4f}, pbt {mp:.4f} (pbt / random {mp / mr:.3f}); "
          f"pbt better in {wins} of {len(rows)} seeds")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
