"""Learning-curve objectives for the early-stopping tests: a fixed curve per parameter set.

``curve(x, step) = x + 1 / step`` over ``EPOCHS`` epochs: a lower ``x`` is better at every
step, so a stopper's decisions depend only on the order the tasks report in.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import emews

EPOCHS = 9


def curve(x: float, step: int) -> float:
    return x + 1.0 / step


def with_trial(params: dict, trial) -> dict:
    """Reports every epoch through the trial handle; returns when told to stop."""
    loss = None
    for step in range(1, EPOCHS + 1):
        loss = curve(params["x"], step)
        if trial.report(step, loss, epoch_time=0.0):
            return {"loss": loss}  # the runner makes it "stopped" whatever it returns
    return {"loss": loss}


def with_raise(params: dict) -> float:
    """Reports through emews.report_step and raises Stopped when told to stop."""
    loss = None
    for step in range(1, EPOCHS + 1):
        loss = curve(params["x"], step)
        emews.report_step(step, loss, raise_on_stop=True)
    return loss


def plain(params: dict) -> float:
    """No reports: runs unchanged."""
    return curve(params["x"], EPOCHS)


def bad_reports(params: dict, trial) -> float:
    """A NaN loss at step 2 and a step going backwards at step 3 (warnings, never a crash)."""
    trial.report(1, 1.0)
    trial.report(2, float("nan"))
    trial.report(1, 0.5)
    trial.report(4, 0.4)
    return 0.4


def blocks_once(params: dict, trial) -> dict:
    """Like with_trial, but the task with x == BLOCK_X (env) first writes the marker file
    (env EMEWS_TEST_MARKER) and sleeps until killed, before its first report, unless the
    marker exists already (the resumed run)."""
    marker = Path(os.environ["EMEWS_TEST_MARKER"])
    if abs(params["x"] - float(os.environ["EMEWS_TEST_BLOCK_X"])) < 1e-12 and not marker.exists():
        marker.write_text(str(os.getpid()))
        while True:
            time.sleep(1)
    return with_trial(params, trial)


def stopped_by_optimizer(params: dict, trial) -> dict:
    """Reports forever (until a stop); a loss that does not improve."""
    step = 0
    while True:
        step += 1
        if trial.report(step, 1.0 + params["x"]) or step > 100000:
            return {"loss": 1.0}
        time.sleep(0.001)


def stop_first(queues, space, seed=None):
    """A resident optimizer that stops its only task itself (queues.stop), the IoC way."""
    [tid] = queues.put([{"x": 0.5}])
    queues.stop(tid)
    return queues.get()


def ranks_trial(params: dict, trial, comm=None) -> dict:
    """A multi-rank task: every rank reports (only the leader's reports reach the driver), the
    ranks agree on a stop each step (as a training loop's allreduce would), and each appends
    ``task rank last_step`` to ``$EMEWS_TEST_STOPS``."""
    from mpi4py import MPI

    loss, step = None, 0
    for step in range(1, EPOCHS + 1):
        loss = curve(params["x"], step)
        stop = trial.report(step, loss)
        if comm is not None:
            stop = comm.allreduce(stop, op=MPI.LOR)
        if stop:
            break
    rank = comm.Get_rank() if comm is not None else 0
    with open(os.environ["EMEWS_TEST_STOPS"], "a") as f:
        f.write(f"{trial.task_id} {rank} {step}\n")
    return {"loss": loss}
