"""The worker wire protocol and the one report channel, without any pool."""

from __future__ import annotations

import collections
import pickle

import pytest

from emews.task import DONE, Report, Result, Task
from emews.workers import _wire as wire


def test_every_kind_has_a_constructor_and_round_trips_through_pickle():
    t = Task(3, {"x": 1.0}, attempt=1)
    r = Result(3, {"x": 1.0}, DONE, 1.0, attempt=1)
    rep = Report(3, 1, 2.0, 0.5, {"acc": 0.9}, 1.0)
    messages = [wire.task(t), wire.stop(3, 1), wire.answer(3, 1, True), wire.close(), wire.ready("0", "h"),
                wire.fatal("no module"), wire.report(rep), wire.result(r), wire.bye(), wire.recall(3, 1),
                wire.returned(t), wire.cancel(3, 1)]
    kinds = [m[0] for m in messages]
    assert sorted(kinds) == sorted(wire.TO_WORKER + wire.TO_POOL)
    for m in messages:
        assert pickle.loads(pickle.dumps(m)) == m
    assert wire.ready("0,1", "node7")[1] == wire.Ready(gpu="0,1", host="node7")


def test_dispatch_calls_the_handler_of_the_kind():
    seen = []
    handlers = {wire.TASK: seen.append, wire.CLOSE: lambda body: "closed"}
    wire.dispatch(wire.task(Task(1, {})), handlers)
    assert seen == [Task(1, {})]
    assert wire.dispatch(wire.close(), handlers) == "closed"


@pytest.mark.parametrize("message", [("nonsense", 1), ("result", None), None, "task", (1, 2, 3)])
def test_unknown_kinds_and_malformed_messages_are_errors(message):
    with pytest.raises(wire.WireError):
        wire.dispatch(message, {wire.TASK: lambda body: None})


class Pipe:
    """Both ends of a fake transport: what the channel posted, and what the pool sends back."""

    def __init__(self):
        self.posted: list = []
        self.inbox: collections.deque = collections.deque()
        self.blocking_reads = 0

    def post(self, msg):
        self.posted.append(msg)

    def receive(self, block):
        if block:
            self.blocking_reads += 1
            assert self.inbox, "the channel blocked with nothing due (it would hang)"
        return self.inbox.popleft() if self.inbox else None


def test_the_answer_to_report_k_is_read_at_report_k_plus_1():
    p = Pipe()
    ch = wire.WorkerChannel(5, 0, p.post, p.receive)
    assert ch.send(1, 0.9, {}) is False  # nothing due yet: sent without waiting
    assert [m[0] for m in p.posted] == [wire.REPORT] and p.posted[0][1].step == 1
    assert ch.outstanding == 1 and p.blocking_reads == 0
    p.inbox.append(wire.answer(5, 0, False))
    assert ch.send(2, 0.8, {}) is False  # read answer 1 (it had come), then sent report 2
    assert ch.outstanding == 1 and p.blocking_reads == 0 and len(p.posted) == 2
    p.inbox.append(wire.answer(5, 0, True))  # the stop decided at report 2
    assert ch.send(3, 0.7, {}) is True  # report 3 is not sent
    assert len(p.posted) == 2 and ch.stop


def test_a_late_answer_or_stop_for_another_attempt_is_passed_over():
    p = Pipe()
    ch = wire.WorkerChannel(5, 1, p.post, p.receive)
    p.inbox.extend([wire.answer(5, 0, True), wire.stop(4, 1), wire.stop(5, 0)])
    assert ch.stop_requested() is False
    p.inbox.append(wire.stop(5, 1))  # the optimizer's stop, unasked
    assert ch.stop_requested() is True


def test_an_unasked_stop_is_told_once_to_on_stop_and_close_is_kept():
    p = Pipe()
    told = []
    ch = wire.WorkerChannel(2, 0, p.post, p.receive, on_stop=lambda: told.append(1))
    p.inbox.extend([wire.close(), wire.stop(2, 0), wire.stop(2, 0)])
    assert ch.send(1, 0.5, {}) is True
    assert told == [1] and ch.closing


def test_send_wait_waits_for_its_own_answer_and_settle_takes_the_last():
    p = Pipe()
    ch = wire.WorkerChannel(1, 0, p.post, lambda block: p.receive(block))

    def answer_on_block(block):
        if block and not p.inbox:
            p.inbox.append(wire.answer(1, 0, False))
        return p.receive(block)

    ch._receive = answer_on_block
    assert ch.send_wait(1, 1.0, {}) is False and ch.outstanding == 0
    assert ch.send(2, 0.5, {}) is False and ch.outstanding == 1
    ch.settle()
    assert ch.outstanding == 0


def test_a_channel_without_receive_never_waits_and_one_without_post_sends_nothing():
    posted = []
    recorder = wire.WorkerChannel(1, 0, posted.append)  # the simulated pool's: every report kept
    assert [recorder.send(s, 1.0 / s, {}) for s in (1, 2, 3)] == [False] * 3
    assert [m[1].step for m in posted] == [1, 2, 3] and recorder.outstanding == 0
    p = Pipe()
    member = wire.WorkerChannel(1, 0, None, p.receive)  # an MPI group member: its leader reports
    assert member.send(1, 1.0, {}) is False and p.blocking_reads == 0
    p.inbox.append(wire.stop(1, 0))
    assert member.send(2, 1.0, {}) is True
    null = wire.NullChannel()
    assert null.send(1, 1.0, {}) is False and null.stop_requested() is False


def test_a_pool_that_went_away_ends_the_pipeline_without_an_error():
    def gone(block):
        raise EOFError

    posted = []
    ch = wire.WorkerChannel(1, 0, posted.append, gone)
    assert ch.send(1, 1.0, {}) is False and ch.gone and posted == []
    assert ch.stop_requested() is False


def test_the_contract_suite_catches_a_pool_that_drops_its_on_report():
    from emews.testing.pools import check_protocol
    from emews.workers._simulated import SimulatedPool

    check_protocol(lambda spec, on_report: SimulatedPool(2, spec, on_report=on_report))
    with pytest.raises(AssertionError, match="on_report"):
        check_protocol(lambda spec, on_report: SimulatedPool(2, spec))


def test_inbox_starts_held_tasks_in_order_and_hands_back_a_recalled_one():
    sent = []
    inbox = wire.TaskInbox(sent.append)
    a, b, c = Task(1, {}), Task(2, {}), Task(3, {}, attempt=1)
    for t in (a, b, c):
        wire.dispatch(wire.task(t), inbox.handlers)
    wire.dispatch(wire.recall(2, 0), inbox.handlers)
    wire.dispatch(wire.recall(3, 0), inbox.handlers)  # another attempt: not held, nothing comes back
    assert sent == [wire.returned(b)]
    assert inbox.next() == a
    wire.dispatch(wire.recall(1, 0), inbox.handlers)  # started: no answer (its RESULT comes)
    assert sent == [wire.returned(b)]
    assert inbox.next() == c and inbox.next() is None


def test_inbox_after_close_starts_nothing_and_a_cancelled_worker_hands_everything_back():
    sent = []
    inbox = wire.TaskInbox(sent.append)
    for i in range(3):
        inbox.on_task(Task(i, {}))
    inbox.hand_back_all()
    assert sent == [wire.returned(Task(i, {})) for i in range(3)] and inbox.next() is None
    inbox.on_task(Task(9, {}))
    wire.dispatch(wire.close(), inbox.handlers)
    assert inbox.closing and inbox.next() is None


def test_a_channel_with_an_inbox_passes_a_task_and_a_recall_read_during_the_task_to_it():
    sent = []
    inbox = wire.TaskInbox(sent.append)
    incoming = collections.deque([wire.task(Task(5, {})), wire.task(Task(6, {})), wire.recall(6, 0), wire.close()])
    ch = wire.WorkerChannel(4, 0, post=sent.append, receive=lambda block: incoming.popleft() if incoming else None,
                            inbox=inbox)
    assert ch.stop_requested() is False
    assert [t.id for t in inbox.held] == [5] and sent == [wire.returned(Task(6, {}))]
    assert ch.closing and inbox.closing and inbox.next() is None
