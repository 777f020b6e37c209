"""A member of a population-based training (imported by the workers of tests/optimizers/test_pbt.py).

Its state, saved at the end of every step, says which task saved it and at which epoch; a
step checks that the checkpoint it starts from is the one ``trial.resumed_from`` names, and
returns what it started from, so the test can follow the lineage through the results.
"""

from __future__ import annotations


def train(params: dict, trial) -> dict:
    state = trial.load()
    start = trial.resumed_from or 0
    if state is None:
        state = {"epoch": 0, "task": None, "lr_sum": 0.0}
    if state["epoch"] != start:
        raise RuntimeError(f"the checkpoint holds epoch {state['epoch']}, resumed_from says {start}")
    until = int(trial.until)
    for _ in range(start + 1, until + 1):
        state["lr_sum"] += params["lr"]
    loaded_from = state["task"]
    state.update(epoch=until, task=trial.task_id)
    trial.save(state, until)
    loss = 10.0 * (params["lr"] - 0.3) ** 2 + 1.0 / until
    return {"loss": loss, "loaded_epoch": start, "loaded_from": loaded_from}
