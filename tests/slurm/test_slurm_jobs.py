"""emews inside real Slurm batch jobs: the job's end read from Slurm, its warning signal, its
time limit, ``scancel``, jobs that chain themselves, the MPI pool under ``srun --mpi=pmi2``.

The first job of every test is submitted at once (the module fixture ``first_jobs``), so the
jobs run side by side on the one node (16 CPUs declared); each test then waits for its own
jobs (``scontrol show job``: their state, never a fixed sleep) and reads the journal.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import uuid
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml
from helpers import ROOT, wait_until

from emews.journal import final_attempts, read_journal

pytestmark = [pytest.mark.slurm, pytest.mark.slow]

HERE = Path(__file__).resolve().parent
#: how long a test waits for a job it submitted to end: generous, a loaded machine is slow
JOB_WAIT = 420.0
ENDED = ("COMPLETED", "FAILED", "TIMEOUT", "CANCELLED", "NODE_FAIL", "OUT_OF_MEMORY", "PREEMPTED", "BOOT_FAIL",
         "DEADLINE")
PYTHON = sys.executable


@dataclass
class Job:
    """A submitted batch job: its id, its directory, its experiment and its output file."""

    id: str
    dir: Path
    out: Path
    log: Path


def _env(cluster, **extra: str) -> dict[str, str]:
    """What sbatch exports to the job: the cluster's SLURM_CONF, the checkout's emews first."""
    e = dict(cluster.env)
    for var in ("SLURM_JOB_END_TIME", "SLURM_JOB_ID", "EMEWS_CHAIN_DEPTH", "EMEWS_TEST_LONG_RANK"):
        e.pop(var, None)
    e["PYTHONPATH"] = os.pathsep.join([str(ROOT), str(HERE), e.get("PYTHONPATH", "")])
    e.update(extra)
    return e


def _config(directory: Path, **changes) -> Path:
    cfg = {"experiment": "exp", "objective": "objectives:sleepy", "space": {"x": {"type": "real", "low": 0, "high": 1}},
           "max_evals": 12, "seed": 1, "report": False, "output": str(directory / "runs")}
    cfg.update(changes)
    path = directory / "config.yaml"
    path.write_text(yaml.safe_dump(cfg, sort_keys=False))
    return path


def _script(directory: Path, body: str, options: list[str], name: str = "job.sh") -> Path:
    path = directory / name
    path.write_text("#!/bin/bash\n" + "".join(f"#SBATCH {o}\n" for o in options) + body + "\n")
    path.chmod(0o755)
    return path


def sbatch(cluster, script: Path, env: dict[str, str], *args: str) -> str:
    """Submit ``script`` from its directory; the job id."""
    p = subprocess.run(["sbatch", "--parsable", *args, str(script)], cwd=script.parent, env=env,
                       capture_output=True, text=True, timeout=60)
    assert p.returncode == 0, f"sbatch failed: {p.stderr}"
    return p.stdout.strip().split(";")[0]


def job_info(cluster, job_id: str) -> dict[str, str]:
    """``scontrol show job -o ID`` as a mapping (JobState, ExitCode, StartTime, EndTime ...)."""
    p = subprocess.run(["scontrol", "show", "job", "-o", job_id], env=cluster.env, capture_output=True, text=True,
                       timeout=60)
    return dict(re.findall(r"(\w+)=(\S*)", p.stdout)) if p.returncode == 0 else {}


def wait_ended(cluster, job: Job | str, timeout: float = JOB_WAIT) -> dict[str, str]:
    """Wait until the job has ended; its final ``scontrol`` record."""
    jid = job.id if isinstance(job, Job) else job

    def ended():
        info = job_info(cluster, jid)
        return info if info.get("JobState") in ENDED else None

    return wait_until(ended, timeout, interval=1.0, message=f"job {jid} to end ({_tail(job)})")


def _tail(job: Job | str) -> str:
    if not isinstance(job, Job):
        return ""
    try:
        return job.log.read_text()[-3000:]
    except OSError:
        return "no output yet"


def _epoch(slurm_time: str) -> float:
    import datetime

    return datetime.datetime.strptime(slurm_time, "%Y-%m-%dT%H:%M:%S").timestamp()


def _submit(cluster, directory: Path, body: str, options: list[str], env: dict[str, str]) -> Job:
    directory.mkdir(parents=True, exist_ok=True)
    log = directory / "job.out"
    script = _script(directory, body, [*options, f"-o {log}", "--open-mode=append", f"-J emews-{uuid.uuid4().hex[:8]}"])
    return Job(sbatch(cluster, script, env), directory, directory / "runs" / "exp", log)


def _emews(config: Path, *extra: str, srun: bool = True) -> str:
    launcher = "srun --mpi=pmi2 " if srun else ""
    return f"exec {launcher}{PYTHON} -m emews.run {config} {' '.join(extra)}"


# -- the first job of every test, submitted together ------------------------------------------
@pytest.fixture(scope="module")
def first_jobs(slurm_cluster, tmp_path_factory):
    c = slurm_cluster
    base = tmp_path_factory.mktemp("jobs")
    jobs: dict[str, Job] = {}
    # the chain takes longest (three jobs in a row): first in the queue. One worker, 20-s tasks,
    # stop_margin 40 of a 60-s job: the one task a job starts ends after the stop time (no second
    # one starts) and before the kill time (it is not cancelled): one result per job
    d = base / "chain"
    d.mkdir()
    cfg = _config(d, max_evals=3, workers=1, pool="local", stop_margin=40, kill_margin=5, chain_max=5)
    jobs["chain"] = _submit(c, d, _emews(cfg, "--chain", srun=False), ["-n 1", "-t 1"],
                            _env(c, EMEWS_TEST_SECONDS="20"))
    # a time limit shorter than the tasks on rank 2: they are cancelled at kill_margin
    d = base / "timelimit"
    d.mkdir()
    cfg = _config(d, stop_margin=30, kill_margin=10)
    jobs["timelimit"] = _submit(c, d, _emews(cfg), ["-n 3", "-t 1"],
                                _env(c, EMEWS_TEST_SECONDS="4", EMEWS_TEST_LONG_RANK="2"))
    # the warning signal, well before the job's end (stop_margin 20 of 120 s)
    d = base / "usr1"
    d.mkdir()
    cfg = _config(d, stop_margin=20, kill_margin=5)
    jobs["usr1"] = _submit(c, d, _emews(cfg), ["-n 3", "-t 2", "--signal=B:USR1@90"],
                           _env(c, EMEWS_TEST_SECONDS="2", EMEWS_TEST_LONG_RANK="2"))
    # scancel of a running job (its rank 2 always holds a task)
    d = base / "scancel"
    d.mkdir()
    cfg = _config(d, stop_margin=20, kill_margin=5)
    jobs["scancel"] = _submit(c, d, _emews(cfg), ["-n 3", "-t 5"],
                              _env(c, EMEWS_TEST_SECONDS="2", EMEWS_TEST_LONG_RANK="2"))
    d = base / "scancel-local"  # the same, without srun: the local pool in the batch script
    d.mkdir()
    cfg = _config(d, stop_margin=20, kill_margin=5, pool="local", workers=2)
    (d / "hold").touch()  # each worker's second task waits: the job cannot end before the scancel
    jobs["scancel-local"] = _submit(c, d, _emews(cfg, srun=False), ["-n 1", "-t 5"],
                                    _env(c, EMEWS_TEST_SECONDS="1", EMEWS_TEST_HOLD=str(d / "hold")))
    # the quickstart on the MPI pool
    d = base / "quickstart"
    d.mkdir()
    out = d / "runs" / "exp"
    jobs["quickstart"] = _submit(c, d, f"srun --mpi=pmi2 -n 4 {PYTHON} -m emews.run {ROOT / 'configs/quickstart.yaml'} "
                                       f"--out {out}", ["-n 4", "-t 5"], _env(c))
    yield jobs
    for job in jobs.values():  # a test that failed midway leaves nothing running
        subprocess.run(["scancel", job.id], env=c.env, capture_output=True, timeout=60)


def _rows(out: Path) -> list[dict]:
    return read_journal(out)["evals"]


def _assert_nothing_open(out: Path) -> None:
    open_rows = [(r["task_id"], r["attempt"], r["status"]) for r in _rows(out) if r["status"] in ("queued", "running")]
    assert not open_rows, f"tasks left open in the journal: {open_rows}"


def _assert_complete_once(out: Path, max_evals: int) -> None:
    """Every task of the budget done exactly once, across all the sessions."""
    rows = _rows(out)
    done = [r["task_id"] for r in rows if r["status"] == "done"]
    assert len(done) == len(set(done)), f"tasks done twice: {sorted(t for t in done if done.count(t) > 1)}"
    assert len(done) == max_evals, f"{len(done)} of {max_evals} done"
    assert all(r["status"] == "done" for r in final_attempts(rows))
    _assert_nothing_open(out)


def _resume(cluster, job: Job, env: dict[str, str], srun: bool = True) -> dict[str, str]:
    """The same config again in a new job (no long tasks): it resumes and completes."""
    cfg = job.dir / "config.yaml"
    log = job.dir / "resume.out"
    script = _script(job.dir, _emews(cfg, srun=srun), ["-n 3" if srun else "-n 1", "-t 5", f"-o {log}"],
                     name="resume.sh")
    jid = sbatch(cluster, script, env)
    info = wait_ended(cluster, jid)
    assert info["JobState"] == "COMPLETED", (info, log.read_text())
    assert "resuming" in log.read_text()
    return info


# -- the tests --------------------------------------------------------------------------------
def test_quickstart_on_the_mpi_pool_under_srun(slurm_cluster, first_jobs):
    job = first_jobs["quickstart"]
    info = wait_ended(slurm_cluster, job)
    text = job.log.read_text()
    assert info["JobState"] == "COMPLETED", text
    meta = read_journal(job.out)["meta"]
    assert meta["pool"] == "mpi" and meta["workers"] == 3, meta
    assert "60 evaluations (60 done" in text, text
    assert f"Slurm job {job.id} end at" in text, text  # the deadline came from Slurm itself
    assert (job.out / "report.json").exists() and (job.out / "results.csv").exists()


def test_time_limit_stops_in_order_and_the_next_job_completes(slurm_cluster, first_jobs):
    job, c = first_jobs["timelimit"], slurm_cluster
    info = wait_ended(c, job)
    text = job.log.read_text()
    # emews stopped before Slurm's limit: the job ended by itself, no MPI_Abort
    assert info["JobState"] == "COMPLETED", (info, text)
    assert "MPI_Abort" not in text, text
    end = _epoch(info["StartTime"]) + 60  # -t 1; what squeue told emews
    assert f"Slurm job {job.id} end at" in text, text
    j = read_journal(job.out)
    rows = j["evals"]
    starts = [r["start"] for r in rows if r["start"] is not None]
    assert starts and max(starts) <= end - 30 + 1.0, (max(starts), end)  # none within stop_margin
    cancelled = [r for r in rows if r["status"] == "cancelled" and r["worker"] is not None]
    assert cancelled, rows  # rank 2's task, cancelled at kill_margin
    session = j["meta"]["sessions"][-1]
    assert end - 10 - 1.0 <= session["finished"] <= end, (session, end)
    assert j["meta"]["outcome"].startswith(f"Slurm job {job.id} end near"), j["meta"]["outcome"]
    _assert_nothing_open(job.out)
    done_before = {r["task_id"] for r in rows if r["status"] == "done"}
    _resume(c, job, _env(c, EMEWS_TEST_SECONDS="1"))
    _assert_complete_once(job.out, 12)
    assert done_before <= {r["task_id"] for r in _rows(job.out) if r["status"] == "done"}


def test_warning_signal_is_an_orderly_stop(slurm_cluster, first_jobs):
    job = first_jobs["usr1"]
    info = wait_ended(slurm_cluster, job)
    text = job.log.read_text()
    assert info["JobState"] == "COMPLETED" and info["ExitCode"] == "0:0", (info, text)
    j = read_journal(job.out)
    assert j["meta"]["outcome"].startswith("SIGUSR1 (the batch job's warning signal)"), j["meta"]["outcome"]
    assert "stopped early" in text and "MPI_Abort" not in text, text
    rows = j["evals"]
    assert any(r["status"] == "cancelled" and r["worker"] is not None for r in rows), rows  # rank 2's task
    _assert_nothing_open(job.out)
    assert (job.out / "results.csv").exists()


@pytest.mark.parametrize("name", ["scancel", "scancel-local"])
def test_scancel_then_resume_loses_nothing(slurm_cluster, first_jobs, name):
    job, c = first_jobs[name], slurm_cluster

    def two_done():
        try:
            return len([r for r in _rows(job.out) if r["status"] == "done"]) >= 2
        except Exception:  # noqa: BLE001 - no journal yet
            return False

    wait_until(two_done, JOB_WAIT, interval=0.5, message=f"2 results of job {job.id} ({_tail(job)})")
    subprocess.run(["scancel", job.id], env=c.env, check=True, timeout=60)
    info = wait_ended(c, job)
    assert info["JobState"] == "CANCELLED", info
    text = job.log.read_text()
    assert "terminated (SIGTERM)" in text and "MPI_Abort" not in text, text
    _assert_nothing_open(job.out)
    done_before = {r["task_id"] for r in _rows(job.out) if r["status"] == "done"}
    _resume(c, job, _env(c, EMEWS_TEST_SECONDS="1"), srun=name == "scancel")
    _assert_complete_once(job.out, 12)
    assert done_before <= {r["task_id"] for r in _rows(job.out) if r["status"] == "done"}


def test_chain_resubmits_until_the_search_is_complete(slurm_cluster, first_jobs):
    job, c = first_jobs["chain"], slurm_cluster

    def chain_over():
        try:
            meta = read_journal(job.out)["meta"]
        except Exception:  # noqa: BLE001 - no journal yet
            return None
        chain = meta.get("chain") or []
        ids = [job.id] + [m.group(1) for x in chain if (m := re.search(r"batch job (\d+)", x["outcome"]))]
        infos = [job_info(c, i) for i in ids]
        done = [r for r in _rows(job.out) if r["status"] == "done"]
        if all(i.get("JobState") in ENDED for i in infos) and len(done) >= 3:
            return ids, infos, chain
        return None

    ids, infos, chain = wait_until(chain_over, JOB_WAIT, interval=1.0, message=f"the chain of job {job.id} to end")
    assert len(ids) == 3, (ids, chain)  # two automatic resubmissions
    assert [x["depth"] for x in chain] == [1, 2]
    assert all(x["outcome"].startswith("resubmitted") for x in chain), chain
    assert all(f"--dependency=afterany:{i}" in x["command"] for i, x in zip(ids, chain)), chain
    assert all(i["JobState"] == "COMPLETED" for i in infos), infos
    _assert_complete_once(job.out, 3)
    assert len(read_journal(job.out)["meta"]["sessions"]) == 3
    # the job that finished the search did not resubmit; nor does a job on a complete search
    last = job.dir / "job.out"
    again = sbatch(c, job.dir / "job.sh", _env(c, EMEWS_TEST_SECONDS="20"))
    info = wait_ended(c, again)
    assert info["JobState"] == "COMPLETED", (info, last.read_text())
    assert "already complete" in last.read_text()
    assert len(read_journal(job.out)["meta"].get("chain")) == 2


def test_singleton_ranks_under_plain_srun_name_the_fix(slurm_cluster, tmp_path):
    cfg = _config(tmp_path, pool="mpi")
    p = subprocess.run(["srun", "-n", "3", "-t", "2", PYTHON, "-m", "emews.run", str(cfg)], cwd=tmp_path,
                       env=_env(slurm_cluster), capture_output=True, text=True, timeout=JOB_WAIT)
    assert "srun --mpi=pmi2" in p.stderr, p.stderr
    assert "exited with exit code 2" in p.stderr.lower(), p.stderr
    assert not (tmp_path / "runs").exists()  # nothing created
