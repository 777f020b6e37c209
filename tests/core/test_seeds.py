"""A seed repeats a search (issue 19 item 6).

The same search runs three times, with 1, 2 and 3 workers and each kind of objective (a plain
``fn(params)``, an ``fn(params, trial)`` reporting every epoch, an external command); the
points are compared by task id. ``random`` and ``grid`` must give the same points whatever
the batching of the asks (which follows result arrival, so the worker count and the
objective's speed); ``mbo`` and ``ga`` in ``mode: batch`` with a fixed ``batch_size`` must
repeat exactly.
"""

from __future__ import annotations

import sys
import textwrap

import numpy as np
import pytest

import emews
from emews.optimizers import RandomSearch
from emews.space import Space

# every kind of dimension: the draws of each kind must not depend on how many points were asked at once
SPACE = {
    "lr": {"type": "real", "low": 1e-5, "high": 0.1, "log": True},
    "width": {"type": "int", "low": 8, "high": 512, "log": True},
    "layers": {"type": "int", "low": 1, "high": 6},
    "dropout": {"type": "real", "low": 0.0, "high": 0.5},
    "batch": {"type": "ordinal", "values": [16, 32, 64, 128]},
    "act": {"type": "categorical", "values": ["relu", "tanh", "elu"]},
    "bn": {"type": "bool"},
}


def _loss(p):
    return (np.log10(p["lr"]) + 3) ** 2 + p["dropout"] + 0.01 * p["layers"] + (p["act"] == "tanh") * 0.1


def _make_plain():
    def plain(params):
        import time

        time.sleep(0.002 * (params["layers"] % 3))  # uneven durations: results arrive out of order
        return _loss(params)

    return plain


def _make_trial():
    def with_trial(params, trial):
        import time

        for epoch in range(1, 4):
            time.sleep(0.001 * (params["layers"] % 3))
            trial.report(epoch, _loss(params) + 1.0 / epoch)
        return _loss(params)

    return with_trial


def _command_runner(tmp_path):
    script = tmp_path / "train.py"
    script.write_text(textwrap.dedent("""
        import json, math, sys, time
        p = json.load(open(sys.argv[1]))
        time.sleep(0.002 * (p["layers"] % 3))
        print("loss:", (math.log10(p["lr"]) + 3) ** 2 + p["dropout"])
    """))
    return {"type": "command", "command": [sys.executable, str(script), "{params_file}"]}


def _points(res) -> dict[int, dict]:
    return {r["task_id"]: r["params"] for r in res.rows}


def _search(tmp_path, name, kind, workers, **kwargs):
    runner = None
    objective = _make_plain()
    if kind == "trial":
        objective = _make_trial()
    elif kind == "command":
        objective, runner = "unused:unused", _command_runner(tmp_path)
    res = emews.search(objective, SPACE, workers=workers, seed=7, output=tmp_path / "runs", experiment=name,
                       report=False, runner=runner, **kwargs)
    assert res.count("done") == len(res), [r.get("error") for r in res.rows if r["status"] != "done"][:3]
    return _points(res)


def test_random_points_do_not_depend_on_how_many_were_asked_at_once():
    space = Space.from_dict(SPACE)
    one = RandomSearch(space, seed=7)
    whole = RandomSearch(space, seed=7)
    singles = [one.ask(1)[0] for _ in range(30)]
    batches = whole.ask(2) + whole.ask(5) + whole.ask(1) + whole.ask(22)
    assert singles == batches
    assert RandomSearch(space, seed=8).ask(30) != singles


@pytest.mark.parametrize("optimizer,settings,extra", [
    ("random", {}, {"max_evals": 100}),  # more than the first ask (workers + lookahead 64)
    ("grid", {"points": 2, "shuffle": True}, {"max_evals": 100}),
])
def test_random_and_grid_repeat_across_worker_counts_and_objective_kinds(tmp_path, optimizer, settings, extra):
    runs = {}
    for workers, kind in ((1, "plain"), (2, "trial"), (3, "command"), (3, "plain")):
        runs[(workers, kind)] = _search(tmp_path, f"{optimizer}-{workers}-{kind}", kind, workers, optimizer=optimizer,
                                        settings=settings, **extra)
    runs[(7, "simulated")] = _search(tmp_path, f"{optimizer}-simulated", "plain", 7, optimizer=optimizer,
                                     settings=settings, pool="simulated", **extra)
    first = runs[(1, "plain")]
    assert len(first) == extra["max_evals"]
    for key, points in runs.items():
        assert points == first, f"{key}: {sum(points.get(i) == p for i, p in first.items())} of {len(first)} points shared"


@pytest.mark.parametrize("optimizer,settings,evals", [
    ("mbo", {"n_initial": 4, "n_candidates": 200}, 12),
    ("ga", {"population": 4}, 16),
    ("ga-steady", {"population": 4}, 12),
])
def test_mbo_and_ga_repeat_in_batch_mode(tmp_path, optimizer, settings, evals):
    runs = [_search(tmp_path, f"{optimizer}-{w}-{kind}", kind, w, optimizer=optimizer, settings=settings,
                    max_evals=evals, mode="batch", batch_size=4)
            for w, kind in ((1, "plain"), (2, "trial"), (3, "plain"))]
    assert len(runs[0]) == evals
    assert runs[1] == runs[0] and runs[2] == runs[0]


def test_ga_repeats_in_async_mode_too(tmp_path):
    """The generational ``ga`` is a resident loop: each generation is one batch, told in its
    own order whatever order results arrive in, so ``mode`` does not matter to it."""
    runs = [_search(tmp_path, f"ga-async-{w}", "plain", w, optimizer="ga", settings={"population": 4}, max_evals=16)
            for w in (1, 3)]
    assert runs[0] == runs[1] and len(runs[0]) == 16


@pytest.mark.parametrize("optimizer,settings,repeated", [
    ("mbo", {"n_initial": 6, "n_candidates": 200}, 6),  # the initial design
    ("ga-steady", {"population": 4}, 4),  # the first population
])
def test_what_repeats_in_async_mode(tmp_path, optimizer, settings, repeated):
    """In async mode a learning optimizer proposes from the results that have arrived when a
    worker frees up; only the points it proposes before learning anything repeat."""
    runs = [_search(tmp_path, f"{optimizer}-async-{w}", "plain", w, optimizer=optimizer, settings=settings,
                    max_evals=repeated + 4) for w in (1, 2, 3)]
    first = {i: runs[0][i] for i in range(repeated)}
    for points in runs[1:]:
        assert {i: points[i] for i in range(repeated)} == first
