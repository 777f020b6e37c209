"""Kill the driver (rank 0) of a real `mpiexec -n 3` run with SIGKILL at a random point,
resume it under mpiexec, and check the journal holds every evaluation exactly once."""

from __future__ import annotations

import json

import pytest
from helpers import kill_and_resume, kill_rng, write_config
from mpirun import mpiexec_argv


@pytest.mark.parametrize("optimizer", ["random", {"name": "ga", "settings": {"population": 6, "offspring": 6}}])
def test_sigkill_rank0_then_resume_mpi(tmp_path, optimizer):
    cfg = {"experiment": "k", "objective": "killable:slow", "optimizer": optimizer,
           "space": {"x0": {"type": "real", "low": -1, "high": 1}, "x1": {"type": "real", "low": -1, "high": 1}},
           "max_evals": 30, "seed": 2, "pool": "mpi", "output": str(tmp_path / "runs"), "report": False}
    # the kill point's seed and the point are printed (EMEWS_TEST_SEED replays them)
    before, finals = kill_and_resume(tmp_path, write_config(tmp_path, cfg), 30, 2, kill_rng(),
                                     launcher=(*mpiexec_argv(), "-n", "3"))
    meta_pools = {json.dumps(r["worker"]) for r in finals}
    assert meta_pools <= {"1", "2"}  # evaluated on the worker ranks, in both sessions


@pytest.mark.parametrize("sig", ["SIGTERM", "SIGUSR1"])
def test_signal_to_mpiexec_is_an_orderly_stop_on_every_rank(tmp_path, sig):
    """SIGTERM (scancel, a time limit) or SIGUSR1 (a batch job's warning) to the launcher reaches
    every rank: the worker ranks end their held tasks as cancelled and say bye, rank 0 journals
    them (no MPI_Abort, nothing left open); the resume runs them again, nothing twice."""
    import signal

    from helpers import (
        WAIT,
        Gate,
        check_exactly_once,
        finished_rows,
        kill_env,
        reap,
        start_cli,
        wait_for_results,
    )
    from mpirun import journal

    cfg = {"experiment": "k", "objective": "killable:slow", "max_evals": 20, "seed": 2, "pool": "mpi",
           "space": {"x0": {"type": "real", "low": -1, "high": 1}, "x1": {"type": "real", "low": -1, "high": 1}},
           "output": str(tmp_path / "runs"), "report": False}
    path = write_config(tmp_path, cfg)
    out = tmp_path / "runs" / "k"
    env = kill_env(tmp_path, sleep=0.05)
    gate = Gate(tmp_path / "gate")  # 4 tasks pass, then each worker rank holds one: running at the signal
    gate.allow(4)
    launcher = (*mpiexec_argv(), "-n", "3")
    proc = start_cli([str(path)], tmp_path, env | gate.env, launcher=launcher)
    try:
        wait_for_results(out, 4, proc)
        gate.wait_started(6, proc)
        proc.send_signal(getattr(signal, sig))
        _, err = proc.communicate(timeout=WAIT)
    finally:
        reap(proc)
    assert proc.returncode == (143 if sig == "SIGTERM" else 0), err
    assert "MPI_Abort" not in err and "aborting" not in err, err
    rows = journal(out)["evals"]
    assert not [r for r in rows if r["status"] in ("queued", "running")], rows
    held = [r for r in rows if r["status"] == "cancelled" and r["worker"] is not None]
    assert sorted(r["worker"] for r in held) == [1, 2], held
    before = finished_rows(out)
    gate.open()
    proc = start_cli([str(path)], tmp_path, env | gate.env, launcher=launcher)
    try:
        _, err = proc.communicate(timeout=WAIT)
    finally:
        reap(proc)
    assert proc.returncode == 0, err
    check_exactly_once(out, before, 20, tmp_path / "evals.log", 2)


def test_supervisor_deap_ga_unchanged_under_mpiexec_killed_and_resumed(tmp_path):
    """CANDLE Supervisor's deap_ga.py (byte copy) as `optimizer: eqpy` under `mpiexec -n 3`,
    its driver SIGKILLed and the run resumed under mpiexec: the budget is spent once, every
    result kept (the space: a Supervisor GA file of two floats, so the GA proposes no duplicates
    that the exactly-once check would count)."""
    from helpers import ROOT

    space = tmp_path / "xy_param_space_ga.json"
    space.write_text(json.dumps([{"name": "x0", "type": "float", "lower": -1, "upper": 1, "sigma": 0.3},
                                 {"name": "x1", "type": "float", "lower": -1, "upper": 1, "sigma": 0.3}]))
    handshake = f"12,6,4,'mu_plus_lambda',1.0,1.0,0.0,1.0,0.5,3,'{space}',''"
    settings = {"module": "deap_ga", "path": [str(ROOT / "tests" / "data" / "supervisor" / "workflows" / "common" / "python")],
                "handshake": handshake, "format": "json"}
    cfg = {"experiment": "k", "objective": "killable:slow", "optimizer": {"name": "eqpy", "settings": settings},
           "space_file": str(space), "max_evals": 30, "seed": 2, "pool": "mpi", "output": str(tmp_path / "runs"),
           "report": False}
    before, finals = kill_and_resume(tmp_path, write_config(tmp_path, cfg), 30, 2, kill_rng(),
                                     launcher=(*mpiexec_argv(), "-n", "3"))
    assert {json.dumps(r["worker"]) for r in finals} <= {"1", "2"}


@pytest.mark.parametrize("module, rc", [("algorithm", 0), ("algorithm_fail", 1)])
def test_eq_py_noop_examples_unchanged_under_mpiexec(tmp_path, module, rc):
    """EQ-Py's own noop examples (byte copies) under `mpiexec -n 3`: the good one runs its two
    evaluations on the worker ranks and ends with FINAL; the failing one ends the job with exit
    status 1 and its traceback (EQPY_ABORT), the batch it had put kept."""
    from helpers import ROOT
    from mpirun import journal, run

    cfg = {"experiment": "e", "objective": "emews.examples:sphere", "space": {"x": {"type": "real", "low": 0, "high": 100}},
           "optimizer": {"name": "eqpy", "settings": {"module": module,
                                                      "path": str(ROOT / "tests" / "data" / "eqpy" / "examples" / "noop" / "python")}},
           "max_evals": 10, "pool": "mpi", "report": False, "output": str(tmp_path / "runs")}
    p, out = run(3, cfg, tmp_path, timeout=300)
    assert p.returncode == rc, p.stderr
    evals = journal(out)["evals"]
    assert {str(e["worker"]) for e in evals} <= {"1", "2"}
    if rc == 0:
        assert [(e["params"]["x"], e["loss"]) for e in evals] == [(1.0, 1.0), (33.0, 1089.0)]
        assert (out / "eqpy-final-0.txt").read_text() == "FINAL\n"
    else:
        assert "EQPY_ABORT" in p.stderr and "TypeError" in p.stderr and [e["params"]["x"] for e in evals] == [1.0]
