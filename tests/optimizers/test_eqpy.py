"""EQ/Py algorithms, unchanged, under ``optimizer: eqpy``: EQ-Py's own examples and CANDLE
Supervisor's ``deap_ga.py`` (byte copies in tests/data, see their SOURCES) run, end, abort and
resume the way their Swift workflows would have them."""

from __future__ import annotations

import ast
import collections
import json

import pytest
import yaml
from helpers import (ROOT, Gate, finished_rows, kill_driver, kill_env, kill_rng, reap, run_cli, start_cli, wait_for_results,
                     write_config)

import emews.eqpy
from emews.errors import OptimizerError
from emews.journal import read_journal
from emews.optimizers._eqpy import decode_batch, encode_losses
from emews.space import Space
from emews.task import Result, Task

EQ_PY = ROOT / "tests" / "data" / "eqpy"
SUPERVISOR = ROOT / "tests" / "data" / "supervisor" / "workflows"
NT3 = SUPERVISOR / "GA" / "data" / "nt3_param_space_ga.json"
DEAP_GA_DIR = SUPERVISOR / "common" / "python"
SPACE = Space.from_dict({"x": {"type": "real", "low": -5, "high": 5}, "n": {"type": "int", "low": 0, "high": 9},
                         "act": {"type": "categorical", "values": ["relu", "tanh"]}})


# -- the module --------------------------------------------------------------------------------
@pytest.mark.parametrize("original", [EQ_PY / "src" / "eqpy.py", SUPERVISOR / "common" / "ext" / "EQ-Py" / "eqpy.py"])
def test_emews_eqpy_defines_every_name_of_the_real_module(original):
    tree = ast.parse(original.read_text())
    names = set()
    for node in tree.body:
        if isinstance(node, (ast.FunctionDef, ast.ClassDef)):
            names.add(node.name)
        elif isinstance(node, ast.Assign):
            names |= {t.id for t in node.targets if isinstance(t, ast.Name)}
    assert {"input_q", "output_q", "EQPY_ABORT", "init", "OUT_put", "IN_get", "output_q_get"} <= names
    missing = sorted(n for n in names if not hasattr(emews.eqpy, n))
    assert not missing
    assert emews.eqpy.EQPY_ABORT == "EQPY_ABORT"
    import eqpy  # the top-level name an unchanged algorithm imports

    assert eqpy is emews.eqpy


def test_output_q_get_reports_a_dead_thread_then_its_traceback(tmp_path, monkeypatch):
    (tmp_path / "dies_at_once.py").write_text(
        "import eqpy\ndef run():\n    eqpy.OUT_put('1')\n    raise KeyError('boom')\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    emews.eqpy._reset()
    emews.eqpy.init("dies_at_once")
    assert emews.eqpy.output_q_get() == "1"  # what it sent before dying is still delivered
    assert emews.eqpy.output_q_get() == emews.eqpy.EQPY_ABORT
    why = emews.eqpy.output_q_get()
    assert "KeyError: 'boom'" in why and "dies_at_once.py" in why


# -- the batch codec ---------------------------------------------------------------------------
def test_batch_items_as_json_objects_json_lists_and_csv():
    got = decode_batch('{"x": 1.5, "n": 3, "act": "tanh"};[0.5, 2, "relu"];-1,4,"tanh";2.5,7,relu', SPACE)
    assert got == [{"x": 1.5, "n": 3, "act": "tanh"}, {"x": 0.5, "n": 2, "act": "relu"},
                   {"x": -1.0, "n": 4, "act": "tanh"}, {"x": 2.5, "n": 7, "act": "relu"}]
    assert decode_batch("1,2,relu", SPACE, "csv") == [{"x": 1.0, "n": 2, "act": "relu"}]


@pytest.mark.parametrize("message, fmt, words", [
    ('{"x": 1, "n": 1, "act": "relu"};{"x": 9, "n": 1, "act": "relu"}', "auto", ["item 2 of 2", "outside", "x"]),
    ("1,2", "auto", ["item 1 of 1", "2 values for the 3 dimensions"]),
    ('{"x": 1, "n": 1, "act": "relu", "lr": 0.1}', "json", ["item 1 of 1", "lr"]),
    ("1,2,relu", "json", ["item 1 of 1", "not JSON"]),
    ('{"x": 1', "auto", ["item 1 of 1", "not JSON"]),
])
def test_a_batch_item_that_does_not_fit_names_item_position_and_reason(message, fmt, words):
    with pytest.raises(OptimizerError) as e:
        decode_batch(message, SPACE, fmt, batch=4)
    assert "batch 4" in str(e.value) and all(w in str(e.value) for w in words), str(e.value)


def test_losses_answer_in_order_with_nan_for_what_did_not_succeed():
    t = Task(1, {"x": 0.0})
    results = [Result(task_id=0, params={}, status="done", loss=0.25),
               Result(task_id=1, params={}, status="failed", error="boom"), Result.cancelled(t, "budget"),
               Result(task_id=2, params={}, status="stopped", loss=0.5), Result(task_id=3, params={}, status="done",
                                                                               loss=-3.0)]
    assert encode_losses(results) == "0.25;nan;nan;nan;-3.0"


# -- EQ-Py's own example algorithm ---------------------------------------------------------------
def _noop_config(tmp_path, module="algorithm", directory=EQ_PY / "examples" / "noop" / "python", **settings):
    cfg = {"experiment": "e", "objective": "emews.examples:sphere",
           "space": {"x": {"type": "real", "low": 0, "high": 100}},
           "optimizer": {"name": "eqpy", "settings": {"module": module, "path": str(directory), **settings}},
           "max_evals": 10, "workers": 2, "output": str(tmp_path / "runs"), "report": False}
    return write_config(tmp_path, cfg)


def test_eq_py_noop_example_runs_unchanged(tmp_path):
    r = run_cli([str(_noop_config(tmp_path))], cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    rows = read_journal(tmp_path / "runs" / "e")["evals"]
    assert [(x["params"]["x"], x["loss"]) for x in rows if x["status"] == "done"] == [(1.0, 1.0), (33.0, 1089.0)]
    assert (tmp_path / "runs" / "e" / "eqpy-final-0.txt").read_text() == "FINAL\n"
    assert "EQ/Py algorithm sent FINAL" in r.stdout


def test_eq_py_noop_example_killed_and_resumed_loses_nothing(tmp_path):
    """EQ-Py's own example (byte copy), its driver SIGKILLed while the second point runs (held
    at the test's gate): the resume replays the algorithm, answers its first batch from the
    journal, evaluates the interrupted point and ends with FINAL; each point evaluated once."""
    cfg = _noop_config(tmp_path)
    raw = yaml.safe_load(cfg.read_text()) | {"objective": "killable:slow"}
    cfg.write_text(yaml.safe_dump(raw))
    out = tmp_path / "runs" / "e"
    gate = Gate(tmp_path / "gate")
    env = kill_env(tmp_path) | gate.env
    gate.allow(1)  # the first point passes; the second is held, running, at the kill
    proc = start_cli([str(cfg)], tmp_path, env)
    try:
        wait_for_results(out, 1, proc)
        gate.wait_started(2, proc)
        kill_driver(out, proc)
    finally:
        reap(proc)
    before = finished_rows(out)
    assert [x["params"]["x"] for x in before.values()] == [1.0]
    gate.open()
    r = run_cli([str(cfg)], cwd=tmp_path, env=env, timeout=300)
    assert r.returncode == 0 and "resuming" in r.stderr, r.stderr
    done = sorted(x["params"]["x"] for x in finished_rows(out).values() if x["status"] == "done")
    assert done == [1.0, 33.0]
    evaluated = collections.Counter(json.loads(line)["x"] for line in (tmp_path / "evals.log").read_text().splitlines())
    assert evaluated[1.0] == 1, evaluated  # answered from the journal on resume, not evaluated again
    assert (out / "eqpy-final-0.txt").read_text() == "FINAL\n"


def test_eq_py_failing_example_exits_1_with_its_traceback(tmp_path):
    r = run_cli([str(_noop_config(tmp_path, "algorithm_fail"))], cwd=tmp_path)
    assert r.returncode == 1, r.stderr
    assert "EQPY_ABORT" in r.stderr and "algorithm_fail.py" in r.stderr
    assert 'eqpy.OUT_put("33" + 1)' in r.stderr and "TypeError" in r.stderr
    assert len(finished_rows(tmp_path / "runs" / "e")) == 1  # its first batch was evaluated and kept


def test_eq_py_ga0_example_is_python_2_and_says_so(tmp_path):
    """EQ-Py's ga0 algorithm still has a Python 2 print statement: it cannot be imported."""
    r = run_cli([str(_noop_config(tmp_path, directory=EQ_PY / "examples" / "ga0" / "python"))], cwd=tmp_path)
    assert r.returncode == 1
    assert "cannot import the EQ/Py algorithm module 'algorithm'" in r.stderr and "SyntaxError" in r.stderr


@pytest.mark.parametrize("settings, key, words", [
    ({"module": "no_such_algorithm"}, "optimizer.settings.module", "no module 'no_such_algorithm'"),
    ({"module": "algorithm", "format": "xml"}, "optimizer.settings.format", "'xml'"),
    ({"module": "algorithm", "handshake": 3}, "optimizer.settings.handshake", "got 3"),
])
def test_bad_eqpy_settings_are_config_errors(tmp_path, settings, key, words):
    module = settings.pop("module")
    r = run_cli([str(_noop_config(tmp_path, module, **settings))], cwd=tmp_path)
    assert r.returncode == 2, r.stderr
    assert key in r.stderr and words in r.stderr and "config.yaml" in r.stderr
    assert not (tmp_path / "runs").exists()  # nothing created


def test_an_algorithm_asking_for_settings_without_a_handshake_is_told_what_to_set(tmp_path):
    r = run_cli([str(_ga_config(tmp_path, handshake=None))], cwd=tmp_path, env=kill_env(tmp_path))
    assert r.returncode == 1 and "asks for its settings ('Params')" in r.stderr and "handshake" in r.stderr


def test_a_module_without_run_is_a_clear_error(tmp_path):
    (tmp_path / "algo").mkdir()
    (tmp_path / "algo" / "norun.py").write_text("import eqpy\n")
    r = run_cli([str(_noop_config(tmp_path, "norun", tmp_path / "algo"))], cwd=tmp_path)
    assert r.returncode == 1 and "'norun'" in r.stderr and "defines no run()" in r.stderr


# -- CANDLE Supervisor's deap_ga.py on NT3's GA space -------------------------------------------------
def _ga_config(tmp_path, iters=4, pop=6, max_evals=100, handshake="", **more):
    if handshake == "":
        # workflow.swift's algo_params: iters, pop, seed, strategy, off_prop, mut_prob, cx_prob,
        # mut_indpb, cx_indpb, tournsize, ga_params_file, init_params_file
        handshake = f"{iters},{pop},7,'mu_plus_lambda',0.5,0.8,0.2,0.5,0.5,3,'{NT3}',''"
    settings = {"module": "deap_ga", "path": [str(DEAP_GA_DIR)], "format": "json"}
    if handshake is not None:
        settings["handshake"] = handshake
    cfg = {"experiment": "k", "objective": "killable:slow", "space_file": str(NT3),
           "optimizer": {"name": "eqpy", "settings": settings}, "max_evals": max_evals, "workers": 2,
           "output": str(tmp_path / "runs"), "report": False, "seed": 3, **more}
    return write_config(tmp_path, cfg)


def test_supervisor_deap_ga_runs_unchanged_to_done(tmp_path):
    r = run_cli([str(_ga_config(tmp_path))], cwd=tmp_path, env=kill_env(tmp_path, sleep=0.0))
    assert r.returncode == 0, r.stderr
    out = tmp_path / "runs" / "k"
    rows = finished_rows(out)
    assert len(rows) == 6 + 3 * 3  # the population, then 3 generations of round(0.5 * 6) offspring
    final = [(out / f"eqpy-final-{n}.txt").read_text() for n in range(6)]
    assert final[0] == "DONE\n"
    best, fitness = json.loads(final[1]), float(final[2])
    population = [json.loads(p) for p in final[3].strip().split(";")]
    fitnesses = [float(x) for x in final[4].strip().split(";")]
    assert len(population) == len(fitnesses) == 6 and fitness == min(fitnesses)
    assert best == population[fitnesses.index(fitness)]
    losses = {json.dumps(x["params"], sort_keys=True): x["loss"] for x in rows.values()}
    assert losses[json.dumps(best, sort_keys=True)] == fitness  # the GA's best is an evaluation of ours
    assert "gen" in final[5] and "nevals" in final[5]  # DEAP's logbook
    assert "EQ/Py algorithm sent DONE and 5 final message(s)" in r.stdout


def _done_params(out) -> collections.Counter:
    return collections.Counter(json.dumps(x["params"], sort_keys=True) for x in finished_rows(out).values())


def test_supervisor_deap_ga_killed_and_resumed_replays_without_reevaluating(tmp_path):
    """SIGKILL mid-run, run again: deap_ga seeds random from its handshake, its batches are
    answered from the journal, and the search ends as the uninterrupted one does (the budget
    ends it: the GA would need 6 + 9 * 3 = 33). The GA itself proposes some points twice (both
    runs evaluate them twice), so "exactly once" is checked against the uninterrupted run's own
    evaluation log: only the evaluations the kill cut short are made again."""
    cfg = _ga_config(tmp_path, iters=10, max_evals=30)
    ref = tmp_path / "ref"
    r = run_cli([str(cfg), "--out", str(ref)], cwd=tmp_path, env=kill_env(tmp_path, sleep=0.0) | {
        "KILLABLE_LOG": str(tmp_path / "ref.log")})
    assert r.returncode == 0, r.stderr
    out = tmp_path / "runs" / "k"
    rnd = kill_rng()
    k, j = rnd.randint(3, 18), rnd.randint(0, 4)
    print(f"kill point: SIGKILL after {k} results, {k + j} tasks let through")
    gate = Gate(tmp_path / "gate")
    env = kill_env(tmp_path) | gate.env
    gate.allow(k + j)
    proc = start_cli([str(cfg)], tmp_path, env)
    try:
        wait_for_results(out, k, proc)
        kill_driver(out, proc)
    finally:
        reap(proc)
    before = finished_rows(out)
    assert len(before) < 30 and read_journal(out)["meta"]["outcome"] == "running"
    gate.open()
    r = run_cli([str(cfg)], cwd=tmp_path, env=env, timeout=300)
    assert r.returncode == 0 and "resuming" in r.stderr, r.stderr
    after = finished_rows(out)
    assert all(after[t]["params"] == x["params"] and after[t]["loss"] == x["loss"] for t, x in before.items())
    assert _done_params(out) == _done_params(ref) and len(after) == 30  # the uninterrupted search, nothing lost
    lines = lambda p: collections.Counter(p.read_text().splitlines())  # noqa: E731
    again = lines(tmp_path / "evals.log") - lines(tmp_path / "ref.log")
    assert sum(again.values()) <= j, again  # only what was running at the kill ran again


def test_readme_eqpy_config_runs_as_written(tmp_path):
    import re
    import shutil

    import yaml

    block = next(b for b in re.findall(r"```yaml\n(.*?)```", (ROOT / "README.md").read_text(), re.S)
                 if b.startswith("space_file: nt3_param_space_ga.json     # the space every batch item"))
    shutil.copytree(DEAP_GA_DIR, tmp_path / "supervisor" / "workflows" / "common" / "python")
    shutil.copy(NT3, tmp_path / "nt3_param_space_ga.json")
    cfg = yaml.safe_load(block) | {"experiment": "k", "objective": "killable:slow", "max_evals": 20, "workers": 2,
                                  "output": "runs", "report": False}
    r = run_cli([str(write_config(tmp_path, cfg))], cwd=tmp_path, env=kill_env(tmp_path, sleep=0.0))
    assert r.returncode == 0, r.stderr
    assert len(finished_rows(tmp_path / "runs" / "k")) == 20


def test_a_handshake_the_algorithm_cannot_parse_ends_with_its_traceback(tmp_path):
    r = run_cli([str(_ga_config(tmp_path, handshake="4,6,seven"))], cwd=tmp_path, env=kill_env(tmp_path))
    assert r.returncode == 1 and "EQPY_ABORT" in r.stderr
    assert "deap_ga.py" in r.stderr and "NameError: name 'seven' is not defined" in r.stderr
    assert not finished_rows(tmp_path / "runs" / "k")  # nothing was proposed
