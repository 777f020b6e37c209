"""The project's own NT3 as a CANDLE model under ``runner: {type: candle}``: imported as a
module, Benchmarks' real ``nt3_default_model.txt`` as its default model file (by
``default_model:``), the proposal laid over it, the result from its IMPROVE_RESULT line."""

from __future__ import annotations

import json
import math

from helpers import ROOT, run_cli, write_config

from emews.journal import read_journal

NT3_DEFAULTS = ROOT / "tests" / "data" / "candle" / "Pilot1" / "NT3" / "nt3_default_model.txt"


def test_nt3_runs_as_a_candle_model_module(tmp_path):
    cfg = {"experiment": "nt3", "runner": {"type": "candle", "model": "benchmarks.candle.nt3",
                                           "default_model": str(NT3_DEFAULTS), "timeout": 600},
           "space": {"learning_rate": {"type": "real", "low": 1e-4, "high": 1e-2, "log": True},
                     "epochs": {"type": "constant", "value": 2}, "conv": {"type": "constant", "value": "32 8 4 32 4 1"},
                     "pool": {"type": "constant", "value": "1 2"}, "batch_size": {"type": "constant", "value": 16},
                     "data_size": {"type": "constant", "value": "tiny"}, "device": {"type": "constant", "value": "cpu"},
                     "threads": {"type": "constant", "value": 1}},
           "optimizer": "random", "max_evals": 2, "workers": 2, "seed": 1, "output": str(tmp_path / "runs"),
           "report": False}
    r = run_cli([str(write_config(tmp_path, cfg))], cwd=ROOT, timeout=900)
    assert r.returncode == 0, r.stderr
    out = tmp_path / "runs" / "nt3"
    evals = read_journal(out)["evals"]
    assert len(evals) == 2 and all(e["status"] == "done" and math.isfinite(e["loss"]) for e in evals)
    for e in evals:
        d = out / "tasks" / str(e["task_id"])
        lines = [ln for ln in (d / "stdout.txt").read_text().splitlines() if ln.startswith("IMPROVE_RESULT")]
        assert float(lines[-1].split()[1]) == e["loss"]
        assert json.loads((d / "history.txt").read_text())["val_loss"] == e["loss"]  # its result dict, as returned
