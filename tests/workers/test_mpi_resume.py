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
