from __future__ import annotations

import os
import random
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

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


def run_cli_then_signal(args: list[str], cwd: Path, sig: int, out: Path, results: int = 1,
                        env: dict | None = None) -> tuple[int, str]:
    """Start ``python -m emews.run ARGS``, send it ``sig`` once ``results`` results are journaled
    in ``out`` (never after a fixed delay); (exit code, stderr)."""
    e = dict(os.environ)
    e["PYTHONPATH"] = os.pathsep.join([str(ROOT), e.get("PYTHONPATH", "")])
    if env:
        e.update(env)
    import signal

    # a shell's background job ignores SIGINT, and a child inherits that: give the run the default
    proc = subprocess.Popen([sys.executable, "-m", "emews.run", *args], cwd=cwd, env=e,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    try:
        wait_for_results(out, results, proc)
        proc.send_signal(sig)
        _, err = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    return proc.returncode, err


# -- waiting for events, not for the clock ----------------------------------------------------
WAIT = 120.0  # the default patience of wait_until: generous, a loaded machine is slow

# Seconds a loaded machine is given from launching a run until its first tasks run: the time
# limits (max_time, deadline) of the tests that need tasks started before the limit. Raise it
# with EMEWS_TEST_STARTUP on a machine slower still.
STARTUP = float(os.environ.get("EMEWS_TEST_STARTUP", "20"))


def wait_until(condition: Callable[[], Any], timeout: float = WAIT, interval: float = 0.05, message: str = "",
               proc: subprocess.Popen | None = None) -> Any:
    """Poll ``condition()`` until it returns something truthy, and return that.

    Fails the test naming ``message`` (what was waited for) after ``timeout`` seconds, or as
    soon as ``proc`` (a run the condition depends on) has ended.
    """
    import time

    end = time.monotonic() + timeout
    while True:
        got = condition()
        if got:
            return got
        if proc is not None and proc.poll() is not None:
            got = condition()  # it may have come true just before the run ended
            if got:
                return got
            try:
                _, err = proc.communicate(timeout=30)
            except (subprocess.TimeoutExpired, ValueError):  # its pipes held open, or already read
                err = ""
            pytest.fail(f"the run ended (exit {proc.returncode}) while waiting for {message or condition}: {err}")
        if time.monotonic() >= end:
            pytest.fail(f"timed out after {timeout:g} s waiting for {message or condition}")
        time.sleep(interval)


class Gate:
    """A gate the test controls, for the objectives of ``killable`` (``$KILLABLE_GATE``).

    Every task that reaches the gate writes ``started-*`` (holding ``time.monotonic()``, a
    clock all processes on the machine share), then blocks until it can claim a token
    (:meth:`allow`) or the gate is open (:meth:`open`). A task the gate holds is running for
    as long as the test wants, however fast or slow the machine.
    """

    def __init__(self, directory: Path):
        self.dir = Path(directory)
        self.dir.mkdir(parents=True, exist_ok=True)
        self._tokens = 0

    @property
    def env(self) -> dict:
        return {"KILLABLE_GATE": str(self.dir)}

    def allow(self, n: int) -> None:
        """Let ``n`` more tasks through."""
        for _ in range(n):
            (self.dir / f"token-{self._tokens}").touch()
            self._tokens += 1

    def open(self) -> None:
        """Let every task through, now and later."""
        (self.dir / "open").touch()

    def started(self) -> list[float]:
        """The monotonic start times of the tasks that reached the gate, in order."""
        times = []
        for p in self.dir.glob("started-*"):
            text = p.read_text()  # renamed into place once written: always whole
            times.append(float(text))
        return sorted(times)

    def wait_started(self, n: int, proc: subprocess.Popen | None = None, timeout: float = WAIT,
                     before_limit: bool = False) -> list[float]:
        """Wait until ``n`` tasks have reached the gate; their start times. ``before_limit``:
        they must start before a time limit of :data:`STARTUP` seconds (the failure says so)."""
        hint = (f" before the run's time limit (EMEWS_TEST_STARTUP={STARTUP:g} s; raise it on a machine this slow)"
                if before_limit else "")
        return wait_until(lambda: (t := self.started()) and len(t) >= n and t, timeout,
                          message=f"{n} tasks at the gate in {self.dir}{hint}", proc=proc)


def kill_rng(default: int | None = None) -> random.Random:
    """The random generator of one test's kill points, from one seed: ``$EMEWS_TEST_SEED`` if
    set (to replay a failure), else ``default``, else a fresh one. The seed is printed (a
    failure, or ``pytest -rA``, shows it)."""
    env = os.environ.get("EMEWS_TEST_SEED")
    seed = int(env) if env else (default if default is not None else random.randrange(10**6))
    print(f"kill point seed {seed} (EMEWS_TEST_SEED={seed} replays it)")
    return random.Random(seed)


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


def kill_driver(out: Path, proc: subprocess.Popen, sig: int | None = None) -> None:
    """Send ``sig`` (default SIGKILL) to the driver of the run in ``out`` (the pid its
    ``.lock`` names: rank 0 under MPI) and wait for the launched command to end."""
    import json
    import signal

    pid = json.loads((out / ".lock").read_text())["pid"]
    os.kill(pid, signal.SIGKILL if sig is None else sig)
    proc.wait(timeout=120)


def reap(proc: subprocess.Popen) -> None:
    """SIGKILL a run started by :func:`start_cli` if it is still going (its whole session:
    driver, optimizer, workers), and collect it: the cleanup of a test that failed midway."""
    import signal

    if proc.poll() is None:
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    try:
        proc.communicate(timeout=60)
    except ValueError:  # its pipes were read already
        proc.wait(timeout=60)


def finished_rows(out: Path) -> dict[int, dict]:
    """Tasks whose last journaled attempt has a final result (done, failed, timeout)."""
    from emews.journal import JournalError, final_attempts, read_journal

    try:
        rows = read_journal(out)["evals"]
    except JournalError:
        return {}
    return {r["task_id"]: r for r in final_attempts(rows) if r["status"] in ("done", "failed", "timeout")}


def wait_for_results(out: Path, k: int, proc: subprocess.Popen, timeout: float = WAIT) -> dict[int, dict]:
    """Poll the journal until ``k`` results are in; fails if the run ends first."""
    return wait_until(lambda: (got := finished_rows(out)) and len(got) >= k and got, timeout,
                      message=f"{k} results journaled in {out}", proc=proc)


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
    """Run, SIGKILL the driver after a random number of results, then run the same command
    again; returns (results before the kill, final rows).

    The kill point comes from ``rnd`` (see :func:`kill_rng`) and is printed. The objective's
    gate lets only ``k + j`` tasks through: the kill comes once ``k`` results are journaled,
    while up to ``j`` more may be finishing (results in flight), and the run cannot end
    before it, however slow the machine.
    """

    from emews.journal import read_journal

    out = tmp_path / "runs" / "k"
    gate = Gate(tmp_path / "gate")
    env = kill_env(tmp_path) | gate.env
    k = rnd.randint(3, max_evals - 12)
    j = rnd.randint(0, 2 * workers)
    print(f"kill point: SIGKILL after {k} results, {k + j} tasks let through (of {max_evals})")
    gate.allow(k + j)
    proc = start_cli([str(cfg_path), *extra], tmp_path, env, launcher)
    try:
        wait_for_results(out, k, proc)
        kill_driver(out, proc)
    finally:
        reap(proc)
    before = finished_rows(out)
    assert len(before) < max_evals, "the run ended before the kill"
    assert read_journal(out)["meta"]["outcome"] == "running"  # it died without an orderly end
    gate.open()
    r = subprocess.run([*launcher, sys.executable, "-m", "emews.run", str(cfg_path), *extra], cwd=tmp_path, env=env,
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    assert "resuming" in r.stderr and f"{len(before)} of {max_evals} evaluations finished earlier" in r.stderr, r.stderr
    finals = check_exactly_once(out, before, max_evals, tmp_path / "evals.log", workers)
    meta = read_journal(out)["meta"]
    assert len(meta["sessions"]) == 2 and meta["sessions"][0]["outcome"].startswith("killed")
    assert meta["outcome"] == "max_evals reached" or meta["outcome"] == "optimizer finished"
    return before, finals


def ask_tell(opt, evaluate: Callable[[int, dict], Any], evals: int, batch: int = 8) -> list:
    """An optimizer driven in-process: ask a batch of up to ``batch``, ``evaluate(task_id,
    params)`` each into a Result, tell them, until ``evals``; the Results in order."""
    told: list = []
    while len(told) < evals:
        ps = opt.ask(min(batch, evals - len(told)))
        rs = [evaluate(len(told) + i, p) for i, p in enumerate(ps)]
        opt.tell(rs)
        told += rs
    return told
