"""Experiment directories: create one, or reopen one to resume it, under a lock.

::

    open_experiment(cfg, out, how="auto")
        no journal there   -> a new experiment in that directory
        a journal there    -> resume it (how="auto" or "resume"), after checking that the
                              config still describes the same search (space, objective,
                              optimizer); how="fresh" picks a new directory instead
        another run has it -> ExperimentLocked, naming the pid, host and start time

The lock is an advisory ``flock`` on ``DIR/.lock``; the kernel drops it when the process
dies, even by SIGKILL, so a killed run never blocks its own resume.
"""

from __future__ import annotations

import json
import logging
import os
import socket
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .errors import ConfigError
from .journal import JOURNAL_NAME
from .resume import ResumeState, load_resume_state

try:
    import fcntl
except ImportError:  # pragma: no cover - not a POSIX system
    fcntl = None  # type: ignore[assignment]

__all__ = ["Experiment", "ExperimentLocked", "open_experiment", "config_changes",
           "LOCK_NAME", "IDENTITY_KEYS"]

log = logging.getLogger("emews")

LOCK_NAME = ".lock"
#: config keys that define the search; a resume refuses a change to them unless forced
IDENTITY_KEYS = ("space", "objective", "optimizer", "runner", "objectives", "constraints")
#: runner settings that change what an evaluation computes (a timeout or retries do not)
_RUNNER_IDENTITY = ("type", "command", "result_file", "pattern")


class ExperimentLocked(ConfigError):
    """Another live run holds the experiment directory."""


@dataclass
class Experiment:
    """An experiment directory held (locked) by this process; ``resume`` is None on a new one."""

    directory: Path
    resume: ResumeState | None = None
    _lock_fd: int | None = field(default=None, repr=False)

    def close(self) -> None:
        """Release the lock (also released by the kernel when the process ends)."""
        if self._lock_fd is not None:
            try:
                os.close(self._lock_fd)
            except OSError:
                pass
            self._lock_fd = None

    def __enter__(self) -> Experiment:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


def _lock(directory: Path, key: str) -> int | None:
    """Take the experiment's lock, or raise ExperimentLocked naming who holds it."""
    path = directory / LOCK_NAME
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    if fcntl is None:  # pragma: no cover
        return fd
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        try:
            holder = json.loads(os.pread(fd, 4096, 0).decode() or "{}")
        except (OSError, ValueError):
            holder = {}
        os.close(fd)
        who = ""
        if holder:
            when = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(holder.get("started", 0)))
            who = f" (pid {holder.get('pid')} on host {holder.get('host')}, started {when})"
        raise ExperimentLocked(f"{directory} is in use by another emews run{who}; wait for it to end, or start a "
                               "new experiment elsewhere (--fresh, or --out DIR)", key=key) from None
    except OSError as e:  # a file system without flock (some NFS/Lustre mounts)
        log.warning("cannot lock %s (%s); make sure no other run uses this experiment directory", path, e)
    me = json.dumps({"pid": os.getpid(), "host": socket.gethostname(), "started": time.time()}).encode()
    os.ftruncate(fd, 0)
    os.pwrite(fd, me, 0)
    return fd


def _mkdir(d: Path, key: str) -> None:
    if d.exists() and not d.is_dir():
        raise ConfigError(f"output directory {str(d)!r} is a file, not a directory", key=key)
    try:
        d.mkdir(parents=True, exist_ok=True)
    except (FileExistsError, NotADirectoryError):
        raise ConfigError(f"cannot create output directory {str(d)!r}: a parent is a file", key=key) from None


def _free_name(base: Path, name: str) -> Path:
    """``base/name``, or ``name-2``, ``-3``... : the first without a journal."""
    n = 1
    while True:
        d = base / (name if n == 1 else f"{name}-{n}")
        if not (d / JOURNAL_NAME).exists() and not (d.exists() and not d.is_dir()):
            return d
        n += 1


def open_experiment(cfg: Any, out: str | Path | None = None, how: str = "auto", force: bool = False) -> Experiment:
    """Create or reopen the experiment directory of ``cfg`` (``out`` overrides it) and lock it.

    Args:
        cfg: a :class:`~emews.config.Config`.
        out: the experiment directory (default ``cfg.output/cfg.experiment``).
        how: ``auto`` (resume when there is a journal, else start), ``resume`` (there must be
            one), ``fresh`` (a new experiment: with ``out``, that directory must not hold
            one; else the first free ``experiment-N``).
        force: resume even when the config describes a different search.

    Raises:
        ConfigError: nothing to resume, ``out`` holds an experiment on ``fresh``, the config
            changed (naming each change), or the path is unusable.
        ExperimentLocked: another run holds the directory.
        JournalError: the directory's journal.sqlite is not a readable emews journal.
    """
    key = "--out" if out is not None else "output"
    d = Path(out) if out is not None else Path(cfg.output) / cfg.experiment
    if how == "fresh":
        if (d / JOURNAL_NAME).exists():
            if out is not None:
                raise ConfigError(f"{d} already holds an experiment; --fresh needs a new directory (or drop --fresh "
                                  "to resume it)", key=key)
            d = _free_name(Path(cfg.output), cfg.experiment)
    elif how == "resume" and not (d / JOURNAL_NAME).exists():
        raise ConfigError(f"nothing to resume: {d} holds no experiment (no {JOURNAL_NAME}); run without --resume "
                          "to start it", key=key)
    elif how not in ("auto", "resume"):
        raise ValueError(f"how must be auto, resume or fresh, got {how!r}")
    _mkdir(d, key)
    fd = _lock(d, key)
    exp = Experiment(d, None, fd)
    try:
        if (d / JOURNAL_NAME).exists():
            exp.resume = load_resume_state(d)
        if exp.resume is not None:
            changes = config_changes(exp.resume.meta, cfg)
            identity = [c for c in changes if _identity_key(c[0])]
            pinned = bool(exp.resume.completed)  # a search that never produced a result pins nothing
            if identity and not force and pinned:
                lines = "; ".join(f"{k}: {_short(a)} -> {_short(b)}" for k, a, b in identity)
                if getattr(cfg, "source", None) == "search()":  # the API: no --fresh, --out or --force there
                    raise ConfigError(f"cannot resume {d}: this search() is a different search ({lines}). Call it "
                                      "with resume=False for a new experiment, or give it another experiment= name")
                raise ConfigError(f"cannot resume {d}: the config describes a different search ({lines}). "
                                  "Use --fresh (or another --out) for a new experiment, or --force to resume anyway",
                                  getattr(cfg, "source", None))
            for k, a, b in changes:
                if _identity_key(k) and pinned:
                    log.warning("resuming despite a changed %s (--force): %s -> %s", k, _short(a), _short(b))
                else:
                    log.info("resuming with %s changed: %s -> %s", k, _short(a), _short(b))
    except BaseException:
        exp.close()
        raise
    return exp


def _identity_key(key: str) -> bool:
    """True for a change of what the search is (space, objective, optimizer, runner)."""
    return key.split(".")[0].split(" ")[0] in IDENTITY_KEYS


def _short(v: Any, width: int = 120) -> str:
    text = json.dumps(v, sort_keys=True, default=str) if not isinstance(v, str) else v
    return text if len(text) <= width else text[: width - 3] + "..."


def _canon(v: Any) -> Any:
    return json.loads(json.dumps(v, sort_keys=True, default=str))


def _optimizer_of(raw: Any) -> dict:
    if isinstance(raw, dict):
        return {"name": raw.get("name", "random"), "settings": raw.get("settings") or {}}
    return {"name": raw if raw is not None else "random", "settings": {}}


def _code_changes(name: str, old: dict, new: dict) -> list[tuple[str, Any, Any]]:
    """The changes between two :func:`emews._pickling.code_identity` of the objective ``name``."""
    out: list[tuple[str, Any, Any]] = []
    same_python = old.get("python") == new.get("python")  # bytecode of another Python version cannot be compared
    if not same_python:
        log.info("objective %s: recorded under Python %s, now %s: its code is not compared", name, old.get("python"),
                 new.get("python"))
    if same_python and old.get("code") != new.get("code"):
        out.append((f"objective {name}", f"code {old.get('code')}", f"code {new.get('code')} (its body was edited)"))
    a, b = old.get("closure") or {}, new.get("closure") or {}
    for k in list(a) + [k for k in b if k not in a]:
        if a.get(k) != b.get(k):
            out.append((f"objective {name}: the value of {k}", a.get(k, "(absent)"), b.get(k, "(absent)")))
    return out


def config_changes(meta: dict, cfg: Any) -> list[tuple[str, Any, Any]]:
    """``(key, old, new)`` for each difference between the journaled config and ``cfg``.

    ``space``, ``objective``, ``optimizer``, ``objectives``, ``constraints`` and what the runner computes (``runner.type``,
    ``.command``, ``.result_file``, ``.pattern``) define the search; budget, time, worker and
    seed changes are allowed on a resume and listed for information.
    """
    old = meta.get("config") or {}
    new = dict(getattr(cfg, "raw", {}) or {})
    out: list[tuple[str, Any, Any]] = []
    old_space, new_space = _canon(meta.get("space")), _canon(cfg.space.to_dict())
    if old_space != new_space:
        for name in list(old_space or {}) + [n for n in new_space if n not in (old_space or {})]:
            a, b = (old_space or {}).get(name), new_space.get(name)
            if a != b:
                out.append((f"space.{name}", a if a is not None else "(absent)", b if b is not None else "(absent)"))
    if _canon(old.get("objective")) != _canon(new.get("objective")):
        out.append(("objective", old.get("objective"), new.get("objective")))
    elif isinstance(old.get("objective_code"), dict) and isinstance(new.get("objective_code"), dict):
        out.extend(_code_changes(str(new.get("objective")), old["objective_code"], new["objective_code"]))
    a, b = _canon(_optimizer_of(old.get("optimizer"))), _canon(_optimizer_of(new.get("optimizer")))
    if a != b:
        out.append(("optimizer", a, b))
    for k in ("objectives", "constraints"):  # the journaled objective vectors and violations are theirs
        if _canon(old.get(k)) != _canon(new.get(k)):
            out.append((k, old.get(k) if old.get(k) is not None else "(absent)",
                        new.get(k) if new.get(k) is not None else "(absent)"))
    ra, rb = old.get("runner") or {}, new.get("runner") or {}
    for k in _RUNNER_IDENTITY:
        default = "python" if k == "type" else None
        if _canon(ra.get(k, default)) != _canon(rb.get(k, default)):
            out.append((f"runner.{k}", ra.get(k, default), rb.get(k, default)))
    for k in ("max_evals", "max_time", "mode", "batch_size", "workers", "seed", "pool", "deadline"):
        if _canon(old.get(k)) != _canon(new.get(k)):
            out.append((k, old.get(k), new.get(k)))
    return out

