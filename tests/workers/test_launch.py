"""One launch path: ``python -m emews.run`` and ``emews.search`` both go through
:func:`emews.launch.launch`, on the local pool and under ``mpiexec -n 3`` on the MPI pool."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest

from mpirun import config, env, journal, mpiexec, run

SCRIPT = textwrap.dedent('''
    import json, sys
    import emews
    import emews.launch

    calls = []
    real = emews.launch.launch

    def spy(cfg, *args, **kwargs):
        calls.append(cfg.source)
        return real(cfg, *args, **kwargs)

    emews.launch.launch = spy
    import emews.api
    emews.api.launch = spy  # search() calls the launch function by this name

    if __name__ == "__main__":
        import os
        res = emews.search("objectives:where", {"i": {"type": "int", "low": 0, "high": 1000}}, max_evals=6,
                           workers=2, seed=1, output=sys.argv[1], experiment="s", report=False)
        # one file per process: the ranks' stdout lines may interleave under mpiexec
        rank = os.environ.get("PMI_RANK", os.environ.get("OMPI_COMM_WORLD_RANK", "0"))
        with open(os.path.join(sys.argv[1], f"rank-{rank}.json"), "w") as f:
            json.dump({"calls": calls, "results": None if res is None else len(res),
                       "pool": None if res is None else res.meta["pool"]}, f)
''')


def _answers(tmp_path):
    import json

    return [json.loads(f.read_text()) for f in sorted((tmp_path / "out").glob("rank-*.json"))]


def _search(tmp_path, n):
    script = tmp_path / "search_script.py"
    script.write_text(SCRIPT)
    (tmp_path / "out").mkdir(exist_ok=True)
    args = [str(script), str(tmp_path / "out")]
    if n is None:
        return subprocess.run([sys.executable, *args], cwd=tmp_path, env=env(), capture_output=True, text=True,
                              timeout=120)
    return mpiexec(n, args, tmp_path)


def test_search_uses_the_launch_function_on_the_local_pool(tmp_path):
    p = _search(tmp_path, None)
    assert p.returncode == 0, p.stderr
    assert _answers(tmp_path) == [{"calls": ["search()"], "results": 6, "pool": "local"}]


@pytest.mark.mpi
def test_search_under_mpiexec_runs_on_the_mpi_pool(tmp_path):
    p = _search(tmp_path, 3)
    assert p.returncode == 0, p.stderr
    lines = _answers(tmp_path)
    assert len(lines) == 3, (p.stdout, p.stderr)  # every rank called search() once, through launch()
    assert all(x["calls"] == ["search()"] for x in lines)
    drivers = [x for x in lines if x["results"] is not None]
    assert drivers == [{"calls": ["search()"], "results": 6, "pool": "mpi"}]  # rank 0; the workers got None
    j = journal(tmp_path / "out" / "s")
    assert j["meta"]["pool"] == "mpi" and {e["worker"] for e in j["evals"]} <= {1, 2}


@pytest.mark.mpi
def test_the_cli_goes_through_the_same_launch_function(tmp_path, monkeypatch):
    """The CLI's ``main`` calls ``emews.launch.launch`` (checked in-process), and under
    ``mpiexec -n 3`` the CLI run lands on the MPI pool."""
    import emews.launch
    import emews.run

    seen = []
    real = emews.launch.launch

    def spy(cfg, *a, **k):
        seen.append(cfg.source)
        return real(cfg, *a, **k)

    monkeypatch.setattr(emews.run, "launch", spy)
    monkeypatch.syspath_prepend(str(tmp_path))
    cfg = config(tmp_path, objective="emews.examples:quickstart", max_evals=4, workers=1, report=False,
                 space={"learning_rate": {"type": "real", "low": 0.001, "high": 0.1},
                        "batch_size": {"type": "ordinal", "values": [16, 32]},
                        "optimizer": {"type": "categorical", "values": ["adam"]},
                        "dropout": {"type": "real", "low": 0.0, "high": 0.5}})
    import yaml

    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump(cfg))
    assert emews.run.main([str(path), "--out", str(tmp_path / "local"), "-q"]) == 0
    assert seen == [str(path)]
    p, out = run(3, cfg, tmp_path, name="mpi")
    assert p.returncode == 0, p.stderr
    assert journal(out)["meta"]["pool"] == "mpi"
