"""The simulated pool under the real driver, optimizer process and journal.

No timing assertion here depends on the machine being fast: the clock charges real time,
so a slow optimizer can only make the simulated run *worse*; the bounds below are the ones
a perfect machine would reach.
"""

from __future__ import annotations

import pytest
import yaml

from emews.journal import read_journal
from emews.report import report_data
from emews.testing.pools import CHECKS
from emews.workers._simulated import SimulatedPool
from helpers import run_cli

SPACE = {"x": {"type": "real", "low": -1.0, "high": 1.0}, "y": {"type": "real", "low": -1.0, "high": 1.0}}


def _config(tmp_path, **changes):
    cfg = {"experiment": "sim", "objective": "emews.examples:sphere", "space": SPACE, "pool": "simulated",
           "workers": 20, "max_evals": 100, "seed": 1, "output": str(tmp_path / "runs"), "report": False,
           "simulation": {"duration": {"distribution": "constant", "value": 5.0}, "seed": 1}}
    cfg.update(changes)
    path = tmp_path / f"{cfg['experiment']}.yaml"
    path.write_text(yaml.safe_dump(cfg, sort_keys=False))
    return path


SLOW_OPTIMIZER = """
import time
import emews

class SlowRandom(emews.Optimizer):
    \"\"\"Random points, after a real sleep of `delay` seconds per ask (a slow surrogate fit).\"\"\"

    def __init__(self, space, seed=None, delay=1.0):
        super().__init__(space, seed)
        self.delay = delay

    def ask(self, n):
        time.sleep(self.delay)
        return self.space.sample(n, self.rng)
"""


def _utilization(out):
    return report_data(out)["utilization"]


def test_a_slow_optimizer_shows_up_as_idle_workers(tmp_path):
    """Batch mode, 20 workers, 5 rounds of 5-s tasks. An optimizer that sleeps 2 s (real) before
    each batch keeps every worker idle for at least those 2 s between rounds: the span is at
    least 5 x 5 + 4 x 2 = 33 s (the first delay comes before the first start) and the
    utilization at most 25/33. The same search with a quick optimizer keeps them busy."""
    (tmp_path / "slowopt.py").write_text(SLOW_OPTIMIZER)
    fast = _config(tmp_path, experiment="fast", mode="batch", batch_size=20)
    slow = _config(tmp_path, experiment="slow", mode="batch", batch_size=20,
                   optimizer={"name": "slowopt:SlowRandom", "settings": {"delay": 2.0}})
    for path in (fast, slow):
        r = run_cli([str(path)], cwd=tmp_path, timeout=300)
        assert r.returncode == 0, r.stderr
    u_fast = _utilization(tmp_path / "runs" / "fast")
    u_slow = _utilization(tmp_path / "runs" / "slow")
    assert u_slow["utilization"] <= 25 / 33 + 1e-6, u_slow
    assert u_slow["span"] >= 33 - 1e-6, u_slow
    assert u_fast["utilization"] > u_slow["utilization"] + 0.1, (u_fast, u_slow)
    assert u_fast["span"] < u_slow["span"] - 5, (u_fast, u_slow)
    rows = read_journal(tmp_path / "runs" / "slow")["evals"]
    assert len(rows) == 100 and all(r["status"] == "done" for r in rows)
    assert all(r["end"] - r["start"] == pytest.approx(5.0) for r in rows)  # simulated durations


def test_hundreds_of_workers_failures_and_stragglers(tmp_path):
    path = _config(tmp_path, workers=500, max_evals=3000, report=True,
                   simulation={"duration": {"distribution": "normal", "mean": 60, "sd": 20}, "failure_rate": 0.05,
                               "stragglers": {"share": 0.02, "factor": 10}, "seed": 7})
    r = run_cli([str(path), "-q"], cwd=tmp_path, timeout=600)
    assert r.returncode == 0, r.stderr
    out = tmp_path / "runs" / "sim"
    rows = read_journal(out)["evals"]
    assert len(rows) == 3000 and {r["worker"] for r in rows} == set(range(500))
    failed = [r for r in rows if r["status"] == "failed"]
    assert 0.02 * 3000 < len(failed) < 0.10 * 3000 and all("simulated failure" in r["error"] for r in failed)
    durations = [r["end"] - r["start"] for r in rows]
    assert max(durations) > 200 and sum(d > 200 for d in durations) < 0.06 * 3000  # stragglers, a few
    d = report_data(out)
    assert d["workers"] == 500 and d["pool"] == "simulated"
    assert d["ramp"]["up"] is not None and d["ramp"]["up"] < 60  # every worker busy within the first task
    span = max(r["end"] for r in rows) - min(r["start"] for r in rows)  # DeepHyper's definition, by hand
    assert d["utilization"]["utilization"] == pytest.approx(sum(durations) / (500 * span))
    assert 0 < d["ramp"]["down"] < span and d["utilization"]["span"] == pytest.approx(span)


def test_a_time_limit_ends_the_utilization_span(tmp_path):
    """max_time is simulated time: a 600-s limit on 60-s tasks stops new tasks at 600 s, and
    the utilization span ends there (DeepHyper's definition)."""
    path = _config(tmp_path, workers=50, max_evals=100000, max_time=600,
                   simulation={"duration": {"distribution": "constant", "value": 60.0}})
    r = run_cli([str(path), "-q"], cwd=tmp_path, timeout=300)
    assert r.returncode == 0, r.stderr
    d = report_data(tmp_path / "runs" / "sim")
    assert "max_time" in d["outcome"]
    assert d["utilization"]["span"] == pytest.approx(600, abs=5)
    assert d["utilization"]["utilization"] > 0.9
    rows = read_journal(tmp_path / "runs" / "sim")["evals"]
    starts = sorted(r["start"] for r in rows if r["start"] is not None)  # cancelled ones never started
    assert starts[-1] - starts[0] <= 600 + 1e-6  # no task started after the limit


def test_a_simulated_run_resumes_after_its_own_times(tmp_path):
    path = _config(tmp_path, workers=50, max_evals=300)
    assert run_cli([str(path), "-q"], cwd=tmp_path, timeout=300).returncode == 0
    first = read_journal(tmp_path / "runs" / "sim")["evals"]
    r = run_cli([str(path), "--set", "max_evals=500"], cwd=tmp_path, timeout=300)
    assert r.returncode == 0, r.stderr
    assert "resuming" in r.stderr
    rows = read_journal(tmp_path / "runs" / "sim")["evals"]
    assert len(rows) == 500 and all(r["status"] == "done" for r in rows)
    old_ids = {r["task_id"] for r in first}
    new = [r for r in rows if r["task_id"] not in old_ids]
    assert len(new) == 200 and min(r["start"] for r in new) > max(r["end"] for r in first)


@pytest.mark.parametrize("simulation, key, value", [
    ({"duration": {"distribution": "gamma", "mean": 1}}, "simulation.duration.distribution", "'gamma'"),
    ({"duration": {"distribution": "normal", "mean": 60}}, "simulation.duration.sd", "sd"),
    ({"duration": {"distribution": "uniform", "low": 5, "high": 1}}, "simulation.duration.high", "below low"),
    ({"failure_rate": 1.5}, "simulation.failure_rate", "1.5"),
    ({"failure_rate": -0.1}, "simulation.failure_rate", "-0.1"),
    ({"stragglers": {"share": 0.1, "factr": 3}}, "simulation.stragglers.factr", "factr"),
    ({"duration": "nosuchmodule:f"}, "simulation.duration", "nosuchmodule"),
    ({"durations": 3}, "simulation.durations", "durations"),
])
def test_bad_simulation_settings_name_the_key_and_value(tmp_path, simulation, key, value):
    r = run_cli([str(_config(tmp_path, simulation=simulation))], cwd=tmp_path)
    assert r.returncode == 2, r.stderr
    assert key in r.stderr and value in r.stderr, r.stderr
    assert not (tmp_path / "runs" / "sim" / "journal.sqlite").exists()


def test_a_bad_duration_from_a_function_fails_that_task_only(tmp_path):
    (tmp_path / "durations.py").write_text(
        "def odd_negative(params):\n    return -1.0 if params['x'] > 0.5 else float('nan') if params['x'] < -0.5 else 3.0\n")
    path = _config(tmp_path, simulation={"duration": "durations:odd_negative"}, max_evals=60)
    r = run_cli([str(path), "-q"], cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    rows = read_journal(tmp_path / "runs" / "sim")["evals"]
    bad = [r for r in rows if abs(r["params"]["x"]) > 0.5]
    assert bad and all(r["status"] == "failed" and "simulation.duration returned" in r["error"] for r in bad)
    assert any("-1.0" in r["error"] for r in bad) and any("nan" in r["error"] for r in bad)
    assert all(r["status"] == "done" for r in rows if abs(r["params"]["x"]) <= 0.5)


def test_simulation_needs_the_simulated_pool_and_workers(tmp_path):
    r = run_cli([str(_config(tmp_path, pool="local"))], cwd=tmp_path)
    assert r.returncode == 2 and "simulation" in r.stderr and "pool: simulated" in r.stderr, r.stderr
    r = run_cli([str(_config(tmp_path, workers=None))], cwd=tmp_path)
    assert r.returncode == 2 and "workers" in r.stderr, r.stderr
    r = run_cli([str(_config(tmp_path, runner={"type": "isolated"}))], cwd=tmp_path)
    assert r.returncode == 2 and "runner.type" in r.stderr, r.stderr


@pytest.mark.mpi
def test_the_simulated_pool_under_mpiexec_is_an_error(tmp_path):
    from mpirun import mpiexec

    p = mpiexec(2, ["-m", "emews.run", str(_config(tmp_path))], tmp_path)
    assert p.returncode != 0
    assert "pool: simulated" in p.stderr and "mpiexec" in p.stderr, p.stderr


def test_the_load_plot_aggregates_above_a_worker_count(tmp_path):
    """Up to GANTT_MAX_WORKERS workers: one bar per attempt per worker; above: a heat map."""
    pytest.importorskip("matplotlib")
    from emews import Results
    from emews.report import plot_load
    from emews.report._plots import GANTT_MAX_WORKERS

    for workers in (GANTT_MAX_WORKERS, 300):
        path = _config(tmp_path, experiment=f"w{workers}", workers=workers, max_evals=3 * workers)
        assert run_cli([str(path), "-q"], cwd=tmp_path, timeout=300).returncode == 0
        fig = plot_load(Results.load(tmp_path / "runs" / f"w{workers}"))
        lower = fig.axes[1]
        if workers > GANTT_MAX_WORKERS:
            assert len(lower.images) == 1 and not lower.collections
            share = lower.images[0].get_array()
            assert share.shape == (100, 200) and 0.0 <= share.min() and share.max() <= 1.0 + 1e-9
            assert share[:, :50].mean() > 0.9  # every row busy early on
        else:
            assert not lower.images and len(lower.collections) >= workers  # bars per worker


CURVE_OBJECTIVE = """
def curve(params, trial):
    # a learning curve: the final loss is x**2 + y**2, approached over 27 epochs
    final = params["x"] ** 2 + params["y"] ** 2
    loss = None
    for epoch in range(1, 28):
        loss = final + 1.0 / epoch
        if trial.report(epoch, loss):
            break
    return loss
"""


def test_early_stopping_replays_reports_in_simulated_time(tmp_path):
    """Each task's 27 reports come one every duration/27 simulated seconds; ASHA stops most of
    them at a rung, and a stopped task frees its worker one step after the judged report."""
    (tmp_path / "curvemod.py").write_text(CURVE_OBJECTIVE)
    asha = {"name": "asha", "min_resource": 1, "max_resource": 27, "reduction_factor": 3}
    for name, stopper in (("stop", asha), ("full", None)):
        cfg = dict(experiment=name, objective="curvemod:curve", workers=50, max_evals=400,
                   simulation={"duration": {"distribution": "constant", "value": 27.0}, "seed": 1})
        if stopper:
            cfg["stopper"] = stopper
        r = run_cli([str(_config(tmp_path, **cfg)), "-q"], cwd=tmp_path, timeout=600)
        assert r.returncode == 0, r.stderr
    stopped_run = read_journal(tmp_path / "runs" / "stop")
    full_run = read_journal(tmp_path / "runs" / "full")
    stopped = [e for e in stopped_run["evals"] if e["status"] == "stopped"]
    assert len(stopped) > 200 and len(stopped_run["evals"]) == 400
    for e in stopped:
        step = e["metrics"]["step"]
        assert step in (1, 3, 9)  # ASHA's rungs below the top
        assert e["end"] - e["start"] == pytest.approx(step + 1.0)  # one step (1 s) after the judged report
        assert e["loss"] == pytest.approx(e["params"]["x"] ** 2 + e["params"]["y"] ** 2 + 1.0 / step)
    assert all(e["status"] == "done" and e["end"] - e["start"] == pytest.approx(27.0) for e in full_run["evals"])
    busy = lambda run: sum(e["end"] - e["start"] for e in run["evals"])  # noqa: E731
    assert busy(stopped_run) < 0.5 * busy(full_run)  # the epochs saved
    reports = stopped_run["reports"]
    assert len(reports) == sum(int(e["metrics"]["step"]) for e in stopped) + 27 * (400 - len(stopped))


# -- the pool contract on the simulated pool ------------------------------------------------------
def contract_duration(params: dict) -> float:
    """10 ms a task; 10 minutes for the long reporting task of ``check_reports_and_stops``
    (its 100,000 reports are then replayed 6 ms apart: it is still running when stopped)."""
    return 600.0 if params.get("steps", 0) > 1000 else 0.01


@pytest.mark.parametrize("check", CHECKS, ids=lambda c: c.__name__)
def test_simulated_pool_contract(check):
    sim = {"seed": 1, "duration": "test_simulated:contract_duration"}
    check(lambda spec, on_report: SimulatedPool(2, spec, sim, on_report=on_report))
