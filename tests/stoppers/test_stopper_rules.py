"""The semantics of the built-in stoppers, on report sequences worked out by hand."""

from __future__ import annotations

import logging
import math

import pytest

from emews.stoppers import ASHA, Hyperband, MedianStopper


# -- ASHA ----------------------------------------------------------------------------------------
def test_asha_rungs():
    assert ASHA(min_resource=1, max_resource=27, reduction_factor=3).rungs == [1, 3, 9]
    assert ASHA(min_resource=2, max_resource=100, reduction_factor=4).rungs == [2, 8, 32]
    assert ASHA(min_resource=5, max_resource=5).rungs == []  # nothing below the end: never stops


def test_asha_promotes_the_top_third_on_arrival():
    """eta = 3: the n-th arrival at a rung goes on iff it is among the best max(n // 3, 1)."""
    a = ASHA(min_resource=1, max_resource=27, reduction_factor=3)
    # rung 1 (step 1), in arrival order; the cut-off is the k-th smallest so far, own value included
    arrivals = [
        (0, 5.0, False),  # n=1 k=1: best so far
        (1, 6.0, True),   # n=2 k=1: 6 > 5
        (2, 4.0, False),  # n=3 k=1: best
        (3, 4.5, True),   # n=4 k=1: 4.5 > 4
        (4, 3.0, False),  # n=5 k=1: best
        (5, 3.5, False),  # n=6 k=2: [3, 3.5, ...] 2nd smallest is 3.5: a tie goes on
        (6, 7.0, True),   # n=7 k=2: 7 > 3.5
        (7, 3.6, True),   # n=8 k=2: 3.6 > 3.5
        (8, 3.2, False),  # n=9 k=3: [3, 3.2, 3.5, ...]: 3.2 <= 3.5
    ]
    for task, loss, stop in arrivals:
        assert a.report(task, 1, loss) is stop, (task, loss)
    survivors = [t for t, _, stop in arrivals if not stop]
    assert survivors == [0, 2, 4, 5, 8]
    # between rungs nothing is decided, however bad
    for t in survivors:
        assert a.report(t, 2, 100.0) is False
    # rung 3: a fresh competition among those that reach it
    for task, loss, stop in [(4, 2.0, False), (0, 2.5, True), (8, 1.9, False), (2, 2.2, True), (5, 1.8, False)]:
        assert a.report(task, 3, loss) is stop, (task, loss)
    # a report past the last rung (9) and up to the end is never stopped once through rung 9
    assert a.report(4, 9, 1.0) is False
    assert a.report(4, 26, 50.0) is False


def test_asha_worse_and_better_arrivals():
    worse = ASHA(max_resource=27)
    assert [worse.report(t, 1, float(t)) for t in range(9)] == [False] + [True] * 8
    better = ASHA(max_resource=27)
    assert [better.report(t, 1, -float(t)) for t in range(9)] == [False] * 9


def test_asha_judges_every_rung_a_report_jumps_over():
    a = ASHA(max_resource=27)
    assert a.report("good", 1, 1.0) is False
    assert a.report("good", 3, 1.0) is False
    # "late" reports first at step 10: it is recorded at rung 1 (goes on: 0.5 is the best) and
    # judged at rung 3 with the same loss: 0.5 < 1.0, it goes on; rung 9 likewise
    assert a.report("late", 10, 0.5) is False
    assert a.report("bad", 10, 2.0) is True  # best at no rung: stopped at rung 1 already
    assert a.report("bad", 11, 0.0) is True  # once stopped, it stays stopped until finished


def test_asha_grace_trials():
    a = ASHA(max_resource=27, grace_trials=2)
    assert [a.report(t, 1, float(t)) for t in range(4)] == [False, False, True, True]


def test_asha_stopped_then_finished_is_forgotten():
    a = ASHA(max_resource=27)
    a.report(0, 1, 1.0)
    assert a.report(1, 1, 2.0) is True
    a.finished(1, "stopped", 1, 2.0)
    assert a.report(1, 3, 0.0) is False  # never stopped after finished
    # a retry under an attempt key starts afresh and is judged again
    assert a.report((1, 1), 1, 0.5) is False


# -- median --------------------------------------------------------------------------------------
def _good_curves(stopper, n=10, steps=10):
    for t in range(n):
        for s in range(1, steps + 1):
            assert stopper.report(f"g{t}", s, 1.0 / s) is False  # equal peers: none is worse than the median


def test_median_stops_a_bad_curve_after_warmup_and_never_a_good_one():
    m = MedianStopper(warmup_steps=3, min_trials=5)
    _good_curves(m)
    decisions = [m.report("bad", s, 5.0 - 0.1 * s) for s in range(1, 5)]
    assert decisions == [False, False, True, True]  # warm-up: steps 1 and 2 are exempt
    better = [m.report("better", s, 0.5 / s) for s in range(1, 11)]
    assert not any(better)


def test_median_needs_min_trials_at_the_step():
    m = MedianStopper(min_trials=5)
    _good_curves(m, n=4)
    assert m.report("bad", 1, 9.0) is False  # only 4 others at step 1
    _good_curves(m, n=1, steps=0)
    m2 = MedianStopper(min_trials=4)
    _good_curves(m2, n=4)
    assert m2.report("bad", 1, 9.0) is True


def test_median_compares_the_best_so_far():
    """Optuna's MedianPruner semantics: the task's best loss up to the step, not its last."""
    m = MedianStopper(min_trials=3)
    for t in range(4):  # others: 1.0 at step 1, 1.0 at step 2
        m.report(t, 1, 1.0)
        m.report(t, 2, 1.0)
    assert m.report("x", 1, 0.5) is False
    assert m.report("x", 2, 3.0) is False  # last loss is bad, but its best (0.5) beats the median
    assert m.report("y", 1, 1.5) is True


def test_median_of_an_even_count_is_the_mean_of_the_middle_two():
    m = MedianStopper(min_trials=4)
    for t, v in enumerate([1.0, 2.0, 3.0, 4.0]):
        m.report(t, 1, v)
    assert m.report("at", 1, 2.5) is False   # median 2.5: not strictly worse
    m2 = MedianStopper(min_trials=4)
    for t, v in enumerate([1.0, 2.0, 3.0, 4.0]):
        m2.report(t, 1, v)
    assert m2.report("above", 1, 2.6) is True


def test_median_interval():
    """Decisions only at steps warmup_steps + k * interval (1, 4, 7, ... here)."""
    m = MedianStopper(warmup_steps=1, interval=3, min_trials=5)
    _good_curves(m)
    assert [m.report("bad", s, 9.0) for s in (2, 3, 4, 5)] == [False, False, True, True]
    m1 = MedianStopper(warmup_steps=1, interval=1, min_trials=5)
    _good_curves(m1)
    assert m1.report("bad", 2, 9.0) is True


# -- hyperband -----------------------------------------------------------------------------------
def test_hyperband_brackets_differ():
    h = Hyperband(min_resource=1, max_resource=27, reduction_factor=3)
    assert [b.rungs for b in h.brackets] == [[1, 3, 9], [3, 9], [9], []]
    assert h.weights == [27, 12, 6, 4]  # ceil(4 * 3**s / (s + 1)), s = 3, 2, 1, 0
    counts = [0] * 4
    for t in range(49_000):
        counts[h.bracket_of(t)] += 1
    shares = [c / sum(counts) for c in counts]
    for share, w in zip(shares, h.weights):
        assert abs(share - w / 49) < 0.02, (shares, h.weights)


def test_hyperband_assigns_deterministically_and_keeps_retries_in_the_bracket():
    a, b = Hyperband(max_resource=27), Hyperband(max_resource=27)
    assert [a.bracket_of(t) for t in range(200)] == [b.bracket_of(t) for t in range(200)]
    assert all(a.bracket_of((t, 2)) == a.bracket_of(t) for t in range(200))


def test_bracket_assignment_is_the_same_in_another_process():
    """A resume runs in a new process, where str hashes are salted differently."""
    import os
    import subprocess
    import sys

    keys = [0, 1, 2, 99, 10**12, "trial-7", ("trial-7", 1), (5, 0)]
    code = ("import sys; from emews.stoppers import Hyperband; h = Hyperband(max_resource=27); "
            f"print([h.bracket_of(k) for k in {keys!r}])")
    env = {**os.environ, "PYTHONHASHSEED": "12345"}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True,
                         timeout=120, cwd=os.path.dirname(os.path.dirname(os.path.dirname(__file__)))).stdout
    h = Hyperband(max_resource=27)
    assert out.strip() == str([h.bracket_of(k) for k in keys])
    assert h.bracket_of(("trial-7", 1)) == h.bracket_of("trial-7") and h.bracket_of((5, 0)) == h.bracket_of(5)


def test_hyperband_stops_only_at_its_bracket_rungs():
    h = Hyperband(max_resource=27)
    ids = {i: [t for t in range(1000) if h.bracket_of(t) == i][:5] for i in range(4)}
    # bracket 0 has a rung at step 1: the second, worse arrival is stopped there
    t0, t1 = ids[0][:2]
    assert h.report(t0, 1, 1.0) is False and h.report(t1, 1, 2.0) is True
    # bracket 1's first rung is 3: at step 1 nothing is decided
    u0, u1 = ids[1][:2]
    assert h.report(u0, 1, 1.0) is False and h.report(u1, 1, 2.0) is False
    assert h.report(u0, 3, 1.0) is False and h.report(u1, 3, 2.0) is True
    # the last bracket never stops
    v = ids[3]
    assert not any(h.report(t, s, float(t)) for t in v for s in range(1, 28))
    # brackets compete separately: bracket 2's first arrival at rung 9 is its best
    w = ids[2][0]
    assert h.report(w, 9, 100.0) is False


def test_hyperband_one_bracket_is_asha():
    h, a = Hyperband(max_resource=27, n_brackets=1), ASHA(max_resource=27)
    losses = [(t, s, math.sin(t * 7.1 + s)) for s in (1, 3, 9) for t in range(60)]
    assert [h.report(*r) for r in losses] == [a.report(*r) for r in losses]


# -- odd reports ---------------------------------------------------------------------------------
@pytest.mark.parametrize("make", [lambda: ASHA(max_resource=27), lambda: MedianStopper(min_trials=1),
                                  lambda: Hyperband(max_resource=27, n_brackets=1)])
def test_nan_is_the_worst_loss_and_warns_once_per_task(make, caplog):
    st = make()
    st.report("a", 1, 1.0)
    with caplog.at_level(logging.WARNING, logger="emews.stoppers"):
        assert st.report("b", 1, math.nan) is True  # worse than 1.0
        st.finished("b", "stopped", 1, None)
        st.report("c", 1, 0.5)
        st.report("c", 2, math.nan)
        st.report("c", 3, "nan")
        st.report("c", 4, None)
    nan_msgs = [r.getMessage() for r in caplog.records if "worst value" in r.getMessage()]
    assert len(nan_msgs) == 2, nan_msgs  # once for b, once for c
    assert "'b'" in nan_msgs[0] and "nan" in nan_msgs[0]


@pytest.mark.parametrize("make", [lambda: ASHA(max_resource=27), lambda: MedianStopper(min_trials=1)])
def test_a_step_going_back_is_ignored_with_a_warning(make, caplog):
    st = make()
    st.report("a", 1, 1.0)
    st.report("b", 1, 0.9)
    st.report("b", 3, 0.9)
    with caplog.at_level(logging.WARNING, logger="emews.stoppers"):
        assert st.report("b", 2, 99.0) is False
        assert st.report("b", 3, 99.0) is False  # a repeat too
        assert st.report("b", math.nan, 99.0) is False
    msgs = [r.getMessage() for r in caplog.records]
    assert any("step 2 after step 3" in m for m in msgs), msgs
    assert any("step nan" in m for m in msgs), msgs
    # b's last step is still 3: step 4 is accepted without a warning
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="emews.stoppers"):
        assert st.report("b", 4, 0.8) is False
    assert not caplog.records
    # and the ignored losses were not recorded: at step 3 only b's 0.9 competes
    assert st.report("c", 3, 0.91) is True


def test_reports_after_finished_warn_and_never_stop(caplog):
    a = ASHA(max_resource=27)
    a.report(0, 1, 0.0)
    a.report(1, 1, 1.0)
    a.finished(1, "stopped", 1, 1.0)
    with caplog.at_level(logging.WARNING, logger="emews.stoppers"):
        assert a.report(1, 2, 5.0) is False
    assert "after it finished" in caplog.text


@pytest.mark.parametrize("make", [lambda: ASHA(max_resource=27), lambda: MedianStopper(min_trials=1),
                                  lambda: Hyperband(max_resource=27)])
def test_restore_replays_without_warning_again(make, caplog):
    reports = [("a", 1, 1.0), ("b", 1, math.nan), ("b", 1, 0.5), ("c", 1, 0.2), ("c", 3, 0.1)]
    with caplog.at_level(logging.WARNING, logger="emews.stoppers"):
        first = make()
        decisions = [first.report(*r) for r in reports]
    assert caplog.records  # b's NaN (and, unless b was stopped at once, its repeated step)
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="emews.stoppers"):
        st = make()
        st.restore(reports)
        assert not caplog.records
        # the state is the first one's: b (NaN, the worst) is stopped at its next report
        assert st.report("b", 2, 0.0) is first.report("b", 2, 0.0)
        assert st.report("d", 1, 0.9) is first.report("d", 1, 0.9)
        st.report("e", 1, math.nan)
    assert len(caplog.records) == 1  # warnings are back after the restore
    assert decisions[0] is False


def test_infinite_steps_are_ignored():
    a = ASHA()  # no max_resource: rungs are made as steps reach them
    assert a.report("t", math.inf, 1.0) is False
    assert a.report("t", 1, 1.0) is False
    assert a.rungs == [1, 3]  # made up to the first one not reached yet


@pytest.mark.parametrize("make", [lambda: ASHA(max_resource=27), lambda: MedianStopper(),
                                  lambda: Hyperband(max_resource=27)])
def test_stoppers_pickle_with_their_state(make):
    import pickle

    st = make()
    for t in range(20):
        st.report(t, 1, float(t % 7))
    copy = pickle.loads(pickle.dumps(st))
    assert [copy.report(t, 3, float(t % 5)) for t in range(20)] == [st.report(t, 3, float(t % 5)) for t in range(20)]
