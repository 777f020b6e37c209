"""Many-rank MPI for real: utilization, dispatch rate, shutdown and memory at 64 and 128 ranks.

    python benchmarks/scale/mpi_ranks.py                          # 64 worker ranks, then 128 if memory allows
    python benchmarks/scale/mpi_ranks.py --workers 64 --durations fixed

Each row is ``mpiexec -n WORKERS+1 python -m emews.run CONFIG`` (rank 0 the driver, the others
workers; Hydra's ``mpiexec`` from ``pip install mpich`` oversubscribes the cores, which is fine:
the tasks sleep), the ``random`` optimizer, ``--tasks`` tasks per worker of the objective
``benchmarks/scale/sleep_objective.py``: 1 s each (``fixed``) or U(0.5 s, 2 s) (``uniform``).

Read back from the journal (``emews.report.report_data``): utilization (DeepHyper's: busy /
(workers x span)), ramp-up (first start until every worker is busy) and ramp-down (first
worker idle for good until the end), the dispatch rate (tasks per second of span), and the
idle time split into its parts: worker-seconds idle during the ramp-up, between a worker's
tasks (the gap from its result to its next task's start: what rank 0's dispatch costs) and
during the ramp-down.

The baseline, computed in the same run: an ideal greedy scheduler (zero overhead, each freed
worker starts the next task at once) on the same task durations in task order; its
utilization is what the geometry allows and the ratio emews / ideal is what emews leaves of it.

While the run goes, ``/proc`` is sampled every 0.5 s: per rank the resident memory (VmRSS)
and CPU seconds; rank 0's optimizer process is counted apart. Each worker's objective also
records its own VmRSS when a task starts (``rss_kb``: an idle worker with emews, mpi4py and
the objective loaded). Shutdown is clean when ``mpiexec`` exits 0 and no process of the run
is left afterwards.
"""

from __future__ import annotations

import argparse
import heapq
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from emews.journal import read_journal  # noqa: E402
from emews.report import report_data  # noqa: E402

DURATIONS = {"fixed": (1.0, 1.0), "uniform": (0.5, 2.0)}
TICK = os.sysconf("SC_CLK_TCK")


def ideal(durations: list[float], workers: int) -> tuple[float, float]:
    """(utilization, makespan) of a greedy zero-overhead scheduler running ``durations`` in order."""
    free = [0.0] * workers
    heapq.heapify(free)
    end = 0.0
    for d in durations:
        t = heapq.heappop(free) + d
        end = max(end, t)
        heapq.heappush(free, t)
    return sum(durations) / (workers * end), end


def _mpiexec() -> str:
    here = os.path.dirname(sys.executable)  # the launcher installed beside this Python first
    exe = shutil.which("mpiexec", path=here) or shutil.which("mpiexec") or shutil.which("mpirun")
    if exe is None:
        sys.exit("mpiexec not found: pip install mpi4py mpich")
    return exe


def _proc(pid: int) -> dict | None:
    """cmdline, parent, PMI rank, VmRSS (kB) and CPU seconds of a process (None: gone)."""
    try:
        cmd = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        stat = Path(f"/proc/{pid}/stat").read_text()
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return None
    fields = stat[stat.rindex(")") + 2:].split()
    rss = next((int(line.split()[1]) for line in status.splitlines() if line.startswith("VmRSS:")), 0)
    rank = None
    try:
        for item in Path(f"/proc/{pid}/environ").read_bytes().split(b"\0"):
            if item.startswith(b"PMI_RANK="):
                rank = int(item[9:])
    except (OSError, ValueError):
        pass
    return {"cmd": cmd, "ppid": int(fields[1]), "rank": rank, "rss": rss,
            "cpu": (int(fields[11]) + int(fields[12])) / TICK}


def _run_processes(marker: str) -> dict[int, dict]:
    """Processes of the run: the Python ranks (``marker`` in their command line) and their children."""
    procs = {}
    for p in Path("/proc").iterdir():
        if p.name.isdigit() and int(p.name) != os.getpid():
            info = _proc(int(p.name))
            if info is not None:
                procs[int(p.name)] = info
    ranks = {pid: i for pid, i in procs.items() if marker in i["cmd"] and "emews.run" in i["cmd"]
             and "mpiexec" not in i["cmd"] and "hydra" not in i["cmd"]}
    kids = {pid: dict(i, child_of=i["ppid"]) for pid, i in procs.items() if i["ppid"] in ranks and pid not in ranks}
    return {**ranks, **kids}


class Sampler(threading.Thread):
    """Samples the run's processes every ``every`` seconds: the last CPU and the largest RSS per pid."""

    def __init__(self, marker: str, every: float = 0.5):
        super().__init__(daemon=True)
        self.marker, self.every = marker, every
        self.seen: dict[int, dict] = {}
        self.stop = threading.Event()

    def run(self) -> None:
        while not self.stop.wait(self.every):
            for pid, i in _run_processes(self.marker).items():
                s = self.seen.setdefault(pid, dict(i, rss_max=0))
                s.update(cpu=i["cpu"], rank=i["rank"] if i["rank"] is not None else s["rank"])
                s["rss_max"] = max(s["rss_max"], i["rss"])


def _gaps(rows: list[dict]) -> list[float]:
    """Per worker, the time from one task's end to its next task's start."""
    by: dict = {}
    for r in rows:
        by.setdefault(r["worker"], []).append((r["start"], r["end"]))
    out = []
    for iv in by.values():
        iv.sort()
        out += [max(0.0, b[0] - a[1]) for a, b in zip(iv, iv[1:])]
    return out


def run(workers: int, kind: str, tasks: int, seed: int, timeout: float, tmp: Path) -> dict:
    import yaml

    low, high = DURATIONS[kind]
    evals = tasks * workers
    name = f"ranks{workers}-{kind}"
    cfg = {"experiment": name, "objective": "benchmarks.scale.sleep_objective:sleep_task",
           "space": {"u": {"type": "real", "low": 0.0, "high": 1.0}, "low": {"type": "constant", "value": low},
                     "high": {"type": "constant", "value": high}},
           "optimizer": "random", "max_evals": evals, "seed": seed, "output": str(tmp), "report": False,
           "progress": 0}
    path = tmp / f"{name}-{os.getpid()}.yaml"  # the path marks the run's processes in /proc
    path.write_text(yaml.safe_dump(cfg))
    out = tmp / name
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]))
    sampler = Sampler(str(path))
    sampler.start()
    t0 = time.perf_counter()
    p = subprocess.Popen([_mpiexec(), "-n", str(workers + 1), sys.executable, "-m", "emews.run", str(path),
                          "--out", str(out), "-q"], env=env, cwd=ROOT, stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, text=True, start_new_session=True)
    try:
        _, err = p.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(p.pid, 9)
        _, err = p.communicate()
        err = f"timed out after {timeout:g} s\n{err}"
    wall = time.perf_counter() - t0
    sampler.stop.set()
    sampler.join()
    time.sleep(0.5)  # let the kernel reap what is going
    left = _run_processes(str(path))
    if p.returncode:
        print(f"  run failed (exit {p.returncode}):\n{err[-2000:]}", file=sys.stderr)
    j = read_journal(out)
    d = report_data(out)
    rows = [r for r in j["evals"] if r["status"] == "done" and r["start"] is not None and r["end"] is not None]
    durations = [r["metrics"]["seconds"] for r in sorted(j["evals"], key=lambda r: r["task_id"])
                 if (r.get("metrics") or {}).get("seconds") is not None]
    base, base_span = ideal(durations, workers)
    u = d["utilization"]
    span, busy = u["span"], u["busy"]
    begin = min(r["start"] for r in rows)
    gaps = _gaps(rows)
    up, down = d["ramp"]["up"] or 0.0, d["ramp"]["down"] or 0.0
    # idle worker-seconds: during ramp-up (workers not yet started), between tasks, during ramp-down
    first_start = {}
    for r in rows:
        first_start[r["worker"]] = min(first_start.get(r["worker"], r["start"]), r["start"])
    idle_up = sum(s - begin for s in first_start.values()) + (workers - len(first_start)) * span
    idle_gap = sum(gaps)
    idle_total = workers * span - busy
    rss = {}
    for r in rows:  # the first task's reading per worker process: idle worker, objective loaded
        m = r.get("metrics") or {}
        if m.get("pid") is not None and m.get("rss_kb", -1) > 0:
            rss.setdefault(m["pid"], m["rss_kb"])
    seen = sampler.seen
    rank0 = [i for i in seen.values() if i["rank"] == 0 and "child_of" not in i]
    rank0_pids = {pid for pid, i in seen.items() if i["rank"] == 0 and "child_of" not in i}
    opt = [i for i in seen.values() if i.get("child_of") in rank0_pids and "spawn_main" in i["cmd"]]
    wk = [i for i in seen.values() if i["rank"] not in (None, 0) and "child_of" not in i]
    n = d["evaluations"]
    return {
        "workers": workers, "kind": kind, "evals": n, "done": len(rows), "exit": p.returncode, "wall": wall,
        "left": len(left), "utilization": u["utilization"], "ideal": base, "ideal_span": base_span, "span": span,
        "ramp_up": up, "ramp_down": down, "rate": n / span if span else 0.0, "ideal_rate": n / base_span,
        "gap_median": statistics.median(gaps) if gaps else 0.0, "gap_p95": _pct(gaps, 0.95),
        "gap_max": max(gaps, default=0.0),
        "idle_up": idle_up, "idle_gap": idle_gap, "idle_down": max(0.0, idle_total - idle_up - idle_gap),
        "idle_total": idle_total,
        "rss_obj": sorted(rss.values()), "rss_workers": sorted(i["rss_max"] for i in wk),
        "rss_rank0": sum(i["rss_max"] for i in rank0), "rss_opt": sum(i["rss_max"] for i in opt),
        "cpu_rank0": sum(i["cpu"] for i in rank0), "cpu_opt": sum(i["cpu"] for i in opt),
        "cpu_workers": sum(i["cpu"] for i in wk), "seen_workers": len(wk),
        "first_start_after": begin - j["meta"]["started"],
    }


def _pct(xs: list[float], q: float) -> float:
    if not xs:
        return 0.0
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(q * len(xs)))]


def _mem_available_kb() -> int:
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemAvailable:"):
            return int(line.split()[1])
    return 0


def _mb(kb: float) -> str:
    return f"{kb / 1024:.0f}"


def report(r: dict) -> None:
    w = r["workers"]
    print(f"\n-n {w + 1} ({w} workers), tasks {r['kind']} {DURATIONS[r['kind']]} s, {r['evals']} evaluations "
          f"({r['done']} done), wall {r['wall']:.1f} s (first task {r['first_start_after']:.1f} s after the start)")
    print(f"  utilization {r['utilization']:.3f}   ideal {r['ideal']:.3f}   ratio {r['utilization'] / r['ideal']:.3f}"
          f"   (goal: >= 0.95 with 1-s tasks)")
    print(f"  span {r['span']:.2f} s (ideal {r['ideal_span']:.2f} s)   ramp-up {r['ramp_up']:.2f} s   "
          f"ramp-down {r['ramp_down']:.2f} s")
    print(f"  dispatch: {r['rate']:.1f} tasks/s (ideal {r['ideal_rate']:.1f})   worker gap result->next start: "
          f"median {1000 * r['gap_median']:.1f} ms, p95 {1000 * r['gap_p95']:.1f} ms, max {1000 * r['gap_max']:.0f} ms")
    it = r["idle_total"] or 1.0
    print(f"  idle worker-seconds {r['idle_total']:.1f}: ramp-up {r['idle_up']:.1f} ({r['idle_up'] / it:.0%}), "
          f"between tasks {r['idle_gap']:.1f} ({r['idle_gap'] / it:.0%}), ramp-down {r['idle_down']:.1f} "
          f"({r['idle_down'] / it:.0%})")
    print(f"  CPU s: rank 0 {r['cpu_rank0']:.2f} ({1000 * r['cpu_rank0'] / max(r['evals'], 1):.2f} ms/task), "
          f"optimizer process {r['cpu_opt']:.2f}, {r['seen_workers']} worker ranks {r['cpu_workers']:.2f} "
          f"({r['cpu_workers'] / max(r['seen_workers'], 1):.2f} each)")
    obj, wk = r["rss_obj"], r["rss_workers"]
    if obj:
        print(f"  memory: idle worker with the objective loaded (its VmRSS at a task's start) MB min/median/max "
              f"{_mb(obj[0])}/{_mb(statistics.median(obj))}/{_mb(obj[-1])} over {len(obj)} ranks")
    if wk:
        print(f"          worker ranks' peak VmRSS (sampled) MB min/median/max {_mb(wk[0])}/{_mb(statistics.median(wk))}/"
              f"{_mb(wk[-1])}; rank 0 {_mb(r['rss_rank0'])} MB, optimizer process {_mb(r['rss_opt'])} MB")
    clean = r["exit"] == 0 and r["left"] == 0
    print(f"  shutdown: {'clean' if clean else 'NOT clean'} (mpiexec exit {r['exit']}, {r['left']} process(es) of "
          f"the run left)")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--workers", type=int, nargs="+", default=[64, 128])
    ap.add_argument("--durations", nargs="+", choices=sorted(DURATIONS), default=["fixed", "uniform"])
    ap.add_argument("--tasks", type=int, default=10, help="tasks per worker (default 10)")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--timeout", type=float, default=600.0, help="seconds per run before it is killed")
    a = ap.parse_args()
    per_rank_kb = 100 * 1024  # a guess until a run has measured it
    with tempfile.TemporaryDirectory() as tmp:
        for w in a.workers:
            for kind in a.durations:
                need = 2 * (w + 2) * per_rank_kb  # "if memory allows": twice what the ranks should take
                if _mem_available_kb() < need:
                    print(f"\n-n {w + 1}: skipped, {_mem_available_kb() // 1024} MB available < {need // 1024} MB "
                          f"(2 x {w + 2} processes x {per_rank_kb // 1024} MB)")
                    continue
                r = run(w, kind, a.tasks, a.seed, a.timeout, Path(tmp))
                report(r)
                if r["rss_workers"]:
                    per_rank_kb = max(r["rss_workers"][-1], r["rss_rank0"], r["rss_opt"])
                sys.stdout.flush()

if __name__ == "__main__":
    main()
