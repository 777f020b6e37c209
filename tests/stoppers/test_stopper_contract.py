"""The stopper contract suite (emews.testing.stoppers) on the built-ins, a user plug-in, and
broken stoppers it must reject."""

from __future__ import annotations

import logging
import random

import numpy as np
import pytest

from emews.stoppers import Stopper
from emews.testing.stoppers import (
    check_decisions_are_bools,
    check_deterministic,
    check_no_stop_after_finished,
    check_restore_continues,
    check_stopper,
    check_unknown_setting_rejected,
    run_stream,
    stopper_checks,
)

BUILTINS = {
    "median": {},
    "asha": {"max_resource": 27},
    "hyperband": {"max_resource": 27},
}


@pytest.fixture(autouse=True)
def _quiet():
    # the odd reports of the stream warn on purpose, thousands of times
    logging.getLogger("emews.stoppers").setLevel(logging.ERROR)
    yield
    logging.getLogger("emews.stoppers").setLevel(logging.NOTSET)


@pytest.mark.parametrize("check", stopper_checks(), ids=lambda c: c.__name__)
@pytest.mark.parametrize("name", list(BUILTINS))
def test_builtin_contract(name, check):
    check(name, BUILTINS[name])


@pytest.mark.parametrize("name", list(BUILTINS))
def test_builtins_stop_some_and_spare_some(name):
    """On the suite's stream of 300 diverse curves each rule stops many and lets some finish,
    and the ones it lets finish are better than the ones it stops, on average."""
    from emews.stoppers import from_config

    s = run_stream(lambda: from_config({"name": name, **BUILTINS[name]}))
    ends = {e[1]: e[2] for e in s.events if e[0] == "finished"}
    done = [k for k, st in ends.items() if st == "done"]
    assert len(s.stopped) > 100 and len(done) >= 5, (len(s.stopped), len(done))
    last = {}
    for e in s.events:
        if e[0] == "report" and isinstance(e[3], float) and e[3] == e[3]:
            last.setdefault(e[1], {})[e[2]] = e[3]
    # compare at step 1, where every task reported
    at1 = lambda keys: sum(last[k][1] for k in keys if 1 in last.get(k, {})) / len(keys)  # noqa: E731
    assert at1(done) < at1(s.stopped)


class Threshold(Stopper):
    """A user-style plug-in: stop from step 3 on when the loss is above a limit."""

    def __init__(self, limit=1.0):
        self.limit = limit
        self.ended = set()

    def report(self, task_id, step, loss):
        if task_id in self.ended:
            return False
        try:
            return bool(step >= 3 and float(loss) > self.limit)
        except (TypeError, ValueError):
            return False

    def finished(self, task_id, status, step, loss):
        self.ended.add(task_id)


def test_plugin_passes_every_check():
    assert check_stopper(Threshold, {"limit": 1.0}) == [c.__name__ for c in stopper_checks()]


def test_stream_follows_the_decisions():
    s = run_stream(lambda: Threshold(limit=1.0))
    finished = {e[1]: e[2] for e in s.events if e[0] == "finished"}
    assert s.stopped and all(finished[k] == "stopped" for k in s.stopped)
    # no report from a task after it was stopped
    seen_end = set()
    for e in s.events:
        if e[0] == "finished":
            seen_end.add(e[1])
        else:
            assert e[1] not in seen_end


# -- broken stoppers the suite must catch ----------------------------------------------------
class NumpyBools(Threshold):
    def report(self, task_id, step, loss):
        return np.bool_(super().report(task_id, step, loss))


class StopsAfterEnd(Threshold):
    def report(self, task_id, step, loss):
        return task_id in self.ended or super().report(task_id, step, loss)


class Coin(Threshold):
    def __init__(self):
        super().__init__()
        self.rng = random.Random()

    def report(self, task_id, step, loss):
        return task_id not in self.ended and step >= 3 and self.rng.random() < 0.2


class Forgetful(Threshold):
    """Stops every 10th report it has seen: its state is a counter restore() does not rebuild."""

    def __init__(self):
        super().__init__()
        self.n = 0

    def restore(self, reports):
        pass

    def report(self, task_id, step, loss):
        self.n += 1
        return task_id not in self.ended and self.n % 10 == 0


class Strict:
    """Not a subclass; a plain signature without a setting of that name."""

    def __init__(self):
        pass


@pytest.mark.parametrize("cls,check,needle", [
    (NumpyBools, check_decisions_are_bools, "not a bool"),
    (StopsAfterEnd, check_no_stop_after_finished, "after finished()"),
    (Coin, check_deterministic, "differ"),
    (Forgetful, check_restore_continues, "resumed after report"),
])
def test_suite_catches_broken_stoppers(cls, check, needle):
    with pytest.raises(AssertionError, match=needle):
        check(cls)


def test_check_stopper_names_the_failed_check():
    with pytest.raises(AssertionError, match="check_decisions_are_bools"):
        check_stopper(NumpyBools)


def test_unknown_setting_check():
    check_unknown_setting_rejected(Strict)  # Python's own TypeError names the keyword

    class Swallows(Threshold):
        def __init__(self, **settings):
            super().__init__()

    with pytest.raises(AssertionError, match="did not raise"):
        check_unknown_setting_rejected(Swallows)
