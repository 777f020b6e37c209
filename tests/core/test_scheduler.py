"""The batch scheduler at the edge: the job's end from each scheduler's own output, the order
of the sources, never fatal; the chain's resubmission rule; the config keys."""

from __future__ import annotations

import datetime
import logging

import pytest

from emews import scheduler as sch
from emews.config import parse_config
from emews.errors import ConfigError

# `scontrol show job 1` inside a Slurm 22.05 batch job (this machine, Debian's slurm-wlm)
SCONTROL = """JobId=1 JobName=j.sh
   UserId=root(0) GroupId=root(0) MCS_label=N/A
   Priority=4294901759 Nice=0 Account=(null) QOS=(null)
   JobState=RUNNING Reason=None Dependency=(null)
   RunTime=00:00:01 TimeLimit=00:01:00 TimeMin=N/A
   SubmitTime=2026-12-02T12:44:05 EligibleTime=2026-12-02T12:44:05
   StartTime=2026-12-02T12:44:07 EndTime=2026-12-02T12:45:07 Deadline=N/A
   Partition=debug AllocNode:Sid=localhost:2419
   Command=/tmp/j.sh
   WorkDir=/tmp
"""

# `qstat -f 1234.pbs01` (PBS Pro / OpenPBS), trimmed
QSTAT_PBSPRO = """Job Id: 1234.pbs01
    Job_Name = hpo
    job_state = R
    queue = workq
    Resource_List.ncpus = 64
    Resource_List.walltime = 02:00:00
    stime = Wed Dec  2 10:00:00 2026
    resources_used.walltime = 00:10:00
"""

# `qstat -f 99.torque` (Torque), trimmed
QSTAT_TORQUE = """Job Id: 99.torque
    Job_Name = hpo
    job_state = R
    Resource_List.walltime = 01:00:00
    start_time = Wed Dec  2 10:00:00 2026
    Walltime.Remaining = 3000
"""


def _local(text: str) -> float:
    return datetime.datetime.strptime(text, "%Y-%m-%dT%H:%M:%S").timestamp()


def test_slurm_outputs_parse_to_the_end_in_local_time():
    assert sch.parse_squeue_end("2026-12-02T11:01:27\n") == _local("2026-12-02T11:01:27")
    assert sch.parse_scontrol_end(SCONTROL) == _local("2026-12-02T12:45:07")
    for nothing in ("", "Unknown", "N/A", "NONE\n"):
        assert sch.parse_squeue_end(nothing) is None
    assert sch.parse_scontrol_end("JobId=1 EndTime=Unknown") is None


def test_pbs_end_is_start_plus_walltime_or_the_time_remaining():
    assert sch.parse_qstat_end(QSTAT_PBSPRO) == _local("2026-12-02T10:00:00") + 7200
    assert sch.parse_qstat_end(QSTAT_TORQUE, now=1000.0) == 4000.0  # Walltime.Remaining first
    assert sch.parse_qstat_end("Job Id: 1\n    job_state = Q\n") is None  # queued: no start yet


def test_lsf_and_flux_time_left():
    assert sch.parse_bjobs_time_left("1:30 L\n", now=0.0) == 5400
    assert sch.parse_bjobs_time_left("0:05 E", now=10.0) == 310
    assert sch.parse_bjobs_time_left("-\n") is None  # no run limit
    assert sch.parse_bjobs_time_left("0:00 X") is None  # exceeded
    assert sch.parse_flux_timeleft("3600\n", now=100.0) == 3700
    assert sch.parse_flux_timeleft("18446744073709551615") is None  # unlimited
    assert sch.parse_flux_timeleft("garbage") is None


def test_durations():
    assert sch.parse_duration("1-02:03:04") == 86400 + 2 * 3600 + 3 * 60 + 4
    assert sch.parse_duration("02:00:00") == 7200
    assert sch.parse_duration("90") == 90
    assert sch.parse_duration("1:30") == 5400  # HH:MM
    assert sch.parse_duration("soon") is None


class Canned:
    """Answers each command with canned output, and records what was asked."""

    def __init__(self, answers: dict[str, str | None]):
        self.answers, self.asked = answers, []

    def __call__(self, argv, timeout):
        self.asked.append(list(argv))
        return self.answers.get(argv[0])


def test_the_order_of_the_sources():
    slurm = Canned({"squeue": "2026-12-02T11:01:27\n"})
    # SLURM_JOB_END_TIME (set by some Slurm versions) needs no command
    end = sch.job_end({"SLURM_JOB_END_TIME": "1796000000", "SLURM_JOB_ID": "7"}, run=slurm)
    assert (end.time, end.source) == (1796000000.0, "Slurm job end (SLURM_JOB_END_TIME)") and not slurm.asked
    end = sch.job_end({"SLURM_JOB_ID": "7"}, run=slurm)
    assert end.time == _local("2026-12-02T11:01:27") and end.source == "Slurm job 7 end"
    assert slurm.asked == [["squeue", "-h", "-j", "7", "-o", "%e"]]
    # squeue says nothing: scontrol is asked
    fallback = Canned({"squeue": None, "scontrol": SCONTROL})
    assert sch.job_end({"SLURM_JOB_ID": "1"}, run=fallback).time == _local("2026-12-02T12:45:07")
    pbs = Canned({"qstat": QSTAT_PBSPRO})
    assert sch.job_end({"PBS_JOBID": "1234.pbs01"}, run=pbs).time == _local("2026-12-02T10:00:00") + 7200
    assert pbs.asked == [["qstat", "-f", "1234.pbs01"]]
    assert sch.job_end({"LSB_JOBID": "5"}, run=Canned({"bjobs": "0:10 L"})).scheduler == "lsf"
    assert sch.job_end({"FLUX_JOB_ID": "f1"}, run=Canned({"flux": "60"})).time is not None
    none = sch.job_end({}, run=Canned({}))
    assert none.time is None and none.job_id is None


def test_a_scheduler_that_cannot_answer_is_never_fatal(caplog):
    broken = Canned({})  # command missing, failing or too slow: the runner gives None
    end = sch.job_end({"SLURM_JOB_ID": "9"}, run=broken)
    assert end.time is None and end.job_id == "9"
    with caplog.at_level(logging.INFO, logger="emews"):
        sch.announce_no_end(end)
    assert "Slurm job 9 end is unknown" in caplog.text and "--deadline" in caplog.text
    # a real command that is not installed, and one that fails, through the default runner
    assert sch._run_command(["emews-no-such-scheduler-command"], 5) is None
    assert sch._run_command(["false"], 5) is None
    assert sch._run_command(["sleep", "10"], 0.2) is None  # the timeout
    assert sch.job_end({"SLURM_JOB_END_TIME": "inf"}).time is None  # a bad value is ignored (and said)


def test_chain_is_never_past_chain_max_nor_outside_a_slurm_job():
    assert sch.submit_chain(3, 3, {"PATH": "/usr/bin"}) == (None, "not resubmitted: chain_max (3) jobs reached")
    argv, outcome = sch.submit_chain(1, 3, {"PATH": "/usr/bin"})
    assert argv is None and outcome.startswith("not resubmitted: not in a Slurm batch job")
    assert sch.chain_depth({}) == 1 and sch.chain_depth({"EMEWS_CHAIN_DEPTH": "3"}) == 3
    assert sch.chain_depth({"EMEWS_CHAIN_DEPTH": "x"}) == 1


def _cfg(**more):
    return {"experiment": "e", "objective": "emews.examples:sphere", "space": {"x": {"type": "real", "low": 0,
            "high": 1}}, "max_evals": 3, **more}


def test_chain_config_keys_are_checked():
    cfg = parse_config(_cfg(chain=True, chain_max=4))
    assert (cfg.chain, cfg.chain_max) == (True, 4)
    assert (parse_config(_cfg()).chain, parse_config(_cfg()).chain_max) == (False, 10)
    with pytest.raises(ConfigError, match=r"chain: must be true or false, got 'yes'"):
        parse_config(_cfg(chain="yes"))
    with pytest.raises(ConfigError, match=r"chain_max: must be >= 1, got 0"):
        parse_config(_cfg(chain_max=0))
    with pytest.raises(ConfigError, match=r"chain_max: must be an integer"):
        parse_config(_cfg(chain_max=2.5))


def test_singleton_ranks_under_srun_name_srun_mpi_pmi2():
    from emews.launch import _singleton_message

    under_srun = _singleton_message(3, {"SLURM_STEP_NUM_TASKS": "3", "SLURM_PROCID": "0"})
    assert "srun --mpi=pmi2" in under_srun and "--mpi=pmix" in under_srun
    under_mpiexec = _singleton_message(3, {"PMI_SIZE": "3", "SLURM_STEP_NUM_TASKS": "1"})
    assert "mpiexec of the MPI mpi4py was built with" in under_mpiexec


def test_warning_signal_is_a_deadline_stop_then_resume(tmp_path):
    """SIGUSR1 (``#SBATCH --signal=B:USR1@120``) stops like the deadline: running tasks are
    cancelled and journaled, the outputs written, exit 0; the resume runs them again."""
    import signal

    from helpers import (
        WAIT,
        Gate,
        check_exactly_once,
        finished_rows,
        kill_env,
        reap,
        run_cli,
        start_cli,
        wait_for_results,
        write_config,
    )

    from emews.journal import read_journal

    cfg = write_config(tmp_path, {"experiment": "k", "objective": "killable:slow",
                                  "space": {"x": {"type": "real", "low": 0, "high": 1},
                                            "i": {"type": "int", "low": 0, "high": 10**6}},
                                  "max_evals": 20, "workers": 2, "seed": 5, "output": str(tmp_path / "runs"),
                                  "report": False})
    out = tmp_path / "runs" / "k"
    env = kill_env(tmp_path, sleep=0.3)
    gate = Gate(tmp_path / "gate")  # 4 tasks pass, then one is held on each worker: running at the signal
    gate.allow(4)
    proc = start_cli([str(cfg)], tmp_path, env | gate.env)
    try:
        wait_for_results(out, 3, proc)
        gate.wait_started(6, proc)
        proc.send_signal(signal.SIGUSR1)
        stdout, err = proc.communicate(timeout=WAIT)
    finally:
        reap(proc)
    assert proc.returncode == 0, err
    assert "stopped early (SIGUSR1 (the batch job's warning signal)" in stdout, stdout
    j = read_journal(out)
    assert j["meta"]["outcome"].startswith("SIGUSR1 (the batch job's warning signal)")
    assert not [r for r in j["evals"] if r["status"] in ("queued", "running")]
    assert len([r for r in j["evals"] if r["status"] == "cancelled" and r["worker"] is not None]) == 2
    assert (out / "results.csv").exists()
    before = finished_rows(out)
    gate.open()
    r = run_cli([str(cfg)], cwd=tmp_path, env=env | gate.env, timeout=120)
    assert r.returncode == 0, r.stderr
    check_exactly_once(out, before, 20, tmp_path / "evals.log", 2)


def test_slurm_tests_skip_where_slurm_cannot_start_but_fail_under_ci(tmp_path):
    import os
    import subprocess
    import sys

    from helpers import ROOT

    def pytest_slurm(**env):
        e = {k: v for k, v in os.environ.items() if k != "CI"} | {"EMEWS_SLURM_TESTS": "off"} | env
        e["PYTHONPATH"] = str(ROOT)
        return subprocess.run([sys.executable, "-m", "pytest", str(ROOT / "tests/slurm"), "-k", "singleton", "-q",
                               "-p", "no:cacheprovider", "--basetemp", str(tmp_path / "pt")], cwd=ROOT, env=e,
                              capture_output=True, text=True, timeout=300)

    laptop = pytest_slurm()
    assert laptop.returncode == 0 and "1 skipped" in laptop.stdout, laptop.stdout
    ci = pytest_slurm(CI="true")
    assert ci.returncode == 1 and "CI must run the Slurm tests" in ci.stdout, ci.stdout
