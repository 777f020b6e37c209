"""The Dask pool's workers as real Slurm jobs: ``dask-jobqueue``'s ``SLURMCluster``, started by
emews from ``dask: {cluster: {type: slurm, ...}}``, submits two worker jobs that join a running
search; one job is ``scancel``\\ ed while its task runs; nothing is lost.

::

    test ──▶ python -m emews.run (pool: dask) ── SLURMCluster ── sbatch ×2 ──▶ job A: dask worker
                    │ scheduler in the search's process          ◀── joins ──  job B: dask worker
                    ▼ journal                     test: scancel job A (its task waits at the gate)

The jobs run on the fixture's one node (16 CPUs, 16000 MB declared): each asks for 1 core and
1 GB. The test acts on events it controls (the objective's start markers, its gate file, the
job's state in ``scontrol``), never on sleeps.
"""

from __future__ import annotations

import os
import random
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from helpers import ROOT, wait_until

from emews.journal import read_journal
from emews.task import CANCELLED, DONE

if os.environ.get("CI"):
    import dask_jobqueue  # noqa: F401 - CI installs it (extra "dev"): a missing one is a failure
else:
    pytest.importorskip("dask_jobqueue")

pytestmark = [pytest.mark.slurm, pytest.mark.slow]

HERE = Path(__file__).resolve().parent
WAIT = 420.0  # generous: a loaded machine is slow to start a job and a Python in it
ENDED = ("COMPLETED", "FAILED", "TIMEOUT", "CANCELLED", "NODE_FAIL", "OUT_OF_MEMORY", "PREEMPTED")


def _started(gate: Path) -> dict[str, list[str]]:
    """Slurm job id -> the ``x`` of every attempt a worker in it started."""
    out: dict[str, list[str]] = {}
    for f in gate.glob("started-*"):
        _, x, job = f.name.split("-")
        out.setdefault(job, []).append(x)
    return out


def _state(cluster, job: str) -> str:
    p = subprocess.run(["scontrol", "show", "job", "-o", job], env=cluster.env, capture_output=True, text=True,
                       timeout=60)
    for word in p.stdout.split():
        if word.startswith("JobState="):
            return word.split("=", 1)[1]
    return ""


def test_slurm_worker_jobs_join_a_running_search_and_a_scancel_loses_nothing(slurm_cluster, tmp_path):
    n = 4
    gate = tmp_path / "gate"
    gate.mkdir()
    logs = tmp_path / "worker-logs"
    cfg = {"experiment": "e", "objective": "objectives:gated_in_job",
           "space": {"x": {"type": "categorical", "values": list(range(n))}},
           "optimizer": {"name": "grid", "settings": {}}, "max_evals": n, "seed": 1, "report": False,
           "output": str(tmp_path / "runs"), "progress": 0.5, "pool": "dask", "workers": 2,
           "dask": {"connect_timeout": 60,
                    "cluster": {"type": "slurm", "cores": 1, "processes": 1, "memory": "1GB", "walltime": "00:15:00",
                                "python": sys.executable, "log_directory": str(logs),
                                "local_directory": str(tmp_path / "dask-scratch"),
                                "scheduler_options": {"dashboard_address": None},
                                "job_name": "emews-dask-worker"}}}
    path = tmp_path / "search.yaml"
    path.write_text(yaml.safe_dump(cfg, sort_keys=False))
    env = dict(slurm_cluster.env)  # SLURM_CONF: dask-jobqueue's sbatch reaches the test's cluster
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), str(HERE), env.get("PYTHONPATH", "")])
    env["EMEWS_GATE_DIR"] = str(gate)  # sbatch exports the search's environment to the worker jobs
    env["PYTHONUNBUFFERED"] = "1"
    log_path = tmp_path / "search.log"
    with open(log_path, "w") as log:
        p = subprocess.Popen([sys.executable, "-m", "emews.run", str(path)], env=env, cwd=str(tmp_path), stdout=log,
                             stderr=subprocess.STDOUT)

    def tail() -> str:
        worker_logs = "".join(f.read_text()[-1500:] for f in sorted(logs.glob("*"))) if logs.exists() else ""
        return log_path.read_text()[-3000:] + "\n--- worker jobs:\n" + worker_logs

    try:
        # both worker jobs joined the running search: each runs a task, held at the gate
        started = wait_until(lambda: len(_started(gate)) == 2 and _started(gate), WAIT, interval=0.5,
                             message=f"a task started in each of the two worker jobs\n{tail()}", proc=p)
        assert all(job.isdigit() for job in started), started  # the workers ran inside Slurm jobs
        seed = int(os.environ.get("EMEWS_TEST_SEED", random.randrange(10**6)))
        victim = random.Random(seed).choice(sorted(started))
        lost_x = int(started[victim][0])
        print(f"seed {seed}: scancel worker job {victim} running x={lost_x}")
        subprocess.run(["scancel", victim], env=slurm_cluster.env, check=True, timeout=60)
        wait_until(lambda: _state(slurm_cluster, victim) in ENDED, WAIT, interval=0.5,
                   message=f"job {victim} to end after scancel", proc=p)
        assert _state(slurm_cluster, victim) == "CANCELLED"
        (gate / "go").touch()
        try:
            rc = p.wait(WAIT)
        except subprocess.TimeoutExpired:
            raise AssertionError(f"the search did not end\n{tail()}") from None
        assert rc == 0, tail()
    finally:
        if p.poll() is None:
            p.kill()
            p.wait(30)
    rows: dict[int, list[dict]] = {}
    for e in read_journal(tmp_path / "runs" / "e")["evals"]:
        rows.setdefault(e["task_id"], []).append(e)
    rows = {t: sorted(rs, key=lambda e: e["attempt"]) for t, rs in rows.items()}
    done = [e for rs in rows.values() for e in rs if e["status"] == DONE]
    assert sorted(e["params"]["x"] for e in done) == list(range(n)), done  # nothing lost, nothing doubled
    assert all(e["loss"] == float(e["params"]["x"]) ** 2 for e in done)
    lost = next(rs for rs in rows.values() if rs[0]["params"]["x"] == lost_x)
    assert [e["attempt"] for e in lost] == [0, 1], lost  # the interrupted attempt and its rerun
    assert lost[0]["status"] == CANCELLED and "interrupted" in lost[0]["error"], lost[0]
    assert lost[0]["worker"] is not None and lost[1]["status"] == DONE, lost
    assert lost[1]["worker"] != lost[0]["worker"], lost  # the rerun ran in the job that is left
    assert all(len(rs) == 1 for rs in rows.values() if rs is not lost), rows  # no other task ran twice
    assert _started(gate)[victim] == [str(lost_x)]  # the cancelled job started nothing else
    survivor = next(j for j in started if j != victim)
    assert sorted(int(x) for x in _started(gate)[survivor]) == sorted(
        e["params"]["x"] for rs in rows.values() for e in rs if e["attempt"] == len(rs) - 1)
