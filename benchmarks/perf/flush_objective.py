"""The objective of ``model_flush.py``: short tasks, and every ``$FLUSH_EVERY``-th task a
"training" that saves a ``$FLUSH_MB`` MB checkpoint (a copy of ``$FLUSH_FILE``) and ends with
a loss lower than every earlier one, so that its model ranks among the kept ones."""

from __future__ import annotations

import os
import time


def train(params: dict, trial) -> float:
    every = int(os.environ.get("FLUSH_EVERY", "20"))
    if trial.task_id % every == every - 1:
        trial.save(os.environ["FLUSH_FILE"], step=1)
        return 1.0 / (1.0 + trial.task_id)
    time.sleep(float(os.environ.get("FLUSH_SHORT_SECONDS", "0.05")))
    return 10.0 + float(params["x"])
