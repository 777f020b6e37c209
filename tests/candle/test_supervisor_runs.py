"""Supervisor's real files drive the real CANDLE objectives (tiny data, 1 epoch): the GA files of
NT3, P1B1 and Combo (with their rho/momentum/beta up to 10), an mlrMBO R set and a UPF file."""

import math

import pytest

pytest.importorskip("torch")

import emews  # noqa: E402
from benchmarks.candle import combo, nt3, p1b1  # noqa: E402
from emews.formats import read_supervisor_json
from emews.formats import read_r_params  # noqa: E402
from emews.journal import read_journal  # noqa: E402
from helpers import ROOT, run_cli  # noqa: E402

DATA = ROOT / "tests" / "data" / "supervisor" / "workflows"
RUN = {"nt3": nt3.run, "p1b1": p1b1.run, "combo": combo.run}
# run control only (data size, epochs, threads): every searched value comes from the file.
# Supervisor's NT3 conv choices need >= 10,900 features, so NT3 gets 12,000 features, few rows.
SMALL = {"nt3": {"n_features": 12000, "n_train": 32, "n_test": 16}, "p1b1": {"data_size": "tiny"},
         "combo": {"data_size": "tiny", "n_samples": 600}}


def tiny(model):
    run, fixed = RUN[model], {**SMALL[model], "epochs": 1, "threads": 1, "device": "cpu"}

    def objective(params):
        return run({**params, **fixed})

    return objective


@pytest.mark.slow
@pytest.mark.parametrize("model, n", [("nt3", 8), ("p1b1", 8), ("combo", 4)])
def test_real_ga_files_train_the_real_objectives(tmp_path, model, n):
    space = read_supervisor_json(DATA / "GA" / "data" / f"{model}_param_space_ga.json")
    assert {"rho", "momentum", "beta_1", "beta_2"} <= set(space.names) and space["rho"].high == 10.0
    res = emews.search(tiny(model), space, optimizer="ga", max_evals=n, workers=2, seed=1, mode="batch",
                       batch_size=n, settings={"population": n}, output=tmp_path, report=False)
    assert len(res) == n
    for r in res.rows:
        if r["status"] != "done":  # the only failure allowed: training itself diverged (SGD at a high rate)
            assert r["metrics"].get("diverged") is True, r["error"]
        else:
            assert math.isfinite(r["loss"]) and r["metrics"]["epochs_completed"] == 1
            assert set(r["metrics"]["inert_params"].split(",")) == {"momentum", "nesterov", "rho", "epsilon", "beta_1",
                                                                     "beta_2", "decay", "clipnorm", "clipvalue"}
    assert res.count("done") >= (n if model != "combo" else n // 2)


@pytest.mark.slow
def test_an_mlrmbo_r_set_runs_nt3_under_mbo(tmp_path):
    space = read_r_params(DATA / "mlrMBO" / "data" / "nt3_nightly.R")
    res = emews.search(tiny("nt3"), space, optimizer="mbo", max_evals=4, workers=2, seed=1,
                       settings={"n_initial": 3, "n_estimators": 10, "n_jobs": 1}, output=tmp_path, report=False)
    assert res.count("done") == 4, [r["error"] for r in res.rows]


@pytest.mark.slow
def test_a_upf_file_runs_nt3_with_its_default_model_from_the_cli(tmp_path):
    upf = DATA / "upf" / "test" / "upf-1.txt"  # {"id": "RUN000", "epochs": 1} ... epochs 1, 2, 3
    # the same lines with run-control keys added (tiny data, a conv that fits it)
    small = tmp_path / "upf.txt"
    small.write_text("".join(ln.rstrip().rstrip("}") + ', "data_size": "tiny", "conv": "16 8 4 16 4 1", "pool": "1 2", '
                             '"threads": 1, "device": "cpu"}\n' for ln in upf.read_text().splitlines() if ln.strip()))
    default = ROOT / "tests" / "data" / "candle" / "Pilot1" / "NT3" / "nt3_default_model.txt"
    (tmp_path / "c.yaml").write_text(
        "experiment: upf\nobjective: benchmarks.candle.nt3:run\n"
        "optimizer: {name: upf, settings: {file: upf.txt}}\nmax_evals: 3\nworkers: 2\nprogress: 0\nreport: false\n"
        f"runner: {{env: {{CANDLE_DEFAULT_MODEL: {default}}}}}\n")
    r = run_cli([str(tmp_path / "c.yaml"), "--out", str(tmp_path / "out")], cwd=tmp_path, timeout=600)
    assert r.returncode == 0, r.stderr
    ev = sorted(read_journal(tmp_path / "out")["evals"], key=lambda e: e["task_id"])
    assert [e["status"] for e in ev] == ["done"] * 3
    assert [e["metrics"]["epochs_completed"] for e in ev] == [1, 2, 3]
    assert all(e["metrics"]["final_lr"] == pytest.approx(0.001) for e in ev)  # the file's learning_rate (and SGD)
    assert "noise_gaussian" in ev[0]["metrics"]["default_model_ignored"]
