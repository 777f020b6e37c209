"""A task's checkpoint place: where ``trial.save`` writes and ``trial.load`` reads.

::

    trial.save(state | path, step) ──▶ <place>/.tmp-step-<n>-<pid>/  (state.pkl or a copy of the path)
                                        └─rename─▶ <place>/step-<n>/ ──▶ latest.json {"step": n, ...}
                                                                          (written atomically last:
                                                                           the commit point; older
                                                                           step-* removed after it)
    trial.load() ◀── <place>/latest.json ◀── the node-local place, else the shared one

Each task has one place for all its attempts, so the next attempt of an interrupted task
finds what the last one saved (``trial.resumed_from``). The shared place is
``<experiment>/checkpoints/<task_id>`` (on the experiment's file system, which survives the
job); with ``checkpoint_local`` (``$TMPDIR``, ``/dev/shm``) the checkpoints are written to a
node-local directory instead, and the latest is copied to the shared place when the attempt
ends (:func:`flush`).

A task may also *start from another task's checkpoint* (population-based training: a member's
next step continues its own last checkpoint, or a copy of a better member's)::

    driver (told by the optimizer's put) ──▶ <experiment>/checkpoints/<task_id>/start.json
                                               {"from": <source task id>, "until": <step>}
    trial.load() ◀── the task's own latest checkpoint (an earlier attempt's), else the source
                     task's final one, read in place (no copy: the source is finished and kept
                     until no task starts from it); trial.resumed_from: its step;
                     trial.until: the step this task trains to (its epoch budget)
"""

from __future__ import annotations

import hashlib
import json
import os
import pickle
import shutil
from pathlib import Path
from typing import Any

__all__ = ["CheckpointPlace", "latest", "flush", "place_size", "params_tag", "write_start", "LATEST", "STATE",
           "START"]

#: the file naming a place's latest checkpoint (its commit point)
LATEST = "latest.json"
#: the file a saved Python state is pickled to
STATE = "state.pkl"
#: the file telling a task which checkpoint to start from and its step budget
START = "start.json"


def latest(place: Path) -> dict | None:
    """The latest checkpoint of ``place`` (``{"step", "name", "kind", "file"}``), or None."""
    place = os.fspath(place)  # plain strings: probed once per task, where there is mostly nothing
    try:
        with open(os.path.join(place, LATEST)) as f:
            info = json.loads(f.read())
    except (OSError, ValueError):
        return None
    if not isinstance(info, dict) or not os.path.isdir(os.path.join(place, str(info.get("name")))):
        return None
    return info


def _write_json_atomically(path: Path, data: dict) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(data))
    os.replace(tmp, path)


def _copy(src: Path, dst: Path) -> None:
    if src.is_dir():
        shutil.copytree(src, dst)
    else:
        shutil.copy2(src, dst)


def _rm(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        try:
            path.unlink()
        except OSError:
            pass


def _prune(place: Path, keep: str) -> None:
    """Remove every checkpoint of ``place`` but ``keep`` (and stale temporaries)."""
    for p in place.iterdir():
        if p.name != keep and (p.name.startswith("step-") or p.name.startswith(".tmp-")):
            _rm(p)


def flush(src: Path, dst: Path) -> dict | None:
    """Copy the latest checkpoint of place ``src`` to place ``dst`` (atomically: a temporary
    name, then a rename, then ``latest.json``); returns its info, None when ``src`` has none."""
    info = latest(src)
    if info is None:
        return None
    dst.mkdir(parents=True, exist_ok=True)
    have = latest(dst)
    if have is not None and have.get("name") == info["name"]:
        return info
    tmp = dst / f".tmp-{info['name']}-{os.getpid()}"
    _rm(tmp)
    _copy(src / info["name"], tmp)
    target = dst / info["name"]
    _rm(target)
    os.rename(tmp, target)
    _write_json_atomically(dst / LATEST, info)
    _prune(dst, info["name"])
    return info


def write_start(place: Path, source: int | None, until: float | None) -> None:
    """Tell the task of ``place`` to start from task ``source``'s latest checkpoint (None: from
    scratch) and to train until step ``until`` (None: no budget given)."""
    place.mkdir(parents=True, exist_ok=True)
    _write_json_atomically(place / START, {"from": source, "until": until})


def place_size(path: Path) -> int:
    """Bytes under ``path`` (a file or a directory)."""
    path = Path(path)
    if path.is_file():
        return path.stat().st_size
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def params_tag(params: dict) -> str:
    """A short digest of a task's parameters (which parameters a checkpoint was made for)."""
    text = json.dumps(params, sort_keys=True, default=str)
    return hashlib.sha1(text.encode()).hexdigest()[:16]


def _step_name(step: float) -> str:
    s = float(step)
    return f"step-{int(s)}" if s.is_integer() else f"step-{s:g}"


class CheckpointPlace:
    """One task's checkpoint place (see the module docstring).

    Args:
        task_id: the task.
        shared: the experiment's checkpoint directory (``<experiment>/checkpoints``), or
            None (outside an experiment: a place under the system's temporary directory).
        local: the node-local parent (``$TMPDIR``, ``/dev/shm``; variables expanded on the
            worker), or None: checkpoints are written to the shared place directly.
        params: the task's parameters: a checkpoint saved for other parameters (a task id
            given again after a kill that left the journal without it) is not resumed from.
        empty: the place is known to hold no checkpoint yet (:meth:`latest` looks only
            after a :meth:`save`): a first attempt in an experiment where no task had saved
            one when its worker started (see :class:`~emews.workers._runners.PythonRunner`).
    """

    def __init__(self, task_id: int, shared: str | os.PathLike | None = None, local: str | None = None,
                 params: dict | None = None, empty: bool = False):
        if shared is None:
            import tempfile

            shared = Path(tempfile.gettempdir()) / f"emews-checkpoints-{os.getpid()}"
        # plain strings, made Paths when used: a place is made for every task, and most
        # tasks neither save nor find a checkpoint (only latest() is called)
        self._shared = os.path.join(os.fspath(shared), str(task_id))
        self._params = params
        self._tag: str | None = None
        self._local = bool(local)
        self._empty = empty
        self._start: dict | None = None
        if local:
            base = os.path.expandvars(os.path.expanduser(local))
            tag = hashlib.sha1(str(Path(shared).resolve()).encode()).hexdigest()[:12]
            self._dir = os.path.join(base, f"emews-{tag}", str(task_id))
        else:
            self._dir = self._shared

    @property
    def shared(self) -> Path:
        """The task's place in the experiment (``<experiment>/checkpoints/<task_id>``)."""
        return Path(self._shared)

    @property
    def dir(self) -> Path:
        """Where the task's checkpoints are written: the node-local place, else :attr:`shared`."""
        return Path(self._dir)

    @property
    def tag(self) -> str | None:
        """The digest of the task's parameters (:func:`params_tag`; None: not given), computed
        when first needed (most tasks never save nor find a checkpoint)."""
        if self._tag is None and self._params is not None:
            self._tag = params_tag(self._params)
        return self._tag

    @property
    def node_local(self) -> bool:
        """True when checkpoints are written to a node-local directory."""
        return self._local

    def start(self) -> dict:
        """What the driver wrote for this task (``{"from": task id, "until": step}``), or ``{}``
        (read once)."""
        if self._start is None:
            try:
                start = json.loads((self.shared / START).read_text())
            except (OSError, ValueError):
                start = {}
            self._start = start if isinstance(start, dict) else {}
        return self._start

    def start_env(self) -> dict[str, str]:
        """The start as environment variables for a command: ``EMEWS_CHECKPOINT_FROM`` (the
        directory of the task it starts from) and ``EMEWS_CHECKPOINT_UNTIL`` (the step to train to)."""
        start, env = self.start(), {}
        if isinstance(start.get("from"), int):
            env["EMEWS_CHECKPOINT_FROM"] = str(self.shared.parent / str(start["from"]))
        if isinstance(start.get("until"), (int, float)):
            env["EMEWS_CHECKPOINT_UNTIL"] = str(start["until"])
        return env

    def _source(self) -> Path | None:
        source = self.start().get("from")
        return self.shared.parent / str(int(source)) if isinstance(source, int) else None

    def latest(self) -> dict | None:
        """The latest checkpoint: the node-local one, else the shared one (another node's,
        flushed), else the final one of the task this one starts from (``start.json``, which
        is looked for also in an ``empty`` place); None when there is none for these parameters."""
        info = None if self._empty else self._mine(latest(self._dir))
        if info is None and self._local and not self._empty:
            info = self._mine(latest(self._shared))
            if info is not None:
                info = dict(info, shared=True)
        if info is None:
            source = self._source()
            found = latest(source) if source is not None else None
            if found is not None:
                info = dict(found, source=int(source.name))
        return info

    def _mine(self, info: dict | None) -> dict | None:
        if info is None or self.tag is None or info.get("params") in (None, self.tag):
            return info
        return None

    def save(self, state_or_path: Any, step: float) -> Path:
        """Save a checkpoint at ``step``: a path (file or directory) is copied, anything
        else is pickled. Returns the checkpoint's directory."""
        self._empty = False
        self.dir.mkdir(parents=True, exist_ok=True)
        name = _step_name(step)
        tmp = self.dir / f".tmp-{name}-{os.getpid()}"
        _rm(tmp)
        tmp.mkdir()
        is_path = isinstance(state_or_path, (str, os.PathLike)) and os.path.exists(state_or_path)
        if is_path:
            src = Path(state_or_path)
            _copy(src, tmp / src.name)
            info = {"step": float(step), "name": name, "kind": "path", "file": src.name}
        else:
            with open(tmp / STATE, "wb") as f:
                pickle.dump(state_or_path, f, protocol=pickle.HIGHEST_PROTOCOL)
            info = {"step": float(step), "name": name, "kind": "state", "file": STATE}
        if float(step).is_integer():
            info["step"] = int(step)
        if self.tag is not None:
            info["params"] = self.tag
        target = self.dir / name
        _rm(target)
        os.rename(tmp, target)
        _write_json_atomically(self.dir / LATEST, info)
        _prune(self.dir, name)
        return target

    def load(self) -> Any:
        """The latest checkpoint: the state saved, or the path of the file saved; None when
        there is none."""
        info = self.latest()
        if info is None:
            return None
        if "source" in info:
            base = self.shared.parent / str(info["source"])
        else:
            base = self.shared if info.get("shared") else self.dir
        where = base / info["name"] / info["file"]
        if info.get("kind") == "state":
            with open(where, "rb") as f:
                return pickle.load(f)
        return where

    def flush(self) -> dict | None:
        """Copy the node-local latest checkpoint to the shared place (nothing to do when
        checkpoints are written there directly)."""
        if not self.node_local:
            return latest(self.shared)
        return flush(self.dir, self.shared)
