"""A one-node Slurm cluster for the tests: munged, slurmctld and slurmd, started and stopped here.

::

    start_cluster(workdir) ── munge key (kept if present) ── munged (as user munge)
                          ├── slurm.conf in workdir (SLURM_CONF) ── slurmctld ── slurmd
                          └── waits until sinfo shows the node idle
    Cluster.stop() ──────── scontrol shutdown; munged ended (by its pid) if started here

The node declares 16 CPUs whatever the machine has (``SlurmdParameters=config_overrides``,
partition ``OverSubscribe=FORCE``), so several small MPI jobs run at once on 2 cores.
Needs root (slurmd runs jobs as their users) and Debian's ``slurm-wlm`` and ``munge``.
"""

from __future__ import annotations

import os
import pwd
import shutil
import socket
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

BINARIES = ("munged", "slurmctld", "slurmd", "sbatch", "srun", "scontrol", "squeue", "sinfo", "scancel")
SBIN = ("/usr/sbin", "/usr/bin", "/sbin", "/bin")


class ClusterUnavailable(RuntimeError):
    """Slurm cannot start here (the reason says why)."""


def _which(name: str) -> str | None:
    return shutil.which(name) or shutil.which(name, path=os.pathsep.join(SBIN))


def unavailable_reason() -> str | None:
    """Why a cluster cannot be started here, or None (``EMEWS_SLURM_TESTS=off`` says: do not)."""
    if os.environ.get("EMEWS_SLURM_TESTS", "").lower() in ("off", "0", "no"):
        return "switched off (EMEWS_SLURM_TESTS=off)"
    missing = [b for b in BINARIES if _which(b) is None]
    if missing:
        return f"Slurm/munge not installed (missing {', '.join(missing)}; apt-get install slurm-wlm munge)"
    if os.geteuid() != 0:
        return "starting Slurm daemons needs root"
    try:
        pwd.getpwnam("munge")
    except KeyError:
        return "no 'munge' user (install the munge package)"
    return None


SLURM_CONF = """\
ClusterName=emewstest
SlurmctldHost={host}
AuthType=auth/munge
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
SlurmUser=root
SlurmdSpoolDir={dir}/slurmd
StateSaveLocation={dir}/slurmctld
SlurmctldPidFile={dir}/slurmctld.pid
SlurmdPidFile={dir}/slurmd.pid
SlurmctldLogFile={dir}/slurmctld.log
SlurmdLogFile={dir}/slurmd.log
ReturnToService=2
FirstJobId={first_job_id}
MpiDefault=none
KillWait=20
InactiveLimit=0
MinJobAge=600
SchedulerParameters=sched_min_interval=100000
SlurmdParameters=config_overrides
NodeName={host} CPUs=16 RealMemory=16000 State=UNKNOWN
PartitionName=debug Nodes={host} Default=YES MaxTime=INFINITE State=UP OverSubscribe=FORCE:8
"""


@dataclass
class Cluster:
    """A running cluster: ``env`` is what a client needs (``SLURM_CONF``)."""

    workdir: Path
    env: dict[str, str]
    munged_pid: int | None = None  # munged started here (stopped with the cluster)
    started: bool = True  # False: a cluster that was already running (left as it is)
    log: list[str] = field(default_factory=list)

    def stop(self) -> None:
        if not self.started:
            return
        self.cancel_all()
        subprocess.run([_which("scontrol"), "shutdown"], env=self.env, capture_output=True, timeout=60)
        for name in ("slurmctld.pid", "slurmd.pid"):
            _wait_gone(self.workdir / name)
        if self.munged_pid is not None:
            try:
                os.kill(self.munged_pid, 15)
            except ProcessLookupError:
                pass


    def cancel_all(self, timeout: float = 90) -> None:
        """scancel every job, and wait until none is left (slurmd's shutdown leaves running
        steps alone)."""
        squeue = [_which("squeue"), "-h", "-o", "%i"]
        jobs = _run(squeue, self.env).stdout.split()
        if jobs:
            _run([_which("scancel"), *jobs], self.env)
        end = time.monotonic() + timeout
        while _run(squeue, self.env).stdout.split() and time.monotonic() < end:
            time.sleep(0.5)


def _pid(path: Path) -> int | None:
    try:
        return int(path.read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return None


def _alive(pid: int | None) -> bool:
    if pid is None:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def _wait_gone(pidfile: Path, timeout: float = 60) -> None:
    pid = _pid(pidfile)
    end = time.monotonic() + timeout
    while _alive(pid) and time.monotonic() < end:
        time.sleep(0.2)
    if _alive(pid):
        os.kill(pid, 9)


def _munge_works() -> bool:
    munge, unmunge = _which("munge"), _which("unmunge")
    if not munge or not unmunge:
        return False
    try:
        cred = subprocess.run([munge, "-n"], capture_output=True, timeout=10)
        return cred.returncode == 0 and subprocess.run([unmunge], input=cred.stdout, capture_output=True,
                                                       timeout=10).returncode == 0
    except (OSError, subprocess.SubprocessError):
        return False


def _start_munged() -> int | None:
    """munged as user munge, with a key (made when missing); its pid (None: already running)."""
    if _munge_works():
        return None
    user = pwd.getpwnam("munge")
    key = Path("/etc/munge/munge.key")
    if not key.exists():
        key.parent.mkdir(parents=True, exist_ok=True)
        key.write_bytes(os.urandom(1024))
    os.chown(key, user.pw_uid, user.pw_gid)
    key.chmod(0o400)
    for d in ("/run/munge", "/var/log/munge", "/var/lib/munge", "/etc/munge"):
        Path(d).mkdir(parents=True, exist_ok=True)
        os.chown(d, user.pw_uid, user.pw_gid)
    subprocess.run(["su", "-s", "/bin/sh", "munge", "-c", _which("munged")], check=True, capture_output=True,
                   timeout=30)
    end = time.monotonic() + 30
    while not _munge_works():
        if time.monotonic() > end:
            raise ClusterUnavailable("munged started but munge -n | unmunge fails")
        time.sleep(0.2)
    return _pid(Path("/run/munge/munged.pid"))


def _run(argv: list[str], env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run(argv, env=env, capture_output=True, text=True, timeout=60)


def start_cluster(workdir: Path, timeout: float = 120) -> Cluster:
    """Start munged, slurmctld and slurmd with a config in ``workdir``; return when the node
    is idle. A cluster that already answers (``scontrol ping``) is used as it is."""
    reason = unavailable_reason()
    if reason:
        raise ClusterUnavailable(reason)
    env = dict(os.environ)
    ping = _run([_which("scontrol"), "ping"], env)
    if ping.returncode == 0 and "UP" in ping.stdout and _idle_node(env):
        return Cluster(workdir, env, started=False)
    workdir.mkdir(parents=True, exist_ok=True)
    for d in ("slurmd", "slurmctld"):
        (workdir / d).mkdir(exist_ok=True)
    host = socket.gethostname().split(".")[0]
    conf = workdir / "slurm.conf"
    # job ids never repeat across sessions: MPICH names its shared-memory segment after the
    # job step, and a segment left by a killed step of an earlier session hangs MPI_Init
    conf.write_text(SLURM_CONF.format(host=host, dir=workdir, first_job_id=1000 + int(time.time()) % 60_000_000))
    env["SLURM_CONF"] = str(conf)
    munged = _start_munged()
    cluster = Cluster(workdir, env, munged_pid=munged)
    try:
        for daemon in ("slurmctld", "slurmd"):
            p = _run([_which(daemon)], env)  # both daemonize
            if p.returncode != 0:
                raise ClusterUnavailable(f"{daemon} did not start: {p.stderr.strip() or p.stdout.strip()}")
        end = time.monotonic() + timeout
        while not _idle_node(env):
            if time.monotonic() > end:
                logs = "\n".join(_tail(workdir / f) for f in ("slurmctld.log", "slurmd.log"))
                raise ClusterUnavailable(f"the node did not become idle within {timeout:g} s:\n{logs}")
            time.sleep(0.5)
    except BaseException:
        cluster.stop()
        raise
    return cluster


def _idle_node(env: dict[str, str]) -> bool:
    p = _run([_which("sinfo"), "-h", "-o", "%t"], env)
    return p.returncode == 0 and any(s.strip().startswith(("idle", "mix", "alloc")) for s in p.stdout.split())


def _tail(path: Path, n: int = 20) -> str:
    try:
        return f"--- {path.name}\n" + "\n".join(path.read_text().splitlines()[-n:])
    except OSError:
        return f"--- {path.name}: none"
