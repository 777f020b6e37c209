"""An objective that trains for ``$CKPT_EPOCHS`` epochs (default 6), saving a checkpoint and
reporting at each (imported by the workers of the checkpoint tests).

Every epoch computed appends ``task_id attempt epoch`` to ``$CKPT_LOG``, so a test counts the
epochs recomputed after a kill. With ``$CKPT_HOLD=k`` and ``$CKPT_GATE`` (a directory), an
attempt that has saved epoch ``k`` writes ``held-<task_id>`` there and waits until the test
creates ``open``: the test kills the run while tasks are held at a point it chose.
"""

from __future__ import annotations

import os
import time


def _log(task_id: int, attempt: int, epoch: int) -> None:
    path = os.environ.get("CKPT_LOG")
    if path:
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            os.write(fd, f"{task_id} {attempt} {epoch}\n".encode())
        finally:
            os.close(fd)


def _hold(task_id: int, epoch: int) -> None:
    gate, hold = os.environ.get("CKPT_GATE"), os.environ.get("CKPT_HOLD")
    if not gate or not hold or int(hold) != epoch or os.path.exists(os.path.join(gate, "open")):
        return
    with open(os.path.join(gate, f".held-{task_id}"), "w") as f:
        f.write(str(epoch))
    os.rename(os.path.join(gate, f".held-{task_id}"), os.path.join(gate, f"held-{task_id}"))
    end = time.monotonic() + 600  # a test that died leaves no task blocked for ever
    while time.monotonic() < end and not os.path.exists(os.path.join(gate, "open")):
        time.sleep(0.02)


def train(params: dict, trial) -> dict:
    """A model whose state is ``{"epoch": e, "weights": [...]}``; the loss after the last epoch
    depends on ``x`` only, so a resumed attempt ends with the loss an uninterrupted one has."""
    epochs = int(os.environ.get("CKPT_EPOCHS", "6"))
    x = float(params["x"])
    state = trial.load()
    start = trial.resumed_from or 0
    if state is None:
        state, start = {"epoch": 0, "weights": [x] * 64}, 0
    assert state["epoch"] == start, (state["epoch"], start)
    loss = float("nan")
    for epoch in range(start + 1, epochs + 1):
        _log(trial.task_id, trial.attempt, epoch)
        state = {"epoch": epoch, "weights": [w * 0.5 for w in state["weights"]]}
        loss = (x - 0.3) ** 2 + 1.0 / epoch
        trial.save(state, epoch)
        if trial.report(epoch, loss):
            break
        _hold(trial.task_id, epoch)
    return {"loss": loss, "x2": x * x}
