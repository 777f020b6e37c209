"""``import emews`` stays light: no matplotlib, torch, mpi4py, scikit-optimize or DEAP, and a
local worker's entry module does not pull in numpy, YAML or the optimizers."""

from __future__ import annotations

import json
import subprocess
import sys

from helpers import ROOT

HEAVY = ("matplotlib", "torch", "mpi4py", "skopt", "sklearn", "deap", "scipy", "pandas")


def _modules_after(code: str) -> set[str]:
    probe = f"{code}\nimport json, sys\nprint(json.dumps(sorted(sys.modules)))"
    p = subprocess.run([sys.executable, "-c", probe], cwd=ROOT, capture_output=True, text=True, timeout=120,
                       env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"})
    assert p.returncode == 0, p.stderr
    return set(json.loads(p.stdout.strip().splitlines()[-1]))


def _top(mods: set[str]) -> set[str]:
    return {m.split(".")[0] for m in mods}


def test_import_emews_pulls_in_no_heavy_package():
    mods = _top(_modules_after("import emews"))
    assert not mods & set(HEAVY), mods & set(HEAVY)
    assert "numpy" not in mods and "yaml" not in mods  # the public names load on first use


def test_the_public_names_still_work_and_stay_light():
    mods = _top(_modules_after("import emews\nfrom emews import Space, Optimizer, Results, search, Result, StopSearch\n"
                               "assert emews.Space is Space and callable(search)"))
    assert not mods & set(HEAVY), mods & set(HEAVY)


def test_a_local_worker_imports_only_what_it_runs():
    mods = _modules_after("import emews.workers._local")
    assert not _top(mods) & set(HEAVY)
    assert "numpy" not in _top(mods), "a worker does not need numpy unless its objective does"
    assert not {m for m in mods if m.startswith(("emews.optimizers", "emews.driver", "emews.config", "emews.report"))}


def test_unknown_attribute_is_an_attribute_error():
    import emews

    try:
        emews.no_such_name  # noqa: B018
    except AttributeError as e:
        assert "no_such_name" in str(e)
    else:
        raise AssertionError("emews.no_such_name did not raise")


_NO_MPI4PY = ("import sys\nsys.modules['mpi4py'] = None  # as on a machine without mpi4py: importing it fails\n"
              "from emews.run import main\nsys.exit(main(sys.argv[1:]))\n")


def test_the_quickstart_runs_without_mpi4py_and_the_mpi_pool_names_the_extra(tmp_path):
    """Issue 19 item 7: mpi4py is the ``mpi`` extra; a plain install runs on the local pool, and
    asking for the MPI pool without it says which extra to install (before creating anything)."""
    env = {"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"}
    args = [sys.executable, "-c", _NO_MPI4PY, str(ROOT / "configs" / "quickstart.yaml"), "--set", "max_evals=6",
            "--set", "report=false"]
    p = subprocess.run([*args, "--out", str(tmp_path / "q")], cwd=tmp_path, capture_output=True, text=True,
                       timeout=300, env=env)
    assert p.returncode == 0, p.stderr
    assert "6 evaluations (6 done" in p.stdout
    p = subprocess.run([*args, "--set", "pool=mpi", "--out", str(tmp_path / "m")], cwd=tmp_path, capture_output=True,
                       text=True, timeout=300, env=env)
    assert p.returncode == 2, p.stderr
    assert 'pip install "emews[mpi]"' in p.stderr and "pool" in p.stderr and "Traceback" not in p.stderr
    assert not (tmp_path / "m").exists()


def test_pyproject_declares_what_is_imported():
    tomllib = __import__("tomllib") if sys.version_info >= (3, 11) else __import__("tomli")
    meta = tomllib.loads((ROOT / "pyproject.toml").read_text())
    project = meta["project"]
    names = {d.split(">")[0].split("<")[0].split("=")[0].split("[")[0].strip() for d in project["dependencies"]}
    assert "mpi4py" not in names, "mpi4py is the optional `mpi` extra"
    assert {"scipy", "threadpoolctl", "numpy", "pyyaml", "cloudpickle"} <= names  # mbo imports scipy, threadpoolctl
    extras = project["optional-dependencies"]
    assert any(d.startswith("mpi4py") for d in extras["mpi"]) and any(d.startswith("mpi4py") for d in extras["dev"])
    assert project["license"] == "BSD-3-Clause"  # an SPDX expression, not the deprecated {text = ...} table
