"""The MPI pool under a real ``mpiexec``: ranks, isolation, timeouts, GPUs, rank groups, errors."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from helpers import STARTUP
from mpirun import HERE, ROOT, config, env, journal, mpiexec, mpiexec_argv, run

pytestmark = pytest.mark.mpi


def _alive(pid: int) -> bool:
    """A process that exists and is not a zombie."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except FileNotFoundError:
        return False
    except OSError:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return False
        return True
    return state not in ("Z", "X")


def _group_members(pgid: int) -> list[int]:
    out = []
    for d in Path("/proc").iterdir():
        if d.name.isdigit():
            try:
                fields = (d / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[2]) == pgid and fields[0] not in ("Z", "X"):
                out.append(int(d.name))
    return out


@pytest.mark.parametrize("n, pool", [(1, "mpi"), (3, "auto"), (5, "mpi")])
def test_runs_on_1_3_and_5_ranks(tmp_path, n, pool):
    # no task ends before every worker has checked in: each gets work, however slow to start
    cfg = config(tmp_path, pool=pool, optimizer="objectives:Probe", workers=2, objective="objectives:where_all",
                 space={"i": {"type": "int", "low": 0, "high": 1000}, "sleep": {"type": "constant", "value": 0.02},
                        "dir": {"type": "constant", "value": str(tmp_path)},
                        "n": {"type": "constant", "value": 2 if n == 1 else n - 1}})
    p, out = run(n, cfg, tmp_path)
    assert p.returncode == 0, p.stderr
    j = journal(out)
    assert [e["status"] for e in j["evals"]] == ["done"] * 12
    workers = {e["worker"] for e in j["evals"]}
    if n == 1:
        assert "single MPI rank" in p.stderr and j["meta"]["pool"] == "local"
        assert workers == {0, 1}
    else:
        assert j["meta"]["pool"] == "mpi" and j["meta"]["workers"] == n - 1
        assert workers == set(range(1, n)), workers  # worker ids are world ranks; every one got work
        assert {e["metrics"]["rank"] for e in j["evals"]} == workers
        assert "single MPI rank" not in p.stderr
    # the optimizer process (spawned beside the driver on rank 0) never loads MPI
    assert j["optimizer_log"] and not any(rec["mpi_loaded"] for rec in j["optimizer_log"])


def test_quickstart_unchanged_with_and_without_mpi(tmp_path):
    cfg = ROOT / "configs" / "quickstart.yaml"
    for n in (4, None):
        args = ["-m", "emews.run", str(cfg), "--out", str(tmp_path / f"qs-{n}")]
        if n:
            p = mpiexec(n, args, tmp_path)
        else:
            import subprocess
            import sys

            from mpirun import env

            p = subprocess.run([sys.executable, *args], cwd=tmp_path, env=env(), capture_output=True, text=True,
                               timeout=120)
        assert p.returncode == 0, p.stderr
        j = journal(tmp_path / f"qs-{n}")
        assert len(j["evals"]) == 60 and all(e["status"] == "done" for e in j["evals"])
        assert j["meta"]["pool"] == ("mpi" if n else "local")


def test_isolated_crashes_are_failed_results(tmp_path):
    cfg = config(tmp_path, objective="objectives:crashy", runner={"type": "isolated"}, max_evals=8,
                 optimizer={"name": "grid", "settings": {"points": 8}}, space={"i": {"type": "int", "low": 0, "high": 7}})
    p, out = run(3, cfg, tmp_path)
    assert p.returncode == 0, p.stderr
    rows = {e["params"]["i"]: e for e in journal(out)["evals"]}
    assert sorted(rows) == list(range(8))
    for i, r in rows.items():
        if i % 4 == 1:
            assert r["status"] == "failed" and "SIGSEGV" in r["error"], r
            assert "Segmentation fault" in r["error"]  # faulthandler's report, from the child's stderr
        elif i % 4 == 2:
            assert r["status"] == "failed" and "exited with code 7" in r["error"], r
        else:
            assert r["status"] == "done" and r["metrics"]["pid"] != r["worker"], r
    assert {r["worker"] for r in rows.values()} == {1, 2}  # both ranks survived and kept working
    assert len({r["metrics"]["pid"] for r in rows.values() if r["status"] == "done"}) == 4  # a child per task


def test_hanging_task_is_killed_with_its_process_group(tmp_path):
    # the timeout leaves a loaded machine time to start every child (i = 1..3 must finish in it)
    cfg = config(tmp_path, objective="objectives:hang", runner={"type": "isolated", "timeout": STARTUP, "kill_grace": 0.5},
                 max_evals=4, optimizer={"name": "grid", "settings": {"points": 4}},
                 space={"i": {"type": "int", "low": 0, "high": 3}, "dir": {"type": "constant", "value": str(tmp_path)}})
    t0 = time.monotonic()
    p, out = run(3, cfg, tmp_path)
    assert p.returncode == 0, p.stderr
    assert time.monotonic() - t0 < STARTUP + 60  # did not wait for the 300 s hang
    rows = {e["params"]["i"]: e for e in journal(out)["evals"]}
    assert rows[0]["status"] == "timeout" and f"timed out after {STARTUP:g} s" in rows[0]["error"], rows[0]
    assert "SIGTERM" in rows[0]["error"]
    assert all(rows[i]["status"] == "done" for i in (1, 2, 3))
    child, grandchild, pgid = map(int, (tmp_path / "pids").read_text().split())
    assert not _alive(child) and not _alive(grandchild)
    assert _group_members(pgid) == []


def test_gpu_binding_per_rank(tmp_path):
    cfg = config(tmp_path, gpus={"gpus_per_worker": 1},
                 space={"i": {"type": "int", "low": 0, "high": 1000}, "sleep": {"type": "constant", "value": 0.05}})
    p, out = run(4, cfg, tmp_path)
    assert p.returncode == 0, p.stderr
    evals = journal(out)["evals"]
    by_rank = {}
    for e in evals:
        assert e["gpu"] == e["metrics"]["cvd"], e  # journaled binding == what the objective saw
        by_rank.setdefault(e["worker"], set()).add(e["gpu"])
    # one node: worker ranks 1, 2, 3 are node-local workers 0, 1, 2
    assert by_rank == {1: {"0"}, 2: {"1"}, 3: {"2"}}, by_rank


def test_multi_rank_tasks(tmp_path):
    cfg = config(tmp_path, objective="objectives:group", ranks_per_task=2, max_evals=6,
                 optimizer={"name": "grid", "settings": {"points": 6}}, space={"i": {"type": "int", "low": 0, "high": 5}})
    p, out = run(5, cfg, tmp_path)
    assert p.returncode == 0, p.stderr
    j = journal(out)
    assert j["meta"]["workers"] == 2
    rows = {e["params"]["i"]: e for e in j["evals"]}
    assert sorted(rows) == list(range(6))
    for i, r in rows.items():
        assert r["worker"] in (1, 3)
        if i == 3:
            assert r["status"] == "failed" and "rank 1 of the group fails" in r["error"], r
            continue
        assert r["status"] == "done", r
        assert r["metrics"]["size"] == 2 and r["metrics"]["sum"] == 2 * i
        assert r["metrics"]["ranks"] == [r["worker"], r["worker"] + 1]


def test_retries_rerun_failed_attempts(tmp_path):
    cfg = config(tmp_path, objective="objectives:flaky_once", runner={"retries": 1}, max_evals=6,
                 optimizer={"name": "grid", "settings": {"points": 6}},
                 space={"i": {"type": "int", "low": 0, "high": 5}, "dir": {"type": "constant", "value": str(tmp_path)}})
    p, out = run(3, cfg, tmp_path)
    assert p.returncode == 0, p.stderr
    evals = journal(out)["evals"]
    assert sorted((e["task_id"], e["attempt"], e["status"]) for e in evals) == sorted(
        [(t, 0, "failed") for t in range(6)] + [(t, 1, "done") for t in range(6)])
    assert all("first attempt" in e["error"] for e in evals if e["attempt"] == 0)


def test_pool_contract_on_mpi(tmp_path):
    p = mpiexec(3, [str(HERE / "mpi_pool_contract.py")], tmp_path)
    assert p.returncode == 0, p.stdout + p.stderr
    from emews.testing.pools import CHECKS

    assert f"all {len(CHECKS)} pool checks passed on 2 MPI workers" in p.stdout, p.stdout


def test_a_cancel_that_comes_before_its_task_ends_it_unstarted(tmp_path):
    """Rank 0 cancels a task the rank has not started (held ahead, or on its way, as the run
    ends): the rank ends it as cancelled when it comes, without running it (it would wait at
    a closed gate for ever), and the job ends in order (the CI failure of stop 18)."""
    import json

    gate = tmp_path / "gate"
    gate.mkdir()
    cmd = [*mpiexec_argv(), "-n", "2", sys.executable, str(HERE / "mpi_cancel_first.py")]
    p = subprocess.run(cmd, cwd=tmp_path, env=env() | {"KILLABLE_GATE": str(gate)}, capture_output=True,
                       text=True, timeout=300)
    assert p.returncode == 0 and "MPI_Abort" not in p.stderr, p.stdout + p.stderr
    results = json.loads(p.stdout.strip().splitlines()[-1])
    assert results == [[7, "cancelled", results[0][2]]], results
    assert "cancelled by rank 0" in results[0][2], results
    assert not list(gate.glob("started-*")), "the cancelled task ran"


def test_ranks_per_task_must_divide_the_workers(tmp_path):
    cfg = config(tmp_path, objective="objectives:group", ranks_per_task=2)
    p, out = run(4, cfg, tmp_path)
    assert p.returncode == 2
    assert "ranks_per_task: ranks_per_task 2 does not divide the 3 worker ranks" in p.stderr, p.stderr
    assert p.stderr.count("does not divide") == 1  # reported once, by rank 0
    assert not out.exists()


def test_multi_rank_objective_must_accept_comm(tmp_path):
    cfg = config(tmp_path, objective="objectives:no_comm", ranks_per_task=2)
    p, _ = run(3, cfg, tmp_path)
    assert p.returncode == 2
    assert "must accept the group's communicator" in p.stderr, p.stderr


def test_objective_missing_on_workers_stops_the_run(tmp_path):
    cfg = config(tmp_path, objective="objectives:nope")
    p, _ = run(3, cfg, tmp_path)
    assert p.returncode == 2, p.stderr
    assert "objective: rank 1" in p.stderr or "objective: rank 2" in p.stderr, p.stderr
    assert "'nope'" in p.stderr


def test_error_on_rank_0_releases_workers(tmp_path):
    cfg = config(tmp_path)
    p, out = run(3, cfg, tmp_path)
    assert p.returncode == 0, p.stderr
    t0 = time.monotonic()
    p, _ = run(3, cfg, tmp_path, extra=("--fresh",))  # same --out: rank 0 refuses it after the workers started
    assert p.returncode == 2 and "already holds an experiment" in p.stderr, p.stderr
    assert time.monotonic() - t0 < 30


def test_busy_workers_after_an_error_are_cancelled_in_order(tmp_path):
    # rank 2 cannot import the objective; rank 1 is meanwhile busy with a 60 s task, which rank 0
    # cancels: the job ends in order (no MPI_Abort), the task journaled cancelled
    cfg = config(tmp_path, objective="objectives_rankfail:slow")
    t0 = time.monotonic()
    p, out = run(3, cfg, tmp_path)
    assert time.monotonic() - t0 < 40, "the job waited for the busy rank"
    assert p.returncode == 2, p.stderr
    assert "no GPU on this rank" in p.stderr and "aborting the MPI job" not in p.stderr, p.stderr
    rows = journal(out)["evals"]
    assert rows and all(e["status"] == "cancelled" for e in rows)


def test_busy_workers_after_an_error_abort_the_job(tmp_path):
    # rank 2 cannot import the objective; rank 1 is meanwhile busy with a 60 s task that will not
    # be cancelled: after the grace, MPI_Abort
    cfg = config(tmp_path, objective="objectives_rankfail:stubborn")
    os.environ["EMEWS_MPI_STOP_GRACE"] = "1"
    try:
        t0 = time.monotonic()
        p, out = run(3, cfg, tmp_path)
    finally:
        del os.environ["EMEWS_MPI_STOP_GRACE"]
    assert time.monotonic() - t0 < 40, "the job waited for the busy rank"
    assert p.returncode != 0
    assert "no GPU on this rank" in p.stderr and "aborting the MPI job" in p.stderr, p.stderr
    rows = journal(out)["evals"]
    assert rows and all(e["status"] == "cancelled" for e in rows)


def test_command_runner_on_mpi_ranks(tmp_path):
    cfg = config(tmp_path, gpus={"gpus_per_worker": 1}, max_evals=6,
                 space={"x": {"type": "real", "low": 0.0, "high": 2.0}},
                 runner={"type": "command", "env": {"OMP_NUM_THREADS": "2"},
                         "command": ["{python}", str(HERE / "train.py"), "{params_file}", "json", "{result_file}"]})
    del cfg["objective"]
    p, out = run(3, cfg, tmp_path)
    assert p.returncode == 0, p.stderr
    evals = journal(out)["evals"]
    assert len(evals) == 6 and all(e["status"] == "done" for e in evals), evals
    for e in evals:
        assert e["metrics"]["cvd"] == e["gpu"] == str(e["worker"] - 1)
        assert e["metrics"]["omp"] == "2" and e["metrics"]["pmi"] is False  # no launcher variables leak
        assert Path(e["metrics"]["cwd"]) == out / "tasks" / str(e["task_id"])


def test_one_rank_cannot_hold_a_rank_group(tmp_path):
    cfg = config(tmp_path, objective="objectives:group", ranks_per_task=2, pool="mpi")
    p, _ = run(1, cfg, tmp_path)
    assert p.returncode == 2
    assert "ranks_per_task 2 needs at least 3 MPI ranks" in p.stderr, p.stderr


def test_pool_local_under_a_multi_rank_launch_is_refused(tmp_path):
    p, out = run(2, config(tmp_path, pool="local"), tmp_path)
    assert p.returncode == 2
    assert "pool: local, but the launcher started 2 processes" in p.stderr, p.stderr
    assert not out.exists()
