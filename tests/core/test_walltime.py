"""Wall-time awareness (a deadline, the Slurm job's end), progress lines and log levels."""

from __future__ import annotations

import io
import math
import time

import pytest
from helpers import (
    STARTUP,
    WAIT,
    Gate,
    finished_rows,
    kill_env,
    reap,
    run_cli,
    start_cli,
    wait_until,
    write_config,
)

from emews._progress import Progress, format_duration
from emews.config import parse_deadline
from emews.errors import ConfigError
from emews.journal import read_journal


def _config(tmp_path, t, max_evals, **more):
    cfg = {"experiment": "w", "objective": "killable:sleepy", "space": {"t": {"type": "constant", "value": t},
           "i": {"type": "int", "low": 0, "high": 10**6}}, "max_evals": max_evals, "workers": 2, "seed": 1,
           "output": str(tmp_path / "runs"), "report": False, **more}
    return write_config(tmp_path, cfg)


def test_slurm_end_time_stops_new_tasks_before_it(tmp_path):
    # The stop comes STARTUP s after the launch (time for a loaded machine to start tasks); the
    # gate lets 3 tasks through and holds the next one on each worker until the stop has passed,
    # so the run cannot end, nor start a task late, because of the machine's speed. The margin
    # before the end is long: the held tasks finish well before the kill_margin.
    stop_margin = 100.0
    cfg = _config(tmp_path, 0.0, 200, stop_margin=stop_margin, kill_margin=0.5)
    gate = Gate(tmp_path / "gate")
    gate.allow(3)
    end = int(time.time() + STARTUP + stop_margin) + 1
    env = kill_env(tmp_path) | gate.env | {"SLURM_JOB_END_TIME": str(end)}
    proc = start_cli([str(cfg)], tmp_path, env)
    try:
        gate.wait_started(5, proc, before_limit=True)  # 3 let through, then one held on each worker
        wait_until(lambda: time.time() > end - stop_margin + 0.5, message="the stop time (end - stop_margin)")
        gate.open()
        out, err = proc.communicate(timeout=WAIT)
    finally:
        reap(proc)
    assert proc.returncode == 0, err
    assert "Slurm job end (SLURM_JOB_END_TIME)" in err
    assert "stopped early" in out and "run the same command again to resume" in out, (out, err)
    j = read_journal(tmp_path / "runs" / "w")
    assert j["meta"]["outcome"].startswith("Slurm job end (SLURM_JOB_END_TIME) near: stopped 100 s before it")
    starts = [e["start"] for e in j["evals"] if e["start"] is not None]
    assert starts and max(starts) <= end - stop_margin + 0.3  # nothing started inside the margin
    # every started task could finish; those queued (random search keeps some) were cancelled
    assert all(e["status"] == ("done" if e["start"] is not None else "cancelled") for e in j["evals"])
    n = sum(e["status"] == "done" for e in j["evals"])
    assert 0 < n < 200
    assert n == 5  # the 3 let through and the 2 held: none started after the stop
    # the next job (no deadline now) resumes where this one stopped
    r = run_cli([str(cfg), "--set", "max_evals=" + str(n + 4)], cwd=tmp_path, env=kill_env(tmp_path))
    assert r.returncode == 0 and f"{n} of {n + 4} evaluations finished earlier" in r.stderr, r.stderr
    assert len(finished_rows(tmp_path / "runs" / "w")) == n + 4


def test_running_tasks_are_cancelled_before_the_deadline_and_rerun_on_resume(tmp_path):
    # The gate holds both tasks for ever: they are running when the kill_margin comes, however
    # slow the machine; the deadline leaves STARTUP s for them to start.
    cfg = _config(tmp_path, 0.0, 2, stop_margin=1.5, kill_margin=1.0)
    gate = Gate(tmp_path / "gate")
    lead = math.ceil(STARTUP + 1.5)
    proc = start_cli([str(cfg), "--deadline", f"+{lead}"], tmp_path, kill_env(tmp_path) | gate.env)
    try:
        gate.wait_started(2, proc, before_limit=True)
        _, err = proc.communicate(timeout=WAIT)
    finally:
        reap(proc)
    assert proc.returncode == 0, err
    assert "2 running task(s) cancelled 1 s before the deadline; a resume runs them again" in err
    # did not wait for its tasks: the gate never let them through, and they would wait for ever
    assert not list(gate.dir.glob("used-*")) and not (gate.dir / "open").exists()
    j = read_journal(tmp_path / "runs" / "w")
    assert sorted(e["status"] for e in j["evals"]) == ["cancelled", "cancelled"]
    assert not (tmp_path / "evals.log").exists()  # nothing was evaluated to the end
    r = run_cli([str(cfg)], cwd=tmp_path, env=kill_env(tmp_path))
    assert r.returncode == 0 and "2 interrupted task(s) to run again" in r.stderr, r.stderr
    rows = read_journal(tmp_path / "runs" / "w")["evals"]
    assert sorted((e["attempt"], e["status"]) for e in rows) == [(0, "cancelled"), (0, "cancelled"), (1, "done"), (1, "done")]
    assert len((tmp_path / "evals.log").read_text().splitlines()) == 2


def test_deadline_formats():
    now = 1_000_000.0
    assert parse_deadline("+90m", now=now) == now + 5400
    assert parse_deadline("+2h", now=now) == now + 7200
    assert parse_deadline("+600", now=now) == now + 600
    assert parse_deadline("+11h50m", now=now) == now + 42600 and parse_deadline("+1d 2h", now=now) == now + 93600
    assert parse_deadline(1.8e9) == 1.8e9 and parse_deadline("1800000000") == 1.8e9
    assert parse_deadline("2030-01-02T03:04:05+00:00") == 1893553445.0
    assert parse_deadline(None) is None and parse_deadline(False) is False
    for bad in ("tomorrow", "+", "+2x", 1e20, float("inf"), "nan"):
        with pytest.raises(ConfigError, match=r"^command line: --deadline: must be epoch seconds.*got "):
            parse_deadline(bad, "command line", "--deadline")


def test_bad_deadline_on_the_command_line_and_in_the_config(tmp_path):
    cfg = _config(tmp_path, 0.0, 2)
    r = run_cli([str(cfg), "--deadline", "soon"], cwd=tmp_path, env=kill_env(tmp_path))
    assert r.returncode == 2 and "--deadline: must be epoch seconds" in r.stderr and "'soon'" in r.stderr
    r = run_cli([str(cfg), "--deadline", "2020-01-01T00:00"], cwd=tmp_path, env=kill_env(tmp_path))
    # blamed on the command line that gave it (issue 25), not on the file
    assert r.returncode == 2 and "command line: --deadline: is in the past (2020-01-01T00:00:00)" in r.stderr, r.stderr
    r = run_cli([str(cfg), "--set", "deadline=2020-01-01T00:00"], cwd=tmp_path, env=kill_env(tmp_path))
    assert r.returncode == 2 and "--set deadline=2020-01-01T00:00: deadline: is in the past (2020-01-01T00:00:00)" \
        in r.stderr, r.stderr
    r = run_cli([str(cfg)], cwd=tmp_path, env=kill_env(tmp_path) | {"SLURM_JOB_END_TIME": "inf"})
    assert r.returncode == 0 and "ignoring SLURM_JOB_END_TIME='inf': not epoch seconds" in r.stderr, r.stderr
    r = run_cli([str(cfg), "--set", "kill_margin=100"], cwd=tmp_path, env=kill_env(tmp_path))
    assert r.returncode == 2 and "--set kill_margin=100: kill_margin: must not exceed stop_margin (60), got 100" in r.stderr


def test_progress_text_and_live_line():
    buf = io.StringIO()
    p = Progress(1.0, 10, 4, live=True, stream=buf)
    p.start(2)  # two evaluations from an earlier session
    p.t0 -= 30  # 30 s ago
    text = p.text(5, 1, 0.125, 3)
    assert text.startswith("emews: 5/10 done (1 failed) · best 0.125 · 3/4 busy · 30s elapsed · ETA ")
    assert text.endswith("ETA 50s")  # 3 new in 30 s, 5 to go
    p._last -= 1
    p.update(5, 1, 0.125, 3)
    assert buf.getvalue().startswith("\r\x1b[K" + "emews: 5/10")
    p.close(10, 1, 0.1, 0)
    assert buf.getvalue().endswith("\n") and "10/10 done" in buf.getvalue().splitlines()[-1]
    assert format_duration(3725) == "1h02m" and format_duration(65) == "1m05s"


def test_progress_lines_and_log_levels_in_a_batch_log(tmp_path):
    cfg = _config(tmp_path, 0.15, 16, progress=0.3)
    r = run_cli([str(cfg)], cwd=tmp_path, env=kill_env(tmp_path))
    assert r.returncode == 0
    lines = [ln for ln in r.stderr.splitlines() if " done" in ln and "busy" in ln]
    assert len(lines) >= 2, r.stderr  # plain lines (stderr is not a terminal), no \r redraws
    assert all(ln.startswith("emews: ") and "\r" not in ln for ln in lines)
    assert any("ETA" in ln for ln in lines)
    r = run_cli([str(cfg), "-q", "--set", "max_evals=18"], cwd=tmp_path, env=kill_env(tmp_path))
    assert r.returncode == 0 and r.stderr == ""  # -q: warnings and errors only on stderr
    assert "emews: 18 evaluations" in r.stdout  # the summary still comes, on stdout
    r = run_cli([str(cfg), "-v", "--set", "max_evals=19"], cwd=tmp_path, env=kill_env(tmp_path))
    assert r.returncode == 0 and "emews: INFO: resuming" in r.stderr


@pytest.mark.parametrize("retries", [0, 1])
def test_worker_killed_mid_task_is_replaced_and_the_task_retried_or_failed(tmp_path, retries):
    import os
    import signal
    import subprocess
    import sys

    cfg = _config(tmp_path, 1.0, 4, runner={"retries": retries})
    gate = Gate(tmp_path / "gate")  # closed: the first tasks are held, mid-task, until the kill
    env = kill_env(tmp_path) | gate.env | {"KILLABLE_PIDS": str(tmp_path / "pids")}
    proc = subprocess.Popen([sys.executable, "-m", "emews.run", str(cfg)], cwd=tmp_path, env=env, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    gate.wait_started(1, proc)
    victim = int((tmp_path / "pids").read_text().split()[0])  # its pid is written before the gate
    os.kill(victim, signal.SIGKILL)  # the worker process, in the middle of its task
    # the other worker stays held until the dead one's replacement has taken a task (it writes
    # its pid first): a slow start cannot leave all the work to the survivor
    wait_until(lambda: len(set((tmp_path / "pids").read_text().split())) >= 3,
               message="a new worker in the dead one's place to take a task", proc=proc)
    gate.open()
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    rows = read_journal(tmp_path / "runs" / "w")["evals"]
    killed = [e for e in rows if e["status"] == "failed"]
    assert len(killed) == 1 and "killed by signal SIGKILL (9)" in killed[0]["error"], killed
    assert killed[0]["end"] is not None and killed[0]["start"] is not None
    final = {e["task_id"]: e for e in rows}  # rows are ordered by attempt: the last one wins
    statuses = sorted(e["status"] for e in final.values())
    assert statuses == (["done"] * 4 if retries else ["done"] * 3 + ["failed"])
    assert len(final) == 4
    pids = set((tmp_path / "pids").read_text().split())
    assert len(pids) >= 3  # a new worker process took the dead one's place


def test_progress_without_logging_configured_still_prints(capsys):
    import logging

    logger = logging.getLogger("emews")
    saved = logger.handlers[:], logger.propagate
    logger.handlers[:] = []
    logger.propagate = False
    try:
        p = Progress(0.01, 5, 2)
        p._last -= 1
        p.update(2, 0, 1.5, 2)
    finally:
        logger.handlers[:], logger.propagate = saved
    assert "emews: 2/5 done · best 1.5 · 2/2 busy" in capsys.readouterr().err
