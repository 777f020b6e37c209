"""Child processes of a worker: start in their own process group, wait with a deadline,
kill the whole group, describe how they ended.

Used by the ``isolated`` and ``command`` runners. Children are started with
``subprocess.Popen`` (fork + exec, never a bare fork: safe after ``MPI_Init``) and
``start_new_session=True``, so the child and everything it starts share a process group
that one ``killpg`` reaches. A task's processes never outlive it: when the child exits, any
process it left behind in its group is killed too.
"""

from __future__ import annotations

import os
import select
import signal
import subprocess
import time
from collections.abc import Mapping

from .._childsig import die_with_parent  # re-exported: process plumbing lives together

__all__ = ["child_env", "wait_exit", "kill_group", "reap", "describe_exit", "tail", "die_with_parent"]

# Variables by which an MPI launcher tells a process its place in the job (MPICH/Hydra and
# PMI-1/2, PMIx, Open MPI, MVAPICH, Slurm's PMI). A child that inherits them and initializes
# MPI would try to join the worker's job; without them it starts as an MPI singleton.
_LAUNCHER_PREFIXES = ("PMI_", "PMIX_", "OMPI_COMM_WORLD_", "OMPI_MCA_ess", "OMPI_MCA_orte", "OMPI_MCA_pmix",
                      "MPI_LOCALRANKID", "MPI_LOCALNRANKS", "MV2_COMM_WORLD_", "HYDRA_", "ALPS_APP_PE")


def child_env(extra: Mapping[str, str] | None = None, gpu: str | None = None) -> dict[str, str]:
    """The environment of a task's child process.

    ``os.environ`` without the MPI launcher's variables, then ``extra`` (``runner.env``),
    then ``CUDA_VISIBLE_DEVICES`` from the worker's GPU binding (the binding wins).
    """
    env = {k: v for k, v in os.environ.items() if not k.startswith(_LAUNCHER_PREFIXES)}
    if extra:
        env.update({str(k): str(v) for k, v in extra.items()})
    if gpu is not None:
        env["CUDA_VISIBLE_DEVICES"] = gpu
    return env


def _pidfd(pid: int) -> int | None:
    opener = getattr(os, "pidfd_open", None)
    if opener is None:
        return None
    try:
        return opener(pid)
    except OSError:  # old kernel, or the process is already gone
        return None


def wait_exit(proc: subprocess.Popen, timeout: float | None, read_fd: int | None = None,
              sink: bytearray | None = None, until_data: bool = False) -> bool:
    """Wait until ``proc`` exits or ``timeout`` seconds pass; True when it exited.

    Blocks in ``select`` on a pidfd (Linux) rather than polling. When ``read_fd`` is given,
    what arrives on it meanwhile is appended to ``sink`` (so a child writing a large result
    to a pipe never blocks on a full pipe). With ``until_data`` it also returns (False) as
    soon as something has been read.
    """
    deadline = None if timeout is None else time.monotonic() + timeout
    pidfd = _pidfd(proc.pid)
    try:
        if pidfd is None:
            return _wait_exit_polling(proc, deadline, read_fd, sink, until_data)
        reading = read_fd is not None
        while True:
            # the pidfd turns readable when the child exits; it is not reaped here, so its
            # process group id stays reserved until reap() or kill_group() has used it
            left = None if deadline is None else max(0.0, deadline - time.monotonic())
            fds = [pidfd, read_fd] if reading else [pidfd]
            ready, _, _ = select.select(fds, [], [], left)
            if pidfd in ready:
                return True
            if not ready and left is not None and deadline is not None and time.monotonic() >= deadline:
                return False
            if reading and read_fd in ready:
                chunk = os.read(read_fd, 1 << 16)
                if chunk:
                    sink.extend(chunk)  # type: ignore[union-attr]
                    if until_data:
                        return False
                else:
                    reading = False
    finally:
        if pidfd is not None:
            os.close(pidfd)


def _wait_exit_polling(proc: subprocess.Popen, deadline: float | None, read_fd: int | None,
                       sink: bytearray | None, until_data: bool = False) -> bool:
    """``wait_exit`` without pidfds (macOS): read until EOF, then poll for the exit."""
    reading = read_fd is not None
    delay = 0.001
    while True:
        if proc.poll() is not None:
            return True
        left = None if deadline is None else deadline - time.monotonic()
        if left is not None and left <= 0:
            return False
        if reading:
            ready, _, _ = select.select([read_fd], [], [], left)
            if ready:
                chunk = os.read(read_fd, 1 << 16)  # type: ignore[arg-type]
                if chunk:
                    sink.extend(chunk)  # type: ignore[union-attr]
                    if until_data:
                        return False
                else:
                    reading = False
            continue
        time.sleep(delay if left is None else min(delay, left))
        delay = min(delay * 2, 0.05)


def _signal_group(pgid: int, sig: int) -> bool:
    try:
        os.killpg(pgid, sig)
        return True
    except (ProcessLookupError, PermissionError):
        return False


def kill_group(proc: subprocess.Popen, grace: float) -> str:
    """Kill the child's whole process group: SIGTERM, then SIGKILL after ``grace`` seconds.

    Returns a short account of what was sent, for the error text.
    """
    pgid = proc.pid  # start_new_session=True: the child leads its own group
    t0 = time.monotonic()
    termed = _signal_group(pgid, signal.SIGTERM)
    ended = termed and grace > 0 and wait_exit(proc, grace)
    took = time.monotonic() - t0
    # the rest of the group (or a leader that ignored SIGTERM); the group lives on while the
    # leader is unreaped, so this succeeds even when nothing but the ended leader was left
    killed = _signal_group(pgid, signal.SIGKILL)
    proc.wait()
    if not termed:
        return "SIGKILL" if killed else "nothing (already gone)"
    if ended:
        return f"SIGTERM; it ended {took:.1f} s later"
    if grace <= 0:
        return "SIGTERM and SIGKILL at once (kill_grace 0)"
    return f"SIGTERM, then SIGKILL after the kill_grace of {grace:g} s (SIGTERM did not end it)"


def reap(proc: subprocess.Popen) -> None:
    """After the child exited: kill what it left running in its group, collect its status."""
    _signal_group(proc.pid, signal.SIGKILL)
    proc.wait()


def describe_exit(returncode: int) -> str:
    """``exited with code 3`` / ``killed by signal SIGSEGV (11): segmentation fault``."""
    if returncode >= 0:
        return f"exited with code {returncode}"
    num = -returncode
    try:
        name = signal.Signals(num).name
    except ValueError:
        name = f"signal {num}"
    hint = {
        signal.SIGSEGV: ": segmentation fault",
        signal.SIGKILL: " (sent by the kernel's out-of-memory killer, or by a user or the batch system)",
        signal.SIGABRT: ": aborted",
        signal.SIGBUS: ": bus error",
        signal.SIGFPE: ": floating-point exception",
    }.get(num, "")
    return f"killed by signal {name} ({num}){hint}"


def tail(data: bytes | str, lines: int = 20, limit: int = 4000) -> str:
    """The last ``lines`` lines of ``data`` (at most ``limit`` characters)."""
    if isinstance(data, bytes):
        data = data[-limit * 4:].decode("utf-8", "replace")
    text = "\n".join(data.rstrip().splitlines()[-lines:])
    return text[-limit:]
