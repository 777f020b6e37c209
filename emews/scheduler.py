"""The batch scheduler, read at the edge: the job's end, and how to resubmit the job.

::

    environment (SLURM_JOB_ID, PBS_JOBID, LSB_JOBID, FLUX_JOB_ID, SLURM_JOB_END_TIME)
            │
            ▼  once, at start (and so on every resume): one command, a timeout, never fatal
    job_end() ── squeue -h -j ID -o %e  (scontrol show job ID when squeue says nothing)
            │    qstat -f ID            (PBS Pro / Torque: start + walltime, or time left)
            │    bjobs -o time_left ID  (LSF)
            │    flux job timeleft      (Flux)
            ▼
    JobEnd(time, source) ──▶ launch.settings_from_config ──▶ the driver's deadline

    chain_command() ── sbatch --dependency=afterany:$SLURM_JOB_ID SCRIPT  (resubmission)

The driver keeps its one clock and never knows which scheduler there is: it is handed a
deadline (epoch seconds) and the name of where it came from. An explicit ``deadline``
(config or ``--deadline``) always wins; ``SLURM_JOB_END_TIME`` (set by some Slurm versions)
comes next; then the scheduler's own answer. When none gives an end, that is said once in
the log, with the hint to pass ``--deadline``.

The parsers take the commands' text as they print it (functions ``parse_*``); they are
pure, so they are tested on real output without a scheduler.
"""

from __future__ import annotations

import datetime
import logging
import math
import os
import re
import shutil
import subprocess
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

__all__ = ["JobEnd", "job_end", "parse_slurm_time", "parse_squeue_end", "parse_scontrol_end", "parse_qstat_end",
           "parse_bjobs_time_left", "parse_flux_timeleft", "parse_duration", "chain_command", "submit_chain",
           "CHAIN_DEPTH_VAR"]

log = logging.getLogger("emews")

#: seconds a scheduler command may take before it is given up (never fatal)
COMMAND_TIMEOUT = 15.0
#: the latest end taken seriously (year 9999); later values are typos or "no limit"
_LATEST = 253402300799.0
#: the environment variable that counts a chain's jobs (1 in the job submitted by hand)
CHAIN_DEPTH_VAR = "EMEWS_CHAIN_DEPTH"


@dataclass(frozen=True)
class JobEnd:
    """When the batch job ends (epoch seconds; None: unknown) and who said so."""

    time: float | None
    source: str
    job_id: str | None = None
    scheduler: str | None = None  # "slurm", "pbs", "lsf", "flux"


# -- parsers (pure) ----------------------------------------------------------------------------
def parse_slurm_time(text: str) -> float | None:
    """Slurm's ``YYYY-MM-DDTHH:MM:SS`` (local time, as squeue and scontrol print it) as epoch
    seconds; None for ``Unknown``, ``N/A``, ``NONE`` or anything else."""
    text = text.strip()
    try:
        t = datetime.datetime.strptime(text, "%Y-%m-%dT%H:%M:%S").timestamp()
    except ValueError:
        return None
    return t if 0 < t <= _LATEST else None


def parse_squeue_end(text: str) -> float | None:
    """``squeue -h -j ID -o %e``: the end time of the job (first line, first field)."""
    lines = [ln.split() for ln in text.splitlines() if ln.strip()]
    return parse_slurm_time(lines[0][0]) if lines else None


def parse_scontrol_end(text: str) -> float | None:
    """``scontrol show job ID``: the ``EndTime=`` field."""
    m = re.search(r"\bEndTime=(\S+)", text)
    return parse_slurm_time(m.group(1)) if m else None


def parse_duration(text: str) -> float | None:
    """``[[DD-]HH:]MM:SS`` or ``HH:MM`` (PBS/LSF walltimes) or plain seconds, as seconds."""
    text = text.strip()
    if re.fullmatch(r"\d+(\.\d+)?", text):
        return float(text)
    m = re.fullmatch(r"(?:(\d+)-)?(\d+):(\d+)(?::(\d+))?", text)
    if not m:
        return None
    days, a, b, c = m.groups()
    h, mnt, s = (int(a), int(b), int(c)) if c is not None else (int(a), int(b), 0)
    return int(days or 0) * 86400 + h * 3600 + mnt * 60 + s


def _pbs_date(text: str) -> float | None:
    text = " ".join(text.split())
    if re.fullmatch(r"\d+", text):  # Torque prints epoch seconds in some versions
        return float(text)
    try:
        return datetime.datetime.strptime(text, "%a %b %d %H:%M:%S %Y").timestamp()
    except ValueError:
        return None


def parse_qstat_end(text: str, now: float | None = None) -> float | None:
    """``qstat -f ID`` (PBS Pro, OpenPBS, Torque): ``Walltime.Remaining`` (Torque) from
    ``now``, else the start (``stime`` or ``start_time``) plus ``Resource_List.walltime``."""
    fields: dict[str, str] = {}
    key = None
    for line in text.splitlines():
        m = re.match(r"\s+([\w.]+) = (.*)$", line)
        if m:
            key = m.group(1)
            fields[key] = m.group(2).strip()
        elif key is not None and line.startswith("\t"):  # a wrapped continuation line
            fields[key] += line.strip()
    now = time.time() if now is None else now
    remaining = fields.get("Walltime.Remaining")
    if remaining is not None and (left := parse_duration(remaining)) is not None:
        return now + left
    walltime = parse_duration(fields.get("Resource_List.walltime", ""))
    start = _pbs_date(fields.get("stime") or fields.get("start_time") or "")
    if walltime is None or start is None:
        return None
    return start + walltime


def parse_bjobs_time_left(text: str, now: float | None = None) -> float | None:
    """``bjobs -noheader -o time_left ID`` (LSF): ``H:MM`` left, followed by ``L`` (the run
    limit), ``E`` (an estimate) or ``X`` (exceeded); ``-`` when the job has no limit."""
    m = re.search(r"(\d+):(\d\d)\s*([LEX])?", text)
    if not m or m.group(3) == "X":
        return None
    now = time.time() if now is None else now
    return now + int(m.group(1)) * 3600 + int(m.group(2)) * 60


def parse_flux_timeleft(text: str, now: float | None = None) -> float | None:
    """``flux job timeleft``: the seconds left (an integer; very large when unlimited)."""
    text = text.strip()
    if not re.fullmatch(r"\d+(\.\d+)?", text):
        return None
    left = float(text)
    now = time.time() if now is None else now
    return now + left if now + left <= _LATEST and left < 10 * 365 * 86400 else None


# -- asking the scheduler ----------------------------------------------------------------------
Runner = Callable[[Sequence[str], float], "str | None"]


def _run_command(argv: Sequence[str], timeout: float) -> str | None:
    """The command's stdout, or None (not found, failed, too slow): never fatal."""
    exe = shutil.which(argv[0])
    if exe is None:
        return None
    try:
        p = subprocess.run([exe, *argv[1:]], capture_output=True, text=True, timeout=timeout,
                           stdin=subprocess.DEVNULL)
    except (OSError, subprocess.SubprocessError) as e:
        log.debug("%s: %s", " ".join(argv), e)
        return None
    if p.returncode != 0:
        log.debug("%s exited %d: %s", " ".join(argv), p.returncode, p.stderr.strip())
        return None
    return p.stdout


def _from_env_end(env: Mapping[str, str]) -> JobEnd | None:
    v = env.get("SLURM_JOB_END_TIME")
    if not v:
        return None
    try:
        t = float(v)
    except ValueError:
        t = math.nan
    if not (math.isfinite(t) and 0 < t <= _LATEST):
        log.warning("ignoring SLURM_JOB_END_TIME=%r: not epoch seconds", v)
        return None
    return JobEnd(t, "Slurm job end (SLURM_JOB_END_TIME)", env.get("SLURM_JOB_ID"), "slurm")


def job_end(environ: Mapping[str, str] | None = None, run: Runner | None = None,
            timeout: float = COMMAND_TIMEOUT) -> JobEnd:
    """The batch job's end as its scheduler gives it: ``SLURM_JOB_END_TIME``, else one
    question to the scheduler the environment names (Slurm, PBS, LSF, Flux).

    Never raises: a missing command, a slow or failing one, an answer without an end all
    give ``JobEnd(None, ...)`` (the reason in ``source``).

    Args:
        environ: the environment (default ``os.environ``).
        run: runs a command, returning its stdout or None (default: a subprocess with
            ``timeout``); tests pass canned output.
        timeout: seconds a command may take.
    """
    env = os.environ if environ is None else environ
    run = run or _run_command
    now = time.time()
    found = _from_env_end(env)
    if found is not None:
        return found
    if (jid := env.get("SLURM_JOB_ID")):
        out = run(["squeue", "-h", "-j", jid, "-o", "%e"], timeout)
        t = parse_squeue_end(out) if out else None
        if t is None:
            out = run(["scontrol", "show", "job", jid], timeout)
            t = parse_scontrol_end(out) if out else None
        return JobEnd(t, f"Slurm job {jid} end", jid, "slurm")
    if (jid := env.get("PBS_JOBID")):
        out = run(["qstat", "-f", jid], timeout)
        return JobEnd(parse_qstat_end(out, now) if out else None, f"PBS job {jid} end", jid, "pbs")
    if (jid := env.get("LSB_JOBID")):
        out = run(["bjobs", "-noheader", "-o", "time_left", jid], timeout)
        return JobEnd(parse_bjobs_time_left(out, now) if out else None, f"LSF job {jid} end", jid, "lsf")
    if (jid := env.get("FLUX_JOB_ID")):
        out = run(["flux", "job", "timeleft"], timeout)
        return JobEnd(parse_flux_timeleft(out, now) if out else None, f"Flux job {jid} end", jid, "flux")
    return JobEnd(None, "no batch job")


def announce_no_end(end: JobEnd) -> None:
    """Say once why the run has no deadline, with the hint to give one."""
    if end.job_id is None:
        return  # not in a batch job: nothing to say
    log.info("the %s is unknown (the scheduler did not say): tasks run until the job is killed; pass "
             "--deadline (e.g. --deadline +11h50m) for an orderly stop before it", end.source)


# -- chained jobs ------------------------------------------------------------------------------
def chain_command(environ: Mapping[str, str] | None = None) -> list[str] | None:
    """``sbatch --dependency=afterany:JOB SCRIPT`` for the running Slurm batch job (the same
    script again, to start when this job has ended), or None outside a Slurm batch job."""
    env = os.environ if environ is None else environ
    jid = env.get("SLURM_JOB_ID")
    if not jid:
        return None
    sbatch = shutil.which("sbatch", path=env.get("PATH")) or "sbatch"
    script = _job_script(env, jid)
    if script is None:
        return None
    return [sbatch, f"--dependency=afterany:{jid}", script]


def _job_script(env: Mapping[str, str], jid: str) -> str | None:
    """The batch script of job ``jid``: ``scontrol show job`` gives its ``Command=`` (the
    path sbatch was given; Slurm runs a copy of it, so the copy's path is no use)."""
    out = _run_command(["scontrol", "show", "job", jid], COMMAND_TIMEOUT)
    if out:
        m = re.search(r"\bCommand=(\S+)", out)
        workdir = re.search(r"\bWorkDir=(\S+)", out)
        if m and m.group(1) != "(null)":
            path = m.group(1)
            if not os.path.isabs(path) and workdir:
                path = os.path.join(workdir.group(1), path)
            if os.path.isfile(path):
                return path
    return None


def submit_chain(depth: int, chain_max: int, environ: Mapping[str, str] | None = None) -> tuple[list[str] | None, str]:
    """Submit the next job of a chain: returns (the command, what happened) for the log and
    the journal. ``depth`` is this job's place in the chain (1: the job submitted by hand);
    nothing is submitted when ``depth >= chain_max``. Never raises."""
    env = dict(os.environ if environ is None else environ)
    if depth >= chain_max:
        return None, f"not resubmitted: chain_max ({chain_max}) jobs reached"
    argv = chain_command(env)
    if argv is None:
        return None, "not resubmitted: not in a Slurm batch job whose script can be found (scontrol show job)"
    env[CHAIN_DEPTH_VAR] = str(depth + 1)
    env.pop("SLURM_JOB_END_TIME", None)  # sbatch exports the environment: this job's end is not the next one's
    try:
        p = subprocess.run(argv, capture_output=True, text=True, timeout=60, env=env, stdin=subprocess.DEVNULL)
    except (OSError, subprocess.SubprocessError) as e:
        return argv, f"resubmission failed: {e}"
    if p.returncode != 0:
        return argv, f"resubmission failed (exit {p.returncode}): {p.stderr.strip()}"
    return argv, f"resubmitted ({p.stdout.strip()}), job {depth + 1} of at most {chain_max}"


def chain_depth(environ: Mapping[str, str] | None = None) -> int:
    """This job's place in a chain (``EMEWS_CHAIN_DEPTH``, 1 when unset)."""
    env = os.environ if environ is None else environ
    v = env.get(CHAIN_DEPTH_VAR, "1")
    return int(v) if v.isdigit() and int(v) >= 1 else 1
