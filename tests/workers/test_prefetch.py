"""Prefetch on the local pool: a busy worker holds its next task once tasks are seen to be short,
starts it when its current one ends, and hands it back unstarted when recalled or when it dies.

The driver-level guarantees (a stop starts no held task; a killed and resumed run evaluates
nothing twice) are checked with prefetch active by tests/core/test_walltime.py (the gate holds
tasks while their workers hold the next ones), tests/core/test_resume.py and the kill tests.
"""

from __future__ import annotations

import time

from emews.task import DONE, FAILED, Result, Task
from emews.testing.pools import drain
from emews.workers import LocalPool
from emews.workers._pool import PoolBase

SPEC = {"type": "python", "objective": "emews.testing.pools:objective"}


def _ready(pool: LocalPool) -> None:
    deadline = time.monotonic() + 120
    while pool.idle < pool.size:
        assert time.monotonic() < deadline, "workers not ready"
        pool.wait(0.1)


def _collect(pool: LocalPool, n: int) -> list:
    out: list = []
    deadline = time.monotonic() + 120
    while len(out) < n:
        assert time.monotonic() < deadline, f"{len(out)} of {n} results"
        out.extend(pool.wait(0.5))
    return out


def test_a_busy_worker_holds_its_next_task_once_tasks_are_seen_to_be_short():
    pool = LocalPool(2, SPEC)
    try:
        _ready(pool)
        pool.submit(Task(0, {"x": 0}))
        pool.submit(Task(1, {"x": 1}))
        assert pool.idle == 0 and pool.prefetched == 0, "held a task before any task had ended"
        _collect(pool, 2)
        # short tasks seen: each busy worker offers a slot for its next task; size stays 2
        placed = {}
        for i in range(2, 6):
            assert pool.idle > 0, f"no slot for task {i}"
            placed[i] = pool.submit(Task(i, {"x": i, "sleep": 0.05}))
        assert pool.idle == 0 and pool.busy == 2 and pool.prefetched == 2 and pool.size == 2
        assert sorted(placed.values()) == [0, 0, 1, 1]
        results = _collect(pool, 4)
        assert sorted(r.task_id for r in results) == [2, 3, 4, 5] and all(r.status == DONE for r in results)
        by_id = {r.task_id: r for r in results}
        for held in (4, 5):  # ran on the worker that held it, after the task before it there
            r = by_id[held]
            before = by_id[held - 2]
            assert r.worker == placed[held] == before.worker and r.start >= before.end, (r, before)
        started = pool.take_started()
        assert sorted((t.id, w) for t, w, _ in started) == [(4, placed[4]), (5, placed[5])]
        assert pool.busy == 0 and pool.idle == 2 and pool.prefetched == 0
    finally:
        pool.shutdown()


def test_long_tasks_are_not_held():
    pool = LocalPool(2, SPEC)
    pool.PREFETCH_BELOW = 0.05  # tasks of 0.1 s count as long here
    try:
        _ready(pool)
        drain(pool, [Task(i, {"x": i, "sleep": 0.1}) for i in range(4)])
        pool.submit(Task(10, {"x": 0}))
        pool.submit(Task(11, {"x": 0}))
        assert pool.idle == 0 and pool.prefetched == 0
        _collect(pool, 2)
    finally:
        pool.shutdown()


def test_a_worker_that_dies_hands_its_held_task_back_unstarted():
    pool = LocalPool(1, {"type": "python", "objective": "objectives:dies"})
    try:
        _ready(pool)
        drain(pool, [Task(0, {"x": 0})])
        assert pool.submit(Task(1, {"die": True, "sleep": 0.2})) == 0
        kept = pool.submit(Task(2, {"x": 2}))  # held (None: the worker had already died: the caller keeps it)
        results, back = [], []
        deadline = time.monotonic() + 120
        while not results or (kept is not None and not back):
            assert time.monotonic() < deadline, (results, back)
            results.extend(pool.wait(0.5))
            back.extend(pool.take_returned())
        assert [(r.task_id, r.status) for r in results] == [(1, FAILED)], results
        assert "died while running the task" in results[0].error
        assert [t.id for t in back] == ([2] if kept is not None else []), back
        # the new worker process runs it
        more, _ = drain(pool, [Task(2, {"x": 2})])
        assert [(r.task_id, r.status, r.loss) for r in more] == [(2, DONE, 2.0)]
    finally:
        pool.shutdown()


class _Recorder(PoolBase):
    """PoolBase's bookkeeping alone: the messages a transport would send are recorded."""

    prefetch = 1

    def __init__(self, workers: int):
        super().__init__(workers)
        self.sent: list[tuple[str, int, int]] = []
        for w in range(workers):
            self._ready(w)

    def _send_task(self, worker, task):
        self.sent.append(("task", worker, task.id))

    def _send_recall(self, worker, task):
        self.sent.append(("recall", worker, task.id))


def _result(t: Task, worker: int, start: float = 0.0, end: float = 0.01) -> Result:
    return Result(t.id, t.params, DONE, 0.0, worker=worker, start=start, end=end, attempt=t.attempt)


def test_a_recalled_task_handed_back_after_its_worker_was_sent_another_leaves_that_one_running():
    # worker 0 runs A and holds B; B is recalled; A ends (B counts as started, and C is sent
    # ahead); then B comes back unstarted: C is the worker's running task, nothing is lost
    pool = _Recorder(1)
    warm = Task(9, {})
    pool.submit(warm)
    assert pool._finished(0, _result(warm, 0))
    a, b, c = Task(1, {}), Task(2, {}), Task(3, {})
    assert pool.submit(a) == 0 and pool.submit(b) == 0 and pool.prefetched == 1
    pool.recall()
    assert pool.sent[-1] == ("recall", 0, 2)
    assert pool._finished(0, _result(a, 0))
    assert [t.id for t, _, _ in pool.take_started()] == [2] and pool.busy == 1 and pool.idle == 1
    assert pool.submit(c) == 0 and pool.prefetched == 1
    pool._handed_back(0, b)
    assert [t.id for t in pool.take_returned()] == [2]
    assert pool.busy == 1 and pool.prefetched == 0 and [t.id for t, _, _ in pool.take_started()] == [3]
    assert pool._finished(0, _result(c, 0)), "the result of the task that replaced the returned one was dropped"
    assert pool.busy == 0 and pool.idle == 1


def test_a_worker_going_idle_recalls_a_task_another_holds_once_tasks_look_long():
    pool = _Recorder(2)
    for i in (90, 91):
        t = Task(i, {})
        w = pool.submit(t)
        assert pool._finished(w, _result(t, w))
    a, b, c = Task(1, {}), Task(2, {}), Task(3, {})
    wa, wb = pool.submit(a), pool.submit(b)
    wc = pool.submit(c)  # held by one of them
    assert pool.prefetched == 1 and wc in (wa, wb)
    other = wb if wc == wa else wa
    ran = a if other == wa else b
    pool.PREFETCH_BELOW = 0.5
    assert pool._finished(other, _result(ran, other, end=0.4))  # idle, tasks still short: nothing recalled
    assert pool.sent[-1] == ("task", wc, 3)
    again = Task(4, {})
    assert pool.submit(again) == other
    pool.PREFETCH_BELOW = 0.01  # tasks look long now: a worker going idle takes the held task back
    assert pool._finished(other, _result(again, other, end=1.0))
    assert pool.sent[-1] == ("recall", wc, 3)
    pool._handed_back(wc, c)
    assert [t.id for t in pool.take_returned()] == [3] and pool.prefetched == 0


class _DeepRecorder(_Recorder):
    prefetch_deep = 3
    DEEP_AFTER = 4


def _warm(pool: PoolBase, n: int, took: float = 0.0001) -> None:
    """End ``n`` short tasks on every worker (tasks seen to be short)."""
    for i in range(n):
        t = Task(1000 + i, {})
        w = pool.submit(t)
        assert pool._finished(w, _result(t, w, end=took))


def test_deep_prefetch_holds_several_tasks_once_many_very_short_ones_ended_and_starts_them_in_order():
    pool = _DeepRecorder(2)
    _warm(pool, 3)  # short, but fewer than DEEP_AFTER: one held task per busy worker
    a, b = Task(1, {}), Task(2, {})
    pool.submit(a), pool.submit(b)
    assert pool.idle == 2
    for t in (Task(3, {}), Task(4, {})):
        pool.submit(t)
    assert pool.idle == 0 and pool.prefetched == 2
    for t in (a, b):  # 5 ended now (DEEP_AFTER 4), all far shorter than DEEP_BELOW
        w = next(w for w, x in pool._busy.items() if x is t)
        assert pool._finished(w, _result(t, w, end=0.0001))
    assert [t.id for t, _, _ in pool.take_started()] == [3, 4]
    assert pool.busy == 2 and pool.prefetched == 0 and pool.idle == 6  # each busy worker: 3 slots
    held = [Task(10 + i, {}) for i in range(6)]
    placed = [pool.submit(t) for t in held]
    assert pool.idle == 0 and pool.prefetched == 6 and sorted(placed) == [0, 0, 0, 1, 1, 1]
    # a worker starts what it holds in the order sent, one per result
    w = placed[0]
    mine = [t for t, p in zip(held, placed) if p == w]
    running = pool._busy[w]
    for nxt in mine:
        assert pool._finished(w, _result(running, w, end=0.0001))
        assert [t.id for t, _, _ in pool.take_started()] == [nxt.id]
        running = nxt
    # a stop recalls every held task; one handed back leaves the others held
    pool.recall()
    other = 1 - w
    recalled = [x[2] for x in pool.sent if x[0] == "recall"]
    assert sorted(recalled) == sorted(t.id for t, p in zip(held, placed) if p == other)
    back = [t for t, p in zip(held, placed) if p == other][1]
    pool._handed_back(other, back)
    assert [t.id for t in pool.take_returned()] == [back.id] and pool.prefetched == 2
    # shutdown: the held ones come back cancelled
    cancelled = pool._held_as_cancelled()
    assert sorted(r.task_id for r in cancelled) == sorted(t.id for t, p in zip(held, placed) if p == other and t is not back)
    assert pool.prefetched == 0


def test_deep_prefetch_ends_when_tasks_grow_and_a_dead_worker_hands_every_held_task_back():
    pool = _DeepRecorder(1)
    _warm(pool, 5)
    run = Task(1, {})
    pool.submit(run)
    held = [Task(2 + i, {}) for i in range(3)]
    for t in held:
        pool.submit(t)
    assert pool.idle == 0 and pool.prefetched == 3
    pool._lost_held(0)
    assert [t.id for t in pool.take_returned()] == [2, 3, 4] and pool.prefetched == 0
    # tasks no longer far shorter than a round trip: one held task at most again
    assert pool._finished(0, _result(run, 0, end=0.2))
    pool.submit(Task(7, {}))
    assert pool.idle == 1
    pool.submit(Task(8, {}))
    assert pool.idle == 0 and pool.prefetched == 1


def test_the_local_pool_runs_every_task_held_deep_once_on_the_worker_that_held_it():
    pool = LocalPool(2, SPEC)
    pool.DEEP_BELOW = pool.PREFETCH_BELOW  # the no-op tasks count as very short on a loaded machine too
    try:
        _ready(pool)
        drain(pool, [Task(i, {"x": i}) for i in range(pool.DEEP_AFTER + 2)])  # many very short tasks ended
        tasks = [Task(100 + i, {"x": i}) for i in range(2 + 2 * pool.prefetch_deep)]
        placed = {}
        for t in tasks:
            assert pool.idle > 0, f"no slot for task {t.id}"
            placed[t.id] = pool.submit(t)
        assert pool.idle == 0 and pool.prefetched == 2 * pool.prefetch_deep and pool.size == 2
        results = _collect(pool, len(tasks))
        assert sorted(r.task_id for r in results) == [t.id for t in tasks] and all(r.status == DONE for r in results)
        assert all(r.worker == placed[r.task_id] for r in results)
        for w in (0, 1):  # in the order sent, each after the one before it on that worker
            mine = sorted((r for r in results if r.worker == w), key=lambda r: r.task_id)
            assert all(a.end <= b.start for a, b in zip(mine, mine[1:])), mine
        assert pool.busy == 0 and pool.prefetched == 0 and pool.idle == 2
    finally:
        pool.shutdown()
