"""A CANDLE Benchmarks-style model module for the candle runner's tests: ``initialize_parameters``
reads the default model file (ConfigParser, as candle_lib does), ``run(params)`` trains for
``epochs`` and returns a Keras-like history; it writes the parameters it ran with to
``<output_dir>/params_seen.json``. The loss is ``(learning_rate - 0.01) ** 2 + 1 / epoch``;
``early_stop_at`` (a parameter) ends training after that epoch, as a Keras EarlyStopping would."""

import ast
import configparser
import json
import os


class History:
    def __init__(self, history):
        self.history = history


def initialize_parameters(default_model="candle_toy_default_model.txt"):
    cp = configparser.ConfigParser()
    cp.read(default_model)
    return {k: ast.literal_eval(v) for s in cp.sections() for k, v in cp.items(s)}


def run(params):
    hist = {"loss": [], "val_loss": []}
    for epoch in range(1, params["epochs"] + 1):
        v = (params["learning_rate"] - 0.01) ** 2 + 1.0 / epoch
        hist["loss"].append(1.1 * v)
        hist["val_loss"].append(v)
        print(f"Epoch {epoch}/{params['epochs']} - loss: {1.1 * v:.6f} - val_loss: {v!r}", flush=True)
        if params.get("early_stop_at") == epoch:
            break
    os.makedirs(params["output_dir"], exist_ok=True)
    with open(os.path.join(params["output_dir"], "params_seen.json"), "w") as f:
        json.dump({**params, "CANDLE_DATA_DIR": os.environ.get("CANDLE_DATA_DIR")}, f)
    return History(hist)
