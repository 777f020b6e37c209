"""Every CANDLE config in configs/ runs unchanged through `python -m emews.run`, shrunk only by
--set overrides (or, for the GA configs, a copy of their Supervisor JSON space with tiny data)."""

import json
import math
import shutil

import pytest

pytest.importorskip("torch")

from emews.journal import read_journal  # noqa: E402
from helpers import ROOT, run_cli  # noqa: E402

TINY = ["--set", "max_evals=2", "--set", "workers=2", "--set", "space.data_size.value=tiny",
        "--set", "space.threads={type: constant, value: 1}", "--set", "space.device={type: constant, value: cpu}"]


@pytest.mark.slow
@pytest.mark.parametrize("name, epochs", [("p1b1_mbo", "{type: int, low: 1, high: 3}"),
                                          ("combo_mbo", "{type: int, low: 1, high: 2}")])
def test_mbo_configs_run_from_the_cli(tmp_path, name, epochs):
    r = run_cli([str(ROOT / "configs" / f"{name}.yaml"), "--out", str(tmp_path / name), *TINY,
                 "--set", f"space.epochs={epochs}"], cwd=tmp_path, timeout=600)
    assert r.returncode == 0, r.stderr
    ev = read_journal(tmp_path / name)["evals"]
    assert len(ev) == 2 and all(e["status"] == "done" for e in ev), ev
    for e in ev:
        assert math.isfinite(e["loss"]) and e["metrics"]["runtime"] > 0


@pytest.mark.slow
@pytest.mark.parametrize("name", ["nt3_ga", "p1b1_ga"])
def test_ga_configs_run_from_the_cli(tmp_path, name):
    cfg_dir = tmp_path / "configs"
    (cfg_dir / "spaces").mkdir(parents=True)
    shutil.copy(ROOT / "configs" / f"{name}.yaml", cfg_dir)
    items = json.loads((ROOT / "configs" / "spaces" / f"{name}.json").read_text())
    for it in items:  # the same Supervisor-format space, on tiny data and few epochs
        if it["name"] == "data_size":
            it["value"] = "tiny"
        if it["name"] == "epochs":
            it.update(lower=1, upper=2, sigma=1)
        if it["name"] == "conv":  # the Supervisor conv choices need >= 10,900 features
            it["values"] = ["16 8 4 16 4 1", "32 8 4 32 4 1"]
        if it["name"] == "pool":
            it["values"] = ["1 2"]
    items.append({"name": "threads", "type": "constant", "value": 1})
    (cfg_dir / "spaces" / f"{name}.json").write_text(json.dumps(items))
    r = run_cli([str(cfg_dir / f"{name}.yaml"), "--out", str(tmp_path / "out"), "--set", "max_evals=4",
                 "--set", "batch_size=4", "--set", "workers=2", "--set", "optimizer.settings.population=4"],
                cwd=tmp_path, timeout=600)
    assert r.returncode == 0, r.stderr
    j = read_journal(tmp_path / "out")
    assert len(j["evals"]) == 4 and all(e["status"] == "done" for e in j["evals"]), j["evals"]
