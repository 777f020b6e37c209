"""A 100,000-task, 10,000-worker experiment: what its journal, report, resume and driver cost.

    python benchmarks/scale/journal.py                    # 100,000 tasks on 10,000 simulated workers
    python benchmarks/scale/journal.py --tasks 20000 --workers 2000

Builds the experiment with the real driver on ``pool: simulated`` (random search, tasks of
N(60 s, 20 s)), then measures, each in a fresh process (time and peak memory):

* the journal: size, bytes per task;
* the driver that built it: peak RSS, CPU seconds per task;
* the report without plots and with them (``python -m emews.report``), against the baseline
  of reading the same journal's rows with plain ``sqlite3`` in the same run;
* a resume that adds 10 evaluations, against a fresh 10-evaluation session.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def config(path: Path, out: Path, tasks: int, workers: int, name: str = "big") -> Path:
    import yaml

    cfg = {"experiment": name, "objective": "emews.examples:sphere",
           "space": {f"x{i}": {"type": "real", "low": -1.0, "high": 1.0} for i in range(4)},
           "max_evals": tasks, "workers": workers, "pool": "simulated", "seed": 1, "report": False, "progress": 0,
           "output": str(out), "simulation": {"duration": {"distribution": "normal", "mean": 60, "sd": 20}, "seed": 1}}
    path.write_text(yaml.safe_dump(cfg, sort_keys=False))
    return path


def timed(cmd: list[str], cwd: Path) -> tuple[float, float, float, str]:
    """(wall s, peak RSS MiB, CPU s) of a child process, and its stderr tail."""
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]))
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    p = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True)
    wall = time.perf_counter() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if p.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed ({p.returncode}):\n{p.stderr[-2000:]}")
    cpu = (after.ru_utime + after.ru_stime) - (before.ru_utime + before.ru_stime)
    return wall, after.ru_maxrss / 1024, cpu, p.stderr[-500:]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--tasks", type=int, default=100_000)
    ap.add_argument("--workers", type=int, default=10_000)
    ap.add_argument("--plots", action=argparse.BooleanOptionalAction, default=True)
    a = ap.parse_args()
    py = sys.executable
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        cfg = config(tmp / "big.yaml", tmp / "runs", a.tasks, a.workers)
        wall, rss, cpu, _ = timed([py, "-m", "emews.run", str(cfg), "-q"], tmp)
        exp = tmp / "runs" / "big"
        size = (exp / "journal.sqlite").stat().st_size
        print(f"build: {a.tasks} tasks on {a.workers} simulated workers in {wall:.1f} s real; driver peak RSS "
              f"{rss:.0f} MiB (this and every later figure: the largest child so far), {1000 * cpu / a.tasks:.3f} ms "
              f"CPU per task (driver + optimizer)")
        print(f"journal: {size / 2**20:.1f} MiB, {size / a.tasks:.0f} bytes per task")

        t0 = time.perf_counter()
        db = sqlite3.connect(f"file:{exp / 'journal.sqlite'}?mode=ro", uri=True)
        n = len(db.execute("SELECT * FROM evals").fetchall())
        db.close()
        base = time.perf_counter() - t0
        print(f"baseline: sqlite3 reads the {n} rows in {base:.2f} s")
        wall, rss, _, _ = timed([py, "-m", "emews.report", str(exp), "--no-plots"], tmp)
        print(f"report, no plots: {wall:.1f} s (ratio to the sqlite3 read {wall / base:.1f}), peak RSS {rss:.0f} MiB")
        if a.plots:
            wall, rss, _, _ = timed([py, "-m", "emews.report", str(exp), "--plots"], tmp)
            data = json.loads((exp / "report.json").read_text())
            print(f"report with plots: {wall:.1f} s, peak RSS {rss:.0f} MiB, plots {data['plots']}")

        fresh = config(tmp / "fresh.yaml", tmp / "runs", 10, a.workers, name="fresh")
        wall_f, _, _, _ = timed([py, "-m", "emews.run", str(fresh), "-q"], tmp)
        wall_r, rss, _, err = timed([py, "-m", "emews.run", str(cfg), "--set", f"max_evals={a.tasks + 10}"], tmp)
        print(f"resume +10 evaluations: {wall_r:.1f} s against {wall_f:.1f} s for a fresh 10-evaluation session "
              f"(ratio {wall_r / wall_f:.1f}); peak RSS {rss:.0f} MiB")


if __name__ == "__main__":
    main()
