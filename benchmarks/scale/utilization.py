"""Utilization at scale on the simulated pool, against an ideal scheduler measured in the same run.

    python benchmarks/scale/utilization.py                       # 128, 1024, 4096, 10000 workers
    python benchmarks/scale/utilization.py --workers 10000 --optimizers random mbo ga-steady ga

Each row is a real emews search (driver, optimizer process, journal) on ``pool: simulated``
with tasks of N(60 s, 20 s), until ``--evals`` evaluations or ``--hours`` simulated hours.
The baseline is an ideal greedy scheduler on the same duration model and the same budget:
every freed worker starts the next task at once and proposals cost nothing (a heap of
completions, no optimizer, no journal). Its utilization is what the geometry allows (the
ramp-down at the end of a budget); the ratio emews/ideal is what emews' own costs leave of it.
``ga`` runs in batch mode (generation = workers), the others async.

Columns: utilization (DeepHyper's: busy / (workers x span), the span ending at the search's
end or its time limit), ramp-up and ramp-down (s), real seconds, completions per real
second, and the driver's CPU seconds per task (this process: it runs the driver).
"""

from __future__ import annotations

import argparse
import heapq
import random
import resource
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

import emews  # noqa: E402
from emews.report import report_data  # noqa: E402

SPACE = {f"x{i}": {"type": "real", "low": -1.0, "high": 1.0} for i in range(4)}


def ideal(workers: int, evals: int, max_time: float | None, mean: float, sd: float, seed: int) -> float:
    """Utilization of a greedy scheduler with free proposals (durations truncated at 0 as in
    emews); busy time after ``max_time`` does not count and the span ends there."""
    rng = random.Random(seed)

    def draw() -> float:  # the simulated pool's draws per task: a duration, then a failure draw
        d = max(0.0, rng.gauss(mean, sd))
        rng.random()
        return d

    heap = [(draw(), 0.0) for _ in range(min(workers, evals))]  # (end, start)
    heapq.heapify(heap)
    started, busy, end = len(heap), 0.0, 0.0
    limit = max_time if max_time is not None else float("inf")
    while heap:
        t, s = heapq.heappop(heap)
        busy += min(t, limit) - s
        end = max(end, min(t, limit))
        if started < evals and t < limit:
            heapq.heappush(heap, (t + draw(), t))
            started += 1
    return busy / (workers * end)


def run(optimizer: str, workers: int, evals: int, max_time: float | None, mean: float, sd: float, seed: int,
        out: Path) -> dict:
    mode = "batch" if optimizer == "ga" else "async"
    settings = {"population": workers} if optimizer == "ga" else {}
    if optimizer == "ga-steady":
        settings = {"population": min(workers, 1000)}
    cpu0 = resource.getrusage(resource.RUSAGE_SELF)
    t0 = time.perf_counter()
    res = emews.search("emews.examples:sphere", SPACE, optimizer=optimizer, settings=settings, max_evals=evals,
                       workers=workers, seed=seed, mode=mode, batch_size=workers if mode == "batch" else None,
                       max_time=max_time, output=str(out), experiment=f"{optimizer}-{workers}", report=False,
                       pool="simulated",
                       simulation={"duration": {"distribution": "normal", "mean": mean, "sd": sd}, "seed": seed})
    wall = time.perf_counter() - t0
    cpu1 = resource.getrusage(resource.RUSAGE_SELF)
    d = report_data(res)
    n = d["evaluations"]
    cpu = (cpu1.ru_utime + cpu1.ru_stime) - (cpu0.ru_utime + cpu0.ru_stime)
    return {"utilization": d["utilization"]["utilization"], "ramp_up": d["ramp"]["up"], "ramp_down": d["ramp"]["down"],
            "span": d["utilization"]["span"], "evaluations": n, "wall": wall, "rate": n / wall, "cpu_per_task": cpu / n}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--workers", type=int, nargs="+", default=[128, 1024, 4096, 10000])
    ap.add_argument("--optimizers", nargs="+", default=["random", "mbo", "ga-steady", "ga"])
    ap.add_argument("--evals", type=int, default=None, help="default: 10 tasks per worker (100,000 at 10,000)")
    ap.add_argument("--hours", type=float, default=None, help="a simulated time limit instead of / beside --evals")
    ap.add_argument("--mean", type=float, default=60.0)
    ap.add_argument("--sd", type=float, default=20.0)
    ap.add_argument("--seed", type=int, default=1)
    args = ap.parse_args()
    max_time = args.hours * 3600 if args.hours else None
    if max_time is not None and not args.evals:
        budget = f"{args.hours:g} simulated h"
    else:
        budget = (f"{args.evals} evaluations" if args.evals else "10 x workers evaluations") + \
            ("" if max_time is None else f" or {args.hours:g} simulated h")
    print(f"tasks N({args.mean:g} s, {args.sd:g} s); budget: {budget}")
    print(f"{'optimizer':<10} {'workers':>7} {'evals':>7} {'util':>6} {'ideal':>6} {'ratio':>6} {'ramp-up':>8} "
          f"{'ramp-dn':>8} {'real s':>7} {'compl/s':>8} {'cpu ms/task':>11}")
    with tempfile.TemporaryDirectory() as tmp:
        for w in args.workers:
            evals = args.evals or 10 * w
            if max_time is not None and not args.evals:
                evals = 10**9
            base = ideal(w, evals, max_time, args.mean, args.sd, args.seed)
            for opt in args.optimizers:
                r = run(opt, w, evals, max_time, args.mean, args.sd, args.seed, Path(tmp))
                up = "-" if r["ramp_up"] is None else f"{r['ramp_up']:.1f}"
                print(f"{opt:<10} {w:>7} {r['evaluations']:>7} {r['utilization']:>6.3f} {base:>6.3f} "
                      f"{r['utilization'] / base:>6.3f} {up:>8} {r['ramp_down']:>8.1f} {r['wall']:>7.1f} "
                      f"{r['rate']:>8.0f} {1000 * r['cpu_per_task']:>11.3f}", flush=True)


if __name__ == "__main__":
    main()
