"""What a new user trips on in the first hour (issue 12): each test failed before its fix."""

import json
import os
import subprocess
import sys
import textwrap

import pytest
import yaml

from emews.config import load_config, parse_config
from emews.errors import ConfigError
from emews.journal import read_journal
from helpers import ROOT, base_config, run_cli, write_config


def _cfg(tmp_path, **changes):
    return base_config(tmp_path, report=False, **changes)


# -- item 2: a typo in an optimizer setting --------------------------------------------------
def test_optimizer_setting_typo_is_a_config_error_before_anything_exists(tmp_path):
    cfg = _cfg(tmp_path, optimizer={"name": "mbo", "settings": {"n_init": 3}})
    r = run_cli([str(write_config(tmp_path, cfg))], cwd=tmp_path)
    assert r.returncode == 2, r.stderr
    assert "optimizer.settings.n_init" in r.stderr and "3" in r.stderr and "did you mean 'n_initial'" in r.stderr
    assert "Traceback" not in r.stderr
    assert not (tmp_path / "runs").exists()  # no experiment directory was created
    cfg["optimizer"]["settings"] = {"n_initial": 3}
    r = run_cli([str(write_config(tmp_path, cfg))], cwd=tmp_path)
    assert r.returncode == 0, r.stderr


def test_plugin_settings_are_checked_against_its_signature(tmp_path):
    (tmp_path / "myopt.py").write_text(textwrap.dedent("""
        import emews
        class Perturb(emews.Optimizer):
            def __init__(self, space, seed=None, scale=0.1):
                super().__init__(space, seed)
            def ask(self, n):
                return self.space.sample(n, self.rng)
        def loop(queues, space, seed=None, rounds=2):
            queues.evaluate(space.sample(2))
    """))
    for name, bad, good in (("myopt:Perturb", "scal", "scale"), ("myopt:loop", "round", "rounds")):
        cfg = _cfg(tmp_path, optimizer={"name": name, "settings": {bad: 1}}, max_evals=4)
        r = run_cli([str(write_config(tmp_path, cfg))], cwd=tmp_path)
        assert r.returncode == 2 and f"did you mean {good!r}" in r.stderr and f"optimizer.settings.{bad}" in r.stderr
        assert not (tmp_path / "runs").exists()


def test_a_search_that_never_produced_a_result_does_not_pin_its_config(tmp_path):
    cfg = _cfg(tmp_path, objective="emews.examples:quickstrat")  # a typo in the function name
    p = write_config(tmp_path, cfg)
    r = run_cli([str(p)], cwd=tmp_path)
    assert r.returncode == 2, r.stderr
    assert not read_journal(tmp_path / "runs" / "t")["evals"] or all(
        e["status"] not in ("done", "failed", "timeout") for e in read_journal(tmp_path / "runs" / "t")["evals"])
    cfg["objective"] = "emews.examples:quickstart"
    r = run_cli([str(write_config(tmp_path, cfg))], cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert "different search" not in r.stderr
    assert len(read_journal(tmp_path / "runs" / "t")["evals"]) >= cfg["max_evals"]
    assert not (tmp_path / "runs" / "t-2").exists()


# -- item 3: every evaluation failed ------------------------------------------------------------
def test_a_run_where_every_evaluation_failed_says_why_and_exits_3(tmp_path):
    (tmp_path / "objs.py").write_text("def none(params):\n    return None\n")
    r = run_cli([str(write_config(tmp_path, _cfg(tmp_path, objective="objs:none", max_evals=4)))], cwd=tmp_path)
    assert r.returncode == 3, r.stderr
    assert "4 x objective returned a non-number loss: None" in r.stdout


def test_error_summary_counts_messages_by_their_last_line():
    from emews._failures import error_summary, failure_lines

    rows = [{"status": "failed", "error": "Traceback ...\nValueError: x"}] * 3 + [
        {"status": "timeout", "error": "timed out after 5 s"}, {"status": "done", "error": None}]
    assert error_summary(rows) == [(3, "ValueError: x"), (1, "timed out after 5 s")]
    assert failure_lines(rows, top=1)[1:] == ["emews:   3 x ValueError: x", "emews:   1 more with 1 other message(s)"]


# -- item 4: a file path as the objective -----------------------------------------------------------
@pytest.mark.parametrize("objective,hint", [("train.py:run", "'train:run'"), ("models/train.py:run", "'models.train:run'"),
                                            ("models/train:run", "'train:run'")])
def test_a_file_path_as_objective_says_it_is_a_module_name(tmp_path, objective, hint):
    (tmp_path / "train.py").write_text("def run(p):\n    return 0.0\n")
    (tmp_path / "models").mkdir()
    (tmp_path / "models" / "train.py").write_text("def run(p):\n    return 0.0\n")
    with pytest.raises(ConfigError) as e:
        parse_config(_cfg(tmp_path, objective=objective), "c.yaml")
    assert "module name" in str(e.value) and hint in str(e.value) and e.value.key == "objective"


# -- item 7: -q and grids -------------------------------------------------------------------------
def test_quiet_hides_messages_not_the_summary(tmp_path):
    r = run_cli([str(write_config(tmp_path, _cfg(tmp_path, max_evals=3))), "-q"], cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert "best loss" in r.stdout and "results in" in r.stdout
    assert r.stderr == ""


def test_a_grid_cut_short_by_max_evals_is_a_warning(tmp_path):
    cfg = _cfg(tmp_path, optimizer="grid", max_evals=5)
    r = run_cli([str(write_config(tmp_path, cfg))], cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert "the grid has 150 points but max_evals is 5" in r.stderr and "shuffle: true" in r.stderr
    cfg = _cfg(tmp_path, optimizer={"name": "grid", "settings": {"shuffle": True}}, max_evals=5, experiment="s")
    r = run_cli([str(write_config(tmp_path, cfg))], cwd=tmp_path)
    assert r.returncode == 0 and "the grid has" not in r.stderr


def test_an_unguarded_script_gets_one_paragraph_and_no_stray_directories(tmp_path):
    (tmp_path / "script.py").write_text(textwrap.dedent("""
        import emews
        def f(p):
            return p["x"] ** 2
        res = emews.search(f, {"x": {"type": "real", "low": -1, "high": 1}}, max_evals=4, workers=2,
                           output="runs", report=False)
    """))
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]))
    r = subprocess.run([sys.executable, "script.py"], cwd=tmp_path, env=env, capture_output=True, text=True,
                       timeout=300)
    assert r.returncode != 0
    assert r.stderr.count("Put the call under the guard") == 1, r.stderr
    assert r.stderr.count("Traceback") <= 1, r.stderr
    assert not (tmp_path / "runs").exists()  # refused before any experiment directory exists (issue 25 item 6)


# -- item 9: bad input ------------------------------------------------------------------------------
def test_a_config_with_non_utf8_bytes_is_a_config_error(tmp_path):
    p = tmp_path / "c.yaml"
    p.write_bytes(b"experiment: t\nmax_evals: 3 # caf\xe9\n")
    with pytest.raises(ConfigError, match=r"not UTF-8 text: byte 0xe9 at line 2"):
        load_config(p)
    r = run_cli([str(p)], cwd=tmp_path)
    assert r.returncode == 2 and "Traceback" not in r.stderr


@pytest.mark.parametrize("dim,key", [({"type": "real", "low": 0.0, "high": float("inf")}, "high"),
                                     ({"type": "real", "low": float("nan"), "high": 1.0}, "low"),
                                     ({"type": "int", "low": 1, "high": float("inf")}, "high"),
                                     ({"type": "int", "low": float("-inf"), "high": 3}, "low")])
def test_non_finite_bounds_are_config_errors(tmp_path, dim, key):
    with pytest.raises(ConfigError, match="finite") as e:
        parse_config(_cfg(tmp_path, space={"x": dim}), "c.yaml")
    assert e.value.key == f"space.x.{key}"


def test_a_negative_seed_names_the_seed(tmp_path):
    r = run_cli([str(write_config(tmp_path, _cfg(tmp_path))), "--set", "seed=-1"], cwd=tmp_path)
    assert r.returncode == 2 and "seed" in r.stderr and "-1" in r.stderr and "Traceback" not in r.stderr


def test_duplicate_yaml_keys_are_an_error_naming_both_lines(tmp_path):
    p = tmp_path / "c.yaml"
    p.write_text(yaml.safe_dump(_cfg(tmp_path), sort_keys=False) + "max_evals: 99\n")
    with pytest.raises(ConfigError, match=r"'max_evals' is given twice, at line \d+ and line \d+"):
        load_config(p)
    p.write_text("experiment: t\nobjective: emews.examples:quickstart\nmax_evals: 3\nspace:\n"
                 "  x: {type: real, low: 0, high: 1, low: 0.5}\n")
    with pytest.raises(ConfigError, match=r"'low' is given twice, at line 5 and line 5"):
        load_config(p)


def test_an_unsorted_ordinal_is_an_error(tmp_path):
    bad = {"b": {"type": "ordinal", "values": [512, 16, 128, 32]}}
    with pytest.raises(ConfigError, match=r"in order.*\[16, 32, 128, 512\]") as e:
        parse_config(_cfg(tmp_path, space=bad), "c.yaml")
    assert e.value.key == "space.b.values"
    for ok in ([16, 32, 64], [1e-6, 1e-8, 1e-10], ["small", "large", "medium"]):  # ascending, descending, words
        parse_config(_cfg(tmp_path, space={"b": {"type": "ordinal", "values": ok}}), "c.yaml")


def test_workers_ask_for_the_parent_death_signal_before_their_imports(tmp_path):
    """A local worker asks for PR_SET_PDEATHSIG before it imports the rest of emews (or numpy,
    which a worker imports only when its objective needs it): a driver SIGKILLed while the
    pool starts leaves no worker running on."""
    if not sys.platform.startswith("linux"):
        pytest.skip("PR_SET_PDEATHSIG is Linux-only")
    (tmp_path / "probe.py").write_text(textwrap.dedent("""
        import ctypes, json, multiprocessing as mp, os, sys

        def pdeathsig():
            sig = ctypes.c_int(-1)
            ctypes.CDLL(None, use_errno=True).prctl(2, ctypes.byref(sig), 0, 0, 0)  # PR_GET_PDEATHSIG
            return sig.value

        class Probe:  # records the signal when the child first imports emews' workers (or numpy)
            def find_spec(self, name, path=None, target=None):
                if name in ("numpy", "emews.workers") and not os.path.exists(os.environ["PROBE_OUT"]):
                    with open(os.environ["PROBE_OUT"], "w") as f:
                        json.dump({"pdeathsig_at_first_import": pdeathsig()}, f)
                return None

        if getattr(mp.current_process(), "_inheriting", False):  # a spawned child re-importing this file
            sys.meta_path.insert(0, Probe())

        if __name__ == "__main__":
            from emews.workers import LocalPool
            pool = LocalPool(1, {"type": "python", "objective": "emews.examples:noop"})
            while not pool.idle:
                pool.wait(5.0)
            pool.shutdown()
    """))
    out = tmp_path / "probe.json"
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]),
               PROBE_OUT=str(out))
    r = subprocess.run([sys.executable, "probe.py"], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    assert json.loads(out.read_text()) == {"pdeathsig_at_first_import": 15}


# -- item 5: a resume with nothing to do ----------------------------------------------------------
def test_a_noop_resume_keeps_the_outcome_adds_no_session_and_redraws_nothing(tmp_path):
    p = write_config(tmp_path, base_config(tmp_path, max_evals=6))
    assert run_cli([str(p)], cwd=tmp_path).returncode == 0
    out = tmp_path / "runs" / "t"
    files = ["report.json", "report.txt", "results.csv", "best.json"]  # the journal: its meta, below
    files += [f for f in ("trajectory.png", "load.png", "params.png") if (out / f).exists()]
    before = {f: (out / f).stat().st_mtime_ns for f in files}
    meta = read_journal(out)["meta"]
    r = run_cli([str(p)], cwd=tmp_path)
    assert r.returncode == 0 and "already complete (6 of 6 evaluations)" in r.stderr, r.stderr
    assert "best loss" in r.stdout
    assert {f: (out / f).stat().st_mtime_ns for f in files} == before  # nothing rewritten or redrawn
    after = read_journal(out)["meta"]
    assert after["outcome"] == meta["outcome"] == "max_evals reached"
    assert len(after["sessions"]) == len(meta["sessions"]) == 1 and after["runtime"] == meta["runtime"]
    r = run_cli([str(p), "--set", "max_evals=8"], cwd=tmp_path)  # raising the budget still continues it
    assert r.returncode == 0 and len(read_journal(out)["meta"]["sessions"]) == 2


# -- item 7: a live run is not "killed?" --------------------------------------------------------------
def test_the_report_tells_a_live_run_from_a_killed_one(tmp_path):
    import emews
    from emews.experiment import _lock
    from emews.journal import Journal
    from emews.report import UNFINISHED, report_data

    res = emews.search(lambda p: p["x"], {"x": {"type": "real", "low": 0, "high": 1}}, max_evals=4, workers=1,
                       output=str(tmp_path), report=False)
    d = res.directory
    meta = read_journal(d)["meta"]
    j = Journal(d / "journal.sqlite")  # as the journal of a session still going (or killed) reads
    j.set_meta(finished=None, outcome="running", sessions=[{**meta["sessions"][-1], "finished": None, "outcome": None}])
    j.close()
    assert report_data(d)["outcome"] == UNFINISHED  # nobody holds the lock: the run was killed
    fd = _lock(d, "output")  # a live run holds it
    try:
        data = report_data(d)
        assert data["outcome"] == f"running (pid {os.getpid()} on {__import__('socket').gethostname()})"
        assert data["finished"] is False
    finally:
        os.close(fd)
    assert report_data(d)["outcome"] == UNFINISHED


# -- item 6: plot details ---------------------------------------------------------------------------
def test_plot_details_legend_categories_and_long_labels(tmp_path):
    pytest.importorskip("matplotlib")
    import emews
    from emews.report import plot_params, plot_trajectory

    def f(p):
        if p["x"] > 0.8:
            raise ValueError("too big")
        return p["x"]

    space = {"x": {"type": "real", "low": 0, "high": 1},
             "opt": {"type": "categorical", "values": ["adam", "sgd", "rmsprop"]},
             "conv": {"type": "categorical", "values": [[[32, 20, 1], [64, 10, 1]], [[128, 20, 1], [128, 10, 1]]]}}
    res = emews.search(f, space, max_evals=16, workers=1, seed=2, output=str(tmp_path), report=False)
    assert res.count("failed") > 0
    fig = plot_trajectory(res)
    legend = fig.axes[0].get_legend()
    fig.canvas.draw()
    box = legend.get_window_extent().transformed(fig.axes[0].transAxes.inverted())
    assert box.y1 <= 0.92  # below the failure crosses drawn at 0.96 of the axes' height
    fig = plot_params(res, top=5)
    par = fig.axes[-2]  # the parallel coordinates (the colour bar is last)
    texts = {t.get_text() for t in par.texts}
    assert {"adam", "sgd", "rmsprop"} <= texts  # the middle category is labelled too
    labels = [t.get_text() for a in fig.axes for t in a.get_xticklabels()] + list(texts)
    assert labels and max(len(t) for t in labels) <= 12


def test_the_load_plot_shows_cancelled_work():
    """A task cancelled while running (the deadline's kill margin) occupied its worker until
    the stop; one closed by a resume after its session died, or never started, did not."""
    pytest.importorskip("matplotlib")
    from emews.report import intervals, load_over_time, plot_load, utilization

    def row(tid, start, end, status, worker):
        return {"task_id": tid, "attempt": 0, "status": status, "loss": 1.0 if status == "done" else None,
                "params": {"x": tid}, "metrics": {}, "worker": worker, "start": start, "end": end}

    rows = [row(0, 0.0, 10.0, "done", 0), row(1, 2.0, None, "cancelled", 1),  # cancelled at the stop
            row(2, None, None, "cancelled", None), row(3, 1.0, 500.0, "cancelled", 2)]  # never ran; closed by a resume
    iv = intervals(rows, now=10.0)
    assert [(i.task_id, i.status, i.end) for i in iv] == [(0, "done", 10.0), (1, "cancelled", 10.0)]
    assert max(n for _, n in load_over_time(rows, now=10.0)) == 2
    assert utilization(rows, 2, now=10.0)["busy"] == pytest.approx(18.0)
    fig = plot_load({"meta": {"workers": 2}, "evals": rows})
    legend = [t.get_text() for a in fig.axes if a.get_legend() for t in a.get_legend().get_texts()]
    assert "cancelled" in legend
