"""The notebook API: emews.search from a script's __main__, closures, Results."""

import os
import signal
import subprocess
import sys
import textwrap

import pytest

import emews
from emews.journal import read_journal
from helpers import ROOT, base_config, run_cli_then_signal, write_config

SCRIPT = textwrap.dedent('''
    import json, math, os, sys, time
    import emews

    def objective(params):                 # defined in __main__
        return (params["x"] - 1.0) ** 2 + (params["y"] + 2.0) ** 2

    def make_closure(shift, meeting):
        def f(params):                     # a closure over `shift`
            # no task ends before both workers have checked in: both take tasks, however slow
            # one of them is to start (a loaded machine); a lone worker gives up after 120 s
            os.makedirs(meeting, exist_ok=True)
            open(os.path.join(meeting, str(os.getpid())), "w").close()
            end = time.monotonic() + 120
            while len(os.listdir(meeting)) < 2 and time.monotonic() < end:
                time.sleep(0.02)
            return {"loss": abs(params["x"] - shift), "pid": os.getpid()}
        return f

    space = {"x": {"type": "real", "low": -5, "high": 5}, "y": {"type": "real", "low": -5, "high": 5}}
    if __name__ == "__main__":
        out = sys.argv[1]
        a = emews.search(objective, space, max_evals=30, workers=2, seed=1, output=out, experiment="plain")
        meeting = os.path.join(out, "meeting")
        b = emews.search(make_closure(2.5, meeting), space, optimizer="random", max_evals=20, workers=2, seed=1, output=out,
                         experiment="closure")
        c = emews.search(lambda p: p["x"] ** 2, space, max_evals=6, workers=2, seed=1, output=out, experiment="lambda")
        print(json.dumps({"a": [len(a), a.count("done"), a.best["loss"]],
                          "b": [len(b), b.count("done"), b.best["loss"], sorted({r["metrics"]["pid"] for r in b.rows})],
                          "c": [len(c), c.count("done")], "pid": os.getpid()}))
''')


def test_search_from_a_scripts_main_with_local_objectives(tmp_path):
    script = tmp_path / "myscript.py"
    script.write_text(SCRIPT)
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    r = subprocess.run([sys.executable, str(script), str(tmp_path / "out")], cwd=tmp_path, env=env,
                       capture_output=True, text=True, timeout=180)
    assert r.returncode == 0, r.stderr
    import json

    res = json.loads(r.stdout.strip().splitlines()[-1])
    assert res["a"][:2] == [30, 30] and res["a"][2] < 5
    assert res["b"][:2] == [20, 20] and res["b"][2] < 1.5
    pids = res["b"][3]
    assert len(pids) == 2 and res["pid"] not in pids, "two worker processes ran the closure"
    assert res["c"] == [6, 6]


def test_search_results_api(tmp_path):
    space = emews.Space([emews.Real("x", -2, 2), emews.Categorical("c", ["a", "b"])])
    res = emews.search("emews.examples:sphere", space, max_evals=10, workers=1, seed=0, output=tmp_path)
    assert len(res) == 10 and res.count("done") == 10
    best = res.best
    assert best["loss"] == min(r["loss"] for r in res.rows) and set(best["params"]) == {"x", "c"}
    df = res.to_dataframe()
    assert list(df.columns[:6]) == ["task_id", "attempt", "status", "loss", "x", "c"] and len(df) == 10
    p = res.to_csv(tmp_path / "copy.csv")
    assert p.read_text() == (res.directory / "results.csv").read_text()
    again = emews.Results.load(res.directory)
    assert again.best == best and len(again) == 10
    assert "10 evaluations" in repr(res)


def test_search_seeded_runs_repeat(tmp_path):
    space = {"x": {"type": "real", "low": -2, "high": 2}}
    a = emews.search("emews.examples:sphere", space, max_evals=8, workers=2, seed=5, output=tmp_path)
    b = emews.search("emews.examples:sphere", space, max_evals=8, workers=2, seed=5, output=tmp_path)
    assert sorted(r["params"]["x"] for r in a.rows) == sorted(r["params"]["x"] for r in b.rows)


def test_search_bad_arguments(tmp_path):
    with pytest.raises(emews.ConfigError, match=r"search\(\): max_evals: must be >= 1, got 0"):
        emews.search("emews.examples:sphere", {"x": {"type": "real", "low": 0, "high": 1}}, max_evals=0, output=tmp_path)
    with pytest.raises(emews.SpaceError, match=r"search\(\): space.x: low must not exceed high"):
        emews.search("emews.examples:sphere", {"x": {"type": "real", "low": 1, "high": 0}}, output=tmp_path)
    with pytest.raises(emews.ConfigError, match=r"search\(\): workers: must be >= 1, got 0"):
        emews.search("emews.examples:sphere", {"x": {"type": "real", "low": 0, "high": 1}}, workers=0, output=tmp_path)


def test_ctrl_c_keeps_what_was_computed(tmp_path):
    (tmp_path / "slowmod.py").write_text("import time\ndef run(p):\n    time.sleep(0.3)\n    return p['x']\n")
    cfg = base_config(tmp_path, objective="slowmod:run", space={"x": {"type": "real", "low": 0, "high": 1}}, max_evals=1000)
    p = write_config(tmp_path, cfg)
    code, err = run_cli_then_signal([str(p), "--out", str(tmp_path / "e")], tmp_path, signal.SIGINT, tmp_path / "e")
    assert code == 130, err
    ev = read_journal(tmp_path / "e")["evals"]
    done = [e for e in ev if e["status"] == "done"]
    assert done, "finished evaluations are in the journal"
    odd = [(e["task_id"], e["status"], e.get("error")) for e in ev if e["status"] not in ("done", "cancelled")]
    assert not odd, (odd, err)
    assert (tmp_path / "e" / "results.csv").is_file() and (tmp_path / "e" / "best.json").is_file()


@pytest.mark.parametrize("where", ["queued", "running"])
def test_an_interrupt_between_two_steps_leaves_no_task_open(tmp_path, monkeypatch, where):
    """A Ctrl-C can land right after the driver journals a task as queued (before the task is
    waiting) or as running: the shutdown still ends every attempt, as cancelled."""
    from emews.journal import Journal

    original = getattr(Journal, where)
    calls = []

    def interrupted(self, *args, **kwargs):
        original(self, *args, **kwargs)
        calls.append(args[0])
        if len(calls) == 5:
            raise KeyboardInterrupt

    monkeypatch.setattr(Journal, where, interrupted)
    with pytest.raises(KeyboardInterrupt):
        emews.search("emews.examples:sphere", {"x": {"type": "real", "low": -1, "high": 1}}, max_evals=50,
                     workers=2, seed=0, output=tmp_path, experiment="ki", report=False)
    ev = read_journal(tmp_path / "ki")["evals"]
    assert len(calls) == 5 and ev
    odd = [(e["task_id"], e["status"]) for e in ev if e["status"] not in ("done", "cancelled")]
    assert not odd, odd
    assert any(e["status"] == "cancelled" for e in ev if e["task_id"] == calls[-1])


@pytest.mark.parametrize("objective", ["emews.examples:sphere", "emews.examples:no_such_function"])
def test_the_plot_preload_thread_is_done_when_a_search_returns(tmp_path, monkeypatch, objective):
    """matplotlib is imported in a thread while the search runs; it never outlives the search
    (a daemon thread still importing at interpreter exit broke logging's atexit shutdown).
    The preload is made slower than the search here (3 s of sleep stand for a slow import)."""
    import threading
    import time

    import emews.report

    done = []
    monkeypatch.setattr(emews.report, "preload_plots", lambda: (time.sleep(3), done.append(1)))
    space = {"x": {"type": "real", "low": -1, "high": 1}}
    try:
        emews.search(objective, space, max_evals=2, workers=1, seed=0, output=tmp_path, experiment="pre")
    except emews.EmewsError:
        assert objective.endswith("no_such_function")
    assert done and not [t for t in threading.enumerate() if t.name == "emews-plots-preload"]
