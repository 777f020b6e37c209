"""Population-based training (issue 24, item 4): a real search on the local pool whose
members continue their own checkpoints or copy a better member's (``tests/pbt_member.py``)."""

from __future__ import annotations

import pytest

import emews
from emews.errors import ConfigError
from emews.optimizers._pbt import PBT
from emews.space import Categorical, Int, Ordinal, Real, Space

SPACE = {"lr": {"type": "real", "low": 0.0, "high": 1.0}, "units": {"type": "int", "low": 1, "high": 64}}


def test_pbt_members_continue_or_copy_checkpoints_and_the_lineage_is_journaled(tmp_path):
    res = emews.search("pbt_member:train", SPACE, optimizer="pbt", max_evals=20, workers=2, seed=3,
                       settings={"population": 4, "interval": 2, "hyperparams": ["lr"], "resample_probability": 0.0},
                       output=tmp_path / "runs", experiment="pbt", report=True, keep_models={"count": 2})
    rows, steps = _lineage(res, 20)
    exploits = [x for x in steps if x["exploit"]]
    assert exploits, "no member copied another"
    for x in exploits:  # the copied member's hyperparameters, lr perturbed, units kept
        donor_params = rows[x["from_task"]]["params"]
        assert x["params"]["units"] == donor_params["units"]
        assert x["params"]["lr"] in (pytest.approx(donor_params["lr"] * 0.8),
                                     pytest.approx(min(1.0, donor_params["lr"] * 1.2)))
        assert x["from_member"] != x["member"] and x["loss_before"] >= x["donor_loss"]
    # superseded checkpoints are deleted once no step starts from them: what stays is bounded by
    # the population (each member's last) and the releases the last puts could not carry; the
    # kept models were copied before their places went
    places = [p.name for p in (res.directory / "checkpoints").iterdir()]
    assert len(places) <= 2 * 4, places
    best2 = sorted((r["loss"], t) for t, r in rows.items())[:2]
    assert sorted(p.name for p in (res.directory / "models").iterdir()) == sorted(f"task-{t}" for _, t in best2)
    assert (res.directory / "pbt.png").is_file()


def test_a_resumed_pbt_search_goes_on_from_the_earlier_checkpoints(tmp_path):
    kw = dict(optimizer="pbt", workers=2, seed=3, settings={"population": 4, "interval": 2},
              output=tmp_path / "runs", experiment="pbt", report=False)
    emews.search("pbt_member:train", SPACE, max_evals=8, **kw)
    res = emews.search("pbt_member:train", SPACE, max_evals=16, resume=True, **kw)
    rows, steps = _lineage(res, 16, resumed=True)
    # the second session's steps continued from checkpoints the first one left
    assert any(x["task"] >= 8 and x["from_task"] is not None and x["from_task"] < 8 for x in steps)
    # without keep_models the superseded checkpoints are deleted beside the loop, waited for at the end
    # (each session leaves its population's last and the releases its last puts could not carry)
    places = [p.name for p in (res.directory / "checkpoints").iterdir()]
    assert len(places) <= 3 * 4, places


def _lineage(res, n: int, resumed: bool = False) -> tuple[dict, list]:
    """Check every step against its lineage record: it started from the checkpoint the record
    names (the source's state, at its step) and trained to the record's step."""
    rows = {r["task_id"]: r for r in res.rows}
    assert len(rows) == n and all(r["status"] == "done" for r in rows.values()), \
        [r["error"] for r in rows.values() if r["error"]][:1]
    steps = [x for x in res.optimizer_log if x.get("optimizer") == "pbt"]
    if resumed:  # it logs its retraced steps again; a step put past the budget is refused (no task)
        steps = [x for x in {x["task"]: x for x in steps}.values() if x["task"] in rows]
    assert sorted(x["task"] for x in steps) == sorted(rows)  # one lineage record per task
    for x in steps:
        m = rows[x["task"]]["metrics"]
        assert rows[x["task"]]["params"] == x["params"]
        # the step started from the checkpoint the record names: the source's state, at its step
        assert m["loaded_epoch"] == x["step"] and m["checkpoint"] == x["until"] == x["step"] + 2
        assert m["loaded_from"] == x["from_task"]
        if x["from_task"] is None:
            assert "resumed_from" not in m
        else:
            assert m["resumed_from"] == x["step"] and m["started_from"] == x["from_task"]
    return rows, steps


@pytest.mark.parametrize("settings, message", [
    ({"hyperparams": ["lr", "nope"]}, "hyperparams.*'nope' is not a searchable dimension"),
    ({"quantile": 0.75}, r"quantile=0.75: must be in \(0, 0.5\]"),
    ({"population": 1}, "population=1: must be an integer >= 2"),
    ({"interval": 0}, "interval=0"),
])
def test_bad_pbt_settings_are_a_clear_error_before_anything_exists(tmp_path, settings, message):
    with pytest.raises(ConfigError, match=message):
        emews.search("pbt_member:train", SPACE, optimizer="pbt", settings=settings, max_evals=4,
                     output=tmp_path / "runs", experiment="bad")
    assert not (tmp_path / "runs").exists()


def test_explore_perturbs_within_bounds_and_keeps_what_is_not_listed():
    space = Space([Real("lr", 1e-4, 1e-1, log=True), Int("units", 1, 10), Ordinal("batch", [16, 32, 64]),
                   Categorical("act", ["relu", "tanh"])])
    pbt = PBT(space, seed=0, resample_probability=0.0, hyperparams=["lr", "units", "batch"])
    start = {"lr": 0.1, "units": 10, "batch": 32, "act": "tanh"}
    for _ in range(50):
        p = pbt._perturb(start)
        assert p["lr"] in (pytest.approx(0.08), pytest.approx(0.1))  # x1.2 is clipped to the bound
        assert p["units"] in (8, 10) and p["batch"] in (16, 64) and p["act"] == "tanh"
