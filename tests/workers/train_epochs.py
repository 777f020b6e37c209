"""A training program for the command runner's report tests.

    python train_epochs.py PARAMS_FILE [REPORT_FILE]

Prints (or appends to REPORT_FILE) ``epoch E ... val_loss: L`` for E = 1..9 with
L = x + 1/E (curve_objectives.curve), then ``loss: L``. ``$HANG_AT`` (``x:E,x:E``) names the
points that hang after epoch E until they are killed: the ones the test expects the stopper
to stop there (a missing stop ends as a runner timeout, not as a hung test).
"""

import json
import sys
import time

params = json.load(open(sys.argv[1]))
x = params["x"]
hang = {}
for item in filter(None, __import__("os").environ.get("HANG_AT", "").split(",")):
    k, e = item.split(":")
    hang[float(k)] = int(e)
out = open(sys.argv[2], "a") if len(sys.argv) > 2 else sys.stdout
for epoch in range(1, 10):
    loss = x + 1.0 / epoch
    print(f"epoch {epoch} train_loss: {loss * 1.1:.6f} val_loss: {loss!r}", file=out, flush=True)
    if hang.get(x) == epoch:
        while True:
            time.sleep(1)
print(f"loss: {loss!r}", flush=True)
