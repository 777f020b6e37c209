import json
import math
import os
import signal
import sqlite3

import pytest
from helpers import (
    Gate,
    base_config,
    finished_rows,
    kill_env,
    start_cli,
    wait_until,
    write_config,
)

from emews.journal import JournalError
from emews.report import (
    UNFINISHED,
    best_over_time,
    intervals,
    iterations,
    load_over_time,
    report_data,
    sessions,
    summary,
    summary_text,
    top_trials,
    trajectory,
    utilization,
    worker_timeline,
    write_report,
)
from emews.report.__main__ import main

PNGS = ["trajectory.png", "load.png", "params.png"]
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def rows(*spans, status="done"):
    return [{"task_id": i, "attempt": 0, "status": status, "loss": float(10 - i), "params": {"x": i},
             "start": s, "end": e} for i, (s, e) in enumerate(spans)]


def row(task_id, start, end, loss=None, status="done", batch=None, queued=0.0, worker=0, attempt=0, **params):
    return {"task_id": task_id, "attempt": attempt, "status": status, "loss": loss, "params": params or {"x": task_id},
            "metrics": {}, "worker": worker, "queued": queued, "start": start, "end": end, "batch": batch}


# -- the numbers, on hand-made rows ---------------------------------------------------------------

def test_utilization_and_load():
    r = rows((0.0, 1.0), (0.0, 2.0), (1.0, 2.0))
    u = utilization(r, workers=2)
    assert u == {"busy": 4.0, "span": 2.0, "utilization": 1.0}
    assert utilization(rows((0.0, 1.0), (1.0, 2.0)), workers=2)["utilization"] == 0.5
    # one step per distinct time: what runs from then on
    assert load_over_time(r) == [(0.0, 2), (1.0, 2), (2.0, 0)]
    assert best_over_time(r) == [(1.0, 10.0), (2.0, 9.0), (2.0, 8.0)]
    assert utilization([], workers=2) == {"busy": 0.0, "span": 0.0, "utilization": 0.0}


def test_a_task_without_an_end_runs_until_the_last_timestamp():
    r = [row(0, 10.0, 12.0, 1.0, worker=0), row(1, 10.0, None, status="running", worker=1),
         row(2, 12.0, 16.0, 2.0, worker=0), row(3, None, None, status="queued", queued=11.0)]
    iv = intervals(r, now=16.0)
    assert [(i.task_id, i.start, i.end, i.status) for i in iv] == [
        (0, 10.0, 12.0, "done"), (1, 10.0, 16.0, "running"), (2, 12.0, 16.0, "done")]
    assert [i.task_id for i in intervals(r)] == [0, 2]  # without now: left out
    u = utilization(r, workers=2, now=16.0)
    assert u == {"busy": 12.0, "span": 6.0, "utilization": 1.0}
    assert load_over_time(r, now=16.0) == [(0.0, 2), (2.0, 2), (6.0, 0)]
    tl = worker_timeline(r, now=16.0)
    assert list(tl) == [0, 1] and [i.task_id for i in tl[0]] == [0, 2] and tl[1][0].status == "running"
    # the running and queued tasks are not evaluations yet
    assert [e["task_id"] for e in trajectory(r)] == [0, 2]


def test_trajectory_is_in_completion_order_with_the_best_so_far():
    r = [row(0, 0.0, 5.0, 3.0), row(1, 0.0, 2.0, 4.0), row(2, 2.0, 3.0, None, status="failed"),
         row(3, 3.0, 4.0, 1.0), row(4, 5.0, 6.0, math.nan)]
    t = trajectory(r)
    assert [(e["index"], e["task_id"], e["time"], e["loss"], e["best"]) for e in t] == [
        (1, 1, 2.0, 4.0, 4.0), (2, 2, 3.0, None, 4.0), (3, 3, 4.0, 1.0, 1.0), (4, 0, 5.0, 3.0, 1.0),
        (5, 4, 6.0, None, 1.0)]
    assert [x["task_id"] for x in top_trials(r, 2)] == [3, 0]  # failed and NaN never rank


def test_iterations_are_the_optimizer_batches():
    r = [row(0, 0, 1, 3.0, batch=1), row(1, 0, 2, 1.0, batch=1), row(2, 0, 3, 2.0, batch=1),
         row(3, 3, 4, 6.0, batch=2), row(4, 3, 5, None, status="failed", batch=2), row(5, 3, 6, 4.0, batch=2),
         row(6, None, None, status="queued", batch=3)]
    it = iterations(r, workers=3)
    assert it["rule"] == "batch" and it["size"] is None
    assert [(i["tasks"], i["count"], i["done"], i["failures"], i["min"], i["mean"], i["index"]) for i in it["items"]] == [
        ([0, 1, 2], 3, 3, 0, 1.0, 2.0, 3), ([3, 4, 5], 3, 2, 1, 4.0, 5.0, 6)]


def test_iterations_fall_back_to_queued_times_without_batch_numbers():
    r = [row(i, i, i + 1, float(i), queued=100.0 if i < 2 else 200.0) for i in range(4)]
    it = iterations(r, workers=2)
    assert it["rule"] == "batch" and [i["tasks"] for i in it["items"]] == [[0, 1], [2, 3]]
    assert [i["mean"] for i in it["items"]] == [0.5, 2.5]


def test_iterations_are_windows_of_completions_when_batches_are_single_tasks():
    # async ask(1): every batch one task; completion order 1, 0, 3, 2, 4
    ends = {0: 2.0, 1: 1.0, 2: 4.0, 3: 3.0, 4: 5.0}
    r = [row(t, 0.0, e, float(t), batch=t + 1) for t, e in ends.items()]
    it = iterations(r, workers=2)
    assert it["rule"] == "window" and it["size"] == 2
    assert [(i["tasks"], i["min"], i["mean"]) for i in it["items"]] == [([1, 0], 0.0, 0.5), ([3, 2], 2.0, 2.5),
                                                                       ([4], 4.0, 4.0)]
    # one batch holding the whole budget (random search): windows too
    one = [row(t, 0.0, e, float(t), batch=1) for t, e in ends.items()]
    assert iterations(one, workers=4)["rule"] == "window"
    assert [i["tasks"] for i in iterations(one, workers=4)["items"]] == [[1, 0, 3, 2], [4]]


def test_sessions_of_a_resumed_run():
    meta = {"started": 1000.0, "finished": 1030.0, "outcome": "max_evals reached",
            "sessions": [{"started": 0.0, "finished": 10.0, "outcome": "interrupted"},
                         {"started": 1000.0, "finished": 1030.0, "outcome": "max_evals reached"}]}
    r = [row(0, 1.0, 9.0, 2.0), row(1, 1000.0, 1010.0, 1.0)]
    assert [s["outcome"] for s in sessions(meta, r)] == ["interrupted", "max_evals reached"]
    starts = [0.0, 1000.0]
    # the time between the sessions is not idle time
    assert utilization(r, 1, session_starts=starts) == {"busy": 18.0, "span": 18.0, "utilization": 1.0}
    d = report_data({"meta": meta, "evals": r})
    assert d["sessions"] == 2 and d["outcome"] == "max_evals reached" and d["runtime"] == 40.0
    # killed during the second session: unfinished, even though the first one finished
    meta["sessions"][1] = {"started": 1000.0}
    assert report_data({"meta": meta, "evals": r})["outcome"] == UNFINISHED
    # no sessions list, but a start after the last finish: the latest session never finished
    assert report_data({"meta": {"started": 1000.0, "finished": 10.0, "outcome": "x"}, "evals": r})["outcome"] == UNFINISHED


def test_report_data_counts_and_is_valid_json():
    meta = {"experiment": "hand", "pool": "local", "workers": 2, "max_evals": 6}  # killed: no finished/outcome
    r = [row(0, 0.0, 1.0, 2.0), row(1, 0.0, 1.5, None, status="failed"), row(1, 1.5, 2.0, math.inf, attempt=1),
         row(2, 1.0, 3.0, None, status="timeout"), row(3, 2.0, None, status="running"),
         row(4, None, None, status="queued"), row(5, None, None, status="cancelled")]
    r[0]["metrics"] = {"acc": math.nan, "n": 3}
    d = report_data({"meta": meta, "evals": r})
    text = json.dumps(d, allow_nan=False)  # raises on NaN / inf
    assert json.loads(text)["best"]["metrics"] == {"acc": None, "n": 3}
    assert d["evaluations"] == 6 and d["attempts"] == 7 and d["failures"] == 1 and d["unfinished"] == 2
    assert d["status"] == {"cancelled": 1, "done": 2, "queued": 1, "running": 1, "timeout": 1}
    assert d["best"]["task_id"] == 0 and d["best"]["loss"] == 2.0
    assert d["outcome"] == UNFINISHED and d["finished"] is False
    # busy: 1 + 1.5 + 0.5 + 2 + (3 - 2: running until the last timestamp) = 6 over 3 s x 2 workers
    assert d["utilization"] == {"busy": 6.0, "span": 3.0, "utilization": 1.0}
    assert d["first"] == 0.0 and d["last"] == 3.0 and d["runtime"] == 3.0
    text = summary_text(d)
    assert "outcome: unfinished (killed?)" in text and "2 tasks never finished" in text


# -- a real run --------------------------------------------------------------------------------------

def _search(tmp_path, name="rep", n=8, report=False):
    import emews

    return emews.search("emews.examples:sphere", {"x0": {"type": "real", "low": -1, "high": 1},
                                                  "x1": {"type": "real", "low": -1, "high": 1}},
                        max_evals=n, workers=2, seed=0, output=tmp_path, experiment=name, report=report)


def test_every_run_ends_with_its_report(tmp_path):
    res = _search(tmp_path, n=6, report=True)
    d = json.loads((res.directory / "report.json").read_text())
    assert d["evaluations"] == 6 and d["outcome"] == "max_evals reached"
    assert sorted(d["plots"]) == ["load.png", "params.png", "trajectory.png"]
    for name in d["plots"]:
        assert (res.directory / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def _check_png(path):
    import matplotlib.image

    body = path.read_bytes()
    assert body[:8] == PNG_MAGIC and len(body) > 1000, path
    h, w = matplotlib.image.imread(path).shape[:2]
    assert 300 < w <= 1200 and 200 < h <= 1200, (path, w, h)


def test_summary_of_a_real_run(tmp_path, capsys):
    res = _search(tmp_path, n=6)
    text = summary(res.directory)
    assert "experiment rep (local pool, 2 workers): 6 tasks" in text and "best loss" in text
    assert main([str(res.directory), "--no-plots"]) == 0 and "worker utilization" in capsys.readouterr().out
    assert main([str(tmp_path / "nothing")]) == 2


def test_report_of_a_finished_run(tmp_path, capsys):
    pytest.importorskip("matplotlib")
    res = _search(tmp_path)
    assert main([str(res.directory)]) == 0
    out = capsys.readouterr().out
    assert "outcome: max_evals reached" in out and f"wrote {res.directory / 'report.json'}" in out
    d = json.loads((res.directory / "report.json").read_text())
    assert d["evaluations"] == 8 and d["status"] == {"done": 8} and d["failures"] == 0 and d["finished"] is True
    assert d["best"]["loss"] == res.best["loss"] and d["best"]["task_id"] == res.best["task_id"]
    assert d["plots"] == PNGS and d["workers"] == 2 and 0 < d["utilization"]["utilization"] <= 1.0
    assert (res.directory / "report.txt").read_text().startswith("experiment rep (local pool, 2 workers): 8 tasks")
    for name in PNGS:
        _check_png(res.directory / name)


def test_cli_out_and_json(tmp_path, capsys):
    res = _search(tmp_path)
    assert main([str(res.directory), "--out", str(tmp_path / "figs"), "--no-plots", "--json"]) == 0
    captured = capsys.readouterr()
    d = json.loads(captured.out)  # stdout is the JSON alone
    assert d["plots"] == [] and d["evaluations"] == 8 and "wrote" in captured.err
    assert sorted(p.name for p in (tmp_path / "figs").iterdir()) == ["report.json", "report.txt"]
    assert not (res.directory / "report.json").exists()
    assert main([str(res.directory), "--plot", "x.png"]) == 2 and "--out" in capsys.readouterr().err


def _kill_journal(directory):
    """Make a finished journal look like a SIGKILLed run: no end, two tasks still running."""
    db = sqlite3.connect(directory / "journal.sqlite")
    with db:
        db.execute("DELETE FROM meta WHERE key IN ('finished', 'outcome', 'runtime', 'sessions')")
        db.execute("UPDATE evals SET status='running', \"end\"=NULL, loss=NULL WHERE task_id IN "
                   "(SELECT task_id FROM evals ORDER BY \"end\" DESC LIMIT 2)")
        db.execute("UPDATE evals SET status='queued', start=NULL, \"end\"=NULL, worker=NULL, loss=NULL "
                   "WHERE task_id = (SELECT MAX(task_id) FROM evals)")
    db.close()


def test_report_of_a_killed_journal(tmp_path, capsys):
    pytest.importorskip("matplotlib")
    res = _search(tmp_path)
    _kill_journal(res.directory)
    assert main([str(res.directory)]) == 0
    assert "outcome: unfinished (killed?)" in capsys.readouterr().out
    d = json.loads((res.directory / "report.json").read_text())
    assert d["finished"] is False and d["outcome"] == UNFINISHED and d["plots"] == PNGS
    assert d["status"]["running"] + d["status"].get("queued", 0) == d["unfinished"] >= 2
    assert d["status"]["done"] == 8 - d["unfinished"]
    for name in PNGS:
        _check_png(res.directory / name)


@pytest.mark.slow
def test_report_of_a_run_killed_with_sigkill(tmp_path):
    pytest.importorskip("matplotlib")
    cfg = base_config(tmp_path, max_evals=40, objective="killable:slow")
    out = tmp_path / "killed"
    gate = Gate(tmp_path / "gate")  # 5 tasks pass, then the run is held: the kill lands mid-run
    gate.allow(5)
    proc = start_cli([str(write_config(tmp_path, cfg)), "--out", str(out), "-q"], tmp_path, kill_env(tmp_path) | gate.env)
    try:
        wait_until(lambda: sum(r["status"] == "done" for r in finished_rows(out).values()) >= 3,
                   message="3 results journaled", proc=proc)
    finally:
        os.killpg(proc.pid, signal.SIGKILL)  # the driver, its optimizer and workers: one session
        proc.wait(timeout=60)
        proc.communicate()
    assert proc.returncode == -signal.SIGKILL
    d = write_report(out)
    assert d["outcome"] == UNFINISHED and d["finished"] is False
    assert 3 <= d["status"]["done"] < 40 and d["plots"] == PNGS
    assert json.loads((out / "report.json").read_text())["outcome"] == UNFINISHED
    for name in PNGS:
        _check_png(out / name)


# -- bad input -----------------------------------------------------------------------------------------

def _not_experiments(tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    junk = tmp_path / "junk"
    junk.mkdir()
    (junk / "journal.sqlite").write_bytes(os.urandom(3000))
    other = tmp_path / "other"
    other.mkdir()
    db = sqlite3.connect(other / "journal.sqlite")
    db.execute("CREATE TABLE songs (title TEXT)")
    db.commit()
    db.close()
    return {"missing": (tmp_path / "nothing", "does not exist"),
            "empty": (empty, "not an emews experiment directory"),
            "junk": (junk / "journal.sqlite", "not an emews journal"),
            "other": (other / "journal.sqlite", "without the evals and meta table")}


@pytest.mark.parametrize("case", ["missing", "empty", "junk", "other"])
def test_not_an_experiment_is_a_clear_error(tmp_path, capsys, case):
    path, why = _not_experiments(tmp_path)[case]
    directory = path if path.suffix != ".sqlite" else path.parent
    assert main([str(directory)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("emews.report: error: ") and str(path) in err and why in err, err
    assert len(err.splitlines()) == 1
    with pytest.raises(JournalError, match=why):
        write_report(directory)
    assert not (directory / "report.json").exists()


# -- plots that cannot be drawn ----------------------------------------------------------------------

def test_a_failing_plot_is_a_warning(tmp_path, monkeypatch, caplog):
    pytest.importorskip("matplotlib")
    from emews import report

    res = _search(tmp_path)

    def broken(*a, **k):
        raise RuntimeError("no ink")

    monkeypatch.setitem(report.PLOTS, "load.png", broken)
    d = write_report(res.directory)
    assert d["plots"] == ["trajectory.png", "params.png"] and "no ink" in d["warnings"][0]
    assert "could not draw" in caplog.text and "no ink" in caplog.text
    assert json.loads((res.directory / "report.json").read_text())["plots"] == d["plots"]


def test_without_matplotlib(tmp_path, monkeypatch, capsys):
    import emews.report.__main__ as cli
    from emews import report

    def missing():
        raise ImportError('emews plots need matplotlib, which is not installed: pip install "emews[plots]"')

    monkeypatch.setattr(report._write, "require_matplotlib", missing)  # where write_report looks it up
    monkeypatch.setattr(cli, "require_matplotlib", missing)
    res = _search(tmp_path)
    assert main([str(res.directory), "--plots"]) == 2
    assert 'pip install "emews[plots]"' in capsys.readouterr().err
    assert main([str(res.directory)]) == 0  # default: the report without plots, and a note
    assert "note: no plots" in capsys.readouterr().err
    assert not any((res.directory / n).exists() for n in PNGS)
    d = write_report(res.directory)  # plots asked in Python: a warning, never an exception
    assert d["plots"] == [] and "matplotlib" in d["warnings"][0]


# -- notebook: methods of Results ----------------------------------------------------------------------

def test_results_methods(tmp_path):
    pytest.importorskip("matplotlib")
    from matplotlib.figure import Figure

    from emews.results import Results

    res = _search(tmp_path)
    assert res.meta["workers"] == 2  # read from the journal: the driver did not pass it
    fig = res.plot_trajectory()
    assert isinstance(fig, Figure) and len(fig.axes) == 2
    assert len(res.plot_load().axes) == 2
    assert len(res.plot_params(top=3).axes) == 2 + 1 + 1  # x0, x1, parallel coordinates, colour bar
    other = Figure()
    ax = other.add_subplot()
    assert res.plot_trajectory(ax=ax, x="time") is ax and res.plot_load(ax=ax) is ax  # no figure to show twice
    assert ax.figure is other and len(other.axes) == 1
    with pytest.raises(ValueError, match="evaluation"):
        res.plot_trajectory(ax=ax, x="loss")
    d = res.report(plots=False)
    assert d["evaluations"] == 8 and (res.directory / "report.json").is_file()
    loaded = Results.load(res.directory)
    assert loaded.report_data()["best"] == d["best"]
    memory = Results(res.all_attempts, res.param_names)  # no directory, no meta
    seen = {r["worker"] for r in res.all_attempts}  # without the meta: the workers seen
    assert memory.meta == {} and memory.report_data()["workers"] == len(seen)
    with pytest.raises(ValueError, match="out"):
        memory.report()
    assert memory.report(plots=False, out=tmp_path / "mem")["evaluations"] == 8


def test_params_plot_of_many_kinds_of_parameter(tmp_path):
    pytest.importorskip("matplotlib")
    from emews.report import plot_params

    space = {"lr": {"type": "real", "low": 1e-5, "high": 0.1, "log": True},
             "units": {"type": "int", "low": 8, "high": 512, "log": True},
             "layers": {"type": "int", "low": 1, "high": 4},
             "batch": {"type": "ordinal", "values": [16, 32, 64]},
             "opt": {"type": "categorical", "values": ["adam", "sgd", "rmsprop"]},
             "res": {"type": "bool"}, "data": {"type": "constant", "value": "small"}}
    space.update({f"x{k}": {"type": "real", "low": -1, "high": 1} for k in range(13)})
    import random

    g = random.Random(0)
    evals = []
    for t in range(60):
        p = {"lr": 10 ** g.uniform(-5, -1), "units": g.choice([8, 64, 512]), "layers": g.randint(1, 4),
             "batch": g.choice([16, 32, 64]), "opt": g.choice(["adam", "sgd", "rmsprop"]), "res": g.random() < 0.5,
             "data": "small", **{f"x{k}": g.uniform(-1, 1) for k in range(13)}}
        bad = t % 9 == 0
        evals.append({"task_id": t, "attempt": 0, "params": p, "status": "failed" if bad else "done",
                      "loss": None if bad else g.random(), "metrics": {}, "worker": t % 4, "queued": 0.0,
                      "start": t * 0.5, "end": t * 0.5 + 1.9, "batch": 1 + t // 8})
    j = {"meta": {"experiment": "many", "space": space, "workers": 4}, "evals": evals}
    fig = plot_params(j, tmp_path / "p.png", top=5)
    names = [a.get_title() for a in fig.axes]
    assert len(names) == 19 + 2 and "data" not in names and "res" in names  # 19 panels, parallel axes, colour bar
    lr = fig.axes[names.index("lr")]
    assert lr.get_xscale() == "log"
    opt = fig.axes[names.index("opt")]
    assert [t.get_text() for t in opt.get_xticklabels()] == ["adam", "sgd", "rmsprop"]
    _check_png(tmp_path / "p.png")
    d = write_report(j, tmp_path / "many")
    assert d["plots"] == PNGS and d["iterations"] == {"rule": "batch", "size": None, "count": 8}
    assert d["failures"] == 7 and d["experiment"] == "many"


def test_plots_of_a_run_without_any_success(tmp_path):
    pytest.importorskip("matplotlib")
    from emews.report import plot_load, plot_trajectory

    j = {"meta": {"experiment": "bad", "workers": 2},
         "evals": [row(t, float(t), t + 1.0, None, status="failed", worker=t % 2) for t in range(6)]}
    fig = plot_trajectory(j)
    lo, hi = fig.axes[0].get_xlim()
    assert lo <= 1 and hi >= 6  # the failures (crosses at the top) are in view
    assert len(plot_load({"meta": {}, "evals": []}).axes) == 2
    d = write_report(j, tmp_path)
    assert d["best"] is None and d["failures"] == 6 and d["plots"] == PNGS
    assert "best: no successful evaluation" in (tmp_path / "report.txt").read_text()


def test_metric_names_never_shadow_fixed_columns(tmp_path):
    import csv

    from emews.results import write_results_csv

    row = {"task_id": 0, "attempt": 0, "status": "done", "loss": 1.0, "params": {"a": 1},
           "metrics": {"runtime": 3, "device": "cpu", "a": 2}, "start": 1.0, "end": 2.5}
    write_results_csv(tmp_path / "r.csv", [row], ["a"])
    with open(tmp_path / "r.csv") as f:
        (line,) = csv.DictReader(f)
    assert line["runtime"] == "1.5" and line["metric_runtime"] == "3" and line["metric_a"] == "2" and line["a"] == "1"


def _many_params_journal(n_params=13, long_names=True):
    import random

    g = random.Random(1)
    names = [f"a_rather_long_parameter_name_{k}" if long_names else f"x{k}" for k in range(n_params)]
    space = {n: {"type": "real", "low": 0.0, "high": 10.0 ** (k % 3)} for k, n in enumerate(names)}
    space["learning_rate"] = {"type": "real", "low": 1e-6, "high": 1.0, "log": True}
    space["conv"] = {"type": "categorical", "values": ["50 50 50 50 50 1", "25 25 25 25 25 1", "64 32 16 32 64 1"]}
    evals = []
    for t in range(40):
        p = {n: g.uniform(0.0, 10.0 ** (k % 3)) for k, n in enumerate(names)}
        p["learning_rate"] = 10 ** g.uniform(-6, 0)
        p["conv"] = g.choice(space["conv"]["values"])
        bad = t % 7 == 0
        evals.append({"task_id": t, "attempt": 0, "params": p, "status": "failed" if bad else "done",
                      "loss": None if bad else 10 ** g.uniform(-4, 0), "metrics": {}, "worker": t % 3,
                      "queued": 0.0, "start": t * 0.5, "end": t * 0.5 + 1.2, "batch": 1 + t // 6})
    return {"meta": {"experiment": "layout", "space": space, "workers": 3}, "evals": evals}


@pytest.mark.parametrize("long_names", [True, False])
def test_report_figures_keep_every_label_inside_and_titles_apart(long_names):
    """The report's figures place their panels themselves (no layout engine): every visible
    text is inside the figure, and no two titles overlap."""
    pytest.importorskip("matplotlib")
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from emews.report import plot_load, plot_params, plot_trajectory

    j = _many_params_journal(long_names=long_names)
    big = {"meta": {"experiment": "wide", "workers": 200},
           "evals": [row(t, t % 7 * 10.0, t % 7 * 10.0 + 9.0, 1.0 / (t + 1), worker=t % 200) for t in range(600)]}
    for fig in (plot_params(j, top=5), plot_trajectory(j), plot_load(j), plot_load(big)):
        canvas = FigureCanvasAgg(fig)
        canvas.draw()
        renderer = canvas.get_renderer()
        box = fig.bbox
        drawn = [(f"panel {a.get_title()!r}", a.get_tightbbox(renderer)) for a in fig.axes]  # ticks, labels, legend
        drawn += [(t.get_text(), t.get_window_extent(renderer)) for t in fig.texts if t.get_text()]  # the suptitle
        for what, e in drawn:
            assert e.x0 >= box.x0 - 1 and e.x1 <= box.x1 + 1 and e.y0 >= box.y0 - 1 and e.y1 <= box.y1 + 1, \
                (fig.get_suptitle(), what, e.bounds, box.bounds)
        titles = [(t.get_text(), t.get_window_extent(renderer)) for t in [a.title for a in fig.axes] + fig.texts
                  if t.get_text()]
        for i, (a, ea) in enumerate(titles):
            for b, eb in titles[i + 1:]:
                assert not ea.overlaps(eb), (a, b)


def test_log_axes_are_labelled_in_plain_text():
    """Decade labels like 10⁻³ without mathtext (parsing it cost a third of a second a figure)."""
    pytest.importorskip("matplotlib")
    from emews.report import plot_params
    from emews.report._plots import _decade

    assert [_decade(v) for v in (1e-6, 0.001, 1.0, 10.0, 100.0, 0.5)] == ["10⁻⁶", "10⁻³", "1", "10", "10²", "0.5"]
    fig = plot_params(_many_params_journal(n_params=2), top=5)
    lr = [a for a in fig.axes if a.get_title() == "learning_rate"][0]
    assert lr.get_xscale() == "log" and lr.get_yscale() == "log"  # losses span four decades
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    FigureCanvasAgg(fig).draw()
    labels = [t.get_text() for t in lr.get_xticklabels() + lr.get_yticklabels() if t.get_text()]
    assert labels and all("$" not in s for s in labels) and any("⁻" in s for s in labels), labels
    assert not lr.xaxis.get_minorticklocs().size
