"""Does flushing large models to ``models/`` stall dispatch? Utilization of the workers
running short tasks while other tasks finish with a large checkpoint, kept or not.

A random search of ``--tasks`` tasks on ``--workers`` local workers: most tasks sleep
``--short`` seconds; every ``--every``-th saves a ``--mb`` MB checkpoint (``trial.save``) and
finishes with the best loss so far, so that with ``keep_models`` its model is copied to
``<experiment>/models`` (and the one it pushes out of the k deleted). Three runs, in this
process (the driver runs here):

* ``no flush``: no ``keep_models`` (the baseline);
* ``flush in the loop``: ``keep_models``, the copy made in the driver's loop (how emews did
  it before the copier thread: the keeper built with ``background=False``);
* ``flush in the copier``: ``keep_models`` as it is now (the copier thread).

Utilization of the other workers = time spent in short tasks / (workers x span - time spent
in the checkpointing tasks); the gap = a worker's idle time between one task's end and its
next task's start. The goal (issue 24): utilization with flush / without = 1 within noise.

Usage (from the repository root)::

    python benchmarks/perf/model_flush.py                      # 200 MB, 4 workers, 400 tasks
    python benchmarks/perf/model_flush.py --mb 50 --tasks 200 --repeat 3
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path[:0] = [str(ROOT), str(Path(__file__).parent)]

import emews  # noqa: E402
from emews import _models  # noqa: E402
from emews.journal import final_attempts, read_journal  # noqa: E402


def measure(directory: Path, workers: int) -> dict:
    evals = [e for e in final_attempts(read_journal(directory)["evals"]) if e["status"] == "done"]
    big = [e for e in evals if e["loss"] < 10.0]
    short = [e for e in evals if e["loss"] >= 10.0]
    span = max(e["end"] for e in evals) - min(e["start"] for e in evals)
    busy_short = sum(e["end"] - e["start"] for e in short)
    busy_big = sum(e["end"] - e["start"] for e in big)
    by_worker: dict = {}
    for e in sorted(evals, key=lambda e: e["start"]):
        by_worker.setdefault(e["worker"], []).append(e)
    gaps = [b["start"] - a["end"] for runs in by_worker.values() for a, b in zip(runs, runs[1:])]
    return {"utilization": busy_short / (workers * span - busy_big), "gap": statistics.mean(gaps),
            "gap_max": max(gaps), "span": span, "big": len(big)}


def run(name: str, tmp: Path, args: argparse.Namespace, keep: bool, background: bool, i: int) -> dict:
    real_init = _models.ModelKeeper.__init__

    def init(self, *a, **kw):
        real_init(self, *a, **dict(kw, background=background))

    _models.ModelKeeper.__init__ = init
    try:
        res = emews.search("flush_objective:train", {"x": {"type": "real", "low": 0.0, "high": 1.0}},
                           optimizer="random", max_evals=args.tasks, workers=args.workers, seed=i,
                           output=tmp / "runs", experiment=f"{name.replace(' ', '-')}-{i}", report=False,
                           keep_models={"count": args.keep} if keep else None)
    finally:
        _models.ModelKeeper.__init__ = real_init
    m = measure(res.directory, args.workers)
    if keep:
        kept = list((res.directory / "models").iterdir())
        assert len(kept) == min(args.keep, m["big"]), kept
    return m


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--mb", type=int, default=200)
    ap.add_argument("--workers", type=int, default=4)
    ap.add_argument("--tasks", type=int, default=400)
    ap.add_argument("--every", type=int, default=40)
    ap.add_argument("--short", type=float, default=0.05)
    ap.add_argument("--keep", type=int, default=2)
    ap.add_argument("--repeat", type=int, default=2)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="emews-flush-bench-", dir=os.environ.get("TMPDIR")) as t:
        tmp = Path(t)
        big = tmp / "model.bin"
        with open(big, "wb") as f:
            for _ in range(args.mb):
                f.write(os.urandom(1 << 20))
        os.environ.update(FLUSH_FILE=str(big), FLUSH_EVERY=str(args.every), FLUSH_SHORT_SECONDS=str(args.short))
        rows: dict[str, list[dict]] = {}
        for i in range(args.repeat):  # interleaved: a drift of the machine's load hits every row alike
            for name, keep, background in (("no flush", False, True), ("flush in the loop", True, False),
                                           ("flush in the copier", True, True)):
                t0 = time.perf_counter()
                m = run(name, tmp, args, keep, background, i)
                m["seconds"] = time.perf_counter() - t0
                rows.setdefault(name, []).append(m)
    print(f"{args.tasks} tasks on {args.workers} workers: short tasks of {args.short:g} s, every {args.every}th "
          f"saves a {args.mb} MB checkpoint (keep_models count {args.keep}); {args.repeat} runs each")
    util = {}
    for name, ms in rows.items():
        util[name] = statistics.mean(m["utilization"] for m in ms)
        print(f"  {name:20s}: utilization of the other workers {util[name]:6.1%} "
              f"(runs: {', '.join(format(m['utilization'], '.1%') for m in ms)}); gap between tasks mean "
              f"{statistics.mean(m['gap'] for m in ms) * 1e3:6.1f} ms, max {max(m['gap_max'] for m in ms) * 1e3:7.1f} ms; "
              f"{ms[0]['big']} checkpoints per run")
    base = util["no flush"]
    print(f"  utilization with flush / without: copier thread {util['flush in the copier'] / base:.3f}, "
          f"copy in the driver's loop {util['flush in the loop'] / base:.3f}")


if __name__ == "__main__":
    main()
