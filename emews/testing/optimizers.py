"""Contract checks for optimizers, built-in or yours.

One call runs every check that applies to the optimizer's style::

    from emews.testing.optimizers import check_optimizer
    check_optimizer(MyOptimizer, settings={"scale": 0.1})          # raises AssertionError

or, in pytest, one test per check::

    @pytest.mark.parametrize("check", optimizer_checks(MyOptimizer))
    def test_contract(check):
        check(MyOptimizer, settings={"scale": 0.1})

Ask/tell optimizers (:class:`~emews.optimizers.Optimizer`) are checked directly (valid asks,
failures told, seeded repeatability, pending points not proposed again) and, like resident
loops (:class:`~emews.optimizers.ResidentOptimizer` or a ``run(queues, space, ...)``
function), run to completion under the real driver on the simulated pool
(:func:`run_with_driver`): the same optimizer process, queues, budget, stops and journal as
a real search, with simulated worker time so results come back out of order, as they do on
a real pool.

::

    optimizer process ──put / get / stop / log──▶ Driver (real) ──▶ SimulatedPool: seeded
    (spawned, as in a search)  ◀──results, STOP──  journal in a     durations, a clock that
                                                   temporary dir    moves while the optimizer waits
"""

from __future__ import annotations

import inspect
import math
import tempfile
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .._clock import SimClock
from ..driver import Driver, SearchSettings
from ..formats import WarmStart
from ..optimizers import Optimizer, resolve, style_of
from ..space import Bool, Categorical, Constant, Int, Ordinal, Real, Space
from ..task import CANCELLED, DONE, FAILED, TIMEOUT, Result
from ..workers._simulated import SimulatedPool

__all__ = [
    "SearchRun",
    "run_with_driver",
    "DURATIONS",
    "FakeRun",
    "run_with_fake_driver",
    "mixed_space",
    "mixed_objective",
    "check_optimizer",
    "optimizer_checks",
    "check_asks_are_valid",
    "check_tell_accepts_failures",
    "check_seeded_asks_repeat",
    "check_pending_not_proposed",
    "check_unknown_setting_rejected",
    "check_runs_to_completion",
    "check_runs_with_failures",
    "check_seeded_runs_repeat",
]


# -- a test space and objective ----------------------------------------------------------------
def mixed_space() -> Space:
    """Every dimension kind: real (one log), int, ordinal, categorical, bool, constant."""
    return Space([
        Real("x", -5.0, 10.0),
        Real("lr", 1e-5, 1e-1, log=True),
        Int("units", 1, 64),
        Ordinal("batch", [16, 32, 64, 128, 256]),
        Categorical("act", ["relu", "tanh", "elu"]),
        Bool("residual"),
        Constant("epochs", 3),
    ])


def mixed_objective(params: Mapping[str, Any]) -> float:
    """A smooth loss over :func:`mixed_space` (other spaces: sum of squares of the numbers)."""
    if {"x", "lr", "units", "batch", "act", "residual"} <= set(params):
        loss = (params["x"] - 1.0) ** 2 / 10 + (math.log10(params["lr"]) + 3) ** 2
        loss += (params["units"] - 40) ** 2 / 400 + abs(math.log2(params["batch"]) - 6) / 2
        loss += {"relu": 0.0, "tanh": 0.5, "elu": 0.2}[params["act"]] + (0.0 if params["residual"] else 0.3)
        return float(loss)
    return float(sum(v * v for v in params.values() if isinstance(v, (int, float)) and not isinstance(v, bool)))


# -- the real driver on the simulated pool ------------------------------------------------------
@dataclass
class SearchRun:
    """What :func:`run_with_driver` saw.

    Attributes:
        results: every final result, in completion order (cancelled ones included: a put
            refused for the budget, a queued task cancelled by the stop).
        logs: the records the optimizer sent with ``queues.log`` (or ``Optimizer.log``).
        puts: parameter sets put, in order (refused ones included).
        makespan: simulated time from the first start to the last result (one unit ~ one
            evaluation).
        stopped: why the run ended (e.g. ``max_evals reached``, ``optimizer finished``).
    """

    results: list[Result] = field(default_factory=list)
    logs: list[dict] = field(default_factory=list)
    puts: list[dict] = field(default_factory=list)
    makespan: float = 0.0
    stopped: str | None = None

    @property
    def done(self) -> list[Result]:
        return [r for r in self.results if r.status == DONE]

    @property
    def best(self) -> float:
        """Lowest loss (``inf`` when nothing succeeded)."""
        return min((r.loss for r in self.done), default=math.inf)  # type: ignore[arg-type]


class _Watched(Driver):
    """The real driver, watched: what the optimizer put, logged and was answered."""

    def __init__(self, *args: Any, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self.seen = SearchRun()

    def _on_put(self, items: list[tuple[int, dict]]) -> list[Result]:
        self.seen.puts.extend(dict(item[1]) for item in items)
        refused = super()._on_put(items)
        self.seen.results.extend(refused)
        return refused

    def _on_log(self, record: dict) -> None:
        self.seen.logs.append(dict(record))
        super()._on_log(record)

    def _on_results(self, results: list[Result]) -> None:
        self.seen.results.extend(results)
        super()._on_results(results)

    def _cancel_waiting(self, reason: str) -> list[Result]:
        cancelled = super()._cancel_waiting(reason)
        self.seen.results.extend(cancelled)
        return cancelled


#: the simulated task durations: ``random`` (uniform 0.5..1.5 units: completions out of
#: submission order) or ``fixed`` (1 unit each: completions in submission order)
DURATIONS = {"random": {"distribution": "uniform", "low": 0.5, "high": 1.5},
             "fixed": {"distribution": "constant", "value": 1.0}}


def run_with_driver(
    optimizer: Any,
    space: Space | None = None,
    objective: Callable[..., Any] | None = None,
    *,
    settings: Mapping[str, Any] | None = None,
    max_evals: int = 40,
    capacity: int = 4,
    seed: int | None = 0,
    mode: str = "async",
    batch_size: int | None = None,
    durations: str = "random",
    warm_start: Sequence[Result] = (),
) -> SearchRun:
    """Run an optimizer of either style to the end under the real driver, its optimizer
    process and journal, on the simulated pool (``capacity`` virtual workers), in a
    temporary directory.

    Task durations are simulated and seeded, so results come back out of order as on a real
    pool; the clock moves only when the optimizer waits for results (no real time is
    charged), so the same seed gives the same run whatever the machine's speed. The budget,
    stops, ``queues.stop(task_id)`` and the optimizer's waits go through the same code as in
    a real search.

    Args:
        optimizer: a class, a ``run(queues, space, ...)`` function or a registered name.
        space: default :func:`mixed_space`.
        objective: default :func:`mixed_objective`; ``fn(params)`` or ``fn(params, trial)``
            (its reports are replayed in simulated time); an exception is a failed result.
        settings: the optimizer's settings.
        max_evals, capacity: budget and simultaneous evaluations.
        seed: the optimizer's seed (the simulated durations use a fixed seed).
        mode, batch_size: how an ask/tell optimizer is driven (as in a config).
        durations: ``random`` or ``fixed`` (see :data:`DURATIONS`).
        warm_start: earlier results the optimizer is given first (as ``warm_start:`` in a
            config does; see :func:`emews.formats.read_warm_start`).

    Raises:
        OptimizerError: the optimizer raised (the message holds its traceback).
    """
    if durations not in DURATIONS:
        raise ValueError(f"durations must be one of {', '.join(DURATIONS)}, got {durations!r}")
    search = SearchSettings(space=space or mixed_space(), optimizer=resolve(optimizer),
                            optimizer_settings=dict(settings or {}), max_evals=max_evals, mode=mode,
                            batch_size=batch_size, seed=seed, experiment="contract", report=False,
                            warm_start=WarmStart("run_with_driver", tuple(warm_start)) if warm_start else None)
    made: list[SimulatedPool] = []

    def make_pool(on_report: Any) -> SimulatedPool:
        pool = SimulatedPool(capacity, {"type": "python", "objective": objective or mixed_objective},
                             {"duration": DURATIONS[durations], "seed": 12345}, on_report=on_report)
        pool.clock = SimClock(real_time=False)
        pool.start()
        made.append(pool)
        return pool

    with tempfile.TemporaryDirectory(prefix="emews-contract-") as tmp:
        try:
            driver = _Watched(search, make_pool, Path(tmp))
            driver.run()
        finally:
            for pool in made:
                pool.shutdown(kill=True)
    run = driver.seen
    times = [(r.start, r.end) for r in run.results if r.start is not None and r.end is not None]
    if times:
        run.makespan = max(e for _, e in times) - min(s for s, _ in times)
    run.stopped = str(driver.ledger.stop) if driver.ledger.stop is not None else None
    return run


#: the former names (the in-process stand-in driver is retired: the real one runs)
FakeRun = SearchRun
run_with_fake_driver = run_with_driver


# -- checks ------------------------------------------------------------------------------------
def _build(optimizer: Any, space: Space, seed: int | None, settings: Mapping[str, Any] | None) -> Any:
    return resolve(optimizer)(space, seed=seed, **dict(settings or {}))


def _results(space: Space, params: Sequence[dict], start: int) -> list[Result]:
    """Done results as the driver returns them (parameters validated: plain Python values)."""
    out = []
    for i, p in enumerate(params):
        checked = space.validate(p)
        out.append(Result(start + i, checked, DONE, loss=float(mixed_objective(checked))))
    return out


def _assert_valid(space: Space, params: Any, n: int, where: str) -> list[dict]:
    assert isinstance(params, list), f"{where}: ask({n}) returned {type(params).__name__}, expected a list of dicts"
    assert len(params) <= n, f"{where}: ask({n}) returned {len(params)} parameter sets (more than asked)"
    for p in params:
        assert isinstance(p, dict), f"{where}: ask({n}) returned an item {p!r} that is not a dict"
        space.validate(p)  # raises SpaceError naming the dimension and the value
    return params


def _is_ask_tell(optimizer: Any) -> bool:
    return style_of(resolve(optimizer)) == "ask-tell"


def check_asks_are_valid(optimizer: Any, settings: Mapping[str, Any] | None = None, space: Space | None = None,
                         rounds: int = 5, batch: int = 8) -> None:
    """``ask(n)`` returns at most ``n`` valid parameter dicts, before and after results are told."""
    space = space or mixed_space()
    opt = _build(optimizer, space, 0, settings)
    tid = 0
    for n in (1, 3):
        ps = _assert_valid(space, opt.ask(n), n, "first asks")
        opt.tell(_results(space, ps, tid))
        tid += len(ps)
    for r in range(rounds):
        ps = _assert_valid(space, opt.ask(batch), batch, f"round {r}")
        if not ps:
            assert getattr(opt, "done", lambda: False)(), f"round {r}: ask({batch}) returned [] but done() is False"
            return
        opt.tell(_results(space, ps, tid))
        tid += len(ps)


def check_tell_accepts_failures(optimizer: Any, settings: Mapping[str, Any] | None = None,
                                space: Space | None = None, rounds: int = 4, batch: int = 6) -> None:
    """Failed, timed-out and cancelled results are told (all-failed batches included) and asks go on."""
    space = space or mixed_space()
    opt = _build(optimizer, space, 1, settings)
    tid = 0
    ps = opt.ask(batch)
    opt.tell([Result(tid + i, space.validate(p), FAILED, error="boom") for i, p in enumerate(ps)])  # no success yet
    tid += len(ps)
    statuses = (DONE, FAILED, TIMEOUT, CANCELLED)
    for r in range(rounds):
        ps = _assert_valid(space, opt.ask(batch), batch, f"after failures, round {r}")
        told = []
        for i, p in enumerate(ps):
            st = statuses[(i + r) % len(statuses)]
            p = space.validate(p)
            told.append(Result(tid + i, p, st, loss=mixed_objective(p) if st == DONE else None,
                               error=None if st == DONE else st))
        opt.tell(told)
        tid += len(ps)
    if hasattr(opt, "log"):
        rec = opt.log()
        assert rec is None or isinstance(rec, dict), f"log() returned {rec!r}, expected a dict or None"


def check_seeded_asks_repeat(optimizer: Any, settings: Mapping[str, Any] | None = None,
                             space: Space | None = None, rounds: int = 4, batch: int = 5) -> None:
    """Two optimizers with the same seed, told the same results, propose the same points."""
    space = space or mixed_space()
    runs = []
    for _ in range(2):
        opt = _build(optimizer, space, 7, settings)
        seen, tid = [], 0
        for _ in range(rounds):
            ps = opt.ask(batch)
            seen.append([space.key(p) for p in ps])
            rs = _results(space, ps, tid)
            if rs:
                rs[0] = Result(rs[0].task_id, rs[0].params, FAILED, error="boom")
            opt.tell(rs)
            tid += len(ps)
        runs.append(seen)
    for r, (a, b) in enumerate(zip(*runs)):
        assert a == b, f"seed 7, round {r}: proposals differ between two identical runs:\n{a}\n{b}"


def check_pending_not_proposed(optimizer: Any, settings: Mapping[str, Any] | None = None,
                               space: Space | None = None, warmup: int = 24, pending: int = 4,
                               asks: int = 6, min_distance: float = 0.0) -> None:
    """Asked for 1 point at a time while ``pending`` are still out, no proposal repeats a
    pending point (nor lies within ``min_distance`` of one, in :meth:`Space.encode` units)."""
    space = space or mixed_space()
    opt = _build(optimizer, space, 3, settings)
    tid = 0
    while tid < warmup:
        ps = opt.ask(min(8, warmup - tid))
        if not ps:
            return
        opt.tell(_results(space, ps, tid))
        tid += len(ps)
    out: list[dict] = []
    for _ in range(pending):
        out.extend(opt.ask(1))
    for k in range(asks):
        new = opt.ask(1)
        if not new:
            return
        p = new[0]
        keys = {space.key(q) for q in out}
        assert space.key(p) not in keys, f"ask {k}: proposed {p!r}, which is still pending"
        if min_distance > 0:
            d = np.sqrt(((space.encode(out) - space.encode([p])) ** 2).sum(1)).min()
            assert d > min_distance, \
                f"ask {k}: proposed {p!r} at distance {d:.3g} of a pending point (min {min_distance})"
        out.append(p)
        # the oldest pending point finishes; the newest stays pending
        first = out.pop(0)
        opt.tell(_results(space, [first], tid))
        tid += 1


def check_unknown_setting_rejected(optimizer: Any, settings: Mapping[str, Any] | None = None,
                                   space: Space | None = None) -> None:
    """A misspelled setting is a ``TypeError`` naming it (classes only; functions raise on call)."""
    obj = resolve(optimizer)
    if not inspect.isclass(obj):
        return
    space = space or mixed_space()
    try:
        obj(space, seed=0, **dict(settings or {}), no_such_setting_xyz=1)
    except TypeError as e:
        assert "no_such_setting_xyz" in str(e), f"the TypeError does not name the setting: {e}"
    else:
        raise AssertionError(f"{obj.__name__}(no_such_setting_xyz=1) did not raise TypeError")


def check_runs_to_completion(optimizer: Any, settings: Mapping[str, Any] | None = None,
                             space: Space | None = None, max_evals: int = 30, capacity: int = 3) -> None:
    """Runs under the real driver on the simulated pool until the budget is spent (async; ask/tell also batch)."""
    space = space or mixed_space()
    obj = resolve(optimizer)
    ask_tell = _is_ask_tell(obj)
    # a resident loop may end on its own (e.g. a generation limit); an ask/tell optimizer
    # only when it says it is done
    may_end_early = not ask_tell or getattr(obj, "done", Optimizer.done) is not Optimizer.done
    for mode in ("async", "batch") if ask_tell else ("async",):
        run = run_with_driver(obj, space, settings=settings, max_evals=max_evals, capacity=capacity, mode=mode)
        finished = [r for r in run.results if r.status != CANCELLED]
        assert finished, f"mode {mode}: nothing was evaluated"
        assert len(finished) <= max_evals, f"mode {mode}: {len(finished)} evaluations for a budget of {max_evals}"
        if len(finished) < max_evals and not may_end_early:
            raise AssertionError(f"mode {mode}: stopped after {len(finished)} of {max_evals} evaluations")
        for r in finished:
            space.validate(r.params)
        assert math.isfinite(run.best), f"mode {mode}: no evaluation succeeded"


def check_runs_with_failures(optimizer: Any, settings: Mapping[str, Any] | None = None,
                             space: Space | None = None, max_evals: int = 30, capacity: int = 3) -> None:
    """Runs to the end when a third of the evaluations fail (an exception or a NaN loss)."""
    space = space or mixed_space()
    calls = {"n": 0}

    def flaky(params: dict) -> Any:
        calls["n"] += 1
        if calls["n"] % 3 == 0:
            raise RuntimeError("CUDA out of memory (simulated)")
        if calls["n"] % 3 == 1 and calls["n"] % 2 == 0:
            return float("nan")
        return mixed_objective(params)

    run = run_with_driver(optimizer, space, flaky, settings=settings, max_evals=max_evals, capacity=capacity)
    finished = [r for r in run.results if r.status != CANCELLED]
    assert any(r.status == FAILED for r in finished), "the flaky objective produced no failure (test bug)"
    assert finished and len(finished) <= max_evals


def check_seeded_runs_repeat(optimizer: Any, settings: Mapping[str, Any] | None = None,
                             space: Space | None = None, max_evals: int = 24, capacity: int = 3) -> None:
    """Two runs with the same seed under the real driver on the simulated pool evaluate the same points."""
    space = space or mixed_space()
    a, b = (run_with_driver(optimizer, space, settings=settings, max_evals=max_evals, capacity=capacity, seed=5)
            for _ in range(2))
    ka = [space.key(p) for p in a.puts]
    kb = [space.key(p) for p in b.puts]
    assert ka == kb, "two seeded runs put different parameter sets"


_ASK_TELL_CHECKS = (check_unknown_setting_rejected, check_asks_are_valid, check_tell_accepts_failures,
                    check_seeded_asks_repeat, check_pending_not_proposed, check_runs_to_completion,
                    check_runs_with_failures, check_seeded_runs_repeat)
_RESIDENT_CHECKS = (check_unknown_setting_rejected, check_runs_to_completion, check_runs_with_failures,
                    check_seeded_runs_repeat)


def optimizer_checks(optimizer: Any) -> list[Callable[..., None]]:
    """The checks that apply to an optimizer's style (for ``pytest.mark.parametrize``)."""
    return list(_ASK_TELL_CHECKS if _is_ask_tell(optimizer) else _RESIDENT_CHECKS)


def check_optimizer(optimizer: Any, settings: Mapping[str, Any] | None = None, space: Space | None = None,
                    skip: Sequence[str] = ()) -> list[str]:
    """Run every applicable check; returns the names of the checks run.

    Args:
        optimizer: a class, a resident ``run`` function or a registered name (``"mbo"``).
        settings: the optimizer's settings for every check.
        space: default :func:`mixed_space` (every dimension kind).
        skip: names of checks to leave out (e.g. ``"check_seeded_asks_repeat"`` for an
            optimizer that is random on purpose).

    Raises:
        AssertionError: a check failed (the message names the check and what went wrong).
    """
    ran = []
    for check in optimizer_checks(optimizer):
        if check.__name__ in skip:
            continue
        try:
            check(optimizer, settings, space)
        except AssertionError as e:
            raise AssertionError(f"{check.__name__}: {e}") from None
        ran.append(check.__name__)
    return ran
