"""Kill a real run with SIGKILL at a random point, resume it, and check that every evaluation
is in the journal exactly once, within the budget; plus the resume rules and their errors."""

from __future__ import annotations

import json
import os
import signal
import sqlite3

import pytest
from helpers import (
    WAIT,
    Gate,
    check_exactly_once,
    finished_rows,
    kill_and_resume,
    kill_env,
    kill_rng,
    reap,
    run_cli,
    start_cli,
    wait_for_results,
    wait_until,
    write_config,
)

from emews.journal import read_journal

SPACE = {"x0": {"type": "real", "low": -1, "high": 1}, "x1": {"type": "real", "low": -1, "high": 1}}
OPTIMIZERS = {
    "random": "random",
    "mbo": {"name": "mbo", "settings": {"n_initial": 6}},
    "ga": {"name": "ga", "settings": {"population": 6, "offspring": 6}},
    "grid": {"name": "grid", "settings": {"points": 6}},  # 36 points
    "plug-in": "killable:Drift",
}


def _config(tmp_path, optimizer, max_evals=36, workers=2, **more):
    cfg = {"experiment": "k", "objective": "killable:slow", "space": SPACE, "optimizer": optimizer,
           "max_evals": max_evals, "workers": workers, "seed": 5, "output": str(tmp_path / "runs"), **more}
    return write_config(tmp_path, cfg)


@pytest.mark.parametrize("name", list(OPTIMIZERS))
def test_sigkill_then_resume_local(tmp_path, name):
    cfg = _config(tmp_path, OPTIMIZERS[name])
    before, finals = kill_and_resume(tmp_path, cfg, 36, 2, kill_rng())  # the seed and point are printed
    if name == "grid":  # every grid point exactly once
        assert len({json.dumps(r["params"], sort_keys=True) for r in finals}) == 36


def test_ga_resumed_retraces_the_uninterrupted_search(tmp_path):
    """A resumed GA (same recorded seed) proposes exactly what an uninterrupted run does."""
    cfg = _config(tmp_path, OPTIMIZERS["ga"], max_evals=30, seed=11)
    kill_and_resume(tmp_path, cfg, 30, 2, kill_rng(7))
    killed = {json.dumps(r["params"], sort_keys=True) for r in finished_rows(tmp_path / "runs" / "k").values()}
    ref_dir = tmp_path / "ref"
    r = run_cli([str(cfg), "--out", str(ref_dir)], cwd=tmp_path, env=kill_env(tmp_path, sleep=0.0))
    assert r.returncode == 0, r.stderr
    ref = {json.dumps(x["params"], sort_keys=True) for x in finished_rows(ref_dir).values()}
    assert killed == ref


def test_unseeded_search_records_its_seed_for_the_resume(tmp_path):
    cfg = _config(tmp_path, OPTIMIZERS["ga"], max_evals=30, seed=None)
    kill_and_resume(tmp_path, cfg, 30, 2, kill_rng(3))
    meta = read_journal(tmp_path / "runs" / "k")["meta"]
    assert isinstance(meta["seed"], int)


def test_sigterm_then_resume(tmp_path):
    """SIGTERM (scancel, the batch limit) ends orderly: running tasks are cancelled and
    journaled as such, and the resume runs them again."""
    cfg = _config(tmp_path, "random", max_evals=30)
    out = tmp_path / "runs" / "k"
    env = kill_env(tmp_path, sleep=0.3)
    gate = Gate(tmp_path / "gate")  # 6 tasks pass, then one is held on each worker: the run cannot end first
    gate.allow(6)
    proc = start_cli([str(cfg)], tmp_path, env | gate.env)
    try:
        wait_for_results(out, 4, proc)
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=WAIT)
    finally:
        reap(proc)
    assert proc.returncode == 143, err
    assert "run the same command again to resume" in err
    j = read_journal(out)
    assert j["meta"]["outcome"] == "terminated (SIGTERM)"
    assert not [r for r in j["evals"] if r["status"] in ("queued", "running")]
    before = finished_rows(out)
    r = run_cli([str(cfg)], cwd=tmp_path, env=env, timeout=120)
    assert r.returncode == 0, r.stderr
    check_exactly_once(out, before, 30, tmp_path / "evals.log", 2)


def test_a_second_run_on_a_live_experiment_is_refused(tmp_path):
    cfg = _config(tmp_path, "random", max_evals=200)
    out = tmp_path / "runs" / "k"
    env = kill_env(tmp_path, sleep=0.2)
    gate = Gate(tmp_path / "gate")  # one task passes, the next ones are held: the run stays live
    gate.allow(1)
    proc = start_cli([str(cfg)], tmp_path, env | gate.env)
    try:
        wait_for_results(out, 1, proc)
        r = run_cli([str(cfg)], cwd=tmp_path, env=env)
        assert r.returncode == 2
        assert f"{out} is in use by another emews run (pid {proc.pid} on host" in r.stderr, r.stderr
        assert "Traceback" not in r.stderr
        r = run_cli([str(cfg), "--fresh", "--set", "max_evals=2"], cwd=tmp_path, env=env)  # a new directory is fine
        assert r.returncode == 0 and (tmp_path / "runs" / "k-2" / "journal.sqlite").is_file(), r.stderr
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.communicate()
    # the kernel dropped the dead run's lock: the resume goes ahead
    r = run_cli([str(cfg), "--set", "max_evals=12"], cwd=tmp_path, env=kill_env(tmp_path, sleep=0.0))
    assert r.returncode == 0 and "resuming" in r.stderr, r.stderr


def test_changed_search_is_refused_naming_the_change(tmp_path):
    cfg = _config(tmp_path, "random", max_evals=4)
    env = kill_env(tmp_path, sleep=0.0)
    assert run_cli([str(cfg)], cwd=tmp_path, env=env).returncode == 0
    r = run_cli([str(cfg), "--set", "space.x1.high=2", "--set", "max_evals=6"], cwd=tmp_path, env=env)
    assert r.returncode == 2 and "Traceback" not in r.stderr
    assert "cannot resume" in r.stderr and "space.x1" in r.stderr and '"high": 1' in r.stderr and '"high": 2' in r.stderr
    assert "--force" in r.stderr and str(cfg) in r.stderr
    r = run_cli([str(cfg), "--set", "objective=killable:sleepy"], cwd=tmp_path, env=env)
    assert r.returncode == 2 and "objective: killable:slow -> killable:sleepy" in r.stderr
    # budget, workers and seed may change; --force accepts the rest
    r = run_cli([str(cfg), "--set", "max_evals=6", "--set", "workers=1"], cwd=tmp_path, env=env)
    assert r.returncode == 0 and "max_evals changed: 4 -> 6" in r.stderr, r.stderr
    r = run_cli([str(cfg), "--set", "space.x1.high=2", "--set", "max_evals=8", "--force"], cwd=tmp_path, env=env)
    assert r.returncode == 0 and "despite a changed space.x1" in r.stderr
    assert len(finished_rows(tmp_path / "runs" / "k")) == 8


def test_complete_experiment_is_not_run_again(tmp_path):
    cfg = _config(tmp_path, "random", max_evals=5)
    env = kill_env(tmp_path, sleep=0.0)
    assert run_cli([str(cfg)], cwd=tmp_path, env=env).returncode == 0
    r = run_cli([str(cfg)], cwd=tmp_path, env=env)
    assert r.returncode == 0 and "already complete (5 of 5 evaluations)" in r.stderr
    assert len((tmp_path / "evals.log").read_text().splitlines()) == 5
    assert "best loss" in r.stdout  # the summary is still printed


@pytest.mark.parametrize("content", [b"not a database at all, just text" * 40, "sqlite-foreign"])
def test_foreign_or_damaged_journal_is_a_clear_error(tmp_path, content):
    out = tmp_path / "runs" / "k"
    out.mkdir(parents=True)
    path = out / "journal.sqlite"
    if content == "sqlite-foreign":
        db = sqlite3.connect(path)
        db.execute("CREATE TABLE photos (id INTEGER, name TEXT)")
        db.commit()
        db.close()
    else:
        path.write_bytes(content)
    before = path.read_bytes()
    r = run_cli([str(_config(tmp_path, "random", max_evals=3))], cwd=tmp_path, env=kill_env(tmp_path))
    assert r.returncode == 2 and "Traceback" not in r.stderr, r.stderr
    assert f"{path}: not an emews journal" in r.stderr
    assert path.read_bytes() == before  # left as it was


def test_search_api_resume(tmp_path):
    import emews

    space = {"x": {"type": "real", "low": -1, "high": 1}}
    a = emews.search("emews.examples:sphere", space, max_evals=4, workers=1, seed=2, output=tmp_path, experiment="s")
    b = emews.search("emews.examples:sphere", space, max_evals=7, workers=1, seed=2, output=tmp_path, experiment="s",
                     resume=True)
    assert a.directory == b.directory and len(b) == 7
    assert [r["params"] for r in b.rows[:4]] == [r["params"] for r in a.rows]
    c = emews.search("emews.examples:sphere", space, max_evals=2, workers=1, output=tmp_path, experiment="s")
    assert c.directory.name == "s-2"  # without resume, a new directory


def test_unclaimed_rerun_results_join_the_history():
    """Queue level: a resident optimizer that never proposes an interrupted point again still
    gets its result, in ``history``; one that does is attached to the re-run."""
    from multiprocessing import Pipe

    from emews import Space
    from emews.queues import OptimizerQueues
    from emews.resume import Handoff
    from emews.task import Result

    space = Space.from_dict({"x": {"type": "real", "low": 0, "high": 1}})
    opt_end, drv_end = Pipe()
    old = Result(0, {"x": 0.1}, "done", loss=1.0)
    q = OptimizerQueues(opt_end, space, 2, 10, handoff=Handoff([old], [(1, {"x": 0.2}), (2, {"x": 0.3})], 3),
                        replay=True)
    assert q.put([{"x": 0.1}, {"x": 0.3}, {"x": 0.9}]) == [0, 2, 3]  # a replay, a re-run, a new task
    assert drv_end.recv() == ("put", [(3, {"x": 0.9})])
    assert q.remaining == 7
    drv_end.send(("results", [Result(1, {"x": 0.2}, "done", loss=2.0), Result(2, {"x": 0.3}, "done", loss=3.0)]))
    got = {r.task_id: r.loss for r in q.get()}
    assert got == {0: 1.0, 2: 3.0}  # task 1 was never asked for again
    assert [r.task_id for r in q.history] == [0, 1]
    assert q.put([{"x": 0.2}]) == [1] and q.get()[0].loss == 2.0  # proposed later: answered from history


def test_a_journal_that_never_recorded_anything_is_started_over(tmp_path):
    from emews.journal import Journal

    out = tmp_path / "runs" / "k"
    out.mkdir(parents=True)
    Journal(out / "journal.sqlite").close()  # created, then the run died before its first flush
    r = run_cli([str(_config(tmp_path, "random", max_evals=3))], cwd=tmp_path, env=kill_env(tmp_path, sleep=0.0))
    assert r.returncode == 0 and "resuming" not in r.stderr, r.stderr
    assert len(finished_rows(out)) == 3


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] not in ("Z", "X")  # the name may hold spaces
    except (FileNotFoundError, ProcessLookupError):  # gone, also between open and read
        return False


@pytest.mark.skipif(not os.path.isdir("/proc"), reason="reads /proc (Linux)")
@pytest.mark.parametrize("runner", ["python", "command"])
def test_workers_and_their_tasks_end_with_a_sigkilled_driver(tmp_path, runner):
    """The OOM killer or kill -9 takes the driver: its workers (and a command's processes)
    must not run on beside the next job's resume."""
    cfg = _config(tmp_path, "random", max_evals=4)
    import yaml

    data = yaml.safe_load(cfg.read_text())  # a repeated key is an error now: replace the space, not append one
    data["objective"] = "killable:sleepy"
    data["space"] = {"t": {"type": "constant", "value": 30}, "i": {"type": "int", "low": 0, "high": 1000000}}
    cfg.write_text(yaml.safe_dump(data, sort_keys=False))
    if runner == "command":
        cfg.write_text(cfg.read_text().replace("objective: killable:sleepy\n", "") + (
            "runner:\n  type: command\n  command: [sh, -c, 'echo $$ >> " + str(tmp_path / "pids") + "; exec sleep 30']\n"))
    gate = Gate(tmp_path / "gate")  # closed: the python tasks are held until the driver is killed
    env = kill_env(tmp_path) | gate.env | {"KILLABLE_PIDS": str(tmp_path / "pids")}
    proc = start_cli([str(cfg)], tmp_path, env)
    try:
        pids_file = tmp_path / "pids"
        wait_until(lambda: pids_file.exists() and len(pids_file.read_text().split()) >= 2,
                   message="both tasks to write their pids", proc=proc)
        pids = [int(x) for x in pids_file.read_text().split()]
        os.kill(proc.pid, signal.SIGKILL)  # the driver only (the workers are its children)
        try:
            wait_until(lambda: not any(_alive(p) for p in pids), timeout=60, interval=0.1,
                       message="the tasks to end after their driver was killed")
        finally:
            assert not [p for p in pids if _alive(p)], "tasks still running after their driver was killed"
    finally:
        proc.kill()
        proc.communicate()


def _kill_midway(tmp_path, cfg, env, k, through):
    """Start the run, SIGKILL its driver once ``k`` results are journaled; the gate lets
    ``through`` attempts pass (so the run cannot end before the kill), then opens."""
    print(f"kill point: SIGKILL after {k} results, {through} attempts let through")
    out = tmp_path / "runs" / "k"
    gate = Gate(tmp_path / "gate")
    gate.allow(through)
    proc = start_cli([str(cfg)], tmp_path, env | gate.env)
    try:
        wait_for_results(out, k, proc)
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=WAIT)
    finally:
        proc.kill()
        proc.communicate()
    gate.open()
    return out


def test_interrupted_tasks_keep_their_retries(tmp_path):
    """An attempt cut short by a kill is not a failure: the task still gets all its retries."""
    (tmp_path / "marks").mkdir()
    cfg = _config(tmp_path, "random", max_evals=24, runner={"retries": 1})
    cfg.write_text(cfg.read_text().replace("killable:slow", "killable:flaky"))
    env = kill_env(tmp_path) | {"KILLABLE_MARKS": str(tmp_path / "marks")}
    # a result takes 2 attempts, and each of the 2 workers may hold a task between its two
    out = _kill_midway(tmp_path, cfg, env, 5, 2 * 5 + 2 * 2 + kill_rng().randint(0, 4))
    r = run_cli([str(cfg)], cwd=tmp_path, env=env, timeout=120)
    assert r.returncode == 0 and "resuming" in r.stderr, r.stderr
    rows = read_journal(out)["evals"]
    last = {}
    for x in rows:
        last[x["task_id"]] = x
    done = [t for t, x in last.items() if x["status"] == "done"]
    assert len(done) == 24 and all(x["status"] in ("done", "cancelled") for x in last.values())
    # no task ended failed: a cancelled attempt did not use up the retry (a task's one failure
    # may be missing from the journal when the kill came between the failure and its journaling)
    for tid in done:
        assert sum(1 for x in rows if x["task_id"] == tid and x["status"] == "failed") <= 1


@pytest.mark.parametrize("mode", ["async", "batch"])
def test_optimizer_is_told_every_result_once_per_session(tmp_path, mode):
    cfg = _config(tmp_path, "killable:Recorder", max_evals=30, mode=mode, batch_size=4)
    env = kill_env(tmp_path) | {"KILLABLE_TELLS": str(tmp_path / "tells")}
    rnd = kill_rng()
    k = rnd.randint(5, 20)
    out = _kill_midway(tmp_path, cfg, env, k, k + rnd.randint(0, 4))
    r = run_cli([str(cfg)], cwd=tmp_path, env=env | {"KILLABLE_SESSION": "2"}, timeout=120)
    assert r.returncode == 0, r.stderr
    told = [tuple(map(int, ln.split())) for ln in (tmp_path / "tells").read_text().splitlines()]
    second = [tid for s, tid in told if s == 2]
    assert len(second) == len(set(second)), "a result told twice to the resumed optimizer"
    assert set(second) == set(finished_rows(out)), "a finished result never told to the resumed optimizer"


def test_force_with_a_new_dimension_keeps_going(tmp_path):
    cfg = _config(tmp_path, "ga-steady", max_evals=4)
    env = kill_env(tmp_path, sleep=0.0)
    assert run_cli([str(cfg)], cwd=tmp_path, env=env).returncode == 0
    r = run_cli([str(cfg), "--force", "--set", "max_evals=8", "--set",
                 'space.c={"type": "categorical", "values": ["a", "b"]}'], cwd=tmp_path, env=env)
    assert r.returncode == 0, r.stderr
    assert "4 earlier result(s) do not fit the changed space" in r.stderr
    assert len(finished_rows(tmp_path / "runs" / "k")) == 8
