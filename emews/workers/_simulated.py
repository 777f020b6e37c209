"""The simulated pool: N virtual workers under the real driver, optimizer process and journal.

::

    driver ──submit(task)──▶ SimulatedPool: loss = objective(params) now (cheap, in-process),
                             duration = model(params); completion at now + duration
    driver ◀──wait()─────── completions whose simulated end has come; when nothing else can
                             happen (clock.may_jump), the clock jumps to the next completion

Only task *durations* are simulated. Everything else is the real code: the driver loop, the
optimizer process and its queues, the journal and the report. Time comes from a
:class:`~emews._clock.SimClock` that runs with real time and skips only the dead time in which
every party waits for a completion, so every real cost (a surrogate fit, a journal flush,
the driver's own loop) is charged to simulated time: a slow optimizer shows up as idle
workers. ``tests/workers/test_simulated.py`` proves it with an optimizer that sleeps.

How the clock is charged, precisely: simulated time = start + real time elapsed + the jumps.
A jump happens only when the driver sees no idle worker with queued work and the optimizer
either cannot add runnable work (every worker busy, budget taken, search stopped) or has
announced that it is blocked waiting for results. The one imprecision is conservative: an
optimizer computing while every worker is busy may see the clock jump to the next
completion, and then its remaining compute time is charged in full as that worker's idle
time (at most one jump's worth, and jumps are tiny at scale).

The duration model (``simulation.duration`` in the config):

* ``{distribution: normal, mean: 60, sd: 20}`` (truncated at ``min``, default 0),
  ``lognormal`` (``mean``, ``sd`` of the duration itself), ``uniform`` (``low``, ``high``),
  ``constant`` (``value``);
* or ``"module:function"``: ``function(params) -> seconds`` (e.g. proportional to epochs);
  a negative or non-finite value fails that task with an error naming it.

Early stopping: an objective that takes a trial (``fn(params, trial)``) reports its steps
when it is called; the pool replays those reports in simulated time, one every
``duration / steps`` seconds, through the driver's stopper (``on_report``). A stop decided
at step *k* ends the task one step later (as a real trial learns of it at its next report),
``stopped`` with the loss and step of report *k*: its worker is free that much earlier.

``failure_rate`` (0-1): the share of tasks that fail (error ``simulated failure``);
``stragglers: {share: 0.01, factor: 10}``: the share of tasks whose duration is multiplied by
``factor``. ``seed`` makes durations, failures and stragglers repeat.
"""

from __future__ import annotations

import heapq
import math
import random
import select
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from .._clock import SimClock
from .._imports import import_object
from ..errors import ConfigError
from ..task import STOPPED, Report, Result, Task
from . import _wire as wire
from ._pool import OnReport, PoolBase
from ._runners import execute, make_runner

__all__ = ["SimulatedPool", "duration_model", "check_simulation", "DISTRIBUTIONS", "SIMULATION_KEYS"]

HOST = "simulated"

#: the distributions a duration model may name, and their parameters (required, optional)
DISTRIBUTIONS: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    "normal": (("mean", "sd"), ("min",)),
    "lognormal": (("mean", "sd"), ()),
    "uniform": (("low", "high"), ()),
    "constant": (("value",), ()),
}
#: keys of the config's ``simulation`` mapping
SIMULATION_KEYS = ("duration", "failure_rate", "stragglers", "seed")


def _number(v: Any, key: str, source: str | None, *, low: float = 0.0, high: float = math.inf) -> float:
    if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v) or not low <= v <= high:
        bound = f"between {low:g} and {high:g}" if math.isfinite(high) else f">= {low:g}"
        raise ConfigError(f"must be a finite number {bound}, got {v!r}", source, key)
    return float(v)


def duration_model(spec: Any, source: str | None = None,
                   key: str = "simulation.duration") -> Callable[[dict, random.Random], float]:
    """A function ``(params, rng) -> seconds`` from the config's ``simulation.duration``.

    Raises:
        ConfigError: an unknown distribution, a missing or bad parameter, or a
            ``module:function`` that cannot be imported (naming the key and value).
    """
    if isinstance(spec, str):
        try:
            fn = import_object(spec, "duration function")
        except (ImportError, ValueError) as e:
            raise ConfigError(str(e), source, key) from None
        if not callable(fn):
            raise ConfigError(f"{spec!r} is not a function", source, key)

        def from_function(params: dict, rng: random.Random) -> float:
            return fn(dict(params))

        return from_function
    if isinstance(spec, (int, float)) and not isinstance(spec, bool):
        value = _number(spec, key, source)
        return lambda params, rng: value
    if not isinstance(spec, Mapping):
        raise ConfigError(f"must be {{distribution: normal, mean: 60, sd: 20}} (or lognormal, uniform, constant) or "
                          f"'module:function', got {spec!r}", source, key)
    name = spec.get("distribution")
    if name not in DISTRIBUTIONS:
        import difflib

        close = difflib.get_close_matches(str(name), list(DISTRIBUTIONS), n=1)
        hint = f"did you mean {close[0]!r}? " if close else ""
        raise ConfigError(f"unknown distribution {name!r}; {hint}one of {', '.join(DISTRIBUTIONS)}", source,
                          f"{key}.distribution")
    required, optional = DISTRIBUTIONS[name]
    for k in spec:
        if k != "distribution" and k not in required + optional:
            raise ConfigError(f"unknown key {k!r} for a {name} duration (value {spec[k]!r}); it takes "
                              f"{', '.join(required + optional)}", source, f"{key}.{k}")
    for k in required:
        if k not in spec:
            raise ConfigError(f"a {name} duration needs {k!r}", source, f"{key}.{k}")
    p = {k: _number(spec[k], f"{key}.{k}", source) for k in required + optional if k in spec}
    if name == "normal":
        mean, sd, lo = p["mean"], p["sd"], p.get("min", 0.0)
        return lambda params, rng: max(lo, rng.gauss(mean, sd))
    if name == "lognormal":
        mean, sd = p["mean"], p["sd"]
        if mean <= 0:
            raise ConfigError(f"a lognormal duration needs mean > 0, got {mean!r}", source, f"{key}.mean")
        sigma2 = math.log(1 + (sd / mean) ** 2)
        mu = math.log(mean) - sigma2 / 2
        return lambda params, rng: rng.lognormvariate(mu, math.sqrt(sigma2))
    if name == "uniform":
        low, high = p["low"], p["high"]
        if high < low:
            raise ConfigError(f"high ({high:g}) is below low ({low:g})", source, f"{key}.high")
        return lambda params, rng: rng.uniform(low, high)
    value = p["value"]
    return lambda params, rng: value


def check_simulation(simulation: Mapping[str, Any] | None, runner_type: str = "python",
                     source: str | None = None) -> tuple[Callable[[dict, random.Random], float], float, float, float, int | None]:
    """The config's ``simulation`` mapping, checked: ``(duration model, failure rate, straggler
    share, straggler factor, seed)``. The config checks it with this before anything is
    created; :class:`SimulatedPool` builds itself from it.

    Raises:
        ConfigError: an unknown key, a bad value or a runner that is not ``python``.
    """
    if simulation is not None and not isinstance(simulation, Mapping):
        raise ConfigError(f"must be a mapping like {{duration: {{distribution: normal, mean: 60, sd: 20}}}}, got "
                          f"{simulation!r}", source, "simulation")
    sim = dict(simulation or {})
    for k in sim:
        if k not in SIMULATION_KEYS:
            import difflib

            close = difflib.get_close_matches(str(k), SIMULATION_KEYS, n=1)
            hint = f"did you mean {close[0]!r}?" if close else f"allowed keys: {', '.join(SIMULATION_KEYS)}"
            raise ConfigError(f"unknown key {k!r} (value {sim[k]!r}); {hint}", source, f"simulation.{k}")
    if runner_type != "python":
        raise ConfigError(f"pool: simulated runs the objective in the driver's process: runner.type must be "
                          f"python, got {runner_type!r}", source, "runner.type")
    duration = duration_model(sim.get("duration", {"distribution": "constant", "value": 1.0}), source)
    failure_rate = _number(sim.get("failure_rate", 0.0), "simulation.failure_rate", source, high=1.0)
    stragglers = sim.get("stragglers") or {}
    if not isinstance(stragglers, Mapping):
        raise ConfigError(f"must be {{share: 0.01, factor: 10}}, got {stragglers!r}", source, "simulation.stragglers")
    for k in stragglers:
        if k not in ("share", "factor"):
            raise ConfigError(f"unknown key {k!r} (value {stragglers[k]!r}); stragglers take share and factor",
                              source, f"simulation.stragglers.{k}")
    share = _number(stragglers.get("share", 0.0), "simulation.stragglers.share", source, high=1.0)
    factor = _number(stragglers.get("factor", 10.0), "simulation.stragglers.factor", source, low=1.0)
    seed = sim.get("seed")
    if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int) or seed < 0):
        raise ConfigError(f"must be an integer >= 0, got {seed!r}", source, "simulation.seed")
    return duration, failure_rate, share, factor, seed


class SimulatedPool(PoolBase):
    """The :class:`~emews.workers.Pool` with ``workers`` virtual workers and simulated task durations.

    Args:
        workers: how many virtual workers (tasks that run at once).
        runner_spec: the runner settings (``type: python``: the objective is called in this
            process when a task is submitted; its value is the result).
        simulation: the config's ``simulation`` mapping (duration, failure_rate, stragglers, seed).
        source: the config file, named in errors.
        on_report: the driver's judge of each replayed report (True stops the task).
    """

    kind = "simulated"

    def __init__(self, workers: int, runner_spec: dict, simulation: Mapping[str, Any] | None = None,
                 source: str | None = None, on_report: OnReport | None = None):
        self._duration, self._failure_rate, self._straggler_share, self._straggler_factor, seed = check_simulation(
            simulation, runner_spec.get("type", "python"), source)
        super().__init__(workers, on_report)
        self.clock = SimClock()
        self._rng = random.Random(seed)
        self._runner = make_runner(runner_spec)
        self._idle.extend(range(self.size - 1, -1, -1))  # a stack: worker 0 first
        # heap of events (time, order, worker, token, kind, payload): kind 0 a report (payload: its
        # index), 1 the end; a token names the attempt, so events of a stopped one are skipped
        self._running: list[tuple[float, int, int, int, int, Any]] = []
        self._live: dict[int, dict] = {}  # worker -> {token, task, result, reports, step_seconds}
        self._order = 0

    def _send_task(self, worker: int, task: Task) -> bool:
        """Start ``task`` on a free virtual worker: evaluate it now, finish it at now + its duration."""
        start = self.clock.time()
        posted: list[wire.Message] = []  # every report is kept, to be replayed in simulated time
        channel = wire.WorkerChannel(task.id, task.attempt, posted.append)
        result = execute(self._runner, task, worker, HOST, None, channel)
        seconds, why = self._draw(task.params)
        if why is not None:
            result = Result.failed(task, why, worker=worker, host=HOST)
            seconds = 0.0
        elif self._rng.random() < self._failure_rate:
            result = Result.failed(task, "simulated failure (simulation.failure_rate)", worker=worker, host=HOST)
        result.start, result.end = start, start + seconds
        token = self._order
        self._order += 1
        reports = [body for _, body in posted] if result.status != STOPPED else []
        step_seconds = seconds / len(reports) if reports else 0.0
        self._live[worker] = {"token": token, "task": task, "result": result, "reports": reports,
                              "step": step_seconds}
        for k in range(len(reports)):  # each report when its step is done, in simulated time
            heapq.heappush(self._running, (start + (k + 1) * step_seconds, token, worker, token, 0, k))
        heapq.heappush(self._running, (result.end, token, worker, token, 1, None))
        return True

    def _draw(self, params: dict) -> tuple[float, str | None]:
        try:
            seconds = self._duration(params, self._rng)
        except Exception as e:  # noqa: BLE001 - a broken duration function fails the task, never the run
            return 0.0, f"simulation.duration raised {type(e).__name__}: {e}"
        if isinstance(seconds, bool) or not isinstance(seconds, (int, float)) or not math.isfinite(seconds) \
                or seconds < 0:
            return 0.0, f"simulation.duration returned {seconds!r} (must be a finite number of seconds >= 0)"
        if self._straggler_share and self._rng.random() < self._straggler_share:
            seconds *= self._straggler_factor
        return float(seconds), None

    def _due(self) -> list[Result]:
        now = self.clock.monotonic()
        out = []
        while self._running and self._running[0][0] <= now:
            t, _, worker, token, kind, k = heapq.heappop(self._running)
            live = self._live.get(worker)
            if live is None or live["token"] != token:
                continue  # an attempt that was stopped (or shut down) earlier
            if kind == 0:
                self._report(t, worker, live, k)
                continue
            del self._live[worker]
            if self._finished(worker, live["result"]):
                out.append(live["result"])
        return out

    def _report(self, t: float, worker: int, live: dict, k: int) -> None:
        """Replay report ``k`` of the attempt on ``worker`` at simulated time ``t``; on a stop,
        the attempt ends one step later, stopped at this report."""
        task, rep = live["task"], live["reports"][k]
        step, loss, metrics = rep.step, rep.loss, rep.metrics
        if not self._judge(Report(task.id, task.attempt, step, loss, dict(metrics), t)):
            return
        end = min(live["result"].end, t + live["step"])
        result = Result.stopped(task, step, loss, metrics, worker=worker, host=HOST, start=live["result"].start,
                                end=end)
        token = self._order
        self._order += 1
        live.update(token=token, result=result)
        heapq.heappush(self._running, (end, token, worker, token, 1, None))

    def wait(self, timeout: float | None, extra: Sequence[Any] = ()) -> list[Result]:
        """Completions whose simulated end has come. When the driver allows it
        (``clock.may_jump``) the clock jumps to the next completion (never past
        ``clock.jump_limit``, the next time limit); otherwise this waits in real time, up to
        ``timeout``, for the ``extra`` connections."""
        limit = None if timeout is None else self.clock.monotonic() + timeout
        while True:
            out = self._due()
            if out:
                return out
            nxt = self._running[0][0] if self._running else None
            if self.clock.may_jump and nxt is not None:
                cap = self.clock.jump_limit
                self.clock.advance_to(nxt if cap is None else min(nxt, cap))
                return self._due()
            # real waiting (charged to the clock): for the optimizer, or until the next completion
            now = self.clock.monotonic()
            if limit is not None and now >= limit:
                return []
            ends = [t for t in (nxt, limit) if t is not None]
            delay = max(0.0, min(ends) - now) if ends else 1.0
            if extra:
                if select.select(extra, [], [], min(delay, 1.0))[0]:
                    return self._due()
            else:
                time.sleep(min(delay, 0.05))

    def shutdown(self, kill: bool = False) -> list[Result]:
        """Stop; running tasks finish at once (their simulated end) unless ``kill``, when they
        come back as cancelled. Idempotent."""
        if self.closed:
            return []
        self.closed = True
        out = []
        if kill:
            now = self.clock.time()
            out = [Result.cancelled(t, "cancelled at shutdown", worker=w, host=HOST, end=now)
                   for w, t in self._busy.items()]
        self._busy.clear()
        self._live.clear()
        self._running.clear()
        self._runner.close()
        return out

