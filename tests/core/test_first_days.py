"""What a new user still trips on in the first days (issue 25): each test failed before its fix."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from emews.journal import read_journal
from helpers import ROOT, base_config, run_cli, write_config

WORKERS_DIR = ROOT / "tests" / "workers"
CURVE_SPACE = {"x": {"type": "categorical", "values": [0.5, 0.1, 0.9, 0.3, 0.7, 0.2, 0.8, 0.4, 0.6]}}
ASHA = {"name": "asha", "min_resource": 1, "max_resource": 9, "reduction_factor": 3}


def _env() -> dict:
    return {"PYTHONPATH": os.pathsep.join([str(ROOT), str(WORKERS_DIR), os.environ.get("PYTHONPATH", "")])}


def _asha_config(tmp_path: Path) -> Path:
    cfg = base_config(tmp_path, experiment="s", objective="curve_objectives:with_trial", space=CURVE_SPACE,
                      optimizer={"name": "grid"}, max_evals=9, workers=1, stopper=ASHA)
    return write_config(tmp_path, cfg)


# -- item 1: one count for the summary, report.txt and repr(Results) -----------------------------
def test_the_summary_counts_stopped_tasks_as_report_txt_and_repr_do(tmp_path):
    from emews.results import Results

    p = _asha_config(tmp_path)
    r = run_cli([str(p)], cwd=tmp_path, env=_env(), timeout=300)
    assert r.returncode == 0, r.stderr
    res = Results.load(tmp_path / "runs" / "s")
    stopped, done = res.count("stopped"), res.count("done")
    assert stopped > 0 and done + stopped == 9
    line = f"9 evaluations ({done} done, {stopped} stopped early, 0 failed, 0 timed out)"
    assert f"emews: {line}" in r.stdout.splitlines()
    assert line in (tmp_path / "runs" / "s" / "report.txt").read_text()
    assert repr(res).startswith(f"<Results: {line}, best loss")
    again = run_cli([str(p)], cwd=tmp_path, env=_env(), timeout=300)  # a no-op resume says the same
    assert "already complete (9 of 9 evaluations)" in again.stderr, again.stderr
    assert f"emews: {line}" in again.stdout.splitlines()


def test_a_tally_names_the_unfinished_tasks_apart():
    from emews.results import Results, Tally

    rows = [{"task_id": i, "attempt": 0, "status": s, "loss": 1.0 if s == "done" else None, "params": {"x": i}}
            for i, s in enumerate(["done", "failed", "timeout", "stopped", "cancelled", "running"])]
    t = Tally.of(rows)
    assert str(t) == "4 evaluations (1 done, 1 stopped early, 1 failed, 1 timed out)"
    assert t.unfinished == {"cancelled": 1, "running": 1}
    assert repr(Results(rows, ["x"])) == ("<Results: 4 evaluations (1 done, 1 stopped early, 1 failed, 1 timed out), "
                                          "1 cancelled, 1 running, best loss 1>")


# -- item 2: an objective edited under the same name ---------------------------------------------
def _objective(version: int, scale: float = 1.0):
    if version == 1:
        def f(p):
            return scale * p["x"] ** 2
    else:
        def f(p):  # the same name, a new body
            return scale * abs(p["x"])
    return f


def test_an_edited_objective_of_the_same_name_is_not_resumed(tmp_path):
    import emews
    from emews.errors import ConfigError

    space = {"x": {"type": "real", "low": -1, "high": 1}}
    kw = dict(max_evals=3, workers=1, seed=1, output=str(tmp_path), experiment="x", report=False, progress=0)
    emews.search(_objective(1), space, **kw)
    again = emews.search(_objective(1), space, **{**kw, "max_evals": 4}, resume=True)  # the same code resumes
    assert again.directory == tmp_path / "x" and len(again) == 4
    with pytest.raises(ConfigError) as e:
        emews.search(_objective(2), space, **{**kw, "max_evals": 5}, resume=True)
    msg = str(e.value)
    assert "objective _objective.<locals>.f: code " in msg and "(its body was edited)" in msg, msg
    assert "resume=False" in msg and "--force" not in msg and "--fresh" not in msg, msg
    with pytest.raises(ConfigError) as e:  # the same code, another value in its closure
        emews.search(_objective(1, scale=2.0), space, **{**kw, "max_evals": 5}, resume=True)
    assert "objective _objective.<locals>.f: the value of scale: 1.0 -> 2.0" in str(e.value)
    assert len(read_journal(tmp_path / "x")["evals"]) == 4  # nothing of the refused calls mixed in
    assert not (tmp_path / "x-2").exists()


# -- item 3: a segfault under the isolated runner ------------------------------------------------
def test_a_segfault_is_summarized_by_the_line_naming_the_signal(tmp_path):
    import csv

    cfg = base_config(tmp_path, objective="objectives:crashy", space={"i": {"type": "int", "low": 0, "high": 3}},
                      optimizer={"name": "grid", "settings": {"points": 4}}, max_evals=4, workers=2,
                      runner={"type": "isolated", "timeout": 120}, report=False)
    r = run_cli([str(write_config(tmp_path, cfg))], cwd=tmp_path, env=_env(), timeout=300)
    assert r.returncode == 0, r.stderr
    sigsegv = "child process killed by signal SIGSEGV (11): segmentation fault before returning a result"
    assert f"emews:   1 x {sigsegv}" in r.stdout.splitlines(), r.stdout
    assert "Segmentation fault" in r.stderr  # faulthandler's dump still reaches the worker's stderr
    with open(tmp_path / "runs" / "t" / "results.csv") as f:
        errors = {int(row["i"]): row["error"] for row in csv.DictReader(f)}
    assert errors[1] == sigsegv and errors[2] == "child process exited with code 7 before returning a result"
    full = {e["params"]["i"]: e["error"] for e in read_journal(tmp_path / "runs" / "t")["evals"]}
    assert "Fatal Python error: Segmentation fault" in full[1]  # the dump stays in the journal


def test_a_timed_out_isolated_task_is_summarized_by_its_timeout(tmp_path):
    (tmp_path / "chatty.py").write_text(textwrap.dedent("""
        import sys, time
        def hang(params):
            print("loading the model", file=sys.stderr, flush=True)
            time.sleep(600)
    """))
    cfg = base_config(tmp_path, objective="chatty:hang", space={"i": {"type": "int", "low": 0, "high": 0}},
                      optimizer="grid", max_evals=1, workers=1, report=False,
                      runner={"type": "isolated", "timeout": 10, "kill_grace": 1})
    r = run_cli([str(write_config(tmp_path, cfg))], cwd=tmp_path, env=_env(), timeout=300)
    assert r.returncode == 3, r.stderr
    assert "emews:   1 x timed out after 10 s; the task's process group was killed" in r.stdout, r.stdout


# -- item 7: Ctrl-C and SIGTERM print the summary ------------------------------------------------
@pytest.mark.parametrize("sig,code,word", [(signal.SIGINT, 130, "interrupted"), (signal.SIGTERM, 143, "terminated")])
def test_an_interrupted_run_prints_its_summary_on_stdout(tmp_path, sig, code, word):
    from helpers import Gate, wait_for_results

    gate = Gate(tmp_path / "gate")
    gate.allow(2)  # two tasks finish; the others wait at the gate until the signal stops the run
    cfg = base_config(tmp_path, objective="killable:slow", space={"x": {"type": "real", "low": 0, "high": 1}},
                      max_evals=50, workers=2, report=False)
    env = dict(os.environ, **gate.env, PYTHONPATH=os.pathsep.join([str(ROOT), str(ROOT / "tests"),
                                                                    os.environ.get("PYTHONPATH", "")]))
    proc = subprocess.Popen([sys.executable, "-m", "emews.run", str(write_config(tmp_path, cfg))], cwd=tmp_path,
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    try:
        wait_for_results(tmp_path / "runs" / "t", 2, proc)
        proc.send_signal(sig)
        out, err = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == code, err
    import re
    assert re.search(r"^emews: 2 evaluations \(2 done, 0 failed, 0 timed out\); [1-9]\d* cancelled task\(s\) never "
                     r"finished$", out, re.M), (out, err)
    assert "emews: best loss" in out and f"emews: results in {tmp_path / 'runs' / 't'}" in out
    assert f"stopped early ({word}" in out and "run the same command again to resume" in out
    assert word in err  # the one-line reason stays on stderr


# -- item 9: one stopper warning per task and kind -----------------------------------------------
def test_bad_reports_warn_once_per_task_and_kind(tmp_path):
    (tmp_path / "noisy.py").write_text(textwrap.dedent("""
        def train(params, trial):
            for step, loss in [(1, 1.0), (2, float("nan")), (1, 0.5), (2, 0.5), (1, 0.5), (float("nan"), 0.4),
                               (3, 0.4), (2, 0.3), (float("inf"), 0.3), (4, float("nan")), (5, 0.2)]:
                trial.report(step, loss)
            return 0.2 + params["x"]
    """))
    cfg = base_config(tmp_path, objective="noisy:train", space={"x": {"type": "real", "low": 0, "high": 1}},
                      max_evals=6, workers=2, report=False,
                      stopper={"name": "asha", "min_resource": 1, "max_resource": 9, "reduction_factor": 3})
    r = run_cli([str(write_config(tmp_path, cfg))], cwd=tmp_path, timeout=300)
    assert r.returncode == 0, r.stderr
    lines = [x for x in r.stderr.splitlines() if "reported" in x or "Warning" in x]
    assert "RuntimeWarning" not in r.stderr
    for kind in ("counted as the worst value", "steps must grow", "not a finite number"):
        per_task = sorted(x.split("task ")[1].split(" ")[0] for x in lines if kind in x)
        assert per_task == [str(i) for i in range(6)], (kind, r.stderr)  # once for each task
    assert len(lines) == 18, r.stderr


# -- item 5: messages that blame the right place --------------------------------------------------
def test_a_bad_set_value_is_blamed_on_the_set_not_the_file(tmp_path):
    p = write_config(tmp_path, base_config(tmp_path))
    r = run_cli([str(p), "--set", "max_evals=abc"], cwd=tmp_path)
    assert r.returncode == 2
    assert r.stderr.startswith("emews: error: --set max_evals=abc: max_evals: must be an integer"), r.stderr
    assert str(p) not in r.stderr
    r = run_cli([str(p), "--set", "optimizer=mbo", "--set", "optimizer.settings.n_init=3"], cwd=tmp_path)
    assert r.returncode == 2 and r.stderr.startswith("emews: error: --set optimizer.settings.n_init=3: "), r.stderr
    assert "did you mean 'n_initial'" in r.stderr
    cfg = base_config(tmp_path, max_evals="abc")  # the file's own bad value is still the file's
    r = run_cli([str(write_config(tmp_path, cfg))], cwd=tmp_path)
    assert r.returncode == 2 and r.stderr.startswith(f"emews: error: {tmp_path / 'config.yaml'}: max_evals: ")


def test_a_past_deadline_on_the_command_line_is_blamed_on_the_command_line(tmp_path):
    p = write_config(tmp_path, base_config(tmp_path))
    r = run_cli([str(p), "--deadline", "2020-01-01T00:00"], cwd=tmp_path)
    assert r.returncode == 2
    assert r.stderr.startswith("emews: error: command line: --deadline: is in the past (2020-01-01T00:00:00)"), r.stderr
    assert not (tmp_path / "runs").exists()


def test_a_deadline_too_near_to_start_anything_says_nothing_was_evaluated(tmp_path):
    p = write_config(tmp_path, base_config(tmp_path))
    r = run_cli([str(p), "--deadline", "+5s"], cwd=tmp_path)  # inside stop_margin (60 s): no task starts
    assert r.returncode == 0, r.stderr
    assert "emews: nothing was evaluated (deadline near" in r.stdout, r.stdout
    assert "error column" not in r.stdout


@pytest.mark.mpi
def test_under_mpiexec_only_rank_0_prints_a_config_error(tmp_path):
    sys.path.insert(0, str(WORKERS_DIR))
    from mpirun import mpiexec

    p = write_config(tmp_path, base_config(tmp_path))
    r = mpiexec(3, ["-m", "emews.run", str(p), "--set", "max_evals=abc"], tmp_path)
    assert r.returncode != 0
    assert r.stderr.count("must be an integer") == 1, r.stderr


# -- item 8: a YAML error in a space_file ------------------------------------------------------------
def test_a_yaml_error_in_a_space_file_is_one_line_like_the_config_files(tmp_path):
    (tmp_path / "space.yaml").write_text("x: {type: real, low: 0, high: 1\ny: [1, 2\n")
    cfg = base_config(tmp_path, space=None, space_file="space.yaml")
    r = run_cli([str(write_config(tmp_path, cfg))], cwd=tmp_path)
    assert r.returncode == 2
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in r.stderr, r.stderr
    assert lines[0].startswith(f"emews: error: {tmp_path / 'space.yaml'}: YAML syntax error at line 2, column "), lines
    (tmp_path / "bad.yaml").write_text("experiment: t\nmax_evals: [1, 2\n")  # the config file's form, for comparison
    r = run_cli([str(tmp_path / "bad.yaml")], cwd=tmp_path)
    assert r.stderr.startswith(f"emews: error: {tmp_path / 'bad.yaml'}: YAML syntax error at line ")


# -- item 11: the README's set-up makes and activates a virtual environment ------------------------
def test_readme_setup_starts_with_an_active_virtual_environment(tmp_path):
    import re

    text = (ROOT / "README.md").read_text()
    setup = text.split("## Set-up", 1)[1].split("\n## ", 1)[0]
    blocks = re.findall(r"```bash\n(.*?)```", setup, re.S)
    assert blocks
    first = blocks[0].splitlines()[0].split("#")[0].strip()
    assert first == "python3 -m venv .venv && . .venv/bin/activate", first
    assert blocks[0].splitlines()[1].startswith("python -m pip install -e")
    # the line does what it says: after it, `python` is the new environment's
    r = subprocess.run(["bash", "-c", f"{first} && python -c 'import sys; print(sys.prefix)'"], cwd=tmp_path,
                       capture_output=True, text=True, timeout=300, env={"PATH": os.environ["PATH"]})
    assert r.returncode == 0, r.stderr
    assert Path(r.stdout.strip()).resolve() == (tmp_path / ".venv").resolve()


# -- item 10: smaller things -------------------------------------------------------------------------
def test_the_timeout_kill_account_says_what_ended_the_task():
    from emews.workers._procs import kill_group

    quiet = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"], start_new_session=True)
    how = kill_group(quiet, 30.0)  # it ends on SIGTERM: no SIGKILL "0.0 s later" in the account
    assert how.startswith("SIGTERM; it ended ") and how.endswith(" s later") and "SIGKILL" not in how, how
    stubborn = subprocess.Popen([sys.executable, "-c", "import signal, sys, time\n"
                                 "signal.signal(signal.SIGTERM, signal.SIG_IGN)\nprint('ready', flush=True)\n"
                                 "time.sleep(600)"], start_new_session=True, stdout=subprocess.PIPE, text=True)
    assert stubborn.stdout.readline() == "ready\n"  # SIGTERM is ignored from here on
    how = kill_group(stubborn, 0.5)
    stubborn.stdout.close()
    assert how == "SIGTERM, then SIGKILL after the kill_grace of 0.5 s (SIGTERM did not end it)", how


def test_search_docstring_names_functions_that_exist():
    import re

    import emews

    called = set(re.findall(r"emews\.(\w+)\(", emews.search.__doc__))
    assert "report_step" in called
    for name in called:
        assert callable(getattr(emews, name, None)), f"search()'s docstring calls emews.{name}, which is not a function"


def test_a_string_returned_as_the_loss_is_a_failed_result_naming_its_type(tmp_path):
    import emews

    space = {"x": {"type": "categorical", "values": ["plain", "dict"]}}
    res = emews.search(lambda p: "0.5" if p["x"] == "plain" else {"loss": "0.5"}, space, optimizer="grid",
                       max_evals=2, workers=1, output=str(tmp_path), report=False, progress=0)
    assert [r["status"] for r in res.rows] == ["failed", "failed"]
    for r in res.rows:
        assert "objective returned a non-number loss: '0.5' (a str; return float(...)" in r["error"], r["error"]


def test_to_dataframe_has_the_columns_of_results_csv(tmp_path):
    import csv

    import emews

    res = emews.search("emews.examples:sphere", {"x0": {"type": "real", "low": -1, "high": 1}}, max_evals=3,
                       workers=1, output=str(tmp_path), report=False, progress=0)
    with open(res.directory / "results.csv") as f:
        head = next(csv.reader(f))
    records = res.to_records()
    assert list(records[0]) == head  # the same columns, in the same order
    assert all(r["runtime"] == pytest.approx(r["end"] - r["start"]) and r["runtime"] >= 0 for r in records)
    pd = pytest.importorskip("pandas")
    assert list(res.to_dataframe().columns) == head and isinstance(res.to_dataframe(), pd.DataFrame)


def test_a_report_pattern_that_never_matches_is_warned_once(tmp_path):
    (tmp_path / "train.py").write_text(textwrap.dedent("""
        import json, sys
        p = json.load(open(sys.argv[1]))
        for epoch in range(1, 4):
            print(f"epoch {epoch} loss={p['x'] + 1 / epoch}")  # not what the pattern below expects
        print(f"loss: {p['x']}")
    """))
    runner = {"type": "command", "command": ["{python}", "{config_dir}/train.py", "{params_file}"],
              "report_pattern": r"epoch (\d+) val_loss=(\S+)"}
    cfg = base_config(tmp_path, objective=None, runner=runner, space={"x": {"type": "real", "low": 0, "high": 1}},
                      max_evals=4, workers=2, report=False, stopper={"name": "median", "min_trials": 1})
    r = run_cli([str(write_config(tmp_path, cfg))], cwd=tmp_path, timeout=300)
    assert r.returncode == 0, r.stderr
    assert r.stderr.count("matching runner.report_pattern") == 1, r.stderr
    assert "epoch (\\\\d+) val_loss=(\\\\S+)" in r.stderr and "its last line: 'loss: " in r.stderr, r.stderr
    runner["report_pattern"] = r"epoch (\d+) loss=(\S+)"  # a matching pattern: no warning
    cfg = base_config(tmp_path, objective=None, runner=runner, space={"x": {"type": "real", "low": 0, "high": 1}},
                      max_evals=4, workers=2, report=False, experiment="ok", stopper={"name": "median", "min_trials": 1})
    r = run_cli([str(write_config(tmp_path, cfg))], cwd=tmp_path, timeout=300)
    assert r.returncode == 0 and "report_pattern" not in r.stderr, r.stderr


def _asha_results(tmp_path):
    r = run_cli([str(_asha_config(tmp_path))], cwd=tmp_path, env=_env(), timeout=300)
    assert r.returncode == 0, r.stderr
    from emews.results import Results

    return Results.load(tmp_path / "runs" / "s")


def _overlaps(fig, legend, ax) -> bool:
    fig.canvas.draw()
    a, b = legend.get_window_extent(), ax.get_window_extent()
    return a.x0 < b.x1 and b.x0 < a.x1 and a.y0 < b.y1 and b.y0 < a.y1


def test_the_trajectory_draws_stopped_tasks_and_iterations_as_levels(tmp_path):
    pytest.importorskip("matplotlib")
    from emews.report import plot_trajectory

    res = _asha_results(tmp_path)
    stopped, done = res.count("stopped"), res.count("done")
    assert stopped > 0
    fig = plot_trajectory(res)
    for ax in fig.axes:  # both panels: every evaluation is a point
        by_label = {c.get_label(): c for c in ax.collections}
        assert len(by_label["evaluation"].get_offsets()) == done
        assert len(by_label["stopped early (last report)"].get_offsets()) == stopped
        levels = [c for label, c in by_label.items() if label.startswith(("min per", "mean per"))]
        assert len(levels) == 2
        for c in levels:  # horizontal segments, one per iteration: no line from one iteration to the next
            assert all(seg[0][1] == seg[-1][1] for seg in c.get_segments())
        assert not [ln for ln in ax.get_lines() if ln.get_label().startswith(("min per", "mean per"))]
    assert "9 evaluations" in fig._suptitle.get_text()


def test_legends_sit_beside_the_data_and_a_given_ax_gets_one(tmp_path):
    pytest.importorskip("matplotlib")
    from matplotlib.figure import Figure

    from emews.report import plot_trajectory
    from emews.report._plots import plot_learning

    res = _asha_results(tmp_path)
    fig = plot_trajectory(res)
    legend = fig.axes[0].get_legend()
    assert legend is not None and not any(_overlaps(fig, legend, ax) for ax in fig.axes)
    fig = plot_learning(res)
    assert not _overlaps(fig, fig.axes[0].get_legend(), fig.axes[0])
    ax = Figure().subplots()
    assert plot_trajectory(res, ax=ax) is ax and ax.get_legend() is not None
    labels = [t.get_text() for t in ax.get_legend().get_texts()]
    assert "best so far" in labels and "stopped early (last report)" in labels


def test_under_srun_only_rank_0_prints_a_config_error(tmp_path):
    p = write_config(tmp_path, base_config(tmp_path))
    other = run_cli([str(p), "--set", "max_evals=abc"], cwd=tmp_path, env={"SLURM_PROCID": "7"})
    first = run_cli([str(p), "--set", "max_evals=abc"], cwd=tmp_path, env={"SLURM_PROCID": "0"})
    assert other.returncode == first.returncode == 2
    assert other.stderr == "" and "must be an integer" in first.stderr, (other.stderr, first.stderr)


def test_an_objectives_code_is_compared_only_under_the_same_python():
    from emews._pickling import code_identity
    from emews.experiment import _code_changes

    one, two = code_identity(_objective(1)), code_identity(_objective(2))
    assert [k for k, _, _ in _code_changes("f", one, two)] == ["objective f"]
    assert _code_changes("f", dict(one, python="3.10"), two) == []  # bytecode of another version says nothing
    assert _code_changes("f", one, code_identity(_objective(1))) == []
