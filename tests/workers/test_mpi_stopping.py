"""Early stopping on the MPI pool: reports reach rank 0, the stop comes back."""

from __future__ import annotations

import pytest

import curve_objectives as co
from mpirun import run
from test_stopping import ASHA_SPEC, SPACE, _order, _outcomes, expected_asha

pytestmark = pytest.mark.mpi


def _config(**more) -> dict:
    cfg = {"experiment": "m", "objective": "curve_objectives:with_trial", "space": SPACE,
           "optimizer": "grid", "max_evals": 9, "seed": 1, "stopper": ASHA_SPEC, "report": False}
    cfg.update(more)
    return cfg


def _journal(out):
    from emews.journal import read_journal

    return read_journal(out)


def test_mpi_reports_and_stops_on_two_worker_ranks(tmp_path):
    p, out = run(3, _config(), tmp_path, timeout=240)
    assert p.returncode == 0, p.stderr
    j = _journal(out)
    assert len(j["reports"]) < 9 * co.EPOCHS and any(e["status"] == "stopped" for e in j["evals"])
    for e in j["evals"]:
        reps = [r for r in j["reports"] if r["task_id"] == e["task_id"]]
        decided = [r["step"] for r in reps if r["stop"]]
        if e["status"] == "stopped":
            assert decided and e["metrics"]["step"] == decided[0] in (1, 3)
            assert reps[-1]["step"] <= decided[0] + 1
        else:
            assert e["status"] == "done" and not decided and len(reps) == co.EPOCHS


def test_mpi_multi_rank_task_stops_on_all_its_ranks(tmp_path):
    stops = tmp_path / "stops.txt"
    import os

    os.environ["EMEWS_TEST_STOPS"] = str(stops)  # mpirun.env() copies os.environ
    try:
        p, out = run(3, _config(objective="curve_objectives:ranks_trial", ranks_per_task=2), tmp_path, timeout=240)
    finally:
        del os.environ["EMEWS_TEST_STOPS"]
    assert p.returncode == 0, p.stderr
    j = _journal(out)
    assert _outcomes(j) == expected_asha(_order(j))  # one group: the tasks run one after another
    last: dict[int, dict[int, int]] = {}
    for line in stops.read_text().split("\n"):
        if line:
            tid, rank, step = map(int, line.split())
            last.setdefault(tid, {})[rank] = step
    for e in j["evals"]:
        steps = last[e["task_id"]]
        assert set(steps) == {0, 1} and steps[0] == steps[1]  # both ranks ended at the same step
        if e["status"] == "stopped":
            assert steps[0] == e["metrics"]["step"] + 1  # seen at the next report, on every rank
