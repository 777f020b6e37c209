from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]


def run_cli(args: list[str], cwd: Path, timeout: float = 120, env: dict | None = None) -> subprocess.CompletedProcess:
    """``python -m emews.run ARGS`` in ``cwd`` with the repository importable."""
    e = dict(os.environ)
    e["PYTHONPATH"] = os.pathsep.join([str(ROOT), e.get("PYTHONPATH", "")])
    if env:
        e.update(env)
    return subprocess.run([sys.executable, "-m", "emews.run", *args], cwd=cwd, env=e, capture_output=True,
                          text=True, timeout=timeout)


def run_cli_then_signal(args: list[str], cwd: Path, sig: int, after: float = 4.0) -> tuple[int, str]:
    """Start ``python -m emews.run ARGS``, send it ``sig`` after ``after`` seconds; (exit code, stderr)."""
    import time

    e = dict(os.environ)
    e["PYTHONPATH"] = os.pathsep.join([str(ROOT), e.get("PYTHONPATH", "")])
    proc = subprocess.Popen([sys.executable, "-m", "emews.run", *args], cwd=cwd, env=e,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    time.sleep(after)
    proc.send_signal(sig)
    _, err = proc.communicate(timeout=60)
    return proc.returncode, err


def base_config(tmp_path: Path, **changes) -> dict:
    cfg = {
        "experiment": "t",
        "objective": "emews.examples:quickstart",
        "space": {
            "learning_rate": {"type": "real", "low": 1e-5, "high": 0.1, "log": True},
            "batch_size": {"type": "ordinal", "values": [16, 32, 64]},
            "optimizer": {"type": "categorical", "values": ["adam", "sgd"]},
            "dropout": {"type": "real", "low": 0.0, "high": 0.9},
            "sleep": {"type": "constant", "value": 0.0},
        },
        "max_evals": 12,
        "workers": 2,
        "seed": 3,
        "output": str(tmp_path / "runs"),
    }
    for k, v in changes.items():
        if v is None:
            cfg.pop(k, None)
        else:
            cfg[k] = v
    return cfg


def write_config(tmp_path: Path, cfg: dict, name: str = "config.yaml") -> Path:
    p = tmp_path / name
    p.write_text(yaml.safe_dump(cfg, sort_keys=False))
    return p


@pytest.fixture
def cli():
    return run_cli
