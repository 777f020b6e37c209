"""The ``command`` runner: each evaluation runs an external program (never through a shell).

::

    worker ──▶ <workdir>/<task_id>[-<attempt>]/params.json        (the parameters, JSON)
           ──▶ Popen(argv from the template, cwd=task dir, own session, env)
                   stdout ─▶ stdout.txt     stderr ─▶ stderr.txt
           ◀── loss: result file (JSON number or {"loss": ..., metrics...})
                 or the last stdout line matching ``pattern``

Config keys (``runner:``)::

    type: command
    command: [python, "{config_dir}/train.py", --params, "{params_file}", --lr, "{params[lr]}"]
    result_file: result.json   # in the task directory; else the loss is read from stdout
    pattern: '^val_loss: (\\S+)'   # one group (or a group named "loss"); default '^\\s*loss\\s*[:=]\\s*(\\S+)'
    env: {OMP_NUM_THREADS: 4}  # merged over the worker's environment
    timeout: 3600              # seconds; then the process group gets SIGTERM, SIGKILL after kill_grace
    kill_grace: 5
    workdir: tasks             # parent of the task directories (default: <experiment dir>/tasks)
    report_pattern: 'epoch (\\d+) .* val_loss[=:] (\\S+)'   # intermediate reports (early stopping)
    report_file: progress.log  # match the lines appended to this file instead of stdout

Intermediate reports: while the command runs, each new line of its stdout (or of
``report_file`` in the task directory) that ``report_pattern`` matches is a report: groups
named ``step`` and ``loss``, or two groups (step, then loss); other named groups become
metrics. The worker reads the new lines every ``REPORT_POLL`` seconds. When the driver stops
the task, its process group gets SIGTERM (SIGKILL after ``kill_grace``) and the result is
``stopped`` with the last judged report's loss and step.

Placeholders in the template (``str.format`` syntax, ``{{``/``}}`` for literal braces):
``{params_file}``, ``{task_dir}``, ``{task_id}``, ``{attempt}``, ``{result_file}`` (absolute
path of the result file, ``result.json`` unless ``result_file`` names another),
``{config_dir}`` (the config file's directory), ``{python}`` (this Python interpreter) and
``{params[NAME]}`` for the value of parameter ``NAME`` (``{params[lr]:.3g}`` formats it).
Unknown placeholders and parameter names are config errors.

The command runs **in its task directory**, so relative paths in the template are relative
to it: name your script ``{config_dir}/train.py`` or by an absolute path (a relative path to
an existing file is reported at config time). The executable (``command[0]``) is looked up
on ``PATH`` or, when it contains a ``/``, relative to the working directory or the config's
directory; a missing executable is a config error. The child's environment is the worker's
minus the MPI launcher's variables, plus ``runner.env``, ``CUDA_VISIBLE_DEVICES`` from the
GPU binding and ``EMEWS_TASK_ID``, ``EMEWS_ATTEMPT``, ``EMEWS_TASK_DIR``,
``EMEWS_PARAMS_FILE``, ``EMEWS_RESULT_FILE``.

A non-zero exit is a failed result with the last lines of ``stderr.txt``; a missing or
unparsable result is a failed result that says what was expected where.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import re
import shutil
import string
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from ..errors import ConfigError
from ..task import TIMEOUT, Outcome, Task, outcome_from_value
from . import _procs
from ._runners import RUNNERS

__all__ = ["CommandRunner", "check_command_spec", "check_env", "check_report_pattern", "PLACEHOLDERS", "DEFAULT_PATTERN",
           "DEFAULT_RESULT_FILE", "REPORT_POLL"]

#: the placeholders a command template may use (besides ``{params[NAME]}``)
PLACEHOLDERS = ("params_file", "task_dir", "task_id", "attempt", "result_file", "config_dir", "python")
DEFAULT_PATTERN = r"^\s*loss\s*[:=]\s*(\S+)"
DEFAULT_RESULT_FILE = "result.json"
_FORMATTER = string.Formatter()
_STDOUT_TAIL = 1 << 20  # bytes of stdout searched for the loss line
#: seconds between two looks at a running command's new output lines (with a report_pattern)
REPORT_POLL = 0.2


def check_report_pattern(pattern: Any, source: str, key: str = "runner.report_pattern") -> re.Pattern:
    """The compiled ``report_pattern``: groups ``step`` and ``loss`` (named), or two groups.

    Raises:
        ConfigError: not a regular expression, or no group for the step or the loss.
    """
    if not isinstance(pattern, str) or not pattern:
        raise ConfigError(f"must be a regular expression, got {pattern!r}", source, key)
    try:
        rx = re.compile(pattern)
    except re.error as e:
        raise ConfigError(f"invalid regular expression {pattern!r}: {e}", source, key) from None
    named = rx.groupindex
    if "loss" in named and "step" in named:
        return rx
    if rx.groups < 2 or ("loss" in named) != ("step" in named):
        missing = "the loss" if "loss" not in named and rx.groups < 2 else "the step"
        raise ConfigError(f"{pattern!r} has no group for {missing}: give groups named 'step' and 'loss', or two "
                          f"groups (the step, then the loss), e.g. 'epoch (\\d+) .* val_loss[=:] (\\S+)'; "
                          f"it has {rx.groups} group(s)", source, key)
    return rx


# -- config-time checks ----------------------------------------------------------------------
def _fields(arg: str, source: str, key: str) -> list[str]:
    """The placeholder names in one template argument."""
    try:
        parsed = list(_FORMATTER.parse(arg))
    except ValueError as e:
        raise ConfigError(f"{arg!r}: {e}; write {{{{ and }}}} for literal braces", source, key) from None
    names = []
    for _literal, field, spec, _conv in parsed:
        if field is None:
            continue
        if spec and "{" in spec:
            raise ConfigError(f"{arg!r}: nested placeholders in a format spec are not supported", source, key)
        names.append(field)
    return names


def _check_field(field: str, arg: str, names: Sequence[str] | None, source: str, key: str) -> None:
    known = ", ".join("{" + p + "}" for p in PLACEHOLDERS) + ", {params[NAME]}"
    if field == "" or field.isdigit():
        raise ConfigError(f"{arg!r}: positional placeholder {{{field}}}; use a named one: {known}", source, key)
    m = re.fullmatch(r"params\[([^\]]+)\]", field)
    if m:
        if names is not None and m.group(1) not in names:
            raise ConfigError(f"{arg!r}: {{{field}}} names no parameter of the space; parameters: {', '.join(names)}",
                              source, key)
        return
    if field not in PLACEHOLDERS:
        raise ConfigError(f"{arg!r}: unknown placeholder {{{field}}}; known: {known}", source, key)


def check_env(value: Any, source: str, key: str = "runner.env") -> dict[str, str]:
    """``runner.env`` as a ``{str: str}`` dict (numbers are converted; other values are errors)."""
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise ConfigError(f"must be a mapping of variable names to values, got {value!r}", source, key)
    out = {}
    for k, v in value.items():
        if not isinstance(k, str) or not k or "=" in k:
            raise ConfigError(f"{k!r} is not a valid environment variable name", source, key)
        if isinstance(v, bool) or not isinstance(v, (str, int, float)):
            raise ConfigError(f"must be a string or a number (quote it in YAML), got {v!r}", source, f"{key}.{k}")
        out[k] = str(v)
    return out


def _resolve_executable(exe: str, env: Mapping[str, str], base_dir: Path, source: str) -> str:
    key = "runner.command[0]"
    if exe == "{python}":
        return exe
    if "/" in exe:
        p = Path(exe).expanduser()
        candidates = [p] if p.is_absolute() else [Path.cwd() / p, base_dir / p]
        for c in candidates:
            if c.is_file():
                if not os.access(c, os.X_OK):
                    raise ConfigError(f"{exe!r} ({c}) is not executable: chmod +x it, or run it through its "
                                      "interpreter, e.g. [bash, script.sh]", source, key)
                return str(c.resolve())
        looked = " or ".join(str(c) for c in candidates)
        raise ConfigError(f"executable {exe!r} not found (looked for {looked})", source, key)
    if shutil.which(exe, path=env.get("PATH", os.environ.get("PATH"))) is None:
        hint = f"; to run {exe!r} from {base_dir}, write './{exe}'" if (base_dir / exe).is_file() else ""
        raise ConfigError(f"executable {exe!r} not found on PATH{hint}", source, key)
    return exe


def check_command_spec(spec: dict, source: str, names: Sequence[str] | None = None,
                       base_dir: str | Path | None = None) -> None:
    """Validate (and normalize, in place) the ``runner`` mapping of a ``type: command`` runner.

    Args:
        spec: the runner mapping; ``command`` becomes a list of strings with the executable
            resolved, ``env`` a ``{str: str}`` dict, ``config_dir`` is added.
        source: the config file (for error messages).
        names: the space's parameter names, to check ``{params[NAME]}`` (skipped when None).
        base_dir: the config file's directory (default: the working directory).

    Raises:
        ConfigError: naming the key and the value at fault.
    """
    base = Path(base_dir) if base_dir is not None else Path.cwd()
    cmd = spec.get("command")
    if cmd is None:
        raise ConfigError("missing required key for runner.type: command, e.g. [python, '{config_dir}/train.py', "
                          "--params, '{params_file}']", source, "runner.command")
    if isinstance(cmd, str):
        import shlex

        try:
            example = shlex.split(cmd)
        except ValueError:
            example = cmd.split()
        raise ConfigError(f"must be a list of arguments (it runs without a shell), e.g. {example!r}; got the string {cmd!r}",
                          source, "runner.command")
    if not isinstance(cmd, list) or not cmd:
        raise ConfigError(f"must be a non-empty list of arguments, got {cmd!r}", source, "runner.command")
    argv = []
    for i, a in enumerate(cmd):
        if isinstance(a, bool) or not isinstance(a, (str, int, float)) or a == "":
            raise ConfigError(f"must be a non-empty string or a number, got {a!r}", source, f"runner.command[{i}]")
        argv.append(str(a))
    for i, a in enumerate(argv):
        for field in _fields(a, source, f"runner.command[{i}]"):
            _check_field(field, a, names, source, f"runner.command[{i}]")
    if _fields(argv[0], source, "runner.command[0]") and argv[0] != "{python}":
        raise ConfigError(f"the executable cannot hold placeholders (except exactly '{{python}}'), got {argv[0]!r}",
                          source, "runner.command[0]")
    env = check_env(spec.get("env"), source)
    argv[0] = _resolve_executable(argv[0], env, base, source)
    for i, a in enumerate(argv[1:], start=1):
        if a.startswith("-") or "{" in a or Path(a).is_absolute() or not ("/" in a or Path(a).suffix):
            continue
        for where in (base, Path.cwd()):
            if (where / a).is_file():
                fix = f"'{{config_dir}}/{a}'" if where == base else repr(str((where / a).resolve()))
                raise ConfigError(f"{a!r} is a file relative to {where}, but the command runs in its task directory "
                                  f"(<experiment>/tasks/<task_id>); write {fix}", source, f"runner.command[{i}]")
    spec["command"] = argv
    spec["env"] = env
    spec["config_dir"] = str(base.resolve())

    rf = spec.get("result_file")
    if rf is not None:
        if not isinstance(rf, str) or not rf:
            raise ConfigError(f"must be a file name, got {rf!r}", source, "runner.result_file")
        if Path(rf).is_absolute() or ".." in Path(rf).parts:
            raise ConfigError(f"must be a path inside the task directory (relative, no '..'), got {rf!r}",
                              source, "runner.result_file")
    pattern = spec.get("pattern")
    if pattern is not None:
        if not isinstance(pattern, str) or not pattern:
            raise ConfigError(f"must be a regular expression, got {pattern!r}", source, "runner.pattern")
        try:
            rx = re.compile(pattern)
        except re.error as e:
            raise ConfigError(f"invalid regular expression {pattern!r}: {e}", source, "runner.pattern") from None
        if rx.groups != 1 and "loss" not in rx.groupindex:
            raise ConfigError(f"{pattern!r} must have exactly one group (the loss) or a group named 'loss', "
                              f"it has {rx.groups}", source, "runner.pattern")
        if rf is not None:
            raise ConfigError("give result_file or pattern, not both", source, "runner.pattern")
    if spec.get("report_pattern") is not None:
        check_report_pattern(spec["report_pattern"], source)
    report_file = spec.get("report_file")
    if report_file is not None:
        if not isinstance(report_file, str) or not report_file or Path(report_file).is_absolute() \
                or ".." in Path(report_file).parts:
            raise ConfigError(f"must be a file name inside the task directory, got {report_file!r}", source,
                              "runner.report_file")
        if spec.get("report_pattern") is None:
            raise ConfigError(f"report_file ({report_file!r}) needs a report_pattern for its lines", source,
                              "runner.report_file")
    wd = spec.get("workdir")
    if wd is not None and (not isinstance(wd, str) or not wd):
        raise ConfigError(f"must be a directory path, got {wd!r}", source, "runner.workdir")


# -- the runner ------------------------------------------------------------------------------
class CommandRunner:
    """Runs the command template once per task (see the module docstring).

    Args:
        spec: the validated runner spec.
        gpu: the worker's ``CUDA_VISIBLE_DEVICES`` binding, passed on to the command.
        comm: unused.
    """

    def __init__(self, spec: dict, gpu: str | None = None, comm: Any = None):
        self.argv = [str(a) for a in spec["command"]]
        self.workdir = Path(spec.get("workdir") or "tasks").resolve()
        self.config_dir = spec.get("config_dir") or os.getcwd()
        self.result_name = spec.get("result_file")
        self.use_result_file = self.result_name is not None or any("{result_file" in a for a in self.argv)
        self.pattern = re.compile(spec.get("pattern") or DEFAULT_PATTERN)
        self.timeout: float | None = spec.get("timeout")
        grace = spec.get("kill_grace")
        self.kill_grace = 5.0 if grace is None else float(grace)
        self.env = _procs.child_env(spec.get("env"), gpu)
        rp = spec.get("report_pattern")
        self.report_pattern = re.compile(rp) if rp else None
        self.report_file = spec.get("report_file")
        self.spec = spec

    def checkpoint_dir(self, task: Task) -> Path | None:
        """The task's checkpoint directory (``EMEWS_CHECKPOINT_DIR``; one for all its attempts,
        so a re-run finds what an interrupted one saved), created; None outside an experiment.
        A task that starts from another's checkpoint (``pbt``) also gets ``EMEWS_CHECKPOINT_FROM``
        and ``EMEWS_CHECKPOINT_UNTIL`` (:meth:`~emews._checkpoints.CheckpointPlace.start_env`)."""
        from ._runners import checkpoint_place

        place = checkpoint_place(self.spec, task.id, task.params)
        if place is None:
            return None
        self._start_env = place.start_env()
        place.dir.mkdir(parents=True, exist_ok=True)
        mark = place.dir / ".emews-params"  # what a task id given again for other parameters must not resume
        have = mark.read_text() if mark.exists() else None
        if have != place.tag:
            if have is not None:
                import shutil

                shutil.rmtree(place.dir)
                place.dir.mkdir(parents=True)
            mark.write_text(place.tag or "")
        return place.dir

    def task_dir(self, task: Task) -> Path:
        """``<workdir>/<task_id>`` for the first attempt, ``<task_id>-<attempt>`` for retries."""
        return self.workdir / (str(task.id) if task.attempt == 0 else f"{task.id}-{task.attempt}")

    def run(self, task: Task, channel: Any = None) -> Outcome:
        start = time.time()
        return self._run(task, channel).timed(start, time.time())

    def _run(self, task: Task, channel: Any = None) -> Outcome:
        d = self.task_dir(task)
        try:
            d.mkdir(parents=True, exist_ok=True)
            params_file = d / "params.json"
            params_file.write_text(json.dumps(task.params, indent=1, default=str) + "\n")
        except OSError as e:
            return Outcome.failed(f"cannot prepare the task directory {d}: {e}")
        result_path = d / (self.result_name or DEFAULT_RESULT_FILE)
        try:
            result_path.parent.mkdir(parents=True, exist_ok=True)
            result_path.unlink(missing_ok=True)  # a stale one from an earlier run would be read as this one's
        except OSError as e:
            return Outcome.failed(f"cannot prepare the result file {result_path}: {e}")
        values = {"params_file": str(params_file), "task_dir": str(d), "task_id": task.id, "attempt": task.attempt,
                  "result_file": str(result_path), "config_dir": self.config_dir, "python": sys.executable,
                  "params": task.params}
        try:
            argv = self._argv(task, values)
        except (KeyError, IndexError, ValueError, AttributeError, TypeError) as e:
            return Outcome.failed(f"cannot fill in the command template {self.argv!r}: {type(e).__name__}: {e}")
        env = self._env(task, d, dict(self.env, EMEWS_TASK_ID=str(task.id), EMEWS_ATTEMPT=str(task.attempt),
                                      EMEWS_TASK_DIR=str(d), EMEWS_PARAMS_FILE=str(params_file),
                                      EMEWS_RESULT_FILE=str(result_path)))
        try:
            ckpt = self.checkpoint_dir(task)
        except OSError as e:
            return Outcome.failed(f"cannot prepare the checkpoint directory of task {task.id}: {e}")
        if ckpt is not None:
            env["EMEWS_CHECKPOINT_DIR"] = str(ckpt)
            env.update(self._start_env)
        with open(d / "stdout.txt", "wb") as out, open(d / "stderr.txt", "wb") as err:
            try:
                proc = subprocess.Popen(argv, cwd=d, stdin=subprocess.DEVNULL, stdout=out, stderr=err, env=env,
                                        start_new_session=True)
            except OSError as e:
                return Outcome.failed(f"cannot run {argv[0]!r}: {e.strerror or e}")
            trial = None
            try:
                if self.report_pattern is not None:
                    exited, trial = self._watch(task, proc, d, channel)
                else:
                    exited = _procs.wait_exit(proc, self.timeout)
            except BaseException:  # the worker is being stopped: take the task's processes with it
                _procs.kill_group(proc, 0)
                raise
            if trial is not None and trial.stopped:
                how = _procs.kill_group(proc, self.kill_grace) if proc.poll() is None else "it had exited"
                from ._runners import stopped_outcome

                o = stopped_outcome(trial)
                return dataclasses.replace(o, error=f"{o.error}; the task's process group was killed ({how})")
            if not exited:
                how = _procs.kill_group(proc, self.kill_grace)
                return Outcome.failed(f"timed out after {self.timeout:g} s; the task's process group was killed "
                                      f"({how}); logs in {d}", TIMEOUT)
            _procs.reap(proc)
        if trial is not None and trial.reports == 0 and proc.returncode == 0:
            self._warn_unmatched(d / (self.report_file or "stdout.txt"))
        if proc.returncode != 0:
            text = _read_tail(d / "stderr.txt")
            more = f"; last lines of {d / 'stderr.txt'}:\n{_procs.tail(text)}" if text.strip() else f" (no stderr; logs in {d})"
            return Outcome.failed(f"command {_procs.describe_exit(proc.returncode)}{more}")
        if self.use_result_file:
            return _from_result_file(result_path, self.spec.get("loss_key"))
        return self._from_stdout(d / "stdout.txt")

    def _argv(self, task: Task, values: Mapping[str, Any]) -> list[str]:
        """The task's argv: the template filled in (a subclass may add arguments)."""
        return [_FORMATTER.vformat(a, (), values) for a in self.argv]

    def _env(self, task: Task, d: Path, env: dict[str, str]) -> dict[str, str]:
        """The task's environment (a subclass may add variables)."""
        return env

    def _watch(self, task: Task, proc: subprocess.Popen, d: Path, channel: Any) -> tuple[bool, Any]:
        """Wait for the command like ``wait_exit``, reading its new output lines every
        ``REPORT_POLL`` seconds; matching lines are reports. Returns ``(exited, trial)``;
        the wait ends early when the trial is stopped."""
        from ._trial import Trial

        trial = Trial(task.id, task.attempt, dict(task.params), channel)
        path = d / (self.report_file or "stdout.txt")
        offset, partial = 0, b""
        deadline = None if self.timeout is None else time.monotonic() + self.timeout
        while True:
            left = None if deadline is None else deadline - time.monotonic()
            wait = REPORT_POLL if left is None else max(0.0, min(REPORT_POLL, left))
            exited = _procs.wait_exit(proc, wait)
            try:
                with open(path, "rb") as f:
                    f.seek(offset)
                    chunk = f.read()
            except OSError:
                chunk = b""
            offset += len(chunk)
            lines = (partial + chunk).split(b"\n")
            partial = lines.pop() if not exited else b""
            if exited and lines and lines[-1] == b"":
                lines.pop()
            for raw in lines:
                self._report_line(raw.decode("utf-8", "replace"), trial)
                if trial.stopped:
                    return exited, trial
            self._poll(d, trial)
            if trial.stopped:
                return exited, trial
            if exited or trial.should_stop:
                return exited, trial
            if deadline is not None and time.monotonic() >= deadline:
                return False, trial

    def _warn_unmatched(self, path: Path) -> None:
        """Warn, once per experiment (the first worker to create a marker in ``workdir``),
        that a task ran to its end without a line matching ``report_pattern``: a pattern
        that never matches would leave early stopping silently idle."""
        try:
            os.close(os.open(self.workdir / ".report_pattern_unmatched", os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644))
        except OSError:  # warned already (by this or another worker), or no marker possible
            return
        tail = _read_tail(path).strip().splitlines() if path.exists() else []
        sample = f"; its last line: {tail[-1][:200]!r}" if tail else f" ({path.name} is empty or missing)"
        logging.getLogger("emews").warning(
            "a task ended without a line of %s matching runner.report_pattern %r: no intermediate reports, so nothing "
            "can be stopped early; check the pattern against the output%s (warned once)", path, self.report_pattern.pattern,
            sample)

    def _poll(self, d: Path, trial: Any) -> None:
        """Called at every look at a running task's output (a subclass may report from other files)."""

    def _report_line(self, line: str, trial: Any) -> None:
        rx = self.report_pattern
        m = rx.search(line)  # type: ignore[union-attr]
        if not m:
            return
        named = rx.groupindex  # type: ignore[union-attr]
        step, loss = (m.group("step"), m.group("loss")) if "step" in named else (m.group(1), m.group(2))
        metrics = {k: v for k, v in m.groupdict().items() if k not in ("step", "loss") and v is not None}
        for k, v in metrics.items():
            try:
                metrics[k] = float(v)
            except ValueError:
                pass
        try:
            s_: float = float(step)
            s_ = int(s_) if s_.is_integer() else s_
        except ValueError:
            s_ = float("nan")
        try:
            v_ = float(loss)
        except ValueError:
            v_ = float("nan")
        trial.report(s_, v_, **metrics)

    def _from_stdout(self, path: Path) -> Outcome:
        text = _read_tail(path)
        for line in reversed(text.splitlines()):
            m = self.pattern.search(line)
            if m:
                value = m.group("loss") if "loss" in self.pattern.groupindex else m.group(1)
                o = outcome_from_value(value, text=True)
                if o.error:
                    o = dataclasses.replace(o, error=f"{o.error} (from the stdout line {line.strip()!r} matching "
                                                     f"{self.pattern.pattern!r})")
                return o
        last = _procs.tail(text, 5)
        shown = f"; its last lines:\n{last}" if last else " (stdout is empty)"
        return Outcome.failed(f"no line of {path} matches the pattern {self.pattern.pattern!r}{shown}")

    def close(self) -> None:
        pass


def _read_tail(path: Path) -> str:
    try:
        with open(path, "rb") as f:
            f.seek(0, os.SEEK_END)
            size = f.tell()
            f.seek(max(0, size - _STDOUT_TAIL))
            return f.read().decode("utf-8", "replace")
    except OSError:
        return ""


def _from_result_file(path: Path, loss_key: str | None = None) -> Outcome:
    try:
        text = path.read_text()
    except FileNotFoundError:
        return Outcome.failed(f"the command exited with code 0 but wrote no result file {path}")
    except (OSError, UnicodeDecodeError) as e:
        return Outcome.failed(f"cannot read the result file {path}: {e}")
    try:
        value = json.loads(text)
    except json.JSONDecodeError as e:
        return Outcome.failed(f"cannot parse the result file {path} as JSON ({e.msg} at line {e.lineno}); expected a "
                              f"number or {{\"loss\": ...}}, got {text[:200]!r}")
    o = outcome_from_value(value, text=True, loss_key=loss_key)
    return dataclasses.replace(o, error=f"result file {path}: {o.error}") if o.error else o


RUNNERS["command"] = CommandRunner
