"""Running `mpiexec -n N python -m emews.run ...` from the worker tests."""

from __future__ import annotations

import functools
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from emews.journal import read_journal

ROOT = Path(__file__).resolve().parents[2]
HERE = Path(__file__).resolve().parent


@functools.lru_cache(maxsize=None)
def mpiexec_argv() -> tuple[str, ...]:
    # the launcher installed beside this Python (pip install mpich) first, then PATH
    here = os.path.dirname(sys.executable)
    exe = shutil.which("mpiexec", path=here) or shutil.which("mpiexec") or shutil.which("mpirun")
    if exe is None:
        pytest.fail("mpiexec not found: `pip install mpi4py mpich` (or deselect these tests with -m 'not mpi')")
    try:
        version = subprocess.run([exe, "--version"], capture_output=True, text=True, timeout=30).stdout
    except (OSError, subprocess.TimeoutExpired):
        version = ""
    # more ranks than cores: Hydra (MPICH) allows it; Open MPI must be told
    return (exe, "--oversubscribe") if "Open MPI" in version or "OpenRTE" in version else (exe,)


def env() -> dict[str, str]:
    e = dict(os.environ)
    e["PYTHONPATH"] = os.pathsep.join([str(ROOT), str(HERE), e.get("PYTHONPATH", "")])
    e.pop("CUDA_VISIBLE_DEVICES", None)
    return e


def mpiexec(n: int, args: list[str], cwd: Path, timeout: float = 120) -> subprocess.CompletedProcess:
    """``mpiexec -n n python ARGS`` with the repository and the test objectives importable."""
    cmd = [*mpiexec_argv(), "-n", str(n), sys.executable, *args]
    return subprocess.run(cmd, cwd=cwd, env=env(), capture_output=True, text=True, timeout=timeout)


def run(n: int | None, cfg: dict, tmp_path: Path, name: str = "exp", timeout: float = 120, extra: tuple = ()
        ) -> tuple[subprocess.CompletedProcess, Path]:
    """Write ``cfg``, run it under ``mpiexec -n n`` (``None``: plain python); (process, out dir)."""
    path = tmp_path / f"{name}.yaml"
    path.write_text(yaml.safe_dump(cfg, sort_keys=False))
    out = tmp_path / name
    args = ["-m", "emews.run", str(path), "--out", str(out), *extra]
    if n is None:
        p = subprocess.run([sys.executable, *args], cwd=tmp_path, env=env(), capture_output=True, text=True,
                           timeout=timeout)
    else:
        p = mpiexec(n, args, tmp_path, timeout)
    return p, out


def journal(out: Path) -> dict:
    return read_journal(out)


def config(tmp_path: Path, **changes) -> dict:
    cfg = {
        "experiment": "w",
        "objective": "objectives:where",
        "space": {"i": {"type": "int", "low": 0, "high": 1000}},
        "max_evals": 12,
        "seed": 1,
        "output": str(tmp_path / "runs"),
    }
    cfg.update(changes)
    return cfg
