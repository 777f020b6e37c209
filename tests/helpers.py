from __future__ import annotations

import os
import random
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]


def run_cli(args: list[str], cwd: Path, timeout: float = 120, env: dict | None = None) -> subprocess.CompletedProcess:
    """``python -m emews.run ARGS`` in ``cwd`` with the repository importable."""
    e = dict(os.environ)
    e["PYTHONPATH"] = os.pathsep.join([str(ROOT), e.get("PYTHONPATH", "")])
    if env:
        e.update(env)
    return subprocess.run([sys.executable, "-m", "emews.run", *args], cwd=cwd, env=e, capture_output=True,
                          text=True, timeout=timeout)


def run_cli_then_signal(args: list[str], cwd: Path, sig: int, after: float = 4.0) -> tuple[int, str]:
    """Start ``python -m emews.run ARGS``, send it ``sig`` after ``after`` seconds; (exit code, stderr)."""
    import time

    e = dict(os.environ)
    e["PYTHONPATH"] = os.pathsep.join([str(ROOT), e.get("PYTHONPATH", "")])
    proc = subprocess.Popen([sys.executable, "-m", "emews.run", *args], cwd=cwd, env=e,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    time.sleep(after)
    proc.send_signal(sig)
    _, err = proc.communicate(timeout=60)
    return proc.returncode, err


def base_config(tmp_path: Path, **changes) -> dict:
    cfg = {
        "experiment": "t",
        "objective": "emews.examples:quickstart",
        "space": {
            "learning_rate": {"type": "real", "low": 1e-5, "high": 0.1, "log": True},
            "batch_size": {"type": "ordinal", "values": [16, 32, 64]},
            "optimizer": {"type": "categorical", "values": ["adam", "sgd"]},
            "dropout": {"type": "real", "low": 0.0, "high": 0.9},
            "sleep": {"type": "constant", "value": 0.0},
        },
        "max_evals": 12,
        "workers": 2,
        "seed": 3,
        "output": str(tmp_path / "runs"),
    }
    for k, v in changes.items():
        if v is None:
            cfg.pop(k, None)
        else:
            cfg[k] = v
    return cfg


def write_config(tmp_path: Path, cfg: dict, name: str = "config.yaml") -> Path:
    p = tmp_path / name
    p.write_text(yaml.safe_dump(cfg, sort_keys=False))
    return p


@pytest.fixture
def cli():
    return run_cli


# -- kill and resume -------------------------------------------------------------------------
def kill_env(tmp_path: Path, sleep: float = 0.05) -> dict:
    """Environment for runs of the ``killable`` objectives: repository and tests importable,
    the evaluation log in ``tmp_path/evals.log``."""
    e = dict(os.environ)
    e["PYTHONPATH"] = os.pathsep.join([str(ROOT), str(ROOT / "tests"), e.get("PYTHONPATH", "")])
    e["KILLABLE_LOG"] = str(tmp_path / "evals.log")
    e["KILLABLE_SLEEP"] = str(sleep)
    e.pop("SLURM_JOB_END_TIME", None)
    return e


def start_cli(args: list[str], cwd: Path, env: dict, launcher: tuple[str, ...] = ()) -> subprocess.Popen:
    """Start ``[launcher...] python -m emews.run ARGS`` in the background (own session)."""
    return subprocess.Popen([*launcher, sys.executable, "-m", "emews.run", *args], cwd=cwd, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True)


def finished_rows(out: Path) -> dict[int, dict]:
    """Tasks whose last journaled attempt has a final result (done, failed, timeout)."""
    from emews.journal import JournalError, final_attempts, read_journal

    try:
        rows = read_journal(out)["evals"]
    except JournalError:
        return {}
    return {r["task_id"]: r for r in final_attempts(rows) if r["status"] in ("done", "failed", "timeout")}


def wait_for_results(out: Path, k: int, proc: subprocess.Popen, timeout: float = 60) -> dict[int, dict]:
    """Poll the journal until ``k`` results are in; fails if the run ends first."""
    import time

    end = time.monotonic() + timeout
    while time.monotonic() < end:
        got = finished_rows(out)
        if len(got) >= k:
            return got
        if proc.poll() is not None:
            _, err = proc.communicate()
            pytest.fail(f"the run ended (exit {proc.returncode}) before {k} results: {err}")
        time.sleep(0.02)
    pytest.fail(f"fewer than {k} results in {timeout} s")


def check_exactly_once(out: Path, before: dict[int, dict], max_evals: int, log: Path, workers: int) -> list[dict]:
    """The invariants of a killed-then-resumed run; returns the final finished rows.

    * the budget: exactly ``max_evals`` tasks with a final result, at most one per task;
    * nothing lost: every result journaled before the kill is still there, unchanged;
    * nothing evaluated twice: no two finished tasks share parameters, and no point that
      had finished before the kill was evaluated again (the objective's own log);
    * the journal is consistent: no task is left queued or running.
    """
    import collections
    import json

    from emews.journal import read_journal

    rows = read_journal(out)["evals"]
    finals = [r for r in rows if r["status"] in ("done", "failed", "timeout")]
    per_task = collections.Counter(r["task_id"] for r in finals)
    assert per_task and max(per_task.values()) == 1, f"a task has two final results: {per_task.most_common(3)}"
    assert len(finals) == max_evals, f"{len(finals)} evaluations for a budget of {max_evals}"
    by_id = {r["task_id"]: r for r in finals}
    for tid, r in before.items():
        now = by_id.get(tid)
        assert now is not None, f"task {tid} finished before the kill and is gone"
        assert (now["loss"], now["params"], now["attempt"]) == (r["loss"], r["params"], r["attempt"])
    keys = [json.dumps(r["params"], sort_keys=True) for r in finals]
    dup = [k for k, n in collections.Counter(keys).items() if n > 1]
    assert not dup, f"parameters evaluated by two tasks: {dup[:3]}"
    left_open = [(r["task_id"], r["attempt"], r["status"]) for r in rows if r["status"] in ("queued", "running")]
    assert not left_open, f"attempts left queued or running: {left_open[:5]}"
    evaluated = collections.Counter(line.strip() for line in log.read_text().splitlines() if line.strip())
    for r in before.values():
        k = json.dumps(r["params"], sort_keys=True)
        assert evaluated[k] == 1, f"{k} finished before the kill and was evaluated {evaluated[k]} times"
    # only tasks running at the kill (finished later by an orphaned worker) and results that
    # reached the driver in its last RESULT_FLUSH (50 ms) before the kill may be evaluated twice
    assert sum(evaluated.values()) <= max_evals + 2 * workers + 2, f"{sum(evaluated.values())} evaluations in the log"
    return finals


def kill_and_resume(tmp_path, cfg_path, max_evals, workers, rnd: random.Random, extra=(), launcher=()):
    """Run, SIGKILL the driver after a random number of results (and a random extra delay),
    then run the same command again; returns (results before the kill, final rows)."""
    import json
    import signal
    import time

    from emews.journal import read_journal

    out = tmp_path / "runs" / "k"
    env = kill_env(tmp_path)
    proc = start_cli([str(cfg_path), *extra], tmp_path, env, launcher)
    k = rnd.randint(3, max_evals - 12)  # leaves the run >= 0.3 s to go: the kill lands mid-run
    try:
        wait_for_results(out, k, proc)
        time.sleep(rnd.uniform(0.0, 0.05))
        pid = json.loads((out / ".lock").read_text())["pid"]  # the driver (rank 0 under MPI)
        os.kill(pid, signal.SIGKILL)
        proc.wait(timeout=60)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        proc.communicate()
    before = finished_rows(out)
    assert len(before) < max_evals, "the run ended before the kill"
    assert read_journal(out)["meta"]["outcome"] == "running"  # it died without an orderly end
    r = subprocess.run([*launcher, sys.executable, "-m", "emews.run", str(cfg_path), *extra], cwd=tmp_path, env=env,
                       capture_output=True, text=True, timeout=180)
    assert r.returncode == 0, r.stderr
    assert "resuming" in r.stderr and f"{len(before)} of {max_evals} evaluations finished earlier" in r.stderr, r.stderr
    finals = check_exactly_once(out, before, max_evals, tmp_path / "evals.log", workers)
    meta = read_journal(out)["meta"]
    assert len(meta["sessions"]) == 2 and meta["sessions"][0]["outcome"].startswith("killed")
    assert meta["outcome"] == "max_evals reached" or meta["outcome"] == "optimizer finished"
    return before, finals
