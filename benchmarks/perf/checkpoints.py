"""Epochs recomputed after random kills of a search, with checkpoints against without.

A search of ``--trials`` trials of ``--epochs`` epochs each (``checkpoint_objective.py``) on
``--workers`` local workers is SIGKILLed (the driver and its workers: a job's end, a lost node)
``--kills`` times, each after a seeded random number of further epochs, and run again each
time until it finishes. Every epoch computed is logged; an epoch computed twice for a task is a
recomputed one. Run once with each trial saving a checkpoint per epoch (``trial.save``, resumed
from ``trial.resumed_from``) and once without (an interrupted trial starts again from epoch 1).

Usage (from the repository root)::

    python benchmarks/perf/checkpoints.py                       # 40 trials x 27 epochs, 10 kills
    python benchmarks/perf/checkpoints.py --kills 5 --seed 3 --epoch-seconds 0.02

The goal (issue 24): at most 1 epoch recomputed per kill per running task with checkpoints
(against up to ``--epochs`` - 1 without).
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import random
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]


def _epochs_logged(log: Path) -> list[tuple[int, int]]:
    try:
        text = log.read_text()
    except FileNotFoundError:
        return []
    return [(int(a), int(b)) for a, b in (line.split() for line in text.splitlines() if line.count(" ") == 1)]


def run_search(workdir: Path, args: argparse.Namespace, save: bool) -> dict:
    """One search, killed ``args.kills`` times; returns its epoch counts."""
    workdir.mkdir(parents=True)
    cfg = {"experiment": "ck", "objective": "checkpoint_objective:train",
           "space": {"x": {"type": "real", "low": 0.0, "high": 1.0}}, "max_evals": args.trials,
           "workers": args.workers, "seed": args.seed, "output": str(workdir / "runs"), "report": False}
    path = workdir / "config.yaml"
    path.write_text(yaml.safe_dump(cfg))
    log = workdir / "epochs.log"
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(ROOT), str(Path(__file__).parent),
                                                         os.environ.get("PYTHONPATH", "")]),
               CKPT_LOG=str(log), CKPT_EPOCHS=str(args.epochs), CKPT_EPOCH_SECONDS=str(args.epoch_seconds),
               CKPT_SAVE="1" if save else "0")
    env.pop("SLURM_JOB_END_TIME", None)
    rnd = random.Random(args.seed)
    kills, total = 0, args.trials * args.epochs
    while True:
        proc = subprocess.Popen([sys.executable, "-m", "emews.run", str(path)], cwd=workdir, env=env,
                                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, start_new_session=True)
        if kills < args.kills:
            target = len(_epochs_logged(log)) + rnd.randint(args.workers, 6 * args.workers)
            while proc.poll() is None and len(_epochs_logged(log)) < min(target, total):
                time.sleep(0.01)
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGKILL)  # the driver and every worker: nothing is flushed
                proc.wait()
                kills += 1
                continue
        _, err = proc.communicate()
        if proc.returncode != 0:
            raise SystemExit(f"the search failed (exit {proc.returncode}):\n{err[-3000:]}")
        break
    logged = _epochs_logged(log)
    per = collections.Counter(logged)
    best = json.loads((workdir / "runs" / "ck" / "best.json").read_text())
    return {"kills": kills, "epochs": len(logged), "unique": len(per), "recomputed": len(logged) - len(per),
            "complete": len(per) == total, "best_loss": best["loss"]}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--trials", type=int, default=40)
    ap.add_argument("--epochs", type=int, default=27)
    ap.add_argument("--workers", type=int, default=4)
    ap.add_argument("--kills", type=int, default=10)
    ap.add_argument("--epoch-seconds", type=float, default=0.05)
    ap.add_argument("--seed", type=int, default=1)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="emews-ckpt-bench-") as tmp:
        rows = {}
        for name, save in (("without checkpoints", False), ("with checkpoints", True)):
            t0 = time.perf_counter()
            rows[name] = r = run_search(Path(tmp) / name.replace(" ", "-"), args, save)
            r["seconds"] = time.perf_counter() - t0
    print(f"{args.trials} trials x {args.epochs} epochs, {args.workers} workers, {args.kills} SIGKILLs "
          f"(seed {args.seed})")
    for name, r in rows.items():
        per_kill = r["recomputed"] / max(1, r["kills"])
        print(f"  {name:20s}: {r['recomputed']:5d} epochs recomputed after {r['kills']} kills = "
              f"{per_kill:6.2f} per kill, "
              f"{per_kill / args.workers:5.2f} per kill per running task; every epoch done: {r['complete']}; "
              f"{r['seconds']:.1f} s")
    a, b = rows["without checkpoints"]["recomputed"], rows["with checkpoints"]["recomputed"]
    print(f"  recomputed without / with checkpoints: {a / b:.1f}x" if b else
          f"  recomputed without / with checkpoints: {a} / 0")


if __name__ == "__main__":
    main()
