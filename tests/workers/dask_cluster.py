"""A real Dask cluster for the tests: a ``dask scheduler`` process and ``dask worker`` processes
(one thread each, no nanny, so a SIGKILL of a worker's pid ends that worker for good), all
joined through one scheduler file, each started and stopped by the test."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def _env(gate: Path | None = None) -> dict[str, str]:
    env = dict(os.environ)
    if gate is not None:
        env["EMEWS_GATE_DIR"] = str(gate)
    paths = [str(ROOT), str(ROOT / "tests" / "workers")]
    env["PYTHONPATH"] = os.pathsep.join(paths + [p for p in env.get("PYTHONPATH", "").split(os.pathsep) if p])
    env["PYTHONUNBUFFERED"] = "1"
    return env


class DaskProcesses:
    """A scheduler and its workers as OS processes (``start_worker``, ``kill_worker``, ``kill_scheduler``)."""

    def __init__(self, directory: Path):
        self.directory = Path(directory)
        self.scheduler_file = self.directory / "scheduler.json"
        self.scheduler: subprocess.Popen | None = None
        self.workers: dict[str, subprocess.Popen] = {}
        self._logs: list = []

    def _popen(self, args: list[str], name: str, env: dict[str, str] | None = None) -> subprocess.Popen:
        out = open(self.directory / f"{name}.log", "w")
        self._logs.append(out)
        return subprocess.Popen([sys.executable, "-m", *args], env={**_env(self.directory), **(env or {})}, stdout=out,
                                stderr=subprocess.STDOUT, start_new_session=True)

    def start_scheduler(self, timeout: float = 60.0, env: dict[str, str] | None = None) -> str:
        """Start the scheduler (``env`` added to its environment); returns its address once its
        scheduler file is written."""
        self.scheduler = self._popen(["distributed.cli.dask_scheduler", "--scheduler-file", str(self.scheduler_file),
                                      "--host", "127.0.0.1", "--port", "0", "--no-dashboard"], "scheduler", env)
        deadline = time.monotonic() + timeout
        while not self.scheduler_file.exists() or not self.scheduler_file.read_text().strip():
            assert self.scheduler.poll() is None, (self.directory / "scheduler.log").read_text()
            assert time.monotonic() < deadline, "the scheduler wrote no scheduler file"
            time.sleep(0.05)
        import json

        for _ in range(100):
            try:
                return json.loads(self.scheduler_file.read_text())["address"]
            except (ValueError, KeyError):
                time.sleep(0.05)
        raise AssertionError("unreadable scheduler file")

    def started(self) -> dict[int, list[str]]:
        """pid -> the ``x`` of every attempt it started (the gated objective's markers)."""
        out: dict[int, list[str]] = {}
        for f in self.directory.glob("started-*"):
            _, x, pid = f.name.split("-")
            out.setdefault(int(pid), []).append(x)
        return out

    def start_worker(self, name: str, *args: str, nthreads: int = 1, env: dict[str, str] | None = None
                     ) -> subprocess.Popen:
        """Start one worker process (``nthreads`` threads, ``args`` added to its command line,
        ``env`` to its environment) that joins the scheduler."""
        p = self._popen(["distributed.cli.dask_worker", "--scheduler-file", str(self.scheduler_file),
                         "--nthreads", str(nthreads), "--no-nanny", "--no-dashboard", "--name", name, "--host",
                         "127.0.0.1", "--death-timeout", "20", *args], f"worker-{name}", env)
        self.workers[name] = p
        return p

    def wait_for_workers(self, n: int, timeout: float = 90.0) -> None:
        """Block until ``n`` workers are connected to the scheduler."""
        from distributed import Client

        with Client(scheduler_file=str(self.scheduler_file), timeout=30, set_as_default=False) as c:
            c.wait_for_workers(n, timeout=timeout)

    def kill_worker(self, name: str) -> None:
        p = self.workers.pop(name)
        os.killpg(p.pid, signal.SIGKILL)
        p.wait(30)

    def kill_scheduler(self) -> None:
        assert self.scheduler is not None
        os.killpg(self.scheduler.pid, signal.SIGKILL)
        self.scheduler.wait(30)

    def close(self) -> None:
        for p in list(self.workers.values()) + ([self.scheduler] if self.scheduler else []):
            if p.poll() is None:
                try:
                    os.killpg(p.pid, signal.SIGTERM)
                except ProcessLookupError:
                    pass
        for p in list(self.workers.values()) + ([self.scheduler] if self.scheduler else []):
            try:
                p.wait(5)  # a worker whose scheduler is going may try to reconnect: not worth waiting for
            except subprocess.TimeoutExpired:
                os.killpg(p.pid, signal.SIGKILL)
                p.wait(5)
        self.workers.clear()
        for f in self._logs:
            f.close()
