"""CANDLE Supervisor's own files, unchanged (byte copies in tests/data/supervisor, see SOURCES):
every GA / pbt JSON and every mlrMBO R parameter set loads, and a short ga / mbo run proposes
only values the file allows -- checked by a stand-in objective against the file itself, read
independently of emews' loaders; UPF files run in order and resume."""

from __future__ import annotations

import json
import logging
import math
import re
from pathlib import Path

import pytest

from emews.formats import read_supervisor_json
from emews.config import load_config
from emews.errors import SpaceError
from emews.formats import parse_r_params, read_r_params, read_upf, upf_space
from emews.journal import read_journal
from emews.optimizers._upf import UPF
from emews.space import Bool, Categorical, Constant, Int, Ordinal, Real
from emews.task import Result
from emews.testing.optimizers import run_with_fake_driver
from helpers import ROOT, run_cli

DATA = ROOT / "tests" / "data" / "supervisor"
GA_FILES = sorted((DATA / "workflows").glob("*/data/*.json"))
R_DIR = DATA / "workflows" / "mlrMBO" / "data"
R_FILES = sorted(R_DIR.glob("*.R")) + sorted((DATA / "workflows" / "cp1" / "data").glob("*.R")) + \
    sorted((DATA / "archives" / "templates" / "workflow_settings").glob("*.R"))
CANDLE_R = ROOT / "tests" / "data" / "candle" / "Pilot1"


def test_the_shipped_files_are_the_sources_ones():
    import hashlib

    for root in (DATA, ROOT / "tests" / "data" / "candle", ROOT / "tests" / "data" / "eqpy"):
        rows = [ln.split() for ln in (root / "SOURCES").read_text().splitlines() if ln and not ln.startswith("#")]
        assert rows
        for repo, commit, path, sha in rows:
            assert re.fullmatch(r"[0-9a-f]{40}", commit) and repo.startswith(("ECP-CANDLE/", "emews/EQ-Py"))
            assert hashlib.sha256((root / path).read_bytes()).hexdigest() == sha, path
    assert len(GA_FILES) == 19 and len(list(R_DIR.glob("*.R"))) == 20


# -- GA JSON -------------------------------------------------------------------------------------
def ga_checker(path: Path):
    """A stand-in objective: every value must be one the JSON file allows (read with json only)."""
    items = {it["name"]: it for it in json.loads(path.read_text())}

    def allowed(name, v):
        it = items[name]
        t = it["type"]
        if t in ("int", "float"):
            lo, hi = float(it["lower"]), float(it["upper"])
            return (not isinstance(v, bool) and isinstance(v, (int, float)) and lo <= v <= hi
                    and (t == "float" or float(v).is_integer()))
        if t in ("categorical", "ordered"):
            return v in it["values"]
        if t == "logical":
            return isinstance(v, bool)
        return v == it["value"]

    def objective(params):
        assert set(params) == set(items), sorted(set(params) ^ set(items))
        bad = {k: v for k, v in params.items() if not allowed(k, v)}
        if bad:
            raise ValueError(f"not allowed by {path.name}: {bad}")
        return sum(float(v) for v in params.values() if isinstance(v, (int, float)) and not isinstance(v, bool))

    return objective


@pytest.mark.parametrize("path", GA_FILES, ids=lambda p: p.name)
def test_every_ga_file_loads_and_ga_proposes_only_its_values(path):
    space = read_supervisor_json(path)
    assert space.names == [it["name"] for it in json.loads(path.read_text())]
    run = run_with_fake_driver("ga", space, ga_checker(path), settings={"population": 6}, max_evals=24,
                               capacity=3, mode="batch", batch_size=6)
    failed = [r.error for r in run.results if r.status not in ("done", "cancelled")]
    assert not failed and len(run.done) >= 18, (failed, len(run.done))  # (a budget cut mid-generation is cancelled)


def test_extra_keys_are_listed_once_at_info_and_string_sigmas_read(caplog):
    tc1 = DATA / "workflows" / "GA" / "data" / "tc1_param_space_ga.json"
    with caplog.at_level(logging.INFO, logger="emews"):
        space = read_supervisor_json(tc1)
    assert space["lr"].sigma == pytest.approx(0.000495)  # written "0.000495" in the file
    msgs = [r for r in caplog.records if r.levelno == logging.INFO and "tc1_param_space_ga.json" in r.getMessage()]
    assert len(msgs) == 1 and "'comment' (in conv, feature_subsample)" in msgs[0].getMessage()
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="emews"):
        read_supervisor_json(DATA / "workflows" / "pbt" / "data" / "tc1_params_full.json")
    assert "'debug_value'" in caplog.text and "'orig_values'" in caplog.text and "'def_values'" in caplog.text


def test_what_supervisor_rejects_stays_an_error(tmp_path):
    cases = [
        ({"name": "lr", "type": "float", "lower": 0.1, "upper": 1, "sigma": "fast"}, r"\[0\] \(lr\).sigma: 'fast' is not a number"),
        ({"name": "e", "type": "int", "lower": "2.5", "upper": 5}, r"\[0\] \(e\).lower: '2.5' is not an integer"),
        ({"name": "e", "type": "float", "lower": "nan", "upper": 5}, r"'nan' is not a finite number"),
        ({"name": "b", "type": "ordered", "element_type": "int", "values": [1, 2], "sigma": "1"}, r"\(b\).*sigma"),
        ({"name": "x", "type": "gaussian"}, r"unknown type 'gaussian'"),
    ]
    for item, message in cases:
        p = tmp_path / "s.json"
        p.write_text(json.dumps([item]))
        with pytest.raises(SpaceError, match=message) as e:
            read_supervisor_json(p)
        assert "s.json" in str(e.value)
    p.write_text(json.dumps([{"name": "e", "type": "int", "lower": "2", "upper": "5", "sigma": "1"}]))
    d = read_supervisor_json(p)["e"]
    assert (d.low, d.high, d.sigma) == (2, 5, 1)


# -- mlrMBO R parameter sets ----------------------------------------------------------------------
def _calls(text: str) -> dict[str, tuple[str, str]]:
    """name -> (kind, argument text) of each make*Param call, by regular expressions only."""
    text = "\n".join(ln.split("#", 1)[0] for ln in text.splitlines())
    out = {}
    for m in re.finditer(r"make(Numeric|Integer|Discrete|Logical)Param\s*\(\s*[\"']([^\"']+)[\"']", text):
        depth, i = 1, text.index("(", m.start()) + 1
        start = i
        while depth:
            depth += {"(": 1, ")": -1}.get(text[i], 0)
            i += 1
        out[m.group(2)] = (m.group(1), text[start:i - 1])
    return out


def r_checker(path: Path):
    """A stand-in objective: every value must be one the R file declares (read by regex)."""
    calls = _calls(path.read_text())

    def num(args, key):
        return float(re.search(rf"{key}\s*=\s*([-+0-9.eE]+)", args).group(1))

    def allowed(name, v):
        kind, args = calls[name]
        if kind == "Logical":
            return isinstance(v, bool)
        if kind == "Discrete":
            vec = re.search(r"c\((.*)\)", args, re.S).group(1)
            choices = [s[1:-1] for s in re.findall(r"\"[^\"]*\"|'[^']*'", vec)] or \
                [float(x) for x in re.findall(r"[-+]?[0-9.]+(?:[eE][-+]?\d+)?", vec)]
            return v in choices
        lo, hi = num(args, "lower"), num(args, "upper")
        if "trafo" in args:
            assert re.search(r"function\(x\)\s*2L?\s*\^\s*x", args), args
            return isinstance(v, int) and 2 ** lo <= v <= 2 ** hi and math.log2(v).is_integer()
        if kind == "Integer":
            return isinstance(v, int) and not isinstance(v, bool) and lo <= v <= hi
        return isinstance(v, float) and lo <= v <= hi

    def objective(params):
        assert set(params) == set(calls), sorted(set(params) ^ set(calls))
        bad = {k: v for k, v in params.items() if not allowed(k, v)}
        if bad:
            raise ValueError(f"not allowed by {path.name}: {bad}")
        return sum(float(v) for v in params.values() if isinstance(v, (int, float)) and not isinstance(v, bool))

    return objective


@pytest.mark.parametrize("path", R_FILES, ids=lambda p: p.name)
def test_every_r_parameter_set_loads_and_mbo_proposes_only_its_values(path):
    space = read_r_params(path)
    assert space.names == list(_calls(path.read_text()))
    run = run_with_fake_driver("mbo", space, r_checker(path), settings={"n_initial": 5, "n_estimators": 10, "n_jobs": 1},
                               max_evals=12, capacity=3)
    failed = [r.error for r in run.results if r.status != "done"]
    assert not failed and len(run.done) == 12, failed


def test_r_constructs_map_as_documented():
    s = read_r_params(R_DIR / "p1b1_hps_exp_01.R")
    assert s["latent_dim"] == Ordinal("latent_dim", [2, 4, 8, 16, 32, 64, 128, 256, 512])  # 2L^x, x in 1..9
    assert s["batch_size"].values == [32, 64, 128, 256, 512, 1024]
    assert s["model"] == Constant("model", "ae") and s["residual"] == Categorical("residual", [1, 0])
    assert s["learning_rate"] == Real("learning_rate", 1e-5, 0.1) and s["epochs"] == Int("epochs", 5, 1000)
    s = read_r_params(DATA / "workflows" / "cp1" / "data" / "uno_hpo.R")  # positional values, `makeParamSet (`
    assert s["drop"].values == [0.0, 0.1, 0.15, 0.2, 0.25]
    s = parse_r_params("""ps = makeParamSet(  # comments, '=' and single quotes
        makeNumericParam('lr', lower = -5, upper = -1, trafo = function(x) 10^x, default = -3),
        makeNumericParam("w", -1, 1, trafo = function(x) exp(x)),
        makeIntegerParam("n", lower = 1, upper = 3, trafo = function(x) { x^2 }),
        makeIntegerParam("k", 0L, 2L, trafo = function(x) 8 * x),
        makeLogicalParam("flag", default = TRUE),
        makeDiscreteParam("opt", values = list("adam", 0.5, TRUE)),
        makeDiscreteParam("mix", values = c(1, "two")),
        makeDiscreteParam("r", values = 1:3))""", "t.R")
    assert s["lr"] == Real("lr", 1e-5, 0.1, log=True) or (s["lr"].log and s["lr"].low == pytest.approx(1e-5))
    assert s["w"].log and s["w"].low == pytest.approx(math.exp(-1)) and s["w"].high == pytest.approx(math.e)
    assert s["n"].values == [1, 4, 9] and s["k"].values == [0, 8, 16]
    assert isinstance(s["flag"], Bool) and s["opt"].values == ["adam", 0.5, True]
    assert s["mix"].values == ["1", "two"] and s["r"].values == [1, 2, 3]


@pytest.mark.parametrize("text, message", [
    ('p <- makeParamSet(makeNumericParam("a", lower = 0, upper = 1,\n  requires = quote(b == "x")))',
     r"t.R: line 2: conditional parameters \(requires =\) are not supported.*`requires = quote\(b == \"x\"\)`"),
    ('p <- makeParamSet(\n makeNumericParam("a", 1, 2, trafo = function(x) log(x)))',
     r"line 2: unsupported trafo .*`function\(x\) log\(x\)`"),
    ('p <- makeParamSet(\n\n makeNumericVectorParam("v", len = 2, lower = 0, upper = 1))', r"line 3: vector parameters"),
    ('p <- makeParamSet(makeDiscreteParam("r", values = c(True, False)))', r"`True` is Python, not R"),
    ('p <- makeParamSet(makeDiscreteParam("r", values = c(1, 0)),\n)', r"line 1: an empty argument after this one"),
    ('p <- makeParamSet(makeNumericParam("a", lower = 0))', r"needs upper"),
    ('p <- makeParamSet(makeNumericParam("a", lower = 0, upper = Inf))', r"upper must be a finite number"),
    ('p <- makeParamSet(makeDiscreteParam("a", values = c(1, 2), default = 3))', r"default 3 is not a value of 'a'"),
    ('p <- makeParamSet(makeIntegerParam("a", lower = 1, upper = 2, tunable = FALSE))', r"tunable = FALSE"),
    ('p <- makeParamSet(makeIntegerParam("a", lower = 1, upper = 2, lenght = 3))', r"has no argument 'lenght'"),
    ('library(mlrMBO)\np <- makeParamSet(makeIntegerParam("a", 1, 2))', r"line 1: unsupported statement.*`library\(mlrMBO\)`"),
    ('p <- makeParamSet(makeIntegerParam("a", lower = n, upper = 2))', r"unknown name 'n' \(only literals"),
    ('p <- makeParamSet(makeIntegerParam("a", 1, 2)', r"unexpected end of file"),
    ('# nothing here\n', r"no makeParamSet"),
])
def test_unsupported_r_names_file_line_and_text(text, message):
    with pytest.raises(SpaceError, match=message):
        parse_r_params(text, "t.R")


def test_r_files_that_cannot_load_say_why():
    # a whole mlrMBO program, not a parameter set
    with pytest.raises(SpaceError, match=r"simple_mlrMBO.R: line 1: unsupported statement"):
        read_r_params(DATA / "archives" / "workflows" / "simple_mlrMBO_example" / "R" / "simple_mlrMBO.R")
    # Benchmarks' own P1B1/Combo files end makeParamSet with a trailing comma (and use Python's True): R rejects them too
    for name in ("P1B1/p1b1_param_set.R", "Combo/combo_param_set.R"):
        with pytest.raises(SpaceError, match=r"line \d+: an empty argument after this one"):
            read_r_params(CANDLE_R / name)
    assert read_r_params(CANDLE_R / "NT3" / "nt3_param_set.R").names[:2] == ["batch_size", "epochs"]


def test_space_file_r_in_a_config(tmp_path):
    (tmp_path / "c.yaml").write_text(f"experiment: x\nobjective: emews.examples:quickstart\nmax_evals: 2\n"
                                     f"space_file: {R_DIR / 'nt3_nightly.R'}\n")
    cfg = load_config(tmp_path / "c.yaml")
    assert cfg.space.names == ["batch_size", "epochs", "optimizer", "dropout", "learning_rate"]
    bad = tmp_path / "bad.R"
    bad.write_text('p <- makeParamSet(\n  makeNumericParam("a", 0, 1, requires = quote(b)))\n')
    (tmp_path / "c.yaml").write_text("experiment: x\nobjective: emews.examples:quickstart\nmax_evals: 2\nspace_file: bad.R\n")
    r = run_cli([str(tmp_path / "c.yaml")], cwd=tmp_path)
    assert r.returncode == 2 and "bad.R: line 2: conditional parameters" in r.stderr


# -- UPF --------------------------------------------------------------------------------------------
UPF_DIR = DATA / "workflows" / "upf" / "test"
UPF_FILES = [UPF_DIR / "upf-1.txt", UPF_DIR / "demo-1.json", UPF_DIR / "upf-lc.txt",
             DATA / "archives" / "templates" / "workflow_settings" / "upf3.txt",
             DATA / "workflows" / "csg" / "test" / "upf-1.txt", DATA / "workflows" / "cmp-cv" / "test" / "upf-1.txt"]


@pytest.mark.parametrize("path", UPF_FILES, ids=lambda p: f"{p.parent.parent.name}-{p.name}")
def test_upf_files_are_proposed_as_given_in_order(path):
    lines = [json.loads(ln) for ln in path.read_text().splitlines() if ln.strip()]
    space = upf_space(read_upf(path), str(path))
    run = run_with_fake_driver(UPF, space, lambda p: 0.0, settings={"file": str(path)}, max_evals=100, capacity=3,
                               durations="fixed")
    want = [{k: v for k, v in ln.items() if k != "id"} for ln in lines]
    got = [{k: v for k, v in p.items() if v is not None} for p in run.puts]
    assert got == want  # every line, in order, exactly as written (keys a line lacks are None)
    tags = [t for rec in run.logs for t in rec["upf"]]
    assert sorted(t["id"] for t in tags if t["id"]) == sorted(ln["id"] for ln in lines if "id" in ln)
    assert "id" not in space


def test_upf_runs_and_resumes_from_the_cli(tmp_path):
    upf = UPF_DIR / "upf-1.txt"
    (tmp_path / "c.yaml").write_text(
        f"experiment: upf\nobjective: emews.examples:noop\noptimizer: {{name: upf, settings: {{file: {upf}}}}}\n"
        "max_evals: 2\nworkers: 2\nprogress: 0\nreport: false\n")
    r = run_cli([str(tmp_path / "c.yaml"), "--out", str(tmp_path / "out")], cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    j = read_journal(tmp_path / "out")
    assert [e["params"]["epochs"] for e in sorted(j["evals"], key=lambda e: e["task_id"])] == [1, 2]
    # resume with a larger budget: only the third line runs
    r = run_cli([str(tmp_path / "c.yaml"), "--out", str(tmp_path / "out"), "--set", "max_evals=10"], cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    j = read_journal(tmp_path / "out")
    ev = sorted(j["evals"], key=lambda e: e["task_id"])
    assert [e["params"]["epochs"] for e in ev] == [1, 2, 3] and all(e["status"] == "done" for e in ev)
    ids = {t["task_id"]: t["id"] for rec in j["optimizer_log"] for t in rec.get("upf", [])}
    assert ids == {ev[0]["task_id"]: "RUN000", ev[1]["task_id"]: "RUN001", ev[2]["task_id"]: "RUN002"}


def test_upf_restore_skips_finished_lines_and_maps_reruns(tmp_path):
    f = tmp_path / "u.txt"
    f.write_text('{"id": "a", "x": 1}\n{"id": "b", "x": 2}\n\n{"id": "c", "x": 1}\n{"id": "d", "x": 3}\n')
    space = upf_space(read_upf(f))
    opt = UPF(space, file=str(f))
    opt.restore([Result(task_id=0, params={"x": 1}, status="done", loss=0.0)], pending=[{"x": 2}])
    assert opt.ask(10) == [{"x": 1}, {"x": 3}]  # line 1 done, line 2 re-running: lines 4 and 5 are left
    assert opt.done()
    opt.tell([Result(task_id=7, params={"x": 2}, status="done", loss=0.0),
              Result(task_id=9, params={"x": 3}, status="done", loss=0.0)])
    assert opt.log() == {"upf": [{"task_id": 7, "line": 2, "id": "b"}, {"task_id": 9, "line": 5, "id": "d"}]}


def test_upf_lines_must_fit_a_given_space(tmp_path):
    f = tmp_path / "u.txt"
    f.write_text('{"epochs": 1}\n{"epochs": 900}\n')
    (tmp_path / "c.yaml").write_text(
        "experiment: u\nobjective: emews.examples:quickstart\noptimizer: {name: upf, settings: {file: u.txt}}\n"
        "space: {epochs: {type: int, low: 1, high: 100}}\nmax_evals: 2\n")
    r = run_cli([str(tmp_path / "c.yaml")], cwd=tmp_path)
    assert r.returncode == 2 and "u.txt: line 2: epochs: value 900 is outside [1, 100]" in r.stderr
    f.write_text('{"epochs": 1}\nnot json\n')
    r = run_cli([str(tmp_path / "c.yaml")], cwd=tmp_path)
    assert r.returncode == 2 and "u.txt: line 2: not a JSON object" in r.stderr


def test_the_readme_one_line_configs_work_with_the_real_files(tmp_path):
    import yaml

    from emews.config import parse_config

    text = (ROOT / "README.md").read_text()
    block = re.search(r"each in one line of config.*?```yaml\n(.*?)```", text, re.S).group(1)
    real = {"nt3_param_space_ga.json": DATA / "workflows" / "GA" / "data" / "nt3_param_space_ga.json",
            "nt3_nightly.R": R_DIR / "nt3_nightly.R", "upf-1.txt": UPF_DIR / "upf-1.txt",
            "/path/to/nt3_default_model.txt": ROOT / "tests" / "data" / "candle" / "Pilot1" / "NT3" / "nt3_default_model.txt",
            "restart-combo.csv": DATA / "workflows" / "mlrMBO" / "test" / "restart-combo.csv",
            "path: [python]": f"path: [{DATA / 'workflows' / 'common' / 'python'}]",
            "nt3_baseline_keras2": "benchmarks.candle.nt3"}  # the project's NT3 stands in for the Keras model
    lines = [ln.split("  #")[0] for ln in block.splitlines() if ln.strip()]
    assert len(lines) == 7
    for ln in lines:
        for name, path in real.items():
            ln = ln.replace(name, str(path))
        raw = {"experiment": "x", "objective": "emews.examples:noop", "max_evals": 2, **yaml.safe_load(ln)}
        if "space_file" not in raw and (raw.get("optimizer") or {}).get("name") != "upf":
            raw["space_file"] = str(real["nt3_param_space_ga.json"])
        if "warm_start" in raw:  # the restart file of Supervisor's p1b1 restart test, with its parameter set
            raw["space_file"] = str(R_DIR / "p1b1_restart_params.R")
        if (raw.get("runner") or {}).get("type") == "candle":
            raw.pop("objective")
        cfg = parse_config(raw, "README.md", base_dir=tmp_path)
        assert len(cfg.space) >= 1
        if "warm_start" in raw:
            assert len(cfg.warm_start.results) == 9 and cfg.warm_start.skipped == 0
