"""The ledger: budget, attempts, retries, failures and the stop after the budget, without a
process, a pool or a journal (the driver carries its decisions out)."""

from __future__ import annotations

from emews._ledger import BUDGET_SPENT, Ledger, Retry
from emews.resume import Handoff, ResumePlan
from emews.task import CANCELLED, DONE, FAILED, STOPPED, TIMEOUT, Result, Stop, StopReason, Task


def result(tid: int, status: str = DONE, loss: float | None = 1.0, attempt: int = 0) -> Result:
    return Result(tid, {"x": tid}, status, loss=loss if status in (DONE, STOPPED) else None,
                  error=None if status == DONE else status, attempt=attempt)


def accept_all(led: Ledger, ids) -> list[str | None]:
    batch = led.new_batch()
    return [led.accept(tid, batch) for tid in ids]


def test_puts_beyond_the_budget_are_refused():
    led = Ledger(max_evals=3)
    assert accept_all(led, [0, 1]) == [None, None]
    assert accept_all(led, [2, 3, 4]) == [None, BUDGET_SPENT, BUDGET_SPENT]
    assert led.accepted == 3 and led.budget_taken and not led.budget_spent
    assert led.batches == 2


def test_after_a_stop_puts_are_refused_with_its_reason():
    led = Ledger(max_evals=10)
    led.end(Stop(StopReason.MAX_TIME, "max_time of 5 s reached"))
    assert accept_all(led, [0]) == ["max_time of 5 s reached"]
    assert led.accepted == 0


def test_the_first_stop_is_the_one_that_counts():
    led = Ledger(max_evals=10)
    first = Stop(StopReason.MAX_TIME, "max_time of 5 s reached")
    assert led.end(first) is first
    assert led.end(Stop(StopReason.DEADLINE, "deadline near")) is first and led.stop is first


def test_finished_results_count_and_the_budget_stops_the_session_once():
    led = Ledger(max_evals=2)
    accept_all(led, [0, 1])
    assert led.settle(result(0, loss=3.0)) is None
    assert led.budget_stop() is None
    assert led.settle(result(1, loss=2.0)) is None
    stop = led.budget_stop()
    assert stop is not None and stop.reason is StopReason.MAX_EVALS and str(stop) == "max_evals reached"
    led.end(stop)
    assert led.budget_stop() is None  # already stopping
    assert (led.finished, led.failed, led.best) == (2, 0, 2.0)


def test_a_failure_is_retried_as_the_next_attempt_in_its_batch_until_the_retries_are_spent():
    led = Ledger(max_evals=5, retries=2)
    accept_all(led, [0])
    batch = led.new_batch()
    assert led.accept(7, batch) is None
    retry = led.settle(result(7, FAILED))
    assert retry == Retry(Task(7, {"x": 7}, 1), batch)
    assert led.failures(7) == 1 and led.finished == 0 and led.failed == 0
    retry = led.settle(result(7, TIMEOUT, attempt=1))  # a timeout is a failure too
    assert retry == Retry(Task(7, {"x": 7}, 2), batch)
    assert led.settle(result(7, FAILED, attempt=2)) is None  # the third failure is final
    assert (led.finished, led.failed, led.failures(7)) == (1, 1, 0)
    assert led.accepted == 2  # attempts do not count against the budget; tasks do


def test_a_retried_task_that_succeeds_is_not_a_failure():
    led = Ledger(max_evals=5, retries=1)
    accept_all(led, [0])
    assert led.settle(result(0, FAILED)) is not None
    assert led.settle(result(0, DONE, loss=0.5, attempt=1)) is None
    assert (led.finished, led.failed, led.best, led.failures(0)) == (1, 0, 0.5, 0)


def test_without_retries_a_failure_is_final_and_counted():
    led = Ledger(max_evals=5)
    accept_all(led, [0, 1])
    assert led.settle(result(0, FAILED)) is None
    assert led.settle(result(1, TIMEOUT)) is None
    assert (led.finished, led.failed, led.best) == (2, 2, None)


def test_no_retry_once_the_session_stops():
    led = Ledger(max_evals=5, retries=3)
    accept_all(led, [0])
    led.end(Stop(StopReason.INTERRUPTED, "interrupted (Ctrl-C)"))
    assert led.settle(result(0, FAILED)) is None
    assert (led.finished, led.failed) == (1, 1)


def test_stopped_tasks_are_finished_neither_failed_nor_retried():
    led = Ledger(max_evals=5, retries=3)
    accept_all(led, [0, 1])
    assert led.settle(result(0, FAILED)) is not None  # one failure on record
    assert led.settle(result(0, STOPPED, loss=0.1, attempt=1)) is None
    assert (led.finished, led.failed, led.stopped, led.failures(0)) == (1, 0, 1, 0)
    assert led.best is None  # a stopped task's loss is a partial one: not the best


def test_cancelled_results_are_final_and_not_counted():
    led = Ledger(max_evals=2, retries=3)
    accept_all(led, [0, 1])
    assert led.settle(result(0, CANCELLED)) is None
    assert (led.finished, led.failed, led.failures(0)) == (0, 0, 0)
    assert not led.budget_spent and led.budget_stop() is None


def test_the_best_loss_is_the_lowest_done_one():
    led = Ledger(max_evals=5)
    accept_all(led, range(4))
    for tid, loss in [(0, 3.0), (1, 1.0), (2, 2.0)]:
        led.settle(result(tid, loss=loss))
    led.settle(result(3, FAILED))
    assert led.best == 1.0


def test_over_waits_for_running_tasks_after_a_stop():
    led = Ledger(max_evals=2)
    accept_all(led, [0, 1])
    led.settle(result(0))
    assert not led.over(running=1, queued=0, optimizer_ended=False)
    led.settle(result(1))
    assert not led.over(running=1, queued=0, optimizer_ended=False)  # the budget stop waits for the running one
    assert led.stop.reason is StopReason.MAX_EVALS
    assert led.over(running=0, queued=0, optimizer_ended=False)


def test_over_when_the_optimizer_ends_and_nothing_is_left():
    led = Ledger(max_evals=10)
    accept_all(led, [0])
    assert not led.over(running=0, queued=1, optimizer_ended=True)
    assert not led.over(running=1, queued=0, optimizer_ended=True)
    assert led.stop is None
    assert led.over(running=0, queued=0, optimizer_ended=True)
    assert led.stop.reason is StopReason.OPTIMIZER_FINISHED
    failed = Ledger(max_evals=10)
    assert failed.over(running=0, queued=0, optimizer_ended=True, optimizer_failed=True)
    assert failed.stop.reason is StopReason.OPTIMIZER_FAILED


def plan(**changes) -> ResumePlan:
    fields = dict(finished=4, failed=1, best=0.25, failures={9: 1}, rerun=[Task(9, {"x": 9}, 1), Task(11, {"x": 11})],
                  batches={9: 3}, closings=[], unfit=0, last_batch=5, handoff=Handoff())
    fields.update(changes)
    return ResumePlan(**fields)


def test_a_resumed_session_starts_from_the_earlier_counts():
    led = Ledger(max_evals=8, retries=1)
    led.take_over(plan())
    assert (led.finished, led.finished_before, led.failed, led.best) == (4, 4, 1, 0.25)
    assert led.accepted == 6 and led.evaluations == 0  # the re-runs are accepted already
    assert led.new_batch() == 6  # batches go on from the last one journaled
    # task 9 failed once before: its re-run (attempt 1) is its last try, in its old batch
    assert led.settle(result(9, FAILED, attempt=1)) is None
    assert led.failed == 2 and led.finished == 5
    retry = Ledger(max_evals=8, retries=2)
    retry.take_over(plan())
    assert retry.settle(result(9, FAILED, attempt=1)) == Retry(Task(9, {"x": 9}, 2), 3)
    led.settle(result(11, loss=0.1))
    assert led.evaluations == 2 and led.best == 0.1


def test_a_resumed_session_with_the_budget_spent():
    led = Ledger(max_evals=4)
    led.take_over(plan(rerun=[]))
    assert led.budget_spent and led.budget_taken
    assert accept_all(led, [12]) == [BUDGET_SPENT]
    complete = Ledger(max_evals=4)
    complete.take_over_complete(4)
    stop = complete.already_complete()
    assert stop.reason is StopReason.ALREADY_COMPLETE and str(stop) == "already complete (4 of 4 evaluations)"
    assert complete.evaluations == 0


def test_an_attempt_lost_with_its_worker_runs_again_in_its_batch_and_counts_nothing():
    led = Ledger(max_evals=2, retries=0)
    accept_all(led, [0, 1])
    task, batch = led.interrupted(result(0, CANCELLED))
    assert (task.id, task.attempt, batch) == (0, 1, 1)
    assert led.failures(0) == 0 and led.finished == 0 and led.failed == 0  # not against retries, not final
    assert led.settle(result(0, DONE, 0.5, attempt=1)) is None and led.finished == 1 and led.best == 0.5
