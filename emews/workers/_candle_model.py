"""The child process of ``runner: {type: candle, model: MODULE}``: one CANDLE model run.

::

    python -m emews.workers._candle_model MODULE --params params.json --return val_loss [--path DIR ...]
      params = MODULE.initialize_parameters(default_model=$CANDLE_DEFAULT_MODEL_FILE)   (when it has one;
               else the default model file's values, read with ConfigParser + literal_eval, never executed)
      params.update(proposal, experiment_id=$EXPID, run_id=$RUNID, output_dir=$CANDLE_OUTPUT_DIR)
      history = MODULE.run(params)  ──▶ stdout: "IMPROVE_RESULT <value>"; result.txt; history.txt;
                                        stop.marker when fewer epochs ran than asked (early stopping)

As Supervisor's ``model_runner.py`` does: ``sys.argv`` is reset for candle_lib's argument
parser, a Keras ``History`` (``.history``), a dict of per-epoch lists, a PyTorch-style
``(val_scores, infer_scores)`` pair or a number is accepted from ``run``, the result is the
last value of ``--return`` (NaN when it is missing: a failed result for the runner).
"""

from __future__ import annotations

import argparse
import ast
import configparser
import importlib
import json
import math
import os
import sys
from pathlib import Path
from typing import Any

from ._candle import candle_value


def read_default_model(path: str) -> dict[str, Any]:
    """All sections of a CANDLE default model file (ConfigParser; values as Python literals)."""
    cp = configparser.ConfigParser(interpolation=None)
    cp.read_string(Path(path).read_text(), source=path)
    out: dict[str, Any] = {}
    for section in cp.sections():
        for k, text in cp.items(section):
            try:
                out[k] = ast.literal_eval(text.strip())
            except (ValueError, SyntaxError):
                out[k] = text.strip()
    return out


def history_of(value: Any, ret: str) -> tuple[float, dict]:
    """(result, history dict) from what a model's ``run`` returned."""
    hist = getattr(value, "history", value)
    if isinstance(value, tuple) and len(value) == 2 and isinstance(value[0], dict):  # PyTorch: (val_scores, infer)
        hist = {k: [v] for k, v in value[0].items()}
    if isinstance(hist, dict):
        values = hist.get(ret)
        if values is None:
            print(f"emews candle: model return key {ret!r} not in the history (keys {sorted(hist)}); result NaN")
            return math.nan, hist
        values = values if isinstance(values, (list, tuple)) else [values]
        return (float(values[-1]) if values else math.nan), {k: list(v) if isinstance(v, (list, tuple)) else v
                                                             for k, v in hist.items()}
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value), {ret: [float(value)]}
    print(f"emews candle: run() returned {type(value).__name__}, not a history, a dict or a number; result NaN")
    return math.nan, {}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="emews.workers._candle_model")
    ap.add_argument("module")
    ap.add_argument("--params", required=True)
    ap.add_argument("--return", dest="ret", default="val_loss")
    ap.add_argument("--path", action="append", default=[])
    args = ap.parse_args(argv)
    for d in reversed(args.path):
        sys.path.insert(0, d)
    sys.path.insert(0, os.getcwd())
    proposal = json.loads(Path(args.params).read_text())
    pkg = importlib.import_module(args.module)
    if not callable(getattr(pkg, "run", None)):
        print(f"emews candle: model module {args.module!r} ({getattr(pkg, '__file__', '?')}) defines no run(params)",
              file=sys.stderr)
        return 2
    default_model = os.environ.get("CANDLE_DEFAULT_MODEL_FILE") or os.environ.get("CANDLE_DEFAULT_MODEL")
    sys.argv = [args.module]  # candle_lib's finalize_parameters parses sys.argv
    if callable(getattr(pkg, "initialize_parameters", None)):
        init = pkg.initialize_parameters
        params = init(default_model=default_model) if default_model else init()
    else:
        params = read_default_model(default_model) if default_model else {}
    params = dict(params or {})
    for k, v in proposal.items():
        params[k] = candle_value(v)
    params.update(experiment_id=os.environ.get("EXPID", "EXP000"), run_id=os.environ.get("RUNID", "RUN000"),
                  output_dir=os.environ.get("CANDLE_OUTPUT_DIR", os.getcwd()))
    epochs = params.get("epochs", 1)
    result, history = history_of(pkg.run(params), args.ret)
    done = len(history.get(args.ret) or []) if isinstance(history.get(args.ret), list) else None
    if done is not None and isinstance(epochs, int) and done < epochs:
        Path("stop.marker").write_text(f"early stopping: {done}/{epochs}\n")
    Path("result.txt").write_text(f"{result}\n")
    Path("history.txt").write_text(json.dumps(history, default=float) + "\n")
    print(f"result: {args.ret}: {result}")
    print(f"IMPROVE_RESULT {result}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
