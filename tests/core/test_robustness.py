"""Edge cases found in review: dying workers, child processes, SIGTERM, optimizer failures, stops."""

import signal
import textwrap
import time

from emews.journal import JournalError, read_journal
from helpers import STARTUP, WAIT, Gate, base_config, kill_env, reap, run_cli, run_cli_then_signal, start_cli, \
    wait_until, write_config

X_SPACE = {"x": {"type": "real", "low": 0.0, "high": 1.0}}

MODULE = textwrap.dedent('''
    import multiprocessing as mp, os, threading, time
    import emews

    def dies_after_returning(params):
        if params["x"] < 0.3:
            threading.Timer(0.001, os._exit, (3,)).start()   # dies just after its result is sent
        return params["x"]

    def _square(v):
        return v * v

    def uses_a_process_pool(params):
        with mp.get_context("spawn").Pool(1) as pool:
            return pool.apply(_square, (params["x"],))

    def slow(params):
        time.sleep(params["x"])
        return params["x"]

    class Counting(emews.Optimizer):
        """Logs the statuses it was told, so a test can see what reached the optimizer."""
        lookahead = 0
        def __init__(self, space, seed=None):
            super().__init__(space, seed)
            self.told = {}
        def ask(self, n):
            return self.space.sample(n, self.rng)
        def tell(self, results):
            for r in results:
                self.told[r.status] = self.told.get(r.status, 0) + 1
        def log(self):
            return dict(self.told)

    class FailsOnTell(emews.Optimizer):
        lookahead = 64
        def ask(self, n):
            return self.space.sample(n, self.rng)
        def tell(self, results):
            raise RuntimeError("tell failed")
''')


def setup(tmp_path, **changes):
    (tmp_path / "robust.py").write_text(MODULE)
    changes.setdefault("space", X_SPACE)
    return write_config(tmp_path, base_config(tmp_path, **changes))


def test_worker_dying_just_after_its_result_does_not_stop_the_run(tmp_path):
    p = setup(tmp_path, objective="robust:dies_after_returning", max_evals=30)
    r = run_cli([str(p), "--out", str(tmp_path / "e")], cwd=tmp_path, timeout=180)
    assert r.returncode == 0, r.stderr
    ev = read_journal(tmp_path / "e")["evals"]
    assert len(ev) == 30 and all(e["status"] in ("done", "failed") for e in ev)
    assert sum(e["status"] == "done" for e in ev) >= 20


def test_objectives_may_start_processes(tmp_path):
    p = setup(tmp_path, objective="robust:uses_a_process_pool", max_evals=4)
    r = run_cli([str(p), "--out", str(tmp_path / "e")], cwd=tmp_path, timeout=180)
    assert r.returncode == 0, r.stderr
    ev = read_journal(tmp_path / "e")["evals"]
    assert [e["status"] for e in ev] == ["done"] * 4
    assert all(abs(e["loss"] - e["params"]["x"] ** 2) < 1e-12 for e in ev)


def test_sigterm_keeps_the_results(tmp_path):
    p = setup(tmp_path, objective="robust:slow", space={"x": {"type": "real", "low": 0.2, "high": 0.4}}, max_evals=1000)
    code, err = run_cli_then_signal([str(p), "--out", str(tmp_path / "e")], tmp_path, signal.SIGTERM, tmp_path / "e")
    assert code == 143, err
    assert "terminated (SIGTERM)" in err
    j = read_journal(tmp_path / "e")
    assert any(e["status"] == "done" for e in j["evals"])
    assert all(e["status"] in ("done", "cancelled") for e in j["evals"])
    assert "SIGTERM" in j["meta"]["outcome"]
    assert (tmp_path / "e" / "results.csv").is_file() and not (tmp_path / "e" / "journal.sqlite-wal").exists()


def test_optimizer_failure_cancels_the_queue(tmp_path):
    # 2 tasks pass the gate (their results make tell fail); the tasks started after them are
    # held until the failure has cancelled the queue: the machine's speed cannot let more finish
    gate = Gate(tmp_path / "gate")
    gate.allow(2)
    p = setup(tmp_path, objective="killable:slow", space={"x": {"type": "real", "low": 0.05, "high": 0.1}},
              optimizer="robust:FailsOnTell", max_evals=200)
    out = tmp_path / "e"
    proc = start_cli([str(p), "--out", str(out)], tmp_path, kill_env(tmp_path) | gate.env)
    try:
        def cancelled():
            try:
                return any(e["status"] == "cancelled" for e in read_journal(out)["evals"])
            except JournalError:
                return False

        wait_until(cancelled, message="the queue cancelled after the optimizer failed", proc=proc)
        gate.open()
        _, err = proc.communicate(timeout=WAIT)
    finally:
        reap(proc)
    assert proc.returncode == 1 and "tell failed" in err, err
    ev = read_journal(out)["evals"]
    done = [e for e in ev if e["status"] == "done"]
    assert 1 <= len(done) <= 4, "only the tasks already running finish"
    # every task started finished, none started after the failure
    assert len(done) == len(gate.started()), ([(e["task_id"], e["status"]) for e in ev[:8]], len(gate.started()))
    assert all(e["status"] in ("done", "cancelled") for e in ev)


def test_after_max_time_the_optimizer_is_told_the_real_results(tmp_path):
    # both tasks are held at the gate until max_time has passed (STARTUP s for them to start)
    gate = Gate(tmp_path / "gate")
    p = setup(tmp_path, objective="killable:slow", space={"x": {"type": "constant", "value": 1.5}},
              optimizer="robust:Counting", max_evals=100, max_time=STARTUP)
    proc = start_cli([str(p), "--out", str(tmp_path / "e")], tmp_path, kill_env(tmp_path) | gate.env)
    try:
        started = gate.wait_started(2, proc, before_limit=True)
        wait_until(lambda: time.monotonic() > started[0] + STARTUP + 0.2, message="max_time to pass")
        gate.open()
        _, err = proc.communicate(timeout=WAIT)
    finally:
        reap(proc)
    assert proc.returncode == 0, err
    j = read_journal(tmp_path / "e")
    assert [e["status"] for e in j["evals"]] == ["done", "done"]
    assert j["optimizer_log"][-1] == {"done": 2}
