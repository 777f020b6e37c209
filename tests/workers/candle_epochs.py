"""A CANDLE-protocol training script (flags in, Keras-style epoch lines and IMPROVE_RESULT out)
for the candle runner's tests, as Supervisor runs a Benchmarks model through model.sh:

    python candle_epochs.py --x 0.5 --epochs 9 --experiment_id E --run_id R --output_dir D [--dense 500 100]

Prints ``Epoch E/9 ... - loss: .. - val_loss: L`` for E = 1..9 with L = x + 1/E
(curve_objectives.curve), then ``IMPROVE_RESULT L``; writes ``seen.json`` (its arguments,
CANDLE_DATA_DIR, CUDA_VISIBLE_DEVICES) into ``--output_dir``. ``$HANG_AT`` (``x:E,x:E``) names
the points that hang after epoch E until killed (the ones a stopper is expected to stop);
``$CANDLE_TEST_HISTORY`` set: the epochs go to ``history.txt`` (rewritten each epoch) instead of
the log; ``$CANDLE_TEST_RESULT`` replaces the result line's value (``nan``, ``none``: no line).
"""

import argparse
import json
import os
import sys
import time

ap = argparse.ArgumentParser()
ap.add_argument("--x", type=float, required=True)
ap.add_argument("--epochs", type=int, default=9)
ap.add_argument("--experiment_id")
ap.add_argument("--run_id")
ap.add_argument("--output_dir")
ap.add_argument("--dense", type=int, nargs="+")
args, unknown = ap.parse_known_args()
hang = {}
for item in filter(None, os.environ.get("HANG_AT", "").split(",")):
    k, e = item.split(":")
    hang[float(k)] = int(e)
os.makedirs(args.output_dir, exist_ok=True)
with open(os.path.join(args.output_dir, "seen.json"), "w") as f:
    json.dump({"args": vars(args), "unknown": unknown, "argv": sys.argv[1:],
               "CANDLE_DATA_DIR": os.environ.get("CANDLE_DATA_DIR"),
               "CUDA_VISIBLE_DEVICES": os.environ.get("CUDA_VISIBLE_DEVICES"),
               "CANDLE_DEFAULT_MODEL_FILE": os.environ.get("CANDLE_DEFAULT_MODEL_FILE")}, f)
history = {"val_loss": []}
for epoch in range(1, args.epochs + 1):
    loss = args.x + 1.0 / epoch
    if os.environ.get("CANDLE_TEST_HISTORY"):  # epochs only in history.txt, rewritten each epoch
        history["val_loss"].append(loss)
        with open("history.txt.tmp", "w") as f:
            json.dump(history, f)
        os.replace("history.txt.tmp", "history.txt")
    else:
        print(f"Epoch {epoch}/{args.epochs}", flush=True)
        print(f"12/12 [==============================] - 0s 3ms/step - loss: {loss * 1.1:.6f} - val_loss: {loss!r}",
              flush=True)
        print(f"Epoch {epoch}/{args.epochs} - loss: {loss * 1.1:.6f} - val_loss: {loss!r}", flush=True)
    if hang.get(args.x) == epoch:
        while True:
            time.sleep(1)
value = os.environ.get("CANDLE_TEST_RESULT", repr(loss))
if value != "none":
    print(f"IMPROVE_RESULT {value}", flush=True)
