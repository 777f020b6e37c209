"""A stand-in training program for the command-runner tests.

    python train.py PARAMS_FILE MODE [RESULT_FILE]

MODE: ``stdout`` prints ``loss: X``; ``json`` writes ``{"loss": X, "cvd": ...}`` to
RESULT_FILE; ``number`` writes a bare number; ``garbage`` writes text that is not JSON;
``nofile`` writes nothing; ``fail`` exits 3 after a message on stderr.
"""

import json
import os
import sys

params = json.load(open(sys.argv[1]))
mode = sys.argv[2]
loss = (params["x"] - 1.0) ** 2
print("epoch 1 ...")
if mode == "stdout":
    print(f"loss: {loss}")
    print("done")
elif mode == "json":
    json.dump({"loss": loss, "cvd": os.environ.get("CUDA_VISIBLE_DEVICES"), "cwd": os.getcwd(),
               "task": os.environ.get("EMEWS_TASK_ID"), "omp": os.environ.get("OMP_NUM_THREADS"),
               "pmi": any(k.startswith("PMI_") for k in os.environ), "exe": sys.executable}, open(sys.argv[3], "w"))
elif mode == "number":
    open(sys.argv[3], "w").write(f"{loss}\n")
elif mode == "garbage":
    open(sys.argv[3], "w").write("loss is low\n")
elif mode == "fail":
    print("CUDA out of memory (pretend)", file=sys.stderr)
    sys.exit(3)
