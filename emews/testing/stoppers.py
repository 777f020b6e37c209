"""Contract checks for early-stopping rules, built-in or yours.

One call runs every check::

    from emews.testing.stoppers import check_stopper
    check_stopper(MyStopper, settings={"patience": 3})            # raises AssertionError

or, in pytest, one test per check::

    @pytest.mark.parametrize("check", stopper_checks())
    def test_contract(check):
        check(MyStopper, settings={"patience": 3})

The checks drive the stopper with a synthetic, seeded stream of reports from many
interleaved tasks (:func:`run_stream`): each task has a noisy decaying learning curve, reports
one loss per step until it is stopped, reaches ``max_step``, or fails; finished tasks are
replaced by new ones. The stream follows the stopper's decisions, as a real driver does.

::

    run_stream ──report(key, step, loss)──▶ stopper ──bool──▶ True: finished(key, "stopped", ...)
               ──finished(key, "done" | "failed", ...)──▶

What is checked: decisions are ``bool``; a finished task is never stopped; the same stream
gives the same decisions; ``restore`` followed by the rest of the stream gives the decisions
of an uninterrupted run; NaN and non-numeric losses, steps that do not grow and reports after
the end never raise; an unknown setting is a ``TypeError`` naming it; 100,000 reports from
over 10,000 tasks take seconds, not minutes (a sanity bound with a generous limit, so it
holds on a loaded machine; speed itself is measured in ``benchmarks/stopping``).
"""

from __future__ import annotations

import inspect
import math
import random
import time
from collections.abc import Callable, Hashable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from ..stoppers import resolve

__all__ = [
    "Stream",
    "run_stream",
    "check_stopper",
    "stopper_checks",
    "check_decisions_are_bools",
    "check_no_stop_after_finished",
    "check_deterministic",
    "check_restore_continues",
    "check_odd_reports_tolerated",
    "check_unknown_setting_rejected",
    "check_many_reports",
]


@dataclass
class Stream:
    """What :func:`run_stream` sent and got back.

    Attributes:
        events: ``("report", key, step, loss)`` and ``("finished", key, status, step, loss)``
            in the order they were sent.
        decisions: one per report event, in order.
        stopped: keys of the tasks stopped.
        after_end: decisions given to reports sent after a task's ``finished``.
    """

    events: list[tuple] = field(default_factory=list)
    decisions: list[Any] = field(default_factory=list)
    stopped: list[Hashable] = field(default_factory=list)
    after_end: list[Any] = field(default_factory=list)

    @property
    def reports(self) -> list[tuple[Hashable, float, float]]:
        return [e[1:] for e in self.events if e[0] == "report"]


def _factory(stopper: Any, settings: Mapping[str, Any] | None) -> Callable[[], Any]:
    obj = resolve(stopper)
    if not inspect.isclass(obj):
        raise TypeError(f"the checks need a stopper class (a fresh instance per run), got {obj!r}")
    return lambda: obj(**dict(settings or {}))


def run_stream(make: Callable[[], Any], *, tasks: int = 300, concurrency: int = 16, max_step: int = 27,
               seed: int = 0, odd: bool = False, after_end: bool = False, restart_at: int | None = None,
               min_reports: int = 0) -> Stream:
    """Drive a fresh stopper from ``make()`` with a seeded stream of interleaved reports.

    Args:
        make: builds the stopper (called again on a restart).
        tasks: how many tasks start (more start while fewer than ``min_reports`` were sent).
        concurrency: tasks running at once.
        max_step: a task that reports this step is done.
        seed: the stream's seed (curves, interleaving, failures).
        odd: also send NaN, infinite and non-numeric losses, steps that repeat or go back.
        after_end: after each ``finished``, send one more report for that task.
        restart_at: after this many reports, replace the stopper by a fresh one, ``restore``
            it from the reports so far and call ``finished`` for the tasks ended so far (a
            resume); the stream then goes on with the new one.
        min_reports: keep starting tasks until this many reports were sent.
    """
    rng = random.Random(seed)
    stopper = make()
    out = Stream()
    ended: list[tuple] = []
    running: list[list] = []  # [key, step, quality, tau]
    started = 0

    def start() -> None:
        nonlocal started
        key: Hashable = started if started % 7 else (started, 0)  # plain ids and (id, attempt) keys
        quality = rng.random()
        running.append([key, 0, quality, 1.0 + 8.0 * rng.random()])
        started += 1

    def finish(i: int, status: str, step: float, loss: float | None) -> None:
        key = running[i][0]
        stopper.finished(key, status, step, loss)
        ev = ("finished", key, status, step, loss)
        out.events.append(ev)
        ended.append(ev)
        running[i] = running[-1]
        running.pop()
        if after_end:
            out.after_end.append(stopper.report(key, step + 1, 0.0))

    while started < min(concurrency, tasks) or (not running and (started < tasks or len(out.decisions) < min_reports)):
        start()
    while running:
        if restart_at is not None and len(out.decisions) == restart_at:
            restart_at = None
            stopper = make()
            stopper.restore(out.reports)
            for ev in ended:
                stopper.finished(*ev[1:])
        i = rng.randrange(len(running))
        key, step, quality, tau = running[i]
        step += 1
        loss: Any = quality + (2.0 - quality) * math.exp(-step / tau) + rng.gauss(0.0, 0.02)
        sent_step: Any = step
        if odd:
            u = rng.random()
            if u < 0.02:
                loss = math.nan
            elif u < 0.03:
                loss = math.inf
            elif u < 0.035:
                loss = None
            elif u < 0.04:
                loss = "not a number"
            elif u < 0.06 and step > 1:
                sent_step = step - 1  # a repeat, or going back (the task's own step still grows)
            elif u < 0.065:
                sent_step = math.nan
        d = stopper.report(key, sent_step, loss)
        out.events.append(("report", key, sent_step, loss))
        out.decisions.append(d)
        running[i][1] = step
        if d:
            out.stopped.append(key)
            finish(i, "stopped", step, loss if isinstance(loss, float) else None)
        elif step >= max_step:
            finish(i, "done", step, loss if isinstance(loss, float) else None)
        elif rng.random() < 0.005:
            finish(i, "failed", step, None)
        else:
            continue
        if started < tasks or len(out.decisions) < min_reports:
            start()
    return out


# -- the checks ----------------------------------------------------------------------------
def check_decisions_are_bools(stopper: Any, settings: Mapping[str, Any] | None = None) -> None:
    """Every decision is a ``bool`` (not a NumPy bool or a number: the driver journals it)."""
    s = run_stream(_factory(stopper, settings))
    bad = [d for d in s.decisions if not isinstance(d, bool)]
    assert not bad, f"report returned {type(bad[0]).__name__} {bad[0]!r}, not a bool"


def check_no_stop_after_finished(stopper: Any, settings: Mapping[str, Any] | None = None) -> None:
    """A report for a task after its ``finished`` never stops it (it is ignored)."""
    s = run_stream(_factory(stopper, settings), after_end=True)
    assert s.after_end, "no task finished"
    stopped = [d for d in s.after_end if d is not False]
    assert not stopped, f"{len(stopped)} of {len(s.after_end)} reports after finished() got {stopped[0]!r}, not False"


def check_deterministic(stopper: Any, settings: Mapping[str, Any] | None = None) -> None:
    """The same stream (odd reports included) gives the same decisions, twice."""
    make = _factory(stopper, settings)
    a = run_stream(make, odd=True, seed=1)
    b = run_stream(make, odd=True, seed=1)
    first = next((i for i, (x, y) in enumerate(zip(a.decisions, b.decisions)) if x != y), None)
    assert first is None and len(a.decisions) == len(b.decisions), (
        f"two runs of the same stream differ at report {first}: {a.events[first] if first is not None else ''}")


def check_restore_continues(stopper: Any, settings: Mapping[str, Any] | None = None) -> None:
    """``restore`` (then ``finished`` for the ended tasks) and the rest of the stream give the
    decisions of an uninterrupted run, for resumes early, midway and late."""
    make = _factory(stopper, settings)
    whole = run_stream(make, odd=True, seed=2)
    n = len(whole.decisions)
    for cut in (1, n // 3, n // 2, n - 1):
        part = run_stream(make, odd=True, seed=2, restart_at=cut)
        first = next((i for i, (x, y) in enumerate(zip(whole.decisions, part.decisions)) if x != y), None)
        assert first is None and len(part.decisions) == n, (
            f"resumed after report {cut} of {n}: the decisions differ from an uninterrupted run "
            f"at report {first}")


def check_odd_reports_tolerated(stopper: Any, settings: Mapping[str, Any] | None = None) -> None:
    """NaN, infinite and non-numeric losses, NaN steps, repeated and backward steps, and
    reports after the end never raise, and the decisions stay booleans."""
    s = run_stream(_factory(stopper, settings), odd=True, after_end=True, seed=3)
    bad = [d for d in s.decisions + s.after_end if not isinstance(d, bool)]
    assert not bad, f"report returned {bad[0]!r}, not a bool"
    st = _factory(stopper, settings)()
    for loss in (math.nan, math.nan, -math.inf, math.inf, None, "x", 1.0):
        assert isinstance(st.report("k", 1 if loss == 1.0 else 0, loss), bool)
    st.finished("k", "failed", None, None)
    st.finished("never-reported", "done", None, None)


def check_unknown_setting_rejected(stopper: Any, settings: Mapping[str, Any] | None = None) -> None:
    """A misspelled setting is a ``TypeError`` naming it."""
    obj = resolve(stopper)
    try:
        obj(**dict(settings or {}), no_such_setting_xyz=1)
    except TypeError as e:
        assert "no_such_setting_xyz" in str(e), f"the TypeError does not name the setting: {e}"
    else:
        raise AssertionError(f"{obj.__name__}(no_such_setting_xyz=1) did not raise TypeError")


def check_many_reports(stopper: Any, settings: Mapping[str, Any] | None = None, limit_s: float = 120.0) -> None:
    """100,000 reports from at least 10,000 tasks (1,000 running at once, up to 10 steps each)
    take less than ``limit_s`` — a generous bound against quadratic rules (about a second
    on one core), not a timing test."""
    make = _factory(stopper, settings)
    t0 = time.process_time()
    s = run_stream(make, tasks=10_000, concurrency=1_000, max_step=10, seed=4, min_reports=100_000)
    took = time.process_time() - t0
    assert len(s.decisions) >= 100_000, len(s.decisions)
    assert took < limit_s, f"{len(s.decisions)} reports took {took:.1f} s of CPU (limit {limit_s} s)"


_CHECKS = [
    check_decisions_are_bools,
    check_no_stop_after_finished,
    check_deterministic,
    check_restore_continues,
    check_odd_reports_tolerated,
    check_unknown_setting_rejected,
    check_many_reports,
]


def stopper_checks() -> list[Callable[..., None]]:
    """Every check (for ``pytest.mark.parametrize``)."""
    return list(_CHECKS)


def check_stopper(stopper: Any, settings: Mapping[str, Any] | None = None, skip: Sequence[str] = ()) -> list[str]:
    """Run every check; returns the names of the checks run.

    Args:
        stopper: a :class:`~emews.stoppers.Stopper` class, a built-in name (``"asha"``) or a
            ``package.module:Class`` path.
        settings: keyword arguments for the class in every check.
        skip: names of checks to leave out.

    Raises:
        AssertionError: a check failed (the message names the check and what went wrong).
    """
    ran = []
    for check in _CHECKS:
        if check.__name__ in skip:
            continue
        try:
            check(stopper, settings)
        except AssertionError as e:
            raise AssertionError(f"{check.__name__}: {e}") from None
        ran.append(check.__name__)
    return ran
