"""The contract every worker pool must pass (local, MPI, simulated, or yours).

A pool is a :class:`emews.workers.Pool`: ``kind``, ``size``, ``clock``, ``idle``, ``busy``,
``start()``, ``submit(task) -> worker``, ``wait(timeout, extra=()) -> list[Result]``,
``stop_task(task_id) -> bool`` and ``shutdown(kill=False) -> list[Result]``, with the driver's
``on_report`` (called with every :class:`~emews.task.Report` during ``wait``; True stops the
task) given to its constructor. :func:`check_protocol` checks the members are there; the other
checks what they do. Each check takes a factory ``make_pool(runner_spec, on_report) -> pool``
and builds a fresh pool (the checks call ``start()``)::

    from emews.testing.pools import CHECKS, run_pool_checks
    from emews.workers import LocalPool

    run_pool_checks(lambda spec, on_report: LocalPool(2, spec, on_report=on_report))  # raises AssertionError

    @pytest.mark.parametrize("check", CHECKS, ids=lambda c: c.__name__)
    def test_my_pool(check):
        check(lambda spec, on_report: MyPool(spec, on_report=on_report))

For the MPI pool run them on rank 0 of an MPI job with ``make_pool = session.pool`` (see
``tests/workers/mpi_pool_contract.py``).
"""

from __future__ import annotations

import multiprocessing as mp
import time
from collections.abc import Callable
from typing import Any

from ..task import CANCELLED, DONE, FAILED, STOPPED, Result, Task

__all__ = ["CHECKS", "check_protocol", "run_pool_checks", "objective", "reporting", "OBJECTIVE", "drain"]

#: the objective the checks run (importable on every worker)
OBJECTIVE = "emews.testing.pools:objective"

PoolFactory = Callable[[dict, Any], Any]


def objective(params: dict) -> dict:
    """``x`` squared; sleeps ``sleep`` seconds; raises when ``fail`` is true."""
    if params.get("sleep"):
        time.sleep(params["sleep"])
    if params.get("fail"):
        raise ValueError(f"failing on purpose (x={params.get('x')})")
    return {"loss": float(params.get("x", 0)) ** 2, "x": params.get("x")}


def reporting(params: dict, trial: Any) -> float:
    """Reports ``x + 1/step`` for ``steps`` steps (sleeping ``sleep`` s between), returning
    the last loss; stops when told."""
    loss = 0.0
    for step in range(1, int(params.get("steps", 6)) + 1):
        loss = float(params.get("x", 0)) + 1.0 / step
        if trial.report(step, loss):
            break
        if params.get("sleep"):
            time.sleep(params["sleep"])
    return loss


def _spec() -> dict:
    return {"type": "python", "objective": OBJECTIVE}


def _ready(pool: Any, timeout: float = 60.0) -> None:
    """Start the pool and wait until every worker can take a task (workers load the objective first)."""
    pool.start()
    deadline = time.monotonic() + timeout
    while pool.idle < pool.size:
        assert time.monotonic() < deadline, f"only {pool.idle} of {pool.size} workers ready after {timeout:g} s"
        got = pool.wait(0.05)
        assert not got, f"results before any task was submitted: {got}"


def drain(pool: Any, tasks: list[Task], timeout: float = 60.0) -> tuple[list[Result], dict[int, Any]]:
    """Run ``tasks`` through ``pool`` as workers free up, as the driver does (tasks handed back
    unstarted are placed again): (results, task id -> worker from the last submit)."""
    queue = list(tasks)
    placed: dict[int, Any] = {}
    results: list[Result] = []
    deadline = time.monotonic() + timeout
    while len(results) < len(tasks):
        assert time.monotonic() < deadline, f"{len(results)} of {len(tasks)} results after {timeout:g} s"
        while queue and pool.idle:
            t = queue.pop(0)
            placed[t.id] = pool.submit(t)
            assert pool.busy <= pool.size, f"busy {pool.busy} > size {pool.size}"
        results.extend(pool.wait(1.0))
        queue[:0] = getattr(pool, "take_returned", list)()  # handed back unstarted (prefetch): placed again
    return results, placed


def check_protocol(make_pool: PoolFactory) -> None:
    """The pool has every member of :class:`emews.workers.Pool`, keeps the ``on_report`` it was
    given, and ``start()`` twice is harmless."""
    from ..workers import Pool

    def judge(rep: Any) -> bool:
        return False

    pool = make_pool(_spec(), judge)
    try:
        missing = [m for m in ("kind", "size", "clock", "on_report", "idle", "busy", "start", "submit", "wait",
                               "stop_task", "shutdown") if not hasattr(pool, m)]
        assert not missing, f"the pool lacks {missing}"
        assert isinstance(pool, Pool)
        assert pool.on_report is judge, "the pool does not keep the on_report given to its constructor"
        assert isinstance(pool.kind, str) and pool.kind, pool.kind
        assert isinstance(pool.size, int) and pool.size >= 1, pool.size
        assert callable(getattr(pool.clock, "monotonic", None)) and callable(getattr(pool.clock, "time", None)), \
            f"clock {pool.clock!r} has no time() and monotonic()"
        _ready(pool)
        pool.start()
        assert pool.idle == pool.size and pool.busy == 0, (pool.idle, pool.busy)
        assert pool.stop_task(12345) is False, "stop_task of a task no worker runs"
    finally:
        pool.shutdown()


def check_every_task_returns_once(make_pool: PoolFactory) -> None:
    """Every submitted task comes back exactly once, with its own parameters."""
    pool = make_pool(_spec(), None)
    try:
        _ready(pool)
        tasks = [Task(i, {"x": i}) for i in range(4 * pool.size + 3)]
        results, _ = drain(pool, tasks)
        ids = [r.task_id for r in results]
        assert sorted(ids) == list(range(len(tasks))), f"ids came back as {sorted(ids)}"
        for r in results:
            assert r.status == DONE, f"task {r.task_id}: {r.status} {r.error}"
            assert r.params == {"x": r.task_id} and r.loss == float(r.task_id) ** 2, r
        assert pool.busy == 0 and pool.idle == pool.size
    finally:
        pool.shutdown()


def check_results_carry_placement(make_pool: PoolFactory) -> None:
    """Results name the worker ``submit`` returned, the host, the attempt, and start <= end."""
    pool = make_pool(_spec(), None)
    try:
        _ready(pool)
        tasks = [Task(i, {"x": i, "sleep": 0.01}, attempt=i % 2) for i in range(2 * pool.size)]
        results, placed = drain(pool, tasks)
        for r in results:
            assert r.worker is not None and r.worker == placed[r.task_id], (r.worker, placed[r.task_id])
            assert isinstance(r.host, str) and r.host, r.host
            assert r.start is not None and r.end is not None and r.start <= r.end, (r.start, r.end)
            assert r.attempt == r.task_id % 2, r.attempt
        if pool.size > 1:
            assert len({r.worker for r in results}) > 1, "every task ran on the same worker"
    finally:
        pool.shutdown()


def check_failures_are_results(make_pool: PoolFactory) -> None:
    """An objective that raises gives a failed Result with the error text; the pool goes on."""
    pool = make_pool(_spec(), None)
    try:
        _ready(pool)
        tasks = [Task(i, {"x": i, "fail": i % 2 == 0}) for i in range(2 * pool.size + 2)]
        results, _ = drain(pool, tasks)
        by_id = {r.task_id: r for r in results}
        for i in range(len(tasks)):
            r = by_id[i]
            if i % 2 == 0:
                assert r.status == FAILED and r.loss is None, r
                assert "failing on purpose" in (r.error or ""), r.error
            else:
                assert r.status == DONE, r
        more, _ = drain(pool, [Task(100, {"x": 2})])
        assert more[0].status == DONE and more[0].loss == 4.0
    finally:
        pool.shutdown()


def check_wait_respects_timeout(make_pool: PoolFactory) -> None:
    """With nothing running, ``wait(t)`` returns ``[]`` after about ``t`` seconds, ``wait(0)`` at once;
    a readable ``extra`` connection ends the wait early."""
    pool = make_pool(_spec(), None)
    try:
        _ready(pool)
        t0 = time.monotonic()
        assert pool.wait(0) == []
        assert time.monotonic() - t0 < 0.5, "wait(0) blocked"
        t0 = time.monotonic()
        assert pool.wait(0.3) == []
        took = time.monotonic() - t0
        assert 0.25 <= took < 2.0, f"wait(0.3) took {took:.3f} s"
        a, b = mp.Pipe()
        try:
            b.send("wake")
            t0 = time.monotonic()
            assert pool.wait(5.0, [a]) == []
            assert time.monotonic() - t0 < 1.0, "wait() ignored a readable extra connection"
        finally:
            a.close()
            b.close()
    finally:
        pool.shutdown()


def check_shutdown_idempotent(make_pool: PoolFactory) -> None:
    """``shutdown()`` twice is harmless; the second call returns ``[]``."""
    pool = make_pool(_spec(), None)
    _ready(pool)
    drain(pool, [Task(0, {"x": 1})])
    assert pool.shutdown() == []
    assert pool.shutdown() == []
    assert pool.shutdown(kill=True) == []


def check_kill_returns_running_as_cancelled(make_pool: PoolFactory) -> None:
    """``shutdown(kill=True)`` returns the running tasks as cancelled results, promptly."""
    pool = make_pool(_spec(), None)
    try:
        _ready(pool)
        pool.submit(Task(7, {"x": 1, "sleep": 0.5}))
        t0 = time.monotonic()
        out = pool.shutdown(kill=True)
        assert time.monotonic() - t0 < 5.0, "shutdown(kill=True) waited for the task"
        assert [(r.task_id, r.status) for r in out] == [(7, CANCELLED)], out
    finally:
        pool.shutdown()


def check_reports_and_stops(make_pool: PoolFactory) -> None:
    """Every report reaches ``on_report`` in order; a True answer stops the task, whose
    result is ``stopped`` at the judged step with its loss; ``stop_task`` stops a running one."""
    seen: list[Any] = []
    phase = ["judge"]

    def on_report(rep: Any) -> bool:
        if phase[0] == "judge":
            seen.append((rep.task_id, rep.step))
            return rep.task_id == 1 and rep.step >= 2
        seen.append(rep.step)  # the optimizer's stop: every report says go on
        return False

    pool = make_pool({"type": "python", "objective": "emews.testing.pools:reporting"}, on_report)
    try:
        _ready(pool)
        results, _ = drain(pool, [Task(0, {"x": 0}), Task(1, {"x": 1})])
        by_id = {r.task_id: r for r in results}
        assert by_id[0].status == DONE and by_id[0].loss == 1.0 / 6, by_id[0]
        assert [s for t, s in seen if t == 0] == [1, 2, 3, 4, 5, 6], seen
        r1 = by_id[1]
        assert r1.status == STOPPED and r1.metrics.get("step") == 2 and r1.loss == 1.5, r1
        assert [s for t, s in seen if t == 1] == [1, 2], f"reported past the stop decision: {seen}"
        # the optimizer's stop (queues.stop): a task that would report 100,000 times (each report
        # waits for the answer to the one before it, so it cannot run ahead of the pool)
        seen.clear()
        phase[0] = "stop_task"
        pool.submit(Task(2, {"x": 0, "steps": 100000}))
        deadline = time.monotonic() + 60
        out: list[Result] = []
        while not seen:  # running and reporting
            assert time.monotonic() < deadline, "no report from the running task"
            out.extend(pool.wait(0.05))
        assert pool.stop_task(2) is True
        while not out:
            assert time.monotonic() < deadline, "stop_task did not stop the task"
            out.extend(pool.wait(0.5))
        assert [(r.task_id, r.status) for r in out] == [(2, STOPPED)], out
    finally:
        pool.shutdown()


def check_held_tasks_run_once_or_come_back_unstarted(make_pool: PoolFactory) -> None:
    """A pool may hold tasks ahead (prefetch: ``idle`` counts a busy worker's slot for its
    next task); ``size`` stays the worker count and ``busy`` never exceeds it. After
    ``recall()`` every submitted task either runs to its one result or comes back once from
    ``take_returned()`` never started (it never reported); ``shutdown(kill=True)`` returns
    the running and held tasks as cancelled, each once. A pool without prefetch passes with
    nothing held (``recall``/``take_returned`` optional)."""
    started: set[int] = set()

    def on_report(rep: Any) -> bool:
        started.add(rep.task_id)  # the reporting objective reports at once when it starts
        return False

    pool = make_pool({"type": "python", "objective": "emews.testing.pools:reporting"}, on_report)
    recall = getattr(pool, "recall", lambda: None)
    take_returned = getattr(pool, "take_returned", list)
    try:
        _ready(pool)
        drain(pool, [Task(1000 + i, {"x": 0, "steps": 1}) for i in range(2 * pool.size)])  # short tasks seen
        size = pool.size
        tasks = [Task(i, {"x": 0, "steps": 3, "sleep": 0.1}) for i in range(3 * size)]
        queue = list(tasks)
        while queue and pool.idle:
            pool.submit(queue.pop(0))
            assert pool.busy <= size and pool.size == size, (pool.busy, pool.size)
        submitted = len(tasks) - len(queue)
        assert submitted >= size, f"{submitted} tasks placed on {size} idle workers"
        recall()
        results: list[Result] = []
        returned: list[Task] = []
        deadline = time.monotonic() + 60
        while len(results) + len(returned) < submitted:
            assert time.monotonic() < deadline, f"{len(results)} results, {len(returned)} returned of {submitted}"
            results.extend(pool.wait(0.5))
            returned.extend(take_returned())
        ids = [r.task_id for r in results] + [t.id for t in returned]
        assert sorted(ids) == list(range(submitted)), f"came back as {sorted(ids)}"
        assert all(r.status == DONE for r in results), results
        assert not started & {t.id for t in returned}, f"handed back after starting: {started}, {returned}"
        assert pool.busy == 0 and pool.idle == pool.size, (pool.busy, pool.idle)
        # killed with tasks running and held: each comes back once, cancelled
        placed = []
        for t in [Task(100 + i, {"x": 0, "steps": 3, "sleep": 0.2}) for i in range(2 * size)]:
            if not pool.idle:
                break
            pool.submit(t)
            placed.append(t.id)
        out = pool.shutdown(kill=True)
        more = take_returned()
        assert sorted([r.task_id for r in out] + [t.id for t in more]) == placed, (out, more, placed)
        assert all(r.status == CANCELLED for r in out), out
    finally:
        pool.shutdown()


#: every check, in a sensible order
CHECKS: list[Callable[[PoolFactory], None]] = [
    check_protocol,
    check_every_task_returns_once,
    check_results_carry_placement,
    check_failures_are_results,
    check_wait_respects_timeout,
    check_shutdown_idempotent,
    check_kill_returns_running_as_cancelled,
    check_reports_and_stops,
    check_held_tasks_run_once_or_come_back_unstarted,
]


def run_pool_checks(make_pool: PoolFactory, verbose: bool = False) -> list[str]:
    """Run every check on fresh pools from ``make_pool``; returns the names that passed.

    Raises:
        AssertionError: the first check that fails, naming it.
    """
    passed = []
    for check in CHECKS:
        try:
            check(make_pool)
        except AssertionError as e:
            raise AssertionError(f"{check.__name__}: {e}") from e
        passed.append(check.__name__)
        if verbose:
            print(f"ok {check.__name__}", flush=True)
    return passed
