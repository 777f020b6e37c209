"""Supervisor's real GA files against the real CANDLE objectives: how many evaluations succeed.

    python benchmarks/quality/supervisor_ga.py [EVALS] [nt3 p1b1 combo]

Runs ``ga`` (population 16, batch mode, 2 workers) with the unchanged
``workflows/GA/data/{model}_param_space_ga.json`` (tests/data/supervisor) on tiny data, one
epoch, and prints per model the evaluations done and the distinct failure reasons. Before the
optimizer knobs followed the Keras baselines, every evaluation failed (rho/momentum/beta >= 1).
"""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

import emews  # noqa: E402
from benchmarks.candle import combo, nt3, p1b1  # noqa: E402
from emews.formats import read_supervisor_json

DATA = ROOT / "tests" / "data" / "supervisor" / "workflows" / "GA" / "data"
RUN = {"nt3": nt3.run, "p1b1": p1b1.run, "combo": combo.run}
# run control only; Supervisor's NT3 conv choices need >= 10,900 features
FIXED = {"nt3": {"n_features": 12000, "n_train": 32, "n_test": 16}, "p1b1": {"data_size": "tiny"},
         "combo": {"data_size": "tiny"}}


def make(model: str):
    run, fixed = RUN[model], {**FIXED[model], "epochs": 1, "threads": 1, "device": "cpu"}

    def objective(params):
        return run({**params, **fixed})

    return objective


if __name__ == "__main__":
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 32
    out = tempfile.mkdtemp(prefix="supervisor_ga_")
    for model in sys.argv[2:] or ["nt3", "p1b1", "combo"]:
        space = read_supervisor_json(DATA / f"{model}_param_space_ga.json")
        t = time.time()
        res = emews.search(make(model), space, optimizer="ga", max_evals=n, workers=2, seed=1, mode="batch",
                           batch_size=16, settings={"population": 16}, output=out, progress=0, report=False)
        why = sorted({(r.get("error") or "").strip().splitlines()[-1][:120] for r in res.rows if r["status"] != "done"})
        diverged = sum(1 for r in res.rows if r["status"] != "done" and (r.get("metrics") or {}).get("diverged"))
        print(f"{model}: {res.count('done')}/{len(res)} done, {len(res) - res.count('done')} failed "
              f"({diverged} diverged in training), {time.time() - t:.0f} s; {why}")
