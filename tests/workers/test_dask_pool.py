"""The Dask pool on a real Dask cluster (a ``dask scheduler`` process and ``dask worker`` processes).

Workers are killed, added and the scheduler is killed while a search runs; each test acts on
events it controls (the gated objective's start markers, its gate file), never on sleeps.
Skipped only when ``distributed`` is not installed, and never on CI (``CI`` set): there it fails.
"""

from __future__ import annotations

import os
import random
import subprocess
import sys
import time
from pathlib import Path

import pytest

if os.environ.get("CI"):
    import distributed  # noqa: F401 - CI installs it (extra "dev"): a missing one is a failure
else:
    pytest.importorskip("distributed")

import yaml

from emews import ConfigError, parse_config, run_config
from emews.journal import read_journal
from emews.task import CANCELLED, DONE
from emews.testing.pools import CHECKS
from emews.workers.dask import DaskPool

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import curve_objectives as co  # noqa: E402
from dask_cluster import ROOT, DaskProcesses, _env  # noqa: E402
from test_stopping import ASHA_SPEC, SPACE, _order, _outcomes, expected_asha  # noqa: E402


def _until(predicate, what: str, timeout: float = 120.0, proc: subprocess.Popen | None = None) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert proc is None or proc.poll() is None, f"the search ended (exit {proc.returncode}) before {what}"
        assert time.monotonic() < deadline, f"no {what} after {timeout:g} s"
        time.sleep(0.05)


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    """A scheduler and two workers, shared by the tests that kill nothing."""
    c = DaskProcesses(tmp_path_factory.mktemp("dask"))
    try:
        c.start_scheduler()
        c.start_worker("a")
        c.start_worker("b")
        c.wait_for_workers(2)
        yield c
    finally:
        c.close()


@pytest.fixture
def fresh(tmp_path):
    """A scheduler of its own (workers started by the test), for the tests that kill things."""
    c = DaskProcesses(tmp_path)
    try:
        c.start_scheduler()
        yield c
    finally:
        c.close()


@pytest.mark.parametrize("check", CHECKS, ids=lambda c: c.__name__)
def test_pool_contract(cluster, check):
    check(lambda spec, on_report: DaskPool(spec, {"scheduler_file": str(cluster.scheduler_file)}, on_report=on_report))


def test_early_stopping_on_the_dask_pool_one_worker_exact(tmp_path, fresh):
    fresh.start_worker("solo")
    fresh.wait_for_workers(1)
    raw = {"experiment": "s", "objective": "curve_objectives:with_trial", "space": SPACE,
           "optimizer": {"name": "grid", "settings": {}}, "max_evals": 9, "seed": 1, "output": str(tmp_path / "runs"),
           "stopper": ASHA_SPEC, "pool": "dask", "dask": {"scheduler_file": str(fresh.scheduler_file)}}
    res = run_config(parse_config(raw, "test.yaml", base_dir=HERE))
    j = read_journal(res.directory)
    assert j["meta"]["pool"] == "dask"
    want = expected_asha(_order(j))
    assert _outcomes(j) == want
    assert any(v is not None for v in want.values()) and any(v is None for v in want.values())
    for e in j["evals"]:
        reps = [r for r in j["reports"] if r["task_id"] == e["task_id"]]
        if e["status"] == "stopped":
            assert reps[-1]["step"] == e["metrics"]["step"] and reps[-1]["stop"] is True
            assert e["loss"] == pytest.approx(co.curve(e["params"]["x"], e["metrics"]["step"]))
        else:
            assert e["status"] == "done" and [r["step"] for r in reps] == list(range(1, co.EPOCHS + 1))


def test_isolated_and_command_runners_on_the_dask_pool(tmp_path, cluster):
    """The worker's runners run inside Dask worker processes: a crash in an isolated task is a
    failed result (the Dask worker lives on), and a command's result file is read."""
    base = {"max_evals": 4, "seed": 2, "output": str(tmp_path / "runs"), "pool": "dask", "report": False,
            "dask": {"scheduler_file": str(cluster.scheduler_file)}}
    raw = {**base, "experiment": "iso", "objective": "objectives:crashy", "runner": {"type": "isolated", "timeout": 60},
           "optimizer": {"name": "grid", "settings": {"points": 4}},
           "space": {"i": {"type": "int", "low": 0, "high": 3}}}
    evals = read_journal(run_config(parse_config(raw, "test.yaml", base_dir=HERE)).directory)["evals"]
    by_i = {e["params"]["i"]: e for e in evals}
    assert by_i[0]["status"] == by_i[3]["status"] == DONE and by_i[0]["loss"] == 0.0 and by_i[3]["loss"] == 3.0
    assert by_i[1]["status"] == "failed" and "SIGSEGV" in by_i[1]["error"]
    assert by_i[2]["status"] == "failed" and "exited with code 7" in by_i[2]["error"]
    assert all(e["attempt"] == 0 for e in evals)  # a crash in the task's child costs no Dask worker
    raw = {**base, "experiment": "cmd", "space": {"x": {"type": "real", "low": 0.0, "high": 2.0}},
           "runner": {"type": "command", "command": ["{python}", "{config_dir}/train.py", "{params_file}", "json",
                                                     "{result_file}"]}}
    evals = read_journal(run_config(parse_config(raw, "test.yaml", base_dir=HERE)).directory)["evals"]
    assert len(evals) == 4 and all(e["status"] == DONE for e in evals), evals
    assert all(e["metrics"]["cwd"].startswith(str(tmp_path)) for e in evals)  # its task directory


def test_search_with_dask_and_no_scheduler_runs_a_local_cluster_of_workers(tmp_path):
    import emews

    res = emews.search("emews.testing.pools:objective", {"x": {"type": "int", "low": 0, "high": 9}}, max_evals=6,
                       workers=2, output=tmp_path, pool="dask", dask={}, report=False, seed=3)
    j = read_journal(res.directory)
    assert j["meta"]["pool"] == "dask" and res.count("done") == 6
    assert all(e["loss"] == float(e["params"]["x"]) ** 2 for e in j["evals"])
    assert len({e["worker"] for e in j["evals"]}) <= 2


def test_an_adaptive_cluster_emews_starts_gets_its_workers(tmp_path):
    import emews

    res = emews.search("emews.testing.pools:objective", {"x": {"type": "int", "low": 0, "high": 9}}, max_evals=4,
                       output=tmp_path, pool="dask", report=False, seed=3, max_time=120,  # no worker: 0 done
                       dask={"cluster": {"type": "local"}, "adapt": {"minimum": 0, "maximum": 2}})
    assert res.count("done") == 4


def test_gpu_resources_one_task_per_gpu_worker_each_with_its_own_binding(tmp_path, fresh):
    """``dask: {resources: {GPU: 1}}``: every task asks its worker for one GPU. Two workers offer
    GPU=1, each with its own ``CUDA_VISIBLE_DEVICES`` (one of them with two threads, which Dask's
    resources still hold to one task at a time); a third offers none and gets no task. No GPU
    is needed: the binding is the worker process's environment, as ``srun --gpus-per-task=1``
    sets it."""
    g0 = fresh.start_worker("g0", "--resources", "GPU=1", nthreads=2, env={"CUDA_VISIBLE_DEVICES": "0"})
    g1 = fresh.start_worker("g1", "--resources", "GPU=1", env={"CUDA_VISIBLE_DEVICES": "1"})
    cpu = fresh.start_worker("cpu", env={"CUDA_VISIBLE_DEVICES": "cpu-only"})
    fresh.wait_for_workers(3)
    n = 8
    raw = {"experiment": "g", "objective": "dask_objectives:bound", "space": {"x": {"type": "categorical",
           "values": list(range(n))}}, "optimizer": {"name": "grid", "settings": {}}, "max_evals": n, "seed": 1, "report": False,
           "output": str(tmp_path / "runs"), "pool": "dask",
           "dask": {"scheduler_file": str(fresh.scheduler_file), "resources": {"GPU": 1}}}
    res = run_config(parse_config(raw, "test.yaml", base_dir=HERE))
    j = read_journal(res.directory)
    evals = j["evals"]
    assert sorted(e["params"]["x"] for e in evals) == list(range(n)) and all(e["status"] == DONE for e in evals)
    device_of = {g0.pid: "0", g1.pid: "1"}
    assert cpu.pid not in {e["metrics"]["pid"] for e in evals}  # no GPU offered: never used
    for e in evals:
        m = e["metrics"]
        assert m["cuda"] == device_of[m["pid"]] == e["gpu"], e  # the task saw its worker's binding, journaled
    for pid in device_of:  # at most one task at a time on each GPU worker
        spans = sorted((e["metrics"]["t0"], e["metrics"]["t1"]) for e in evals if e["metrics"]["pid"] == pid)
        assert spans, f"worker {pid} ran nothing"
        assert all(b[0] >= a[1] for a, b in zip(spans, spans[1:])), spans
    assert j["meta"]["workers"] == 2, j["meta"]  # the capacity: the GPU workers only


def test_bad_dask_resources_are_refused(tmp_path):
    for bad in ({"GPU": 0}, ["GPU"], {"GPU": "one"}, {}):
        with pytest.raises(ConfigError, match=r"dask\.resources"):
            parse_config(_raw(tmp_path, scheduler_file="s.json", resources=bad), "c.yaml")


# -- searches in their own process, on workers the test starts and kills -------------------
def _search(tmp_path: Path, c: DaskProcesses, n: int, env: dict | None = None, **changes
            ) -> tuple[subprocess.Popen, Path]:
    raw = {"experiment": "e", "objective": "dask_objectives:gated",
           "space": {"x": {"type": "categorical", "values": list(range(n))}},
           "optimizer": {"name": "grid", "settings": {}}, "max_evals": n, "seed": 1, "output": str(tmp_path / "runs"),
           "pool": "dask", "dask": {"scheduler_file": str(c.scheduler_file)}, "progress": 0.2, "report": False}
    raw.update(changes)
    cfg = tmp_path / "search.yaml"
    cfg.write_text(yaml.safe_dump(raw))
    log = open(tmp_path / "search.log", "w")
    p = subprocess.Popen([sys.executable, "-m", "emews.run", str(cfg)], env={**_env(c.directory), **(env or {})}, cwd=str(ROOT),
                         stdout=log, stderr=subprocess.STDOUT)
    return p, tmp_path / "runs" / "e"


def _finish(p: subprocess.Popen, tmp_path: Path, timeout: float = 120.0) -> tuple[int, str]:
    try:
        rc = p.wait(timeout)
    except subprocess.TimeoutExpired:
        p.kill()
        p.wait(10)
        raise AssertionError(f"the search did not end:\n{(tmp_path / 'search.log').read_text()[-3000:]}") from None
    return rc, (tmp_path / "search.log").read_text()


def _rows(directory: Path) -> dict[int, list[dict]]:
    by_task: dict[int, list[dict]] = {}
    for e in read_journal(directory)["evals"]:
        by_task.setdefault(e["task_id"], []).append(e)
    return {t: sorted(rows, key=lambda e: e["attempt"]) for t, rows in by_task.items()}


def _one_done_each(rows: dict[int, list[dict]], n: int) -> None:
    """Nothing lost, nothing doubled: every value ran to a done attempt exactly once."""
    done = [e for rs in rows.values() for e in rs if e["status"] == DONE]
    assert sorted(e["params"]["x"] for e in done) == list(range(n)), done
    assert all(e["loss"] == float(e["params"]["x"]) ** 2 for e in done)


def _deep(pool: DaskPool) -> DaskPool:
    """The pool as after many tasks far shorter than a round trip: busy workers hold up to
    ``prefetch_deep`` tasks each (see PoolBase._depth)."""
    pool._ended, pool._run_time = pool.DEEP_AFTER, 0.0
    return pool


def test_tasks_sent_together_run_in_order_each_once_and_numpy_losses_arrive(cluster):
    """Deep prefetch: the tasks of one driver round go to each worker as one future (several
    tasks each), run in the order sent, every result once; a numpy loss (not msgpack) arrives."""
    from emews.task import Task

    pool = _deep(DaskPool({"type": "python", "objective": "dask_objectives:numpy_loss"},
                          {"scheduler_file": str(cluster.scheduler_file)}))
    try:
        _until(lambda: pool.size == 2, "two workers")
        tasks = [Task(i, {"x": i}) for i in range(12)]
        sent: dict = {}
        for t in tasks:
            assert pool.idle > 0
            sent.setdefault(pool.submit(t), []).append(t.id)
        assert pool.prefetched == 10 and all(len(ids) == 6 for ids in sent.values()), sent
        results: list = []
        deadline = time.monotonic() + 120
        while len(results) < len(tasks):
            results += pool.wait(1.0)
            assert time.monotonic() < deadline, results
        assert sorted(r.task_id for r in results) == list(range(12)) and all(r.status == DONE for r in results)
        assert all(r.loss == float(r.task_id) ** 2 for r in results)
        for worker, ids in sent.items():
            mine = sorted((r for r in results if r.worker == worker), key=lambda r: r.start)
            assert [r.task_id for r in mine] == ids  # started in the order sent
            assert len({r.metrics["pid"] for r in mine}) == 1  # on the worker they were sent to
        assert pool.prefetched == 0 and pool.idle == 2 and not pool.take_returned()
    finally:
        pool.shutdown()


def test_a_worker_lost_with_a_batch_loses_its_running_attempt_and_hands_back_the_rest(tmp_path, fresh):
    """Worker a runs x=0 with x=2 and x=4 held behind it in the same future; SIGKILLed, x=0
    comes back as an interrupted attempt on a, x=2 and x=4 unstarted; a never started them."""
    from emews.task import Task

    fresh.start_worker("a")
    fresh.wait_for_workers(1)
    pool = _deep(DaskPool({"type": "python", "objective": "dask_objectives:gated"},
                          {"scheduler_file": str(fresh.scheduler_file)}))
    try:
        _until(lambda: pool.size == 1, "worker a")
        assert [pool.submit(Task(x, {"x": x})) for x in (0, 2, 4)] == [0, 0, 0] and pool.prefetched == 2
        assert pool.wait(0.0) == []  # sent: one future with the three
        _until(lambda: fresh.started(), "x=0 started")
        pid = fresh.workers["a"].pid
        assert fresh.started() == {pid: ["0"]}
        fresh.kill_worker("a")
        out: list = []
        _until(lambda: out.extend(pool.wait(0.5)) or out, "the lost attempt")
        assert len(out) == 1 and out[0].task_id == 0 and out[0].status == CANCELLED, out
        assert "interrupted" in out[0].error and out[0].worker == 0
        assert sorted(t.id for t in pool.take_returned()) == [2, 4] and pool.prefetched == 0 and pool.busy == 0
        assert pool.size == 0 and fresh.started() == {pid: ["0"]}  # the held ones never started
        fresh.start_worker("b")  # they run on the next worker: once each
        _until(lambda: pool.wait(0.2) == [] and pool.size == 1, "worker b")
        (fresh.directory / "go").touch()
        results: list = []
        for x in (2, 4):
            pool.submit(Task(x, {"x": x}, attempt=0))
        _until(lambda: results.extend(pool.wait(0.5)) or len(results) == 2, "x=2 and x=4 on b")
        assert sorted((r.task_id, r.status, r.loss) for r in results) == [(2, DONE, 4.0), (4, DONE, 16.0)]
    finally:
        pool.shutdown()


@pytest.mark.slow
def test_a_worker_killed_mid_task_costs_nothing(tmp_path, fresh):
    for name in ("a", "b", "c"):
        fresh.start_worker(name)
    fresh.wait_for_workers(3)
    pids = {name: p.pid for name, p in fresh.workers.items()}
    n = 6
    p, directory = _search(tmp_path, fresh, n)
    _until(lambda: len(fresh.started()) == 3, "task started on every worker", proc=p)
    seed = int(os.environ.get("EMEWS_TEST_SEED", random.randrange(10**6)))
    victim = random.Random(seed).choice(sorted(pids))
    lost_x = int(fresh.started()[pids[victim]][0])
    print(f"seed {seed}: SIGKILL worker {victim} (pid {pids[victim]}) running x={lost_x}")
    fresh.kill_worker(victim)
    (fresh.directory / "go").touch()
    rc, out = _finish(p, tmp_path)
    assert rc == 0, out
    rows = _rows(directory)
    _one_done_each(rows, n)
    lost = next(rs for rs in rows.values() if rs[0]["params"]["x"] == lost_x)
    assert [e["attempt"] for e in lost] == [0, 1], lost
    assert lost[0]["status"] == CANCELLED and "interrupted" in lost[0]["error"], lost[0]
    assert lost[0]["worker"] is not None and lost[1]["status"] == DONE and lost[1]["worker"] != lost[0]["worker"]
    assert fresh.started()[pids[victim]] == [str(lost_x)]  # it died in its first task
    others = [rs for rs in rows.values() if rs[0]["params"]["x"] != lost_x]
    assert all(len(rs) == 1 for rs in others), others  # no other task was run twice


@pytest.mark.slow
def test_a_task_lost_with_its_worker_resumes_from_its_last_checkpoint(tmp_path, fresh):
    """Issue 24: a checkpointing task whose Dask worker is SIGKILLed after it saved epoch
    ``hold`` (seeded, printed) runs again on the other worker from that epoch, not from epoch 1;
    the other task is not run twice."""
    epochs = 5
    seed = int(os.environ.get("EMEWS_TEST_SEED", random.randrange(10**6)))
    hold = random.Random(seed).randint(1, epochs - 1)
    print(f"seed {seed}: SIGKILL worker a once both tasks saved epoch {hold}")
    gate = tmp_path / "ckpt-gate"
    gate.mkdir()
    log = tmp_path / "epochs.log"
    tests = str(ROOT / "tests")
    wenv = {"CKPT_LOG": str(log), "CKPT_EPOCHS": str(epochs), "CKPT_GATE": str(gate), "CKPT_HOLD": str(hold),
            "PYTHONPATH": os.pathsep.join([_env()["PYTHONPATH"], tests])}
    for name in ("a", "b"):
        fresh.start_worker(name, env=wenv)
    fresh.wait_for_workers(2)
    p, directory = _search(tmp_path, fresh, 2, env=wenv, objective="checkpointed:train", optimizer="random",
                           space={"x": {"type": "real", "low": 0.0, "high": 1.0}})
    try:
        _until(lambda: len(list(gate.glob("held-*"))) == 2, "both tasks held after their checkpoint", proc=p)
        fresh.kill_worker("a")
        (gate / "open").touch()
        rc, out = _finish(p, tmp_path)
    finally:
        if p.poll() is None:
            p.kill()
    assert rc == 0, out
    rows = _rows(directory)
    lost = [rs for rs in rows.values() if len(rs) > 1]
    assert len(lost) == 1 and [e["attempt"] for e in lost[0]] == [0, 1], rows
    assert lost[0][0]["status"] == CANCELLED and "interrupted" in lost[0][0]["error"] and lost[0][1]["status"] == DONE
    lost_id = lost[0][0]["task_id"]
    done = {int(t): [(int(a), int(e)) for t2, a, e in (line.split() for line in log.read_text().splitlines())
                     if int(t2) == int(t)] for t in rows}
    # the lost task's first attempt computed epochs 1..hold; its second starts after hold
    assert done[lost_id] == [(0, e) for e in range(1, hold + 1)] + [(1, e) for e in range(hold + 1, epochs + 1)], done
    other = next(t for t in rows if t != lost_id)
    assert done[other] == [(0, e) for e in range(1, epochs + 1)], done


@pytest.mark.slow
def test_workers_join_leave_all_go_and_the_search_waits_for_a_new_one(tmp_path, fresh):
    fresh.start_worker("a")
    fresh.wait_for_workers(1)
    n = 4
    p, directory = _search(tmp_path, fresh, n)
    pid_a = fresh.workers["a"].pid
    _until(lambda: pid_a in fresh.started(), "task started on worker a", proc=p)
    pid_b = fresh.start_worker("b").pid  # joins mid-run: it gets a task while a's is held at the gate
    _until(lambda: pid_b in fresh.started(), "task started on the added worker b", proc=p)
    fresh.kill_worker("a")
    fresh.kill_worker("b")
    _until(lambda: "no worker" in (tmp_path / "search.log").read_text(), "word that the search waits", proc=p)
    assert p.poll() is None, "the search ended with no worker instead of waiting"
    pid_c = fresh.start_worker("c").pid
    (fresh.directory / "go").touch()
    rc, out = _finish(p, tmp_path)
    assert rc == 0, out
    rows = _rows(directory)
    _one_done_each(rows, n)
    interrupted = [e for rs in rows.values() for e in rs if e["status"] == CANCELLED]
    assert len(interrupted) == 2 and all("interrupted" in e["error"] for e in interrupted), interrupted
    assert len({e["worker"] for e in interrupted}) == 2  # each attempt journaled with the worker it ran on
    ran = fresh.started()
    assert ran.get(pid_c), "the new worker ran nothing"
    assert sorted(int(x) for x in ran[pid_a] + ran[pid_b] + ran[pid_c]) == sorted(
        [e["params"]["x"] for rs in rows.values() for e in rs]), "attempts started != attempts journaled"
    # the workers present over time are journaled: the report's utilization and load.png use them
    from emews.report import report_data, write_report

    sizes = [n for _, n in read_journal(directory)["meta"]["sessions"][-1]["capacity"]]
    assert sizes[0] == 1 and max(sizes) == 2 and 0 in sizes and sizes[-1] == 1, sizes
    data = report_data(directory)
    assert 0 < data["utilization"]["utilization"] <= 1.0, data["utilization"]
    assert "load.png" in write_report(directory)["plots"]


@pytest.mark.slow
def test_a_search_started_without_workers_waits_and_its_asks_follow_the_workers(tmp_path, fresh):
    """No worker at the start: the search waits; each worker that joins raises the capacity the
    optimizer plans for (an optimizer that asks only for free slots gets asked for the new one)."""
    n = 4
    p, directory = _search(tmp_path, fresh, n, optimizer={"name": "dask_objectives:OneSlotEach", "settings": {}},
                           space={"x": {"type": "int", "low": 0, "high": 100}})
    _until(lambda: "no worker" in (tmp_path / "search.log").read_text(), "word that the search waits", proc=p)
    pid_a = fresh.start_worker("a").pid
    _until(lambda: pid_a in fresh.started(), "task started on worker a", proc=p)
    pid_b = fresh.start_worker("b").pid  # a's task is held at the gate: only a larger capacity gives b one
    _until(lambda: pid_b in fresh.started(), "task asked for and started on the added worker b", proc=p)
    (fresh.directory / "go").touch()
    rc, out = _finish(p, tmp_path)
    assert rc == 0, out
    _one_done_each(_rows(directory), n)


@pytest.mark.slow
def test_scheduler_killed_stops_in_order_and_the_local_pool_resumes(tmp_path, fresh):
    fresh.start_worker("a")
    fresh.start_worker("b")
    fresh.wait_for_workers(2)
    n = 5
    p, directory = _search(tmp_path, fresh, n)
    _until(lambda: len(fresh.started()) == 2, "task started on both workers", proc=p)
    fresh.kill_scheduler()
    rc, out = _finish(p, tmp_path)
    assert rc != 0, out
    assert "scheduler" in out, out[-2000:]
    j = read_journal(directory)  # intact and readable
    assert not any(e["status"] == DONE for e in j["evals"])
    assert j["meta"]["outcome"] != "running", j["meta"]["outcome"]
    # the same search on the local pool finishes the budget
    (fresh.directory / "go").touch()
    cfg = tmp_path / "search.yaml"
    r = subprocess.run([sys.executable, "-m", "emews.run", str(cfg), "--set", "pool=local", "--set", "workers=2",
                        "--set", "dask=null"], env=_env(fresh.directory), cwd=str(ROOT), capture_output=True,
                       text=True, timeout=180)
    assert r.returncode == 0, r.stdout + r.stderr
    rows = _rows(directory)
    _one_done_each(rows, n)


@pytest.mark.slow
def test_adapt_minimum_retires_idle_workers_down_to_it(tmp_path):
    """``adapt: {minimum: 1, maximum: 3, idle: 0.5}`` on a cluster emews starts: three workers
    come (three gated tasks run at once); once the budget is handed out and only the task of
    x = 0 runs, the two idle workers are retired (no attempt interrupted) and the search holds
    at the minimum until it ends."""
    n = 6
    raw = {"experiment": "e", "objective": "dask_objectives:gate_three",
           "space": {"x": {"type": "categorical", "values": list(range(n))}},
           "optimizer": {"name": "grid", "settings": {}}, "max_evals": n, "seed": 1, "output": str(tmp_path / "runs"),
           "pool": "dask", "progress": 0.2, "report": False,
           "dask": {"cluster": {"type": "local"}, "adapt": {"minimum": 1, "maximum": 3, "idle": 0.5}}}
    cfg = tmp_path / "search.yaml"
    cfg.write_text(yaml.safe_dump(raw))
    log_path = tmp_path / "search.log"
    with open(log_path, "w") as log:
        p = subprocess.Popen([sys.executable, "-m", "emews.run", str(cfg)], env=_env(tmp_path), cwd=str(ROOT),
                             stdout=log, stderr=subprocess.STDOUT)
    try:
        _until(lambda: {f.name.split("-")[1] for f in tmp_path.glob("started-*")} == {"0", "1", "2"},
               "three tasks running at once (three workers present)", timeout=300, proc=p)
        (tmp_path / "go-rest").touch()
        _until(lambda: "retired" in log_path.read_text() and "1/1 busy" in log_path.read_text(),
               "the idle workers retired down to the minimum", proc=p)
        (tmp_path / "go").touch()
        rc, out = _finish(p, tmp_path)
    finally:
        if p.poll() is None:
            p.kill()
            p.wait(30)
    assert rc == 0, out
    rows = _rows(tmp_path / "runs" / "e")
    _one_done_each(rows, n)
    assert all(len(rs) == 1 for rs in rows.values()), rows  # a retired worker ran no attempt away
    sizes = [k for _, k in read_journal(tmp_path / "runs" / "e")["meta"]["sessions"][-1]["capacity"]]
    assert max(sizes) == 3 and min(sizes[sizes.index(3):]) == 1 and sizes[-1] == 1, sizes


# -- bad input ---------------------------------------------------------------------------
def _raw(tmp_path: Path, **dask) -> dict:
    return {"experiment": "e", "objective": "emews.testing.pools:objective", "space": {"x": {"type": "int", "low": 0,
            "high": 3}}, "max_evals": 2, "output": str(tmp_path / "runs"), "pool": "dask", "dask": dask}


def test_unknown_cluster_type_says_did_you_mean(tmp_path):
    with pytest.raises(ConfigError, match=r"dask\.cluster\.type.*'slrum'.*did you mean 'slurm'"):
        parse_config(_raw(tmp_path, cluster={"type": "slrum"}), "c.yaml")


def test_distributed_missing_names_the_install_line(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "distributed", None)  # as if not installed: find_spec finds nothing
    with pytest.raises(ConfigError, match=r'pip install "emews\[dask\]"'):
        parse_config(_raw(tmp_path), "c.yaml")


def test_dask_settings_without_pool_dask_and_two_ways_are_errors(tmp_path):
    raw = _raw(tmp_path, address="tcp://127.0.0.1:1")
    raw["pool"] = "local"
    with pytest.raises(ConfigError, match="only used with pool: dask"):
        parse_config(raw, "c.yaml")
    with pytest.raises(ConfigError, match="not scheduler_file and address"):
        parse_config(_raw(tmp_path, scheduler_file="s.json", address="tcp://127.0.0.1:1"), "c.yaml")
    with pytest.raises(ConfigError, match=r"dask\.adapt"):
        parse_config(_raw(tmp_path, cluster={"type": "local"}, adapt={"minimum": 3, "maximum": 1}), "c.yaml")


@pytest.mark.parametrize("key, value", [("scheduler_file", "no-such-scheduler.json"),
                                        ("address", "tcp://127.0.0.1:9")])
def test_unreachable_scheduler_exits_2_in_bounded_time_naming_key_and_value(tmp_path, key, value):
    cfg = tmp_path / "c.yaml"
    cfg.write_text(yaml.safe_dump({**_raw(tmp_path, **{key: value}), "dask": {key: value, "connect_timeout": 1}}))
    t0 = time.monotonic()
    r = subprocess.run([sys.executable, "-m", "emews.run", str(cfg)], env=_env(), cwd=str(tmp_path),
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 2, r.stdout + r.stderr
    assert f"dask.{key}" in r.stderr and value in r.stderr, r.stderr
    assert not (tmp_path / "runs").exists(), "an experiment was created for a search that cannot run"
    assert time.monotonic() - t0 < 100  # bounded: connect_timeout 1 s, not a hang


def test_pool_dask_under_mpiexec_with_several_ranks_is_refused(tmp_path, monkeypatch):
    from emews.launch import launch

    monkeypatch.setenv("PMI_SIZE", "3")
    with pytest.raises(ConfigError, match="pool: dask runs the search in one process"):
        launch(parse_config(_raw(tmp_path, address="tcp://127.0.0.1:9"), "c.yaml"))
    assert not (tmp_path / "runs").exists()
