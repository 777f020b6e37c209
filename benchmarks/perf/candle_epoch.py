"""Seconds per training epoch of the CANDLE objectives at default hyperparameters.

For NT3 it also times a plain PyTorch loop written the obvious way -- DataLoader over a
TensorDataset on the host, ``.to(device)`` per batch, ``loss.item()`` per batch -- with the
same architecture, optimizer, batch size and data, and prints the ratio (baseline / ours).

The time of an epoch is training plus the validation pass; the first epoch (warm-up,
cuDNN autotuning) is reported separately and the steady value is the median of the others.

Usage (from the repository root)::

    python benchmarks/perf/candle_epoch.py --size small              # CPU-friendly
    python benchmarks/perf/candle_epoch.py --size full --device cuda  # the real shapes
    python benchmarks/perf/candle_epoch.py --size full --bf16 --models nt3,combo --json out.json
    python benchmarks/perf/candle_epoch.py --size small --models nt3 --repeat 2   # noisy host

The plain loop runs with PyTorch's default CUDA flags unless ``--baseline-tuned``.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import torch  # noqa: E402
import torch.nn as nn  # noqa: E402
import torch.nn.functional as F  # noqa: E402
from torch.utils.data import DataLoader, TensorDataset  # noqa: E402

from benchmarks.candle import combo, nt3, p1b1  # noqa: E402
from benchmarks.candle.common import parse_params, resolve_device  # noqa: E402

MODELS = {"nt3": nt3, "p1b1": p1b1, "combo": combo}


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def steady(times: list[float]) -> float:
    rest = times[1:] if len(times) > 1 else times
    return statistics.median(rest)


def time_objective(name: str, size: str, device: str, epochs: int, bf16: bool, threads: int) -> dict:
    params = {"data_size": size, "device": device, "epochs": epochs, "bf16": bf16, "seed": 1}
    if threads:
        params["threads"] = threads
    r = MODELS[name].run(params)  # epoch times exclude building the data
    times = json.loads(r["history"])["epoch_seconds"]
    return {
        "model": name,
        "seconds_per_epoch": steady(times),
        "first_epoch_seconds": times[0],
        "epoch_seconds": times,
        "n_train": r["n_train"],
        "n_params": r["n_params"],
        "val_loss": r["loss"],
    }


def baseline_nt3(size: str, device_spec: str, epochs: int, tuned: bool = False) -> dict:
    """NT3 defaults trained the obvious way (host DataLoader, per-batch copies and .item()).

    The backend flags are PyTorch's defaults, or with ``tuned`` the objective's (cuDNN
    autotuning, TF32), so that the ratio measures only the loop and data path."""
    device = resolve_device(device_spec)
    p = parse_params({"data_size": size}, nt3.SCHEMA, nt3.ALIASES)
    _, host, _ = nt3.get_data(p, nt3.data_dir(p))
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = tuned
        torch.backends.cuda.matmul.allow_tf32 = tuned
    x_tr = torch.from_numpy(host["x_train"]).unsqueeze(1)
    y_tr = torch.from_numpy(host["y_train"])
    x_te = torch.from_numpy(host["x_test"]).unsqueeze(1)
    y_te = torch.from_numpy(host["y_test"])
    n_features = x_tr.shape[-1]
    flat = 128 * (((n_features - 20 + 1) - 10 + 1) // 10)
    torch.manual_seed(1)
    model = nn.Sequential(
        nn.Conv1d(1, 128, 20), nn.ReLU(), nn.MaxPool1d(1),
        nn.Conv1d(128, 128, 10), nn.ReLU(), nn.MaxPool1d(10),
        nn.Flatten(),
        nn.Linear(flat, 200), nn.ReLU(), nn.Dropout(0.1),
        nn.Linear(200, 20), nn.ReLU(), nn.Dropout(0.1),
        nn.Linear(20, 2),
    ).to(device)
    opt = torch.optim.SGD(model.parameters(), lr=0.001)
    train_loader = DataLoader(TensorDataset(x_tr, y_tr), batch_size=20, shuffle=True)
    test_loader = DataLoader(TensorDataset(x_te, y_te), batch_size=20)
    times, val = [], float("nan")
    for _ in range(epochs):
        _sync(device)
        t0 = time.perf_counter()
        model.train()
        running = 0.0
        for xb, yb in train_loader:
            xb, yb = xb.to(device), yb.to(device)
            opt.zero_grad()
            loss = F.cross_entropy(model(xb), yb)
            loss.backward()
            opt.step()
            running += loss.item()
        model.eval()
        total, correct = 0.0, 0
        with torch.no_grad():
            for xb, yb in test_loader:
                xb, yb = xb.to(device), yb.to(device)
                out = model(xb)
                total += F.cross_entropy(out, yb, reduction="sum").item()
                correct += (out.argmax(1) == yb).sum().item()
        val = total / len(y_te)
        _sync(device)
        times.append(time.perf_counter() - t0)
    return {
        "model": "nt3 (plain loop)",
        "seconds_per_epoch": steady(times),
        "first_epoch_seconds": times[0],
        "epoch_seconds": times,
        "n_train": len(y_tr),
        "n_params": sum(t.numel() for t in model.parameters()),
        "val_loss": val,
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--size", choices=["full", "small", "tiny"], default="small")
    ap.add_argument("--device", default="auto", help="auto (CUDA if available), cpu, cuda, cuda:N")
    ap.add_argument("--epochs", type=int, default=3, help="epochs per measurement (first = warm-up)")
    ap.add_argument("--models", default="nt3,p1b1,combo")
    ap.add_argument("--bf16", action="store_true", help="bf16 autocast for the objectives")
    ap.add_argument("--threads", type=int, default=0, help="torch CPU threads (0 = leave as is)")
    ap.add_argument("--no-baseline", action="store_true", help="skip the plain NT3 loop")
    ap.add_argument("--baseline-tuned", action="store_true",
                    help="give the plain loop the objective's CUDA flags (cuDNN autotuning, TF32)")
    ap.add_argument("--repeat", type=int, default=1,
                    help="alternate plain loop and NT3 objective this many times; keep each one's best (noisy hosts)")
    ap.add_argument("--json", help="also write the results to this file")
    a = ap.parse_args(argv)
    if a.threads:
        torch.set_num_threads(a.threads)
    device = resolve_device(a.device)
    names = [m.strip() for m in a.models.split(",") if m.strip()]
    for m in names:
        if m not in MODELS:
            ap.error(f"unknown model {m!r}; choose from {', '.join(MODELS)}")
    dev_name = torch.cuda.get_device_name(device) if device.type == "cuda" else platform.processor() or "cpu"
    print(f"# torch {torch.__version__}, device {device} ({dev_name}), threads {torch.get_num_threads()}, "
          f"size {a.size}, epochs {a.epochs}, bf16 {a.bf16}", flush=True)

    results = []
    for m in names:
        if m == "nt3" and not a.no_baseline:
            best_base = best_ours = None
            for _ in range(max(1, a.repeat)):
                # the plain loop sets PyTorch's default backend flags for itself each time
                base = baseline_nt3(a.size, str(device), a.epochs, a.baseline_tuned)
                print(_line(base), flush=True)
                ours = time_objective(m, a.size, str(device), a.epochs, a.bf16, a.threads)
                print(_line(ours), flush=True)
                if best_base is None or base["seconds_per_epoch"] < best_base["seconds_per_epoch"]:
                    best_base = base
                if best_ours is None or ours["seconds_per_epoch"] < best_ours["seconds_per_epoch"]:
                    best_ours = ours
            results += [best_base, best_ours]
        else:
            results.append(time_objective(m, a.size, str(device), a.epochs, a.bf16, a.threads))
            print(_line(results[-1]), flush=True)
    base = next((r for r in results if r["model"] == "nt3 (plain loop)"), None)
    ours = next((r for r in results if r["model"] == "nt3"), None)
    summary = {"size": a.size, "device": str(device), "device_name": dev_name, "torch": torch.__version__,
               "bf16": a.bf16, "results": results}
    if base and ours:
        ratio = base["seconds_per_epoch"] / ours["seconds_per_epoch"]
        summary["nt3_speedup_vs_plain_loop"] = ratio
        print(f"nt3 plain loop / objective: {ratio:.2f}x", flush=True)
    if a.json:
        Path(a.json).write_text(json.dumps(summary, indent=2))
    return 0


def _line(r: dict) -> str:
    return (f"{r['model']:<18} {r['seconds_per_epoch']:9.3f} s/epoch (first {r['first_epoch_seconds']:.3f} s)  "
            f"{r['n_train']} train rows, {r['n_params']:,} params, val_loss {r['val_loss']:.4g}")


if __name__ == "__main__":
    sys.exit(main())
